"""
Tests for compress.py and entropy.py. Run: python -m pytest -q tests/test_compress.py (CPU, about
15 s).

The official `encodec` package runs with random weights (conftest.py's encodec_24khz: the 24 kHz
codec, its codebooks filled; an LMModel seeded as the package seeds it): the same weights and
bandwidth give the same `.ecdc` bytes, with and without the entropy LM, and each side decodes the
other's file to the same codes. Those tests skip, saying why, without the package. The arithmetic
coder is checked alone (round trip, length close to the information content), the CLI on the
shipped tiny codec, and every bad input gives a one-line error and writes nothing.
"""

import importlib
import io
import json
import math
import os
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf
import torch

import compress
from checkpoint import load_codec, load_entropy_lm
from data import BuiltinDataset
from entropy import (ArithmeticDecoder, ArithmeticEncoder, EntropyLM, EntropyLMConfig, lm_bits,
                     lm_decode, lm_encode, pack_bits, quantized_cdf, unpack_bits)
from quantizer import n_q_for_bandwidth

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "checkpoints" / "codec.pt"
SHIPPED_LM = ROOT / "checkpoints" / "entropy_lm.pt"
pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


@pytest.fixture(scope="module")
def official(encodec_package, encodec_24khz, tmp_path_factory):
    """The package's codec and LMModel (ref, ref_lm) and ours (codec, lm), the same random weights
    on both sides, ours read from the official files (codec_path, lm_path) by
    checkpoint.load_codec and load_entropy_lm. The LM is built as the package's get_lm_model builds
    it: seed 1234, 5 layers of 200, 3.5 s at 75 Hz."""
    ref, path = encodec_24khz
    torch.manual_seed(1234)
    ref_lm = encodec_package.model.LMModel(32, 1024, num_layers=5, dim=200,
                                           past_context=int(3.5 * 75)).eval()
    lm_path = tmp_path_factory.mktemp("lm") / "encodec_lm_24khz-1608e3c0.th"
    torch.save(ref_lm.state_dict(), lm_path)
    lm = load_entropy_lm(lm_path, frame_rate=75)
    assert lm.config == EntropyLMConfig()  # the defaults are the official LM's
    return SimpleNamespace(ref=ref, ref_lm=ref_lm, codec=load_codec(path), lm=lm, codec_path=path,
                           lm_path=lm_path)


@pytest.fixture
def package(official, encodec_package, monkeypatch):
    """The package's encodec.compress module (the package exports a function of that name too),
    pointed at the random-weight models: the pretrained model's name, its LM, and decompress()
    building this model instead of downloading one; ref.decode records the codes it is given."""
    package_compress = importlib.import_module("encodec.compress")
    ref, ref_lm = official.ref, official.ref_lm
    decoded = []

    def decode(frames, _decode=type(ref).decode):
        decoded.append(frames[0][0][0])  # codes [K, T] of the only segment
        return _decode(ref, frames)
    monkeypatch.setattr(ref, "name", "encodec_24khz")
    monkeypatch.setattr(ref, "get_lm_model", lambda: ref_lm)
    monkeypatch.setattr(ref, "decode", decode)
    monkeypatch.setitem(package_compress.MODELS, "encodec_24khz", lambda: ref)
    return package_compress, decoded


def clip(length, seed=0):
    return 0.1 * torch.randn(1, length, generator=torch.Generator().manual_seed(seed))  # [C, T]


@pytest.mark.parametrize("use_lm", [False, True])
@pytest.mark.parametrize("bandwidth", [1.5, 6.0])
def test_same_bytes_as_encodec_package(official, package, use_lm, bandwidth):
    package_compress, _ = package
    ref, codec, lm = official.ref, official.codec, official.lm
    wav = clip(24000 + 137)
    ref.set_target_bandwidth(bandwidth)
    theirs = package_compress.compress(ref, wav, use_lm=use_lm)
    n_q = n_q_for_bandwidth(bandwidth, 75, 1024)
    ours, codes = compress.compress(codec, wav, n_q, lm if use_lm else None)
    assert codes.shape == (int(bandwidth / 0.75), 76)
    assert ours == theirs
    if not use_lm:  # 9 bytes of header, the metadata, then exactly 10 bits per code
        meta = json.dumps({"m": "encodec_24khz", "al": 24137, "nc": codes.shape[0], "lm": False})
        assert len(ours) == 9 + len(meta) + math.ceil(codes.numel() * 10 / 8)


@pytest.mark.parametrize("use_lm", [False, True])
def test_each_side_reads_the_other_encodec_package(official, package, use_lm):
    package_compress, decoded = package
    ref, codec, lm = official.ref, official.codec, official.lm
    wav = clip(12000 + 5, seed=1)
    ref.set_target_bandwidth(3.0)
    with torch.no_grad():
        ref_codes = ref.encode(wav[None])[0][0][0]  # [K, T]
    theirs = package_compress.compress(ref, wav, use_lm=use_lm)
    codes, length = compress.decompress(theirs, codec, lm if use_lm else None)
    assert length == wav.shape[-1] and torch.equal(codes, ref_codes)
    ours, _ = compress.compress(codec, wav, 4, lm if use_lm else None)
    out, sr = package_compress.decompress(ours)
    assert sr == 24000 and out.shape == wav.shape
    assert torch.equal(decoded[-1], ref_codes)


def test_frame_count_deviation_encodec_package(official, package):
    """6720 samples at 24 kHz are 21 frames; the package computes ceil(6720 / 24000 * 75) = 22 in
    floats and fails on its own file. Ours decodes it (compress.py docstring, Deviation)."""
    package_compress, _ = package
    ref, codec = official.ref, official.codec
    wav = clip(6720, seed=2)
    ref.set_target_bandwidth(1.5)
    theirs = package_compress.compress(ref, wav, use_lm=False)
    with pytest.raises(EOFError):
        package_compress.decompress(theirs)
    codes, _ = compress.decompress(theirs, codec)
    assert codes.shape == (2, 21)


def test_lm_state_dict_loads_strict_encodec_package(official):
    """The package's LMModel state dict loads into EntropyLM with strict=True; streamed
    probabilities are equal."""
    ref_lm = official.ref_lm
    ours = EntropyLM(EntropyLMConfig()).eval()
    ours.load_state_dict(ref_lm.state_dict(), strict=True)
    states = ref_states = None
    offset = ref_offset = 0
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for t in range(5):
            x = torch.randint(0, 1025, (1, 8, 1 + t % 2), generator=g)  # one frame or two at a time
            probs, states, offset = ours(x, states, offset)
            ref_probs, ref_states, ref_offset = ref_lm(x, ref_states, ref_offset)
            assert probs.shape == (1, 1024, 8, 1 + t % 2) and offset == ref_offset
            assert torch.equal(probs, ref_probs)


def test_arithmetic_coder_equals_encodec_package(encodec_package):
    """A new random distribution at every step, as the package's own test: the same bytes, and
    back."""
    encodec = encodec_package
    g = torch.Generator().manual_seed(0)
    fo, ours = io.BytesIO(), ArithmeticEncoder()
    ref = encodec.quantization.ac.ArithmeticCoder(fo)
    cdfs, symbols = [], []
    for _ in range(300):
        pdf = torch.softmax(3 * torch.randn(500, generator=g), dim=0)
        cdf = quantized_cdf(pdf)
        assert torch.equal(cdf, encodec.quantization.ac.build_stable_quantized_cdf(pdf, 24))
        symbol = int(torch.multinomial(pdf, 1, generator=g))
        ref.push(symbol, cdf)
        ours.push(symbol, cdf)
        cdfs.append(cdf)
        symbols.append(symbol)
    ref.flush()
    data = ours.finish()
    assert data == fo.getvalue()
    decoder = ArithmeticDecoder(data)
    assert [decoder.pull(c) for c in cdfs] == symbols


@pytest.mark.parametrize("kind", ["skewed", "uniform"])
def test_arithmetic_coder_round_trip_and_length(kind):
    """N symbols drawn from p, coded with quantized_cdf(p): decoded exactly, in about
    sum_i -log2 p(s_i) bits, the information content. Skewed: p_s ~ 0.8**s over 64 symbols
    (H = 3.6 bits); uniform over 1024 (10 bits each)."""
    N = 4000
    p = 0.8 ** torch.arange(64.0) if kind == "skewed" else torch.ones(1024)
    p = p / p.sum()
    g = torch.Generator().manual_seed(0)
    symbols = torch.multinomial(p, N, replacement=True, generator=g).tolist()
    cdf = quantized_cdf(p)
    assert int(cdf[-1]) <= 2 ** 24 and int((cdf.diff()).min()) >= 2
    encoder = ArithmeticEncoder()
    for s in symbols:
        encoder.push(s, cdf)
    data = encoder.finish()
    decoder = ArithmeticDecoder(data)
    assert [decoder.pull(cdf) for _ in range(N)] == symbols
    information = -torch.log2(p[symbols]).sum().item()  # bits an ideal coder spends
    # + the quantisation of p (alpha, floor: < 0.1 %) + finish(): the interval's last ~25 bits and
    # the byte padding
    assert information <= 8 * len(data) < 1.001 * information + 32
    if kind == "uniform":  # 10 bits per symbol, plus those last bits
        assert N * 10 / 8 < len(data) <= N * 10 / 8 + 4
    truncated = ArithmeticDecoder(data[:len(data) // 2])
    with pytest.raises(EOFError):  # half the bytes cannot hold all the symbols
        [truncated.pull(cdf) for _ in range(N)]


def test_pack_bits_layout():
    """10-bit codes 1, 2 -> bits, least significant first: 1000000000 0100000000 (+ 4 pad) ->
    0x01 0x08 0x00."""
    assert pack_bits([1, 2], 10) == b"\x01\x08\x00"
    values = torch.randint(0, 256, (101,), generator=torch.Generator().manual_seed(0)).tolist()
    for bits in (8, 9, 11):
        data = pack_bits(values, bits)
        assert len(data) == math.ceil(101 * bits / 8) and unpack_bits(data, bits, 101) == values


def test_lm_encode_decode_round_trip():
    """A tiny EntropyLM (this repo's config) codes K x T codes losslessly; a cut stream is an
    EOFError."""
    torch.manual_seed(0)
    config = EntropyLMConfig(n_q=4, card=16, dim=16, num_heads=2, num_layers=1, past_context=5)
    lm = EntropyLM(config).eval()
    codes = torch.randint(0, 16, (3, 20), generator=torch.Generator().manual_seed(1))
    data = lm_encode(codes, lm)
    assert torch.equal(lm_decode(data, lm, 3, 20), codes)
    with pytest.raises(EOFError):
        lm_decode(data[:-2], lm, 3, 20)


def test_lm_bits_predicts_coded_length():
    """The teacher-forced loss is the coded size: sum(lm_bits) over a clip ~
    8 len(lm_encode(codes)), for a random LM (~8.3 bits per code) on T = 60 > past_context = 10
    frames (the window slides) and K = 3 < n_q codebooks. Tolerance 0.5 % + 32 bits: finish()
    writes the interval's last <= 25 bits plus <= 7 of byte padding, and the floors of
    quantized_cdf lower each slice by < 1 of 2**24 (a code of probability q >= 1/2**16 loses
    < 0.1 %); one pass vs one frame at a time differ by float rounding (~1e-6). Measured: within
    ~0.1 % + 24 bits."""
    torch.manual_seed(0)
    config = EntropyLMConfig(n_q=4, card=256, dim=32, num_heads=2, num_layers=2, past_context=10)
    lm = EntropyLM(config).eval()
    g = torch.Generator().manual_seed(1)
    codes = torch.randint(0, 256, (2, 3, 60), generator=g)  # [B, K, T]
    with torch.no_grad():
        bits = lm_bits(lm, codes)  # [B, K, T]
    assert bits.shape == (2, 3, 60) and bits.max() < 23  # min_range: no code costs over 23 bits
    for b in range(2):
        coded, predicted = 8 * len(lm_encode(codes[b], lm)), bits[b].sum().item()
        assert abs(coded - predicted) <= 0.005 * coded + 32, (coded, predicted)


def test_fit_entropy_lm_lowers_loss():
    """A few AdamW steps on codes that follow from the previous frame (code_t = code_{t-1} + 1
    mod 16, a random start per clip and codebook): the loss falls from ~4 bits (log2 16: an
    untrained LM) well below it."""
    torch.manual_seed(0)
    lm = EntropyLM(EntropyLMConfig(n_q=2, card=16, dim=32, num_heads=2, num_layers=1,
                                   past_context=8))
    start = torch.randint(0, 16, (8, 2, 1), generator=torch.Generator().manual_seed(1))
    codes = (start + torch.arange(30)) % 16  # [N, K, T]
    losses = compress.fit_entropy_lm(lm, codes, steps=60, batch_size=4, lr=1e-2, log_every=1000)
    assert len(losses) == 60 and losses[0] > 3.5
    assert sum(losses[-5:]) / 5 < 0.6 * losses[0], losses[::10]

# ----------------------------------------------------------------------------- the command line


def write_clip(path, seconds=1.3, sr=16000, channels=1, seed=0):
    t = np.arange(int(seconds * sr)) / sr
    rng = np.random.default_rng(seed)
    wav = 0.3 * np.sin(2 * np.pi * 220 * t) * np.exp(-2 * t) + 0.02 * rng.standard_normal(len(t))
    sf.write(path, np.stack([wav] * channels, axis=1), sr, subtype="PCM_16")
    return len(t)


def small_lm_file(path, bins=256, n_q=8):
    torch.manual_seed(0)
    config = EntropyLMConfig(n_q=n_q, card=bins, dim=32, num_heads=2, num_layers=1,
                             past_context=175)
    lm = EntropyLM(config)
    torch.save({"config": asdict(lm.config), "model": lm.state_dict()}, path)
    return str(path)


@pytest.fixture(scope="module")
def shipped():
    if not SHIPPED.is_file():
        pytest.skip(f"{SHIPPED} is not there")
    return load_codec(SHIPPED)


@pytest.mark.parametrize("use_lm", [False, True])
def test_cli_round_trip_shipped_codec(shipped, tmp_path, capsys, use_lm):
    wav_in, ecdc, wav_out = (str(tmp_path / name) for name in ("in.wav", "in.ecdc", "out.wav"))
    T = write_clip(wav_in)
    lm = ["--lm", small_lm_file(tmp_path / "elm.pt")] if use_lm else []
    compress.main([wav_in, ecdc, "--bandwidth", "1.6", *lm])
    out = capsys.readouterr().out
    assert "kbps" in out and "smaller than 16-bit PCM" in out
    assert ("entropy-coded" in out) == use_lm
    compress.main([ecdc, wav_out, *lm])
    audio, sr = sf.read(wav_out, dtype="float32")
    assert sr == 16000 and audio.shape == (T,)
    # the audio is codec.decode of the input's codes, to 16-bit precision
    wav = torch.from_numpy(sf.read(wav_in, dtype="float32")[0])[None, None]  # [1, 1, T]
    codes = shipped.encode(wav, n_q=4)
    lm_model = load_entropy_lm(lm[1], shipped.frame_rate) if use_lm else None
    assert torch.equal(compress.decompress(Path(ecdc).read_bytes(), shipped, lm_model)[0], codes[0])
    expected = shipped.decode(codes)[0, 0, :T].clamp(-1, 1).numpy()
    assert np.abs(audio - expected).max() < 1.5 / 32768
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]  # temp files were renamed


def test_cli_shipped_entropy_lm_smaller_file(shipped, tmp_path, capsys):
    """--lm checkpoints/entropy_lm.pt (trained by `compress.py --train-lm`) on a held-out built-in
    clip (split 'valid', never trained on): the same codes back, in fewer bytes than 8 bits per
    code, at 0.4 and 3.2 kbps."""
    if not SHIPPED_LM.is_file():
        pytest.skip(f"{SHIPPED_LM} is not there: python compress.py --train-lm {SHIPPED_LM}")
    assert SHIPPED_LM.stat().st_size < 1_100_000  # small: fp16, ~0.4 M parameters
    wav_in, wav_out = str(tmp_path / "in.wav"), str(tmp_path / "out.wav")
    held_out = BuiltinDataset(1, duration=2.0, split="valid")[0]["wav"][0].numpy()
    sf.write(wav_in, held_out, 16000, subtype="PCM_16")
    for bandwidth in ("0.4", "3.2"):
        plain, coded = str(tmp_path / "plain.ecdc"), str(tmp_path / "coded.ecdc")
        compress.main([wav_in, plain, "--bandwidth", bandwidth])
        compress.main([wav_in, coded, "--bandwidth", bandwidth, "--lm", str(SHIPPED_LM)])
        compress.main([coded, wav_out, "--lm", str(SHIPPED_LM)])
        lm = load_entropy_lm(SHIPPED_LM, shipped.frame_rate)
        codes = compress.decompress(Path(plain).read_bytes(), shipped)[0]
        assert torch.equal(compress.decompress(Path(coded).read_bytes(), shipped, lm)[0], codes)
        assert os.path.getsize(coded) < os.path.getsize(plain), bandwidth
    assert sf.read(wav_out)[0].shape == (32000,)


def test_cli_resamples_and_down_mixes(shipped, tmp_path, capsys):
    wav_in, ecdc, wav_out = (str(tmp_path / name) for name in ("in.wav", "in.ecdc", "out.wav"))
    T = write_clip(wav_in, seconds=0.5, sr=22050, channels=2)
    compress.main([wav_in, ecdc])
    out = capsys.readouterr().out
    assert "from 22050 Hz to the codec's 16000 Hz" in out and "down-mixed 2 channel(s)" in out
    compress.main([ecdc, wav_out])
    audio, sr = sf.read(wav_out)
    assert sr == 16000 and audio.shape == (math.ceil(T * 16000 / 22050),)


def test_cli_official_files_same_bytes_encodec_package(official, package, tmp_path):
    """The official files through the command line (--model encodec_24khz-*.th
    --lm encodec_lm_24khz-*.th): the package's bytes for the same audio."""
    package_compress, _ = package
    wav_in, ecdc, wav_out = (str(tmp_path / name) for name in ("in.wav", "in.ecdc", "out.wav"))
    write_clip(wav_in, seconds=0.5, sr=24000)
    models = ["--model", str(official.codec_path), "--lm", str(official.lm_path)]
    compress.main([wav_in, ecdc, "--bandwidth", "6", *models])
    official.ref.set_target_bandwidth(6.0)
    wav = torch.from_numpy(sf.read(wav_in, dtype="float32")[0])[None]  # [C, T]
    assert Path(ecdc).read_bytes() == package_compress.compress(official.ref, wav, use_lm=True)
    compress.main([ecdc, wav_out, *models])
    assert sf.read(wav_out)[0].shape == (12000,)

# ----------------------------------------------------------------------------- bad input


def header(metadata):
    meta = json.dumps(metadata).encode()
    return b"ECDC\x00" + len(meta).to_bytes(4, "big") + meta


def bad_cases(tmp_path, tiny_codec):
    """name -> (argv, words the error must hold). Files are made on the fly; the output must not
    appear."""
    wav, plain, coded = tmp_path / "in.wav", tmp_path / "plain.ecdc", tmp_path / "coded.ecdc"
    write_clip(wav)
    elm = small_lm_file(tmp_path / "elm.pt")
    compress.main([str(wav), str(plain)])
    compress.main([str(wav), str(coded), "--lm", elm])
    other = tmp_path / "other_codec.pt"
    codec = tiny_codec(seed=1)
    torch.save({"config": asdict(codec.config), "model": codec.state_dict()}, other)
    sf.write(tmp_path / "empty.wav", np.zeros((0, 1)), 16000)
    files = {"notecdc.ecdc": wav.read_bytes(), "cut.ecdc": plain.read_bytes()[:-10],
             "cuthead.ecdc": plain.read_bytes()[:20], "cutlm.ecdc": coded.read_bytes()[:-3],
             "mystery.ecdc": header({"m": "mystery", "al": 16000, "nc": 2, "lm": False})
             + bytes(200),
             "hq.ecdc": header({"m": "encodec_48khz", "al": 48000, "nc": 4, "lm": False})
             + bytes(900),
             "official.ecdc": header({"m": "encodec_24khz", "al": 24000, "nc": 2, "lm": False})
             + bytes(200)}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    out_wav, out_ecdc = str(tmp_path / "out.wav"), str(tmp_path / "out.ecdc")
    def f(name):
        return str(tmp_path / name)
    return {
        "not ecdc": ([f("notecdc.ecdc"), out_wav], ["not an .ecdc file"]),
        "truncated": ([f("cut.ecdc"), out_wav], ["truncated"]),
        "truncated header": ([f("cuthead.ecdc"), out_wav], ["truncated"]),
        "truncated lm": ([f("cutlm.ecdc"), out_wav, "--lm", elm], ["truncated"]),
        "another codec": ([f("plain.ecdc"), out_wav, "--model", str(other)],
                          ["made by codec tiny-", "--model"]),
        "official needs its file": ([f("official.ecdc"), out_wav],
                                    ["encodec_24khz-d7cc33bc.th"]),
        "unknown model name": ([f("mystery.ecdc"), out_wav],
                               ["unknown model name 'mystery'"]),
        "48 kHz model": ([f("hq.ecdc"), out_wav], ["48 kHz", "python -m encodec"]),
        "48 kHz --model": ([str(wav), out_ecdc, "--model", f("encodec_48khz-7e698e3e.th")],
                           ["48 kHz", "--hq"]),
        "lm needed": ([f("coded.ecdc"), out_wav], ["entropy-coded", "--lm"]),
        "unknown --model": ([str(wav), out_ecdc, "--model", f("nope.pt")],
                            ["cannot load --model", "not found"]),
        "empty wav": ([f("empty.wav"), out_ecdc], ["no audio"]),
        "not audio": ([elm, out_ecdc], ["cannot read", "as audio"]),
        "bandwidth": ([str(wav), out_ecdc, "--bandwidth", "1.5"], ["1.5", "0.4, 0.8", "3.2"]),
        "lm of another card": ([str(wav), out_ecdc, "--lm",
                                small_lm_file(tmp_path / "l1024.pt", 1024)], ["1024"]),
        "output suffix": ([str(wav), out_wav], ["must end in .ecdc"]),
        "missing input": ([f("missing.wav"), out_ecdc], ["not found"]),
    }


@pytest.fixture(scope="module")
def bad(shipped, tiny_codec, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bad")
    return tmp, bad_cases(tmp, tiny_codec)


@pytest.mark.parametrize("case", ["not ecdc", "truncated", "truncated header", "truncated lm",
                                  "another codec", "official needs its file", "unknown model name",
                                  "48 kHz model", "48 kHz --model", "lm needed", "unknown --model",
                                  "empty wav", "not audio", "bandwidth", "lm of another card",
                                  "output suffix", "missing input"])
def test_bad_input_one_line_no_file(bad, case, capsys):
    tmp, cases = bad
    argv, words = cases[case]
    before = set(os.listdir(tmp))
    with pytest.raises(SystemExit) as e:
        compress.main(argv)
    msg = str(e.value)
    assert msg.startswith("compress.py: error: ") and "\n" not in msg, msg
    for w in words:
        assert w in msg, msg
    assert set(os.listdir(tmp)) == before  # nothing written, no temp file either


def test_script_exit_status(bad):
    """As a script: exit status 1 and the one line on stderr."""
    tmp, cases = bad
    out = subprocess.run([sys.executable, str(ROOT / "compress.py"), *cases["not ecdc"][0]],
                         capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=120)
    assert out.returncode == 1 and out.stderr.count("\n") == 1 and "not an .ecdc file" in out.stderr
