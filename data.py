"""
Data: the datasets the trainers read. Clips generated on the fly by synth.py (nothing to download),
or folders of real audio in AudioCraft's format (manifest.py reads it).

    BuiltinDataset(n)        -> items {wav [1, T], text, labels}: synth.make_clip(i, seed)
    FolderDataset(root, sr)  -> the same items from a manifest and caption files, or a.wav + a.txt;
                                files drawn by weight / duration / tag balance, tags excluded,
                                durations filtered, metadata captions; split: the hold-out
    mix_clips(a, b, rng)     -> AudioGen's mixing augmentation: two clips at a random SNR
    python data.py --out DIR --n 100    writes synthesised clips, caption files and a manifest

References:
1) AudioGen: Textually Guided Audio Generation, https://arxiv.org/abs/2209.15352 (its data: the
   "speech" label, which outnumbered all others, removed for class balance: exclude_tags here);
   official code: audiocraft/data/sound_dataset.py (mix_samples), the solver config
   audiogen/audiogen_base_16khz.yaml (dataset.train: aug_p, mix_p, mix_snr_*, overlap)
2) MusicGen, https://arxiv.org/abs/2306.05284; audiocraft/data/music_dataset.py (metadata captions)
3) AudioCraft's AudioDataset: audiocraft/data/audio_dataset.py (sample_on_weight,
   sample_on_duration, min/max_audio_duration, _get_sampling_probabilities, sample_file) and
   docs/DATASETS.md
"""

import argparse
import json
import math
import os
import time
import warnings
from collections import Counter

import numpy as np
import soundfile as sf
import torch
import torch.nn.functional as F

from audio import load_audio
from manifest import (augment_description, file_tags, find_manifest, list_folder, manifest_weight,
                      parse_tags, read_manifest, read_sidecar, tag_shares)
from synth import SAMPLE_RATE, make_clip

# split='valid' draws make_clip(i, seed + 2**31): train seeds are below 2**31
VALID_SEED_OFFSET = 2**31

# ------------------------------------------------------------------ AudioGen's mixing augmentation

# audiogen_base_16khz.yaml mix_snr_low, mix_snr_high: an integer SNR in [-5, 5) dB
MIX_SNR_DB = (-5, 5)
MIX_MIN_OVERLAP = 0.5  # mix_min_overlap: the second clip covers at least half of the first
MIX_LEVEL_DB = (-35, -15)  # sound_dataset.py TARGET_LEVEL_LOWER/UPPER: the mix's RMS in dBFS


def mix_clips(a, b, rng, snr_db=MIX_SNR_DB, min_overlap=MIX_MIN_OVERLAP, level_db=MIX_LEVEL_DB):
    """AudioGen's mixing augmentation [1] (two clips mixed, their captions concatenated), as
    AudioCraft's SoundDataset does it (sound_dataset.py mix_samples, snr_mixer, mix_pair, mix_text;
    the solver config audiogen_base_16khz.yaml: aug_p 0.5, mix_p 0.5, SNR -5..5 dB, min_overlap
    0.5). a, b: (wav [C, T], captions [str], labels dict) of equal length, rng: a numpy
    Generator -> the mix:
        s = rng.integers(*snr_db) dB,  L = rng.integers(*level_db) dBFS,
        start = rng.integers(0, floor(T (1 - min_overlap)) + 1) samples
        y = a / rms(a) + 10^(-s/20) b[t - start] / rms(b)   (b delayed, cut at T: overlap >= T / 2)
        y = y 10^(L/20) / rms(y), then y 0.99 / max|y| if max|y| > 0.99   (rms over all of [C, T])
    so a's part is s dB louder than b's (b's rms taken before the delay, as AudioCraft, which first
    peak-, then RMS-normalises each clip to -25 dBFS: the same ratio). Captions: each of a's joined
    by a space to each of b's (drawing one = drawing one caption per part), a pair of equal ones
    kept once (mix_text). Labels: the union of a's and b's (AudioCraft keeps a's only) +
    mix=dict(snr_db=s, start=start)."""
    (wa, ca, la), (wb, cb, lb) = a, b
    if wa.shape != wb.shape:
        raise ValueError(f"cannot mix clips of shapes {tuple(wa.shape)} and {tuple(wb.shape)}: "
                         "crop them to one length")
    T, eps = wa.shape[-1], torch.finfo(torch.float32).eps
    s = int(rng.integers(*snr_db)) if snr_db[0] < snr_db[1] else snr_db[0]  # randint: high excluded
    # random.randint: both ends included
    start = int(rng.integers(0, int(T * (1 - min_overlap)) + 1))
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

# ---------------------------------------------------------- probabilities, durations, the hold-out


def probability(text, name=""):
    """'0.25' -> 0.25, a number in [0, 1] (the probability flags; name prefixes the error)."""
    try:
        if 0 <= float(text) <= 1:  # NaN fails too
            return float(text)
    except ValueError:
        pass
    raise ValueError(f"{name}{text!r} is not a probability: give a number in [0, 1]")


def seconds(text):
    """'2.5' -> 2.5, a duration > 0 (--min-duration, --max-duration)."""
    try:
        if 0 < float(text) < math.inf:
            return float(text)
    except ValueError:
        pass
    raise ValueError(f"{text!r} is not a duration: give a number of seconds > 0")


def holdout(items, seed):
    """The hold-out of both trainers -> {'train', 'valid', 'all'}: the items shuffled by seed (so
    that a manifest sorted by class gives no class the first places), then one in ten held out (9,
    19, ...); fewer than 10: 'valid' is the first one, trained on too. 'all': every item, shuffled.
    """
    # "hold": its own stream
    order = np.random.default_rng([seed, 0x686F6C64]).permutation(len(items))
    items = [items[k] for k in order]
    train = [x for i, x in enumerate(items) if i % 10 != 9]
    return dict(train=train, valid=items[9::10] or items[:1], all=items)


# ---------------------------------------------------------------------------------------- datasets


def collate(items):
    """Batch dataset items: wav [B, C, T], text [B] strings, labels [B] dicts (the default collate
    cannot batch the labels: None values, note lists of different lengths). DataLoader(...,
    collate_fn=collate)."""
    if len({it["wav"].shape for it in items}) > 1:
        shapes = sorted({tuple(it["wav"].shape) for it in items})
        raise ValueError(f"items have different shapes {shapes}: "
                         "set duration= on the dataset, or use batch_size=1")
    return dict(wav=torch.stack([it["wav"] for it in items]), text=[it["text"] for it in items],
                labels=[it["labels"] for it in items])


class BuiltinDataset(torch.utils.data.Dataset):
    """n generated clips: item i = make_clip(i, seed) as dict(wav [1, T], text, labels), text being
    the tags or the sentence (a coin per item). split='valid' uses seed + 2**31: no clip is in both
    splits."""

    def __init__(self, n, seed=0, duration=5.0, sample_rate=SAMPLE_RATE, split="train", kind=None):
        if split not in ("train", "valid"):
            raise ValueError(f"split={split!r} is not a split: use 'train' or 'valid'")
        if not 0 <= seed < VALID_SEED_OFFSET:
            raise ValueError(f"seed={seed} must be in [0, 2**31): larger seeds are the valid "
                             "split's")
        self.n, self.duration, self.sample_rate, self.kind = n, duration, sample_rate, kind
        self.seed = seed + (VALID_SEED_OFFSET if split == "valid" else 0)

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if not 0 <= i < self.n:
            raise IndexError(f"index {i} out of range for a BuiltinDataset of {self.n} clips")
        c = make_clip(i, self.seed, self.duration, self.sample_rate, self.kind)
        coin = np.random.default_rng([self.seed, i, 1]).random()  # one per item: tags or sentence
        text = c["tags"] if coin < 0.5 else c["sentence"]
        return dict(wav=torch.from_numpy(c["wav"])[None], text=text, labels=c["labels"])


class FolderDataset(torch.utils.data.Dataset):
    """Real audio with captions, in AudioCraft's format (manifest.py) or a simple one:
      - a manifest, one {"path", "duration", "sample_rate", "weight", ...} per line; the captions
        are "description" in the caption file (info_path, or a.json beside a.wav; a list: one drawn
        per item);
      - otherwise every audio file under root, its caption in a.txt (or a.json), if any.
    Items: dict(wav [channels, T] at sample_rate, text, labels = the caption file's fields + path).
    With duration (s) set, each item is a random crop of that length, drawn from (seed, index,
    epoch): set .epoch each epoch for new crops. Files shorter than duration are skipped, or
    zero-padded at the end if pad=True. At start-up every file is checked with sf.info (the
    manifest's durations are not trusted, a difference over 10% is reported) and a summary
    (_summarize) is printed (verbose) and kept as .summary. A file that still fails when read is
    skipped with a warning: never a crash mid-epoch. split: None, every file in the manifest's (or
    sorted) order; else the files shuffled by seed and 'train' or 'valid' of the hold-out, or 'all'
    (holdout). Options, all off by default (item i is file i):
      sample_on_weight, sample_on_duration, balance_tags: item i is a file drawn from (seed, i,
      epoch)
        with the .probabilities of _probabilities(), as AudioCraft's AudioDataset draws one [3];
      exclude_tags ('speech', ...): files holding one of these tags are left out [1] (tags:
      file_tags); min_duration, max_duration: files shorter or longer (s) are left out [3];
      merge_text_p, drop_desc_p, drop_other_p: MusicGen's metadata captions (augment_description)
      [2]."""

    def __init__(self, root, sample_rate, channels=1, duration=None, seed=0, pad=False,
                 verbose=True, split=None, sample_on_weight=False, sample_on_duration=False,
                 balance_tags=False, exclude_tags=(), min_duration=None, max_duration=None,
                 merge_text_p=0.0, drop_desc_p=0.5, drop_other_p=0.5):
        self.sample_rate, self.channels, self.duration = sample_rate, channels, duration
        self.seed, self.pad, self.split = seed, pad, split
        self.sample_on_weight, self.sample_on_duration = sample_on_weight, sample_on_duration
        self.balance_tags = balance_tags
        self.min_duration, self.max_duration = min_duration, max_duration
        self.sampling = sample_on_weight or sample_on_duration or balance_tags
        if not isinstance(exclude_tags, str):  # a list of tags: checked as the flag's text
            exclude_tags = ",".join(exclude_tags)
        self.exclude_tags = parse_tags(exclude_tags)
        self.merge_text_p = probability(merge_text_p, "merge_text_p=")
        self.drop_desc_p = probability(drop_desc_p, "drop_desc_p=")
        self.drop_other_p = probability(drop_other_p, "drop_other_p=")
        # set .epoch each epoch for new crops; bad: files that failed
        self.epoch, self.bad = 0, set()
        self.manifest = find_manifest(root)
        metas = read_manifest(self.manifest) if self.manifest else list_folder(root)
        self.n_listed = len(metas)
        self._check(holdout(metas, seed)[split] if split else metas)
        self.probabilities = self._probabilities() if self.sampling and self.files else None
        self.summary = self._summarize(root)
        if verbose:
            print(self.summary, flush=True)
        self._refuse_empty(root)

    def _check(self, metas):
        """Sort the files out from their headers (sf.info: no audio is decoded) and caption files:
        .files [(path, duration s, sample_rate)] usable, .skipped [(path, why)], .uncaptioned [path]
        usable ones without a caption, .excluded [(path, its excluded tags)], .mismatched [(path,
        listed s, read s)]; .meta {path: AudioMeta}, .weights {path: weight}, .tags {path:
        file_tags} of the usable and excluded files."""
        self.files, self.skipped, self.uncaptioned, self.excluded = [], [], [], []
        self.mismatched = []
        self.meta, self.weights, self.tags = {}, {}, {}
        for m in metas:
            try:
                info = sf.info(m.path)
                captions, fields = read_sidecar(m)
            except Exception as e:  # missing, or libsndfile cannot parse it, or a bad caption file
                why = f"bad caption file ({type(e).__name__})"
                if not os.path.isfile(m.path):
                    why = "not found"
                elif isinstance(e, sf.LibsndfileError):
                    why = "unreadable"
                self.skipped.append((m.path, why))
                continue
            dur = info.frames / info.samplerate
            why = self._unusable(dur, m.amplitude)
            if why:
                self.skipped.append((m.path, why))
                continue
            if m.duration is not None and abs(dur - m.duration) > 0.1 * m.duration:
                self.mismatched.append((m.path, m.duration, dur))  # e.g. a truncated file
            self.meta[m.path], self.tags[m.path] = m, file_tags(captions, fields)
            if self.sample_on_weight:  # checked only where used
                self.weights[m.path] = manifest_weight(m.weight, m.where)
            # AudioGen's speech removal
            hit = [t for t in self.exclude_tags if t in self.tags[m.path]]
            if hit:
                self.excluded.append((m.path, hit))
                continue
            self.files.append((m.path, dur, info.samplerate))
            if not any(isinstance(c, str) and c.strip() for c in captions):
                self.uncaptioned.append(m.path)

    def _unusable(self, dur, amplitude):
        """Why a file of dur s (and the manifest's amplitude) cannot be used, or None."""
        if dur == 0:
            return "empty"
        if amplitude == 0:
            return "silent (manifest amplitude 0)"
        if self.duration and dur < self.duration and not self.pad:
            return f"too short, {dur:.2f} s < {self.duration} s"
        if self.min_duration and dur < self.min_duration:
            return f"shorter than min_duration, {dur:.2f} s < {self.min_duration} s"
        if self.max_duration and dur > self.max_duration:
            return f"longer than max_duration, {dur:.2f} s > {self.max_duration} s"
        return None

    def _probabilities(self):
        """The chance of each of .files to be an item [N] (AudioCraft's _get_sampling_probabilities
        [3]):
            1, x the manifest's weight (sample_on_weight; a file without one: x 1), x its duration
            in s (sample_on_duration), x mean over its tags t of 1 / n_t (balance_tags; n_t = files
            holding t, a file without tags has one tag '': each tag's files then weigh ~1 in all)
        normalised to sum 1. A file that fails to read later gets 0 (__getitem__)."""
        score = np.ones(len(self.files))
        if self.sample_on_weight:
            score *= [1.0 if self.weights[p] is None else self.weights[p] for p, _, _ in self.files]
        if self.sample_on_duration:
            score *= [dur for _, dur, _ in self.files]
        if self.balance_tags:
            tags = [self.tags[p] or {""} for p, _, _ in self.files]
            n = Counter(t for ts in tags for t in ts)
            score *= [np.mean([1 / n[t] for t in ts]) for ts in tags]
        if not score.any():
            raise ValueError(f"all {len(score)} files have weight 0: give some a weight > 0 in the "
                             "manifest")
        return score / score.sum()

    def sampling_probabilities(self):
        """The draws' probabilities [N] (None without a sampling option)."""
        return self.probabilities

    def _refuse_empty(self, root):
        """One line when nothing is left to train on, or nothing to balance."""
        if not self.files and self.excluded:
            raise ValueError(f"every usable file of {root} holds an excluded tag "
                             f"({', '.join(self.exclude_tags)}): exclude fewer tags")
        if not self.files and self.manifest:
            raise ValueError(f"none of the {self.n_listed} files of {self.manifest} can be used "
                             "(the start-up line says why): fix them, or lower "
                             f"duration={self.duration}")
        if not self.files:
            raise ValueError(f"no usable audio in {root}: add .wav/.flac files (or a data.jsonl "
                             f"manifest), or lower duration={self.duration}")
        if self.balance_tags and not any(self.tags[p] for p, _, _ in self.files):
            raise ValueError(f"balance_tags: no file of {root} has a tag (a caption, or a 'tags' "
                             "field in its caption file): nothing to balance; caption the files "
                             "or drop it")

    def _tag_shares(self, top=5):
        """'tags (share of files before -> after exclusion -> of the draws): speech 60% -> 0%, dog
        30% -> 75% -> 50%' for the excluded tags, then the `top` others held by most files before
        exclusion."""
        after = [self.tags[p] for p, _, _ in self.files]
        before = after + [self.tags[p] for p, _ in self.excluded]
        drawn, out, counts = self.probabilities, [], Counter(t for ts in before for t in ts)
        ranked = [t for t, _ in sorted(counts.items(), key=lambda tn: (-tn[1], tn[0]))  # ties: a-z
                  if t not in self.exclude_tags]
        for t in list(self.exclude_tags) + ranked[:top]:
            held = np.array([t in ts for ts in after], dtype=bool)  # [N] the kept files holding t
            share = f"{t} {counts[t] / len(before):.0%} -> {held.sum() / max(1, len(after)):.0%}"
            if drawn is not None:
                share += f" -> {drawn[held].sum():.0%}"
            out.append(share)
        columns = "before -> after exclusion" + (" -> of the draws" if drawn is not None else "")
        return f"tags (share of files {columns}): " + ", ".join(out)

    def _summarize(self, root):
        """The start-up line, e.g. 'FolderDataset x/data.jsonl: 60 audio files, 58 with captions (2
        without: a.wav, b.wav train as the null condition), 1 skipped (c.wav: unreadable), 12
        resampled 44100 -> 16000 Hz' (a part that would say 0 is left out; a split says which files
        it took), then with exclude_tags or a sampling option a second line: _tag_shares()."""
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
            why = some([f"{name(p)}: {w}" for p, w in self.skipped])
            parts.append(f"{len(self.skipped)} skipped ({why})")
        if self.mismatched:
            what = some([f"{name(p)}: {a:.2f} s listed, {b:.2f} s read"
                         for p, a, b in self.mismatched])
            parts.append(f"{len(self.mismatched)} not as long as the manifest says ({what})")
        rates = [sr for _, _, sr in self.files if sr != self.sample_rate]
        if rates:
            parts.append(f"{len(rates)} resampled {'/'.join(map(str, sorted(set(rates))))} -> "
                         f"{self.sample_rate} Hz")
        padded = self.pad and self.duration and sum(dur < self.duration for _, dur, _ in self.files)
        if padded:
            parts.append(f"{padded} zero-padded to {self.duration} s")
        if self.exclude_tags:
            hits = Counter(t for _, hit in self.excluded for t in hit)
            parts.append(f"{len(self.excluded)} excluded by tag ("
                         + ", ".join(f"{t} {hits[t]}" for t in self.exclude_tags) + ")")
        source = root if self.manifest in (None, root) else self.manifest
        if self.split:
            taken = n + len(self.skipped) + len(self.excluded)
            source += f" ({self.split}: {taken} of {self.n_listed} files, shuffled by seed "
            source += f"{self.seed})"
        line = f"FolderDataset {source}: " + ", ".join(parts)
        if self.exclude_tags or self.sampling:
            line += "\n  " + self._tag_shares()
        return line

    def __len__(self):
        return len(self.files)

    def _load(self, i, rng=None):
        """Item of file i, its crop and caption drawn from rng (a numpy Generator; default: from
        (seed, i, epoch))."""
        path, dur, sr = self.files[i]  # dur, sr: the file's own, as sf.info gave them
        rng = np.random.default_rng([self.seed, i, self.epoch]) if rng is None else rng
        if self.duration is None:
            wav = load_audio(path, self.sample_rate, self.channels)
        else:  # read just the crop, in the file's own samples, then resample and cut to n samples
            n = int(round(self.duration * self.sample_rate))  # output samples
            frames = math.ceil(self.duration * sr)  # file samples
            start = int(rng.integers(0, max(1, int(dur * sr) - frames + 1)))
            # 5 ms of context before the crop for the resampling
            s0 = max(0, start - int(0.005 * sr))
            wav = load_audio(path, self.sample_rate, self.channels, s0, frames + 2 * (start - s0))
            skip = round((start - s0) * self.sample_rate / sr)
            wav = wav[:, skip:skip + n]
            if wav.shape[1] < n and not self.pad:  # the header claimed more than the file holds
                raise ValueError(f"too short ({wav.shape[1] / self.sample_rate:.2f} s < "
                                 f"duration={self.duration} s)")
            wav = F.pad(wav, (0, n - wav.shape[1]))
        captions, info = read_sidecar(self.meta[path])
        # one caption drawn per item
        text = captions[rng.integers(len(captions))] if captions else ""
        if self.merge_text_p > 0:  # MusicDataset augments only when merge_text_p is set [2]
            text = augment_description(text, info, rng, self.merge_text_p, self.drop_desc_p,
                                       self.drop_other_p)
        return dict(wav=wav, text=text, labels=dict(info, path=path))

    def __getitem__(self, i):
        """Item i: file i, or with a sampling option a file drawn by .probabilities (AudioCraft's
        sample_file [3]), its crop and caption from (seed, i, epoch). A file that fails to read is
        skipped with a warning and never tried again: the next file stands in, or another draw."""
        rng = None  # a sampling option: "draw", a stream apart from the plain items'
        if self.sampling:
            rng = np.random.default_rng([self.seed, i, self.epoch, 0x64726177])
        k = 0  # without sampling: files i, i + 1, ... in turn
        while len(self.bad) < len(self.files):
            if self.sampling:
                j = int(rng.choice(len(self.files), p=self.probabilities))
            else:
                j, k = (i + k) % len(self.files), k + 1
                if j in self.bad:
                    continue
            try:
                return self._load(j, rng)
            except Exception as e:
                warnings.warn(f"skipping {self.files[j][0]}: {e}")
                self.bad.add(j)  # per DataLoader worker: each reports it once
                if self.probabilities is not None:
                    p = self.probabilities.copy()
                    p[j] = 0
                    if not p.any():  # the files left have weight 0
                        break
                    self.probabilities = p / p.sum()
        raise RuntimeError(f"none of the {len(self.files)} files of this FolderDataset could be "
                           "read: see the warnings")

    def take(self, n):
        """n items for a token cache or an eval set: with a sampling option items 0..n-1 (drawn
        files); else the files in turn, each pass over them with new crops (epoch)."""
        items = []
        for j in range(n):
            if not self.sampling:
                self.epoch = j // len(self.files)
            items.append(self[j if self.sampling else j % len(self.files)])
        return items

    def describe(self, items):
        """'16 clips from 12 files; tags: dog 25%, bark 25%, ...': what take() returned."""
        paths = [it["labels"]["path"] for it in items]
        return (f"{len(items)} clips from {len(set(paths))} files; tags: "
                + tag_shares([self.tags[p] for p in paths]))


if __name__ == "__main__":  # write clips to listen to: python data.py --out DIR --n 100
    p = argparse.ArgumentParser(description="Write generated clips as 16-bit WAV + .json caption "
                                "files + a data.jsonl manifest (AudioCraft's format; FolderDataset "
                                "reads it back).")
    p.add_argument("--out", required=True, help="output folder (created)")
    p.add_argument("--n", type=int, default=100, help="number of clips")
    p.add_argument("--seed", type=int, default=0, help="clip i is make_clip(i, seed)")
    p.add_argument("--duration", type=float, default=5.0, help="seconds per clip")
    p.add_argument("--sample_rate", type=int, default=SAMPLE_RATE, help="Hz")
    p.add_argument("--kind", choices=("sfx", "music"), default=None,
                   help="only sound effects or only music")
    args = p.parse_args()
    os.makedirs(args.out, exist_ok=True)
    t0, lines, counts = time.time(), [], {}
    for i in range(args.n):
        c = make_clip(i, args.seed, args.duration, args.sample_rate, args.kind)
        path = os.path.abspath(os.path.join(args.out, f"{i:05d}.wav"))
        sf.write(path, c["wav"], args.sample_rate, subtype="PCM_16")
        fields = dict(c["labels"])
        mood = fields.pop("mood")  # AudioCraft's MusicInfo: a list of moods
        with open(path[:-4] + ".json", "w") as fp:  # AudioGen draws one description per item [1]
            json.dump(dict(description=[c["tags"], c["sentence"]], keywords=c["tags"],
                           moods=[mood] if mood else [], **fields), fp)
        # AudioCraft's AudioMeta
        lines.append(json.dumps(dict(path=path, duration=len(c["wav"]) / args.sample_rate,
                                     sample_rate=args.sample_rate, amplitude=None, weight=None,
                                     info_path=None)))
        # for the summary: how many of each
        name = c["labels"]["source"] or c["labels"]["instrument"]
        counts[name] = counts.get(name, 0) + 1
        if i < 3:
            print(f"{path}: {c['tags']!r} / {c['sentence']!r}")
    manifest = os.path.join(args.out, "data.jsonl")
    with open(manifest + ".tmp", "w") as fp:
        fp.write("\n".join(lines) + "\n")
    os.replace(manifest + ".tmp", manifest)  # atomic: a reader never sees half a manifest
    dt = time.time() - t0
    minutes = args.n * args.duration / 60
    print(f"wrote {args.n} clips ({minutes:.1f} min at {args.sample_rate} Hz) + caption files + "
          f"{manifest} in {dt:.1f} s ({1000 * dt / max(1, args.n):.1f} ms per clip, writing "
          "included)")
    print("per source/instrument: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
