"""
Every library module's `__main__` demo runs, as the README tells a reader to run it (STYLE rule 18).
Run: python -m pytest -q tests/test_demos.py (CPU, about 20 s on an idle machine).

Each demo runs in a fresh interpreter from the repository root and must exit 0 and print what it
promises.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("argv, expect", [
    (["codec.py"], "1 s of audio ->"),
    (["quantizer.py"], "perplexity"),
    (["conditioners.py"], "null row = 0: True"),
    (["t5.py"], "tiny T5:"),
    (["lora.py"], "same keys as the base: True"),
    (["lm.py"], "generated"),
    (["entropy.py"], "decoded back: True"),
    (["synth.py"], "clips of 5 s"),
    (["data.py", "--out", "{tmp}", "--n", "2"], "wrote 2 clips"),
])
def test_demo_runs(argv, expect, tmp_path):
    argv = [a.format(tmp=tmp_path / "clips") for a in argv]
    # one thread: steady next to another job (see test_tutorials.py)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, *argv], capture_output=True, text=True, cwd=ROOT, env=env,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert expect in out.stdout, out.stdout[-2000:]
