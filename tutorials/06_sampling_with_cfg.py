# %% [markdown]
# # 06 Sampling with classifier-free guidance
#
# The LM of tutorial 05 gives, at every sequence step, K distributions over the next codes.
# Sampling turns them into audio: guidance makes the text matter more, and the sampling rules
# (temperature, top-k, top-p) decide how adventurous each draw is. With `model.py` (`load_model`
# and `TextToAudio.generate`, what `python sample.py` runs) and `lm.py`, on the shipped model:
#
# 1. classifier-free guidance (CFG) on one step's logits: logits = uncond + cfg_coef (cond - uncond)
# 2. temperature, top-k and top-p on one next-code distribution; one guided top-k step written by you
# 3. cfg_coef and temperature on the output: spectrograms and sounds
# 4. the same seed gives the same audio
# 5. longer than max_duration: the sliding window
# 6. continuing an audio prompt
#
# CFG comes from diffusion models (Ho & Salimans 2022, arXiv 2207.12598); AudioGen (arXiv
# 2209.15352) brought it to audio tokens, and MusicGen (arXiv 2306.05284) samples with cfg_coef = 3.
#
# Run: `python tutorials/06_sampling_with_cfg.py`, or open it as a notebook (VS Code, Jupyter +
# jupytext). `TUTORIAL_FAST=1` shrinks every step; `TUTORIAL_OUT=dir` moves the output folder
# (default `tutorials/out/`). Numbers pasted under prints do not depend on the trained weights;
# the ones that do are checked by assertions on their properties only. Every sound plays under its
# cell in a notebook (and is written to the output folder as a WAV).

# %%
import math
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
sys.path.insert(0, str(HERE if (HERE / "common.py").exists() else HERE / "tutorials"))
from common import FAST, ROOT, device, listen, save  # noqa: E402

import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from data import VALID_SEED_OFFSET  # noqa: E402
from lm import cfg_logits, sample_next_token  # noqa: E402
from losses import mel_spectrogram  # noqa: E402
from model import load_model  # noqa: E402
from patterns import build_pattern, pattern_steps, step_frames  # noqa: E402
from synth import make_clip  # noqa: E402

torch.set_grad_enabled(False)  # nothing is trained here


def spectrogram(ax, wav, title):
    """Log-mel spectrogram of wav [C, T] (n_fft 1024, hop 256, 64 mel bands) on ax, time in seconds."""
    mel = torch.log10(1e-5 + mel_spectrogram(wav[None].float().to(device), codec.sample_rate, 1024, 256))[0]
    ax.imshow(mel.cpu(), origin="lower", aspect="auto", vmin=-5, vmax=1, cmap="magma",
              extent=(0, wav.shape[-1] / codec.sample_rate, 0, mel.shape[0]))
    ax.set_title(title, fontsize=9)


def entropy(p):
    """Entropy in nats of distributions p [..., card] (0 log 0 = 0)."""
    return -(p * p.clamp_min(1e-30).log()).sum(-1)

# %% [markdown]
# ## Step 1. Classifier-free guidance on one step
#
# `model.load_model` returns the whole model, frozen and in eval mode: a `TextToAudio` whose parts
# are the LM (`.lm`), the text conditioner (`.conditioner`), the melody conditioner (`.melody`)
# and the codec (`.codec`). The shipped LM is a melody model with the 'sum' fuse: each sequence
# step also reads a melody embedding, that of the frame it writes (tutorial 05 step 1). With no
# tune given that is the null melody (pitch class C in every frame), and the model was trained with
# it on every clip without a tune: leave it out and the LM reads an input it never saw.
# `model.conditions(prompts, n_frames=...)` builds the LM's whole conditioning, as
# `TextToAudio.generate` passes it to `lm.generate`: text (`condition`, `condition_mask`) and the
# melody per frame (`frames`, `null_frames`). For CFG the LM runs every prompt twice, as ONE batch
# of 2B rows: the B conditional rows, then B null rows (the text embeddings replaced by zeros and
# the mask all False: the "no text" condition the LM learnt from condition dropout, tutorial 04;
# the melody by `null_frames`, here the same null melody). With cond and uncond the logits of the
# two halves, guidance extrapolates from uncond through cond:
#
#     logits = uncond + cfg_coef * (cond - uncond)        (`lm.cfg_logits`)
#
# cfg_coef = 1 is plain conditional sampling, 0 ignores the text, > 1 pushes further towards what
# the text changes. We take the first step of a generation: the input is step 0 (all special
# tokens), so codebook 1 of frame 0 is predicted from the text (and the null melody) alone.
# Target: cfg_coef = 1 gives cond, 0 gives uncond (assertions); the conditional rows of the 2B
# batch equal a batch of B alone and the model's own forward (`model(codes, prompts)`, which adds
# the null melody itself); `lm.generate`'s first greedy code (temperature 0) is the argmax of the
# guided logits; `06_cfg_step.png`.

# %%
model = load_model(str(ROOT / "checkpoints"), device)  # TextToAudio
lm, melody, codec = model.lm, model.melody, model.codec
c = lm.config
K, card, fr = c.n_q, c.card, c.frame_rate
print(f"LM {K} x {card} codes at {fr} Hz, max_duration {c.max_duration} s, extend_stride {c.extend_stride} s; "
      f"codec {codec.sample_rate} Hz; melody conditioner: {melody}")
prompts = ["dog bark park", "happy piano slow"]
B = len(prompts)
first_dur = 0.1  # 5 frames
conditions = model.conditions(prompts, n_frames=round(first_dur * fr))  # text and the null melody
embeds, mask = conditions["condition"], conditions["condition_mask"]  # [B, L, D] (padding zeroed), [B, L] bool
start = torch.full((2 * B, K, 1), card, device=device)  # [2B, K, 1]: step 0, the special token
condition = torch.cat([embeds, torch.zeros_like(embeds)])  # [2B, L, D]: conditional rows, then null rows
condition_mask = torch.cat([mask, torch.zeros_like(mask)])  # [2B, L]: the null rows have no token
frames = torch.cat([conditions["frames"], conditions["null_frames"]])[:, :1]  # [2B, 1, D]: step 0 writes frame 0
logits = lm.step_logits(start, condition, condition_mask=condition_mask, frames=frames)[:, :, -1]  # [2B, K, card]
cond, uncond = logits.chunk(2)  # [B, K, card] each
assert torch.allclose(cfg_logits(cond, uncond, 1.0), cond, atol=1e-5)
assert torch.equal(cfg_logits(cond, uncond, 0.0), uncond)
alone = lm.step_logits(start[:B], embeds, condition_mask=mask, frames=frames[:B])[:, :, -1]  # conditional rows alone
assert torch.allclose(alone, cond, atol=1e-4)
first = lm.generate(**conditions, duration=first_dur, cfg_coef=3.0, temperature=0)  # [B, K, 5], greedy
assert torch.equal(first[:, 0, 0], cfg_logits(cond, uncond, 3.0)[:, 0].argmax(-1))
# the model's own forward conditions itself (null melody included): same logits for codebook 1 of frame 0
assert torch.allclose(model(first, prompts)[0][:, 0, 0], cond[:, 0], atol=1e-4)
for b, prompt in enumerate(prompts):
    H = [entropy(cfg_logits(cond[b, 0], uncond[b, 0], w).softmax(-1)).item() for w in (0, 1, 3, 5)]
    print(f"{prompt!r}: entropy of codebook 1 (nats) at cfg_coef 0, 1, 3, 5: {[round(h, 2) for h in H]}")

fig, axes = plt.subplots(1, B, figsize=(13, 3.2), sharey=True, layout="constrained")
for b, ax in enumerate(axes):
    probs = {w: cfg_logits(cond[b, 0], uncond[b, 0], w).softmax(-1) for w in (0, 1, 3, 5)}  # [card] each
    top = probs[3].topk(12).indices  # the 12 most likely codes under cfg_coef = 3
    for i, (w, p) in enumerate(probs.items()):
        label = {0: "0 (uncond)", 1: "1 (cond)"}.get(w, str(w))
        ax.bar(torch.arange(12) + 0.2 * (i - 1.5), p[top].cpu(), width=0.2, label=f"cfg_coef {label}")
    ax.set(xticks=range(12), xticklabels=top.tolist(), xlabel="code (codebook 1, frame 0)",
           title=f"{prompts[b]!r}: the first code under guidance")
axes[0].set_ylabel("probability")
axes[0].legend()
save(fig, "06_cfg_step.png")

# %% [markdown]
# ## Step 2. Temperature, top-k and top-p
#
# `lm.sample_next_token` draws all K codes of a step at once, AudioCraft's rules: divide the
# logits by the temperature, softmax, then keep the k most likely codes (top-k, AudioCraft's
# default k = 250) or the smallest set whose mass reaches p (top-p, nucleus sampling, arXiv
# 1904.09751; it replaces top-k when p > 0), renormalise, draw. softmax(logits / T) is a Gibbs
# (Boltzmann) distribution, p ~ exp(-E / T) with energy E = -logits at temperature T, as in
# statistical physics: T < 1 sharpens it (lower entropy), T > 1 flattens it, and its entropy rises
# with T at every T (dH/dT = Var(E) / T^3 > 0). Note that k = 250 was chosen for MusicGen's 2048
# codes; with this model's 256 it keeps almost everything.
# The first code of step 1 can be nearly certain (silence starts many clips), so we look inside a
# held-out clip instead: its pattern sequence as the input (teacher forcing), conditional and null
# rows as one batch again (the null melody added to every step, each step that of the frame it
# writes: `patterns.step_frames`), and the guided distribution of codebook 4 (the least certain
# one, tutorial 05 step 6) at its most uncertain frame. We draw many codes from it and count the
# distinct ones.
# Target: the conditional rows equal the model's own forward (assertion); entropy rises with the
# temperature; distinct codes <= k under top-k and <= the nucleus size under top-p (assertions);
# `06_top_k_top_p.png`.

# %%
clip = make_clip(0, VALID_SEED_OFFSET, 1.0, codec.sample_rate)  # held out
codes = codec.encode(torch.from_numpy(clip["wav"])[None, None].to(device), n_q=K)  # [1, K, T]
seq, _ = build_pattern(codes, card, c.pattern, c.delays)  # [1, K, S]
clip_cond = model.conditions([clip["tags"]], n_frames=codes.shape[-1])  # text [1, L, D] and melody [1, T, D]
e, m = clip_cond["condition"], clip_cond["condition_mask"]  # [1, L, D], [1, L]
step_frame = step_frames(seq.shape[2], codes.shape[-1], c.pattern, c.delays)  # [S]: the frame each step writes
melody_steps = torch.cat([clip_cond["frames"], clip_cond["null_frames"]])[:, step_frame]  # [2, S, D]
both = lm.step_logits(torch.cat([seq, seq]), torch.cat([e, torch.zeros_like(e)]),
                      condition_mask=torch.cat([m, torch.zeros_like(m)]), frames=melody_steps)  # [2, K, S, card]
rows = pattern_steps(codes.shape[-1], K, c.pattern, c.delays)[0][K - 1] - 1  # [T]: the step predicting frame t
own = model(codes, [clip["tags"]])[0][0, K - 1]  # [T, card]: the model's own forward, NaN where untrained
trained = ~own[:, 0].isnan()  # [T]
assert torch.allclose(both[0, K - 1, rows][trained], own[trained], atol=1e-4)  # the same conditioning
guided_all = cfg_logits(both[0, K - 1, rows], both[1, K - 1, rows], 3.0)  # [T, card]: codebook K, cfg_coef 3
t_max = int(entropy(guided_all.softmax(-1)).argmax())  # the most uncertain frame
guided = guided_all[t_max]  # [card]
print(f"{clip['tags']!r}: codebook {K}, frame {t_max}, entropy {entropy(guided.softmax(-1)).item():.2f} nats")
n_draws = 2000 if FAST else 20000
settings = {"T=0.7": dict(temperature=0.7, top_k=0), "T=1": dict(temperature=1.0, top_k=0),
            "T=1.5": dict(temperature=1.5, top_k=0), "top-k 250": dict(top_k=250), "top-k 50": dict(top_k=50),
            "top-k 10": dict(top_k=10), "top-p 0.9": dict(top_p=0.9), "top-p 0.5": dict(top_p=0.5)}
g = torch.Generator(device).manual_seed(0)
stats = {}
for name, kw in settings.items():
    draws = sample_next_token(guided.expand(n_draws, 1, card), generator=g, **kw)  # [n_draws, 1]
    freq = torch.bincount(draws.flatten(), minlength=card).float() / n_draws  # [card]
    stats[name] = (int((freq > 0).sum()), abs(entropy(freq).item()))  # abs: -0.0 when one code is left
    print(f"{name:10s}: {stats[name][0]:3d} distinct codes in {n_draws} draws, entropy {stats[name][1]:.2f} nats")
    if "top_k" in kw and kw["top_k"] > 0:
        assert stats[name][0] <= kw["top_k"]
p_sorted = guided.softmax(-1).sort(descending=True).values  # [card]
nucleus = {p: int((p_sorted.cumsum(-1) < p).sum()) + 1 for p in (0.9, 0.5)}  # smallest set with mass >= p
print("nucleus sizes (top-p 0.9, 0.5):", nucleus)
assert stats["top-p 0.9"][0] <= nucleus[0.9] and stats["top-p 0.5"][0] <= nucleus[0.5]
H_T = [entropy((guided / T).softmax(-1)).item() for T in (0.5, 0.7, 1.0, 1.5, 2.0)]
assert all(h1 < h2 for h1, h2 in zip(H_T, H_T[1:]))  # a Gibbs distribution's entropy grows with T

fig, axes = plt.subplots(1, 2, figsize=(12, 3.6), layout="constrained")
for T in (0.7, 1.0, 1.5):
    axes[0].semilogy(range(1, card + 1), (guided / T).softmax(-1).sort(descending=True).values.cpu(),
                     label=f"temperature {T}")
for k in (10, 50, 250):
    axes[0].axvline(k, color="0.6", ls=":")
for p, n in nucleus.items():
    axes[0].axvline(n, color="C3", ls="--", lw=1)
    axes[0].text(n, 1e-1, f" top-p {p}", color="C3", fontsize=8)
axes[0].set(xscale="log", xlabel="rank of the code (dotted: k = 10, 50, 250)", ylabel="probability",
            ylim=(1e-8, 1), title="sorted next-code probabilities")
axes[0].legend(fontsize=8)
names = list(stats)
axes[1].bar(names, [stats[n][0] for n in names], color="C0")
axes[1].set_ylabel(f"distinct codes in {n_draws} draws", color="C0")
axes[1].tick_params(axis="x", rotation=45)
twin = axes[1].twinx()
twin.plot(names, [stats[n][1] for n in names], "o-", color="C1")
twin.set_ylabel("entropy of the draws (nats)", color="C1")
axes[1].set_title("how many candidates each rule leaves")
save(fig, "06_top_k_top_p.png")

# %% [markdown]
# ### One sampling step, written by you
#
# Everything `lm.generate` does with the logits of a step fits in five lines: guidance
# (step 1's formula), temperature, the top-k mask, and one draw per codebook from the
# renormalised distribution with a seeded `torch.Generator` (so the draw can be repeated).
# Write it, then run yours and the library's (`lm.cfg_logits`, then `lm.sample_next_token`, as
# `LM.generate` calls them) on the same logits with generators of the same seed: every step of
# the held-out clip above as one batch, K codebooks each, cfg_coef 3, temperature 0.8, top-k 50.
# Target: identical tokens; every token among the k most likely of its distribution (assertions).

# %%
def my_sampling_step(cond, uncond, cfg_coef, temperature, top_k, generator):
    """Conditional and null logits [B, K, card] -> tokens [B, K]: CFG, temperature, top-k, one draw each."""
    logits = uncond + cfg_coef * (cond - uncond)  # classifier-free guidance
    probs = (logits / temperature).softmax(-1)  # [B, K, card]
    kth = probs.topk(top_k, dim=-1).values[..., -1:]  # [B, K, 1]: the k-th largest probability
    probs = torch.where(probs >= kth, probs, 0.0)  # top-k: the others can no longer be drawn
    draws = torch.multinomial(probs.reshape(-1, card), 1, generator=generator)  # [B K, 1]; renormalises itself
    return draws.view(probs.shape[:-1])  # [B, K]


cond_s, uncond_s = both[0].transpose(0, 1), both[1].transpose(0, 1)  # [S, K, card]: the clip's steps as a batch
mine = my_sampling_step(cond_s, uncond_s, 3.0, 0.8, 50, torch.Generator(device).manual_seed(1))
library = sample_next_token(cfg_logits(cond_s, uncond_s, 3.0), temperature=0.8, top_k=50,
                            generator=torch.Generator(device).manual_seed(1))  # [S, K]
top50 = cfg_logits(cond_s, uncond_s, 3.0).topk(50, dim=-1).indices  # [S, K, 50]
print(f"{mine.numel()} draws ({mine.shape[0]} steps x {K} codebooks): yours == the library's: "
      f"{torch.equal(mine, library)}")
# 216 draws (54 steps x 4 codebooks): yours == the library's: True
assert torch.equal(mine, library) and (top50 == mine[..., None]).any(-1).all()

# %% [markdown]
# ## Step 3. cfg_coef and temperature on the output
#
# `model.generate(prompts, duration, cfg_coef, top_k, top_p, temperature, seed)`
# (`TextToAudio.generate` in `model.py`) is the whole of `python sample.py` after loading: the
# conditioner, CFG sampling with a KV cache (tutorial 05), the codec's decoder; it returns wav
# [B, C, samples] in [-1, 1] on the CPU. We generate both prompts at cfg_coef 1, 3 and 5, and the piano at
# temperatures 0.5, 1 and 1.5 (cfg_coef 3), all with seed 0. Listen: with cfg_coef 1 the prompt often drifts to
# other sounds of the training data; larger values follow it more closely, and too large ones
# get harsh and repetitive. The evaluation script (see the notes) measures this with a classifier.
# Target: the shapes (assertions), `06_cfg_temperature.png` and the sound of each of its panels.

# %%
dur = 1.0 if FAST else min(3.0, c.max_duration)
n_samples = round(dur * codec.sample_rate)
outputs, t_start = {}, time.time()
for w in (1.0, 3.0, 5.0):
    outputs[w] = model.generate(prompts, duration=dur, cfg_coef=w, seed=0)  # [B, C, T]
    assert outputs[w].shape == (B, codec.channels, n_samples) and outputs[w].abs().max() <= 1
temps = {T: model.generate(prompts[1:], duration=dur, cfg_coef=3.0, temperature=T, seed=0)[0]
         for T in (0.5, 1.0, 1.5)}  # [C, T] each
print(f"9 clips of {dur} s in {time.time() - t_start:.1f} s on {device}")
fig, axes = plt.subplots(3, 3, figsize=(13, 8), sharex=True, sharey=True, layout="constrained")
for col, w in enumerate(outputs):
    for row, prompt in enumerate(prompts):
        spectrogram(axes[row, col], outputs[w][row], f"{prompt!r}, cfg_coef {w:g}")
        listen(outputs[w][row], codec.sample_rate, f"06_{prompt.replace(' ', '_')}_cfg{w:g}.wav")
for col, (T, wav) in enumerate(temps.items()):
    spectrogram(axes[2, col], wav, f"{prompts[1]!r}, cfg_coef 3, temperature {T:g}")
    listen(wav, codec.sample_rate, f"06_{prompts[1].replace(' ', '_')}_temp{T:g}.wav")
fig.supxlabel("time (s)")
fig.supylabel("mel band")
save(fig, "06_cfg_temperature.png")

# %% [markdown]
# ## Step 4. The same seed gives the same audio
#
# Every random draw comes from one `torch.Generator` seeded by `seed`, so a run is a function of
# (model, prompts, settings, seed): bit for bit on the same device and library versions.
# Target: seed 0 again == step 3's clips; seed 1 differs (assertions).

# %%
again = model.generate(prompts, duration=dur, cfg_coef=3.0, seed=0)
other = model.generate(prompts, duration=dur, cfg_coef=3.0, seed=1)
assert torch.equal(again, outputs[3.0]) and not torch.equal(other, outputs[3.0])
print("seed 0 twice: identical; seed 1: different")
# seed 0 twice: identical; seed 1: different

# %% [markdown]
# ## Step 5. Longer than max_duration: the sliding window
#
# The LM was trained on clips of `max_duration` seconds, and its positions beyond that are
# untrained. For longer audio `lm.generate` slides a window (AudioCraft's genmodel): the first
# window makes W = max_duration * 50 frames; each next one starts extend_stride seconds (s frames)
# later, is prompted with the last W - s frames it already has, and adds s new ones. N frames
# thus take 1 + ceil((N - W) / s) windows. The `callback(done, total)` of `generate` counts the
# steps of the current window, so `done == 1` marks a new one; `lm.windows(duration)` lists the
# plan beforehand, as (first frame, frames, given frames, steps) per window.
# Target: the window count (asserted against the formula); `06_long.png` and its sound.

# %%
long_dur = c.max_duration + 2 * c.extend_stride
N, W, s = int(long_dur * fr), int(c.max_duration * fr), int(c.extend_stride * fr)
starts = []
long_wav = model.generate(prompts[1:], duration=long_dur, seed=0,
                          callback=lambda done, total: starts.append(total) if done == 1 else None)[0]  # [C, T]
print(f"{long_dur:g} s = {N} frames, window {W}, stride {s}: {len(starts)} windows of {starts} steps")
# 5 s = 250 frames, window 150, stride 50: 3 windows of [153, 53, 53] steps      (the shipped config)
assert len(starts) == 1 + math.ceil((N - W) / s) and long_wav.shape[-1] == round(long_dur * codec.sample_rate)
assert starts[0] == pattern_steps(W, K, c.pattern, c.delays)[1] - 1  # the first window: every step but step 0
assert starts == [steps for *_, steps in lm.windows(long_dur)]  # the plan, known before sampling
fig, ax = plt.subplots(figsize=(11, 3))
spectrogram(ax, long_wav, f"{prompts[1]!r}, {long_dur:g} s with a {c.max_duration:g} s window (dashed: new windows)")
for i in range(1, len(starts)):
    ax.axvline((W + (i - 1) * s) / fr, color="w", ls="--")  # where window i + 1's new frames begin
ax.set(xlabel="time (s)", ylabel="mel band")
save(fig, "06_long.png")
listen(long_wav, codec.sample_rate, "06_long.wav")

# %% [markdown]
# ## Step 6. Continuing an audio prompt
#
# With `continuation` (a waveform [C, T] at the codec's rate, e.g. from `audio.load_audio`), the
# codec encodes it into P frames of codes that become the LM's prompt: the sequence starts filled
# with them and sampling begins at the first step that holds a code of frame P. The output
# contains the prompt (as AudioCraft's generate_continuation), decoded from its codes, so its
# beginning is the prompt through the codec; only the last few frames before the boundary may
# differ, as the decoder's convolutions look a few frames ahead.
# Target: the output starts as codec.decode(codec.encode(prompt)) (assertion, up to a margin
# before the boundary); `06_continuation.png` and its sound.

# %%
i = 0
while True:  # the first held-out tune that is not drums alone
    clip = make_clip(i, VALID_SEED_OFFSET, 1.0 if FAST else c.max_duration / 2, codec.sample_rate, kind="music")
    if clip["labels"]["instrument"] != "drums":
        break
    i += 1
prompt_wav = torch.from_numpy(clip["wav"])[None]  # [C=1, T]
cont_dur = 1.5 if FAST else c.max_duration  # within one window
cont = model.generate([clip["tags"]], duration=cont_dur, seed=0,
                      continuation=prompt_wav)[0]  # [C, T]: the prompt, then the continuation
through = codec.decode(codec.encode(prompt_wav[None].to(device), n_q=K))[0].float().clamp(-1, 1).cpu()  # [C, T']
keep = prompt_wav.shape[-1] - 10 * codec.hop_length  # up to 10 frames (200 ms) before the boundary
err = (cont[..., :keep] - through[..., :keep]).abs().max().item()
print(f"{clip['tags']!r}: {prompt_wav.shape[-1] / codec.sample_rate:g} s prompt -> {cont_dur:g} s; "
      f"max |output - codec(prompt)| before the boundary: {err:.1e}")
assert cont.shape[-1] == round(cont_dur * codec.sample_rate) and err < 1e-3
fig, axes = plt.subplots(1, 2, figsize=(12, 3), sharey=True, layout="constrained")
spectrogram(axes[0], prompt_wav, f"prompt: held-out clip {clip['tags']!r}")
spectrogram(axes[1], cont, "prompt through the codec, then the LM's continuation")
axes[1].axvline(prompt_wav.shape[-1] / codec.sample_rate, color="w", ls="--")
for ax in axes:
    ax.set_xlabel("time (s)")
save(fig, "06_continuation.png")
listen(cont, codec.sample_rate, "06_continuation.wav")

# %% [markdown]
# ## Errata and notes
#
# - Measuring prompt adherence: `evaluation/eval_audio.py` trains a small classifier on the labels of
#   the built-in clips (`synth.py`) and reports how often generated clips carry the prompted
#   source, scene or instrument, plus a Frechet distance to real clips (FAD's recipe). Its
#   `--cfg-coef` flag compares guidance scales. It takes several minutes on a CPU, so it is not run here:
#   `python evaluation/eval_audio.py --model checkpoints`. Tutorial 07 computes its Frechet distance
#   by hand on a few clips.
# - Padding in cross-attention: see tutorial 04, notes. Whatever the mask, the null rows of CFG have
#   no token at all and attend to their zeros: their cross-attention output is 0.
# - The null condition is zero embeddings with an all-False mask, not the encoding of an empty
#   string: `conditioners.null_conditions` gives None for every text, and `TextConditioner` turns a
#   None row into zeros (T5 reads "", but its output is multiplied by the all-False mask). The LM
#   learns it because training replaces whole batches of prompts by None (`conditioners.cfg_dropout`,
#   `train_lm.py --cfg-dropout`, p = 0.1 by default).
# - CFG doubles the batch of every step. AudioCraft's `two_step_cfg` (two passes instead of one
#   batch) is not implemented.
# - `TextToAudio.generate` runs the LM under bf16 autocast on a GPU. bf16 (bfloat16) is a 16-bit
#   float with fp32's 8 exponent bits, so fp32's range, but 8 bits of mantissa precision (a
#   rounding error of up to 2^-8 = 0.4 %); `torch.autocast` runs the matrix products in it and keeps
#   sensitive ops such as softmax and layer norm in fp32. The same seed gives the same audio on one
#   machine, but CPU (fp32) and GPU runs differ.
# - Past max_duration, the window is re-prompted with its own tokens. A prepended melody (MusicGen-
#   melody's 'prepend') is not re-windowed (the `lm.py` docstring lists this deviation); the
#   default model's 'sum' melody is: each window reads the chroma of its own frames.
