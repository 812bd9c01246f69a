"""
Tests for synth.py and data.py: the clip generator (determinism, format, captions vs labels,
coverage, melody pitch by FFT), AudioGen's mixing augmentation (SNR, overlap, level, captions,
labels), FolderDataset on both folder forms with a corrupt and a too-short file (its start-up
line: captions, skipped files, resampling, padding), its sampling options on a manifest with a
skewed tag distribution (manifest weights, durations, tag balance, tag exclusion: sampled shares
and the start-up lines), AudioCraft's manifest read in full (info_path, amplitude, durations that
disagree, min/max duration), the shuffled hold-out, the one-line errors, the CLI.
CPU, a few seconds.
Run: python -m pytest -q tests/test_data.py
"""
import gzip
import json
import math
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from data import BuiltinDataset, FolderDataset, collate, holdout, mix_clips, probability
from synth import INSTRUMENTS, SCENES, SOURCES, make_clip

ROOT = Path(__file__).resolve().parents[1]

SR = 16000


def stems(phrase):
    """The first 4 letters of each word: 'dog bark' -> ['dog', 'bark'], matched in 'a dog is barking'."""
    return [w[:4] for w in phrase.split()]


def pitch_class(seg, sr=SR):
    """Dominant pitch class of a segment: FFT power folded onto the 12 classes (bins 25 Hz - 5 kHz)."""
    power = np.abs(np.fft.rfft(seg * np.hanning(len(seg)))) ** 2
    f = np.fft.rfftfreq(len(seg), 1 / sr)
    ok = (f > 25) & (f < 5000)
    pc = np.round(12 * np.log2(f[ok] / 440) + 69).astype(int) % 12  # MIDI number of each bin, mod 12
    return int(np.bincount(pc, weights=power[ok], minlength=12).argmax())


def tone(freq, seconds, sr, amp=0.5):
    return amp * torch.sin(2 * math.pi * freq * torch.arange(int(seconds * sr), dtype=torch.float64) / sr)


# ----------------------------------------------------------------------------- the generator


def test_deterministic_per_seed_and_index():
    a, b = make_clip(7, seed=3, duration=1.0), make_clip(7, seed=3, duration=1.0)
    assert np.array_equal(a["wav"], b["wav"]) and a["labels"] == b["labels"]
    assert (a["tags"], a["sentence"]) == (b["tags"], b["sentence"])
    assert not np.array_equal(a["wav"], make_clip(7, seed=4, duration=1.0)["wav"])


def test_distinct_across_indices():
    wavs = [make_clip(i, duration=1.0)["wav"] for i in range(8)]
    for i in range(8):
        for j in range(i):
            assert not np.allclose(wavs[i], wavs[j], atol=1e-3), (i, j)


@pytest.mark.parametrize("sr,duration", [(16000, 5.0), (32000, 0.5), (8000, 0.05)])
def test_clip_format(sr, duration):
    for i in range(6):
        for kind in ("sfx", "music"):
            w = make_clip(i, duration=duration, sample_rate=sr, kind=kind)["wav"]
            assert w.dtype == np.float32 and w.shape == (round(duration * sr),)
            assert np.isfinite(w).all() and 0.4 < np.abs(w).max() <= 1.0  # peak-normalised to U(0.5, 0.95)
    with pytest.raises(ValueError, match="kind='speech'"):
        make_clip(0, kind="speech")


def test_captions_match_labels_and_everything_is_reachable():
    seen = {"source": set(), "scene": set(), "instrument": set()}
    for i in range(160):
        c = make_clip(i, duration=0.3)
        lab, tags, sentence = c["labels"], c["tags"], c["sentence"]
        if lab["kind"] == "sfx":
            assert tags == f"{lab['source']} {lab['scene']}"  # AudioGen's tag style: "dog bark park"
            for word in stems(lab["source"]) + [lab["scene"]]:
                assert word in sentence, (word, sentence)
            assert len(lab["onsets"]) == lab["count"]
            assert "twice" not in sentence or lab["count"] == 2, sentence  # counts are said right when said
            assert not any(w in sentence for w in ("repeatedly", "several")) or lab["count"] >= 3, sentence
        else:
            assert lab["instrument"] in tags and lab["tempo"] in tags and (lab["mood"] or "") in tags
            assert all(w in sentence for w in stems(lab["instrument"].rstrip("s"))), sentence
            assert ("drum" in sentence) == lab["drums"], sentence
        for key in seen:
            seen[key].add(lab[key])
    assert seen["source"] - {None} == set(SOURCES) and len(SOURCES) >= 12
    assert seen["scene"] - {None} == set(SCENES) and len(SCENES) >= 4
    assert seen["instrument"] - {None} == set(INSTRUMENTS)
    first_words = {make_clip(i, duration=0.3, kind="sfx")["sentence"].split()[0] for i in range(30)}
    assert len(first_words) >= 4  # the templates and phrasings vary


def test_melody_pitch_matches_labelled_notes():
    """Every note of 0.15 s or more, in clips without drums: the FFT's dominant pitch class (after the first 30 ms)
    is the labelled MIDI note's, and the note is in the labelled key."""
    scales = {"major": {0, 2, 4, 5, 7, 9, 11}, "minor": {0, 2, 3, 5, 7, 8, 10}}
    names = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"]
    checked = {}
    for i in range(60):
        c = make_clip(i, kind="music")
        lab = c["labels"]
        if lab["drums"] or checked.get(lab["instrument"], 0) >= 12:
            continue
        tonic, mode = lab["key"].split()
        for onset, length, midi in lab["notes"]:
            assert (midi - names.index(tonic)) % 12 in scales[mode]
            if length >= 0.15:
                seg = c["wav"][int((onset + 0.03) * SR):int((onset + length) * SR)]
                assert pitch_class(seg) == midi % 12, (i, lab["instrument"], onset, midi)
                checked[lab["instrument"]] = checked.get(lab["instrument"], 0) + 1
    assert set(checked) == {"piano", "organ", "plucked string", "bass"}, checked


# ----------------------------------------------------------------------------- AudioGen's mixing augmentation


def test_mix_clips_snr_overlap_level_captions_labels():
    """data.mix_clips as AudioCraft's snr_mixer with audiogen_base_16khz.yaml's settings, over 300 draws. The mix is
    y = g (a / rms(a) + 10^(-s/20) b[t - start] / rms(b)): least squares on the basis (a, b delayed) gives the two
    gains, whose ratio times rms(a) / rms(b) is 10^(s/20) (s an integer in [-5, 5), each value drawn); start is in
    [0, T/2] (overlap at least half), both ends reached; rms(y) an integer dBFS in [-35, -15). Captions: each pair
    joined by a space, equal ones once; labels: the union; a function of the rng's seed."""
    T, g = 1000, torch.Generator().manual_seed(0)
    a = (0.3 * torch.sin(torch.arange(T) * 0.05)[None], ["dog bark park", "a dog barks"], dict(kind="sfx",
         source="dog bark", scene="park", instrument=None))
    b = (0.1 * torch.randn(1, T, generator=g), ["rain street", "dog bark park"], dict(kind="sfx", source="rain",
         scene="street", instrument=None, onsets=[0.5]))
    snrs, starts = set(), set()
    for k in range(300):
        y, captions, labels = mix_clips(a, b, np.random.default_rng([0, k]))
        s, start = labels["mix"]["snr_db"], labels["mix"]["start"]
        snrs.add(s), starts.add(start)
        basis = torch.stack([a[0][0], torch.nn.functional.pad(b[0][0], (start, 0))[:T]], 1).double()  # [T, 2]
        gains = torch.linalg.lstsq(basis, y[0].double()[:, None]).solution[:, 0]
        rms = lambda x: x.pow(2).mean().sqrt()  # noqa: E731
        assert 0 <= start <= T // 2 and (gains[0] * rms(a[0])) / (gains[1] * rms(b[0])) == pytest.approx(10 ** (s / 20))
        level = 20 * math.log10(rms(y))
        assert y.abs().max() <= 0.99 + 1e-6 and abs(level - round(level)) < 1e-4 and -35 <= round(level) < -15
    assert snrs == set(range(-5, 5)) and min(starts) < 0.05 * T and max(starts) > 0.45 * T
    assert captions == ["dog bark park rain street", "dog bark park", "a dog barks rain street",
                        "a dog barks dog bark park"]  # mix_text: a pair of equal captions is kept once
    union = dict(kind="sfx", source=["dog bark", "rain"], scene=["park", "street"], instrument=None, onsets=[0.5])
    assert {k: v for k, v in labels.items() if k != "mix"} == union
    y2, _, labels2 = mix_clips(a, b, np.random.default_rng([0, 299]))
    assert torch.equal(y, y2) and labels2 == labels
    assert not torch.equal(y, mix_clips(a, b, np.random.default_rng([1, 299]))[0])
    spike = (torch.zeros(1, T).index_fill_(1, torch.tensor([10]), 1.0), ["click"], {})  # crest factor sqrt(T)
    assert mix_clips(spike, b, np.random.default_rng(0))[0].abs().max() == pytest.approx(0.99)  # clipped: peak 0.99
    with pytest.raises(ValueError, match="cannot mix clips of shapes"):
        mix_clips(a, (b[0][:, :10], b[1], b[2]), np.random.default_rng(0))

# ----------------------------------------------------------------------------- datasets


def test_builtin_dataset():
    train, valid = BuiltinDataset(4, duration=0.5), BuiltinDataset(4, duration=0.5, split="valid")
    item = train[1]
    c = make_clip(1, duration=0.5)
    assert item["wav"].shape == (1, 8000) and item["text"] in (c["tags"], c["sentence"])
    assert item["labels"] == c["labels"]
    assert torch.equal(train[1]["wav"], item["wav"]) and train[1]["text"] == item["text"]
    assert all(not torch.equal(train[i]["wav"], valid[j]["wav"]) for i in range(4) for j in range(4))
    texts = [train[i]["text"] for i in range(4)] + [BuiltinDataset(12, duration=0.1)[i]["text"] for i in range(12)]
    assert any(t == make_clip(i % 12, duration=0.1)["tags"] for i, t in enumerate(texts[4:]))  # both caption styles
    assert any(t == make_clip(i % 12, duration=0.1)["sentence"] for i, t in enumerate(texts[4:]))
    batch = next(iter(torch.utils.data.DataLoader(train, batch_size=4, collate_fn=collate)))
    assert batch["wav"].shape == (4, 1, 8000) and len(batch["text"]) == 4 and len(batch["labels"]) == 4
    with pytest.raises(ValueError, match="split='test'"):
        BuiltinDataset(4, split="test")
    with pytest.raises(ValueError, match="seed=2147483648"):
        BuiltinDataset(4, seed=2**31)


@pytest.fixture
def folder(tmp_path):
    """A good stereo 44.1 kHz file (2 s), a too-short one (0.3 s), a corrupt one, with both kinds of sidecars."""
    t = np.arange(int(2 * 44100)) / 44100
    sf.write(str(tmp_path / "good.wav"), np.stack([np.sin(2 * np.pi * 440 * t)] * 2, 1) * 0.5, 44100)
    sf.write(str(tmp_path / "short.wav"), np.zeros(int(0.3 * 16000)), 16000)
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEjunk" + bytes(100))
    for name, caption in [("good", ["a tone", "sine tone"]), ("short", "silence"), ("corrupt", "broken")]:
        (tmp_path / f"{name}.json").write_text(json.dumps({"description": caption, "bpm": 120}))
        (tmp_path / f"{name}.txt").write_text(caption if isinstance(caption, str) else caption[0])
    return tmp_path


def test_folder_dataset_simple_form(folder, capsys):
    ds = FolderDataset(str(folder), 16000, duration=1.0)
    out = capsys.readouterr().out  # one line at start-up names the skipped files and why
    assert out == (f"FolderDataset {folder}: 1 audio file, 1 with captions, 2 skipped (corrupt.wav: unreadable, "
                   "short.wav: too short, 0.30 s < 1.0 s), 1 resampled 44100 -> 16000 Hz\n")
    assert len(ds) == 1 and ds.summary == out.strip()
    item = ds[0]
    assert item["wav"].shape == (1, 16000) and item["text"] in ("a tone", "sine tone")  # .json before .txt
    basis = np.stack([np.sin(2 * np.pi * 440 * np.arange(16000) / SR), np.cos(2 * np.pi * 440 * np.arange(16000) / SR)])
    fit = np.linalg.lstsq(basis.T, item["wav"][0].numpy(), rcond=None)[0] @ basis  # the 440 Hz sine, any phase
    assert np.abs(fit - item["wav"][0].numpy()).max() < 5e-3  # to the edges: the crop was read with context
    assert item["labels"]["bpm"] == 120 and item["labels"]["path"].endswith("good.wav")
    assert torch.equal(ds[0]["wav"], item["wav"])  # crops: a function of (seed, index, epoch)
    ds.epoch = 1
    assert not torch.equal(ds[0]["wav"], item["wav"])
    padded = FolderDataset(str(folder), 16000, duration=1.0, pad=True, verbose=False)
    assert len(padded) == 2 and all(padded[i]["wav"].shape == (1, 16000) for i in range(2))
    assert padded.summary.endswith("1 zero-padded to 1.0 s") and capsys.readouterr().out == ""  # verbose=False
    whole = FolderDataset(str(folder), 8000, channels=2)  # duration=None: whole files
    assert {tuple(whole[i]["wav"].shape) for i in range(len(whole))} == {(2, 16000), (2, 2400)}


def test_folder_dataset_summary_counts_captions_and_names_the_uncaptioned(tmp_path, capsys):
    """A clip without a caption trains as the null condition; the start-up line says which (3 names, then
    'and N more'), and counts the files that will be resampled or zero-padded. 7 clips: 2 captioned (.txt; .json
    whose "description" is empty falls back to the .txt), 5 not (no sidecar, an empty .txt, a .json without
    "description"), 3 at 44.1 kHz, 2 shorter than the 1 s crop."""
    specs = [("a", 44100, 2.0, "txt"), ("b", 16000, 0.5, "json+txt"), ("c", 44100, 2.0, None),
             ("d", 16000, 0.5, "empty txt"), ("e", 48000, 2.0, "json"), ("f", 16000, 2.0, None),
             ("sub/g", 16000, 2.0, None)]
    for stem, sr, seconds, sidecar in specs:
        (tmp_path / stem).parent.mkdir(exist_ok=True)
        sf.write(str(tmp_path / f"{stem}.wav"), np.zeros(int(seconds * sr)), sr)
        if sidecar in ("txt", "json+txt", "empty txt"):
            (tmp_path / f"{stem}.txt").write_text("" if sidecar == "empty txt" else f"caption {stem}")
        if sidecar in ("json", "json+txt"):
            (tmp_path / f"{stem}.json").write_text(json.dumps({"description": "", "bpm": 90}))
    ds = FolderDataset(str(tmp_path), 16000, duration=1.0, pad=True)
    assert capsys.readouterr().out == (
        f"FolderDataset {tmp_path}: 7 audio files, 2 with captions (5 without: c.wav, d.wav, e.wav and 2 more train "
        "as the null condition), 3 resampled 44100/48000 -> 16000 Hz, 2 zero-padded to 1.0 s\n")
    assert [os.path.relpath(p, tmp_path) for p in ds.uncaptioned] == ["c.wav", "d.wav", "e.wav", "f.wav", "sub/g.wav"]
    assert [ds[i]["text"] for i in range(len(ds))] == ["caption a", "caption b", "", "", "", "", ""]
    assert ds[1]["labels"]["bpm"] == 90  # the .json's other fields are kept when its caption comes from the .txt


@pytest.mark.parametrize("name", ["data.jsonl", "data.jsonl.gz"])
def test_folder_dataset_manifest_checks_files_at_start_up(folder, name, capsys):
    """A manifest's missing, unreadable and too-short files are found at start-up (sf.info on each entry,
    its own duration, not the manifest's), named in the summary and skipped: nothing is left to fail mid-training."""
    lines = [json.dumps({"path": p, "duration": d, "sample_rate": sr}) for p, d, sr in
             [("good.wav", 2.0, 44100), (str(folder / "short.wav"), 3.0, 16000), ("corrupt.wav", 3.0, 44100),
              ("gone.wav", 3.0, 16000)]]  # short.wav claims 3 s: it holds 0.3 s
    with (gzip.open if name.endswith(".gz") else open)(folder / name, "wt") as fp:  # relative paths: to the manifest
        fp.write("\n".join(lines) + "\n")
    ds = FolderDataset(str(folder), 16000, duration=1.0)  # finds the manifest, ignores the .txt files
    assert capsys.readouterr().out == (f"FolderDataset {folder / name}: 1 audio file, 1 with captions, 3 skipped "
                                       "(short.wav: too short, 0.30 s < 1.0 s, corrupt.wav: unreadable, gone.wav: "
                                       "not found), 1 resampled 44100 -> 16000 Hz\n")
    assert [os.path.basename(p) for p, _, _ in ds.files] == ["good.wav"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no file is found bad mid-run any more
        assert ds[0]["wav"].shape == (1, 16000) and ds[0]["text"] in ("a tone", "sine tone")


def test_folder_dataset_skips_a_file_that_fails_mid_run(folder):
    """A file that breaks after start-up is skipped with a warning in FolderDataset's words, the reason in
    load_audio's (no 'remove it' there: the reason is shared with sample.py); the next file stands in."""
    ds = FolderDataset(str(folder), 16000, duration=1.0, pad=True, verbose=False)
    (folder / "good.wav").write_bytes(b"RIFF garbage")
    pattern = r"^skipping .*good.wav: cannot read audio file .*: convert it to WAV or FLAC$"
    with pytest.warns(UserWarning, match=pattern) as record:
        item = ds[0]
    assert len(record) == 1
    assert item["labels"]["path"].endswith("short.wav") and item["wav"].shape == (1, 16000)

# ----------------------------------------------------------------------------- sampling, tags and metadata captions

# a skewed manifest: (group, caption, caption-file fields, manifest weight, seconds, how many files);
# "speech" outnumbers the others, and the last file holds it only in a field that is not its tags
# (keywords): no tag of it
SKEWED = [("speech", "speech", {}, 0.5, 0.2, 12), ("dog", "dog bark", {}, 1, 0.4, 6),
          ("bird", "bird chirp", {}, 3, 0.2, 2),
          ("room", "a quiet room", {"keywords": "speech"}, None, 0.2, 1)]


@pytest.fixture
def skewed(tmp_path):
    """21 files in AudioCraft's format: data.jsonl (path, duration, weight) + a .json sidecar each; the first word of
    file k of a group is named group + k (speech0.wav, ...)."""
    lines = []
    for group, caption, fields, weight, seconds, count in SKEWED:
        for k in range(count):
            name = f"{group}{k}.wav"
            sf.write(str(tmp_path / name), np.full(int(seconds * 8000), 0.1), 8000)
            (tmp_path / name).with_suffix(".json").write_text(json.dumps(dict(description=caption, **fields)))
            lines.append(json.dumps(dict(path=name, duration=seconds, sample_rate=8000, weight=weight)))
    (tmp_path / "data.jsonl").write_text("\n".join(lines) + "\n")
    return tmp_path


def group(path):
    """'dir/speech11.wav' -> 'speech'."""
    return os.path.basename(path).split(".")[0].rstrip("0123456789")


def group_shares(ds, n=3000):
    """{group: share of n items} of a sampling FolderDataset (items 0..n-1 of epoch 0), and the expected shares."""
    drawn = [group(ds[i]["labels"]["path"]) for i in range(n)]
    expected = {}
    for (path, _, _), p in zip(ds.files, ds.sampling_probabilities()):
        expected[group(path)] = expected.get(group(path), 0) + p
    return {g: drawn.count(g) / n for g in expected}, expected


@pytest.mark.parametrize("options,shares", [
    (dict(sample_on_weight=True), dict(speech=6, dog=6, bird=6, room=1)),  # weight x files: 0.5 x 12, 1 x 6, 3 x 2, 1
    (dict(sample_on_duration=True), dict(speech=2.4, dog=2.4, bird=0.4, room=0.2)),  # seconds x files
    (dict(sample_on_weight=True, sample_on_duration=True), dict(speech=1.2, dog=2.4, bird=1.2, room=0.2)),
    (dict(balance_tags=True), dict(speech=1, dog=1, bird=1, room=1)),  # each file: mean over its tags of 1 / n_tag
])
def test_sampling_honours_weights_durations_and_tag_balance(skewed, options, shares):
    """The probabilities are AudioCraft's scores normalised (by hand above: 'dog bark' files hold two tags of 6 files
    each, mean(1/6, 1/6) x 6 files = 1, as 12 x 1/12 for speech), and 3000 seeded draws follow them within 3 points."""
    ds = FolderDataset(str(skewed), 8000, duration=0.1, verbose=False, **options)
    drawn, expected = group_shares(ds)
    total = sum(shares.values())
    for g, share in shares.items():
        assert expected[g] == pytest.approx(share / total)
        assert abs(drawn[g] - share / total) < 0.03, (g, drawn, expected)
    again = FolderDataset(str(skewed), 8000, duration=0.1, verbose=False, **options)
    assert all(torch.equal(ds[i]["wav"], again[i]["wav"]) and ds[i]["labels"] == again[i]["labels"] for i in range(20))
    ds.epoch = 1  # a new epoch draws other files and crops
    assert [ds[i]["labels"]["path"] for i in range(20)] != [again[i]["labels"]["path"] for i in range(20)]


def test_default_is_file_by_index(skewed):
    """No option: item i is file i, its crop drawn from (seed, i, epoch), as before the options existed."""
    ds = FolderDataset(str(skewed), 8000, duration=0.1, verbose=False)
    assert not ds.sampling and [ds[i]["labels"]["path"] for i in range(21)] == [p for p, _, _ in ds.files]


def test_exclude_tags_drops_tagged_files_and_balance_evens_the_rest(skewed, capsys):
    """'speech' leaves out the 12 speech files, not the room whose keywords field says speech (a
    field other than `tags` is no tag): dog 6 of 9 files, bird 2, room 1, then balanced 1/3 each.
    The start-up lines count the excluded files and the top tags' shares."""
    ds = FolderDataset(str(skewed), 8000, duration=0.1, exclude_tags="Speech", balance_tags=True)
    first, second = capsys.readouterr().out.strip().split("\n")
    assert first == (f"FolderDataset {skewed / 'data.jsonl'}: 9 audio files, 9 with captions, 12 "
                     "excluded by tag (speech 12)")
    assert second == ("  tags (share of files before -> after exclusion -> of the draws): speech 57% "
                      "-> 0% -> 0%, bark 29% -> 67% -> 33%, dog 29% -> 67% -> 33%, bird 10% -> 22% "
                      "-> 33%, chirp 10% -> 22% -> 33%, quiet 5% -> 11% -> 33%")  # excluded first
    assert all("speech" not in words for words in [ds.tags[p] for p, _, _ in ds.files])
    drawn, expected = group_shares(ds, 2000)
    assert expected == pytest.approx(dict(dog=1 / 3, bird=1 / 3, room=1 / 3))
    assert abs(drawn["dog"] - 1 / 3) < 0.03 and abs(drawn["room"] - 1 / 3) < 0.03
    plain = FolderDataset(str(skewed), 8000, duration=0.1, exclude_tags=("speech",), verbose=False)
    assert len(plain) == 9 and not plain.sampling  # exclusion alone keeps item i = file i


def test_tags_field_is_what_exclusion_and_balance_read(skewed):
    """A `tags` field in the caption file is the file's tag set (a list, or a comma-separated
    string): exclusion and balancing read it, not the caption's words."""
    for k in range(6):  # the dog files: tagged "animal"; captions unchanged ("dog bark")
        (skewed / f"dog{k}.json").write_text(json.dumps(dict(description="dog bark",
                                                             tags="Animal, loud dog")))
    (skewed / "room0.json").write_text(json.dumps(dict(description="a quiet room",
                                                       tags=["speech", "room"])))
    ds = FolderDataset(str(skewed), 8000, duration=0.1, verbose=False, exclude_tags="speech",
                       balance_tags=True)
    assert {group(p) for p, _, _ in ds.files} == {"dog", "bird"}  # the room's tags hold speech
    assert ds.tags[str(skewed / "dog0.wav")] == {"animal", "loud dog"}
    _, expected = group_shares(ds, 10)  # dog files: mean(1/6, 1/6); bird: mean(1/2, 1/2)
    assert expected == pytest.approx(dict(dog=0.5, bird=0.5))
    # "dog" is in their captions, not in their tags field: no tag of theirs
    assert len(FolderDataset(str(skewed), 8000, verbose=False, exclude_tags="dog")) == 21
    assert len(FolderDataset(str(skewed), 8000, verbose=False, exclude_tags="loud dog")) == 15


def test_folder_dataset_metadata_captions_are_deterministic(tmp_path):
    sf.write(str(tmp_path / "a.wav"), np.zeros(800), 8000)
    (tmp_path / "a.json").write_text(json.dumps(dict(description="calm piano", bpm=90, genre="Jazz")))
    make = lambda: FolderDataset(str(tmp_path), 8000, verbose=False, merge_text_p=1, drop_desc_p=0.5)  # noqa: E731
    ds, again = make(), make()
    texts = []
    for epoch in range(8):
        ds.epoch = again.epoch = epoch
        texts.append(ds[0]["text"])
        assert again[0]["text"] == texts[-1]  # a function of (seed, file, epoch)
    assert len(set(texts)) > 2 and all("jazz" in t or "90.0" in t or t in ("calm piano.", "") for t in texts)


def test_new_options_fail_with_one_line(skewed, tmp_path):
    """Bad probabilities, weights, a manifest where every file is excluded, nothing to balance, an
    empty manifest: a ValueError naming the value and the fix."""
    assert probability("0.25") == 0.25
    for bad in ("1.5", "-0.1", "nan", "often"):
        with pytest.raises(ValueError, match=r"is not a probability: give a number in \[0, 1\]"):
            probability(bad)
    with pytest.raises(ValueError, match=r"^drop_other_p=2 is not a probability"):
        FolderDataset(str(skewed), 8000, drop_other_p=2)
    with pytest.raises(ValueError, match=r"every usable file of .* holds an excluded tag "
                                         r"\(speech, dog, bird, room\)"):
        FolderDataset(str(skewed), 8000, exclude_tags="speech,dog,bird,room", verbose=False)
    manifest = skewed / "data.jsonl"
    lines = manifest.read_text().splitlines()
    for weight, shown in ((-1, "-1"), ("heavy", "'heavy'"), (float("nan"), "nan")):
        line = json.dumps(dict(json.loads(lines[2]), weight=weight))
        manifest.write_text("\n".join(lines[:2] + [line] + lines[3:]))
        assert len(FolderDataset(str(skewed), 8000, verbose=False)) == 21  # weights unused: unchecked
        with pytest.raises(ValueError, match=rf"data.jsonl line 3: weight {shown} is not a number "
                                             ">= 0: fix it"):
            FolderDataset(str(skewed), 8000, sample_on_weight=True, verbose=False)
    manifest.write_text("\n".join(json.dumps(dict(json.loads(line), weight=0)) for line in lines))
    with pytest.raises(ValueError, match="all 21 files have weight 0: give some a weight > 0"):
        FolderDataset(str(skewed), 8000, sample_on_weight=True, verbose=False)
    for k in range(21):  # no caption, no tags field: nothing to balance
        path = skewed / f"{group(json.loads(lines[k])['path'])}{k}.json"
        path.unlink(missing_ok=True)
    for p in skewed.glob("*.json"):
        p.unlink()
    with pytest.raises(ValueError, match=r"^balance_tags: no file of .* has a tag .*: nothing to "
                                         "balance; caption the files or drop it$"):
        FolderDataset(str(skewed), 8000, verbose=False, balance_tags=True)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "data.jsonl").write_text("\n")
    with pytest.raises(ValueError, match=r"data.jsonl lists no audio file: write one JSON line"):
        FolderDataset(str(tmp_path / "empty"), 8000)


def test_audiocraft_manifest_read_in_full(tmp_path, capsys):
    """A manifest as `python -m audiocraft.data.audio_dataset` writes it (path, duration,
    sample_rate, amplitude, weight, info_path), relative paths: the captions come from info_path
    (a JSON file elsewhere, or a zip member); a file whose length disagrees with its listed
    duration by over 10% is reported once, in the start-up line; amplitude 0 is a silent file,
    skipped; min_duration / max_duration leave files out (AudioCraft's min/max_audio_duration)."""
    audio, infos = tmp_path / "audio", tmp_path / "infos"
    audio.mkdir(), infos.mkdir()
    lines = []
    for name, seconds, listed, amplitude in [("a", 1.0, 1.0, 0.5), ("b", 2.0, 2.05, 0.5),
                                             ("trunc", 0.5, 3.0, 0.5), ("quiet", 1.0, 1.0, 0.0),
                                             ("long", 6.0, 6.0, 0.5)]:
        sf.write(str(audio / f"{name}.wav"), np.full(int(seconds * 8000), 0.1), 8000)
        (infos / f"{name}.json").write_text(json.dumps(dict(description=f"{name} sound")))
        lines.append(json.dumps(dict(path=f"audio/{name}.wav", duration=listed, sample_rate=8000,
                                     amplitude=amplitude, weight=None,
                                     info_path=f"infos/{name}.json")))
    (tmp_path / "train.jsonl").write_text("\n".join(lines) + "\n")
    ds = FolderDataset(str(tmp_path / "train.jsonl"), 8000, duration=0.25, max_duration=5.0)
    assert capsys.readouterr().out == (
        f"FolderDataset {tmp_path / 'train.jsonl'}: 3 audio files, 3 with captions, 2 skipped "
        "(audio/quiet.wav: silent (manifest amplitude 0), audio/long.wav: longer than "
        "max_duration, 6.00 s > 5.0 s), 1 not as long as the manifest says (audio/trunc.wav: "
        "3.00 s listed, 0.50 s read)\n")
    assert sorted(ds[i]["text"] for i in range(3)) == ["a sound", "b sound", "trunc sound"]
    short = FolderDataset(str(tmp_path / "train.jsonl"), 8000, min_duration=1.5, verbose=False)
    assert [os.path.basename(p) for p, _, _ in short.files] == ["b.wav", "long.wav"]


def test_split_shuffles_before_the_hold_out(tmp_path, capsys):
    """A manifest sorted by class: the hold-out is taken after a shuffle by seed, so both splits
    hold both classes; 'train' and 'valid' are disjoint and cover every file; 'all' is every file,
    shuffled; the start-up line says which split and how many files it took."""
    lines = []
    for k in range(40):
        name = f"{'dog' if k < 20 else 'rain'}{k}.wav"
        sf.write(str(tmp_path / name), np.full(800, 0.1), 8000)
        (tmp_path / name).with_suffix(".txt").write_text("dog bark" if k < 20 else "rain")
        lines.append(json.dumps(dict(path=name)))
    (tmp_path / "data.jsonl").write_text("\n".join(lines) + "\n")
    splits = {s: FolderDataset(str(tmp_path), 8000, split=s, seed=3) for s in ("train", "valid", "all")}
    out = capsys.readouterr().out.splitlines()
    assert out[0] == (f"FolderDataset {tmp_path / 'data.jsonl'} (train: 36 of 40 files, shuffled by "
                      "seed 3): 36 audio files, 36 with captions")
    names = {s: [os.path.basename(p) for p, _, _ in ds.files] for s, ds in splits.items()}
    assert len(names["valid"]) == 4 and not set(names["valid"]) & set(names["train"])
    assert sorted(names["train"] + names["valid"]) == sorted(names["all"]) and len(names["all"]) == 40
    for s in ("train", "valid"):
        assert {n.rstrip("0123456789.wav") for n in names[s]} == {"dog", "rain"}, (s, names[s])
    assert {n.rstrip("0123456789.wav") for n in names["train"][:8]} == {"dog", "rain"}
    assert names["all"] != sorted(names["all"], key=lambda n: int(n.strip("dograinwv.")))
    assert holdout(list(range(40)), 3)["valid"] == [int(n.strip("dograinwv.")) for n in names["valid"]]
    assert holdout([7], 0) == dict(train=[7], valid=[7], all=[7])  # one file: in both
    taken = splits["train"].take(6)
    assert splits["train"].describe(taken).startswith("6 clips from 6 files; tags: ")


# ----------------------------------------------------------------------------- the CLI


def test_cli_writes_clips_and_manifest(tmp_path):
    out = tmp_path / "clips"
    run = subprocess.run([sys.executable, str(ROOT / "data.py"), "--out", str(out), "--n", "3",
                          "--duration", "0.5", "--seed", "1"], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "wrote 3 clips" in run.stdout
    assert sorted(os.listdir(out)) == ["00000.json", "00000.wav", "00001.json", "00001.wav", "00002.json",
                                       "00002.wav", "data.jsonl"]
    metas = [json.loads(line) for line in (out / "data.jsonl").read_text().splitlines()]
    assert [(m["duration"], m["sample_rate"]) for m in metas] == [(0.5, SR)] * 3
    wav, sr = sf.read(metas[2]["path"], dtype="float32")
    assert sr == SR and sf.info(metas[2]["path"]).subtype == "PCM_16"
    assert np.allclose(wav, make_clip(2, seed=1, duration=0.5)["wav"], atol=1 / 32768 + 1e-6)  # 16-bit rounding
    side = json.loads((out / "00002.json").read_text())
    clip = make_clip(2, seed=1, duration=0.5)
    assert side["description"] == [clip[k] for k in ("tags", "sentence")]
    assert "mood" not in side and side["moods"] == ([clip["labels"]["mood"]] if clip["labels"]["mood"]
                                                    else [])  # AudioCraft's MusicInfo field
    assert len(FolderDataset(str(out), SR, duration=0.5)) == 3
