"""
Tests for tutorials/: each NN_name.py runs top to bottom in fast mode, as CI runs it.
Run: python -m pytest -q tests/test_tutorials.py

Every step of a tutorial ends in an assertion or a picture, so a tutorial that exits 0 and writes its
pictures has checked itself. Each runs in a subprocess (a fresh interpreter, as `python tutorials/NN_name.py`)
with TUTORIAL_FAST=1 and its output folder (TUTORIAL_OUT) in a temporary directory.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TUTORIALS = sorted(ROOT.glob("tutorials/[0-9][0-9]_*.py"))


def test_tutorials_found():
    assert len(TUTORIALS) >= 3, f"expected the numbered tutorials in {ROOT / 'tutorials'}, found {TUTORIALS}"


@pytest.mark.parametrize("path", TUTORIALS, ids=[p.stem for p in TUTORIALS])
def test_tutorial_runs_in_fast_mode(path, tmp_path):
    # one thread: as fast for these tiny models, and steady next to another job (two threads sharing one busy core
    # spin-wait each other: 9 s became more than 300 s)
    env = {**os.environ, "TUTORIAL_FAST": "1", "TUTORIAL_OUT": str(tmp_path), "MPLBACKEND": "Agg",
           "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(path)], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, f"{path.name} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert list(tmp_path.glob("*.png")), f"{path.name} wrote no picture to TUTORIAL_OUT"
