"""
Generate audio from text prompts with a trained text-to-audio LM: parse, load, generate (the steps
are in model.py), write wav.

    python sample.py --prompt "dog bark park"       # the default model (checkpoints/), CPU, seconds
    python sample.py --prompt "rain street" --prompt "happy piano slow" --duration 8 --seed 1
    python sample.py --model musicgen-melody/ --prompt "80s pop" --melody tune.wav --duration 10
    # continue an audio prompt
    python sample.py --prompt "dog bark park" --continuation dog_bark_park.wav --duration 8

--model: this repo's export folder or LM checkpoint, or a folder of official AudioCraft files (see
model.load_model). The WAV is the decoded audio, --duration s in all: for --continuation the audio
prompt (shorter than --duration), then new audio (AudioCraft's generate_continuation); past its
window the LM sees the prompt's end. The decoder's output can overshoot [-1, 1]; --normalize scales
it as AudioCraft's audio_write does (audio.normalize_audio): by default its peak to -1 dBFS, so
that no sample is clipped. The same --seed gives the same file bit for bit only with the same
model, torch version, device and number of threads (torch.get_num_threads(), printed at the end;
OMP_NUM_THREADS sets it): float sums are ordered by thread.

References:
1) MusicGen, AudioGen and classifier-free guidance: see model.py
   (official code: audiocraft/models/genmodel.py)
2) nanoGPT sample.py, github.com/karpathy/nanoGPT
"""

import argparse
import itertools
import math
import os
import re
import sys
import time
import warnings

import torch

from audio import STRATEGIES, load_audio, write_audio
from conditioners import load_melody
from model import load_model

parser = argparse.ArgumentParser(
    description="Generate audio from text with a trained text-to-audio LM.")
# Model (help strings end in "(default: %(default)s)": --help shows the defaults)
parser.add_argument("--model",
                    default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "checkpoints"),
                    help="export dir (lm.pt, codec.pt, tokenizer.model), an LM checkpoint, or a "
                         "dir of official AudioCraft files "
                         "(default: %(default)s, the default model)")
parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                    help="cpu, cuda or cuda:N (default: %(default)s, cuda when there is one)")
parser.add_argument("--bf16", action="store_true",
                    help="LM weights in bfloat16: faster on a CPU with bf16 instructions "
                         "(evaluation/bench_lm.py), a few tokens differ from fp32")
# Sampling: AudioCraft's defaults (top-k 250, cfg_coef 3), but temperature 0.9, not 1: at 1 the
# default model's knocks, footsteps and clock ticks come up to 1.5x as often as in real clips,
# at 0.9 within 25% of them (RESULTS.md, "LM: sampling temperature")
parser.add_argument("--prompt", action="append", default=[],
                    help="text prompt; repeat it for a batch")
parser.add_argument("--duration", type=float, default=5.0,
                    help="seconds of audio, --continuation included (past the model's max_duration "
                         "windows hop by its extend_stride) (default: %(default)s)")
parser.add_argument("--cfg-coef", type=float, default=3.0,
                    help="classifier-free guidance scale (1 = no guidance) (default: %(default)s)")
parser.add_argument("--top-k", type=int, default=250,
                    help="sample the top k codes (0 = all) (default: %(default)s)")
parser.add_argument("--top-p", type=float, default=0.0,
                    help="nucleus mass in [0, 1]; replaces top-k when > 0 (default: %(default)s)")
parser.add_argument("--temperature", type=float, default=0.9,
                    help="softmax temperature (0 = greedy) (default: %(default)s)")
parser.add_argument("--seed", type=int, default=0,
                    help="a seed reproduces a file bit for bit with the same model, torch version, "
                         "device and number of threads (printed at the end) (default: %(default)s)")
parser.add_argument("--melody", default=None,
                    help="audio whose chromagram the music follows (melody models only)")
parser.add_argument("--continuation", default=None,
                    help="audio to continue, shorter than --duration: its codes are the LM's "
                         "prompt (its last part, past the LM's window)")
# Output
parser.add_argument("--out", default=None,
                    help="output .wav (default: made from the prompt; numbered for several)")
parser.add_argument("--normalize", default="peak", choices=STRATEGIES,
                    help="peak at -1 dBFS, loudness at -14 LKFS, rms at -18 dBFS (then clamped), "
                         "clip: clamped at -1 dBFS (default: %(default)s, no sample clipped)")


def fail(msg):
    """One line on stderr, exit status 1, nothing written."""
    raise SystemExit(f"sample.py: error: {msg}")


parser.error = fail  # argparse's own errors too (a bad number, an unknown flag): one line, no usage


def slug(prompt):
    """A file name stem made from a prompt: "Dog bark, park!" -> "dog_bark_park"."""
    name = re.sub(r"[^a-z0-9]+", "_", prompt.lower()).strip("_")[:60]
    return name or "sample"


def output_paths(prompts, out):
    """One WAV per prompt: --out (out_0.wav, out_1.wav, ... for several prompts), or a name made
    from the prompt (numbered too when there are several)."""
    if out is None:
        stems = [slug(p) for p in prompts]
        ext = ".wav"
    else:
        stem, ext = os.path.splitext(out)
        if ext.lower() != ".wav":
            fail(f"--out {out!r} must end in .wav (16-bit WAV is written)")
        stems = [stem] * len(prompts)
    if len(prompts) == 1:
        paths = [stems[0] + ext]
    else:
        paths = [f"{stem}_{i}{ext}" for i, stem in enumerate(stems)]
    for p in paths:
        folder = os.path.dirname(os.path.abspath(p))
        if not os.path.isdir(folder):
            fail(f"--out: folder {folder} does not exist; create it first")
    return paths


def check_args(args):
    """Checks every input possible before the (slow) loading, --device and --model first
    -> the output paths."""
    try:
        device = torch.device(args.device)
    except RuntimeError:
        fail(f"--device {args.device!r} is not a device: use cpu, cuda or cuda:N")
    if device.type not in ("cpu", "cuda"):
        fail(f"--device {args.device}: only cpu and cuda are supported; use --device cpu")
    if device.type == "cuda" and not torch.cuda.is_available():
        fail(f"--device {args.device}: no CUDA device is available "
             f"(torch.cuda.is_available() is False); use --device cpu")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        n = torch.cuda.device_count()
        fail(f"--device {args.device}: this machine has {n} CUDA device(s), cuda:0 to cuda:{n - 1}")
    if not os.path.exists(args.model):
        fail(f"cannot load --model {args.model}: not found (an export folder of train_lm.py, an LM "
             f"checkpoint or a folder of AudioCraft files)")
    if not args.prompt:
        fail('give a text prompt: --prompt "dog bark park"')
    for p in args.prompt:
        if not p.strip():
            fail(f'--prompt {p!r} is empty; describe the sound, e.g. --prompt "dog bark park"')
    if not args.duration > 0 or math.isinf(args.duration):
        fail(f"--duration {args.duration} must be a positive number of seconds")
    if args.top_k < 0:
        fail(f"--top-k {args.top_k} must be >= 0 (0 = no top-k)")
    if not 0.0 <= args.top_p <= 1.0:
        fail(f"--top-p {args.top_p} must lie in [0, 1] (0 = off)")
    if not args.temperature >= 0:
        fail(f"--temperature {args.temperature} must be >= 0 (0 = greedy)")
    return output_paths(args.prompt, args.out)


def clock(seconds):
    """A duration as people read it: "42 s", "3.5 min", "1.2 h"."""
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def progress_line(B, duration, plan):
    """lm.generate's callback over the `plan` (LM.windows): one stderr line, rewritten in place,
    with the time spent and left."""
    window_steps = [w[3] for w in plan]
    before = list(itertools.accumulate(window_steps, initial=0))  # steps before each window
    n = before[-1]  # steps in all
    state = {"window": 0, "width": 0}  # the current window (from 1), the last line's length
    t0 = time.time()

    def progress(done, total):
        if done == 1:  # each window restarts at step 1
            state["window"] += 1
        i = state["window"]
        k = before[i - 1] + done  # steps done in all
        # on a terminal every step; otherwise (a log file) every 10 % and the last
        if not (sys.stderr.isatty() or k == n or k % max(1, n // 10) == 0):
            return
        spent = time.time() - t0
        left = spent / k * (n - k)  # the time per step so far, times the steps left
        where = f"window {i}/{len(plan)}, " if len(plan) > 1 else ""
        line = (f"generating {B} x {duration:g} s: {where}step {done}/{total} | "
                f"{clock(spent)} elapsed, ~{clock(left)} left")
        print("\r" + line.ljust(state["width"]), end="", file=sys.stderr, flush=True)
        state["width"] = len(line)
    return progress


@torch.no_grad()
def main(argv=None):
    args = parser.parse_args(argv)
    outs = check_args(args)
    t0 = time.time()
    try:
        model = load_model(args.model, args.device)
    except Exception as e:  # missing, corrupt or mismatched files: say which, no traceback
        reason = str(e).strip() or type(e).__name__
        fail(f"cannot load --model {args.model}: {reason.splitlines()[0]}")
    if args.bf16:
        # the condition is cast to it in lm.step_logits; CFG and sampling stay fp32
        model.lm.to(torch.bfloat16)
    if args.melody and model.melody is None:
        fail("--melody needs a melody model (MusicGen-melody, chroma conditioning); "
             "this model has none")
    codec = model.codec
    try:
        mel = None
        if args.melody:
            mel = load_melody(args.melody, codec.sample_rate)[0]  # [T]: mono at the codec's rate
        cont, frames = None, 0  # the audio prompt [C, T] and its length in codec frames
        if args.continuation:
            cont = load_audio(args.continuation, codec.sample_rate, codec.channels)
            frames = math.ceil(cont.shape[-1] / codec.hop_length)  # codec.encode's length
        if frames >= int(args.duration * model.lm.config.frame_rate):
            fail(f"--continuation is {cont.shape[-1] / codec.sample_rate:g} s, --duration "
                 f"{args.duration:g} s: ask for a duration longer than the audio prompt")
        plan = model.lm.windows(args.duration, frames)
        progress = progress_line(len(args.prompt), args.duration, plan)
        wav = model.generate(args.prompt, duration=args.duration, cfg_coef=args.cfg_coef,
                             top_k=args.top_k, top_p=args.top_p, temperature=args.temperature,
                             seed=args.seed, melody_wav=mel, continuation=cont,
                             callback=progress, clamp=False)  # [B, C, T], may overshoot [-1, 1]
        print(file=sys.stderr)
    except (ValueError, FileNotFoundError) as e:  # a prompt without words, an unreadable file
        fail(str(e).strip().splitlines()[0])
    for w, out in zip(wav, outs):
        write_audio(out, w, codec.sample_rate, args.normalize)
        print(f"wrote {out} ({w.shape[-1] / codec.sample_rate:.2f} s, {codec.sample_rate} Hz)")
    threads = torch.get_num_threads()  # part of what makes a seed reproducible (see --seed)
    plural = "s" if threads > 1 else ""
    print(f"{len(outs)} x {args.duration:g} s in {time.time() - t0:.1f} s on {args.device} "
          f"({threads} thread{plural})")
    return outs


def one_line_warning(msg, category, *args, **kwargs):
    """warnings.formatwarning for a command line: one line, no source."""
    return f"warning: {msg}\n"


if __name__ == "__main__":
    warnings.formatwarning = one_line_warning
    main()
