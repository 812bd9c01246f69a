"""
Tests for audio.py: band-limited resampling (a sine keeps its frequency, phase and amplitude; what the new rate
cannot hold is removed; torchaudio's length rule) and load_audio (down-mix, channel repeat, one-line errors);
loudness (BS.1770-4's K-weighting table at 48 kHz, the filters equal to their recursion, a 997 Hz sine's -3.01
LKFS, the gates, torchaudio's loudness when it is installed) and normalize_audio / write_audio (each strategy's
level, no sample at full scale by default). CPU, a few seconds.
Run: python -m pytest -q tests/test_audio.py
"""
import math

import pytest
import soundfile as sf
import torch

from audio import (k_weight, k_weighting, load_audio, loudness, normalize_audio, resample,
                   write_audio)


def tone(freq, seconds, sr, amp=0.5):
    return amp * torch.sin(2 * math.pi * freq * torch.arange(int(seconds * sr), dtype=torch.float64) / sr)


@pytest.mark.parametrize("sr_in,sr_out", [(44100, 16000), (16000, 32000), (48000, 16000)])
def test_resample_keeps_a_sine(sr_in, sr_out):
    x = tone(1000.0, 0.5, sr_in)
    y = resample(x, sr_in, sr_out)
    assert y.shape[-1] == math.ceil(len(x) * sr_out / sr_in)  # torchaudio's length rule
    mid = y[len(y) // 4:3 * len(y) // 4]  # away from the zero-padded ends
    ref = tone(1000.0, 0.5, sr_out)[len(y) // 4:3 * len(y) // 4]
    assert torch.allclose(mid, ref, atol=2e-3)  # same frequency, phase and amplitude
    assert resample(x, sr_in, sr_in) is x


def test_resample_removes_what_the_new_rate_cannot_hold():
    y = resample(tone(10000.0, 0.5, 32000), 32000, 16000)  # above the new Nyquist (8 kHz): must not alias to 6 kHz
    assert y[2000:-2000].abs().max() < 2e-3
    assert resample(torch.zeros(2, 3, 441), 44100, 16000).shape == (2, 3, 160)  # batch dims kept


def test_load_audio_downmixes_and_resamples(tmp_path):
    left, right = tone(440.0, 1.0, 22050), tone(440.0, 1.0, 22050, amp=0.1)
    path = str(tmp_path / "stereo.wav")
    sf.write(path, torch.stack([left, right], 1).numpy(), 22050, subtype="FLOAT")
    mono = load_audio(path, 16000)
    assert mono.shape == (1, 16000) and mono.dtype == torch.float32
    assert torch.allclose(mono[0, 4000:12000], tone(440.0, 1.0, 16000, amp=0.3)[4000:12000].float(), atol=2e-3)
    assert load_audio(path, 22050, channels=2).shape == (2, 22050)
    sf.write(str(tmp_path / "mono.wav"), left.numpy(), 22050)
    two = load_audio(str(tmp_path / "mono.wav"), 16000, channels=2)
    assert two.shape == (2, 16000) and torch.equal(two[0], two[1])
    (tmp_path / "bad.wav").write_bytes(b"RIFF garbage")
    with pytest.raises(ValueError, match="bad.wav") as error:
        load_audio(str(tmp_path / "bad.wav"), 16000)
    # neutral wording (sample.py --continuation reads files too: nothing to 'remove'); 'skipping' is FolderDataset's
    assert str(error.value).startswith("cannot read audio file ") and str(error.value).endswith(
        "): convert it to WAV or FLAC"), error.value
    with pytest.raises(FileNotFoundError, match="nope.wav"):
        load_audio(str(tmp_path / "nope.wav"), 16000)


@pytest.mark.parametrize("sr_in, sr_out", [(44100, 32000), (16000, 32000), (48000, 32000)])
def test_resample_keeps_a_tone(sr_in, sr_out):
    """A 440 Hz sine resampled equals the sine sampled at the new rate, away from the edges."""
    y = resample(tone(440.0, 0.5, sr_in), sr_in, sr_out)
    ref = tone(440.0, 0.5, sr_out)
    assert y.shape == ref.shape
    assert (y - ref)[200:-200].abs().max() < 2e-3


# ----------------------------------------------------------------------------- loudness


def db(x):
    return 20 * math.log10(float(x))


def test_k_weighting_at_48k_is_the_standards_table():
    """BS.1770-4 Table 1 (the shelf) and Table 2 (the high-pass), 48 kHz, as printed there."""
    shelf, high_pass = k_weighting(48000)
    table_shelf = ([1.53512485958697, -2.69169618940638, 1.19839281085285],
                   [1.0, -1.69065929318241, 0.73248077421585])
    table_high_pass = ([1.0, -2.0, 1.0], [1.0, -1.99004745483398, 0.99007225036621])
    for ours, table in ((shelf, table_shelf), (high_pass, table_high_pass)):
        for x, y in zip(ours[0] + ours[1], table[0] + table[1]):
            assert abs(x - y) < 1e-10, (ours, table)


def recursion(x, b, a):
    """The biquad run sample by sample from rest (what lfilter does):
    y[n] = b0 x[n] + b1 x[n-1] + b2 x[n-2] - a1 y[n-1] - a2 y[n-2]."""
    y, x1, x2, y1, y2 = [], 0.0, 0.0, 0.0, 0.0
    for v in x.tolist():
        out = b[0] * v + b[1] * x1 + b[2] * x2 - a[1] * y1 - a[2] * y2
        x1, x2, y1, y2 = v, x1, out, y1
        y.append(out)
    return torch.tensor(y, dtype=torch.float64)


@pytest.mark.parametrize("sr", [16000, 44100])
def test_k_weight_in_the_frequency_domain_equals_the_recursion(sr):
    """k_weight filters by the FFT; the same as running both biquads, to float precision."""
    x = torch.randn(3000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    shelf, high_pass = k_weighting(sr)
    ref = recursion(recursion(x, *shelf), *high_pass)
    assert (k_weight(x, sr) - ref).abs().max() < 1e-10


@pytest.mark.parametrize("sr", [16000, 32000, 44100, 48000])
def test_997_hz_sine_at_full_scale_reads_minus_3_01_lkfs(sr):
    """BS.1770-4 Sec. 2.1: a 0 dBFS 997 Hz sine in one channel reads -3.01 LKFS. 20 dB quieter
    reads 20 less; the same sine in two channels (weights 1 and 1) 3.01 more: powers add."""
    sine = tone(997.0, 2.0, sr, amp=1.0)[None]  # [1, T]
    assert abs(loudness(sine, sr).item() + 3.01) < 0.1
    assert abs(loudness(0.1 * sine, sr).item() + 23.01) < 0.1
    assert abs(loudness(sine.repeat(2, 1), sr).item() - 0.0) < 0.1
    batch = loudness(torch.stack([sine, 0.1 * sine]), sr)  # [2]: batch dims kept
    assert batch.shape == (2,) and abs(batch[1].item() + 23.01) < 0.1


def test_loudness_gates_silence_and_quiet_parts():
    """2 s of a 0 dBFS sine then 2 s of silence, at 16 kHz: 37 blocks of 400 ms hopping by 100 ms;
    17 lie in the sine, 3 straddle it by 3/4, 1/2 and 1/4, 17 are silent. The silent ones are under
    the absolute gate (-70 LKFS), so the mean power is the sine's times (17 + 3/4 + 1/2 + 1/4) / 20
    = 18.5 / 20: -0.34 dB from the sine alone (ungated, 18.5 / 37: -3.01 dB). With 2 s 30 dB quieter
    instead of silence, those blocks (-33 LKFS) pass the absolute gate but not the relative one (the
    37 blocks' mean, about -6 LKFS, - 10 LU): the same -0.34 dB. Silence reads -inf; a clip shorter
    than a block is one block."""
    sr = 16000
    loud = tone(997.0, 2.0, sr, amp=1.0)
    alone = loudness(loud[None], sr).item()
    expected = alone + 10 * math.log10(18.5 / 20)
    silence = torch.zeros(2 * sr, dtype=loud.dtype)
    assert abs(loudness(torch.cat([loud, silence])[None], sr).item() - expected) < 0.01
    quiet = 10 ** (-30 / 20) * loud
    assert abs(loudness(torch.cat([loud, quiet])[None], sr).item() - expected) < 0.01
    assert loudness(torch.zeros(1, sr), sr).item() == -math.inf
    short = tone(997.0, 0.2, sr, amp=1.0)[None]
    assert abs(loudness(short, sr).item() + 3.01) < 0.1


def test_loudness_near_torchaudios():
    """AudioCraft measures loudness with torchaudio.functional.loudness: the same blocks and gates,
    but its K-weighting is the audio-EQ-cookbook shelf (4 dB at 1500 Hz, Q 0.707) and high-pass
    (38 Hz, Q 0.5), not BS.1770's table: about 0.1 dB lower at 16 kHz (its 997 Hz sine: -3.08)."""
    functional = pytest.importorskip("torchaudio.functional")
    g = torch.Generator().manual_seed(0)
    noise = 0.1 * torch.randn(1, 48000, generator=g)
    for sr, wav in ((16000, noise), (16000, tone(997.0, 3.0, 16000)[None].float()),
                    (48000, noise)):
        assert abs(loudness(wav, sr).item() - functional.loudness(wav, sr).item()) < 0.2

# ----------------------------------------------------------------------------- normalisation


def overshoot():
    """A decoder-like output [1, T] that overshoots full scale: a 220 Hz tone with clicks at 1.6,
    peak 1.6, rms about 0.15 (crest factor about 20 dB)."""
    wav = tone(220.0, 2.0, 16000, amp=0.2).float()[None]
    wav[0, ::4000] = 1.6
    return wav


def test_each_strategy_reaches_its_level():
    """AudioCraft's headrooms: 'peak' puts the peak at -1 dBFS and keeps the shape (one gain);
    'rms' the rms at -18 dBFS, then clamps: here the clicks (20 dB over the rms) clip to 1;
    'loudness' reads -14 LKFS, then clamps: the clicks clip here too, and the clip reads a little
    less; 'clip' clamps at -1 dBFS and changes nothing below it."""
    wav, sr = overshoot(), 16000
    peak = normalize_audio(wav, sr, "peak")
    assert abs(db(peak.abs().max()) + 1) < 1e-4
    assert torch.allclose(peak, wav * peak.abs().max() / 1.6, atol=1e-6)
    rms = normalize_audio(wav, sr, "rms")
    rms_before_clamp = (wav * 10 ** (-18 / 20) / wav.pow(2).mean().sqrt()).abs().max()
    assert rms_before_clamp > 1 and rms.abs().max() == 1
    assert abs(db(rms.pow(2).mean().sqrt()) + 18) < 0.1  # the clamp cut a few samples only
    quiet = 0.3 * tone(440.0, 2.0, sr).float()[None]
    assert abs(db(normalize_audio(quiet, sr, "rms").pow(2).mean().sqrt()) + 18) < 1e-3
    assert abs(loudness(normalize_audio(quiet, sr, "loudness"), sr).item() + 14) < 0.1
    loud = normalize_audio(wav, sr, "loudness")
    assert loud.abs().max() == 1 and -14.5 < loudness(loud, sr).item() < -14
    clip = normalize_audio(wav, sr, "clip")
    level = 10 ** (-1 / 20)
    assert clip.abs().max() == pytest.approx(level) and torch.equal(clip[wav.abs() < level],
                                                                    wav[wav.abs() < level])


def test_normalize_leaves_silence_and_near_silence_and_refuses_unknown_strategies():
    """Silence stays silence (no division by zero); under the energy floor (rms 2e-3) 'loudness'
    leaves a clip as it is (AudioCraft's energy_floor); an unknown strategy is a one-line error."""
    silence = torch.zeros(1, 16000)
    for strategy in ("peak", "rms", "loudness", "clip"):
        assert torch.equal(normalize_audio(silence, 16000, strategy), silence)
    faint = 1e-3 * tone(440.0, 1.0, 16000).float()[None]
    assert torch.equal(normalize_audio(faint, 16000, "loudness"), faint)
    with pytest.raises(ValueError, match=r"strategy='loud' is not a normalisation: use one of"):
        normalize_audio(silence, 16000, "loud")


def test_write_audio_default_clips_nothing(tmp_path):
    """The default ('peak', AudioCraft's audio_write default): the file's peak is at -1 dBFS and no
    sample is at full scale, while the overshoot would have clipped 2 of every 4000 samples.
    'clip' writes the flat tops. A nan is refused, naming the file."""
    wav, path = overshoot(), str(tmp_path / "x.wav")
    write_audio(path, wav, 16000)
    data = torch.from_numpy(sf.read(path, dtype="int16")[0].astype("float32"))
    # libsndfile writes x as x * 32768, 1.0 (full scale) as 32767
    assert data.abs().max() < 32767 and abs(db(data.abs().max() / 32768) + 1) < 0.01
    write_audio(path, wav, 16000, "clip")
    data = torch.from_numpy(sf.read(path)[0])
    assert (data.abs() >= 0.89).sum() == (wav.abs() >= 0.89).sum()  # the clicks, flat at -1 dBFS
    wav[0, 5] = float("nan")
    with pytest.raises(ValueError, match="cannot write .*x.wav: the audio has nan or inf"):
        write_audio(path, wav, 16000)
