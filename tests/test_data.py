"""
Tests for synth.py and data.py: the clip generator (determinism, format, captions vs labels, coverage, melody pitch
by FFT), resampling and loading, AudioGen's mixing augmentation (SNR, overlap, level, captions, labels), FolderDataset
on both folder forms with a corrupt and a too-short file (its start-up line: captions, skipped files, resampling,
padding), its sampling options on a manifest with a skewed tag distribution (manifest weights, durations, tag
balance, tag exclusion: sampled shares and the start-up lines), MusicGen's metadata captions, the one-line errors of
every new option, the CLI.
CPU, a few seconds.
Run: python -m pytest -q tests/test_data.py
"""
import gzip
import json
import math
import os
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest
import soundfile as sf
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from data import (BuiltinDataset, FolderDataset, augment_description, collate, load_audio, mix_clips,  # noqa: E402
                  music_info, parse_tags, probability, resample)
from synth import INSTRUMENTS, SCENES, SOURCES, make_clip  # noqa: E402

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


def test_generation_is_fast():
    """Budget: 50 ms per 5 s clip on one core (training makes clips on the fly); 4x slack for a shared machine."""
    t = time.process_time()
    for i in range(10):
        make_clip(i)
    assert (time.process_time() - t) / 10 < 0.2

# ----------------------------------------------------------------------------- resampling and loading


@pytest.mark.parametrize("sr_in,sr_out", [(44100, 16000), (16000, 32000), (48000, 16000)])
def test_resample_keeps_a_sine(sr_in, sr_out):
    x = tone(1000.0, 0.5, sr_in)
    y = resample(x, sr_in, sr_out)
    assert y.shape[-1] == math.ceil(len(x) * sr_out / sr_in)  # torchaudio's length rule
    mid = y[len(y) // 4:3 * len(y) // 4]  # away from the zero-padded ends
    ref = tone(1000.0, 0.5, sr_out)[len(y) // 4:3 * len(y) // 4]
    assert torch.allclose(mid, ref, atol=2e-3)  # same frequency, phase and amplitude
    assert resample(x, sr_in, sr_in) is x


def test_resample_removes_what_the_new_rate_cannot_hold():
    y = resample(tone(10000.0, 0.5, 32000), 32000, 16000)  # above the new Nyquist (8 kHz): must not alias to 6 kHz
    assert y[2000:-2000].abs().max() < 2e-3
    assert resample(torch.zeros(2, 3, 441), 44100, 16000).shape == (2, 3, 160)  # batch dims kept


def test_load_audio_downmixes_and_resamples(tmp_path):
    left, right = tone(440.0, 1.0, 22050), tone(440.0, 1.0, 22050, amp=0.1)
    path = str(tmp_path / "stereo.wav")
    sf.write(path, torch.stack([left, right], 1).numpy(), 22050, subtype="FLOAT")
    mono = load_audio(path, 16000)
    assert mono.shape == (1, 16000) and mono.dtype == torch.float32
    assert torch.allclose(mono[0, 4000:12000], tone(440.0, 1.0, 16000, amp=0.3)[4000:12000].float(), atol=2e-3)
    assert load_audio(path, 22050, channels=2).shape == (2, 22050)
    sf.write(str(tmp_path / "mono.wav"), left.numpy(), 22050)
    two = load_audio(str(tmp_path / "mono.wav"), 16000, channels=2)
    assert two.shape == (2, 16000) and torch.equal(two[0], two[1])
    (tmp_path / "bad.wav").write_bytes(b"RIFF garbage")
    with pytest.raises(ValueError, match="bad.wav") as error:
        load_audio(str(tmp_path / "bad.wav"), 16000)
    # neutral wording (sample.py --continuation reads files too: nothing to 'remove'); 'skipping' is FolderDataset's
    assert str(error.value).startswith("cannot read audio file ") and str(error.value).endswith(
        "): convert it to WAV or FLAC"), error.value
    with pytest.raises(FileNotFoundError, match="nope.wav"):
        load_audio(str(tmp_path / "nope.wav"), 16000)

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
    """Issue 14: a clip without a caption trains as the null condition; the start-up line says which (3 names, then
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
    """Issue 14: a manifest's missing, unreadable and too-short files are found at start-up (sf.info on each entry,
    its own duration, not the manifest's), named in the summary and skipped: nothing is left to fail mid-training."""
    lines = [json.dumps({"path": p, "duration": d, "sample_rate": sr}) for p, d, sr in
             [("good.wav", 2.0, 44100), (str(folder / "short.wav"), 3.0, 16000), ("corrupt.wav", 3.0, 44100),
              ("gone.wav", 3.0, 16000)]]  # short.wav claims 3 s: it holds 0.3 s
    with (gzip.open if name.endswith(".gz") else open)(folder / name, "wt") as fp:  # relative paths: to the manifest
        fp.write("\n".join(lines) + "\n")
    ds = FolderDataset(str(folder), 16000, duration=1.0)  # finds the manifest, ignores the .txt files
    assert capsys.readouterr().out == (f"FolderDataset {folder}: 1 audio file, 1 with captions, 3 skipped "
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

# a skewed manifest: (group, caption, sidecar fields, manifest weight, seconds, how many files); "speech" outnumbers the
# others, and the last file holds it only in a sidecar field (keywords), not in its caption
SKEWED = [("speech", "speech", {}, 0.5, 0.2, 12), ("dog", "dog bark", {}, 1, 0.4, 6),
          ("bird", "bird chirp", {}, 3, 0.2, 2), ("room", "a quiet room", {"keywords": "speech"}, None, 0.2, 1)]


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


def test_exclude_tags_drops_caption_and_label_matches_and_balance_evens_the_rest(skewed, capsys):
    """'speech' leaves out the 12 speech files and the one holding it in its keywords: dog 6 of 8 files, bird 2 of 8,
    then balanced 1/2 each. The start-up lines count the excluded files and the top tags' shares."""
    ds = FolderDataset(str(skewed), 8000, duration=0.1, exclude_tags="Speech", balance_tags=True)
    first, second = capsys.readouterr().out.strip().split("\n")
    assert first == f"FolderDataset {skewed}: 8 audio files, 8 with captions, 13 excluded by tag (speech 13)"
    assert second == ("  tags (share of files before -> after exclusion -> of the draws): speech 57% -> 0% -> 0%, "
                      "bark 29% -> 75% -> 50%, dog 29% -> 75% -> 50%, bird 10% -> 25% -> 50%, chirp 10% -> 25% -> 50%, "
                      "quiet 5% -> 0% -> 0%")  # the excluded tag first, then the 5 others most held
    assert all("speech" not in words for words in [ds.tags[p] for p, _, _ in ds.files])
    drawn, expected = group_shares(ds, 2000)
    assert set(drawn) == {"dog", "bird"} and expected == pytest.approx(dict(dog=0.5, bird=0.5))
    assert abs(drawn["dog"] - 0.5) < 0.03
    plain = FolderDataset(str(skewed), 8000, duration=0.1, exclude_tags=("speech",), verbose=False)
    assert len(plain) == 8 and not plain.sampling  # exclusion alone keeps item i = file i


def test_music_info_reads_fields_as_audiocraft():
    """MusicInfo.from_dict's preprocessing: lower-cased keywords, bpm as a float, lists split at commas and spaces,
    in MusicInfo's field order; a key listing several keys, a bpm that is not a number, empty and 'None' dropped."""
    info = dict(title="X", instrument=" Piano", keywords=["Soft", ""], moods="calm, Relaxed", genre="Jazz", bpm="90",
                key="C major", artist="a")
    assert music_info(info) == [("key", "c major"), ("bpm", "90.0"), ("genre", "jazz"), ("moods", "calm, relaxed"),
                                ("keywords", "soft"), ("instrument", "piano")]
    assert music_info(dict(key="C, G", bpm="fast", genre="None", moods=[], instrument="")) == []


def test_augment_description_writes_audiocraft_text():
    """augment_music_info_description: 'desc. name: value. name: value' (fields shuffled), metadata alone when the
    description is dropped, 'desc.' when no field is kept; the rates of merge_text_p, drop_desc_p, drop_other_p."""
    info = dict(bpm=90, genre="Jazz")
    rng = np.random.default_rng(0)
    assert augment_description("calm piano", info, rng, 1, 0, 1) in ("calm piano. bpm: 90.0. genre: jazz",
                                                                     "calm piano. genre: jazz. bpm: 90.0")
    assert augment_description("calm piano", info, rng, 1, 1, 1) in ("bpm: 90.0. genre: jazz", "genre: jazz. bpm: 90.0")
    assert augment_description("calm piano.", info, rng, 1, 0, 0) == "calm piano."  # no field kept: one period
    assert augment_description("calm piano", info, rng, 0, 1, 1) == "calm piano."  # no merge: the description stays
    assert augment_description("", {}, rng, 1, 1, 1) == ""  # nothing left: the null condition
    texts = [augment_description("calm piano", info, np.random.default_rng([1, i]), 0.25, 0.5, 0.5)
             for i in range(4000)]
    merged = [t for t in texts if t != "calm piano."]  # merged with a field kept, or the description dropped
    dropped = [t for t in texts if not t.startswith("calm piano")]
    # P(changed) = 0.25 (1 - 0.5 x 0.5^2) = 0.21875 (kept description, no field: unchanged); P(dropped) = 0.125
    assert abs(len(merged) / 4000 - 0.21875) < 0.02 and abs(len(dropped) / 4000 - 0.125) < 0.02
    assert abs(sum("bpm" in t for t in texts) / 4000 - 0.125) < 0.02  # merged x kept


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


def test_new_options_fail_with_one_line(skewed):
    """Bad tags, probabilities, weights, a manifest where every file is excluded: a ValueError naming the value and
    the fix; the trainers' flags give argparse's one-line usage error."""
    assert parse_tags(" Speech,music ") == ("speech", "music") and parse_tags("") == ()
    for bad in ("male speech", "speech,,music", "speech!", "dog-bark"):
        with pytest.raises(ValueError, match=r"is not one word of letters and digits: separate tags by commas"):
            parse_tags(bad)
    assert probability("0.25") == 0.25
    for bad in ("1.5", "-0.1", "nan", "often"):
        with pytest.raises(ValueError, match=r"is not a probability: give a number in \[0, 1\]"):
            probability(bad)
    with pytest.raises(ValueError, match=r"^drop_other_p=2 is not a probability"):
        FolderDataset(str(skewed), 8000, drop_other_p=2)
    with pytest.raises(ValueError, match=r"every usable file of .* holds an excluded tag \(speech, dog, bird, room\)"):
        FolderDataset(str(skewed), 8000, exclude_tags="speech,dog,bird,room", verbose=False)
    manifest = skewed / "data.jsonl"
    lines = manifest.read_text().splitlines()
    for weight, shown in ((-1, "-1"), ("heavy", "'heavy'"), (float("nan"), "nan")):
        manifest.write_text("\n".join(lines[:2] + [json.dumps(dict(json.loads(lines[2]), weight=weight))] + lines[3:]))
        assert len(FolderDataset(str(skewed), 8000, verbose=False)) == 21  # weights unused: not checked
        with pytest.raises(ValueError, match=rf"data.jsonl line 3: weight {shown} is not a number >= 0: fix it"):
            FolderDataset(str(skewed), 8000, sample_on_weight=True, verbose=False)
    manifest.write_text("\n".join(json.dumps(dict(json.loads(line), weight=0)) for line in lines))
    with pytest.raises(ValueError, match="all 21 files have weight 0: give some a weight > 0"):
        FolderDataset(str(skewed), 8000, sample_on_weight=True, verbose=False)


def test_trainers_draw_by_weight_and_reject_bad_flags(skewed, capsys):
    """train_lm's clips(): the training files (9 of 10) drawn by weight; the held-out ones still file by file; a bad
    flag value is argparse's one-line error; a data flag without --data says so."""
    import train_codec
    import train_lm
    args = train_lm.parser.parse_args(["--data", str(skewed), "--duration", "0.1", "--sample-on-weight",
                                       "--exclude-tags", "room"])
    names = [os.path.basename(lab["path"]) for _, _, lab in train_lm.clips(args, "train", 1000, 8000, 1)]
    capsys.readouterr()
    assert "speech9.wav" not in names and "bird1.wav" not in names and "room0.wav" not in names  # held out, excluded
    assert abs(sum(n.startswith("bird") for n in names) / 1000 - 3 / 15.5) < 0.04  # 3 of 0.5 x 11 + 6 + 3 + 1
    valid = [os.path.basename(lab["path"]) for _, _, lab in train_lm.clips(args, "valid", 3, 8000, 1)]
    assert valid == ["speech9.wav", "bird1.wav", "speech9.wav"]
    for parser, flag in ((train_lm.parser, "--merge-text-p"), (train_codec.parser, "--exclude-tags")):
        with pytest.raises(SystemExit):
            parser.parse_args([flag, "2" if "p" in flag[-2:] else "male speech"])
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert err.endswith(("argument --merge-text-p: '2' is not a probability: give a number in [0, 1]",
                             "separate tags by commas, e.g. 'speech,music' (a caption 'male speech' holds the word "
                             "'speech')"))
    with pytest.raises(SystemExit, match="^--balance-tags: the built-in data has no manifest"):
        next(train_lm.clips(train_lm.parser.parse_args(["--balance-tags"]), "train", 1, 8000, 1))


# ----------------------------------------------------------------------------- the CLI


def test_cli_writes_clips_and_manifest(tmp_path):
    out = tmp_path / "clips"
    run = subprocess.run([sys.executable, os.path.join(ROOT, "data.py"), "--out", str(out), "--n", "3",
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
    assert side["description"] == [make_clip(2, seed=1, duration=0.5)[k] for k in ("tags", "sentence")]
    assert len(FolderDataset(str(out), SR, duration=0.5)) == 3
