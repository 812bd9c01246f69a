"""
Tests for evaluation/eval_codec.py (what a codec keeps per class and octave band). Run: python -m
pytest -q tests/test_eval_codec.py (CPU, seconds).

The shipped codec on 6 held-out clips: a row per class and one for all clips, the bands of each
clip adding up to the whole clip.
"""

from pathlib import Path

import pytest
import torch

from evaluation import eval_codec

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


def test_eval_codec_script_prints_a_row_per_class(capsys):
    codec = str(ROOT / "checkpoints" / "codec.pt")
    results, share, classes = eval_codec.main(["--codec", codec, "--n-clips", "6"])
    out = capsys.readouterr().out
    assert set(results) == {1, 2, 4, 8} and results[4][0].shape == (6, 5) and share.shape == (6, 5)
    assert all(f"| {c} (" in out for c in set(classes)) and "| all clips (6) |" in out
    # share: each band's part of the clip's energy, which adds up to the whole clip
    assert torch.allclose((10 ** (share / 10)).sum(1), torch.ones(6), atol=1e-4)
