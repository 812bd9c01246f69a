"""
Tests for fine-tuning with train_lm.py: --init SRC starts from a trained model (this repo's export
here), takes its architecture, codec, tokenizer and conditioners, refuses the flags that would
change them, and learns a caption word SRC never saw.
Run: python -m pytest -q tests/test_finetune.py (CPU, about 20 s).
"""

import argparse
import re
import warnings

import numpy as np
import pytest
import soundfile as sf
import torch

import train_lm as tl
from model import load_model

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


def whistles(folder, n=12, sr=16000):
    """n clips of 1 s captioned with words the built-in data never uses: a rising whistle."""
    folder.mkdir()
    t = np.arange(sr) / sr
    for i in range(n):
        f0 = 900 + 40 * i
        wav = 0.5 * np.sin(2 * np.pi * (f0 * t + 300 * t ** 2))  # a chirp f0 -> f0 + 600 Hz
        sf.write(str(folder / f"w{i}.wav"), wav, sr)
        (folder / f"w{i}.txt").write_text("zorblat whistle")
    return folder


def run(args):
    return tl.main(tl.parser.parse_args(args))


@pytest.fixture(scope="module")
def src(tiny_lm_export, tmp_path_factory):
    """A tiny export of this repo (random weights; its T5 trained here: known pieces only)."""
    return tiny_lm_export(tmp_path_factory.mktemp("src"))


def test_init_from_an_export_learns_a_new_word(src, tmp_path, capsys):
    """--init: the LM, the T5 trained here and its tokenizer come from SRC, the codec too (saved as
    out_dir/codec.pt); the new captions' pieces join the known ones, so "zorblat" is read through
    its pieces instead of as <unk>, and the loss on the new clips falls; the T5 trains (it is this
    repo's, finetune true)."""
    before = load_model(str(src))
    data = whistles(tmp_path / "whistles")
    with pytest.warns(UserWarning, match=r"unknown words \['zorblat'"):
        before.conditioner.tokenizer.encode(["zorblat whistle"])
    args = ["--init", str(src), "--data", str(data), "--out-dir", str(tmp_path / "run"),
            "--duration", "1", "--n-clips", "12", "--eval-clips", "2", "--steps", "30",
            "--eval-every", "30", "--batch-size", "4", "--lr", "3e-3", "--warmup", "2",
            "--aug-p", "0", "--n-samples", "0", "--log-every", "1", "--unk-dropout", "0",
            "--export", str(tmp_path / "export")]
    model = run(args)
    out = capsys.readouterr().out
    losses = [float(x) for x in re.findall(r"^step \d+/30 \| loss ([\d.]+)", out, re.M)]
    assert sum(losses[-5:]) < 0.8 * sum(losses[:5]), losses
    assert model.lm.config == before.lm.config and (tmp_path / "run" / "codec.pt").exists()
    after = load_model(str(tmp_path / "export"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no <unk>: every piece of the new word is known now
        ids, _ = after.conditioner.tokenizer.encode(["zorblat whistle"])
    assert after.conditioner.tokenizer.unk_id not in ids[0].tolist()
    assert before.conditioner.tokenizer.known < after.conditioner.tokenizer.known
    changed = lambda a, b: not torch.equal(a, b.to(a.dtype))  # noqa: E731
    assert changed(after.lm.linears[0].weight, before.lm.linears[0].weight)
    assert changed(after.conditioner.t5.shared.weight, before.conditioner.t5.shared.weight)
    codes = torch.randint(0, 256, (1, 4, 10))
    # SRC's codec (the export stores it in fp16 when that moves the audio by less than 1e-3)
    assert torch.allclose(after.codec.decode(codes), before.codec.decode(codes), atol=1e-3)


def test_init_refuses_architecture_flags_and_bad_sources(src, tmp_path):
    """One line each: a flag that would change SRC's architecture, a SRC that does not load (which
    file), clips longer than SRC's window."""
    base = ["--init", str(src), "--out-dir", str(tmp_path / "run")]
    with pytest.raises(SystemExit, match=rf"^--init takes the architecture from "
                                         rf"{re.escape(str(src))}: drop --dim, --melody$"):
        run(base + ["--dim", "64", "--melody"])
    with pytest.raises(SystemExit, match=r"^--init: .*nope: not found$"):
        run(["--init", str(tmp_path / "nope"), "--out-dir", str(tmp_path / "run")])
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "lm.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(SystemExit, match=r"^--init: .*broken/lm.pt is not a readable PyTorch"):
        run(["--init", str(tmp_path / "broken"), "--out-dir", str(tmp_path / "run")])
    with pytest.raises(SystemExit, match=r"^--duration 5.0 is longer than the window of .* "
                                         r"\(1.0 s\)"):
        run(base + ["--duration", "5"])


def test_lora_trains_adapters_only_resumes_exactly_and_merges(src, tmp_path, capsys):
    """--init SRC --lora 4: only the adapters train (the LM's base weights, the T5, output_proj stay
    SRC's); the start-up line counts the trainable parameters and the optimizer's memory; ckpt.pt
    holds the base weights under their keys and the adapters apart, so --resume ends on the
    uninterrupted run's weights; the export merges them (SRC's key set: load_model needs nothing
    new) and differs from SRC."""
    data = whistles(tmp_path / "whistles")

    def args(out, steps, *extra):
        return ["--init", str(src), "--data", str(data), "--out-dir", str(out), "--duration", "1",
                "--n-clips", "8", "--eval-clips", "2", "--steps", str(steps), "--lr-decay-steps",
                "4", "--eval-every", "2", "--batch-size", "4", "--lr", "1e-2", "--aug-p", "0",
                "--n-samples", "0", "--lora", "4", "--cache-dir", str(tmp_path / "cache"),
                "--export", str(out / "export"), *extra]
    full = run(args(tmp_path / "a", 4))
    out = capsys.readouterr().out
    assert re.search(r"^trainable: [\d.]+M of [\d.]+M parameters \(LoRA adapters of rank 4\); "
                     r"AdamW state [\d.]+ MiB$", out, re.M), out
    before = load_model(str(src))
    ckpt = torch.load(tmp_path / "a" / "ckpt.pt", weights_only=True)
    assert ckpt["lora"] and all(".lora_" in k for k in ckpt["lora"])
    base = {k: v for k, v in before.checkpoint().items()}
    assert ckpt["model"].keys() == base.keys()
    assert all(torch.equal(ckpt["model"][k], v.to(ckpt["model"][k].dtype)) for k, v in base.items())
    run(args(tmp_path / "b", 2))
    resumed = run(args(tmp_path / "b", 4, "--resume"))
    sa, sb = full.checkpoint(), resumed.checkpoint()  # both merged by their exports
    assert sa.keys() == sb.keys() == base.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    after = load_model(str(tmp_path / "a" / "export"))
    assert not torch.equal(after.lm.transformer.layers[0].linear1.weight,
                           before.lm.transformer.layers[0].linear1.weight)
    no_lora = args(tmp_path / "b", 6, "--resume")
    i = no_lora.index("--lora")
    with pytest.raises(SystemExit, match=r"^--resume: .*ckpt.pt was trained with --lora 4: pass the "
                                         "same$"):
        run(no_lora[:i] + no_lora[i + 2:])
    with pytest.raises(SystemExit, match=r"^--lora 0: the rank must be a whole number, 1 or more"):
        run(no_lora[:i] + ["--lora", "0"] + no_lora[i + 2:-1] + ["--out-dir", str(tmp_path / "c")])


def test_replay_mixes_the_builtin_data_into_the_folder(src, tmp_path, capsys):
    """--replay P: a coin per step (p = P) takes the batch from the built-in data's own token cache
    instead of --data's, a function of (seed, step); its default is 0.5 only for a model that
    learnt the built-in data (its tokenizer knows every source, scene and instrument: the shipped
    model), 0 for SRC (it knows 8 clips' words) and without --data; --resume keeps the run's
    share."""
    def args(**kw):
        base = dict(replay=None, data="folder", batch_size=2, seed=0, aug_p=0.0, word_dropout=0.0,
                    unk_dropout=0.0, normalize=True, cfg_dropout=0.0, melody_dropout=0.0)
        return argparse.Namespace(**{**base, **kw})
    shipped, tiny = load_model("checkpoints"), load_model(str(src))
    assert tl.finetune.replay_share(args(), shipped) == 0.5
    assert tl.finetune.replay_share(args(), tiny) == 0.0
    assert tl.finetune.replay_share(args(data=None), shipped) == 0.0
    assert tl.finetune.replay_share(args(replay=0.2), tiny) == 0.2
    assert tl.finetune.replay_share(args(), None, {"args": {"replay": 0.3}}) == 0.3
    with pytest.raises(SystemExit, match=r"^--replay mixes the built-in data into --data's: pass "):
        tl.finetune.replay_share(args(data=None, replay=0.5), shipped)

    def pool(value):  # a token cache whose codes say where a batch came from
        return dict(codes=torch.full((4, 2, 3), value), captions=[["dog bark park"]] * 4)
    tokens = dict(pool(1), replay=pool(2))
    drawn = [tl.get_batch(tokens, step, args(replay=0.5))[0][0, 0, 0].item() for step in range(400)]
    assert drawn == [tl.get_batch(tokens, s, args(replay=0.5))[0][0, 0, 0].item()
                     for s in range(400)]
    assert 0.4 < drawn.count(2) / 400 < 0.6
    assert all(tl.get_batch(tokens, s, args(replay=0.0))[0][0, 0, 0].item() == 1 for s in range(50))

    data = whistles(tmp_path / "whistles")
    run_args = ["--init", str(src), "--data", str(data), "--out-dir", str(tmp_path / "run"),
                "--duration", "1", "--n-clips", "4", "--eval-clips", "2", "--steps", "2",
                "--batch-size", "2", "--aug-p", "0", "--n-samples", "0", "--replay", "0.5"]
    run(run_args)
    out = capsys.readouterr().out
    assert "4 clips + 0 mixes of 50 frames (50% of the steps on the built-in data)" in out, out
    assert len(list((tmp_path / "run" / "cache").glob("tokens_*.pt"))) == 2  # --data's, built-in
    run(run_args[:-2] + ["--resume", "--steps", "3"])
    assert "(50% of the steps on the built-in data)" in capsys.readouterr().out


def test_learning_rate_defaults_depend_on_the_run():
    """--lr 1e-3 from scratch and for LoRA's new adapters, 3e-4 for full fine-tuning (--init
    without --lora); --min-lr a tenth of it; a given flag is kept."""
    def chosen(*argv):
        args = tl.parser.parse_args(list(argv))
        tl.finetune.choose_defaults(args, None)
        return args.lr, args.min_lr
    assert chosen() == (1e-3, 1e-4)
    assert chosen("--init", "checkpoints") == (3e-4, pytest.approx(3e-5))
    assert chosen("--init", "checkpoints", "--lora", "16") == (1e-3, 1e-4)
    assert chosen("--init", "checkpoints", "--lr", "1e-4") == (1e-4, pytest.approx(1e-5))
    assert chosen("--lr", "2e-3", "--min-lr", "0") == (2e-3, 0.0)
