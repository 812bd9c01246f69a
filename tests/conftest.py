"""
What several test files share, as pytest fixtures (a test file imports no other test file):

- one_thread: tiny models on one thread, the steady way next to another job;
- tiny_codec: a function, seed -> the tiny codec with random weights, its codebooks initialised;
- train_tiny_lm: a function, folder -> train_lm.py's export of a tiny LM trained for 2 steps on that codec;
- interrupted_run: a function that runs a training script's main with a real Ctrl-C in the middle;
- encodec_package, fill_codebooks, encodec_24khz: the official `encodec` package (skipped, saying why, without it)
  and its 24 kHz model with random weights and filled codebooks, saved as the official file.
"""

import importlib.machinery
import signal
import sys
import types
from dataclasses import asdict
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import synth  # noqa: E402
from codec import PRESETS, Codec  # noqa: E402

ENCODEC_MISSING = ("the official `encodec` package is not installed: `pip install --no-deps encodec==0.1.1` "
                   "(with its dependencies it would pull torchaudio and another torch)")


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models run fastest on one thread, and steadily next to another job; restored afterwards.
    Modules opt in with `pytestmark = pytest.mark.usefixtures("one_thread")`."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)

# ----------------------------------------------------------------------------- tiny models


def make_tiny_codec(seed=0):
    """The tiny codec with random weights, its codebooks initialised by one k-means batch."""
    torch.manual_seed(seed)
    codec = Codec(PRESETS["tiny"]).train()
    codec(torch.stack([torch.from_numpy(synth.make_clip(i, seed, 0.5)["wav"])[None] for i in range(4)]))
    return codec.eval()


def export_tiny_lm(folder, *extra, codec=None):
    """train_lm.py (in this process) on 8 built-in clips of 1 s, a tiny LM (--dim 32 --layers 1) for 2 steps, on
    codec (a codec.pt; None: make_tiny_codec() saved as folder/codec.pt), extra flags added -> its export folder,
    folder/export (lm.pt, codec.pt, tokenizer.model); the run is folder/run."""
    import train_lm  # the script, for the tests of what reads its export (sample.py, evaluation/eval_audio.py)
    folder = Path(folder)
    if codec is None:
        tiny = make_tiny_codec()
        codec = folder / "codec.pt"
        torch.save({"config": asdict(tiny.config), "model": tiny.state_dict()}, codec)
    train_lm.main(train_lm.parser.parse_args([
        "--codec", str(codec), "--out-dir", str(folder / "run"), "--export", str(folder / "export"),
        "--n-clips", "8", "--eval-clips", "2", "--duration", "1", "--dim", "32", "--layers", "1", "--heads", "2",
        "--batch-size", "4", "--steps", "2", "--eval-every", "2", "--n-samples", "1", *extra]))
    return str(folder / "export")


@pytest.fixture(scope="session")
def tiny_codec():
    """make_tiny_codec: tiny_codec(seed=0) -> Codec."""
    return make_tiny_codec


@pytest.fixture(scope="session")
def train_tiny_lm():
    """export_tiny_lm: train_tiny_lm(folder, *extra_flags, codec=None) -> the export folder."""
    return export_tiny_lm

# ----------------------------------------------------------------------------- Ctrl-C


def run_interrupted(module, patched, at_call, args):
    """Run module.main(args) with a real Ctrl-C (SIGINT to this process) sent during call number at_call of
    module.<patched> (called once per training step); return what ended it: the SystemExit, or the
    KeyboardInterrupt a script without the Ctrl-C handling would raise (caught here, not by pytest)."""
    original, calls = getattr(module, patched), []

    def hooked(*a, **k):
        calls.append(1)
        if len(calls) == at_call:
            signal.raise_signal(signal.SIGINT)
        return original(*a, **k)

    previous = signal.getsignal(signal.SIGINT)
    setattr(module, patched, hooked)
    try:
        module.main(module.parser.parse_args(args))
    except (SystemExit, KeyboardInterrupt) as e:
        return e
    finally:
        setattr(module, patched, original)
        assert signal.getsignal(signal.SIGINT) is previous  # the script's handler is gone again
    raise AssertionError("the run was not interrupted")


@pytest.fixture(scope="session")
def interrupted_run():
    """run_interrupted: interrupted_run(script module, name of its per-step function, step, argv) -> what ended it."""
    return run_interrupted

# ----------------------------------------------------------------------------- the official encodec package


def import_encodec():
    """The encodec package imports torchaudio for its file helpers only; torchaudio has no build
    for this torch on CPU, so a stand-in module is registered while encodec is imported.
    ImportError (ENCODEC_MISSING) when the package is absent: it is installed apart, see .ci/run."""
    import transformers  # noqa: F401  (imported first: it probes torchaudio's spec at import)
    stub = "torchaudio" not in sys.modules
    if stub:
        sys.modules["torchaudio"] = types.ModuleType("torchaudio")
        sys.modules["torchaudio"].__spec__ = importlib.machinery.ModuleSpec("torchaudio", None)
    try:
        import encodec
    except ImportError:
        raise ImportError(ENCODEC_MISSING) from None
    finally:
        if stub:
            del sys.modules["torchaudio"]
    return encodec


def fill_random_codebooks(latent, codebooks, quantize, decode, seed=0):
    """Fill each codebook with random vectors shaped like its input, stage by stage.

    Codes are drawn from a Gaussian with the per-dimension mean and std of the residual they
    quantize: all distinct (no near ties that float noise could flip) and all in use.
    """
    g = torch.Generator().manual_seed(seed)
    residual = latent.transpose(1, 2).reshape(-1, latent.shape[1])  # [N, D]
    for cb in codebooks:
        mean, std = residual.mean(0), residual.std(0)
        cb.embed.copy_(mean + std * torch.randn(cb.embed.shape, generator=g))
        cb.embed_avg.copy_(cb.embed)
        cb.inited.fill_(1)
        residual = residual - decode(cb, quantize(cb, residual))


@pytest.fixture(scope="session")
def encodec_package():
    """The `encodec` module (import_encodec); the test is skipped, saying why, without the package."""
    try:
        return import_encodec()
    except ImportError as e:
        pytest.skip(str(e))


@pytest.fixture(scope="session")
def fill_codebooks():
    """fill_random_codebooks: the reference models' codebooks are all zeros until k-means runs; filled with real
    latent vectors first, or every code would be 0 and the comparisons would prove nothing."""
    return fill_random_codebooks


@pytest.fixture(scope="module")
def encodec_24khz(encodec_package, tmp_path_factory):
    """The encodec package's 24 kHz model with random weights and filled codebooks, saved as the
    official bare state-dict file `encodec_24khz-<sha>.th` -> (model, path)."""
    torch.manual_seed(0)
    ref = encodec_package.EncodecModel.encodec_model_24khz(pretrained=False).eval()
    with torch.no_grad():
        latent = ref.encoder(0.1 * torch.randn(4, 1, 24000))
        fill_random_codebooks(latent, [l._codebook for l in ref.quantizer.vq.layers],
                              lambda cb, x: cb.quantize(x), lambda cb, i: cb.dequantize(i))
    path = tmp_path_factory.mktemp("enc") / "encodec_24khz-d7cc33bc.th"
    torch.save(ref.state_dict(), path)
    return ref, path
