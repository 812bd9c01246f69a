"""
Fine-tuning: train_lm.py starting from a trained model instead of from scratch, the whole LM or
low-rank adapters, and the model written back in the format of the tools it came from.

    start_from(args, parser)     --init SRC: anything model.load_model reads, made trainable as
                                 AudioCraft fine-tunes (LM and output_proj train, a pretrained T5
                                 and the codec stay frozen)
    adapt(model, args, ckpt)     --lora RANK: adapters on the LM's linear layers (lora.py), the
                                 rest frozen; on --resume the checkpoint's adapters
    check_export(model, args)    --export-format: refused at start-up if the format cannot hold
                                 the model (export.py), not after hours of training
    choose_defaults(args, src)   --lr, --min-lr (full fine-tuning: lower) and --replay (the
                                 built-in data mixed into --data's when SRC learnt it)
    export_as(model, args, out)  AudioCraft's or transformers' files (the adapters merged first)
    load_t5_folder(path)         --t5 DIR: a pretrained Hugging Face T5 (frozen, as AudioCraft's)

A caption word SRC never saw: a T5 trained here reads a word whose pieces it never saw as <unk>
(Tokenizer.known); the fine-tuning captions' pieces join the known ones (train_lm.build), so the
new word is read through its own pieces, whose embeddings train with the T5. A pretrained T5 knows
every piece already; it stays frozen and the LM learns what the word means.

References:
1) AudioCraft's fine-tuning: solvers with continue_from (the released LM), the T5 frozen
   (conditioners' finetune: false) and the compression model never trained by the LM solver
2) LoRA, Hu et al. 2021, arXiv:2106.09685 (lora.py); peft's merge_and_unload
3) Rehearsal against catastrophic forgetting: Robins 1995, "Catastrophic forgetting, rehearsal
   and pseudorehearsal", Connection Science 7(2)
"""

import os

import synth
from checkpoint import load_t5
from conditioners import normalize_text
from export import audiocraft_problems, refuse, t5_hub_name, to_audiocraft, to_transformers
from export import transformers_problems
from lora import add_lora, check_lora
from model import load_model
from t5 import T5_PRESETS

# what --init takes from its model: these flags are refused with it (argparse dest names)
ARCH_FLAGS = ("preset", "dim", "layers", "heads", "t5", "vocab_size", "melody", "melody_fuse")


def start_from(args, parser):
    """--init SRC -> the TextToAudio to start from, ready to train: the LM and the conditioners
    train, a pretrained T5 stays frozen (AudioCraft: finetune false), the codec is frozen; prompts
    are read as SRC reads them (args.normalize := its normalize). One line for an architecture
    flag (SRC sets it), clips longer than SRC's window, or a SRC that does not load (which file,
    why)."""
    given = [f for f in ARCH_FLAGS if getattr(args, f) != parser.get_default(f)]
    if given:
        raise SystemExit(f"--init takes the architecture from {args.init}: drop "
                         + ", ".join("--" + f.replace("_", "-") for f in given))
    try:
        src = load_model(args.init)
    except Exception as e:  # missing, corrupt or mismatched files: say which, no traceback
        reason = (str(e).strip() or type(e).__name__).splitlines()[0]
        raise SystemExit(f"--init: {reason}") from None
    if args.duration > src.lm.config.max_duration:
        raise SystemExit(f"--duration {args.duration} is longer than the window of {args.init} "
                         f"({src.lm.config.max_duration} s): train on clips that fit it")
    src.requires_grad_(True)
    src.codec.requires_grad_(False)
    if not src.conditioner.finetune:
        src.conditioner.t5.requires_grad_(False)
    args.normalize = src.conditioner.normalize
    return src


def choose_defaults(args, src, ckpt=None):
    """The flags whose defaults depend on the run (None: not given), set in args. --lr 1e-3 (from
    scratch, and LoRA's new adapters), 3e-4 for full fine-tuning: every weight of a trained model
    moves, and at 1e-3 the old prompts are lost (RESULTS.md); --min-lr lr / 10; --replay
    (replay_share). Measured on the default model, 400 steps of 100 clips: both keep the old
    prompts within 5 points and teach the new sound (RESULTS.md)."""
    if args.lr is None:
        args.lr = 3e-4 if args.init and args.lora is None else 1e-3
    if args.min_lr is None:
        args.min_lr = args.lr / 10
    args.replay = replay_share(args, src, ckpt)


def replay_share(args, src, ckpt=None):
    """--replay's value: the flag's; else 0.5 when --data fine-tunes a model that learnt the
    built-in data (a T5 trained here that knows every piece of its sources, scenes and
    instruments), 0 otherwise (an official model: its data is not here); on --resume, the
    checkpoint's. Rehearsal: a share of the steps on the old data keeps the old prompts working
    while the new data is learnt (ref. 3)."""
    if args.replay is not None and args.data is None:
        raise SystemExit("--replay mixes the built-in data into --data's: pass --data FOLDER")
    if args.replay is not None or args.data is None:
        return args.replay or 0.0
    if ckpt:
        return ckpt["args"].get("replay") or 0.0
    text = src.conditioner if src else None
    if text is None or text.tokenizer.known is None:
        return 0.0
    words = " ".join(synth.SOURCES + synth.SCENES + synth.INSTRUMENTS)
    pieces = text.tokenizer.sp.encode(normalize_text(words) if text.normalize else words)
    return 0.5 if text.tokenizer.known.issuperset(pieces) else 0.0


def adapt(model, args, ckpt=None):
    """--lora: adapters on the LM's linear layers, everything else frozen (lora.add_lora); on
    --resume (ckpt) the checkpoint's adapters go into them, at the rank it was trained with (one
    line otherwise)."""
    stored = ckpt["args"].get("lora") if ckpt else args.lora
    if stored != args.lora:
        raise SystemExit(f"--resume: {args.out_dir}/ckpt.pt was trained with --lora {stored}: "
                         "pass the same")
    try:
        check_lora(args.lora, args.lora_alpha or args.lora)
    except ValueError as e:
        raise SystemExit(str(e)) from None
    model.requires_grad_(False)
    add_lora(model.lm, args.lora, args.lora_alpha)
    if ckpt:  # the base weights came with model.from_checkpoint; the adapters: ckpt['lora']
        model.lm.load_state_dict(ckpt["lora"], strict=False)


def check_export(model, args, out):
    """At start-up: one line if --export-format cannot hold this model (export.py says why), or
    if the folder it would write exists already (the writers never overwrite)."""
    if args.export_format == "ours":
        return
    try:
        if args.export_format == "audiocraft":
            refuse(audiocraft_problems(model, t5_hub_name(model)), "AudioCraft's")
        else:
            refuse(transformers_problems(model), "transformers'")
    except ValueError as e:
        raise SystemExit(f"--export-format {args.export_format}: {e}") from None
    if os.path.exists(out) and os.listdir(out):
        raise SystemExit(f"--export-format {args.export_format}: {out} exists and is not empty: "
                         "pass another --export folder, or remove it")


def export_as(model, args, out):
    """AudioCraft's or transformers' files in out (export.py; 'ours' is train_lm.export's), from a
    model whose adapters are merged (merge_lora: loading needs nothing new)."""
    if args.export_format == "audiocraft":
        to_audiocraft(model, out)
    elif args.export_format == "transformers":
        to_transformers(model, out)


def load_t5_folder(path):
    """--t5 DIR -> (T5Encoder, Tokenizer), or one line."""
    if not os.path.isdir(path):
        raise SystemExit(f"--t5 {path!r}: neither a preset ({', '.join(T5_PRESETS)}) nor a folder")
    try:
        return load_t5(path)
    except (FileNotFoundError, ValueError, ImportError) as e:
        raise SystemExit(f"--t5: {e}") from None
