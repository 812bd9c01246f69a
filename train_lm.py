"""
Train the text-to-audio language model (lm.py) on codec tokens, with AudioGen's recipe at toy scale.

    python train_lm.py --codec runs/codec/ckpt.pt     # tiny LM on the built-in data (CPU ok)
    python train_lm.py --data path/to/folder --device cuda --compile
    torchrun --nproc_per_node 2 train_lm.py ...       # data parallel (DDP; gloo on CPU)
    torchrun --nproc_per_node 8 train_lm.py --fsdp --grad-checkpointing ...  # a larger LM, sharded
    python train_lm.py --resume                       # continue exactly where out_dir stopped
    python train_lm.py --resume --export checkpoints  # (re)write the shippable model only
    python train_lm.py --melody                       # music also conditioned on its chromagram
    python train_lm.py --t5 path/to/t5-base --no-normalize  # a frozen pretrained T5 (HF folder)
    python train_lm.py --init checkpoints --data my_audio --lora 16   # fine-tune a trained model

1. The codec encodes the clips ONCE into a token cache (token_cache.py), with as many mixed clips
   (AudioGen's mixing augmentation); a sentencepiece tokenizer is fit to the (normalised)
   captions, or --t5 DIR / --init SRC brings its own.
2. The LM and the text conditioner (a T5 encoder + output_proj) are trained jointly on the
   delay-patterned codes, with the cross-entropy of each codebook; a pretrained T5 (--t5 DIR, or
   SRC's) stays frozen; --lora RANK trains low-rank adapters of the LM alone (lora.py). One coin per
   step (p = aug_p 0.5) takes the whole batch from the mixes. Each caption word is dropped
   (--word-dropout) or replaced with <unk> (--unk-dropout): a word the model never saw reads as
   <unk> and must not derail the others. One CFG coin per step nulls every prompt (p = 0.1,
   AudioGen). --melody: each music clip's own chromagram conditions it, as MusicGen-melody's
   self_wav; the same coin nulls it, and a second one (p = 0.5, attribute dropout) the melodies.
3. Every --eval-every steps: the held-out loss, a few held-out captions sampled with CFG (next to
   real_*.wav: their own clips through the codec), ckpt.pt; with --ema, of the weights' moving
   average (MusicGen's solver: 0.99 every 10 steps). At the end: the shippable model (lm.pt,
   codec.pt, tokenizer.model; adapters merged; --ema: the average). Both are model.py's format
   (model.from_checkpoint); ckpt.pt adds what an exact resume needs (checkpoint).

References:
1) AudioGen, Kreuk et al. 2022, arXiv:2209.15352 (text normalisation, CFG dropout 0.1, one caption
   drawn per item, mixing). Official code: audiocraft/solvers/audiogen.py,
   config/solver/audiogen/audiogen_base_16khz.yaml, conditioner/text2sound.yaml (frozen T5)
2) MusicGen, Copet et al. 2023, arXiv:2306.05284 Sec. 4.1 (AdamW betas (0.9, 0.95), weight decay
   0.1, gradient clipping 1.0, cosine schedule with warmup); audiocraft/solvers/musicgen.py
3) Classifier-free guidance, Ho & Salimans 2022, arXiv:2207.12598 (conditioners.cfg_dropout)
4) LoRA, Hu et al. 2021, arXiv:2106.09685 (lora.py)
5) nanoGPT train.py (loop, warmup + cosine, DDP, torch.compile, bf16), github.com/karpathy/nanoGPT

Deviations from AudioCraft (also in the README): by default the T5 is trained from scratch with the
LM (AudioCraft: a frozen pretrained t5-large, --t5 DIR); normalize_text is on (released configs:
off); --unk-dropout 0.1 (words the T5 trained here never saw read as <unk>); mixing from a cached
pool (token_cache.py says how it differs); --melody prepends the clip's own chroma (no demucs stem
separation) while the text stays in cross-attention, or with --melody-fuse sum adds it to each
frame at its time; max_duration is the training clip length, sampling past it hops by a third.
"""

import argparse
import math
import os
import shutil
import string
import time
from dataclasses import asdict, dataclass, field, replace

import torch
import torch.nn as nn

import finetune
import training
from audio import write_audio
from checkpoint import codec_hash, half, load_codec, save_atomic, save_codec
from codec import Codec
from conditioners import MelodyConditioner, TextConditioner, Tokenizer
from data import probability
from lm import LM, PRESETS, LMConfig
from lora import merge_lora, trainable
from model import TextToAudio, from_checkpoint
from t5 import T5_PRESETS, T5Encoder
from token_cache import as_prompt, get_batch, load_tokens, seen_captions

P = training.arg_type(probability)  # the probability flags: a number in [0, 1], or a one-line error
parser = argparse.ArgumentParser(description="Train the text-to-audio LM on codec tokens.")
# I/O and data
parser.add_argument("--out-dir", default="runs/lm", help="checkpoints, tokenizer, samples and logs")
parser.add_argument("--resume", action="store_true", help="continue from out_dir/ckpt.pt (exactly)")
parser.add_argument("--export", default="", help="the shippable model's folder (out_dir/export)")
parser.add_argument("--export-format", default="ours",
                    choices=("ours", "audiocraft", "transformers"), help="its files: this "
                    "repo's (lm.pt, codec.pt, tokenizer.model), AudioCraft's (get_pretrained) or "
                    "transformers' (MusicgenForConditionalGeneration)")
parser.add_argument("--codec", default="runs/codec/ckpt.pt", help="trained codec (load_codec's)")
parser.add_argument("--init", default=None, help="start from a trained model: anything "
                    "model.load_model reads (this repo's export folder or LM checkpoint, a folder "
                    "of AudioCraft's files); its architecture, codec, tokenizer and melody path")
parser.add_argument("--cache-dir", default="", help="token caches (default out_dir/cache)")
parser.add_argument("--n-clips", type=int, default=2000, help="training clips (folder: crops)")
parser.add_argument("--eval-clips", type=int, default=64, help="held-out clips for the eval loss")
parser.add_argument("--duration", type=float, default=3.0, help="clip length, s (= max_duration)")
parser.add_argument("--seed", type=int, default=0, help="seed of the data, the init, the batches")
parser.add_argument("--aug-p", type=P, default=0.5, help="P(a batch of mixes), 0: none")
parser.add_argument("--mix-sound", action="store_true", help="mix sound clips only, as AudioGen")
training.add_data_flags(parser, metadata_captions=True)
parser.add_argument("--replay", type=P, default=None, help="P(a step's batch is built-in data): "
                    "against forgetting it (default: 0.5 when --init's model learnt it, else 0)")
# Model: the LM preset resized by the flags, a T5 trained from scratch (or a frozen pretrained one)
parser.add_argument("--preset", default="tiny", help=f"LM architecture: {', '.join(PRESETS)}")
parser.add_argument("--dim", type=int, default=0, help="LM width (0 = the preset's)")
parser.add_argument("--layers", type=int, default=0, help="LM layers (0 = the preset's)")
parser.add_argument("--heads", type=int, default=0, help="LM attention heads (0 = the preset's)")
parser.add_argument("--t5", default="tiny", help="T5 trained with the LM: " + ", ".join(T5_PRESETS)
                    + "; or a Hugging Face T5 folder (config.json, weights, spiece.model, e.g. "
                    "t5-base), frozen as AudioCraft's")
parser.add_argument("--vocab-size", type=int, default=1000, help="most sentencepiece pieces")
parser.add_argument("--normalize", action=argparse.BooleanOptionalAction, default=True,
                    help="AudioGen's text normalisation of captions and prompts (stop words, "
                         "lemmas)")
parser.add_argument("--melody", action="store_true", help="also condition on each music clip's own "
                    "chromagram (MusicGen-melody's self_wav); sound clips get the null melody")
parser.add_argument("--melody-fuse", default="prepend", choices=("prepend", "sum"),
                    help="how the LM takes the chroma: 'prepend' (MusicGen-melody: before the "
                    "sequence) or 'sum' (added to each codec frame at its time)")
parser.add_argument("--lora", type=int, default=None, help="train only rank-LORA adapters of the "
                    "LM's linear layers (lora.TARGETS), the rest frozen; merged in the export")
parser.add_argument("--lora-alpha", type=float, default=None, help="the adapters' scale is "
                    "alpha / rank (default: the rank, scale 1)")
parser.add_argument("--melody-dropout", type=P, default=0.5, help="P(all melodies of a step -> "
                    "null) (AudioCraft's attribute dropout of self_wav)")
# Optimization (MusicGen Sec. 4.1; lr 1e-3 suits the tiny LM)
parser.add_argument("--steps", type=int, default=3000, help="training steps")
parser.add_argument("--batch-size", type=int, default=16, help="clips per step (per process)")
parser.add_argument("--lr", type=float, default=None, help="peak learning rate (default 1e-3; "
                    "full fine-tuning, --init without --lora: 3e-4)")
parser.add_argument("--min-lr", type=float, default=None, help="the cosine's end (default lr / 10)")
parser.add_argument("--warmup", type=int, default=100, help="linear warmup steps")
parser.add_argument("--lr-decay-steps", type=int, default=0, help="cosine length (0 = --steps)")
parser.add_argument("--weight-decay", type=float, default=0.1, help="AdamW weight decay (matrices)")
parser.add_argument("--grad-clip", type=float, default=1.0, help="clip the gradient norm (0 = off)")
parser.add_argument("--ema", type=P, default=0.0, help="decay of an EMA of the weights that the "
                    "eval, samples and export use (MusicGen: 0.99; 0 = off)")
parser.add_argument("--ema-every", type=int, default=10, help="steps between EMA updates")
parser.add_argument("--cfg-dropout", type=P, default=0.1, help="P(all prompts of a step -> null "
                    "condition)")
parser.add_argument("--word-dropout", type=P, default=0.0, help="P(a caption word is dropped) "
                    "(AudioCraft's word_dropout: 0 AudioGen, 0.3 MusicGen)")
parser.add_argument("--unk-dropout", type=P, default=0.1, help="P(a caption word -> <unk>): the LM "
                    "learns to read past words it does not know (AudioCraft has none; a pretrained "
                    "--t5 knows every piece: pass 0)")
# Sampling (during training) and logging
parser.add_argument("--eval-every", type=int, default=250, help="steps between eval, samples, ckpt")
parser.add_argument("--log-every", type=int, default=10, help="steps between progress lines")
parser.add_argument("--n-samples", type=int, default=2, help="captions sampled at each eval")
parser.add_argument("--cfg-coef", type=float, default=3.0, help="guidance scale of the samples")
parser.add_argument("--top-k", type=int, default=250, help="top-k of the samples")
# System: the device, --compile, --grad-checkpointing, --fsdp
training.add_system_flags(parser)


@dataclass
class Run:
    """What an LM training run carries, filled in by main's stages: setup (the frozen codec, the
    LM's config, the checkpoints' metadata, ckpt on --resume, MelodyConditioner's settings, a --t5
    folder's (T5Encoder, Tokenizer)), prepare_data (the token caches: codes int16 [N, K, T],
    captions, labels(, chroma)(, mix)), build (model, optimizer), then step and training seconds."""
    codec: Codec
    config: LMConfig
    meta: dict  # the checkpoints' entries: codec (path, hash), then conditioner (build)
    ckpt: dict = None
    src: TextToAudio = None  # --init's model
    melody: dict = None
    t5: tuple = None
    train: dict = None
    valid: dict = None
    picked: list = field(default_factory=list)  # the held-out clips sampled at each eval
    model: TextToAudio = None
    opt: torch.optim.Optimizer = None
    whole: TextToAudio = None  # --fsdp: rank 0's unsharded copy (training.shard, gather)
    ema: dict = None  # --ema: training.ema_start's
    step: int = 0
    elapsed: float = 0.0

def get_lr(step, args):
    """Linear warmup to lr, cosine decay to min_lr at lr_decay_steps, then min_lr (nanoGPT)."""
    decay_steps = args.lr_decay_steps or args.steps
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    ratio = min(1.0, (step - args.warmup) / max(1, decay_steps - args.warmup))  # 0 -> 1: the cosine
    return args.min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (args.lr - args.min_lr)


def checkpoint(run, args, rngs):
    """ckpt.pt (periodic and Ctrl-C saves): from_checkpoint's format (config, model, conditioner,
    codec) + for an exact resume: optimizer, step, rngs (each rank's RNG state between two steps,
    gathered by the caller), CUDA RNG, flags."""
    cuda = next(run.model.parameters()).is_cuda
    state = run.model.checkpoint()  # --lora: the base weights under their keys, + lora_A, lora_B
    lora = {k: v for k, v in state.items() if ".lora_" in k}
    return dict(config=asdict(run.model.lm.config), **run.meta, optimizer=run.opt.state_dict(),
                model={k: v for k, v in state.items() if k not in lora}, lora=lora or None,
                ema=run.ema, step=run.step, elapsed=run.elapsed, args=vars(args), rng=rngs,
                cuda_rng=torch.cuda.get_rng_state() if cuda else None)


def save(run, args, rngs):
    """Write ckpt.pt atomically -> its path."""
    path = os.path.join(args.out_dir, "ckpt.pt")
    save_atomic(checkpoint(run, args, rngs), path)
    return path

# ------------------------------------------------------------------------- evaluation and samples


@torch.no_grad()
def evaluate(model, tokens, args, env, n=None):
    """Cross-entropy per codebook [K] of the first n held-out clips of a token cache, their captions
    alternating (no CFG dropout)."""
    model.eval()
    n, ce = n or len(tokens["codes"]), 0.0
    for i in range(0, n, args.batch_size):
        codes = tokens["codes"][i:min(n, i + args.batch_size)].long().to(env.device)  # [b, K, T]
        caps = tokens["captions"][i:i + len(codes)]
        texts = [as_prompt(c[(i + j) % len(c)], args.normalize) for j, c in enumerate(caps)]
        chroma = tokens["chroma"][i:i + len(codes)].long() if "chroma" in tokens else None
        with env.ctx:
            ce = ce + model(codes, texts, chroma)[1].float() * len(codes) / n  # clip-weighted mean
    model.train()
    return ce


def ce_line(ce):
    """'ce a b c d | ppl ...': the cross-entropy of each codebook (nats), its perplexity exp(ce)."""
    return ("ce " + " ".join(f"{c:.3f}" for c in ce.tolist()) + " | ppl "
            + " ".join(f"{math.exp(c):.1f}" for c in ce))


def eval_and_save(run, args, env, rngs, sync):
    """Rank 0 (FSDP: all, to gather), every eval_every steps: the held-out loss, the picked held-out
    captions sampled with CFG (a seeded generator: the global RNG, saved here, is untouched) with
    their clips' own melodies, eval.tsv, ckpt.pt."""
    run = training.gather(run, env)  # FSDP: rank 0 gets the whole model, the others None
    if run is None:
        return
    valid, prompts = run.valid, [run.valid["captions"][i][0] for i in run.picked]
    with training.ema_weights(run.model, run.ema) as model:  # --ema: the average's weights
        ce = evaluate(model, valid, args, env)  # [K]
        if prompts:  # chroma [n, chroma_len]
            chroma = valid["chroma"][run.picked].long() if "chroma" in valid else None
            wav = model.eval().generate(prompts, duration=args.duration, cfg_coef=args.cfg_coef,
                                        top_k=args.top_k, seed=args.seed, chroma=chroma)
            for i, w in enumerate(wav):  # [C, T]
                write_audio(f"{args.out_dir}/samples/step{run.step:06d}_{i}.wav", w,
                            model.codec.sample_rate)
            model.train()
    print(f"eval step {run.step} ({run.elapsed / 60:.1f} min): held-out loss"
          f"{' (EMA)' * bool(run.ema)} {ce.mean():.4f} | {ce_line(ce)} | samples of {prompts}"
          f"{sync}", flush=True)
    training.log_eval(args.out_dir, run.step, run.elapsed, [f"{c:.4f}" for c in [ce.mean(), *ce]])
    save(run, args, rngs)

# ------------------------------------------------------------------------------ the stages of main


def lm_config(args, codec):
    """The LM's config from scratch: the preset resized by the flags and fitted to the codec."""
    if args.preset not in PRESETS:
        raise SystemExit(f"unknown preset {args.preset!r}; choose one of {', '.join(PRESETS)}")
    base, dim = PRESETS[args.preset], args.dim or PRESETS[args.preset].dim
    return replace(base, dim=dim, cond_dim=dim, num_layers=args.layers or base.num_layers,
                   num_heads=args.heads or base.num_heads, card=codec.config.bins,
                   frame_rate=codec.frame_rate, max_duration=args.duration,
                   extend_stride=round(args.duration / 3, 2))


def setup(args, env):
    """The Run's start: the frozen codec (it encodes the data once and decodes the samples), ckpt on
    --resume, --init's model, the LM's config (ckpt's, SRC's, or lm_config), the checkpoints' codec
    entry (path, hash), the melody settings, and a --t5 folder's (T5Encoder, Tokenizer), read
    before the long encoding. An --init run keeps SRC's codec as out_dir/codec.pt (its --resume
    reads it there)."""
    codec_path = os.path.join(args.out_dir, "codec.pt") if args.init else args.codec
    src = finetune.start_from(args, parser) if args.init and not args.resume else None
    try:
        codec = src.codec if src else load_codec(codec_path)
    except (FileNotFoundError, ValueError) as e:
        raise SystemExit(f"--codec: {e}; train one with train_codec.py") from None
    if src and env.master:
        save_atomic(dict(config=asdict(codec.config), model=codec.state_dict()), codec_path)
    codec = codec.to(env.device)
    run = Run(codec, None, dict(codec=dict(path=codec_path, hash=codec_hash(codec))), src=src)
    run.ckpt = training.load_resume(args.out_dir) if args.resume else None
    if run.ckpt and run.ckpt["codec"]["hash"] != run.meta["codec"]["hash"]:
        raise SystemExit(f"--resume: {codec_path} is not the codec "
                         f"{os.path.join(args.out_dir, 'ckpt.pt')} was trained on; pass that one")
    run.config = LMConfig(**run.ckpt["config"]) if run.ckpt else (
        src.lm.config if src else lm_config(args, codec))
    finetune.choose_defaults(args, src, run.ckpt)  # --lr, --min-lr, --replay
    if run.config.n_q > codec.config.n_q:
        raise SystemExit(f"the LM models {run.config.n_q} codebooks, the codec has "
                         f"{codec.config.n_q}: pick another preset")
    # --melody: the chroma at the codec's rate, with MusicGen's time resolution (n_fft 16384 at
    # 32 kHz: 7.8 frames/s)
    if run.ckpt:
        run.melody = run.ckpt["conditioner"].get("melody")
    elif src:
        run.melody = src.melody.settings() if src.melody else None
    elif args.melody:
        run.melody = dict(sample_rate=codec.sample_rate,
                          radix2_exp=14 - round(math.log2(32000 / codec.sample_rate)),
                          duration=args.duration, fuse=args.melody_fuse)
    if not run.ckpt and not src and args.t5 not in T5_PRESETS:
        run.t5 = finetune.load_t5_folder(args.t5)
    return run


def prepare_data(run, args, env):
    """The token cache -> run.train, run.valid; the tokenizer, fit once (or --t5's, --init's)."""
    cache = (run.codec, run.meta["codec"]["hash"], run.config.n_q, run.melody)
    run.train, run.valid = load_tokens(args, env, *cache)
    if args.replay:  # the built-in data's own cache, a share of the batches (get_batch)
        run.train["replay"] = load_tokens(training.builtin(args), env, *cache)[0]
    tokenizer = os.path.join(args.out_dir, "tokenizer.model")
    if env.master and not args.resume and (run.t5 or run.src):  # a trained T5: its own pieces
        shutil.copyfile((run.t5[1] if run.t5 else run.src.conditioner.tokenizer).path, tokenizer)
    elif env.master and not args.resume:  # the captions as the conditioner sees them, every letter
        caps = seen_captions(run.train, args.normalize)
        # each caption word once more as a sentence of its own: on the captions alone the unigram
        # model keeps only ~180 pieces and splits common words ("piano" -> p i an o); with them
        # every word is one piece
        words = sorted({w for c in caps for w in c.split()})
        Tokenizer.train(caps + words + [" ".join(string.ascii_letters + string.digits)],
                        args.vocab_size, tokenizer)
    training.barrier(env)  # and for the tokenizer


def build(run, args, env):
    """run.model (TextToAudio) and run.opt (AdamW), the same seed on every rank (identical
    replicas): from ckpt on --resume, else a new LM and a T5 sized for the tokenizer, or the --t5
    folder's, frozen (AudioCraft: finetune false; only output_proj and the LM train); run.meta gets
    the checkpoints' 'conditioner' entry."""
    torch.manual_seed(args.seed)
    if run.ckpt:  # ckpt: read once
        run.model, _ = from_checkpoint(os.path.join(args.out_dir, "ckpt.pt"), run.codec, run.ckpt)
        run.meta["conditioner"] = run.ckpt["conditioner"]
    elif run.src:
        run.model, text = run.src, run.src.conditioner
        known = text.tokenizer.known  # a T5 trained here: the new captions' pieces join the known
        if known is not None:
            seen = text.tokenizer.sp.encode(seen_captions(run.train, args.normalize))
            known = sorted(known | {i for ids in seen for i in ids})
            text.tokenizer.known = frozenset(known)
        run.meta["conditioner"] = dict(t5=asdict(text.t5.config), tokenizer="tokenizer.model",
                                       normalize=text.normalize, melody=run.melody,
                                       finetune=text.finetune, known=known,
                                       t5_name=run.model.t5_name)
    else:
        lm, t5, known = LM(run.config), run.t5, None
        if t5 is None:  # known: the pieces the captions use; any other word reads as <unk>
            path = os.path.join(args.out_dir, "tokenizer.model")
            seen = Tokenizer(path).sp.encode(seen_captions(run.train, args.normalize))
            known = sorted({i for ids in seen for i in ids})
            tokenizer = Tokenizer(path, known=known)
            # no unused rows
            t5 = T5Encoder(replace(T5_PRESETS[args.t5], vocab_size=tokenizer.vocab_size)), tokenizer
        text = TextConditioner(*t5, run.config.dim, finetune=run.t5 is None,
                               normalize=args.normalize)
        melody = MelodyConditioner(run.config.dim, **run.melody) if run.melody else None
        run.model = TextToAudio(lm, text, melody, run.codec)
        run.meta["conditioner"] = dict(t5=asdict(text.t5.config), tokenizer="tokenizer.model",
                                       normalize=args.normalize, melody=run.melody,
                                       finetune=text.finetune, known=known)
    if args.lora is not None or (run.ckpt and run.ckpt.get("lora")):
        finetune.adapt(run.model, args, run.ckpt)
    run.model.to(env.device).train()
    run.model.lm.grad_checkpointing = args.grad_checkpointing
    run.whole = training.shard(run.model, run.model.lm.transformer.layers, env, keep=run.codec)
    # AdamW, decay on matrices and embeddings only (nanoGPT), on what requires grad: not the codec
    params = [p for p in run.model.parameters() if p.requires_grad]
    groups = [dict(params=[p for p in params if p.dim() >= 2], weight_decay=args.weight_decay),
              dict(params=[p for p in params if p.dim() < 2], weight_decay=0.0)]  # norms, biases
    try:  # fused: one kernel for all tensors, much faster on CPU than the per-tensor loop
        run.opt = torch.optim.AdamW(groups, lr=args.lr, betas=(0.9, 0.95), fused=True)
    except RuntimeError:  # torch < 2.4 has no fused AdamW on CPU
        run.opt = torch.optim.AdamW(groups, lr=args.lr, betas=(0.9, 0.95))
    if run.ckpt:  # exact resume: weights (above), optimizer moments; step, RNG: training.resume
        training.load_optimizer(run, run.ckpt["optimizer"], env)
    run.ema = training.ema_start(run.model, run.ckpt) if args.ema else None


def loop(run, args, env):
    """One optimizer step per batch; eval, samples and a checkpoint every eval_every steps. Ctrl-C
    finishes the step, saves and exits (not under torchrun)."""
    # frozen codec: its buffers need no broadcast
    train_model = training.wrap(run.model, env, args.compile, sync_buffers=False)
    t0 = t_log = time.time()
    with training.ctrl_c_ends_the_step(enabled=not env.ddp) as interrupted:
        while run.step < args.steps:
            lr = get_lr(run.step, args)
            for group in run.opt.param_groups:
                group["lr"] = lr
            codes, texts, chroma = get_batch(run.train, run.step, args, env.rank, env.world)
            with env.ctx:  # bf16 on CUDA; the T5 inside runs in fp32 (TextConditioner)
                _, ce = train_model(codes.to(env.device), texts, chroma)  # [K]: CE of each codebook
            # AudioCraft: the mean over codebooks (the last delays[k] frames of k are no targets)
            loss = ce.mean()
            run.opt.zero_grad(set_to_none=True)
            loss.backward()
            # DDP/FSDP averaged the gradients over the ranks; clip their norm (inf: measure)
            clip = args.grad_clip if args.grad_clip > 0 else math.inf
            norm = nn.utils.clip_grad_norm_(run.model.parameters(), clip)
            run.opt.step()
            run.step += 1
            if run.ema and run.step % args.ema_every == 0:
                training.ema_update(run.ema, run.model, args.ema)
            if env.master and (run.step % args.log_every == 0 or run.step == 1):
                dt, t_log = time.time() - t_log, time.time()
                null = " | null batch" if all(t is None for t in texts) else ""
                print(f"step {run.step}/{args.steps} | loss {loss.item():.4f} | "
                      f"{ce_line(ce.detach().float())} | lr {lr:.2e} | grad {norm.item():.2f}"
                      f"{null} | {(args.log_every if run.step > 1 else 1) / dt:.2f} steps/s",
                      flush=True)
            run.elapsed, t0 = run.elapsed + time.time() - t0, time.time()
            if run.step % args.eval_every == 0 or run.step == args.steps:
                # every rank's RNG state; DDP: the replicas compared
                rngs, sync = training.check_and_gather(run.model, run.step, env)
                if env.master or env.fsdp:  # FSDP: every rank gathers the shards
                    eval_and_save(run, args, env, rngs, sync)
            training.save_if_interrupted(interrupted, run.step, args.steps,
                                         lambda: save(run, args, [torch.get_rng_state()]))


def export(run, args, env, out):
    """Write the shippable model to `out`: lm.pt (fp16 tensors, config, conditioner),
    tokenizer.model, codec.pt (save_codec); print what fp16 changes: the reloaded lm.pt's held-out
    loss, the codec's largest sample difference."""
    if args.lora:
        merge_lora(run.model.lm)  # W0 + (alpha / r) B A under W0's keys: loading needs nothing new
    if args.export_format != "ours":  # AudioCraft's or transformers' files
        finetune.export_as(run.model, args, out)
        print(f"exported to {out} in the {args.export_format} format")
        return
    os.makedirs(out, exist_ok=True)
    shutil.copyfile(os.path.join(args.out_dir, "tokenizer.model"),
                    os.path.join(out, "tokenizer.model"))
    save_atomic(dict(config=asdict(run.model.lm.config), model=half(run.model.checkpoint()),
                     conditioner=run.meta["conditioner"],
                     codec=dict(path="codec.pt", hash=run.meta["codec"]["hash"])),
                os.path.join(out, "lm.pt"))
    n = min(16, len(run.valid["codes"]))
    reloaded = from_checkpoint(f"{out}/lm.pt", run.model.codec)[0].to(env.device)
    ce, ce_half = (evaluate(m, run.valid, args, env, n) for m in (run.model, reloaded))
    diff = save_codec(run.model.codec, f"{out}/codec.pt", run.valid["codes"][:n].long())
    mb = {f: os.path.getsize(os.path.join(out, f)) / 1e6 for f in ("lm.pt", "codec.pt",
                                                                 "tokenizer.model")}
    print(f"exported to {out}: " + ", ".join(f"{f} {s:.1f} MB" for f, s in mb.items())
          + f" = {sum(mb.values()):.1f} MB | lm fp16: held-out CE {ce.mean():.4f} -> "
          f"{ce_half.mean():.4f} | codec in {'fp16' if diff < 1e-3 else 'fp32'} (fp16 max |diff| "
          f"{diff:.1e})")


def describe(run, args, env):
    """Rank 0's start-up line: what is trained on what."""
    model, config = run.model, run.config
    n_lm, n_t5 = (sum(p.numel() for p in m.parameters()) / 1e6
                  for m in (model.lm, model.conditioner))
    K, T = run.train["codes"].shape[1:]
    n_mix = len(run.train["mix"]["codes"]) if "mix" in run.train else 0
    frozen = "" if model.conditioner.finetune else ", T5 frozen"
    replay = f" ({args.replay:.0%} of the steps on the built-in data)" if args.replay else ""
    print(f"LM {n_lm:.2f}M + text conditioner {n_t5:.2f}M params ({config.dim} wide, "
          f"{config.num_layers} layers, {K} x {config.card} codes{frozen}); "
          f"{len(run.train['codes'])} clips + {n_mix} mixes of {T} frames{replay}; {env.world} "
          f"process(es) x {args.batch_size} clips = {env.world * args.batch_size * K * T} tokens "
          "per step")
    n_train, n_all, state = trainable(model)  # the codec included in all, never trained
    print(f"trainable: {n_train / 1e6:.2f}M of {n_all / 1e6:.2f}M parameters"
          + (f" (LoRA adapters of rank {args.lora})" if args.lora else "")
          + f"; AdamW state {state / 2**20:.1f} MiB")


def main(args):
    env = training.setup(args.device, args.fsdp)  # DDP or FSDP (under torchrun), device, autocast
    os.makedirs(os.path.join(args.out_dir, "samples"), exist_ok=True)
    run = setup(args, env)
    prepare_data(run, args, env)
    build(run, args, env)
    # RNG states restored, eval.tsv trimmed
    run.step, run.elapsed = training.resume(run.ckpt, args.out_dir, args.steps, env)
    run.picked = [i for i, c in enumerate(run.valid["captions"])
                  if as_prompt(c[0], args.normalize)][:args.n_samples]
    if env.master:  # and the codec's rendering of the sampled captions' own clips
        describe(run, args, env)
        if run.picked:  # --n-samples 0: none
            real = run.codec.decode(run.valid["codes"][run.picked].long().to(env.device))
            for i, w in enumerate(real):  # [C, T] each
                write_audio(f"{args.out_dir}/samples/real_{i}.wav", w, run.codec.sample_rate)
    out = args.export or os.path.join(args.out_dir, "export")
    finetune.check_export(run.model, args, out)  # now, not after the training
    loop(run, args, env)
    whole = training.gather(run, env)  # FSDP: every rank takes part
    if env.master:
        if whole.ema:  # the export holds the average (AudioCraft's export takes the EMA's)
            training.ema_load(whole.model, whole.ema)
        export(whole, args, env, out)
    training.teardown(env)
    return run.model


if __name__ == "__main__":
    main(parser.parse_args())
