# %% [markdown]
# # 02 The EnCodec codec
#
# EnCodec (arXiv 2210.13438) is a convolutional autoencoder (SEANet, arXiv 2009.02095) with the
# residual vector quantizer of tutorial 01 in its bottleneck:
#
#     wav [B, C, T] --encoder--> latent [B, D, T/hop] --RVQ--> codes [B, K, T/hop]  (integers)
#     codes --lookup--> latent --decoder--> wav [B, C, T/hop * hop]
#
# MusicGen (arXiv 2306.05284) and AudioGen (arXiv 2209.15352) never model audio samples: their
# language model predicts these codes. With `codec.py`, `losses.py` (the training objectives and
# metrics), `train_codec.py` and `checkpoint.py` (loading) we look at
#
# 1. the presets: sample rate, hop, frame rate, bitrate, parameters
# 2. the padding rules of the convolutions
# 3. the length rule of decode(encode(x))
# 4. a few training steps (`train_codec.train_step`)
# 5. the codec we study: a trained checkpoint, or the few-step model
# 6. spectrograms and sound before and after the codec
# 7. quality vs bitrate: SI-SNR and mel distance against the number of codebooks
# 8. what the codec keeps, band by band and sound by sound
# 9. the official checkpoints
# 10. EnCodec as a compressor: an `.ecdc` file, the entropy LM's bits per code, arithmetic coding by hand
#
# Open it as a notebook (Jupyter + jupytext, or VS Code): every sound plays under its cell, beside
# its spectrogram. Or run it, `python tutorials/02_encodec.py`: pictures and sounds go to files.
# `TUTORIAL_FAST=1` shrinks every step; `TUTORIAL_OUT=dir` moves the output folder (default
# `tutorials/out/`). Pasted numbers come from full mode on a CPU; yours will differ in the last
# digits (and a lot in steps 5-8, which depend on how long your codec was trained). The
# assertions hold everywhere.

# %%
import math
import os
import sys
import time
from contextlib import nullcontext
from pathlib import Path

HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
sys.path.insert(0, str(HERE if (HERE / "common.py").exists() else HERE / "tutorials"))
from common import FAST, OUT, ROOT, device, listen, save  # noqa: E402

import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from checkpoint import load_codec  # noqa: E402
from codec import PRESETS, Codec, Conv1d, extra_padding  # noqa: E402
from data import BuiltinDataset  # noqa: E402
from losses import (Balancer, MSSTFTDiscriminator, band_edges, band_levels, mel_distance,  # noqa: E402
                    mel_spectrogram, si_snr)
from quantizer import codebook_usage, n_q_for_bandwidth  # noqa: E402
from train_codec import Run, get_batch, train_step  # noqa: E402

# %% [markdown]
# ## Step 1. Presets: frame rate, bitrate, parameters
#
# The encoder downsamples by every ratio in turn, so one frame covers hop = prod(ratios) samples
# and `frame_rate` = sample_rate / hop frames per second. Each frame carries K codes of
# log2(bins) bits. `tiny` is this repo's small codec (16 kHz, like AudioGen's). We count
# parameters on the `meta` device: shapes only, no memory, no init time.
# Target: the table; 50 Hz for MusicGen's codec, about 56.9M parameters for it, 14.85M for the
# 24 kHz one.

# %%
for name, c in PRESETS.items():
    with torch.device("meta"):  # build without allocating: enough to count parameters
        model = Codec(c)
    n_params = sum(p.numel() for p in model.parameters())
    kbps = c.n_q * math.log2(c.bins) * model.frame_rate / 1000
    print(f"{name:14s} {c.sample_rate:5d} Hz  hop {model.hop_length}  {model.frame_rate} Hz  "
          f"{c.n_q:2d} x {c.bins} codes = {kbps:4.1f} kbps  {n_params / 1e6:6.2f}M params")
    assert model.frame_rate == c.sample_rate // model.hop_length  # all presets: an integer rate
# encodec_24khz  24000 Hz  hop 320  75 Hz  32 x 1024 codes = 24.0 kbps   14.85M params
# encodec_32khz  32000 Hz  hop 640  50 Hz   4 x 2048 codes =  2.2 kbps   56.88M params
# encodec_16khz  16000 Hz  hop 320  50 Hz   4 x 2048 codes =  2.2 kbps   56.82M params
# tiny           16000 Hz  hop 320  50 Hz   8 x 256 codes =  3.2 kbps    3.68M params
# small          16000 Hz  hop 320  50 Hz   8 x 256 codes =  3.2 kbps   14.22M params

torch.manual_seed(0)
model = Codec(PRESETS["tiny"]).to(device)
for part in ("encoder", "quantizer", "decoder"):
    module = getattr(model, part)
    print(f"{part:9s} {sum(p.numel() for p in module.parameters()) / 1e6:.2f}M parameters, "
          f"{sum(b.numel() for b in module.buffers()) / 1e6:.2f}M buffer values")
# encoder   1.84M parameters, 0.00M buffer values
# quantizer 0.00M parameters, 0.26M buffer values
# decoder   1.84M parameters, 0.00M buffer values
# (the codebooks are buffers: learnt by k-means + EMA, not by the optimizer; tutorial 01)

# %% [markdown]
# ## Step 2. Padding rules
#
# A convolution with kernel k and stride s over L samples gives floor((L - k + p) / s) + 1 frames
# for a padding p. EnCodec pads k - s samples (split evenly, or all on the left if causal) plus
# `extra_padding` on the right so that the last window is full: the output then has exactly
# ceil(L / s) frames and no sample is dropped. The strided convs have kernel 2s.
# Target: `Conv1d` gives ceil(L / s) frames for every L.

# %%
conv = Conv1d(1, 1, kernel_size=8, stride=4, pad_mode="constant").to(device)
for L in (13, 16, 17, 20):
    extra = extra_padding(L, kernel_size=8, stride=4, padding_total=8 - 4)
    frames = conv(torch.zeros(1, 1, L, device=device)).shape[-1]
    print(f"L = {L}: pad 4 + extra {extra} -> {frames} frames = ceil({L} / 4)")
    assert frames == math.ceil(L / 4)
# L = 13: pad 4 + extra 3 -> 4 frames = ceil(13 / 4)
# L = 16: pad 4 + extra 0 -> 4 frames = ceil(16 / 4)
# L = 17: pad 4 + extra 3 -> 5 frames = ceil(17 / 4)
# L = 20: pad 4 + extra 0 -> 5 frames = ceil(20 / 4)

# %% [markdown]
# ## Step 3. The length rule of decode(encode(x))
#
# Stacking the convs, `encode` gives ceil(T / hop) frames (ceil of ceil is ceil of the product),
# and each frame decodes to hop samples, so decode(encode(x)) is ceil(T / hop) * hop samples long:
# up to hop - 1 samples of padding at the end, which you cut if you know T (`forward` does).
#
# A fresh codec's codebooks are empty (all zeros): codebook k runs k-means on the first training
# batch that reaches it. With quantizer dropout (`tiny` has it) a batch reaches only the first
# K ~ U{1..n_q} codebooks, so in real training the last ones start a few steps later. Here we
# switch dropout off for one batch of built-in clips, so that all of them start now. The batch
# holds more latent frames (32 clips x 25) than a codebook has codes (256): k-means on fewer
# vectors than codes would copy them all, and the next codebook would see residuals of zero.
# Target: every codebook is initialised; the printed lengths.

# %%
sr, hop = model.sample_rate, model.hop_length
torch.manual_seed(0)
clips = BuiltinDataset(1_000_000, duration=0.25 if FAST else 0.5)  # clip i = synth.make_clip(i)
model.train()
model.quantizer.q_dropout = False
with torch.no_grad():
    model(get_batch(clips, step=0, batch_size=32, seed=0).to(device))  # k-means init of all 8 codebooks
model.quantizer.q_dropout = True
print("initialised:", [int(layer.inited.item()) for layer in model.quantizer.layers])
# initialised: [1, 1, 1, 1, 1, 1, 1, 1]
model.eval()
for T in (sr, sr + 1, 12345, 1):
    codes = model.encode(torch.randn(1, 1, T, device=device))  # [B, K, frames]
    out = model.decode(codes)  # [B, C, frames * hop]
    print(f"T = {T:5d}: codes {tuple(codes.shape)}, decoded {out.shape[-1]} samples")
    assert codes.shape[-1] == math.ceil(T / hop) and out.shape[-1] == codes.shape[-1] * hop
# T = 16000: codes (1, 8, 50), decoded 16000 samples
# T = 16001: codes (1, 8, 51), decoded 16320 samples
# T = 12345: codes (1, 8, 39), decoded 12480 samples
# T =     1: codes (1, 8, 1), decoded 320 samples
recon, _ = model(torch.randn(1, 1, 12345, device=device))
print("forward() trims to the input:", recon.shape[-1])
# forward() trims to the input: 12345

# %% [markdown]
# ## Step 4. A few training steps
#
# `train_codec.train_step` is one update of the MS-STFT discriminator, then one of the codec: L1
# on the waveform, a multi-scale mel loss, a hinge adversarial loss and feature matching, mixed by
# the loss *balancer*, plus the commitment loss with weight 1. Two of these parts are new here:
#
# - the *discriminator* is a second network, trained to tell real clips from decoded ones by their
#   spectrograms (STFTs at five window sizes). The codec is trained to fool it (the adversarial
#   loss) and to make the discriminator's inner feature maps of a decoded clip match those of the
#   real clip (feature matching). L1 and mel losses measure a distance to the real clip, and where
#   the codes leave the detail uncertain (noise, the top octaves) the guess that minimises them is
#   a smoothed one; the discriminator penalises what does not sound real.
# - the *balancer* (EnCodec Sec. 3.4) rescales the gradient of each loss with respect to the decoded
#   waveform by a running average of its norm, so that each loss gets the share of the gradient
#   its weight says, whatever its scale (an adversarial loss has no natural scale).
#
# The discriminator reads each step's clips three times, each for a reason: (1) its own update, on
# the real and the decoded clips, the decoded ones detached, so that its loss trains it alone;
# (2) the codec's adversarial and feature losses on the decoded clips, the gradient flowing back
# through them into the codec, by the discriminator just updated (the outputs of (1) come from the
# old weights and carry no gradient to the codec); (3) the updated discriminator's feature maps of
# the real clips, without gradients, the targets of feature matching. Tutorial 03 writes each loss,
# the discriminator and the balancer out and checks them against `losses.py`.
# Clips come from `synth.py` (generated, nothing to download). The recipe of the shipped codec has
# two phases:
#
#     python train_codec.py       # 1: L1 + mel only, 8000 steps (about half an hour on 2 CPU cores)
#     python train_codec.py --init runs/codec/ckpt.pt --out-dir runs/codec_gan --w-l1 0.1 \
#         --w-adv 4 --w-feat 4 --lr 3e-4 --steps 3000 --eval-every 500   # 2: + the discriminator
#
# (the second phase's steps cost about five of the first's, for those three passes and their
# backward). Here we train the model of step 3 with all four losses, AudioCraft's weights, for a
# few steps (40 of 4 clips on a CPU; on a GPU 600 of 8, in bf16) and watch the losses move.
# bf16 (bfloat16) is a 16-bit float with float32's 8 exponent bits, so the same range, and 8
# significant bits (2 to 3 decimal digits); `torch.autocast` runs the matrix products and
# convolutions in it on a GPU, and keeps the weights and the reductions (sums, norms, softmax)
# in float32.
# A commitment loss of exactly 0 would mean that the latents sit on codes: no bottleneck at all.
# Target: the loss curve `02_train_losses.png`; every loss is finite, the commitment loss > 0.

# %%
torch.manual_seed(0)
steps, batch = (3, 2) if FAST else ((600, 8) if device == "cuda" else (40, 4))
disc = MSSTFTDiscriminator(filters=16).to(device).train()
opt = torch.optim.AdamW(model.parameters(), lr=3e-4, betas=(0.5, 0.9))  # EnCodec Sec. 4.4
opt_d = torch.optim.AdamW(disc.parameters(), lr=3e-4, betas=(0.5, 0.9))
balancer = Balancer({"l1": 0.1, "msspec": 2.0, "adv": 4.0, "feat": 4.0})  # the official weights
ctx = torch.autocast("cuda", dtype=torch.bfloat16) if device == "cuda" else nullcontext()
model.train()
run = Run(model, disc, opt, opt_d, balancer, ctx=ctx)  # what train_step updates, in one object
history, t0 = [], time.time()
for step in range(1, steps + 1):
    wav = get_batch(clips, step, batch, seed=0).to(device)  # [B, 1, T]
    history.append(train_step(run, wav))
model.eval()
print(f"{steps} steps of {batch} x {clips.duration} s in {time.time() - t0:.0f} s; last:",
      {k: round(v, 3) for k, v in history[-1].items()})
# 40 steps of 4 x 0.5 s in 25 s; last: {'l1': 0.077, 'msspec': 1.276, 'adv': 0.01, 'feat': 0.003, 'd': 2.0, 'commit': 0.015}
# (full mode, one thread on a 2-core CPU; fast mode runs 3 steps of 2 clips of 0.25 s, in a few
# seconds. The seconds are your machine's; the losses move in the last digits with the number of
# threads. A GPU trains another size, 600 steps of 8 clips in bf16, so other numbers.)
assert all(math.isfinite(v) for h in history for v in h.values()) and all(h["commit"] > 0 for h in history)

fig, axes = plt.subplots(1, 3, figsize=(13, 3.2), layout="constrained")
for ax, keys in zip(axes, (("l1", "msspec"), ("adv", "feat", "d"), ("commit",))):
    for k in keys:
        ax.plot([h[k] for h in history], label=k)
    ax.set_xlabel("step")
    ax.legend()
fig.suptitle("codec training losses (d: the discriminator's hinge loss)")
save(fig, "02_train_losses.png")

# %% [markdown]
# ## Step 5. The codec we study
#
# A few steps give a poor codec. If there is a trained one (the shipped `checkpoints/codec.pt`,
# or, in full mode, yours from `python train_codec.py --out-dir runs/codec_tiny`, or the file
# named by `CODEC_CHECKPOINT`), `checkpoint.load_codec` rebuilds it from the config stored in
# the checkpoint and we study that one; otherwise the few-step model.
# Two health checks from tutorial 01: the usage and perplexity of each codebook on held-out
# clips, and the share of codes whose EMA count N_i is under the dead-code threshold (codes that
# won almost nothing lately and get replaced by batch vectors).
# Target: the printed source; codes of shape [B, K, frames]; the two health checks.

# %%
candidates = [ROOT / "checkpoints" / "codec.pt"]  # shipped with the repository
if not FAST:  # fast mode (CI) reads only what the repository holds
    candidates += [Path(os.environ.get("CODEC_CHECKPOINT", ROOT / "runs" / "codec_tiny" / "ckpt.pt"))]
found = [p for p in candidates if p.is_file()]
if found:
    codec = load_codec(found[0]).to(device)  # eval mode, config from the checkpoint
    source = found[0].name if found[0].name != "ckpt.pt" else f"{found[0].parent.name}/ckpt.pt"
else:
    codec, source = model, f"the {steps}-step model of step 4"
print("studying", source, "|", codec.config.n_q, "x", codec.config.bins, "codes at", codec.frame_rate, "Hz")
# studying codec.pt | 8 x 256 codes at 50 Hz

n_valid, dur = (2, 1.0) if FAST else (16, 2.0)
valid = BuiltinDataset(n_valid, duration=dur, sample_rate=codec.sample_rate, split="valid")
wav = torch.stack([valid[i]["wav"] for i in range(n_valid)]).to(device)  # [B, 1, T]
codes = codec.encode(wav)  # [B, K, frames]
usage, ppl = codebook_usage(codes, codec.config.bins)
print(f"codes {tuple(codes.shape)}; usage per codebook {[round(u, 2) for u in usage.tolist()]}")
print(f"perplexity {[round(p) for p in ppl.tolist()]} of {codec.config.bins}")
threshold = codec.config.threshold_ema_dead_code
dead = [(layer.cluster_size < threshold).float().mean().item() for layer in codec.quantizer.layers]
print(f"share of codes with N_i < {threshold}: {[round(d, 2) for d in dead]}")
# codes (16, 8, 100); usage per codebook [0.66, 0.87, 0.88, 0.89, 0.89, 0.89, 0.85, 0.84]
# perplexity [88, 149, 145, 150, 145, 150, 140, 125] of 256
# share of codes with N_i < 0.1: [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.02]
# (CPU, the shipped codec, checkpoints/codec.pt: 16 held-out clips of 2 s, 1600 frames, use 66-89%
# of each codebook's 256 codes, the first codebook the fewest, and almost no code is dead. The
# 40-step model of step 4, used when no checkpoint is found, still maps every clip to nearly the
# same latent: a handful of codes do all the work.)
assert codes.shape == (n_valid, codec.config.n_q, math.ceil(wav.shape[-1] / codec.hop_length))

# %% [markdown]
# ## Step 6. Before and after the codec
#
# Look and listen: a held-out clip, decoded from 1 codebook and from all of them. The mel
# spectrogram (n_fft 1024, hop 256, 64 mel bands) is the one of the training losses
# (`losses.mel_spectrogram`).
# Target: `02_spectrograms.png` and, under the cell, the three sounds in the order of the panels
# (also written as `02_original.wav`, `02_codec_1cb.wav`, `02_codec_{K}cb.wav`).

# %%
T, K = wav.shape[-1], codec.config.n_q
versions = {"original": wav[:1]}
for k in (1, K):
    versions[f"{k} codebook(s), {k * math.log2(codec.config.bins) * codec.frame_rate / 1000:.1f} kbps"] = \
        codec.decode(codec.encode(wav[:1], n_q=k))[..., :T]  # [1, 1, T]: cut the end padding
fig, axes = plt.subplots(1, 3, figsize=(14, 3.4), sharey=True, layout="constrained")
for ax, (title, w) in zip(axes, versions.items()):
    mel = torch.log10(1e-5 + mel_spectrogram(w, codec.sample_rate, 1024, 256))[0]  # [64, frames]
    ax.imshow(mel.cpu(), origin="lower", aspect="auto", vmin=-5, vmax=1, cmap="magma")
    ax.set_title(title)
    ax.set_xlabel("frame (16 ms)")
axes[0].set_ylabel("mel band")
fig.suptitle(f"{valid[0]['text']!r} through the codec ({source})")
save(fig, "02_spectrograms.png")
for name, w in zip(("original", "codec_1cb", f"codec_{K}cb"), versions.values()):
    listen(w[0], codec.sample_rate, f"02_{name}.wav")
# (CPU, the shipped codec, the clip 'happy organ drums fast': the organ's harmonics, the horizontal
# lines, come through at 1 codebook and at 8; the drums' noise, the broad vertical bands between
# them, does not, and the silences fill with a faint hiss. Noise under a sustained tone is what
# this tiny codec still loses, at any bitrate: RESULTS.md measures it per class and band.)

# %% [markdown]
# ## Step 7. Quality vs bitrate
#
# Decoding from the first k codebooks gives k * log2(bins) * frame_rate bits per second. Two
# measures: SI-SNR (scale-invariant signal-to-noise ratio in dB, higher is better: it compares
# waveforms, so it punishes phase changes that you cannot hear) and the mel distance (L1 between
# log-mel spectrograms, lower is better). A codec trained with quantizer dropout (`tiny` is)
# improves with every codebook. We also measure what the RVQ alone does: the relative error of
# the quantized latent, ||decode(codes) - latent||^2 / ||latent||^2.
# Target: `02_bitrate_quality.png`; the latent error falls from 1 to K codebooks.

# %%
with torch.no_grad():
    latent = codec.encoder.model(wav)  # [B, D, frames]: the encoder output, before the RVQ
rows = []
for k in range(1, K + 1):
    codes = codec.encode(wav, n_q=k)
    recon = codec.decode(codes)[..., :T]
    lat_err = ((codec.quantizer.decode(codes) - latent).pow(2).sum() / latent.pow(2).sum()).item()
    kbps = k * math.log2(codec.config.bins) * codec.frame_rate / 1000
    rows.append((k, kbps, si_snr(recon, wav).mean().item(),
                 mel_distance(recon, wav, codec.sample_rate).item(), lat_err))
    print(f"{k} codebook(s) {kbps:.1f} kbps: SI-SNR {rows[-1][2]:6.2f} dB, mel distance {rows[-1][3]:.3f}, "
          f"latent error {lat_err:.3f}")
# 1 codebook(s) 0.4 kbps: SI-SNR   0.53 dB, mel distance 0.606, latent error 0.211
# 2 codebook(s) 0.8 kbps: SI-SNR   3.88 dB, mel distance 0.545, latent error 0.115
# ...
# 8 codebook(s) 3.2 kbps: SI-SNR   7.85 dB, mel distance 0.523, latent error 0.019
# (CPU, the shipped codec, checkpoints/codec.pt: SI-SNR rises and the mel distance falls with every
# codebook. The 40-step model of step 4, used when no checkpoint is found, is not yet correlated
# with its input: about -51 dB whatever the bitrate.)
assert rows[-1][4] < rows[0][4]

fig, axes = plt.subplots(1, 2, figsize=(10, 3.5), layout="constrained")
kbps = [r[1] for r in rows]
axes[0].plot(kbps, [r[2] for r in rows], "o-")
axes[0].set_ylabel("SI-SNR (dB), higher is better")
axes[1].plot(kbps, [r[3] for r in rows], "o-", color="C1")
axes[1].set_ylabel("mel distance, lower is better")
for ax in axes:
    ax.set_xlabel(f"bitrate (kbps): {rows[0][1]} per codebook")
fig.suptitle(f"quality vs bitrate on {n_valid} held-out clips ({source})")
save(fig, "02_bitrate_quality.png")

# %% [markdown]
# ## Step 8. What the codec keeps, band by band
#
# SI-SNR and the mel distance are averages: a codec can score well on them and still lose the top
# of the spectrum, because most of a clip's energy sits below 500 Hz. `losses.band_levels`
# measures, per octave band (0-0.5, 0.5-1, 1-2, 2-4, 4-8 kHz at 16 kHz), the energy that comes
# out over the energy that went in: 0 dB is kept, -10 dB a tenth, -30 dB gone. Grouped by the
# class of each held-out clip (its source or instrument), this is what a listener notices first.
# Which losses a codec was trained with shows here: trained on the reconstruction losses alone
# (the first phase of step 4's recipe), it keeps tonal low sounds and loses the top octaves of
# chirps, ticks and noise; the discriminator phase brings most of them back. Tutorial 03 shows
# why, and hears it; `python evaluation/eval_codec.py` prints the full table on 300 clips
# (RESULTS.md has it for both phases).
# Target: the printed table and `02_band_levels.png`.

# %%
n_band = 8 if FAST else 96
items = [BuiltinDataset(n_band, duration=dur, sample_rate=codec.sample_rate, split="valid")[i] for i in range(n_band)]
band_wav = torch.stack([it["wav"] for it in items]).to(device)  # [N, 1, T]
kind = [it["labels"]["source"] if it["labels"]["kind"] == "sfx" else it["labels"]["instrument"] for it in items]
with torch.no_grad():
    levels = {k: band_levels(codec.decode(codec.encode(band_wav, n_q=k))[..., :band_wav.shape[-1]], band_wav,
                             codec.sample_rate) for k in (1, 4, K)}  # {k: [N, n_bands] dB}
edges = band_edges(codec.sample_rate)
names = [f"{lo / 1000:g}-{hi / 1000:g}k" for lo, hi in zip(edges, edges[1:])]
shown = [c for c in ("bass", "piano", "drums", "rain", "clock tick", "bird chirp") if c in kind]
print(f"{'median dB, 4 codebooks':24s}" + "".join(f"{n:>9s}" for n in names))
for c in shown + ["all clips"]:
    idx = [i for i, k in enumerate(kind) if k == c or c == "all clips"]
    print(f"{c + f' ({len(idx)})':24s}" + "".join(f"{v:+9.1f}" for v in levels[4][idx].median(0).values.tolist()))
# median dB, 4 codebooks     0-0.5k   0.5-1k     1-2k     2-4k     4-8k
# bass (18)                    +0.3     -2.2    +16.7    +27.2    +44.5
# piano (7)                    +0.5     -0.3     -1.1     -1.5     -2.8
# drums (7)                    +0.4     +5.5     -1.5     -1.1     -2.9
# rain (4)                     -1.2     +0.4     +0.2     -1.4     -3.8
# clock tick (7)               +1.4     -0.3     -4.1    -12.2     +1.5
# bird chirp (3)               +7.5     +4.8    +10.1     -1.1     +0.0
# all clips (96)               +0.6     +0.5     -0.4     -1.0     -0.8
# (CPU, the shipped codec. The bass has next to nothing above 1 kHz: +17 to +45 dB there is the
# decoder's faint noise over an empty band, not a gain. Where they hold their energy the drums,
# the rain and the bird chirp (mostly at 2-4 kHz: -1.1 dB) come back within 4 dB. Still lost:
# clock ticks at 2-4 kHz. Too loud: the chirp's bands below 2 kHz (+5 to +10 dB), which hold little
# of its energy, and the drums at 0.5-1 kHz.)
assert all(v.shape == (n_band, len(names)) for v in levels.values())

fig, ax = plt.subplots(figsize=(8, 3.5), layout="constrained")
for k, v in levels.items():
    ax.plot(names, v.median(0).values.cpu(), "o-", label=f"{k} codebook(s)")
ax.axhline(0, color="gray", lw=0.5)
ax.set(xlabel="band", ylabel="energy out / in (dB), median", title=f"energy kept per band, {n_band} clips ({source})")
ax.legend()
save(fig, "02_band_levels.png")

# %% [markdown]
# ## Step 9. The official checkpoints
#
# `checkpoint.load_codec` also reads the official files, from local disk (nothing is downloaded here):
#
# - EnCodec 24 kHz (original repo), a bare state dict:
#   `wget https://dl.fbaipublicfiles.com/encodec/v0/encodec_24khz-d7cc33bc.th -P checkpoints/`
# - MusicGen's 32 kHz codec, a transformers directory:
#   `huggingface-cli download facebook/encodec_32khz --local-dir checkpoints/encodec_32khz`
# - AudioGen's 16 kHz codec: `compression_state_dict.bin` of `facebook/audiogen-medium`.
#
# This cell runs only when one of the first two is in `checkpoints/`: it prints the SI-SNR of a
# built-in clip at every bandwidth the model was trained for (the 24 kHz model: 1.5 to 24 kbps).
# Target: the printed table, or the note that the files are absent.

# %%
official = [ROOT / "checkpoints" / "encodec_24khz-d7cc33bc.th", ROOT / "checkpoints" / "encodec_32khz"]
present = [p for p in official if p.exists()]
if not present:
    print("no official codec in checkpoints/: see the commands above")
# no official codec in checkpoints/: see the commands above
for path in present:
    big = load_codec(path).to(device)
    clip = BuiltinDataset(1, duration=dur, sample_rate=big.sample_rate, split="valid")[0]["wav"][None].to(device)
    bps = math.log2(big.config.bins) * big.frame_rate
    for bw in ((1.5, 3.0, 6.0, 12.0, 24.0) if big.config.n_q == 32 else (big.config.n_q * bps / 1000,)):
        k = n_q_for_bandwidth(bw, big.frame_rate, big.config.bins)
        recon = big.decode(big.encode(clip, n_q=k))[..., :clip.shape[-1]]
        print(f"{path.name}: {bw:4.1f} kbps = {k:2d} codebooks, SI-SNR {si_snr(recon, clip).item():5.2f} dB")

# %% [markdown]
# ## Step 10. EnCodec as a compressor
#
# The codes are the compressed audio: `compress.compress` packs them into the official `.ecdc`
# format (a header, then log2(bins) bits per code; `python compress.py in.wav out.ecdc` on the
# command line). EnCodec Sec. 3.3 goes further, with two parts:
#
# - an *entropy LM*, a small transformer over frames (`entropy.EntropyLM`). From the codes of frames
#   0 .. t-1 it predicts, for each codebook k, a distribution over the bins codes of frame t,
#   p(c[k, t] | frames < t): all K codebooks of a frame at once, from past frames only, since the
#   decoder knows frame t only once it has decoded it. Sound is predictable from its past (a held
#   note, a steady noise), so the code that comes often has a probability well above 1 / bins.
# - an *arithmetic coder*, which spends about -log2 p bits on a code of probability p: 1 bit for
#   p = 1/2, 8 bits for p = 1/256, where the fixed width spends log2(bins) bits on every code.
#
# `entropy.lm_bits` gives the -log2 p of every code; with the shipped codec we read them with its
# entropy LM, `checkpoints/entropy_lm.pt`. The clip is the first held-out one, 2 s long in both
# modes (in full mode, the clip of step 6).
# Target: the bits per codebook, under the fixed width.

# %%
import compress as ecdc  # noqa: E402  (the script's functions, as train_codec's in step 4)
from checkpoint import load_entropy_lm  # noqa: E402
from entropy import (ArithmeticDecoder, ArithmeticEncoder, EntropyLM, EntropyLMConfig, lm_bits,  # noqa: E402
                     quantized_cdf)

codec.cpu()  # compress.py works on the CPU
clip = BuiltinDataset(1, duration=2.0, sample_rate=codec.sample_rate, split="valid")[0]["wav"]  # [1, T]
data, codes = ecdc.compress(codec, clip, K)  # all K codebooks; codes [K, frames]
seconds = clip.shape[-1] / codec.sample_rate
print(f"{len(data)} bytes for {seconds:.1f} s = {8 * len(data) / seconds / 1000:.2f} kbps; 16-bit PCM is "
      f"{2 * clip.shape[-1]} bytes")
# 866 bytes for 2.0 s = 3.46 kbps; 16-bit PCM is 64000 bytes
if source == "codec.pt":  # the entropy LM belongs to the codec it was trained on
    elm = load_entropy_lm(ROOT / "checkpoints" / "entropy_lm.pt", codec.frame_rate)
else:  # no LM for the few-step model: an untrained one, which runs the same checks and saves nothing
    elm = EntropyLM(EntropyLMConfig(n_q=K, card=codec.config.bins, dim=64, num_heads=4, num_layers=3)).eval()
with torch.no_grad():
    bits = lm_bits(elm, codes[None])[0].mean(1)  # [K]: bits per code of each codebook
print("bits per code with the entropy LM, codebook 1..K:", [round(b, 2) for b in bits.tolist()],
      f"(fixed: {math.log2(codec.config.bins):g})")
# bits per code with the entropy LM, codebook 1..K: [3.38, 6.12, 6.61, 7.0, 7.22, 7.19, 7.31, 7.28] (fixed: 8)
# (the first codebook, the coarse one, is the most predictable from the past; the later ones
# code what is left, closer to noise.)
assert bits.mean() < math.log2(codec.config.bins) or source != "codec.pt"

# %% [markdown]
# ### The arithmetic coder by hand
#
# The coder holds an interval of [0, 1), all of it at the start. The CDF cuts [0, 1) into one slice
# per symbol, [cdf(s - 1), cdf(s)), of width p(s); coding s shrinks the interval to the same slice
# of itself. After N symbols its width is the product of their probabilities, and any number inside
# it names all N symbols (the decoder retraces the cuts): writing one down takes about -log2 of the
# width = sum of -log2 p bits. `entropy.py` does it in integers, as the official coder does:
#
# - the CDF is quantised to integers in [0, 2**24] (`quantized_cdf`): symbol s gets a slice of
#   width floor((1 - alpha) 2**24 p(s)) + 2, alpha = 2 bins / 2**24, a little of the uniform mixed
#   in, so that a code the LM deems impossible still has a slice (and costs <= 23 bits). The
#   decoder must find the same integers, hence integers: a float summed in another order can move.
# - the interval is [low, high], integers of n bits: the real interval [low, high + 1) / 2**n. It
#   starts as low = high = 0 at n = 0 bits, which is [0, 1).
# - renormalisation: before each symbol, while the interval holds fewer than 2**24 integers, one more
#   bit of precision at both ends, low -> 2 low, high -> 2 high + 1 (the same interval under a
#   magnifier twice as strong), so that every slice of width >= 2 keeps at least one integer.
# - the symbol's slice scaled to the interval's w = high - low + 1 integers, rounded inwards: low
#   moves up by ceil(cdf(s - 1) w / 2**24), high becomes the old low + floor((cdf(s) - 1) w / 2**24).
# - while low and high start with the same bit, that bit is settled (the interval only shrinks
#   inside itself): write it, drop it from both, n -> n - 1. An interval across a half
#   (low = 0111..., high = 1000...) settles nothing, and n grows: Python's integers have no limit.
# - at the end, the n bits of low, a number inside the interval. Bits go into bytes 8 at a time, the
#   first bit the least significant.
#
# First a toy alphabet, symbols of probability 0.7, 0.2, 0.1 (0.51, 2.32 and 3.32 bits); then the
# clip's codes, each with the CDF that the entropy LM gives it.
# Target: our bytes equal `entropy.ArithmeticEncoder`'s, on the toy message and on the clip.

# %%
def arithmetic_encode(symbols, cdfs, precision=24):
    """Symbols and their integer CDFs (cdf[s]: the end of symbol s's slice of [0, 2**precision)) -> bytes."""
    low, high, n = 0, 0, 0  # the interval [low, high] at n bits: [0, 1)
    bits = []
    for s, cdf in zip(symbols, cdfs):
        while high - low + 1 < 2 ** precision:  # renormalise: one more bit of precision
            low, high, n = 2 * low, 2 * high + 1, n + 1
        w = high - low + 1
        start, end = (cdf[s - 1] if s > 0 else 0), cdf[s]  # the slice [start, end) of [0, 2**precision)
        # the slice scaled to the interval, rounded inwards: ceil at its start, floor at its last integer
        low, high = low + ((start * w + 2 ** precision - 1) >> precision), low + (((end - 1) * w) >> precision)
        while n > 0 and low >> (n - 1) == high >> (n - 1):  # the leading bit both share is settled
            bit = low >> (n - 1)
            bits.append(bit)
            low, high, n = low - (bit << (n - 1)), high - (bit << (n - 1)), n - 1
    bits += [(low >> i) & 1 for i in reversed(range(n))]  # low's n bits: a number inside the interval
    # 8 bits a byte, the first bit the least significant (the official bit packer's order)
    return bytes(sum(b << i for i, b in enumerate(bits[j:j + 8])) for j in range(0, len(bits), 8))


def library_encode(symbols, cdfs):
    """The same with entropy.ArithmeticEncoder."""
    encoder = ArithmeticEncoder()
    for s, cdf in zip(symbols, cdfs):
        encoder.push(s, cdf)
    return encoder.finish()


probs = torch.tensor([0.7, 0.2, 0.1])
cdf = quantized_cdf(probs).tolist()  # integer slice ends in [0, 2**24]: the same integers on both sides
message = [0, 0, 1, 0, 2, 0, 0, 1, 0, 0]
coded = arithmetic_encode(message, [cdf] * len(message))
decoder = ArithmeticDecoder(coded)  # the library's decoder reads our bytes
decoded = [decoder.pull(cdf) for _ in message]
ideal = -probs[message].log2().sum().item()
print("cdf", cdf)
print(f"{len(message)} symbols, {ideal:.1f} bits of information, coded in {8 * len(coded)} bits "
      f"({coded.hex()}); decoded back: {decoded == message}")
# cdf [11744049, 15099493, 16777216]
# 10 symbols, 11.6 bits of information, coded in 40 bits (16ec5c6d01); decoded back: True
# (the coder ends by writing all n bits of low, here 27, where a couple of bits past the information
# would do; and the last byte is padded: a short message pays for both)
assert coded == library_encode(message, [cdf] * len(message)) and decoded == message

# %% [markdown]
# Now the clip. The entropy LM runs frame by frame, as `entropy.lm_encode` (and the decoder) must:
# one step gives frame t's K distributions from frames < t, each quantised to a CDF, and code
# c[k, t] is coded with its own. The bytes should come to the sum of -log2 p over the codes, plus
# the coder's last bits. `compress.compress(..., lm)` is what `python compress.py in.wav out.ecdc
# --lm checkpoints/entropy_lm.pt` runs: its payload after the header must be our bytes.
# Target: our bytes equal the library's and the `--lm` file's payload; the file decodes back to the
# codes; the printed size of the `--lm` file against the fixed width's 866 bytes.

# %%
symbols, cdfs = [], []  # in the coder's order: frame 0's K codes, then frame 1's, ...
previous, states, offset = torch.zeros(1, K, 1, dtype=torch.long), None, 0  # 0: no frame before the first
with torch.no_grad():
    for t in range(codes.shape[1]):
        probs, states, offset = elm(previous, states, offset)  # [1, bins, K, 1]: p(frame t | frames < t)
        for k in range(K):
            symbols.append(int(codes[k, t]))
            cdfs.append(quantized_cdf(probs[0, :, k, 0]).tolist())
        previous = 1 + codes[None, :, t:t + 1]  # [1, K, 1]: the LM's input, 1 + code (0 is "none")
p_code = [(c[s] - (c[s - 1] if s > 0 else 0)) / 2 ** 24 for s, c in zip(symbols, cdfs)]  # each slice's width
frame = p_code[10 * K:11 * K]  # the K codes of frame 10
print("frame 10, codebook 1..K: p    ", " ".join(f"{p:7.2g}" for p in frame))
print("                         bits ", " ".join(f"{-math.log2(p):7.1f}" for p in frame))
# frame 10, codebook 1..K: p        0.25 0.00047   0.062  0.0035  0.0034  0.0058 0.00021  0.0032
#                          bits      2.0    11.1     4.0     8.2     8.2     7.4    12.2     8.3
# (a code the LM expected costs a few bits, one it did not expect more than the fixed 8: what
# counts is the sum)
info = -sum(math.log2(p) for p in p_code)  # bits
coded = arithmetic_encode(symbols, cdfs)
print(f"by hand: {len(symbols)} codes in {len(coded)} bytes (sum of -log2 p: {info / 8:.1f} bytes), "
      f"the library's bytes: {coded == library_encode(symbols, cdfs)}")
# by hand: 800 codes in 654 bytes (sum of -log2 p: 651.4 bytes), the library's bytes: True
data_lm, _ = ecdc.compress(codec, clip, K, elm)  # the --lm path
print(f"--lm: {len(data_lm)} bytes for {seconds:.1f} s = {8 * len(data_lm) / seconds / 1000:.2f} kbps, "
      f"{1 - len(data_lm) / len(data):.0%} fewer than the fixed width's {len(data)}")
# --lm: 719 bytes for 2.0 s = 2.88 kbps, 17% fewer than the fixed width's 866
# (the header takes 66 bytes, 65 with the metadata's "lm": true; the payload shrinks from 800 bytes,
# one per code, to our 654, 6.5 bits per code: the mean of lm_bits above. The price is time: one
# step of the LM per frame, to write the file and to read it.)
assert coded == library_encode(symbols, cdfs) and ecdc.read_ecdc(data_lm)[1] == coded
assert info <= 8 * len(coded) < info + 64  # the coder's overhead: the last bits of low and the roundings
assert ecdc.decompress(data_lm, codec, elm)[0].equal(codes) and ecdc.decompress(data, codec)[0].equal(codes)
codec.to(device)

# %% [markdown]
# ## Errata and notes
#
# - SI-SNR is a waveform measure and the adversarial losses do not aim at it: GAN-trained codecs
#   can sound right with a low SI-SNR. The mel distance follows what you hear more closely.
# - `codec.decode` does not trim: cut decode(encode(x)) to T yourself (step 3). The official
#   `decode` does not trim either.
# - `train_codec.evaluate` switches the model back to training mode when it returns (it is written
#   for the training loop); here we measure by hand so that the loaded codec stays in eval mode.
# - The 48 kHz stereo EnCodec is not implemented (see the README).
# - Next: tutorial 03, the losses the codec was trained with, and what the discriminator adds.
#   Then tutorial 04 turns text (and a melody) into the conditions the language model reads.
