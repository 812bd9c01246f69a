"""
What a codec keeps of each kind of sound: per class of the built-in data and per octave band, the
energy that comes out over the energy that went in, and SI-SNR and mel distance per class, for 1, 2,
4 and 8 codebooks. Not a test: a script that prints markdown tables (as eval_audio.py and
bench_codec.py).

    python evaluation/eval_codec.py         # the shipped codec, checkpoints/codec.pt, 300 clips
    python evaluation/eval_codec.py --codec runs/codec/ckpt.pt --n-clips 100

The clips are held out (BuiltinDataset's valid split, 2 s each); a clip's class is its source (sound
effects) or its instrument (music). Each number is the median over the clips of a class: band_levels
(losses.py) in dB, 0 = the band comes back as loud as it went in. A band that holds less than EMPTY
dB of the clip's energy (a bass line has almost nothing above 1 kHz) reads "." instead: there the
ratio is the decoder's own noise floor over nothing, not a loss. On 2 CPU cores: about 30 s for 300
clips with the tiny codec.
"""

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from checkpoint import load_codec  # noqa: E402
from data import BuiltinDataset  # noqa: E402
from losses import band_edges, band_levels, mel_distance, si_snr  # noqa: E402

# dB of the clip's energy: below it a band is empty (the median bass clip: -63 dB at 1-2 kHz)
EMPTY = -50.0

parser = argparse.ArgumentParser(description="Energy kept per class and octave band, SI-SNR and "
                                 "mel distance per class, of a codec on held-out built-in clips.")
parser.add_argument("--codec", default="checkpoints/codec.pt",
                    help="a codec checkpoint (any load_codec reads)")
parser.add_argument("--n-clips", type=int, default=300, help="held-out clips of 2 s")
parser.add_argument("--seed", type=int, default=0,
                    help="the data seed (its valid split: never trained on)")
parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                    help="cpu or cuda")


def clip_class(labels):
    return labels["source"] if labels["kind"] == "sfx" else labels["instrument"]


@torch.no_grad()
def measure(codec, wav, n_qs, batch=25):
    """wav [N, C, T] -> {n_q: (band levels [N, n_bands] dB, SI-SNR [N] dB, mel distance [N])}."""
    out, T = {}, wav.shape[-1]
    for n_q in n_qs:
        parts = []
        for x in wav.split(batch):
            recon = codec.decode(codec.encode(x, n_q=n_q))[..., :T]
            mel = torch.stack([mel_distance(r[None], c[None], codec.sample_rate)
                               for r, c in zip(recon, x)])
            parts.append((band_levels(recon, x, codec.sample_rate), si_snr(recon, x), mel))
        out[n_q] = tuple(torch.cat(p) for p in zip(*parts))
    return out


def band_share(wav, sample_rate):
    """Each band's share of the clip's energy in dB [N, n_bands] (0 dB: all of it)."""
    # up to one common factor
    energy = 10 ** (band_levels(wav, torch.zeros_like(wav), sample_rate) / 10)
    return 10 * torch.log10(energy / energy.sum(1, keepdim=True))


def main(argv=None):
    args = parser.parse_args(argv)
    t0 = time.time()
    codec = load_codec(args.codec).to(args.device).eval()
    data = BuiltinDataset(args.n_clips, seed=args.seed, duration=2.0, sample_rate=codec.sample_rate,
                          split="valid")
    items = [data[i] for i in range(len(data))]
    wav = torch.stack([it["wav"] for it in items]).to(args.device)  # [N, C, T]
    classes = [clip_class(it["labels"]) for it in items]
    n_qs = [q for q in (1, 2, 4, 8, 16, 32) if q <= codec.config.n_q]
    results = measure(codec, wav, n_qs)
    share = band_share(wav, codec.sample_rate)
    edges = band_edges(codec.sample_rate)
    names = [f"{lo / 1000:g}-{hi / 1000:g} kHz" for lo, hi in zip(edges, edges[1:])]
    rows = {c: [i for i, k in enumerate(classes) if k == c] for c in sorted(set(classes))}
    rows["all clips"] = list(range(len(classes)))
    print(f"# {args.codec}: {len(classes)} held-out clips of 2 s; median over a class; '.' = a "
          f"band below {EMPTY:.0f} dB of the clip's energy")
    for n_q in n_qs:
        levels = results[n_q][0]
        print(f"\n## energy kept per band (dB), {n_q} codebook(s)\n\n| class (clips) | "
              + " | ".join(names) + " |")
        print("|---|" + "---|" * len(names))
        for c, idx in rows.items():
            cells = [f"{levels[idx, b].median():+.1f}" if share[idx, b].median() > EMPTY else "."
                     for b in range(len(names))]
            print(f"| {c} ({len(idx)}) | " + " | ".join(cells) + " |")
    print("\n## SI-SNR (dB) / mel distance per class\n\n| class | "
          + " | ".join(f"{q} cb" for q in n_qs) + " |")
    print("|---|" + "---|" * len(n_qs))
    for c, idx in rows.items():
        cells = [f"{results[q][1][idx].median():.2f} / {results[q][2][idx].median():.3f}"
                 for q in n_qs]
        print(f"| {c} | " + " | ".join(cells) + " |")
    print(f"\n({time.time() - t0:.0f} s on {args.device})")
    return results, share, classes


if __name__ == "__main__":
    main()
