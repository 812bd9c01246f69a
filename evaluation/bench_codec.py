"""
Benchmark: encode + decode real-time factor (RTF = seconds of audio / seconds of compute; > 1 is
faster than real time) of our codec vs the official `encodec` package, on the same weights, in
the same process. It prints a table.

    python evaluation/bench_codec.py [--seconds 10] [--repeats 3] [--threads N]

Needs the test extras (tests/requirements.txt and `pip install --no-deps encodec==0.1.1`).
"""

import argparse
import importlib.machinery
import os
import sys
import time
import types

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from checkpoint import load_codec  # noqa: E402
from codec import PRESETS  # noqa: E402


def import_encodec():
    """The encodec package imports torchaudio for its file helpers only; torchaudio has no build for this torch on
    CPU, so a stand-in module is registered while encodec is imported (as tests/conftest.py does)."""
    import transformers  # noqa: F401  (imported first: it probes torchaudio's spec at import)
    stub = "torchaudio" not in sys.modules
    if stub:
        sys.modules["torchaudio"] = types.ModuleType("torchaudio")
        sys.modules["torchaudio"].__spec__ = importlib.machinery.ModuleSpec("torchaudio", None)
    try:
        import encodec
    except ImportError:
        raise ImportError("the official `encodec` package is not installed: "
                          "`pip install --no-deps encodec==0.1.1`") from None
    finally:
        if stub:
            del sys.modules["torchaudio"]
    return encodec


def fill_codebooks(latent, codebooks, quantize, decode, seed=0):
    """Fill each codebook with random vectors shaped like its input, stage by stage: drawn from a Gaussian with the
    per-dimension mean and std of the residual they quantize, so all codes are distinct and in use."""
    g = torch.Generator().manual_seed(seed)
    residual = latent.transpose(1, 2).reshape(-1, latent.shape[1])  # [N, D]
    for cb in codebooks:
        mean, std = residual.mean(0), residual.std(0)
        cb.embed.copy_(mean + std * torch.randn(cb.embed.shape, generator=g))
        cb.embed_avg.copy_(cb.embed)
        cb.inited.fill_(1)
        residual = residual - decode(cb, quantize(cb, residual))  # the next stage quantizes what is left


def official_model(encodec, preset):
    """The encodec package's model with the architecture of one of our presets, random weights."""
    if preset == "encodec_24khz":
        return encodec.EncodecModel.encodec_model_24khz(pretrained=False)
    c = PRESETS[preset]
    kw = dict(channels=c.channels, dimension=c.dimension, n_filters=c.n_filters, ratios=list(c.ratios),
              causal=c.causal, pad_mode=c.pad_mode, true_skip=c.true_skip, lstm=c.lstm)
    enc, dec = encodec.modules.SEANetEncoder(**kw), encodec.modules.SEANetDecoder(**kw)
    frame_rate = c.sample_rate // (enc.hop_length)
    bw = c.n_q * frame_rate * 10 / 1000  # encodec assumes 10 bits per code
    q = encodec.quantization.ResidualVectorQuantizer(dimension=c.dimension, n_q=c.n_q, bins=c.bins)
    return encodec.EncodecModel(enc, dec, q, [bw], c.sample_rate, c.channels)


def timeit(fn, repeats):
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0, help="audio length to code")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs (the best is kept)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch CPU threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    try:
        encodec = import_encodec()
    except ImportError as e:
        raise SystemExit(f"bench_codec.py: {e}") from None
    print(f"torch {torch.__version__}, {args.threads} CPU thread(s), {args.seconds:.0f} s of audio, "
          f"best of {args.repeats}")
    print(f"{'preset':14s} {'official RTF':>12s} {'ours RTF':>9s} {'speed-up':>9s}  same codes")
    for preset in ("encodec_24khz", "tiny"):
        torch.manual_seed(0)
        ref = official_model(encodec, preset).eval()
        sr = PRESETS[preset].sample_rate
        with torch.no_grad():  # the official codebooks are zeros until k-means: fill them
            latent = ref.encoder(0.1 * torch.randn(2, 1, sr))
            fill_codebooks(latent, [l._codebook for l in ref.quantizer.vq.layers],
                           lambda cb, x: cb.quantize(x), lambda cb, i: cb.dequantize(i))
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
