"""
Tests for train_lm.py. Run: python -m pytest -q tests/test_train_lm.py (CPU, about 30 s).

A tiny random codec (codec.PRESETS['tiny'] after one k-means batch) and a tiny LM (--dim 32 --layers 1) on a few
built-in clips of 1 s. Checked: the loss falls on the cached tokens; resume is bit-exact, also after Ctrl-C; the
token cache is reused, and rebuilt when the codec changes; the checkpoint and the export are checkpoint.load_lm's
format; bad arguments give one-line errors; two DDP processes (gloo) stay in sync.
"""

import os
import re
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest
import soundfile as sf
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import sample  # noqa: E402
import synth  # noqa: E402
import train_lm as tl  # noqa: E402
from checkpoint import load_codec, load_lm  # noqa: E402
from model import COND, from_checkpoint  # noqa: E402
from conftest import tiny_codec  # noqa: E402
from test_train_codec import interrupted_run  # noqa: E402


pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


def make_codec(path, seed=0):
    """A tiny codec with random weights whose codebooks were initialised by one k-means batch, saved with its config."""
    codec = tiny_codec(seed)
    torch.save({"config": asdict(codec.config), "model": codec.state_dict()}, path)
    return str(path)


@pytest.fixture(scope="module")
def codecs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("codecs")
    return make_codec(tmp / "codec.pt"), make_codec(tmp / "other.pt", seed=1)


def common(codec, out, cache, *extra):
    return ["--codec", codec, "--out-dir", str(out), "--cache-dir", str(cache), "--n-clips", "8", "--eval-clips", "2",
            "--duration", "1", "--dim", "32", "--layers", "1", "--heads", "2", "--batch-size", "4", "--warmup", "2",
            "--log-every", "1", "--n-samples", "1", *extra]


def run(args):
    return tl.main(tl.parser.parse_args(args))


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
    for (k, v), w in zip(full.checkpoint().items(), resumed.checkpoint().values()):
        assert torch.equal(v, w), k
    assert len((tmp_path / "b" / "eval.tsv").read_text().splitlines()) == 2


def test_ctrl_c_saves_a_checkpoint_that_resumes_exactly(codecs, tmp_path, capsys):
    """Issue 14: Ctrl-C (a real SIGINT) while step 3 is under way, between the checkpoints of --eval-every 4: the
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
    for (k, v), w in zip(full.checkpoint().items(), resumed.checkpoint().values()):
        assert torch.equal(v, w), k


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


def test_batches_and_schedule():
    split = dict(codes=torch.arange(10, dtype=torch.int16)[:, None, None].expand(10, 4, 5),
                 captions=[["tag", "a sentence"], [""], ["the"]] + [["x"]] * 7)
    args = tl.parser.parse_args(["--batch-size", "4", "--cfg-dropout", "0"])
    c0, t0, no_melody = tl.get_batch(split, 3, args)
    c1, t1, _ = tl.get_batch(split, 3, args)
    assert torch.equal(c0, c1) and t0 == t1 and c0.shape == (4, 4, 5) and no_melody is None  # f(seed, step)
    both = tl.get_batch(split, 3, args, 0, 2)[0], tl.get_batch(split, 3, args, 1, 2)[0]
    assert torch.equal(both[0], c0)  # rank 0 of 2 takes the first slice of the global batch
    assert tl.as_prompt("", True) is None and tl.as_prompt("the", True) is None and tl.as_prompt("the", False)
    args = tl.parser.parse_args(["--cfg-dropout", "1"])
    assert tl.get_batch(split, 0, args)[1] == [None] * args.batch_size  # the whole batch dropped
    args = tl.parser.parse_args(["--steps", "100", "--warmup", "10", "--lr", "1", "--min-lr", "0.1"])
    assert tl.get_lr(0, args) == pytest.approx(0.1) and tl.get_lr(9, args) == 1.0
    assert tl.get_lr(55, args) == pytest.approx(0.55) and tl.get_lr(100, args) == 0.1  # cosine midpoint, end


def test_melody_conditioning(codecs, tmp_path, capsys):
    """--melody: each music clip caches its own chroma (sound clips: the null melody, 0), the LM reads it as a
    prefix (its logits depend on it), the loss falls, and the export samples with sample.py --melody."""
    model = run(common(codecs[0], tmp_path / "run", tmp_path / "cache", "--melody", "--steps", "30", "--lr", "3e-3",
                       "--eval-every", "30", "--export", str(tmp_path / "export")))
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
    # the export keeps the melody conditioner; sample.py follows a melody file with it, or the null melody without
    tune = tmp_path / "tune.wav"
    sf.write(tune, synth.make_clip(i, 0, 1.0, 16000)["wav"], 16000)
    a, b = str(tmp_path / "a.wav"), str(tmp_path / "b.wav")
    args = ["--model", str(tmp_path / "export"), "--prompt", "piano", "--duration", "0.5", "--temperature", "0"]
    sample.main([*args, "--melody", str(tune), "--out", a])
    sample.main([*args, "--out", b])
    assert sf.info(a).frames == 8000 and Path(a).read_bytes() != Path(b).read_bytes()


def test_bad_arguments(codecs, tmp_path):
    with pytest.raises(SystemExit, match="unknown preset"):
        run(common(codecs[0], tmp_path, tmp_path / "cache", "--preset", "huge"))
    with pytest.raises(SystemExit, match="no checkpoint"):
        run(common(codecs[0], tmp_path / "none", tmp_path / "cache", "--resume"))
    with pytest.raises(SystemExit, match="--codec: codec checkpoint not found"):
        run(common(str(tmp_path / "missing.pt"), tmp_path, tmp_path / "cache"))


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
