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
#
# Everything goes to `OUT/run/` (codec, LM, export) and `OUT/eval/` (the classifier of step 5); nothing is
# written to `runs/` or `checkpoints/`. Tutorial 08 then points the same scripts at your own audio and
# prepares it as AudioGen and MusicGen do.
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
import math
import re
import shutil
import sys
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
# step 1/40 | l1 0.2107 msspec 1.8853 commit 0.0000 | 2.06 steps/s
# ...
# eval step 40 (0.2 min): 1 cb: SI-SNR -60.06 dB mel 1.704 | ... | 8 cb: SI-SNR -59.74 dB mel 1.712   (fast)
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
# 40 progress lines, 2 evaluations; msspec 1.449 (first 5 steps) -> 1.220 (last 10)   (fast)
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
# step 1/60 | loss 6.0428 | ce 5.942 5.187 5.998 7.044 | ppl 380.9 178.9 402.5 1146.5 | lr 1.00e-04 | ...   (fast)
# ...
# eval step 60 (0.0 min): held-out loss 0.7761 | ce 1.518 0.527 0.594 0.465 | ...
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
# first loss 6.04 (ln 256 + 1/2 = 6.05); train loss 5.43 (first 5) -> 0.78 (last 10); held-out 2.02 (step 20)
# -> 0.78 (step 60)
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
# files, tutorial 09) and returns the frozen model, a `TextToAudio` with `.lm`, `.conditioner`,
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
#   real clips A         yours    1.762   metrics.fad    1.762
#   shipped model        yours    4.305   metrics.fad    4.305
#   model trained here   yours   12.093   metrics.fad   12.093
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
#   of the full recipe (tutorial 08, step 1).
# - The LM's `max_duration` is its training clip length (`--duration`); `TextToAudio.generate` goes
#   past it by sliding windows that hop by `extend_stride` (tutorial 06).
