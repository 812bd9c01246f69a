"""
Benchmark (not a test): generation steps/s with CFG at batch 1, ours vs transformers' MusicGen
decoder on the same random weights, KV-cached and uncached, with fp32 weights and with bf16 weights
(both models converted with .to(torch.bfloat16); `sample.py --bf16` does this to ours).

    python evaluation/bench_lm.py --threads 1     # tiny and musicgen-small, CPU, fp32 and bf16
    python evaluation/bench_lm.py --configs tiny --frames 100 --dtypes float32

One step = one sequence step of the delay pattern (all K codebooks); T frames take T + 3 steps.
transformers runs its own generate (guidance_scale, top_k) on MusicgenForCausalLM with an explicit
EncoderDecoderCache: its default cache for this class mixes cross-attention keys into the
self-attention cache (wrong tokens), and an all-ones attention_mask, since its start token equals
pad.

What the figures depend on. A cached step multiplies the two CFG rows by every weight matrix once,
so on a CPU it reads all the weights once per step: steps/s x bytes of weights = the memory
bandwidth the run saw (the GB/s columns), bounded by what one core can read (the probe printed
first). bf16 halves the bytes; it doubles the steps/s only while the bf16 matrix products keep
up with memory, which needs the CPU's bf16 instructions (avx512_bf16, amx_bf16: printed) and
torch's kernels for them. So "ours in bf16 vs transformers in fp32" is a property of the machine:
compare the GB/s of the fp32 and bf16 rows to see which bound a run met. Each measurement is
repeated (ours and transformers' in turn, so both see the same load): the median and the min-max.
"""
import argparse
import inspect
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..'))
from lm import LM, PRESETS  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument('--configs', default='tiny,musicgen-small',
                    help='comma-separated PRESETS names')
parser.add_argument('--frames', type=int, default=0,
                    help='frames to generate (0: 60 for tiny, 24 otherwise)')
parser.add_argument('--text_len', type=int, default=12, help='condition length (text tokens)')
parser.add_argument('--repeats', type=int, default=5,
                    help='runs per measurement; the median and the min-max are printed')
parser.add_argument('--dtypes', default='float32,bfloat16',
                    help='weight dtypes to measure, comma-separated')
parser.add_argument('--threads', type=int, default=0,
                    help='torch threads (0: torch default); 1 gives steadier figures on a shared '
                    'machine')
args = parser.parse_args()

# transformers name <- AudioCraft name (convert_musicgen_transformers.py rename_keys, reversed)
RENAMES = [('emb', 'model.decoder.embed_tokens'), ('out_norm', 'model.decoder.layer_norm'),
           ('transformer.layers', 'model.decoder.layers'),
           ('norm_cross', 'encoder_attn_layer_norm'),
           ('norm1', 'self_attn_layer_norm'), ('norm2', 'final_layer_norm'),
           ('cross_attention', 'encoder_attn'), ('linear1', 'fc1'), ('linear2', 'fc2'),
           ('linears', 'lm_heads')]
CPU_FLAGS = ('avx512f', 'avx512_bf16', 'amx_bf16', 'amx_tile')  # what bf16 matmuls can run on


def to_transformers(state):
    out = {}
    for k, v in state.items():
        for a, b in RENAMES:
            k = k.replace(a, b) if k.startswith(a) or f'.{a}.' in k else k
        if k.endswith('in_proj_weight'):   # fused [3D, D] -> q, k, v
            for name, w in zip('qkv', v.chunk(3)):
                out[k.replace('in_proj_weight', f'{name}_proj.weight')] = w
        else:
            out[k] = v
    return out


def cpu_flags():
    """Which of CPU_FLAGS /proc/cpuinfo lists: 'avx512_bf16 yes, amx_bf16 no, ...' (Linux only)."""
    try:
        with open('/proc/cpuinfo') as f:
            flags = next((line.split(':', 1)[1].split() for line in f if line.startswith('flags')),
                         [])
    except OSError:
        return 'CPU flags unknown (no /proc/cpuinfo)'
    return ', '.join(f"{flag} {'yes' if flag in flags else 'no'}" for flag in CPU_FLAGS)


def read_bandwidth(gib=1, repeats=5):
    """GB/s of one sum over a gib-GiB fp32 tensor (the best of `repeats`): what the torch threads
    can read from memory right now, the bound of a weight-bound step."""
    x = torch.ones(gib * 2**28)  # gib GiB of fp32
    x.sum()  # warm-up: pages touched
    best = min(timed(x.sum)[0] for _ in range(repeats))
    return x.numel() * x.element_size() / best / 1e9


def weight_bytes(model):
    """Bytes of all the parameters: what a cached step reads (every matrix once, for both CFG
    rows)."""
    return sum(p.numel() * p.element_size() for p in model.parameters())


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def spread(xs):
    """[x] -> (median, min, max)."""
    return statistics.median(xs), min(xs), max(xs)


def measure(ours, theirs, steps):
    """args.repeats runs of ours() and of theirs(), in turn -> (ours steps/s [r], theirs
    steps/s [r])."""
    a, b = [], []
    for _ in range(args.repeats):
        a.append(steps / timed(ours)[0])
        b.append(steps / timed(theirs)[0])
    return a, b


def build(c):
    """The preset c as our LM and as transformers' MusicgenForCausalLM with the same weights."""
    from transformers import MusicgenDecoderConfig, MusicgenForCausalLM
    torch.manual_seed(0)
    lm = LM(c).eval()
    hc = MusicgenDecoderConfig(vocab_size=c.card, hidden_size=c.dim,
                               num_hidden_layers=c.num_layers,
                               num_attention_heads=c.num_heads, ffn_dim=c.hidden_scale * c.dim,
                               num_codebooks=c.n_q, pad_token_id=c.card, bos_token_id=c.card,
                               decoder_start_token_id=c.card, dropout=0.0,
                               max_position_embeddings=2048)
    hf = MusicgenForCausalLM(hc).eval()
    missing, unexpected = hf.load_state_dict(to_transformers(lm.state_dict()), strict=False)
    assert not unexpected and all('embed_positions' in k for k in missing), (missing, unexpected)
    return lm, hf


def generators(lm, hf, c, T):
    """(ours(use_cache, greedy), theirs(use_cache, greedy)): CFG generation of T frames from one
    random condition, sampled with top-k 250 or greedy."""
    from transformers import DynamicCache, EncoderDecoderCache
    g = torch.Generator().manual_seed(0)
    cond = torch.randn(1, args.text_len, c.dim, generator=g).to(lm.emb[0].weight)  # [1, S, D]

    def ours(use_cache, greedy=False):
        gen = torch.Generator().manual_seed(0)
        return lm.generate(cond, duration=T / c.frame_rate, use_cache=use_cache, generator=gen,
                           temperature=0.0 if greedy else 1.0)  # temperature 0: greedy

    def theirs(use_cache, greedy=False):
        params = inspect.signature(hf.forward).parameters
        name = 'cache' if 'cache' in params else 'past_key_values'  # renamed in transformers 5
        kw = ({name: EncoderDecoderCache(DynamicCache(), DynamicCache())} if use_cache
              else dict(use_cache=False))
        return hf.generate(input_ids=torch.full((c.n_q, 1), c.card),
                           attention_mask=torch.ones(1, 1, dtype=torch.long), guidance_scale=3.0,
                           encoder_hidden_states=torch.cat([cond, torch.zeros_like(cond)]),
                           do_sample=not greedy, max_length=T + c.n_q, num_return_sequences=1,
                           **({} if greedy else dict(top_k=250)), **kw)
    return ours, theirs


@torch.no_grad()
def bench_config(name):
    """Every dtype and cache mode of one preset -> rows (name, dtype, mode, steps, ours steps/s
    [r], transformers steps/s [r], bytes of ours, bytes of theirs, greedy tokens equal)."""
    c = PRESETS[name]
    T = args.frames or (60 if name == 'tiny' else 24)
    steps = T + max(c.delays)
    lm, hf = build(c)
    rows = []
    for dtype in args.dtypes.split(','):
        lm.to(getattr(torch, dtype)), hf.to(getattr(torch, dtype))
        ours, theirs = generators(lm, hf, c, T)
        same = torch.equal(ours(True, greedy=True), theirs(True, greedy=True))  # also a warm-up
        for use_cache in (True, False):
            a, b = measure(lambda: ours(use_cache), lambda: theirs(use_cache), steps)
            rows.append((name, dtype, 'cached' if use_cache else 'uncached', steps, a, b,
                         weight_bytes(lm), weight_bytes(hf), same))
    return rows


def fmt(xs):
    """[steps/s] -> 'median (min-max)'."""
    m, lo, hi = spread(xs)
    return f"{m:.1f} ({lo:.1f}-{hi:.1f})"


def report(rows):
    print(f"\nsteps/s: median (min-max) of {args.repeats} runs; GB/s: weight bytes x median "
          "steps/s (cached rows: the memory bandwidth the run saw)")
    print(f"{'config':15s} {'weights':8s} {'mode':8s} {'steps':>5s} {'ours steps/s':>18s} "
          f"{'GB/s':>5s} {'transformers':>18s} {'GB/s':>5s} {'ratio':>6s}  greedy equal")
    for name, dtype, mode, steps, a, b, bytes_a, bytes_b, same in rows:
        ma, mb = statistics.median(a), statistics.median(b)
        print(f"{name:15s} {dtype:8s} {mode:8s} {steps:5d} {fmt(a):>18s} {bytes_a * ma / 1e9:5.1f} "
              f"{fmt(b):>18s} {bytes_b * mb / 1e9:5.1f} {ma / mb:5.2f}x  {same}")
    for name in dict.fromkeys(r[0] for r in rows):
        for dtype in dict.fromkeys(r[1] for r in rows):
            cached, uncached = [r for r in rows if r[:2] == (name, dtype)]
            med = statistics.median
            print(f"{name} {dtype}: cache speed-up ours {med(cached[4]) / med(uncached[4]):.2f}x, "
                  f"transformers {med(cached[5]) / med(uncached[5]):.2f}x")
        fp32, bf16 = (next((r for r in rows if r[:3] == (name, d, 'cached')), None)
                      for d in ('float32', 'bfloat16'))
        if fp32 and bf16:  # not run in turn: the range pairs the extremes
            (m16, lo16, hi16), (m32, lo32, hi32) = spread(bf16[4]), spread(fp32[5])
            print(f"{name}: ours bf16 (cached) vs transformers fp32 (cached): {m16 / m32:.2f}x "
                  f"(range {lo16 / hi32:.2f}-{hi16 / lo32:.2f}x)")


def main():
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, CPU, {torch.get_num_threads()} threads, load average "
          f"{os.getloadavg()[0]:.1f}, batch 1 with CFG (2 rows), {args.text_len} text tokens")
    print(f"{cpu_flags()}; memory read by {torch.get_num_threads()} thread(s): "
          f"{read_bandwidth():.1f} GB/s")
    rows = [row for name in args.configs.split(',') for row in bench_config(name)]
    report(rows)
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == '__main__':
    main()
