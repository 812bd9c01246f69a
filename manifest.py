"""
AudioCraft's dataset format, read: the manifest (one JSON object per audio file), the caption files
beside the audio (a.json or a.txt next to a.wav), the tags that exclusion and balancing read, and
MusicGen's metadata captions.

    find_manifest(root)        -> the manifest a folder holds (data.jsonl(.gz), or its one
    *.jsonl*), or None
    read_manifest(path)        -> [AudioMeta]: path, duration, sample_rate, amplitude, weight,
    info_path
    list_folder(root)          -> [AudioMeta] of every audio file under a folder without a manifest
    read_sidecar(meta)         -> (captions, fields) from info_path, a.json ("description") or a.txt
    file_tags(captions, fields) -> the tags: the `tags` field if there is one, else the caption's
    words
    augment_description(...)   -> MusicGen's caption merged with the metadata fields (key, bpm,
    genre, ...)

A manifest line, as `python -m audiocraft.data.audio_dataset` writes it:
    {"path": "a.wav", "duration": 5.0, "sample_rate": 44100, "amplitude": 0.8, "weight": null,
     "info_path": null}
A relative `path` (and `info_path`) is relative to the manifest's folder. `info_path` names the
caption file when it is not a.json beside the audio: a JSON file, or a member of a zip archive as
'archive.zip:a.json'.

References:
1) AudioCraft's manifest: audiocraft/data/audio_dataset.py (AudioMeta, find_audio_files,
load_audio_meta),
   audiocraft/data/zip.py (PathInZip, 'archive.zip:member'), docs/DATASETS.md
2) MusicGen, https://arxiv.org/abs/2306.05284; audiocraft/data/music_dataset.py (MusicInfo,
   augment_music_info_description: merge_text_p, drop_desc_p, drop_other_p), info_audio_dataset.py
   (get_keyword*)
3) AudioGen, https://arxiv.org/abs/2209.15352 (a list of descriptions per clip: one drawn per item;
the "speech"
   label removed for class balance)
"""

import glob
import gzip
import json
import math
import os
import re
import zipfile
from collections import Counter
from dataclasses import dataclass

from audio import AUDIO_EXTS

# a word: a run of letters and digits (spaces, hyphens, apostrophes split)
WORD = re.compile(r"[^\W_]+")
FUNCTION_WORDS = frozenset("a an and as at by for from in into is it its of on or the to with"
                           .split())
# MusicInfo's order [2]
MUSIC_INFO_FIELDS = ("key", "bpm", "genre", "moods", "keywords", "instrument")


@dataclass
class AudioMeta:
    """One manifest line (AudioCraft's AudioMeta [1]); `where` names it in errors ('a.jsonl line
    3')."""
    path: str
    duration: float = None  # s, as the manifest says (the file itself is read at start-up)
    sample_rate: int = None
    amplitude: float = None  # the file's peak |x|: 0 marks a silent file
    weight: object = None  # checked when used (manifest_weight): sample_on_weight
    info_path: str = None  # the caption file, when it is not a.json beside a.wav
    where: str = ""

# ------------------------------------------------------------------------------------ the manifest


def find_manifest(root):
    """The manifest of --data: root itself if a file; in a folder data.jsonl(.gz), else its one
    *.jsonl* file; None for a folder of audio files without one. One line for a missing root or
    several manifests."""
    if os.path.isfile(root):
        return root
    if not os.path.isdir(root):
        raise FileNotFoundError(f"no such folder or manifest: {root}")
    for name in ("data.jsonl", "data.jsonl.gz"):
        if os.path.isfile(os.path.join(root, name)):
            return os.path.join(root, name)
    found = sorted(glob.glob(os.path.join(root, "*.jsonl*")))
    if len(found) > 1:  # e.g. train.jsonl and valid.jsonl: which is which is not ours to guess
        names = ", ".join(os.path.basename(p) for p in found)
        raise ValueError(f"{root} holds several manifests ({names}): pass the training one as "
                         "--data and the held-out one as --valid-data")
    return found[0] if found else None


def _number(m, key, where):
    """m[key] as a float, or None; one line if it is there but not a number."""
    v = m.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ValueError(f"{where}: {key} {v!r} is not a number: fix it, or remove it")
    return float(v)


def read_manifest(path):
    """[AudioMeta] of a manifest (.jsonl, or .jsonl.gz), relative paths joined to its folder. One
    line naming the file and line for a line that is not a JSON object, a line without "path", an
    empty file."""
    opener = gzip.open if path.endswith(".gz") else open
    base = os.path.dirname(os.path.abspath(path))
    out = []
    with opener(path, "rt") as fp:
        for n, line in enumerate(fp, 1):  # n: the line number an editor shows
            if not line.strip():
                continue
            where = f"{path} line {n}"
            try:
                m = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{where} is not JSON ({e.msg}, column {e.colno}): fix that "
                                 "line") from None
            if not isinstance(m, dict) or not isinstance(m.get("path"), str):
                raise ValueError(f'{where} has no "path": each line is one audio file, e.g. '
                                 '{"path": "a.wav", "duration": 5.0, "sample_rate": 44100}')
            info = m.get("info_path")
            info = os.path.join(base, info) if isinstance(info, str) else None
            out.append(AudioMeta(os.path.join(base, m["path"]), _number(m, "duration", where),
                                 m.get("sample_rate"), _number(m, "amplitude", where),
                                 m.get("weight"), info, where))
    if not out:
        raise ValueError(f"{path} lists no audio file: write one JSON line per file, "
                         '{"path": "a.wav", ...}, or pass the folder of audio files instead')
    return out


def list_folder(root):
    """[AudioMeta] of every audio file under root (by extension), sorted: the same every run."""
    paths = sorted(glob.glob(os.path.join(root, "**", "*"), recursive=True))
    return [AudioMeta(p) for p in paths if p.lower().endswith(AUDIO_EXTS)]


def manifest_weight(value, where):
    """A manifest line's "weight" -> float or None (no weight: AudioCraft scores the file 1); one
    line naming a value that is not a finite number >= 0."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if value is not None and not (number and 0 <= value < math.inf):  # NaN fails too
        raise ValueError(f"{where}: weight {value!r} is not a number >= 0: fix it, or remove it "
                         "(weight 1)")
    return None if value is None else float(value)

# ------------------------------------------------------------------------------- captions and tags


def _read_json(path):
    """A JSON caption file, or 'archive.zip:member.json' (AudioCraft's PathInZip [1])."""
    zip_path, _, member = path.rpartition(":")
    if zip_path.endswith(".zip") and os.path.isfile(zip_path):
        with zipfile.ZipFile(zip_path) as z, z.open(member) as fp:
            return json.load(fp)
    with open(path) as fp:
        return json.load(fp)


def read_sidecar(meta):
    """(captions [str], fields) of an AudioMeta: its info_path's JSON, else a.json beside a.wav,
    whose "description" (a string, or a list: one drawn per item [3]) are the captions and the rest
    the fields; a.txt's text when the JSON has no description."""
    stem, fields = os.path.splitext(meta.path)[0], {}
    info = meta.info_path or (stem + ".json" if os.path.isfile(stem + ".json") else None)
    if info:
        fields = _read_json(info)
        text = fields.pop("description", None)
        if text:
            return (text if isinstance(text, list) else [text]), fields
    if os.path.isfile(stem + ".txt"):
        with open(stem + ".txt") as fp:
            return [fp.read().strip()], fields
    return [], fields


def words(value):
    """The lower-cased words of a string, or of every string in a list (numbers, None: none)."""
    if isinstance(value, str):
        return set(WORD.findall(value.lower()))
    if not isinstance(value, (list, tuple)):
        return set()
    return set().union(*map(words, value))


def tag(text):
    """'  Male  Speech ' -> 'male speech': a tag as exclusion and balancing compare it."""
    return " ".join(WORD.findall(text.lower()))


def file_tags(captions, fields):
    """A file's tags: its caption file's `tags` field when it has one (a list, or a comma-separated
    string), else the words of its captions outside FUNCTION_WORDS."""
    given = fields.get("tags")
    if isinstance(given, str):
        given = given.split(",")
    if isinstance(given, list):
        return frozenset(t for t in (tag(str(x)) for x in given) if t)
    return frozenset(words(captions) - FUNCTION_WORDS)


def parse_tags(text):
    """'speech, Male Speech' -> ('speech', 'male speech'): --exclude-tags, comma-separated."""
    tags = tuple(tag(t) for t in text.split(",")) if text.strip() else ()
    for raw, t in zip(text.split(","), tags):
        if not t or t != " ".join(raw.lower().split()):
            raise ValueError(f"tag {raw.strip()!r} in {text!r} is not words of letters and digits: "
                             "separate tags by commas, e.g. 'speech,music'")
    return tags

def tag_shares(tag_sets, top=5):
    """'dog 40%, bark 40%, rain 20%': the share of tag_sets holding each of the commonest tags."""
    counts = Counter(t for ts in tag_sets for t in ts)
    # most held; ties alphabetical
    ranked = sorted(counts.items(), key=lambda tn: (-tn[1], tn[0]))[:top]
    return ", ".join(f"{t} {n / max(1, len(tag_sets)):.0%}" for t, n in ranked) or "none"

# ----------------------------------------------------------------------------- MusicGen's metadata
# captions


def music_info(info):
    """[(name, text)] of the fields in MUSIC_INFO_FIELDS that are set, read as MusicInfo.from_dict
    does [2]: key and genre, instrument lower-cased (a key listing several, 'C, G', dropped:
    get_musical_key), bpm a float ('90.0'), moods and keywords lists of lower-cased words (a string
    split at commas and spaces: get_keyword_list)."""
    def keyword(v):
        return v.strip().lower() if isinstance(v, str) and v.strip() and v != "None" else None
    out = []
    for name in MUSIC_INFO_FIELDS:
        v = info.get(name)
        if name == "bpm":
            try:
                v = str(float(v))
            except (TypeError, ValueError):
                v = None
        elif name in ("moods", "keywords"):
            items = v if isinstance(v, list) else []
            if isinstance(v, str):
                items = re.split(r"[,\s]", v)
            v = ", ".join(k for k in map(keyword, items) if k) or None
        else:
            v = None if name == "key" and isinstance(v, str) and "," in v else keyword(v)
        if v is not None:
            out.append((name, v))
    return out


def augment_description(description, info, rng, merge_text_p=0.0, drop_desc_p=0.5,
                        drop_other_p=0.5):
    """MusicGen's metadata captions [2] (augment_music_info_description), rng a numpy Generator:
        with probability merge_text_p: each field of music_info(info) is kept with probability
        drop_other_p (in AudioCraft's code the chance to KEEP a field, despite its name), written
        "name: value", the kept ones shuffled and joined by ". " = meta; then the description is
        dropped with probability drop_desc_p;
        text = description.rstrip(".") + ". " + meta, stripped ("calm piano" -> "calm piano." when
        meta is empty), or meta alone if the description is empty or dropped ("" = no caption).
    e.g. "calm piano", {"bpm": 90, "genre": "Jazz"} -> "calm piano. genre: jazz. bpm: 90.0" or
    ..."""
    meta = ""
    if rng.random() < merge_text_p:
        pairs = [f"{name}: {v}" for name, v in music_info(info) if rng.random() < drop_other_p]
        meta = ". ".join(pairs[k] for k in rng.permutation(len(pairs)))
        description = "" if rng.random() < drop_desc_p else description
    if not description:
        return meta if len(meta) > 1 else ""
    return ". ".join([description.rstrip("."), meta]).strip()
