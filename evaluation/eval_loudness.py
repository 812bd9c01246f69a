"""
Clipping and loudness of generated clips against real ones: how many clips the decoder overshoots
into full scale, what each of sample.py's --normalize strategies leaves clipped, and the loudness
(audio.loudness, ITU-R BS.1770-4) of the real built-in clips and of clips generated from their
tags. Not a test: a script that prints a markdown table (one thread: about 40 s).

    python evaluation/eval_loudness.py              # the default model: 36 prompts x 2 clips of 3 s
    python evaluation/eval_loudness.py --model runs/lm/export --n-per-prompt 8 --seed 1

1. The prompts and the real clips: eval_audio.py's set A (metrics.eval_sets: every plausible
   (source, scene) pair and every instrument, n held-out clips each), mono at 16 kHz.
2. One clip per real clip, generated from its tags by TextToAudio.generate with clamp=False (the
   decoder's output as it is; sample.py's sampling and defaults, one batch per --batch prompts,
   batch j with seed 1000 * seed + j).
3. A clip is "clipped" when more than 0.1 % of its samples are at full scale once written as
   16-bit (|x| >= 32767 / 32768, libsndfile's scale), or for 'clip' at its ceiling (-1 dBFS):
   generate's clamp (the files sample.py wrote before --normalize) against each strategy of
   audio.normalize_audio.
4. Loudness in LKFS (each clip at its own rate: BS.1770 holds at any) of the real clips, of the
   generated ones as decoded, clamped, and as each strategy writes them: median and the 10th to
   90th percentile.

References:
1) AudioCraft's audio_write and normalize_audio (strategies, headrooms): audiocraft/data/audio.py,
   audiocraft/data/audio_utils.py
2) ITU-R BS.1770-4 (loudness, K-weighting, gating), https://www.itu.int/rec/R-REC-BS.1770
"""

import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from audio import STRATEGIES, loudness, normalize_audio  # noqa: E402
from evaluation.metrics import SR, eval_sets, sampling, set_a  # noqa: E402
from model import load_model  # noqa: E402

parser = argparse.ArgumentParser(description="Clipping and loudness of generated and real clips.")
parser.add_argument("--model", default="checkpoints",
                    help="what sample.py --model takes (default: %(default)s, the shipped model)")
parser.add_argument("--n-per-prompt", type=int, default=2,
                    help="real and generated clips per prompt (default: %(default)s)")
parser.add_argument("--duration", type=float, default=3.0,
                    help="seconds per clip (default: %(default)s)")
parser.add_argument("--seed", type=int, default=0,
                    help="seeds the held-out clips and sampling (default: %(default)s)")
parser.add_argument("--cfg-coef", type=float, default=3.0,
                    help="classifier-free guidance of the samples (default: %(default)s)")
parser.add_argument("--temperature", type=float, default=0.9,
                    help="softmax temperature of the samples (sample.py's; default: %(default)s)")
parser.add_argument("--batch", type=int, default=24,
                    help="prompts generated together (default: %(default)s)")

FULL = 32767 / 32768  # full scale in a 16-bit file written by libsndfile (x * 32768, clipped)
SHARE = 0.001  # a clip is clipped above 0.1 % of its samples at full scale


def generate_raw(model, texts, args):
    """One clip per text, the decoder's raw output -> [N, 1, T] mono at the codec's rate. Batches
    mix prompts of different lengths: right for a model that masks padding (cross_attention_mask);
    for another, --batch 1 (metrics.generate groups prompts by length instead)."""
    if args.batch > 1 and not model.lm.config.cross_attention_mask:
        raise SystemExit("eval_loudness.py: error: the model does not mask prompt padding; "
                         "use --batch 1")
    out = []
    for j, k in enumerate(range(0, len(texts), args.batch)):
        wav = model.generate(texts[k:k + args.batch], args.duration, seed=1000 * args.seed + j,
                             clamp=False, **sampling(args))  # [b, C, T]
        out.append(wav.mean(1, keepdim=True))  # [b, 1, T]: mono
        print(f"generated {min(k + args.batch, len(texts))}/{len(texts)}", file=sys.stderr)
    return torch.cat(out)


def clipped(wav, ceiling=FULL):
    """wav [N, 1, T] -> the share of clips with more than SHARE of their samples at the ceiling
    (full scale; 'clip' clamps at -1 dBFS: its flat tops are there)."""
    return ((wav.abs() >= ceiling).float().mean((1, 2)) > SHARE).float().mean().item()


def row(name, wav, sr, ceiling=FULL):
    """One table row: (name, clipped share, loudness [N] in LKFS)."""
    return name, clipped(wav, ceiling), loudness(wav, sr)


def table(rows):
    """Rows of `row` -> markdown: the share clipped, the loudness median (10th to 90th
    percentile)."""
    lines = ["| clips | clipped: > 0.1 % of samples at full scale (clip: at -1 dBFS) | loudness, "
             "LKFS: median (10th to 90th percentile) |", "|---|---|---|"]
    for name, share, lkfs in rows:
        q = torch.quantile(lkfs.double(), torch.tensor([0.5, 0.1, 0.9], dtype=torch.float64))
        lines.append(f"| {name} | {100 * share:.0f} % | {q[0]:.1f} ({q[1]:.1f} to {q[2]:.1f}) |")
    return "\n".join(lines)


def main(argv=None):
    """Steps 1 to 4 of the file docstring, printed -> the table's rows (see row)."""
    args = parser.parse_args(argv)
    if args.batch < 1 or args.n_per_prompt < 1 or not args.duration > 0:
        raise SystemExit("eval_loudness.py: error: --batch, --n-per-prompt and --duration must be "
                         "positive")
    model = load_model(args.model, "cpu")
    sets = eval_sets(args.n_per_prompt, args.seed, args.duration)
    A, _ = set_a(sets, args.n_per_prompt)
    real = torch.stack([torch.from_numpy(c["wav"]) for c in A])[:, None]  # [N, 1, T] at 16 kHz
    sr = model.codec.sample_rate
    gen = generate_raw(model, [c["tags"] for c in A], args)  # [N, 1, T'] at sr
    rows = [row("real (built-in)", real, SR), row("generated, as decoded", gen, sr),
            # what generate returned, and sample.py wrote, before --normalize
            row("generated, clamped to [-1, 1]", gen.clamp(-1, 1), sr)]
    for strategy in STRATEGIES:
        out = torch.stack([normalize_audio(w, sr, strategy) for w in gen]).clamp(-1, 1)
        ceiling = 10 ** (-1 / 20) - 1e-6 if strategy == "clip" else FULL
        rows.append(row(f"generated, --normalize {strategy}", out, sr, ceiling))
    print(f"\nmodel {args.model}, {len(sets)} prompts x {args.n_per_prompt} clips of "
          f"{args.duration:g} s, seed {args.seed}, cfg {args.cfg_coef:g}, T {args.temperature:g}\n")
    print(table(rows))
    over = (gen.abs().amax((1, 2)) > 1).float().mean().item()
    print(f"\n{100 * over:.0f} % of the generated clips overshoot [-1, 1] somewhere; the largest "
          f"peak: {gen.abs().max():.2f}")
    return rows


if __name__ == "__main__":
    main()
