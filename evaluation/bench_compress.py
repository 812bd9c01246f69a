"""
Benchmark: what the entropy LM saves and what it costs. For held-out built-in clips (split "valid",
never trained on) and each bandwidth of the codec: the mean .ecdc file size without and with --lm,
and the real-time factor (RTF = seconds of audio / seconds of compute; > 1 is faster than real time)
of compressing (compress.compress: encode + payload) and decompressing (compress.decompress +
codec.decode), models loaded beforehand. It prints a table.

    python evaluation/bench_compress.py [--clips 20] [--threads 1] [--model checkpoints/codec.pt]
                                        [--lm checkpoints/entropy_lm.pt]
"""

import argparse
import os
import sys
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from checkpoint import load_codec, load_entropy_lm  # noqa: E402
from compress import bandwidths, compress, decompress  # noqa: E402
from data import BuiltinDataset  # noqa: E402

parser = argparse.ArgumentParser(description="Size and speed of .ecdc files with and without the "
                                 "entropy LM.")
parser.add_argument("--clips", type=int, default=20, help="held-out built-in clips of 5 s")
parser.add_argument("--threads", type=int, default=1, help="torch threads")
parser.add_argument("--model", default=os.path.join(ROOT, "checkpoints", "codec.pt"),
                    help="the codec")
parser.add_argument("--lm", default=os.path.join(ROOT, "checkpoints", "entropy_lm.pt"),
                    help="its entropy LM")


def measure(codec, clips, K, lm):
    """-> (mean file bytes, seconds compressing, seconds decompressing) over the clips at K
    codebooks."""
    size = t_enc = t_dec = 0.0
    for wav in clips:  # [C, T]
        t0 = time.perf_counter()
        data, codes = compress(codec, wav, K, lm)
        t1 = time.perf_counter()
        back, length = decompress(data, codec, lm)
        with torch.no_grad():
            codec.decode(back[None])
        t2 = time.perf_counter()
        assert torch.equal(back, codes) and length == wav.shape[-1]  # lossless: the codes come back
        size, t_enc, t_dec = size + len(data) / len(clips), t_enc + t1 - t0, t_dec + t2 - t1
    return size, t_enc, t_dec


def main(argv=None):
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    codec = load_codec(args.model)
    lm = load_entropy_lm(args.lm, codec.frame_rate)
    data = BuiltinDataset(args.clips, seed=0, duration=5.0, sample_rate=codec.sample_rate,
                          split="valid")
    clips = [data[i]["wav"] for i in range(args.clips)]
    seconds = sum(w.shape[-1] for w in clips) / codec.sample_rate
    print(f"{args.clips} held-out clips of 5 s, {args.threads} thread(s)\n")
    print("| bandwidth | file, no LM | file, `--lm` | smaller by | encode RTF, no LM / LM | "
          "decode RTF, no LM / LM |")
    print("|---|---|---|---|---|---|")
    for bw, K in bandwidths(codec).items():
        if K & (K - 1):  # powers of two only: 1, 2, 4, 8, ...
            continue
        (s0, e0, d0), (s1, e1, d1) = measure(codec, clips, K, None), measure(codec, clips, K, lm)
        print(f"| {bw:g} kbps ({K} codebook{'s' * (K > 1)}) | {s0:.0f} B | {s1:.0f} B | "
              f"{100 * (1 - s1 / s0):.0f} % | {seconds / e0:.0f} / {seconds / e1:.0f} | "
              f"{seconds / d0:.0f} / {seconds / d1:.0f} |", flush=True)


if __name__ == "__main__":
    main()
