"""
The README's picture: spectrograms of what the default model makes for a few prompts, one panel
each.

    python evaluation/spectrograms.py    # -> assets/spectrograms.png, about 10 s on one CPU thread

Deterministic: one thread, seed 0 (sample.py's default), so the same torch version draws the same
clips. Each panel is the log-magnitude STFT (dB below the clip's loudest bin) of a 5 s clip, 0 Hz to
the codec's Nyquist frequency.
"""

import argparse
import io
import os
import sys

import matplotlib
import torch
from PIL import Image

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from model import load_model  # noqa: E402

PROMPTS = ("dog bark park", "bird chirp beach", "thunder street", "happy piano slow")

parser = argparse.ArgumentParser(description="Spectrograms of the default model's clips for a few "
                                 "prompts.")
parser.add_argument("--model", default=os.path.join(ROOT, "checkpoints"),
                    help="what sample.py --model takes")
parser.add_argument("--out", default=os.path.join(ROOT, "assets", "spectrograms.png"),
                    help="the PNG written")
parser.add_argument("--duration", type=float, default=5.0, help="seconds per clip")


def log_spectrogram(wav, n_fft=512):
    """wav [T] -> dB [n_fft // 2 + 1, frames], 0 dB = the loudest bin, floored at -80 dB."""
    spec = torch.stft(wav, n_fft, hop_length=n_fft // 4, window=torch.hann_window(n_fft),
                      return_complex=True)
    db = 20 * torch.log10(spec.abs() + 1e-7)  # [F, frames]
    return (db - db.max()).clamp(min=-80)


if __name__ == "__main__":
    args = parser.parse_args()
    torch.set_num_threads(1)  # a different thread count rounds float sums differently: other clips
    model = load_model(args.model, "cpu")
    wav = model.generate(list(PROMPTS), args.duration, seed=0)  # [B, C, T]
    sr = model.codec.sample_rate
    fig, axes = plt.subplots(1, len(PROMPTS), figsize=(12, 2.8), sharey=True)
    for ax, prompt, clip in zip(axes, PROMPTS, wav):
        db = log_spectrogram(clip.mean(0))  # mono [F, frames]
        ax.imshow(db.numpy(), origin="lower", aspect="auto", cmap="magma",
                  extent=(0, args.duration, 0, sr / 2000))  # x: seconds, y: kHz
        ax.set_title(f'"{prompt}"', fontsize=10)
        ax.set_xlabel("seconds")
    axes[0].set_ylabel("kHz")
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    png = io.BytesIO()
    fig.savefig(png, dpi=80)
    # 64 colours instead of 24-bit RGB: a quarter of the bytes (~65 KB), no visible change; PIL
    # writes no version
    image = Image.open(png).convert("RGB").quantize(64, method=Image.Quantize.FASTOCTREE,
                                                    dither=Image.Dither.NONE)
    image.save(args.out, optimize=True)
    print(f"{args.out}: {os.path.getsize(args.out) // 1000} KB, prompts {', '.join(PROMPTS)}, "
          f"{sr} Hz")
