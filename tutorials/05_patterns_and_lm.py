# %% [markdown]
# # 05 Codebook patterns and the language model
#
# The codec of tutorial 02 turns a clip into K parallel streams of codes, [B, K, T] (K codebooks,
# T frames at 50 Hz). MusicGen (arXiv 2306.05284) models them with ONE causal transformer: each
# sequence step sums the embeddings of K codes and predicts K codes with K output heads. Which code
# goes in which step is the *codebook interleaving pattern* (Sec. 2.2). With `lm.py` and the
# shipped model (`checkpoints/`, loaded by `model.py`):
#
# 1. codes [B, K, T] of a built-in clip from the shipped codec, and how they sound
# 2. four patterns (delay, parallel, flatten, coarse-first): steps per T frames, drawn as grids
# 3. the delay pattern and its inverse, written by you; the round trip of every pattern
# 4. which positions the training loss sees (`valid_only`), on a hand-checkable example
# 5. the LM's architecture: the presets and their parameter counts; a melody as a prefix or summed per frame
# 6. a forward pass: per-codebook cross-entropy of the shipped LM on held-out clips
# 7. causality: changing one code moves only the predictions after it
# 8. the KV cache: one attention step written by you, then identical greedy tokens, fewer positions
# 9. what the frames read from the text: a cross-attention map
#
# Run: `python tutorials/05_patterns_and_lm.py`, or open it as a notebook (VS Code, Jupyter +
# jupytext). `TUTORIAL_FAST=1` shrinks every step; `TUTORIAL_OUT=dir` moves the output folder
# (default `tutorials/out/`). Numbers pasted under prints do not depend on the trained weights;
# the ones that do (losses, attention) are checked by assertions on their properties only.

# %%
import math
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
sys.path.insert(0, str(HERE if (HERE / "common.py").exists() else HERE / "tutorials"))
from common import FAST, ROOT, device, listen, save  # noqa: E402

import matplotlib  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from conditioners import normalize_text  # noqa: E402
from data import VALID_SEED_OFFSET  # noqa: E402
from lm import LM, PRESETS, codebook_cross_entropy, sin_embedding  # noqa: E402
from model import load_model  # noqa: E402
from patterns import build_pattern, pattern_steps, revert_pattern, step_frames  # noqa: E402
from synth import make_clip  # noqa: E402

torch.set_grad_enabled(False)  # nothing is trained here

# %% [markdown]
# ## Step 1. Codes from the shipped codec
#
# `model.load_model` rebuilds the LM and its text conditioner from the config stored in
# `lm.pt`, loads the codec next to it (`checkpoint.load_codec` of `codec.pt`) and returns them
# as one frozen `TextToAudio` in eval mode: `.lm`, `.conditioner`, `.melody` and `.codec`. The
# shipped LM is a melody model with the 'sum' fuse: besides the text (by cross-attention) it reads
# one melody embedding per frame, added to the input of the steps that write that frame. Where no
# tune is given, that is the null melody (pitch class C in every frame, the chroma of silence), and
# it matters: the model was trained with it on every clip without a tune, so an LM call without it
# feeds an input the model never saw. Every LM call below therefore takes its conditioning from
# `model.conditions(texts, n_frames=...)`, as `TextToAudio.generate` does: `condition`,
# `condition_mask` (text) and `frames`, `null_frames` [B, n_frames, D] (the melody and its CFG
# null; with no tune both are the null melody). The LM models the first `n_q` codebooks of the
# codec (4 of its 8). We take held-out clips (`synth.make_clip` with the valid seed: never seen in
# training). Listen to the first clip and to its K = 4 codebooks decoded: the second is what the
# LM has to model, and the best any sample of it can sound.
# Target: codes [B, K, T] with T = duration * 50 Hz and every code in [0, card); two sounds.

# %%
model = load_model(str(ROOT / "checkpoints"), device)  # TextToAudio: .lm, .conditioner, .melody, .codec
lm, cond, codec = model.lm, model.conditioner, model.codec
c = lm.config
K, card, delays = c.n_q, c.card, c.delays
print(f"LM: {K} codebooks of {card} codes, pattern {c.pattern!r} {delays}, max_duration {c.max_duration} s; "
      f"melody fuse {model.melody.fuse!r}")
assert model.melody is not None and model.melody.fuse == "sum"
duration, n_clips = (1.0, 2) if FAST else (c.max_duration, 8)
clips = [make_clip(i, VALID_SEED_OFFSET, duration, codec.sample_rate) for i in range(n_clips)]
wav = torch.stack([torch.from_numpy(x["wav"])[None] for x in clips]).to(device)  # [B, 1, samples]
codes = codec.encode(wav, n_q=K)  # [B, K, T]
T = codes.shape[-1]
print("codes", tuple(codes.shape), "for", [x["tags"] for x in clips])
assert T == round(duration * codec.frame_rate) and 0 <= codes.min() and codes.max() < card
listen(wav[0], codec.sample_rate, "05_clip.wav")  # the held-out clip
listen(codec.decode(codes[:1])[0], codec.sample_rate, f"05_clip_{K}_codebooks.wav")  # what the LM models

# %% [markdown]
# ## Step 2. Four patterns and their number of steps
#
# A pattern puts code (q, t) of codebook q and frame t at sequence step `steps[q, t]`; cells where
# no code lands hold the special token `card` (its own embedding row; step 0 is all special: the
# "start" the first prediction reads). Every S below counts step 0; it is given, never sampled,
# so generating T frames samples S - 1 steps. MusicGen Sec. 2.2 compares:
#
# - delay (MusicGen's choice): step 1 + t + delays[q], delays (0, 1, 2, 3); S = T + max_delay + 1
#   = T + 4 steps (`patterns.pattern_steps`), T + 3 of them sampled. Codebook q of frame t is
#   predicted after codebooks < q of the same frame.
# - parallel: all K codes of a frame in one step; S = T + 1. Fastest, but codebooks of a frame
#   are drawn independently of each other.
# - flatten: one code per step, S = 1 + K T. Exact autoregression, K times the steps.
# - coarse-first (VALL-E): all of codebook 1, then the other codebooks in parallel; S = 1 + 2T.
#
# Target: S for T frames and K = 4 (hand-derived above, asserted); `05_patterns.png`.

# %%
PATTERNS = {"delay": (0, 1, 2, 3), "parallel": (0, 0, 0, 0), "flatten": (0, 1, 2, 3), "coarse_first": (0, 0, 0, 0)}
for name, d in PATTERNS.items():
    _, S, S_valid = pattern_steps(T, 4, name, d)
    print(f"{name:12s} delays {d}: {S:3d} steps for {T} frames ({S / T:.2f} per frame), training input {S_valid}")
    assert S == {"delay": T + 4, "parallel": T + 1, "flatten": 1 + 4 * T, "coarse_first": 1 + 2 * T}[name]
# fast mode (T = 50); full mode has T = 150:
# delay        delays (0, 1, 2, 3):  54 steps for 50 frames (1.08 per frame), training input 51
# parallel     delays (0, 0, 0, 0):  51 steps for 50 frames (1.02 per frame), training input 51
# flatten      delays (0, 1, 2, 3): 201 steps for 50 frames (4.02 per frame), training input 201
# coarse_first delays (0, 0, 0, 0): 101 steps for 50 frames (2.02 per frame), training input 101

Ts = 6  # a small grid to look at: frame index t in each cell
frame_ids = torch.arange(Ts).repeat(1, 4, 1)  # [1, K=4, Ts]: code (q, t) = t
S_max = pattern_steps(Ts, 4, "flatten", PATTERNS["flatten"])[1]
colours = matplotlib.colors.ListedColormap(["0.8"] + list(plt.cm.Pastel1.colors[:Ts]))  # grey, then one per frame
fig, axes = plt.subplots(4, 1, figsize=(13, 8), layout="constrained")
for ax, (name, d) in zip(axes, PATTERNS.items()):
    seq, mask = build_pattern(frame_ids, -1, name, d)  # [1, K, S] frame index or -1, [K, S] code or not
    S_valid = pattern_steps(Ts, 4, name, d)[2]
    ax.imshow(torch.where(mask, seq[0] + 1, 0), cmap=colours, vmin=-0.5, vmax=Ts + 0.5)  # 0: special
    for q in range(4):
        for s in range(seq.shape[2]):
            ax.text(s, q, f"{seq[0, q, s].item()}" if mask[q, s] else "S", ha="center", va="center", fontsize=8)
    ax.axvline(S_valid - 0.5, color="k", ls="--", lw=1)
    ax.set(xlim=(-0.5, S_max - 0.5), yticks=range(4), yticklabels=[f"cb {q + 1}" for q in range(4)],
           title=f"{name} {d}: {seq.shape[2]} steps (dashed: end of the training input)")
axes[-1].set_xlabel("sequence step (cell = frame t of that codebook, S = special token)")
save(fig, "05_patterns.png")

# %% [markdown]
# ## Step 3. Build the delay pattern yourself, and the round trip
#
# The delay pattern is a shift: row q of the [K, S] grid is the special token everywhere except
# steps 1 + delays[q] .. delays[q] + T, which hold codebook q's T codes in order. Its inverse
# reads the same slices back. Write both in a few lines, then compare with `patterns.build_pattern`
# (which scatters the codes to `pattern_steps`' indices, for any pattern) and `patterns.revert_pattern`
# (which gathers them). Every code lands in exactly one cell, so a sequence holds K T codes and
# S K - K T special tokens.
# Target: your grid of a 4 x 5 example (below, by eye: each row one step later than the one
# above); yours == the library's on the example and on the real codes; revert(build(codes)) ==
# codes for every pattern (assertions).

# %%
def my_delay_pattern(codes, special, delays):
    """codes [B, K, T] -> seq [B, K, T + max(delays) + 1]: code (q, t) at step 1 + t + delays[q]."""
    B, K, T = codes.shape
    seq = codes.new_full((B, K, T + max(delays) + 1), special)  # step 0 and the holes: special
    for q, d in enumerate(delays):
        seq[:, q, 1 + d:1 + d + T] = codes[:, q]  # codebook q, shifted by 1 + delays[q]
    return seq


def my_revert_delay(seq, T, delays):
    """seq [B, K, S] -> codes [B, K, T]: the same slices, read back."""
    return torch.stack([seq[:, q, 1 + d:1 + d + T] for q, d in enumerate(delays)], dim=1)


example = 10 * torch.arange(1, 5).view(1, 4, 1) + torch.arange(5)  # [1, K=4, T=5]: code (q, t) = 10 (q + 1) + t
mine = my_delay_pattern(example, -1, (0, 1, 2, 3))  # [1, 4, 9]
for row in mine[0].tolist():
    print(" ".join(" S" if x < 0 else f"{x:2d}" for x in row))
#  S 10 11 12 13 14  S  S  S
#  S  S 20 21 22 23 24  S  S
#  S  S  S 30 31 32 33 34  S
#  S  S  S  S 40 41 42 43 44
assert torch.equal(mine, build_pattern(example, -1, "delay", (0, 1, 2, 3))[0])
assert torch.equal(my_revert_delay(mine, 5, (0, 1, 2, 3)), example)
ours = my_delay_pattern(codes, card, delays)  # the shipped LM's pattern on the real codes
assert torch.equal(ours, build_pattern(codes, card, c.pattern, delays)[0])
assert torch.equal(my_revert_delay(ours, T, delays), revert_pattern(ours, T, card, c.pattern, delays)[0])

for name, d in PATTERNS.items():
    seq, mask = build_pattern(codes, card, name, d)  # [B, K, S], [K, S]
    back, valid = revert_pattern(seq, T, card, name, d)  # [B, K, T], [K, T]
    assert torch.equal(back, codes) and valid.all() and mask.sum() == K * T
    assert (seq[:, ~mask] == card).all()  # the cells without a code hold the special token
    print(f"{name:12s} {tuple(seq.shape)}: {int(mask.sum())} codes, {int((~mask).sum())} special cells")
# delay        (2, 4, 54): 200 codes, 16 special cells           (fast mode)

# %% [markdown]
# ## Step 4. Which positions the training loss sees
#
# In training the LM reads the first S_valid = T + 1 steps (`valid_only=True`, AudioCraft's
# keep_only_valid_steps), and the output at step s predicts the cells of step s + 1. The output at
# the last step, T, exists and would predict the cells of step T + 1, but the library drops it (as
# AudioCraft does): a code at step T + 1 or later is never a target, so with delays the last
# delays[q] frames of codebook q are never trained (`revert_pattern(..., logits=True)` marks them
# invalid, NaN in `LM.forward`'s logits). By hand for K = 3, T = 4, delays (0, 1, 2), codes a, b, c:
#
#     step:   0  1  2  3  4 | 5  6        predicted from step:  a0..a3: 0 1 2 3
#             S a0 a1 a2 a3 | S  S                              b0..b2: 1 2 3
#             S  S b0 b1 b2 | b3 S                              c0, c1: 2 3
#             S  S  S c0 c1 | c2 c3      (b3, c2, c3 sit at steps 5-6, outside the 5-step input)
#
# so 4 + 3 + 2 = 9 of the 12 codes are trained. Target: that mask (assertion), and on our clips
# K T - sum(delays) trained targets per clip.

# %%
small = torch.arange(12).view(1, 3, 4)  # [B=1, K=3, T=4]: a0..a3 = 0..3, b = 4..7, c = 8..11
seq, _ = build_pattern(small, -1, "delay", (0, 1, 2), valid_only=True)  # [1, 3, 5]
print(seq[0].tolist())
# [[-1, 0, 1, 2, 3], [-1, -1, 4, 5, 6], [-1, -1, -1, 8, 9]]
fake_logits = torch.zeros(1, 3, seq.shape[2], 7)  # [B, K, S_valid, card]: only the shapes matter here
_, trained = revert_pattern(fake_logits, 4, float("nan"), "delay", (0, 1, 2), logits=True)  # [K, T]
print(trained.int().tolist())
# [[1, 1, 1, 1], [1, 1, 1, 0], [1, 1, 0, 0]]
assert trained.tolist() == [[True] * 4, [True, True, True, False], [True, True, False, False]]
trained_real = revert_pattern(build_pattern(codes, card, c.pattern, delays, valid_only=True)[0][..., None],
                              T, -1, c.pattern, delays, logits=True)[1]  # [K, T]
print(f"trained targets per clip: {int(trained_real.sum())} of {K * T}")
# trained targets per clip: 194 of 200      (fast mode: 4 x 50 - (0 + 1 + 2 + 3))
assert trained_real.sum() == K * T - sum(delays)

# %% [markdown]
# ## Step 5. The architecture and its size
#
# `LM`: per codebook an embedding table of card + 1 rows (the +1 is the special token), summed;
# sinusoidal positions; `num_layers` pre-norm layers of causal self-attention, cross-attention to
# the text and a feed-forward block of width 4 dim (no biases); a final LayerNorm and K linear heads.
# Per layer that is 4 D^2 (self-attention: q, k, v, out) + 4 D^2 (cross) + 8 D^2 (feed-forward)
# weights. We build each preset on the `meta` device (shapes only, no memory) and count.
# MusicGen's 300M for its small model matches the 24 x 12 D^2 = 302M of self-attention +
# feed-forward; with cross-attention (24 x 4 D^2 = 101M), embeddings and heads its LM holds 420M.
#
# The musicgen-melody row has no cross-attention at all. AudioCraft's melody model reads both of its
# conditions as a prefix of the sequence (its ConditionFuser 'prepend'): the transformer's input is
# [chroma | text | pattern steps], 235 chroma frames (30 s at 7.8 Hz, each a projected one-hot pitch
# class), then the T5 embeddings, and causal self-attention reads the prefix like any earlier step.
# To follow the tune at frame t, that LM has to learn where in the prefix the chroma of frame t's
# time (t / 50 s) lies and find it by attention, and every step attends to 235 + L extra keys.
# The shipped model's 'sum' fuse (step 1) gives that alignment instead of learning it: the chroma
# frame at frame t's time is embedded and added to the input of the step that writes frame t, so
# the melody costs no positions, and the text keeps its cross-attention (the 'tiny' row's 1.6M).
# `model.conditions` builds either form: `frames`, `null_frames` for 'sum'; `prepend`,
# `null_prepend` = [chroma | text] (null: the chroma of silence and zero text) for a
# musicgen-melody checkpoint.
# Target: the table; counted == analytic for every preset; cross-attention in the shipped LM, none
# in musicgen-melody.

# %%
print(f"{'preset':16s} {'dim':>5s} {'layers':>6s} {'heads':>5s} {'K x card':>9s} {'self+FF':>8s} "
      f"{'cross':>7s} {'emb+heads':>9s} {'total':>8s}")
for name, pc in PRESETS.items():
    with torch.device("meta"):
        n_counted = sum(p.numel() for p in LM(pc).parameters())
    D, L = pc.dim, pc.num_layers
    self_ff = L * (4 * D * D + 2 * pc.hidden_scale * D * D + 2 * 2 * D)  # attention, FF, norm1/norm2 (w, b)
    cross = L * (4 * D * D + 2 * D) if pc.cross_attention else 0  # attention + norm_cross
    io = pc.n_q * ((pc.card + 1) * D + D * pc.card) + 2 * D  # embeddings, heads, out_norm
    assert n_counted == self_ff + cross + io
    print(f"{name:16s} {D:5d} {L:6d} {pc.num_heads:5d} {pc.n_q:2d} x {pc.card:4d} {self_ff / 1e6:7.1f}M "
          f"{cross / 1e6:6.1f}M {io / 1e6:8.1f}M {n_counted / 1e6:7.1f}M")
# preset             dim layers heads  K x card  self+FF   cross emb+heads    total
# musicgen-small    1024     24    16  4 x 2048   302.1M  100.7M     16.8M   419.6M
# musicgen-medium   1536     48    24  4 x 2048  1359.2M  453.1M     25.2M  1837.6M
# musicgen-large    2048     48    32  4 x 2048  2416.3M  805.5M     33.6M  3255.4M
# musicgen-melody   1536     48    24  4 x 2048  1359.2M    0.0M     25.2M  1384.4M
# audiogen-medium   1536     48    24  4 x 2048  1359.2M  453.1M     25.2M  1837.6M
# tiny               256      6     8  4 x  256     4.7M    1.6M      0.5M     6.8M
print(f"shipped LM: {sum(p.numel() for p in lm.parameters()) / 1e6:.2f}M parameters, "
      f"text conditioner {sum(p.numel() for p in cond.parameters()) / 1e6:.2f}M, "
      f"melody conditioner {sum(p.numel() for p in model.melody.parameters()) / 1e6:.3f}M")
assert not PRESETS["musicgen-melody"].cross_attention and c.cross_attention  # prefix vs. cross-attention + 'sum'

# %% [markdown]
# ## Step 6. A forward pass and the loss
#
# `LM.forward(codes, condition, condition_mask, targets, frames=...)` builds the training input
# (step 4), adds each step's melody embedding (`frames`, here the null melody), runs the
# transformer and reverts the logits to [B, K, T, card], aligned with the codes (no shift needed).
# The loss is the cross-entropy of each codebook over its trained positions
# (`codebook_cross_entropy`), averaged over K (AudioCraft's solvers/musicgen.py). A uniform guess
# scores ln(card) = ln 256 = 5.55 nats; a fresh (random) LM a little worse (about 6: its
# random logits are confidently wrong now and then; tutorial 07 step 3 derives ln 256 + 1/2 = 6.05).
# `model(codes, texts)` (`TextToAudio.forward`, what training runs) builds the same conditioning
# itself; our logits must equal its, which they would not if the null melody were left out.
#
# What to expect per codebook: the cross-entropy rises from codebook 1 to codebook K. RVQ's first
# codebook quantizes the whole frame, so it carries the coarse structure of the sound (its loudness
# and broad spectral shape), which persists from frame to frame: the context predicts it best.
# Each later codebook quantizes what the ones before it left over, a smaller and finer residual that
# looks more and more like noise, and noise cannot be predicted from context. Reading the coarser
# codes of the same frame first (the delay pattern, steps 2 and 7) helps the finer ones but does
# not close the gap. A trained LM keeps every codebook below the uniform 5.55 nats. RESULTS.md
# ("LM: training curve") measures the shipped LM on 64 held-out clips of 3 s: 1.44, 2.67, 3.12,
# 3.65 nats (mean 2.72); a few clips here give the same order, not the same values.
# Target: logits NaN exactly where step 4 says; loss == mean of the K values; logits == the
# model's own forward; the per-codebook loss rising with the codebook, every codebook below
# ln(card) on held-out clips and below a fresh LM's; the mean below the same LM called without
# the null melody.

# %%
texts = [x["tags"] for x in clips]
conditions = model.conditions(texts, n_frames=T)  # text and the null melody, as TextToAudio.generate
embeds, mask = conditions["condition"], conditions["condition_mask"]  # [B, L, D] (padding zeroed), [B, L]
frames = conditions["frames"]  # [B, T, D]: the null melody, one embedding per frame
logits, loss = lm(codes, embeds, mask, targets=codes, frames=frames)  # [B, K, T, card], scalar
ce = codebook_cross_entropy(logits, codes)  # [K]
torch.manual_seed(0)
fresh_ce = codebook_cross_entropy(LM(c).to(device).eval()(codes, embeds, mask, frames=frames)[0], codes)
print(f"logits {tuple(logits.shape)}; cross-entropy per codebook {[round(v, 2) for v in ce.tolist()]}, "
      f"mean {loss.item():.2f} nats (ln {card} = {math.log(card):.2f}); fresh LM {fresh_ce.mean().item():.2f}")
# logits (2, 4, 50, 256); cross-entropy per codebook [rising, each < 5.55], ...   (fast mode; values vary with weights)
assert torch.equal(logits[..., 0].isnan(), ~trained_real.expand(len(texts), K, T))
assert torch.allclose(logits, model(codes, texts)[0], atol=1e-5, equal_nan=True)  # the model's own conditioning
text_only = lm(codes, embeds, mask, targets=codes)[1]  # the null melody left out: an input never trained on
print(f"without the null melody: {text_only.item():.2f} nats")
assert loss < text_only
assert torch.allclose(loss, ce.mean()) and loss < math.log(card) and loss < fresh_ce.mean()
assert (ce[1:] > ce[:-1]).all()  # coarse first codebook the most predictable, each finer residual less
assert (ce < math.log(card)).all() and (ce < fresh_ce).all()  # every codebook learnt, not only the mean

# %% [markdown]
# ## Step 7. Causality
#
# A prediction may only read steps before its own cell. We change one code, codebook 1 at frame
# t0 (step 1 + t0), and compare all logits. With delays, the prediction of (q, t) is made at step
# t + delays[q], so it must not move when t + delays[q] < 1 + t0, and every later prediction
# may. Note what moves: codebooks 2-4 of frame t0 itself are predicted after codebook 1 of that
# frame (their cells come later): the delay pattern's way of conditioning the finer codebooks on
# the coarser ones. Target: unchanged exactly where predicted; `05_causality.png` (colour: log10
# of the largest change of any of the card logits of a prediction; black: exactly none).

# %%
t0 = 5
changed = codes[:1].clone()
changed[0, 0, t0] = (changed[0, 0, t0] + 1) % card  # another code for codebook 1, frame t0
a = lm(codes[:1], embeds[:1], mask[:1], frames=frames[:1])[0]  # [1, K, T, card]
b = lm(changed, embeds[:1], mask[:1], frames=frames[:1])[0]
moved = (a - b).abs().amax(-1)[0]  # [K, T], NaN where untrained
steps = pattern_steps(T, K, c.pattern, delays)[0]  # [K, T]
earlier = (steps - 1) < steps[0, t0]  # predicted before the changed cell enters
assert (moved[earlier & trained_real] == 0).all() and (moved[~earlier & trained_real] > 0).all()
print(f"unchanged: {int((earlier & trained_real).sum())} predictions, moved: {int((~earlier & trained_real).sum())}")
# unchanged: 18 predictions, moved: 176      (fast mode: 6 + 5 + 4 + 3 with t + delays[q] <= t0 = 5)
fig, ax = plt.subplots(figsize=(9, 2.6))
show = 16
im = ax.imshow(torch.log10(moved[:, :show] + 1e-12).nan_to_num(-12).cpu(), cmap="magma", vmin=-8, vmax=1,
               aspect="auto")
fig.colorbar(im, ax=ax, extend="min", label="log10 max |change|\nof a logit (black: none)")
ax.scatter([t0], [0], marker="x", color="C0", s=80, label="changed code")
ax.set(yticks=range(K), yticklabels=[f"cb {q + 1}" for q in range(K)], xlabel="frame t",
       title="how far each prediction moves when one code changes")
ax.legend(loc="upper right")
save(fig, "05_causality.png")

# %% [markdown]
# ## Step 8. The KV cache
#
# Sampling fills the sequence step by step. In self-attention, step s needs its query and the
# keys and values of steps 0..s. Those of the past steps never change (they depend on earlier
# inputs only: causality, step 7), so each layer can keep them: the KV cache, per layer a
# [B, H, steps, head_dim] tensor of keys and one of values. A new step projects its input x_s
# into q, k, v (the fused `in_proj_weight`: rows [0, D) q, [D, 2D) k, [2D, 3D) v), appends k and v
# to the cache, and attends with q to every cached key: no mask, all of them are in its past.
#
# Write that step yourself, for the first layer's self-attention on the input it really gets
# (norm1 of the summed code embeddings + each step's melody embedding + positions of a real
# sequence), one step at a time. Then compare with `lm.Attention` fed one step at a time with its
# own cache (the `cache=`, `offset=` arguments `LM.sample_window` passes), and with `lm.Attention`
# on the whole sequence at once, no cache, a causal mask instead (what training runs).
# Target: yours == cached == uncached at every step, the last included; your cache == its cache
# (assertions, up to float round-off).

# %%
layer0 = lm.transformer.layers[0]
attn, D, H = layer0.self_attn, c.dim, c.num_heads
hd = D // H  # head_dim
n_steps = 12
seq = build_pattern(codes[:1], card, c.pattern, delays)[0][..., :n_steps]  # [1, K, n_steps]
x = sum(emb(seq[:, k]) for k, emb in enumerate(lm.emb))  # [1, n_steps, D]: codes summed over codebooks
x = x + frames[:1, step_frames(n_steps, T, c.pattern, delays)]  # + the melody of the frame each step writes
x = layer0.norm1(x + sin_embedding(torch.arange(n_steps, device=device), D))  # what layer 1's self_attn reads
Wq, Wk, Wv = attn.in_proj_weight.split(D)  # [D, D] each
heads = lambda z: z.view(1, -1, H, hd).transpose(1, 2)  # [1, n, D] -> [1, H, n, hd]  # noqa: E731

k_cache = v_cache = x.new_zeros(1, H, 0, hd)  # empty: no step seen yet
mine = []
for s in range(n_steps):  # one new step at a time, as sampling runs
    x_s = x[:, s:s + 1]  # [1, 1, D]
    q, k, v = heads(x_s @ Wq.T), heads(x_s @ Wk.T), heads(x_s @ Wv.T)  # [1, H, 1, hd] each
    k_cache, v_cache = torch.cat([k_cache, k], 2), torch.cat([v_cache, v], 2)  # append: [1, H, s + 1, hd]
    weights = (q @ k_cache.transpose(-1, -2) / math.sqrt(hd)).softmax(-1)  # [1, H, 1, s + 1]: no mask
    mine.append(attn.out_proj((weights @ v_cache).transpose(1, 2).reshape(1, 1, D)))  # heads joined: [1, 1, D]
mine = torch.cat(mine, 1)  # [1, n_steps, D]

cache = dict(size=n_steps)  # lm.Attention's cache: it preallocates [1, H, size, hd] on the first call
with_cache = torch.cat([attn(x[:, s:s + 1], cache=cache, offset=s) for s in range(n_steps)], 1)  # [1, n_steps, D]
whole = attn(x)  # [1, n_steps, D]: all steps in one call, causal mask
print(f"max |yours - lm.Attention|: with its cache {(mine - with_cache).abs().max():.0e}, "
      f"whole sequence {(mine - whole).abs().max():.0e}; last step {(mine - whole)[:, -1].abs().max():.0e}")
# max |yours - lm.Attention|: with its cache 2e-07, whole sequence 9e-07; last step 7e-07   (round-off: varies)
assert torch.allclose(mine, with_cache, atol=1e-5) and torch.allclose(mine, whole, atol=1e-5)
assert torch.allclose(k_cache, cache["k"], atol=1e-6) and torch.allclose(v_cache, cache["v"], atol=1e-6)

# %% [markdown]
# Over a whole generation, the cache's saving: without it, step s runs the transformer over all
# s earlier steps, 1 + 2 + ... + (S - 1) = S (S - 1) / 2 positions; with it only the new step
# runs, S - 1 positions. Both must give the same tokens. We count the positions the embeddings
# see (a forward hook) and time both (greedy, temperature 0, so that the tokens are comparable;
# CFG doubles the batch: 2 rows per prompt).
# Target: identical tokens; the counts (asserted); the speed-up (grows with the length).

# %%
gen_dur = 0.5 if FAST else c.max_duration
S = pattern_steps(round(gen_dur * c.frame_rate), K, c.pattern, delays)[1]
# text, the null melody and its CFG null (the same here: no tune), for the frames generated
gen_conditions = model.conditions(texts[:1], n_frames=round(gen_dur * c.frame_rate))
seen = []
hook = lm.emb[0].register_forward_hook(lambda mod, inp, out: seen.append(inp[0].shape[1]))  # [2B, steps]
result = {}
for use_cache in (True, False):
    seen.clear()
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.time()
    tokens = lm.generate(**gen_conditions, duration=gen_dur, temperature=0,
                         use_cache=use_cache)  # [1, K, T], greedy
    if device == "cuda":
        torch.cuda.synchronize()
    result[use_cache] = (tokens, time.time() - start, sum(seen))
hook.remove()
(cached, t_c, n_c), (uncached, t_u, n_u) = result[True], result[False]  # tokens, seconds, positions
print(f"{S} steps: cached {n_c} positions in {t_c:.2f} s, uncached {n_u} in {t_u:.2f} s, speed-up {t_u / t_c:.1f}x")
# 29 steps: cached 28 positions ..., uncached 406 ...        (fast mode: 25 frames + 4, step 0 included)
assert torch.equal(cached, uncached) and n_c == S - 1 and n_u == S * (S - 1) // 2

# %% [markdown]
# ## Step 9. A cross-attention map
#
# In every layer each sequence step reads the text by cross-attention: queries from the audio
# stream, keys and values from the conditioner's embeddings [B, L, D]. `lm.Attention` calls
# `F.scaled_dot_product_attention`, which does not return its weights, so we catch the inputs of
# each layer's `cross_attention` with a forward hook and recompute
# softmax(q k^T / sqrt(head_dim)) from its fused `in_proj_weight` (rows [0, D) make q, [D, 2D) k,
# [2D, 3D) v), averaged over heads. One prompt has no padding, so no mask is needed.
# Target: rows sum to 1; out_proj(weights @ v) reproduces the module's output (assertion);
# `05_cross_attention.png`, with the prompt's pieces as tick labels and each layer's colour bar
# (the attention weight of a step on a piece, mean over heads; a row sums to 1).

# %%
captured = {}


def grab(i):
    def hook(module, args, kwargs, output):  # args: (x, source, ...) as Layer.forward calls it
        captured[i] = (args[0], args[1] if len(args) > 1 else kwargs["source"], output)
    return hook


layers = lm.transformer.layers
handles = [layer.cross_attention.register_forward_hook(grab(i), with_kwargs=True) for i, layer in enumerate(layers)]
one = model.conditions(texts[:1], n_frames=T)  # one prompt (no padding) and the null melody
prompt_embeds = one["condition"]  # [1, L, D]
lm(codes[:1], prompt_embeds, one["condition_mask"], frames=one["frames"])
for h in handles:
    h.remove()

D, H = c.dim, c.num_heads
fig, axes = plt.subplots(1, len(layers), figsize=(2.2 * len(layers) + 1, 4.5), sharey=True, layout="constrained")
text = normalize_text(texts[0]) if cond.normalize else texts[0]
pieces = cond.tokenizer.sp.encode(text, out_type=str) + ["</s>"]
assert len(pieces) == prompt_embeds.shape[1]
for i, ax in zip(range(len(layers)), axes):
    x, source, output = captured[i]  # [1, S_valid, D], [1, L, D], [1, S_valid, D]
    W = layers[i].cross_attention.in_proj_weight
    heads = lambda z: z.view(1, -1, H, D // H).transpose(1, 2)  # [1, H, *, head_dim]
    q, k, v = heads(F.linear(x, W[:D])), heads(F.linear(source, W[D:2 * D])), heads(F.linear(source, W[2 * D:]))
    weights = (q @ k.transpose(-1, -2) / math.sqrt(D // H)).softmax(-1)  # [1, H, S_valid, L]
    again = layers[i].cross_attention.out_proj((weights @ v).transpose(1, 2).reshape(1, -1, D))
    assert torch.allclose(again, output, atol=1e-4) and torch.allclose(weights.sum(-1), torch.ones(()))
    im = ax.imshow(weights[0].mean(0).cpu(), aspect="auto", cmap="viridis", vmin=0, interpolation="nearest")
    fig.colorbar(im, ax=ax, location="top", label=f"layer {i + 1}: attention weight")
    ax.set_xticks(range(len(pieces)), pieces, rotation=60, fontsize=8)
axes[0].set_ylabel("sequence step (~ frame, 20 ms)")
fig.suptitle(f"cross-attention, mean over {H} heads (colour scale per layer, from 0): {texts[0]!r} on its own clip")
save(fig, "05_cross_attention.png")

# %% [markdown]
# ## Errata and notes
#
# - Padding in cross-attention: see tutorial 04, notes. Step 9 takes one prompt, so it has no padding;
#   for a padded batch its softmax would also need the LM's `source_mask` (-inf at the padded keys).
# - `patterns.py`'s patterns are index maps (`pattern_steps`), not AudioCraft's layout lists; the official
#   models all use 'delay'. 'flatten' is AudioCraft's 'unroll'; the MusicLM pattern is not here.
# - Step 6's clips are held out but drawn from the same generator as the training data: the loss
#   says how well the LM learnt that generator, not how it would do on real audio.
# - Step 8's speed-up is small for short clips: the cache saves O(S^2) work, and a tiny model at
#   S ~ 30 steps spends most of its time in per-call overhead.
# - Next: tutorial 06 samples from this LM with classifier-free guidance.
