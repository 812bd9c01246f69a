"""
Objective evaluation of a text-to-audio model: prompt adherence and Frechet distance, measured by a
small audio classifier trained on the built-in data's labels. Not a test: a script that prints a
markdown table (as bench_codec.py). Its pieces (the classifier, the Frechet distance, the prompt
sets, generation) are in metrics.py, which its modes share.

    python evaluation/eval_audio.py                  # the default model (checkpoints/): 36 prompts
                                                     # x 8 clips x 2 styles
    python evaluation/eval_audio.py --model runs/lm/export --seed 1 --n-per-prompt 16
    python evaluation/eval_audio.py --clean-classifier   # a classifier that never heard the codec
    python evaluation/eval_audio.py --fast --model DIR --out-dir /tmp/e  # tiny sizes, ~30 s (tests)
    python evaluation/eval_audio.py --melody --model runs/lm_melody/export  # how well a melody
                                                     # model follows chroma (see eval_melody.py)
    python evaluation/eval_audio.py --two-source     # prompts naming two sources: does the clip
                                                     # hold both? (see eval_two_source.py)
    python evaluation/eval_audio.py --unknown-words  # prompts with words no caption holds: same
                                                     # sound? (see eval_unknown_words.py)
    python evaluation/eval_audio.py --events --cfg-coef 2  # events per clip of the percussive
                                                     # sources, generated vs real (see 6.)

On 2 CPU cores the first run takes about 5 minutes: ~2.5 min for the classifier (cached: later runs
with the same settings and codec skip it), ~2 min for the 576 generated clips of 3 s with the tiny
LM, the rest seconds.

1. The classifier (Classifier, a small log-mel CNN) has a head per label type: source (the 12
   sound sources, or none), scene (4, or none), instrument (5, or none). "none" is the right answer
   for a clip of the other kind (a piano tune has no scene), so a generated piano tune for "dog
   bark park" is no dog, not a forced guess. Trained on built-in clips generated on the fly, every
   other one rendered by the model's codec (the LM's n_q codebooks): everything the LM makes comes
   out of that decoder, and a classifier that only heard clean clips takes the codec's hiss and
   smearing for other sounds, which caps what any LM could score. --clean-classifier trains on
   clean clips only: a yardstick independent of the codec. Deterministic under --seed, cached in
   out_dir/classifier_<hash of its settings and of the codec's weights>.pt.
2. The prompts: every plausible (source, scene) pair and every instrument. For each, 2 x n
   held-out clips with those labels are found by scanning synth.make_clip: the first n (set A)
   give the prompts, their tags ("dog bark park", "happy piano drums slow") and their sentences
   (the paraphrases, synth.py's templates), and are the "real" row; the other n (set R) are the
   reference of every Frechet distance.
3. The model (model.load_model) generates one clip per prompt of A from its tags and one from its
   sentence, each conditioned as `sample.py --prompt` alone conditions it (generate: sample.py's
   sampling and defaults).
4. Adherence: the share of clips for which the classifier picks the prompted source (sound
   prompts) or instrument (music prompts); the scene: the same over the sound prompts. Real clips
   (A) are the classifier's own accuracy; A through the model's codec (the LM's n_q codebooks) is
   the ceiling of the LM: what its tokens can hold.
5. The Frechet distance (frechet_distance) of Gaussians fitted to the embeddings of a set and of R
   (FAD's recipe [1]); the real row (A vs R) is the floor of a finite sample: FD is biased up for
   small sets, so compare rows of one n.
6. --events instead: events per clip of the percussive and impulsive sources (EVENT_SOURCES: dog
   bark, knocking, footsteps, clock tick, drums), counted by an onset detector (metrics.onsets:
   spectral flux of log mel bands, peak picking). The prompts are 2.'s of these sources (each
   sound source in each of its scenes, and drums); the generated clips (3.) are compared with all
   2n real clips of the same prompts, and with them through the codec (the LM's ceiling: the
   codec may smear or drop an event). Reported per source: the mean and median count, and the
   ratio of the generated mean to the real one. 32 clips per prompt and style by default: 8 are
   too few for a source with one prompt (knocking, the clock; v5's knocking read 1.72x, then
   1.17x). No classifier: about 4 minutes on 2 CPU cores.

Deviation: AudioGen and MusicGen measure FAD with VGGish embeddings and adherence as a KL divergence
of PaSST's AudioSet labels [3]; both classifiers know real sounds. This one knows only the built-in
data's labels, which is all a model trained on that data can be asked for.

References:
1) Frechet Audio Distance, Kilgour et al. 2019, arXiv:1812.08466 (Gaussians fitted to classifier
   embeddings, compared with the Frechet distance). Official code: google-research/google-research
   frechet_audio_distance/
2) The Frechet distance of two Gaussians: Dowson & Landau 1982, J. Multivariate Analysis 12(3);
   FID, Heusel et al. 2017, arXiv:1706.08500 (Tr (S1 S2)^(1/2) by a matrix square root)
3) AudioGen, Kreuk et al. 2022, arXiv:2209.15352 Sec. 4.1; MusicGen, Copet et al. 2023,
   arXiv:2306.05284 Sec. 4.1 (FAD, KL, CLAP). Official code: audiocraft/metrics/fad.py, kld.py,
   clap_consistency.py
4) PANNs, Kong et al. 2020, arXiv:1912.10211 (log-mel CNN audio taggers, pooling over time)
"""

import argparse
import json
import math
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from evaluation import eval_melody, eval_two_source, eval_unknown_words  # noqa: E402
from evaluation.metrics import (adherence, classify, eval_sets, event_density,  # noqa: E402
                                fad, generate_styles, model_classifier, onset_settings,
                                per_class, sampling, set_a, through_codec)
from model import load_model  # noqa: E402

parser = argparse.ArgumentParser(description="Prompt adherence and Frechet distance of a "
                                 "text-to-audio model, measured by a classifier trained on the "
                                 "built-in data.")
parser.add_argument("--model", default="checkpoints",
                    help="what sample.py --model takes (default: the shipped model)")
parser.add_argument("--n-per-prompt", type=int, default=None,
                    help="clips per prompt and style (default 8; --events: 32; --fast: 2)")
parser.add_argument("--duration", type=float, default=None,
                    help="seconds per clip (default 3; --fast: 1)")
parser.add_argument("--seed", type=int, default=0,
                    help="seeds the classifier, the held-out clips and sampling")
parser.add_argument("--cfg-coef", type=float, default=3.0,
                    help="classifier-free guidance of the samples")
parser.add_argument("--temperature", type=float, default=0.9,
                    help="softmax temperature of the samples (sample.py's default)")
parser.add_argument("--out-dir", default="runs/eval",
                    help="the classifier cache, results.json, table.md")
parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                    help="cpu or cuda")
parser.add_argument("--train-clips", type=int, default=None,
                    help="classifier training clips (default 3000)")
parser.add_argument("--epochs", type=int, default=None, help="classifier epochs (default 12; the "
                    "--two-source detector: 36, --fast: 10 and 30)")
parser.add_argument("--width", type=int, default=None,
                    help="classifier channels = embedding size (default 64)")
parser.add_argument("--clean-classifier", action="store_true", help="train the classifier on "
                    "clean clips only (a yardstick independent of the model's codec; default: half "
                    "its clips are codec renderings)")
parser.add_argument("--fast", action="store_true",
                    help="tiny sizes (tests): 1 s clips, a small classifier")
parser.add_argument("--two-source", action="store_true", help="instead: prompts naming two "
                    "sources, and whether the clips hold both (a detector per source trained on "
                    "mixes, see eval_two_source.py)")
parser.add_argument("--pairs", type=int, default=None, help="--two-source: (source, source, scene) "
                    "prompts (default 12; --fast: 3)")
parser.add_argument("--melody", action="store_true", help="instead: melody following of a melody "
                    "model (train_lm.py --melody), 8 x n-per-prompt held-out music clips (see "
                    "eval_melody.py)")
parser.add_argument("--unknown-words", action="store_true", help="instead: the prompts with words "
                    "no caption holds added ('scruffy dog bark furiously park'): do the clips keep "
                    "the known words' sound? (see eval_unknown_words.py)")
parser.add_argument("--events", action="store_true", help="instead: events per clip (an onset "
                    "detector) of dog bark, knocking, footsteps, clock tick and drums prompts, "
                    "generated vs the real clips of the same prompts (see 6. above)")

# epochs are cheap (2.5 s), the clips dear (4 min through the codec, 1 thread)
DEFAULTS = dict(duration=3.0, n_per_prompt=8, train_clips=3000, epochs=12, width=64, held_out=400,
                pairs=12, detector_epochs=36, events_n_per_prompt=32)
FAST = dict(duration=1.0, n_per_prompt=2, train_clips=600, epochs=10, width=32, held_out=200,
            pairs=3, detector_epochs=30, events_n_per_prompt=2)
# --events: the sound sources whose events are short and countable, and the percussive instrument
EVENT_SOURCES = ("dog bark", "knocking", "footsteps", "clock tick", "drums")


def table(rows):
    """Markdown table of rows [(name, n, (what, scene) tags, (what, scene) paraphrases, FD tags,
    FD paraphrases)]."""
    pct = lambda x: f"{100 * x:.0f}%"  # noqa: E731
    lines = ["| clips | n | source/instrument, tags | scene, tags | source/instrument, paraphrases "
             "| scene, paraphrases | FD, tags | FD, paraphrases |",
             "|---|---|---|---|---|---|---|---|"]
    for name, n, (wt, st), (wp, sp), ft, fp in rows:
        lines.append(f"| {name} | {n} | {pct(wt)} | {pct(st)} | {pct(wp)} | {pct(sp)} | {ft:.2f} "
                     f"| {fp:.2f} |")
    return "\n".join(lines)


def parse_args(argv=None):
    """The flags, with the sizes --fast or the defaults give to those left unset; bad values: a
    one-line error."""
    args = parser.parse_args(argv)
    sizes = FAST if args.fast else DEFAULTS
    # the modes' own sizes: --two-source's detector epochs, --events' clips (why: 6. above)
    own = dict(epochs="detector_epochs" if args.two_source else "epochs",
               n_per_prompt="events_n_per_prompt" if args.events else "n_per_prompt")
    for k in ("duration", "n_per_prompt", "train_clips", "epochs", "width", "pairs"):
        if getattr(args, k) is None:
            setattr(args, k, sizes[own.get(k, k)])
    args.held_out = sizes["held_out"]
    if args.n_per_prompt < 2 or not 0 < args.duration < math.inf or min(
            args.train_clips, args.epochs, args.width, args.pairs) < 1:
        raise SystemExit("eval_audio.py: error: --n-per-prompt must be >= 2 (a covariance needs 2 "
                         "clips), --duration, --train-clips, --epochs, --width and --pairs > 0")
    # the clip seeds are TRAIN_SEED + seed etc., below data's 2**31 split offset
    if not 0 <= args.seed < 2**30:
        raise SystemExit(f"eval_audio.py: error: --seed {args.seed} must be in [0, 2**30)")
    return args


def load(args):
    """--model -> the frozen TextToAudio (model.load_model) on --device, or a one-line error."""
    try:
        return load_model(args.model, args.device)
    except Exception as e:
        raise SystemExit(f"eval_audio.py: error: cannot load --model {args.model}: "
                         f"{(str(e).strip() or type(e).__name__).splitlines()[0]}") from None


def compare(args, model, clf):
    """Steps 2 to 4 of the file docstring, printed -> the table's rows (see table)."""
    # 2. the prompts and the real clips: set A (prompts, the real row), set R (the reference)
    n, n_q = args.n_per_prompt, model.lm.config.n_q
    sets = eval_sets(n, args.seed, args.duration)
    A, prompts = set_a(sets, n)
    R = [c for _, clips in sets for c in clips[n:]]
    tags, sentences = [c["tags"] for c in A], [c["sentence"] for c in A]
    # [P * n, T] each
    wav_a, wav_r = (torch.stack([torch.from_numpy(c["wav"]) for c in s]) for s in (A, R))
    print(f"{len(sets)} prompts x {n} clips of {args.duration:g} s, e.g. {tags[0]!r} / "
          f"{sentences[0]!r}")
    # 3. generated clips (a melody model gets the null melody), and set A through the codec
    gen_t, gen_p = generate_styles(model, tags, sentences, args)
    wav_c = through_codec(model.codec, n_q, wav_a, args.device)
    # 4. classify and compare: adherence per caption style, Frechet distance to R
    (emb_r, _), (emb_a, pred_a), (emb_c, pred_c), (emb_t, pred_t), (emb_p, pred_p) = (
        classify(clf, w) for w in (wav_r, wav_a, wav_c, gen_t, gen_p))
    real, cod = adherence(pred_a, prompts), adherence(pred_c, prompts)
    fd_a, fd_c = fad(emb_a, emb_r), fad(emb_c, emb_r)
    rows = [("generated", len(A), adherence(pred_t, prompts), adherence(pred_p, prompts),
             fad(emb_t, emb_r), fad(emb_p, emb_r)),
            ("real", len(A), real, real, fd_a, fd_a),
            (f"real through the codec ({n_q} codebooks)", len(A), cod, cod, fd_c, fd_c)]
    print(f"\nmodel {args.model}, {len(sets)} prompts x {n}, {args.duration:g} s, seed "
          f"{args.seed}, cfg {args.cfg_coef:g}, T {args.temperature:g}; FD to {len(R)} other real "
          "clips of the same prompts\n")
    print(table(rows))
    print(f"\nper class, generated from tags: {per_class(pred_t, prompts)}")
    print(f"per class, generated from paraphrases: {per_class(pred_p, prompts)}")
    return rows


def events_table(rows, n_q):
    """Markdown table of --events' rows [dict(source, n, n_real, and per set: {mean, median})]:
    events per clip, mean / median, and the generated means over the real one."""
    cell = lambda x: f"{x['mean']:.2f} / {x['median']:g}"  # noqa: E731
    lines = [f"| source | clips, generated / real | real | real through the codec ({n_q} "
             "codebooks) | generated, tags | generated, sentences | tags / real | sentences / "
             "real |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['source']} | {r['n']} / {r['n_real']} | {cell(r['real'])} | "
                     f"{cell(r['codec'])} | {cell(r['tags'])} | {cell(r['sentences'])} | "
                     f"{r['ratio_tags']:.2f} | {r['ratio_sentences']:.2f} |")
    return "\n".join(lines)


def event_rows(sets, n, counts):
    """sets: eval_sets' prompts of EVENT_SOURCES, counts {real, codec: [P * 2n], tags, sentences:
    [P * n]} events per clip (set by set, prompt by prompt) -> a row per source: dict(source, n,
    n_real, {set: dict(mean, median, counts)}, ratio_tags, ratio_sentences: generated mean / real
    mean)."""
    rows = []
    for source in EVENT_SOURCES:
        mine = [(p[0] or p[2]) == source for p, _ in sets]  # [P]: the prompts of this source
        k = dict(real=2 * n, codec=2 * n, tags=n, sentences=n)  # clips per prompt in each set
        row = dict(source=source, n=n * sum(mine), n_real=2 * n * sum(mine))
        for name, c in counts.items():
            c = [x for j, m in enumerate(mine) if m for x in c[j * k[name]:(j + 1) * k[name]]]
            row[name] = dict(mean=sum(c) / len(c), median=statistics.median(c), counts=c)
        for style in ("tags", "sentences"):
            real = row["real"]["mean"]
            row[f"ratio_{style}"] = row[style]["mean"] / real if real else math.nan
        rows.append(row)
    return rows


def main_events(args, model, t0):
    """--events (6. of the file docstring) -> its rows; printed, out_dir/events.json and
    events.md."""
    n, n_q = args.n_per_prompt, model.lm.config.n_q
    sets = [(p, c) for p, c in eval_sets(n, args.seed, args.duration)
            if (p[0] or p[2]) in EVENT_SOURCES]  # (source, scene) pairs, and drums
    A, _ = set_a(sets, n)  # the prompts' clips
    tags, sentences = [c["tags"] for c in A], [c["sentence"] for c in A]
    # [P * 2n, T]: all real clips of the prompts
    wav_r = torch.stack([torch.from_numpy(c["wav"]) for _, clips in sets for c in clips])
    print(f"{len(sets)} prompts x {n} clips of {args.duration:g} s ({2 * n} real ones), e.g. "
          f"{tags[0]!r} / {sentences[0]!r}")
    gen_t, gen_p = generate_styles(model, tags, sentences, args)
    wav_c = through_codec(model.codec, n_q, wav_r, args.device)
    counts = {name: event_density(w).tolist()
              for name, w in (("real", wav_r), ("codec", wav_c), ("tags", gen_t),
                              ("sentences", gen_p))}
    rows = event_rows(sets, n, counts)
    print(f"\nmodel {args.model}, {len(sets)} prompts x {n}, {args.duration:g} s, seed "
          f"{args.seed}, cfg {args.cfg_coef:g}, T {args.temperature:g}; events per clip "
          "(metrics.onsets), mean / median\n")
    md = events_table(rows, n_q)
    print(md)
    os.makedirs(args.out_dir, exist_ok=True)
    with open(os.path.join(args.out_dir, "events.json"), "w") as f:
        json.dump(dict(model=args.model, n_per_prompt=n, duration=args.duration, seed=args.seed,
                       **sampling(args), detector=onset_settings(), rows=rows), f, indent=1)
    with open(os.path.join(args.out_dir, "events.md"), "w") as f:
        f.write(md + "\n")
    print(f"\nwrote {args.out_dir}/events.json and events.md in {time.time() - t0:.0f} s")
    return rows


def main(argv=None):
    args, t0 = parse_args(argv), time.time()
    # the model first: a missing one is an error now, not after training the classifier
    model = load(args)
    if args.melody:
        return eval_melody.main_melody(args, model, t0)
    if args.two_source:
        return eval_two_source.main_two_source(args, model, t0)
    if args.unknown_words:
        return eval_unknown_words.main_unknown_words(args, model, t0)
    if args.events:
        return main_events(args, model, t0)
    clf, settings, acc = model_classifier(args, model)  # 1.
    rows = compare(args, model, clf)  # 2. to 4.
    results = dict(model=args.model, n_per_prompt=args.n_per_prompt, duration=args.duration,
                   seed=args.seed, **sampling(args), classifier=dict(settings, accuracy=acc),
                   rows=[dict(clips=r[0], n=r[1], tags=dict(what=r[2][0], scene=r[2][1]),
                              paraphrases=dict(what=r[3][0], scene=r[3][1]), fd_tags=r[4],
                              fd_paraphrases=r[5])
                         for r in rows])
    os.makedirs(args.out_dir, exist_ok=True)
    with open(os.path.join(args.out_dir, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    with open(os.path.join(args.out_dir, "table.md"), "w") as f:
        f.write(table(rows) + "\n")
    print(f"\nwrote {args.out_dir}/results.json and table.md in {time.time() - t0:.0f} s")
    return results


if __name__ == "__main__":
    main()
