# %% [markdown]
# # 07 Train your own model, end to end
#
# Tutorials 01-06 took the pieces apart. Here we put them back together with the repo's own scripts,
# called from Python so every result can be checked: a codec (EnCodec, arXiv 2210.13438), then a
# text-to-audio language model on its codes (AudioGen's recipe, arXiv 2209.15352, with MusicGen's
# delay pattern and optimizer, arXiv 2306.05284), then sampling with classifier-free guidance:
#
# 1. the built-in data: a clip, its captions and labels, a few clips seen and heard, a mix of two clips
# 2. training a codec with `train_codec.main`, reading its log and `eval.tsv`
# 3. training the LM on that codec with `train_lm.main`, exporting the shippable model
# 4. sampling from the export with `model.load_model` + `TextToAudio.generate`, listening to it
# 5. the Frechet audio distance (FAD), computed by you, checked against the evaluation script
# 6. your own folder of audio (`data.FolderDataset`) and the README's full recipe
# 7. AudioGen's data preparation: dropping a tag ("speech"), balancing the rest; MusicGen's metadata captions
#
# Everything goes to `OUT/run/` (codec, LM, export; step 7 writes two small folders beside it); nothing is
# written to `runs/` or `checkpoints/`.
# Both scripts run in this process, as one process: DDP starts only under `torchrun` (it sets
# WORLD_SIZE). Sizes by mode: `TUTORIAL_FAST=1` trains for tens of steps with tiny sizes (about a
# minute on a CPU; the models learn almost nothing, the plumbing is what is checked); the full mode
# is a short real run sized for a few minutes on one GPU (on a CPU it trains smaller models).
#
# Run: `python tutorials/07_train_your_own_model.py`, or open it as a notebook (VS Code, Jupyter +
# jupytext); `TUTORIAL_OUT=dir` moves the output folder (default `tutorials/out/`). The captions in
# step 1 are exact (the data is deterministic, step 1); loss values pasted under the prints come
# from fast mode on a CPU and will differ in the last digits. The assertions hold everywhere.

# %%
import json
import math
import re
import shutil
import sys
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
sys.path.insert(0, str(HERE if (HERE / "common.py").exists() else HERE / "tutorials"))
from common import FAST, OUT, ROOT, device, listen, run_script, save  # noqa: E402

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402
import torch  # noqa: E402

import train_codec  # noqa: E402
import train_lm  # noqa: E402
from checkpoint import load_codec  # noqa: E402
from data import FolderDataset  # noqa: E402
from evaluation import eval_audio, metrics  # noqa: E402
from losses import mel_spectrogram  # noqa: E402
from model import load_model  # noqa: E402
from synth import make_clip  # noqa: E402

RUN = OUT / "run"  # this tutorial's runs: codec/, lm/, model/ (the export)


def log_mel(wav, sample_rate):
    """log10 mel spectrogram [64, frames] of a waveform [T] (n_fft 1024, hop 256: the codec's eval metric)."""
    return torch.log10(1e-5 + mel_spectrogram(wav.reshape(1, 1, -1).float().cpu(), sample_rate, 1024, 256))[0]




# The sizes of each mode: fast (CI, seconds), full on a GPU (a short real run), full on a CPU (smaller).
if FAST:
    CODEC = dict(steps=40, batch=4, segment=0.5, every=20, clips=4, log=1)
    LM = dict(clips=64, valid=8, duration=1.0, size=["--dim", "64", "--layers", "2", "--heads", "4"],
              steps=60, batch=8, every=20, warmup=10, log=1)
elif device == "cuda":
    CODEC = dict(steps=2000, batch=16, segment=1.0, every=250, clips=16, log=10)
    LM = dict(clips=2000, valid=64, duration=3.0, size=[], steps=1500, batch=32, every=250, warmup=100, log=10)
else:
    CODEC = dict(steps=600, batch=8, segment=0.5, every=100, clips=8, log=5)
    LM = dict(clips=400, valid=32, duration=2.0, size=["--dim", "128", "--layers", "4", "--heads", "4"],
              steps=300, batch=16, every=100, warmup=30, log=5)
shutil.rmtree(RUN, ignore_errors=True)  # a fresh run: train_codec/train_lm append to an existing eval.tsv

# %% [markdown]
# ## Step 1. The built-in data
#
# Nothing to download: `synth.make_clip(i, seed)` synthesises clip i from a recipe (12 sound sources
# in 4 scenes, or a melody on piano, organ, plucked string, bass, with or without drums) and
# returns the waveform [T] at 16 kHz, two captions (AudioGen-style tags and a sentence) and the
# labels it was made from (for music: key, tempo and the notes; for sounds: source, scene, onsets).
# It is a pure function of its arguments, (i, seed, duration, sample_rate, kind): the training
# scripts, this tutorial and you see the same clips. All of them count, the caption included: the
# random draws that make the waveform depend on its length in samples, and the caption is drawn
# after them, so clip 2 reads "in the street, a siren wails" at 0.5 s and "on a busy street, a
# siren wails" at 2 s (its source and scene stay: they are drawn before anything length-dependent).
# Target: the captions below (exact), the determinism check, `07_data.png` and the four sounds.

# %%
sr, dur = 16000, 2.0
clips = [make_clip(i, seed=0, duration=dur, sample_rate=sr) for i in range(4)]
for i, c in enumerate(clips):
    print(f"clip {i}: tags {c['tags']!r:30s} sentence {c['sentence']!r}")
# clip 0: tags 'happy plucked string slow'    sentence 'a relaxed happy plucked string melody'
# clip 1: tags 'drums slow'                   sentence 'a relaxed beat played on drums'
# clip 2: tags 'siren street'                 sentence 'on a busy street, a siren wails'
# clip 3: tags 'drums fast'                   sentence 'an upbeat drum beat at 129 bpm'
labels = clips[0]["labels"]
print({k: v for k, v in labels.items() if v is not None and k != "notes"}, "notes (onset s, length s, MIDI):",
      [(round(float(s), 2), round(float(m), 2), int(p)) for s, m, p in labels["notes"]])
# {'kind': 'music', 'instrument': 'plucked string', 'mood': 'happy', 'tempo': 'slow', 'bpm': 61, 'key': 'C major',
#  'drums': False} notes (onset s, length s, MIDI): [(0.0, 0.49, 48), (0.49, 1.51, 50)]
assert clips[0]["wav"].shape == (int(dur * sr),) and np.abs(clips[0]["wav"]).max() <= 1.0
assert np.array_equal(make_clip(2, seed=0, duration=dur)["wav"], clips[2]["wav"])  # same arguments, same clip
print(repr(make_clip(2, seed=0, duration=0.5)["sentence"]))  # another duration: another caption
# 'in the street, a siren wails'

fig, axes = plt.subplots(1, 4, figsize=(15, 3), sharey=True, layout="constrained")
for ax, c in zip(axes, clips):
    ax.imshow(log_mel(torch.from_numpy(c["wav"]), sr), origin="lower", aspect="auto", cmap="magma", vmin=-5, vmax=1,
              extent=(0, dur, 0, 64))
    ax.set(title=c["tags"], xlabel="time (s)")
axes[0].set_ylabel("mel band")
fig.suptitle("four built-in clips (log mel spectrograms)")
save(fig, "07_data.png")
for i, c in enumerate(clips):
    listen(c["wav"], sr, f"07_clip{i}_{c['tags'].replace(' ', '_')}.wav")

# %% [markdown]
# Every built-in clip holds one sound source, but prompts can name two ("siren street car horn
# street"). AudioGen's answer (Sec. 3.1 of its paper) is the mixing augmentation: train on mixes of
# two clips whose captions are joined, so the model learns to render, and to separate, several
# sources at once. `data.mix_clips(a, b, rng)` is AudioCraft's recipe: an integer SNR drawn in
# [-5, 5) dB between the two parts, the second clip delayed so that it covers at least half of the
# first, the mix set to -35..-15 dBFS; the captions are joined with a space (every caption of `a`
# with every caption of `b`), the labels are the union of both. `train_lm.py` caches as many mixes
# as clips and, one step in two (`--aug-p 0.5`), trains on a whole batch of mixes.
# Target: the joined captions and labels below (exact), the overlap and level checks, `07_mix.png`
# and the three sounds.

# %%
from data import mix_clips  # noqa: E402

a, b = (make_clip(i, seed=0, duration=dur, kind="sfx") for i in (31, 15))  # two sounds of the street
part = lambda c: (torch.from_numpy(c["wav"])[None], [c["tags"], c["sentence"]], c["labels"])  # noqa: E731
mix, captions, mix_labels = mix_clips(part(a), part(b), np.random.default_rng(0))  # [1, T], 4 captions, labels
print(f"{a['tags']!r} + {b['tags']!r} -> {captions[0]!r}; {captions[3]!r}")
print({k: mix_labels[k] for k in ("source", "scene", "mix")})
# 'siren street' + 'car horn street' -> 'siren street car horn street'; 'in the street, a siren wails a car horn
#  honking in the street with traffic in the background'
# {'source': ['siren', 'car horn'], 'scene': 'street', 'mix': {'snr_db': 3, 'start': 10192}}
snr, start = mix_labels["mix"]["snr_db"], mix_labels["mix"]["start"]
assert captions[0] == f"{a['tags']} {b['tags']}" and mix_labels["source"] == ["siren", "car horn"]
assert -5 <= snr < 5 and 0 <= start <= mix.shape[-1] // 2  # the car horn covers at least half of the siren
level = 20 * math.log10(mix.pow(2).mean().sqrt().item())
assert -35 - 0.1 <= level < -15 + 0.1, level  # dBFS (a peak above 0.99 would have lowered it a little)

fig, axes = plt.subplots(1, 3, figsize=(15, 3), sharey=True, layout="constrained")
for ax, w, title in zip(axes, [a["wav"], b["wav"], mix[0].numpy()],
                        [a["tags"], f"{b['tags']} (delayed {start / sr:.2f} s in the mix)",
                         f"the mix, SNR {snr} dB: {captions[0]!r}"]):
    ax.imshow(log_mel(torch.as_tensor(w), sr), origin="lower", aspect="auto", cmap="magma", vmin=-5, vmax=1,
              extent=(0, dur, 0, 64))
    ax.set(title=title, xlabel="time (s)")
axes[0].set_ylabel("mel band")
save(fig, "07_mix.png")
listen(a["wav"], sr, "07_mix_a_siren.wav")
listen(b["wav"], sr, "07_mix_b_car_horn.wav")
listen(mix, sr, "07_mix.wav")

# %% [markdown]
# ## Step 2. Train the codec
#
# `train_codec.py` trains the `tiny` codec (3.7M parameters, 16 kHz, 50 frames per second, 8
# codebooks of 256 codes) on random batches of built-in clips. Its default CPU recipe uses the
# reconstruction losses only (L1 on the waveform + the multi-scale mel loss, mixed by the loss
# balancer, EnCodec Sec. 3.4) plus the commitment loss; `--w-adv 4 --w-feat 4` adds the MS-STFT
# discriminator (Sec. 3.4). It prints a line every `--log-every` steps
# (`step 5/40 | l1 0.1380 msspec 0.9679 commit 0.0093 | 4.49 steps/s`), and every `--eval-every`
# steps it measures SI-SNR (dB, higher is better) and the mel distance (lower is better) on
# held-out clips for 1, 2, 4 and 8 codebooks, appends them to `eval.tsv` (columns: step, seconds,
# then `n_q:si_snr:mel:` and the energy kept per octave band in dB, per number of codebooks), writes
# `samples/` and the checkpoint `ckpt.pt`.
# Target: the mel loss falls, `ckpt.pt` exists and loads, `07_codec_training.png`.

# %%
log = run_script(train_codec, [
    "--out-dir", str(RUN / "codec"), "--device", device, "--steps", str(CODEC["steps"]),
    "--batch-size", str(CODEC["batch"]), "--segment", str(CODEC["segment"]), "--eval-every", str(CODEC["every"]),
    "--eval-clips", str(CODEC["clips"]), "--log-every", str(CODEC["log"])])
# codec tiny: 3.68M params, 16000 Hz, 50 Hz frames, 8 x 256 codes; 1 process(es) x 4 clips of 0.5 s = ...
# step 1/40 | l1 0.2107 msspec 1.8853 commit 0.0000 | 3.71 steps/s
# ...
# eval step 40 (0.1 min): 1 cb: SI-SNR -54.63 dB mel 1.721 | ... | 8 cb: SI-SNR -53.00 dB mel 1.738   (fast)
steps, losses = [], {}
for m in re.finditer(r"^step (\d+)/\d+ \| (.*?) \| [\d.]+ steps/s", log, re.M):  # the progress lines
    steps.append(int(m[1]))
    for name, value in zip(*[iter(m[2].split())] * 2):  # "l1 0.2107 msspec 1.8853 ..." -> pairs
        losses.setdefault(name, []).append(float(value))
evals = []  # (step, {n_q: (si_snr, mel)})
for line in (RUN / "codec" / "eval.tsv").read_text().splitlines():
    step, _, *cols = line.split("\t")
    evals.append((int(step), {int(q): (float(s), float(d)) for q, s, d, _ in (c.split(":") for c in cols)}))
print(f"{len(steps)} progress lines, {len(evals)} evaluations; msspec {np.mean(losses['msspec'][:5]):.3f} "
      f"(first 5 steps) -> {np.mean(losses['msspec'][-10:]):.3f} (last 10)")
# 40 progress lines, 2 evaluations; msspec 1.449 (first 5 steps) -> 1.148 (last 10)   (fast)
assert [e[0] for e in evals] == list(range(CODEC["every"], CODEC["steps"] + 1, CODEC["every"]))
assert np.mean(losses["msspec"][-10:]) < np.mean(losses["msspec"][:5])  # it learns
codec_ckpt = RUN / "codec" / "ckpt.pt"
assert codec_ckpt.is_file() and load_codec(codec_ckpt).config.n_q == 8

fig, axes = plt.subplots(1, 3, figsize=(15, 3.5), layout="constrained")
for name in ("l1", "msspec", "commit"):
    axes[0].plot(steps, losses[name], label=name, lw=1)
axes[0].set(xlabel="step", yscale="log", title="training losses (stdout)")
axes[0].legend()
for q in evals[0][1]:
    axes[1].plot([e[0] for e in evals], [e[1][q][0] for e in evals], "o-", label=f"{q} codebook(s)")
    axes[2].plot([e[0] for e in evals], [e[1][q][1] for e in evals], "o-", label=f"{q} codebook(s)")
axes[1].set(xlabel="step", ylabel="dB", title="held-out SI-SNR (eval.tsv), higher is better")
axes[2].set(xlabel="step", title="held-out mel distance (eval.tsv), lower is better")
axes[2].legend()
save(fig, "07_codec_training.png")

# %% [markdown]
# ## Step 3. Train the language model on the codec
#
# `train_lm.py --codec ckpt.pt` first encodes the clips ONCE into a token cache (codes [N, K, T]
# as int16, with their captions), and as many mixes of two clips (AudioGen's mixing augmentation,
# `data.mix_clips`: SNR -5..4 dB, captions joined; a coin per step, `--aug-p 0.5`, takes the whole
# batch from them), then trains a sentencepiece tokenizer on the captions, then the
# LM and its text conditioner (a small T5 trained from scratch with the LM; MusicGen instead
# freezes a pretrained T5) on the delay-patterned codes (MusicGen Sec. 2.2), with the
# cross-entropy of each codebook. For classifier-free guidance one coin per step replaces every
# prompt of the batch by the null condition (p = 0.1, AudioGen). The LM models the first 4 of the
# codec's 8 codebooks (the `tiny` LM preset's n_q). `--export` writes the shippable model:
# `lm.pt`, `codec.pt`, `tokenizer.model`. Progress lines read
# `step 20/60 | loss 3.1 | ce a b c d | ppl ... | lr ... | grad ... | steps/s`; `eval.tsv` holds
# step, seconds, the mean held-out cross-entropy and one per codebook.
# A model that knows nothing predicts each of the 256 codes with probability 1/256, a loss of
# ln 256 = 5.55 nats. A fresh LM is a little worse: AudioCraft's init gives the output heads a
# std of 1/sqrt(dim) on a layer-normed input of norm sqrt(dim), so its logits are ~N(0, 1), and
# for Gaussian logits of variance s^2 the expected cross-entropy is ln(card) + s^2 / 2 = 6.05.
# Target: the first loss near 6.05, the loss falls, the exported files exist and load,
# `07_lm_training.png`.

# %%
log = run_script(train_lm, [
    "--codec", str(codec_ckpt), "--out-dir", str(RUN / "lm"), "--export", str(RUN / "model"), "--device", device,
    "--n-clips", str(LM["clips"]), "--eval-clips", str(LM["valid"]), "--duration", str(LM["duration"]), *LM["size"],
    "--steps", str(LM["steps"]), "--batch-size", str(LM["batch"]), "--eval-every", str(LM["every"]),
    "--warmup", str(LM["warmup"]), "--log-every", str(LM["log"]), "--n-samples", "1"])
# token cache: encoding 64 + 8 clips of 1.0 s -> .../run/lm/cache/tokens_....pt
# LM 0.26M + text conditioner 0.43M params (64 wide, 2 layers, 4 x 256 codes); 64 clips + 64 mixes of 50 frames; ...
# step 1/60 | loss 6.6527 | ce 7.049 6.826 5.941 6.794 | ppl 1151.6 921.8 380.5 892.5 | lr 1.00e-04 | ...   (fast)
# ...
# eval step 60 (0.0 min): held-out loss 0.8737 | ce 1.226 0.425 0.664 1.179 | ...
# exported to .../run/model: lm.pt 1.4 MB, codec.pt 7.9 MB, tokenizer.model 0.2 MB = 9.6 MB | ...
lm_steps, lm_loss, lm_ce = [], [], []
for m in re.finditer(r"^step (\d+)/\d+ \| loss ([\d.]+) \| ce ([\d. ]+?) \|", log, re.M):
    lm_steps.append(int(m[1]))
    lm_loss.append(float(m[2]))
    lm_ce.append([float(x) for x in m[3].split()])  # one per codebook
lm_evals = np.array([[float(x) for x in line.split("\t")]  # step, seconds, mean, ce per codebook
                     for line in (RUN / "lm" / "eval.tsv").read_text().splitlines()])
card = 256  # the tiny codec's codes per codebook
print(f"first loss {lm_loss[0]:.2f} (ln {card} + 1/2 = {math.log(card) + 0.5:.2f}); train loss "
      f"{np.mean(lm_loss[:5]):.2f} (first 5) -> {np.mean(lm_loss[-10:]):.2f} (last 10); "
      f"held-out {lm_evals[0, 2]:.2f} (step {lm_evals[0, 0]:.0f}) -> {lm_evals[-1, 2]:.2f} "
      f"(step {lm_evals[-1, 0]:.0f})")
# first loss 6.65 (ln 256 + 1/2 = 6.05); train loss 6.00 (first 5) -> 0.81 (last 10); held-out 1.95 (step 20)
# -> 0.87 (step 60)
# (fast: the barely trained codec uses few codes, so they are easy to predict; a real run's loss is far higher)
assert abs(lm_loss[0] - (math.log(card) + 0.5)) < 1.0  # a fresh LM: random N(0, 1) logits (one batch: noisy)
assert np.mean(lm_loss[-10:]) < np.mean(lm_loss[:5]) and lm_evals[-1, 2] < lm_evals[0, 2]
export = RUN / "model"
assert all((export / f).is_file() for f in ("lm.pt", "codec.pt", "tokenizer.model"))

fig, axes = plt.subplots(1, 2, figsize=(12, 3.5), layout="constrained")
axes[0].plot(lm_steps, lm_loss, lw=1, color="k", label="train loss (mean)")
axes[0].plot(lm_evals[:, 0], lm_evals[:, 2], "o-", color="C3", label="held-out (eval.tsv)")
axes[0].axhline(math.log(card), ls=":", color="grey", label=f"uniform guess, ln {card}")
axes[0].set(xlabel="step", ylabel="cross-entropy (nats)", title="LM loss")
axes[0].legend()
for k, ce in enumerate(np.array(lm_ce).T):
    axes[1].plot(lm_steps, ce, lw=1, label=f"codebook {k + 1}")
axes[1].set(xlabel="step", title="train cross-entropy per codebook")
axes[1].legend()
save(fig, "07_lm_training.png")

# %% [markdown]
# ## Step 4. Sample from the exported model
#
# `model.load_model(folder, device)` reads an export (or an LM checkpoint, or official AudioCraft
# files, tutorial 08) and returns the frozen model, a `TextToAudio` with `.lm`, `.conditioner`,
# `.melody` (None unless trained with `--melody`) and `.codec`. Its `generate(prompts,
# duration=..., seed=...)` is what `python sample.py --model folder --prompt ...` does after
# loading: the prompts and the null condition go through the LM as one batch of 2B rows,
# logits = uncond + cfg_coef * (cond - uncond) (cfg_coef 3), top-k 250 sampling, and the codec
# decodes the codes. It returns wav [B, C, T] in [-1, 1] on the CPU, exactly `duration` seconds
# long; the same seed gives the same audio.
# Target: the sounds `07_sample_*.wav` of the requested length, the same seed -> the same audio,
# `07_samples.png`.

# %%
model = load_model(str(export), device)  # TextToAudio: .lm, .conditioner, .melody, .codec
codec = model.codec
prompts = ["dog bark park", "happy piano slow"]
duration = LM["duration"]  # the LM's max_duration: one window
wav = model.generate(prompts, duration=duration, seed=0)  # [B, C, T]
print("wav", tuple(wav.shape), f"at {codec.sample_rate} Hz")
# wav (2, 1, 16000) at 16000 Hz   (fast; full mode: 3 s on a GPU, 2 s on a CPU)
assert wav.shape == (len(prompts), 1, round(duration * codec.sample_rate)) and wav.abs().max() <= 1
assert torch.equal(model.generate(prompts, duration=duration, seed=0), wav)

fig, axes = plt.subplots(1, len(prompts), figsize=(12, 3), sharey=True, layout="constrained")
for ax, p, w in zip(axes, prompts, wav):
    ax.imshow(log_mel(w, codec.sample_rate), origin="lower", aspect="auto", cmap="magma", vmin=-5, vmax=1,
              extent=(0, duration, 0, 64))
    ax.set(title=repr(p), xlabel="time (s)")
fig.suptitle(f"samples of the model trained here ({'fast mode: it knows almost nothing yet' if FAST else 'short run'})")
save(fig, "07_samples.png")
for p, w in zip(prompts, wav):
    name = f"07_sample_{p.replace(' ', '_')}.wav"
    listen(w, codec.sample_rate, name)
    assert sf.info(OUT / name).frames == round(duration * codec.sample_rate)

# %% [markdown]
# ### Two sources in one prompt
#
# The model trained above is too small to tell much, so here is the shipped default model
# (`checkpoints/`, trained with the mixing augmentation of step 1) on the mix's caption,
# "siren street car horn street", next to each source prompted alone and to the real mix of step 1
# through the model's codec (the best any LM on this codec can do). By ear and by eye one clip
# tells little; `python evaluation/eval_audio.py --two-source` counts, with a detector per source
# over many clips, how often both sources are present (RESULTS.md has its numbers, with and
# without the mixing augmentation).
# Target: `07_two_sources.png`: the siren's sweeping harmonics and the horn's steady ones in one clip
# (by eye, and by ear: the four sounds), the same seed -> the same audio.

# %%
shipped = load_model(str(ROOT / "checkpoints"), device)
two_prompts = [a["tags"], b["tags"], captions[0]]  # each source alone, then both
two_wav = shipped.generate(two_prompts, duration=dur, seed=0).cpu()  # [3, 1, T]
shipped_codec = shipped.codec  # checkpoints/codec.pt, not the codec trained in step 2
coded = shipped_codec.decode(shipped_codec.encode(mix[None].to(device), n_q=shipped.lm.config.n_q)).cpu()  # [1, 1, T]
assert two_wav.shape == (3, 1, round(dur * shipped_codec.sample_rate)) and coded.shape[-1] == mix.shape[-1]
assert torch.equal(shipped.generate(two_prompts, duration=dur, seed=0).cpu(), two_wav)  # same seed, same audio

fig, axes = plt.subplots(1, 4, figsize=(16, 3), sharey=True, layout="constrained")
for ax, w, title in zip(axes, [*two_wav, coded[0]], [*map(repr, two_prompts), "the real mix through the codec"]):
    ax.imshow(log_mel(w, shipped_codec.sample_rate), origin="lower", aspect="auto", cmap="magma", vmin=-5, vmax=1,
              extent=(0, dur, 0, 64))
    ax.set(title=title, xlabel="time (s)")
axes[0].set_ylabel("mel band")
fig.suptitle("the shipped model: each source alone, both in one prompt, and the real mix")
save(fig, "07_two_sources.png")
for w, name in zip([*two_wav, coded[0]], ["siren", "car_horn", "both", "real_mix_through_codec"]):
    listen(w, shipped_codec.sample_rate, f"07_two_sources_{name}.wav")

# %% [markdown]
# ## Step 5. The Frechet audio distance, by hand
#
# How close are generated clips to real ones, as a set? FAD (Kilgour et al. 2019, arXiv
# 1812.08466; AudioGen and MusicGen report it) embeds every clip with an audio classifier, fits
# one Gaussian to the embeddings of real clips (mean mu1, covariance S1) and one to those of
# generated clips (mu2, S2), and measures the Frechet distance between the two Gaussians:
#
#     FAD = |mu1 - mu2|^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2))
#
# The first term compares where the two sets lie, the second how they spread; both are 0 for
# identical Gaussians. (S1 S2)^(1/2) is a matrix square root, and S1 S2 is not symmetric. A
# symmetric positive semi-definite (PSD) matrix gets its square root from its eigendecomposition:
# S = V diag(w) V^T gives S^(1/2) = V diag(sqrt w) V^T. With R = S1^(1/2), S1 S2 = R (R S2) and
# M = R S2 R = (R S2) R; XY and YX have the same eigenvalues, so S1 S2 has those of the symmetric
# PSD M, and Tr (S1 S2)^(1/2) = the sum of the square roots of M's eigenvalues.
#
# The embedding. The standard FAD uses VGGish (Hershey et al. 2017, arXiv 1609.09430): a VGG-like
# image network on log-mel patches of 0.96 s, trained to tag the soundtracks of millions of
# YouTube videos (AudioSet was released with its embeddings); the 128 numbers of every patch are
# a sample. This repo uses its own, one embedding per clip, the classifier of
# `evaluation/eval_audio.py` (in `evaluation/metrics.py`): a small log-mel CNN trained on the
# built-in data's labels (source, scene, instrument), whose embedding is its last convolution
# averaged over time (`Classifier`, `classify`). Two reasons: there is nothing to download
# (VGGish's weights come from a model hub), and it knows exactly the sounds the model was trained
# to make, which VGGish never heard. The price: its distances compare with each other, not with
# published FAD values. We train a clean one here (no codec renderings among its training clips,
# unlike the script's default) on 400 clips of 1 s with 16 channels in fast mode, 1000 clips with
# 64 in full mode (the script's default: 3000 clips of 3 s, 64), cached by `get_classifier` under
# `OUT/eval` (a second run reuses it).
#
# Three sets against one reference R of held-out real clips: other real clips A (the floor: two
# finite samples of one distribution are never at distance 0), the shipped model's clips for A's
# captions, and the clips of the model trained in steps 2-4 for the same captions. FAD is biased
# upwards for small sets, so compare sets of one size only.
# Target: your FAD == `metrics.fad` on the same embeddings, your S^(1/2) squared == S, the
# similarity argument checked on the eigenvalues of S1 S2 themselves (assertions); the real set A
# closest to R; `07_fad.png` and the first clip of each set, heard.

# %%
def my_fad(e1, e2):
    """Embeddings [N1, D], [N2, D] -> the Frechet distance of the Gaussians fitted to them."""
    mu1, mu2 = e1.mean(0), e2.mean(0)  # [D]
    S1, S2 = torch.cov(e1.T), torch.cov(e2.T)  # [D, D], unbiased (divided by N - 1), as numpy.cov
    w, V = torch.linalg.eigh(S1)  # S1 = V diag(w) V^T
    root1 = V @ torch.diag(w.clamp(min=0).sqrt()) @ V.T  # S1^(1/2); round-off can leave a w just below 0
    M = root1 @ S2 @ root1  # symmetric PSD, the eigenvalues of S1 S2
    tr_sqrt = torch.linalg.eigvalsh(M).clamp(min=0).sqrt().sum()  # Tr (S1 S2)^(1/2)
    assert torch.allclose(root1 @ root1, S1, atol=1e-8)  # it is the square root
    direct = torch.linalg.eigvals(S1 @ S2).real.clamp(min=0).sqrt().sum()  # the same, from S1 S2 itself
    assert torch.allclose(direct, tr_sqrt, rtol=1e-4, atol=1e-6), (direct, tr_sqrt)
    return ((mu1 - mu2).square().sum() + S1.trace() + S2.trace() - 2 * tr_sqrt).item()


n_fad, fad_dur = (24, 1.0) if FAST else (64, LM["duration"])
clf_flags = ["--clean-classifier", "--duration", str(fad_dur)] + (
    ["--fast", "--train-clips", "400", "--epochs", "8", "--width", "16"] if FAST else ["--train-clips", "1000"])
settings = metrics.classifier_settings(eval_audio.parse_args(clf_flags))  # sizes, seed, ...: the cache key
clf, acc = metrics.get_classifier(settings, str(OUT / "eval"), device)  # trained once, then reused
print("classifier held-out accuracy: " + ", ".join(f"{k} {100 * v:.0f}%" for k, v in acc.items()))
real = [make_clip(i, metrics.EVAL_SEED, fad_dur) for i in range(2 * n_fad)]  # held out from all training
captions_a = [c["tags"] for c in real[:n_fad]]
sets = {"real clips A": torch.stack([torch.from_numpy(c["wav"]) for c in real[:n_fad]]),  # [n, T]
        "shipped model": shipped.generate(captions_a, duration=fad_dur, seed=0)[:, 0],
        "model trained here": model.generate(captions_a, duration=fad_dur, seed=0)[:, 0]}
assert shipped_codec.sample_rate == codec.sample_rate == metrics.SR  # else: audio.resample to the classifier's
emb_r = metrics.classify(clf, torch.stack([torch.from_numpy(c["wav"]) for c in real[n_fad:]]))[0]  # [n, D]
embs = {name: metrics.classify(clf, w)[0] for name, w in sets.items()}  # [n, D] float64 each
print(f"{n_fad} clips of {fad_dur:g} s per set, embeddings of {emb_r.shape[1]}; FAD to the reference R:")
fads = {}
for name, e in embs.items():
    fads[name] = my_fad(e, emb_r)
    library = metrics.fad(e, emb_r)
    print(f"  {name:20s} yours {fads[name]:8.3f}   metrics.fad {library:8.3f}")
    assert math.isclose(fads[name], library, rel_tol=1e-6, abs_tol=1e-9)
# 24 clips of 1 s per set, embeddings of 16; FAD to the reference R:       (fast mode, CPU)
#   real clips A         yours    1.765   metrics.fad    1.765
#   shipped model        yours    4.054   metrics.fad    4.054
#   model trained here   yours   11.968   metrics.fad   11.968
# (the model trained in fast mode makes one kind of noise for every caption: its clips sit in one
#  corner of `07_fad.png`, far from the spread of the real ones)
assert fads["real clips A"] < min(fads["shipped model"], fads["model trained here"])
for name, w in sets.items():
    listen(w[0], codec.sample_rate, f"07_fad_{name.replace(' ', '_')}_0.wav")

everything = torch.cat([emb_r, *embs.values()])  # [4n, D]
centre = everything.mean(0)
axes2d = torch.linalg.svd(everything - centre, full_matrices=False).Vh[:2]  # [2, D]: the first principal axes
fig, ax = plt.subplots(figsize=(6.5, 5))
for (name, e), marker in zip({"reference R": emb_r, **embs}.items(), "o^sx"):
    xy = (e - centre) @ axes2d.T  # [n, 2]
    ax.scatter(xy[:, 0], xy[:, 1], marker=marker, alpha=0.6,
               label=name + ("" if name == "reference R" else f" (FAD {fads[name]:.2f})"))
ax.set(xlabel="principal axis 1", ylabel="principal axis 2",
       title="classifier embeddings of real and generated clips")
ax.legend(fontsize=8)
save(fig, "07_fad.png")

# %% [markdown]
# ## Step 6. Your own audio, and the full recipe
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
# classifier-free guidance), which
# were skipped and why (missing, unreadable, shorter than a crop: `train_codec.py` skips those,
# `train_lm.py` pads them with silence), how many get resampled or zero-padded. Below: a three-file
# folder of the second layout, read back. Target: 3 items of 1 s with their captions (assertions).

# %%
folder = RUN / "my_audio"
folder.mkdir(parents=True, exist_ok=True)
for i in range(3):
    c = make_clip(10 + i, seed=0, duration=2.0, sample_rate=44100)  # your recordings, at any rate
    sf.write(folder / f"clip{i}.wav", c["wav"], 44100)
    (folder / f"clip{i}.txt").write_text(c["sentence"])
ds = FolderDataset(str(folder), sample_rate=16000, duration=1.0)  # what --data gives train_codec.py
# FolderDataset .../run/my_audio: 3 audio files, 3 with captions, 3 resampled 44100 -> 16000 Hz
assert ds.summary.endswith(": 3 audio files, 3 with captions, 3 resampled 44100 -> 16000 Hz")
item = ds[0]
print(len(ds), "files;", tuple(item["wav"].shape), repr(item["text"]))
# 3 files; (1, 16000) 'rain falling at a park while wind rustles the leaves'
assert len(ds) == 3 and item["wav"].shape == (1, 16000) and item["text"] == (folder / "clip0.txt").read_text()

# %% [markdown]
# Then the same three commands as above, from a shell (`--device cuda` on a GPU):
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
# ## Step 7. AudioGen's data preparation: dropping a tag, balancing the rest
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
# step 6): 12 clips captioned "speech", 6 "dog bark", 2 "bird chirp", 0.5 s each. The built-in data
# has no speech, so a cat's meow (a voice with formants) stands in for it: the audio does not matter
# here, only the captions do. The bird files carry `"weight": 3` in the manifest, the fix by hand.
# Target: the start-up lines (each frequent tag's share of the files before and after exclusion,
# and of the draws); no "speech" item after exclusion; over 600 draws, the shares of the remaining
# tags within 0.06 of equal with balancing (3 standard deviations of a share of 600 draws), and
# in proportion to the file counts without; your inverse-frequency probabilities == the dataset's
# (assertions); `07_tag_balance.png` and the three sounds.

# %%
skewed = OUT / "skewed_manifest"
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
tags = [set(caption_of(p).split()) for p, _, _ in ds.files]  # {'dog', 'bark'}, ...
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
save(fig, "07_tag_balance.png")
for caption in groups:
    name = next(p for p, _, _ in datasets["plain"].files if Path(p).stem.startswith(caption.split()[0]))
    listen(sf.read(name)[0], sr, f"07_skewed_{caption.replace(' ', '_')}.wav")  # the "speech" one: a cat

# %% [markdown]
# ### MusicGen's metadata captions
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
# Below, one sidecar written from clip 0 of step 1 (its labels, plus a genre and keywords),
# augmented with `merge_text_p=1` so that every draw is augmented.
# Target: the captions below (exact: a seeded rng), every part a field of the sidecar or the
# description; all six fields with `drop_other_p=1`; "" when nothing is kept; the dataset's item
# text from the sidecar (assertions).

# %%
from manifest import augment_description, music_info  # noqa: E402

music = OUT / "music_meta"
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

# %% [markdown]
# ## Errata and notes
#
# - The progress lines are parsed from stdout (steps 2, 3): they are the only record of the
#   training losses. If the scripts' line format changes, the regular expressions above must too;
#   `eval.tsv` is the stable record.
# - `eval.tsv` is appended to, also by a fresh run into an existing `--out-dir` (for `--resume`):
#   that is why this tutorial deletes `OUT/run` first.
# - In fast mode the codec's SI-SNR is far below 0 dB (its output is not yet correlated with the
#   input) and the LM has learnt little more than which codes are frequent: the samples are noise,
#   and the LM's loss falls far lower than a real run's because that codec uses only a few codes.
#   In a trained model the first codebook is the easiest to predict and the later (residual) ones
#   the hardest: tutorial 05 step 6 measures it on the shipped model. RESULTS.md has the numbers
#   of the full recipe (step 6).
# - The LM's `max_duration` is its training clip length (`--duration`); `TextToAudio.generate` goes
#   past it by sliding windows that hop by `extend_stride` (tutorial 06).
