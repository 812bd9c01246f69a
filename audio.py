"""
Audio I/O: read a file as a float tensor at the rate a model needs, with band-limited resampling.
The bottom of the stack: the conditioners (a melody file), the datasets and the scripts all read
audio through it.

    load_audio(path, sr, channels) -> float32 [channels, T] at sr (down-mixed or repeated,
                                      resampled)
    resample(wav, sr_in, sr_out)   -> [..., ceil(T sr_out / sr_in)], windowed-sinc interpolation
    write_audio(path, wav, sr)     16-bit WAV of wav [C, T], clipped to [-1, 1], never half-written

References:
1) J. O. Smith, Digital Audio Resampling Home Page, https://ccrma.stanford.edu/~jos/resample/
   (windowed-sinc interpolation, as in torchaudio's sinc_interp_hann and julius.resample)
2) AudioCraft's convert_audio (channels), audiocraft/data/audio_utils.py
"""

import math
import os

import numpy as np
import soundfile as sf
import torch
import torch.nn.functional as F

AUDIO_EXTS = (".wav", ".flac", ".ogg", ".mp3")  # what soundfile (libsndfile >= 1.1) reads


def resample(wav, sr_in, sr_out, zeros=16, rolloff=0.99):
    """Band-limited resampling [..., T] -> [..., ceil(T * sr_out / sr_in)] (torchaudio's length
    rule) [1]. With up/down = sr_out/sr_in in lowest terms, output sample q*up + j sits at input
    time q*down + j*down/up, so
        y[q*up + j] = sum_k x[q*down + k] h(j*down/up - k),
        h(t) = c sinc(c t) cos^2(pi t / (2 W))   for |t| < W, else 0:
    a sinc low-pass at c = rolloff * min(1, sr_out/sr_in) input Nyquists (< 1: the transition band
    ends before the new Nyquist), Hann-windowed over W = zeros / c input samples a side: one conv1d
    (stride `down`, a channel per phase j), zeros beyond the ends. As torchaudio/julius (6 zero
    crossings there; 16 cut sharper), not bit-exact."""
    if sr_in == sr_out:
        return wav
    g = math.gcd(int(sr_in), int(sr_out))
    up, down = int(sr_out) // g, int(sr_in) // g
    c = rolloff * min(1.0, up / down)
    W = math.ceil(zeros / c)
    if up * (down + 2 * W) > 2**24:  # the filter bank would exceed 16M taps (e.g. 44100 -> 44099)
        raise ValueError(f"cannot resample {sr_in} -> {sr_out} Hz (ratio {up}/{down} too fine): "
                         f"convert the file first")
    # [up, taps]
    t = torch.arange(up, dtype=torch.float64)[:, None] * down / up - torch.arange(-W, down + W + 1)
    h = c * torch.sinc(c * t) * torch.cos(math.pi * t / (2 * W)).pow(2) * (t.abs() < W)
    shape, T = wav.shape, wav.shape[-1]
    n_out = math.ceil(T * up / down)
    n_q = math.ceil(n_out / up)  # conv output frames, each giving `up` output samples
    right = max(0, (n_q - 1) * down + h.shape[1] - T - W)  # zeros after the end
    x = F.pad(wav.reshape(-1, 1, T), (W, right))  # [N, 1, W + T + right]
    # [N, up, n_q]; tap i of phase j weighs x[q*down + i - W]
    y = F.conv1d(x, h[:, None].to(wav), stride=down)
    # interleave the phases -> [..., n_out]
    return y.transpose(1, 2).reshape(*shape[:-1], -1)[..., :n_out]


def write_audio(path, wav, sample_rate):
    """Write wav [C, T] (float) as a 16-bit WAV file, clipped to [-1, 1], through a temporary file
    and a rename: an interrupted run never leaves a half-written file."""
    data = wav.detach().float().clamp(-1, 1).cpu().T.numpy()  # [T, C]
    sf.write(path + ".tmp", data, sample_rate, subtype="PCM_16", format="WAV")
    os.replace(path + ".tmp", path)


def load_audio(path, sample_rate, channels=1, start=0, frames=-1):
    """Read an audio file -> float32 tensor [channels, T] at sample_rate. Several channels are
    averaged to mono; a mono file is repeated to `channels`, a wider one keeps its first `channels`
    (AudioCraft's convert_audio [2]). start/frames select a segment in the file's own samples
    (soundfile seeks: a crop does not read the whole file)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"audio file not found: {path}")
    try:
        # [T, C]
        data, sr = sf.read(path, start=start, frames=frames, dtype="float32", always_2d=True)
    except Exception as e:  # libsndfile's errors: unknown format, truncated header, ...
        raise ValueError(f"cannot read audio file {path} ({e}): "
                         f"convert it to WAV or FLAC") from None
    wav = torch.from_numpy(np.ascontiguousarray(data.T))  # [C, T]
    if channels == 1:
        wav = wav.mean(0, keepdim=True)
    elif wav.shape[0] == 1:
        wav = wav.repeat(channels, 1)
    elif wav.shape[0] >= channels:
        wav = wav[:channels]
    else:
        raise ValueError(f"{path} has {wav.shape[0]} channels, cannot make {channels}: "
                         f"use channels=1 or 2")
    return resample(wav, sr, sample_rate)
