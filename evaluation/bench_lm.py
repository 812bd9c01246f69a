"""
Benchmark (not a test): generation steps/s with CFG at batch 1, ours vs transformers' MusicGen decoder
on the same random weights, KV-cached and uncached, with fp32 weights and with bf16 weights (both models
converted with .to(torch.bfloat16); `sample.py --bf16` does this to ours).

    python evaluation/bench_lm.py                 # tiny and musicgen-small, CPU, fp32 and bf16
    python evaluation/bench_lm.py --configs tiny --frames 100 --dtypes float32

One step = one sequence step of the delay pattern (all K codebooks); T frames take T + 3 steps.
transformers runs its own generate (guidance_scale, top_k) on MusicgenForCausalLM with an explicit
EncoderDecoderCache: its default cache for this class mixes cross-attention keys into the
self-attention cache (wrong tokens), and an all-ones attention_mask, since its start token equals pad.
"""
import argparse
import inspect
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..'))
from lm import LM, PRESETS  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument('--configs', default='tiny,musicgen-small', help='comma-separated PRESETS names')
parser.add_argument('--frames', type=int, default=0, help='frames to generate (0: 60 for tiny, 24 otherwise)')
parser.add_argument('--text_len', type=int, default=12, help='condition length (text tokens)')
parser.add_argument('--repeats', type=int, default=3, help='runs per measurement; the fastest is kept')
parser.add_argument('--dtypes', default='float32,bfloat16', help='weight dtypes to measure, comma-separated')
parser.add_argument('--threads', type=int, default=0,
                    help='torch threads (0: torch default); 1 gives steadier figures on a shared machine')
args = parser.parse_args()

# transformers name <- AudioCraft name (convert_musicgen_transformers.py rename_keys, reversed)
RENAMES = [('emb', 'model.decoder.embed_tokens'), ('out_norm', 'model.decoder.layer_norm'),
           ('transformer.layers', 'model.decoder.layers'), ('norm_cross', 'encoder_attn_layer_norm'),
           ('norm1', 'self_attn_layer_norm'), ('norm2', 'final_layer_norm'), ('cross_attention', 'encoder_attn'),
           ('linear1', 'fc1'), ('linear2', 'fc2'), ('linears', 'lm_heads')]


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


def best_time(fn):
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def main():
    from transformers import DynamicCache, EncoderDecoderCache, MusicgenDecoderConfig, MusicgenForCausalLM
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, CPU, {torch.get_num_threads()} threads, "
          f"load average {os.getloadavg()[0]:.1f}, batch 1 with CFG (2 rows), {args.text_len} text tokens")
    rows = []
    for name in args.configs.split(','):
        c = PRESETS[name]
        T = args.frames or (60 if name == 'tiny' else 24)
        steps = T + max(c.delays)
        torch.manual_seed(0)
        lm = LM(c).eval()
        hc = MusicgenDecoderConfig(vocab_size=c.card, hidden_size=c.dim, num_hidden_layers=c.num_layers,
                                   num_attention_heads=c.num_heads, ffn_dim=c.hidden_scale * c.dim, num_codebooks=c.n_q,
                                   pad_token_id=c.card, bos_token_id=c.card, decoder_start_token_id=c.card,
                                   dropout=0.0, max_position_embeddings=2048)
        hf = MusicgenForCausalLM(hc).eval()
        missing, unexpected = hf.load_state_dict(to_transformers(lm.state_dict()), strict=False)
        assert not unexpected and all('embed_positions' in k for k in missing), (missing, unexpected)
        for dtype in args.dtypes.split(','):
            lm.to(getattr(torch, dtype)), hf.to(getattr(torch, dtype))
            cond = torch.randn(1, args.text_len, c.dim, generator=torch.Generator().manual_seed(0)).to(lm.emb[0].weight)

            def ours(use_cache, greedy=False):
                gen = torch.Generator().manual_seed(0)
                return lm.generate(cond, duration=T / c.frame_rate, use_cache=use_cache, generator=gen,
                                   temperature=0.0 if greedy else 1.0)  # temperature 0: greedy

            def theirs(use_cache, greedy=False):
                name = 'cache' if 'cache' in inspect.signature(hf.forward).parameters else 'past_key_values'  # renamed
                kw = {name: EncoderDecoderCache(DynamicCache(), DynamicCache())} if use_cache else dict(use_cache=False)
                return hf.generate(input_ids=torch.full((c.n_q, 1), c.card),
                                   attention_mask=torch.ones(1, 1, dtype=torch.long), guidance_scale=3.0,
                                   encoder_hidden_states=torch.cat([cond, torch.zeros_like(cond)]),
                                   do_sample=not greedy, max_length=T + c.n_q, num_return_sequences=1,
                                   **({} if greedy else dict(top_k=250)), **kw)

            with torch.no_grad():
                same = torch.equal(ours(True, greedy=True), theirs(True, greedy=True))
                for use_cache in (True, False):
                    t_ours, _ = best_time(lambda: ours(use_cache))
                    t_hf, _ = best_time(lambda: theirs(use_cache))
                    rows.append((name, dtype, 'cached' if use_cache else 'uncached', steps, steps / t_ours,
                                 steps / t_hf, same))
    print(f"\n{'config':16s} {'weights':9s} {'mode':9s} {'steps':>5s} {'ours steps/s':>13s} {'transformers':>13s} "
          f"{'ratio':>6s}  greedy equal")
    for name, dtype, mode, steps, a, b, same in rows:
        print(f"{name:16s} {dtype:9s} {mode:9s} {steps:5d} {a:13.1f} {b:13.1f} {a / b:6.2f}x  {same}")
    for name in dict.fromkeys(r[0] for r in rows):
        for dtype in dict.fromkeys(r[1] for r in rows):
            cached, uncached = [r for r in rows if r[:2] == (name, dtype)]
            print(f"{name} {dtype}: cache speed-up ours {cached[4] / uncached[4]:.2f}x, "
                  f"transformers {cached[5] / uncached[5]:.2f}x")
        fp32, bf16 = (next((r for r in rows if r[:3] == (name, d, 'cached')), None) for d in ('float32', 'bfloat16'))
        if fp32 and bf16:
            print(f"{name}: ours bf16 (cached) vs transformers fp32 (cached): {bf16[4] / fp32[5]:.2f}x")


if __name__ == '__main__':
    main()
