"""
Tests for t5.py: the T5 encoder equals transformers' T5EncoderModel on the same weights (read by
checkpoint.load_t5, whose bad folders are one-line errors), and the relative position buckets
derived by hand. CPU, a few seconds.
Run: python -m pytest -q tests/test_t5.py
"""
import sys

import pytest
import torch

from checkpoint import load_t5
from conditioners import Tokenizer, normalize_text
from t5 import T5_PRESETS, T5Config, T5Encoder, relative_position_bucket

CAPTIONS = ["A dog is barking at the park.", "Birds are chirping while cars pass by!",
            "Rain falls on a tin roof.",
            "An upbeat pop song with drums, guitars and a walking bass line.",
            "Calm piano music with soft strings.", "A crowd cheers and claps in a stadium.",
            "Thunder rumbles over heavy rain.", "A car engine revs up."]
# of different lengths, so the batch is padded
PROMPTS = ["dog bark park", "calm piano music with strings and thunder over the stadium crowd",
           "rain"]


@pytest.fixture(scope="module")
def tok_path(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("tok") / "spiece.model")
    Tokenizer.train([normalize_text(c) for c in CAPTIONS] + CAPTIONS, 100, path)
    return path


# T5 v1.0 (t5-base), v1.1 (flan-t5)
@pytest.mark.parametrize("ff, weights", [("relu", "pytorch_model.bin"),
                                         ("gated-gelu", "pytorch_model.bin"),
                                         ("relu", "model.safetensors")])
def test_t5_matches_transformers(ff, weights, tok_path, tmp_path):
    """A random HF T5EncoderModel, saved as an official directory (the legacy pytorch_model.bin of
    the hub repos, or only the model.safetensors save_pretrained writes today) and read back by
    load_t5, gives the same last_hidden_state on a padded batch. Short max_distance so a 16-token
    batch reaches the log buckets."""
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    cfg = transformers.T5Config(vocab_size=128, d_model=32, d_kv=8, d_ff=64, num_layers=2,
                                num_heads=4, relative_attention_max_distance=12,
                                feed_forward_proj=ff)
    hf = transformers.T5EncoderModel(cfg).eval()
    hf.save_pretrained(tmp_path)  # config.json (+ model.safetensors with recent transformers)
    if weights == "pytorch_model.bin":
        # the legacy weights file of HF's hub repos
        torch.save(hf.state_dict(), tmp_path / "pytorch_model.bin")
    # pytorch_model.bin only where written above: else model.safetensors alone
    assert (tmp_path / "pytorch_model.bin").exists() == (weights == "pytorch_model.bin")
    (tmp_path / "spiece.model").write_bytes(open(tok_path, "rb").read())
    model, tok = load_t5(str(tmp_path))
    assert model.config.feed_forward_proj == ff and not model.training
    ids, mask = tok.encode(PROMPTS)
    assert ids.shape[1] >= 16 and not mask.all()  # padded, and long enough for the log buckets
    with torch.no_grad():
        ref = hf(input_ids=ids, attention_mask=mask.long()).last_hidden_state
        out = model(ids, mask)
    # real tokens (HF's own pads are don't-care)
    assert torch.allclose(out[mask], ref[mask], atol=1e-5)
    assert torch.allclose(out, ref, atol=1e-5)  # padded positions happen to match too


def test_relative_position_bucket_by_hand():
    """(32 buckets, max 128): n = 16 per direction, e = 8 exact. d = 127: 8 + floor(ln(127/8) /
    ln(16) * 8) = 8 + floor(7.977) = 15; d >= 128 clamps to 15; keys after the query (rel > 0) add
    16."""
    rel = torch.tensor([0, -1, -7, -8, -127, -128, -500, 1, 7, 127, 500])
    expected = [0, 1, 7, 8, 15, 15, 15, 17, 23, 31, 31]
    assert relative_position_bucket(rel).tolist() == expected


def test_bad_config_and_ids():
    """An unknown feed_forward_proj, and a token id past the vocabulary (a tokenizer made for
    another T5), are one-line errors."""
    with pytest.raises(ValueError, match="feed_forward_proj='swiglu'"):
        T5Config(feed_forward_proj="swiglu")
    small = T5Config(vocab_size=10, d_model=32, d_kv=8, d_ff=64, num_layers=1, num_heads=4)
    with pytest.raises(ValueError, match="vocab_size"):
        T5Encoder(small)(torch.tensor([[12, 1]]))
    assert T5_PRESETS["t5-small"] == T5Config()  # the defaults are t5-small


def test_load_t5_errors(tmp_path, tok_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_t5(str(tmp_path))
    config = '{"d_model": 32, "d_kv": 8, "d_ff": 64, "num_layers": 1, "num_heads": 4}'
    (tmp_path / "config.json").write_text(config)
    (tmp_path / "spiece.model").write_bytes(open(tok_path, "rb").read())
    with pytest.raises(FileNotFoundError, match="pytorch_model.bin"):
        load_t5(str(tmp_path))
    with pytest.raises(FileNotFoundError, match="neither pytorch_model.bin nor model.safetensors"):
        load_t5(str(tmp_path))
    (tmp_path / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(ValueError, match="cannot read"):
        load_t5(str(tmp_path))
    with monkeypatch.context() as m:  # no safetensors package: say how to get it
        m.setitem(sys.modules, "safetensors", None)
        m.setitem(sys.modules, "safetensors.torch", None)
        with pytest.raises(ImportError, match="pip install safetensors"):
            load_t5(str(tmp_path))
    (tmp_path / "model.safetensors").unlink()
    (tmp_path / "pytorch_model.bin").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="cannot read"):
        load_t5(str(tmp_path))
    torch.save({"shared.weight": torch.zeros(7, 32)}, tmp_path / "pytorch_model.bin")
    with pytest.raises(ValueError, match="shape"):  # vocab 7 vs 32128 in config (default)
        load_t5(str(tmp_path))
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="cannot read"):
        load_t5(str(tmp_path))
