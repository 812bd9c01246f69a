"""
Train an EnCodec codec (codec.py) with the recipe of the EnCodec paper / AudioCraft.

    python train_codec.py                                   # tiny codec on the built-in data (CPU ok)
    python train_codec.py --data path/to/folder --preset encodec_16khz --device cuda
    torchrun --nproc_per_node 2 train_codec.py ...          # data parallel (DDP)
    python train_codec.py --resume                          # continue exactly where out_dir stopped (or Ctrl-C)

The generator loss is a weighted mix of time-domain L1, a multi-scale mel-spectrogram loss, a hinge
adversarial loss and a feature-matching loss from a multi-scale STFT discriminator. The weights are
not applied to the losses but to their gradients: the loss balancer rescales each loss's gradient
with respect to the decoded audio to a fixed share of a unit norm, so a loss of a larger scale
cannot drown the others (EnCodec Sec. 3.4). The commitment loss of the quantizer is added outside
the balancer, with weight 1.

References:
1) EnCodec, Sec. 3.3 (discriminator), 3.4 (losses, balancer), 4.4 (recipe): https://arxiv.org/abs/2210.13438
   official code: facebookresearch/audiocraft solvers/compression.py, losses/balancer.py,
   losses/specloss.py, adversarial/losses.py, adversarial/discriminators/msstftd.py,
   config/solver/compression/default.yaml
2) Hinge GAN loss: https://arxiv.org/abs/1705.02894; feature matching: MelGAN https://arxiv.org/abs/1910.06711
"""

import argparse
import math
import os
import random
import signal
import time
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, replace
from functools import lru_cache

import numpy as np
import soundfile as sf
import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

from codec import PRESETS, Codec, CodecConfig

parser = argparse.ArgumentParser(description="Train an EnCodec codec.")
# I/O
parser.add_argument("--out-dir", default="runs/codec", help="checkpoints, samples and logs go here")
parser.add_argument("--resume", action="store_true", help="continue from out_dir/ckpt.pt (exactly)")
parser.add_argument("--export", default=None, help="at the end, write the shippable codec here (e.g. checkpoints/codec.pt)")
parser.add_argument("--data", default=None, help="audio folder or manifest (default: the built-in data)")
parser.add_argument("--seed", type=int, default=0, help="seed of the data, the init and the training")
# Model
parser.add_argument("--preset", default="tiny", help=f"codec architecture: {', '.join(PRESETS)}")
# Optimization. Defaults: the tiny recipe, about an hour on 2 CPU cores: reconstruction losses only
# (the discriminator costs ~6x the codec's compute and needs far more steps than an hour gives).
# AudioCraft's EnCodec recipe: --w-l1 0.1 --w-adv 4 --w-feat 4 --lr 3e-4 --batch-size 64 --segment 1
# --disc-filters 32, Adam betas (0.5, 0.9), 300 x 2000 steps (the EnCodec paper, Sec. 4: adv and feat weigh 3).
parser.add_argument("--steps", type=int, default=8000, help="training steps")
parser.add_argument("--batch-size", type=int, default=8, help="clips per step (per process)")
parser.add_argument("--segment", type=float, default=0.5, help="clip length in seconds")
parser.add_argument("--lr", type=float, default=1e-3, help="learning rate of the codec and the discriminator")
parser.add_argument("--weight-decay", type=float, default=0.0, help="AdamW weight decay")
parser.add_argument("--grad-clip", type=float, default=0.0, help="clip gradient norm (0 = off)")
parser.add_argument("--w-l1", type=float, default=1.0, help="balancer weight of the time-domain L1 (paper: 0.1)")
parser.add_argument("--w-msspec", type=float, default=2.0, help="balancer weight of the multi-scale mel loss")
parser.add_argument("--w-adv", type=float, default=0.0, help="balancer weight of the adversarial loss "
                    "(AudioCraft: 4; the EnCodec paper: 3)")
parser.add_argument("--w-feat", type=float, default=0.0, help="balancer weight of feature matching "
                    "(AudioCraft: 4; the EnCodec paper: 3)")
parser.add_argument("--disc-filters", type=int, default=16, help="channels of the MS-STFT discriminator (paper: 32)")
# Evaluation and logging
parser.add_argument("--eval-every", type=int, default=1000, help="steps between evaluations + checkpoints")
parser.add_argument("--eval-clips", type=int, default=16, help="held-out clips for SI-SNR and mel distance")
parser.add_argument("--log-every", type=int, default=20, help="steps between progress lines")
# System
parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cpu or cuda")
parser.add_argument("--compile", action="store_true", help="torch.compile the codec (CUDA)")

# -----------------------------------------------------------------------------
# spectrogram losses and metrics


@lru_cache(maxsize=None)
def mel_filterbank(sample_rate, n_fft, n_mels, f_min, f_max=None):
    """Triangular HTK-mel filters [n_fft // 2 + 1, n_mels], unnormalised (torchaudio's default,
    which AudioCraft's mel losses use): mel(f) = 2595 log10(1 + f / 700)."""
    f_max = f_max or sample_rate / 2
    hz_to_mel = lambda f: 2595.0 * math.log10(1.0 + f / 700.0)
    freqs = torch.linspace(0, sample_rate // 2, n_fft // 2 + 1, dtype=torch.float64)  # FFT bins
    mels = torch.linspace(hz_to_mel(f_min), hz_to_mel(f_max), n_mels + 2, dtype=torch.float64)
    f_pts = 700.0 * (10 ** (mels / 2595.0) - 1.0)  # filter edges in Hz
    slopes = f_pts[None, :] - freqs[:, None]  # [n_freqs, n_mels + 2]
    down = -slopes[:, :-2] / (f_pts[1:-1] - f_pts[:-2])
    up = slopes[:, 2:] / (f_pts[2:] - f_pts[1:-1])
    return torch.clamp(torch.minimum(down, up), min=0).float()


def stft(x, n_fft, hop):
    """Complex STFT of x [B, C, T] -> [B, C, F, frames], Hann window, no centering, normalised by
    the window energy (torchaudio's `normalized=True`)."""
    window = torch.hann_window(n_fft, device=x.device, dtype=x.dtype)
    B, C, T = x.shape
    spec = torch.stft(x.reshape(B * C, T), n_fft, hop, window=window, center=False, return_complex=True)
    return (spec / window.pow(2).sum().sqrt()).view(B, C, *spec.shape[1:])


def mel_spectrogram(x, sample_rate, n_fft, hop, n_mels=64, f_min=64.0):
    """Power mel spectrogram [B, C * n_mels, frames] of x [B, C, T], padded as AudioCraft's
    MelSpectrogramWrapper: reflect (n_fft - hop) // 2 on both sides, then zeros up to full frames."""
    p = (n_fft - hop) // 2
    x = F.pad(x, (p, p), "reflect")
    x = F.pad(x, (0, (-(x.shape[-1] - n_fft)) % hop))  # make the last frame full
    power = stft(x.float(), n_fft, hop).abs().pow(2)  # [B, C, F, frames]
    fb = mel_filterbank(sample_rate, n_fft, n_mels, f_min).to(x.device)
    return torch.einsum("bcft,fm->bcmt", power, fb).flatten(1, 2)  # [B, C*n_mels, frames]


def multiscale_mel_loss(x, y, sample_rate):
    """AudioCraft's msspec loss: for n_fft = 64..1024 (hop n_fft/4, 64 mels from 64 Hz),
    L1 of the mel spectrograms + MSE of their log10, summed, divided by 2 per scale (= 10)."""
    loss = 0.0
    for i in range(6, 11):
        mx = mel_spectrogram(x, sample_rate, 2 ** i, 2 ** i // 4)
        my = mel_spectrogram(y, sample_rate, 2 ** i, 2 ** i // 4)
        loss = loss + F.l1_loss(mx, my) + F.mse_loss(torch.log10(1e-5 + mx), torch.log10(1e-5 + my))
    return loss / 10


def mel_distance(x, y, sample_rate):
    """Eval metric: L1 between log10 mel spectrograms (n_fft 1024, hop 256, 64 mels)."""
    return F.l1_loss(torch.log10(1e-5 + mel_spectrogram(x, sample_rate, 1024, 256)),
                     torch.log10(1e-5 + mel_spectrogram(y, sample_rate, 1024, 256)))


def si_snr(estimate, reference, eps=1e-8):
    """Scale-invariant SNR in dB per clip [B]: project the estimate on the reference, compare the
    projection's energy with what is left over. Both are made zero-mean first."""
    estimate = estimate - estimate.mean(-1, keepdim=True)
    reference = reference - reference.mean(-1, keepdim=True)
    scale = (estimate * reference).sum(-1, keepdim=True) / (reference.pow(2).sum(-1, keepdim=True) + eps)
    target = scale * reference
    noise = estimate - target
    ratio = target.pow(2).sum(-1) / (noise.pow(2).sum(-1) + eps)
    return (10 * torch.log10(ratio + eps)).flatten(1).mean(1)


# -----------------------------------------------------------------------------
# the multi-scale STFT discriminator (EnCodec Sec. 3.3)


class STFTDiscriminator(nn.Module):
    """2-D conv net over the real and imaginary parts of one STFT scale; returns (logits, feature
    maps). Strides (1, 2) halve the frequency axis three times; dilations 1, 2, 4 grow along time."""

    def __init__(self, filters, n_fft, hop):
        super().__init__()
        self.n_fft, self.hop = n_fft, hop
        wn = nn.utils.parametrizations.weight_norm
        self.convs = nn.ModuleList([nn.Conv2d(2, filters, (3, 9), padding=(1, 4))])  # no norm, as official
        for d in (1, 2, 4):
            self.convs.append(wn(nn.Conv2d(filters, filters, (3, 9), stride=(1, 2), dilation=(d, 1),
                                           padding=(d, 4))))
        self.convs.append(wn(nn.Conv2d(filters, filters, (3, 3), padding=(1, 1))))
        self.conv_post = wn(nn.Conv2d(filters, 1, (3, 3), padding=(1, 1)))

    def forward(self, x):  # x [B, 1, T]
        z = stft(x, self.n_fft, self.hop)  # [B, 1, F, frames] complex
        z = torch.cat([z.real, z.imag], dim=1).transpose(2, 3)  # [B, 2, frames, F]
        fmap = []
        for conv in self.convs:
            z = F.leaky_relu(conv(z), 0.3)  # slope 0.3 as AudioCraft's msstftd config
            fmap.append(z)
        return self.conv_post(z), fmap


class MSSTFTDiscriminator(nn.Module):
    """Five STFT discriminators at window sizes 1024, 2048, 512, 256, 128 (hop = window / 4)."""

    def __init__(self, filters=32, n_ffts=(1024, 2048, 512, 256, 128)):
        super().__init__()
        self.discriminators = nn.ModuleList(STFTDiscriminator(filters, n, n // 4) for n in n_ffts)

    def forward(self, x):  # x [B, 1, T] -> ([logits] * 5, [[fmap] * 5] * 5)
        outs = [d(x) for d in self.discriminators]
        return [o[0] for o in outs], [o[1] for o in outs]


def discriminator_loss(logits_real, logits_fake):
    """Hinge loss: mean(relu(1 - D(x))) + mean(relu(1 + D(G(x)))), averaged over discriminators."""
    return sum(F.relu(1 - r).mean() + F.relu(1 + f).mean()
               for r, f in zip(logits_real, logits_fake)) / len(logits_real)


def adversarial_loss(logits_fake):
    """Generator's hinge loss: -mean(D(G(x))), averaged over discriminators."""
    return sum(-f.mean() for f in logits_fake) / len(logits_fake)


def feature_matching_loss(fmaps_real, fmaps_fake):
    """L1 between the discriminator's feature maps on real and decoded audio, averaged per map,
    then over discriminators (AudioCraft: no division by the real maps' scale)."""
    per_disc = [sum(F.l1_loss(f, r.detach()) for r, f in zip(fr, ff)) / len(fr)
                for fr, ff in zip(fmaps_real, fmaps_fake)]
    return sum(per_disc) / len(per_disc)


# -----------------------------------------------------------------------------
# the loss balancer (EnCodec Sec. 3.4)


class Balancer:
    """Back-propagates sum_i (w_i / sum w) * g_i / <||g_i||>, g_i = d loss_i / d y_pred.

    <||g_i||> is an exponential moving average (decay 0.999, bias-corrected) of the per-clip
    gradient norm averaged over the batch, so each loss gets the share of a unit gradient its
    weight says, whatever its scale. The state is saved in checkpoints for an exact resume.
    """

    def __init__(self, weights, decay=0.999, eps=1e-12):
        self.weights, self.decay, self.eps = weights, decay, eps
        self.total = {k: 0.0 for k in weights}  # EMA numerators
        self.fix = {k: 0.0 for k in weights}  # EMA denominators (bias correction)

    def gradient(self, losses, y_pred):
        """The gradient to back-propagate from y_pred; also returns the measured norms."""
        out, norms, total_w = torch.zeros_like(y_pred), {}, sum(self.weights.values())
        for name, loss in losses.items():
            (grad,) = torch.autograd.grad(loss, [y_pred], retain_graph=True)
            norm = grad.flatten(1).norm(dim=1).mean().item()  # per-clip norm, batch mean
            self.total[name] = self.decay * self.total[name] + norm
            self.fix[name] = self.decay * self.fix[name] + 1.0
            avg_norm, norms[name] = self.total[name] / self.fix[name], norm
            out = out + (self.weights[name] / total_w) / (self.eps + avg_norm) * grad
        return out, norms

    def state_dict(self):
        return {"total": dict(self.total), "fix": dict(self.fix)}

    def load_state_dict(self, state):
        self.total, self.fix = dict(state["total"]), dict(state["fix"])


# -----------------------------------------------------------------------------
# training


def save_atomic(obj, path):
    """torch.save to a temporary file, then rename: a crash never leaves a half-written checkpoint."""
    torch.save(obj, path + ".tmp")
    os.replace(path + ".tmp", path)


@contextmanager
def ctrl_c_ends_the_step(enabled=True):
    """Within it, Ctrl-C (SIGINT) does not raise but sets a flag: the step under way completes, and the loop, seeing
    the flag (a list, non-empty once pressed), saves an exact-resume checkpoint between two steps. A KeyboardInterrupt
    mid-step could not be resumed exactly: the discriminator updated and the codec not, the RNG advanced halfway. A
    second Ctrl-C raises KeyboardInterrupt at once. enabled=False: Ctrl-C as usual (DDP, see main)."""
    pressed, previous = [], signal.getsignal(signal.SIGINT)

    def handler(signum, frame):
        if pressed:
            raise KeyboardInterrupt
        pressed.append(signum)
        # os.write, not print: the handler may run while the loop is inside a print (a reentrant call would fail)
        os.write(2, b"\nCtrl-C: saving a checkpoint after this step (Ctrl-C again: quit at once)\n")

    if enabled:
        signal.signal(signal.SIGINT, handler)
    try:
        yield pressed
    finally:
        if enabled:
            signal.signal(signal.SIGINT, previous if previous is not None else signal.default_int_handler)


def trim_log(path, step):
    """Keep the rows of a step-indexed log (eval.tsv: the step first) up to `step`: a fresh run (step 0) starts it
    over, a resumed run drops what a crashed run wrote after its last checkpoint."""
    if os.path.isfile(path):
        with open(path) as f:
            rows = [r for r in f if int(r.split("\t", 1)[0]) <= step]
        with open(path + ".tmp", "w") as f:
            f.writelines(rows)
        os.replace(path + ".tmp", path)


def get_batch(dataset, step, batch_size, seed, rank=0, world=1):
    """The clips of one step, a function of (seed, step) only, so a resumed run sees exactly the
    batches the uninterrupted run would have seen. Each rank takes its slice: wav [B, C, T]."""
    dataset.epoch = step  # FolderDataset draws its crops from (seed, index, epoch)
    g = torch.Generator().manual_seed(seed * 1_000_003 + step)
    idx = torch.randint(len(dataset), (batch_size * world,), generator=g)[rank * batch_size:(rank + 1) * batch_size]
    return torch.stack([dataset[int(i)]["wav"] for i in idx])


def train_step(model, disc_ddp, disc, opt, opt_d, balancer, wav, sample_rate, ctx=None, grad_clip=0.0):
    """One update of the discriminator, then one of the codec, on wav [B, C, T]; returns the losses.

    `model` and `disc_ddp` may be DDP wrappers; `disc` is the bare discriminator, used for the
    codec's losses (no discriminator gradient is wanted there).
    """
    ctx = ctx or nullcontext()
    with ctx:
        recon, commit = model(wav)
    losses = {"l1": F.l1_loss(recon.float(), wav), "msspec": multiscale_mel_loss(recon, wav, sample_rate)}
    if "adv" in balancer.weights or "feat" in balancer.weights:  # the GAN part (skipped when both weigh 0)
        # 1) discriminator: hinge loss on real vs decoded (one forward for both: DDP-friendly)
        with ctx:
            logits, _ = disc_ddp(torch.cat([wav, recon.detach()]))
        d_loss = discriminator_loss([l[:len(wav)] for l in logits], [l[len(wav):] for l in logits])
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
        # 2) the codec's adversarial and feature-matching losses against the updated discriminator
        with ctx:
            logits_fake, fmaps_fake = disc(recon)
            with torch.no_grad():
                _, fmaps_real = disc(wav)
        losses.update(adv=adversarial_loss(logits_fake), feat=feature_matching_loss(fmaps_real, fmaps_fake),
                      d=d_loss)
    # balanced losses on the decoded audio, plus the commitment loss with weight 1
    grad, _ = balancer.gradient({k: losses[k] for k in balancer.weights}, recon)
    opt.zero_grad(set_to_none=True)
    torch.autograd.backward([recon, commit], [grad, torch.ones_like(commit)])  # one backward (DDP)
    if grad_clip > 0:
        nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    opt.step()
    return {**{k: v.item() for k, v in losses.items()}, "commit": commit.item()}


def checkpoint(config, model, disc, opt, opt_d, balancer, step, elapsed, args, device):
    """ckpt.pt's contents, for the periodic save and the Ctrl-C one: all an exact resume needs (weights, optimizers,
    the balancer's EMAs, step, this process's RNG states as they are now: call it between two steps), plus the
    config and the flags. load_codec reads the codec from it."""
    return {"config": asdict(config), "model": model.state_dict(), "disc": disc.state_dict(), "opt": opt.state_dict(),
            "opt_d": opt_d.state_dict(), "balancer": balancer.state_dict(), "step": step, "elapsed": elapsed,
            "args": vars(args), "rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state() if device.startswith("cuda") else None}


@torch.no_grad()
def export_codec(model, path, codes):
    """Write the shippable codec: config + weights only (what load_codec needs), in fp16 when that
    moves the decoding of codes [B, K, T] by less than 1e-3 (else fp32). Returns that difference."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    half = {k: v.half() if v.is_floating_point() and v.abs().max() < 6e4 else v for k, v in state.items()}
    rounded = Codec(model.config).eval()
    rounded.load_state_dict(half)  # fp16 values, copied into fp32 parameters
    exact = Codec(model.config).eval()
    exact.load_state_dict(state)
    diff = (rounded.decode(codes.cpu()) - exact.decode(codes.cpu())).abs().max().item()
    save_atomic({"config": asdict(model.config), "model": half if diff < 1e-3 else state}, path)
    return diff


@torch.no_grad()
def evaluate(model, wav, out_dir=None, step=0):
    """SI-SNR (dB, higher is better) and mel distance (lower is better) of wav [B, C, T]
    reconstructed with 1, 2, 4, ... codebooks; writes the first clip's reconstructions as WAV."""
    model.eval()
    results, T = {}, wav.shape[-1]
    n_qs = sorted({2 ** i for i in range(int(math.log2(model.config.n_q)) + 1)} | {model.config.n_q})
    for n_q in n_qs:
        recon = model.decode(model.encode(wav, n_q=n_q))[..., :T]
        results[n_q] = (si_snr(recon, wav).mean().item(), mel_distance(recon, wav, model.sample_rate).item())
        if out_dir is not None:
            sf.write(os.path.join(out_dir, f"step{step:06d}_nq{n_q}.wav"), recon[0].T.cpu().numpy(),
                     model.sample_rate, subtype="PCM_16")
    model.train()
    return results


def main(args):
    from data import BuiltinDataset, FolderDataset
    ddp = int(os.environ.get("WORLD_SIZE", "1")) > 1
    device = args.device
    if ddp:  # launched by torchrun: one process per device (or per CPU process with gloo)
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
        rank, world = dist.get_rank(), dist.get_world_size()
        if device.startswith("cuda"):
            device = f"cuda:{os.environ['LOCAL_RANK']}"
            torch.cuda.set_device(device)
    else:
        rank, world = 0, 1
    master = rank == 0
    ctx = torch.autocast("cuda", dtype=torch.bfloat16) if device.startswith("cuda") else nullcontext()
    os.makedirs(os.path.join(args.out_dir, "samples"), exist_ok=True)
    ckpt_path = os.path.join(args.out_dir, "ckpt.pt")

    # model, discriminator, optimizers (the same seed on every rank: identical replicas)
    if args.preset not in PRESETS:
        raise SystemExit(f"unknown preset {args.preset!r}; choose one of {', '.join(PRESETS)}")
    ckpt = None
    if args.resume:
        if not os.path.isfile(ckpt_path):
            raise SystemExit(f"--resume: no checkpoint at {ckpt_path}; train without --resume first")
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    config = (CodecConfig(**{**ckpt["config"], "ratios": tuple(ckpt["config"]["ratios"])})
              if ckpt else replace(PRESETS[args.preset]))
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    np.random.seed(args.seed)
    model = Codec(config).to(device).train()
    disc = MSSTFTDiscriminator(args.disc_filters).to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.5, 0.9), weight_decay=args.weight_decay)
    opt_d = torch.optim.AdamW(disc.parameters(), lr=args.lr, betas=(0.5, 0.9), weight_decay=args.weight_decay)
    weights = {"l1": args.w_l1, "msspec": args.w_msspec, "adv": args.w_adv, "feat": args.w_feat}
    balancer = Balancer({k: w for k, w in weights.items() if w > 0})
    step, elapsed = 0, 0.0
    if ckpt:
        model.load_state_dict(ckpt["model"])
        disc.load_state_dict(ckpt["disc"])
        opt.load_state_dict(ckpt["opt"])
        opt_d.load_state_dict(ckpt["opt_d"])
        balancer.load_state_dict(ckpt["balancer"])
        step, elapsed = ckpt["step"], ckpt["elapsed"]
        torch.set_rng_state(ckpt["rng"])
        if device.startswith("cuda"):
            torch.cuda.set_rng_state(ckpt["cuda_rng"])
        if master:
            print(f"resumed from {ckpt_path} at step {step} (of {args.steps})")
    if master:
        trim_log(os.path.join(args.out_dir, "eval.tsv"), step)
    train_model = nn.parallel.DistributedDataParallel(model) if ddp else model
    train_disc = nn.parallel.DistributedDataParallel(disc) if ddp else disc
    if args.compile:
        train_model = torch.compile(train_model)

    # data: clips of `segment` seconds; held-out clips for evaluation
    sr, T = config.sample_rate, int(args.segment * config.sample_rate)
    if args.data:  # one file in ten held out (as train_lm.py); eval: 2 s crops of them, cycled with new crops
        data = FolderDataset(args.data, sr, config.channels, duration=args.segment, seed=args.seed, verbose=master)
        valid = FolderDataset(args.data, sr, config.channels, duration=2.0, seed=args.seed, pad=True, verbose=False)
        valid.files = data.files[9::10] or data.files[:1]  # a folder of fewer than 10 files: both use file 0
        data.files = [f for i, f in enumerate(data.files) if i % 10 != 9]
        clips = []
        for i in range(args.eval_clips):
            valid.epoch = i // len(valid.files)
            clips.append(valid[i % len(valid.files)]["wav"])
    else:
        data = BuiltinDataset(1_000_000, seed=args.seed, duration=args.segment, sample_rate=sr)
        valid = BuiltinDataset(args.eval_clips, seed=args.seed, duration=2.0, sample_rate=sr, split="valid")
        clips = [valid[i]["wav"] for i in range(len(valid))]
    valid_wav = torch.stack(clips).to(device)  # [eval_clips, C, 2 s]
    if master:
        n_params = sum(p.numel() for p in model.parameters())
        print(f"codec {args.preset}: {n_params / 1e6:.2f}M params, {config.sample_rate} Hz, {model.frame_rate} Hz "
              f"frames, {config.n_q} x {config.bins} codes; {world} process(es) x {args.batch_size} clips "
              f"of {args.segment} s = {world * args.batch_size * T} samples per step")

    # the loop. Ctrl-C finishes the step, saves and exits; not under torchrun, where SIGINT reaches every rank at a
    # different point and torchrun stops them itself: there the last periodic checkpoint is where --resume starts
    t0, t_log = time.time(), time.time()
    with ctrl_c_ends_the_step(enabled=not ddp) as interrupted:
        while step < args.steps:
            wav = get_batch(data, step, args.batch_size, args.seed, rank, world).to(device)  # [B, C, T]
            losses = train_step(train_model, train_disc, disc, opt, opt_d, balancer, wav, sr, ctx,
                                args.grad_clip)
            step += 1

            if master and (step % args.log_every == 0 or step == 1):
                dt = time.time() - t_log
                t_log = time.time()
                print(f"step {step}/{args.steps} | " + " ".join(f"{k} {v:.4f}" for k, v in losses.items())
                      + f" | {(args.log_every if step > 1 else 1) / dt:.2f} steps/s", flush=True)
            if step % args.eval_every == 0 or step == args.steps:
                elapsed += time.time() - t0
                t0 = time.time()
                if ddp:  # replicas must hold the same weights: compare a checksum across ranks
                    s = torch.stack([p.detach().double().sum() for p in model.parameters()]).sum().reshape(1)
                    sums = [torch.zeros_like(s) for _ in range(world)]
                    dist.all_gather(sums, s)
                    if not all(torch.equal(x, sums[0]) for x in sums):
                        raise RuntimeError(f"DDP replicas diverged at step {step}: {[x.item() for x in sums]}")
                if master:
                    results = evaluate(model, valid_wav, os.path.join(args.out_dir, "samples"), step)
                    line = " | ".join(f"{n_q} cb: SI-SNR {s:.2f} dB mel {m:.3f}" for n_q, (s, m) in results.items())
                    print(f"eval step {step} ({elapsed / 60:.1f} min): {line}" + (" | replicas in sync" if ddp else ""))
                    with open(os.path.join(args.out_dir, "eval.tsv"), "a") as f:
                        f.write(f"{step}\t{elapsed:.0f}\t" + "\t".join(f"{n_q}:{s:.3f}:{m:.4f}"
                                                                       for n_q, (s, m) in results.items()) + "\n")
                    save_atomic(checkpoint(config, model, disc, opt, opt_d, balancer, step, elapsed, args, device),
                                ckpt_path)
            if interrupted and step < args.steps:  # Ctrl-C: this step is done; save it as the periodic saves do
                elapsed += time.time() - t0
                save_atomic(checkpoint(config, model, disc, opt, opt_d, balancer, step, elapsed, args, device),
                            ckpt_path)
                raise SystemExit(f"interrupted at step {step}: saved {ckpt_path}; continue with --resume")
    if master and args.export:
        diff = export_codec(model, args.export, model.encode(valid_wav))
        print(f"exported to {args.export}: {os.path.getsize(args.export) / 1e6:.1f} MB, "
              f"{'fp16' if diff < 1e-3 else 'fp32'} (fp16 moves the decoded audio by {diff:.1e})")
    if ddp:
        dist.destroy_process_group()
    return model


if __name__ == "__main__":
    main(parser.parse_args())
