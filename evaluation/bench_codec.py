"""
Benchmark: encode + decode real-time factor (RTF = seconds of audio / seconds of compute; > 1 is
faster than real time) of our codec vs the official `encodec` package, on the same weights, in
the same process. It prints a table.

    python evaluation/bench_codec.py [--seconds 10] [--repeats 3] [--threads N]

Needs the test extras (tests/requirements.txt and `pip install --no-deps encodec==0.1.1`).
"""

import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from checkpoint import load_codec  # noqa: E402
from codec import PRESETS  # noqa: E402
from evaluation.encodec_reference import filled_model, import_encodec  # noqa: E402


def timeit(fn, repeats):
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0, help="audio length to code")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs (the best is kept)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(),
                        help="torch CPU threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    try:
        encodec = import_encodec()
    except ImportError as e:
        raise SystemExit(f"bench_codec.py: {e}") from None
    print(f"torch {torch.__version__}, {args.threads} CPU thread(s), {args.seconds:.0f} s of "
          f"audio, best of {args.repeats}")
    print(f"{'preset':14s} {'official RTF':>12s} {'ours RTF':>9s} {'speed-up':>9s}  same codes")
    for preset in ("encodec_24khz", "tiny"):
        ref = filled_model(encodec, preset, clips=2)  # random weights, every code in use
        sr = PRESETS[preset].sample_rate
        path = f"/tmp/bench_{preset}.th"
        torch.save(ref.state_dict(), path)
        ours = load_codec(path, preset=preset)
        wav = 0.1 * torch.randn(1, 1, int(args.seconds * sr))
        n_q = PRESETS[preset].n_q
        ref.set_target_bandwidth(ref.target_bandwidths[-1])

        same = torch.equal(ref.encode(wav)[0][0], ours.encode(wav, n_q=n_q))
        t_ref = timeit(lambda: _ref_codec(ref, wav), args.repeats)
        t_ours = timeit(lambda: _our_codec(ours, wav, n_q), args.repeats)
        rtf_ref, rtf_ours = args.seconds / t_ref, args.seconds / t_ours
        print(f"{preset:14s} {rtf_ref:12.1f} {rtf_ours:9.1f} {rtf_ours / rtf_ref:8.2f}x  {same}")
        os.remove(path)


@torch.inference_mode()
def _ref_codec(ref, wav):
    return ref.decode(ref.encode(wav))


@torch.inference_mode()
def _our_codec(ours, wav, n_q):
    return ours.decode(ours.encode(wav, n_q=n_q))


if __name__ == "__main__":
    main()
