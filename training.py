"""
What train_codec.py and train_lm.py share: DDP under torchrun, an exact resume, a Ctrl-C that
ends the step first.

References:
1) PyTorch DDP: https://pytorch.org/docs/stable/notes/ddp.html
2) nanoGPT train.py (DDP, bf16 autocast), github.com/karpathy/nanoGPT
"""

import inspect
import os
import signal
from contextlib import contextmanager, nullcontext
from types import SimpleNamespace

import torch
import torch.distributed as dist
import torch.nn as nn


def setup(device):
    """-> env (ddp, rank, world, master, device, ctx). Under torchrun (WORLD_SIZE > 1) one process
    per GPU (nccl, device cuda:LOCAL_RANK) or per CPU process (gloo). ctx: bf16 autocast on CUDA,
    else nothing."""
    ddp = int(os.environ.get("WORLD_SIZE", "1")) > 1
    rank, world = 0, 1
    if ddp:
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
        rank, world = dist.get_rank(), dist.get_world_size()
        if device.startswith("cuda"):
            device = f"cuda:{os.environ['LOCAL_RANK']}"
            torch.cuda.set_device(device)
    ctx = torch.autocast("cuda", dtype=torch.bfloat16) if device.startswith("cuda") else nullcontext()
    return SimpleNamespace(ddp=ddp, rank=rank, world=world, master=rank == 0, device=device, ctx=ctx)


def teardown(env):
    """The ranks leave together: one that exits while rank 0 still exports can die in gloo's threads
    (SIGABRT, 'terminate called without an active exception'), and torchrun then fails the run."""
    if env.ddp:
        dist.barrier()
        dist.destroy_process_group()


def wrap(model, env, compile=False, sync_buffers=True):
    """The module the loop calls: DDP (it averages the gradients over the ranks inside backward),
    compiled. sync_buffers=False: rank 0's buffers are not sent at every forward (equal anyway: a
    frozen codec's)."""
    if env.ddp:
        ddp = nn.parallel.DistributedDataParallel
        # torch 2.13 renamed broadcast_buffers to forward_sync_buffers
        if "forward_sync_buffers" in inspect.signature(ddp).parameters:
            model = ddp(model, forward_sync_buffers=sync_buffers)
        else:
            model = ddp(model, broadcast_buffers=sync_buffers)
    if compile:
        model = torch.compile(model)
    return model


def check_and_gather(model, step, env):
    """On every rank, between two steps -> (every rank's CPU RNG state in rank order, for an exact
    resume of each; a note for the eval line). DDP replicas must hold the same weights: a checksum
    is compared across the ranks."""
    if not env.ddp:
        return [torch.get_rng_state()], ""
    s = torch.stack([p.detach().double().sum() for p in model.parameters()]).sum().reshape(1)
    sums = [torch.zeros_like(s) for _ in range(env.world)]
    rngs = [None] * env.world
    dist.all_gather(sums, s)
    dist.all_gather_object(rngs, torch.get_rng_state())
    if not all(torch.equal(x, sums[0]) for x in sums):
        raise RuntimeError(f"DDP replicas diverged at step {step}: {[x.item() for x in sums]}")
    return rngs, " | replicas in sync"


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
