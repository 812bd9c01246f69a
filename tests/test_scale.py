"""
Tests for training a larger LM: activation checkpointing (lm.LM.grad_checkpointing, train_lm.py
--grad-checkpointing) and FSDP (training.shard, gather, load_optimizer; train_lm.py --fsdp). Run:
python -m pytest -q tests/test_scale.py (CPU, about a minute: three torchrun launches).

Checked: with checkpointing each layer runs twice per training step (forward, then again in
backward) and the loss and every gradient equal those without it, LoRA adapters included; without
gradients or with the KV cache (sampling) nothing is recomputed and the samples are the same;
train_lm.py with the flag trains as without it. FSDP under torchrun, 2 CPU processes (gloo), 2
clips each, with checkpointing: the run exits 0 and writes ckpt.pt and the export; the weights and
AdamW moments that rank 0 gathered into ckpt.pt, and the held-out loss, equal those of one process
training on the same 4 clips per step (a frozen pretrained T5, which has no dropout: the loss does
not depend on the split). LoRA under FSDP with an EMA of the adapters, stopped after a step and
resumed (each rank takes its shard of the saved moments and average), ends where one process
does. --fsdp without torchrun: one line.
"""

import os
import re
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest
import torch

import synth
import train_lm as tl
from conditioners import Tokenizer
from lm import LM, LMConfig
from lora import LoRAAttention, LoRALinear, add_lora

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py

CONFIG = LMConfig(dim=32, num_heads=2, num_layers=3, card=16, cond_dim=32, max_duration=1.0)


def loss_and_grads(lm, codes, condition, mask):
    """One training forward and backward -> (loss, {name: gradient})."""
    lm.zero_grad(set_to_none=True)
    _, loss = lm(codes, condition, mask, targets=codes)
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in lm.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("lora", [False, True])
def test_grad_checkpointing_same_loss_and_gradients(lora):
    torch.manual_seed(0)
    lm = LM(CONFIG).train()
    if lora:  # B = 0 at the start would give A no gradient: as if trained a little
        add_lora(lm, rank=4)
        for m in lm.modules():
            if isinstance(m, (LoRALinear, LoRAAttention)):
                torch.nn.init.normal_(m.lora_B, std=0.1)
    codes = torch.randint(0, CONFIG.card, (2, CONFIG.n_q, 20))
    condition, mask = torch.randn(2, 5, CONFIG.dim), torch.tensor([[1] * 5, [1, 1, 1, 0, 0]])
    calls = []
    for layer in lm.transformer.layers:
        layer.register_forward_pre_hook(lambda *_: calls.append(1))  # recompute: no post hook
    loss, grads = loss_and_grads(lm, codes, condition, mask)
    assert len(calls) == CONFIG.num_layers
    lm.grad_checkpointing, calls[:] = True, []
    loss_ckpt, grads_ckpt = loss_and_grads(lm, codes, condition, mask)
    assert len(calls) == 2 * CONFIG.num_layers  # each layer recomputed in backward
    assert torch.allclose(loss_ckpt, loss, rtol=0, atol=1e-6)
    assert grads_ckpt.keys() == grads.keys() and (not lora or all(".lora_" in n for n in grads))
    for n in grads:
        assert torch.allclose(grads_ckpt[n], grads[n], rtol=1e-5, atol=1e-7), n
    # without gradients (evaluation) or with a KV cache (sampling) nothing is recomputed
    calls[:] = []
    with torch.no_grad():
        lm(codes, condition, mask)
    assert len(calls) == CONFIG.num_layers
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    lm.eval()
    on = lm.generate(condition[:1], duration=0.2, generator=g())
    lm.grad_checkpointing = False
    assert torch.equal(on, lm.generate(condition[:1], duration=0.2, generator=g()))


@pytest.fixture(scope="module")
def codec_path(tiny_codec, tmp_path_factory):
    """conftest.py's tiny codec with random weights, saved with its config."""
    path = tmp_path_factory.mktemp("codec") / "codec.pt"
    codec = tiny_codec(0)
    torch.save({"config": asdict(codec.config), "model": codec.state_dict()}, path)
    return str(path)


def common(codec, out, *extra):
    """A miniature train_lm.py run: 8 clips of 1 s, an LM 32 wide with 2 layers, 2 steps."""
    return ["--codec", codec, "--out-dir", str(out), "--cache-dir", str(out.parent / "cache"),
            "--n-clips", "8", "--eval-clips", "2", "--duration", "1", "--dim", "32", "--layers",
            "2", "--heads", "2", "--batch-size", "2", "--warmup", "1", "--log-every", "1",
            "--n-samples", "1", "--steps", "2", "--eval-every", "2", "--device", "cpu", *extra]


def losses(out):
    return [float(x) for x in re.findall(r"^step \d+/\d+ \| loss ([\d.]+)", out, re.M)]


def held_out(out):
    return float(re.search(r"^eval step \d+ .* held-out loss ([\d.]+)", out, re.M).group(1))


def test_train_lm_with_grad_checkpointing(codec_path, tmp_path, capsys):
    plain = tl.main(tl.parser.parse_args(common(codec_path, tmp_path / "a")))
    out_plain = capsys.readouterr().out
    ckpt = tl.main(tl.parser.parse_args(common(codec_path, tmp_path / "b",
                                               "--grad-checkpointing")))
    out_ckpt = capsys.readouterr().out
    assert ckpt.lm.grad_checkpointing and len(losses(out_ckpt)) == 2
    assert losses(out_ckpt) == pytest.approx(losses(out_plain), abs=1e-4)
    a, b = plain.checkpoint(), ckpt.checkpoint()
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)
    assert (tmp_path / "b" / "export" / "lm.pt").exists()


@pytest.fixture(scope="module")
def t5_dir(tmp_path_factory):
    """A frozen pretrained T5 in miniature (transformers' T5EncoderModel, random weights, a
    sentencepiece model of built-in captions): frozen, it runs without dropout, so a step's loss
    does not depend on how the batch is split over the ranks."""
    transformers = pytest.importorskip("transformers")
    d = tmp_path_factory.mktemp("t5-mini")
    captions = [c[k] for c in (synth.make_clip(i, 7, 0.01) for i in range(40))
                for k in ("tags", "sentence")]
    tok = Tokenizer.train(captions, 200, str(d / "spiece.model"))
    torch.manual_seed(0)
    config = transformers.T5Config(vocab_size=tok.vocab_size, d_model=32, d_kv=8, d_ff=64,
                                   num_layers=1, num_heads=4)
    transformers.T5EncoderModel(config).save_pretrained(d)
    return str(d)


def torchrun(*args):
    """train_lm.py under torchrun, 2 CPU processes (gloo) -> its stdout; exit 0 asserted."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(ROOT / "train_lm.py"), *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def assert_same_checkpoint(path, reference):
    """Two ckpt.pt: the same step, keys, weights, EMA and AdamW moments (up to float rounding: the
    gradients are summed in another order)."""
    a, b = (torch.load(p, weights_only=True) for p in (path, reference))
    assert a["step"] == b["step"] and a["model"].keys() == b["model"].keys()
    for k in a["model"]:
        assert torch.allclose(a["model"][k], b["model"][k], rtol=1e-4, atol=1e-6), k
    assert (a["lora"] or {}).keys() == (b["lora"] or {}).keys()
    for k in a["lora"] or {}:
        assert torch.allclose(a["lora"][k], b["lora"][k], rtol=1e-4, atol=1e-6), k
    assert (a["ema"] or {}).keys() == (b["ema"] or {}).keys()  # --ema: the average, gathered
    if a["ema"]:
        assert a["ema"]["count"] == b["ema"]["count"]
        for k, v in a["ema"]["weights"].items():
            assert torch.allclose(v, b["ema"]["weights"][k], rtol=1e-4, atol=1e-6), k
    oa, ob = a["optimizer"], b["optimizer"]
    assert oa["param_groups"] == ob["param_groups"] and oa["state"].keys() == ob["state"].keys()
    for i in oa["state"]:
        for k, v in oa["state"][i].items():
            assert torch.allclose(v, ob["state"][i][k], rtol=1e-3, atol=1e-9), (i, k)


def test_fsdp_two_cpu_processes_equal_one_process(codec_path, t5_dir, tmp_path, capsys):
    """FSDP over 2 processes (gloo), 2 clips each, against one process with the same 4 clips per
    step: the same losses, and rank 0's gathered checkpoint holds the same weights and moments.
    The LM's layers run with --grad-checkpointing under FSDP. Then LoRA: a run stopped after step
    1 and resumed under FSDP (each rank takes its shard of the saved moments) ends where one
    process does."""
    flags = ["--t5", t5_dir, "--unk-dropout", "0"]
    one = lambda out, *extra: tl.main(tl.parser.parse_args(  # noqa: E731
        common(codec_path, out, *flags, "--batch-size", "4", *extra)))
    one(tmp_path / "one")
    out_one = capsys.readouterr().out
    out = torchrun(*common(codec_path, tmp_path / "fsdp", *flags, "--fsdp", "--grad-checkpointing"))
    assert "sharded over 2 ranks (FSDP)" in out and "2 process(es) x 2 clips" in out
    # the step lines show rank 0's half of the batch; the held-out loss is the whole model's
    assert held_out(out) == pytest.approx(held_out(out_one), abs=1e-4)
    assert_same_checkpoint(tmp_path / "fsdp" / "ckpt.pt", tmp_path / "one" / "ckpt.pt")
    assert sorted(os.listdir(tmp_path / "fsdp" / "export")) == ["codec.pt", "lm.pt",
                                                                "tokenizer.model"]
    # LoRA and an EMA of the adapters under FSDP, stopped after step 1 (the cosine still ends at
    # step 2), then resumed: each rank takes its shard of the saved average too
    lora = ["--lora", "4", "--lr-decay-steps", "2", "--ema", "0.5", "--ema-every", "1"]
    one(tmp_path / "one_lora", *lora)
    torchrun(*common(codec_path, tmp_path / "lora", *flags, *lora, "--fsdp", "--steps", "1"))
    out = torchrun(*common(codec_path, tmp_path / "lora", *flags, *lora, "--fsdp", "--resume"))
    assert f"resumed from {tmp_path / 'lora' / 'ckpt.pt'} at step 1 (of 2)" in out
    assert_same_checkpoint(tmp_path / "lora" / "ckpt.pt", tmp_path / "one_lora" / "ckpt.pt")
    assert (tmp_path / "lora" / "export" / "lm.pt").exists()


def test_fsdp_needs_torchrun(codec_path, tmp_path):
    with pytest.raises(SystemExit, match="--fsdp shards the model over torchrun's processes"):
        tl.main(tl.parser.parse_args(common(codec_path, tmp_path, "--fsdp")))
