"""
Train an EnCodec codec (codec.py) with the recipe of the EnCodec paper / AudioCraft.

    python train_codec.py                            # tiny codec on the built-in data (CPU ok)
    python train_codec.py --data path/to/folder --preset encodec_16khz --device cuda
    torchrun --nproc_per_node 2 train_codec.py ...   # data parallel (DDP)
    python train_codec.py --resume                   # continue exactly where out_dir stopped

Each step trains the multi-scale STFT discriminator on real vs decoded clips (if --w-adv or --w-feat
weigh), then the codec on the time-domain L1, multi-scale mel, adversarial and feature-matching
losses, balanced by their gradients, not values (losses.Balancer, EnCodec Sec. 3.4), plus the
quantizer's commitment loss (weight 1, outside the balancer). Every --eval-every steps: held-out
SI-SNR, mel distance and energy kept per octave band, per number of codebooks, their WAVs and a
checkpoint. Ctrl-C ends the step, saves, and --resume continues exactly.

References:
1) EnCodec, Sec. 3.4 (losses, discriminator, balancer), 4.4 (recipe),
   https://arxiv.org/abs/2210.13438; official code: facebookresearch/audiocraft
   solvers/compression.py, config/solver/compression/default.yaml
"""

import argparse
import math
import os
import random
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import training
from audio import write_audio
from checkpoint import codec_config, load_codec, save_atomic, save_codec
from codec import PRESETS, Codec
from data import BuiltinDataset
from losses import (Balancer, MSSTFTDiscriminator, adversarial_loss, band_edges, band_levels,
                    discriminator_loss, feature_matching_loss, mel_distance, multiscale_mel_loss,
                    si_snr)

parser = argparse.ArgumentParser(description="Train an EnCodec codec.")
# I/O and data
parser.add_argument("--out-dir", default="runs/codec", help="checkpoints, samples and logs go here")
parser.add_argument("--resume", action="store_true", help="continue from out_dir/ckpt.pt (exactly)")
parser.add_argument("--export", default=None, help="the shippable codec, saved at the end (e.g. "
                    "checkpoints/codec.pt)")
parser.add_argument("--seed", type=int, default=0, help="seed of the data, the init, the batches")
training.add_data_flags(parser)
# Model
parser.add_argument("--preset", default="tiny", help="codec architecture: " + ", ".join(PRESETS))
parser.add_argument("--init", default=None, help="start from this codec's weights, with new "
                    "optimizers (a fine-tuning phase, e.g. the discriminator phase on "
                    "runs/codec/ckpt.pt; any file load_codec reads)")
# Optimization. Defaults: the tiny recipe, a CPU run, reconstruction losses only (the discriminator
# costs several times the codec's compute and needs far more steps). AudioCraft's EnCodec recipe:
# --w-l1 0.1 --w-adv 4 --w-feat 4 --lr 3e-4 --batch-size 64 --segment 1 --disc-filters 32, Adam
# betas (0.5, 0.9), 300 x 2000 steps (the paper: adv, feat 3).
parser.add_argument("--steps", type=int, default=8000, help="training steps")
parser.add_argument("--batch-size", type=int, default=8, help="clips per step (per process)")
parser.add_argument("--segment", type=float, default=0.5, help="clip length in seconds")
parser.add_argument("--lr", type=float, default=1e-3, help="learning rate of the codec and the "
                    "discriminator")
parser.add_argument("--weight-decay", type=float, default=0.0, help="AdamW weight decay")
parser.add_argument("--grad-clip", type=float, default=0.0, help="clip gradient norm (0 = off)")
parser.add_argument("--w-l1", type=float, default=1.0, help="balancer weight of the time-domain L1 "
                    "(paper: 0.1)")
parser.add_argument("--w-msspec", type=float, default=2.0, help="balancer weight of the "
                    "multi-scale mel loss")
parser.add_argument("--w-adv", type=float, default=0.0, help="balancer weight of the "
                    "adversarial loss (AudioCraft: 4; the EnCodec paper: 3)")
parser.add_argument("--w-feat", type=float, default=0.0, help="balancer weight of feature matching "
                    "(AudioCraft: 4; the EnCodec paper: 3)")
parser.add_argument("--disc-filters", type=int, default=16, help="channels of the MS-STFT "
                    "discriminator (paper: 32)")
# Evaluation and logging
parser.add_argument("--eval-every", type=int, default=1000, help="steps between evaluations + "
                    "checkpoints")
parser.add_argument("--eval-clips", type=int, default=16, help="held-out clips for SI-SNR and mel "
                    "distance")
parser.add_argument("--log-every", type=int, default=20, help="steps between progress lines")
# System
parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                    help="cpu or cuda")
parser.add_argument("--compile", action="store_true", help="torch.compile the codec (CUDA)")


@dataclass
class Run:
    """What a codec training run carries: the models and their optimizers (what train_step updates),
    where the run stands (step, seconds of training), how a step runs (ctx: bf16 autocast on CUDA;
    grad_clip), and the modules the step calls: DDP or compiled wrappers of model and disc (None:
    the bare ones)."""
    model: Codec
    disc: MSSTFTDiscriminator
    opt: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    balancer: Balancer
    step: int = 0
    elapsed: float = 0.0
    ctx: object = field(default_factory=nullcontext)
    grad_clip: float = 0.0
    train_model: nn.Module = None
    train_disc: nn.Module = None

# ------------------------------------------------------------------------- one step, the checkpoint


def get_batch(dataset, step, batch_size, seed, rank=0, world=1):
    """The clips of one step, a function of (seed, step) only (training.batch_generator): a resumed
    run sees exactly the batches of the uninterrupted one. Each rank its slice: wav [B, C, T]."""
    dataset.epoch = step  # FolderDataset draws its crops from (seed, index, epoch)
    g = training.batch_generator(seed, step)
    idx = torch.randint(len(dataset), (batch_size * world,), generator=g)
    mine = idx[rank * batch_size:(rank + 1) * batch_size]
    return torch.stack([dataset[int(i)]["wav"] for i in mine])


def train_step(run, wav):
    """One update of the discriminator, then one of the codec, on wav [B, C, T] -> the losses. The
    codec's adversarial and feature losses go through the bare discriminator (run.disc): no
    discriminator gradient is wanted there, and DDP would expect one."""
    model, disc = run.train_model or run.model, run.train_disc or run.disc
    with run.ctx:
        recon, commit = model(wav)
    losses = {"l1": F.l1_loss(recon.float(), wav),
              "msspec": multiscale_mel_loss(recon, wav, run.model.sample_rate)}
    if "adv" in run.balancer.weights or "feat" in run.balancer.weights:  # skipped when both weigh 0
        # 1) discriminator: hinge loss on real vs decoded (one forward for both: DDP-friendly)
        with run.ctx:
            logits, _ = disc(torch.cat([wav, recon.detach()]))
        d_loss = discriminator_loss([l[:len(wav)] for l in logits], [l[len(wav):] for l in logits])
        run.opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        run.opt_d.step()
        # 2) the codec's adversarial and feature-matching losses against the updated discriminator
        with run.ctx:
            logits_fake, fmaps_fake = run.disc(recon)
            with torch.no_grad():
                _, fmaps_real = run.disc(wav)
        losses.update(adv=adversarial_loss(logits_fake),
                      feat=feature_matching_loss(fmaps_real, fmaps_fake), d=d_loss)
    # the balanced losses' gradient with respect to recon (EnCodec Sec. 3.4)
    grad, _ = run.balancer.gradient({k: losses[k] for k in run.balancer.weights}, recon)
    run.opt.zero_grad(set_to_none=True)
    # commit: weight 1, outside the balancer; one backward for both (DDP)
    torch.autograd.backward([recon, commit], [grad, torch.ones_like(commit)])
    if run.grad_clip > 0:
        nn.utils.clip_grad_norm_(run.model.parameters(), run.grad_clip)
    run.opt.step()
    return {**{k: v.item() for k, v in losses.items()}, "commit": commit.item()}


def checkpoint(run, args):
    """ckpt.pt (the periodic and the Ctrl-C saves; load_codec reads it): config, flags, and all an
    exact resume needs: weights, optimizers, the balancer's EMAs, step, this process's RNG states
    now (call it between two steps)."""
    cuda = next(run.model.parameters()).is_cuda
    return dict(config=asdict(run.model.config), model=run.model.state_dict(),
                disc=run.disc.state_dict(), opt=run.opt.state_dict(), opt_d=run.opt_d.state_dict(),
                balancer=run.balancer.state_dict(), step=run.step, elapsed=run.elapsed,
                args=vars(args), rng=torch.get_rng_state(),
                cuda_rng=torch.cuda.get_rng_state() if cuda else None)


def save(run, args):
    """Write ckpt.pt atomically -> its path."""
    path = os.path.join(args.out_dir, "ckpt.pt")
    save_atomic(checkpoint(run, args), path)
    return path

# ------------------------------------------------------------------------------------ evaluation


@torch.no_grad()
def evaluate(model, wav, out_dir=None, step=0):
    """{n_q: (SI-SNR dB, higher is better; mel distance, lower is better; the energy kept per band
    in dB, median over the clips: 0 is best)} of wav [B, C, T] reconstructed with 1, 2, 4, ...
    codebooks; writes the first clip's reconstructions as WAV."""
    model.eval()
    results, T = {}, wav.shape[-1]
    powers = {2 ** i for i in range(int(math.log2(model.config.n_q)) + 1)}
    for n_q in sorted(powers | {model.config.n_q}):
        recon = model.decode(model.encode(wav, n_q=n_q))[..., :T]
        results[n_q] = (si_snr(recon, wav).mean().item(),
                        mel_distance(recon, wav, model.sample_rate).item(),
                        band_levels(recon, wav, model.sample_rate).median(0).values.tolist())
        if out_dir is not None:
            write_audio(os.path.join(out_dir, f"step{step:06d}_nq{n_q}.wav"), recon[0],
                        model.sample_rate)
    model.train()
    return results


def report(run, args, valid_wav, sync):
    """Evaluate (SI-SNR, mel distance, band levels per number of codebooks), print, append to
    eval.tsv; rank 0 only."""
    model = run.model
    results = evaluate(model, valid_wav, os.path.join(args.out_dir, "samples"), run.step)
    line = " | ".join(f"{n_q} cb: SI-SNR {s:.2f} dB mel {m:.3f}"
                      for n_q, (s, m, _) in results.items())
    edges = "/".join(f"{e / 1000:g}" for e in band_edges(model.sample_rate))
    bands, rows = [], []  # per number of codebooks: the printed band levels, the eval.tsv field
    for n_q, (s, m, bs) in results.items():
        bands.append(f"{n_q} cb " + " ".join(f"{b:+.1f}" for b in bs))
        rows.append(f"{n_q}:{s:.3f}:{m:.4f}:" + ",".join(f"{b:.2f}" for b in bs))
    print(f"eval step {run.step} ({run.elapsed / 60:.1f} min): {line}{sync}\n  energy kept per "
          f"band ({edges} kHz), dB: " + " | ".join(bands))
    training.log_eval(args.out_dir, run.step, run.elapsed, rows)

# ------------------------------------------------------------------------------ the stages of main


def build(args, ckpt, env):
    """The Run: the codec, the discriminator, their optimizers and the loss balancer, from ckpt on
    --resume, else a new codec or --init's (the same seed on every rank: identical replicas)."""
    try:  # --resume: the run's own weights instead
        init = load_codec(args.init) if args.init and not ckpt else None
    except (FileNotFoundError, ValueError) as e:
        raise SystemExit(f"--init: {e}") from None
    if ckpt:
        config = codec_config(ckpt["config"], os.path.join(args.out_dir, "ckpt.pt"))
    else:
        config = init.config if init else replace(PRESETS[args.preset])
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    np.random.seed(args.seed)
    model = Codec(config).to(env.device).train()
    if init:
        model.load_state_dict(init.state_dict())  # fp16 files: copied into the fp32 model
    disc = MSSTFTDiscriminator(args.disc_filters).to(env.device).train()
    betas, decay = (0.5, 0.9), args.weight_decay
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=betas, weight_decay=decay)
    opt_d = torch.optim.AdamW(disc.parameters(), lr=args.lr, betas=betas, weight_decay=decay)
    weights = {"l1": args.w_l1, "msspec": args.w_msspec, "adv": args.w_adv, "feat": args.w_feat}
    balancer = Balancer({k: w for k, w in weights.items() if w > 0})
    run = Run(model, disc, opt, opt_d, balancer, ctx=env.ctx, grad_clip=args.grad_clip)
    if ckpt:  # exact resume: weights, optimizer moments, the balancer's EMAs (RNG, step: resume)
        for key in ("model", "disc", "opt", "opt_d", "balancer"):
            getattr(run, key).load_state_dict(ckpt[key])
    return run


def load_data(args, config, env):
    """-> (the training clips of `segment` s, the held-out clips wav [eval_clips, C, 2 s] on the
    device). --data: a FolderDataset of each split (training.open_split), eval on 2 s crops of the
    held-out files, cycled with new crops."""
    sr = config.sample_rate
    training.folder_options(args)  # one line if a data flag comes without --data
    if args.data:
        data = training.open_split(args, "train", sample_rate=sr, channels=config.channels,
                                   duration=args.segment, verbose=env.master)
        valid = training.open_split(args, "valid", sample_rate=sr, channels=config.channels,
                                    duration=2.0, pad=True, verbose=env.master)
        clips = [item["wav"] for item in valid.take(args.eval_clips)]
    else:
        data = BuiltinDataset(1_000_000, seed=args.seed, duration=args.segment, sample_rate=sr)
        valid = BuiltinDataset(args.eval_clips, seed=args.seed, duration=2.0, sample_rate=sr,
                               split="valid")
        clips = [valid[i]["wav"] for i in range(len(valid))]
    return data, torch.stack(clips).to(env.device)


def train(run, args, env, data, valid_wav):
    """The loop, from run.step to args.steps: a step (get_batch, train_step), a progress line every
    log_every steps, eval + checkpoint every eval_every steps. Ctrl-C finishes the step, saves and
    exits (not under torchrun)."""
    run.train_model = training.wrap(run.model, env, args.compile)
    run.train_disc = training.wrap(run.disc, env)
    t0 = t_log = time.time()
    with training.ctrl_c_ends_the_step(enabled=not env.ddp) as interrupted:
        while run.step < args.steps:
            wav = get_batch(data, run.step, args.batch_size, args.seed, env.rank, env.world)
            losses = train_step(run, wav.to(env.device))  # wav [B, C, T]
            run.step += 1
            if env.master and (run.step % args.log_every == 0 or run.step == 1):
                dt, t_log = time.time() - t_log, time.time()
                print(f"step {run.step}/{args.steps} | " + " ".join(f"{k} {v:.4f}" for k, v in
                      losses.items()) + f" | {(args.log_every if run.step > 1 else 1) / dt:.2f} "
                      "steps/s", flush=True)
            run.elapsed, t0 = run.elapsed + time.time() - t0, time.time()
            if run.step % args.eval_every == 0 or run.step == args.steps:
                _, sync = training.check_and_gather(run.model, run.step, env)  # DDP: compared
                if env.master:
                    report(run, args, valid_wav, sync)
                    save(run, args)
            training.save_if_interrupted(interrupted, run.step, args.steps, lambda: save(run, args))


def main(args):
    env = training.setup(args.device)  # DDP (under torchrun), device, autocast
    os.makedirs(os.path.join(args.out_dir, "samples"), exist_ok=True)
    if args.preset not in PRESETS:
        raise SystemExit(f"unknown preset {args.preset!r}; choose one of {', '.join(PRESETS)}")
    ckpt = training.load_resume(args.out_dir) if args.resume else None
    run = build(args, ckpt, env)
    # RNG states restored, eval.tsv trimmed
    run.step, run.elapsed = training.resume(ckpt, args.out_dir, args.steps, env)
    data, valid_wav = load_data(args, run.model.config, env)
    if env.master:
        c, n_params = run.model.config, sum(p.numel() for p in run.model.parameters())
        samples = env.world * args.batch_size * int(args.segment * c.sample_rate)
        source = f"from {args.init}" if args.init else args.preset
        if ckpt:
            source = f"resumed from {args.out_dir}"
        print(f"codec {source}: {n_params / 1e6:.2f}M params, {c.sample_rate} Hz, "
              f"{run.model.frame_rate} Hz frames, {c.n_q} x {c.bins} codes; {env.world} "
              f"process(es) x {args.batch_size} clips of {args.segment} s = {samples} samples per "
              "step")
    train(run, args, env, data, valid_wav)
    if env.master and args.export:
        diff = save_codec(run.model, args.export, run.model.encode(valid_wav))
        print(f"exported to {args.export}: {os.path.getsize(args.export) / 1e6:.1f} MB, "
              f"{'fp16' if diff < 1e-3 else 'fp32'} (fp16 moves the decoded audio by {diff:.1e})")
    training.teardown(env)
    return run.model


if __name__ == "__main__":
    main(parser.parse_args())
