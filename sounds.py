"""
Sounds: the signals of the built-in data, each from a recipe a listener can name. synth.py draws
the clips and writes their captions; this file only makes waveforms (numpy, vectorised: a 5 s clip
takes a few milliseconds).

    noise, env, osc, voice, modes, reverb   the building blocks (coloured noise, envelopes,
                                            band-limited tones, formants, struck modes, rooms)
    dog, cat, ..., engine (rng, sr, who)    one event of each of the 12 sound sources
    ambience(scene, rng, n, sr)             the background of each of the 4 scenes
    tone(instrument, rng, midi, n, sr)      one note of piano, organ, plucked string or bass
    drum_track(rng, n, sr, bpm)             a 4/4 beat

References:
1) K. Karplus, A. Strong, Digital Synthesis of Plucked-String and Drum Timbres, Computer Music
   Journal 7(2), 1983 (pluck)
2) G. Fant, Acoustic Theory of Speech Production, 1960 (the source-filter model: a harmonic source
   shaped by formants; voice)
"""

import numpy as np

# ----------------------------------------------------------------------------- building blocks


def fast_len(n):
    """Smallest 2^a 3^b 5^c >= n: a size the FFT handles fast (a prime size can be 10x slower).
    For each odd part m = 3^b 5^c, the smallest m 2^k >= n has 2^k >= ceil(n / m), i.e.
    k = bit length of (n - 1) // m."""
    bits = n.bit_length()  # the answer is <= 2^bits: b <= 0.63 bits, c <= 0.43 bits
    odd = [3**b * 5**c for b in range(bits * 2 // 3 + 1) for c in range(bits // 2 + 1)]
    return min(m << ((n - 1) // m).bit_length() for m in odd)  # the smallest m 2^k >= n


def noise(rng, n, sr, lo=20.0, hi=None, tilt=0.0):
    """n samples of Gaussian noise with unit RMS, band-passed to [lo, hi] Hz (4th-order roll-offs)
    and sloped by f^-tilt (0 white, 0.5 pink, 1 brown). Drawn directly as a spectrum, so colouring
    costs one inverse FFT."""
    m = fast_len(n)
    f = np.fft.rfftfreq(m, 1 / sr)
    f[0] = 1e-3  # DC is removed by the high-pass anyway
    gain = f**-tilt / (1 + (lo / f) ** 4) / (1 + (f / hi) ** 4 if hi else 1)
    spec = rng.standard_normal(2 * len(f), dtype=np.float32).view(np.complex64)  # complex bins
    x = np.fft.irfft(spec * gain.astype(np.float32), m)[:n]  # float32: plenty, and 2-4x faster
    return x / (x.std() + 1e-12)


def env(n, sr, attack=0.002, decay=np.inf):
    """Amplitude envelope: exponential rise (time constant `attack` s) times exponential decay
    (`decay` s)."""
    t = np.arange(n) / sr
    return (1 - np.exp(-t / attack)) * np.exp(-t / decay)


def osc(f0, sr, amps):
    """Band-limited periodic tone: sum_k amps[k-1] sin(k phi), phi = 2 pi cumsum(f0) / sr, pitch
    f0 [T] in Hz (may glide). Read from a one-period wavetable (inverse FFT of the harmonics), with
    linear interpolation; harmonics above Nyquist at the highest f0 are dropped: nothing aliases."""
    amps = np.asarray(amps, dtype=float)[: int(0.5 * sr / np.max(f0))]
    N = 2048
    spec = np.zeros(N // 2 + 1, dtype=complex)
    spec[1:len(amps) + 1] = -0.5j * N * amps  # irfft of -i N/2 a_k at bin k: a_k sin(2 pi k n / N)
    table = np.pad(np.fft.irfft(spec, N), (0, 1), mode="wrap")  # [N + 1]: a period + wrap sample
    pos = (np.cumsum(f0) / sr % 1.0) * N  # phase in periods -> position in the table
    i = pos.astype(np.int64)
    return table[i] + (pos - i) * (table[i + 1] - table[i])


def voice(f0, sr, formants, tilt=1.0):
    """A voiced call by additive synthesis, the source-filter model [2]: harmonics of f0 [T]
    weighted by formants,
        y = sum_k k^-tilt A(k f0(t), t) sin(k phi(t)),
        A(f, t) = 0.05 + sum_i exp(-(f - F_i(t))^2 / (2 B_i^2))
    formants: (F_i, B_i) pairs, F_i a number or an array [T] (a moving mouth: a cat's 'mi-a-ow')."""
    k = np.arange(1, int(0.45 * sr / np.min(f0)) + 1)[:, None]  # [K, 1]: up to 0.9 Nyquist
    fk = (k * f0)[:, ::8]  # [K, T/8]: the weights change slowly: computed every 8th sample
    A = 0.05 + sum(np.exp(-0.5 * ((fk - (F[::8] if np.ndim(F) else F)) / B) ** 2)
                   for F, B in formants)
    A = np.repeat(A * k**-tilt * (fk < 0.45 * sr), 8, axis=1)[:, : len(f0)]  # [K, T]
    return (A * np.sin(k * (2 * np.pi * np.cumsum(f0) / sr))).sum(0)


def modes(sr, freqs, taus, amps, dur):
    """A struck object: damped sinusoids sum_i a_i exp(-t/tau_i) sin(2 pi f_i t) (modes above
    0.45 sr dropped)."""
    t = np.arange(int(dur * sr)) / sr
    keep = np.asarray(freqs) < 0.45 * sr
    f, tau, a = (np.asarray(v, dtype=float)[keep][:, None] for v in (freqs, taus, amps))
    return (a * np.exp(-t / tau) * np.sin(2 * np.pi * f * t)).sum(0)


def reverb(x, rng, sr, rt60, wet):
    """Reverberation: x plus `wet` times x convolved with an exponentially decaying noise tail
    (60 dB down after rt60 s) whose highs die twice as fast, as walls and air absorb them first.
    Unit-energy tail: wet is a level ratio."""
    n = int(rt60 * sr)
    t = np.arange(n) / sr
    ir = (noise(rng, n, sr, 20, 2000) * np.exp(-6.9 * t / rt60)
          + noise(rng, n, sr, 2000) * np.exp(-13.8 * t / rt60))
    h, m = ir / np.sqrt((ir**2).sum()), fast_len(len(x) + n - 1)  # x conv h by FFT, cropped
    return x + wet * np.fft.irfft(np.fft.rfft(x, m) * np.fft.rfft(h, m), m)[: len(x)]

# ----------------------------------------------------------------------------- sound sources
# One event per call: `who` (3 numbers in [0, 1), fixed per clip) is which dog, bell, door...;
# `rng` varies each event.


def dog(rng, sr, who):
    """A bark, 0.1-0.3 s: a harsh voice whose pitch jumps up and falls ("woof"), through three
    formants, plus breath noise. Dog size scales pitch and formants together, as a longer vocal
    tract would."""
    size = 0.6 + 0.8 * who[0]  # < 1: a big dog (lower pitch and formants), > 1: a small one
    n = int(sr * rng.uniform(0.12, 0.22) / np.sqrt(size))
    u = np.linspace(0, 1, n)
    f0 = 520 * size * (0.75 + 0.5 * np.exp(-(((u - 0.2) / 0.2) ** 2)))  # a fast rise, a fall
    f0 = f0 * (1 + 0.05 * noise(rng, n, sr, 20, 150))  # fast random pitch wobble: a growly voice
    y = voice(f0, sr, [(650 * size, 200), (1400 * size, 300), (2700 * size, 500)], tilt=0.7)
    y = y / np.abs(y).max() + 0.1 * noise(rng, n, sr, 300, 4000)  # breath noise
    return y * env(n, sr, 0.004) * (1 - u) ** 1.5


def cat(rng, sr, who):
    """A meow, 0.5-1 s: a clean voice whose pitch rises and falls while formants 1 and 2 glide
    (the vowel changes)."""
    n = int(sr * rng.uniform(0.5, 1.0))
    u = np.linspace(0, 1, n)
    vibrato = 1 + 0.01 * np.sin(2 * np.pi * 6 * np.arange(n) / sr)
    f0 = (450 + 250 * who[0]) * (0.8 + 0.45 * np.sin(np.pi * u**0.8)) * vibrato  # rises, falls
    F1, F2 = 450 + 550 * np.sin(np.pi * u), 1900 - 900 * u  # mouth opens ('mi-a'), rounds ('ow')
    y = voice(f0, sr, [(F1, 150), (F2, 250), (3000, 400)])
    return y * np.sin(np.pi * u) ** 0.6


def bird(rng, sr, who):
    """A trill: 3-7 syllables of 40-120 ms, near-pure whistles sweeping 20-50% down (some birds:
    up) from 3-6 kHz."""
    hi = min(3000 + 3000 * who[0], 0.42 * sr)
    f0, amp = [], []
    for _ in range(rng.integers(3, 8)):
        m, gap = int(sr * rng.uniform(0.04, 0.12)), int(sr * rng.uniform(0.03, 0.08))
        u = np.linspace(0, 1, m) ** 0.7
        sweep = hi * (1 - rng.uniform(0.2, 0.5) * (u if who[1] < 0.7 else 1 - u))
        f0 += [sweep, np.full(gap, sweep[-1])]
        amp += [np.sin(np.pi * np.linspace(0, 1, m)) ** 2, np.zeros(gap)]
    return osc(np.concatenate(f0), sr, [1, 0.2]) * np.concatenate(amp)  # with a weak octave


def siren(rng, sr, who):
    """2.5-4.5 s of an emergency siren in one of its three standard patterns (wail, yelp,
    two-tone), passing by."""
    n = int(sr * rng.uniform(2.5, 4.5))
    t = np.arange(n) / sr
    style = int(3 * who[0])
    if style == 0:  # wail: a slow sweep 600-1300 Hz
        f0 = 950 - 350 * np.cos(2 * np.pi * t / rng.uniform(1.5, 3.0))
    elif style == 1:  # yelp: fast rising sawtooth sweeps
        f0 = 700 + 600 * (t * rng.uniform(3, 4) % 1.0)
    else:  # hi-lo two-tone ("nee-naw")
        f0 = np.where(t * rng.uniform(1.5, 2.2) % 1.0 < 0.5, 460.0, 610.0)
    y = osc(f0, sr, [1, 0, 0.3, 0, 0.15, 0, 0.08])  # odd harmonics: a square-ish horn tone
    return y * env(n, sr, 0.1) * (0.6 + 0.4 * np.sin(np.pi * t / t[-1]))  # approaches, leaves


def horn(rng, sr, who):
    """A honk, 0.25-0.8 s: two buzzy tones a major third apart (most cars have a high and a low
    horn), clipped."""
    n = int(sr * rng.uniform(0.25, 0.8))
    f1 = 380 + 100 * who[0]
    amps = np.arange(1, 21.0) ** -0.8
    y = osc(np.full(n, f1), sr, amps) + osc(np.full(n, f1 * 1.26), sr, amps)  # a major third
    y = np.tanh(2.5 * y / np.abs(y).max())  # an overdriven diaphragm: brassy
    return y * env(n, sr, 0.01) * np.minimum(1, (n - np.arange(n)) / (0.03 * sr))


def bell(rng, sr, who):
    """A bell strike, 1.5-3 s: inharmonic partials struck together (the minor-third 'tierce' 1.19
    makes it a bell)."""
    f = 300 + 600 * who[0]
    ratios = np.array([0.5, 1, 1.19, 1.5, 2, 2.52, 2.67, 3.01, 4.1])  # hum, prime, tierce, quint..
    amps = np.array([0.4, 1, 0.6, 0.4, 0.7, 0.3, 0.25, 0.2, 0.1]) * rng.uniform(0.7, 1.3, 9)
    dur = rng.uniform(1.5, 3.0)
    return modes(sr, f * ratios, dur * 0.4 * ratios**-0.7, amps, dur)  # higher ones die sooner


def knock(rng, sr, who):
    """2-4 knocks 0.12-0.22 s apart, each the door's 3 lowest (wooden, fast-decaying) modes plus a
    knuckle click."""
    door = 110 + 70 * who[0]
    hit = modes(sr, [door, door * 2.3, door * 5.1], [0.03, 0.015, 0.008], [1, 0.7, 0.4], 0.12)
    hit[: int(0.002 * sr)] += 0.5 * noise(rng, int(0.002 * sr), sr, 1000)
    gap = int(sr * rng.uniform(0.12, 0.22))
    y = np.zeros(gap * 4 + len(hit))
    for j in range(rng.integers(2, 5)):
        s = j * gap + int(rng.uniform(-0.01, 0.01) * sr * (j > 0))
        y[s:s + len(hit)] += rng.uniform(0.7, 1.0) * hit
    return y


def footsteps(rng, sr, who):
    """4-9 steps 0.45-0.65 s apart, louder as the walker nears, each a heel (low thump) then
    50-80 ms on a toe scuff."""
    step, k = int(sr * (0.45 + 0.2 * who[0])), int(0.05 * sr)  # samples: between steps, a sound
    m = rng.integers(4, 10)  # steps
    y = np.zeros(step * m + sr // 4)
    for j in range(m):
        heel = (noise(rng, k, sr, 60, 1200) * env(k, sr, 0.001, 0.015)
                + modes(sr, [70], [0.03], [1.5], 0.05))
        toe = noise(rng, k, sr, 1000, 5000) * env(k, sr, 0.002, 0.02)
        s = j * step + int(rng.uniform(-0.02, 0.02) * sr) + k  # the heel, +-20 ms
        d = int(rng.uniform(0.05, 0.08) * sr)  # the toe, 50-80 ms later
        y[s:s + k] += heel * (0.4 + 0.6 * j / m)
        y[s + d:s + d + k] += 0.5 * toe * (0.4 + 0.6 * j / m)
    return y


def clock(rng, sr, who):
    """3-5 s of ticking at 1 or 2 Hz, alternating a tick and a lower tock: each a 3 ms ring of two
    metal modes. The first tick comes at a random point of the period, as a recording starts
    anywhere in the clock's cycle (always at 0, a model learns ticks at fixed times, not a rate)."""
    f = min(2500 + 1500 * who[0], 0.4 * sr)
    rate = 1 + int(who[1] < 0.5)  # ticks per second
    tick = modes(sr, [f, 1.4 * f], [0.003, 0.002], [1, 0.5], 0.03)
    tock = modes(sr, [0.8 * f, 1.1 * f], [0.003, 0.002], [1, 0.5], 0.03)
    period = sr // rate
    y = np.zeros(int(sr * rng.uniform(3, 5)) + len(tick))
    phase = int(rng.integers(period))  # samples before the first tick
    for j, s in enumerate(range(phase, len(y) - len(tick) + 1, period)):
        y[s:s + len(tick)] += tick if j % 2 == 0 else tock
    return y


def thunder(rng, sr, who):
    """A clap, 2.5-4.5 s: brown noise under 200-500 Hz swelling and fading at random (the rolling:
    sound arriving from different parts of the lightning channel), after a broadband crack if the
    strike is near."""
    n = int(sr * rng.uniform(2.5, 4.5))
    rumble = noise(rng, n, sr, 25, 200 + 300 * who[0], tilt=1.0)  # brown: energy at the bottom
    rolls = 1 + 0.6 * noise(rng, n, sr, 0.5, 6)  # slow random swells: the rolling
    y = rumble * rolls * env(n, sr, 0.15, rng.uniform(1.0, 2.0))
    if who[1] < 0.5:  # a near strike starts with a crack
        y = y + 0.3 * noise(rng, n, sr, 200, 6000) * env(n, sr, 0.002, 0.06)
    return y


def rain(rng, sr, who):
    """3-5 s of rain: a hiss, plus 50-300 drops a second, each a 1.5-6 kHz ping decaying in 3 ms,
    at random times."""
    n = int(sr * rng.uniform(3.0, 5.0))
    y = 0.3 * noise(rng, n, sr, 400, 7000, tilt=0.3)
    D, K = int(n / sr * (50 + 250 * who[0])), int(0.015 * sr)
    t = np.arange(K) / sr
    f = np.minimum(rng.uniform(1500, 6000, (D, 1)), 0.45 * sr)
    drops = rng.exponential(1, (D, 1)) * np.exp(-t / 0.003) * np.sin(2 * np.pi * f * t)  # [D, K]
    idx = (rng.integers(0, n - K, (D, 1)) + np.arange(K)).ravel()  # [D*K] where each drop lands
    return y + np.bincount(idx, weights=drops.ravel(), minlength=n)


def engine(rng, sr, who):
    """2.5-5 s of an idling engine: a pulse train at the firing rate (25-45 Hz; half the engines
    rev up once), its harmonics boosted around the exhaust's resonance, with uneven firing and
    mechanical noise."""
    n = int(sr * rng.uniform(2.5, 5.0))
    u = np.linspace(0, 1, n)
    rev = 1 + 1.2 * (who[1] < 0.5) * np.exp(-(((u - 0.5) / 0.2) ** 2))  # idle, maybe a rev
    f0 = (25 + 20 * who[0]) * rev
    f0 = f0 * (1 + 0.03 * noise(rng, n, sr, 1, 20))  # uneven firing
    k = np.arange(1, 120)
    amps = k**-1.2 * (1 + 3 * np.exp(-(((k * f0[0] - 400 - 300 * who[2]) / 250) ** 2)))  # exhaust
    wobble = 1 + 0.25 * np.sin(np.pi * np.cumsum(f0) / sr)  # unequal cylinders: at half rate
    y = osc(f0, sr, amps) * wobble
    y = y / np.abs(y).max() + 0.05 * noise(rng, n, sr, 1000, 4000)  # valve and belt noise
    return y * env(n, sr, 0.1) * np.minimum(1, (n - np.arange(n)) / (0.2 * sr))


def ambience(scene, rng, n, sr):
    """The scene's background, unit peak: wind in leaves (park), traffic (street), room tone +
    mains hum (room), waves (beach)."""
    t = np.arange(n) / sr
    if scene == "park":
        gusts = 1 + 0.5 * np.sin(2 * np.pi * t / rng.uniform(4, 8) + rng.uniform(0, 6.3))
        y = (noise(rng, n, sr, 40, 600, tilt=0.5) * gusts
             + 0.3 * noise(rng, n, sr, 2000, 6000) * gusts**2)
    elif scene == "street":
        y = noise(rng, n, sr, 30, 500, tilt=1.0)  # distant traffic rumble
        for c in rng.uniform(0, t[-1], rng.integers(1, 3)):  # cars passing by, 1 s wide
            y = y + 1.5 * noise(rng, n, sr, 100, 3000, tilt=0.5) * np.exp(-(((t - c) / 0.7) ** 2))
    elif scene == "room":
        mains = 50 if rng.random() < 0.5 else 60
        y = noise(rng, n, sr, 50, 4000, tilt=1.0) + 0.3 * osc(np.full(n, mains), sr, [1, 0.5, 0.3])
    else:  # beach: a wave every 4-7 s swells for 70% of its period and crashes
        phase = t / rng.uniform(4, 7) + rng.random()
        swell = np.sin(np.pi * np.clip((phase % 1.0) / 0.7, 0, 1)) ** 2
        y = (noise(rng, n, sr, 80, 4000, tilt=0.5) * (0.2 + swell)
             + 0.3 * noise(rng, n, sr, 40, 400, tilt=0.5))
    return y / np.abs(y).max()

# ----------------------------------------------------------------------------- instruments


def pluck(rng, f, n, sr, t60=1.5):
    """Karplus-Strong plucked string [1]: a delay line of one period P = sr/f, filled with the
    pluck, fed back through a two-tap average (a low-pass: highs die first, as on a real string)
    with loop gain g:
        y[i] = g (a y[i-N] + (1-a) y[i-N-1]),   N = floor(P), a = 1 - (P - N)
    The taps also set the loop delay to N + (1 - a) = P samples at low frequencies: exact pitch
    (integer N alone would be up to half a sample, ~50 cents, flat). Each y[i] reads only samples
    >= N back: a period per loop step."""
    P, N = sr / f, int(sr / f)
    a, g = 1 - (P - N), 0.001 ** (1 / (f * t60))  # g^(f t60) = -60 dB
    y, x = np.zeros(n + N + 1), np.arange(N) / N  # y[0] = 0: the sample before the first period
    p = rng.uniform(0.1, 0.3)  # plucking point: the string starts as a triangle peaking there
    triangle = np.minimum(x / p, (1 - x) / (1 - p))  # harmonic k ~ sin(pi k p) / k^2
    y[1:N + 1] = triangle + 0.1 * noise(rng, N, sr, 20)
    y[1:N + 1] -= y[1:N + 1].mean()
    for s in range(N + 1, n + N + 1, N):
        e = min(s + N, n + N + 1)
        y[s:e] = g * (a * y[s - N:e - N] + (1 - a) * y[s - N - 1:e - N - 1])
    return y[1:n + 1]


def tone(instrument, rng, midi, n, sr):
    """n samples of one note, before its release: the instrument's timbre and attack/decay."""
    f = 440.0 * 2 ** ((midi - 69) / 12)
    t, k = np.arange(n) / sr, np.arange(1, 17.0)
    if instrument == "piano":  # bright at the hammer strike, mellow later; two strings detuned
        w = np.exp(-t / 0.08)
        y = sum(w * osc(np.full(n, f * d), sr, 1 / k) + (1 - w) * osc(np.full(n, f * d), sr, k**-3)
                for d in (1, 1.0008))
        return y * env(n, sr, 0.002, 1.2 * (261.6 / f) ** 0.5)  # low strings ring longer
    if instrument == "organ":  # drawbars 8', 4', 2 2/3', 2', 1' = harmonics 1, 2, 3, 4, 8; tremolo
        y = osc(np.full(n, f), sr, [1, 0.7, 0.1, 0.45, 0, 0, 0, 0.25])
        return y * env(n, sr, 0.008) * (1 + 0.15 * np.sin(2 * np.pi * 5.5 * t))
    if instrument == "plucked string":
        return pluck(rng, f, n, sr)
    return osc(np.full(n, f), sr, [1, 0.5, 0.25, 0.12, 0.06]) * env(n, sr, 0.004, 0.5)  # bass


def drum_track(rng, n, sr, bpm):
    """A 4/4 beat on a 16th-note grid: kick on 1 and 3 (+ sometimes the 'and' of 2), snare on 2
    and 4, closed hi-hat on every 8th note. Kick: a sine gliding 160 -> 50 Hz; snare: a 185 Hz
    body plus noise; hat: high noise."""
    nk, m = int(0.35 * sr), int(0.2 * sr)
    kick = osc(50 + 110 * np.exp(-np.arange(nk) / (0.04 * sr)), sr, [1]) * env(nk, sr, 0.001, 0.15)
    snare = (0.5 * modes(sr, [185], [0.05], [1], 0.2)
             + 0.6 * noise(rng, m, sr, 1000, 8000) * env(m, sr, 0.001, 0.06))
    hat = 0.25 * noise(rng, m // 2, sr, min(6000, 0.4 * sr)) * env(m // 2, sr, 0.001, 0.02)
    pattern = {0: kick, 4: snare, 8: kick, 12: snare}
    if rng.random() < 0.5:
        pattern[6] = kick
    y, step = np.zeros(n + sr), 60 / bpm / 4 * sr  # a 16th note in samples; room for the last hit
    for j in range(int(n / step) + 1):
        s = int(j * step)
        for hit in [pattern.get(j % 16), hat if j % 2 == 0 else None]:
            if hit is not None:
                y[s:s + len(hit)] += hit
    return y[:n]
