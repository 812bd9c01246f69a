"""
Audio I/O: read a file as a float tensor at the rate a model needs, with band-limited resampling;
measure loudness and normalise before writing. The bottom of the stack: the conditioners (a melody
file), the datasets and the scripts all read and write audio through it.

    load_audio(path, sr, channels) -> float32 [channels, T] at sr (down-mixed or repeated,
                                      resampled)
    resample(wav, sr_in, sr_out)   -> [..., ceil(T sr_out / sr_in)], windowed-sinc interpolation
    loudness(wav, sr)              -> integrated loudness of [..., C, T] in LKFS (ITU-R BS.1770-4)
    normalize_audio(wav, sr, strategy)  'peak', 'loudness', 'rms' or 'clip', as AudioCraft
    write_audio(path, wav, sr)     16-bit WAV of wav [C, T], peak-normalised to -1 dBFS by default
                                   (AudioCraft's audio_write), never half-written

References:
1) J. O. Smith, Digital Audio Resampling Home Page, https://ccrma.stanford.edu/~jos/resample/
   (windowed-sinc interpolation, as in torchaudio's sinc_interp_hann and julius.resample)
2) AudioCraft's convert_audio (channels), normalize_audio and normalize_loudness (strategies,
   headrooms), audiocraft/data/audio_utils.py; audio_write, audiocraft/data/audio.py
3) ITU-R BS.1770-4 (2015), Algorithms to measure audio programme loudness and true-peak audio
   level, https://www.itu.int/rec/R-REC-BS.1770 (K-weighting, gating); as torchaudio's
   functional.loudness, which AudioCraft's normalize_loudness calls
4) libebur128 (github.com/jiixyj/libebur128, ebur128.c): the analog prototypes fitted to
   BS.1770's 48 kHz K-weighting table, for any sample rate
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


STRATEGIES = ("peak", "loudness", "rms", "clip")  # normalize_audio's, as AudioCraft's


def k_weighting(sample_rate):
    """BS.1770's K-weighting [3] at any sample rate -> ((b, a), (b, a)): two biquads, a high shelf
    (+4 dB above ~2 kHz: the head's effect on what reaches the ear) then a high-pass (the "RLB"
    curve, -3 dB near 38 Hz), H(z) = (b0 + b1 z^-1 + b2 z^-2) / (1 + a1 z^-1 + a2 z^-2). The
    standard tables them at 48 kHz only; each here is the bilinear transform
    s = (1 - z^-1) / (K (1 + z^-1)), K = tan(pi f0 / sample_rate) (exact at f0) of an analog
    prototype in s / (2 pi f0):
        shelf:     H(s) = (Vh s^2 + Vb s / Q + 1) / (s^2 + s / Q + 1)   (Vh: the high gain)
        high-pass: H(s) = s^2 / (s^2 + s / Q + 1)      (numerator [1, -2, 1] as the table's)
    with f0, Q, Vh, Vb fitted to the 48 kHz table [4]: at 48 kHz the table, to 1e-12."""
    f0, gain_db, Q = 1681.974450955533, 3.999843853973347, 0.7071752369554196
    K = math.tan(math.pi * f0 / sample_rate)
    Vh = 10 ** (gain_db / 20)
    Vb = Vh ** 0.4996667741545416  # the mid gain that fits the table (about sqrt(Vh))
    a0 = 1 + K / Q + K * K  # both filters divide by their a0, so that a[0] = 1
    shelf = ([(Vh + Vb * K / Q + K * K) / a0, 2 * (K * K - Vh) / a0,
              (Vh - Vb * K / Q + K * K) / a0],
             [1.0, 2 * (K * K - 1) / a0, (1 - K / Q + K * K) / a0])
    f0, Q = 38.13547087602444, 0.5003270373238773
    K = math.tan(math.pi * f0 / sample_rate)
    a0 = 1 + K / Q + K * K
    high_pass = ([1.0, -2.0, 1.0], [1.0, 2 * (K * K - 1) / a0, (1 - K / Q + K * K) / a0])
    return shelf, high_pass


def k_weight(wav, sample_rate):
    """wav [..., T] -> K-weighted [..., T]: both biquads of k_weighting applied at once as their
    frequency response H(e^jw) = prod B(e^-jw) / A(e^-jw) on the FFT of the signal zero-padded by
    half a second (float64). This equals running the recursions from rest (lfilter) to float
    precision: the slowest pole, the high-pass's (radius ~exp(-2 pi 38 / sample_rate)), decays by
    ~exp(-pi 38) = 1e-52 in sample_rate / 2 samples, so nothing wraps around."""
    T = wav.shape[-1]
    n = 2 ** math.ceil(math.log2(T + sample_rate // 2))  # a fast FFT size, half a second of room
    w = 2 * math.pi * torch.arange(n // 2 + 1, dtype=torch.float64) / n
    z = torch.exp(-1j * w)[:, None] ** torch.arange(3)  # [n/2 + 1, 3]: 1, z^-1, z^-2
    H = torch.ones(n // 2 + 1, dtype=torch.complex128)
    for b, a in k_weighting(sample_rate):
        H = H * (z @ torch.tensor(b, dtype=z.dtype)) / (z @ torch.tensor(a, dtype=z.dtype))
    y = torch.fft.irfft(torch.fft.rfft(wav.double(), n) * H, n)[..., :T]
    return y.to(wav.dtype)


def loudness(wav, sample_rate):
    """Integrated loudness of wav [..., C, T] in LKFS (= LUFS) -> [...], ITU-R BS.1770-4 [3]:
    1. K-weight each channel (k_weight);
    2. the mean square z_c(j) of channel c in 400 ms blocks j hopping by 100 ms (75 % overlap); a
       block's loudness l_j = -0.691 + 10 log10(sum_c z_c(j)) (the channel weights G_c are 1 for
       left, right and centre; the 1.41 of the surround channels is not needed here);
    3. absolute gate: the blocks with l_j > -70 LKFS;
    4. relative gate: of those, the blocks above their own loudness (that of their mean z) - 10 LU;
    5. L = -0.691 + 10 log10(sum_c mean_j z_c(j)) over the blocks of step 4.
    -0.691 cancels the K-weighting's gain at 997 Hz: a full-scale 997 Hz sine (mean square 1/2)
    reads 10 log10(1/2) = -3.01 LKFS. A clip shorter than 400 ms is one block; silence (no block
    above -70) reads -inf."""
    block, hop = round(0.4 * sample_rate), round(0.1 * sample_rate)
    y = k_weight(wav, sample_rate).double()
    if y.shape[-1] < block:  # the whole clip as one block
        block = y.shape[-1]
    z = y.pow(2).unfold(-1, block, hop).mean(-1)  # [..., C, J]: mean square per block
    power = z.sum(-2)  # [..., J]: sum over channels, G_c = 1
    lkfs = lambda p: -0.691 + 10 * torch.log10(p)  # noqa: E731
    kept = lkfs(power) > -70  # [..., J]: the absolute gate
    # the mean power of the kept blocks (none kept: 0 / 0 = nan, read as -inf below)
    mean = lambda keep: (power * keep).sum(-1) / keep.sum(-1)  # noqa: E731
    kept = kept & (lkfs(power) > lkfs(mean(kept))[..., None] - 10)  # the relative gate
    return lkfs(mean(kept)).nan_to_num(nan=-math.inf).to(wav.dtype)


def normalize_audio(wav, sample_rate, strategy="peak", peak_clip_headroom_db=1.0,
                    rms_headroom_db=18.0, loudness_headroom_db=14.0, loudness_compressor=False,
                    energy_floor=2e-3):
    """wav [C, T] -> scaled as AudioCraft's normalize_audio [2] with audio_write's defaults:
    'peak'      the largest |sample| at -peak_clip_headroom_db dBFS (-1 dB: 0.891); never clips;
    'rms'       the rms of the mono down-mix at -rms_headroom_db dBFS (-18 dB: 0.126), then clamped
                to [-1, 1]: a clip whose peak is over 18 dB above its rms (a bark, a knock) clips;
    'loudness'  loudness() at -loudness_headroom_db LKFS (-14, streaming services' level), through
                tanh when loudness_compressor (a soft clip), then clamped to [-1, 1]; a clip whose
                rms is under energy_floor (-54 dBFS) is left as it is (no gain for near-silence);
    'clip'      clamped to +-10^(-peak_clip_headroom_db / 20): AudioCraft's 'clip' keeps the peak
                headroom too; the flat tops of the decoder's overshoot stay.
    Silence (peak 0) is returned as it is. AudioCraft's `normalize=False` (rescale only what would
    clip) is not kept: its audio_write always rescales."""
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy={strategy!r} is not a normalisation: use one of {STRATEGIES}")
    peak_level = 10 ** (-peak_clip_headroom_db / 20)
    if strategy == "clip":
        return wav.clamp(-peak_level, peak_level)
    if strategy == "peak":
        peak = wav.abs().max()
        return wav * (peak_level / peak) if peak > 0 else wav
    if strategy == "rms":
        rms = wav.mean(0).pow(2).mean().sqrt()  # of the mono down-mix
        gain = 10 ** (-rms_headroom_db / 20) / rms if rms > 0 else 1.0
        return (wav * gain).clamp(-1, 1)
    # loudness
    level = loudness(wav, sample_rate).item()
    if wav.pow(2).mean().sqrt() < energy_floor or not math.isfinite(level):
        return wav
    wav = wav * 10 ** ((-loudness_headroom_db - level) / 20)
    return (torch.tanh(wav) if loudness_compressor else wav).clamp(-1, 1)


def write_audio(path, wav, sample_rate, strategy="peak"):
    """Write wav [C, T] (float) as a 16-bit WAV file, normalised by normalize_audio's `strategy`
    with AudioCraft's headrooms ('peak', audio_write's default: the peak at -1 dBFS, no sample
    clipped), through a temporary file and a rename: an interrupted run never leaves a
    half-written file."""
    if not torch.isfinite(wav).all():
        raise ValueError(f"cannot write {path}: the audio has nan or inf samples")
    wav = normalize_audio(wav.detach().float(), sample_rate, strategy)
    data = wav.clamp(-1, 1).cpu().T.numpy()  # [T, C]
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
