"""
Synth: the built-in data's generator, captioned clips synthesised on the fly (nothing to download).

    make_clip(i, seed)  -> {wav [T] float32, tags "dog bark park", sentence "a dog is barking in the park", labels}
    python synth.py     prints a few clips' captions and labels

A small stand-in for AudioGen's sound data and MusicGen's music. Sound effects: 12 sources, each from a recipe a
listener can name (moving formants for a dog or a cat, inharmonic partials for a bell, shaped noise for rain and
thunder, a pulse train for an engine, damped modes for a door), placed once or more in one of 4 scenes (own ambience
and reverberation; plausible pairs only: no knocking on the beach). Music: a random-walk melody in a random key,
mode and tempo on piano, organ, plucked string (Karplus-Strong) or bass, with or without drums, or drums alone; the
notes are in the labels, so melody (chroma) conditioning can be checked. Captions: AudioGen's tags and template
sentences; labels allow per-class evaluation. Deviation: AudioCraft trains on real recordings; this data only makes
the recipes run without a download, and a model trained on it knows nothing else. data.py wraps it as BuiltinDataset.

References:
1) AudioGen: Textually Guided Audio Generation, https://arxiv.org/abs/2209.15352
   official code: facebookresearch/audiocraft audiocraft/data/sound_dataset.py (captions: the tags and sentences)
2) MusicGen, Simple and Controllable Music Generation, https://arxiv.org/abs/2306.05284
   official code: audiocraft/data/music_dataset.py (sidecar .json: description, bpm, key, moods, ...)
3) K. Karplus, A. Strong, Digital Synthesis of Plucked-String and Drum Timbres, Computer Music Journal 7(2), 1983
4) G. Fant, Acoustic Theory of Speech Production, 1960 (the source-filter model: a harmonic source shaped by formants)
"""

import time

import numpy as np

SAMPLE_RATE = 16000  # AudioGen's codec rate (facebook/audiogen-medium); MusicGen's is 32000

# ----------------------------------------------------------------------------- synthesis helpers
# numpy, vectorised: a 5 s clip takes a few milliseconds


def _fast_len(n):
    """Smallest 2^a 3^b 5^c >= n: a size the FFT handles fast (a prime size can be 10x slower). For each odd part
    m = 3^b 5^c, the smallest m 2^k >= n has 2^k >= ceil(n / m), i.e. k = bit length of (n - 1) // m."""
    bits = n.bit_length()  # the answer is <= 2^bits, so 3^b, 5^c <= 2^bits: b <= 0.63 bits, c <= 0.43 bits
    odd = [3**b * 5**c for b in range(bits * 2 // 3 + 1) for c in range(bits // 2 + 1)]
    return min(m << ((n - 1) // m).bit_length() for m in odd)  # the smallest m 2^k >= n


def _noise(rng, n, sr, lo=20.0, hi=None, tilt=0.0):
    """n samples of Gaussian noise with unit RMS, band-passed to [lo, hi] Hz (4th-order roll-offs) and sloped by
    f^-tilt (0 white, 0.5 pink, 1 brown). Drawn directly as a spectrum, so colouring costs one inverse FFT."""
    m = _fast_len(n)
    f = np.fft.rfftfreq(m, 1 / sr)
    f[0] = 1e-3  # DC is removed by the high-pass anyway
    gain = f**-tilt / (1 + (lo / f) ** 4) / (1 + (f / hi) ** 4 if hi else 1)
    spec = rng.standard_normal(2 * len(f), dtype=np.float32).view(np.complex64)  # complex Gaussian bins
    x = np.fft.irfft(spec * gain.astype(np.float32), m)[:n]  # float32 is plenty for noise, and 2-4x faster
    return x / (x.std() + 1e-12)


def _env(n, sr, attack=0.002, decay=np.inf):
    """Amplitude envelope: exponential rise (time constant `attack` s) times exponential decay (`decay` s)."""
    t = np.arange(n) / sr
    return (1 - np.exp(-t / attack)) * np.exp(-t / decay)


def _osc(f0, sr, amps):
    """Band-limited periodic tone: sum_k amps[k-1] sin(k phi), phi = 2 pi cumsum(f0) / sr, pitch f0 [T] in Hz (may
    glide). Read from a one-period wavetable (inverse FFT of the harmonics), with linear interpolation; harmonics
    above Nyquist at the highest f0 are dropped, so nothing aliases."""
    amps = np.asarray(amps, dtype=float)[: int(0.5 * sr / np.max(f0))]
    N = 2048
    spec = np.zeros(N // 2 + 1, dtype=complex)
    spec[1:len(amps) + 1] = -0.5j * N * amps  # irfft of -i N/2 a_k at bin k is a_k sin(2 pi k n / N)
    table = np.pad(np.fft.irfft(spec, N), (0, 1), mode="wrap")  # [N + 1]: one period + a wrap-around sample
    pos = (np.cumsum(f0) / sr % 1.0) * N  # phase in periods -> position in the table
    i = pos.astype(np.int64)
    return table[i] + (pos - i) * (table[i + 1] - table[i])


def _voice(f0, sr, formants, tilt=1.0):
    """A voiced call by additive synthesis, the source-filter model [4]: harmonics of f0 [T] weighted by formants,
        y = sum_k k^-tilt A(k f0(t), t) sin(k phi(t)),   A(f, t) = 0.05 + sum_i exp(-(f - F_i(t))^2 / (2 B_i^2))
    formants: (F_i, B_i) pairs, F_i a number or an array [T] (a moving mouth: a cat's 'mi-a-ow')."""
    k = np.arange(1, int(0.45 * sr / np.min(f0)) + 1)[:, None]  # [K, 1]: harmonics up to 0.9 Nyquist
    fk = (k * f0)[:, ::8]  # [K, T/8]: the weights change slowly, so they are computed every 8th sample
    A = 0.05 + sum(np.exp(-0.5 * ((fk - (F[::8] if np.ndim(F) else F)) / B) ** 2) for F, B in formants)
    A = np.repeat(A * k**-tilt * (fk < 0.45 * sr), 8, axis=1)[:, : len(f0)]  # [K, T]
    return (A * np.sin(k * (2 * np.pi * np.cumsum(f0) / sr))).sum(0)


def _modes(sr, freqs, taus, amps, dur):
    """A struck object: damped sinusoids sum_i a_i exp(-t/tau_i) sin(2 pi f_i t) (modes above 0.45 sr dropped)."""
    t = np.arange(int(dur * sr)) / sr
    keep = np.asarray(freqs) < 0.45 * sr
    f, tau, a = (np.asarray(v, dtype=float)[keep][:, None] for v in (freqs, taus, amps))
    return (a * np.exp(-t / tau) * np.sin(2 * np.pi * f * t)).sum(0)


def _reverb(x, rng, sr, rt60, wet):
    """Reverberation: x plus `wet` times x convolved with an exponentially decaying noise tail (60 dB down after rt60
    s) whose highs die twice as fast, as walls and air absorb them first. Unit-energy tail: wet is a level ratio."""
    n = int(rt60 * sr)
    t = np.arange(n) / sr
    ir = _noise(rng, n, sr, 20, 2000) * np.exp(-6.9 * t / rt60) + _noise(rng, n, sr, 2000) * np.exp(-13.8 * t / rt60)
    h, m = ir / np.sqrt((ir**2).sum()), _fast_len(len(x) + n - 1)  # x conv h by FFT, cropped to len(x)
    return x + wet * np.fft.irfft(np.fft.rfft(x, m) * np.fft.rfft(h, m), m)[: len(x)]

# ----------------------------------------------------------------------------- sound sources
# One event per call: `who` (3 numbers in [0, 1), fixed per clip) is which dog, bell, door...; `rng` varies each event.


def _dog(rng, sr, who):
    """A bark, 0.1-0.3 s: a harsh voice whose pitch jumps up and falls ("woof"), through three formants, plus
    breath noise. Dog size scales pitch and formants together, as a longer vocal tract would."""
    size = 0.6 + 0.8 * who[0]  # < 1: a big dog (lower pitch and formants), > 1: a small one
    n = int(sr * rng.uniform(0.12, 0.22) / np.sqrt(size))
    u = np.linspace(0, 1, n)
    f0 = 520 * size * (0.75 + 0.5 * np.exp(-(((u - 0.2) / 0.2) ** 2)))  # a fast rise then a fall: "woof"
    f0 = f0 * (1 + 0.05 * _noise(rng, n, sr, 20, 150))  # fast random pitch wobble: a rough, growly voice
    y = _voice(f0, sr, [(650 * size, 200), (1400 * size, 300), (2700 * size, 500)], tilt=0.7)
    y = y / np.abs(y).max() + 0.1 * _noise(rng, n, sr, 300, 4000)  # breath noise
    return y * _env(n, sr, 0.004) * (1 - u) ** 1.5


def _cat(rng, sr, who):
    """A meow, 0.5-1 s: a clean voice whose pitch rises and falls while formants 1 and 2 glide (the vowel changes)."""
    n = int(sr * rng.uniform(0.5, 1.0))
    u = np.linspace(0, 1, n)
    vibrato = 1 + 0.01 * np.sin(2 * np.pi * 6 * np.arange(n) / sr)
    f0 = (450 + 250 * who[0]) * (0.8 + 0.45 * np.sin(np.pi * u**0.8)) * vibrato  # rises, then falls
    F1, F2 = 450 + 550 * np.sin(np.pi * u), 1900 - 900 * u  # mouth opens ('mi-a') then rounds ('ow')
    y = _voice(f0, sr, [(F1, 150), (F2, 250), (3000, 400)])
    return y * np.sin(np.pi * u) ** 0.6


def _bird(rng, sr, who):
    """A trill: 3-7 syllables of 40-120 ms, near-pure whistles sweeping 20-50% down (some birds: up) from 3-6 kHz."""
    hi = min(3000 + 3000 * who[0], 0.42 * sr)
    f0, env = [], []
    for _ in range(rng.integers(3, 8)):
        m, gap = int(sr * rng.uniform(0.04, 0.12)), int(sr * rng.uniform(0.03, 0.08))
        u = np.linspace(0, 1, m) ** 0.7
        sweep = hi * (1 - rng.uniform(0.2, 0.5) * (u if who[1] < 0.7 else 1 - u))
        f0 += [sweep, np.full(gap, sweep[-1])]
        env += [np.sin(np.pi * np.linspace(0, 1, m)) ** 2, np.zeros(gap)]
    return _osc(np.concatenate(f0), sr, [1, 0.2]) * np.concatenate(env)  # with a weak octave


def _siren(rng, sr, who):
    """2.5-4.5 s of an emergency siren in one of its three standard patterns (wail, yelp, two-tone), passing by."""
    n = int(sr * rng.uniform(2.5, 4.5))
    t = np.arange(n) / sr
    style = int(3 * who[0])
    if style == 0:  # wail: a slow sweep 600-1300 Hz
        f0 = 950 - 350 * np.cos(2 * np.pi * t / rng.uniform(1.5, 3.0))
    elif style == 1:  # yelp: fast rising sawtooth sweeps
        f0 = 700 + 600 * (t * rng.uniform(3, 4) % 1.0)
    else:  # hi-lo two-tone ("nee-naw")
        f0 = np.where(t * rng.uniform(1.5, 2.2) % 1.0 < 0.5, 460.0, 610.0)
    y = _osc(f0, sr, [1, 0, 0.3, 0, 0.15, 0, 0.08])  # odd harmonics: a square-ish horn tone
    return y * _env(n, sr, 0.1) * (0.6 + 0.4 * np.sin(np.pi * t / t[-1]))  # approaches, then drives away


def _horn(rng, sr, who):
    """A honk, 0.25-0.8 s: two buzzy tones a major third apart (most cars have a high and a low horn), clipped."""
    n = int(sr * rng.uniform(0.25, 0.8))
    f1 = 380 + 100 * who[0]
    amps = np.arange(1, 21.0) ** -0.8
    y = _osc(np.full(n, f1), sr, amps) + _osc(np.full(n, f1 * 1.26), sr, amps)  # two horns a major third apart
    y = np.tanh(2.5 * y / np.abs(y).max())  # an overdriven diaphragm: brassy
    return y * _env(n, sr, 0.01) * np.minimum(1, (n - np.arange(n)) / (0.03 * sr))


def _bell(rng, sr, who):
    """A bell strike, 1.5-3 s: inharmonic partials struck together (the minor-third 'tierce' 1.19 makes it a bell)."""
    f = 300 + 600 * who[0]
    ratios = np.array([0.5, 1, 1.19, 1.5, 2, 2.52, 2.67, 3.01, 4.1])  # a church bell's hum, prime, tierce, quint...
    amps = np.array([0.4, 1, 0.6, 0.4, 0.7, 0.3, 0.25, 0.2, 0.1]) * rng.uniform(0.7, 1.3, 9)
    dur = rng.uniform(1.5, 3.0)
    return _modes(sr, f * ratios, dur * 0.4 * ratios**-0.7, amps, dur)  # higher partials die sooner


def _knock(rng, sr, who):
    """2-4 knocks 0.12-0.22 s apart, each the door's 3 lowest (wooden, fast-decaying) modes plus a knuckle click."""
    door = 110 + 70 * who[0]
    hit = _modes(sr, [door, door * 2.3, door * 5.1], [0.03, 0.015, 0.008], [1, 0.7, 0.4], 0.12)
    hit[: int(0.002 * sr)] += 0.5 * _noise(rng, int(0.002 * sr), sr, 1000)
    gap = int(sr * rng.uniform(0.12, 0.22))
    y = np.zeros(gap * 4 + len(hit))
    for j in range(rng.integers(2, 5)):
        s = j * gap + int(rng.uniform(-0.01, 0.01) * sr * (j > 0))
        y[s:s + len(hit)] += rng.uniform(0.7, 1.0) * hit
    return y


def _steps(rng, sr, who):
    """4-9 steps 0.45-0.65 s apart, louder as the walker nears, each a heel (low thump) then 50-80 ms on a toe scuff."""
    step, k = int(sr * (0.45 + 0.2 * who[0])), int(0.05 * sr)  # samples: between steps, of a sound
    m = rng.integers(4, 10)  # steps
    y = np.zeros(step * m + sr // 4)
    for j in range(m):
        heel = _noise(rng, k, sr, 60, 1200) * _env(k, sr, 0.001, 0.015) + _modes(sr, [70], [0.03], [1.5], 0.05)
        toe = _noise(rng, k, sr, 1000, 5000) * _env(k, sr, 0.002, 0.02)
        s = j * step + int(rng.uniform(-0.02, 0.02) * sr) + k  # the heel, +-20 ms
        d = int(rng.uniform(0.05, 0.08) * sr)  # the toe, 50-80 ms later
        y[s:s + k] += heel * (0.4 + 0.6 * j / m)
        y[s + d:s + d + k] += 0.5 * toe * (0.4 + 0.6 * j / m)
    return y


def _clock(rng, sr, who):
    """3-5 s of ticking at 1 or 2 Hz, alternating a tick and a lower tock: each a 3 ms ring of two metal modes."""
    f = min(2500 + 1500 * who[0], 0.4 * sr)
    rate = 1 + int(who[1] < 0.5)  # ticks per second
    tick = _modes(sr, [f, 1.4 * f], [0.003, 0.002], [1, 0.5], 0.03)
    tock = _modes(sr, [0.8 * f, 1.1 * f], [0.003, 0.002], [1, 0.5], 0.03)
    period = sr // rate
    y = np.zeros(int(sr * rng.uniform(3, 5)) + len(tick))
    for j in range(len(y) // period):
        y[j * period:j * period + len(tick)] += tick if j % 2 == 0 else tock
    return y


def _thunder(rng, sr, who):
    """A clap, 2.5-4.5 s: brown noise under 200-500 Hz swelling and fading at random (the rolling: sound arriving
    from different parts of the lightning channel), after a broadband crack if the strike is near."""
    n = int(sr * rng.uniform(2.5, 4.5))
    rumble = _noise(rng, n, sr, 25, 200 + 300 * who[0], tilt=1.0)  # brown noise: energy at the bottom
    rolls = 1 + 0.6 * _noise(rng, n, sr, 0.5, 6)  # slow random swells: the rolling
    y = rumble * rolls * _env(n, sr, 0.15, rng.uniform(1.0, 2.0))
    if who[1] < 0.5:  # a near strike starts with a crack
        y = y + 0.3 * _noise(rng, n, sr, 200, 6000) * _env(n, sr, 0.002, 0.06)
    return y


def _rain(rng, sr, who):
    """3-5 s of rain: a hiss, plus 50-300 drops a second, each a 1.5-6 kHz ping decaying in 3 ms, at random times."""
    n = int(sr * rng.uniform(3.0, 5.0))
    y = 0.3 * _noise(rng, n, sr, 400, 7000, tilt=0.3)
    D, K = int(n / sr * (50 + 250 * who[0])), int(0.015 * sr)
    t = np.arange(K) / sr
    f = np.minimum(rng.uniform(1500, 6000, (D, 1)), 0.45 * sr)
    drops = rng.exponential(1, (D, 1)) * np.exp(-t / 0.003) * np.sin(2 * np.pi * f * t)  # [D, K]
    idx = (rng.integers(0, n - K, (D, 1)) + np.arange(K)).ravel()  # [D*K] sample positions of every drop
    return y + np.bincount(idx, weights=drops.ravel(), minlength=n)


def _engine(rng, sr, who):
    """2.5-5 s of an idling engine: a pulse train at the firing rate (25-45 Hz; half the engines rev up once), its
    harmonics boosted around the exhaust's resonance, with uneven firing and mechanical noise."""
    n = int(sr * rng.uniform(2.5, 5.0))
    u = np.linspace(0, 1, n)
    f0 = (25 + 20 * who[0]) * (1 + 1.2 * (who[1] < 0.5) * np.exp(-(((u - 0.5) / 0.2) ** 2)))  # idle, maybe a rev
    f0 = f0 * (1 + 0.03 * _noise(rng, n, sr, 1, 20))  # uneven firing
    k = np.arange(1, 120)
    amps = k**-1.2 * (1 + 3 * np.exp(-(((k * f0[0] - 400 - 300 * who[2]) / 250) ** 2)))  # exhaust resonance
    y = _osc(f0, sr, amps) * (1 + 0.25 * np.sin(np.pi * np.cumsum(f0) / sr))  # cylinders unequal: half-rate wobble
    y = y / np.abs(y).max() + 0.05 * _noise(rng, n, sr, 1000, 4000)  # valve and belt noise
    return y * _env(n, sr, 0.1) * np.minimum(1, (n - np.arange(n)) / (0.2 * sr))


# name (also the tag) -> (synthesis, most events per clip, plausible scenes, sentence: progressive, present, noun)
_SFX = {
    "dog bark": (_dog, 4, "park street room beach", "a dog is barking", "a dog barks", "a dog barking"),
    "cat meow": (_cat, 3, "park street room", "a cat is meowing", "a cat meows", "a cat meowing"),
    "bird chirp": (_bird, 3, "park street beach", "a bird is chirping", "a bird chirps", "a bird chirping"),
    "siren": (_siren, 1, "street park", "a siren is wailing", "a siren wails", "a siren wailing"),
    "car horn": (_horn, 3, "street park", "a car horn is honking", "a car horn honks", "a car horn honking"),
    "bell": (_bell, 2, "street park room", "a bell is ringing", "a bell rings", "a bell ringing"),
    "knocking": (_knock, 2, "room", "someone is knocking on a door", "someone knocks on a door", "knocking on a door"),
    "footsteps": (_steps, 1, "park street room beach", "footsteps are approaching", "footsteps approach",
                  "footsteps approaching"),
    "clock tick": (_clock, 1, "room", "a clock is ticking", "a clock ticks", "a clock ticking"),
    "thunder": (_thunder, 2, "park street beach", "thunder is rumbling", "thunder rumbles", "thunder rumbling"),
    "rain": (_rain, 1, "park street beach", "rain is falling", "rain falls", "rain falling"),
    "engine": (_engine, 1, "street park", "an engine is running", "an engine runs", "an engine running"),
}
SOURCES = list(_SFX)
SCENES_OF = {source: v[2].split() for source, v in _SFX.items()}  # the scenes each source is placed in


def _ambience(scene, rng, n, sr):
    """The scene's background, unit peak: wind in leaves (park), traffic (street), room tone + mains hum, waves."""
    t = np.arange(n) / sr
    if scene == "park":
        gusts = 1 + 0.5 * np.sin(2 * np.pi * t / rng.uniform(4, 8) + rng.uniform(0, 6.3))
        y = _noise(rng, n, sr, 40, 600, tilt=0.5) * gusts + 0.3 * _noise(rng, n, sr, 2000, 6000) * gusts**2
    elif scene == "street":
        y = _noise(rng, n, sr, 30, 500, tilt=1.0)  # distant traffic rumble
        for c in rng.uniform(0, t[-1], rng.integers(1, 3)):  # cars passing by, 1 s wide
            y = y + 1.5 * _noise(rng, n, sr, 100, 3000, tilt=0.5) * np.exp(-(((t - c) / 0.7) ** 2))
    elif scene == "room":
        mains = 50 if rng.random() < 0.5 else 60
        y = _noise(rng, n, sr, 50, 4000, tilt=1.0) + 0.3 * _osc(np.full(n, mains), sr, [1, 0.5, 0.3])
    else:  # beach: a wave every 4-7 s swells for 70% of its period and crashes
        phase = t / rng.uniform(4, 7) + rng.random()
        swell = np.sin(np.pi * np.clip((phase % 1.0) / 0.7, 0, 1)) ** 2
        y = _noise(rng, n, sr, 80, 4000, tilt=0.5) * (0.2 + swell) + 0.3 * _noise(rng, n, sr, 40, 400, tilt=0.5)
    return y / np.abs(y).max()


# scene -> (reverb rt60 s, reverb level, where-phrases, ambience phrase)
_SCENES = {
    "park": (0.3, 0.05, ("in the park", "in a quiet park", "at a park"), "while wind rustles the leaves"),
    "street": (0.8, 0.15, ("on the street", "on a busy street", "in the street"), "with traffic in the background"),
    "room": (0.6, 0.35, ("in a room", "in a small room", "inside a room"), "with a faint hum in the background"),
    "beach": (0.2, 0.02, ("at the beach", "on the beach", "on a windy beach"), "while waves crash"),
}
SCENES = list(_SCENES)
_SFX_TEMPLATES = ("{prog} {where}", "{pres}{times} {where}", "the sound of {noun} {where}", "{where}, {pres}{times}",
                  "{noun} {where} {amb}")


def _sfx_clip(rng, n, sr):
    """A source placed 1 to `most` times over its scene: events, reverberation, then the ambience 20-30 dB below."""
    source = SOURCES[rng.integers(len(SOURCES))]
    synth, most, scenes = _SFX[source][:3]
    scene = scenes.split()[rng.integers(len(scenes.split()))]  # no clock ticking on the beach
    who = rng.random(3)  # this clip's dog, bell, door...
    fg, onsets = np.zeros(n), []  # fg: the foreground, the source's events only
    count = int(rng.integers(1, most + 1))
    for j in range(count):  # the clip is cut in `count` slots, one event starting in each
        ev = synth(rng, sr, who)[:n] * rng.uniform(0.6, 1.0)
        lo, hi = j * n // count, max(j * n // count + 1, min((j + 1) * n // count, n - len(ev)))
        s = int(rng.integers(lo, hi))
        fg[s:s + len(ev)] += ev[: n - s]
        onsets.append(round(s / sr, 3))
    rt60, wet = _SCENES[scene][:2]  # the room the events happen in; the ambience is already diffuse
    fg = _reverb(fg / (np.abs(fg).max() + 1e-9), rng, sr, rt60, wet)
    y = fg / (np.abs(fg).max() + 1e-9) + rng.uniform(0.03, 0.1) * _ambience(scene, rng, n, sr)  # 20-30 dB down
    labels = dict(kind="sfx", source=source, scene=scene, instrument=None, mood=None, tempo=None, count=count,
                  onsets=onsets)
    return y, labels

# ----------------------------------------------------------------------------- music


INSTRUMENTS = ["piano", "organ", "plucked string", "bass", "drums"]
NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
_SCALES = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10)}  # natural minor
_MOODS = {"major": ("happy", ("happy", "cheerful", "bright", "uplifting")),
          "minor": ("sad", ("sad", "melancholic", "dark", "gloomy"))}
_TEMPOS = {"slow": ((60, 85), ("slow", "relaxed", "calm")), "medium": ((90, 115), ("moderate", "steady", "mid-tempo")),
           "fast": ((120, 150), ("fast", "upbeat", "energetic"))}
_LOW_C = {"piano": 60, "organ": 60, "plucked string": 48, "bass": 36}  # MIDI C of each register (60 = C4)
_MUSIC_TEMPLATES = ("{a_tempo} {mood} {instr} melody{drums}", "{mood} {instr} music in {key}, {bpm} bpm{drums}",
                    "{a_mood} tune played on {the_instr}{drums}, {tempo} and in {key}",
                    "{a_instr} playing {a_tempo} {mood} melody in {key}{drums}")
_DRUM_TEMPLATES = ("{a_tempo} drum beat at {bpm} bpm", "drums playing {a_tempo} groove", "{tempo} drums, {bpm} bpm",
                   "{a_tempo} beat played on drums")


def _pluck(rng, f, n, sr, t60=1.5):
    """Karplus-Strong plucked string [3]: a delay line of one period P = sr/f, filled with the pluck, fed back through
    a two-tap average (a low-pass: highs die first, as on a real string) with loop gain g:
        y[i] = g (a y[i-N] + (1-a) y[i-N-1]),   N = floor(P), a = 1 - (P - N)
    The taps also set the loop delay to N + (1 - a) = P samples at low frequencies: exact pitch (integer N alone
    would be up to half a sample, ~50 cents, flat). Each y[i] reads only samples >= N back: a period per loop step."""
    P, N = sr / f, int(sr / f)
    a, g = 1 - (P - N), 0.001 ** (1 / (f * t60))  # g^(f t60) = -60 dB
    y, x = np.zeros(n + N + 1), np.arange(N) / N  # y[0] = 0 is the one sample before the first period
    p = rng.uniform(0.1, 0.3)  # plucking point along the string: the string starts as a triangle peaking there
    y[1:N + 1] = np.minimum(x / p, (1 - x) / (1 - p)) + 0.1 * _noise(rng, N, sr, 20)  # harmonic k ~ sin(pi k p) / k^2
    y[1:N + 1] -= y[1:N + 1].mean()
    for s in range(N + 1, n + N + 1, N):
        e = min(s + N, n + N + 1)
        y[s:e] = g * (a * y[s - N:e - N] + (1 - a) * y[s - N - 1:e - N - 1])
    return y[1:n + 1]


def _tone(instrument, rng, midi, n, sr):
    """n samples of one note, before its release: the instrument's timbre and attack/decay."""
    f = 440.0 * 2 ** ((midi - 69) / 12)
    t, k = np.arange(n) / sr, np.arange(1, 17.0)
    if instrument == "piano":  # bright at the hammer strike, mellow later; two strings slightly detuned
        w = np.exp(-t / 0.08)
        y = sum(w * _osc(np.full(n, f * d), sr, 1 / k) + (1 - w) * _osc(np.full(n, f * d), sr, k**-3)
                for d in (1, 1.0008))
        return y * _env(n, sr, 0.002, 1.2 * (261.6 / f) ** 0.5)  # low strings ring longer: 1.2 s at middle C
    if instrument == "organ":  # drawbars 8', 4', 2 2/3', 2', 1' = harmonics 1, 2, 3, 4, 8; a slow tremolo
        y = _osc(np.full(n, f), sr, [1, 0.7, 0.1, 0.45, 0, 0, 0, 0.25])
        return y * _env(n, sr, 0.008) * (1 + 0.15 * np.sin(2 * np.pi * 5.5 * t))
    if instrument == "plucked string":
        return _pluck(rng, f, n, sr)
    return _osc(np.full(n, f), sr, [1, 0.5, 0.25, 0.12, 0.06]) * _env(n, sr, 0.004, 0.5)  # bass


def _drum_track(rng, n, sr, bpm):
    """A 4/4 beat on a 16th-note grid: kick on 1 and 3 (+ sometimes the 'and' of 2), snare on 2 and 4, closed
    hi-hat on every 8th note. Kick: a sine gliding 160 -> 50 Hz; snare: a 185 Hz body plus noise; hat: high noise."""
    nk, m = int(0.35 * sr), int(0.2 * sr)
    kick = _osc(50 + 110 * np.exp(-np.arange(nk) / (0.04 * sr)), sr, [1]) * _env(nk, sr, 0.001, 0.15)
    snare = 0.5 * _modes(sr, [185], [0.05], [1], 0.2) + 0.6 * _noise(rng, m, sr, 1000, 8000) * _env(m, sr, 0.001, 0.06)
    hat = 0.25 * _noise(rng, m // 2, sr, min(6000, 0.4 * sr)) * _env(m // 2, sr, 0.001, 0.02)
    pattern = {0: kick, 4: snare, 8: kick, 12: snare}
    if rng.random() < 0.5:
        pattern[6] = kick
    y, step = np.zeros(n + sr), 60 / bpm / 4 * sr  # a 16th note in samples; y padded so the last hit fits
    for j in range(int(n / step) + 1):
        s = int(j * step)
        for hit in [pattern.get(j % 16), hat if j % 2 == 0 else None]:
            if hit is not None:
                y[s:s + len(hit)] += hit
    return y[:n]


def _music_clip(rng, n, sr):
    """An instrument playing a melody in a random key, mode and tempo, with or without a beat; or drums alone."""
    instrument = INSTRUMENTS[rng.integers(len(INSTRUMENTS))]
    mode = ("major", "minor")[rng.integers(2)]
    tempo = ("slow", "medium", "fast")[rng.integers(3)]
    bpm = int(rng.integers(*_TEMPOS[tempo][0]))
    tonic = int(rng.integers(12))  # the key's pitch class, 0 = C
    beat = 60 / bpm * sr  # samples per beat
    notes, y = [], np.zeros(n)  # notes: (onset, length) in samples, MIDI pitch
    drums = instrument == "drums" or rng.random() < 0.5
    if instrument != "drums":  # a random walk on the scale, from the tonic, in 8th, quarter and half notes
        s, d, scale = 0, 0, _SCALES[mode]  # s: onset (samples), d: scale degree (0 tonic, 7 the octave above)
        while s < n:
            m = min(int(beat * rng.choice([0.5, 1, 1, 2])), n - s)
            notes.append((s, m, _LOW_C[instrument] + tonic + 12 * (d // 7) + scale[d % 7]))
            s += m
            step = rng.choice([-2, -1, -1, 0, 1, 1, 2, 3])  # mostly steps, some leaps
            d = int(np.clip(d + step, -3, 9))
        release = int(0.04 * sr)  # 40 ms linear fade after each note, so notes do not click
        cache = {}  # each pitch synthesised once, at the longest length it is held
        for s, m, midi in notes:
            if midi not in cache:
                longest = max(m2 for _, m2, p in notes if p == midi)
                cache[midi] = _tone(instrument, rng, midi, longest + release, sr)
            fade = np.minimum(1, (m + release - np.arange(m + release)) / release)
            seg = cache[midi][: m + release] * fade
            y[s:s + len(seg)] += seg[: n - s]
        y = _reverb(y / (np.abs(y).max() + 1e-9), rng, sr, rng.uniform(0.6, 1.2), 0.1)
    if drums:
        d = _drum_track(rng, n, sr, bpm)
        level = 1 if instrument == "drums" else 0.5  # a beat under a melody is 6 dB down
        y = y / (np.abs(y).max() + 1e-9) + level * d / np.abs(d).max()
    mood = None if instrument == "drums" else _MOODS[mode][0]  # drums alone have no mood or key
    key = None if instrument == "drums" else f"{NOTE_NAMES[tonic]} {mode}"
    labels = dict(kind="music", source=None, scene=None, instrument=instrument, mood=mood,
                  tempo=tempo, bpm=bpm, key=key, drums=drums,
                  notes=[(round(s / sr, 4), round(m / sr, 4), int(p)) for s, m, p in notes])
    return y, labels

# ----------------------------------------------------------------------------- captions and clips


def _caption(rng, labels):
    """(tags, sentence): AudioGen's tag style ('dog bark park': the source and scene names, or mood instrument
    [drums] tempo for music) and a sentence from a random template with random synonyms, lower case."""
    def pick(options):
        return options[rng.integers(len(options))]

    def an(phrase):  # 'an upbeat', 'a sad'
        return ("an " if phrase[0] in "aeiou" else "a ") + phrase

    if labels["kind"] == "sfx":
        prog, pres, noun = _SFX[labels["source"]][3:]
        where = pick(_SCENES[labels["scene"]][2])
        amb = _SCENES[labels["scene"]][3]
        times = {1: "", 2: " twice"}.get(labels["count"])
        if times is None:  # three times or more
            times = pick((" repeatedly", " several times"))
        sentence = pick(_SFX_TEMPLATES).format(prog=prog, pres=pres, noun=noun, where=where, amb=amb, times=times)
        return f"{labels['source']} {labels['scene']}", sentence
    instr = labels["instrument"]
    tempo = pick(_TEMPOS[labels["tempo"]][1])
    if instr == "drums":
        s = pick(_DRUM_TEMPLATES).format(a_tempo=an(tempo), tempo=tempo, bpm=labels["bpm"])
        return f"drums {labels['tempo']}", s
    mood = pick(_MOODS[labels["key"].split()[1]][1])
    drums = ""
    if labels["drums"]:
        drums = pick((" with drums", " over a drum beat", " and drums"))
    s = pick(_MUSIC_TEMPLATES).format(a_tempo=an(tempo), tempo=tempo, mood=mood, a_mood=an(mood),
                                      instr=instr, a_instr=an(instr), the_instr="the " + instr,
                                      key=labels["key"], bpm=labels["bpm"], drums=drums)
    tags = f"{labels['mood']} {instr} drums" if labels["drums"] else f"{labels['mood']} {instr}"
    return f"{tags} {labels['tempo']}", s


def make_clip(index, seed=0, duration=5.0, sample_rate=SAMPLE_RATE, kind=None):
    """One captioned clip, a pure function of (seed, index): dict(wav=float32 [T] in [-1, 1], tags=str, sentence=str,
    labels=dict(kind, source, scene, instrument, mood, tempo, ...)). kind: 'sfx', 'music' or None (either, 50/50).
    sfx labels add count and onsets (s); music labels add bpm, key, drums and notes [(onset s, length s, MIDI)]."""
    if kind not in (None, "sfx", "music"):
        raise ValueError(f"kind={kind!r} is not a clip kind: use 'sfx', 'music' or None")
    if duration * sample_rate < 1:
        raise ValueError(f"duration={duration} s is less than one sample at {sample_rate} Hz: use a longer one")
    # one 32-bit word each: numpy's SeedSequence pads the words with zeros, so larger ints could
    # collide ([2**32, 0] seeds as [0, 1])
    if not (0 <= seed < 2**32 and 0 <= index < 2**32):
        raise ValueError(f"seed={seed}, index={index}: both must be in [0, 2**32)")
    rng = np.random.default_rng([seed, index])
    n = int(round(duration * sample_rate))
    coin = rng.random()  # drawn even when kind is given, so a forced kind does not shift the rest
    if kind is None:
        kind = "sfx" if coin < 0.5 else "music"
    if kind == "sfx":
        y, labels = _sfx_clip(rng, n, sample_rate)
    else:
        y, labels = _music_clip(rng, n, sample_rate)
    y = y * rng.uniform(0.5, 0.95) / (np.abs(y).max() + 1e-9)  # peak level varies from clip to clip
    tags, sentence = _caption(rng, labels)
    return dict(wav=y.astype(np.float32), tags=tags, sentence=sentence, labels=labels)


if __name__ == "__main__":  # python synth.py: a few clips' captions and labels, and how fast they are made
    t0 = time.time()
    clips = [make_clip(i) for i in range(6)]
    print(f"6 clips of 5 s at {SAMPLE_RATE} Hz in {time.time() - t0:.2f} s")
    for i, c in enumerate(clips):
        short = {k: v for k, v in c["labels"].items() if v is not None and k not in ("notes", "onsets")}
        print(f"{i}: {c['tags']!r} / {c['sentence']!r}\n   {short}")
