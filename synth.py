"""
Synth: the built-in data's generator, captioned clips synthesised on the fly (nothing to download).

    make_clip(i, seed)  -> {wav [T] float32, tags "dog bark park",
                            sentence "a dog is barking in the park", labels}
    python synth.py     prints a few clips' captions and labels

A small stand-in for AudioGen's sound data and MusicGen's music. Sound effects: 12 sources, each
from a recipe a listener can name (sounds.py: moving formants for a dog or a cat, inharmonic
partials for a bell, shaped noise for rain and thunder, a pulse train for an engine, damped modes
for a door), placed once or more in one of 4 scenes (own ambience and reverberation; plausible
pairs only: no knocking on the beach). Music: a random-walk melody in a random key, mode and tempo
on piano, organ, plucked string (Karplus-Strong) or bass, with or without drums, or drums alone;
the notes are in the labels, so melody (chroma) conditioning can be checked. Captions: AudioGen's
tags and template sentences, every word of them written in this file; labels allow per-class
evaluation. Deviation: AudioCraft trains on real recordings; this data only makes the recipes run
without a download, and a model trained on it knows nothing else. data.py wraps it as
BuiltinDataset.

References:
1) AudioGen: Textually Guided Audio Generation, https://arxiv.org/abs/2209.15352
   official code: facebookresearch/audiocraft audiocraft/data/sound_dataset.py (captions: the tags
   and sentences)
2) MusicGen, Simple and Controllable Music Generation, https://arxiv.org/abs/2306.05284
   official code: audiocraft/data/music_dataset.py (sidecar .json: description, bpm, key, moods)
"""

import hashlib
import time

import numpy as np

import sounds

SAMPLE_RATE = 16000  # AudioGen's codec rate (facebook/audiogen-medium); MusicGen's is 32000

# ----------------------------------------------------------------------------- sound effects

# name (also the tag) -> (synthesis, most events per clip, plausible scenes,
#                         sentence: progressive, present, noun)
_SFX = {
    "dog bark": (sounds.dog, 4, "park street room beach", "a dog is barking", "a dog barks",
                 "a dog barking"),
    "cat meow": (sounds.cat, 3, "park street room", "a cat is meowing", "a cat meows",
                 "a cat meowing"),
    "bird chirp": (sounds.bird, 3, "park street beach", "a bird is chirping", "a bird chirps",
                   "a bird chirping"),
    "siren": (sounds.siren, 1, "street park", "a siren is wailing", "a siren wails",
              "a siren wailing"),
    "car horn": (sounds.horn, 3, "street park", "a car horn is honking", "a car horn honks",
                 "a car horn honking"),
    "bell": (sounds.bell, 2, "street park room", "a bell is ringing", "a bell rings",
             "a bell ringing"),
    "knocking": (sounds.knock, 2, "room", "someone is knocking on a door",
                 "someone knocks on a door", "knocking on a door"),
    "footsteps": (sounds.footsteps, 1, "park street room beach", "footsteps are approaching",
                  "footsteps approach", "footsteps approaching"),
    "clock tick": (sounds.clock, 1, "room", "a clock is ticking", "a clock ticks",
                   "a clock ticking"),
    "thunder": (sounds.thunder, 2, "park street beach", "thunder is rumbling", "thunder rumbles",
                "thunder rumbling"),
    "rain": (sounds.rain, 1, "park street beach", "rain is falling", "rain falls",
             "rain falling"),
    "engine": (sounds.engine, 1, "street park", "an engine is running", "an engine runs",
               "an engine running"),
}
SOURCES = list(_SFX)
SCENES_OF = {source: v[2].split() for source, v in _SFX.items()}  # the scenes of each source

# scene -> (reverb rt60 s, reverb level, where-phrases, ambience phrase)
_SCENES = {
    "park": (0.3, 0.05, ("in the park", "in a quiet park", "at a park"),
             "while wind rustles the leaves"),
    "street": (0.8, 0.15, ("on the street", "on a busy street", "in the street"),
               "with traffic in the background"),
    "room": (0.6, 0.35, ("in a room", "in a small room", "inside a room"),
             "with a faint hum in the background"),
    "beach": (0.2, 0.02, ("at the beach", "on the beach", "on a windy beach"),
              "while waves crash"),
}
SCENES = list(_SCENES)
_SFX_TEMPLATES = ("{prog} {where}", "{pres}{times} {where}", "the sound of {noun} {where}",
                  "{where}, {pres}{times}", "{noun} {where} {amb}")


def _sfx_clip(rng, n, sr):
    """A source placed 1 to `most` times over its scene: events, reverberation, then the ambience
    20-30 dB below."""
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
    rt60, wet = _SCENES[scene][:2]  # the room the events happen in; the ambience is diffuse
    fg = sounds.reverb(fg / (np.abs(fg).max() + 1e-9), rng, sr, rt60, wet)
    background = rng.uniform(0.03, 0.1) * sounds.ambience(scene, rng, n, sr)  # 20-30 dB down
    y = fg / (np.abs(fg).max() + 1e-9) + background
    labels = dict(kind="sfx", source=source, scene=scene, instrument=None, mood=None, tempo=None,
                  count=count, onsets=onsets)
    return y, labels

# ----------------------------------------------------------------------------- music


INSTRUMENTS = ["piano", "organ", "plucked string", "bass", "drums"]
NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
_SCALES = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10)}  # natural minor
_MOODS = {"major": ("happy", ("happy", "cheerful", "bright", "uplifting")),
          "minor": ("sad", ("sad", "melancholic", "dark", "gloomy"))}
_TEMPOS = {"slow": ((60, 85), ("slow", "relaxed", "calm")),
           "medium": ((90, 115), ("moderate", "steady", "mid-tempo")),
           "fast": ((120, 150), ("fast", "upbeat", "energetic"))}
_LOW_C = {"piano": 60, "organ": 60, "plucked string": 48, "bass": 36}  # MIDI C of each register
_MUSIC_TEMPLATES = ("{a_tempo} {mood} {instr} melody{drums}",
                    "{mood} {instr} music in {key}, {bpm} bpm{drums}",
                    "{a_mood} tune played on {the_instr}{drums}, {tempo} and in {key}",
                    "{a_instr} playing {a_tempo} {mood} melody in {key}{drums}")
_DRUM_TEMPLATES = ("{a_tempo} drum beat at {bpm} bpm", "drums playing {a_tempo} groove",
                   "{tempo} drums, {bpm} bpm", "{a_tempo} beat played on drums")


def _melody(rng, n, beat, tonic, scale):
    """A random walk on the scale from the tonic (a MIDI pitch), in 8th, quarter and half notes of
    `beat` samples a quarter, until n samples: notes [(onset, length) in samples, MIDI pitch]."""
    notes = []
    s, d = 0, 0  # s: onset (samples), d: scale degree (0 the tonic, 7 the octave above)
    while s < n:
        m = min(int(beat * rng.choice([0.5, 1, 1, 2])), n - s)
        notes.append((s, m, tonic + 12 * (d // 7) + scale[d % 7]))
        s += m
        step = rng.choice([-2, -1, -1, 0, 1, 1, 2, 3])  # mostly steps, some leaps
        d = int(np.clip(d + step, -3, 9))
    return notes


def _play(rng, notes, n, sr, instrument):
    """The notes on the instrument, in a room: [n] samples, unit peak before the reverb."""
    y = np.zeros(n)
    release = int(0.04 * sr)  # 40 ms linear fade after each note, so notes do not click
    cache = {}  # each pitch synthesised once, at the longest length it is held
    for s, m, midi in notes:
        if midi not in cache:
            longest = max(m2 for _, m2, p in notes if p == midi)
            cache[midi] = sounds.tone(instrument, rng, midi, longest + release, sr)
        fade = np.minimum(1, (m + release - np.arange(m + release)) / release)
        seg = cache[midi][: m + release] * fade
        y[s:s + len(seg)] += seg[: n - s]
    return sounds.reverb(y / (np.abs(y).max() + 1e-9), rng, sr, rng.uniform(0.6, 1.2), 0.1)


def _music_clip(rng, n, sr):
    """An instrument playing a melody in a random key, mode and tempo, with or without a beat; or
    drums alone."""
    instrument = INSTRUMENTS[rng.integers(len(INSTRUMENTS))]
    mode = ("major", "minor")[rng.integers(2)]
    tempo = ("slow", "medium", "fast")[rng.integers(3)]
    bpm = int(rng.integers(*_TEMPOS[tempo][0]))
    tonic = int(rng.integers(12))  # the key's pitch class, 0 = C
    beat = 60 / bpm * sr  # samples per beat
    notes, y = [], np.zeros(n)
    drums = instrument == "drums" or rng.random() < 0.5
    if instrument != "drums":
        notes = _melody(rng, n, beat, _LOW_C[instrument] + tonic, _SCALES[mode])
        y = _play(rng, notes, n, sr, instrument)
    if drums:
        d = sounds.drum_track(rng, n, sr, bpm)
        level = 1 if instrument == "drums" else 0.5  # a beat under a melody is 6 dB down
        y = y / (np.abs(y).max() + 1e-9) + level * d / np.abs(d).max()
    mood = None if instrument == "drums" else _MOODS[mode][0]  # drums alone: no mood or key
    key = None if instrument == "drums" else f"{NOTE_NAMES[tonic]} {mode}"
    labels = dict(kind="music", source=None, scene=None, instrument=instrument, mood=mood,
                  tempo=tempo, bpm=bpm, key=key, drums=drums,
                  notes=[(round(s / sr, 4), round(m / sr, 4), int(p)) for s, m, p in notes])
    return y, labels

# ----------------------------------------------------------------------------- captions and clips


def _caption(rng, labels):
    """(tags, sentence): AudioGen's tag style ('dog bark park': the source and scene names, or mood
    instrument [drums] tempo for music) and a sentence from a random template with random
    synonyms, lower case."""
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
        sentence = pick(_SFX_TEMPLATES).format(prog=prog, pres=pres, noun=noun, where=where,
                                               amb=amb, times=times)
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
    """One captioned clip, a pure function of (seed, index): dict(wav=float32 [T] in [-1, 1],
    tags=str, sentence=str, labels=dict(kind, source, scene, instrument, mood, tempo, ...)).
    kind: 'sfx', 'music' or None (either, 50/50). sfx labels add count and onsets (s); music
    labels add bpm, key, drums and notes [(onset s, length s, MIDI)]."""
    if kind not in (None, "sfx", "music"):
        raise ValueError(f"kind={kind!r} is not a clip kind: use 'sfx', 'music' or None")
    if duration * sample_rate < 1:
        raise ValueError(f"duration={duration} s is less than one sample at {sample_rate} Hz: "
                         f"use a longer one")
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
    y = y * rng.uniform(0.5, 0.95) / (np.abs(y).max() + 1e-9)  # the peak varies from clip to clip
    tags, sentence = _caption(rng, labels)
    return dict(wav=y.astype(np.float32), tags=tags, sentence=sentence, labels=labels)


def fingerprint():
    """A hash of the built-in data's recipe (the source of this file and sounds.py): part of the
    key of every cache built from make_clip (token_cache.cache_path, the evaluation's classifiers),
    so that an edited sound or caption builds its cache anew rather than reusing a stale one."""
    h = hashlib.sha256()
    for path in (__file__, sounds.__file__):
        with open(path, "rb") as f:
            h.update(f.read())
    return h.hexdigest()[:16]


if __name__ == "__main__":  # python synth.py: a few clips' captions and labels, and how fast
    t0 = time.time()
    clips = [make_clip(i) for i in range(6)]
    print(f"6 clips of 5 s at {SAMPLE_RATE} Hz in {time.time() - t0:.2f} s")
    for i, c in enumerate(clips):
        short = {k: v for k, v in c["labels"].items()
                 if v is not None and k not in ("notes", "onsets")}
        print(f"{i}: {c['tags']!r} / {c['sentence']!r}\n   {short}")
