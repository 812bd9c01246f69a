"""
Melody following of a melody model (train_lm.py --melody, as MusicGen-melody): does a generated clip keep the
reference melody's pitch classes? Run through eval_audio.py, which holds the model loading and the flags:

    python evaluation/eval_audio.py --melody --model runs/lm_melody/export [--n-per-prompt 8 --duration 3]

For 8 x n-per-prompt held-out music clips (make_clip(i, EVAL_SEED + seed, kind='music')), each clip's tags are the
prompt and its own waveform the melody, as sample.py --melody conditions; melody_agreement compares the chroma of
the generated clip with the reference's, frame by frame, and gives that share three yardsticks: the same prompts
with the null melody (what the text alone gives), the reference through the codec (the ceiling), two unrelated
reference clips (chance).

Deviation: MusicGen reports the cosine similarity of the reference's and the generated clip's chromagrams; this
counts equal dominant pitch classes (MelodyConditioner.chroma), what the LM is conditioned on.

References:
1) MusicGen, Copet et al. 2023, arXiv:2306.05284 Sec. 2.3 (chroma conditioning) and Sec. 4.1 (chroma cosine
   similarity). Official code: audiocraft/modules/conditioners.py (ChromaStemConditioner),
   audiocraft/metrics/chroma_cosinesim.py
"""

import json
import os
import time

import torch

import synth
from eval_audio import EVAL_SEED


@torch.no_grad()
def melody_agreement(model, n, seed, duration, cfg_coef):
    """How well a melody model follows a melody: for n held-out music clips, the clip's tags as the prompt and its own
    waveform as --melody (as sample.py does), the share of chroma frames (MelodyConditioner.chroma: each frame's
    dominant pitch class) of the generated clip equal to the clip's; the same with the null melody (same prompts,
    seeds); the clip itself through the codec (the LM's n_q codebooks: the ceiling); each real clip vs the next one (two
    unrelated tunes: chance) -> dict(melody=, null_melody=, real_through_codec=, other_clip=) shares in [0, 1]."""
    lm, melody, codec = model.lm, model.melody, model.codec
    clips = [synth.make_clip(i, EVAL_SEED + seed, duration, codec.sample_rate, kind="music") for i in range(n)]
    wavs = [torch.from_numpy(c["wav"])[None].repeat(codec.channels, 1) for c in clips]  # [C, T] each
    ref = melody.chroma(wavs)  # [n, chroma_len]
    out = {}
    for name, use in (("melody", True), ("null_melody", False)):
        gen = [model.generate([c["tags"]], duration, cfg_coef, seed=1000 * seed + i,
                              melody_wav=w if use else None)[0] for i, (c, w) in enumerate(zip(clips, wavs))]
        out[name] = (melody.chroma(gen) == ref).float().mean().item()
    coded = [codec.decode(codec.encode(w[None].to(ref.device), n_q=lm.config.n_q))[0] for w in wavs]  # the ceiling
    out["real_through_codec"] = (melody.chroma(coded) == ref).float().mean().item()
    out["other_clip"] = (ref == ref.roll(1, 0)).float().mean().item()
    return out


def main_melody(args, model, t0):
    """--melody: melody_agreement on 8 x n-per-prompt held-out music clips -> its table, out_dir/melody.json."""
    if model.melody is None:
        raise SystemExit(f"eval_audio.py: error: --melody: {args.model} has no melody conditioner; train one "
                         f"with train_lm.py --melody")
    n_clips = 8 * args.n_per_prompt
    res = melody_agreement(model, n_clips, args.seed, args.duration, args.cfg_coef)
    md = ("| chroma frames equal to the reference melody's | share |\n|---|---|\n"
          + "\n".join(f"| {k.replace('_', ' ')} | {100 * v:.0f}% |" for k, v in res.items()))
    print(f"model {args.model}, {n_clips} held-out music clips of {args.duration:g} s, seed {args.seed}, cfg "
          f"{args.cfg_coef:g}\n\n{md}")
    os.makedirs(args.out_dir, exist_ok=True)
    with open(os.path.join(args.out_dir, "melody.json"), "w") as f:
        json.dump(dict(model=args.model, n=n_clips, duration=args.duration, seed=args.seed, **res), f, indent=1)
    print(f"\nwrote {args.out_dir}/melody.json in {time.time() - t0:.0f} s")
    return res
