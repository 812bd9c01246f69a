"""
Tests for tutorials/: each NN_name.py runs top to bottom in fast mode as a real notebook, as a
reader runs it. Run: python -m pytest -q tests/test_tutorials.py

jupytext converts the script (percent format: `# %%` cells) to a notebook in memory, and nbclient
executes it cell by cell in a Jupyter kernel (ipykernel's `python3`, the interpreter running the
tests), from tutorials/, with TUTORIAL_FAST=1 and the output folder TUTORIAL_OUT in a temporary
directory. Every step of a tutorial ends in an assertion, so a notebook that runs to the end has
checked itself (a failing cell raises here, with its traceback). Then what a reader should see and
hear under the cells: at least one picture (an image/png output) in every tutorial, and an audio
player (the <audio> element of IPython.display.Audio, which common.listen shows) in every tutorial
that calls listen.
"""

from pathlib import Path

import pytest

jupytext = pytest.importorskip("jupytext")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

ROOT = Path(__file__).resolve().parents[1]
TUTORIALS = sorted(ROOT.glob("tutorials/[0-9][0-9]_*.py"))
# audio players each tutorial shows in fast mode, where known: 01 the clip of its mel step; 02 a
# clip before and after the codec (1 and 8 codebooks); 03 a clip, the shipped codec's and the
# reconstruction-only codec's; 04 the melody. Any other tutorial that calls listen must show at
# least one.
SOUNDS = {"01_vector_quantization": 1, "02_encodec": 3, "03_codec_losses": 3,
          "04_text_and_melody_conditioning": 1}


def outputs(nb, kind):
    """How many outputs of the executed notebook show a picture ('image') or an audio player
    ('audio')."""
    count = 0
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if kind == "image":
                count += "image/png" in data
            else:
                count += "<audio" in data.get("text/html", "")
    return count


def test_tutorials_found():
    assert len(TUTORIALS) >= 3, (
        f"expected the numbered tutorials in {ROOT / 'tutorials'}, found {TUTORIALS}")


@pytest.mark.parametrize("path", TUTORIALS, ids=[p.stem for p in TUTORIALS])
def test_tutorial_runs_as_notebook(path, tmp_path, monkeypatch):
    # the kernel inherits this environment. One thread: as fast for these tiny models, and steady
    # next to another job (two threads sharing one busy core spin-wait each other: 9 s became more
    # than 300 s). No MPLBACKEND: the kernel's own (inline) backend puts the figures into the
    # notebook, as in Jupyter.
    env = {"TUTORIAL_FAST": "1", "TUTORIAL_OUT": str(tmp_path), "OMP_NUM_THREADS": "1"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("MPLBACKEND", raising=False)
    source = path.read_text()
    nb = jupytext.reads(source, fmt="py:percent")
    # the kernel's working directory: tutorials/
    client = nbclient.NotebookClient(nb, kernel_name="python3", timeout=300,
                                     resources={"metadata": {"path": str(path.parent)}})
    client.execute()  # raises CellExecutionError, with the cell and its traceback, if a cell fails
    assert outputs(nb, "image") > 0, f"{path.name} showed no picture under its cells"
    # it makes sounds: each plays under its cell
    expected = SOUNDS.get(path.stem, 1 if "listen(" in source else 0)
    assert outputs(nb, "audio") >= expected, (
        f"{path.name} showed {outputs(nb, 'audio')} audio players, expected {expected}")
    assert list(tmp_path.glob("*.png")), f"{path.name} wrote no picture to TUTORIAL_OUT"
