"""
EnCodec: a convolutional autoencoder (SEANet) with a residual vector quantizer in its bottleneck.

    wav [B, C, T] --encoder--> latent [B, D, T/hop] --RVQ--> codes [B, K, T/hop] (int64)
    codes --RVQ lookup--> latent --decoder--> wav [B, C, T/hop * hop]

The encoder is a stack of strided convolutions (one per ratio r: time / r, channels x 2), each
after a residual unit, then a 2-layer LSTM; the decoder mirrors it with transposed convolutions.
Ratios (8, 5, 4, 4) give a hop of 640 samples: 32 kHz audio becomes 50 frames per second. This file
computes exactly what the official code computes (padding rules included); checkpoint.load_codec
reads the official checkpoints into it.

References:
1) EnCodec, High Fidelity Neural Audio Compression: https://arxiv.org/abs/2210.13438
   official code: facebookresearch/encodec encodec/modules/{conv,seanet,lstm}.py, encodec/model.py
2) AudioCraft's EnCodec (MusicGen / AudioGen codecs): facebookresearch/audiocraft
   audiocraft/models/encodec.py, audiocraft/modules/seanet.py, config/model/encodec/*.yaml
3) SEANet (the conv architecture): https://arxiv.org/abs/2009.02095
4) Weight normalization: https://arxiv.org/abs/1602.07868
"""

import math
from dataclasses import dataclass, replace

import torch
import torch.nn as nn
import torch.nn.functional as F

from quantizer import ResidualVectorQuantizer

# -----------------------------------------------------------------------------
# config


@dataclass
class CodecConfig:
    sample_rate: int = 32000
    channels: int = 1
    ratios: tuple = (8, 5, 4, 4)  # decoder order; the encoder downsamples by reversed(ratios)
    n_filters: int = 64
    dimension: int = 128  # latent width D
    causal: bool = False
    pad_mode: str = "reflect"  # "reflect" or "constant" (zeros); read from the checkpoint on load
    true_skip: bool = True  # residual shortcut: identity (AudioCraft) or a 1x1 conv (encodec repo)
    lstm: int = 2  # LSTM layers at the bottleneck (0 = none)
    n_q: int = 4  # codebooks
    bins: int = 2048  # codes per codebook
    q_dropout: bool = False  # train with a random number of codebooks per batch
    decay: float = 0.99  # codebooks' EMA decay; this and the next two are the official values
    kmeans_iters: int = 50  # k-means iterations of the codebook init
    threshold_ema_dead_code: float = 2.0  # a code used less than this (EMA count) is dead, replaced


# The official codecs (the configs stored in their checkpoints) and the tiny codecs of this repo.
# Fixed in all of them: kernel 7, residual kernel 3, compress 2, ELU, weight norm.
PRESETS = {
    # original EnCodec, encodec repo: causal, streamable; 1.5..24 kbps = 2..32 codebooks at 75 Hz
    "encodec_24khz": CodecConfig(sample_rate=24000, ratios=(8, 5, 4, 2), n_filters=32, causal=True,
                                 true_skip=False, n_q=32, bins=1024),
    # MusicGen's codec (facebook/encodec_32khz): 4 codebooks x 2048 at 50 Hz = 2.2 kbps
    "encodec_32khz": CodecConfig(),
    # AudioGen's codec (inside facebook/audiogen-medium): same, at 16 kHz with a 320 hop
    "encodec_16khz": CodecConfig(sample_rate=16000, ratios=(8, 5, 4, 2), pad_mode="constant"),
    # this repo's default: 16 kHz mono at 50 Hz, small enough to train on a CPU in about an hour.
    # A CPU batch has ~200 latent frames (not EnCodec's ~5000): 256 codes keep each one in use,
    # and a code is dead only when used less than once in ~10 batches (EMA count < 0.1).
    "tiny": CodecConfig(sample_rate=16000, ratios=(8, 5, 4, 2), n_filters=16, dimension=64,
                        pad_mode="constant", n_q=8, bins=256, q_dropout=True,
                        threshold_ema_dead_code=0.1),
}
# the tiny codec with EnCodec's 32 filters. It keeps more of the top octaves but takes about twice
# as long to train, so the default stays "tiny" (RESULTS.md compares the two).
PRESETS["small"] = replace(PRESETS["tiny"], n_filters=32)

# -----------------------------------------------------------------------------
# padding rules of the official convolutions


def extra_padding(length, kernel_size, stride, padding_total):
    """Right padding that makes the last window full, so that no sample is dropped.

    The conv covers n = (L - k + p) / s + 1 windows; padding up to ceil(n) full ones, a stride-s
    conv gives ceil(L / s) frames."""
    n_frames = (length - kernel_size + padding_total) / stride + 1
    ideal_length = (math.ceil(n_frames) - 1) * stride + (kernel_size - padding_total)
    return ideal_length - length


def pad1d(x, left, right, mode):
    """F.pad that also works in reflect mode on inputs no longer than the pad.

    Reflect needs more samples than it pads, so, as the official code, zeros are appended first
    and removed from the result."""
    if mode == "reflect":
        extra = max(0, max(left, right) - x.shape[-1] + 1)
        x = F.pad(x, (0, extra))
        y = F.pad(x, (left, right), mode)
        return y[..., :y.shape[-1] - extra]
    return F.pad(x, (left, right), mode)


def weight_norm(conv):
    """w = g * v / ||v||, the norm over all dims but the first (torch weight_norm dim=0).

    It is computed by the kernel that torch.nn.utils.weight_norm calls, so our latents are
    bit-identical to the official models' (a hand-written v * g / v.norm() differs by ~1e-7, enough
    to flip a near-tie between two codes). At inference the result is cached, keyed on the
    parameters' version counters and storage, so a training step, load_state_dict or .to()
    recomputes it."""
    v, g = conv.weight_v, conv.weight_g
    if conv.training or torch.is_grad_enabled():
        return torch._weight_norm(v, g, 0)
    key = (v._version, g._version, v.data_ptr(), g.data_ptr())
    if conv._cache_key != key:
        conv._cache = torch._weight_norm(v, g, 0)
        conv._cache_key = key
    return conv._cache


# -----------------------------------------------------------------------------
# building blocks


class Conv1d(nn.Module):
    """A weight-normed Conv1d that pads its input as the official SConv1d does.
    Official keys `X.conv.conv.{weight_g,weight_v,bias}` are `X.{weight_g,weight_v,bias}` here."""

    def __init__(self, in_ch, out_ch, kernel_size, stride=1, causal=False, pad_mode="reflect"):
        super().__init__()
        conv = nn.Conv1d(in_ch, out_ch, kernel_size)  # borrow torch's default init
        self.weight_v = nn.Parameter(conv.weight.detach().clone())  # [out, in, k]
        norm = conv.weight.detach().norm(dim=(1, 2), keepdim=True)  # [out, 1, 1]
        self.weight_g = nn.Parameter(norm)
        self.bias = nn.Parameter(conv.bias.detach().clone())  # [out]
        self.kernel_size, self.stride = kernel_size, stride
        self.causal, self.pad_mode = causal, pad_mode
        self._cache_key = None  # see weight_norm()

    def forward(self, x):  # [B, in, L] -> [B, out, ceil(L / stride)]
        padding_total = self.kernel_size - self.stride
        extra = extra_padding(x.shape[-1], self.kernel_size, self.stride, padding_total)
        if self.causal:  # all the padding on the left: output t sees inputs <= t only
            x = pad1d(x, padding_total, extra, self.pad_mode)
        else:  # split evenly, the odd sample on the left
            right = padding_total // 2
            x = pad1d(x, padding_total - right, right + extra, self.pad_mode)
        w = weight_norm(self)
        return F.conv1d(x, w, self.bias, self.stride)


class ConvTranspose1d(nn.Module):
    """A weight-normed ConvTranspose1d trimmed as the official SConvTranspose1d.
    Official keys `X.convtr.convtr.*`. For a transposed conv torch's weight is [in, out, k]:
    weight_norm's dim 0 (weight_g [in, 1, 1]) is the *input*."""

    def __init__(self, in_ch, out_ch, kernel_size, stride, causal=False):
        super().__init__()
        conv = nn.ConvTranspose1d(in_ch, out_ch, kernel_size, stride)
        self.weight_v = nn.Parameter(conv.weight.detach().clone())  # [in, out, k]
        norm = conv.weight.detach().norm(dim=(1, 2), keepdim=True)  # [in, 1, 1]
        self.weight_g = nn.Parameter(norm)
        self.bias = nn.Parameter(conv.bias.detach().clone())  # [out]
        self.kernel_size, self.stride, self.causal = kernel_size, stride, causal
        self._cache_key = None  # see weight_norm()

    def forward(self, x):  # [B, in, L] -> [B, out, L * stride] (kernel = 2 * stride)
        w = weight_norm(self)
        y = F.conv_transpose1d(x, w, self.bias, self.stride)  # [B, out, (L-1)*s + k]
        # trim k - s samples: all on the right for the causal model (official trim_right_ratio 1.0),
        # else split evenly, the odd sample on the left
        padding_total = self.kernel_size - self.stride
        right = padding_total if self.causal else padding_total // 2
        return y[..., padding_total - right:y.shape[-1] - right]


class ResidualUnit(nn.Module):
    """SEANet residual unit: x + conv1x1(elu(conv3(elu(x)))), the hidden width halved (compress 2).
    Keys: `block.1`, `block.3` (the convs; 0 and 2 are the ELUs) and `shortcut` when it is a conv.
    All official models have one unit per stage, so its dilation is dilation_base**0 = 1."""

    def __init__(self, dim, config):
        super().__init__()
        kw = dict(causal=config.causal, pad_mode=config.pad_mode)
        self.block = nn.Sequential(nn.ELU(), Conv1d(dim, dim // 2, 3, **kw),
                                   nn.ELU(), Conv1d(dim // 2, dim, 1, **kw))
        self.shortcut = nn.Identity() if config.true_skip else Conv1d(dim, dim, 1, **kw)

    def forward(self, x):  # [B, dim, L] -> [B, dim, L]
        return self.shortcut(x) + self.block(x)


class LSTM(nn.Module):
    """Unidirectional LSTM over time with a skip connection, on [B, C, L] tensors."""

    def __init__(self, dim, num_layers):
        super().__init__()
        self.lstm = nn.LSTM(dim, dim, num_layers)

    def forward(self, x):  # [B, C, L]
        x = x.permute(2, 0, 1)  # [L, B, C], nn.LSTM's time-first layout
        y, _ = self.lstm(x)
        return (y + x).permute(1, 2, 0)  # [B, C, L]


def encoder(config):
    """SEANet encoder as nn.Sequential, so that layer indices match the official keys
    (audiocraft/modules/seanet.py, SEANetEncoder.model): 0 conv C->F | per ratio r: resunit, ELU,
    conv F*m -> 2F*m (kernel 2r, stride r) | LSTM | ELU | conv -> D."""
    kw = dict(causal=config.causal, pad_mode=config.pad_mode)
    F_, mult = config.n_filters, 1
    layers = [Conv1d(config.channels, F_, 7, **kw)]
    for r in reversed(config.ratios):
        layers += [ResidualUnit(F_ * mult, config), nn.ELU(),
                   Conv1d(F_ * mult, F_ * mult * 2, 2 * r, stride=r, **kw)]
        mult *= 2
    if config.lstm:
        layers.append(LSTM(F_ * mult, config.lstm))
    layers += [nn.ELU(), Conv1d(F_ * mult, config.dimension, 7, **kw)]
    return nn.Sequential(*layers)


def decoder(config):
    """SEANet decoder, the mirror of the encoder: conv D->16F | LSTM | per ratio: ELU,
    transposed conv (kernel 2r, stride r) halving the width, resunit | ELU | conv F->C."""
    kw = dict(causal=config.causal, pad_mode=config.pad_mode)
    F_, mult = config.n_filters, 2 ** len(config.ratios)
    layers = [Conv1d(config.dimension, F_ * mult, 7, **kw)]
    if config.lstm:
        layers.append(LSTM(F_ * mult, config.lstm))
    for r in config.ratios:
        up = ConvTranspose1d(F_ * mult, F_ * mult // 2, 2 * r, r, config.causal)
        layers += [nn.ELU(), up, ResidualUnit(F_ * mult // 2, config)]
        mult //= 2
    layers += [nn.ELU(), Conv1d(F_, config.channels, 7, **kw)]
    return nn.Sequential(*layers)


# -----------------------------------------------------------------------------
# the codec


class Codec(nn.Module):
    """EnCodec, wav <-> codes (see the file docstring).
    encoder.model / decoder.model reproduce the official keys."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.sample_rate, self.channels = config.sample_rate, config.channels
        self.hop_length = math.prod(config.ratios)
        self.frame_rate = math.ceil(config.sample_rate / self.hop_length)  # 50 Hz for 32000 / 640
        self.encoder = nn.Module()
        self.encoder.model = encoder(config)
        self.quantizer = ResidualVectorQuantizer(
            config.dimension, config.n_q, config.bins, config.q_dropout, config.decay,
            kmeans_iters=config.kmeans_iters,
            threshold_ema_dead_code=config.threshold_ema_dead_code)
        self.decoder = nn.Module()
        self.decoder.model = decoder(config)

    def _check_wav(self, wav):
        if wav.dim() != 3 or wav.shape[1] != self.channels:
            raise ValueError(f"wav must be [B, {self.channels}, T] ({self.channels} channel(s)), "
                             f"got shape {tuple(wav.shape)}; down-mix or reshape it first")

    def forward(self, wav, n_q=None):
        """Training/eval pass: wav [B, C, T] -> (reconstruction [B, C, T], commitment loss).
        The reconstruction is trimmed to the input length, as AudioCraft's EncodecModel.forward."""
        self._check_wav(wav)
        latent = self.encoder.model(wav)  # [B, D, T/hop]
        quantized, _, commit_loss = self.quantizer(latent, n_q)
        recon = self.decoder.model(quantized)  # [B, C, ceil(T/hop)*hop]
        return recon[..., :wav.shape[-1]], commit_loss

    @torch.no_grad()
    def encode(self, wav, n_q=None):
        """wav [B, C, T] float at sample_rate -> codes [B, K, ceil(T / hop)] int64
        (K = n_q, default all)."""
        self._check_wav(wav)
        return self.quantizer.encode(self.encoder.model(wav), n_q)

    @torch.no_grad()
    def decode(self, codes):
        """codes [B, K, frames] -> wav [B, C, frames * hop]; K may be fewer than n_q.
        Not trimmed: decode(encode(x)) is ceil(T / hop) * hop samples long, as the official
        decode(); cut it to T if you know T."""
        return self.decoder.model(self.quantizer.decode(codes))


if __name__ == "__main__":
    torch.manual_seed(0)
    for name, config in PRESETS.items():
        model = Codec(config)
        n_params = sum(p.numel() for p in model.parameters())
        print(f"{name:14s} {config.sample_rate} Hz, hop {model.hop_length}, {model.frame_rate} Hz, "
              f"{config.n_q} x {config.bins} codes, {n_params / 1e6:.2f}M params")
    model = Codec(PRESETS["tiny"])
    model.train()
    model(torch.randn(4, 1, 16000))  # the first training batch initialises the codebooks (k-means)
    model.eval()
    wav = torch.randn(1, 1, 16000)  # [B, C, T]: 1 s at 16 kHz
    codes = model.encode(wav)  # [B, K, frames]
    wav_out = model.decode(codes)  # [B, C, frames * hop]
    print("1 s of audio ->", tuple(codes.shape), "codes ->", tuple(wav_out.shape), "samples")
