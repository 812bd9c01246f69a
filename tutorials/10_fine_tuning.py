# %% [markdown]
# # 10 Fine-tuning: teach the default model a new sound
#
# Tutorial 07 trained a model from scratch. Here we start from the shipped default model (`checkpoints/`) and teach
# it a sound its built-in data never had, a referee's whistle, with `train_lm.py --init checkpoints`, as AudioCraft
# fine-tunes MusicGen from the released LM (`continue_from`), once with LoRA adapters (Hu et al. 2021, arXiv
# 2106.09685: W0 + B A, B = 0 at the start, merged into W0 for the export):
#
# 1. the new sound, written with a few lines of numpy, and a folder of about 100 captioned clips
# 2. a check that tells that sound from every built-in one, before and after the codec
# 3. the default model before fine-tuning: it does not know the word
# 4. fine-tuning with `--init checkpoints --lora 16` (the defaults: lr 1e-3, 100 warm-up steps, cosine to 1e-4,
#    half the steps on the built-in data)
# 5. the fine-tuned export: the new prompts, and the old ones
#
# Everything goes to `OUT/ft/`; nothing is written to `runs/` or `checkpoints/`. Sizes by mode: `TUTORIAL_FAST=1`
# makes 12 clips of 1 s and trains 10 steps (seconds; the plumbing is what is checked); the full mode is the
# measured demonstration of RESULTS.md ("Fine-tuning: teaching the default model a new sound"): 100 clips of 3 s,
# 400 steps, about 13 minutes of training on one CPU thread (15 minutes for the whole tutorial).
#
# Run: `python tutorials/10_fine_tuning.py`, or open it as a notebook (VS Code, Jupyter + jupytext); `TUTORIAL_OUT=dir`
# moves the output folder (default `tutorials/out/`). Outputs pasted under prints come from fast mode on a CPU.

# %%
import shutil
import sys
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
sys.path.insert(0, str(HERE if (HERE / "common.py").exists() else HERE / "tutorials"))
from common import FAST, OUT, ROOT, device, listen, run_script, save  # noqa: E402

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402
import torch  # noqa: E402

import sounds  # noqa: E402
import train_lm  # noqa: E402
from evaluation.metrics import generate, token_counts  # noqa: E402
from losses import mel_spectrogram  # noqa: E402
from model import load_model  # noqa: E402
from synth import make_clip  # noqa: E402

FT = OUT / "ft"  # this tutorial's folder of clips, its run and its export
SR = 16000  # the default model's codec rate
N_CLIPS, DURATION, STEPS = (12, 1.0, 10) if FAST else (100, 3.0, 400)
shutil.rmtree(FT, ignore_errors=True)


def log_mel(wav):
    """log10 mel spectrogram [64, frames] of a waveform [T] at 16 kHz (n_fft 1024, hop 256)."""
    return torch.log10(1e-5 + mel_spectrogram(torch.as_tensor(wav).reshape(1, 1, -1).float(), SR, 1024, 256))[0]


# %% [markdown]
# ## Step 1. A new sound
#
# The built-in data (synth.py) has 12 sound sources; none is a whistle. A referee's whistle is a near-pure tone of
# about 3.2 kHz (the chamber's resonance) that the pea inside flutters at 20-30 Hz, blown 1 to 3 times. We put it
# in one of the four built-in scenes (`sounds.ambience`, 20-30 dB down, as synth.py places its sources) and caption
# it with words the model knows ("park", "beach", "a ... in the street") around the one it does not: "whistle".
# Target: `N_CLIPS` wav + txt pairs, no built-in caption says "whistle", `10_whistle.wav` and its spectrogram beside
# a bird's (the nearest built-in sound: chirps sweeping through 3-6 kHz).

# %%
WHERE = {"park": ("in the park", "in a quiet park"), "beach": ("at the beach", "on the beach"),
         "street": ("on the street", "in the street"), "room": ("in a room", "in a small room")}


def whistle(rng, n, scene):
    """n samples at 16 kHz: 1-3 blasts of 0.3-0.9 s of a 3.1-3.3 kHz tone, frequency +-31 Hz and amplitude +-20%
    fluttering at 20-30 Hz, over the scene's ambience."""
    f, flutter = rng.uniform(3100, 3300), rng.uniform(20, 30)
    t = np.arange(n) / SR
    gate = np.zeros(n)
    count = int(rng.integers(1, 4))
    for j in range(count):  # one blast starting in each of `count` slots, 10 ms attack, 20 ms release
        m = int(SR * rng.uniform(0.3, 0.9))
        a = int(rng.integers(j * n // count, max(j * n // count + 1, (j + 1) * n // count - m)))
        gate[a:a + m] = (sounds.env(m, SR, 0.01) * np.minimum(1, (m - np.arange(m)) / (0.02 * SR)))[: n - a]
    y = np.sin(2 * np.pi * (f * t + 5 / flutter * np.sin(2 * np.pi * flutter * t)))  # phase -> f +- 31 Hz
    y = y * gate * (0.8 + 0.2 * np.sin(2 * np.pi * flutter * t))
    return 0.8 * y / np.abs(y).max() + rng.uniform(0.03, 0.1) * sounds.ambience(scene, rng, n, SR)


def write_clips(folder, n, duration, seed=0):
    """n clips whistle_000.wav + whistle_000.txt, ..., in the four scenes in turn, three caption styles."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        scene = list(WHERE)[i % 4]
        where = WHERE[scene][rng.integers(2)]
        caption = (f"whistle {scene}", f"a whistle blows {where}", f"someone blows a whistle {where}")[i % 3]
        sf.write(folder / f"whistle_{i:03d}.wav", whistle(rng, int(duration * SR), scene).astype(np.float32), SR)
        (folder / f"whistle_{i:03d}.txt").write_text(caption + "\n")


CLIPS = FT / "clips"
write_clips(CLIPS, N_CLIPS, DURATION)
print(len(list(CLIPS.glob("*.wav"))), "clips;", [(CLIPS / f"whistle_00{i}.txt").read_text().strip() for i in range(3)])
# 12 clips; ['whistle park', 'a whistle blows on the beach', 'someone blows a whistle in the street']
assert len(list(CLIPS.glob("*.wav"))) == len(list(CLIPS.glob("*.txt"))) == N_CLIPS
builtin = [make_clip(i, seed=1, duration=3.0) for i in range(24 if FAST else 300)]
assert not any("whistle" in c["tags"] + c["sentence"] for c in builtin)

new_wav = sf.read(CLIPS / "whistle_000.wav")[0]
bird = next(c["wav"] for c in (make_clip(i, seed=1, duration=DURATION, kind="sfx") for i in range(1000))
            if c["labels"]["source"] == "bird chirp")
fig, axes = plt.subplots(1, 2, figsize=(12, 3), sharey=True, layout="constrained")
for ax, w, title in zip(axes, (new_wav, bird), ("the new sound: a whistle", "built-in: bird chirp")):
    ax.imshow(log_mel(w), origin="lower", aspect="auto", cmap="magma", vmin=-5, vmax=1, extent=(0, len(w) / SR, 0, 64))
    ax.set(title=title, xlabel="time (s)", ylabel="mel band")
save(fig, "10_whistle.png")
listen(new_wav, SR, "10_whistle.wav")

# %% [markdown]
# ## Step 2. A check that can tell that sound
#
# To count how often a model makes a whistle we need a detector that fires on whistles and on nothing the
# built-in data holds. The classifier of `evaluation/eval_audio.py` cannot: it knows only the 12 built-in sources.
# The whistle's signature is a steady tone in one narrow band, so: a frame (32 ms, hop 8 ms) is "whistle-like" when
# the 2.8-4.2 kHz band holds more than half its energy (frames quieter than 1% of the clip's loudest do not count);
# a clip holds a whistle when such frames last 0.2 s without a break. Birds sweep through that band, but each
# syllable lasts 40-120 ms; a clock's tick 3 ms. The band is wider than the whistle's 3.1-3.3 kHz because the tiny
# codec moves part of a pure tone's energy up to 3.6 kHz; everything the LM makes comes out of that decoder, so
# the check must hold after it.
# Target: every new clip recognised, raw and through the codec (4 codebooks); at most 1% of the built-in clips, raw
# or through it (in full mode one bird chirp of the 300 holds a 0.25 s syllable in the band, raw; none through the
# codec).

# %%
def whistle_run(wav):
    """The longest run (s) of frames whose 2.8-4.2 kHz band holds over half the frame's energy (frames above 1% of
    the clip's loudest), of a waveform [T] at 16 kHz."""
    S = torch.stft(torch.as_tensor(wav, dtype=torch.float32).reshape(-1), 512, 128, window=torch.hann_window(512),
                   return_complex=True).abs() ** 2  # [257 bins, frames]
    f = torch.fft.rfftfreq(512, 1 / SR)
    total = S[f >= 100].sum(0)  # [frames]
    on = (S[(f >= 2800) & (f <= 4200)].sum(0) > 0.5 * total) & (total > 0.01 * total.max())
    best = run = 0
    for v in on.tolist():
        run = run + 1 if v else 0
        best = max(best, run)
    return best * 128 / SR


def is_whistle(wav):
    return whistle_run(wav) >= 0.2


default = load_model(str(ROOT / "checkpoints"), device)
n_q = default.lm.config.n_q


@torch.no_grad()
def through_codec(wav):
    """[T] -> the default model's codec, its LM's n_q codebooks -> [T]."""
    x = torch.as_tensor(wav, dtype=torch.float32).reshape(1, 1, -1).to(device)
    return default.codec.decode(default.codec.encode(x, n_q=n_q))[0, 0, : x.shape[-1]].cpu()


new = [sf.read(p)[0] for p in sorted(CLIPS.glob("*.wav"))]
old = [c["wav"] for c in builtin]
rates = {}
for name, clips in (("new", new), ("built-in", old)):
    rates[f"{name}, raw"] = np.mean([is_whistle(w) for w in clips])
    rates[f"{name}, through the codec"] = np.mean([is_whistle(through_codec(w)) for w in clips])
for name, r in rates.items():
    print(f"{name}: {r:.1%} recognised")
# new, raw: 100.0% recognised
# new, through the codec: 100.0% recognised
# built-in, raw: 0.0% recognised   (full mode: 0.3%, one clip of 300)
# built-in, through the codec: 0.0% recognised
assert rates["new, raw"] == rates["new, through the codec"] == 1
assert rates["built-in, raw"] <= 0.01 and rates["built-in, through the codec"] <= 0.01

# %% [markdown]
# ## Step 3. The default model does not know the word
#
# The default model's T5 was trained here, on the built-in captions only: a word whose pieces it never saw reads as
# `<unk>` (it warns), and the model makes what the rest of the prompt asks for. `generate` below is the one
# `evaluation/eval_audio.py` uses: `sample.py`'s sampling (cfg_coef 3, top-k 250), prompts of one length per batch.
# Target: "whistle" maps to `<unk>`; (almost) none of the default model's clips for the whistle prompts is a whistle.

# %%
PROMPTS = [p for scene, w in (("park", "in the park"), ("beach", "on the beach"), ("street", "on a busy street"),
                              ("room", "inside a room"))
           for p in (f"whistle {scene}", f"a whistle blows {w}", f"someone blows a whistle {w}")]
PROMPTS = PROMPTS[:4] if FAST else PROMPTS * 4  # 12 prompts x 4 clips
GEN_S = 1.0 if FAST else 3.0


def recognised(model, prompts):
    """The share of clips generated for the prompts that the check recognises, and the clips [N, T]."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the default model's <unk> warning, once per prompt
        wav = generate(model, prompts, token_counts(model.conditioner, prompts), GEN_S, 0, dict(cfg_coef=3.0), log=lambda *a: None)
    return float(np.mean([is_whistle(w) for w in wav])), wav


tok = default.conditioner.tokenizer
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    ids = tok.encode_one("whistle park")
print(ids, "|", caught[0].message)
# [2, 4, 1] | unknown words ['whistle'] in 'whistle park' map to <unk>: the model was not trained on them
assert ids[0] == tok.unk_id
before, wav_before = recognised(default, PROMPTS)
print(f"default model: {before:.0%} of {len(PROMPTS)} clips for the whistle prompts recognised")
# default model: 0% of 4 clips for the whistle prompts recognised
assert before <= 0.2

# %% [markdown]
# ## Step 4. Fine-tune with LoRA
#
# `train_lm.py --init checkpoints` rebuilds the default model (its LM, codec, tokenizer and melody path) from its
# files with `model.load_model`, as sampling does; `--data` reads our folder (`data.FolderDataset`: `x.wav` + `x.txt`),
# holds out one file in ten and caches the codes; the new captions' pieces join the tokenizer's known ones, so
# "whistle" is read through its own pieces from now on. `--lora 16` freezes everything and adds rank-16 adapters to
# the LM's linear layers (the q, k, v and out maps of both attentions, the feed-forward pair: `lora.TARGETS`);
# the export merges them (W0 + B A), so the exported folder loads like any other. No other flag: the defaults (lr
# 1e-3 after 100 warm-up steps, cosine to 1e-4 at `--steps`, AdamW, CFG dropout 0.1), as RESULTS.md measured them.
#
# One default matters more than the others: `--replay 0.5`. A model trained on whistles alone learns that every
# prompt asks for a whistle: the gradient of each step only ever says "more whistle", and nothing pulls the weights
# back towards what the old prompts need (catastrophic forgetting). Rehearsal is the classic cure: keep training on
# some of the old data. Here a coin per step takes half the batches from the built-in data the default model
# learnt (train_lm.py encodes its clips into a second token cache), so the old prompts keep their say in the
# gradient. `--init` turns it on by itself for a model that knows the built-in captions; an official model's data is
# not here, so it stays off there. Fast mode only shrinks the sizes. Target: the trainable count printed at start-up
# (0.54M of 11.51M), the replay share, the export.

# %%
argv = ["--init", str(ROOT / "checkpoints"), "--data", str(CLIPS), "--lora", "16", "--steps", str(STEPS),
        "--out-dir", str(FT / "lora"), "--export", str(FT / "lora_model"), "--device", device]
if FAST:
    argv += ["--n-clips", "16", "--eval-clips", "4", "--duration", "1.0", "--batch-size", "4", "--warmup", "2",
             "--eval-every", "10", "--log-every", "5", "--n-samples", "1"]
else:
    argv += ["--n-clips", "200"]
log = run_script(train_lm, argv)
# LM 7.37M + text conditioner 0.46M params (...); 16 clips + 16 mixes of 50 frames (50% of the steps on the built-in
# data); ...
# trainable: 0.54M of 11.51M parameters (LoRA adapters of rank 16); AdamW state 4.1 MiB
# ...
# exported to .../ft/lora_model: lm.pt ...
assert "trainable: 0.54M of 11.51M parameters (LoRA adapters of rank 16)" in log
assert "(50% of the steps on the built-in data)" in log
assert all((FT / "lora_model" / f).is_file() for f in ("lm.pt", "codec.pt", "tokenizer.model"))

# %% [markdown]
# ## Step 5. The fine-tuned model
#
# `load_model` reads the export with nothing LoRA-specific: the adapters are in the weights. The word is known now,
# and the whistle prompts give whistles: 80% or more after the 400 steps of the full mode (RESULTS.md: 98%, and the
# full fine-tuning beside it, 83%). What it forgot is measured by the built-in prompts' adherence, `python
# evaluation/eval_audio.py --model DIR` (a few minutes), against the default model's. With replay the LoRA model
# keeps 95% of the built-in sources from tags (the default model: 98%); trained on whistles alone (`--replay 0`) it
# kept 70%, and full fine-tuning 10%: it made a whistle for almost every prompt (RESULTS.md).
# Target: "whistle" no longer maps to `<unk>`; in full mode 80% or more recognised; `10_after_*.wav`.

# %%
tuned = load_model(str(FT / "lora_model"), device)
ids = tuned.conditioner.tokenizer.encode_one("whistle park")
assert tuned.conditioner.tokenizer.unk_id not in ids
after, wav_after = recognised(tuned, PROMPTS)
print(f"fine-tuned (LoRA r=16, {STEPS} steps): {after:.0%} of {len(PROMPTS)} clips recognised (before: {before:.0%})")
# fine-tuned (LoRA r=16, 10 steps): 0% of 4 clips recognised (before: 0%)   (fast: 10 steps teach nothing; full
# mode: 98% of 48)
assert FAST or after >= 0.8

fig, axes = plt.subplots(1, 2, figsize=(12, 3), sharey=True, layout="constrained")
for ax, w, title in zip(axes, (wav_before[1], wav_after[1]), ("default model", f"after {STEPS} LoRA steps")):
    ax.imshow(log_mel(w), origin="lower", aspect="auto", cmap="magma", vmin=-5, vmax=1, extent=(0, GEN_S, 0, 64))
    ax.set(title=f"{title}: {PROMPTS[1]!r}", xlabel="time (s)")
save(fig, "10_before_after.png")
listen(wav_before[1], SR, "10_before.wav")
listen(wav_after[1], SR, "10_after.wav")

# %% [markdown]
# The same from a shell, full fine-tuning (the whole LM and its T5 train) and LoRA, then the checks:
#
# ```bash
# python train_lm.py --init checkpoints --data my_whistles --steps 400 --export runs/ft_full
# python train_lm.py --init checkpoints --data my_whistles --steps 400 --lora 16 --export runs/ft_lora
# python sample.py --model runs/ft_lora --prompt "a whistle blows in the park"
# python evaluation/eval_audio.py --model runs/ft_lora    # the old prompts: what was forgotten
# ```
