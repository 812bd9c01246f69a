"""
Tests for audio.py: band-limited resampling (a sine keeps its frequency, phase and amplitude; what the new rate
cannot hold is removed; torchaudio's length rule) and load_audio (down-mix, channel repeat, one-line errors).
CPU, a second.
Run: python -m pytest -q tests/test_audio.py
"""
import math

import pytest
import soundfile as sf
import torch

from audio import load_audio, resample


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
