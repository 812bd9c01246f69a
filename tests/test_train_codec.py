"""
Tests for train_codec.py, losses.py and training.py (the Ctrl-C save, the shared data flags).
Run: python -m pytest -q tests/test_train_codec.py
"""

import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf
import torch

import data
import train_codec as tc
import training
from checkpoint import load_codec
from codec import PRESETS, Codec
from losses import (Balancer, MSSTFTDiscriminator, adversarial_loss, band_edges, band_levels,
                    discriminator_loss, feature_matching_loss, mel_distance, mel_filterbank,
                    multiscale_mel_loss, si_snr)

ROOT = Path(__file__).resolve().parents[1]

torch.set_num_threads(2)


def test_mel_filterbank_matches_librosa():
    librosa = pytest.importorskip("librosa")
    for sr, n_fft, n_mels, f_min in [(16000, 1024, 64, 64.0), (32000, 256, 64, 64.0), (24000, 512, 40, 0.0)]:
        ref = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=f_min, fmax=sr / 2, htk=True, norm=None)
        ours = mel_filterbank(sr, n_fft, n_mels, f_min)  # [F, n_mels]
        assert torch.allclose(ours.T, torch.from_numpy(ref).float(), atol=1e-5)


def test_spectral_losses_on_hand_checkable_cases():
    torch.manual_seed(0)
    x = torch.randn(2, 1, 4000)
    assert multiscale_mel_loss(x, x, 16000).item() == 0.0
    assert mel_distance(x, x, 16000).item() == 0.0
    assert multiscale_mel_loss(x, 0.5 * x, 16000).item() > 0
    # SI-SNR: scale-invariant, +inf-like for a perfect copy, 0 dB for equal signal and noise power
    assert si_snr(3 * x, x).min() > 60
    noise = torch.randn(2, 1, 4000)
    noise = noise - (noise * x).sum(-1, keepdim=True) / x.pow(2).sum(-1, keepdim=True) * x  # orthogonal
    noise = noise * x.norm(dim=-1, keepdim=True) / noise.norm(dim=-1, keepdim=True)
    assert torch.allclose(si_snr(x + noise, x), torch.zeros(2), atol=0.05)


def test_band_levels_measure_the_energy_kept_per_octave():
    assert band_edges(16000) == [0, 500, 1000, 2000, 4000, 8000.0]
    assert band_edges(24000) == [0, 500, 1000, 2000, 4000, 8000, 12000.0]
    t = torch.arange(16000) / 16000
    tones = torch.stack([torch.sin(2 * math.pi * f * t) for f in (250, 750, 1500, 3000, 6000)])  # one per band
    x = tones.sum(0).reshape(1, 1, -1)
    assert band_levels(x, x, 16000).abs().max() < 1e-4
    assert torch.allclose(band_levels(0.1 * x, x, 16000), torch.full((1, 5), -20.0), atol=1e-3)  # 20 log10(0.1)
    # a codec that keeps the tones below 2 kHz and halves the 3 kHz one, loses the 6 kHz one
    y = (tones[:3].sum(0) + 0.5 * tones[3]).reshape(1, 1, -1)
    levels = band_levels(y, x, 16000)[0]
    assert levels[:3].abs().max() < 0.1 and abs(levels[3] + 6.02) < 0.1 and levels[4] < -40


def test_gan_losses():
    real, fake = [torch.full((2, 1, 3, 3), 2.0)], [torch.full((2, 1, 3, 3), -2.0)]
    assert discriminator_loss(real, fake).item() == 0.0  # both beyond the hinge margin
    assert discriminator_loss(fake, real).item() == pytest.approx(6.0)  # relu(1+2) + relu(1+2)
    assert adversarial_loss(fake).item() == pytest.approx(2.0)
    fm = [[torch.ones(2, 3), torch.zeros(2, 3)]]
    assert feature_matching_loss(fm, [[torch.zeros(2, 3), torch.zeros(2, 3)]]).item() == pytest.approx(0.5)


def test_discriminator_shapes():
    disc = MSSTFTDiscriminator(filters=8)
    logits, fmaps = disc(torch.randn(2, 1, 8000))
    assert len(logits) == 5 and all(len(f) == 5 for f in fmaps)
    assert all(l.shape[:2] == (2, 1) for l in logits)


def test_balancer_gives_each_loss_its_weight_share():
    """Two losses with gradients of very different scales: after balancing, each contributes
    (w_i / sum w) of a unit-norm gradient, along its own direction."""
    y = torch.randn(4, 1, 100, requires_grad=True)
    a, b = torch.randn(4, 1, 100), torch.randn(4, 1, 100)
    losses = {"big": 1000 * (a * y).sum(), "small": 1e-3 * (b * y).sum()}
    balancer = Balancer({"big": 1.0, "small": 3.0})
    grad, norms = balancer.gradient(losses, y)
    # per-clip norm averaged over the batch is what gets normalised
    na = (1000 * a).flatten(1).norm(dim=1).mean()
    nb = (1e-3 * b).flatten(1).norm(dim=1).mean()
    expected = 0.25 * 1000 * a / na + 0.75 * 1e-3 * b / nb
    assert torch.allclose(grad, expected, rtol=1e-4, atol=1e-7)
    assert norms["big"] == pytest.approx(na.item(), rel=1e-5)


def test_a_few_steps_lower_the_reconstruction_loss():
    torch.manual_seed(0)
    t = torch.arange(3200) / 16000
    wav = torch.stack([0.5 * torch.sin(2 * torch.pi * f * t) for f in (220.0, 330.0)])[:, None]  # [2, 1, T]
    model = Codec(PRESETS["tiny"]).train()
    disc = MSSTFTDiscriminator(filters=8)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, betas=(0.5, 0.9), weight_decay=0.0)
    opt_d = torch.optim.AdamW(disc.parameters(), lr=1e-3, betas=(0.5, 0.9), weight_decay=0.0)
    balancer = Balancer({"l1": 0.1, "msspec": 2.0})  # the reconstruction losses only: fast to overfit
    run = tc.Run(model, disc, opt, opt_d, balancer)
    msspec = [tc.train_step(run, wav)["msspec"] for _ in range(15)]
    assert sum(msspec[-3:]) / 3 < 0.8 * sum(msspec[:3]) / 3, msspec


def run(args, **kwargs):
    return tc.main(tc.parser.parse_args(args))


def assert_same_weights(a, b):
    """Two codecs hold the same tensors under the same names, bit for bit."""
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


# the full EnCodec recipe (with the discriminator), shrunk
COMMON = ["--steps", "4", "--batch-size", "2", "--segment", "0.25", "--eval-every", "2", "--eval-clips", "2",
          "--disc-filters", "8", "--log-every", "1", "--w-adv", "4", "--w-feat", "4", "--w-l1", "0.1"]


def test_resume_is_exact(tmp_path):
    full = run(["--out-dir", str(tmp_path / "a"), "--export", str(tmp_path / "codec.pt")] + COMMON)
    run(["--out-dir", str(tmp_path / "b")] + COMMON[:1] + ["2"] + COMMON[2:])  # stop after step 2
    resumed = run(["--out-dir", str(tmp_path / "b"), "--resume"] + COMMON)
    assert_same_weights(full, resumed)
    # the checkpoint is a codec checkpoint for load_codec too, and samples were written
    codec = load_codec(tmp_path / "a" / "ckpt.pt")
    assert torch.equal(codec.quantizer.layers[0].embed, full.quantizer.layers[0].embed)
    assert (tmp_path / "a" / "samples" / "step000004_nq8.wav").exists()
    # the exported codec: weights only (fp16 when harmless), decodes as the trained one
    exported = load_codec(tmp_path / "codec.pt")
    codes = full.eval().encode(torch.randn(1, 1, 3200))
    assert torch.allclose(exported.decode(codes), full.decode(codes), atol=1e-3)
    assert (tmp_path / "codec.pt").stat().st_size < (tmp_path / "a" / "ckpt.pt").stat().st_size / 2
    assert len((tmp_path / "a" / "eval.tsv").read_text().splitlines()) == 2
    # eval.tsv: the resumed run has the rows of the full one; a fresh run in the same folder starts it over
    assert [r.split("\t")[0] for r in (tmp_path / "b" / "eval.tsv").read_text().splitlines()] == ["2", "4"]
    run(["--out-dir", str(tmp_path / "b")] + COMMON[:1] + ["2"] + COMMON[2:])
    assert [r.split("\t")[0] for r in (tmp_path / "b" / "eval.tsv").read_text().splitlines()] == ["2"]


def test_ctrl_c_saves_a_checkpoint_that_resumes_exactly(interrupted_run, tmp_path, capsys):
    """Ctrl-C at step 3 (between the checkpoints of --eval-every 4) lets step 3 finish (the SIGINT comes
    in mid-step: a KeyboardInterrupt there would leave the discriminator updated and the codec not), saves
    ckpt.pt in the periodic format (RNG states and balancer included) and exits with one line; --resume says where
    it starts and ends with the uninterrupted run's weights, bit for bit."""
    args = COMMON + ["--eval-every", "4"]  # the last one counts
    full = run(["--out-dir", str(tmp_path / "a")] + args)
    end = interrupted_run(tc, "train_step", 3, ["--out-dir", str(tmp_path / "b")] + args)
    ckpt = tmp_path / "b" / "ckpt.pt"
    assert isinstance(end, SystemExit) and str(end) == f"interrupted at step 3: saved {ckpt}; continue with --resume"
    saved, periodic = (torch.load(p, weights_only=True) for p in (ckpt, tmp_path / "a" / "ckpt.pt"))
    assert saved["step"] == 3 and saved.keys() == periodic.keys() and not (tmp_path / "b" / "eval.tsv").exists()
    capsys.readouterr()
    resumed = run(["--out-dir", str(tmp_path / "b"), "--resume"] + args)
    assert f"resumed from {ckpt} at step 3 (of 4)\n" in capsys.readouterr().out
    assert_same_weights(full, resumed)


def test_a_second_ctrl_c_quits_at_once(request):
    # Ctrl-C "as usual" is Python's KeyboardInterrupt; a shell that starts pytest in the background hands it SIGINT
    # ignored, so this test sets Python's usual handler and puts the inherited one back after
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
    request.addfinalizer(lambda: signal.signal(signal.SIGINT, inherited))
    previous = signal.getsignal(signal.SIGINT)
    with training.ctrl_c_ends_the_step() as pressed:
        signal.raise_signal(signal.SIGINT)  # the first: noted, nothing raised
        assert pressed
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is previous
    with training.ctrl_c_ends_the_step(enabled=False) as pressed:  # DDP: Ctrl-C as usual
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
    assert not pressed


def test_folder_data_holds_out_one_file_in_ten(tmp_path, monkeypatch):
    """--data: training crops come from 9 files of 10, the eval clips from the 10th (2 s crops,
    padded), the files shuffled by --seed first (data.holdout)."""
    for i in range(11):
        t = torch.arange(16000) / 16000
        sf.write(tmp_path / f"{i:02d}.wav", (0.3 * torch.sin(2 * torch.pi * 110 * (i + 1) * t)).numpy(), 16000)
    seen = []
    original = data.FolderDataset._load
    monkeypatch.setattr(data.FolderDataset, "_load", lambda self, i, rng=None: seen.append(
        (self.duration, os.path.basename(self.files[i][0]))) or original(self, i, rng))
    run(["--out-dir", str(tmp_path / "run"), "--data", str(tmp_path), "--steps", "2", "--batch-size", "2",
         "--segment", "0.25", "--eval-every", "2", "--eval-clips", "2", "--log-every", "1"])
    held = data.holdout([f"{i:02d}.wav" for i in range(11)], 0)["valid"]  # one file of 11
    assert {f for d, f in seen if d == 2.0} == set(held) and len(held) == 1
    assert held[0] not in {f for d, f in seen if d == 0.25}
    assert len({f for d, f in seen if d == 0.25}) > 1 and (tmp_path / "run" / "eval.tsv").exists()


def test_bad_arguments(tmp_path):
    with pytest.raises(SystemExit, match="unknown preset"):
        run(["--out-dir", str(tmp_path), "--preset", "huge"] + COMMON)
    with pytest.raises(SystemExit, match="no checkpoint"):
        run(["--out-dir", str(tmp_path / "none"), "--resume"] + COMMON)
    with pytest.raises(SystemExit, match="--init: codec checkpoint not found"):
        run(["--out-dir", str(tmp_path), "--init", str(tmp_path / "missing.pt")] + COMMON)
    with pytest.raises(SystemExit, match=r"^--data: no such folder or manifest: .*nope$"):
        run(["--out-dir", str(tmp_path), "--data", str(tmp_path / "nope")] + COMMON)
    with pytest.raises(SystemExit, match="^--sample-on-weight: the built-in data has no manifest"):
        run(["--out-dir", str(tmp_path), "--sample-on-weight"] + COMMON)


def test_data_flags_give_argparse_one_line(capsys):
    """The data flags are training.add_data_flags', the same for both trainers: a bad value is
    argparse's usage error, one line naming the flag and the fix."""
    for flag, value, error in (("--exclude-tags", "dog-bark", "is not words of letters and "
                                "digits: separate tags by commas, e.g. 'speech,music'"),
                               ("--min-duration", "0", "'0' is not a duration: give a number of "
                                "seconds > 0"), ("--max-duration", "soon", "'soon' is not a "
                                                 "duration")):
        with pytest.raises(SystemExit):
            tc.parser.parse_args([flag, value])
        assert error in capsys.readouterr().err.strip().splitlines()[-1]
    assert tc.parser.parse_args(["--exclude-tags", "Male speech,music"]).exclude_tags == (
        "male speech", "music")


def test_init_fine_tunes_a_trained_codec_and_eval_reports_bands(tmp_path, capsys):
    """--init: the discriminator phase starts from the shipped codec's weights (fp16 file, fp32 model), and its
    first evaluation, after 2 steps at lr 1e-6, is that codec's; the eval prints and logs the energy kept per band."""
    shipped = load_codec(ROOT / "checkpoints" / "codec.pt")
    model = run(["--out-dir", str(tmp_path), "--init", str(ROOT / "checkpoints" / "codec.pt"), "--lr", "1e-6"] + COMMON)
    assert model.config == shipped.config
    assert max((a - b.float()).abs().max().item() for a, b in zip(model.parameters(), shipped.parameters())) < 1e-3
    out = capsys.readouterr().out
    assert "codec from " in out and "energy kept per band (0/0.5/1/2/4/8 kHz), dB: 1 cb " in out
    row = (tmp_path / "eval.tsv").read_text().splitlines()[0].split("\t")
    n_q, si, mel, bands = row[2].split(":")
    assert n_q == "1" and len(bands.split(",")) == 5 and float(si) > 0  # a trained codec, not a random one
    init = ["--init", str(ROOT / "checkpoints" / "codec.pt")]  # --resume wins: the weights come from the run
    run(["--out-dir", str(tmp_path), *init, "--resume", "--lr", "1e-6"] + COMMON[:1] + ["6"] + COMMON[2:])
    assert f"codec resumed from {tmp_path}: " in capsys.readouterr().out


def test_ddp_two_cpu_processes_stay_in_sync(tmp_path):
    """torchrun with the gloo backend and 2 CPU processes; the script checks the replicas' weights
    against each other at every checkpoint and fails if they differ."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(ROOT / "train_codec.py"), "--out-dir", str(tmp_path), "--device", "cpu"] + COMMON
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.count("replicas in sync") == 2
    assert "2 process(es)" in out.stdout
