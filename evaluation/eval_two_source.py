"""
Two-source prompts (AudioGen's mixing augmentation, evaluated): prompts that name two sounds at once
("dog bark park thunder park"), and whether the generated clip holds both, heard by a detector with
one sigmoid per sound source. Run through eval_audio.py, which holds the model loading, the
classifier design and the generation it reuses:

    python evaluation/eval_audio.py --two-source [--pairs 12 --n-per-prompt 8 --model checkpoints]

1. The detector: a Classifier with one sigmoid per sound source (train_detector), trained with
   binary cross-entropy on built-in clips and, one clip in two, on mixes of two sound clips of
   different sources made by data.mix_clips (AudioGen's mixing augmentation; target: both sources),
   half of each through the codec (eval_audio's 1.), 36 epochs (the clips cost ~4 min on one thread,
   the epochs 2.5 s each); cached beside the classifier (detector_<hash>.pt). A source is present if
   its sigmoid is above 0.5 (THRESHOLD, not calibrated: a probability). A first run takes about 7
   minutes on one thread, ~5.5 of them for the detector.
2. The prompts: a seeded sample of --pairs (first, second, scene), two different sources with a
   scene both are placed in (synth.SCENES_OF); for each, n real mixes of held-out clips (the k-th
   clip of (first, scene) with the k-th of (second, scene), mix_clips's random SNR -5..5 dB and
   offset) whose captions, joined as mix_clips joins them, are the prompts: tags "dog bark street
   siren street", sentences "a dog barks on the street a siren is wailing in the street" (what a
   model trained with mixing reads). Reported: the share of clips with both sources present, the
   first, the second, and the other 10 sources (false positives), for the real mixes (the detector's
   ceiling), the real mixes through the codec (the LM's ceiling), and the clips generated from each
   style.

This is the project's own measure: audiocraft/metrics (FAD, KL, CLAP, chroma cosine) has no
per-source detector.

References:
1) AudioGen, Kreuk et al. 2022, arXiv:2209.15352 (mixing augmentation). Official code:
   audiocraft/data/sound_dataset.py (mix_samples, snr_mixer)
"""

import json
import os
import time

import numpy as np
import torch
import torch.nn.functional as F

import data
import synth
from evaluation.metrics import (HELD_OUT_SEED, N_MELS, TRAIN_SEED, Classifier,
                                classifier_settings, fit, generate_styles, get_classifier,
                                mel_power, sampling, through_codec, to_features)

DETECTOR_HEADS = {"present": synth.SOURCES}  # one sigmoid per sound source
# + --seed: the held-out clips of the two-source prompts
TWO_SOURCE_SEED = data.VALID_SEED_OFFSET + 3000
THRESHOLD = 0.5  # a source is present if its sigmoid is above this


def present(labels):
    """make_clip's or mix_clips's labels -> the detector's target [12] float: 1 for the clip's
    source, or for both sources of a mix (mix_clips keeps both: [a's, b's]), 0 elsewhere (a tune:
    all 0)."""
    y, src = torch.zeros(len(synth.SOURCES)), labels["source"]
    for name in [] if src is None else [src] if isinstance(src, str) else src:
        y[synth.SOURCES.index(name)] = 1
    return y


def mix_two(a, b, rng):
    """make_clip dicts a, b -> data.mix_clips of them: (wav [T], labels, tags, sentence), the
    captions joined as mix_clips joins them (a's + " " + b's): "dog bark street siren street", "a
    dog barks on the street a siren ..."."""
    def item(c):
        return torch.from_numpy(c["wav"])[None], [c["tags"], c["sentence"]], c["labels"]
    wav, captions, labels = data.mix_clips(item(a), item(b), rng)
    # captions: [a tags + b tags, a tags + b sentence, ..., a sentence + b sentence]
    return wav[0], labels, captions[0], captions[3]


def detector_clip(i, seed, duration):
    """The detector's training clip i: i even, make_clip(i, seed) (either kind); i odd, a mix of the
    sound make_clip(i, seed, kind='sfx') and the first make_clip(2**31 + 16 i + k, seed,
    kind='sfx'), k = 0, 1, ... of another source, the SNR, offset and level drawn from (seed, i)
    (data.mix_clips) -> (wav [T], target [12])."""
    if i % 2 == 0:
        c = synth.make_clip(i, seed, duration)
        return torch.from_numpy(c["wav"]), present(c["labels"])
    a = synth.make_clip(i, seed, duration, kind="sfx")
    for k in range(16):  # 11/12 of the clips hold another source
        b = synth.make_clip(2**31 + 16 * i + k, seed, duration, kind="sfx")
        if b["labels"]["source"] != a["labels"]["source"]:
            break
    rng = np.random.default_rng([seed, i, 0x6D6978])  # "mix": as train_lm.py
    wav, labels, _, _ = mix_two(a, b, rng)
    return wav, present(labels)


def detector_mels(n, seed, duration, codec=None, n_q=None, device="cpu", batch=64):
    """Power mels of detector_clip(i, seed) for i < n -> (mel [n, n_mels, frames], target [n, 12]);
    with a codec, the clips with (i // 2) odd (half the single clips, half the mixes) are its
    renderings (through_codec)."""
    feats, ys = [], []
    for i in range(0, n, batch):
        clips = [detector_clip(j, seed, duration) for j in range(i, min(n, i + batch))]
        wav = torch.stack([w for w, _ in clips])  # [b, T]
        if codec is not None:
            odd = [k for k in range(len(clips)) if (i + k) // 2 % 2]
            wav[odd] = through_codec(codec, n_q, wav[odd], device)
        feats.append(mel_power(wav))
        ys += [y for _, y in clips]
    return torch.cat(feats), torch.stack(ys)


@torch.no_grad()
def detect(model, wav=None, mel=None, batch=64):
    """wav [N, T] (or its power mel) -> each source's probability of being present (sigmoids) [N,
    12], eval mode."""
    model.eval()
    if mel is None:
        mel = torch.cat([mel_power(w) for w in wav.split(batch)])
    feats = to_features(mel)
    device = next(model.parameters()).device
    return torch.cat([model(x.to(device))[1]["present"].sigmoid().cpu()
                      for x in feats.split(batch)])


def train_detector(s, device, codec=None, log=print):
    """The two-source detector: a Classifier with one sigmoid per source (DETECTOR_HEADS), settings
    s as train_classifier's, trained by fit on detector_clip(i, TRAIN_SEED + seed) (half single
    clips, half mixes; half of each through the codec if one is given), binary cross-entropy per
    source -> (model, held-out accuracy: mixes: both sources above THRESHOLD, exact: the set above
    THRESHOLD is the clip's, clean and through the codec)."""
    t0 = time.time()
    mels, y = detector_mels(s["train_clips"], TRAIN_SEED + s["seed"], s["duration"], codec,
                            s["n_q"], device)
    log(f"detector: {len(mels)} clips of {s['duration']:g} s (half of them mixes) -> mel "
        f"spectrograms {tuple(mels.shape)} ({time.time() - t0:.0f} s)")
    torch.manual_seed(s["seed"])
    model = Classifier(N_MELS, s["width"], DETECTOR_HEADS).to(device).train()
    loss_fn = lambda logits, idx: F.binary_cross_entropy_with_logits(  # noqa: E731
        logits["present"], y[idx].to(device))
    fit(model, mels, loss_fn, s, device, log, name="detector")
    mels, y = detector_mels(s["held_out"], HELD_OUT_SEED + s["seed"], s["duration"], codec,
                            s["n_q"], device)
    hit, i = detect(model, mel=mels) > THRESHOLD, torch.arange(len(y))
    acc = {}
    for name, sel in (("", i // 2 % 2 == 0), (" (codec)", i // 2 % 2 == 1)):
        if codec is None and name:
            continue
        mix = sel & (i % 2 == 1)
        acc[f"mixes: both{name}"] = (hit[mix] | (y[mix] == 0)).all(1).float().mean().item()
        acc[f"mixes: exact{name}"] = (hit[mix] == (y[mix] == 1)).all(1).float().mean().item()
        one = sel & ~mix  # single clips
        acc[f"single clips: exact{name}"] = (hit[one] == (y[one] == 1)).all(1).float().mean().item()
    return model.eval(), acc


def source_pairs(n_pairs, seed):
    """A seeded sample of n_pairs (first, second, scene): two different sources and a scene both are
    placed in (synth.SCENES_OF: no siren in a room), first before second in SOURCES."""
    S = synth.SOURCES
    pairs = [(a, b, sc) for i, a in enumerate(S) for b in S[i + 1:] for sc in synth.SCENES_OF[a]
             if sc in synth.SCENES_OF[b]]
    order = torch.randperm(len(pairs), generator=torch.Generator().manual_seed(seed))
    return [pairs[k] for k in order[:n_pairs]]


def two_source_sets(pairs, n, seed, duration, max_scan=200_000):
    """For each pair (first, second, scene), n held-out mixes: the k-th clip of (first, scene) mixed
    with the k-th of (second, scene) (data.mix_clips, SNR, offset, level from (seed, pair, k)),
    clips found by scanning make_clip(i, TWO_SOURCE_SEED + seed, kind='sfx'), each used once ->
    [(wav [T], tags, sentence)] pair by pair."""
    need = {}
    for a, b, sc in pairs:
        for src in (a, b):
            need[(src, sc)] = need.get((src, sc), 0) + n
    found, i = {k: [] for k in need}, 0
    while any(len(found[k]) < need[k] for k in need):
        if i == max_scan:
            raise RuntimeError(f"not enough clips of each (source, scene) in {max_scan} clips")
        c = synth.make_clip(i, TWO_SOURCE_SEED + seed, duration, kind="sfx")
        k = (c["labels"]["source"], c["labels"]["scene"])
        if k in found and len(found[k]) < need[k]:
            found[k].append(c)
        i += 1
    out = []
    for p, (a, b, sc) in enumerate(pairs):
        out += [mix_two(found[(a, sc)].pop(0), found[(b, sc)].pop(0),
                        np.random.default_rng([seed, p, j, 0x6D6978])) for j in range(n)]
    return [(w, t, s) for w, _, t, s in out]


def presence(probs, idx):
    """probs [N, 12] (detect), idx [N, 2] long (the prompted sources) -> dict(both, first, second,
    others): the share of clips with both / the first / the second prompted source above THRESHOLD,
    and of the other 10 (source, clip) pairs above it (false positives)."""
    hit, r = probs > THRESHOLD, torch.arange(len(probs))
    first, second = hit[r, idx[:, 0]], hit[r, idx[:, 1]]
    others = torch.ones_like(hit)
    others[r, idx[:, 0]], others[r, idx[:, 1]] = False, False
    return dict(both=(first & second).float().mean().item(), first=first.float().mean().item(),
                second=second.float().mean().item(), others=hit[others].float().mean().item())


def two_source_table(rows):
    """Markdown table of rows [(name, n, presence dict)]."""
    pct = lambda x: f"{100 * x:.0f}%"  # noqa: E731
    lines = ["| clips | n | both sources present | first present | second present | other sources "
             "present |", "|---|---|---|---|---|---|"]
    for name, n, p in rows:
        lines.append(f"| {name} | {n} | {pct(p['both'])} | {pct(p['first'])} | "
                     f"{pct(p['second'])} | {pct(p['others'])} |")
    return "\n".join(lines)


def main_two_source(args, model, t0):
    """--two-source (1. and 2. of the file docstring) -> its rows; printed,
    out_dir/two_source.json and .md."""
    n, n_q = args.n_per_prompt, model.lm.config.n_q
    det_codec = None if args.clean_classifier else model.codec
    settings = dict(classifier_settings(args, det_codec, n_q), detector=True)
    det, acc = get_classifier(settings, args.out_dir, args.device, det_codec, name="detector",
                              heads=DETECTOR_HEADS, train=train_detector)
    print("detector held-out accuracy: "
          + ", ".join(f"{k} {100 * v:.0f}%" for k, v in acc.items()))
    pairs = source_pairs(args.pairs, args.seed)
    mixes = two_source_sets(pairs, n, args.seed, args.duration)
    wav_m = torch.stack([w for w, _, _ in mixes])  # [P * n, T]
    tags, sentences = [t for _, t, _ in mixes], [s for _, _, s in mixes]
    idx = torch.tensor([[synth.SOURCES.index(a), synth.SOURCES.index(b)]
                        for a, b, _ in pairs for _ in range(n)])  # [P * n, 2]
    print(f"{len(pairs)} two-source prompts x {n} clips of {args.duration:g} s, e.g. {tags[0]!r} / "
          f"{sentences[0]!r}")
    gen_t, gen_p = generate_styles(model, tags, sentences, args)
    wav_c = through_codec(model.codec, n_q, wav_m, args.device)
    names = ("real mixes", f"real mixes through the codec ({n_q} codebooks)", "generated, tags",
             "generated, sentences")
    rows = [(name, len(mixes), presence(detect(det, w), idx))
            for name, w in zip(names, (wav_m, wav_c, gen_t, gen_p))]
    print(f"\nmodel {args.model}, {len(pairs)} two-source prompts x {n}, {args.duration:g} s, seed "
          f"{args.seed}, cfg {args.cfg_coef:g}, T {args.temperature:g}; present: sigmoid > "
          f"{THRESHOLD:g}\n")
    md = two_source_table(rows)
    print(md)
    os.makedirs(args.out_dir, exist_ok=True)
    with open(os.path.join(args.out_dir, "two_source.json"), "w") as f:
        json.dump(dict(model=args.model, pairs=pairs, n_per_prompt=n, duration=args.duration,
                       seed=args.seed, **sampling(args), threshold=THRESHOLD,
                       detector=dict(settings, accuracy=acc),
                       rows=[dict(clips=name, n=k, **p) for name, k, p in rows]), f, indent=1)
    with open(os.path.join(args.out_dir, "two_source.md"), "w") as f:
        f.write(md + "\n")
    print(f"\nwrote {args.out_dir}/two_source.json and two_source.md in {time.time() - t0:.0f} s")
    return rows
