"""
Tests for evaluation/eval_audio.py (the objective evaluation), metrics.py (its classifier, Frechet
distance, prompt sets and generation) and its modes' files eval_two_source.py,
eval_unknown_words.py and eval_melody.py. Run: python -m pytest -q tests/test_eval_audio.py (CPU,
one thread, about 60 s).

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
and refuses a model without one.
"""
import json
import math
import re
import types
from pathlib import Path

import numpy as np
import pytest
import torch

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
    wav = metrics.generate(model, texts, lengths, 0.2, 0, 3.0, batch=2, log=lambda *a: None)
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
