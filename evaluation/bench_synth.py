"""
Benchmark (not a test): how fast synth.make_clip generates the built-in data, which the codec's
trainer draws on the fly (a step of 8 clips of 0.5 s) and the LM's trainer encodes once (--n-clips
clips of --duration s). Prints the CPU ms per clip and how many times faster than real time, per
kind and duration, on one thread. Budget: 50 ms per 5 s clip, so that a training step never waits
on its data.

    python evaluation/bench_synth.py               # 5 s and 0.5 s clips, sound effects and music
    python evaluation/bench_synth.py --n 50
"""
import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from synth import make_clip  # noqa: E402

parser = argparse.ArgumentParser(description="ms per clip of synth.make_clip")
parser.add_argument("--n", type=int, default=20, help="clips per setting")
parser.add_argument("--threads", type=int, default=1, help="torch threads (numpy's are the OS's)")

if __name__ == "__main__":
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"synth.make_clip, {args.n} clips per row, CPU time per clip (process time)")
    for duration in (5.0, 0.5):
        for kind in ("sfx", "music", None):
            make_clip(0, duration=duration, kind=kind)  # warm-up: FFT plans, first allocations
            t0 = time.process_time()
            for i in range(args.n):
                make_clip(i, duration=duration, kind=kind)
            ms = 1000 * (time.process_time() - t0) / args.n
            print(f"  {duration:>4} s {kind or 'mixed':>6}: {ms:6.1f} ms per clip, "
                  f"{1000 * duration / ms:6.0f}x real time")
