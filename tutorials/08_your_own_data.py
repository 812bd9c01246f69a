# %% [markdown]
# # 08 Your own data: a folder of audio, AudioGen's balance, MusicGen's captions
#
# Tutorial 07 trained a codec and an LM on the built-in clips. Real data is a folder of recordings
# with captions, rarely balanced, sometimes with more metadata than a caption. Here we prepare such
# data as the training scripts read it (`data.FolderDataset`, which `--data` of `train_codec.py` and
# `train_lm.py` builds), and as AudioGen (arXiv 2209.15352) and MusicGen (arXiv 2306.05284) prepare
# theirs:
#
# 1. your own audio: the two layouts `FolderDataset` reads, a folder read back, and the full recipe
# 2. AudioGen's data preparation: dropping a tag ("speech"), balancing the rest, the balance computed by you
# 3. MusicGen's metadata captions: a sidecar's key, bpm, genre, ... turned into text at training time
#
# The folders are written from the built-in data (`synth.make_clip`, tutorial 07 step 1) to
# `OUT/data/`; nothing is written to `runs/` or `checkpoints/`. No model is trained or loaded: what is
# checked is what the dataset hands the trainer, so there is nothing to shrink, and the fast mode
# (`TUTORIAL_FAST=1`) and the full mode are the same run of a few seconds on a CPU.
#
# Run: `python tutorials/08_your_own_data.py`, or open it as a notebook (VS Code, Jupyter +
# jupytext); `TUTORIAL_OUT=dir` moves the output folder (default `tutorials/out/`). The outputs pasted
# under the prints are exact (the clips are deterministic, every draw is seeded), up to the paths,
# shortened to `...`.

# %%
import json
import shutil
import sys
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
sys.path.insert(0, str(HERE if (HERE / "common.py").exists() else HERE / "tutorials"))
from common import OUT, listen, save  # noqa: E402

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402

from data import FolderDataset  # noqa: E402
from manifest import augment_description, music_info  # noqa: E402
from synth import make_clip  # noqa: E402

DATA = OUT / "data"  # this tutorial's folders: my_audio/, skewed_manifest/, music_meta/
shutil.rmtree(DATA, ignore_errors=True)  # a fresh start: each step writes its folder anew
sr = 16000  # the built-in data's rate, and the tiny codec's

# %% [markdown]
# ## Step 1. Your own audio, and the full recipe
#
# `--data` points both scripts at your audio instead of the built-in clips. `data.FolderDataset`
# reads two layouts:
#
# - **AudioCraft's manifest**: a `data.jsonl` (or `.jsonl.gz`) with one
#   `{"path": "a.wav", "duration": 12.3, "sample_rate": 44100, ...}` per line (paths relative to the
#   manifest), the caption in the sidecar `a.json` as `"description"` (a string, or a list of
#   which one is drawn per item, as AudioGen does). `python data.py --out DIR --n 100` writes the
#   built-in clips in this layout, a good template.
# - **a plain folder**: every `.wav/.flac/.ogg/.mp3` under it, the caption of `x.wav` in `x.txt`.
#
# Files are resampled to the codec's rate and cropped at random to the training length. At start-up
# every file is checked (its header, with `sf.info`; the manifest's own durations are not trusted)
# and one line says what will happen: how many files, how many have a caption (a clip without one
# trains as the null condition, like the 10% of batches whose prompts are all dropped for
# classifier-free guidance, tutorial 07 step 3), which were skipped and why (missing, unreadable,
# shorter than a crop: `train_codec.py` skips those, `train_lm.py` pads them with silence), how many
# get resampled or zero-padded. Below: a three-file folder of the second layout, read back.
# Target: 3 items of 1 s with their captions (assertions), and the first one, the crop the trainer
# sees, heard.

# %%
folder = DATA / "my_audio"
folder.mkdir(parents=True, exist_ok=True)
for i in range(3):
    c = make_clip(10 + i, seed=0, duration=2.0, sample_rate=44100)  # your recordings, at any rate
    sf.write(folder / f"clip{i}.wav", c["wav"], 44100)
    (folder / f"clip{i}.txt").write_text(c["sentence"])
ds = FolderDataset(str(folder), sample_rate=16000, duration=1.0)  # what --data gives train_codec.py
# FolderDataset .../data/my_audio: 3 audio files, 3 with captions, 3 resampled 44100 -> 16000 Hz
assert ds.summary.endswith(": 3 audio files, 3 with captions, 3 resampled 44100 -> 16000 Hz")
item = ds[0]
print(len(ds), "files;", tuple(item["wav"].shape), repr(item["text"]))
# 3 files; (1, 16000) 'rain falling at a park while wind rustles the leaves'
assert len(ds) == 3 and item["wav"].shape == (1, 16000) and item["text"] == (folder / "clip0.txt").read_text()
listen(item["wav"], 16000, "08_my_audio_item0.wav")  # 1 s of clip0, resampled to 16 kHz

# %% [markdown]
# Then tutorial 07's three steps (codec, LM, sampling) on it, from a shell (`--device cuda` on a GPU):
#
# ```bash
# python train_codec.py --data my_audio --out-dir runs/my_codec
# python train_lm.py --data my_audio --codec runs/my_codec/ckpt.pt --out-dir runs/my_lm --export runs/my_model
# python sample.py --model runs/my_model --prompt "a description in the style of your captions"
# ```
#
# Caveats: both scripts hold out one file in ten of your folder (the 10th, 20th, ... in sorted
# order): `train_codec.py` measures its SI-SNR and mel distance on 2 s crops of them, `train_lm.py`
# its held-out loss. With fewer than ten files the first one is both trained on and held out, so
# the held-out numbers flatter the model. The tiny presets are sized for synthetic clips; real music
# wants more (`--preset`, `--dim`, `--layers`, many more steps). `--resume` continues a run exactly,
# from its last checkpoint (every `--eval-every` steps) or from the one Ctrl-C writes after the step
# under way (one process only: under `torchrun`, the last periodic one).
#
# The README's recipe of the shipped default model (`checkpoints/`, about 30 + 55 + 60 minutes on 2
# CPU cores):
#
# ```bash
# python train_codec.py                          # tiny codec, reconstruction losses, 8000 steps -> runs/codec/ckpt.pt
# python train_codec.py --init runs/codec/ckpt.pt --out-dir runs/codec_gan --w-l1 0.1 --w-adv 4 --w-feat 4 \
#     --lr 3e-4 --steps 3000 --eval-every 500    # + a discriminator phase -> runs/codec_gan/ckpt.pt
# OMP_NUM_THREADS=1 torchrun --standalone --nproc_per_node 2 train_lm.py --codec runs/codec_gan/ckpt.pt \
#     --n-clips 4000 --batch-size 8 --steps 4000 --eval-every 500 --melody --melody-fuse sum \
#     --export checkpoints                       # tiny LM, following a melody
# ```
#
# `torchrun --nproc_per_node N` trains data-parallel (one process per core or GPU); AudioCraft's
# EnCodec recipe, with the discriminator from the first step, is
# `python train_codec.py --w-l1 0.1 --w-adv 4 --w-feat 4 --lr 3e-4 --batch-size 64 --segment 1 --disc-filters 32`
# (the EnCodec paper weighs the adversarial and feature-matching losses 3, not 4).
# RESULTS.md lists the held-out numbers these runs reach, each with the command that measures it.
# Writing into `checkpoints/` replaces the shipped model: pick another `--export` folder to keep it.

# %% [markdown]
# ## Step 2. AudioGen's data preparation: dropping a tag, balancing the rest
#
# A folder of real recordings is rarely balanced. In AudioGen's training data the "speech" label
# outnumbered all the others, so the authors removed it, for class balance: a model fed mostly
# speech spends its capacity on speech. `FolderDataset`, and with it `--data` in `train_lm.py` and
# `train_codec.py`, has two remedies:
#
# - `exclude_tags=("speech",)` (`--exclude-tags speech`) leaves out every file whose tags hold it
#   (a file's tags: the `tags` field of its caption file, a list or a comma-separated string, or
#   without one the words of its captions);
# - `balance_tags=True` (`--balance-tags`) draws files by inverse tag frequency, this repo's
#   one-flag balance: file f scores the mean over its tags t (the words of its captions, less "a",
#   "the", ...) of 1 / n_t, with n_t the number of files that hold t, so the files of each tag
#   weigh about 1 in all; item i is a file drawn with these probabilities from (seed, i, epoch).
#
# AudioCraft's `AudioDataset` also draws each item's file by a score: the manifest's per-file
# `weight` (`sample_on_weight`, `--sample-on-weight`: you up-weight a rare class by hand) times the
# file's duration in seconds (`sample_on_duration`, `--sample-on-duration`: a 10-minute recording
# is drawn more often than a 5 s one). The options multiply. With all of them off (the default)
# item i is simply file i.
#
# Below, a tiny skewed manifest in AudioCraft's layout (`data.jsonl` + a `.json` sidecar per file,
# step 1): 12 clips captioned "speech", 6 "dog bark", 2 "bird chirp", 0.5 s each. The built-in data
# has no speech, so a cat's meow (a voice with formants) stands in for it: the audio does not matter
# here, only the captions do. The bird files carry `"weight": 3` in the manifest, the fix by hand.
# Target: the start-up lines (each frequent tag's share of the files before and after exclusion,
# and of the draws); no "speech" item after exclusion; over 600 draws, the shares of the remaining
# tags within 0.06 of equal with balancing (3 standard deviations of a share of 600 draws), and
# in proportion to the file counts without; your inverse-frequency probabilities == the dataset's
# (assertions); `08_tag_balance.png` and the three sounds.

# %%
skewed = DATA / "skewed_manifest"
shutil.rmtree(skewed, ignore_errors=True)
skewed.mkdir(parents=True)
groups = {"speech": ("cat meow", [23, 32, 54, 66, 82, 86, 104, 111, 112, 115, 116, 130], 1),  # caption: (built-in
          "dog bark": ("dog bark", [21, 28, 98, 106, 108, 138], 1),  # source, its clip indices, manifest weight)
          "bird chirp": ("bird chirp", [7, 9], 3)}
lines = []
for caption, (source, indices, weight) in groups.items():
    for i in indices:
        c = make_clip(i, seed=0, duration=0.5, sample_rate=sr, kind="sfx")
        assert c["labels"]["source"] == source
        name = f"{caption.split()[0]}{i}.wav"  # speech23.wav, dog21.wav, ...
        sf.write(skewed / name, c["wav"], sr, subtype="PCM_16")
        (skewed / name).with_suffix(".json").write_text(json.dumps({"description": caption}))  # its sidecar
        lines.append(json.dumps({"path": name, "duration": 0.5, "sample_rate": sr, "weight": weight}))
(skewed / "data.jsonl").write_text("\n".join(lines) + "\n")


def shares(ds, n=600):
    """{caption: share of the items}: n drawn items if ds samples, else one epoch (item i = file i)."""
    texts = Counter(ds[i]["text"] for i in range(n if ds.sampling else len(ds)))
    return {t: texts[t] / texts.total() for t in groups}


no_speech = dict(exclude_tags=("speech",))
settings = {"plain": {}, "exclude_tags": no_speech, "exclude + duration": dict(no_speech, sample_on_duration=True),
            "balance_tags": dict(balance_tags=True), "both": dict(no_speech, balance_tags=True),
            "exclude + weights": dict(no_speech, sample_on_weight=True)}
datasets, drawn = {}, {}
for label, options in settings.items():
    print(f"--- {label}:", ", ".join(f"{k}={v}" for k, v in options.items()) or "no option")
    datasets[label] = FolderDataset(str(skewed), sample_rate=sr, duration=0.5, **options)  # prints its start-up
    drawn[label] = shares(datasets[label])
    print("  items:", ", ".join(f"{t} {s:.0%}" for t, s in drawn[label].items()))
# --- plain: no option
# FolderDataset .../skewed_manifest/data.jsonl: 20 audio files, 20 with captions
#   items: speech 60%, dog bark 30%, bird chirp 10%
# --- exclude_tags: exclude_tags=('speech',)
# FolderDataset .../skewed_manifest/data.jsonl: 8 audio files, 8 with captions, 12 excluded by tag (speech 12)
#   tags (share of files before -> after exclusion): speech 60% -> 0%, bark 30% -> 75%, dog 30% -> 75%,
#   bird 10% -> 25%, chirp 10% -> 25%
#   items: speech 0%, dog bark 75%, bird chirp 25%
# --- exclude + duration: exclude_tags=('speech',), sample_on_duration=True
# FolderDataset .../skewed_manifest/data.jsonl: 8 audio files, 8 with captions, 12 excluded by tag (speech 12)
#   tags (share of files before -> after exclusion -> of the draws): speech 60% -> 0% -> 0%, bark 30% -> 75% -> 75%,
#   dog 30% -> 75% -> 75%, bird 10% -> 25% -> 25%, chirp 10% -> 25% -> 25%
#   items: speech 0%, dog bark 74%, bird chirp 26%
# --- balance_tags: balance_tags=True
# FolderDataset .../skewed_manifest/data.jsonl: 20 audio files, 20 with captions
#   tags (share of files before -> after exclusion -> of the draws): speech 60% -> 60% -> 33%, bark 30% -> 30% -> 33%,
#   dog 30% -> 30% -> 33%, bird 10% -> 10% -> 33%, chirp 10% -> 10% -> 33%
#   items: speech 30%, dog bark 37%, bird chirp 34%
# --- both: exclude_tags=('speech',), balance_tags=True
# FolderDataset .../skewed_manifest/data.jsonl: 8 audio files, 8 with captions, 12 excluded by tag (speech 12)
#   tags (share of files before -> after exclusion -> of the draws): speech 60% -> 0% -> 0%, bark 30% -> 75% -> 50%,
#   dog 30% -> 75% -> 50%, bird 10% -> 25% -> 50%, chirp 10% -> 25% -> 50%
#   items: speech 0%, dog bark 48%, bird chirp 52%
# --- exclude + weights: exclude_tags=('speech',), sample_on_weight=True
# FolderDataset .../skewed_manifest/data.jsonl: 8 audio files, 8 with captions, 12 excluded by tag (speech 12)
#   tags (share of files before -> after exclusion -> of the draws): speech 60% -> 0% -> 0%, bark 30% -> 75% -> 50%,
#   dog 30% -> 75% -> 50%, bird 10% -> 25% -> 50%, chirp 10% -> 25% -> 50%
#   items: speech 0%, dog bark 48%, bird chirp 52%

# %% [markdown]
# Read the lines: exclusion alone keeps one item per file, so the draws are the file counts; so are
# the draws by duration here, every clip being 0.5 s long. Balancing gives each caption a third,
# speech included, or a half once speech is gone; a "dog bark" file holds two tags of 6 files each,
# mean(1/6, 1/6) = 1/6, a "bird chirp" file 1/2, so the 6 dog files weigh 1 in all, as the 2 bird
# files. The manifest's weight 3 on the bird files gives the same probabilities, hence the very
# same draws (both from (seed, i, epoch)), but you had to count the files to choose it.
# Next, the checks, and the balance computed by you.

# %%
for label, ds in datasets.items():  # what a student checks
    if "speech" in ds.exclude_tags:  # no file, hence no item, holds the tag
        assert drawn[label]["speech"] == 0 and all("speech" not in ds.tags[p] for p, _, _ in ds.files)


def caption_of(path):
    return json.loads(Path(path).with_suffix(".json").read_text())["description"]


files = {label: Counter(caption_of(p) for p, _, _ in ds.files) for label, ds in datasets.items()}  # (path, s, Hz)
for label in ("plain", "exclude_tags"):  # no sampling: one item per file, the file counts exactly
    assert drawn[label] == {t: files[label][t] / len(datasets[label]) for t in groups}
assert abs(drawn["exclude + duration"]["dog bark"] - 0.75) < 0.06  # equal durations: draws by the file counts
for label in ("balance_tags", "both", "exclude + weights"):  # the remaining tags about equal
    kept = [t for t in groups if t not in datasets[label].exclude_tags]
    assert all(abs(drawn[label][t] - 1 / len(kept)) < 0.06 for t in kept), (label, drawn[label])

ds = datasets["both"]  # inverse tag frequency, by you: score(f) = mean over f's tags t of 1 / n_t
tags = [caption_of(p).split() for p, _, _ in ds.files]  # ['dog', 'bark'], ... (no caption repeats a word)
n_t = Counter(t for ts in tags for t in ts)  # files holding each tag
score = np.array([np.mean([1 / n_t[t] for t in ts]) for ts in tags])
mine = score / score.sum()  # [8] the chance of each file to be an item
assert np.allclose(mine, ds.sampling_probabilities())
print(dict(n_t), f"-> P(a dog file) {mine[0]:.4f}, P(a bird file) {mine[-1]:.4f}")
# {'dog': 6, 'bark': 6, 'bird': 2, 'chirp': 2} -> P(a dog file) 0.0833, P(a bird file) 0.2500

fig, ax = plt.subplots(figsize=(9, 3.5), layout="constrained")
for k, t in enumerate(groups):
    ax.bar(np.arange(len(drawn)) + 0.27 * (k - 1), [d[t] for d in drawn.values()], 0.27, label=t)
ax.set_xticks(range(len(drawn)), list(drawn), fontsize=8)
ax.set(ylabel="share of the items", title="which captions the trainer sees (600 draws, or one epoch without sampling)")
ax.legend()
save(fig, "08_tag_balance.png")
for caption in groups:
    name = next(p for p, _, _ in datasets["plain"].files if Path(p).stem.startswith(caption.split()[0]))
    listen(sf.read(name)[0], sr, f"08_skewed_{caption.replace(' ', '_')}.wav")  # the "speech" one: a cat

# %% [markdown]
# ## Step 3. MusicGen's metadata captions
#
# MusicGen's music sidecars hold more than a description: `key`, `bpm`, `genre`, `moods`,
# `instrument`, `keywords`. AudioCraft's `MusicDataset` turns them into text at training time, and
# `manifest.augment_description` does it as it does (`manifest.music_info` first reads the fields as
# `MusicInfo` does: lower-cased, bpm a float, lists joined by ", "). With probability
# `merge_text_p` a caption is augmented: each field is kept with probability `drop_other_p` (in
# AudioCraft's code the chance to KEEP a field, despite its name) and written "name: value", the
# kept ones are shuffled and joined by ". ", the description is dropped with probability
# `drop_desc_p`, and what is left is joined by ". ". The model so learns to follow the description,
# the fields, or both, and a prompt may name a bpm or a key alone. Nothing kept gives "": that
# caption trains as the null condition. The flags are `train_lm.py --merge-text-p 0.25
# --drop-desc-p 0.5 --drop-other-p 0.5`, common fine-tuning values (`--merge-text-p` is 0, off, by
# default); `FolderDataset(..., merge_text_p=...)` draws each item's text from (seed, index, epoch).
# Below, one sidecar written from clip 0 of the built-in data (tutorial 07 step 1: its labels, plus
# a genre and keywords), augmented with `merge_text_p=1` so that every draw is augmented.
# Target: the captions below (exact: a seeded rng), every part a field of the sidecar or the
# description; all six fields with `drop_other_p=1`; "" when nothing is kept; the dataset's item
# text from the sidecar (assertions).

# %%
music = DATA / "music_meta"
music.mkdir(parents=True, exist_ok=True)
c = make_clip(0, seed=0, duration=2.0, sample_rate=sr)  # 'a relaxed happy plucked string melody', 61 bpm, C major
info = {"description": c["sentence"], "key": c["labels"]["key"], "bpm": c["labels"]["bpm"], "genre": "Folk",
        "moods": [c["labels"]["mood"], "relaxed"], "instrument": "Plucked String", "keywords": "slow, acoustic"}
sf.write(music / "melody.wav", c["wav"], sr, subtype="PCM_16")
(music / "melody.json").write_text(json.dumps(info))  # MusicGen's sidecar
fields = music_info(info)
print(fields)
# [('key', 'c major'), ('bpm', '61.0'), ('genre', 'folk'), ('moods', 'happy, relaxed'), ('keywords', 'slow, acoustic'),
#  ('instrument', 'plucked string')]
for seed in range(5):
    text = augment_description(info["description"], info, np.random.default_rng(seed), merge_text_p=1)  # 0.5, 0.5
    print(f"seed {seed}: {text!r}")
    assert all(part in [info["description"]] + [f"{k}: {v}" for k, v in fields] for part in text.split(". "))
# seed 0: 'a relaxed happy plucked string melody. key: c major. genre: folk. bpm: 61.0'
# seed 1: 'a relaxed happy plucked string melody. moods: happy, relaxed. bpm: 61.0. keywords: slow, acoustic'
# seed 2: 'a relaxed happy plucked string melody. instrument: plucked string. genre: folk. key: c major'
# seed 3: 'instrument: plucked string. key: c major. keywords: slow, acoustic. moods: happy, relaxed'
# seed 4: 'a relaxed happy plucked string melody. keywords: slow, acoustic. genre: folk'
full = augment_description(info["description"], info, np.random.default_rng(0), 1, drop_desc_p=0, drop_other_p=1)
assert full.startswith(info["description"] + ". ") and full.count(": ") == len(fields) == 6
assert augment_description(info["description"], info, np.random.default_rng(0), 1, 1, 0) == ""  # the null condition
texts = [augment_description(info["description"], info, np.random.default_rng([1, i]), 0.25, 0.5, 0.5)
         for i in range(4000)]  # the fine-tuning values: P(augmented) 0.25, then P(desc. dropped) 0.5, P(kept) 0.5
changed = np.mean([t != info["description"] + "." for t in texts])  # unchanged: not augmented, or nothing added
no_desc = np.mean([not t.startswith(info["description"]) for t in texts])
print(f"at 0.25/0.5/0.5: {changed:.3f} of the captions changed (0.25 (1 - 0.5^7) = {0.25 * (1 - 0.5**7):.3f}), "
      f"{no_desc:.3f} without the description (0.125)")
# at 0.25/0.5/0.5: 0.241 of the captions changed (0.25 (1 - 0.5^7) = 0.248), 0.127 without the description (0.125)
assert abs(changed - 0.25 * (1 - 0.5**7)) < 0.02 and abs(no_desc - 0.125) < 0.02

ds = FolderDataset(str(music), sample_rate=sr, duration=1.0, merge_text_p=1)  # what --merge-text-p 1 gives
texts = []
for epoch in range(3):  # a new epoch, a new caption (and crop) for the same file
    ds.epoch = epoch
    texts.append(ds[0]["text"])
    print(f"epoch {epoch}: {texts[-1]!r}")
# FolderDataset .../music_meta: 1 audio file, 1 with captions
# epoch 0: 'a relaxed happy plucked string melody. key: c major. bpm: 61.0'
# epoch 1: 'a relaxed happy plucked string melody. keywords: slow, acoustic. genre: folk. instrument: plucked string.
#  bpm: 61.0. moods: happy, relaxed'
# epoch 2: 'moods: happy, relaxed'
assert len(set(texts)) > 1 and all(p in [info["description"]] + [f"{k}: {v}" for k, v in fields]
                                   for t in texts for p in t.split(". "))
