"""Shared test helpers: the one-thread fixture and the tiny codec the LM/sampling tests build."""

import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import synth  # noqa: E402
from codec import PRESETS, Codec  # noqa: E402


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models run fastest on one thread, and steadily next to another job; restored afterwards.
    Modules opt in with `pytestmark = pytest.mark.usefixtures("one_thread")`."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def tiny_codec(seed=0):
    """The tiny codec with random weights, its codebooks initialised by one k-means batch."""
    torch.manual_seed(seed)
    codec = Codec(PRESETS["tiny"]).train()
    codec(torch.stack([torch.from_numpy(synth.make_clip(i, seed, 0.5)["wav"])[None] for i in range(4)]))
    return codec.eval()
