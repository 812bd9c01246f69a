"""
Melody following of a melody model (train_lm.py --melody): does a generated clip keep the reference
melody's pitch classes, for built-in tunes and for tunes and timbres the model never heard, and does
the prompted instrument stay recognisable? Run through eval_audio.py, which holds the model loading,
the classifier and the flags:

    python evaluation/eval_audio.py --melody        # the default model (checkpoints/)
    python evaluation/eval_audio.py --melody --model runs/lm_melody/export [--n-per-prompt 8]

1. Built-in tunes (melody_agreement): for 8 x n-per-prompt held-out music clips (make_clip(i,
   EVAL_SEED + seed, kind='music')), each clip's tags are the prompt and its own waveform the
   melody, as sample.py --melody conditions. The share of chroma frames of the generated clip equal
   to the reference's, with three yardsticks: the same prompts with the null melody (what the text
   alone gives), the reference through the codec (the ceiling), two unrelated reference clips
   (chance). Also the held-out cross-entropy of those clips' codes with their own melody and with
   the null one (melody_gain): how much the LM reads from the melody, without sampling.
2. New tunes (new_tunes): reference_tune plays a random scale walk with a timbre the synthesiser
   never makes (a square lead, a whistle, a sung /a/, sawtooth strings), with and without rests, at
   -3 and at -40 dBFS. Each is the melody of four prompts, "piano", "organ", "plucked string" and
   "bass". Agreement is counted over the frames where the reference sounds (voiced_frames: within 30
   dB of its loudest frame), against the same prompts and seeds with the null melody.
3. The instrument (also new_tunes): eval_audio's classifier names the instrument of each of those
   clips; the share recognised as the prompted one, with the melody and from the text alone.

Deviation: MusicGen reports the cosine similarity of the reference's and the generated clip's
chromagrams; this counts equal dominant pitch classes (MelodyConditioner.chroma), what the LM is
conditioned on.

References:
1) MusicGen, Copet et al. 2023, arXiv:2306.05284 Sec. 2.3 (chroma conditioning) and Sec. 4.1 (chroma
   cosine similarity). Official code: audiocraft/modules/conditioners.py (ChromaStemConditioner),
   audiocraft/metrics/chroma_cosinesim.py
2) Vowel formants: Peterson & Barney 1952, J. Acoust. Soc. Am. 24(2) (/a/: about 700, 1220, 2600 Hz)
"""

import json
import os
import time

import numpy as np
import torch

import audio
import synth
from evaluation.metrics import EVAL_SEED, HEADS, SR, classify, model_classifier, sampling

TIMBRES = ("square lead", "whistle", "sung vowel", "sawtooth strings")  # none is built in
# MIDI of the lowest tonic
REGISTER = {"square lead": 60, "whistle": 74, "sung vowel": 53, "sawtooth strings": 48}
# /a/: (centre, bandwidth) in Hz of its first three formants
FORMANTS = ((700, 130), (1220, 70), (2600, 160))
PROMPTS = ("piano", "organ", "plucked string", "bass")  # the melodic ones of synth.INSTRUMENTS
LEVELS_DB = (-3.0, -40.0)  # peak level of the references, dBFS


def _note(timbre, midi, length, sr, rng):
    """One note of a timbre, length s -> samples [length * sr], its attack, a 30 ms release."""
    t = np.arange(int(length * sr)) / sr
    f0 = 440.0 * 2 ** ((midi - 69) / 12)
    vibrato = 1.0
    if timbre in ("sung vowel", "whistle"):  # +-10 cents
        vibrato = 1 + 0.006 * np.sin(2 * np.pi * 5.5 * t)
    phase = 2 * np.pi * np.cumsum(f0 * vibrato * np.ones_like(t)) / sr  # [L]
    if timbre == "whistle":  # a sine and a little breath
        x = np.sin(phase) + 0.05 * rng.standard_normal(len(t))
    else:
        k = np.arange(1, int(sr / 2 / f0))[:, None]  # the harmonics below Nyquist: [H, 1]
        if timbre == "square lead":  # odd harmonics, 1/k
            amp = (k % 2 == 1) / k
        elif timbre == "sawtooth strings":  # every harmonic, 1/k
            amp = 1.0 / k
        else:  # sung: a glottal source falling 12 dB an octave, through the vowel's formants
            amp = sum(1 / (1 + ((k * f0 - c) / b) ** 2) for c, b in FORMANTS) / k**2
        x = (amp * np.sin(k * phase)).sum(0)
    attack = 0.12 if timbre == "sawtooth strings" else 0.02  # a slow bow, else a quick onset
    return x * np.minimum(1, t / attack) * np.clip((length - t) / 0.03, 0, 1)


def reference_tune(i, seed, duration, sr, timbre, rests=False, peak_db=-3.0):
    """A reference melody no built-in clip holds: a random walk on a major or minor scale in a
    random key (notes of 0.2-0.6 s), played by `timbre`; with rests, it starts silent and a quarter
    of its notes are followed by 0.4-0.8 s of silence. Normalised to a peak of peak_db dBFS -> wav
    float32 [duration * sr]. A function of (i, seed, timbre, rests): the level only scales it."""
    rng = np.random.default_rng([seed, i, TIMBRES.index(timbre), int(rests), 0x74756E65])  # "tune"
    scale = ((0, 2, 4, 5, 7, 9, 11), (0, 2, 3, 5, 7, 8, 10))[rng.integers(2)]
    tonic, degree = REGISTER[timbre] + int(rng.integers(12)), 0
    y, t = np.zeros(int(duration * sr)), float(rng.uniform(0.3, 0.6)) if rests else 0.0
    while t < duration:
        length = float(rng.choice([0.2, 0.3, 0.4, 0.6]))
        note = _note(timbre, tonic + 12 * (degree // 7) + scale[degree % 7], length, sr, rng)
        a = int(t * sr)
        y[a:a + len(note)] += note[:len(y) - a]
        t += length + (float(rng.uniform(0.4, 0.8)) if rests and rng.random() < 0.25 else 0.0)
        step = rng.choice([-2, -1, -1, 1, 1, 2, 3])  # mostly steps, some leaps
        degree = int(np.clip(degree + step, -2, 9))
    return (y / (np.abs(y).max() + 1e-9) * 10 ** (peak_db / 20)).astype(np.float32)


def voiced_frames(melody, wav, length):
    """The chroma frames of wav [T] where it sounds: frame power (the chroma's centred STFT) within
    30 dB of its loudest frame -> bool [length], tiled as MelodyConditioner.chroma tiles."""
    x = torch.as_tensor(wav, dtype=torch.float32)[None]
    window = torch.hann_window(melody.n_fft)
    x = torch.nn.functional.pad(x, (max(0, melody.n_fft - x.shape[-1]) // 2,) * 2)
    power = torch.stft(x, melody.n_fft, melody.hop, window=window, center=True, pad_mode="reflect",
                       return_complex=True).abs().pow(2).sum(1)[0]  # [frames]
    voiced = power > 1e-3 * power.max()
    # a silent reference has none: every frame then counts
    return voiced.repeat(-(-length // len(voiced)))[:length]


def music_clips(n, seed, duration, sample_rate):
    """The n held-out music clips of part 1: make_clip(i, EVAL_SEED + seed, kind='music')."""
    return [synth.make_clip(i, EVAL_SEED + seed, duration, sample_rate, kind="music")
            for i in range(n)]


@torch.no_grad()
def melody_agreement(model, clips, seed, duration, sampling):
    """Part 1: for each held-out music clip (music_clips), the clip's tags as the prompt and its own
    waveform as --melody, the share of chroma frames (each frame's dominant pitch class) of the
    generated clip equal to the clip's; the same with the null melody (same prompts, seeds); the
    clip through the codec (the LM's n_q codebooks: the ceiling); each real clip vs the next one
    (chance) -> dict(melody=, null_melody=, real_through_codec=, other_clip=) shares in [0, 1].
    sampling: TextToAudio.generate's keyword arguments (metrics.sampling)."""
    lm, melody, codec = model.lm, model.melody, model.codec
    # [C, T] each
    wavs = [torch.from_numpy(c["wav"])[None].repeat(codec.channels, 1) for c in clips]
    ref = melody.chroma(wavs)  # [n, chroma_len]
    out = {}
    for name, use in (("melody", True), ("null_melody", False)):
        gen = [model.generate([c["tags"]], duration, seed=1000 * seed + i,
                              melody_wav=w if use else None, **sampling)[0]
               for i, (c, w) in enumerate(zip(clips, wavs))]
        out[name] = (melody.chroma(gen) == ref).float().mean().item()
    # the ceiling
    coded = [codec.decode(codec.encode(w[None].to(ref.device), n_q=lm.config.n_q))[0]
             for w in wavs]
    out["real_through_codec"] = (melody.chroma(coded) == ref).float().mean().item()
    out["other_clip"] = (ref == ref.roll(1, 0)).float().mean().item()
    return out


@torch.no_grad()
def melody_gain(model, clips):
    """Part 1, teacher-forced: the mean cross-entropy (nats) of the codes of the held-out music
    clips under their tags, with their own melody and with the null one -> dict(ce_melody=,
    ce_null_melody=)."""
    codec, melody = model.codec, model.melody
    # [n, C, T]
    wavs = torch.stack([torch.from_numpy(c["wav"])[None].repeat(codec.channels, 1) for c in clips])
    device = model.lm.out_norm.weight.device
    codes = codec.encode(wavs.to(device), n_q=model.lm.config.n_q)  # [n, K, frames]
    chroma = melody.chroma(list(wavs))  # [n, chroma_len]
    tags = [c["tags"] for c in clips]
    return dict(ce_melody=model(codes, tags, chroma)[1].mean().item(),
                ce_null_melody=model(codes, tags, torch.zeros_like(chroma))[1].mean().item())


def agreement(melody, wavs, sample_rate, ref, voiced):
    """The share of the voiced chroma frames of wavs [N, C, T] whose pitch class equals the
    reference's ref [1, frames] (voiced: bool [frames])."""
    return (melody.chroma(list(wavs), sample_rate) == ref)[:, voiced].float().mean().item()


@torch.no_grad()
def new_tunes(model, clf, seed, duration, sampling):
    """Parts 2 and 3: every (timbre, rests, level) reference as the melody of the four PROMPTS, and
    the same prompts and seeds with the null melody -> rows [dict(timbre, rests, level, melody=,
    null_melody=)] of agreement over the voiced frames, and {prompt: (recognised with the melody,
    recognised from the text alone)}."""
    melody, sr = model.melody, model.codec.sample_rate
    rows, hits = [], {p: [0, 0] for p in PROMPTS}
    instrument = {p: HEADS["instrument"].index(p) for p in PROMPTS}
    for i, (timbre, rests) in enumerate((t, r) for t in TIMBRES for r in (False, True)):
        # [4, C, T], the null melody
        plain = model.generate(list(PROMPTS), duration, seed=1000 * seed + i, **sampling)
        for level in LEVELS_DB:
            wav = reference_tune(i, seed, duration, sr, timbre, rests, level)
            ref = melody.chroma([torch.from_numpy(wav)], sr)  # [1, chroma_len]
            voiced = voiced_frames(melody, wav, ref.shape[1])
            voiced = voiced if voiced.any() else torch.ones_like(voiced)
            tune = torch.from_numpy(wav)[None].repeat(model.codec.channels, 1)  # [C, T]
            gen = model.generate(list(PROMPTS), duration, seed=1000 * seed + i,
                                 melody_wav=tune, **sampling)
            rows.append(dict(timbre=timbre, rests=rests, level=level,
                             melody=agreement(melody, gen, sr, ref, voiced),
                             null_melody=agreement(melody, plain, sr, ref, voiced)))
            for name, out in (("melody", gen), ("text", plain)):
                mono = audio.resample(out.mean(1), sr, SR)  # [4, T'] at 16 kHz
                pred = classify(clf, mono)[1]["instrument"]  # [4]
                for p, k in zip(PROMPTS, pred.tolist()):
                    hits[p][name == "text"] += int(k == instrument[p])
    n = len(rows)  # each prompt: n clips with a melody, n (n / 2 distinct) from its text alone
    return rows, {p: (a / n, b / n) for p, (a, b) in hits.items()}


def main_melody(args, model, t0):
    """--melody: parts 1 to 3 -> their tables, out_dir/melody.json."""
    if model.melody is None:
        raise SystemExit(f"eval_audio.py: error: --melody: {args.model} has no melody "
                         f"conditioner; train one with train_lm.py --melody")
    n_clips = 8 * args.n_per_prompt
    clips = music_clips(n_clips, args.seed, args.duration, model.codec.sample_rate)
    res = melody_agreement(model, clips, args.seed, args.duration, sampling(args))
    res.update(melody_gain(model, clips))
    clf = model_classifier(args, model)[0]
    rows, instruments = new_tunes(model, clf, args.seed, args.duration, sampling(args))
    print(f"model {args.model}, {n_clips} held-out music clips of {args.duration:g} s, seed "
          f"{args.seed}, cfg {args.cfg_coef:g}, T {args.temperature:g}\n")
    print("| built-in tunes: chroma frames equal to the reference's | share |\n|---|---|")
    print("\n".join(f"| {k.replace('_', ' ')} | {100 * res[k]:.0f}% |"
                    for k in ("melody", "null_melody", "real_through_codec", "other_clip")))
    print(f"\nheld-out cross-entropy of their codes: {res['ce_melody']:.3f} nats with their "
          f"melody, {res['ce_null_melody']:.3f} with the null melody\n")
    print("| new tune (voiced frames) | rests | level | with the melody | null melody |\n"
          "|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['timbre']} | {'yes' if r['rests'] else 'no'} | {r['level']:g} dBFS | "
              f"{100 * r['melody']:.0f}% | {100 * r['null_melody']:.0f}% |")
    mean = {k: sum(r[k] for r in rows) / len(rows) for k in ("melody", "null_melody")}
    print(f"| all {len(rows)} | | | **{100 * mean['melody']:.0f}%** | "
          f"{100 * mean['null_melody']:.0f}% |")
    print("\n| instrument recognised | with a new tune | text alone |\n|---|---|---|")
    print("\n".join(f"| {p} | {100 * a:.0f}% | {100 * b:.0f}% |"
                    for p, (a, b) in instruments.items()))
    os.makedirs(args.out_dir, exist_ok=True)
    out = dict(model=args.model, n=n_clips, duration=args.duration, seed=args.seed, builtin=res,
               new_tunes=rows, new_tunes_mean=mean, instruments=instruments)
    with open(os.path.join(args.out_dir, "melody.json"), "w") as f:
        json.dump(out, f, indent=1)
    print(f"\nwrote {args.out_dir}/melody.json in {time.time() - t0:.0f} s")
    return out
