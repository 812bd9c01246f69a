"""
Tests for evaluation/eval_audio.py (the objective evaluation), metrics.py (its classifier, Frechet
distance, prompt sets and generation) and its modes' files eval_two_source.py,
eval_unknown_words.py and eval_melody.py. Run: python -m pytest -q tests/test_eval_audio.py (CPU,
one thread, about 80 s).

The Frechet distance against cases computed by hand (identical Gaussians, a mean shift, 1-D,
commuting covariances) and scipy's matrix square root; the classifier, trained with --fast sizes on
clean clips and their rendering by a tiny random codec, recognises held-out clips far above chance,
is deterministic and is cached under its settings and the codec's hash; the prompt sets carry the
prompted labels; generation batches never pad a prompt; the whole script runs with --fast against
a tiny random model in train_lm.py's export format (conftest.py's tiny_lm_export) and prints the
table. --two-source: the prompts pair two sources of a common scene, the detector (trained on
mixes) hears both sources of held-out mixes far above chance, and the mode prints its table.
--unknown-words: no invented word is a word of synth.py (which writes every caption), the prompts
with them are seeded, keep every known word in order and put one invented word beside the
prompted source, and the mode prints its table. --melody (eval_melody.py) runs with a melody model
and refuses a model without one. The onset detector (metrics.onsets) finds clicks, bursts and pings
at their times, at any level and rate, and nothing in steady sounds; on built-in clips it counts
the events their generator placed (replayed from its random draws); --events gathers the counts
per source and prints its table.
"""
import copy
import json
import math
import re
import types
from pathlib import Path

import numpy as np
import pytest
import torch

import audio
import sounds
import synth
from checkpoint import codec_hash
from conditioners import normalize_text
from evaluation import eval_audio as ea
from evaluation import eval_melody as em
from evaluation import eval_two_source as ets
from evaluation import eval_unknown_words as euw
from evaluation import metrics
from model import load_model


pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py

# -----------------------------------------------------------------------------
# Frechet distance


def random_cov(d, seed):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(d, d, generator=g, dtype=torch.float64)
    return a @ a.T / d + 0.1 * torch.eye(d, dtype=torch.float64)


def test_frechet_identical_gaussians_is_zero():
    mu, cov = torch.randn(16, dtype=torch.float64), random_cov(16, 0)
    assert abs(metrics.frechet_distance(mu, cov, mu, cov)) < 1e-9
    emb = torch.randn(200, 8, dtype=torch.float64)
    assert abs(metrics.fad(emb, emb)) < 1e-9
    # the order of the clips does not matter
    assert abs(metrics.fad(emb, emb[torch.randperm(200)])) < 1e-9


def test_frechet_mean_shift_with_identity_covariances():
    eye = torch.eye(8, dtype=torch.float64)
    d = torch.tensor([1.0, -2.0, 0.5, 0, 0, 3.0, 0, 0.25], dtype=torch.float64)
    mu = torch.randn(8, dtype=torch.float64)
    shift = d.pow(2).sum().item()
    assert metrics.frechet_distance(mu, eye, mu + d, eye) == pytest.approx(shift, abs=1e-12)
    for scale in (2.0, 4.0):  # the same shift under any common covariance: still ||d||^2
        fd = metrics.frechet_distance(mu, scale * eye, mu + d, scale * eye)
        assert fd == pytest.approx(shift)


def test_frechet_by_hand():
    # 1-D: (m1 - m2)^2 + v1 + v2 - 2 sqrt(v1 v2) = (1 - 3)^2 + 4 + 9 - 2 * 6 = 5
    fd = metrics.frechet_distance([1.0], [[4.0]], [3.0], [[9.0]])
    assert fd == pytest.approx(5.0, abs=1e-12)
    # diagonal (commuting) covariances: sum (sqrt a_i - sqrt b_i)^2
    a, b = torch.tensor([1.0, 4.0, 9.0]), torch.tensor([4.0, 4.0, 1.0])
    zero = torch.zeros(3)
    fd = metrics.frechet_distance(zero, torch.diag(a), zero, torch.diag(b))
    assert fd == pytest.approx(1 + 0 + 4, abs=1e-12)
    # gaussian(): numpy's unbiased covariance
    emb = torch.randn(50, 4, dtype=torch.float64)
    mu, cov = metrics.gaussian(emb)
    assert torch.allclose(mu, emb.mean(0))
    assert np.allclose(cov.numpy(), np.cov(emb.numpy(), rowvar=False))


def test_frechet_matches_scipy_sqrtm():
    """Non-commuting covariances: the eigen method equals FAD's original formula with
    scipy.linalg.sqrtm."""
    linalg = pytest.importorskip("scipy.linalg")
    c1, c2 = random_cov(12, 1), random_cov(12, 2)
    mu1, mu2 = torch.randn(12, dtype=torch.float64), torch.randn(12, dtype=torch.float64)
    covmean = linalg.sqrtm(c1.numpy() @ c2.numpy()).real
    ref = ((mu1 - mu2) ** 2).sum().item() + np.trace(c1.numpy() + c2.numpy() - 2 * covmean)
    assert metrics.frechet_distance(mu1, c1, mu2, c2) == pytest.approx(ref, rel=1e-9)
    r = metrics.sqrtm_psd(c1)
    assert torch.allclose(r @ r, c1) and torch.allclose(r, r.T)

# -----------------------------------------------------------------------------
# a tiny model, the classifier


@pytest.fixture(scope="module")
def model(tiny_lm_export, tmp_path_factory):
    """A tiny model with random weights on a random tiny codec, as train_lm.py exports one
    (conftest.py's tiny_lm_export)."""
    return tiny_lm_export(tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="module")
def out_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("eval")


@pytest.fixture(scope="module")
def codec(model):
    m = load_model(model, "cpu")
    return m.codec, m.lm.config.n_q


@pytest.fixture(scope="module")
def classifier(codec, out_dir):
    """The --fast classifier of the model's codec, trained into out_dir: the end-to-end test reuses
    it from there."""
    settings = metrics.classifier_settings(ea.parse_args(["--fast"]), *codec)
    return metrics.get_classifier(settings, str(out_dir), "cpu", codec[0], log=lambda *a: None)


def test_classifier_learns(classifier, codec, out_dir):
    model, acc = classifier
    # chance: 1/12 sources, ~1/3 scenes (the most frequent one), 1/5 instruments. --fast (600 clips
    # of 1 s, half of them through the random codec, 10 epochs) gives about 0.6, 0.6, 0.9
    assert acc["source"] > 0.3 and acc["scene"] > 0.4, acc
    assert acc["instrument"] > 0.7 and acc["kind"] > 0.9, acc
    assert {"source (codec)", "scene (codec)", "instrument (codec)", "kind (codec)"} < set(acc)
    # cached under a name made from its settings, the codec's hash among them; the same settings
    # reload it
    (path,) = out_dir.glob("classifier_*.pt")
    settings = metrics.classifier_settings(ea.parse_args(["--fast"]), *codec)
    assert settings["codec"] == codec_hash(codec[0]) and settings["n_q"] == 4
    assert metrics.classifier_settings(ea.parse_args(["--fast"]))["codec"] is None
    assert settings["synth"] == synth.fingerprint()  # an edited built-in data: a new classifier
    again, acc2 = metrics.get_classifier(settings, str(out_dir), "cpu", codec[0],
                                         log=lambda *a: None)
    assert acc2 == acc and all(torch.equal(a, b) for a, b in zip(model.state_dict().values(),
                                                                 again.state_dict().values()))
    assert len(list(out_dir.glob("classifier_*.pt"))) == 1
    # the embedding and the heads: [B, width], one prediction per head; a music clip has no source
    wav = torch.stack([torch.from_numpy(synth.make_clip(i, 5, 1.0, kind="music")["wav"])
                       for i in range(8)])
    emb, preds = metrics.classify(model, wav)
    assert emb.shape == (8, 32) and set(preds) == {"source", "scene", "instrument"}
    assert (preds["source"] == 0).float().mean() > 0.7  # 0: "none"


def test_classifier_is_deterministic(codec):
    """The same settings give the same weights, bit for bit (tiny sizes: 24 clips of 0.5 s, 1
    epoch)."""
    s = dict(metrics.classifier_settings(ea.parse_args(["--fast"]), *codec), train_clips=24,
             epochs=1, duration=0.5, held_out=8)
    (a, acc_a), (b, acc_b) = (metrics.train_classifier(s, "cpu", codec[0], log=lambda *x: None)
                              for _ in range(2))
    assert acc_a == acc_b and all(torch.equal(x, y) for x, y in zip(a.state_dict().values(),
                                                                    b.state_dict().values()))
    clean = dict(s, seed=1, codec=None, n_q=None)  # clean clips only
    c, acc_c = metrics.train_classifier(clean, "cpu", log=lambda *x: None)
    assert not torch.equal(a.heads["source"].weight, c.heads["source"].weight)
    assert "source (codec)" not in acc_c


def test_log_mel_ignores_the_level():
    wav = torch.from_numpy(synth.make_clip(0, 0, 1.0)["wav"])[None]
    x = metrics.log_mel(wav)
    assert x.shape == (1, metrics.N_MELS, 63) and x.max() == 1.0 and x.min() >= -1.0
    assert torch.allclose(metrics.log_mel(0.1 * wav), x, atol=1e-4)


def test_prompt_sets_and_adherence():
    prompts = metrics.prompt_labels()
    # plausible pairs only
    assert ("dog bark", "park", None) in prompts and ("knocking", "beach", None) not in prompts
    assert prompts[-5:] == [(None, None, i) for i in synth.INSTRUMENTS]
    sets = metrics.eval_sets(2, 0, 0.2)
    assert [p for p, _ in sets] == prompts
    for (src, scene, instr), clips in sets:
        assert len(clips) == 4 and len({c["sentence"] for c in clips}) >= 1
        for c in clips:
            labels = c["labels"]
            assert (labels["source"], labels["scene"], labels["instrument"]) == (src, scene, instr)
            if src is not None:
                assert c["tags"] == f"{src} {scene}"
    # adherence: the prompted source/instrument, and the scene of sound prompts only
    pr = [("dog bark", "park", None), ("rain", "street", None), (None, None, "piano"),
          (None, None, "bass")]
    idx = lambda h, name: metrics.HEADS[h].index(name)  # noqa: E731
    preds = dict(source=torch.tensor([idx("source", "dog bark"), idx("source", "siren"), 0, 0]),
                 scene=torch.tensor([idx("scene", "beach"), idx("scene", "street"), 0, 0]),
                 instrument=torch.tensor([0, 0, idx("instrument", "piano"),
                                          idx("instrument", "drums")]))
    assert metrics.adherence(preds, pr) == (0.5, 0.5)  # dog and piano right; the rain's scene right
    assert metrics.per_class(preds, pr) == "dog bark 1/1, rain 0/1, piano 1/1, bass 0/1"


@pytest.mark.parametrize("masked", [False, True])
def test_generate_batches(masked):
    """Without cross_attention_mask no prompt is padded (a batch holds one token count); with it any
    prompts share a batch. Each clip lands at its prompt's place, resampled to 16 kHz and cut or
    zero-padded to the duration."""
    calls = []

    def fake_generate(prompts, duration, cfg_coef, seed):  # [b, C, T] at the codec's rate
        calls.append(prompts)
        return torch.stack([torch.full((1, 1600), len(p) / 100) for p in prompts])

    lm = types.SimpleNamespace(config=types.SimpleNamespace(cross_attention_mask=masked))
    model = types.SimpleNamespace(lm=lm, codec=types.SimpleNamespace(sample_rate=16000),
                                  generate=fake_generate)
    texts, lengths = ["aa", "bbbb", "cc", "dddd", "ee"], [1, 2, 1, 2, 1]
    wav = metrics.generate(model, texts, lengths, 0.2, 0, dict(cfg_coef=3.0), batch=2,
                           log=lambda *a: None)
    if masked:
        assert calls == [["aa", "bbbb"], ["cc", "dddd"], ["ee"]]
    else:
        assert calls == [["aa", "cc"], ["ee"], ["bbbb", "dddd"]]
    assert wav.shape == (5, 3200)
    assert torch.allclose(wav[:, 0], torch.tensor([len(t) / 100 for t in texts]), atol=1e-4)
    assert not wav[:, 1600:].any()  # shorter clips are zero-padded to the duration

# -----------------------------------------------------------------------------
# two sources


@pytest.fixture(scope="module")
def detector(codec, out_dir):
    """The --fast two-source detector of the model's codec, trained into out_dir (the --two-source
    run reuses it)."""
    args = ea.parse_args(["--fast", "--two-source"])
    settings = dict(metrics.classifier_settings(args, *codec), detector=True)
    return metrics.get_classifier(settings, str(out_dir), "cpu", codec[0], log=lambda *a: None,
                                  name="detector", heads=ets.DETECTOR_HEADS,
                                  train=ets.train_detector)


def test_two_source_prompts_and_presence():
    pairs = ets.source_pairs(20, 0)
    assert pairs == ets.source_pairs(20, 0) and pairs != ets.source_pairs(20, 1)
    assert len(set(pairs)) == 20
    for a, b, scene in pairs:  # two different sources, in a scene both are placed in
        assert a != b and scene in synth.SCENES_OF[a] and scene in synth.SCENES_OF[b]
    mixes = ets.two_source_sets(pairs[:2], 3, 0, 0.5)
    assert len(mixes) == 6
    assert all(w.shape == (8000,) and w.abs().max() <= 0.99 for w, _, _ in mixes)
    a, b, scene = pairs[0]
    assert all(t == f"{a} {scene} {b} {scene}" for _, t, _ in mixes[:3])  # mix_clips joins the tags
    assert all(len(s) > len(t) for _, t, s in mixes)  # and the sentences
    # presence: rows 0 and 1 prompt sources (0, 1), row 2 (2, 3)
    probs = torch.zeros(3, 12)
    probs[0, [0, 1]] = 0.9  # both
    probs[1, [0, 5]] = 0.9  # the first, and a false positive
    probs[2, [3]] = 0.6  # the second
    p = ets.presence(probs, torch.tensor([[0, 1], [0, 1], [2, 3]]))
    assert p == pytest.approx(dict(both=1 / 3, first=2 / 3, second=2 / 3, others=1 / 30))
    assert ets.present(dict(source=["siren", "bell"]))[[3, 5]].tolist() == [1, 1] and ets.present(
        dict(source=None)).sum() == 0


def test_detector_hears_both_sources(detector, codec, out_dir):
    """The --fast detector (600 clips of 1 s, half of them mixes, half through the random codec, 30
    epochs) on held-out real mixes: each prompted source is detected far more often than the 10
    others, and the two highest sigmoids are the two prompted sources far above chance (1/66)."""
    model, acc = detector
    assert {"mixes: both", "mixes: exact", "single clips: exact", "mixes: both (codec)"} <= set(acc)
    assert acc["single clips: exact"] > 0.5, acc  # about 0.8
    pairs = ets.source_pairs(6, 0)
    mixes = ets.two_source_sets(pairs, 4, 0, 1.0)
    probs = ets.detect(model, torch.stack([w for w, _, _ in mixes]))
    idx = torch.tensor([[synth.SOURCES.index(a), synth.SOURCES.index(b)]
                        for a, b, _ in pairs for _ in range(4)])  # [24, 2]
    p = ets.presence(probs, idx)
    assert p["first"] + p["second"] > 0.4 and p["others"] < 0.1, p
    top2 = probs.topk(2).indices.sort(1).values == idx.sort(1).values
    assert top2.all(1).float().mean() > 0.2, top2
    (path,) = out_dir.glob("detector_*.pt")  # cached apart from the classifier
    args = ea.parse_args(["--fast", "--two-source"])
    settings = dict(metrics.classifier_settings(args, *codec), detector=True)
    assert settings["epochs"] == 30 and settings["codec"] == codec_hash(codec[0])
    again, acc2 = metrics.get_classifier(settings, str(out_dir), "cpu", codec[0],
                                         log=lambda *a: None, name="detector",
                                         heads=ets.DETECTOR_HEADS)
    assert acc2 == acc
    assert torch.equal(again.heads["present"].weight, model.heads["present"].weight)


def test_two_source_fast(model, detector, out_dir, capsys):
    capsys.readouterr()
    # 3 pairs x 2 clips
    rows = ea.main(["--fast", "--two-source", "--model", model, "--out-dir", str(out_dir)])
    out = capsys.readouterr().out
    assert "detector: reusing" in out and "| clips | n | both sources present |" in out
    names = re.findall(r"^\| (real mixes|real mixes through the codec \(4 codebooks\)|"
                       r"generated, tags|generated, sentences) \| 6 \|(?: \d+% \|){4}$", out, re.M)
    assert names == ["real mixes", "real mixes through the codec (4 codebooks)", "generated, tags",
                     "generated, sentences"], out
    saved = json.loads((out_dir / "two_source.json").read_text())
    assert [r["clips"] for r in saved["rows"]] == names
    assert saved["threshold"] == 0.5 and len(saved["pairs"]) == 3
    assert all(0 <= r[2][k] <= 1 for r in rows for k in ("both", "first", "second", "others"))

# -----------------------------------------------------------------------------
# unknown words


def test_invented_words_are_unknown():
    """No invented word, nor its lemma, is a word of synth.py or holds one of 4+ letters, and each
    survives normalisation; synth_words holds every word of sampled captions, raw and normalised
    (the superset it claims)."""
    words, known = set(euw.check_unknown_words()), euw.synth_words()
    assert len(words) == len(euw.UNKNOWN_WORDS) >= 40 and not words & known
    assert not {normalize_text(w) for w in words} & known
    captions = [c[k] for i in range(200) for c in [synth.make_clip(i, 7, 0.05)]
                for k in ("tags", "sentence")]
    for c in captions:
        # "64 bpm": numbers are no invented word
        lemmas = {w for w in normalize_text(c).split() if w.isalpha()}
        assert set(re.findall(r"[a-z]+", c.lower())) | lemmas <= known, c
        assert not set(c.lower().split()) & words
    # the check refuses a caption word, a word holding one, a stop word (normalised away), a
    # repeated word
    caption_word = max(captions[0].split(), key=len)  # a tag of 4+ letters: "bark", "piano"
    for bad in ((caption_word,), (f"un{caption_word}ly",), ("whereas",),
                ("yesterday", "yesterday")):
        with pytest.raises(ValueError, match=bad[0]):
            euw.check_unknown_words(bad)


def test_unknown_prompts():
    """Seeded; 2 or 3 distinct invented words; without them the prompt is the caption again (every
    known word kept, in order); one of them right beside a word of the prompted source or
    instrument."""
    sets = metrics.eval_sets(2, 0, 0.2)
    A, prompts = metrics.set_a(sets, 2)
    for s, (_, key) in enumerate(euw.STYLES):
        plain = [c[key] for c in A]
        out = euw.unknown_prompts(plain, prompts, 0, s)
        assert out == euw.unknown_prompts(plain, prompts, 0, s)
        assert out != euw.unknown_prompts(plain, prompts, 1, s)
        for text, new, p in zip(plain, out, prompts):
            words = new.split()
            added = [w for w in words if w in euw.UNKNOWN_WORDS]
            assert 2 <= len(added) == len(set(added)) <= 3, new
            assert " ".join(w for w in words if w not in euw.UNKNOWN_WORDS) == text
            key_at = [i for i, w in enumerate(words) if normalize_text(w) in euw.key_words(p)]
            assert key_at and any(words[j] in euw.UNKNOWN_WORDS for i in key_at
                                  for j in (i - 1, i + 1) if 0 <= j < len(words)), (p, new)
    # each style: its own draws
    assert euw.unknown_prompts(plain, prompts, 0, 0) != euw.unknown_prompts(plain, prompts, 0, 1)
    assert euw.key_words(("dog bark", "park", None)) == {"dog", "bark"}
    assert euw.key_words((None, None, "plucked string")) == {"pluck", "string"}


def test_unknown_words_fast(model, classifier, out_dir, capsys):
    capsys.readouterr()
    # 2 clips per prompt
    rows = ea.main(["--fast", "--unknown-words", "--model", model, "--out-dir", str(out_dir)])
    out = capsys.readouterr().out
    assert "classifier: reusing" in out
    assert "| prompts | n | source/instrument | scene | tokens per prompt |" in out
    n = 2 * len(metrics.prompt_labels())
    names = ["tags", "tags + unknown words", "sentences", "sentences + unknown words"]
    found = re.findall(r"^\| ([a-z +]+) \| (\d+) \|(?: \d+% \|){2} [\d.]+ \|(?: \d+% \|){2}$", out,
                       re.M)
    assert found == [(name, str(n)) for name in names], out
    assert "per class, tags + unknown words: dog bark " in out
    saved = json.loads((out_dir / "unknown_words.json").read_text())
    assert saved["rows"] == json.loads(json.dumps(rows)) and list(saved["prompts"]) == names
    assert all(len(p) == n for p in saved["prompts"].values())
    assert (out_dir / "unknown_words.md").is_file()
    for plain, unknown in (rows[0:2], rows[2:4]):
        assert plain["added"] == 0 and 0 < unknown["added"] < 1
        assert unknown["tokens"] >= plain["tokens"] + 2  # 2 or 3 words, a token or more each
        # the fixture's tokenizer knows only its captions' pieces (Tokenizer(known=...), as a T5
        # trained here): it reads a word it never saw (every invented one) as <unk>
        assert unknown["unk"] > plain["unk"]
        assert all(0 <= r[k] <= 1 for r in (plain, unknown) for k in ("what", "scene"))


# -----------------------------------------------------------------------------
# end to end


def test_end_to_end_fast(model, classifier, out_dir, capsys):
    capsys.readouterr()
    results = ea.main(["--fast", "--model", model, "--out-dir", str(out_dir)])  # 2 clips per prompt
    out = capsys.readouterr().out
    assert "classifier: reusing" in out  # trained by the fixture, same settings
    n = 2 * len(metrics.prompt_labels())
    rows = re.findall(r"^\| (generated|real|real through the codec \(4 codebooks\)) \| (\d+) \|"
                      r"(?: \d+% \|){4}(?: [\d.]+ \|){2}$", out, re.M)
    names = ["generated", "real", "real through the codec (4 codebooks)"]
    assert [r[0] for r in rows] == names, out
    assert all(int(r[1]) == n for r in rows)
    assert "| clips | n | source/instrument, tags |" in out
    assert "per class, generated from tags: dog bark " in out
    saved = json.loads((out_dir / "results.json").read_text())
    assert saved == json.loads(json.dumps(results))
    assert (out_dir / "table.md").read_text().count("\n") == 5
    real, gen = results["rows"][1], results["rows"][0]
    assert real["tags"] == real["paraphrases"] and real["fd_tags"] == real["fd_paraphrases"]
    # real clips are recognised (chance ~0.1), and are nearer the reference than a random model's
    assert real["tags"]["what"] > 0.3 and gen["fd_tags"] > real["fd_tags"]
    assert all(math.isfinite(r[k]) and r[k] >= 0 for r in results["rows"]
               for k in ("fd_tags", "fd_paraphrases"))


def test_melody_mode(model, tiny_lm_export, tmp_path, capsys):
    """--melody: a melody model's chroma agreement with the reference melody, with and without it,
    and between two unrelated real clips; the new tunes (every timbre, with and without rests, at
    both levels) and the instrument recognised with them; a model without a melody conditioner is
    refused."""
    melody_model = tiny_lm_export(tmp_path, codec=Path(model).parent / "codec.pt", melody="sum")
    capsys.readouterr()
    res = ea.main(["--fast", "--melody", "--model", melody_model, "--out-dir",
                   str(tmp_path / "e")])
    out = capsys.readouterr().out
    builtin = res["builtin"]
    assert set(builtin) == {"melody", "null_melody", "real_through_codec", "other_clip",
                            "ce_melody", "ce_null_melody"}
    assert all(0 <= builtin[k] <= 1 for k in ("melody", "other_clip"))
    assert 0 < builtin["other_clip"] < 1  # 16 unrelated tunes share some pitch classes, not all
    assert len(res["new_tunes"]) == len(em.TIMBRES) * 2 * len(em.LEVELS_DB)
    assert all(0 <= r[k] <= 1 for r in res["new_tunes"] for k in ("melody", "null_melody"))
    assert set(res["instruments"]) == set(em.PROMPTS)
    assert "16 held-out music clips" in out and "| null melody |" in out
    assert "| sung vowel | yes | -40 dBFS |" in out
    assert json.loads((tmp_path / "e" / "melody.json").read_text())["n"] == 16
    with pytest.raises(SystemExit, match="no melody conditioner"):
        ea.main(["--fast", "--melody", "--model", model, "--out-dir", str(tmp_path / "e2")])


def test_reference_tunes():
    """The new tunes: a function of (i, seed, timbre, rests), the level only scales them; with rests
    they start silent, and the voiced frames are where they sound; each timbre's chroma follows its
    notes' pitch classes more often than chance where the chroma reads the fundamental (the whistle:
    a sine)."""
    from conditioners import MelodyConditioner
    melody = MelodyConditioner(8, sample_rate=16000, radix2_exp=13, duration=3.0)
    loud = em.reference_tune(0, 0, 3.0, 16000, "sung vowel", rests=True, peak_db=-3.0)
    quiet = em.reference_tune(0, 0, 3.0, 16000, "sung vowel", rests=True, peak_db=-40.0)
    assert np.allclose(loud * 10 ** (-37 / 20), quiet, atol=1e-6)
    assert abs(np.abs(loud).max() - 10 ** (-3 / 20)) < 1e-5
    assert np.abs(loud[:int(0.3 * 16000)]).max() == 0  # rests: it starts silent
    assert torch.equal(melody.chroma([torch.from_numpy(loud)]),
                       melody.chroma([torch.from_numpy(quiet)]))
    voiced = em.voiced_frames(melody, loud, melody.chroma_len)
    assert not voiced[0] and voiced.float().mean() > 0.5
    for timbre in em.TIMBRES:
        assert not np.array_equal(em.reference_tune(0, 0, 1.0, 16000, timbre),
                                  em.reference_tune(1, 0, 1.0, 16000, timbre))


def test_bad_arguments(tmp_path):
    with pytest.raises(SystemExit, match=r"^eval_audio.py: error: cannot load --model [^\n]*$"):
        ea.main(["--fast", "--model", str(tmp_path / "missing"), "--out-dir", str(tmp_path)])
    with pytest.raises(SystemExit, match="--n-per-prompt must be >= 2"):
        ea.main(["--fast", "--n-per-prompt", "1"])
    with pytest.raises(SystemExit, match="--seed -1 must be in"):
        ea.main(["--fast", "--seed", "-1"])
    assert not any(tmp_path.iterdir())  # nothing trained, nothing written


def test_sampling_follows_sample_py():
    """The evaluations sample as `sample.py` does by default (cfg_coef 3, temperature 0.9), and
    metrics.sampling hands the flags to TextToAudio.generate as its keyword arguments."""
    import sample
    from evaluation import eval_loudness
    for name in ("cfg_coef", "temperature"):
        want = sample.parser.get_default(name)
        assert ea.parser.get_default(name) == want == eval_loudness.parser.get_default(name), name
    args = ea.parser.parse_args(["--cfg-coef", "2", "--temperature", "0.7"])
    assert metrics.sampling(args) == dict(cfg_coef=2.0, temperature=0.7)

# -----------------------------------------------------------------------------
# the onset detector (events per clip) and --events


def with_events(times, T, kind, rng):
    """A [T] clip of faint white noise (-40 dB) with an event at each time (s): 'click' 5 ms of
    noise, 'burst' 50 ms of noise decaying in 10 ms, 'ping' a 1 kHz tone decaying in 30 ms."""
    x = 0.01 * rng.standard_normal(T)
    for t in times:
        s, n = int(t * metrics.SR), {"click": 80, "burst": 800, "ping": 1280}[kind]
        u = np.arange(n) / metrics.SR
        ev = (np.sin(2 * np.pi * 1000 * u) * np.exp(-u / 0.03) if kind == "ping"
              else rng.standard_normal(n) * np.exp(-u / (0.002 if kind == "click" else 0.01)))
        x[s:s + n] += ev[:T - s]
    return torch.from_numpy(x).float()


def test_onsets_find_events_at_their_times():
    """Clicks, noise bursts and pings at known times (some 120 ms apart, one in the last 100 ms)
    over faint noise: one onset each, within 10 ms of it, at any level and at 32 kHz too; two
    clicks closer than the minimum gap (100 ms) are one event, the earlier one."""
    rng, T = np.random.default_rng(0), 3 * metrics.SR
    times = [0.1, 0.25, 0.37, 1.0, 1.12, 1.8, 2.5, 2.92]
    for kind in ("click", "burst", "ping"):
        x = with_events(times, T, kind, rng)
        for level in (1.0, 1e-3):
            got = metrics.onsets(level * x)
            assert len(got) == len(times), (kind, level, got)
            assert (got - torch.tensor(times)).abs().max() < 0.01, (kind, got)
        assert torch.equal(metrics.onsets(level * x), metrics.onsets(x))  # level-invariant
    x32 = audio.resample(with_events(times, T, "ping", rng), metrics.SR, 32000)
    got = metrics.onsets(x32, 32000)
    assert len(got) == len(times) and (got - torch.tensor(times)).abs().max() < 0.01
    got = metrics.onsets(with_events([0.5, 0.56, 1.5], T, "click", rng))  # 60 ms: one event
    assert len(got) == 2 and abs(got[0] - 0.5) < 0.01 and abs(got[1] - 1.5) < 0.01
    half = torch.cat([x[:T // 2], torch.zeros(T - T // 2)])  # the events before 1.5 s
    assert metrics.event_density(torch.stack([x, half, torch.zeros(T)])).tolist() == [8, 5, 0]


def test_onsets_ignore_steady_sounds():
    """Silence, white, pink and brown noise, a steady tone, a tone with vibrato and mains hum over
    noise have no onset, nor has a clip shorter than a window; a tone that starts mid-clip has one,
    there."""
    rng, T = np.random.default_rng(1), 3 * metrics.SR
    t = np.arange(T) / metrics.SR
    steady = [np.zeros(T), rng.standard_normal(T),
              *(sounds.noise(rng, T, metrics.SR, tilt=tilt) for tilt in (0.5, 1.0)),
              np.sin(2 * np.pi * 440 * t + 1.0),
              sounds.osc(440 * (1 + 0.02 * np.sin(2 * np.pi * 5 * t)), metrics.SR, [1, 0.5, 0.3]),
              0.3 * sounds.osc(np.full(T, 50.0), metrics.SR, [1, 0.5, 0.3])
              + 0.1 * rng.standard_normal(T), rng.standard_normal(300)]
    for k, x in enumerate(steady):
        assert len(metrics.onsets(torch.from_numpy(x).float())) == 0, k
    x = 0.01 * rng.standard_normal(T) + np.sin(2 * np.pi * 440 * t) * (t >= 1.3)
    got = metrics.onsets(torch.from_numpy(x).float())
    assert len(got) == 1 and abs(got[0] - 1.3) < 0.01


def knock_starts(rng, sr, who):
    """sounds.knock's draws, replayed: the knocks' starts in samples."""
    sounds.noise(rng, int(0.002 * sr), sr, 1000)  # the knuckle click
    gap, starts = int(sr * rng.uniform(0.12, 0.22)), []
    for j in range(rng.integers(2, 5)):
        starts.append(j * gap + int(rng.uniform(-0.01, 0.01) * sr * (j > 0)))
        rng.uniform(0.7, 1.0)  # its level
    return starts


def footstep_starts(rng, sr, who):
    """sounds.footsteps' draws, replayed: the heels' starts in samples (a toe scuff follows each
    heel by 50-80 ms: the same step)."""
    step, k = int(sr * (0.45 + 0.2 * who[0])), int(0.05 * sr)
    starts = []
    for j in range(rng.integers(4, 10)):
        sounds.noise(rng, k, sr, 60, 1200), sounds.noise(rng, k, sr, 1000, 5000)  # heel, toe
        starts.append(j * step + int(rng.uniform(-0.02, 0.02) * sr) + k)
        rng.uniform(0.05, 0.08)  # the toe's delay
    return starts


def tick_starts(rng, sr, who):
    """sounds.clock's draws, replayed: the ticks' and tocks' starts in samples."""
    period, tick = sr // (1 + int(who[1] < 0.5)), int(0.03 * sr)
    n = int(sr * rng.uniform(3, 5)) + tick  # 3-5 s and one tick
    return list(range(int(rng.integers(period)), n - tick + 1, period))  # from a random phase


# source -> its events' starts in one call of its sound (samples), from a copy of its generator
REPLAY = {"dog bark": lambda rng, sr, who: [0], "knocking": knock_starts,
          "footsteps": footstep_starts, "clock tick": tick_starts}


def placed_events(count, seed, duration):
    """The first `count` built-in clips of each of EVENT_SOURCES (scanning make_clip(i, seed,
    duration)) -> {source: [(wav [T], fewest, most)]}: how many events the generator placed, starts
    closer than the detector's minimum gap (100 ms) merged as it merges them; an event in a clip's
    last 30 ms may be heard or not (most counts it, fewest does not). Sound sources: each call of
    the source's sound (the labels' onsets, in order) plus its events' offsets in that call,
    replayed on a copy of the random generator (REPLAY); drums: drum_track's 8th-note grid (every
    8th note holds a hit: the hi-hat) at the clip's bpm."""
    calls, sr = [], synth.SAMPLE_RATE

    def recorder(source, sound):
        def recorded(rng, sr, who):
            calls.append(REPLAY[source](copy.deepcopy(rng), sr, who))
            return sound(rng, sr, who)
        return recorded
    out, i = {s: [] for s in ea.EVENT_SOURCES}, 0
    with pytest.MonkeyPatch.context() as mp:
        for source in REPLAY:
            sound, *rest = synth._SFX[source]
            mp.setitem(synth._SFX, source, (recorder(source, sound), *rest))
        while min(map(len, out.values())) < count:
            calls.clear()
            # the sound clips first, then the music ones (a clip's kind is drawn first: i is
            # the same clip either way)
            kind = "sfx" if min(len(out[s]) for s in REPLAY) < count else "music"
            c = synth.make_clip(i, seed, duration, kind=kind)
            lab, n, i = c["labels"], len(c["wav"]), i + 1
            source = lab["source"] or lab["instrument"]
            if source not in out or len(out[source]) == count:
                continue
            if source == "drums":
                step = 60 / lab["bpm"] / 4 * sr  # a 16th note, samples
                starts = [int(j * step) for j in range(0, int(n / step) + 1, 2)]
            else:
                starts = [round(on * sr) + s for on, call in zip(lab["onsets"], calls)
                          for s in call]
            merged = []
            for s in sorted(s for s in starts if s < n):
                if not merged or s - merged[-1] >= metrics.ONSET_MIN_GAP * metrics.ONSET_HOP:
                    merged.append(s)
            fewest = sum(s < n - 0.03 * sr for s in merged)
            out[source].append((torch.from_numpy(c["wav"]), fewest, len(merged)))
    return out


@pytest.fixture(scope="module")
def built_in_events():
    return placed_events(20, 0, 3.0)


@pytest.mark.parametrize("source", ea.EVENT_SOURCES)
def test_onsets_count_the_built_in_events(source, built_in_events):
    """On 20 built-in clips of 3 s of each source, the detector counts the events the generator
    placed (placed_events): each bark; each knock (2-4 per knocking, 120-220 ms apart); each step
    (4-9 per walk, 0.45-0.65 s apart; heel and toe one event); each tick and tock (1 or 2 a second);
    each 8th note of a beat (60-150 bpm). Exact on every clip of the sound sources; drums: exact on
    17 of 20 clips or more, never more than placed, 95% of all hits (a hi-hat right after a snare
    at a fast tempo rises over the snare's tail in few bands: some are missed)."""
    clips = built_in_events[source]
    counts = metrics.event_density(torch.stack([w for w, _, _ in clips])).tolist()
    off = [0 if lo <= k <= hi else (k - lo if k < lo else k - hi)
           for k, (_, lo, hi) in zip(counts, clips)]
    if source != "drums":
        assert off == [0] * len(clips), off
    else:
        assert off.count(0) >= 17 and max(off) == 0, off
        assert sum(counts) >= 0.95 * sum(lo for _, lo, _ in clips), off


def test_event_rows():
    """event_rows gathers each source's clips over its prompts (dog bark: one prompt per scene),
    2n real clips and n generated ones per prompt: clip counts labelled by their prompt come back
    per source, with means, medians and the generated/real ratio of the means."""
    prompts = [("dog bark", "park", None), ("dog bark", "street", None),
               ("knocking", "room", None), ("footsteps", "park", None),
               ("clock tick", "room", None), (None, None, "drums")]
    sets = [(p, [None] * 4) for p in prompts]  # n = 2: 4 real clips a prompt
    counts = dict(real=[j for j in range(6) for _ in range(4)],
                  codec=[j for j in range(6) for _ in range(4)],
                  tags=[10 + j for j in range(6) for _ in range(2)],
                  sentences=[20 + j for j in range(6) for _ in range(2)])
    rows = ea.event_rows(sets, 2, counts)
    assert [r["source"] for r in rows] == list(ea.EVENT_SOURCES)
    dog, drums = rows[0], rows[-1]
    assert (dog["n"], dog["n_real"], drums["n"], drums["n_real"]) == (4, 8, 2, 4)
    assert dog["real"] == dict(mean=0.5, median=0.5, counts=[0] * 4 + [1] * 4)
    assert dog["tags"]["counts"] == [10, 10, 11, 11] and drums["sentences"]["counts"] == [25, 25]
    assert dog["ratio_tags"] == 10.5 / 0.5 and drums["ratio_sentences"] == 25 / 5


def test_events_fast(model, out_dir, capsys):
    """--events runs with --fast sizes against the tiny random model, needs no classifier, prints
    a row per source (its clips: n per prompt generated, 2n real, over its scenes), saves them, and
    its real counts are the detector's on the real clips of those prompts."""
    capsys.readouterr()
    rows = ea.main(["--fast", "--events", "--model", model, "--out-dir", str(out_dir)])
    out = capsys.readouterr().out
    assert "classifier" not in out
    found = re.findall(r"^\| ([a-z ]+) \| (\d+) / (\d+) \|(?: [\d.]+ / [\d.]+ \|){4}"
                       r"(?: [\d.]+ \|){2}$", out, re.M)
    scenes = {s: len(synth.SCENES_OF.get(s, [None])) for s in ea.EVENT_SOURCES}
    assert found == [(s, str(2 * scenes[s]), str(4 * scenes[s])) for s in ea.EVENT_SOURCES], out
    saved = json.loads((out_dir / "events.json").read_text())
    assert saved["rows"] == json.loads(json.dumps(rows)) and saved["detector"]["min_gap"] == 10
    assert (out_dir / "events.md").read_text().count("\n") == 2 + len(ea.EVENT_SOURCES)
    sets = metrics.eval_sets(2, 0, 1.0)
    for r in rows:
        wav = torch.stack([torch.from_numpy(c["wav"]) for p, clips in sets for c in clips
                           if r["source"] in p])
        assert r["real"]["counts"] == metrics.event_density(wav).tolist()
        assert len(r["codec"]["counts"]) == r["n_real"] == 2 * r["n"]
        assert r["ratio_tags"] == r["tags"]["mean"] / r["real"]["mean"]


def test_events_read_more_clips():
    """--events reads 32 clips per prompt and style unless told (a one-prompt source on 8 is
    noise), the other modes 8; --n-per-prompt and --fast still set it."""
    assert ea.parse_args(["--events"]).n_per_prompt == 32
    assert ea.parse_args([]).n_per_prompt == ea.parse_args(["--two-source"]).n_per_prompt == 8
    assert ea.parse_args(["--events", "--n-per-prompt", "8"]).n_per_prompt == 8
    assert ea.parse_args(["--events", "--fast"]).n_per_prompt == 2
    assert ea.parse_args(["--two-source"]).epochs == 36 and ea.parse_args(["--events"]).epochs == 12
