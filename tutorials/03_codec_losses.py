# %% [markdown]
# # 03 The codec's losses
#
# Tutorial 02 trained a codec with four losses mixed by a *balancer* and called them by name.
# Here we write each one out, as EnCodec (arXiv 2210.13438, Sec. 3.4) defines it and `losses.py`
# computes it, on a real batch: built-in clips through the shipped codec, `checkpoints/codec.pt`.
#
# 1. a real batch: held-out clips and their reconstructions
# 2. the multi-scale mel loss, by hand
# 3. the MS-STFT discriminator and its hinge loss, by hand
# 4. feature matching, by hand
# 5. the balancer, by hand: each loss gets a fixed share of the gradient
# 6. why a waveform loss alone makes the top octaves quiet: a sine of unknown phase
# 7. reconstruction only vs with the discriminator: the bands, the spectrograms, the sounds
#
# Each step writes a formula in a few lines and asserts it equal to the library's. Step 7 makes
# the case for the discriminator: a codec trained on reconstruction losses alone (L1 on the
# waveform + mel) loses the top octaves, whose phase it cannot predict (step 6); the discriminator,
# which hears that a clip without highs is not real, brings them back.
# The shipped codec had both phases (tutorial 02, step 4); to hear the difference in a minute we
# train a copy of it a few more steps without the discriminator and compare the two.
#
# Open it as a notebook (Jupyter + jupytext, or VS Code): the sounds play under their cell. Or
# run it, `python tutorials/03_codec_losses.py`: pictures and sounds go to files.
# `TUTORIAL_FAST=1` shrinks every step; `TUTORIAL_OUT=dir` moves the output folder (default
# `tutorials/out/`). Pasted numbers come from full mode on a CPU; the assertions hold everywhere.

# %%
import copy
import math
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
sys.path.insert(0, str(HERE if (HERE / "common.py").exists() else HERE / "tutorials"))
from common import FAST, OUT, ROOT, device, listen, save  # noqa: E402

import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from checkpoint import load_codec  # noqa: E402
from data import BuiltinDataset  # noqa: E402
from losses import (Balancer, MSSTFTDiscriminator, adversarial_loss, band_edges, band_levels,  # noqa: E402
                    discriminator_loss, feature_matching_loss, mel_filterbank, mel_spectrogram,
                    multiscale_mel_loss)
from train_codec import Run, get_batch, train_step  # noqa: E402

# %% [markdown]
# ## Step 1. A real batch
#
# The shipped codec (3.7M parameters, 16 kHz, 8 codebooks) and a few held-out built-in clips
# (`data.BuiltinDataset`, split "valid": never seen in training). x is the batch, x_hat its
# reconstruction; every loss below compares the two. x_hat is made a leaf that requires a
# gradient: the balancer (step 5) works on the gradients of the losses with respect to it.
# Target: the shapes, and a reconstruction that is close (L1 well under the clips' mean |x|).

# %%
torch.manual_seed(0)
codec = load_codec(ROOT / "checkpoints" / "codec.pt").to(device)  # eval mode, config from the file
sr = codec.sample_rate
n_clips = 2 if FAST else 4
valid = BuiltinDataset(n_clips, duration=1.0, sample_rate=sr, split="valid")
x = torch.stack([valid[i]["wav"] for i in range(n_clips)]).to(device)  # [B, 1, T]
with torch.no_grad():
    x_hat, _ = codec(x)  # [B, 1, T]: encode, quantize (all 8 codebooks), decode, trim
x_hat = x_hat.detach().requires_grad_(True)
print(f"x {tuple(x.shape)}, x_hat {tuple(x_hat.shape)}; mean |x| {x.abs().mean():.3f}, "
      f"L1 |x - x_hat| {F.l1_loss(x_hat, x):.3f}")
print("clips:", [valid[i]["text"] for i in range(n_clips)])
# x (4, 1, 16000), x_hat (4, 1, 16000); mean |x| 0.124, L1 |x - x_hat| 0.040
# clips: ['happy organ drums fast', 'drums fast', 'dark bass music in B minor, 81 bpm', 'rain is falling on the street']
assert F.l1_loss(x_hat, x) < x.abs().mean()

# %% [markdown]
# ## Step 2. The multi-scale mel loss
#
# A mel spectrogram S(x) (64 mel bands from 64 Hz, power) at one STFT size trades time for
# frequency: a 64-point window sees 4 ms and 250 Hz wide bins, a 1024-point one 64 ms and 16 Hz.
# EnCodec compares x and x_hat at five sizes, n_fft = 2^i for i = 6..10 (hop n_fft / 4), with an
# L1 term on S and a squared-error term on log10 S:
#
#     L_mel = 1/10 * sum_{i=6..10} [ mean |S_i(x) - S_i(x_hat)| + mean (log10(eps + S_i(x)) - log10(eps + S_i(x_hat)))^2 ]
#
# (eps = 1e-5; the 1/10 is AudioCraft's: 5 scales x 2 terms.) The linear term is ruled by the
# loud low bands; the log term counts a quiet band as much as a loud one, by ratio.
#
# At the smallest scale some bands are empty. A 64-point STFT has 33 bins, sr / 64 = 250 Hz apart.
# Mel filter m is a triangle from mel point m to point m + 2, the 66 points evenly spaced in mel
# from 64 Hz to 8 kHz: the lowest filter spans 64-123 Hz, and every filter that starts below
# 2.5 kHz is narrower than 250 Hz. A filter with no bin strictly inside it weighs every bin 0: its
# band is 0 for x and for x_hat (the black rows low in the left panel of `03_mel_scales.png`),
# adds 0 to both terms and only counts in the mean, so the smallest scales weigh a little less
# (45 bands of 64 carry sound at n_fft 64). AudioCraft does the same: its `MelSpectrogramWrapper` is
# torchaudio's `MelSpectrogram` with these settings (64 mels from 64 Hz at every scale, HTK mel,
# no filter normalisation), the filterbank `losses.mel_filterbank` builds, and torchaudio warns
# "At least one mel filterbank has all zero values". DAC (arXiv 2306.06546) instead gives each
# window its own number of mels, 5 at 32 points up to 320 at 2048.
# Target: our loss == `losses.multiscale_mel_loss`; the per-scale terms; the empty bands per scale,
# all zero in S; `03_mel_scales.png`.

# %%
def mel_loss(x, x_hat, sr):
    """EnCodec's multi-scale mel loss, written out."""
    total = 0.0
    for n_fft in (64, 128, 256, 512, 1024):
        s, s_hat = mel_spectrogram(x, sr, n_fft, n_fft // 4), mel_spectrogram(x_hat, sr, n_fft, n_fft // 4)
        total = total + (s - s_hat).abs().mean()  # linear: the loud bands
        total = total + (torch.log10(1e-5 + s) - torch.log10(1e-5 + s_hat)).pow(2).mean()  # log: all bands
    return total / 10


ours, theirs = mel_loss(x, x_hat, sr), multiscale_mel_loss(x_hat, x, sr)
print(f"multi-scale mel loss: ours {ours.item():.5f}, losses.py {theirs.item():.5f}")
# multi-scale mel loss: ours 0.26022, losses.py 0.26022
assert torch.allclose(ours, theirs)
with torch.no_grad():
    for n_fft in (64, 1024):
        s, s_hat = mel_spectrogram(x, sr, n_fft, n_fft // 4), mel_spectrogram(x_hat, sr, n_fft, n_fft // 4)
        print(f"n_fft {n_fft:4d}: S {tuple(s.shape)}, linear term {(s - s_hat).abs().mean():.4f}, "
              f"log term {(torch.log10(1e-5 + s) - torch.log10(1e-5 + s_hat)).pow(2).mean():.4f}")
# n_fft   64: S (4, 64, 1000), linear term 0.0029, log term 0.2675
# n_fft 1024: S (4, 64, 63), linear term 0.0397, log term 0.8035
empty = {n_fft: mel_filterbank(sr, n_fft, 64, 64.0).sum(0) == 0 for n_fft in (64, 128, 256, 512, 1024)}  # [64]
print("empty mel bands per n_fft:", {n_fft: int(e.sum()) for n_fft, e in empty.items()},
      f"(of 64; bins {sr / 64:.0f} Hz apart at n_fft 64)")
# empty mel bands per n_fft: {64: 19, 128: 6, 256: 1, 512: 0, 1024: 0} (of 64; bins 250 Hz apart at n_fft 64)
assert [int(e.sum()) for e in empty.values()] == [19, 6, 1, 0, 0]
with torch.no_grad():
    assert not mel_spectrogram(x_hat, sr, 64, 16)[:, empty[64]].any()  # zero in every frame

fig, axes = plt.subplots(1, 2, figsize=(11, 3.2), layout="constrained")
for ax, n_fft in zip(axes, (64, 1024)):
    s = torch.log10(1e-5 + mel_spectrogram(x[:1], sr, n_fft, n_fft // 4))[0]  # [64, frames]
    ax.imshow(s.cpu(), origin="lower", aspect="auto", cmap="magma", vmin=-5, vmax=1)
    ax.set(title=f"n_fft {n_fft}: {s.shape[1]} frames of {n_fft / sr * 1000:.0f} ms",
           xlabel="frame", ylabel="mel band")
fig.suptitle(f"two of the five scales of the mel loss, {valid[0]['text']!r}")
save(fig, "03_mel_scales.png")

# %% [markdown]
# ## Step 3. The MS-STFT discriminator and the hinge loss
#
# The discriminator D is five small 2-D conv nets, each on the STFT (real and imaginary parts as
# two channels) at one window size, 128 to 2048. Each returns a map of logits, one per (frame,
# frequency region): > 0 reads "real", < 0 "decoded". With D_k the k-th of K = 5 nets, the hinge
# losses (arXiv 1705.02894) are
#
#     L_D   = 1/K sum_k [ mean relu(1 - D_k(x)) + mean relu(1 + D_k(x_hat)) ]    (trains D)
#     L_adv = 1/K sum_k mean( -D_k(x_hat) )                                    (trains the codec)
#
# D stops pushing a logit once it is past the margin (real > 1, decoded < -1); the codec is
# pushed to raise D's logits on its outputs. We take a fresh discriminator (16 filters, as
# `train_codec.py`) and give it a few updates on this batch (learning rate 1e-3, to see it move
# within a few steps): its loss falls from 2 (all logits start near 0) as the logits of real and
# decoded clips move apart.
# Target: ours == `discriminator_loss` and `adversarial_loss`; the logits move apart.

# %%
torch.manual_seed(0)
disc = MSSTFTDiscriminator(filters=16).to(device)
opt_d = torch.optim.AdamW(disc.parameters(), lr=1e-3, betas=(0.5, 0.9))  # training uses 3e-4
d_steps = 8 if FAST else 40
for step in range(d_steps + 1):
    logits_real, fmaps_real = disc(x)  # 5 x [B, 1, frames, freq], 5 x 5 feature maps
    logits_fake, fmaps_fake = disc(x_hat)
    loss_d = discriminator_loss(logits_real, logits_fake)
    if step in (0, d_steps):
        gap = sum(r.mean() - f.mean() for r, f in zip(logits_real, logits_fake)).item() / len(logits_real)
        print(f"discriminator step {step:2d}: L_D {loss_d.item():.3f}, mean D(x) - mean D(x_hat) {gap:+.3f}")
    if step < d_steps:
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
# discriminator step  0: L_D 2.000, mean D(x) - mean D(x_hat) +0.000
# discriminator step 40: L_D 1.917, mean D(x) - mean D(x_hat) +0.090
print("logit maps:", [tuple(l.shape[2:]) for l in logits_real], "(frames, freq) per window size")
# logit maps: [(59, 65), (28, 129), (122, 33), (247, 17), (497, 9)] (frames, freq) per window size

K = len(logits_real)
hinge_d = sum(F.relu(1 - r).mean() + F.relu(1 + f).mean() for r, f in zip(logits_real, logits_fake)) / K
hinge_adv = sum(-f.mean() for f in logits_fake) / K
print(f"L_D ours {hinge_d.item():.5f}, losses.py {discriminator_loss(logits_real, logits_fake).item():.5f}; "
      f"L_adv ours {hinge_adv.item():.5f}, losses.py {adversarial_loss(logits_fake).item():.5f}")
# L_D ours 1.91710, losses.py 1.91710; L_adv ours 0.19683, losses.py 0.19683
assert torch.allclose(hinge_d, discriminator_loss(logits_real, logits_fake))
assert torch.allclose(hinge_adv, adversarial_loss(logits_fake))
assert gap > 0  # after a few updates D tells real (higher logits) from decoded

# %% [markdown]
# ## Step 4. Feature matching
#
# The adversarial loss looks only at D's last layer. Feature matching (MelGAN, arXiv 1910.06711)
# asks the decoded clip to excite every layer of D as the real one does: with f_k^l the feature
# map of layer l (of L = 5) of net k,
#
#     L_feat = 1/K sum_k 1/L sum_l mean |f_k^l(x) - f_k^l(x_hat)|
#
# The real maps are constants (detached): only the codec learns from it. It gives a dense,
# stable signal even while D is weak, and it compares learnt features at five resolutions,
# so it catches what a fixed spectrogram loss can miss.
# Target: ours == `losses.feature_matching_loss`.

# %%
feat = sum(sum((r.detach() - f).abs().mean() for r, f in zip(fr, ff)) / len(fr)
           for fr, ff in zip(fmaps_real, fmaps_fake)) / K
print(f"L_feat ours {feat.item():.5f}, losses.py {feature_matching_loss(fmaps_real, fmaps_fake).item():.5f}; "
      f"{len(fmaps_real[0])} maps per net, e.g. {tuple(fmaps_real[0][0].shape)}")
# L_feat ours 0.01789, losses.py 0.01789; 5 maps per net, e.g. (4, 16, 59, 513)
assert torch.allclose(feat, feature_matching_loss(fmaps_real, fmaps_fake))

# %% [markdown]
# ## Step 5. The balancer
#
# The four losses have scales that differ by orders of magnitude, and change during training.
# Weighting the losses would need retuning whenever a scale moves. EnCodec weights their
# gradients instead: with g_i = d L_i / d x_hat, ||g_i|| its norm per clip averaged over the
# batch, and <||g_i||> an exponential moving average of it (decay 0.999, bias-corrected: on the
# first call it is ||g_i|| itself), the codec back-propagates
#
#     g = sum_i (w_i / sum_j w_j) * g_i / <||g_i||>
#
# so loss i owns the share w_i / sum w of a unit gradient, whatever its scale. AudioCraft's
# weights: L1 0.1, mel 2, adversarial 4, feature matching 4 (shares 1%, 20%, 40%, 40%). The
# commitment loss of the quantizer is added outside, with weight 1.
# Target: our g == `Balancer.gradient`'s; raw norms far apart, balanced shares = the weights.

# %%
weights = {"l1": 0.1, "msspec": 2.0, "adv": 4.0, "feat": 4.0}
losses = {"l1": F.l1_loss(x_hat, x), "msspec": multiscale_mel_loss(x_hat, x, sr),
          "adv": adversarial_loss(logits_fake), "feat": feature_matching_loss(fmaps_real, fmaps_fake)}
g, shares = torch.zeros_like(x_hat), {}
for name, loss in losses.items():
    (g_i,) = torch.autograd.grad(loss, [x_hat], retain_graph=True)  # [B, 1, T]
    norm = g_i.flatten(1).norm(dim=1).mean()  # per clip, then the batch mean
    term = weights[name] / sum(weights.values()) * g_i / norm
    g = g + term
    shares[name] = (norm.item(), term.flatten(1).norm(dim=1).mean().item())
g_lib, _ = Balancer(weights).gradient(losses, x_hat)
for name, (raw, share) in shares.items():
    print(f"{name:6s} raw gradient norm {raw:.2e} -> balanced {share:.3f}")
# l1     raw gradient norm 1.98e-03 -> balanced 0.010
# msspec raw gradient norm 1.08e-01 -> balanced 0.198
# adv    raw gradient norm 1.10e-01 -> balanced 0.396
# feat   raw gradient norm 5.69e-03 -> balanced 0.396
assert torch.allclose(g, g_lib, atol=1e-7)
assert all(abs(shares[k][1] - w / sum(weights.values())) < 1e-3 for k, w in weights.items())

# %% [markdown]
# ## Step 6. Why a waveform loss alone makes the top octaves quiet
#
# The codes arrive 50 times a second. They pin down the phase of a 100 Hz partial (a period of
# 10 ms), but hardly that of an 8 kHz one (0.125 ms): the decoder has to guess it. Take a sine
# sin(t + phi) whose phase phi the decoder knows only to within +-sigma, and let it answer with
# a * sin(t) (its best guess of the phase, and an amplitude a of its choice). The L1 loss on the
# waveform, averaged over the phases it cannot tell apart, is smallest at a = 1 when the phase is
# known, and at a = 0, silence, when it is not: the average of all the sines it could be is 0.
# A spectrogram loss ignores the phase, so it wants a = 1 whatever sigma; this codec's first phase
# (L1 weight 1, a third of the balanced gradient) settled in between, a quiet top octave. The
# discriminator hears that a decoded clip with no highs is not real, whatever its phase.
# Target: the best a falls from 1 to 0 as the phase gets unknown; `03_l1_phase.png`.

# %%
t = torch.linspace(0, 2 * math.pi, 256)[None]  # one period, [1, 256]
amps = torch.linspace(0, 1.5, 151)
best = {}
fig, ax = plt.subplots(figsize=(6, 3.5), layout="constrained")
for sigma in (0.1, 1.0, 2.0, math.pi):
    phi = torch.linspace(-sigma, sigma, 201)[:, None]  # [201, 1]: the phases it cannot tell apart
    l1 = torch.stack([(torch.sin(t + phi) - a * torch.sin(t)).abs().mean() for a in amps])  # [151]
    best[sigma] = amps[l1.argmin()].item()
    ax.plot(amps, l1, label=f"phase known to +-{sigma:.2g}: best a = {best[sigma]:.2f}")
ax.set(xlabel="amplitude a of the answer a sin(t)", ylabel="mean |sin(t + phi) - a sin(t)|",
       title="L1 under phase uncertainty: the best answer gets quieter")
ax.legend(fontsize=8)
save(fig, "03_l1_phase.png")
print("best amplitude for sigma = 0.1, 1, 2, pi:", [round(b, 2) for b in best.values()])
# best amplitude for sigma = 0.1, 1, 2, pi: [1.0, 0.93, 0.63, 0.0]
assert best[0.1] > 0.95 and best[math.pi] < 0.05

# %% [markdown]
# ## Step 7. Reconstruction only vs with the discriminator
#
# The shipped codec ends with a discriminator phase. To hear what the reconstruction losses alone
# do, we train a copy of it further with the first phase's recipe only (`train_codec.py`'s
# defaults: L1 weight 1 + mel weight 2, learning rate 1e-3, 8 clips of 0.5 s, no discriminator),
# with `train_codec.train_step`, for a few steps, and measure both with `losses.band_levels` (tutorial
# 02, step 8: the energy out over the energy in per octave, 0 dB = kept) at 4 codebooks on
# held-out clips. The full first phase from scratch (8000 steps) ends about where this copy does,
# and the discriminator phase after it brings most of it back: RESULTS.md has both tables.
#
# The training prints a commitment loss far above tutorial 02's (0.015 after 40 steps from
# scratch). It is ||sg(q) - r||^2 between each residual and its code, averaged over the codebooks
# the step used (tutorial 01), and three things set it; the lines after the training measure them
# on step 1's clips, with K fixed:
#
# - the latents' size: a trained encoder's are large (mean square about 3), a new one's near 0;
# - drift: at a learning rate of 1e-3 the encoder moves its latents faster than the codebooks
#   follow them (an EMA of decay 0.99, about 100 steps of memory), so the distance grows;
# - K: quantizer dropout draws K of the 8 codebooks per batch; the first codebook's distance is
#   the largest, so the mean over K = 1 is about three times the mean over K = 8.
#
# The last step's value is one draw, and the run one of many: the number of threads changes the
# float rounding, then which codes win, which dead codes are replaced and which K are drawn, so
# another machine prints other numbers, in the same directions.
# Target: the commitment loss grows, and is larger with one codebook than with eight;
# the table (the top octaves fall without the discriminator, the lowest barely moves);
# `03_recon_vs_gan.png`; under the cell the original, the shipped codec and the
# reconstruction-only copy, in the order of the panels.

# %%
torch.manual_seed(0)
steps = 25 if FAST else 200
recon_only = copy.deepcopy(codec).train()
opt = torch.optim.AdamW(recon_only.parameters(), lr=1e-3, betas=(0.5, 0.9))
balancer = Balancer({"l1": 1.0, "msspec": 2.0})  # no "adv", "feat": train_step skips the discriminator
clips = BuiltinDataset(1_000_000, duration=0.5, sample_rate=sr)  # training clips, as train_codec.py
run = Run(recon_only, disc=None, opt=opt, opt_d=None, balancer=balancer)  # no discriminator
for step in range(steps):
    batch = get_batch(clips, step, 8, seed=0).to(device)  # [8, 1, 8000]
    last = train_step(run, batch)
recon_only.eval()
print(f"{steps} reconstruction-only steps; last losses:", {k: round(v, 3) for k, v in last.items()})
# 200 reconstruction-only steps; last losses: {'l1': 0.077, 'msspec': 0.342, 'commit': 2.364}
commit = {}
with torch.no_grad():  # eval mode: K fixed, no quantizer dropout, no codebook update
    for name, model in (("shipped", codec), (f"+ {steps} steps", recon_only)):
        latent = model.encoder.model(x)  # [B, D, frames]
        commit[name] = [model.quantizer(latent, n_q)[2].item() for n_q in (1, model.quantizer.n_q)]
        print(f"{name:>11s}: latent mean square {latent.pow(2).mean():.2f}; commitment loss with 1 codebook "
              f"{commit[name][0]:.3f}, with {model.quantizer.n_q} {commit[name][1]:.3f}")
#     shipped: latent mean square 3.42; commitment loss with 1 codebook 0.561, with 8 0.180
# + 200 steps: latent mean square 8.03; commitment loss with 1 codebook 1.594, with 8 0.532
(c1, c8), (r1, r8) = commit.values()
assert r1 > c1 and r8 > c8 and c1 > c8 and r1 > r8  # grows; one codebook leaves more than eight

n_band, dur = (16, 1.0) if FAST else (96, 2.0)
items = [BuiltinDataset(n_band, duration=dur, sample_rate=sr, split="valid")[i] for i in range(n_band)]
band_wav = torch.stack([it["wav"] for it in items]).to(device)  # [N, 1, T]
kind = [it["labels"]["source"] if it["labels"]["kind"] == "sfx" else it["labels"]["instrument"] for it in items]
decoded, levels = {}, {}
with torch.no_grad():
    for name, model in (("with discriminator", codec), ("L1 + mel only", recon_only)):
        decoded[name] = model.decode(model.encode(band_wav, n_q=4))[..., :band_wav.shape[-1]]  # [N, 1, T]
        levels[name] = band_levels(decoded[name], band_wav, sr)  # [N, n_bands] dB
edges = band_edges(sr)
bands = [f"{lo / 1000:g}-{hi / 1000:g}k" for lo, hi in zip(edges, edges[1:])]
shown = [c for c in ("drums", "rain", "bird chirp", "clock tick") if c in kind]
print(f"{'median dB, 4 codebooks':34s}" + "".join(f"{b:>9s}" for b in bands))
for c in shown + ["all clips"]:
    idx = [i for i, k in enumerate(kind) if k == c or c == "all clips"]
    for name, v in levels.items():
        print(f"{c + f' ({len(idx)}), ' + name:34s}"
              + "".join(f"{m:+9.1f}" for m in v[idx].median(0).values.tolist()))
# median dB, 4 codebooks               0-0.5k   0.5-1k     1-2k     2-4k     4-8k
# drums (7), with discriminator          +0.4     +5.5     -1.5     -1.1     -2.9
# drums (7), L1 + mel only               +0.6     +4.0     -3.8     -7.6     -9.0
# rain (4), with discriminator           -1.2     +0.4     +0.2     -1.4     -3.8
# rain (4), L1 + mel only                -1.3     -0.3     -3.2     -7.2     -8.8
# bird chirp (3), with discriminator     +7.5     +4.8    +10.1     -1.1     +0.0
# bird chirp (3), L1 + mel only          +3.7     +6.3    +11.3    -15.6    -15.8
# clock tick (7), with discriminator     +1.4     -0.3     -4.1    -12.2     +1.5
# clock tick (7), L1 + mel only          -0.5     -1.6     -5.6    -16.7     -4.5
# all clips (96), with discriminator     +0.6     +0.5     -0.4     -1.0     -0.8
# all clips (96), L1 + mel only          +0.4     +0.0     -2.5     -4.6     -7.0
# (CPU, full mode. In 200 steps without the discriminator the bird chirp's 2-4 kHz, where most of
# its energy is, falls from -1 to -16 dB, about 15 dB or a thirtieth of the energy; drums and rain
# lose 2-7 dB above 1 kHz; below 500 Hz the median of all clips moves by 0.2 dB, the bird
# chirp's most (3.8 dB). Fast mode, 25 steps, goes the same way, less far.)
ship, rec = (v.median(0).values for v in levels.values())
assert rec[-1] < ship[-1] and rec[-2] < ship[-2]  # without the discriminator the top octaves fall

i = next((j for j, k in enumerate(kind) if k in ("drums", "rain", "bird chirp")), 0)  # a clip with highs
fig, axes = plt.subplots(1, 3, figsize=(14, 3.4), sharey=True, layout="constrained")
versions = {"original": band_wav[i:i + 1], "shipped: with discriminator": decoded["with discriminator"][i:i + 1],
            f"+ {steps} steps of L1 + mel only": decoded["L1 + mel only"][i:i + 1]}
for ax, (title, w) in zip(axes, versions.items()):
    mel = torch.log10(1e-5 + mel_spectrogram(w, sr, 1024, 256))[0]  # [64, frames]
    ax.imshow(mel.cpu(), origin="lower", aspect="auto", vmin=-5, vmax=1, cmap="magma")
    ax.set(title=title, xlabel="frame (16 ms)")
axes[0].set_ylabel("mel band")
fig.suptitle(f"{items[i]['text']!r} at 4 codebooks")
save(fig, "03_recon_vs_gan.png")
for name, w in zip(("original", "with_disc", "recon_only"), versions.values()):
    listen(w[0], sr, f"03_{name}.wav")

# %% [markdown]
# ## Errata and notes
#
# - The EnCodec paper weighs adversarial and feature matching 3 and 3 (Sec. 3.4); AudioCraft's
#   configs, used here, 4 and 4. Its feature-matching loss divides by the mean |f| of the real
#   map in the paper, not in AudioCraft (nor here).
# - `multiscale_mel_loss` is AudioCraft's `MultiScaleMelSpectrogramLoss` as its compression config
#   sets it (64 mels from 64 Hz, `normalized`, no `alphas`: the 1/10 of step 2); the class's own
#   defaults differ (f_min 0, weights sqrt(n_fft - 1) on the log terms, no division). The EnCodec
#   paper writes the reconstruction loss with an L1 + L2 on mel spectrograms of 64 bins at windows
#   2^5..2^11 instead.
# - Step 7 trains the shipped codec further rather than comparing two codecs trained from scratch,
#   to take a minute: the first phase from scratch is `python train_codec.py` (half an hour on
#   2 CPU cores), the second the command of tutorial 02, step 4.
# - Next: tutorial 04 turns text (and a melody) into the conditions the language model reads.
