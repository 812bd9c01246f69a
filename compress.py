"""
EnCodec as a compressor: audio <-> `.ecdc` files in the official package's format, optionally
entropy-coded by an LM.

    python compress.py in.wav out.ecdc                  the shipped tiny codec, all 8 codebooks
                                                        (3.2 kbps)
    python compress.py in.wav out.ecdc --bandwidth 1.6  fewer codebooks: 4 of 8, at 0.4 kbps each
    python compress.py out.ecdc out.wav                 decompress, with the same --model (and --lm)
    python compress.py in.wav out.ecdc --lm checkpoints/entropy_lm.pt   entropy-coded
    python compress.py --train-lm checkpoints/entropy_lm.pt     train that LM on the --model's codes
    python compress.py in.wav out.ecdc --model encodec_24khz-d7cc33bc.th --bandwidth 6 \
        --lm encodec_lm_24khz-1608e3c0.th                       the official codec and entropy LM

The file (the package's encodec/binary.py and encodec/compress.py; the same bytes as its own,
tests/test_compress.py):
    b"ECDC" | version, uint8 = 0 | n, uint32 big-endian | n bytes of JSON metadata | payload
    metadata: json.dumps({"m": model name, "al": audio length (samples), "nc": codebooks K,
                          "lm": entropy-coded?})
    payload:  without LM, the codes frame by frame (all K of frame 0, then frame 1, ...),
              log2(bins) bits each, entropy.pack_bits' layout; with LM, one arithmetic-coded stream
              (entropy.lm_encode).
The bandwidth is not stored, K is: K codebooks of log2(bins) bits at frame_rate Hz are
K log2(bins) frame_rate bits/s (EnCodec Sec. 3.2), the nominal bitrate; the LM makes the file
smaller (Sec. 3.3: by 25-40 %).

--train-lm trains a small EntropyLM (dim 64, 3 layers, 3.5 s of context; ~0.4 M parameters, < 1 MB
in fp16) on the codec's codes of built-in clips (data.BuiltinDataset, split "train"): AdamW on
entropy.lm_bits, the bits lm_encode spends. Each step uses the first K codebooks, K drawn from
1..n_q, so one LM serves every bandwidth (at bandwidth K lm_encode sums only K embeddings per frame;
an LM trained at n_q alone would see inputs it never saw).

Model names, the header's "m". The package knows "encodec_24khz" and "encodec_48khz" and fetches
their weights itself; here the weights are a file, --model, and the name says which codec the file
needs:
    "encodec_24khz"     the official 24 kHz codec: a codec whose config is PRESETS["encodec_24khz"],
                        as checkpoint.load_codec reads encodec_24khz-d7cc33bc.th. Files of the
                        package read here with --model that file, and ours there. The name fixes the
                        architecture, not the weights (it is the package's format): other weights of
                        that exact config would write it too.
    "<preset>-<8 hex>"  every other codec: the PRESETS entry its config equals ("tiny", ..., else
                        "codec") and the first 8 hex digits of checkpoint.codec_hash (config +
                        weights), so decompressing checks that --model is the very codec the file
                        was made with. The package rejects these names.
    "encodec_48khz"     rejected: that model (stereo, 1 s segments, each with a float32 scale before
                        its codes) is not implemented here; decompress it with the package,
                        `python -m encodec in.ecdc out.wav`.
The entropy LM is not named in the file (in the package the model name implies it): pass the same
--lm to both.

Deviation: the number of frames to decode is ceil(al / hop), what the encoder wrote. The package
computes ceil(al / sample_rate * frame_rate) in floats, one frame too many for some lengths (6720
samples at 24 kHz: 21 frames, 22 computed), and then fails on its own file; ours read them.

References:
1) EnCodec, High Fidelity Neural Audio Compression, Sec. 3.3: https://arxiv.org/abs/2210.13438
   official code: facebookresearch/encodec encodec/compress.py, encodec/binary.py,
   encodec/__main__.py
"""

import argparse
import json
import math
import os
import re
import struct
import time
from dataclasses import asdict

import soundfile as sf
import torch

from audio import load_audio
from checkpoint import codec_hash, half, load_codec, load_entropy_lm, save_atomic
from codec import PRESETS
from data import BuiltinDataset
from entropy import (EntropyLM, EntropyLMConfig, lm_bits, lm_decode, lm_encode, pack_bits,
                     unpack_bits)
from quantizer import bandwidth_per_codebook

HEADER = struct.Struct("!4sBI")  # magic, version, metadata size: network byte order, 9 bytes
MAGIC, VERSION = b"ECDC", 0
# the package's target_bandwidths (kbps)
OFFICIAL_BANDWIDTHS = {"encodec_24khz": (1.5, 3.0, 6.0, 12.0, 24.0)}
SHIPPED_CODEC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "checkpoints", "codec.pt")

parser = argparse.ArgumentParser(
    description="Compress audio to .ecdc with EnCodec, or decompress an .ecdc file.")
parser.add_argument("input", nargs="?",
                    help="audio file to compress (WAV, FLAC, OGG, MP3), or an .ecdc file to "
                         "decompress")
parser.add_argument("output", nargs="?",
                    help="the .ecdc file to write (compressing) or the .wav file (decompressing)")
# Model
parser.add_argument("--model", metavar="PATH", default=SHIPPED_CODEC,
                    help="codec: this repo's checkpoint or an official file checkpoint.load_codec "
                         "reads, e.g. encodec_24khz-d7cc33bc.th (default: %(default)s, the shipped "
                         "tiny codec)")
parser.add_argument("--lm", default=None, metavar="PATH",
                    help="entropy-code with this entropy LM: this repo's checkpoint or the "
                         "official encodec_lm_24khz-1608e3c0.th; decompressing needs the same one "
                         "(default: no LM)")
# Compression
parser.add_argument("--bandwidth", type=float, default=None,
                    help="kbps: K codebooks x log2(bins) bits x frame_rate, e.g. 0.4, 0.8, .., "
                         "3.2 for the shipped codec, 1.5, 3, 6, 12 or 24 for encodec_24khz "
                         "(default: all codebooks)")
# Training an entropy LM (no input/output then)
parser.add_argument("--train-lm", metavar="OUT.pt", default=None,
                    help="train an entropy LM on the --model codec's codes of built-in clips and "
                         "save it to OUT.pt")
parser.add_argument("--train-clips", type=int, default=800,
                    help="built-in 5 s clips (split 'train', seed 0)")
parser.add_argument("--train-steps", type=int, default=2500,
                    help="AdamW steps (~0.2 s each on one CPU thread)")
parser.add_argument("--batch-size", type=int, default=16, help="clips per step")
parser.add_argument("--lr", type=float, default=2e-3,
                    help="peak learning rate (100 warm-up steps, cosine decay)")


def fail(msg):
    """One line on stderr, exit status 1, nothing written."""
    raise SystemExit(f"compress.py: error: {msg}")


parser.error = fail  # argparse's own errors too: one line, no usage

# -----------------------------------------------------------------------------
# the codec's name and bandwidths


def model_name(codec):
    """The header's "m" for this codec (see the file docstring)."""
    if codec.config == PRESETS["encodec_24khz"]:
        return "encodec_24khz"
    preset = "codec"  # the PRESETS entry the config equals, if any
    for name, config in PRESETS.items():
        if config == codec.config:
            preset = name
            break
    return f"{preset}-{codec_hash(codec)[:8]}"


def bandwidths(codec):
    """kbps -> codebooks K, for the bandwidths the codec offers: K log2(bins) frame_rate for
    K = 1..n_q, except for encodec_24khz, which offers the five it was trained at (1.5 .. 24 kbps:
    2 .. 32 codebooks of 0.75 kbps)."""
    per_codebook = bandwidth_per_codebook(codec.frame_rate, codec.config.bins) / 1000  # kbps
    name = model_name(codec)
    if name in OFFICIAL_BANDWIDTHS:
        return {bw: round(bw / per_codebook) for bw in OFFICIAL_BANDWIDTHS[name]}
    return {round(K * per_codebook, 4): K for K in range(1, codec.config.n_q + 1)}


def n_codebooks(codec, bandwidth):
    """--bandwidth -> K (all codebooks for None); ValueError naming the choices for a bandwidth not
    offered."""
    offered = bandwidths(codec)
    if bandwidth is None:
        return max(offered.values())
    match = [K for bw, K in offered.items() if abs(bw - bandwidth) < 1e-3]
    if not match:
        raise ValueError(f"--bandwidth {bandwidth:g} is not one this codec offers: choose one of "
                         f"{', '.join(f'{bw:g}' for bw in offered)} (kbps)")
    return match[0]

# -----------------------------------------------------------------------------
# the .ecdc format


def write_ecdc(name, length, K, payload, use_lm):
    """Header + JSON metadata + payload -> bytes. json.dumps with its default separators and these
    keys in this order, as the package writes them: byte equality depends on it."""
    metadata = json.dumps({"m": name, "al": length, "nc": K, "lm": use_lm}).encode("utf-8")
    return HEADER.pack(MAGIC, VERSION, len(metadata)) + metadata + payload


def read_ecdc(data):
    """bytes -> (metadata dict, payload bytes), checked; ValueError saying what is wrong."""
    if data[:4] != MAGIC:
        raise ValueError(f"not an .ecdc file: it starts with {data[:4]!r}, not {MAGIC!r}")
    if len(data) < HEADER.size:
        raise ValueError(f"truncated: {len(data)} bytes, shorter than the {HEADER.size}-byte "
                         f"header")
    _, version, size = HEADER.unpack(data[:HEADER.size])
    if version != VERSION:
        raise ValueError(f"format version {version} is not supported (only {VERSION}); was it "
                         f"written by a newer EnCodec?")
    if len(data) < HEADER.size + size:
        raise ValueError(f"truncated: the metadata needs {size} bytes, the file has "
                         f"{len(data) - HEADER.size}")
    try:
        metadata = json.loads(data[HEADER.size:HEADER.size + size].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ValueError("the metadata is not valid JSON: the file is damaged") from None
    types = {"m": str, "al": int, "nc": int, "lm": bool}
    well_typed = isinstance(metadata, dict) and all(
        type(metadata.get(k)) is t for k, t in types.items())
    if not well_typed:
        raise ValueError(f"the metadata {metadata!r} lacks one of m (str), al, nc (int), lm (bool)")
    if metadata["al"] < 1 or metadata["nc"] < 1:
        raise ValueError(f"the metadata says al={metadata['al']} samples, nc={metadata['nc']} "
                         f"codebooks: damaged")
    return metadata, data[HEADER.size + size:]


@torch.no_grad()
def compress(codec, wav, n_q, lm=None):
    """wav [C, T] at codec.sample_rate -> (.ecdc bytes, codes [K, frames]). K = n_q codebooks;
    lm: an EntropyLM (entropy-coded payload) or None (log2(bins) bits per code)."""
    bits = int(math.log2(codec.config.bins))
    if 2 ** bits != codec.config.bins:
        raise ValueError(f"the codec has {codec.config.bins} codes per codebook; the format "
                         f"needs a power of 2")
    codes = codec.encode(wav[None], n_q)[0]  # [K, frames]
    if lm is None:
        # frame by frame: codes[:, 0], codes[:, 1], ...
        payload = pack_bits(codes.t().flatten().numpy(), bits)
    else:
        payload = lm_encode(codes, lm)
    data = write_ecdc(model_name(codec), wav.shape[-1], codes.shape[0], payload, lm is not None)
    return data, codes


def check_codec(metadata, codec, source):
    """The file's model name against the codec's (loaded from `source`); ValueError saying which
    --model to pass."""
    name = metadata["m"]
    ours = model_name(codec)
    if name == "encodec_48khz":
        raise ValueError("made by the official 48 kHz stereo model, which this repo does not "
                         "implement; decompress it with the package: python -m encodec FILE.ecdc "
                         "out.wav")
    if name != "encodec_24khz" and not re.fullmatch(r"[a-z0-9_]+-[0-9a-f]{8}", name):
        raise ValueError(f"unknown model name {name!r} in the header: this repo reads "
                         f"encodec_24khz and its own codecs' names (<preset>-<8 hex digits>)")
    if name != ours:
        hint = ""
        if name == "encodec_24khz":
            hint = " (encodec_24khz-d7cc33bc.th for encodec_24khz)"
        raise ValueError(f"made by codec {name}, not by {ours} ({source}): pass --model the "
                         f"codec it was compressed with{hint}")
    if metadata["nc"] > codec.config.n_q:
        raise ValueError(f"the metadata says {metadata['nc']} codebooks, the codec has "
                         f"{codec.config.n_q}: damaged")


@torch.no_grad()
def decompress(data, codec, lm=None, source="the codec given"):
    """.ecdc bytes -> (codes [K, frames], audio length in samples). ValueError saying what is
    wrong."""
    metadata, payload = read_ecdc(data)
    check_codec(metadata, codec, source)
    K = metadata["nc"]
    frames = math.ceil(metadata["al"] / codec.hop_length)  # see the file docstring's deviation
    if metadata["lm"] and lm is None:
        raise ValueError("the file is entropy-coded: pass --lm, the entropy LM it was "
                         "compressed with")
    if metadata["lm"] and K > lm.config.n_q:
        raise ValueError(f"the file has {K} codebooks, the entropy LM models {lm.config.n_q}: "
                         f"wrong --lm")
    if not metadata["lm"]:
        bits = int(math.log2(codec.config.bins))
        n_bytes = math.ceil(K * frames * bits / 8)
        if len(payload) < n_bytes:
            raise ValueError(f"truncated: {K} x {frames} codes of {bits} bits need {n_bytes} bytes "
                             f"after the header, the file has {len(payload)}")
        values = unpack_bits(payload, bits, K * frames)  # frame by frame
        codes = torch.tensor(values).view(frames, K).t()  # [K, frames]
        return codes, metadata["al"]
    try:
        return lm_decode(payload, lm, K, frames), metadata["al"]
    except EOFError:
        raise ValueError("truncated: the entropy-coded stream ends before its last code") from None

# -----------------------------------------------------------------------------
# the command line


def load_models(args, need_lm):
    """--model and --lm -> (codec, entropy LM or None), each failure one line."""
    if os.path.basename(args.model).startswith("encodec_48khz"):
        fail("the official 48 kHz stereo model is not implemented here (see the docstring); use "
             "the package: python -m encodec --hq in.wav out.ecdc")
    try:
        codec = load_codec(args.model)
    except (ValueError, FileNotFoundError, ImportError) as e:
        fail(f"cannot load --model: {str(e).splitlines()[0]}")
    lm = None
    if need_lm:
        try:
            lm = load_entropy_lm(args.lm, codec.frame_rate)
        except (ValueError, FileNotFoundError) as e:
            fail(f"cannot load --lm: {str(e).splitlines()[0]}")
        if lm.config.card != codec.config.bins:
            fail(f"--lm {args.lm} models {lm.config.card} codes per codebook, the codec has "
                 f"{codec.config.bins}: pass the entropy LM trained on this codec's codes")
    return codec, lm


def read_audio(path, codec):
    """An audio file -> wav [C, T] at the codec's rate and channels, saying what was converted."""
    try:
        info = sf.info(path)
    except Exception as e:  # libsndfile: missing, unknown format, damaged header
        fail(f"cannot read {path} as audio ({str(e).splitlines()[0]}): "
             f"give a WAV, FLAC, OGG or MP3 file")
    if info.frames == 0:
        fail(f"{path} holds no audio (0 samples): nothing to compress")
    try:
        wav = load_audio(path, codec.sample_rate, codec.channels)  # [C, T]
    except ValueError as e:  # a sample rate too odd to resample, channels that cannot be mapped
        fail(str(e).splitlines()[0])
    if info.samplerate != codec.sample_rate:
        print(f"resampled {path} from {info.samplerate} Hz to the codec's {codec.sample_rate} Hz")
    if info.channels != codec.channels:
        how = "down-mixed" if info.channels > codec.channels else "repeated"
        print(f"{how} {info.channels} channel(s) to the codec's {codec.channels}")
    return wav


def run_compress(args):
    if not args.output.lower().endswith(".ecdc"):
        fail(f"compressing: the output {args.output!r} must end in .ecdc")
    codec, lm = load_models(args, args.lm is not None)
    try:
        n_q = n_codebooks(codec, args.bandwidth)
    except ValueError as e:
        fail(str(e))
    if lm is not None and n_q > lm.config.n_q:
        fail(f"--lm models {lm.config.n_q} codebooks, --bandwidth needs {n_q}: "
             f"choose a lower --bandwidth")
    wav = read_audio(args.input, codec)
    t0 = time.time()
    data, codes = compress(codec, wav, n_q, lm)
    with open(args.output + ".tmp", "wb") as f:  # temp file + rename: never a half-written file
        f.write(data)
    os.replace(args.output + ".tmp", args.output)
    seconds = wav.shape[-1] / codec.sample_rate
    pcm = 2 * wav.numel()  # bytes of 16-bit PCM: 2 per sample
    K = codes.shape[0]
    nominal = K * bandwidth_per_codebook(codec.frame_rate, codec.config.bins) / 1000  # kbps
    kbps = 8 * len(data) / seconds / 1000
    how = f"{K} codebook" + ("s" if K > 1 else "") + f", {nominal:g} kbps nominal"
    if lm:
        how += ", entropy-coded"
    print(f"wrote {args.output}: {len(data)} bytes for {seconds:.2f} s = {kbps:.2f} kbps ({how}), "
          f"{pcm / len(data):.1f}x smaller than 16-bit PCM at {codec.sample_rate} Hz "
          f"({pcm} bytes), "
          f"in {time.time() - t0:.2f} s")


def run_decompress(args):
    if not args.output.lower().endswith(".wav"):
        fail(f"decompressing: the output {args.output!r} must end in .wav")
    if args.bandwidth is not None:
        fail("--bandwidth is for compressing: an .ecdc file stores its number of codebooks")
    try:
        with open(args.input, "rb") as f:
            data = f.read()
        metadata, _ = read_ecdc(data)  # a damaged file fails before any model is loaded
    except (OSError, ValueError) as e:
        fail(f"{args.input}: {e}")
    codec, lm = load_models(args, metadata["lm"] and args.lm is not None)
    t0 = time.time()
    try:
        codes, length = decompress(data, codec, lm, f"--model {args.model}")
        wav = codec.decode(codes[None])[0, :, :length].clamp(-1, 1)  # [C, T]
    except ValueError as e:
        fail(f"{args.input}: {e}")
    sf.write(args.output + ".tmp", wav.t().numpy(), codec.sample_rate, subtype="PCM_16",
             format="WAV")
    os.replace(args.output + ".tmp", args.output)
    K = codes.shape[0]
    how = f"{K} codebook" + ("s" if K > 1 else "")
    if metadata["lm"]:
        how += " (entropy-coded)"
    print(f"wrote {args.output}: {length / codec.sample_rate:.2f} s at {codec.sample_rate} Hz "
          f"from {how}, in {time.time() - t0:.2f} s")


# -----------------------------------------------------------------------------
# training an entropy LM


def fit_entropy_lm(lm, codes, steps, batch_size=16, lr=2e-3, valid=None, log_every=100, seed=0):
    """AdamW on the mean of entropy.lm_bits (bits per code) over codes [N, n_q, T]: each step
    batch_size random clips, their first K codebooks, K uniform in 1..n_q (every bandwidth).
    valid [M, n_q, T]: held-out codes, its bits per code at all n_q printed with the train loss.
    Returns the train loss of each step."""
    g = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(lm.parameters(), lr=lr, weight_decay=0.01)
    losses = []
    t0 = time.time()
    for step in range(steps):
        warmup = min(1, (step + 1) / 100)  # linear over the first 100 steps
        decay = 1 + math.cos(math.pi * step / steps)  # cosine from 2 to 0, halved below
        for group in optimizer.param_groups:
            group["lr"] = lr * warmup * 0.5 * decay
        K = int(torch.randint(1, codes.shape[1] + 1, (1,), generator=g))
        clips = torch.randint(0, len(codes), (batch_size,), generator=g)  # [B]
        batch = codes[clips, :K]  # [B, K, T]
        loss = lm_bits(lm.train(), batch).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if (step + 1) % log_every == 0 or step + 1 == steps:
            recent = losses[-log_every:]
            msg = f"step {step + 1}/{steps}: train {sum(recent) / len(recent):.3f} bits/code"
            if valid is not None:
                with torch.no_grad():
                    valid_bits = lm_bits(lm.eval(), valid).mean().item()
                msg += f", valid (all {codes.shape[1]} codebooks) {valid_bits:.3f}"
            print(f"{msg}, {time.time() - t0:.0f} s", flush=True)
    return losses


@torch.no_grad()
def builtin_codes(codec, n, split):
    """The codec's codes [n, n_q, T] of n built-in 5 s clips (seed 0) at all its codebooks."""
    dataset = BuiltinDataset(n, seed=0, duration=5.0, sample_rate=codec.sample_rate, split=split)
    codes = [codec.encode(dataset[i]["wav"][None], codec.config.n_q) for i in range(n)]
    return torch.cat(codes)  # [n, n_q, T]


def run_train_lm(args):
    """--train-lm OUT.pt: a small EntropyLM for --model's codes, saved as {'config', 'model'} in
    fp16."""
    if args.input or args.output or args.lm or args.bandwidth:
        fail("--train-lm takes no input/output, --lm or --bandwidth: only --model and the "
             "training flags")
    if min(args.train_clips, args.train_steps, args.batch_size) < 1:
        fail(f"--train-clips, --train-steps and --batch-size must be >= 1, got {args.train_clips}, "
             f"{args.train_steps}, {args.batch_size}")
    codec, _ = load_models(args, False)
    torch.manual_seed(0)
    config = EntropyLMConfig(n_q=codec.config.n_q, card=codec.config.bins, dim=64, num_heads=4,
                             num_layers=3, past_context=int(3.5 * codec.frame_rate))  # paper: 3.5 s
    lm = EntropyLM(config)
    t0 = time.time()
    codes = builtin_codes(codec, args.train_clips, "train")
    valid = builtin_codes(codec, 16, "valid")
    n_params = sum(p.numel() for p in lm.parameters())
    print(f"{len(codes)} clips -> codes {tuple(codes.shape[1:])} each in {time.time() - t0:.0f} s; "
          f"entropy LM of {n_params / 1e6:.2f} M parameters, fixed width: "
          f"{math.log2(codec.config.bins):g} bits/code")
    fit_entropy_lm(lm, codes, args.train_steps, args.batch_size, args.lr, valid)
    ckpt = {"config": asdict(config), "model": half(lm.state_dict()), "args": vars(args)}
    save_atomic(ckpt, args.train_lm)
    size_mb = os.path.getsize(args.train_lm) / 1e6
    print(f"wrote {args.train_lm} ({size_mb:.2f} MB) in {time.time() - t0:.0f} s")


def main(argv=None):
    args = parser.parse_args(argv)
    if args.train_lm:
        return run_train_lm(args)
    if args.input is None or args.output is None:
        fail("give an input and an output file (or --train-lm OUT.pt)")
    if not os.path.isfile(args.input):
        fail(f"input not found: {args.input}")
    folder = os.path.dirname(os.path.abspath(args.output))
    if not os.path.isdir(folder):
        fail(f"the output folder {folder} does not exist; create it first")
    if args.input.lower().endswith(".ecdc"):
        run_decompress(args)
    else:
        run_compress(args)


if __name__ == "__main__":
    main()
