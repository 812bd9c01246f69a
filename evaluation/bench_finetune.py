"""
Benchmark (not a test): what fine-tuning the official models costs, full against LoRA. Prints two
tables, ready for RESULTS.md: the memory of each official model's training state (computed) and the
training steps/s of the miniature model and of musicgen-small's layout on this CPU (measured).

    python evaluation/bench_finetune.py            # both tables; 2 minutes on 2 idle CPU cores
    python evaluation/bench_finetune.py --measure tiny --threads 1      # the tiny model only
    python evaluation/bench_finetune.py --measure musicgen-small --threads 1 \
        --targets self_attn.out_proj,cross_attention.out_proj,linear1,linear2   # no q, k, v adapter

1. Memory, computed. Each model is built on the meta device (shapes, no memory) as its official
   checkpoint configures it [1]: MusicGen = its LM (lm.PRESETS) + t5-base's encoder
   (t5.T5_PRESETS) + encodec_32khz (codec.PRESETS); AudioGen = its LM + t5-large's encoder + its
   16 kHz EnCodec. Full fine-tuning trains the LM and the conditioner's output_proj (T5 width ->
   LM width); LoRA trains only the adapters lora.add_lora puts on the LM's linear layers (rank 16,
   lora.TARGETS) [2]. The T5 and the codec are frozen in both, as in AudioCraft and
   finetune.start_from. Bytes per parameter, for two recipes:
     fp32: what train_lm.py keeps (fp32 weights, bf16 autocast on CUDA): weights 4 B each;
       per trained parameter a gradient 4 B and AdamW's two moments 8 B: 16 B trained, 4 B frozen.
     bf16 weights + fp32 master copy (mixed precision as ZeRO counts it [3]): LM weights 2 B each;
       per trained parameter a bf16 gradient 2 B and 12 B of optimizer state (master 4 + moments 8,
       lora.trainable's count): 16 B trained, 2 B frozen. The T5 and the codec stay fp32 (4 B):
       they run in fp32 (TextConditioner; the codec only encodes).
   Not counted: activations (they grow with batch x duration; train_lm.py --grad-checkpointing
   recomputes them layer by layer), the framework's own memory. With train_lm.py --fsdp on N
   GPUs, each holds about 1/N of the LM's weights, gradients and AdamW state. The
   codec's codebooks (buffers) count with its weights; train_lm.py caches the codes once, so it
   never holds the codec while training, AudioCraft's solver does.
2. Speed, measured: the median steps/s (and the min-max) of --repeats repeats of train_lm.py's
   step (forward, cross-entropy, backward, gradient clipping, fused AdamW) at batch --batch x
   --frames frames (1.5 s at 50 Hz), with --threads torch threads, LoRA rank 16 vs full. Random
   weights; random T5 outputs (--text-len tokens of the T5's width) go through output_proj into
   cross-attention, so the T5 itself is not timed. Each repeat runs as many steps as fill about a
   second (one at least), after one untimed step. Full runs first; LoRA then adapts the same
   weights. A model runs only if its computed training state fits in MemAvailable with room to
   spare. Beside each: the training state alive after the steps, summed over the tensors
   themselves (weights, gradients, AdamW's state), against the fp32 count of part 1 for the LM and
   output_proj; and the process's peak resident memory (VmHWM, reset before each run), which adds
   activations, torch itself and the blocks glibc keeps after they are freed. The load average is
   printed first and last: other jobs sharing the cores slow every figure.

References:
1) MusicGen, Copet et al. 2023, arXiv:2306.05284; AudioGen, Kreuk et al. 2022, arXiv:2209.15352.
   Official configs: audiocraft/config/conditioner/text2music.yaml (t5-base),
   text2sound.yaml (t5-large); facebook/encodec_32khz; audiogen-medium's compression_state_dict
2) LoRA, Hu et al. 2021, arXiv:2106.09685 (lora.py)
3) ZeRO, Rajbhandari et al. 2019, arXiv:1910.02054, Sec. 3.1 (mixed-precision Adam: 2 + 2 + 12
   = 16 bytes per parameter)
"""
import argparse
import ctypes
import gc
import os
import statistics
import sys
import time

import torch
import torch.nn as nn

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..'))
from codec import PRESETS as CODEC_PRESETS, Codec  # noqa: E402
from lm import LM, PRESETS  # noqa: E402
from lora import add_lora, trainable  # noqa: E402
from t5 import T5_PRESETS, T5Encoder  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
# Model
parser.add_argument('--rank', type=int, default=16, help='LoRA rank (alpha = rank)')
parser.add_argument('--targets', default='',
                    help="LoRA's targets inside each layer, comma-separated ('': lora.TARGETS)")
parser.add_argument('--measure', default='tiny,musicgen-small',
                    help="models to time, comma-separated (of MODELS; '' times none)")
# Optimization
parser.add_argument('--batch', type=int, default=2, help='clips per training step')
parser.add_argument('--frames', type=int, default=75, help='frames per clip (75 = 1.5 s)')
parser.add_argument('--text-len', type=int, default=12, help='text tokens (T5 outputs) per clip')
parser.add_argument('--repeats', type=int, default=3,
                    help='timed repeats per measurement; the median and the min-max are printed')
parser.add_argument('--threads', default='1,2', help='torch thread counts, comma-separated')
args = parser.parse_args()

# model -> (its T5, its codec), as the official checkpoints configure them; 'tiny' is the default
# model of checkpoints/ (its own small T5, trained with it; the tiny codec)
MODELS = {'musicgen-small': ('t5-base', 'encodec_32khz'),
          'musicgen-medium': ('t5-base', 'encodec_32khz'),
          'musicgen-large': ('t5-base', 'encodec_32khz'),
          'audiogen-medium': ('t5-large', 'encodec_16khz'),
          'tiny': ('tiny', 'tiny')}
OFFICIAL = ('musicgen-small', 'musicgen-medium', 'musicgen-large', 'audiogen-medium')
GiB = 2**30
TARGETS = tuple(args.targets.split(',')) if args.targets else None


def count(module, buffers=False):
    """Elements of module's parameters (and buffers)."""
    tensors = [*module.parameters(), *(module.buffers() if buffers else ())]
    return sum(t.numel() for t in tensors)


def build(name, lora, device='meta'):
    """(LM, output_proj) of model `name` on `device`; with lora, adapters on the LM and every other
    weight frozen (as train_lm.py --lora: output_proj too). Random weights, as lm.LM initialises."""
    config = PRESETS[name]
    with torch.device(device):
        lm = LM(config)
        proj = nn.Linear(T5_PRESETS[MODELS[name][0]].d_model, config.dim)   # T5 width -> dim
    if lora:
        proj.requires_grad_(False)
        add_lora(lm, args.rank, targets=TARGETS)
    return lm, proj


def state_bytes(lm, proj):
    """{recipe: (weights, gradients, optimizer state)} in bytes for the LM and output_proj, with
    the byte counts of the module docstring; the optimizer's from lora.trainable."""
    mods = nn.ModuleList([lm, proj])
    n_train, n_all, opt32 = trainable(mods)
    out = {'fp32': (4 * n_all, 4 * n_train, opt32)}
    mods.to(torch.bfloat16)                                  # meta: changes dtypes, no memory
    _, _, opt16 = trainable(mods)                            # 12 B per trained bf16 parameter
    out['bf16'] = (2 * n_all, 2 * n_train, opt16)
    mods.to(torch.float32)
    return out


def memory_row(name, lora):
    """One markdown row of the memory table: model, method, trainable parameters, fp32 weights /
    gradients / AdamW state, fp32 total and bf16 total (GiB), frozen T5 and codec included."""
    lm, proj = build(name, lora)
    t5_name, codec_name = MODELS[name]
    with torch.device('meta'):
        frozen = count(T5Encoder(T5_PRESETS[t5_name])) + \
            count(Codec(CODEC_PRESETS[codec_name]), buffers=True)
    n_train = trainable(nn.ModuleList([lm, proj]))[0]
    s = state_bytes(lm, proj)
    w32, g32, o32 = s['fp32']
    total32, total16 = sum(s['fp32']) + 4 * frozen, sum(s['bf16']) + 4 * frozen
    method = f"LoRA r={args.rank}" if lora else "full"
    return (f"| {name} | {method} | {n_train / 1e6:,.1f}M | {(w32 + 4 * frozen) / GiB:.2f} | "
            f"{g32 / GiB:.2f} | {o32 / GiB:.2f} | {total32 / GiB:.2f} | {total16 / GiB:.2f} |")


def memory_table():
    """The sizes of each official model's parts, then the memory table."""
    for name in OFFICIAL:
        lm, proj = build(name, lora=False)
        t5_name, codec_name = MODELS[name]
        with torch.device('meta'):
            t5, codec = T5Encoder(T5_PRESETS[t5_name]), Codec(CODEC_PRESETS[codec_name])
        print(f"{name}: LM {count(lm) / 1e6:,.1f}M + output_proj {count(proj) / 1e6:.2f}M "
              f"parameters; frozen: {t5_name} encoder {count(t5) / 1e6:.1f}M, {codec_name} "
              f"{count(codec) / 1e6:.1f}M + {count(codec, True) - count(codec):,} in buffers")
    print("\n| model | fine-tuning | trainable parameters | weights (fp32, all) | gradients "
          "(fp32) | AdamW state (fp32) | total, fp32 | total, bf16 weights + fp32 master |\n"
          + "|---" * 8 + "|")
    for name in OFFICIAL:
        for lora in (False, True):
            print(memory_row(name, lora))
    print("GiB (2^30 bytes), activations not included.\n")


def mem_available():
    """Bytes the kernel says can be allocated without swapping (MemAvailable; Linux)."""
    with open('/proc/meminfo') as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith('MemAvailable'))


def release():
    """Hand freed memory back to the system, so that the next peak starts low: the optimizer's
    reference cycles collected, then glibc's malloc_trim (freed tensors stay in its heap)."""
    gc.collect()
    try:
        ctypes.CDLL('libc.so.6').malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: the next peak may include this run's memory
        pass


def reset_peak():
    """Reset this process's peak resident memory (VmHWM) to its current size; False if the kernel
    refuses (clear_refs: Linux 4.0 and later)."""
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
        return True
    except OSError:
        return False


def rss(field='VmHWM'):
    """This process's peak (VmHWM) or current (VmRSS) resident memory in bytes."""
    with open('/proc/self/status') as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(field))


def held_bytes(modules, opt):
    """Bytes of the training state alive now: the parameters, their gradients, the optimizer's
    state tensors (what the computed fp32 state counts, read from the tensors themselves)."""
    params = [p for m in modules for p in m.parameters()]
    state = [t for s in opt.state.values() for t in s.values() if torch.is_tensor(t)]
    tensors = params + [p.grad for p in params if p.grad is not None] + state
    return sum(t.numel() * t.element_size() for t in tensors)


def make_step(lm, proj):
    """train_lm.py's step on one fixed random batch, as a function: forward, mean cross-entropy,
    backward, clip the gradient norm to 1, fused AdamW (MusicGen's betas)."""
    c = lm.config
    gen = torch.Generator().manual_seed(0)
    codes = torch.randint(0, c.card, (args.batch, c.n_q, args.frames), generator=gen)  # [B, K, T]
    hidden = torch.randn(args.batch, args.text_len, proj.in_features, generator=gen)  # T5 out
    params = [p for m in (lm, proj) for p in m.parameters() if p.requires_grad]
    try:  # fused: one kernel for all tensors, as train_lm.py
        opt = torch.optim.AdamW(params, lr=1e-4, betas=(0.9, 0.95), weight_decay=0.1, fused=True)
    except RuntimeError:  # torch < 2.4 has no fused AdamW on CPU
        opt = torch.optim.AdamW(params, lr=1e-4, betas=(0.9, 0.95), weight_decay=0.1)

    def step():
        _, loss = lm(codes, proj(hidden), targets=codes)                   # [B, S, dim] condition
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
    return step, opt


def steps_per_s(step):
    """[args.repeats] steps/s: one untimed step, then repeats of n steps, n filling about 1 s."""
    t0 = time.perf_counter()
    step()
    n = max(1, round(1.0 / (time.perf_counter() - t0)))
    rates = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        for _ in range(n):
            step()
        rates.append(n / (time.perf_counter() - t0))
    return rates


def speed_rows(name, threads):
    """Markdown rows of the speed table for model `name`: full, then LoRA on the same weights."""
    lm, proj = build(name, lora=False)
    need = sum(state_bytes(lm, proj)['fp32'])
    if need * 1.5 > mem_available():
        return [f"| {name} | - | not run: its training state ({need / GiB:.1f} GiB) does not fit "
                f"in {mem_available() / GiB:.1f} GiB available |"]
    torch.manual_seed(0)
    t0, before = time.perf_counter(), rss('VmRSS')
    lm, proj = build(name, lora=False, device='cpu')
    print(f"{name}: {count(lm) / 1e6:,.1f}M parameters initialised in "
          f"{time.perf_counter() - t0:.0f} s; resident memory before: {before / GiB:.2f} GiB")
    rows = []
    for lora in (False, True):
        if lora:
            proj.requires_grad_(False)
            add_lora(lm, args.rank, targets=TARGETS)   # B = 0: from the weights full left
        computed = sum(state_bytes(*build(name, lora))['fp32'])
        reset = reset_peak()
        step, opt = make_step(lm, proj)
        cells = []
        for t in threads:
            torch.set_num_threads(t)
            rates = steps_per_s(step)
            med, lo, hi = statistics.median(rates), min(rates), max(rates)
            cells.append(f"{med:.2f} ({lo:.2f}-{hi:.2f})")
        held = held_bytes((lm, proj), opt)
        del step, opt                               # the AdamW state and the gradients freed
        lm.zero_grad(set_to_none=True)
        proj.zero_grad(set_to_none=True)
        release()
        method = f"LoRA r={args.rank}" if lora else "full"
        n_train = trainable(nn.ModuleList([lm, proj]))[0]
        rows.append(f"| {name} | {method} | {n_train / 1e6:,.2f}M | " + " | ".join(cells)
                    + f" | {held / GiB:.2f} ({computed / GiB:.2f}) | "
                    f"{rss() / GiB if reset else float('nan'):.2f} |")
        print(rows[-1], flush=True)
    return rows


def main():
    measure = [m for m in args.measure.split(',') if m]
    unknown = [m for m in measure if m not in MODELS]
    if unknown:
        raise SystemExit(f"--measure {','.join(unknown)}: pick from {', '.join(MODELS)}")
    threads = [int(t) for t in args.threads.split(',')]
    load = os.getloadavg()
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, load average {load[0]:.2f}, "
          f"MemAvailable {mem_available() / GiB:.1f} GiB\n")
    memory_table()
    if not measure:
        return
    print(f"training steps/s, batch {args.batch} x {args.frames} frames, {args.text_len} text "
          f"tokens; median (min-max) of {args.repeats}")
    head = " | ".join(f"steps/s, {t} thread{'s' * (t > 1)}" for t in threads)
    rows = [f"| model | fine-tuning | trainable parameters | {head} | training state, GiB "
            f"(computed) | peak RSS, GiB |", "|---" * (5 + len(threads)) + "|"]
    for name in measure:
        rows += speed_rows(name, threads)
    load = os.getloadavg()
    print("\n" + "\n".join(rows) + f"\nload average at the end: {load[0]:.2f} (1 min), "
          f"{load[1]:.2f} (5 min)")


if __name__ == '__main__':
    main()
