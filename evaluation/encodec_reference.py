"""
The official `encodec` package as a reference on random weights, for bench_codec.py and the tests
(tests/conftest.py): its import without torchaudio, its model of one of our codec presets, and that
model's codebooks filled so that every code is in use.

Needs `pip install --no-deps encodec==0.1.1` (with its dependencies it would pull torchaudio and
another torch).

References:
1) EnCodec, Defossez et al. 2022, arXiv:2210.13438. Official code: facebookresearch/encodec
   encodec/model.py (EncodecModel), encodec/quantization/core_vq.py (EuclideanCodebook)
"""

import importlib.machinery
import sys
import types

import torch

from codec import PRESETS

ENCODEC_MISSING = ("the official `encodec` package is not installed: `pip install --no-deps "
                   "encodec==0.1.1` (with its dependencies it would pull torchaudio and another "
                   "torch)")


def import_encodec():
    """The encodec package imports torchaudio for its file helpers only; torchaudio has no build
    for this torch on CPU, so a stand-in module is registered while encodec is imported.
    ImportError (ENCODEC_MISSING) when the package is absent."""
    import transformers  # noqa: F401  (imported first: it probes torchaudio's spec at import)
    stub = "torchaudio" not in sys.modules
    if stub:
        sys.modules["torchaudio"] = types.ModuleType("torchaudio")
        sys.modules["torchaudio"].__spec__ = importlib.machinery.ModuleSpec("torchaudio", None)
    try:
        import encodec
    except ImportError:
        raise ImportError(ENCODEC_MISSING) from None
    finally:
        if stub:
            del sys.modules["torchaudio"]
    return encodec


def fill_codebooks(latent, codebooks, quantize, decode, seed=0):
    """Fill each codebook with random vectors shaped like its input, stage by stage.

    The reference models' codebooks are all zeros until k-means runs: every code would be 0 and a
    comparison would prove nothing. Codes are drawn from a Gaussian with the per-dimension mean and
    std of the residual they quantize: all distinct (no near ties that float noise could flip) and
    all in use. latent [B, D, T]; quantize(cb, x [N, D]) -> codes [N], decode(cb, codes) -> [N, D].
    """
    g = torch.Generator().manual_seed(seed)
    residual = latent.transpose(1, 2).reshape(-1, latent.shape[1])  # [N, D]
    for cb in codebooks:
        mean, std = residual.mean(0), residual.std(0)
        cb.embed.copy_(mean + std * torch.randn(cb.embed.shape, generator=g))
        cb.embed_avg.copy_(cb.embed)
        cb.inited.fill_(1)
        residual = residual - decode(cb, quantize(cb, residual))  # the next stage: what is left


def official_model(encodec, preset):
    """The encodec package's model with the architecture of one of our presets, random weights."""
    if preset == "encodec_24khz":
        return encodec.EncodecModel.encodec_model_24khz(pretrained=False)
    c = PRESETS[preset]
    kw = dict(channels=c.channels, dimension=c.dimension, n_filters=c.n_filters,
              ratios=list(c.ratios), causal=c.causal, pad_mode=c.pad_mode, true_skip=c.true_skip,
              lstm=c.lstm)
    enc, dec = encodec.modules.SEANetEncoder(**kw), encodec.modules.SEANetDecoder(**kw)
    frame_rate = c.sample_rate // (enc.hop_length)
    bw = c.n_q * frame_rate * 10 / 1000  # encodec assumes 10 bits per code
    q = encodec.quantization.ResidualVectorQuantizer(dimension=c.dimension, n_q=c.n_q, bins=c.bins)
    return encodec.EncodecModel(enc, dec, q, [bw], c.sample_rate, c.channels)


def filled_model(encodec, preset, clips):
    """official_model(encodec, preset) after torch.manual_seed(0), in eval mode, its codebooks
    filled (fill_codebooks) from the latents of `clips` clips of 1 s of noise."""
    torch.manual_seed(0)
    ref = official_model(encodec, preset).eval()
    with torch.no_grad():
        latent = ref.encoder(0.1 * torch.randn(clips, 1, PRESETS[preset].sample_rate))  # [B, D, T]
        fill_codebooks(latent, [layer._codebook for layer in ref.quantizer.vq.layers],
                       lambda cb, x: cb.quantize(x), lambda cb, i: cb.dequantize(i))
    return ref
