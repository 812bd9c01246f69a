"""
The LM's training data as codec tokens: the codec encodes the clips ONCE (AudioGen's mixes
included, and the chroma of music clips for a melody model) into a token cache, named by all it
depends on; each step's batch is then drawn from it, a function of (seed, step).

    clips(args, split, n, ...)        -> the clips of a split: built-in, or --data's (FolderDataset)
    build_cache(args, codec, ...)     -> {train, valid: {codes int16 [N, K, T], captions, labels,
                                          chroma, mix}} saved at cache_path(args, ...)
    get_batch(tokens, step, args)     -> codes [B, K, T], texts [B], chroma [B, chroma_len] or None

Mixing, as AudioCraft's and not: a cached pool of n_clips mixes, not fresh ones each step
(AudioCraft draws B = 2 x batch_size clips and keeps batch_size = mix_p B: mixes of pairs with
probability aug_p, else plain clips; here one coin picks the pool, so half the batches are mixes as
there), pairs of two different clips (there: a clip meets itself with probability 1/B), an SNR,
offset and level per mix (there: per batch), music mixed too unless --mix-sound (AudioGen's data is
sound alone; MusicGen does not mix).

References:
1) AudioGen, Kreuk et al. 2022, arXiv:2209.15352 (one caption drawn per item, mixing, CFG dropout
   0.1); audiocraft/data/sound_dataset.py (mix_samples), audiocraft/solvers/audiogen.py
2) MusicGen, Copet et al. 2023, arXiv:2306.05284 (self_wav chroma, attribute dropout)
3) Classifier-free guidance, Ho & Salimans 2022, arXiv:2207.12598 (conditioners.cfg_dropout)
"""

import hashlib
import itertools
import json
import os
import time

import numpy as np
import torch

import training
from checkpoint import save_atomic
from conditioners import MelodyConditioner, cfg_dropout, normalize_text, word_dropout
from data import MIX_LEVEL_DB, MIX_MIN_OVERLAP, MIX_SNR_DB, VALID_SEED_OFFSET, mix_clips
from synth import fingerprint, make_clip

# ------------------------------------------------------------------------------------ the clips


def clips(args, split, n, sample_rate, channels):
    """Yield n (wav [C, T], captions, labels) of a split ('train' or 'valid'). Built-in: clip i =
    synth.make_clip(i, seed), its tags and its sentence both kept (AudioGen draws one caption per
    item); 'valid' uses seed + 2**31 as BuiltinDataset. --data: crops of `duration` s of the split's
    files (training.open_split: shuffled by seed, one in ten held out, or --valid-data), the files
    taken in turn with new crops each pass, or drawn by a sampling flag (FolderDataset.take)."""
    if args.data is None:
        training.folder_options(args)  # one line if a data flag comes without --data
        seed = args.seed + (VALID_SEED_OFFSET if split == "valid" else 0)
        for i in range(n):
            c = make_clip(i, seed, args.duration, sample_rate)
            # numpy -> python
            labels = json.loads(json.dumps(c["labels"], default=lambda x: x.item()))
            wav = torch.from_numpy(c["wav"])[None].repeat(channels, 1)  # [C, T]
            yield wav, [c["tags"], c["sentence"]], labels
        return
    ds = training.open_split(args, split, sample_rate=sample_rate, channels=channels,
                             duration=args.duration, pad=True)
    items = ds.take(n)
    print(f"{split}: " + ds.describe(items), flush=True)  # what was taken, by tag
    for item in items:
        yield item["wav"], [item["text"]], item["labels"]


def mixed_clips(items, seed, sound_only=False):
    """Yield len(items) mixes for the cache: mix m = data.mix_clips(items[i], items[j]), clips i and
    j != i, the SNR, offset and level all drawn from (seed, m). sound_only (--mix-sound): never a
    clip of kind music (AudioGen mixes its sound data; MusicGen does not mix); a folder's clips have
    no kind and all mix. AudioCraft mixes within a step's batch; a token cache encodes once."""
    pool = [k for k, item in enumerate(items) if not sound_only or item[2].get("kind") != "music"]
    if len(pool) < 2:
        raise SystemExit(f"--mix-sound: {len(pool)} sound clip(s) among {len(items)}, a mix takes "
                         "two: use more --n-clips, or mix all clips (no --mix-sound)")
    for m in range(len(items)):
        # "mix": a stream no clip or crop draws from
        rng = np.random.default_rng([seed, m, 0x6D6978])
        a = int(rng.integers(len(pool)))
        b = (a + 1 + int(rng.integers(len(pool) - 1))) % len(pool)  # any other clip of the pool
        i, j = pool[a], pool[b]
        yield mix_clips(items[i], items[j], rng)


# ------------------------------------------------------------------------------ the token cache


@torch.no_grad()
def encode_clips(name, items, n, codec, n_q, device, melody=None, music=None):
    """n (wav [C, T], captions, labels) items, 16 per codec call -> {codes int16 [n, K, T],
    captions, labels}; with a melody conditioner also chroma int8 [n, chroma_len]: the pitch classes
    of the clips that music(labels) calls music, 0 (the null melody) for the others."""
    out, codes, chroma, items, t0 = dict(captions=[], labels=[]), [], [], iter(items), time.time()
    for i in range(0, n, 16):
        chunk = list(itertools.islice(items, 16))
        wav = torch.stack([w for w, _, _ in chunk]).to(device)  # [b, C, T]
        codes.append(codec.encode(wav, n_q=n_q).cpu().short())  # [b, K, frames]; card <= 32768
        out["captions"] += [c for _, c, _ in chunk]
        out["labels"] += [lab for _, _, lab in chunk]
        if melody is not None:
            for w, _, lab in chunk:  # [chroma_len] each; 0 everywhere = the null melody
                if music(lab):
                    chroma.append(melody.chroma([w])[0])
                else:
                    chroma.append(torch.zeros(melody.chroma_len, dtype=torch.long))
        print(f"\rencoding {name}: {min(n, i + 16)}/{n} clips ({time.time() - t0:.0f} s)", end="",
              flush=True)
    print()
    out["codes"] = torch.cat(codes)  # [n, K, frames]
    if chroma:
        out["chroma"] = torch.stack(chroma).to(torch.int8)  # [n, chroma_len]: 12 classes fit int8
    return out


def build_cache(args, codec, n_q, path, melody=None):
    """Encode both splits -> {split: {codes int16 [N, K, T], captions, labels(, chroma)}}, saved
    atomically; the train split also holds mix: n_clips mixed clips (aug_p > 0). The melody of
    music clips (built-in data: the clips with an instrument; a folder: every clip) is cached as
    chroma (encode_clips)."""
    def music(labels):
        return args.data is not None or labels.get("instrument") is not None
    out, device = {}, next(codec.parameters()).device
    for split, n in (("train", args.n_clips), ("valid", args.eval_clips)):
        items = list(clips(args, split, n, codec.sample_rate, codec.channels))
        out[split] = encode_clips(split, items, n, codec, n_q, device, melody, music)
        # AudioGen's mixing augmentation: n mixes of n clips
        if split == "train" and args.aug_p > 0:
            mixes = mixed_clips(items, args.seed, args.mix_sound)
            out[split]["mix"] = encode_clips("mixes", mixes, n, codec, n_q, device, melody, music)
    save_atomic(out, path)


def cache_path(args, codec_key, n_q, melody=None):
    """out_dir/cache/tokens_KEY.pt, KEY a hash of all that the cache holds: the codec's weights
    (codec_key: checkpoint.codec_hash), n_q codebooks, the data (built-in: synth.fingerprint) and
    its flags away from their defaults, the mixing, and the chroma's settings (melody:
    MelodyConditioner's)."""
    data = os.path.abspath(args.data) if args.data else args.data
    settings = dict(codec=codec_key, n_q=n_q, data=data,
                    n_clips=args.n_clips, eval_clips=args.eval_clips, duration=args.duration,
                    seed=args.seed, **training.folder_options(args))
    if args.data:  # the files shuffled by seed before the hold-out and --n-clips (data.holdout)
        settings["order"] = "shuffled"
    else:  # the built-in data: its recipe's source
        settings["synth"] = fingerprint()
    if args.valid_data:
        settings["valid_data"] = os.path.abspath(args.valid_data)
    if args.aug_p > 0:
        settings["mix"] = dict(clips=args.n_clips, snr_db=MIX_SNR_DB, min_overlap=MIX_MIN_OVERLAP,
                               level_db=MIX_LEVEL_DB)
        if args.mix_sound:  # (a key unchanged for the default: its caches are reused)
            settings["mix"]["of"] = "sound"
    if melody:  # how the LM fuses the chroma (fuse) does not change the cache
        settings["melody"] = {k: v for k, v in melody.items() if k != "fuse"}
    key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
    return os.path.join(args.cache_dir or os.path.join(args.out_dir, "cache"), f"tokens_{key}.pt")


def load_tokens(args, env, codec, codec_key, n_q, melody=None):
    """The token cache of this run's settings (cache_path) -> (train, valid): encoded by rank 0 if
    new (build_cache), read by every rank. melody: MelodyConditioner's settings (the chroma of the
    music clips is cached), or None."""
    if args.aug_p > 0 and args.n_clips < 2:
        raise SystemExit(f"--aug-p {args.aug_p} mixes pairs of clips: use --n-clips 2 or more, or "
                         "--aug-p 0")
    path = cache_path(args, codec_key, n_q, melody)
    if env.master and os.path.isfile(path):
        print(f"token cache: reusing {path}")
    elif env.master:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        print(f"token cache: encoding {args.n_clips} + {args.eval_clips} clips of "
              f"{args.duration} s -> {path}")
        # its chroma() only: dim 1
        build_cache(args, codec, n_q, path, MelodyConditioner(1, **melody) if melody else None)
    training.barrier(env)  # the other ranks wait for the cache
    cache = torch.load(path, weights_only=True)
    return cache["train"], cache["valid"]


# ------------------------------------------------------------------------------- the batches


def as_prompt(text, normalize):
    """A caption as the conditioner takes it: None (the null condition) if empty, or only stop
    words once normalised."""
    return text if text.strip() and (not normalize or normalize_text(text)) else None


def get_batch(tokens, step, args, rank=0, world=1):
    """(codes [B, K, T] long, texts [B], chroma [B, chroma_len] long or None) of one step from a
    token cache, a function of (seed, step) only: a resumed run sees the same batches. With a
    replay pool (the built-in data's cache), a first coin (p = replay) takes the batch from it.
    A coin (p = aug_p) takes the whole batch from the cached mixes, as AudioCraft mixes a whole
    batch or none of it (mix_samples). Each item draws one of its captions, whose words are
    dropped or made <unk> (word_dropout); each rank takes its slice of the global batch; the CFG
    coin (one per step, equal on all ranks) nulls text and melody, a second the melody alone."""
    B, g = args.batch_size, training.batch_generator(args.seed, step)
    if "replay" in tokens and torch.rand(1, generator=g).item() < args.replay:
        tokens = tokens["replay"]  # --replay: the batch from the built-in data's cache
    if "mix" in tokens and torch.rand(1, generator=g).item() < args.aug_p:
        tokens = tokens["mix"]  # AudioGen's augmented batch: every item a mix of two clips
    idx = torch.randint(len(tokens["codes"]), (B * world,), generator=g)
    pick = torch.randint(2**30, (B * world,), generator=g)  # which caption of each item
    texts = []
    for i, p in zip(idx.tolist(), pick.tolist()):
        captions = tokens["captions"][i]
        caption = word_dropout(captions[p % len(captions)], args.word_dropout, args.unk_dropout, g)
        texts.append(as_prompt(caption, args.normalize))
    # item i plays clip melodies[i]'s chroma
    melodies = idx.tolist() if "chroma" in tokens else None
    texts, melodies = cfg_dropout(texts, melodies, p=args.cfg_dropout, generator=g)  # all None: p
    mine, chroma = idx[rank * B:(rank + 1) * B], None
    if melodies is not None:
        null = melodies[0] is None or torch.rand(1, generator=g).item() < args.melody_dropout
        chroma = tokens["chroma"][mine].long() * (not null)  # 0 everywhere = the null melody
    return tokens["codes"][mine].long(), texts[rank * B:(rank + 1) * B], chroma


def seen_captions(tokens, normalize):
    """Every caption of a token cache as the conditioner reads it (normalised), empty ones out."""
    caps = [normalize_text(c) if normalize else c for cs in tokens["captions"] for c in cs]
    return [c for c in caps if c.strip()]
