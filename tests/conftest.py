"""
What several test files share, as pytest fixtures (a test file imports no other test file):

- one_thread: tiny models on one thread, the steady way next to another job;
- tiny_codec: a function, seed -> the tiny codec with random weights, its codebooks initialised;
- tiny_lm_export: a function, folder -> a tiny text-to-audio model with random weights, written as
  train_lm.py exports one (lm.pt, codec.pt, tokenizer.model), built by the library, not the trainer;
- interrupted_run: a function that runs a training script's main with a real Ctrl-C in the middle;
- encodec_package, fill_codebooks, encodec_24khz: the official `encodec` package (skipped, saying
  why, without it) and its 24 kHz model with random weights and filled codebooks, saved as the
  official file (evaluation/encodec_reference.py, which bench_codec.py shares).

The repository's root goes on sys.path here, for every test file: the library modules, and the
evaluation scripts as the package `evaluation`.
"""

import math
import shutil
import signal
import string
import sys
from dataclasses import asdict, replace
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import synth  # noqa: E402
from checkpoint import codec_hash, half, load_codec, save_atomic  # noqa: E402
from codec import PRESETS, Codec  # noqa: E402
from conditioners import (MelodyConditioner, TextConditioner, Tokenizer,  # noqa: E402
                          normalize_text)
from evaluation import encodec_reference  # noqa: E402
from lm import LM, PRESETS as LM_PRESETS  # noqa: E402
from model import TextToAudio  # noqa: E402
from t5 import T5_PRESETS, T5Encoder  # noqa: E402


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models run fastest on one thread, and steadily next to another job; restored afterwards.
    Modules opt in with `pytestmark = pytest.mark.usefixtures("one_thread")`."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)

# -----------------------------------------------------------------------------
# tiny models


def make_tiny_codec(seed=0):
    """The tiny codec with random weights, its codebooks initialised by one k-means batch."""
    torch.manual_seed(seed)
    codec = Codec(PRESETS["tiny"]).train()
    clips = [torch.from_numpy(synth.make_clip(i, seed, 0.5)["wav"])[None] for i in range(4)]
    codec(torch.stack(clips))  # [4, 1, T]: the first batch initialises the codebooks
    return codec.eval()


def tiny_tokenizer(path, n_clips=8, duration=1.0):
    """A sentencepiece tokenizer fit as train_lm.py fits one to the captions of the built-in clips
    0..n_clips-1 (tags and sentence, normalised; each word once more; every letter and digit),
    written to path -> Tokenizer with known = the pieces of those captions (any other reads as
    <unk>)."""
    clips = [synth.make_clip(i, 0, duration) for i in range(n_clips)]
    caps = [normalize_text(c[k]) for c in clips for k in ("tags", "sentence")]
    words = sorted({w for c in caps for w in c.split()})
    Tokenizer.train(caps + words + [" ".join(string.ascii_letters + string.digits)], 1000, path)
    known = sorted({i for ids in Tokenizer(path).sp.encode(caps) for i in ids})
    return Tokenizer(path, known=known)


def export_tiny_lm(folder, codec=None, melody=None):
    """A tiny text-to-audio model with random weights (seed 0), built by the library as train_lm.py
    builds one: the tiny LM preset 32 wide, 1 layer, 2 heads, 1 s clips, fitted to the codec; a
    tiny T5 for tiny_tokenizer; melody: None (text only) or the fuse of a MelodyConditioner
    ('prepend' or 'sum'). Written as train_lm.py exports it -> its folder, folder/export (lm.pt,
    codec.pt, tokenizer.model), which model.load_model reads. codec: a codec file (None:
    make_tiny_codec() saved as folder/codec.pt)."""
    folder, out = Path(folder), Path(folder) / "export"
    out.mkdir(parents=True, exist_ok=True)
    if codec is None:
        tiny = make_tiny_codec()
        codec = folder / "codec.pt"
        torch.save({"config": asdict(tiny.config), "model": tiny.state_dict()}, codec)
    shutil.copyfile(codec, out / "codec.pt")
    codec = load_codec(str(codec))
    tokenizer = tiny_tokenizer(str(out / "tokenizer.model"))
    config = replace(LM_PRESETS["tiny"], dim=32, cond_dim=32, num_layers=1, num_heads=2,
                     card=codec.config.bins, frame_rate=codec.frame_rate, max_duration=1.0,
                     extend_stride=round(1.0 / 3, 2))
    melody_meta = None
    if melody is not None:  # the chroma at the codec's rate, MusicGen's time resolution
        melody_meta = dict(sample_rate=codec.sample_rate,
                           radix2_exp=14 - round(math.log2(32000 / codec.sample_rate)),
                           duration=1.0, fuse=melody)
    torch.manual_seed(0)
    lm = LM(config)
    t5 = T5Encoder(replace(T5_PRESETS["tiny"], vocab_size=tokenizer.vocab_size))
    text = TextConditioner(t5, tokenizer, config.dim, finetune=True, normalize=True)
    melody = None if melody_meta is None else MelodyConditioner(config.dim, **melody_meta)
    model = TextToAudio(lm, text, melody, codec)
    conditioner = dict(t5=asdict(t5.config), tokenizer="tokenizer.model", normalize=True,
                       melody=melody_meta, finetune=True, known=sorted(tokenizer.known))
    save_atomic(dict(config=asdict(config), model=half(model.checkpoint()), conditioner=conditioner,
                     codec=dict(path="codec.pt", hash=codec_hash(codec))), out / "lm.pt")
    return str(out)


@pytest.fixture(scope="session")
def tiny_codec():
    """make_tiny_codec: tiny_codec(seed=0) -> Codec."""
    return make_tiny_codec


@pytest.fixture(scope="session")
def tiny_lm_export():
    """export_tiny_lm: tiny_lm_export(folder, codec=None, melody=None) -> the export folder."""
    return export_tiny_lm

# -----------------------------------------------------------------------------
# Ctrl-C


def run_interrupted(module, patched, at_call, args):
    """Run module.main(args) with a real Ctrl-C (SIGINT to this process) sent during call number
    at_call of module.<patched> (called once per training step); return what ended it: the
    SystemExit, or the KeyboardInterrupt a script without the Ctrl-C handling would raise (caught
    here, not by pytest)."""
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
    """run_interrupted: interrupted_run(script module, name of its per-step function, step, argv) ->
    what ended it."""
    return run_interrupted

# -----------------------------------------------------------------------------
# the official encodec package


@pytest.fixture(scope="session")
def encodec_package():
    """The `encodec` module (encodec_reference.import_encodec); the test is skipped, saying why,
    without the package."""
    try:
        return encodec_reference.import_encodec()
    except ImportError as e:
        pytest.skip(str(e))


@pytest.fixture(scope="session")
def fill_codebooks():
    """encodec_reference.fill_codebooks: the reference models' codebooks are all zeros until k-means
    runs; filled with random vectors shaped like real latents first, or every code would be 0 and
    the comparisons would prove nothing."""
    return encodec_reference.fill_codebooks


@pytest.fixture(scope="module")
def encodec_24khz(encodec_package, tmp_path_factory):
    """The encodec package's 24 kHz model with random weights and filled codebooks
    (encodec_reference.filled_model), saved as the official bare state-dict file
    `encodec_24khz-<sha>.th` -> (model, path)."""
    ref = encodec_reference.filled_model(encodec_package, "encodec_24khz", clips=4)
    path = tmp_path_factory.mktemp("enc") / "encodec_24khz-d7cc33bc.th"
    torch.save(ref.state_dict(), path)
    return ref, path
