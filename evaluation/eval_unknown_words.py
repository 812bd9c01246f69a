"""
Unknown words never derail a known prompt: eval_audio.py's prompts with 2 or 3 ordinary English
words added that no built-in caption holds ("dog bark park" -> "scruffy dog bark furiously park
yesterday"), and whether the generated clips still hold the prompted source or instrument and scene.
Run through eval_audio.py, whose classifier, prompts and generation it reuses:

    python evaluation/eval_audio.py --unknown-words [--n-per-prompt 8 --model checkpoints]

1. The invented words (UNKNOWN_WORDS): 40 adjectives, adverbs and nouns, checked at every run
   (check_unknown_words): none is a word of synth.py, which writes every built-in caption (its tag
   names, templates, synonyms and connectives: synth_words, a superset of the caption vocabulary),
   nor its lemma; none holds such a word of 4+ letters ("breakfast" holds "fast": a tokenizer that
   spells it in pieces may read the known piece); normalize_text leaves each as it is (no stop word:
   a normalising model reads it as written).
2. The prompts: eval_audio's held-out set A (every plausible (source, scene) pair and every
   instrument, n clips each), its tags and its sentences as they are (the plain prompts) and each
   with 2 or 3 invented words inserted (add_unknown): one right before or after a word of the
   prompted source or instrument (an unknown word beside "barking" once derailed the clip), the
   others anywhere; drawn from (seed, clip, style).
3. One clip per prompt (metrics.generate) and its adherence (metrics.adherence with
   eval_audio's classifier): the share of clips whose prompted source or instrument the classifier
   picks, and of sound clips whose scene it picks. The plain rows use eval_audio's seeds, so they
   are its "generated" row (the same clips); unknown words derail nothing if the rows with them
   match those. For information, how the model's tokenizer reads the invented words: the tokens they
   add to a prompt, and the share of <unk> tokens (a T5 trained here, the shipped one included,
   reads a word it never saw as one <unk>; a model exported before Tokenizer(known=...) spells it in
   letter pieces, none of them <unk>).

References:
1) Word dropout with <unk>: Bowman et al. 2016, arXiv:1511.06349 (how train_lm.py --unk-dropout
   teaches an LM that an unknown word says nothing). Official code of the conditioner it extends:
   audiocraft/modules/conditioners.py (T5Conditioner, word_dropout)
"""

import json
import os
import re
import time
import warnings

import numpy as np

import synth
from conditioners import normalize_text
from evaluation.metrics import (adherence, classify, eval_sets, generate, model_classifier,
                                per_class, sampling, set_a, token_counts)

UNKNOWN_WORDS = ("scruffy", "furiously", "yesterday", "neighbour", "lovely", "ancient", "purple",
                 "enormous", "suddenly", "gently", "grumpy", "tuesday", "honestly", "curious",
                 "golden", "elderly", "clumsy", "silver", "brave", "lazy", "fancy", "cousin",
                 "famous", "ordinary", "wonderful", "probably", "apparently", "grandmother",
                 "village", "winter", "summer", "velvet", "friendly", "bizarre", "polite",
                 "vintage", "chocolate", "secret", "proud", "mysterious")
# (row name, make_clip's key) of the two caption styles
STYLES = (("tags", "tags"), ("sentences", "sentence"))
UNKNOWN_SEED = 0x756E6B  # "unk": the insertions' own stream, apart from any clip's


def synth_words():
    """Every word of synth.py's source, lower case, with its lemma (normalize_text): a superset of
    the words a built-in caption can hold, taken whole so that nothing in the caption tables or in
    _caption's code is missed."""
    with open(synth.__file__) as f:
        words = set(re.findall(r"[a-z]+", f.read().lower()))
    return words | {normalize_text(w) for w in words} - {""}


def check_unknown_words(words=UNKNOWN_WORDS):
    """words, if each is unknown to a model trained on the built-in captions (step 1 of the file
    docstring), else a ValueError naming those that are not and why."""
    known = synth_words()
    bad = [f"{w} (repeated)" for w in sorted(set(words)) if words.count(w) > 1]
    for w in words:
        # "fast" in "breakfast"
        inside = sorted(k for k in known if len(k) >= 4 and k in w and k != w)
        if w in known or normalize_text(w) != w or inside:
            why = "in synth.py" if w in known else inside or "changed by normalize_text"
            bad.append(f"{w} ({why})")
    if bad:
        raise ValueError(f"invented words a model may know: {', '.join(bad)}; pick others")
    return words


def key_words(labels):
    """A prompt's labels (source, scene, instrument) -> the lemmas of its source or instrument name,
    the words the classifier checks: ("dog bark", "park", None) -> {"dog", "bark"}, (None, None,
    "drums") -> {"drum"}."""
    return set(normalize_text(labels[0] or labels[2]).split())


def add_unknown(text, key, rng, words=UNKNOWN_WORDS):
    """text with 2 or 3 distinct words of `words` inserted between its (whitespace-separated) words,
    drawn by rng (a numpy Generator): all but the first anywhere, then the first right before or
    after a word whose lemma is in key ("barking" -> "bark"; inserted last, so nothing comes between
    them). Removing the inserted words gives text."""
    out = text.split()
    picked = [words[i] for i in rng.choice(len(words), int(rng.integers(2, 4)), replace=False)]
    for w in picked[1:]:
        # position 0: before the first word, len: after the last
        out.insert(int(rng.integers(len(out) + 1)), w)
    beside = sorted({j for i, w in enumerate(out) if normalize_text(w) in key for j in (i, i + 1)})
    if not beside:
        raise ValueError(f"no word of {sorted(key)} in {text!r}: nothing to put an unknown word "
                         "beside")
    out.insert(beside[rng.integers(len(beside))], picked[0])
    return " ".join(out)


def unknown_prompts(texts, prompts, seed, style):
    """texts [N] (one style's captions), prompts [N] (their labels) -> [N] add_unknown of each, the
    i-th drawn from (seed, i, style: 0 tags, 1 sentences): the same for every run and model, another
    for each clip and style."""
    return [add_unknown(t, key_words(p), np.random.default_rng([seed, i, style, UNKNOWN_SEED]))
            for i, (t, p) in enumerate(zip(texts, prompts))]


def unk_share(text, texts):
    """The share of the prompts' tokens (eos included) that are <unk>, as the model's
    TextConditioner `text` reads them (normalised if it normalises)."""
    tok = text.tokenizer
    ids, mask = tok.encode([normalize_text(t) if text.normalize else t for t in texts])  # [N, L]
    return (ids[mask] == tok.unk_id).float().mean().item()


def unknown_table(rows):
    """Markdown table of rows [dict(prompts, n, what, scene, tokens, added, unk)]: adherence, then
    the tokens per prompt (eos included), the share of them the invented words add, and the share
    that is <unk>."""
    pct = lambda x: f"{100 * x:.0f}%"  # noqa: E731
    lines = ["| prompts | n | source/instrument | scene | tokens per prompt | from invented words "
             "| <unk> |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['prompts']} | {r['n']} | {pct(r['what'])} | {pct(r['scene'])} | "
                     f"{r['tokens']:.1f} | {pct(r['added'])} | {pct(r['unk'])} |")
    return "\n".join(lines)


def unknown_rows(args, model, clf, A, prompts):
    """Steps 2 and 3 of the file docstring for set A (make_clip dicts) and its labels [(source,
    scene, instrument)] -> (rows, {row name: its prompts}). Seeds: eval_audio's for the plain
    captions (seed: tags, seed + 1: sentences), 2 more for those with invented words."""
    rows, texts = [], {}
    for s, (name, key) in enumerate(STYLES):
        plain = [c[key] for c in A]
        texts[name] = plain
        texts[f"{name} + unknown words"] = unknown_prompts(plain, prompts, args.seed, s)
        counts = {row: token_counts(model.conditioner, texts[row])
                  for row in (name, f"{name} + unknown words")}
        n_plain = sum(counts[name])  # tokens, eos included
        for k, (row, lengths) in enumerate(counts.items()):
            wav = generate(model, texts[row], lengths, args.duration, args.seed + s + 2 * k,
                           sampling(args))
            pred = classify(clf, wav)[1]
            what, scene = adherence(pred, prompts)
            rows.append(dict(prompts=row, n=len(A), what=what, scene=scene,
                             tokens=sum(lengths) / len(A), added=1 - n_plain / sum(lengths),
                             unk=unk_share(model.conditioner, texts[row]),
                             per_class=per_class(pred, prompts)))
    return rows, texts


def main_unknown_words(args, model, t0):
    """--unknown-words -> its rows; printed, out_dir/unknown_words.json and unknown_words.md."""
    check_unknown_words()
    clf, settings, acc = model_classifier(args, model)  # eval_audio's classifier, as its main mode
    n = args.n_per_prompt
    sets = eval_sets(n, args.seed, args.duration)
    A, prompts = set_a(sets, n)
    # every prompt here has unknown words on purpose: the table counts them
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="unknown words")
        rows, texts = unknown_rows(args, model, clf, A, prompts)
    print(f"\nmodel {args.model}, {len(sets)} prompts x {n}, {args.duration:g} s, seed "
          f"{args.seed}, cfg {args.cfg_coef:g}, T {args.temperature:g}; e.g.")
    for name, t in texts.items():
        print(f"  {name}: {t[0]!r}")
    md = unknown_table(rows)
    print(f"\n{md}\n")
    for r in rows:
        print(f"per class, {r['prompts']}: {r['per_class']}")
    os.makedirs(args.out_dir, exist_ok=True)
    with open(os.path.join(args.out_dir, "unknown_words.json"), "w") as f:
        json.dump(dict(model=args.model, n_per_prompt=n, duration=args.duration, seed=args.seed,
                       **sampling(args), unknown_words=UNKNOWN_WORDS,
                       classifier=dict(settings, accuracy=acc), rows=rows, prompts=texts),
                  f, indent=1)
    with open(os.path.join(args.out_dir, "unknown_words.md"), "w") as f:
        f.write(md + "\n")
    print(f"\nwrote {args.out_dir}/unknown_words.json and unknown_words.md in "
          f"{time.time() - t0:.0f} s")
    return rows
