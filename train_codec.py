"""
Train an EnCodec codec (codec.py) with the recipe of the EnCodec paper / AudioCraft.

    python train_codec.py                                   # tiny codec on the built-in data (CPU ok)
    python train_codec.py --data path/to/folder --preset encodec_16khz --device cuda
    torchrun --nproc_per_node 2 train_codec.py ...          # data parallel (DDP)
    python train_codec.py --resume                          # continue exactly where out_dir stopped (or Ctrl-C)

Each step trains the multi-scale STFT discriminator on real vs decoded clips (if --w-adv or --w-feat weigh), then the
codec on the time-domain L1, multi-scale mel, adversarial and feature-matching losses, balanced by their gradients, not
values (losses.Balancer, EnCodec Sec. 3.4), plus the quantizer's commitment loss (weight 1, outside the balancer).
Every --eval-every steps: held-out SI-SNR, mel distance and energy kept per octave band, per number of codebooks, their
WAVs and a checkpoint.

References:
1) EnCodec, Sec. 3.4 (losses, discriminator, balancer), 4.4 (recipe): https://arxiv.org/abs/2210.13438
   official code: facebookresearch/audiocraft solvers/compression.py, config/solver/compression/default.yaml
"""

import argparse
import math
import os
import random
import time
from contextlib import nullcontext
from dataclasses import asdict, replace

import numpy as np
import soundfile as sf
import torch
import torch.nn as nn
import torch.nn.functional as F

import training
from checkpoint import load_codec, save_atomic, save_codec
from codec import PRESETS, Codec, CodecConfig
from data import BuiltinDataset, FolderDataset, arg_type, parse_tags
from losses import (Balancer, MSSTFTDiscriminator, adversarial_loss, band_edges, band_levels, discriminator_loss,
                    feature_matching_loss, mel_distance, multiscale_mel_loss, si_snr)

parser = argparse.ArgumentParser(description="Train an EnCodec codec.")
# I/O
parser.add_argument("--out-dir", default="runs/codec", help="checkpoints, samples and logs go here")
parser.add_argument("--resume", action="store_true", help="continue from out_dir/ckpt.pt (exactly)")
parser.add_argument("--export", default=None, help="the shippable codec, saved at the end (e.g. checkpoints/codec.pt)")
parser.add_argument("--data", default=None, help="audio folder or manifest (default: the built-in data)")
parser.add_argument("--seed", type=int, default=0, help="seed of the data, the init and the training")
parser.add_argument("--sample-on-weight", action="store_true", help="--data: draw training files in proportion to the "
                    "manifest's per-file weight (AudioCraft's sample_on_weight; a file without one: 1)")
parser.add_argument("--sample-on-duration", action="store_true", help="--data: draw training files in proportion to "
                    "their duration (AudioCraft's sample_on_duration; with --sample-on-weight: duration x weight)")
parser.add_argument("--balance-tags", action="store_true", help="--data: draw training files by inverse tag frequency "
                    "(each caption word's files weigh about the same in all)")
parser.add_argument("--exclude-tags", type=arg_type(parse_tags), default=(), help="--data: comma-separated words, e.g. "
                    "speech,music: leave out files whose captions or sidecar fields hold one (AudioGen removed speech)")
# Model
parser.add_argument("--preset", default="tiny", help=f"codec architecture: {', '.join(PRESETS)}")
parser.add_argument("--init", default=None, help="start from this codec's weights, with new optimizers (a fine-tuning "
                    "phase, e.g. the discriminator phase on runs/codec/ckpt.pt; any file load_codec reads)")
# Optimization. Defaults: the tiny recipe, a CPU run, reconstruction losses only (the discriminator costs several
# times the codec's compute and needs far more steps). AudioCraft's EnCodec recipe: --w-l1 0.1 --w-adv 4 --w-feat 4
# --lr 3e-4 --batch-size 64 --segment 1 --disc-filters 32, Adam betas (0.5, 0.9), 300 x 2000 steps (paper: adv, feat 3).
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


# ----------------------------------------------------------------------------- one step, the checkpoint, the evaluation


def get_batch(dataset, step, batch_size, seed, rank=0, world=1):
    """The clips of one step, a function of (seed, step) only, so a resumed run sees exactly the
    batches the uninterrupted run would have seen. Each rank takes its slice: wav [B, C, T]."""
    dataset.epoch = step  # FolderDataset draws its crops from (seed, index, epoch)
    g = torch.Generator().manual_seed(seed * 1_000_003 + step)
    idx = torch.randint(len(dataset), (batch_size * world,), generator=g)[rank * batch_size:(rank + 1) * batch_size]
    return torch.stack([dataset[int(i)]["wav"] for i in idx])


def train_step(model, disc_ddp, disc, opt, opt_d, balancer, wav, sample_rate, ctx=None, grad_clip=0.0):
    """One update of the discriminator, then one of the codec, on wav [B, C, T] -> the losses. `model` and `disc_ddp`
    may be DDP wrappers; `disc` is the bare discriminator, for the codec's losses (no discriminator gradient wanted)."""
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
        losses.update(adv=adversarial_loss(logits_fake), feat=feature_matching_loss(fmaps_real, fmaps_fake), d=d_loss)
    grad, _ = balancer.gradient({k: losses[k] for k in balancer.weights}, recon)  # balanced losses' grad wrt recon
    opt.zero_grad(set_to_none=True)
    torch.autograd.backward([recon, commit], [grad, torch.ones_like(commit)])  # commit: weight 1; one backward (DDP)
    if grad_clip > 0:
        nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    opt.step()
    return {**{k: v.item() for k, v in losses.items()}, "commit": commit.item()}


def checkpoint(model, disc, opt, opt_d, balancer, step, elapsed, args, device):
    """ckpt.pt (the periodic and the Ctrl-C saves; load_codec reads it): config, flags, and all an exact resume needs:
    weights, optimizers, the balancer's EMAs, step, this process's RNG states now (call it between two steps)."""
    cuda_rng = torch.cuda.get_rng_state() if device.startswith("cuda") else None
    return dict(config=asdict(model.config), model=model.state_dict(), disc=disc.state_dict(), opt=opt.state_dict(),
                opt_d=opt_d.state_dict(), balancer=balancer.state_dict(), step=step, elapsed=elapsed, args=vars(args),
                rng=torch.get_rng_state(), cuda_rng=cuda_rng)


@torch.no_grad()
def evaluate(model, wav, out_dir=None, step=0):
    """{n_q: (SI-SNR dB, higher is better; mel distance, lower is better; the energy kept per band in dB, median over
    the clips: 0 is best)} of wav [B, C, T] reconstructed with 1, 2, 4, ... codebooks; writes the first clip's
    reconstructions as WAV."""
    model.eval()
    results, T = {}, wav.shape[-1]
    for n_q in sorted({2 ** i for i in range(int(math.log2(model.config.n_q)) + 1)} | {model.config.n_q}):
        recon = model.decode(model.encode(wav, n_q=n_q))[..., :T]
        results[n_q] = (si_snr(recon, wav).mean().item(), mel_distance(recon, wav, model.sample_rate).item(),
                        band_levels(recon, wav, model.sample_rate).median(0).values.tolist())
        if out_dir is not None:
            sf.write(os.path.join(out_dir, f"step{step:06d}_nq{n_q}.wav"), recon[0].T.cpu().numpy(),
                     model.sample_rate, subtype="PCM_16")
    model.train()
    return results

# ----------------------------------------------------------------------------- the stages of main


def build(args, ckpt, device):
    """The codec, the discriminator, their optimizers and the loss balancer, from ckpt on --resume, else a new codec
    or --init's (the same seed on every rank: identical replicas) -> (model, disc, opt, opt_d, balancer)."""
    try:
        init = load_codec(args.init) if args.init and not ckpt else None  # --resume: the run's own weights instead
    except (FileNotFoundError, ValueError) as e:
        raise SystemExit(f"--init: {e}") from None
    config = (CodecConfig(**{**ckpt["config"], "ratios": tuple(ckpt["config"]["ratios"])}) if ckpt
              else init.config if init else replace(PRESETS[args.preset]))
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    np.random.seed(args.seed)
    model = Codec(config).to(device).train()
    if init:
        model.load_state_dict(init.state_dict())  # fp16 files: copied into the fp32 model
    disc = MSSTFTDiscriminator(args.disc_filters).to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.5, 0.9), weight_decay=args.weight_decay)
    opt_d = torch.optim.AdamW(disc.parameters(), lr=args.lr, betas=(0.5, 0.9), weight_decay=args.weight_decay)
    weights = {"l1": args.w_l1, "msspec": args.w_msspec, "adv": args.w_adv, "feat": args.w_feat}
    balancer = Balancer({k: w for k, w in weights.items() if w > 0})
    if ckpt:  # exact resume: weights, optimizer moments, the balancer's EMAs (RNG states and step: training.resume)
        for part, key in ((model, "model"), (disc, "disc"), (opt, "opt"), (opt_d, "opt_d"), (balancer, "balancer")):
            part.load_state_dict(ckpt[key])
    return model, disc, opt, opt_d, balancer


def load_data(args, config, env):
    """-> (the training clips of `segment` s, the held-out clips wav [eval_clips, C, 2 s] on the device)."""
    sr = config.sample_rate
    options = dict(sample_on_weight=args.sample_on_weight, sample_on_duration=args.sample_on_duration,
                   balance_tags=args.balance_tags, exclude_tags=args.exclude_tags)  # item i: a drawn file if sampling
    if not args.data and any(options.values()):
        flags = ", ".join("--" + k.replace("_", "-") for k, v in options.items() if v)
        raise SystemExit(f"{flags}: the built-in data has no manifest or captions; pass --data FOLDER")
    if args.data:  # one file in ten held out (as train_lm.py); eval: 2 s crops of them, cycled with new crops
        try:
            data = FolderDataset(args.data, sr, config.channels, duration=args.segment, seed=args.seed,
                                 verbose=env.master, **options)
        except ValueError as e:  # an unusable manifest or weight: one line, no traceback
            raise SystemExit(f"--data: {e}") from None
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
    return data, torch.stack(clips).to(env.device)


def report(model, valid_wav, args, step, elapsed, sync):
    """Evaluate (SI-SNR, mel distance, band levels per number of codebooks), print, append to eval.tsv; rank 0 only."""
    results = evaluate(model, valid_wav, os.path.join(args.out_dir, "samples"), step)
    line = " | ".join(f"{n_q} cb: SI-SNR {s:.2f} dB mel {m:.3f}" for n_q, (s, m, _) in results.items())
    edges = "/".join(f"{e / 1000:g}" for e in band_edges(model.sample_rate))
    bands, rows = [], []  # per number of codebooks: the printed band levels, the eval.tsv field
    for n_q, (s, m, bs) in results.items():
        bands.append(f"{n_q} cb " + " ".join(f"{b:+.1f}" for b in bs))
        rows.append(f"{n_q}:{s:.3f}:{m:.4f}:" + ",".join(f"{b:.2f}" for b in bs))
    print(f"eval step {step} ({elapsed / 60:.1f} min): {line}{sync}\n  energy kept per band ({edges} kHz), dB: "
          + " | ".join(bands))
    training.log_eval(args.out_dir, step, elapsed, rows)


def train(args, env, model, disc, opt, opt_d, balancer, data, valid_wav, step, elapsed):
    """The loop, from `step` to args.steps: a step (get_batch, train_step), a progress line every log_every steps,
    eval + checkpoint every eval_every steps. Ctrl-C finishes the step, saves and exits (not under torchrun)."""
    path, sr = os.path.join(args.out_dir, "ckpt.pt"), model.config.sample_rate
    train_model, train_disc = training.wrap(model, env, args.compile), training.wrap(disc, env)
    t0 = t_log = time.time()
    with training.ctrl_c_ends_the_step(enabled=not env.ddp) as interrupted:
        while step < args.steps:
            wav = get_batch(data, step, args.batch_size, args.seed, env.rank, env.world).to(env.device)  # [B, C, T]
            losses = train_step(train_model, train_disc, disc, opt, opt_d, balancer, wav, sr, env.ctx, args.grad_clip)
            step += 1
            if env.master and (step % args.log_every == 0 or step == 1):
                dt, t_log = time.time() - t_log, time.time()
                print(f"step {step}/{args.steps} | " + " ".join(f"{k} {v:.4f}" for k, v in losses.items())
                      + f" | {(args.log_every if step > 1 else 1) / dt:.2f} steps/s", flush=True)
            if step % args.eval_every == 0 or step == args.steps:
                elapsed, t0 = elapsed + time.time() - t0, time.time()
                _, sync = training.check_and_gather(model, step, env)  # DDP: the replicas compared
                if env.master:
                    report(model, valid_wav, args, step, elapsed, sync)
                    save_atomic(checkpoint(model, disc, opt, opt_d, balancer, step, elapsed, args, env.device), path)
            if interrupted and step < args.steps:  # Ctrl-C: this step is done; save it as the periodic saves do
                elapsed += time.time() - t0
                save_atomic(checkpoint(model, disc, opt, opt_d, balancer, step, elapsed, args, env.device), path)
                raise SystemExit(f"interrupted at step {step}: saved {path}; continue with --resume")


def main(args):
    env = training.setup(args.device)  # DDP (under torchrun), device, autocast
    os.makedirs(os.path.join(args.out_dir, "samples"), exist_ok=True)
    if args.preset not in PRESETS:
        raise SystemExit(f"unknown preset {args.preset!r}; choose one of {', '.join(PRESETS)}")
    ckpt = training.load_resume(args.out_dir) if args.resume else None
    model, disc, opt, opt_d, balancer = build(args, ckpt, env.device)
    step, elapsed = training.resume(ckpt, args.out_dir, args.steps, env)  # RNG states restored, eval.tsv trimmed
    data, valid_wav = load_data(args, model.config, env)
    if env.master:
        c, n_params = model.config, sum(p.numel() for p in model.parameters())
        samples = env.world * args.batch_size * int(args.segment * c.sample_rate)
        if ckpt:
            source = f"resumed from {args.out_dir}"
        elif args.init:
            source = f"from {args.init}"
        else:
            source = args.preset
        print(f"codec {source}: {n_params / 1e6:.2f}M params, "
              f"{c.sample_rate} Hz, {model.frame_rate} Hz frames, {c.n_q} x {c.bins} codes; {env.world} process(es) x "
              f"{args.batch_size} clips of {args.segment} s = {samples} samples per step")
    train(args, env, model, disc, opt, opt_d, balancer, data, valid_wav, step, elapsed)
    if env.master and args.export:
        diff = save_codec(model, args.export, model.encode(valid_wav))
        print(f"exported to {args.export}: {os.path.getsize(args.export) / 1e6:.1f} MB, "
              f"{'fp16' if diff < 1e-3 else 'fp32'} (fp16 moves the decoded audio by {diff:.1e})")
    training.teardown(env)
    return model


if __name__ == "__main__":
    main(parser.parse_args())
