"""
Tests for sounds.py: python -m pytest -q tests/test_sounds.py (CPU, seconds). The clips built from
these recipes (determinism, captions, pitch of the labelled notes) are tested in tests/test_data.py.

(b) By hand: the FFT sizes are the smallest 2^a 3^b 5^c, a one-harmonic osc is the sine of its
    phase, Karplus-Strong and every instrument sound at the note's pitch, a reverb tail is 60 dB
    down after rt60.
(c) Invariants: unit-RMS noise within its band; each source lasts what its docstring says and
    repeats for the same random stream; ambiences peak at 1.
"""
import numpy as np
import pytest

import sounds

SR = 16000


def peak_frequency(y, sr, pad=16):
    """The strongest spectral peak (Hz), read from a Hann-windowed FFT zero-padded pad times."""
    spectrum = np.abs(np.fft.rfft(y * np.hanning(len(y)), pad * len(y)))
    return np.fft.rfftfreq(pad * len(y), 1 / sr)[spectrum.argmax()]


def cents(f, ref):
    return 1200 * np.log2(f / ref)


def test_fast_len_is_the_smallest_5_smooth_size():
    smooth = sorted({2**a * 3**b * 5**c for a in range(13) for b in range(8) for c in range(6)})
    for n in range(1, 3000):
        assert sounds.fast_len(n) == next(m for m in smooth if m >= n), n


def test_noise_has_unit_rms_within_its_band():
    x = sounds.noise(np.random.default_rng(0), SR, SR, 1000, 2000)
    power = np.abs(np.fft.rfft(x)) ** 2
    f = np.fft.rfftfreq(SR, 1 / SR)
    assert x.shape == (SR,) and abs(x.std() - 1) < 1e-6
    assert power[(f > 700) & (f < 2800)].sum() > 0.9 * power.sum()  # 4th-order roll-offs
    brown = sounds.noise(np.random.default_rng(0), SR, SR, tilt=1.0)
    low = np.abs(np.fft.rfft(brown))[(f > 20) & (f < 200)].mean()
    assert low > 10 * np.abs(np.fft.rfft(brown))[(f > 2000) & (f < 4000)].mean()  # f^-1


def test_osc_is_the_sine_of_its_phase_and_drops_harmonics_past_nyquist():
    """One harmonic: sin(phi), phi = 2 pi cumsum(f0) / sr, so sample i has phase 2 pi f (i + 1) /
    sr; the wavetable's linear interpolation errs by about (2 pi / 2048)^2 / 8 ~ 1e-6. At 5 kHz and
    16 kHz only harmonic 1 lies below Nyquist: the rest are dropped."""
    t = np.arange(SR) / SR
    y = sounds.osc(np.full(SR, 441.0), SR, [1])
    assert np.abs(y - np.sin(2 * np.pi * 441.0 * (t + 1 / SR))).max() < 1e-5
    high = sounds.osc(np.full(SR, 5000.0), SR, [1, 1, 1])
    assert np.abs(high - sounds.osc(np.full(SR, 5000.0), SR, [1])).max() == 0


@pytest.mark.parametrize('f', [110.0, 220.0, 440.0, 987.77])
def test_karplus_strong_is_in_tune(f):
    """The two-tap average sets the loop delay to P = sr / f samples, not the integer N: the
    fundamental lies within a cent (an integer delay would be up to ~50 cents flat)."""
    y = sounds.pluck(np.random.default_rng(0), f, SR, SR)
    assert abs(cents(peak_frequency(y, SR), f)) < 1


@pytest.mark.parametrize('instrument,midi', [('piano', 60), ('organ', 67), ('bass', 40),
                                             ('plucked string', 52)])
def test_each_instrument_sounds_at_the_note(instrument, midi):
    """f = 440 * 2^((midi - 69) / 12): the strongest partial of each note is its fundamental."""
    y = sounds.tone(instrument, np.random.default_rng(0), midi, SR, SR)
    assert abs(cents(peak_frequency(y, SR), 440 * 2 ** ((midi - 69) / 12))) < 5


def test_reverb_tail_is_60_db_down_after_rt60():
    """An impulse through a 0.5 s room: the tail's RMS around 0.5 s is 60 dB (+-3) below its first
    50 ms; wet = 0 leaves the signal as it is."""
    x = np.zeros(SR)
    x[0] = 1
    tail = sounds.reverb(x, np.random.default_rng(0), SR, 0.5, 1.0)[1:]
    rms = [np.sqrt((tail[a:a + 800] ** 2).mean()) for a in (0, 7600)]
    assert abs(20 * np.log10(rms[1] / rms[0]) + 60) < 3
    assert np.array_equal(sounds.reverb(x, np.random.default_rng(0), SR, 0.5, 0.0), x)


SOURCES = [(sounds.dog, 0.1, 0.3), (sounds.cat, 0.5, 1.0), (sounds.siren, 2.5, 4.5),
           (sounds.horn, 0.25, 0.8), (sounds.bell, 1.5, 3.0), (sounds.thunder, 2.5, 4.5),
           (sounds.rain, 3.0, 5.0), (sounds.engine, 2.5, 5.0), (sounds.clock, 3.0, 5.1),
           (sounds.bird, 0.2, 1.5), (sounds.knock, 0.3, 1.1), (sounds.footsteps, 1.8, 6.3)]


@pytest.mark.parametrize('sr', [16000, 32000])
@pytest.mark.parametrize('source,shortest,longest', SOURCES)
def test_sources_last_what_they_say_and_repeat(source, shortest, longest, sr):
    for seed in range(5):
        who = np.random.default_rng(100 + seed).random(3)
        y = source(np.random.default_rng(seed), sr, who)
        assert y.ndim == 1 and np.isfinite(y).all() and np.abs(y).max() > 0.01
        assert shortest <= len(y) / sr <= longest, (source.__name__, len(y) / sr)
        assert np.array_equal(y, source(np.random.default_rng(seed), sr, who))


@pytest.mark.parametrize('scene', ['park', 'street', 'room', 'beach'])
def test_ambiences_peak_at_one(scene):
    y = sounds.ambience(scene, np.random.default_rng(0), SR, SR)
    assert y.shape == (SR,) and np.isclose(np.abs(y).max(), 1.0)


def test_drum_track_fills_the_clip():
    y = sounds.drum_track(np.random.default_rng(0), 2 * SR, SR, 120)
    assert y.shape == (2 * SR,) and np.isfinite(y).all()
    beat = SR // 2                                     # 120 bpm: a kick on beats 1 and 3
    assert np.abs(y[:200]).max() > 0.1 and np.abs(y[2 * beat:2 * beat + 200]).max() > 0.1
