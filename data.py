"""
Data: the datasets the trainers read, and audio I/O. Clips generated on the fly by synth.py (nothing to download),
or folders of real audio in AudioCraft's format.

    BuiltinDataset(n)       -> items {wav [1, T], text, labels}: synth.make_clip(i, seed), train/valid disjoint
    FolderDataset(root, sr) -> the same items from data.jsonl(.gz) + x.json sidecars, or from x.wav + x.txt
    load_audio(path, sr)    -> float32 [channels, T] at sr, band-limited resampling by resample(wav, sr_in, sr_out)
    mix_clips(a, b, rng)    -> AudioGen's mixing augmentation: two clips at a random SNR, captions joined
    python data.py --out DIR --n 100    writes synthesised clips, sidecars and a manifest to listen to

References:
1) AudioGen: Textually Guided Audio Generation, https://arxiv.org/abs/2209.15352
   official code: facebookresearch/audiocraft audiocraft/data/sound_dataset.py (description lists: one drawn per item;
   mix_samples), config/solver/audiogen/audiogen_base_16khz.yaml (dataset.train: aug_p, mix_p, mix_snr_*, overlap)
2) MusicGen, Simple and Controllable Music Generation, https://arxiv.org/abs/2306.05284
   official code: audiocraft/data/music_dataset.py (sidecar .json: description, bpm, key, moods, ...)
3) AudioCraft's manifest: audiocraft/data/audio_dataset.py (one JSON per line: path, duration, sample_rate, amplitude,
   weight, info_path; the sidecar of a.wav is a.json) and docs/DATASETS.md
4) J. O. Smith, Digital Audio Resampling Home Page, https://ccrma.stanford.edu/~jos/resample/ (windowed-sinc
   interpolation, as in torchaudio's sinc_interp_hann and julius.resample)
"""

import argparse
import glob
import gzip
import json
import math
import os
import time
import warnings

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
    a's and b's, a key whose values differ holding both [a's, b's], + mix=dict(snr_db=s, start=start) (AudioCraft
    keeps a's only)."""
    (wa, ca, la), (wb, cb, lb) = a, b
    if wa.shape != wb.shape:
        raise ValueError(f"cannot mix clips of shapes {tuple(wa.shape)} and {tuple(wb.shape)}: crop them to one length")
    T, eps = wa.shape[-1], torch.finfo(torch.float32).eps
    s = int(rng.integers(*snr_db)) if snr_db[0] < snr_db[1] else snr_db[0]  # np.random.randint: high excluded
    start = int(rng.integers(0, int(T * (1 - min_overlap)) + 1))  # random.randint: both ends included
    level = int(rng.integers(*level_db))
    rms = lambda x: x.pow(2).mean().sqrt() + eps  # noqa: E731
    y = wa / rms(wa) + 10 ** (-s / 20) * F.pad(wb, (start, 0))[..., :T] / rms(wb)  # [C, T]
    y = y * 10 ** (level / 20) / rms(y)
    y = y * min(1.0, 0.99 / y.abs().max().item())  # AudioCraft's clipping threshold
    captions = [x if x == z else f"{x} {z}" for x in ca for z in cb]
    labels = {k: la.get(k) if lb.get(k) in (None, la.get(k)) else lb[k] if la.get(k) is None else [la[k], lb[k]]
              for k in {**la, **lb}}  # a's keys first, then b's new ones
    return y, captions, dict(labels, mix=dict(snr_db=s, start=start))

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
      - a manifest: root is a .jsonl / .jsonl.gz file, or a folder holding data.jsonl(.gz) (or a single *.jsonl*),
        one {"path", "duration", "sample_rate", ...} per line (a relative path is relative to the manifest);
        the caption is "description" in the sidecar a.json of a.wav (a string, or a list: one drawn per item [1]);
      - otherwise every audio file under root, with its caption in the sidecar a.txt (or a.json), if any.
    Items: dict(wav [channels, T] at sample_rate, text, labels = sidecar fields + path). With duration (s) set, each
    item is a random crop of that length, drawn from (seed, index, epoch): set .epoch each epoch for new crops.
    Files shorter than duration are skipped, or zero-padded at the end if pad=True. At start-up every file is checked
    with sf.info (found, readable, long enough: the manifest's durations are not trusted) and a summary line (see
    _summarize) is printed (verbose; trainers print it on rank 0 only) and kept as .summary. A file that still fails
    when read (a corrupt body) is skipped with a warning naming it: never a crash mid-epoch."""

    def __init__(self, root, sample_rate, channels=1, duration=None, seed=0, pad=False, verbose=True):
        self.sample_rate, self.channels, self.duration, self.seed, self.pad = sample_rate, channels, duration, seed, pad
        self.epoch, self.bad = 0, set()
        self._check(self._paths(root))
        self.summary = self._summarize(root)
        if verbose:
            print(self.summary, flush=True)
        if not self.files:
            raise ValueError(f"no usable audio in {root}: add .wav/.flac files (or a data.jsonl manifest), "
                             f"or lower duration={duration}")

    @staticmethod
    def _paths(root):
        """The audio paths: the manifest's (root itself, else data.jsonl(.gz) in it, else its first *.jsonl*), or
        with no manifest every audio file under root, by extension, sorted (the same order, so the same items)."""
        if os.path.isfile(root):
            manifests = [root]
        elif not os.path.isdir(root):
            raise FileNotFoundError(f"no such folder or manifest: {root}")
        else:
            manifests = [p for p in (os.path.join(root, "data.jsonl"), os.path.join(root, "data.jsonl.gz"))
                         if os.path.isfile(p)] or sorted(glob.glob(os.path.join(root, "*.jsonl*")))
        if not manifests:
            return [p for p in sorted(glob.glob(os.path.join(root, "**", "*"), recursive=True))
                    if p.lower().endswith(AUDIO_EXTS)]
        with (gzip.open if manifests[0].endswith(".gz") else open)(manifests[0], "rt") as fp:
            metas = [json.loads(line) for line in fp if line.strip()]
        base = os.path.dirname(os.path.abspath(manifests[0]))  # a relative path is relative to the manifest
        return [os.path.join(base, m["path"]) for m in metas]

    def _check(self, paths):
        """Sort the files out from their headers (sf.info: no audio is decoded) and sidecars: .files [(path,
        duration s, sample_rate)] usable, .skipped [(path, why)], .uncaptioned [path] usable ones with no caption."""
        self.files, self.skipped, self.uncaptioned = [], [], []
        for path in paths:
            try:
                info = sf.info(path)
                captions = self._sidecar(path)[0]
            except Exception as e:  # missing, or libsndfile cannot parse it (format, truncated header), or bad JSON
                why = ("not found" if not os.path.isfile(path) else "unreadable" if isinstance(e, sf.LibsndfileError)
                       else f"bad sidecar ({type(e).__name__})")
                self.skipped.append((path, why))
                continue
            dur = info.frames / info.samplerate
            if info.frames == 0 or (self.duration and dur < self.duration and not self.pad):
                self.skipped.append((path, f"too short, {dur:.2f} s < {self.duration} s" if info.frames else "empty"))
                continue
            self.files.append((path, dur, info.samplerate))
            if not any(isinstance(c, str) and c.strip() for c in captions):
                self.uncaptioned.append(path)

    def _summarize(self, root):
        """The start-up line, e.g. 'FolderDataset x: 60 audio files, 58 with captions (2 without: a.wav, b.wav train
        as the null condition), 1 skipped (c.wav: unreadable), 12 resampled 44100 -> 16000 Hz, 3 zero-padded to 3.0 s'
        (a part that would say 0 is left out; at most 3 names each, then 'and N more')."""
        base = os.path.abspath(root if os.path.isdir(root) else os.path.dirname(root))
        name = lambda p: os.path.relpath(p, base) if os.path.abspath(p).startswith(base + os.sep) else p  # noqa: E731
        some = lambda xs: ", ".join(xs[:3]) + (f" and {len(xs) - 3} more" if len(xs) > 3 else "")  # noqa: E731
        n, bare = len(self.files), [name(p) for p in self.uncaptioned]
        parts = [f"{n} audio file{'s' * (n != 1)}", f"{n - len(bare)} with captions"
                 + (f" ({len(bare)} without: {some(bare)} train as the null condition)" if bare else "")]
        if self.skipped:
            parts.append(f"{len(self.skipped)} skipped ({some([f'{name(p)}: {why}' for p, why in self.skipped])})")
        rates = [sr for _, _, sr in self.files if sr != self.sample_rate]
        if rates:
            parts.append(f"{len(rates)} resampled {'/'.join(map(str, sorted(set(rates))))} -> {self.sample_rate} Hz")
        padded = sum(dur < self.duration for _, dur, _ in self.files) if self.duration and self.pad else 0
        if padded:
            parts.append(f"{padded} zero-padded to {self.duration} s")
        return f"FolderDataset {root}: " + ", ".join(parts)

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

    def _load(self, i):
        path, dur, sr = self.files[i]  # dur, sr: the file's own, as sf.info gave them
        rng = np.random.default_rng([self.seed, i, self.epoch])  # the crop and the caption draw
        if self.duration is None:
            wav = load_audio(path, self.sample_rate, self.channels)
        else:  # read just the crop, in the file's own samples, then resample and cut to exactly n samples
            n, frames = int(round(self.duration * self.sample_rate)), math.ceil(self.duration * sr)
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
        return dict(wav=wav, text=text, labels=dict(info, path=path))

    def __getitem__(self, i):
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
