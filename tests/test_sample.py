"""
Tests for sample.py. Run: python -m pytest -q tests/test_sample.py (CPU, about 30 s).

A tiny model with random weights, exported as train_lm.py exports one, is sampled in-process and
as a subprocess: a 16-bit WAV of the requested duration, names made from the prompt, the same seed
-> the same bytes, continuation; every bad input is a one-line error with a non-zero exit and no
file; --normalize scales the decoder's raw output (peak at -1 dBFS by default, nothing clipped
where generate's clamp clips; loudness -14 LKFS, rms -18 dBFS). Directories of official AudioCraft
files built from random weights (state_dict.bin,
compression_state_dict.bin or a transformers codec, a transformers T5) sample end to end, melody
included. The shipped model in checkpoints/ is sampled when it is there.
"""

import itertools
import math
import os
import re
import shutil
import subprocess
import sys
from types import SimpleNamespace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import sample
from audio import loudness
from conditioners import Tokenizer
from lm import LM, LMConfig
from model import COND, MELODY, TextToAudio, load_model

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "checkpoints"
# the subprocesses compute as the in-process runs (one thread)
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


@pytest.fixture(scope="module")
def model(tiny_lm_export, tmp_path_factory):
    """A tiny model with random weights in train_lm.py's export folder: lm.pt, codec.pt,
    tokenizer.model (see conftest.py)."""
    return tiny_lm_export(tmp_path_factory.mktemp("model"))


def wavs(folder):
    return sorted(p.name for p in Path(folder).glob("*.wav*"))


def sine(n):
    """n samples of a 440 Hz sine at 16 kHz, amplitude 0.5, float32."""
    return (np.sin(2 * np.pi * 440 * np.arange(n) / 16000) * 0.5).astype(np.float32)


def test_wav_of_the_requested_duration_same_seed_same_bytes(model, tmp_path):
    a, b, c = (str(tmp_path / f"{n}.wav") for n in "abc")
    args = ["--model", model, "--prompt", "dog bark park", "--duration", "1.5"]
    assert sample.main([*args, "--out", a]) == [a]
    info = sf.info(a)
    assert info.samplerate == 16000 and info.subtype == "PCM_16"
    assert info.frames == 24000  # 1.5 s, past max_duration
    sample.main([*args, "--out", b])
    sample.main([*args, "--out", c, "--seed", "1"])
    assert Path(a).read_bytes() == Path(b).read_bytes() != Path(c).read_bytes()


def test_prompt_alone_or_in_a_batch_and_bf16(model, tmp_path):
    """The padding of a short prompt batched with a longer one is masked (cross_attention_mask, on
    in train_lm's tiny preset): greedy, its audio is the same alone or in the batch. --bf16 runs the
    LM in bfloat16."""
    a, b = str(tmp_path / "a.wav"), str(tmp_path / "b.wav")
    greedy = ["--model", model, "--duration", "0.5", "--temperature", "0"]
    sample.main([*greedy, "--prompt", "dog bark", "--out", a])
    sample.main([*greedy, "--prompt", "dog bark", "--prompt", "a siren wails on a busy street",
                 "--out", b])
    alone = sf.read(a, dtype="int16")[0]
    batched = sf.read(tmp_path / "b_0.wav", dtype="int16")[0]
    # same codes; the batched decoder rounds a few samples apart
    assert np.abs(alone.astype(int) - batched).max() <= 1
    bf16 = ["--model", model, "--prompt", "dog bark", "--duration", "0.5", "--bf16"]
    sample.main([*bf16, "--out", a])
    sample.main([*bf16, "--out", b])
    assert sf.info(a).frames == 8000 and Path(a).read_bytes() == Path(b).read_bytes()


def test_names_from_prompts_and_subprocess(model, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    sample.main(["--model", model, "--prompt", "Dog bark, park!", "--duration", "0.5",
                 "--top-p", "0.9"])
    two = ["--model", model, "--prompt", "rain", "--prompt", "siren street", "--duration", "0.5"]
    sample.main(two)
    assert wavs(tmp_path) == ["dog_bark_park.wav", "rain_0.wav", "siren_street_1.wav"]
    # the same run as a script: same bytes, a progress line, what it wrote on stdout
    out = subprocess.run([sys.executable, str(ROOT / "sample.py"), *two, "--out", "x.wav"],
                         capture_output=True, text=True, env=ENV, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "wrote x_0.wav (0.50 s, 16000 Hz)" in out.stdout
    assert "generating 2 x 0.5 s: step 28/28" in out.stderr  # 25 frames + 3 delay steps
    assert Path("x_1.wav").read_bytes() == Path("siren_street_1.wav").read_bytes()


def test_continuation(model, tmp_path):
    start = tmp_path / "start.wav"
    sf.write(start, sine(8000), 16000)
    out = str(tmp_path / "more.wav")
    sample.main(["--model", model, "--prompt", "bell room", "--duration", "0.9",
                 "--continuation", str(start), "--out", out])
    assert sf.info(out).frames == 14400
    # 0.5 s of audio prompt leaves nothing to generate in 0.4 s
    with pytest.raises(SystemExit, match="prompt"):
        sample.main(["--model", model, "--prompt", "bell", "--duration", "0.4",
                     "--continuation", str(start), "--out", str(tmp_path / "short.wav")])


def test_continuation_longer_than_the_window(model, tmp_path, capsys):
    """The README's `--continuation dog_bark_park.wav --duration 8` with a 5 s prompt and a 3 s
    window, scaled to the test model (1 s window, extend_stride 0.33 s: W = 50, S = 16 frames): a
    1.5 s prompt (75 frames) and 2 s in all. The codes start with the prompt's; the LM sees its last
    W - S = 34 frames: windows at frames 41 and 57. The same seed gives the same bytes; the
    progress line counts the windows and the time left. A prompt as long as --duration is a
    one-line error naming both."""
    start = tmp_path / "start.wav"
    sf.write(start, sine(24000), 16000)
    a, b = str(tmp_path / "a.wav"), str(tmp_path / "b.wav")
    for out in (a, b):
        sample.main(["--model", model, "--prompt", "bell room", "--duration", "2",
                     "--continuation", str(start), "--out", out])
    assert sf.info(a).frames == 32000 and Path(a).read_bytes() == Path(b).read_bytes()
    assert re.search(r"window 2/2, step 12/12 \| \d+ s elapsed, ~0 s left", capsys.readouterr().err)
    m = load_model(model, "cpu")
    assert m.lm.windows(2.0, 75) == [(41, 50, 34, 19), (57, 43, 34, 12)]
    decoded = []
    decode = m.codec.decode
    m.codec.decode = lambda codes: decoded.append(codes) or decode(codes)
    cont = sample.load_audio(str(start), 16000, 1)
    m.generate(["bell room"], 2.0, continuation=cont)
    assert decoded[0].shape[-1] == 100
    assert torch.equal(decoded[0][..., :75], m.codec.encode(cont[None], n_q=4))
    with pytest.raises(SystemExit, match=r"^sample.py: error: --continuation is 1.5 s, --duration "
                                         r"1.5 s: ask for a duration longer than the audio "
                                         r"prompt$"):
        sample.main(["--model", model, "--prompt", "bell", "--duration", "1.5",
                     "--continuation", str(start), "--out", str(tmp_path / "c.wav")])


def test_progress_estimates_the_time_left(model, monkeypatch, capsys):
    """--duration 100000 (a run of hours) with a 1 s window hopping by 16 frames:
    1 + ceil((5e6 - 50) / 16) = 312498 windows, of 53 steps then 19. A clock that advances 1 ms per
    reading: after the first step the line says about 5.9 million steps x 1 ms = 1.6 h left.
    Generation is stopped there (a fake generate)."""
    monkeypatch.setattr(sample, "time", SimpleNamespace(time=itertools.count(0, 0.001).__next__))
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)

    def first_step(self, *args, callback=None, **kwargs):
        callback(1, 53)
        raise ValueError("stopped after one step")
    monkeypatch.setattr(TextToAudio, "generate", first_step)
    with pytest.raises(SystemExit, match="stopped after one step"):
        sample.main(["--model", model, "--prompt", "rain", "--duration", "100000"])
    line = "generating 1 x 100000 s: window 1/312498, step 1/53 | 0 s elapsed, ~1.6 h left"
    assert line in capsys.readouterr().err


def test_normalize_sees_the_decoders_overshoot(model, tmp_path, monkeypatch):
    """The tiny model's decoder made to overshoot (its output x 40): generate clamps it (clamp=True,
    the other callers' [-1, 1]), clamp=False returns it as it is, and sample.py writes that raw
    output scaled: the default --normalize peak puts its peak at -1 dBFS, one gain for the whole
    file (the flat tops that clamping leaves are not there), and no sample at full scale."""
    m = load_model(model, "cpu")
    decode = m.codec.decode
    m.codec.decode = lambda codes: 40 * decode(codes)
    monkeypatch.setattr(sample, "load_model", lambda *a: m)
    t = sample.parser.get_default("temperature")  # sample.py's sampling
    raw = m.generate(["dog bark park"], 1.0, temperature=t, clamp=False)[0, 0]  # [T]
    clamped = m.generate(["dog bark park"], 1.0, temperature=t)[0, 0]
    assert raw.abs().max() > 1.5 and (raw.abs() > 1).float().mean() > 0.01
    assert torch.equal(clamped, raw.clamp(-1, 1))
    out = str(tmp_path / "x.wav")
    sample.main(["--model", model, "--prompt", "dog bark park", "--duration", "1", "--out", out])
    data = sf.read(out, dtype="int16")[0].astype(np.float64)
    assert np.abs(data).max() < 32767 and abs(20 * np.log10(np.abs(data).max() / 32768) + 1) < 0.01
    # libsndfile writes x as x * 32768, 1.0 as 32767
    expected = raw.double().numpy() * 10 ** (-1 / 20) / raw.abs().max().item() * 32768
    assert np.abs(data - expected).max() <= 1  # the raw wave scaled, to one step of 16 bits


@pytest.mark.parametrize("strategy, level", [("peak", -1.0), ("loudness", -14.0), ("rms", -18.0)])
def test_normalize_writes_the_level_asked(model, tmp_path, strategy, level):
    """--normalize peak: the peak at -1 dBFS; loudness: -14 LKFS (audio.loudness, BS.1770-4); rms:
    -18 dBFS; clip: nothing beyond -1 dBFS. Read back from the 16-bit file, within 0.1 dB."""
    out = str(tmp_path / f"{strategy}.wav")
    sample.main(["--model", model, "--prompt", "rain", "--duration", "1", "--out", out,
                 "--normalize", strategy])
    wav = torch.from_numpy(sf.read(out)[0])[None]  # [1, T]
    measured = {"peak": lambda: 20 * math.log10(wav.abs().max()),
                "loudness": lambda: loudness(wav, 16000).item(),
                "rms": lambda: 20 * math.log10(wav.pow(2).mean().sqrt())}[strategy]()
    assert abs(measured - level) < 0.1, measured
    sample.main(["--model", model, "--prompt", "rain", "--duration", "1", "--out", out,
                 "--normalize", "clip"])
    assert np.abs(sf.read(out)[0]).max() <= 10 ** (-1 / 20) + 1e-4


def test_eval_loudness_runs(model, capsys):
    """evaluation/eval_loudness.py on the tiny model (36 prompts x 1 clip of 0.5 s): a row per clip
    set; real clips are never clipped, --normalize peak never, --normalize loudness reads -14
    LKFS where it does not clip."""
    from evaluation import eval_loudness
    rows = eval_loudness.main(["--model", model, "--n-per-prompt", "1", "--duration", "0.5",
                               "--batch", "36"])
    assert [r[0] for r in rows] == ["real (built-in)", "generated, as decoded",
                                    "generated, clamped to [-1, 1]",
                                    *(f"generated, --normalize {s}" for s in sample.STRATEGIES)]
    share = {name: clipped for name, clipped, _ in rows}
    assert share["real (built-in)"] == 0 == share["generated, --normalize peak"]
    assert all(len(lkfs) == 36 for _, _, lkfs in rows)
    assert abs(rows[4][2].max().item() + 14) < 0.1
    assert "| generated, --normalize peak | 0 % |" in capsys.readouterr().out


def test_help_shows_defaults_and_the_seed_terms(model, tmp_path, capsys):
    """--help shows every default; --seed says when a seed reproduces a file, and the last line
    names the thread count (one here, conftest's one_thread)."""
    blocks = re.split(r"\n  (?=-)", sample.parser.format_help())
    flags = {b.split()[0]: " ".join(b.split()) for b in blocks}
    defaults = [("--duration", "5.0"), ("--cfg-coef", "3.0"), ("--top-k", "250"),
                ("--top-p", "0.0"), ("--temperature", "0.9"), ("--seed", "0"),
                ("--device", sample.parser.get_default("device")), ("--normalize", "peak")]
    for flag, default in defaults:
        assert f"(default: {default}" in flags[flag], flags[flag]
    assert "same model, torch version, device and number of threads" in flags["--seed"]
    sample.main(["--model", model, "--prompt", "rain", "--duration", "0.5",
                 "--out", str(tmp_path / "x.wav")])
    assert re.search(r"^1 x 0.5 s in [\d.]+ s on cpu \(1 thread\)$", capsys.readouterr().out, re.M)


@pytest.mark.parametrize("args, match", [
    (["--device", "cuda"], "--device cuda: no CUDA device is available "
                           "(torch.cuda.is_available() is False); use --device cpu"),
    (["--device", "cuda:1"], "--device cuda:1: no CUDA device is available"),
    (["--device", "tpu"], "--device 'tpu' is not a device: use cpu, cuda or cuda:N"),
    (["--device", "mps"], "--device mps: only cpu and cuda are supported"),
    (["--model", "no/such/model"], "cannot load --model no/such/model: not found"),
], ids=["cuda", "cuda:1", "unknown", "mps", "model"])
def test_device_and_model_are_checked_before_loading(args, match, monkeypatch):
    """On a machine without a GPU (made so), before anything is loaded (load fails the test)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(sample, "load_model", lambda *a: pytest.fail("loaded before checking"))
    with pytest.raises(SystemExit) as e:
        sample.main(["--prompt", "rain", "--device", "cpu", *args])
    msg = str(e.value)
    assert msg.startswith(f"sample.py: error: {match}") and "\n" not in msg, msg


BAD = [  # (arguments, what the one-line error says)
    (["--prompt", ""], "empty"),
    (["--prompt", "   "], "empty"),
    ([], "give a text prompt"),
    (["--prompt", "rain", "--duration", "0"], "--duration"),
    (["--prompt", "rain", "--duration", "-2"], "--duration"),
    (["--prompt", "rain", "--duration", "nan"], "--duration"),
    (["--prompt", "rain", "--top-k", "-1"], "--top-k"),
    (["--prompt", "rain", "--top-p", "1.5"], "--top-p"),
    (["--prompt", "rain", "--top-p", "-0.1"], "--top-p"),
    (["--prompt", "rain", "--temperature", "-1"], "--temperature"),
    (["--prompt", "rain", "--out", "rain.mp3"], ".wav"),
    (["--prompt", "rain", "--normalize", "loud"], "--normalize"),
    (["--prompt", "rain", "--out", "no/such/dir/rain.wav"], "does not exist"),
    (["--prompt", "the"], "stop words"),
    (["--prompt", "!!! ..."], "has no words"),
    (["--prompt", "rain", "--melody", "tune.wav"], "melody model"),
    (["--prompt", "rain", "--continuation", "missing.wav"], "not found"),
    (["--prompt", "rain", "--continuation", "junk.wav"], "cannot read audio"),
]


@pytest.mark.parametrize("args, match", BAD)
def test_bad_input_is_a_one_line_error_and_no_file(model, tmp_path, monkeypatch, args, match):
    monkeypatch.chdir(tmp_path)
    Path("junk.wav").write_bytes(b"RIFF not really a wav")
    with pytest.raises(SystemExit) as e:
        sample.main(["--model", model, "--duration", "0.5", *args] if "--duration" not in args else
                    ["--model", model, *args])
    msg = str(e.value)
    assert msg.startswith("sample.py: error:") and match in msg and "\n" not in msg, msg
    assert wavs(tmp_path) == ["junk.wav"]  # nothing written


@pytest.mark.parametrize("case", ["missing", "not a model", "corrupt", "truncated", "no tokenizer"])
def test_bad_model_is_a_one_line_error(model, tmp_path, case):
    bad = tmp_path / "bad"
    shutil.copytree(model, bad)
    if case == "missing":
        shutil.rmtree(bad)
    elif case == "not a model":
        (bad / "lm.pt").unlink()
    elif case == "corrupt":
        (bad / "lm.pt").write_bytes(b"garbage")
    elif case == "truncated":
        (bad / "lm.pt").write_bytes((Path(model) / "lm.pt").read_bytes()[:100_000])
    else:
        (bad / "tokenizer.model").unlink()
    out = str(tmp_path / "x.wav")
    with pytest.raises(SystemExit, match=r"^sample.py: error: cannot load --model [^\n]*$"):
        sample.main(["--model", str(bad), "--prompt", "rain", "--out", out])
    assert not os.path.exists(out)


def test_errors_as_a_script(model, tmp_path):
    """As a command: exit status 1, exactly one line on stderr, no traceback, no file."""
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "lm.pt").write_bytes(b"garbage")
    for args in (["--prompt", ""], ["--model", str(tmp_path / "bad"), "--prompt", "rain"]):
        cmd = [sys.executable, str(ROOT / "sample.py"), "--model", model, *args,
               "--out", str(tmp_path / "x.wav")]
        out = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=120)
        assert out.returncode == 1 and len(out.stderr.strip().splitlines()) == 1, out.stderr
        assert out.stderr.startswith("sample.py: error:") and not (tmp_path / "x.wav").exists()

# ----------------------------------------------------------------------------- official files


def to_audiocraft(state):
    """This repo's codec keys -> AudioCraft's (the inverse of checkpoint.RENAMES)."""
    out = {}
    for k, v in state.items():
        if k.startswith("quantizer."):
            k = re.sub(r"^quantizer\.layers\.(\d+)\.", r"quantizer.vq.layers.\1._codebook.", k)
        elif ".lstm." not in k:
            transposed = re.match(r"decoder\.model\.(3|6|9|12)\.", k)
            wrap = ".convtr.convtr." if transposed else ".conv.conv."
            k = re.sub(r"\.(weight_g|weight_v|bias)$", wrap + r"\1", k)
        out[k] = v
    return out


def codec_xp_cfg(c):
    """The few fields of AudioCraft's compression xp.cfg that load_codec reads."""
    b = lambda x: str(x).lower()
    return (f"sample_rate: {c.sample_rate}\nchannels: {c.channels}\ncompression_model: encodec\n"
            f"encodec:\n  renormalize: false\nseanet:\n  dimension: {c.dimension}\n"
            f"  n_filters: {c.n_filters}\n  ratios: {list(c.ratios)}\n  causal: {b(c.causal)}\n"
            f"  pad_mode: {c.pad_mode}\n  true_skip: {b(c.true_skip)}\n  lstm: {c.lstm}\n"
            f"  norm: weight_norm\nrvq:\n  n_q: {c.n_q}\n  bins: {c.bins}\n"
            f"  q_dropout: {b(c.q_dropout)}\n  decay: {c.decay}\n  kmeans_iters: {c.kmeans_iters}\n"
            f"  threshold_ema_dead_code: {c.threshold_ema_dead_code}\n")


LM_XP_CFG = """solver: audiogen
dataset:
  segment_duration: 2
transformer_lm:
  num_heads: 2
codebooks_pattern:
  modeling: delay
  delay:
    delays: [0, 1, 2, 3]
"""


def official_dir(root, codec, codec_format, melody=False):
    """Random weights in AudioCraft's files: state_dict.bin (+ the conditioners' output_proj), a T5
    folder saved by transformers, and the codec as compression_state_dict.bin or (MusicGen) a
    transformers folder + a pointer."""
    tf = pytest.importorskip("transformers")
    root.mkdir()
    torch.manual_seed(0)
    captions = ["dog bark park", "rain street", "happy piano slow", "jazz tune"] * 5
    tok = Tokenizer.train(captions, 60, str(root / "sp"))
    t5_config = tf.T5Config(vocab_size=64, d_model=16, d_kv=8, d_ff=32, num_layers=1, num_heads=2)
    t5 = tf.T5EncoderModel(t5_config).eval()
    t5.save_pretrained(root / "t5-base")
    torch.save(t5.state_dict(), root / "t5-base" / "pytorch_model.bin")
    shutil.move(tok.path, root / "t5-base" / "spiece.model")
    lm = LM(LMConfig(dim=32, num_heads=2, num_layers=1, card=codec.config.bins, cond_dim=32,
                     cross_attention=not melody))
    state = {**lm.state_dict(), COND + "output_proj.weight": torch.randn(32, 16),
             COND + "output_proj.bias": torch.randn(32)}
    # musicgen-melody: chroma conditioner, text and chroma prepended (no cross-attention)
    if melody:
        state.update({MELODY + "output_proj.weight": torch.randn(32, 12),
                      MELODY + "output_proj.bias": torch.zeros(32),
                      MELODY + "chroma.spec.window": torch.hann_window(16384)})
    torch.save({"best_state": state, "xp.cfg": LM_XP_CFG, "version": "1.3.0", "exported": True},
               root / "state_dict.bin")
    if codec_format == "audiocraft":  # AudioGen: the codec weights in compression_state_dict.bin
        torch.save({"best_state": to_audiocraft(codec.state_dict()),
                    "xp.cfg": codec_xp_cfg(codec.config), "exported": True},
                   root / "compression_state_dict.bin")
    else:  # MusicGen: the .bin only points to facebook/encodec_32khz, a transformers EncodecModel
        torch.save({"pretrained": "facebook/encodec_32khz", "exported": True},
                   root / "compression_state_dict.bin")
        c = codec.config
        tf.EncodecModel(tf.EncodecConfig(
            sampling_rate=c.sample_rate, upsampling_ratios=list(c.ratios),
            num_filters=c.n_filters, hidden_size=c.dimension, codebook_size=c.bins,
            target_bandwidths=[c.n_q * math.log2(c.bins) * 50 / 1000], use_causal_conv=False,
            use_conv_shortcut=False, pad_mode=c.pad_mode)).save_pretrained(root / "encodec")
    return str(root)


@pytest.mark.parametrize("codec_format", ["audiocraft", "transformers"])
def test_official_files(tiny_codec, tmp_path, codec_format):
    root = official_dir(tmp_path / "audiogen", tiny_codec(), codec_format)
    out = str(tmp_path / "x.wav")
    sample.main(["--model", root, "--prompt", "dog bark park", "--prompt", "rain",
                 "--duration", "1", "--out", out])
    assert sf.info(out.replace(".wav", "_1.wav")).frames == 16000
    with pytest.raises(SystemExit, match="melody model"):
        sample.main(["--model", root, "--prompt", "rain", "--melody", "x_0.wav", "--out", out])


def test_official_melody_model(tiny_codec, tmp_path):
    root = official_dir(tmp_path / "melody", tiny_codec(), "audiocraft", melody=True)
    tune = tmp_path / "tune.wav"
    sf.write(tune, 0.5 * np.sin(2 * np.pi * 440 * np.arange(16000) / 16000), 16000)
    a, b = str(tmp_path / "a.wav"), str(tmp_path / "b.wav")
    args = ["--model", root, "--prompt", "jazz tune", "--duration", "0.5"]
    sample.main([*args, "--melody", str(tune), "--out", a])
    sample.main([*args, "--out", b])  # no melody: the null one
    assert sf.info(a).frames == 8000 and Path(a).read_bytes() != Path(b).read_bytes()
    sf.write(tmp_path / "silent.wav", np.zeros(16000), 16000)
    with pytest.raises(SystemExit, match="silent"):
        sample.main(["--model", root, "--prompt", "jazz", "--melody",
                     str(tmp_path / "silent.wav"), "--out", a])


@pytest.mark.skipif(not (SHIPPED / "lm.pt").exists(), reason="no shipped model in checkpoints/")
def test_shipped_model(tmp_path):
    out = str(tmp_path / "dog.wav")
    sample.main(["--prompt", "dog bark park", "--model", str(SHIPPED), "--out", out])
    assert sf.info(out).duration == 5.0


@pytest.mark.skipif(not (SHIPPED / "lm.pt").exists(), reason="no shipped model in checkpoints/")
def test_shipped_model_follows_a_melody(tmp_path):
    """The default model is a melody model: sample.py --prompt "organ" --melody tune.wav plays the
    tune. A tune it never heard (a whistled scale walk, 4 notes a second, at -20 dBFS): over three
    seeds, the pitch classes of the output's chroma frames equal the tune's far more often than
    without --melody (the same prompt and seeds). One clip is too few: over seeds 0-5 the share
    of one clip ranges from 0.29 to 0.58 (chance: about 1 / 12)."""
    from conditioners import MelodyConditioner
    sr, notes = 16000, [60, 62, 64, 67, 69, 67, 64, 62, 60, 65, 69, 72]  # MIDI, 0.25 s each: 3 s
    t = np.arange(int(0.25 * sr)) / sr
    tune = np.concatenate([0.1 * np.sin(2 * np.pi * 440 * 2 ** ((n - 69) / 12) * t) for n in notes])
    sf.write(tmp_path / "tune.wav", tune, sr)
    chroma = MelodyConditioner(8, sample_rate=sr, radix2_exp=13, duration=3.0).chroma
    ref = chroma([torch.from_numpy(tune).float()])
    share = {"with": [], "without": []}
    for seed in range(3):
        args = ["--model", str(SHIPPED), "--prompt", "organ", "--duration", "3", "--seed", str(seed)]
        sample.main([*args, "--melody", str(tmp_path / "tune.wav"),
                     "--out", str(tmp_path / "with.wav")])
        sample.main([*args, "--out", str(tmp_path / "without.wav")])
        for k in share:
            out = torch.from_numpy(sf.read(tmp_path / f"{k}.wav")[0]).float()
            share[k].append((chroma([out]) == ref).float().mean().item())
    mean = {k: sum(v) / len(v) for k, v in share.items()}
    assert mean["with"] > 0.3 and mean["with"] > mean["without"] + 0.25, share
