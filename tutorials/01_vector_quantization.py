# %% [markdown]
# # 01 Vector quantization and residual VQ
#
# EnCodec (arXiv 2210.13438) turns audio into a few integers per frame with a *residual vector
# quantizer* (RVQ, SoundStream arXiv 2107.03312, Algorithm 1). This tutorial builds the idea from
# one codebook up, with `quantizer.py`:
#
# 1. a codebook is a table; quantizing is a nearest-neighbour search
# 2. k-means initialises the codebook on the first training batch
# 3. exponential moving averages (EMA) keep the codes on the data (VQ-VAE arXiv 1711.00937, App. A.1)
# 4. dead codes are replaced by data vectors
# 5. residual stages: codebook k quantizes what codebooks 1..k-1 missed
# 6. build it yourself: RVQ encode and decode in a few lines, checked against `quantizer.py`
# 7. gradients: the straight-through estimator and the commitment loss
# 8. RVQ on real features: mel-spectrogram frames of the built-in clips (`synth.py`)
# 9. quantizer dropout: one model, several bitrates
# 10. bandwidth <-> number of codebooks
# 11. codebook usage and perplexity
#
# Each step ends in something you can check: a printed number (the expected value is pasted below
# the print as a comment), an assertion, or a picture (under the cell in a notebook, and in the
# output folder). The one sound, the clip of step 8, plays under its cell.
#
# Open it as a notebook (Jupyter with jupytext: `jupytext --to notebook 01_vector_quantization.py`,
# or VS Code, which runs the `# %%` cells as they are), or run it as a script,
# `python tutorials/01_vector_quantization.py`: pictures and sounds then go to files only.
# `TUTORIAL_FAST=1` shrinks every step (CI runs that); `TUTORIAL_OUT=dir` changes the output
# folder (default `tutorials/out/`).
# Pasted numbers come from full mode on a CPU; fast mode and GPUs give slightly different ones
# (other random draws), the assertions hold everywhere.

# %%
import math
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
sys.path.insert(0, str(HERE if (HERE / "common.py").exists() else HERE / "tutorials"))
from common import FAST, OUT, device, listen, save  # noqa: E402

import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from codec import PRESETS  # noqa: E402
from data import BuiltinDataset  # noqa: E402
from losses import mel_spectrogram  # noqa: E402
from quantizer import (Codebook, ResidualVectorQuantizer, bandwidth_per_codebook,  # noqa: E402
                       codebook_usage, n_q_for_bandwidth)


def blobs(n, centers, std, seed):
    """n 2-D points [n, 2] drawn around the given centers: a toy data set we can look at."""
    g = torch.Generator().manual_seed(seed)
    centers = torch.tensor(centers, dtype=torch.float32)
    which = torch.randint(len(centers), (n,), generator=g)
    return (centers[which] + std * torch.randn(n, 2, generator=g)).to(device)


CENTERS = [(-2, -1), (-1, 1.5), (0.5, 0), (2, 1.5), (2, -1.5), (-0.5, -2)]

# %% [markdown]
# ## Step 1. A codebook is a table, quantizing is a nearest-neighbour search
#
# A codebook holds `bins` vectors (codes) of width D. A vector x is replaced by the index of its
# nearest code; decoding that index is a table lookup. `Codebook.quantize` computes
# argmax of -(|x|^2 - 2 x.e + |e|^2), i.e. argmin of the squared distance, written like the official
# code so near-ties break the same way. Target: the printed indices.

# %%
cb = Codebook(dim=2, bins=4).to(device)
cb.embed.copy_(torch.tensor([[1.0, 1.0], [-1.0, 1.0], [-1.0, -1.0], [1.0, -1.0]]))  # 4 corners
x = torch.tensor([[0.9, -1.2], [-0.2, 0.3], [5.0, 5.0]], device=device)
idx = cb.quantize(x)
print("codes", idx.tolist(), "decoded", cb.decode(idx).tolist())
# codes [3, 1, 0] decoded [[1.0, -1.0], [-1.0, 1.0], [1.0, 1.0]]
assert torch.equal(idx, torch.cdist(x, cb.embed).argmin(-1))  # the same as a plain nearest search

# %% [markdown]
# ## Step 2. k-means initialisation
#
# A fresh codebook is all zeros (`inited` = 0). The first time it sees a batch in training mode it
# runs Lloyd's k-means (50 iterations in the official configs) on the batch and starts from the
# centroids: every code begins where data is. Target: `inited` goes 0 -> 1, and the k-means codes
# quantize with a lower error than the same number of random data points.

# %%
torch.manual_seed(0)
data = blobs(4000, CENTERS, 0.35, seed=0)  # [N, 2]
cb = Codebook(dim=2, bins=16, kmeans_iters=10 if FAST else 50).to(device).train()
print("inited before:", cb.inited.item())
# inited before: 0.0
cb(data)  # first training batch: k-means, then one EMA step
print("inited after:", cb.inited.item())
# inited after: 1.0


def mse(cb, x):
    """Mean squared quantization error of x [N, D] with codebook cb."""
    return (cb.decode(cb.quantize(x)) - x).pow(2).sum(-1).mean().item()


rand = Codebook(dim=2, bins=16).to(device)
rand.embed.copy_(data[torch.randperm(len(data), device=device)[:16]])  # 16 random data points
print(f"error: k-means codes {mse(cb, data):.3f}, random data points {mse(rand, data):.3f}")
# error: k-means codes 0.147, random data points 0.244
assert mse(cb, data) < mse(rand, data)

fig, ax = plt.subplots(figsize=(5, 4))
ax.scatter(*data.cpu().T, c=cb.quantize(data).cpu(), cmap="tab20", s=3)
ax.scatter(*cb.embed.cpu().T, c="k", marker="x", s=60, label="codes (k-means)")
ax.set_title("16 codes after k-means; colour = nearest code")
ax.legend(loc="lower right")
save(fig, "01_kmeans.png")

# %% [markdown]
# ## Step 3. EMA updates follow the data
#
# After the start, codes are not learnt by gradient descent. Each training call counts how many
# vectors chose each code (n_i) and sums them (s_i), and keeps moving averages with decay d = 0.99:
#
#     N_i <- d N_i + (1 - d) n_i,     m_i <- d m_i + (1 - d) s_i,     e_i = m_i / N_i
#
# so every code drifts to the mean of the vectors it wins. We shift the data by (0.6, 0.3) and
# watch the codes follow. Dead-code replacement (step 4) is switched off here to see EMA alone.
# Two things set the pace: the EMA forgets the old data as 0.99^t, and each step moves a code only
# to the mean of the vectors it wins *now* (one Lloyd step), so it takes a few hundred steps.
# (The k-means counts are the first N_i, so a first batch much larger than the next ones would
# slow the start down: use batches of the same size.)
# In fact e_i = m_i / N'_i, a smoothed count (Laplace smoothing): a small eps = 1e-5 is added to
# every N_i, and the counts are rescaled to keep their total, N'_i = (N_i + eps) / (sum_j N_j +
# bins eps) * sum_j N_j. A code that has won nothing for long (N_i -> 0) is then never divided by zero; for
# a code in use N'_i / N_i - 1 is about eps (1 / N_i - bins / sum_j N_j), under 1e-6 here, so
# e = m / N holds to float precision.
# Target: the mean code moves by about the shift, and e = m / N holds up to that smoothing.

# %%
torch.manual_seed(0)
cb = Codebook(dim=2, bins=16, kmeans_iters=10 if FAST else 50, threshold_ema_dead_code=0).to(device).train()
cb(blobs(1000, CENTERS, 0.35, seed=0))  # k-means on the old data
start = cb.embed.clone()
shift = torch.tensor([0.6, 0.3], device=device)
steps = 1000  # fast enough even in fast mode: 1000 tiny batches
for step in range(steps):
    cb(blobs(1000, CENTERS, 0.35, seed=1 + step) + shift)  # a new batch of the shifted data each step
moved = (cb.embed - start).mean(0)
print(f"mean code moved by {[round(m, 2) for m in moved.tolist()]} after {steps} EMA steps "
      "(data moved by [0.6, 0.3])")
# mean code moved by [0.58, 0.28] after 1000 EMA steps (data moved by [0.6, 0.3])
assert torch.allclose(moved, shift, atol=0.06)
used = cb.cluster_size > 1  # codes that win vectors: for them e = m / N
print("max |e - m / N| over used codes:",
      f"{(cb.embed - cb.embed_avg / cb.cluster_size[:, None])[used].abs().max().item():.1e}")
# max |e - m / N| over used codes: 4.8e-07
assert torch.allclose(cb.embed[used], (cb.embed_avg / cb.cluster_size[:, None])[used], atol=1e-4)

fig, ax = plt.subplots(figsize=(5, 4))
ax.scatter(*(blobs(2000, CENTERS, 0.35, seed=0) + shift).cpu().T, c="0.8", s=3, label="shifted data")
for a, b in zip(start.cpu(), cb.embed.cpu()):
    ax.annotate("", b, a, arrowprops=dict(arrowstyle="->", color="C3"))
ax.scatter(*cb.embed.cpu().T, c="C3", marker="x", s=60, label="codes after EMA")
ax.set_title(f"EMA: codes follow the data ({steps} steps, decay 0.99)")
ax.legend(loc="lower right")
save(fig, "01_ema.png")

# %% [markdown]
# ## Step 4. Dead codes
#
# When the data moves far, a few codes win every vector and the others win nothing: their EMA
# count N_i decays towards 0 and they are wasted (a *dead* code). With `threshold_ema_dead_code = 2`
# (official value) a code whose N_i falls under 2 is replaced by a random vector of the current
# batch, *after* the batch has been quantized and learnt from: put in before, the batch's own
# vectors would quantize to themselves with zero error, and the quantizer would be no bottleneck
# at all. We jump the data by (4, 0) and compare the two settings. Batches of 64 vectors give
# N_i ~ 64 / 16 = 4, so a code that wins nothing is dead after ~70 steps (4 * 0.99^70 = 2);
# EnCodec's batches give ~5 per code too (64 clips x 75 frames / 1024 codes).
# Target: usage (fraction of codes used) stays low without replacement, reaches ~1 with it.

# %%
def jump_run(threshold, steps, batch=64):
    """k-means on the data, then `steps` EMA steps on the data moved by (4, 0) -> (codebook, new data)."""
    torch.manual_seed(0)
    cb = Codebook(dim=2, bins=16, kmeans_iters=10 if FAST else 50,
                  threshold_ema_dead_code=threshold).to(device).train()
    cb(blobs(batch, CENTERS, 0.35, seed=0))
    jump = torch.tensor([4.0, 0.0], device=device)
    for step in range(steps):
        cb(blobs(batch, CENTERS, 0.35, seed=1 + step) + jump)
    return cb, blobs(4000, CENTERS, 0.35, seed=99) + jump


fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharex=True, sharey=True, layout="constrained")
usage = {}
for ax, threshold in zip(axes, (0.0, 2.0)):
    cb, new = jump_run(threshold, 200)
    usage[threshold] = torch.bincount(cb.quantize(new), minlength=16).gt(0).float().mean().item()
    print(f"threshold {threshold}: {usage[threshold]:.2f} of the codes used, error {mse(cb, new):.3f}")
    ax.scatter(*new.cpu().T, c="0.8", s=3)
    ax.scatter(*cb.embed.cpu().T, c="C3", marker="x", s=60)
    ax.set_title(f"threshold_ema_dead_code = {threshold:g}")
# threshold 0.0: 0.31 of the codes used, error 1.323
# threshold 2.0: 1.00 of the codes used, error 0.143
assert usage[2.0] > usage[0.0] and usage[2.0] >= 0.9
fig.suptitle("data jumped by (4, 0): codes (x) without and with dead-code replacement")
save(fig, "01_dead_codes.png")

# %% [markdown]
# ## Step 5. Residual stages
#
# One codebook of `bins` codes can only give `bins` different outputs. RVQ (SoundStream Alg. 1)
# chains K codebooks: codebook 1 quantizes x, codebook 2 quantizes the residual x - q1, codebook 3
# the residual of that, and so on; the output is q1 + q2 + ... + qK. With 8 codes per stage the
# outputs multiply: up to 8, 64, 512 points with 1, 2, 3 codebooks, for 3, 6, 9 bits.
# `ResidualVectorQuantizer` takes [B, D, T] tensors (a batch of sequences of D-dim frames).
# Target: the error falls with every codebook and the number of distinct outputs is <= 8^K.

# %%
torch.manual_seed(0)
rvq = ResidualVectorQuantizer(dim=2, n_q=3, bins=8, kmeans_iters=10 if FAST else 50).to(device).train()
for step in range(20 if FAST else 100):
    rvq(blobs(2000, CENTERS, 0.35, seed=step).T[None])  # [N, 2] -> [1, D=2, T=N]
rvq.eval()
x = blobs(4000, CENTERS, 0.35, seed=123).T[None]  # [1, 2, N]
fig, axes = plt.subplots(1, 3, figsize=(13, 4), sharex=True, sharey=True, layout="constrained")
errors = []
for K, ax in zip((1, 2, 3), axes):
    codes = rvq.encode(x, n_q=K)  # [1, K, N]
    xq = rvq.decode(codes)  # [1, 2, N]: sum of the K looked-up vectors
    errors.append((xq - x).pow(2).sum(1).mean().item())
    distinct = len(torch.unique(xq[0].T, dim=0))
    print(f"K={K}: {K * 3} bits per vector, {distinct:3d} distinct outputs, error {errors[-1]:.3f}")
    assert distinct <= 8 ** K
    ax.scatter(*x[0].cpu(), c="0.8", s=3)
    ax.scatter(*xq[0].cpu(), c="C0", s=8)
    ax.set_title(f"{K} codebook(s) of 8: {distinct} points")
# K=1: 3 bits per vector,   8 distinct outputs, error 0.219
# K=2: 6 bits per vector,  64 distinct outputs, error 0.045
# K=3: 9 bits per vector, 457 distinct outputs, error 0.010
assert errors[0] > errors[1] > errors[2]
fig.suptitle("RVQ: outputs (blue) over the data (grey) with 1, 2, 3 residual stages")
save(fig, "01_rvq_stages.png")

# %% [markdown]
# ## Step 6. Build it yourself: RVQ encode and decode
#
# Everything RVQ does at inference fits in a few lines. Write them, then check them against
# `ResidualVectorQuantizer.encode` / `.decode` on the same codebooks (the tables `layer.embed` of
# the step-5 quantizer):
#
#     encode: r = x; for each codebook e: i_k = argmin_j ||r - e_j||^2, r = r - e[i_k]
#     decode: x_hat = e_1[i_1] + e_2[i_2] + ... + e_K[i_K]
#
# Ours works on rows [N, D]; the library takes [B, D, T] (a batch of sequences of frames) and
# flattens it to rows the same way. (Step 1: the library writes the distance expanded, which
# rounds differently; only an exact near-tie could make the two pick different codes.)
# Target: identical codes, decoded vectors equal, for K = 1, 2, 3.

# %%
def rvq_encode(codebooks, x):
    """x [N, D] -> codes [K, N]: codebook k quantizes what codebooks 1..k-1 left (the residual)."""
    residual, codes = x, []
    for embed in codebooks:  # embed [bins, D]
        i = (residual[:, None, :] - embed[None]).pow(2).sum(-1).argmin(-1)  # [N]: the nearest code
        residual = residual - embed[i]  # what this codebook missed
        codes.append(i)
    return torch.stack(codes)


def rvq_decode(codebooks, codes):
    """codes [K, N] -> x_hat [N, D]: the sum of the chosen codes, one per codebook."""
    return sum(embed[i] for embed, i in zip(codebooks, codes))


x = blobs(4000, CENTERS, 0.35, seed=123)  # [N, 2]: the points of step 5
for K in (1, 2, 3):
    tables = [layer.embed for layer in rvq.layers[:K]]
    mine = rvq_encode(tables, x)  # [K, N]
    theirs = rvq.encode(x.T[None], n_q=K)  # [1, D, N] -> [1, K, N]
    assert torch.equal(mine, theirs[0])
    assert torch.allclose(rvq_decode(tables, mine), rvq.decode(theirs)[0].T)  # [N, D] both
print("hand-written RVQ == quantizer.py for K = 1, 2, 3:", tuple(mine.shape), "codes")
# hand-written RVQ == quantizer.py for K = 1, 2, 3: (3, 4000) codes

# %% [markdown]
# ## Step 7. Gradients: straight-through estimator and commitment loss
#
# `argmin` has no gradient. In training, the quantizer output is written
# `x + (q - x).detach()`: its value is q, its gradient with respect to x is the identity
# (the *straight-through estimator*), so the decoder's gradient reaches the encoder unchanged.
# The *commitment loss* mean_k ||r_k - sg(q_k)||^2 (r_k the residual entering stage k, sg = stop
# gradient) pulls the encoder output towards the codes; EnCodec adds it with weight 1.
# Target: the gradient is exactly ones, and the loss equals the hand computation.

# %%
x = blobs(500, CENTERS, 0.35, seed=7).T[None].clone().requires_grad_(True)  # [1, 2, 500]
rvq.train()
out, codes, commit = rvq(x)
out.sum().backward()
print("d out / d x == 1 everywhere:", bool((x.grad == 1).all()))
# d out / d x == 1 everywhere: True
assert (x.grad == 1).all()
rvq.eval()  # no EMA update from here on: the hand computation sees the same codebooks
_, codes, commit = rvq(x)
with torch.no_grad():  # commitment loss by hand: the MSE of every stage's residual against its code
    r, losses = x[0].T, []  # [N, D]
    for k, layer in enumerate(rvq.layers):
        q = layer.decode(codes[0, k])
        losses.append((q - r).pow(2).mean())
        r = r - q
print(f"commitment loss {commit.item():.4f}, by hand {torch.stack(losses).mean().item():.4f}")
# commitment loss 0.0487, by hand 0.0487
assert torch.allclose(commit, torch.stack(losses).mean(), rtol=1e-3)

# %% [markdown]
# ## Step 8. RVQ on audio features
#
# Now something closer to EnCodec: the vectors are frames of a log-mel spectrogram (64 mel bands,
# D = 64) of the built-in clips (`synth.py` makes them, `data.BuiltinDataset` serves them), 62.5
# frames per second at 16 kHz with a 256-sample hop (`losses.mel_spectrogram`, the one of the
# codec's training loss). (EnCodec quantizes the encoder's 128-dim latents instead; tutorial 02
# does that.) We learn 8 codebooks by k-means + EMA on training clips and quantize held-out clips
# with K = 1..8.
# Target: the relative error falls with K; the picture shows a held-out spectrogram with 1, 2, 8
# codebooks, and the clip plays under the cell. (The quantized spectrograms cannot be played as
# they are: a mel spectrogram has no phase, and turning one back into a waveform takes a vocoder.
# EnCodec's decoder is one, learnt together with its quantizer: tutorial 02.)

# %%
torch.manual_seed(0)
n_clips, n_valid, dur = (16, 4, 2.0) if FAST else (64, 8, 5.0)
bins, n_q, passes = (64, 8, 5) if FAST else (256, 8, 20)


def log_mel(ds):
    """Log-mel frames [B, 64, frames] of a data.BuiltinDataset (n_fft 1024, hop 256, 64 mels)."""
    wav = torch.stack([ds[i]["wav"] for i in range(len(ds))]).to(device)  # [B, 1, T]
    return torch.log10(1e-5 + mel_spectrogram(wav, 16000, 1024, 256))  # [B, 64, frames]


train = log_mel(BuiltinDataset(n_clips, duration=dur))
valid = log_mel(BuiltinDataset(n_valid, duration=dur, split="valid"))
mean, std = train.mean(), train.std()
train, valid = (train - mean) / std, (valid - mean) / std  # one global scale: values ~ N(0, 1)
print("train frames", tuple(train.shape), "valid frames", tuple(valid.shape))
# train frames (64, 64, 313) valid frames (8, 64, 313)

mel_rvq = ResidualVectorQuantizer(dim=64, n_q=n_q, bins=bins, kmeans_iters=10 if FAST else 50).to(device).train()
for p in range(passes):
    for batch in train.split(8):  # [8, 64, frames]
        mel_rvq(batch)
mel_rvq.eval()
rel = []
for K in range(1, n_q + 1):
    vq = mel_rvq.decode(mel_rvq.encode(valid, n_q=K))
    rel.append(((vq - valid).pow(2).sum() / (valid - valid.mean()).pow(2).sum()).item())
print("relative error, K = 1..8:", [round(e, 3) for e in rel])
# relative error, K = 1..8: [0.095, 0.05, 0.036, 0.029, 0.024, 0.02, 0.017, 0.015]
assert rel[-1] < rel[0]

fig, axes = plt.subplots(1, 4, figsize=(15, 3.4), sharey=True, layout="constrained")
show = [(valid, "original")] + [(mel_rvq.decode(mel_rvq.encode(valid, n_q=K)), f"{K} codebook(s)")
                                 for K in (1, 2, n_q)]
for ax, (m, title) in zip(axes, show):
    ax.imshow(m[0].cpu(), origin="lower", aspect="auto", vmin=-2.5, vmax=2.5, cmap="magma")
    ax.set_title(title)
axes[0].set_ylabel("mel band")
fig.suptitle(f"a held-out log-mel spectrogram quantized frame by frame ({bins} codes per codebook)")
save(fig, "01_rvq_mel.png")
clip = BuiltinDataset(n_valid, duration=dur, split="valid")[0]  # the clip of the "original" panel
print("held-out clip 0:", repr(clip["text"]))
listen(clip["wav"], 16000, "01_valid_clip.wav")
# held-out clip 0: 'happy organ drums fast'
fig, ax = plt.subplots(figsize=(5, 3.5))
ax.plot(range(1, n_q + 1), rel, "o-")
ax.set_xlabel(f"codebooks K ({math.log2(bins):.0f} bits per frame each)")
ax.set_ylabel("relative squared error")
ax.set_title("more codebooks, less error")
save(fig, "01_rvq_error.png")

# %% [markdown]
# ## Step 9. Quantizer dropout
#
# With `q_dropout=True` each training batch uses only the first K ~ U{1..n_q} codebooks (one draw
# per batch, as AudioCraft; SoundStream Sec. 3.3). The encoder and decoder then learn to work with
# any prefix of the codebooks, so one model serves every bitrate. Codebooks after K are not used,
# so they do not learn from that batch either.
# Target: each K is drawn about equally often, and codebook 4 does not change when K < 4.

# %%
torch.manual_seed(0)
rvq_d = ResidualVectorQuantizer(dim=2, n_q=4, bins=8, q_dropout=True, kmeans_iters=5).to(device).train()
x = blobs(500, CENTERS, 0.35, seed=0).T[None]  # [1, 2, 500]
counts = [0] * 4
draws = 100 if FAST else 400
for i in range(draws):
    before = rvq_d.layers[3].cluster_size.clone()
    _, codes, _ = rvq_d(x)  # codes [1, K, 500], K drawn at random
    K = codes.shape[1]
    counts[K - 1] += 1
    if K < 4:
        assert torch.equal(rvq_d.layers[3].cluster_size, before)  # codebook 4 untouched
print(f"K = 1, 2, 3, 4 drawn {counts} times in {draws} batches")
# K = 1, 2, 3, 4 drawn [98, 105, 95, 102] times in 400 batches
assert min(counts) > draws / 8
rvq_d.eval()
print("at inference, pick K:", [tuple(rvq_d.encode(x, n_q=K).shape) for K in (1, 4)])
# at inference, pick K: [(1, 1, 500), (1, 4, 500)]

# %% [markdown]
# ## Step 10. Bandwidth <-> number of codebooks
#
# A code of a codebook with `bins` entries carries log2(bins) bits, and the codec emits
# `frame_rate` = sample_rate / hop frames per second, so
#
#     bandwidth = K * log2(bins) * frame_rate   bits per second.
#
# EnCodec 24 kHz: hop 320, 75 Hz, 1024 bins -> 750 bps per codebook, so 1.5 / 3 / 6 / 12 / 24 kbps
# are 2 / 4 / 8 / 16 / 32 codebooks. MusicGen's 32 kHz codec: 50 Hz, 2048 bins -> 4 x 550 bps
# = 2.2 kbps. Target: the printed table, and the official numbers as assertions.

# %%
for name, c in PRESETS.items():
    frame_rate = math.ceil(c.sample_rate / math.prod(c.ratios))  # 32000 / 640 = 50 Hz
    bps = bandwidth_per_codebook(frame_rate, c.bins)
    print(f"{name:14s} {frame_rate} Hz x log2({c.bins}) = {bps:.0f} bps per codebook, "
          f"{c.n_q} codebooks = {c.n_q * bps / 1000:.1f} kbps")
# encodec_24khz  75 Hz x log2(1024) = 750 bps per codebook, 32 codebooks = 24.0 kbps
# encodec_32khz  50 Hz x log2(2048) = 550 bps per codebook, 4 codebooks = 2.2 kbps
# encodec_16khz  50 Hz x log2(2048) = 550 bps per codebook, 4 codebooks = 2.2 kbps
# tiny           50 Hz x log2(256) = 400 bps per codebook, 8 codebooks = 3.2 kbps
# small          50 Hz x log2(256) = 400 bps per codebook, 8 codebooks = 3.2 kbps
ks = [n_q_for_bandwidth(bw, 75, 1024) for bw in (1.5, 3, 6, 12, 24)]
print("encodec_24khz at 1.5, 3, 6, 12, 24 kbps ->", ks, "codebooks")
# encodec_24khz at 1.5, 3, 6, 12, 24 kbps -> [2, 4, 8, 16, 32] codebooks
assert ks == [2, 4, 8, 16, 32] and n_q_for_bandwidth(2.2, 50, 2048) == 4

# %% [markdown]
# ## Step 11. Codebook usage and perplexity
#
# Two numbers tell whether the codebooks are healthy (`codebook_usage`, logged during training):
# *usage*, the fraction of codes used at least once, and *perplexity*, exp(entropy) of the code
# histogram: the number of equally likely codes with the same entropy (at most `bins`). Later
# codebooks quantize smaller, noise-like residuals, so their codes are used more evenly.
# Target: usage close to 1 for every codebook of the step-8 RVQ; the histograms.

# %%
codes = mel_rvq.encode(train)  # [B, K, frames]
usage, ppl = codebook_usage(codes, bins)
print("usage     ", [round(u, 2) for u in usage.tolist()])
print("perplexity", [round(p) for p in ppl.tolist()], f"of {bins}")
# usage      [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
# perplexity [155, 204, 202, 197, 201, 199, 200, 206] of 256
assert usage.min() > 0.8

fig, axes = plt.subplots(2, 4, figsize=(14, 5), sharex=True, sharey=True, layout="constrained")
for k, ax in enumerate(axes.flat[:n_q]):
    hist = torch.bincount(codes[:, k].flatten(), minlength=bins).sort(descending=True).values
    ax.bar(range(bins), hist.cpu() / hist.sum().item(), width=1.0)
    ax.set_title(f"codebook {k + 1}: perplexity {ppl[k]:.0f}")
fig.supxlabel("codes, most used first")
fig.supylabel("share of frames")
save(fig, "01_codebook_usage.png")

# %% [markdown]
# ## Errata and notes
#
# - `quantizer.py` deviates from the official code in training only (inference is identical):
#   after k-means it sets `embed_avg = embed * count` (official: `embed_avg = embed`, which shrinks
#   every code on the first EMA step), and its dead-code replacement runs after the EMA step and
#   resets `embed_avg` and `cluster_size` too (the official one is overwritten by the EMA step of
#   the same call, so it never takes effect). See the README, "Deviations from the official code".
# - The dead-code threshold is a count per batch: what is "dead" depends on how many vectors a
#   batch holds per code (step 4). The `tiny` codec, trained with small CPU batches, uses 256 codes
#   and a threshold of 0.1 instead of EnCodec's 1024-2048 codes and 2.
# - The commitment loss here is the mean over stages; AudioCraft before 1.2.0 applied it to the
#   first stage only (its CHANGELOG).
# - Step 8 quantizes mel frames directly, to see RVQ on audio without a trained encoder; EnCodec
#   quantizes 128-dim encoder latents, which are learnt to be easy to quantize.
# - Next: tutorial 02 puts the RVQ inside the EnCodec autoencoder.
