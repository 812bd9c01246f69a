"""
Tests for train_lm.py and token_cache.py. Run: python -m pytest -q tests/test_train_lm.py (CPU,
about 30 s).

A tiny random codec (codec.PRESETS['tiny'] after one k-means batch) and a tiny LM (--dim 32
--layers 1) on a few built-in clips of 1 s. Checked: the loss falls on the cached tokens; resume
is bit-exact, also after Ctrl-C; the token cache is reused, and rebuilt when the codec changes; the
checkpoint and the export are checkpoint.load_lm's format; AudioGen's mixing (cached mixes, whole
batches); <unk> in training batches and for unseen words; a frozen pretrained T5 folder (--t5
DIR); --data: the files shuffled before the hold-out and --n-clips, drawn by weight, a separate
--valid-data; bad arguments give one-line errors; two DDP processes (gloo) stay in sync.
"""

import itertools
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import synth
import token_cache as tc
import train_lm as tl
from checkpoint import load_codec, load_lm, load_t5
from conditioners import UNK, Tokenizer
from data import holdout
from model import COND, from_checkpoint, load_model

ROOT = Path(__file__).resolve().parents[1]


pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


@pytest.fixture(scope="module")
def codecs(tiny_codec, tmp_path_factory):
    """Two tiny codecs with random weights (conftest.py's tiny_codec, seeds 0 and 1), saved with their configs."""
    tmp = tmp_path_factory.mktemp("codecs")
    paths = []
    for seed, name in enumerate(("codec.pt", "other.pt")):
        codec = tiny_codec(seed)
        torch.save({"config": asdict(codec.config), "model": codec.state_dict()}, tmp / name)
        paths.append(str(tmp / name))
    return paths


def common(codec, out, cache, *extra):
    return ["--codec", codec, "--out-dir", str(out), "--cache-dir", str(cache), "--n-clips", "8", "--eval-clips", "2",
            "--duration", "1", "--dim", "32", "--layers", "1", "--heads", "2", "--batch-size", "4", "--warmup", "2",
            "--log-every", "1", "--n-samples", "1", *extra]


def run(args):
    return tl.main(tl.parser.parse_args(args))


def assert_same_weights(a, b):
    """Two TextToAudio models hold the same tensors under the same names, bit for bit."""
    sa, sb = a.checkpoint(), b.checkpoint()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


def test_loss_falls_and_export(codecs, tmp_path, capsys):
    model = run(common(codecs[0], tmp_path / "run", tmp_path / "cache", "--steps", "30", "--lr", "3e-3",
                       "--eval-every", "30", "--export", str(tmp_path / "export")))
    out = capsys.readouterr().out
    losses = [float(x) for x in re.findall(r"^step \d+/30 \| loss ([\d.]+)", out, re.M)]
    assert len(losses) == 30 and sum(losses[-5:]) < 0.7 * sum(losses[:5]), losses
    assert re.search(r"eval step 30 .* held-out loss [\d.]+ \| ce( [\d.]+){4} \| ppl", out)
    assert (tmp_path / "run" / "samples" / "step000030_0.wav").exists()
    assert (tmp_path / "run" / "samples" / "real_0.wav").exists()
    # the training checkpoint is checkpoint.load_lm's format: LM keys + the conditioner under AudioCraft's names
    lm, cond_state = load_lm(str(tmp_path / "run" / "ckpt.pt"))
    assert lm.config.dim == 32 and lm.config.card == 256 and lm.config.max_duration == 1.0
    assert COND + "output_proj.weight" in cond_state and COND + "t5.shared.weight" in cond_state
    assert torch.equal(lm.linears[0].weight, model.lm.linears[0].weight)
    # the export: fp16 LM, codec config + weights, tokenizer; reloaded, it is the trained model up to fp16 rounding
    exp = tmp_path / "export"
    assert sorted(os.listdir(exp)) == ["codec.pt", "lm.pt", "tokenizer.model"]
    assert torch.load(exp / "lm.pt", weights_only=True)["model"]["emb.0.weight"].dtype == torch.float16
    back, _ = from_checkpoint(str(exp / "lm.pt"))
    assert torch.allclose(back.lm.linears[0].weight, model.lm.linears[0].weight, atol=1e-3)
    codec = load_codec(exp / "codec.pt")
    codes = torch.randint(0, 256, (1, 4, 10))
    assert torch.allclose(codec.decode(codes), load_codec(codecs[0]).decode(codes), atol=1e-3)
    assert re.search(r"exported to .*lm fp16: held-out CE ([\d.]+) -> ([\d.]+)", out)


def test_resume_is_exact_and_cache_is_reused(codecs, tmp_path, capsys):
    cache = tmp_path / "cache"
    full = run(common(codecs[0], tmp_path / "a", cache, "--steps", "4", "--eval-every", "2"))
    assert "token cache: encoding" in capsys.readouterr().out
    # stop after step 2 (same schedule: the cosine still ends at step 4), then resume
    run(common(codecs[0], tmp_path / "b", cache, "--steps", "2", "--lr-decay-steps", "4", "--eval-every", "2"))
    out = capsys.readouterr().out
    assert "token cache: reusing" in out and "encoding" not in out  # not encoded again
    resumed = run(common(codecs[0], tmp_path / "b", cache, "--steps", "4", "--eval-every", "2", "--resume"))
    assert_same_weights(full, resumed)
    assert len((tmp_path / "b" / "eval.tsv").read_text().splitlines()) == 2


def test_ctrl_c_saves_a_checkpoint_that_resumes_exactly(codecs, interrupted_run, tmp_path, capsys):
    """Ctrl-C (a real SIGINT) while step 3 is under way, between the checkpoints of --eval-every 4: the
    step finishes, ckpt.pt is saved in the periodic format (optimizer, RNG states: T5 dropout draws from them) and
    the run exits with one line, no export; --resume says where it starts, ends on the uninterrupted run's weights."""
    run_args = lambda out, *extra: common(codecs[0], out, tmp_path / "cache", "--steps", "4", "--eval-every", "4",
                                          "--export", str(out / "export"), *extra)  # noqa: E731
    full = run(run_args(tmp_path / "a"))
    end = interrupted_run(tl, "get_batch", 3, run_args(tmp_path / "b"))  # get_batch: once per step
    ckpt = tmp_path / "b" / "ckpt.pt"
    assert isinstance(end, SystemExit) and str(end) == f"interrupted at step 3: saved {ckpt}; continue with --resume"
    saved, periodic = (torch.load(p, weights_only=True) for p in (ckpt, tmp_path / "a" / "ckpt.pt"))
    assert saved["step"] == 3 and saved.keys() == periodic.keys() and not (tmp_path / "b" / "export").exists()
    capsys.readouterr()
    resumed = run(run_args(tmp_path / "b", "--resume"))
    assert f"resumed from {ckpt} at step 3 (of 4)\n" in capsys.readouterr().out
    assert_same_weights(full, resumed)


def test_cache_is_rebuilt_when_the_codec_changes(codecs, tmp_path, capsys):
    cache = tmp_path / "cache"
    run(common(codecs[0], tmp_path / "a", cache, "--steps", "1"))
    run(common(codecs[1], tmp_path / "b", cache, "--steps", "1"))
    assert capsys.readouterr().out.count("token cache: encoding") == 2
    run(common(codecs[0], tmp_path / "c", cache, "--steps", "1"))
    assert "token cache: reusing" in capsys.readouterr().out
    files = sorted(cache.iterdir())
    assert len(files) == 2
    a, b = (torch.load(f, weights_only=True)["train"] for f in files)
    assert a["codes"].dtype == torch.int16 and a["codes"].shape == (8, 4, 50)  # [N, K, T]: 1 s at 50 Hz
    assert not torch.equal(a["codes"], b["codes"]) and a["captions"] == b["captions"]  # same clips, other codes
    assert len(a["captions"][0]) == 2 and "kind" in a["labels"][0]  # tags and sentence; labels
    # resuming with another codec than the checkpoint's is refused
    with pytest.raises(SystemExit, match="not the codec"):
        run(common(codecs[1], tmp_path / "a", cache, "--steps", "2", "--resume"))


def test_cache_key_follows_the_built_in_data_recipe(tmp_path, monkeypatch):
    """An edited synth.py or sounds.py (another synth.fingerprint) keys a new token cache for the
    built-in data; a folder's cache does not depend on it."""
    built_in, folder = tl.parser.parse_args([]), tl.parser.parse_args(["--data", str(tmp_path)])
    before = [tc.cache_path(a, "codec", 4) for a in (built_in, folder)]
    assert synth.fingerprint() == synth.fingerprint() and len(synth.fingerprint()) == 16
    monkeypatch.setattr(tc, "fingerprint", lambda: "edited")
    after = [tc.cache_path(a, "codec", 4) for a in (built_in, folder)]
    assert after[0] != before[0] and after[1] == before[1]


def test_batches_and_schedule():
    split = dict(codes=torch.arange(10, dtype=torch.int16)[:, None, None].expand(10, 4, 5),
                 captions=[["tag", "a sentence"], [""], ["the"]] + [["x"]] * 7)
    args = tl.parser.parse_args(["--batch-size", "4", "--cfg-dropout", "0"])
    c0, t0, no_melody = tc.get_batch(split, 3, args)
    c1, t1, _ = tc.get_batch(split, 3, args)
    assert torch.equal(c0, c1) and t0 == t1 and c0.shape == (4, 4, 5) and no_melody is None  # f(seed, step)
    both = tc.get_batch(split, 3, args, 0, 2)[0], tc.get_batch(split, 3, args, 1, 2)[0]
    assert torch.equal(both[0], c0)  # rank 0 of 2 takes the first slice of the global batch
    assert tc.as_prompt("", True) is None and tc.as_prompt("the", True) is None
    assert tc.as_prompt("the", False)
    args = tl.parser.parse_args(["--cfg-dropout", "1"])
    assert tc.get_batch(split, 0, args)[1] == [None] * args.batch_size  # the whole batch dropped
    args = tl.parser.parse_args(["--steps", "100", "--warmup", "10", "--lr", "1", "--min-lr", "0.1"])
    assert tl.get_lr(0, args) == pytest.approx(0.1) and tl.get_lr(9, args) == 1.0
    assert tl.get_lr(55, args) == pytest.approx(0.55) and tl.get_lr(100, args) == 0.1  # cosine midpoint, end



def test_ema_is_the_decayed_average_of_the_updates():
    """training.ema_update after n updates holds sum_j decay^(n-j) w_j / sum_j decay^(n-j) (AudioCraft's unbiased
    EMA: the first update copies the weights); ema_weights swaps it in and gives the model its own back after."""
    torch.manual_seed(0)
    net, decay = torch.nn.Linear(3, 2), 0.8
    net.bias.requires_grad_(False)  # frozen: not averaged
    ema, seen = tl.training.ema_start(net), []
    assert ema["weights"].keys() == {"weight"}
    for _ in range(4):
        with torch.no_grad():
            net.weight.add_(torch.randn(2, 3))
        seen.append(net.weight.detach().clone())
        tl.training.ema_update(ema, net, decay)
    w = torch.tensor([decay ** (len(seen) - 1 - j) for j in range(len(seen))])
    expected = (w[:, None, None] * torch.stack(seen)).sum(0) / w.sum()
    assert torch.allclose(ema["weights"]["weight"], expected, atol=1e-6)
    own = net.weight.detach().clone()
    with tl.training.ema_weights(net, ema) as m:
        assert torch.equal(m.weight, ema["weights"]["weight"])
    assert torch.equal(net.weight, own)


def test_ema_resumes_exactly_and_is_exported(codecs, tmp_path, capsys):
    """--ema: the eval reads the average, ckpt.pt keeps it beside the model's own weights, a run stopped at step 2
    resumes to the uninterrupted run's average, and the export holds the average (fp16), not the last weights."""
    ema = ["--ema", "0.5", "--ema-every", "1", "--eval-every", "2", "--lr", "3e-3"]
    cache = tmp_path / "cache"
    full = run(common(codecs[0], tmp_path / "a", cache, "--steps", "4", *ema))
    assert re.search(r"eval step 4 .* held-out loss \(EMA\) [\d.]+ \|", capsys.readouterr().out)
    run(common(codecs[0], tmp_path / "b", cache, "--steps", "2", "--lr-decay-steps", "4", *ema))
    resumed = run(common(codecs[0], tmp_path / "b", cache, "--steps", "4", "--resume", *ema))
    a, b = (torch.load(tmp_path / d / "ckpt.pt", weights_only=True) for d in "ab")
    assert a["ema"]["count"] == b["ema"]["count"] == 1 + 0.5 + 0.25 + 0.125
    for k, v in a["ema"]["weights"].items():
        assert torch.equal(v, b["ema"]["weights"][k]), k
    name = "lm.linears.0.weight"
    average, last = a["ema"]["weights"][name], a["model"][name.removeprefix("lm.")]
    assert not torch.allclose(average, last, atol=1e-3)
    exported = torch.load(tmp_path / "a" / "export" / "lm.pt", weights_only=True)["model"]
    assert torch.allclose(exported[name.removeprefix("lm.")].float(), average, atol=1e-3)
    assert torch.equal(full.lm.linears[0].weight, resumed.lm.linears[0].weight)

@pytest.mark.parametrize("fuse", ["prepend", "sum"])
def test_melody_conditioning(codecs, tmp_path, capsys, fuse):
    """--melody: each music clip caches its own chroma (sound clips: the null melody, 0), the LM reads it as a
    prefix or added to each frame (--melody-fuse; its logits depend on it), the loss falls, and the export follows a
    melody when it samples, past the LM's window too. Without mixing, as MusicGen-melody's recipe (AudioGen's mixing
    lives in its SoundDataset, not in MusicDataset)."""
    model = run(common(codecs[0], tmp_path / "run", tmp_path / "cache", "--melody", "--aug-p", "0", "--steps", "30",
                       "--lr", "3e-3", "--eval-every", "30", "--export", str(tmp_path / "export"),
                       "--melody-fuse", fuse))
    assert model.melody.fuse == fuse
    losses = [float(x) for x in re.findall(r"^step \d+/30 \| loss ([\d.]+)", capsys.readouterr().out, re.M)]
    assert sum(losses[-5:]) < 0.7 * sum(losses[:5]), losses
    train = torch.load(next((tmp_path / "cache").iterdir()), weights_only=True)["train"]
    music = [lab["instrument"] is not None for lab in train["labels"]]
    assert any(music) and not all(music) and train["chroma"].shape == (8, model.melody.chroma_len)
    for i, m in enumerate(music):  # clip i of the built-in data, at the codec's rate
        wav = torch.from_numpy(synth.make_clip(i, 0, 1.0, 16000)["wav"])
        assert torch.equal(train["chroma"][i].long(), model.melody.chroma([wav])[0] if m else torch.zeros(
            model.melody.chroma_len, dtype=torch.long))
    i = music.index(True)
    codes, chroma = train["codes"][i:i + 1].long(), train["chroma"][i:i + 1].long()
    with torch.no_grad():
        assert not torch.allclose(model.eval()(codes, ["piano"], chroma)[0], model(codes, ["piano"], 0 * chroma)[0],
                                  equal_nan=True)
    # the export keeps the melody conditioner: loaded as sample.py loads it, it follows a melody waveform, or the
    # null melody without one
    export = load_model(str(tmp_path / "export"))
    assert export.melody.fuse == fuse
    tune = torch.from_numpy(synth.make_clip(i, 0, 1.0, 16000)["wav"])[None]  # [C, T] at the codec's rate
    a, b = (export.generate(["piano"], 0.5, temperature=0, melody_wav=wav) for wav in (tune, None))
    assert a.shape == (1, 1, 8000) and not torch.equal(a, b)
    assert export.generate(["piano"], 1.5, melody_wav=tune).shape == (1, 1, 24000)  # two windows of the 1 s LM


def test_mixing_cache_and_batches(codecs, tmp_path):
    """AudioGen's mixing (--aug-p, default 0.5 as audiogen_base_16khz.yaml): the cache holds n_clips mixes beside the
    clips, the codes of data.mix_clips of two different train clips drawn from (seed, m), captions joined, labels
    united (--mix-sound: two sound clips, no music); its key has the mixing settings (--aug-p 0, --mix-sound:
    another file). One coin per step, a function of (seed, step), takes the whole batch from the mixes: about aug_p
    of the batches, never part of one."""
    run(common(codecs[0], tmp_path / "a", tmp_path / "cache", "--steps", "1", "--n-samples", "0"))
    run(common(codecs[0], tmp_path / "b", tmp_path / "cache", "--steps", "1", "--n-samples", "0", "--aug-p", "0"))
    caches = [torch.load(f, weights_only=True)["train"] for f in sorted((tmp_path / "cache").iterdir())]
    assert sorted("mix" in c for c in caches) == [False, True]
    train = next(c for c in caches if "mix" in c)
    codec, args = load_codec(codecs[0]), tl.parser.parse_args(common(codecs[0], tmp_path, tmp_path))
    items = list(tc.clips(args, "train", 8, codec.sample_rate, codec.channels))
    mixes = list(tc.mixed_clips(items, 0))
    assert train["mix"]["codes"].shape == (8, 4, 50) and train["mix"]["captions"] == [m[1] for m in mixes]
    assert torch.equal(train["mix"]["codes"].long(), codec.encode(torch.stack([m[0] for m in mixes]), n_q=4))
    for _, captions, labels in mixes:  # each mix: two different clips, each caption of one joined to each of the other
        pairs = [(i, j) for i, j in itertools.permutations(range(8), 2)
                 if captions == [x if x == z else f"{x} {z}" for x in items[i][1] for z in items[j][1]]]
        assert pairs and labels["mix"]["snr_db"] in range(-5, 5) and 0 <= labels["mix"]["start"] <= 8000
        i, j = pairs[0]
        assert labels["kind"] in (items[i][2]["kind"], [items[i][2]["kind"], items[j][2]["kind"]])  # the union
    assert any("music" in str(labels["kind"]) for _, _, labels in mixes)  # music mixed by default
    sound = list(tc.mixed_clips(items, 0, sound_only=True))  # --mix-sound: as AudioGen, no music
    assert len(sound) == 8 and {labels["kind"] for _, _, labels in sound} == {"sfx"}
    mix_sound = tl.parser.parse_args(common(codecs[0], tmp_path, tmp_path) + ["--mix-sound"])
    assert tc.cache_path(mix_sound, "c", 4) != tc.cache_path(args, "c", 4)
    split = dict(codes=torch.zeros(10, 4, 5, dtype=torch.int16), captions=[["dog bark"]] * 10,
                 mix=dict(codes=torch.ones(10, 4, 5, dtype=torch.int16), captions=[["dog bark rain"]] * 10))
    args = tl.parser.parse_args(["--batch-size", "4"])
    batches = [tc.get_batch(split, step, args)[0] for step in range(400)]
    assert all(len(b.unique()) == 1 for b in batches)  # all mixes or none
    assert abs(sum(b[0, 0, 0].item() for b in batches) / 400 - 0.5) < 0.08  # aug_p = 0.5
    assert all(torch.equal(tc.get_batch(split, s, args)[0], batches[s]) for s in (0, 1, 399))


def test_unknown_words_unk_in_batches_and_gradient(codecs, tmp_path):
    """An unseen word, spelt in letter pieces the T5 never trained, must not derail the known words of a prompt. The
    export reads a word with a piece outside the training captions' as one <unk> (conditioner meta 'known'), with a
    warning. --unk-dropout (default 0.1) makes caption words <unk> in the training batches, a function of (seed,
    step), so <unk>'s embedding gets gradient; with 0, no batch holds <unk> and its row gets none."""
    export = tmp_path / "export"
    model = run(common(codecs[0], tmp_path / "run", tmp_path / "cache", "--steps", "2", "--n-samples", "0",
                       "--export", str(export)))
    meta = torch.load(export / "lm.pt", weights_only=True)["conditioner"]
    back = from_checkpoint(str(export / "lm.pt"))[0].conditioner.tokenizer
    assert back.known == set(meta["known"]) == model.conditioner.tokenizer.known and back.unk_id not in meta["known"]
    train = torch.load(next((tmp_path / "cache").iterdir()), weights_only=True)["train"]
    word = tc.seen_captions(train, True)[0].split()[0]  # a word the model knows
    with pytest.warns(UserWarning, match=r"unknown words \['zorbleflux'\]"):
        assert back.encode([f"{word} zorbleflux"])[0][0].tolist() == back.sp.encode(word) + [back.unk_id, back.eos_id]
    args = tl.parser.parse_args(common(codecs[0], tmp_path, tmp_path))
    texts = [tc.get_batch(train, step, args)[1] for step in range(40)]
    assert texts[7] == tc.get_batch(train, 7, args)[1]  # a function of (seed, step)
    with_unk = [s for s, t in enumerate(texts) if any(UNK in x.split() for x in t if x)]
    assert 0 < len(with_unk) < 40
    no_unk = tl.parser.parse_args(common(codecs[0], tmp_path, tmp_path, "--unk-dropout", "0"))
    assert not any(UNK in x.split() for s in range(40) for x in tc.get_batch(train, s, no_unk)[1] if x)
    shared = model.conditioner.t5.shared.weight
    for a, has_unk in ((args, True), (no_unk, False)):
        model.train().zero_grad()
        codes, texts, _ = tc.get_batch(train, with_unk[0], a)
        model(codes, texts)[1].mean().backward()
        assert (shared.grad is not None and shared.grad[back.unk_id].abs().sum() > 0) == has_unk


@pytest.fixture(scope="module")
def t5_dir(tmp_path_factory):
    """t5-base in miniature: a Hugging Face T5 folder (transformers' T5EncoderModel, random weights, save_pretrained)
    with a sentencepiece model trained on built-in captions as its spiece.model."""
    transformers = pytest.importorskip("transformers")
    d = tmp_path_factory.mktemp("t5-mini")
    captions = [c[k] for c in (synth.make_clip(i, 7, 0.01) for i in range(40)) for k in ("tags", "sentence")]
    tok = Tokenizer.train(captions, 200, str(d / "spiece.model"))
    torch.manual_seed(0)
    config = transformers.T5Config(vocab_size=tok.vocab_size + 8, d_model=32, d_kv=8, d_ff=64, num_layers=2,
                                   num_heads=4)  # more rows than pieces, as t5-base (32128 for 32000)
    transformers.T5EncoderModel(config).save_pretrained(d)
    return d


def test_frozen_pretrained_t5_folder(codecs, t5_dir, tmp_path):
    """--t5 DIR, as AudioCraft's T5Conditioner (finetune: false): the folder's T5 and spiece.model; the T5 stays
    frozen (its weights unchanged, not in the optimizer: only output_proj and the LM train), also after --resume.
    The export holds its weights (fp16) and its spiece.model as tokenizer.model: it samples without the folder."""
    folder = tmp_path / "t5"
    shutil.copytree(t5_dir, folder)
    ref = load_t5(str(folder))[0].state_dict()
    args = common(codecs[0], tmp_path / "run", tmp_path / "cache", "--t5", str(folder), "--no-normalize",
                  "--unk-dropout", "0", "--eval-every", "2", "--export", str(tmp_path / "export"))
    model = run([*args, "--steps", "2"])
    cond = model.conditioner
    assert not cond.finetune and not cond.t5.training and cond.tokenizer.known is None
    assert all(torch.equal(v, ref[k]) for k, v in cond.t5.state_dict().items())  # frozen
    ckpt = torch.load(tmp_path / "run" / "ckpt.pt", weights_only=True)
    n_trained = sum(len(g["params"]) for g in ckpt["optimizer"]["param_groups"])
    assert n_trained == len(list(model.lm.parameters())) + 2 and ckpt["conditioner"]["finetune"] is False
    resumed = run([*args, "--steps", "3", "--resume"]).conditioner  # rebuilt from ckpt.pt: still frozen
    assert not resumed.finetune and all(torch.equal(v, ref[k]) for k, v in resumed.t5.state_dict().items())
    shutil.rmtree(folder)  # the export needs no T5 folder
    export = tmp_path / "export"
    assert (export / "tokenizer.model").read_bytes() == (t5_dir / "spiece.model").read_bytes()
    back = from_checkpoint(str(export / "lm.pt"))[0].conditioner
    assert not back.finetune and all(torch.allclose(v, ref[k], rtol=1e-3, atol=1e-7)  # fp16: 11 significant bits
                                     for k, v in back.t5.state_dict().items())
    assert load_model(str(export)).generate(["dog bark"], 0.5).shape == (1, 1, 8000)  # as sample.py loads it


def test_bad_arguments(codecs, tmp_path):
    with pytest.raises(SystemExit, match="unknown preset"):
        run(common(codecs[0], tmp_path, tmp_path / "cache", "--preset", "huge"))
    with pytest.raises(SystemExit, match=r"^--t5 'nowhere': neither a preset \(t5-small, .*\) nor a folder$"):
        run(common(codecs[0], tmp_path, tmp_path / "cache", "--t5", "nowhere"))
    (tmp_path / "t5").mkdir()
    (tmp_path / "t5" / "config.json").write_text("{}")
    with pytest.raises(SystemExit, match=r"^--t5: .*spiece.model missing: download the whole Hugging Face T5 folder$"):
        run(common(codecs[0], tmp_path, tmp_path / "cache", "--t5", str(tmp_path / "t5")))
    with pytest.raises(SystemExit, match="--aug-p 0.5 mixes pairs of clips: use --n-clips 2 or more, or --aug-p 0"):
        run(common(codecs[0], tmp_path, tmp_path / "cache", "--n-clips", "1"))
    with pytest.raises(SystemExit, match="no checkpoint"):
        run(common(codecs[0], tmp_path / "none", tmp_path / "cache", "--resume"))
    with pytest.raises(SystemExit, match="--codec: codec checkpoint not found"):
        run(common(str(tmp_path / "missing.pt"), tmp_path, tmp_path / "cache"))


# ----------------------------------------------------------------------------------- --data


def write_manifest(folder, classes, per_class=10, seconds=0.2, sr=8000, name="data.jsonl"):
    """A manifest sorted by class (all 'dog bark' files, then all 'rain' files, ...), each file
    with its .json caption file and a manifest weight of 1 + its class index."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for c, caption in enumerate(classes):
        for k in range(per_class):
            stem = f"{caption.split()[0]}{k}"
            sf.write(str(folder / f"{stem}.wav"), np.full(int(seconds * sr), 0.1), sr)
            (folder / f"{stem}.json").write_text(json.dumps(dict(description=caption)))
            lines.append(json.dumps(dict(path=f"{stem}.wav", duration=seconds, sample_rate=sr,
                                         weight=1 + c)))
    (folder / name).write_text("\n".join(lines) + "\n")
    return folder / name


def names(args, split, n):
    """The file names of the n clips token_cache.clips takes from a split."""
    return [os.path.basename(lab["path"]) for _, _, lab in tc.clips(args, split, n, 8000, 1)]


def test_a_class_sorted_manifest_trains_on_every_class(tmp_path, capsys):
    """--n-clips takes its crops from the files shuffled by --seed: a manifest sorted by class
    (20 dog files, then 20 rain files) gives both classes, and the run prints the tag shares of
    what it took; the held-out files are another draw of the same shuffle, disjoint."""
    write_manifest(tmp_path / "d", ["dog bark", "rain"], per_class=20)
    args = tl.parser.parse_args(["--data", str(tmp_path / "d"), "--duration", "0.1"])
    train = names(args, "train", 8)
    out = capsys.readouterr().out
    assert {n.rstrip("0123456789.wav") for n in train} == {"dog", "rain"}, train
    assert re.search(r"^train: 8 clips from 8 files; tags: (dog|bark|rain) \d+%", out, re.M), out
    assert "(train: 36 of 40 files, shuffled by seed 0)" in out
    valid = names(args, "valid", 4)
    assert not set(valid) & set(names(args, "train", 36))
    order = holdout([f"{c}{k}.wav" for c in ("dog", "rain") for k in range(20)], 0)
    assert valid == order["valid"] and train == order["train"][:8]
    other = names(tl.parser.parse_args(["--data", str(tmp_path / "d"), "--duration", "0.1",
                                        "--seed", "1"]), "train", 8)
    assert other != train  # another seed, another shuffle


def test_training_files_drawn_by_weight_held_out_ones_in_turn(tmp_path, capsys):
    """--sample-on-weight: the training files (9 of 10) drawn by weight (rain files weigh 2, dog
    files 1); the held-out ones still taken in turn; --exclude-tags leaves a class out of both."""
    write_manifest(tmp_path / "d", ["dog bark", "rain", "bird chirp"], per_class=10)
    args = tl.parser.parse_args(["--data", str(tmp_path / "d"), "--duration", "0.1",
                                 "--sample-on-weight", "--exclude-tags", "bird"])
    drawn = names(args, "train", 1000)
    held = set(holdout([f"{c}{k}.wav" for c in ("dog", "rain", "bird") for k in range(10)],
                       0)["valid"])
    assert not held & set(drawn) and not any(n.startswith("bird") for n in drawn)
    n_dog, n_rain = (sum(n not in held and n.startswith(c) for n in
                         [f"{c}{k}.wav" for c in ("dog", "rain") for k in range(10)])
                     for c in ("dog", "rain"))
    share = 2 * n_rain / (2 * n_rain + n_dog)  # weight x files
    assert abs(sum(n.startswith("rain") for n in drawn) / 1000 - share) < 0.05
    valid = names(args, "valid", 6)
    k = len(set(valid))  # the held-out files left after exclusion, taken in turn, cycled
    assert set(valid) <= held and valid == [valid[i % k] for i in range(6)]


def test_valid_data_is_a_separate_manifest(tmp_path, capsys):
    """--valid-data: the held-out clips come from that manifest; --data trains on all its files;
    both start-up lines say which manifest they read. train.jsonl and valid.jsonl in one folder
    are two manifests: --data FOLDER alone is refused with one line."""
    write_manifest(tmp_path / "d", ["dog bark", "rain"], per_class=5, name="train.jsonl")
    write_manifest(tmp_path / "d", ["bird chirp"], per_class=3, name="valid.jsonl")
    args = tl.parser.parse_args(["--data", str(tmp_path / "d" / "train.jsonl"), "--valid-data",
                                 str(tmp_path / "d" / "valid.jsonl"), "--duration", "0.1"])
    assert len(set(names(args, "train", 10))) == 10  # every file: none held out
    assert {n.rstrip("0123456789.wav") for n in names(args, "valid", 3)} == {"bird"}
    out = capsys.readouterr().out
    assert f"FolderDataset {tmp_path / 'd' / 'train.jsonl'} (all: 10 of 10 files" in out
    assert f"FolderDataset {tmp_path / 'd' / 'valid.jsonl'} (all: 3 of 3 files" in out
    with pytest.raises(SystemExit, match=r"^--data: .* holds several manifests \(train.jsonl, "
                                         r"valid.jsonl\): pass the training one as --data"):
        names(tl.parser.parse_args(["--data", str(tmp_path / "d")]), "train", 1)
    with pytest.raises(SystemExit, match=r"^--valid-data: the built-in data has no manifest"):
        names(tl.parser.parse_args(["--valid-data", str(tmp_path / "d")]), "train", 1)


def test_bad_data_gets_one_line(tmp_path, capsys):
    """Each bad input exits with one line naming the flag, the file and the line: a missing --data,
    a manifest line without path, a broken JSON line (its real line number), an empty manifest,
    --balance-tags with nothing to balance, a data flag without --data, a probability flag out of
    [0, 1] (argparse's usage error)."""
    d = tmp_path / "d"
    manifest = write_manifest(d, ["dog bark"], per_class=3)
    good = manifest.read_text().splitlines()
    cases = [
        (["--data", str(tmp_path / "nope")], None, r"^--data: no such folder or manifest: .*nope$"),
        (["--data", str(d)], "\n".join(good[:1] + ['{"duration": 1.0}'] + good[1:]),
         r'^--data: .*data.jsonl line 2 has no "path": each line is one audio file'),
        (["--data", str(d)], "\n".join(good[:2] + ["", '{"path": "a.wav",'] + good[2:]),
         r"^--data: .*data.jsonl line 4 is not JSON \(.*\): fix that line$"),
        (["--data", str(d)], "", r"^--data: .*data.jsonl lists no audio file"),
        (["--data", str(d), "--balance-tags"], "\n".join(good),
         r"^--data: balance_tags: no file of .* has a tag"),
        (["--balance-tags"], None, r"^--balance-tags: the built-in data has no manifest"),
    ]
    for flags, text, error in cases:
        if text is not None:
            manifest.write_text(text + "\n")
        if "--balance-tags" in flags and "--data" in flags:
            for p in d.glob("*.json"):
                p.unlink()
        with pytest.raises(SystemExit, match=error) as e:
            names(tl.parser.parse_args([*flags, "--duration", "0.1"]), "train", 1)
        assert "\n" not in str(e.value)
    for flag, value in (("--aug-p", "1.5"), ("--cfg-dropout", "5"), ("--word-dropout", "3"),
                        ("--unk-dropout", "-1"), ("--melody-dropout", "nan"),
                        ("--merge-text-p", "2")):
        capsys.readouterr()
        with pytest.raises(SystemExit):
            tl.parser.parse_args([flag, value])
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert err.endswith(f"argument {flag}: {value!r} is not a probability: give a number in "
                            "[0, 1]"), err


def test_ddp_two_cpu_processes_stay_in_sync(codecs, tmp_path):
    """torchrun, gloo, 2 CPU processes: the script compares the replicas' weights at every checkpoint."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(ROOT / "train_lm.py"), "--device", "cpu", "--steps", "2", "--eval-every", "2",
           *common(codecs[0], tmp_path, tmp_path / "cache")]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "replicas in sync" in out.stdout and "2 process(es)" in out.stdout
    assert len(torch.load(tmp_path / "ckpt.pt", weights_only=True)["rng"]) == 2  # each rank's RNG state
