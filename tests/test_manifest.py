"""
Tests for manifest.py: AudioCraft's manifest as `python -m audiocraft.data.audio_dataset` writes it
(path, duration, sample_rate, amplitude, weight, info_path; relative paths; gzip), caption files
(a.json, a.txt, info_path to a JSON file or a zip member), one-line errors naming the file and line,
tags (the `tags` field, or caption words), and MusicGen's metadata captions.
CPU, a second.
Run: python -m pytest -q tests/test_manifest.py
"""
import gzip
import json
import zipfile

import numpy as np
import pytest

from manifest import (AudioMeta, augment_description, file_tags, find_manifest, list_folder,
                      music_info, parse_tags, read_manifest, read_sidecar, tag_shares)


def audiocraft_line(path, duration=2.0, sample_rate=16000, amplitude=0.5, weight=None,
                    info_path=None):
    """One line of AudioCraft's manifest: AudioMeta.to_dict() in its field order."""
    return json.dumps(dict(path=path, duration=duration, sample_rate=sample_rate,
                           amplitude=amplitude, weight=weight, info_path=info_path))


def test_reads_audiocraft_manifest_relative_paths_and_gzip(tmp_path):
    """Relative paths (and info_path) are relative to the manifest's folder; absolute ones kept;
    blank lines skipped; the line number in `where` is the one an editor shows."""
    sub = tmp_path / "sub"
    sub.mkdir()
    lines = [audiocraft_line("a.wav", weight=2.0, info_path="meta/a.json"), "",
             audiocraft_line(str(tmp_path / "b.wav"), amplitude=None)]
    for name, opener in (("data.jsonl", open), ("data.jsonl.gz", gzip.open)):
        with opener(sub / name, "wt") as fp:
            fp.write("\n".join(lines) + "\n")
        metas = read_manifest(str(sub / name))
        assert [m.path for m in metas] == [str(sub / "a.wav"), str(tmp_path / "b.wav")]
        assert metas[0].info_path == str(sub / "meta" / "a.json") and metas[1].info_path is None
        assert (metas[0].duration, metas[0].sample_rate, metas[0].amplitude, metas[0].weight) == (
            2.0, 16000, 0.5, 2.0)
        assert metas[1].where == f"{sub / name} line 3"


@pytest.mark.parametrize("text,error", [
    ('{"path": "a.wav"}\n\n{"path": "b.wav", \n', r"data.jsonl line 3 is not JSON \(.*\): fix"),
    ('{"path": "a.wav"}\n{"duration": 2.0}\n', r'data.jsonl line 2 has no "path": each line is'),
    ('["a.wav"]\n', r'data.jsonl line 1 has no "path"'),
    ('{"path": "a.wav", "duration": "long"}\n', r"data.jsonl line 1: duration 'long' is not a num"),
    ("\n\n", r"data.jsonl lists no audio file: write one JSON line per file"),
])
def test_bad_manifest_lines_name_file_and_line(tmp_path, text, error):
    (tmp_path / "data.jsonl").write_text(text)
    with pytest.raises(ValueError, match=error) as e:
        read_manifest(str(tmp_path / "data.jsonl"))
    assert "\n" not in str(e.value)


def test_find_manifest(tmp_path):
    assert find_manifest(str(tmp_path)) is None  # a folder of audio files
    (tmp_path / "train.jsonl").write_text("")
    assert find_manifest(str(tmp_path)) == str(tmp_path / "train.jsonl")  # its one manifest
    (tmp_path / "valid.jsonl").write_text("")
    with pytest.raises(ValueError, match=r"holds several manifests \(train.jsonl, valid.jsonl\): "
                                         "pass the training one as --data and the held-out one"):
        find_manifest(str(tmp_path))
    (tmp_path / "data.jsonl").write_text("")
    assert find_manifest(str(tmp_path)) == str(tmp_path / "data.jsonl")  # data.jsonl first
    assert find_manifest(str(tmp_path / "valid.jsonl")) == str(tmp_path / "valid.jsonl")
    with pytest.raises(FileNotFoundError, match="no such folder or manifest: .*nope"):
        find_manifest(str(tmp_path / "nope"))
    (tmp_path / "x" / "y").mkdir(parents=True)
    for name in ("x/b.WAV", "x/y/a.flac", "x/notes.txt"):
        (tmp_path / name).write_bytes(b"")
    assert [m.path for m in list_folder(str(tmp_path / "x"))] == [
        str(tmp_path / "x" / "b.WAV"), str(tmp_path / "x" / "y" / "a.flac")]


def test_caption_files_info_path_json_and_zip(tmp_path):
    """read_sidecar: info_path (a JSON file, or 'archive.zip:member' as AudioCraft's PathInZip)
    wins over a.json beside the audio, which wins over a.txt; a JSON without description falls
    back to a.txt's caption and keeps its fields."""
    wav = tmp_path / "a.wav"
    (tmp_path / "a.json").write_text(json.dumps({"description": "beside", "bpm": 90}))
    (tmp_path / "a.txt").write_text("text file")
    assert read_sidecar(AudioMeta(str(wav))) == (["beside"], {"bpm": 90})
    (tmp_path / "info.json").write_text(json.dumps({"description": ["one", "two"], "genre": "x"}))
    assert read_sidecar(AudioMeta(str(wav), info_path=str(tmp_path / "info.json"))) == (
        ["one", "two"], {"genre": "x"})
    with zipfile.ZipFile(tmp_path / "infos.zip", "w") as z:
        z.writestr("deep/a.json", json.dumps({"description": "zipped", "moods": ["calm"]}))
    meta = AudioMeta(str(wav), info_path=f"{tmp_path / 'infos.zip'}:deep/a.json")
    assert read_sidecar(meta) == (["zipped"], {"moods": ["calm"]})
    (tmp_path / "a.json").write_text(json.dumps({"bpm": 100}))
    assert read_sidecar(AudioMeta(str(wav))) == (["text file"], {"bpm": 100})
    assert read_sidecar(AudioMeta(str(tmp_path / "none.wav"))) == ([], {})


def test_tags_are_the_tags_field_or_caption_words():
    """A `tags` field (a list, or a comma-separated string) is the tag set, phrases kept whole
    and normalised; without one, the captions' words outside the function words."""
    assert file_tags(["a dog barks in the park"], {}) == {"dog", "barks", "park"}
    assert file_tags(["Speeches, played loudly"], {}) == {"speeches", "played", "loudly"}
    assert file_tags(["a dog barks"], {"tags": ["Dog", "male  speech", ""]}) == {"dog", "male speech"}
    assert file_tags(["anything"], {"tags": "rain, Thunder Storm"}) == {"rain", "thunder storm"}
    assert file_tags([], {"tags": []}) == frozenset() and file_tags([], {}) == frozenset()
    assert parse_tags(" Speech,music ") == ("speech", "music") and parse_tags("") == ()
    assert parse_tags("male speech, Dog") == ("male speech", "dog")
    for bad in ("speech,,music", "speech!", "dog-bark"):
        with pytest.raises(ValueError, match=r"is not words of letters and digits: separate tags"):
            parse_tags(bad)
    assert tag_shares([{"dog", "bark"}, {"dog"}, {"rain"}, set()]) == "dog 50%, bark 25%, rain 25%"
    assert tag_shares([set()]) == "none"


def test_music_info_reads_fields_as_audiocraft():
    """MusicInfo.from_dict's preprocessing: lower-cased keywords, bpm as a float, lists split at
    commas and spaces, in MusicInfo's field order; a key listing several keys, a bpm that is not a
    number, empty and 'None' dropped."""
    info = dict(title="X", instrument=" Piano", keywords=["Soft", ""], moods="calm, Relaxed",
                genre="Jazz", bpm="90", key="C major", artist="a")
    assert music_info(info) == [("key", "c major"), ("bpm", "90.0"), ("genre", "jazz"),
                                ("moods", "calm, relaxed"), ("keywords", "soft"),
                                ("instrument", "piano")]
    assert music_info(dict(key="C, G", bpm="fast", genre="None", moods=[], instrument="")) == []


def test_augment_description_writes_audiocraft_text():
    """augment_music_info_description: 'desc. name: value. name: value' (fields shuffled), metadata
    alone when the description is dropped, 'desc.' when no field is kept; the rates of
    merge_text_p, drop_desc_p, drop_other_p."""
    info = dict(bpm=90, genre="Jazz")
    rng = np.random.default_rng(0)
    assert augment_description("calm piano", info, rng, 1, 0, 1) in (
        "calm piano. bpm: 90.0. genre: jazz", "calm piano. genre: jazz. bpm: 90.0")
    assert augment_description("calm piano", info, rng, 1, 1, 1) in (
        "bpm: 90.0. genre: jazz", "genre: jazz. bpm: 90.0")
    assert augment_description("calm piano.", info, rng, 1, 0, 0) == "calm piano."  # one period
    assert augment_description("calm piano", info, rng, 0, 1, 1) == "calm piano."  # no merge
    assert augment_description("", {}, rng, 1, 1, 1) == ""  # nothing left: the null condition
    texts = [augment_description("calm piano", info, np.random.default_rng([1, i]), 0.25, 0.5, 0.5)
             for i in range(4000)]
    merged = [t for t in texts if t != "calm piano."]  # a field kept, or the description dropped
    dropped = [t for t in texts if not t.startswith("calm piano")]
    # P(changed) = 0.25 (1 - 0.5 x 0.5^2) = 0.21875 (kept description, no field: unchanged);
    # P(dropped) = 0.125
    assert abs(len(merged) / 4000 - 0.21875) < 0.02 and abs(len(dropped) / 4000 - 0.125) < 0.02
    assert abs(sum("bpm" in t for t in texts) / 4000 - 0.125) < 0.02  # merged x kept
