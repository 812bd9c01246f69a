"""
Train the text-to-audio language model (lm.py) on codec tokens, with AudioGen's recipe at toy scale.

    python train_lm.py --codec runs/codec/ckpt.pt           # tiny LM on the built-in data (CPU ok)
    python train_lm.py --data path/to/folder --device cuda --compile
    torchrun --nproc_per_node 2 train_lm.py ...             # data parallel (DDP; gloo on CPU)
    python train_lm.py --resume                             # continue exactly where out_dir stopped (or Ctrl-C)
    python train_lm.py --resume --export checkpoints        # (re)write the shippable model only
    python train_lm.py --melody                             # music clips also conditioned on their chromagram

1. The clips are encoded ONCE by the codec into a token cache (codes int16 [N, K, T], captions, labels), named
   by a hash of the codec weights and the data settings: reused by later runs, rebuilt when the codec changes.
2. A sentencepiece tokenizer is trained on the (normalised) captions: out_dir/tokenizer.model.
3. The LM and the text conditioner (a T5 encoder + output_proj) are trained jointly from scratch on the
   delay-patterned codes, with the cross-entropy of each codebook. For classifier-free guidance one coin per
   step replaces every prompt of the batch by the null condition (p = 0.1, AudioGen). With --melody, each music
   clip's own chromagram (cached with its codes) is embedded and prepended to the sequence, as MusicGen-melody's
   self_wav (which prepends the text too; here the text keeps its cross-attention); the same coin nulls it, and
   one more per step (p = 0.5, AudioCraft's attribute dropout) nulls the melodies alone.
4. Every --eval-every steps: the held-out loss, a few held-out captions sampled with CFG and decoded to WAV
   (next to real_*.wav, their own clips through the codec), a checkpoint. Ctrl-C: the step under way finishes, a
   checkpoint is saved, and --resume continues exactly (not under torchrun: there the last periodic checkpoint).
5. At the end: the shippable model (lm.pt, codec.pt, tokenizer.model), stored in fp16 where that is harmless.

Checkpoints (ckpt.pt, lm.pt) are lm.load_lm's format: {'config': asdict(LMConfig), 'model': the LM's state dict
and the conditioner's under AudioCraft's names, condition_provider.conditioners.description.{output_proj,t5}.*},
plus 'conditioner' (T5 config, tokenizer file name, normalize) and 'codec' (path, hash of its weights); ckpt.pt
adds the optimizer, step, every rank's RNG state and vars(args). load_model reads them back.

References:
1) AudioGen, Kreuk et al. 2022, arXiv:2209.15352 (text normalisation, CFG dropout 0.1, one caption drawn per
   item). Official code: audiocraft/solvers/audiogen.py, config/solver/audiogen/audiogen_base_16khz.yaml
2) MusicGen, Copet et al. 2023, arXiv:2306.05284 Sec. 4.1 (AdamW betas (0.9, 0.95), weight decay 0.1, gradient
   clipping 1.0, cosine schedule with warmup). Official code: audiocraft/solvers/musicgen.py (CE per codebook)
3) Classifier-free guidance, Ho & Salimans 2022, arXiv:2207.12598 (conditioners.cfg_dropout)
4) nanoGPT train.py (loop, warmup + cosine, DDP, torch.compile, bf16 autocast), github.com/karpathy/nanoGPT

Deviations from AudioCraft (also in the README): the T5 is trained from scratch with the LM (AudioCraft: a frozen
pretrained t5-large); normalize_text is on (released configs: off); --melody prepends the clip's own chroma (no
demucs stem separation) while the text stays in cross-attention; synthetic data; max_duration is the training
clip length, and sampling past it hops by extend_stride = max_duration / 3.
"""

import argparse
import hashlib
import json
import math
import os
import shutil
import string
import time
from contextlib import nullcontext
from dataclasses import asdict, replace

import soundfile as sf
import torch
import torch.distributed as dist
import torch.nn as nn

import data
from codec import load_codec, load_state, torch_load
from conditioners import (T5_PRESETS, MelodyConditioner, T5Config, TextConditioner, Tokenizer, cfg_dropout,
                          normalize_text)
from lm import LM, PRESETS, LMConfig, codebook_cross_entropy, load_lm
from train_codec import ctrl_c_ends_the_step, export_codec, save_atomic, trim_log

parser = argparse.ArgumentParser(description="Train the text-to-audio LM on codec tokens.")
# I/O and data
parser.add_argument("--out-dir", default="runs/lm", help="checkpoints, tokenizer, samples and logs go here")
parser.add_argument("--resume", action="store_true", help="continue from out_dir/ckpt.pt (exactly)")
parser.add_argument("--export", default="", help="where the shippable model goes at the end (default out_dir/export)")
parser.add_argument("--codec", default="runs/codec/ckpt.pt", help="trained codec, any file load_codec reads "
                                                              "(default: train_codec.py's)")
parser.add_argument("--cache-dir", default="", help="token caches (default out_dir/cache)")
parser.add_argument("--data", default=None, help="audio folder or manifest with captions (default: built-in data)")
parser.add_argument("--n-clips", type=int, default=2000, help="training clips to encode (a folder: crops)")
parser.add_argument("--eval-clips", type=int, default=64, help="held-out clips for the eval loss")
parser.add_argument("--duration", type=float, default=3.0, help="clip length in s, also the LM's max_duration")
parser.add_argument("--seed", type=int, default=0, help="seed of the data, the init and the batches")
# Model: the LM preset resized by the flags, a T5 trained from scratch, a tokenizer trained on the captions
parser.add_argument("--preset", default="tiny", help=f"LM architecture: {', '.join(PRESETS)}")
parser.add_argument("--dim", type=int, default=0, help="LM width (0 = the preset's)")
parser.add_argument("--layers", type=int, default=0, help="LM layers (0 = the preset's)")
parser.add_argument("--heads", type=int, default=0, help="LM attention heads (0 = the preset's)")
parser.add_argument("--t5", default="tiny", help=f"T5 architecture: {', '.join(T5_PRESETS)}")
parser.add_argument("--vocab-size", type=int, default=1000, help="most sentencepiece pieces")
parser.add_argument("--normalize", action=argparse.BooleanOptionalAction, default=True,
                    help="AudioGen's text normalisation of captions and prompts (stop words, lemmas)")
parser.add_argument("--melody", action="store_true", help="also condition on each music clip's own chromagram "
                    "(MusicGen-melody's self_wav), prepended to the sequence; sound clips get the null melody")
parser.add_argument("--melody-dropout", type=float, default=0.5, help="P(all melodies of a step -> null) "
                    "(AudioCraft's attribute dropout of self_wav)")
# Optimization (MusicGen Sec. 4.1; lr 1e-3 suits the tiny LM)
parser.add_argument("--steps", type=int, default=3000, help="training steps")
parser.add_argument("--batch-size", type=int, default=16, help="clips per step (per process)")
parser.add_argument("--lr", type=float, default=1e-3, help="peak learning rate")
parser.add_argument("--min-lr", type=float, default=1e-4, help="learning rate at the end of the cosine")
parser.add_argument("--warmup", type=int, default=100, help="linear warmup steps")
parser.add_argument("--lr-decay-steps", type=int, default=0, help="length of the cosine (0 = --steps)")
parser.add_argument("--weight-decay", type=float, default=0.1, help="AdamW weight decay (matrices only)")
parser.add_argument("--grad-clip", type=float, default=1.0, help="clip the gradient norm (0 = off)")
parser.add_argument("--cfg-dropout", type=float, default=0.1, help="P(all prompts of a step -> null condition)")
# Sampling (during training) and logging
parser.add_argument("--eval-every", type=int, default=250, help="steps between eval, samples and checkpoints")
parser.add_argument("--log-every", type=int, default=10, help="steps between progress lines")
parser.add_argument("--n-samples", type=int, default=2, help="held-out captions sampled as WAV at each eval")
parser.add_argument("--cfg-coef", type=float, default=3.0, help="guidance scale of the samples")
parser.add_argument("--top-k", type=int, default=250, help="top-k of the samples")
# System
parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cpu or cuda")
parser.add_argument("--compile", action="store_true", help="torch.compile the model (CUDA)")

COND = "condition_provider.conditioners.description."  # AudioCraft's prefix of the text conditioner's keys
MELODY = "condition_provider.conditioners.self_wav."  # and of the chroma conditioner's

# -----------------------------------------------------------------------------
# data: the token cache and the batches


def codec_hash(codec):
    """sha256 of the codec's config and weights: part of the cache's name, and checked on resume."""
    h = hashlib.sha256(json.dumps(asdict(codec.config), sort_keys=True).encode())
    for k, v in sorted(codec.state_dict().items()):
        h.update(k.encode() + v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def clips(args, split, n, sample_rate, channels):
    """Yield n (wav [C, T], captions, labels) of a split. Built-in: clip i = data.make_clip(i, seed), its tags and
    its sentence both kept (AudioGen draws one caption per item); 'valid' uses seed + 2**31 as BuiltinDataset.
    A folder: crops of `duration` s, one file in ten held out, the files cycled with new crops (FolderDataset)."""
    if args.data is None:
        seed = args.seed + (data.VALID_SEED_OFFSET if split == "valid" else 0)
        for i in range(n):
            c = data.make_clip(i, seed, args.duration, sample_rate)
            labels = json.loads(json.dumps(c["labels"], default=lambda x: x.item()))  # numpy -> python numbers
            yield torch.from_numpy(c["wav"])[None].repeat(channels, 1), [c["tags"], c["sentence"]], labels
        return
    ds = data.FolderDataset(args.data, sample_rate, channels, duration=args.duration, seed=args.seed, pad=True,
                            verbose=split == "train")  # its start-up line once, not once per split
    files = [i for i in range(len(ds)) if (i % 10 == 9) == (split == "valid")] or [0]  # one file: both splits
    for j in range(n):
        ds.epoch = j // len(files)  # the crop is drawn from (seed, file, epoch)
        item = ds[files[j % len(files)]]
        yield item["wav"], [item["text"]], item["labels"]


@torch.no_grad()
def build_cache(args, codec, n_q, path, device, melody=None):
    """Encode both splits, 16 clips per call -> {split: {codes int16 [N, K, T], captions, labels}}, saved atomically.
    With a melody conditioner, also chroma int8 [N, chroma_len]: each music clip's pitch classes (built-in data:
    the clips with an instrument; a folder: every clip), 0 (the null melody) for the others."""
    out, t0 = {}, time.time()
    for split, n in (("train", args.n_clips), ("valid", args.eval_clips)):
        items = list(clips(args, split, n, codec.sample_rate, codec.channels))
        codes = []
        for i in range(0, n, 16):
            wav = torch.stack([it[0] for it in items[i:i + 16]]).to(device)  # [b, C, T]
            codes.append(codec.encode(wav, n_q=n_q).cpu().short())  # [b, K, frames]; card <= 32768
            print(f"\rencoding {split}: {min(n, i + 16)}/{n} clips ({time.time() - t0:.0f} s)", end="", flush=True)
        out[split] = dict(codes=torch.cat(codes), captions=[it[1] for it in items], labels=[it[2] for it in items])
        if melody is not None:
            music = [args.data is not None or it[2].get("instrument") is not None for it in items]
            out[split]["chroma"] = torch.stack([melody.chroma([it[0]])[0] if m else torch.zeros(melody.chroma_len,
                                                dtype=torch.long) for it, m in zip(items, music)]).to(torch.int8)
        print()
    save_atomic(out, path)


def as_prompt(text, normalize):
    """A caption as the conditioner takes it: None (the null condition) if empty, or only stop words once normalised."""
    return text if text.strip() and (not normalize or normalize_text(text)) else None


def get_batch(split, step, args, rank=0, world=1):
    """(codes [B, K, T] long, texts [B], chroma [B, chroma_len] long or None) of one step, a function of (seed, step)
    only, so a resumed run sees exactly the batches of the uninterrupted one. Each item draws one of its captions;
    each rank takes its slice of the global batch, and the CFG coin is the same on every rank (one draw per step):
    it nulls text and melody together; the melody has its own coin too (AudioCraft's attribute dropout)."""
    B, g = args.batch_size, torch.Generator().manual_seed(args.seed * 1_000_003 + step)
    idx = torch.randint(len(split["codes"]), (B * world,), generator=g)
    pick = torch.randint(2**30, (B * world,), generator=g)  # which caption of each item
    texts = [as_prompt(split["captions"][i][p % len(split["captions"][i])], args.normalize)
             for i, p in zip(idx.tolist(), pick.tolist())]
    melodies = idx.tolist() if "chroma" in split else None  # item i plays the chroma of clip melodies[i]
    texts, melodies = cfg_dropout(texts, melodies, p=args.cfg_dropout, generator=g)  # all None with probability p
    mine = idx[rank * B:(rank + 1) * B]
    chroma = None
    if melodies is not None:
        null = melodies[0] is None or torch.rand(1, generator=g).item() < args.melody_dropout
        chroma = split["chroma"][mine].long() * (not null)  # 0 everywhere = the null melody
    return split["codes"][mine].long(), texts[rank * B:(rank + 1) * B], chroma

# -----------------------------------------------------------------------------
# the model: LM + text conditioner


class TextToAudio(nn.Module):
    """The LM and its conditioners as one module, so that DDP, torch.compile and the optimizer see them all:
    texts -> conditioner -> (embeds [B, L, D], mask [B, L]) -> the LM's cross-attention; with a melody conditioner,
    chroma [B, chroma_len] -> embeds [B, chroma_len, D] prepended to the sequence (MusicGen-melody's prefix)."""

    def __init__(self, lm, conditioner, melody=None):
        super().__init__()
        self.lm, self.conditioner, self.melody = lm, conditioner, melody

    def forward(self, codes, texts, chroma=None):
        """codes [B, K, T] long, texts [B] (str or None), chroma [B, chroma_len] long (melody models; None: the null
        melody) -> (logits [B, K, T, card], cross-entropy per codebook [K])."""
        embeds, mask = self.conditioner(texts)  # null rows: all zeros
        prepend = None
        if self.melody is not None:
            chroma = chroma if chroma is not None else torch.zeros(len(codes), self.melody.chroma_len, dtype=torch.long)
            prepend = self.melody.embed(chroma.to(codes.device))[0]  # [B, chroma_len, D]
        logits, _ = self.lm(codes, embeds, mask, prepend=prepend)  # logits[:, q, t] predicts codes[:, q, t]
        return logits, codebook_cross_entropy(logits, codes)

    def checkpoint(self):
        """One flat state dict, lm.load_lm's: the LM's keys, then the conditioners' under AudioCraft's names."""
        melody = self.melody.state_dict().items() if self.melody is not None else []
        return {**self.lm.state_dict(), **{COND + k: v for k, v in self.conditioner.state_dict().items()},
                **{MELODY + k: v for k, v in melody}}


def load_model(path, device="cpu"):
    """This repo's LM checkpoint (train_lm's ckpt.pt or an exported lm.pt) -> (TextToAudio in eval mode, the
    checkpoint dict). The LM comes from lm.load_lm (its stored config); the conditioner is rebuilt from the stored
    T5 config with the tokenizer named in the checkpoint (next to it), its tensors read back from their names."""
    lm, cond_state = load_lm(path, device)
    ckpt = torch_load(path, "LM checkpoint")  # again, for the entries load_lm ignores
    meta = ckpt.get("conditioner")
    if not isinstance(meta, dict):
        raise ValueError(f"{path} has no 'conditioner' entry: not a checkpoint of train_lm.py")
    tokenizer = Tokenizer(os.path.join(os.path.dirname(path), meta["tokenizer"]))
    cond = TextConditioner(T5Config(**meta["t5"]), tokenizer, lm.config.dim, finetune=True, normalize=meta["normalize"])
    load_state(cond, {k[len(COND):]: v for k, v in cond_state.items() if k.startswith(COND)}, path)
    melody = None
    if meta.get("melody"):  # trained with --melody: the chroma conditioner's settings and output_proj
        melody = MelodyConditioner(lm.config.dim, **meta["melody"])
        load_state(melody, {k[len(MELODY):]: v for k, v in cond_state.items() if k.startswith(MELODY)}, path)
    return TextToAudio(lm, cond, melody).to(device).eval(), ckpt


def checkpoint(config, model, meta, opt, step, elapsed, args, rngs, device):
    """ckpt.pt's contents, for the periodic save and the Ctrl-C one: load_model's format (config, model, conditioner,
    codec) plus all an exact resume needs: optimizer, step, rngs (every rank's RNG state, gathered by the caller as
    they are between two steps), this process's CUDA RNG state, and the flags."""
    return dict(config=asdict(config), model=model.checkpoint(), **meta, optimizer=opt.state_dict(), step=step,
                elapsed=elapsed, args=vars(args), rng=rngs,
                cuda_rng=torch.cuda.get_rng_state() if device.startswith("cuda") else None)


def get_lr(step, args):
    """Linear warmup to lr, cosine decay to min_lr at lr_decay_steps, then min_lr (nanoGPT's get_lr)."""
    decay_steps = args.lr_decay_steps or args.steps
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    ratio = min(1.0, (step - args.warmup) / max(1, decay_steps - args.warmup))  # 0 -> 1 along the cosine
    return args.min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (args.lr - args.min_lr)

# -----------------------------------------------------------------------------
# evaluation, samples, export


@torch.no_grad()
def evaluate(model, split, args, device, ctx, n=None):
    """Cross-entropy per codebook [K] of the first n held-out clips, their captions alternating (no CFG dropout)."""
    model.eval()
    n, ce = n or len(split["codes"]), 0.0
    for i in range(0, n, args.batch_size):
        codes = split["codes"][i:min(n, i + args.batch_size)].long().to(device)  # [b, K, T]
        caps = split["captions"][i:i + len(codes)]
        texts = [as_prompt(c[(i + j) % len(c)], args.normalize) for j, c in enumerate(caps)]
        chroma = split["chroma"][i:i + len(codes)].long() if "chroma" in split else None
        with ctx:
            ce = ce + model(codes, texts, chroma)[1].float() * len(codes) / n  # clip-weighted mean
    model.train()
    return ce


def write_wavs(codec, codes, pattern):
    """Decode codes [B, K, T] and write each clip as 16-bit WAV (clipped to [-1, 1]) to pattern.format(i)."""
    for i, wav in enumerate(codec.decode(codes).float().clamp(-1, 1).cpu()):  # [C, T * hop] each
        sf.write(pattern.format(i), wav.T.numpy(), codec.sample_rate, subtype="PCM_16")


def export(out, model, meta, codec, tokenizer_path, valid, args, device, ctx):
    """Write the shippable model to `out`: lm.pt (fp16 tensors, config, conditioner), tokenizer.model, and codec.pt
    (the codec's config + weights only; fp16 if that moves the decoded audio by less than 1e-3). Prints what fp16
    changes: the held-out loss of the reloaded lm.pt, the largest sample difference of the codec."""
    os.makedirs(out, exist_ok=True)
    half = lambda sd: {k: v.half() if v.is_floating_point() and v.abs().max() < 6e4 else v for k, v in sd.items()}
    shutil.copyfile(tokenizer_path, os.path.join(out, "tokenizer.model"))
    save_atomic(dict(config=asdict(model.lm.config), model=half(model.checkpoint()), conditioner=meta["conditioner"],
                     codec=dict(path="codec.pt", hash=meta["codec"]["hash"])), os.path.join(out, "lm.pt"))
    n = min(16, len(valid["codes"]))
    ce, ce_half = (evaluate(m, valid, args, device, ctx, n) for m in (model, load_model(f"{out}/lm.pt", device)[0]))
    diff = export_codec(codec, f"{out}/codec.pt", valid["codes"][:n].long())
    mb = {f: os.path.getsize(os.path.join(out, f)) / 1e6 for f in ("lm.pt", "codec.pt", "tokenizer.model")}
    print(f"exported to {out}: " + ", ".join(f"{f} {s:.1f} MB" for f, s in mb.items()) + f" = {sum(mb.values()):.1f}"
          f" MB | lm fp16: held-out CE {ce.mean():.4f} -> {ce_half.mean():.4f} | codec in "
          f"{'fp16' if diff < 1e-3 else 'fp32'} (fp16 max |diff| {diff:.1e})")


def ce_line(ce):
    """'ce a b c d | ppl ...': the cross-entropy of each codebook (nats) and its perplexity exp(ce)."""
    return "ce " + " ".join(f"{c:.3f}" for c in ce.tolist()) + " | ppl " + " ".join(f"{math.exp(c):.1f}" for c in ce)

# -----------------------------------------------------------------------------
# training


def main(args):
    ddp = int(os.environ.get("WORLD_SIZE", "1")) > 1
    device = args.device
    if ddp:  # launched by torchrun: one process per GPU, or CPU processes with gloo
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
        rank, world = dist.get_rank(), dist.get_world_size()
        if device.startswith("cuda"):
            device = f"cuda:{os.environ['LOCAL_RANK']}"
            torch.cuda.set_device(device)
    else:
        rank, world = 0, 1
    master, barrier = rank == 0, (dist.barrier if ddp else lambda: None)
    ctx = torch.autocast("cuda", dtype=torch.bfloat16) if device.startswith("cuda") else nullcontext()
    os.makedirs(os.path.join(args.out_dir, "samples"), exist_ok=True)
    ckpt_path, tok_path = os.path.join(args.out_dir, "ckpt.pt"), os.path.join(args.out_dir, "tokenizer.model")

    # the codec, frozen: encodes the data once, decodes the samples; its hash names the cache, guards resume
    try:
        codec = load_codec(args.codec).to(device)
    except (FileNotFoundError, ValueError) as e:
        raise SystemExit(f"--codec: {e}; train one with train_codec.py") from None
    meta = dict(codec=dict(path=args.codec, hash=codec_hash(codec)))
    ckpt = None
    if args.resume:
        if not os.path.isfile(ckpt_path):
            raise SystemExit(f"--resume: no checkpoint at {ckpt_path}; train without --resume first")
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        if ckpt["codec"]["hash"] != meta["codec"]["hash"]:
            raise SystemExit(f"--resume: {args.codec} is not the codec {ckpt_path} was trained on; pass that one")
    # the LM's config: the stored one on resume, else the preset resized by the flags and fitted to the codec
    if ckpt:
        config = LMConfig(**ckpt["config"])
    elif args.preset not in PRESETS:
        raise SystemExit(f"unknown preset {args.preset!r}; choose one of {', '.join(PRESETS)}")
    else:
        base = PRESETS[args.preset]
        dim = args.dim or base.dim
        config = replace(base, dim=dim, cond_dim=dim, num_layers=args.layers or base.num_layers,
                         num_heads=args.heads or base.num_heads, card=codec.config.bins, frame_rate=codec.frame_rate,
                         max_duration=args.duration, extend_stride=round(args.duration / 3, 2))
    if config.n_q > codec.config.n_q:
        raise SystemExit(f"the LM models {config.n_q} codebooks, the codec has {codec.config.n_q}: pick another preset")

    # the token cache, named by the codec's weights and the data settings; then the tokenizer, trained once per run
    # --melody: the chroma at the codec's rate, with MusicGen's time resolution (n_fft 16384 at 32 kHz: 7.8 frames/s)
    melody_meta = None
    if ckpt and ckpt["conditioner"].get("melody"):
        melody_meta = ckpt["conditioner"]["melody"]
    elif args.melody and not ckpt:
        melody_meta = dict(sample_rate=codec.sample_rate, radix2_exp=14 - round(math.log2(32000 / codec.sample_rate)),
                           duration=args.duration)
    melody = MelodyConditioner(config.dim, **melody_meta) if melody_meta else None
    settings = dict(codec=meta["codec"]["hash"], n_q=config.n_q, data=args.data and os.path.abspath(args.data),
                    n_clips=args.n_clips, eval_clips=args.eval_clips, duration=args.duration, seed=args.seed,
                    **(dict(melody=melody_meta) if melody_meta else {}))
    key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
    cache_path = os.path.join(args.cache_dir or os.path.join(args.out_dir, "cache"), f"tokens_{key}.pt")
    if master and os.path.isfile(cache_path):
        print(f"token cache: reusing {cache_path}")
    elif master:
        os.makedirs(os.path.dirname(cache_path), exist_ok=True)
        print(f"token cache: encoding {args.n_clips} + {args.eval_clips} clips of {args.duration} s -> {cache_path}")
        build_cache(args, codec, config.n_q, cache_path, device, melody)
    barrier()  # the other ranks wait for the cache
    cache = torch.load(cache_path, weights_only=True)
    train, valid = cache["train"], cache["valid"]
    if master and not args.resume:  # on the captions as the conditioner sees them, plus every letter and digit
        caps = [normalize_text(c) if args.normalize else c for cs in train["captions"] for c in cs]
        caps = [c for c in caps if c.strip()]
        # each caption word once more as a sentence of its own: on the captions alone the unigram model keeps
        # only ~180 pieces and splits common words ("piano" -> p i an o); with them every word is one piece
        words = sorted({w for c in caps for w in c.split()})
        Tokenizer.train(caps + words + [" ".join(string.ascii_letters + string.digits)], args.vocab_size, tok_path)
    barrier()  # and for the tokenizer

    # model and optimizer (the same seed on every rank: identical replicas)
    torch.manual_seed(args.seed)
    if ckpt:
        model, _ = load_model(ckpt_path, device)
        meta["conditioner"] = ckpt["conditioner"]
    elif args.t5 not in T5_PRESETS:
        raise SystemExit(f"unknown --t5 {args.t5!r}; choose one of {', '.join(T5_PRESETS)}")
    else:
        tokenizer = Tokenizer(tok_path)
        t5_config = replace(T5_PRESETS[args.t5], vocab_size=tokenizer.vocab_size)  # no unused embedding rows
        model = TextToAudio(LM(config), TextConditioner(t5_config, tokenizer, config.dim, finetune=True,
                                                        normalize=args.normalize), melody)
        meta["conditioner"] = dict(t5=asdict(t5_config), tokenizer="tokenizer.model", normalize=args.normalize,
                                   melody=melody_meta)
    model.to(device).train()
    # AdamW with decay on matrices and embeddings only, as nanoGPT (norm gains and biases are not decayed)
    groups = [dict(params=[p for p in model.parameters() if p.dim() >= 2], weight_decay=args.weight_decay),
              dict(params=[p for p in model.parameters() if p.dim() < 2], weight_decay=0.0)]  # norms, biases
    try:  # fused: one kernel for all tensors, much faster on CPU than the per-tensor loop
        opt = torch.optim.AdamW(groups, lr=args.lr, betas=(0.9, 0.95), fused=True)
    except RuntimeError:  # torch < 2.4 has no fused AdamW on CPU
        opt = torch.optim.AdamW(groups, lr=args.lr, betas=(0.9, 0.95))
    step, elapsed = 0, 0.0
    if ckpt:  # exact resume: weights (above), optimizer moments, step (= the batches and the lr), RNG states
        opt.load_state_dict(ckpt["optimizer"])
        step, elapsed = ckpt["step"], ckpt["elapsed"]
        torch.set_rng_state(ckpt["rng"][rank if len(ckpt["rng"]) == world else 0])  # T5 dropout's draws
        if device.startswith("cuda"):
            torch.cuda.set_rng_state(ckpt["cuda_rng"])
        if master:
            print(f"resumed from {ckpt_path} at step {step} (of {args.steps})")
    if master:
        trim_log(os.path.join(args.out_dir, "eval.tsv"), step)
    # DDP averages the gradients across ranks inside backward; compile (CUDA) fuses the LM's kernels
    train_model = nn.parallel.DistributedDataParallel(model) if ddp else model
    if args.compile:
        train_model = torch.compile(train_model)
    picked = [i for i, c in enumerate(valid["captions"]) if as_prompt(c[0], args.normalize)][:args.n_samples]
    prompts = [valid["captions"][i][0] for i in picked]  # sampled at each eval, with their clips' melodies
    if master:  # what is trained on what, and the codec's rendering of the sampled captions' own clips
        n_lm, n_t5 = (sum(p.numel() for p in m.parameters()) / 1e6 for m in (model.lm, model.conditioner))
        K, T = train["codes"].shape[1:]
        print(f"LM {n_lm:.2f}M + text conditioner {n_t5:.2f}M params ({config.dim} wide, {config.num_layers} layers, "
              f"{K} x {config.card} codes); {len(train['codes'])} clips of {T} frames; {world} process(es) x "
              f"{args.batch_size} clips = {world * args.batch_size * K * T} tokens per step")
        write_wavs(codec, valid["codes"][picked].long().to(device), f"{args.out_dir}/samples/real_{{}}.wav")

    # the loop: one optimizer step per batch; eval, samples and a checkpoint every eval_every steps. Ctrl-C finishes
    # the step, saves and exits; not under torchrun, where SIGINT reaches every rank at a different point and torchrun
    # stops them itself: there the last periodic checkpoint is where --resume starts
    t0, t_log = time.time(), time.time()
    with ctrl_c_ends_the_step(enabled=not ddp) as interrupted:
        while step < args.steps:
            lr = get_lr(step, args)
            for group in opt.param_groups:
                group["lr"] = lr
            codes, texts, chroma = get_batch(train, step, args, rank, world)  # [B, K, T], B prompts (None: null)
            with ctx:  # bf16 on CUDA; the T5 inside runs in fp32 (TextConditioner)
                _, ce = train_model(codes.to(device), texts, chroma)  # [K]: CE of each codebook over its valid cells
            loss = ce.mean()  # AudioCraft: the mean over codebooks (the last delays[k] frames of k are never targets)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            # DDP has averaged the gradients over the ranks during backward; clip their global norm (inf: measure only)
            norm = nn.utils.clip_grad_norm_(model.parameters(), args.grad_clip if args.grad_clip > 0 else math.inf)
            opt.step()
            step += 1

            if master and (step % args.log_every == 0 or step == 1):
                dt, t_log = time.time() - t_log, time.time()
                null = " | null batch" if all(t is None for t in texts) else ""
                print(f"step {step}/{args.steps} | loss {loss.item():.4f} | {ce_line(ce.detach().float())} | "
                      f"lr {lr:.2e} | grad {norm.item():.2f}{null} | {(args.log_every if step > 1 else 1) / dt:.2f} "
                      "steps/s", flush=True)
            if step % args.eval_every == 0 or step == args.steps:
                elapsed, t0 = elapsed + time.time() - t0, time.time()
                rngs, sync = [torch.get_rng_state()], ""  # every rank's RNG state, for an exact resume of each
                if ddp:  # replicas must hold the same weights: compare a checksum across ranks
                    s = torch.stack([p.detach().double().sum() for p in model.parameters()]).sum().reshape(1).to(device)
                    sums, rngs = [torch.zeros_like(s) for _ in range(world)], [None] * world
                    dist.all_gather(sums, s)
                    dist.all_gather_object(rngs, torch.get_rng_state())
                    if not all(torch.equal(x, sums[0]) for x in sums):
                        raise RuntimeError(f"DDP replicas diverged at step {step}: {[x.item() for x in sums]}")
                    sync = " | replicas in sync"
                if master:
                    ce = evaluate(model, valid, args, device, ctx)  # [K]
                    model.eval()  # samples: CFG, a seeded generator (the global RNG, saved below, is untouched)
                    with torch.no_grad(), ctx:
                        g = torch.Generator(device).manual_seed(args.seed)
                        embeds, mask = model.conditioner(prompts) if prompts else (None, None)
                        prepend = null_prepend = None
                        if model.melody is not None and prompts:  # the sampled captions' own melodies
                            chroma = valid["chroma"][picked].long().to(device)  # [n, chroma_len]
                            prepend, null_prepend = model.melody.embed(chroma)[0], model.melody.embed(0 * chroma)[0]
                        codes = model.lm.generate(embeds, duration=args.duration, condition_mask=mask, prepend=prepend,
                                                  null_prepend=null_prepend, cfg_coef=args.cfg_coef, top_k=args.top_k,
                                                  generator=g) if prompts else None
                    if codes is not None:  # [B, K, T]
                        write_wavs(codec, codes, f"{args.out_dir}/samples/step{step:06d}_{{}}.wav")
                    model.train()
                    print(f"eval step {step} ({elapsed / 60:.1f} min): held-out loss {ce.mean():.4f} | {ce_line(ce)} | "
                          f"samples of {prompts}{sync}", flush=True)
                    with open(os.path.join(args.out_dir, "eval.tsv"), "a") as f:
                        f.write("\t".join([str(step), f"{elapsed:.0f}"] + [f"{c:.4f}" for c in [ce.mean(), *ce]])
                                + "\n")
                    save_atomic(checkpoint(config, model, meta, opt, step, elapsed, args, rngs, device), ckpt_path)
            if interrupted and step < args.steps:  # Ctrl-C: this step is done; save it as the periodic saves do
                elapsed += time.time() - t0
                save_atomic(checkpoint(config, model, meta, opt, step, elapsed, args, [torch.get_rng_state()], device),
                            ckpt_path)
                raise SystemExit(f"interrupted at step {step}: saved {ckpt_path}; continue with --resume")
    if master:
        out = args.export or os.path.join(args.out_dir, "export")
        export(out, model, meta, codec, tok_path, valid, args, device, ctx)
    if ddp:
        dist.destroy_process_group()
    return model


if __name__ == "__main__":
    main(parser.parse_args())
