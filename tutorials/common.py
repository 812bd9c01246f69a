"""
What every tutorial shares: the repo on the import path, the fast/full switch, the output folder, the device, two
ways to show a result, `save` (a figure) and `listen` (a sound), and `run_script` (a training script run in the
notebook, its output kept). Each tutorial starts with

    from common import FAST, OUT, device, listen, save

In a notebook (Jupyter, VS Code) a figure shows under its cell and a sound as an audio player; run as a script
(`python tutorials/01_vector_quantization.py`) both are only written to files. Environment variables:
TUTORIAL_FAST=1 shrinks every step to seconds (the tests run the tutorials so); TUTORIAL_OUT=dir changes the output
folder (default tutorials/out/, git-ignored).
"""
import contextlib
import io
import os
import sys
import time
from pathlib import Path

import matplotlib

IN_NOTEBOOK = "ipykernel" in sys.modules
if not IN_NOTEBOOK:
    matplotlib.use("Agg")  # no display needed: pictures go to files
import matplotlib.pyplot as plt  # noqa: E402
import soundfile as sf  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the library modules (codec.py, lm.py, ...) live at the repo's root
FAST = os.environ.get("TUTORIAL_FAST", "0") not in ("", "0")
OUT = Path(os.environ.get("TUTORIAL_OUT", ROOT / "tutorials" / "out"))
OUT.mkdir(parents=True, exist_ok=True)
device = "cuda" if torch.cuda.is_available() else "cpu"


def save(fig, name):
    """Write a figure to OUT/name; a notebook also shows it under the cell."""
    fig.savefig(OUT / name, dpi=110, bbox_inches="tight")
    if not IN_NOTEBOOK:
        plt.close(fig)


def listen(wav, sample_rate, name):
    """Write a waveform ([T] or [C, T]) to OUT/name as 16-bit PCM, clipped to [-1, 1]; in a notebook also show an
    audio player under the cell."""
    wav = torch.as_tensor(wav).detach().float().cpu().clamp(-1, 1)
    wav = wav[None] if wav.dim() == 1 else wav  # [C, T]
    sf.write(OUT / name, wav.T.numpy(), sample_rate, subtype="PCM_16")
    print("wrote", name)
    if IN_NOTEBOOK:
        from IPython.display import Audio, display  # IPython is there in a notebook only
        display(Audio(wav.numpy(), rate=sample_rate, normalize=False))



def run_script(script, argv):
    """Run script.main(script.parser.parse_args(argv)) here, showing its output and returning it as text.
    The scripts report training losses on stdout only (eval.tsv has the evaluations), so we keep a copy."""
    class Tee(io.StringIO):
        def write(self, s):
            shown.write(s)
            return super().write(s)
    shown, buf = sys.stdout, Tee()
    t0 = time.time()
    with contextlib.redirect_stdout(buf):
        script.main(script.parser.parse_args(argv))
    print(f"({script.__name__}: {time.time() - t0:.0f} s)")
    return buf.getvalue()


print(f"device {device}, fast mode {FAST}")
