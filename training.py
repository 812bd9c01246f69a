"""
What train_codec.py and train_lm.py share: the data flags and their datasets, DDP under torchrun,
the batch seed, an exact resume, a Ctrl-C that ends the step first and saves; and train_lm.py's
FSDP: the model sharded over the processes, gathered whole onto rank 0 to be saved, and its EMA of
the weights.

References:
1) PyTorch DDP: https://pytorch.org/docs/stable/notes/ddp.html
2) nanoGPT train.py (DDP, bf16 autocast), github.com/karpathy/nanoGPT
3) ZeRO, Rajbhandari et al. 2019, arXiv:1910.02054 (stage 3: weights, gradients and optimizer
   state sharded); PyTorch FSDP, Zhao et al. 2023, arXiv:2304.11277. FSDP2's fully_shard:
   https://pytorch.org/docs/stable/distributed.fsdp.fully_shard.html; torchtitan's
   parallelize_llama (a unit per transformer layer, then the root)
4) audiocraft/optim/ema.py (ModuleDictEMA) and config/solver/musicgen/musicgen_base_32khz.yaml
   (optim.ema: use, updates 10; decay 0.99 in solver/default.yaml)
"""

import argparse
import copy
import inspect
import os
import signal
from contextlib import contextmanager, nullcontext
from dataclasses import replace
from types import SimpleNamespace

import torch
import torch.distributed as dist
import torch.nn as nn
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import fully_shard
from torch.distributed.tensor import DTensor, distribute_tensor

from data import FolderDataset, probability, seconds
from manifest import parse_tags


# ---------------------------------------------------------------------------------- the data flags


def arg_type(parse):
    """argparse's type= from a parser raising ValueError: its one line is the usage error."""
    def parse_arg(text):
        try:
            return parse(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
    return parse_arg


# FolderDataset's options, as the trainers' flags name them (dest)
FOLDER_FLAGS = ("sample_on_weight", "sample_on_duration", "balance_tags", "exclude_tags",
                "min_duration", "max_duration", "merge_text_p", "drop_desc_p", "drop_other_p")
FILTERS = ("exclude_tags", "min_duration", "max_duration")  # the held-out files' too (never drawn)


def add_data_flags(parser, metadata_captions=False):
    """--data and the options of data.FolderDataset (AudioCraft's AudioDataset, AudioGen's tag
    exclusion), for both trainers; metadata_captions: also MusicGen's metadata-caption flags
    (train_lm.py)."""
    p = parser.add_argument
    p("--data", default=None, help="audio folder or manifest with captions (default: the built-in "
      "data); its files are shuffled by --seed, then one in ten is held out")
    p("--valid-data", default=None, help="held-out folder or manifest (default: a tenth of --data)")
    p("--sample-on-weight", action="store_true", help="draw training files in proportion to the "
      "manifest's per-file weight (AudioCraft's sample_on_weight; a file without one: 1)")
    p("--sample-on-duration", action="store_true", help="draw training files in proportion to "
      "their duration (AudioCraft's sample_on_duration; with --sample-on-weight: duration x "
      "weight)")
    p("--balance-tags", action="store_true", help="draw training files by inverse tag frequency: "
      "each tag's files weigh about the same in all (combines with the two above)")
    p("--exclude-tags", type=arg_type(parse_tags), default=(), help="comma-separated tags, e.g. "
      "speech,music: leave out the files that hold one (AudioGen removed speech)")
    p("--min-duration", type=arg_type(seconds), default=None, help="leave out files shorter than "
      "this, in s (AudioCraft's min_audio_duration)")
    p("--max-duration", type=arg_type(seconds), default=None, help="leave out files longer than "
      "this, in s (AudioCraft's max_audio_duration)")
    if metadata_captions:
        p("--merge-text-p", type=arg_type(probability), default=0.0, help="P(a training caption "
          "gets the caption file's key, bpm, genre, moods, keywords, instrument as 'name: value') "
          "(MusicGen; 0 = off)")
        p("--drop-desc-p", type=arg_type(probability), default=0.5, help="P(the description is "
          "dropped from a merged caption, leaving the metadata alone) (AudioCraft's drop_desc_p)")
        p("--drop-other-p", type=arg_type(probability), default=0.5, help="P(each metadata field "
          "is KEPT in a merged caption) (AudioCraft's drop_other_p: named so, but the chance to "
          "keep)")


def folder_options(args):
    """{option: value} of the data flags away from FolderDataset's defaults; one line if one is set
    without --data (the built-in data has no manifest, caption files or tags)."""
    defaults = inspect.signature(FolderDataset).parameters
    changed = {f: getattr(args, f) for f in FOLDER_FLAGS
               if hasattr(args, f) and getattr(args, f) != defaults[f].default}
    if args.data is None and (changed or args.valid_data):
        flags = [f for f in changed] + (["valid_data"] if args.valid_data else [])
        raise SystemExit(", ".join("--" + f.replace("_", "-") for f in flags) + ": the built-in "
                         "data has no manifest or caption files; pass --data FOLDER")
    return changed


def builtin(args):
    """A copy of args as a run on the built-in data sees them (--replay's token cache): no --data,
    every folder option at its default."""
    defaults = inspect.signature(FolderDataset).parameters
    return argparse.Namespace(**{**vars(args), "data": None, "valid_data": None,
                                 **{f: defaults[f].default for f in FOLDER_FLAGS}})


def open_split(args, split, **settings):
    """The FolderDataset of one split of --data, or of --valid-data: 'train' with every option,
    'valid' with the filters only; settings: FolderDataset's sample_rate, channels, duration, pad,
    verbose. An unusable folder or manifest exits with one line naming the flag."""
    options = folder_options(args)
    if split == "valid":
        options = {k: v for k, v in options.items() if k in FILTERS}
    flag, root = "--data", args.data
    if args.valid_data:  # a separate held-out set: --data trains on all its files
        flag, root = ("--valid-data", args.valid_data) if split == "valid" else (flag, root)
        split = "all"
    try:
        return FolderDataset(root, seed=args.seed, split=split, **settings, **options)
    except (ValueError, FileNotFoundError) as e:
        raise SystemExit(f"{flag}: {e}") from None

# ----------------------------------------------------------------------------------------- the run


def setup(device, fsdp=False):
    """-> env (ddp, fsdp, rank, world, master, device, ctx). Under torchrun (WORLD_SIZE > 1, ddp)
    one process per GPU (nccl, device cuda:LOCAL_RANK) or per CPU process (gloo); fsdp: they shard
    the model (shard) instead of replicating it (wrap). ctx: bf16 autocast on CUDA, else
    nothing."""
    ddp = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if fsdp and not ddp:
        raise SystemExit("--fsdp shards the model over torchrun's processes: run under torchrun "
                         "--nproc_per_node N (N > 1)")
    rank, world = 0, 1
    if ddp:
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
        rank, world = dist.get_rank(), dist.get_world_size()
        if device.startswith("cuda"):
            device = f"cuda:{os.environ['LOCAL_RANK']}"
            torch.cuda.set_device(device)
    cuda = device.startswith("cuda")
    ctx = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else nullcontext()
    return SimpleNamespace(ddp=ddp, fsdp=fsdp, rank=rank, world=world, master=rank == 0,
                           device=device, ctx=ctx)


def barrier(env):
    """Under DDP every rank waits here for the others (rank 0 writes what they then read)."""
    if env.ddp:
        dist.barrier()


def teardown(env):
    """The ranks leave together: one that exits while rank 0 still exports can die in gloo's threads
    (SIGABRT, 'terminate called without an active exception'), and torchrun then fails the run."""
    if env.ddp:
        dist.barrier()
        dist.destroy_process_group()


def wrap(model, env, compile=False, sync_buffers=True):
    """The module the loop calls: DDP (it averages the gradients over the ranks inside backward;
    not under FSDP, sharded by shard), compiled. sync_buffers=False: rank 0's buffers are not sent
    at every forward (equal anyway: a frozen codec's)."""
    if env.ddp and not env.fsdp:
        ddp = nn.parallel.DistributedDataParallel
        # torch 2.13 renamed broadcast_buffers to forward_sync_buffers
        if "forward_sync_buffers" in inspect.signature(ddp).parameters:
            model = ddp(model, forward_sync_buffers=sync_buffers)
        else:
            model = ddp(model, broadcast_buffers=sync_buffers)
    if compile:
        model = torch.compile(model)
    return model


# ------------------------------------------------------------------ a model larger than one device


def add_system_flags(parser):
    """train_lm.py's System flags: the device, torch.compile, and what trains a larger model:
    activation checkpointing (lm.LM.grad_checkpointing) and FSDP (shard)."""
    p = parser.add_argument
    p("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cpu or cuda")
    p("--compile", action="store_true", help="torch.compile the model (CUDA)")
    p("--grad-checkpointing", action="store_true", help="recompute each transformer layer in "
      "backward instead of keeping its activations: less memory, one more forward of the layers")
    p("--fsdp", action="store_true", help="under torchrun: shard the weights, gradients and AdamW "
      "state over the processes (FSDP2's fully_shard) instead of replicating them (DDP)")


def shard(model, layers, env, keep=None):
    """--fsdp: fully_shard (FSDP2) each of `layers` (one all-gather of its weights before its
    forward, freed after; gradients reduce-scattered after its backward), then model, one more
    unit for the rest. Each rank then holds 1/world of every weight, its gradient and its AdamW
    moments (ZeRO stage 3), as DTensors: build the optimizer after this. Not sharded, whole on
    every rank: keep (the frozen codec). Rank 0 first copies the model: eval, samples,
    checkpoints and the export run on that copy (gather), which needs the weights alone (4 bytes
    a parameter; training: 16 with gradients and moments, and the activations). -> the copy on
    rank 0, else None."""
    if not env.fsdp:
        return None
    whole = copy.deepcopy(model) if env.master else None
    mesh = init_device_mesh(torch.device(env.device).type, (env.world,))
    ignored = set(keep.parameters()) if keep is not None else set()
    for layer in layers:
        fully_shard(layer, mesh=mesh, ignored_params=ignored)
    fully_shard(model, mesh=mesh, ignored_params=ignored)
    return whole


def on_rank0(x, env):
    """A tensor of the model or its optimizer as rank 0 saves it: a DTensor (a shard on each rank)
    gathered whole (a collective: every rank calls it, in the same order), on the CPU; None on the
    other ranks, which drop it at once."""
    if isinstance(x, DTensor):
        x = x.full_tensor()
    if not env.master:
        return None
    return x.cpu() if torch.is_tensor(x) else x


def gather(run, env):
    """--fsdp, on every rank: each weight and AdamW moment gathered whole onto rank 0, one tensor
    at a time, on the CPU; the weights go into rank 0's copy (run.whole, from shard). -> on rank 0
    run as a run without FSDP holds it: model the copy, opt whose state_dict() is the gathered
    one, in torch.optim's format (a checkpoint resumes with or without FSDP), ema's weights
    gathered too; on the others None. Without FSDP: run itself. Each tensor is gathered, moved to
    the CPU and dropped by the other ranks at once (on_rank0)."""
    if not env.fsdp:
        return run
    weights = {k: on_rank0(v, env) for k, v in run.model.state_dict().items()}
    optim = run.opt.state_dict()  # {state: {i: {step, exp_avg, exp_avg_sq}}, param_groups}
    optim["state"] = {i: {k: on_rank0(v, env) for k, v in state.items()}
                      for i, state in optim["state"].items()}
    ema = run.ema and dict(run.ema, weights={k: on_rank0(v, env)
                                             for k, v in run.ema["weights"].items()})
    if not env.master:
        return None
    run.whole.load_state_dict(weights)
    return replace(run, model=run.whole, opt=SimpleNamespace(state_dict=lambda: optim), ema=ema)


def shard_like(x, p):
    """A whole tensor saved for parameter p (a moment, an EMA weight: same shape as p) -> this
    rank's shard of it, the DTensor laid out as p (distribute_tensor without communication,
    src_data_rank None: every rank read it whole); anything else (step, a parameter FSDP left
    whole) as it is."""
    if isinstance(p, DTensor) and torch.is_tensor(x) and x.shape == p.shape:
        return distribute_tensor(x.to(p.device), p.device_mesh, p.placements, src_data_rank=None)
    return x


def load_optimizer(run, state, env):
    """A checkpoint's optimizer state (torch.optim's format, saved with or without FSDP) into
    run.opt. Under FSDP every rank read it whole and keeps its own shard of each moment: the rows
    its parameter's DTensor holds (shard_like)."""
    if env.fsdp:
        params = [p for group in run.opt.param_groups for p in group["params"]]
        state = dict(state, state={i: {k: shard_like(v, params[i]) for k, v in s.items()}
                                   for i, s in state["state"].items()})
    run.opt.load_state_dict(state)


def batch_generator(seed, step):
    """The generator of one step's batch: a function of (seed, step) only, so a resumed run draws
    exactly the batches the uninterrupted run would have drawn. 1_000_003 (a prime above any step
    count) gives every (seed, step) pair a seed of its own."""
    return torch.Generator().manual_seed(seed * 1_000_003 + step)


def check_and_gather(model, step, env):
    """On every rank, between two steps -> (every rank's CPU RNG state in rank order, for an exact
    resume of each; a note for the eval line). DDP replicas must hold the same weights: a checksum
    is compared across the ranks (FSDP has no replicas: each rank holds a shard of each weight)."""
    if not env.ddp:
        return [torch.get_rng_state()], ""
    rngs = [None] * env.world
    dist.all_gather_object(rngs, torch.get_rng_state())
    if env.fsdp:
        return rngs, f" | sharded over {env.world} ranks (FSDP)"
    s = torch.stack([p.detach().double().sum() for p in model.parameters()]).sum().reshape(1)
    sums = [torch.zeros_like(s) for _ in range(env.world)]
    dist.all_gather(sums, s)
    if not all(torch.equal(x, sums[0]) for x in sums):
        raise RuntimeError(f"DDP replicas diverged at step {step}: {[x.item() for x in sums]}")
    return rngs, " | replicas in sync"


# ------------------------------------------------------------------------- the weights' average


def ema_start(model, ckpt=None):
    """--ema: AudioCraft's exponential moving average of the trained weights (optim/ema.py's
    ModuleDictEMA, unbiased; MusicGen's solver updates it every 10 steps, decay 0.99) -> its state
    {count, weights: {name: fp32 tensor}}: ckpt's on a resume (its shards under FSDP), else a copy
    of the weights that the first update overwrites (count 0: its weight is 1)."""
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    if ckpt and ckpt.get("ema"):  # under FSDP each rank keeps its shard (shard_like)
        weights = {n: shard_like(x, params[n]).to(params[n].device)
                   for n, x in ckpt["ema"]["weights"].items()}
        return dict(count=ckpt["ema"]["count"], weights=weights)
    return dict(count=0.0, weights={n: p.detach().float().clone() for n, p in params.items()})


@torch.no_grad()
def ema_update(ema, model, decay):
    """count <- decay count + 1, ema <- ema + (w - ema) / count for each weight w: the average of
    all updates so far, the update j back weighted decay^j (count: the weights' sum)."""
    ema["count"] = decay * ema["count"] + 1
    params = dict(model.named_parameters())
    for n, avg in ema["weights"].items():
        avg.lerp_(params[n].detach().float(), 1 / ema["count"])


@torch.no_grad()
def ema_load(model, ema):
    """Copy the average's weights into model -> the weights they replaced {name: tensor}."""
    params = dict(model.named_parameters())
    own = {n: params[n].detach().clone() for n in ema["weights"]}
    for n, avg in ema["weights"].items():
        params[n].copy_(avg)
    return own


@contextmanager
def ema_weights(model, ema):
    """Inside, model holds the average's weights (eval, samples: AudioCraft swaps them in for its
    valid, evaluate and generate stages); after, its own again. ema None: as it is."""
    own = ema_load(model, ema) if ema else None
    try:
        yield model
    finally:
        if own:
            ema_load(model, dict(weights=own))


def load_resume(out_dir):
    """--resume: out_dir/ckpt.pt, or one line if there is none."""
    path = os.path.join(out_dir, "ckpt.pt")
    if not os.path.isfile(path):
        raise SystemExit(f"--resume: no checkpoint at {path}; train without --resume first")
    return torch.load(path, map_location="cpu", weights_only=True)


def resume(ckpt, out_dir, steps, env):
    """Where the run starts -> (step, elapsed): 0, or ckpt's step with its RNG states (one, or one
    per rank) restored. eval.tsv keeps its rows up to that step: a fresh run starts it over, a
    resumed one drops later ones (a crash's)."""
    step, elapsed = 0, 0.0
    if ckpt:
        step, elapsed = ckpt["step"], ckpt["elapsed"]
        rng = ckpt["rng"]  # one state, or a list of one per rank
        if not torch.is_tensor(rng):
            # this rank's, when the world size is the one it was saved with; else rank 0's
            rng = rng[env.rank] if len(rng) == env.world else rng[0]
        torch.set_rng_state(rng)
        if env.device.startswith("cuda"):
            torch.cuda.set_rng_state(ckpt["cuda_rng"])
        if env.master:
            print(f"resumed from {os.path.join(out_dir, 'ckpt.pt')} at step {step} (of {steps})")
    path = os.path.join(out_dir, "eval.tsv")
    if env.master and os.path.isfile(path):
        with open(path) as f, open(path + ".tmp", "w") as tmp:
            tmp.writelines(r for r in f if int(r.split("\t", 1)[0]) <= step)
        os.replace(path + ".tmp", path)
    return step, elapsed


def log_eval(out_dir, step, elapsed, values):
    """Append a row to out_dir/eval.tsv: step, seconds of training, then the values (strings)."""
    with open(os.path.join(out_dir, "eval.tsv"), "a") as f:
        f.write("\t".join([str(step), f"{elapsed:.0f}", *values]) + "\n")


@contextmanager
def ctrl_c_ends_the_step(enabled=True):
    """Within it, Ctrl-C (SIGINT) sets a flag (a list, non-empty once pressed) instead of raising:
    the step under way completes, then the loop saves an exact-resume checkpoint (a
    KeyboardInterrupt mid-step could leave the discriminator updated and the codec not, the RNG
    advanced halfway). A second Ctrl-C raises at once. enabled=False: as usual (torchrun: SIGINT
    reaches each rank at a different point; --resume starts at the last periodic save)."""
    pressed = []
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum, frame):
        if pressed:
            raise KeyboardInterrupt
        pressed.append(signum)
        # os.write, not print: the handler may run while the loop is inside a print (a reentrant
        # call would fail)
        os.write(2, b"\nCtrl-C: saving a checkpoint after this step (Ctrl-C again: quit at once)\n")
    if enabled:
        signal.signal(signal.SIGINT, handler)
    try:
        yield pressed
    finally:
        if enabled:
            if previous is None:  # a handler not installed from Python
                previous = signal.default_int_handler
            signal.signal(signal.SIGINT, previous)


def save_if_interrupted(interrupted, step, steps, save):
    """After a step inside ctrl_c_ends_the_step: if Ctrl-C was pressed and steps remain, save()
    (which writes the exact-resume checkpoint and returns its path), then exit with one line."""
    if interrupted and step < steps:
        path = save()
        raise SystemExit(f"interrupted at step {step}: saved {path}; continue with --resume")
