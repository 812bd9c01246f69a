"""
Data: the datasets the trainers read, and audio I/O. Clips generated on the fly by synth.py (nothing to download),
or folders of real audio in AudioCraft's format.

    BuiltinDataset(n)       -> items {wav [1, T], text, labels}: synth.make_clip(i, seed), train/valid disjoint
    FolderDataset(root, sr) -> the same items from data.jsonl(.gz) + x.json sidecars, or from x.wav + x.txt; options:
                               files drawn by weight / duration / tag balance, tags excluded, metadata captions
    load_audio(path, sr)    -> float32 [channels, T] at sr, band-limited resampling by resample(wav, sr_in, sr_out)
    mix_clips(a, b, rng)    -> AudioGen's mixing augmentation: two clips at a random SNR, captions joined
    python data.py --out DIR --n 100    writes synthesised clips, sidecars and a manifest to listen to

References:
1) AudioGen: Textually Guided Audio Generation, https://arxiv.org/abs/2209.15352
   (its data: the "speech" label, which outnumbered all others, removed for class balance; exclude_tags here)
   official code: facebookresearch/audiocraft audiocraft/data/sound_dataset.py (description lists: one drawn per item;
   mix_samples), config/solver/audiogen/audiogen_base_16khz.yaml (dataset.train: aug_p, mix_p, mix_snr_*, overlap)
2) MusicGen, Simple and Controllable Music Generation, https://arxiv.org/abs/2306.05284
   official code: audiocraft/data/music_dataset.py (sidecar .json: description, bpm, key, moods, ...; MusicInfo,
   augment_music_info_description: merge_text_p, drop_desc_p, drop_other_p), info_audio_dataset.py (get_keyword*)
3) AudioCraft's manifest: audiocraft/data/audio_dataset.py (one JSON per line: path, duration, sample_rate, amplitude,
   weight, info_path; the sidecar of a.wav is a.json; AudioDataset's sample_on_weight, sample_on_duration,
   _get_sampling_probabilities, sample_file) and docs/DATASETS.md
4) J. O. Smith, Digital Audio Resampling Home Page, https://ccrma.stanford.edu/~jos/resample/ (windowed-sinc
   interpolation, as in torchaudio's sinc_interp_hann and julius.resample)
"""

import argparse
import glob
import gzip
import json
import math
import os
import re
import time
import warnings
from collections import Counter

import numpy as np
import soundfile as sf
import torch
import torch.nn.functional as F

from synth import SAMPLE_RATE, make_clip

VALID_SEED_OFFSET = 2**31  # split='valid' draws make_clip(i, seed + 2**31): train seeds are below 2**31
AUDIO_EXTS = (".wav", ".flac", ".ogg", ".mp3")  # what soundfile (libsndfile >= 1.1) reads

# ----------------------------------------------------------------------------- reading audio


def resample(wav, sr_in, sr_out, zeros=16, rolloff=0.99):
    """Band-limited resampling [..., T] -> [..., ceil(T * sr_out / sr_in)] (torchaudio's length rule) [4].
    With up/down = sr_out/sr_in in lowest terms, output sample q*up + j sits at input time q*down + j*down/up, so
        y[q*up + j] = sum_k x[q*down + k] h(j*down/up - k),   h(t) = c sinc(c t) cos^2(pi t / (2 W)) for |t| < W
    a sinc low-pass at c = rolloff * min(1, sr_out/sr_in) input Nyquists (< 1: the transition band ends before the
    new Nyquist), Hann-windowed over W = zeros / c input samples a side: one conv1d (stride `down`, a channel per
    phase j), zeros beyond the ends. As torchaudio/julius (6 zero crossings there; 16 cut sharper), not bit-exact."""
    if sr_in == sr_out:
        return wav
    g = math.gcd(int(sr_in), int(sr_out))
    up, down = int(sr_out) // g, int(sr_in) // g
    c = rolloff * min(1.0, up / down)
    W = math.ceil(zeros / c)
    if up * (down + 2 * W) > 2**24:  # the filter bank would exceed 16M taps (e.g. 44100 -> 44099)
        raise ValueError(f"cannot resample {sr_in} -> {sr_out} Hz (ratio {up}/{down} too fine): convert the file first")
    t = torch.arange(up, dtype=torch.float64)[:, None] * down / up - torch.arange(-W, down + W + 1)  # [up, taps]
    h = c * torch.sinc(c * t) * torch.cos(math.pi * t / (2 * W)).pow(2) * (t.abs() < W)
    shape, T = wav.shape, wav.shape[-1]
    n_out = math.ceil(T * up / down)
    n_q = math.ceil(n_out / up)  # conv output frames, each giving `up` output samples
    x = F.pad(wav.reshape(-1, 1, T), (W, max(0, (n_q - 1) * down + h.shape[1] - T - W)))  # [N, 1, W + T + ...]
    y = F.conv1d(x, h[:, None].to(wav), stride=down)  # [N, up, n_q]; tap i of phase j weighs x[q*down + i - W]
    return y.transpose(1, 2).reshape(*shape[:-1], -1)[..., :n_out]  # interleave the phases -> [..., n_out]


def load_audio(path, sample_rate, channels=1, start=0, frames=-1):
    """Read an audio file -> float32 tensor [channels, T] at sample_rate. Several channels are averaged to mono;
    a mono file is repeated to `channels`, a wider one keeps its first `channels` (AudioCraft's convert_audio).
    start/frames select a segment in the file's own samples (soundfile seeks: a crop does not read the whole file)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"audio file not found: {path}")
    try:
        data, sr = sf.read(path, start=start, frames=frames, dtype="float32", always_2d=True)  # [T, C]
    except Exception as e:  # libsndfile's errors: unknown format, truncated header, ...
        raise ValueError(f"cannot read audio file {path} ({e}): convert it to WAV or FLAC") from None
    wav = torch.from_numpy(np.ascontiguousarray(data.T))  # [C, T]
    if channels == 1:
        wav = wav.mean(0, keepdim=True)
    elif wav.shape[0] == 1:
        wav = wav.repeat(channels, 1)
    elif wav.shape[0] >= channels:
        wav = wav[:channels]
    else:
        raise ValueError(f"{path} has {wav.shape[0]} channels, cannot make {channels}: use channels=1 or 2")
    return resample(wav, sr, sample_rate)

# ----------------------------------------------------------------------------- AudioGen's mixing augmentation

MIX_SNR_DB = (-5, 5)  # audiogen_base_16khz.yaml mix_snr_low, mix_snr_high: an integer SNR in [-5, 5) dB
MIX_MIN_OVERLAP = 0.5  # mix_min_overlap: the second clip covers at least half of the first
MIX_LEVEL_DB = (-35, -15)  # sound_dataset.py TARGET_LEVEL_LOWER/UPPER: the mix's RMS, an integer in [-35, -15) dBFS


def mix_clips(a, b, rng, snr_db=MIX_SNR_DB, min_overlap=MIX_MIN_OVERLAP, level_db=MIX_LEVEL_DB):
    """AudioGen's mixing augmentation [1] (two clips mixed, their captions concatenated), as AudioCraft's
    SoundDataset does it (sound_dataset.py mix_samples, snr_mixer, mix_pair, mix_text; the solver config
    audiogen_base_16khz.yaml: aug_p 0.5, mix_p 0.5, SNR -5..5 dB, min_overlap 0.5; train_lm.py draws the batches).
    a, b: (wav [C, T], captions [str], labels dict) of equal length, rng: a numpy Generator -> the mix, same form:
        s = rng.integers(*snr_db) dB,  L = rng.integers(*level_db) dBFS,
        start = rng.integers(0, floor(T (1 - min_overlap)) + 1) samples
        y = a / rms(a) + 10^(-s/20) b[t - start] / rms(b)      (b delayed, cut at T: overlap T - start >= T / 2)
        y = y 10^(L/20) / rms(y), then y 0.99 / max|y| if max|y| > 0.99      (rms over the whole [C, T])
    so a's part is s dB louder than b's (b's rms taken before the delay, as AudioCraft, which first peak-, then
    RMS-normalises each clip to -25 dBFS: the same ratio). Captions: each of a's joined by a space to each of b's
    (drawing one = drawing one caption per part), a pair of equal ones kept once (mix_text). Labels: the union of
    a's and b's (AudioCraft keeps a's only) + mix=dict(snr_db=s, start=start)."""
    (wa, ca, la), (wb, cb, lb) = a, b
    if wa.shape != wb.shape:
        raise ValueError(f"cannot mix clips of shapes {tuple(wa.shape)} and {tuple(wb.shape)}: crop them to one length")
    T, eps = wa.shape[-1], torch.finfo(torch.float32).eps
    s = int(rng.integers(*snr_db)) if snr_db[0] < snr_db[1] else snr_db[0]  # np.random.randint: high excluded
    start = int(rng.integers(0, int(T * (1 - min_overlap)) + 1))  # random.randint: both ends included
    level = int(rng.integers(*level_db))
    def rms(x):  # over the whole [C, T]
        return x.pow(2).mean().sqrt() + eps
    y = wa / rms(wa) + 10 ** (-s / 20) * F.pad(wb, (start, 0))[..., :T] / rms(wb)  # [C, T]
    y = y * 10 ** (level / 20) / rms(y)
    y = y * min(1.0, 0.99 / y.abs().max().item())  # AudioCraft's clipping threshold
    captions = [x if x == z else f"{x} {z}" for x in ca for z in cb]
    labels = {}
    for k in {**la, **lb}:  # a's keys first, then b's new ones
        if lb.get(k) in (None, la.get(k)):  # b has no other value: a's
            labels[k] = la.get(k)
        elif la.get(k) is None:  # only b has one
            labels[k] = lb[k]
        else:  # two values: both, [a's, b's]
            labels[k] = [la[k], lb[k]]
    return y, captions, dict(labels, mix=dict(snr_db=s, start=start))

# ----------------------------------------------------------------------------- tags and MusicGen's metadata captions

WORD = re.compile(r"[^\W_]+")  # a word: a run of letters and digits (spaces, hyphens, apostrophes split words)
FUNCTION_WORDS = frozenset("a an and as at by for from in into is it its of on or the to with".split())  # not tags
MUSIC_INFO_FIELDS = ("key", "bpm", "genre", "moods", "keywords", "instrument")  # in MusicInfo's field order [2]


def words(value):
    """The lower-cased words of a string, or of every string inside a list / dict values (numbers, None: none)."""
    if isinstance(value, str):
        return set(WORD.findall(value.lower()))
    if isinstance(value, dict):
        value = value.values()
    elif not isinstance(value, (list, tuple)):  # a number, None
        return set()
    return set().union(*map(words, value))


def parse_tags(text):
    """'speech,Music' -> ('speech', 'music'): the tags of exclude_tags, single words, comma-separated."""
    tags = tuple(t.strip().lower() for t in text.split(",")) if text.strip() else ()
    for t in tags:
        if not WORD.fullmatch(t):
            raise ValueError(f"tag {t!r} in {text!r} is not one word of letters and digits: separate tags by commas, "
                             f"e.g. 'speech,music' (a caption 'male speech' holds the word 'speech')")
    return tags


def probability(text, name=""):
    """'0.25' -> 0.25, a number in [0, 1] (the probability flags; name prefixes the error)."""
    try:
        if 0 <= float(text) <= 1:  # NaN fails too
            return float(text)
    except ValueError:
        pass
    raise ValueError(f"{name}{text!r} is not a probability: give a number in [0, 1]")


def arg_type(parse):
    """argparse's type= from a parser raising ValueError: its one-line message becomes the usage error."""
    def parse_arg(text):
        try:
            return parse(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
    return parse_arg


def music_info(info):
    """[(name, text)] of the sidecar's MUSIC_INFO_FIELDS that are set, read as MusicInfo.from_dict does [2]: key and
    genre, instrument lower-cased (a key listing several, 'C, G', dropped: get_musical_key), bpm a float ('90.0'),
    moods and keywords lists of lower-cased words (a string split at commas and spaces: get_keyword_list)."""
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


def augment_description(description, info, rng, merge_text_p=0.0, drop_desc_p=0.5, drop_other_p=0.5):
    """MusicGen's metadata captions [2] (augment_music_info_description), rng a numpy Generator:
        with probability merge_text_p: each field of music_info(info) is kept with probability drop_other_p
        (in AudioCraft's code the chance to KEEP a field, despite its name), written "name: value", the kept ones
        shuffled and joined by ". " = meta; then the description is dropped with probability drop_desc_p;
        text = description.rstrip(".") + ". " + meta, stripped ("calm piano" -> "calm piano." when meta is empty),
        or meta alone if the description is empty or dropped ("" = no caption if meta is empty too).
    e.g. "calm piano", {"bpm": 90, "genre": "Jazz"} -> "calm piano. genre: jazz. bpm: 90.0" or "bpm: 90.0" or ..."""
    meta = ""
    if rng.random() < merge_text_p:
        pairs = [f"{name}: {v}" for name, v in music_info(info) if rng.random() < drop_other_p]
        meta = ". ".join(pairs[k] for k in rng.permutation(len(pairs)))
        description = "" if rng.random() < drop_desc_p else description
    if not description:
        return meta if len(meta) > 1 else ""
    return ". ".join([description.rstrip("."), meta]).strip()


def manifest_weight(value, where):
    """A manifest line's "weight" -> float or None (no weight: AudioCraft scores the file 1); one line naming a value
    that is not a finite number >= 0."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if value is not None and not (number and 0 <= value < math.inf):  # NaN fails too
        raise ValueError(f"{where}: weight {value!r} is not a number >= 0: fix it, or remove it (weight 1)")
    return None if value is None else float(value)

# ----------------------------------------------------------------------------- datasets


def collate(items):
    """Batch dataset items: wav [B, C, T], text [B] strings, labels [B] dicts (the default collate cannot batch the
    labels: None values, note lists of different lengths). Use DataLoader(..., collate_fn=collate)."""
    if len({it["wav"].shape for it in items}) > 1:
        raise ValueError(f"items have different shapes {sorted({tuple(it['wav'].shape) for it in items})}: "
                         "set duration= on the dataset, or use batch_size=1")
    return dict(wav=torch.stack([it["wav"] for it in items]), text=[it["text"] for it in items],
                labels=[it["labels"] for it in items])


class BuiltinDataset(torch.utils.data.Dataset):
    """n generated clips: item i = make_clip(i, seed) as dict(wav [1, T], text, labels), text being the tags or the
    sentence (a coin per item). split='valid' uses seed + 2**31, so no clip is in both splits."""

    def __init__(self, n, seed=0, duration=5.0, sample_rate=SAMPLE_RATE, split="train", kind=None):
        if split not in ("train", "valid"):
            raise ValueError(f"split={split!r} is not a split: use 'train' or 'valid'")
        if not 0 <= seed < VALID_SEED_OFFSET:
            raise ValueError(f"seed={seed} must be in [0, 2**31): larger seeds are the valid split's")
        self.n, self.duration, self.sample_rate, self.kind = n, duration, sample_rate, kind
        self.seed = seed + (VALID_SEED_OFFSET if split == "valid" else 0)

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if not 0 <= i < self.n:
            raise IndexError(f"index {i} out of range for a BuiltinDataset of {self.n} clips")
        c = make_clip(i, self.seed, self.duration, self.sample_rate, self.kind)
        text = c["tags"] if np.random.default_rng([self.seed, i, 1]).random() < 0.5 else c["sentence"]  # coin per item
        return dict(wav=torch.from_numpy(c["wav"])[None], text=text, labels=c["labels"])


class FolderDataset(torch.utils.data.Dataset):
    """Real audio with captions, in AudioCraft's format [3] or a simple one:
      - a manifest (see _paths), one {"path", "duration", "sample_rate", "weight", ...} per line; the caption is
        "description" in the sidecar a.json of a.wav (a string, or a list: one drawn per item [1]);
      - otherwise every audio file under root, with its caption in the sidecar a.txt (or a.json), if any.
    Items: dict(wav [channels, T] at sample_rate, text, labels = sidecar fields + path). With duration (s) set, each
    item is a random crop of that length, drawn from (seed, index, epoch): set .epoch each epoch for new crops.
    Files shorter than duration are skipped, or zero-padded at the end if pad=True. At start-up every file is checked
    with sf.info (the manifest's durations are not trusted) and a summary line (_summarize) is printed (verbose) and
    kept as .summary. A file that still fails when read is skipped with a warning: never a crash mid-epoch.
    Options, all off by default (item i is then file i):
      sample_on_weight, sample_on_duration, balance_tags: item i is a file drawn from (seed, i, epoch) with the
        probabilities of sampling_probabilities(), as AudioCraft's AudioDataset draws one per index (sample_file);
      exclude_tags ('speech', ...): files whose captions or sidecar fields hold one of these words are left out [1];
      merge_text_p, drop_desc_p, drop_other_p: MusicGen's metadata captions, see augment_description [2]."""

    def __init__(self, root, sample_rate, channels=1, duration=None, seed=0, pad=False, verbose=True,
                 sample_on_weight=False, sample_on_duration=False, balance_tags=False, exclude_tags=(),
                 merge_text_p=0.0, drop_desc_p=0.5, drop_other_p=0.5):
        self.sample_rate, self.channels, self.duration = sample_rate, channels, duration
        self.seed, self.pad = seed, pad
        self.sample_on_weight, self.sample_on_duration = sample_on_weight, sample_on_duration
        self.balance_tags = balance_tags
        self.sampling = sample_on_weight or sample_on_duration or balance_tags
        if not isinstance(exclude_tags, str):  # a list of tags: checked as the flag's text
            exclude_tags = ",".join(exclude_tags)
        self.exclude_tags = parse_tags(exclude_tags)
        self.merge_text_p = probability(merge_text_p, "merge_text_p=")
        self.drop_desc_p = probability(drop_desc_p, "drop_desc_p=")
        self.drop_other_p = probability(drop_other_p, "drop_other_p=")
        self.epoch, self.bad = 0, set()  # set .epoch each epoch for new crops; bad: files that failed to read
        self._probabilities = None  # sampling_probabilities' cache
        self._check(self._paths(root, sample_on_weight))
        self.summary = self._summarize(root)
        if verbose:
            print(self.summary, flush=True)
        if not self.files and self.excluded:
            raise ValueError(f"every usable file of {root} holds an excluded tag ({', '.join(self.exclude_tags)}): "
                             "exclude fewer tags")
        if not self.files:
            raise ValueError(f"no usable audio in {root}: add .wav/.flac files (or a data.jsonl manifest), "
                             f"or lower duration={duration}")

    @staticmethod
    def _paths(root, check_weights=False):
        """[(audio path, weight or None)]: the manifest's (root itself, else data.jsonl(.gz) in it, else its first
        *.jsonl*), or with no manifest every audio file under root, by extension, sorted (the same order, so the same
        items). The weights are checked (manifest_weight) only when they are used (check_weights)."""
        if os.path.isfile(root):
            manifests = [root]
        elif not os.path.isdir(root):
            raise FileNotFoundError(f"no such folder or manifest: {root}")
        else:
            names = (os.path.join(root, "data.jsonl"), os.path.join(root, "data.jsonl.gz"))
            manifests = [p for p in names if os.path.isfile(p)]
            if not manifests:
                manifests = sorted(glob.glob(os.path.join(root, "*.jsonl*")))
        if not manifests:
            return [(p, None) for p in sorted(glob.glob(os.path.join(root, "**", "*"), recursive=True))
                    if p.lower().endswith(AUDIO_EXTS)]
        manifest = manifests[0]
        opener = gzip.open if manifest.endswith(".gz") else open
        with opener(manifest, "rt") as fp:
            metas = [(n, json.loads(line)) for n, line in enumerate(fp, 1) if line.strip()]  # n: the line number
        base = os.path.dirname(os.path.abspath(manifest))  # a relative path is relative to the manifest
        out = []
        for n, m in metas:
            weight = manifest_weight(m.get("weight"), f"{manifest} line {n}") if check_weights else None
            out.append((os.path.join(base, m["path"]), weight))
        return out

    def _check(self, paths):
        """Sort the files out from their headers (sf.info: no audio is decoded) and sidecars: .files [(path,
        duration s, sample_rate)] usable, .skipped [(path, why)], .uncaptioned [path] usable ones with no caption,
        .excluded [(path, its excluded tags)]; .weights {path: manifest weight}, .tags {path: the words of its
        captions but FUNCTION_WORDS} of the usable and excluded files."""
        self.files, self.skipped, self.uncaptioned, self.excluded = [], [], [], []
        self.weights, self.tags = {}, {}
        for path, weight in paths:
            try:
                info = sf.info(path)
                captions, fields = self._sidecar(path)
            except Exception as e:  # missing, or libsndfile cannot parse it (format, truncated header), or bad JSON
                why = f"bad sidecar ({type(e).__name__})"
                if not os.path.isfile(path):
                    why = "not found"
                elif isinstance(e, sf.LibsndfileError):
                    why = "unreadable"
                self.skipped.append((path, why))
                continue
            dur = info.frames / info.samplerate
            if info.frames == 0 or (self.duration and dur < self.duration and not self.pad):
                why = f"too short, {dur:.2f} s < {self.duration} s" if info.frames else "empty"
                self.skipped.append((path, why))
                continue
            self.weights[path] = weight
            self.tags[path] = frozenset(words(captions) - FUNCTION_WORDS)
            hit = [t for t in self.exclude_tags if t in words(captions) | words(fields)]  # AudioGen's speech removal
            if hit:
                self.excluded.append((path, hit))
                continue
            self.files.append((path, dur, info.samplerate))
            if not any(isinstance(c, str) and c.strip() for c in captions):
                self.uncaptioned.append(path)

    def sampling_probabilities(self):
        """The chance of each of .files to be an item [N] (AudioCraft's _get_sampling_probabilities [3]): a score
            1, x the manifest's weight (sample_on_weight; a file without one: x 1), x its duration in s
            (sample_on_duration), x mean over its tags t of 1 / n_t (balance_tags; n_t = files whose captions hold
            t, an uncaptioned file has one tag '': each tag's files then weigh ~1 in all, the inverse frequency)
        normalised to sum 1; a file that failed to read (.bad) scores 0. Recomputed when .files is reassigned."""
        if self._probabilities and self._probabilities[0] is self.files and self._probabilities[1] == len(self.bad):
            return self._probabilities[2]
        score = np.ones(len(self.files))
        if self.sample_on_weight:
            score *= [1.0 if self.weights[p] is None else self.weights[p] for p, _, _ in self.files]
        if self.sample_on_duration:
            score *= [dur for _, dur, _ in self.files]
        if self.balance_tags:
            tags = [self.tags[p] or {""} for p, _, _ in self.files]
            n = Counter(t for ts in tags for t in ts)
            score *= [np.mean([1 / n[t] for t in ts]) for ts in tags]
        score[sorted(self.bad)] = 0
        if not score.any():
            raise ValueError(f"all {len(score)} files have weight 0: give some a weight > 0 in the manifest")
        p = score / score.sum()
        self._probabilities = (self.files, len(self.bad), p)
        return p

    def _tag_shares(self, top=5):
        """'tags (share of files before -> after exclusion -> of the draws): speech 60% -> 0%, dog 30% -> 75% -> 50%'
        for the excluded tags, then the `top` others held by most files before exclusion."""
        after = [self.tags[p] for p, _, _ in self.files]
        before = after + [self.tags[p] for p, _ in self.excluded]
        drawn = self.sampling_probabilities() if self.sampling and self.files else None
        out, counts = [], Counter(t for ts in before for t in ts)
        ranked = [t for t, _ in sorted(counts.items(), key=lambda tn: (-tn[1], tn[0]))  # most held; ties alphabetical
                  if t not in self.exclude_tags]
        for t in list(self.exclude_tags) + ranked[:top]:
            held = np.array([t in ts for ts in after], dtype=bool)  # [N] the kept files holding t
            share = f"{t} {counts[t] / len(before):.0%} -> {held.sum() / max(1, len(after)):.0%}"
            if drawn is not None:
                share += f" -> {drawn[held].sum():.0%}"
            out.append(share)
        columns = "before -> after exclusion -> of the draws" if drawn is not None else "before -> after exclusion"
        return f"tags (share of files {columns}): " + ", ".join(out)

    def _summarize(self, root):
        """The start-up line, e.g. 'FolderDataset x: 60 audio files, 58 with captions (2 without: a.wav, b.wav train
        as the null condition), 1 skipped (c.wav: unreadable), 12 resampled 44100 -> 16000 Hz, 3 zero-padded to 3.0 s'
        (a part that would say 0 is left out), then with exclude_tags or a sampling option ', 12 excluded by tag
        (speech 12)' and a second line: _tag_shares() (which raises if every weight is 0)."""
        base = os.path.abspath(root if os.path.isdir(root) else os.path.dirname(root))
        def name(p):  # relative to root when inside it
            return os.path.relpath(p, base) if os.path.abspath(p).startswith(base + os.sep) else p
        def some(xs):  # at most 3 names, then 'and N more'
            return ", ".join(xs[:3]) + (f" and {len(xs) - 3} more" if len(xs) > 3 else "")
        n, bare = len(self.files), [name(p) for p in self.uncaptioned]
        captioned = f"{n - len(bare)} with captions"
        if bare:
            captioned += f" ({len(bare)} without: {some(bare)} train as the null condition)"
        parts = [f"{n} audio file{'s' * (n != 1)}", captioned]
        if self.skipped:
            parts.append(f"{len(self.skipped)} skipped ({some([f'{name(p)}: {why}' for p, why in self.skipped])})")
        rates = [sr for _, _, sr in self.files if sr != self.sample_rate]
        if rates:
            parts.append(f"{len(rates)} resampled {'/'.join(map(str, sorted(set(rates))))} -> {self.sample_rate} Hz")
        padded = sum(dur < self.duration for _, dur, _ in self.files) if self.duration and self.pad else 0
        if padded:
            parts.append(f"{padded} zero-padded to {self.duration} s")
        if self.exclude_tags:
            hits = Counter(t for _, hit in self.excluded for t in hit)
            parts.append(f"{len(self.excluded)} excluded by tag ("
                         + ", ".join(f"{t} {hits[t]}" for t in self.exclude_tags) + ")")
        line = f"FolderDataset {root}: " + ", ".join(parts)
        if self.exclude_tags or self.sampling:
            line += "\n  " + self._tag_shares()
        return line

    def __len__(self):
        return len(self.files)

    @staticmethod
    def _sidecar(path):
        """(captions [str], labels) of a.wav: a.json's "description" (str or list) + other fields, else a.txt's text."""
        stem, info = os.path.splitext(path)[0], {}
        if os.path.isfile(stem + ".json"):
            with open(stem + ".json") as fp:
                info = json.load(fp)
            text = info.pop("description", None)
            if text:
                return (text if isinstance(text, list) else [text]), info
        if os.path.isfile(stem + ".txt"):
            with open(stem + ".txt") as fp:
                return [fp.read().strip()], info
        return [], info

    def _load(self, i, rng=None):
        """Item of file i, its crop and caption drawn from rng (a numpy Generator; default: from (seed, i, epoch))."""
        path, dur, sr = self.files[i]  # dur, sr: the file's own, as sf.info gave them
        rng = np.random.default_rng([self.seed, i, self.epoch]) if rng is None else rng
        if self.duration is None:
            wav = load_audio(path, self.sample_rate, self.channels)
        else:  # read just the crop, in the file's own samples, then resample and cut to exactly n samples
            n = int(round(self.duration * self.sample_rate))  # output samples
            frames = math.ceil(self.duration * sr)  # file samples
            start = int(rng.integers(0, max(1, int(dur * sr) - frames + 1)))
            s0 = max(0, start - int(0.005 * sr))  # 5 ms of context before the crop for the resampling filter
            wav = load_audio(path, self.sample_rate, self.channels, s0, frames + 2 * (start - s0))
            skip = round((start - s0) * self.sample_rate / sr)
            wav = wav[:, skip:skip + n]
            if wav.shape[1] < n and not self.pad:  # the header claimed more than the file holds
                raise ValueError(f"too short ({wav.shape[1] / self.sample_rate:.2f} s < duration={self.duration} s)")
            wav = F.pad(wav, (0, n - wav.shape[1]))
        captions, info = self._sidecar(path)
        text = captions[rng.integers(len(captions))] if captions else ""  # AudioGen: one caption drawn per item [1]
        if self.merge_text_p > 0:  # MusicDataset augments only when merge_text_p is set [2]
            text = augment_description(text, info, rng, self.merge_text_p, self.drop_desc_p, self.drop_other_p)
        return dict(wav=wav, text=text, labels=dict(info, path=path))

    def _draw(self, i):
        """Item i with a sampling option: a file drawn by sampling_probabilities() (AudioCraft's sample_file [3]), then
        its crop and caption, all from (seed, i, epoch); a file that fails to read is skipped (probability -> 0)."""
        rng = np.random.default_rng([self.seed, i, self.epoch, 0x64726177])  # "draw": apart from the plain items
        while len(self.bad) < len(self.files):
            j = int(rng.choice(len(self.files), p=self.sampling_probabilities()))
            try:
                return self._load(j, rng)
            except Exception as e:
                warnings.warn(f"skipping {self.files[j][0]}: {e}")
                self.bad.add(j)
        raise RuntimeError(f"none of the {len(self.files)} files of this FolderDataset could be read: see the warnings")

    def __getitem__(self, i):
        if self.sampling:
            return self._draw(i)
        for j in [(i + k) % len(self.files) for k in range(len(self.files))]:  # i, or the next readable file
            if j in self.bad:
                continue
            try:
                return self._load(j)
            except Exception as e:
                warnings.warn(f"skipping {self.files[j][0]}: {e}")
                self.bad.add(j)  # per DataLoader worker: each reports it once
        raise RuntimeError(f"none of the {len(self.files)} files of this FolderDataset could be read: see the warnings")


if __name__ == "__main__":  # write clips to listen to: python data.py --out DIR --n 100
    p = argparse.ArgumentParser(description="Write generated clips as 16-bit WAV + .json sidecars + a data.jsonl "
                                            "manifest (AudioCraft's format; FolderDataset reads it back).")
    p.add_argument("--out", required=True, help="output folder (created)")
    p.add_argument("--n", type=int, default=100, help="number of clips")
    p.add_argument("--seed", type=int, default=0, help="clip i is make_clip(i, seed)")
    p.add_argument("--duration", type=float, default=5.0, help="seconds per clip")
    p.add_argument("--sample_rate", type=int, default=SAMPLE_RATE, help="Hz")
    p.add_argument("--kind", choices=("sfx", "music"), default=None, help="only sound effects or only music")
    args = p.parse_args()
    os.makedirs(args.out, exist_ok=True)
    t0, lines, counts = time.time(), [], {}
    for i in range(args.n):
        c = make_clip(i, args.seed, args.duration, args.sample_rate, args.kind)
        path = os.path.abspath(os.path.join(args.out, f"{i:05d}.wav"))
        sf.write(path, c["wav"], args.sample_rate, subtype="PCM_16")
        with open(path[:-4] + ".json", "w") as fp:  # AudioGen picks one description of the list per item [1]
            json.dump(dict(description=[c["tags"], c["sentence"]], keywords=c["tags"], **c["labels"]), fp)
        lines.append(json.dumps(dict(path=path, duration=len(c["wav"]) / args.sample_rate,  # AudioCraft's AudioMeta
                                     sample_rate=args.sample_rate, amplitude=None, weight=None, info_path=None)))
        name = c["labels"]["source"] or c["labels"]["instrument"]  # for the summary: how many of each
        counts[name] = counts.get(name, 0) + 1
        if i < 3:
            print(f"{path}: {c['tags']!r} / {c['sentence']!r}")
    manifest = os.path.join(args.out, "data.jsonl")
    with open(manifest + ".tmp", "w") as fp:
        fp.write("\n".join(lines) + "\n")
    os.replace(manifest + ".tmp", manifest)  # atomic: a reader never sees half a manifest
    dt = time.time() - t0
    print(f"wrote {args.n} clips ({args.n * args.duration / 60:.1f} min at {args.sample_rate} Hz) + sidecars + "
          f"{manifest} in {dt:.1f} s ({1000 * dt / max(1, args.n):.1f} ms per clip, writing included)")
    print("per source/instrument: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
