"""
Train the text-to-audio language model (lm.py) on codec tokens, with AudioGen's recipe at toy scale.

    python train_lm.py --codec runs/codec/ckpt.pt           # tiny LM on the built-in data (CPU ok)
    python train_lm.py --data path/to/folder --device cuda --compile
    torchrun --nproc_per_node 2 train_lm.py ...             # data parallel (DDP; gloo on CPU)
    python train_lm.py --resume                             # continue exactly where out_dir stopped (or Ctrl-C)
    python train_lm.py --resume --export checkpoints        # (re)write the shippable model only
    python train_lm.py --melody                             # music clips also conditioned on their chromagram
    python train_lm.py --t5 path/to/t5-base --no-normalize  # a frozen pretrained T5 (a Hugging Face folder)

1. The codec encodes the clips ONCE into a token cache, with as many mixed clips (AudioGen's mixing augmentation,
   data.mix_clips); a sentencepiece tokenizer is fit to the (normalised) captions, or --t5 DIR brings T5's own.
2. The LM and the text conditioner (a T5 encoder + output_proj) are trained jointly from scratch on the
   delay-patterned codes, with the cross-entropy of each codebook; --t5 DIR: the T5 stays frozen, only output_proj
   and the LM train. One coin per step (p = aug_p 0.5) takes the whole batch from the mixes. Each caption word is
   dropped (--word-dropout) or replaced with <unk> (--unk-dropout): a word the model never saw reads as <unk> and
   must not derail the others. One CFG coin per step nulls every prompt (p = 0.1, AudioGen). --melody: each music
   clip's own chromagram is prepended to the sequence, as MusicGen-melody's self_wav; the same coin nulls it, and a
   second one (p = 0.5, AudioCraft's attribute dropout) the melodies alone.
3. Every --eval-every steps: the held-out loss, a few held-out captions sampled with CFG (next to real_*.wav: their
   own clips through the codec), ckpt.pt. At the end: the shippable model (lm.pt, codec.pt, tokenizer.model). Both
   checkpoints are model.py's format (model.from_checkpoint); ckpt.pt adds what an exact resume needs (checkpoint).

References:
1) AudioGen, Kreuk et al. 2022, arXiv:2209.15352 (text normalisation, CFG dropout 0.1, one caption drawn per
   item, mixing). Official code: audiocraft/solvers/audiogen.py, data/sound_dataset.py (mix_samples),
   config/solver/audiogen/audiogen_base_16khz.yaml (aug_p 0.5, mix_p 0.5), conditioner/text2sound.yaml (frozen T5)
2) MusicGen, Copet et al. 2023, arXiv:2306.05284 Sec. 4.1 (AdamW betas (0.9, 0.95), weight decay 0.1, gradient
   clipping 1.0, cosine schedule with warmup). Official code: audiocraft/solvers/musicgen.py (CE per codebook)
3) Classifier-free guidance, Ho & Salimans 2022, arXiv:2207.12598 (conditioners.cfg_dropout)
4) nanoGPT train.py (loop, warmup + cosine, DDP, torch.compile, bf16 autocast), github.com/karpathy/nanoGPT

Deviations from AudioCraft (also in the README): by default the T5 is trained from scratch with the LM (AudioCraft:
a frozen pretrained t5-large, --t5 DIR); normalize_text is on (released configs: off); --unk-dropout 0.1 (words the
T5 trained here never saw read as <unk>); mixing draws from a cached pool of n_clips mixes, not fresh ones each step
(AudioCraft draws B = 2 x batch_size clips and keeps batch_size = mix_p B: mixes of pairs with probability aug_p,
else plain clips; here the coin picks the pool, so half the batches are mixes as there), pairs of two different
clips (there: a clip meets itself with probability 1/B), an SNR, offset and level per mix (there: per batch);
--melody prepends the clip's own chroma (no demucs stem separation) while the text stays in cross-attention, or
with --melody-fuse sum adds it to each frame at its time;
synthetic data; max_duration is the training clip length, and sampling past it hops by extend_stride =
max_duration / 3.
"""

import argparse
import hashlib
import itertools
import json
import math
import os
import shutil
import string
import time
from dataclasses import asdict, replace

import numpy as np
import soundfile as sf
import torch
import torch.nn as nn

import training
from checkpoint import codec_hash, half, load_codec, load_t5, save_atomic, save_codec
from conditioners import (MelodyConditioner, TextConditioner, Tokenizer, cfg_dropout, normalize_text,
                          word_dropout)
from data import (MIX_LEVEL_DB, MIX_MIN_OVERLAP, MIX_SNR_DB, VALID_SEED_OFFSET, FolderDataset, arg_type, mix_clips,
                  parse_tags, probability)
from lm import LM, PRESETS, LMConfig
from model import TextToAudio, from_checkpoint
from synth import make_clip
from t5 import T5_PRESETS, T5Encoder

parser = argparse.ArgumentParser(description="Train the text-to-audio LM on codec tokens.")
# I/O and data
parser.add_argument("--out-dir", default="runs/lm", help="checkpoints, tokenizer, samples and logs go here")
parser.add_argument("--resume", action="store_true", help="continue from out_dir/ckpt.pt (exactly)")
parser.add_argument("--export", default="", help="where the shippable model goes at the end (default out_dir/export)")
parser.add_argument("--codec", default="runs/codec/ckpt.pt", help="trained codec (any load_codec file)")
parser.add_argument("--cache-dir", default="", help="token caches (default out_dir/cache)")
parser.add_argument("--data", default=None, help="audio folder or manifest with captions (default: built-in data)")
parser.add_argument("--n-clips", type=int, default=2000, help="training clips to encode (a folder: crops)")
parser.add_argument("--eval-clips", type=int, default=64, help="held-out clips for the eval loss")
parser.add_argument("--duration", type=float, default=3.0, help="clip length in s, also the LM's max_duration")
parser.add_argument("--seed", type=int, default=0, help="seed of the data, the init and the batches")
parser.add_argument("--aug-p", type=float, default=0.5, help="P(a step's batch is all mixed clips) (AudioGen's aug_p; "
                    "0 = no mixing); as many mixes as --n-clips are cached")
# --data only: which files and how often (AudioCraft's AudioDataset; off: files cycled), MusicGen's metadata captions
parser.add_argument("--sample-on-weight", action="store_true", help="draw training files in proportion to the "
                    "manifest's per-file weight (AudioCraft's sample_on_weight; a file without one: 1)")
parser.add_argument("--sample-on-duration", action="store_true", help="draw training files in proportion to their "
                    "duration (AudioCraft's sample_on_duration; with --sample-on-weight: duration x weight)")
parser.add_argument("--balance-tags", action="store_true", help="draw training files by inverse tag frequency: each "
                    "caption word's files weigh about the same in all (combines with the two above)")
parser.add_argument("--exclude-tags", type=arg_type(parse_tags), default=(), help="comma-separated words, e.g. "
                    "speech,music: leave out files whose captions or sidecar fields hold one (AudioGen removed speech)")
parser.add_argument("--merge-text-p", type=arg_type(probability), default=0.0, help="P(a training caption gets the "
                    "sidecar's key, bpm, genre, moods, keywords, instrument as 'name: value') (MusicGen; 0 = off)")
parser.add_argument("--drop-desc-p", type=arg_type(probability), default=0.5, help="P(the description is dropped from "
                    "a merged caption, leaving the metadata alone) (AudioCraft's drop_desc_p)")
parser.add_argument("--drop-other-p", type=arg_type(probability), default=0.5, help="P(each metadata field is KEPT in "
                    "a merged caption) (AudioCraft's drop_other_p, named so but the chance to keep)")
# Model: the LM preset resized by the flags, a T5 trained from scratch (or a frozen pretrained one), a tokenizer
parser.add_argument("--preset", default="tiny", help=f"LM architecture: {', '.join(PRESETS)}")
parser.add_argument("--dim", type=int, default=0, help="LM width (0 = the preset's)")
parser.add_argument("--layers", type=int, default=0, help="LM layers (0 = the preset's)")
parser.add_argument("--heads", type=int, default=0, help="LM attention heads (0 = the preset's)")
parser.add_argument("--t5", default="tiny", help=f"T5 trained with the LM: {', '.join(T5_PRESETS)}; or a Hugging Face "
                    "T5 folder (config.json, weights, spiece.model, e.g. t5-base), frozen as AudioCraft's")
parser.add_argument("--vocab-size", type=int, default=1000, help="most sentencepiece pieces")
parser.add_argument("--normalize", action=argparse.BooleanOptionalAction, default=True,
                    help="AudioGen's text normalisation of captions and prompts (stop words, lemmas)")
parser.add_argument("--melody", action="store_true", help="also condition on each music clip's own chromagram "
                    "(MusicGen-melody's self_wav); sound clips get the null melody")
parser.add_argument("--melody-fuse", default="prepend", choices=("prepend", "sum"), help="how the LM takes the chroma: "
                    "'prepend' (MusicGen-melody: before the sequence) or 'sum' (added to each codec frame at its time)")
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
parser.add_argument("--word-dropout", type=float, default=0.0, help="P(a caption word is dropped) (AudioCraft's "
                    "word_dropout: 0 AudioGen, 0.3 MusicGen)")
parser.add_argument("--unk-dropout", type=float, default=0.1, help="P(a caption word -> <unk>): the LM learns to read "
                    "past words it does not know (AudioCraft has none; a pretrained --t5 knows every piece: pass 0)")
# Sampling (during training) and logging
parser.add_argument("--eval-every", type=int, default=250, help="steps between eval, samples and checkpoints")
parser.add_argument("--log-every", type=int, default=10, help="steps between progress lines")
parser.add_argument("--n-samples", type=int, default=2, help="held-out captions sampled as WAV at each eval")
parser.add_argument("--cfg-coef", type=float, default=3.0, help="guidance scale of the samples")
parser.add_argument("--top-k", type=int, default=250, help="top-k of the samples")
# System
parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cpu or cuda")
parser.add_argument("--compile", action="store_true", help="torch.compile the model (CUDA)")

# ----------------------------------------------------------------------------- data: the token cache and the batches

DATA_FLAGS = ("sample_on_weight", "sample_on_duration", "balance_tags", "exclude_tags", "merge_text_p", "drop_desc_p",
              "drop_other_p")  # FolderDataset's options: in the token cache's name when not at their defaults


def clips(args, split, n, sample_rate, channels):
    """Yield n (wav [C, T], captions, labels) of a split. Built-in: clip i = synth.make_clip(i, seed), its tags and
    its sentence both kept (AudioGen draws one caption per item); 'valid' uses seed + 2**31 as BuiltinDataset.
    A folder: crops of `duration` s, one file in ten held out, the files cycled with new crops (FolderDataset), or
    with a sampling flag the training files drawn by their probabilities (AudioCraft's AudioDataset, sample_file)."""
    flags = [f"--{f.replace('_', '-')}" for f in DATA_FLAGS if getattr(args, f) != parser.get_default(f)]
    if args.data is None and flags:
        raise SystemExit(f"{', '.join(flags)}: the built-in data has no manifest or sidecars; pass --data FOLDER")
    if args.data is None:
        seed = args.seed + (VALID_SEED_OFFSET if split == "valid" else 0)
        for i in range(n):
            c = make_clip(i, seed, args.duration, sample_rate)
            labels = json.loads(json.dumps(c["labels"], default=lambda x: x.item()))  # numpy -> python numbers
            yield torch.from_numpy(c["wav"])[None].repeat(channels, 1), [c["tags"], c["sentence"]], labels
        return
    train = split == "train"  # exclusion on both splits; the draws and metadata captions on the training files only
    options = {f: getattr(args, f) for f in DATA_FLAGS if train or f == "exclude_tags"}
    try:
        ds = FolderDataset(args.data, sample_rate, channels, duration=args.duration, seed=args.seed, pad=True,
                           verbose=train, **options)  # its start-up line once, not once per split
    except ValueError as e:  # an unusable manifest or weight: one line, no traceback
        raise SystemExit(f"--data: {e}") from None
    files = [i for i in range(len(ds)) if (i % 10 == 9) == (split == "valid")] or [0]  # one file: both splits
    if ds.sampling:
        ds.files = [ds.files[i] for i in files]  # the draws see the training files only
    for j in range(n):
        if ds.sampling:  # item j: a training file drawn by its probability, then its crop, from (seed, j)
            item = ds[j]
        else:
            ds.epoch = j // len(files)  # the crop is drawn from (seed, file, epoch)
            item = ds[files[j % len(files)]]
        yield item["wav"], [item["text"]], item["labels"]


def mixed_clips(items, seed):
    """Yield len(items) mixes for the cache: mix m = data.mix_clips(items[i], items[j]), clips i and j != i, the SNR,
    offset and level all drawn from (seed, m). AudioCraft mixes within a step's batch; a token cache encodes once."""
    for m in range(len(items)):
        rng = np.random.default_rng([seed, m, 0x6D6978])  # "mix": a stream no clip or crop draws from
        i = int(rng.integers(len(items)))
        j = (i + 1 + int(rng.integers(len(items) - 1))) % len(items)  # any other clip
        yield mix_clips(items[i], items[j], rng)


@torch.no_grad()
def encode_clips(name, items, n, codec, n_q, device, melody=None, music=None):
    """n (wav [C, T], captions, labels) items, 16 per codec call -> {codes int16 [n, K, T], captions, labels}; with a
    melody conditioner also chroma int8 [n, chroma_len]: the pitch classes of the clips that music(labels) calls
    music, 0 (the null melody) for the others."""
    out, codes, chroma, items, t0 = dict(captions=[], labels=[]), [], [], iter(items), time.time()
    for i in range(0, n, 16):
        chunk = list(itertools.islice(items, 16))
        wav = torch.stack([w for w, _, _ in chunk]).to(device)  # [b, C, T]
        codes.append(codec.encode(wav, n_q=n_q).cpu().short())  # [b, K, frames]; card <= 32768
        out["captions"] += [c for _, c, _ in chunk]
        out["labels"] += [lab for _, _, lab in chunk]
        if melody is not None:
            for w, _, lab in chunk:  # [chroma_len] each; 0 everywhere = the null melody
                if music(lab):
                    chroma.append(melody.chroma([w])[0])
                else:
                    chroma.append(torch.zeros(melody.chroma_len, dtype=torch.long))
        print(f"\rencoding {name}: {min(n, i + 16)}/{n} clips ({time.time() - t0:.0f} s)", end="", flush=True)
    print()
    out["codes"] = torch.cat(codes)  # [n, K, frames]
    if chroma:
        out["chroma"] = torch.stack(chroma).to(torch.int8)  # [n, chroma_len]: 12 pitch classes fit int8
    return out


def build_cache(args, codec, n_q, path, device, melody=None):
    """Encode both splits -> {split: {codes int16 [N, K, T], captions, labels(, chroma)}}, saved atomically; the
    train split also holds mix: n_clips mixed clips (aug_p > 0). The melody of music clips (built-in data: the clips
    with an instrument; a folder: every clip) is cached as chroma (see encode_clips)."""
    def music(labels):
        return args.data is not None or labels.get("instrument") is not None
    out = {}
    for split, n in (("train", args.n_clips), ("valid", args.eval_clips)):
        items = list(clips(args, split, n, codec.sample_rate, codec.channels))
        out[split] = encode_clips(split, items, n, codec, n_q, device, melody, music)
        if split == "train" and args.aug_p > 0:  # AudioGen's mixing augmentation: n mixes of the n clips
            mixes = mixed_clips(items, args.seed)
            out[split]["mix"] = encode_clips("mixes", mixes, n, codec, n_q, device, melody, music)
    save_atomic(out, path)


def as_prompt(text, normalize):
    """A caption as the conditioner takes it: None (the null condition) if empty, or only stop words once normalised."""
    return text if text.strip() and (not normalize or normalize_text(text)) else None


def get_batch(split, step, args, rank=0, world=1):
    """(codes [B, K, T] long, texts [B], chroma [B, chroma_len] long or None) of one step, a function of (seed, step)
    only: a resumed run sees the same batches. A coin (p = aug_p) takes the whole batch from the cached mixes, as
    AudioCraft mixes a whole batch or none of it (mix_samples). Each item draws one of its captions, whose words are
    dropped or made <unk> (word_dropout); each rank takes its slice of the global batch; the CFG coin (one per step,
    equal on all ranks) nulls text and melody, a second the melody alone."""
    B, g = args.batch_size, torch.Generator().manual_seed(args.seed * 1_000_003 + step)
    if "mix" in split and torch.rand(1, generator=g).item() < args.aug_p:
        split = split["mix"]  # AudioGen's augmented batch: every item a mix of two clips, captions joined
    idx = torch.randint(len(split["codes"]), (B * world,), generator=g)
    pick = torch.randint(2**30, (B * world,), generator=g)  # which caption of each item
    texts = []
    for i, p in zip(idx.tolist(), pick.tolist()):
        captions = split["captions"][i]
        caption = word_dropout(captions[p % len(captions)], args.word_dropout, args.unk_dropout, g)
        texts.append(as_prompt(caption, args.normalize))
    melodies = idx.tolist() if "chroma" in split else None  # item i plays the chroma of clip melodies[i]
    texts, melodies = cfg_dropout(texts, melodies, p=args.cfg_dropout, generator=g)  # all None with probability p
    mine, chroma = idx[rank * B:(rank + 1) * B], None
    if melodies is not None:
        null = melodies[0] is None or torch.rand(1, generator=g).item() < args.melody_dropout
        chroma = split["chroma"][mine].long() * (not null)  # 0 everywhere = the null melody
    return split["codes"][mine].long(), texts[rank * B:(rank + 1) * B], chroma


def get_lr(step, args):
    """Linear warmup to lr, cosine decay to min_lr at lr_decay_steps, then min_lr (nanoGPT's get_lr)."""
    decay_steps = args.lr_decay_steps or args.steps
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    ratio = min(1.0, (step - args.warmup) / max(1, decay_steps - args.warmup))  # 0 -> 1 along the cosine
    return args.min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (args.lr - args.min_lr)


def checkpoint(model, meta, opt, step, elapsed, args, rngs, device):
    """ckpt.pt (periodic and Ctrl-C saves): from_checkpoint's format (config, model, conditioner, codec) + for an exact
    resume: optimizer, step, rngs (each rank's RNG state between two steps, gathered by the caller), CUDA RNG, flags."""
    cuda_rng = torch.cuda.get_rng_state() if device.startswith("cuda") else None
    return dict(config=asdict(model.lm.config), model=model.checkpoint(), **meta, optimizer=opt.state_dict(),
                step=step, elapsed=elapsed, args=vars(args), rng=rngs, cuda_rng=cuda_rng)

# ----------------------------------------------------------------------------- evaluation and samples


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


def write_wavs(wav, sample_rate, pattern):
    """Write each clip of wav [B, C, T] as 16-bit WAV (clipped to [-1, 1]) to pattern.format(i)."""
    for i, w in enumerate(wav.float().clamp(-1, 1).cpu()):  # [C, T] each
        sf.write(pattern.format(i), w.T.numpy(), sample_rate, subtype="PCM_16")


def ce_line(ce):
    """'ce a b c d | ppl ...': the cross-entropy of each codebook (nats) and its perplexity exp(ce)."""
    return "ce " + " ".join(f"{c:.3f}" for c in ce.tolist()) + " | ppl " + " ".join(f"{math.exp(c):.1f}" for c in ce)


def eval_and_save(args, env, model, opt, meta, valid, picked, step, elapsed, rngs, sync):
    """Rank 0, every eval_every steps: the held-out loss, the picked held-out captions sampled with CFG (a seeded
    generator: the global RNG, saved here, is untouched) with their clips' own melodies, eval.tsv, ckpt.pt."""
    ce = evaluate(model, valid, args, env.device, env.ctx)  # [K]
    prompts = [valid["captions"][i][0] for i in picked]
    if prompts:
        chroma = valid["chroma"][picked].long() if "chroma" in valid else None  # [n, chroma_len]
        wav = model.eval().generate(prompts, duration=args.duration, cfg_coef=args.cfg_coef, top_k=args.top_k,
                                    seed=args.seed, chroma=chroma)  # [n, C, T]
        write_wavs(wav, model.codec.sample_rate, f"{args.out_dir}/samples/step{step:06d}_{{}}.wav")
        model.train()
    print(f"eval step {step} ({elapsed / 60:.1f} min): held-out loss {ce.mean():.4f} | {ce_line(ce)} | "
          f"samples of {prompts}{sync}", flush=True)
    training.log_eval(args.out_dir, step, elapsed, [f"{c:.4f}" for c in [ce.mean(), *ce]])
    save_atomic(checkpoint(model, meta, opt, step, elapsed, args, rngs, env.device),
                os.path.join(args.out_dir, "ckpt.pt"))

# ----------------------------------------------------------------------------- the stages of main


def setup(args, env):
    """-> (the frozen codec, which encodes the data once and decodes the samples; ckpt on --resume; the LM's config,
    ckpt's or the preset resized by the flags and fitted to the codec; meta: the checkpoints' codec path and hash;
    t5: (T5Encoder, Tokenizer) of a --t5 folder, read before the long encoding, or None for a preset)."""
    try:
        codec = load_codec(args.codec).to(env.device)
    except (FileNotFoundError, ValueError) as e:
        raise SystemExit(f"--codec: {e}; train one with train_codec.py") from None
    meta = dict(codec=dict(path=args.codec, hash=codec_hash(codec)))
    ckpt = training.load_resume(args.out_dir) if args.resume else None
    if ckpt and ckpt["codec"]["hash"] != meta["codec"]["hash"]:
        raise SystemExit(f"--resume: {args.codec} is not the codec {os.path.join(args.out_dir, 'ckpt.pt')} was "
                         f"trained on; pass that one")
    if ckpt:
        config = LMConfig(**ckpt["config"])
    elif args.preset not in PRESETS:
        raise SystemExit(f"unknown preset {args.preset!r}; choose one of {', '.join(PRESETS)}")
    else:
        base, dim = PRESETS[args.preset], args.dim or PRESETS[args.preset].dim
        config = replace(base, dim=dim, cond_dim=dim, num_layers=args.layers or base.num_layers,
                         num_heads=args.heads or base.num_heads, card=codec.config.bins, frame_rate=codec.frame_rate,
                         max_duration=args.duration, extend_stride=round(args.duration / 3, 2))
    if config.n_q > codec.config.n_q:
        raise SystemExit(f"the LM models {config.n_q} codebooks, the codec has {codec.config.n_q}: pick another preset")
    t5 = None
    if not ckpt and args.t5 not in T5_PRESETS:
        if not os.path.isdir(args.t5):
            raise SystemExit(f"--t5 {args.t5!r}: neither a preset ({', '.join(T5_PRESETS)}) nor a folder")
        try:
            t5 = load_t5(args.t5)
        except (FileNotFoundError, ValueError, ImportError) as e:
            raise SystemExit(f"--t5: {e}") from None
    return codec, ckpt, config, meta, t5


def seen_captions(split, normalize):
    """Every caption of a split as the conditioner reads it (normalised), empty ones left out."""
    caps = [normalize_text(c) if normalize else c for cs in split["captions"] for c in cs]
    return [c for c in caps if c.strip()]


def prepare_data(args, env, codec, meta, config, melody_meta, t5):
    """The token cache, named by the codec's weights and the data and mixing settings (encoded by rank 0 if new), then
    the tokenizer, trained once per run (a --t5 folder: its spiece.model) -> (train, valid): {codes int16 [N, K, T],
    captions, labels(, chroma)(, mix: the same for the mixed clips)}."""
    if args.aug_p > 0 and args.n_clips < 2:
        raise SystemExit(f"--aug-p {args.aug_p} mixes pairs of clips: use --n-clips 2 or more, or --aug-p 0")
    data = os.path.abspath(args.data) if args.data else args.data
    settings = dict(codec=meta["codec"]["hash"], n_q=config.n_q, data=data, n_clips=args.n_clips,
                    eval_clips=args.eval_clips, duration=args.duration, seed=args.seed)
    for f in DATA_FLAGS:  # the data options away from their defaults
        if getattr(args, f) != parser.get_default(f):
            settings[f] = getattr(args, f)
    if args.aug_p > 0:
        settings["mix"] = dict(clips=args.n_clips, snr_db=MIX_SNR_DB, min_overlap=MIX_MIN_OVERLAP,
                               level_db=MIX_LEVEL_DB)
    if melody_meta:  # the chroma's settings; how the LM fuses it (fuse) does not change the cache
        settings["melody"] = {k: v for k, v in melody_meta.items() if k != "fuse"}
    key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
    cache_path = os.path.join(args.cache_dir or os.path.join(args.out_dir, "cache"), f"tokens_{key}.pt")
    if env.master and os.path.isfile(cache_path):
        print(f"token cache: reusing {cache_path}")
    elif env.master:
        os.makedirs(os.path.dirname(cache_path), exist_ok=True)
        print(f"token cache: encoding {args.n_clips} + {args.eval_clips} clips of {args.duration} s -> {cache_path}")
        melody = MelodyConditioner(config.dim, **melody_meta) if melody_meta else None  # its chroma() only
        build_cache(args, codec, config.n_q, cache_path, env.device, melody)
    def barrier():
        if env.ddp:
            torch.distributed.barrier()

    barrier()  # the other ranks wait for the cache
    cache = torch.load(cache_path, weights_only=True)
    if env.master and not args.resume and t5 is not None:  # a pretrained T5 reads its own pieces
        shutil.copyfile(t5[1].path, os.path.join(args.out_dir, "tokenizer.model"))
    elif env.master and not args.resume:  # on the captions as the conditioner sees them, plus every letter and digit
        caps = seen_captions(cache["train"], args.normalize)
        # each caption word once more as a sentence of its own: on the captions alone the unigram model keeps
        # only ~180 pieces and splits common words ("piano" -> p i an o); with them every word is one piece
        words = sorted({w for c in caps for w in c.split()})
        Tokenizer.train(caps + words + [" ".join(string.ascii_letters + string.digits)], args.vocab_size,
                        os.path.join(args.out_dir, "tokenizer.model"))
    barrier()  # and for the tokenizer
    return cache["train"], cache["valid"]


def build(args, env, ckpt, codec, config, melody_meta, t5, train):
    """TextToAudio and AdamW (the same seed on every rank: identical replicas), from ckpt on --resume, else a new LM
    and a T5 sized for the tokenizer, or the --t5 folder's, frozen (AudioCraft: finetune false; only output_proj and
    the LM train) -> (model, opt, the 'conditioner' entry of the checkpoints)."""
    torch.manual_seed(args.seed)
    if ckpt:
        model, _ = from_checkpoint(os.path.join(args.out_dir, "ckpt.pt"), codec, ckpt)  # ckpt: read once
        cond_meta = ckpt["conditioner"]
    else:
        lm, pretrained, known = LM(config), t5 is not None, None
        if not pretrained:  # known: the pieces the captions use; a word with any other reads as <unk> (Tokenizer)
            path = os.path.join(args.out_dir, "tokenizer.model")
            known = sorted({i for ids in Tokenizer(path).sp.encode(seen_captions(train, args.normalize)) for i in ids})
            tokenizer = Tokenizer(path, known=known)
            t5 = T5Encoder(replace(T5_PRESETS[args.t5], vocab_size=tokenizer.vocab_size)), tokenizer  # no unused rows
        text = TextConditioner(*t5, config.dim, finetune=not pretrained, normalize=args.normalize)
        melody = MelodyConditioner(config.dim, **melody_meta) if melody_meta else None
        model = TextToAudio(lm, text, melody, codec)
        cond_meta = dict(t5=asdict(text.t5.config), tokenizer="tokenizer.model", normalize=args.normalize,
                         melody=melody_meta, finetune=text.finetune, known=known)
    model.to(env.device).train()
    # AdamW, decay on matrices and embeddings only (nanoGPT), on what requires grad: not the codec, frozen inside
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [dict(params=[p for p in params if p.dim() >= 2], weight_decay=args.weight_decay),
              dict(params=[p for p in params if p.dim() < 2], weight_decay=0.0)]  # norms, biases
    try:  # fused: one kernel for all tensors, much faster on CPU than the per-tensor loop
        opt = torch.optim.AdamW(groups, lr=args.lr, betas=(0.9, 0.95), fused=True)
    except RuntimeError:  # torch < 2.4 has no fused AdamW on CPU
        opt = torch.optim.AdamW(groups, lr=args.lr, betas=(0.9, 0.95))
    if ckpt:  # exact resume: weights (above), optimizer moments (here), step and RNG states (training.resume)
        opt.load_state_dict(ckpt["optimizer"])
    return model, opt, cond_meta


def loop(args, env, model, opt, meta, train, valid, picked, step, elapsed):
    """One optimizer step per batch; eval, samples and a checkpoint every eval_every steps. Ctrl-C finishes the step,
    saves and exits (not under torchrun)."""
    train_model = training.wrap(model, env, args.compile, sync_buffers=False)  # frozen codec: no broadcast
    ckpt_path, t0, t_log = os.path.join(args.out_dir, "ckpt.pt"), time.time(), time.time()
    with training.ctrl_c_ends_the_step(enabled=not env.ddp) as interrupted:
        while step < args.steps:
            lr = get_lr(step, args)
            for group in opt.param_groups:
                group["lr"] = lr
            codes, texts, chroma = get_batch(train, step, args, env.rank, env.world)  # [B, K, T], B prompts or None
            with env.ctx:  # bf16 on CUDA; the T5 inside runs in fp32 (TextConditioner)
                _, ce = train_model(codes.to(env.device), texts, chroma)  # [K]: CE of each codebook, valid cells
            loss = ce.mean()  # AudioCraft: the mean over codebooks (the last delays[k] frames of k are never targets)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            # DDP has averaged the gradients over the ranks during backward; clip their global norm (inf: measure only)
            norm = nn.utils.clip_grad_norm_(model.parameters(), args.grad_clip if args.grad_clip > 0 else math.inf)
            opt.step()
            step += 1
            if env.master and (step % args.log_every == 0 or step == 1):
                dt, t_log = time.time() - t_log, time.time()
                null = " | null batch" if all(t is None for t in texts) else ""
                print(f"step {step}/{args.steps} | loss {loss.item():.4f} | {ce_line(ce.detach().float())} | "
                      f"lr {lr:.2e} | grad {norm.item():.2f}{null} | {(args.log_every if step > 1 else 1) / dt:.2f} "
                      "steps/s", flush=True)
            if step % args.eval_every == 0 or step == args.steps:
                elapsed, t0 = elapsed + time.time() - t0, time.time()
                rngs, sync = training.check_and_gather(model, step, env)  # every rank's RNG state; DDP: in sync?
                if env.master:
                    eval_and_save(args, env, model, opt, meta, valid, picked, step, elapsed, rngs, sync)
            if interrupted and step < args.steps:  # Ctrl-C: this step is done; save it as the periodic saves do
                elapsed += time.time() - t0
                save_atomic(checkpoint(model, meta, opt, step, elapsed, args, [torch.get_rng_state()], env.device),
                            ckpt_path)
                raise SystemExit(f"interrupted at step {step}: saved {ckpt_path}; continue with --resume")


def export(out, model, meta, valid, args, env):
    """Write the shippable model to `out`: lm.pt (fp16 tensors, config, conditioner), tokenizer.model, codec.pt
    (save_codec); print what fp16 changes: the reloaded lm.pt's held-out loss, the codec's largest sample difference."""
    os.makedirs(out, exist_ok=True)
    shutil.copyfile(os.path.join(args.out_dir, "tokenizer.model"), os.path.join(out, "tokenizer.model"))
    save_atomic(dict(config=asdict(model.lm.config), model=half(model.checkpoint()), conditioner=meta["conditioner"],
                     codec=dict(path="codec.pt", hash=meta["codec"]["hash"])), os.path.join(out, "lm.pt"))
    n, reloaded = min(16, len(valid["codes"])), from_checkpoint(f"{out}/lm.pt", model.codec)[0].to(env.device)
    ce, ce_half = (evaluate(m, valid, args, env.device, env.ctx, n) for m in (model, reloaded))
    diff = save_codec(model.codec, f"{out}/codec.pt", valid["codes"][:n].long())
    mb = {f: os.path.getsize(os.path.join(out, f)) / 1e6 for f in ("lm.pt", "codec.pt", "tokenizer.model")}
    print(f"exported to {out}: " + ", ".join(f"{f} {s:.1f} MB" for f, s in mb.items()) + f" = {sum(mb.values()):.1f}"
          f" MB | lm fp16: held-out CE {ce.mean():.4f} -> {ce_half.mean():.4f} | codec in "
          f"{'fp16' if diff < 1e-3 else 'fp32'} (fp16 max |diff| {diff:.1e})")


def main(args):
    env = training.setup(args.device)  # DDP (under torchrun), device, autocast
    os.makedirs(os.path.join(args.out_dir, "samples"), exist_ok=True)
    codec, ckpt, config, meta, t5 = setup(args, env)
    # --melody: the chroma at the codec's rate, with MusicGen's time resolution (n_fft 16384 at 32 kHz: 7.8 frames/s)
    melody_meta = None
    if ckpt:
        melody_meta = ckpt["conditioner"].get("melody")
    elif args.melody:
        melody_meta = dict(sample_rate=codec.sample_rate,
                           radix2_exp=14 - round(math.log2(32000 / codec.sample_rate)),
                           duration=args.duration, fuse=args.melody_fuse)
    train, valid = prepare_data(args, env, codec, meta, config, melody_meta, t5)
    model, opt, meta["conditioner"] = build(args, env, ckpt, codec, config, melody_meta, t5, train)
    step, elapsed = training.resume(ckpt, args.out_dir, args.steps, env)  # RNG states restored, eval.tsv trimmed
    picked = [i for i, c in enumerate(valid["captions"]) if as_prompt(c[0], args.normalize)][:args.n_samples]
    if env.master:  # what is trained on what, and the codec's rendering of the sampled captions' own clips
        n_lm, n_t5 = (sum(p.numel() for p in m.parameters()) / 1e6 for m in (model.lm, model.conditioner))
        K, T = train["codes"].shape[1:]
        n_mix = len(train["mix"]["codes"]) if "mix" in train else 0
        frozen = "" if model.conditioner.finetune else ", T5 frozen"
        print(f"LM {n_lm:.2f}M + text conditioner {n_t5:.2f}M params ({config.dim} wide, {config.num_layers} layers, "
              f"{K} x {config.card} codes{frozen}); {len(train['codes'])} clips + {n_mix} mixes of {T} frames; "
              f"{env.world} process(es) x {args.batch_size} clips = {env.world * args.batch_size * K * T} tokens "
              "per step")
        if picked:  # --n-samples 0: none
            write_wavs(codec.decode(valid["codes"][picked].long().to(env.device)), codec.sample_rate,
                       f"{args.out_dir}/samples/real_{{}}.wav")
    loop(args, env, model, opt, meta, train, valid, picked, step, elapsed)
    if env.master:
        export(args.export or os.path.join(args.out_dir, "export"), model, meta, valid, args, env)
    training.teardown(env)
    return model


if __name__ == "__main__":
    main(parser.parse_args())
