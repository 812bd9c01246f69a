"""
Objective evaluation of a text-to-audio model: prompt adherence and Frechet distance, measured by a small audio
classifier trained on the built-in data's labels. Not a test: a script that prints a markdown table (as bench_codec.py).

    python evaluation/eval_audio.py                    # the default model (checkpoints/): 36 prompts x 8 clips
                                                       # x 2 styles
    python evaluation/eval_audio.py --model runs/lm/export --seed 1 --n-per-prompt 16
    python evaluation/eval_audio.py --clean-classifier # a classifier that never heard the codec (see 1.)
    python evaluation/eval_audio.py --fast --model DIR --out-dir /tmp/e    # tiny sizes, ~30 s (the tests)
    python evaluation/eval_audio.py --melody --model runs/lm_melody/export # how well a melody model follows
                                                       # chroma (see eval_melody.py)
    python evaluation/eval_audio.py --two-source       # prompts naming two sources: does the clip hold both?
                                                       # (see eval_two_source.py)
    python evaluation/eval_audio.py --unknown-words    # prompts with words no caption holds: same sound?
                                                       # (see eval_unknown_words.py)

On 2 CPU cores the first run takes about 5 minutes: ~2.5 min for the classifier (cached: later runs with the same
settings and codec skip it), ~2 min for the 576 generated clips of 3 s with the tiny LM, the rest seconds.

1. The classifier (Classifier, a small log-mel CNN) has a head per label type: source (the 12 sound sources, or none),
   scene (4, or none), instrument (5, or none). "none" is the right answer for a clip of the other kind (a piano tune
   has no scene), so a generated piano tune for "dog bark park" is no dog, not a forced guess. Trained on built-in
   clips generated on the fly, every other one rendered by the model's codec (the LM's n_q codebooks): everything the
   LM makes comes out of that decoder, and a classifier that only heard clean clips takes the codec's hiss and smearing
   for other sounds (with the tiny codec it recognised 53% of real clips through the codec against 100% clean, so no LM
   could score above that). --clean-classifier trains on clean clips only: a yardstick independent of the codec.
   Deterministic under --seed, cached in out_dir/classifier_<hash of its settings and of the codec's weights>.pt.
2. The prompts: every plausible (source, scene) pair and every instrument. For each, 2 x n held-out clips with
   those labels are found by scanning synth.make_clip: the first n (set A) give the prompts, their tags
   ("dog bark park", "happy piano drums slow") and their sentences (the paraphrases, synth.py's templates), and
   are the "real" row; the other n (set R) are the reference of every Frechet distance.
3. The model (model.load_model) generates one clip per prompt of A from its tags and one from its sentence, each
   conditioned as `sample.py --prompt` alone conditions it (generate: sample.py's sampling and defaults).
4. Adherence: the share of clips for which the classifier picks the prompted source (sound prompts) or instrument
   (music prompts); the scene: the same over the sound prompts. Real clips (A) are the classifier's own accuracy;
   A through the model's codec (the LM's n_q codebooks) is the ceiling of the LM: what its tokens can hold.
5. The Frechet distance (frechet_distance) of Gaussians fitted to the embeddings of a set and of R (FAD's recipe [1]);
   the real row (A vs R) is the floor of a finite sample: FD is biased up for small sets, so compare rows of one n.

Deviation: AudioGen and MusicGen measure FAD with VGGish embeddings and adherence as a KL divergence of PaSST's
AudioSet labels [3]; both classifiers know real sounds. This one knows only the built-in data's labels, which is
all a model trained on that data can be asked for.

References:
1) Frechet Audio Distance, Kilgour et al. 2019, arXiv:1812.08466 (Gaussians fitted to classifier embeddings, compared
   with the Frechet distance). Official code: google-research/google-research frechet_audio_distance/
2) The Frechet distance of two Gaussians: Dowson & Landau 1982, J. Multivariate Analysis 12(3); FID, Heusel et al.
   2017, arXiv:1706.08500 (Tr (S1 S2)^(1/2) by a matrix square root)
3) AudioGen, Kreuk et al. 2022, arXiv:2209.15352 Sec. 4.1; MusicGen, Copet et al. 2023, arXiv:2306.05284 Sec. 4.1
   (FAD, KL, CLAP). Official code: audiocraft/metrics/fad.py, kld.py, clap_consistency.py
4) PANNs, Kong et al. 2020, arXiv:1912.10211 (log-mel CNN audio taggers, pooling over time)
"""

import argparse
import hashlib
import json
import math
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
import data  # noqa: E402
import synth  # noqa: E402
from checkpoint import codec_hash, save_atomic  # noqa: E402
from losses import mel_spectrogram  # noqa: E402
from model import load_model  # noqa: E402

parser = argparse.ArgumentParser(description="Prompt adherence and Frechet distance of a text-to-audio model, "
                                             "measured by a classifier trained on the built-in data.")
parser.add_argument("--model", default="checkpoints", help="what sample.py --model takes (default: the shipped model)")
parser.add_argument("--n-per-prompt", type=int, default=None, help="clips per prompt and style (default 8; --fast: 2)")
parser.add_argument("--duration", type=float, default=None, help="seconds per clip (default 3; --fast: 1)")
parser.add_argument("--seed", type=int, default=0, help="seeds the classifier, the held-out clips and sampling")
parser.add_argument("--cfg-coef", type=float, default=3.0, help="classifier-free guidance of the samples")
parser.add_argument("--out-dir", default="runs/eval", help="the classifier cache, results.json, table.md")
parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cpu or cuda")
parser.add_argument("--train-clips", type=int, default=None, help="classifier training clips (default 3000)")
parser.add_argument("--epochs", type=int, default=None, help="classifier epochs (default 12; the --two-source "
                    "detector: 36, --fast: 10 and 30)")
parser.add_argument("--width", type=int, default=None, help="classifier channels = embedding size (default 64)")
parser.add_argument("--clean-classifier", action="store_true", help="train the classifier on clean clips only "
                    "(a yardstick independent of the model's codec; default: half its clips are codec renderings)")
parser.add_argument("--fast", action="store_true", help="tiny sizes (tests): 1 s clips, a small classifier")
parser.add_argument("--two-source", action="store_true", help="instead: prompts naming two sources, and whether "
                    "the clips hold both (a detector per source trained on mixes, see eval_two_source.py)")
parser.add_argument("--pairs", type=int, default=None, help="--two-source: (source, source, scene) prompts "
                    "(default 12; --fast: 3)")
parser.add_argument("--melody", action="store_true", help="instead: melody following of a melody model (train_lm.py "
                    "--melody), 8 x n-per-prompt held-out music clips (see eval_melody.py)")
parser.add_argument("--unknown-words", action="store_true", help="instead: the prompts with words no caption holds "
                    "added ('scruffy dog bark furiously park'): do the clips keep the known words' sound? (see "
                    "eval_unknown_words.py)")

SR = synth.SAMPLE_RATE  # the classifier's rate; generated audio at another rate is resampled
N_FFT, HOP, N_MELS, F_MIN = 1024, 256, 64, 30.0  # 64 ms windows, 16 ms hop: 188 frames for 3 s
HEADS = {"source": [None, *synth.SOURCES], "scene": [None, *synth.SCENES], "instrument": [None, *synth.INSTRUMENTS]}
TRAIN_SEED, HELD_OUT_SEED, EVAL_SEED = 1000, data.VALID_SEED_OFFSET + 1000, data.VALID_SEED_OFFSET + 2000  # + --seed
DEFAULTS = dict(duration=3.0, n_per_prompt=8, train_clips=3000, epochs=12, width=64, held_out=400, pairs=12,
                detector_epochs=36)  # epochs are cheap (2.5 s), the clips dear (4 min through the codec, 1 thread)
FAST = dict(duration=1.0, n_per_prompt=2, train_clips=600, epochs=10, width=32, held_out=200, pairs=3,
            detector_epochs=30)
VERSION = 1  # of the classifier's recipe: part of the cache key

# ----------------------------------------------------------------------------- the classifier


def mel_power(wav):
    """wav [B, T] at 16 kHz -> power mel spectrogram [B, n_mels, frames] (losses.mel_spectrogram)."""
    return mel_spectrogram(wav[:, None].float(), SR, N_FFT, HOP, N_MELS, F_MIN)


def to_features(mel):
    """Power mel [B, n_mels, frames] -> features: dB below the clip's loudest bin, floored at -80 dB (so the clip's
    level does not matter), scaled to [-1, 1]."""
    db = 10 * torch.log10(mel / (mel.amax((1, 2), keepdim=True) + 1e-20) + 1e-10)  # <= 0 dB; a silent clip: -100
    return db.clamp(min=-80.0) / 40 + 1


def log_mel(wav):
    """wav [B, T] at 16 kHz -> features [B, n_mels, frames]."""
    return to_features(mel_power(wav))


class Classifier(nn.Module):
    """log-mel [B, n_mels, frames] -> 4 x (conv1d over time, batch norm, ReLU), frames / 4 -> mean over time
    = the embedding [B, width] -> a linear head per label type: {head: logits [B, len(HEADS[head])]}."""

    def __init__(self, n_mels=N_MELS, width=64, heads=None):
        super().__init__()
        layers, ch = [], n_mels
        for stride in (1, 2, 2, 1):  # receptive field 33 frames = 0.5 s
            layers += [nn.Conv1d(ch, width, 5, stride, padding=2), nn.BatchNorm1d(width), nn.ReLU()]
            ch = width
        self.convs = nn.Sequential(*layers)
        heads = HEADS if heads is None else heads  # eval_two_source's detector: {"present": SOURCES}, one sigmoid each
        self.heads = nn.ModuleDict({h: nn.Linear(width, len(classes)) for h, classes in heads.items()})

    def forward(self, feats):
        emb = self.convs(feats).mean(-1)  # [B, width]: the FAD embedding
        return emb, {h: head(emb) for h, head in self.heads.items()}


def targets(labels):
    """labels [N] (make_clip's dicts) -> {head: class index [N] long} (0 = none: a clip of the other kind)."""
    return {h: torch.tensor([classes.index(lab[h]) for lab in labels]) for h, classes in HEADS.items()}


def clip_mels(n, seed, duration, codec=None, n_q=None, device="cpu", batch=64):
    """Power mels of make_clip(i, seed) for i < n, made 64 clips at a time: (mel [n, n_mels, frames], labels [n]).
    With a codec, the odd clips are its renderings (through_codec with n_q codebooks)."""
    feats, labels = [], []
    for i in range(0, n, batch):
        clips = [synth.make_clip(j, seed, duration) for j in range(i, min(n, i + batch))]
        wav = torch.stack([torch.from_numpy(c["wav"]) for c in clips])  # [b, T]
        if codec is not None:
            odd = [k for k in range(len(clips)) if (i + k) % 2]
            wav[odd] = through_codec(codec, n_q, wav[odd], device)
        feats.append(mel_power(wav))
        labels += [c["labels"] for c in clips]
    return torch.cat(feats), labels


@torch.no_grad()
def classify(model, wav=None, mel=None, batch=64):
    """wav [N, T] (or its power mel) -> (embeddings [N, width] float64, predicted class {head: [N] long}), eval mode."""
    model.eval()
    feats = to_features(mel if mel is not None else torch.cat([mel_power(w) for w in wav.split(batch)]))
    device = next(model.parameters()).device
    embs, preds = [], {h: [] for h in HEADS}
    for x in feats.split(batch):
        emb, logits = model(x.to(device))
        embs.append(emb.double().cpu())
        for h in HEADS:
            preds[h].append(logits[h].argmax(-1).cpu())
    return torch.cat(embs), {h: torch.cat(p) for h, p in preds.items()}


def accuracy(preds, labels):
    """Held-out accuracy of each head on the clips that have its label: {source: on sound clips, scene: on sound
    clips, instrument: on music clips, kind: sound/music right (each head's none where it should be)}."""
    y = targets(labels)
    out = {h: (preds[h] == y[h])[y[h] > 0].float().mean().item() for h in HEADS}
    out["kind"] = torch.stack([(preds[h] > 0) == (y[h] > 0) for h in HEADS]).all(0).float().mean().item()
    return out


def fit(model, mels, loss_fn, s, device, log=print, name="classifier"):
    """Train model on power mels [N, n_mels, frames] for s["epochs"] epochs of batches of s["batch"], AdamW, cosine
    decay from s["lr"] to 0; loss_fn(logits, idx) -> the loss of the clips idx. The batches: a function of the seed."""
    t0, opt = time.time(), torch.optim.AdamW(model.parameters(), lr=s["lr"], weight_decay=0.01)
    g = torch.Generator().manual_seed(s["seed"])  # the batches: a function of the seed only
    per_epoch = math.ceil(len(mels) / s["batch"])
    total, step = s["epochs"] * per_epoch, 0
    for epoch in range(s["epochs"]):
        perm, loss_sum = torch.randperm(len(mels), generator=g), 0.0
        for idx in perm.split(s["batch"]):
            for group in opt.param_groups:  # cosine from lr to 0
                group["lr"] = 0.5 * s["lr"] * (1 + math.cos(math.pi * step / total))
            _, logits = model(to_features(mels[idx]).to(device))
            loss = loss_fn(logits, idx)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum, step = loss_sum + loss.item(), step + 1
        log(f"{name}: epoch {epoch + 1}/{s['epochs']} | loss {loss_sum / per_epoch:.3f} | {time.time() - t0:.0f} s")
    return model.eval()


def train_classifier(s, device, codec=None, log=print):
    """Train a Classifier with settings s (train_clips, epochs, width, duration, seed, batch, lr, n_q) on
    make_clip(i, TRAIN_SEED + seed), the odd clips through the codec if one is given: fit, the sum of the heads'
    cross-entropies -> (model, held-out accuracy {head: clean, head (codec): through the codec})."""
    t0 = time.time()
    mels, labels = clip_mels(s["train_clips"], TRAIN_SEED + s["seed"], s["duration"], codec, s["n_q"], device)
    y = targets(labels)
    log(f"classifier: {len(mels)} clips of {s['duration']:g} s -> mel spectrograms {tuple(mels.shape)} "
        f"({time.time() - t0:.0f} s)")
    torch.manual_seed(s["seed"])
    model = Classifier(N_MELS, s["width"]).to(device).train()
    loss_fn = lambda logits, idx: sum(F.cross_entropy(logits[h], y[h][idx].to(device)) for h in HEADS)  # noqa: E731
    fit(model, mels, loss_fn, s, device, log)
    mels, labels = clip_mels(s["held_out"], HELD_OUT_SEED + s["seed"], s["duration"], codec, s["n_q"], device)
    preds = classify(model, mel=mels)[1]
    if codec is None:
        return model.eval(), accuracy(preds, labels)
    acc = accuracy({h: p[0::2] for h, p in preds.items()}, labels[0::2])  # the even clips: clean
    acc_codec = accuracy({h: p[1::2] for h, p in preds.items()}, labels[1::2])  # the odd ones: through the codec
    return model.eval(), {**acc, **{f"{h} (codec)": a for h, a in acc_codec.items()}}


def get_classifier(s, out_dir, device, codec=None, log=print, name="classifier", heads=HEADS, train=None):
    """The classifier of settings s (or another Classifier with these heads and this train(s, device, codec, log),
    e.g. eval_two_source's detector): out_dir/<name>_<hash of s>.pt if it is there, else trained and saved there ->
    (model in eval mode, its held-out accuracy)."""
    key = hashlib.sha256(json.dumps(dict(s, version=VERSION), sort_keys=True).encode()).hexdigest()[:12]
    path = os.path.join(out_dir, f"{name}_{key}.pt")
    if os.path.isfile(path):
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        model = Classifier(N_MELS, s["width"], heads)
        model.load_state_dict(ckpt["model"])
        log(f"{name}: reusing {path}")
        return model.to(device).eval(), ckpt["accuracy"]
    model, acc = (train or train_classifier)(s, device, codec, log)
    os.makedirs(out_dir, exist_ok=True)
    save_atomic(dict(settings=s, model=model.state_dict(), accuracy=acc), path)
    log(f"{name}: saved {path}")
    return model, acc

# ----------------------------------------------------------------------------- the Frechet distance [1, 2]


def gaussian(emb):
    """Embeddings [N, D] -> (mean [D], covariance [D, D]), float64, the unbiased covariance (numpy.cov, as FAD)."""
    emb = emb.double()
    d = emb - emb.mean(0)
    return emb.mean(0), d.T @ d / (len(emb) - 1)


def sqrtm_psd(m):
    """The square root of a symmetric positive semi-definite matrix, by eigendecomposition m = V diag(w) V^T ->
    V diag(sqrt(w)) V^T (round-off's small negative eigenvalues are taken as 0)."""
    w, v = torch.linalg.eigh(m)
    return (v * w.clamp(min=0).sqrt()) @ v.T


def frechet_distance(mu1, cov1, mu2, cov2):
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)). S1 S2 is not symmetric, but it is similar to the symmetric
    PSD S1^(1/2) S2 S1^(1/2) (conjugate by S1^(1/2)), so Tr (S1 S2)^(1/2) = sum sqrt(eigenvalues of the latter)."""
    mu1, cov1, mu2, cov2 = (torch.as_tensor(x, dtype=torch.float64) for x in (mu1, cov1, mu2, cov2))
    r1 = sqrtm_psd(cov1)
    m = r1 @ cov2 @ r1
    tr_sqrt = torch.linalg.eigvalsh((m + m.T) / 2).clamp(min=0).sqrt().sum()
    return ((mu1 - mu2).pow(2).sum() + cov1.trace() + cov2.trace() - 2 * tr_sqrt).item()


def fad(emb1, emb2):
    """Frechet distance between Gaussians fitted to two sets of embeddings [N1, D], [N2, D]."""
    return frechet_distance(*gaussian(emb1), *gaussian(emb2))

# ----------------------------------------------------------------------------- prompts, real and generated clips


def prompt_labels():
    """The prompts' labels (source, scene, instrument): every plausible (source, scene) pair, then each instrument.
    The plausible scenes of a source are synth.SCENES_OF's (no knocking on the beach)."""
    sfx = [(s, scene, None) for s in synth.SOURCES for scene in synth.SCENES_OF[s]]
    return sfx + [(None, None, i) for i in synth.INSTRUMENTS]


def eval_sets(n, seed, duration, max_scan=200_000):
    """For each prompt of prompt_labels(), 2n held-out clips with its labels, found by scanning make_clip(i,
    EVAL_SEED + seed, kind=...) from i = 0 -> [(prompt labels, [2n make_clip dicts])]."""
    found = {p: [] for p in prompt_labels()}
    for kind in ("sfx", "music"):
        todo, i = [p for p in found if (p[2] is None) == (kind == "sfx")], 0
        while any(len(found[p]) < 2 * n for p in todo):
            if i == max_scan:
                raise RuntimeError(f"no {2 * n} {kind} clips of each prompt in {max_scan} clips")
            c = synth.make_clip(i, EVAL_SEED + seed, duration, kind=kind)
            p = (c["labels"]["source"], c["labels"]["scene"], c["labels"]["instrument"])
            if p in found and len(found[p]) < 2 * n:
                found[p].append(c)
            i += 1
    return list(found.items())


def set_a(sets, n):
    """eval_sets' output -> (set A: the first n clips of each prompt [P * n], their prompt labels [P * n] (source,
    scene, instrument), in A's order)."""
    return [c for _, clips in sets for c in clips[:n]], [p for p, _ in sets for _ in range(n)]


@torch.no_grad()
def token_counts(text, texts, batch=64):
    """How many positions each prompt fills in the model's text conditioner (normalised, tokenised, with eos): its
    mask [N, L] summed -> [N] ints."""
    return [n for k in range(0, len(texts), batch) for n in text(texts[k:k + batch])[1].sum(1).tolist()]


@torch.no_grad()
def generate(model, texts, lengths, duration, seed, cfg_coef, batch=48, log=print):
    """One clip per text with TextToAudio.generate (sample.py's sampling and defaults, cfg_coef from the flags): model =
    model.load_model's TextToAudio, texts [N], their lengths in text tokens [N] -> wav [N, T] at 16 kHz. An LM without
    cross_attention_mask attends to the zeroed positions of a padded prompt (as AudioCraft), so padding changes what it
    generates: there a batch holds prompts of one length only, so that each clip is conditioned as `sample.py --prompt
    TEXT` alone conditions it. Batches of at most `batch` prompts; batch j samples with seed 1000 * seed + j."""
    T, out, t0 = round(duration * SR), [None] * len(texts), time.time()
    if model.lm.config.cross_attention_mask:  # padding is masked: any prompts may share a batch
        lengths = [0] * len(texts)
    groups = [[i for i in range(len(texts)) if lengths[i] == n] for n in sorted(set(lengths))]
    chunks = [g[k:k + batch] for g in groups for k in range(0, len(g), batch)]  # [[index into texts]]
    for j, chunk in enumerate(chunks):
        wav = model.generate([texts[i] for i in chunk], duration, cfg_coef, seed=1000 * seed + j)
        wav = data.resample(wav.mean(1), model.codec.sample_rate, SR)  # [b, T'] (mono, 16 kHz)
        for i, w in zip(chunk, wav):
            out[i] = F.pad(w, (0, max(0, T - len(w))))[:T]
        log(f"generated {sum(w is not None for w in out)}/{len(texts)} clips ({time.time() - t0:.0f} s)")
    return torch.stack(out)


@torch.no_grad()
def through_codec(codec, n_q, wav, device, batch=16):
    """wav [N, T] at 16 kHz -> encoded with the codec's first n_q codebooks and decoded -> [N, T] at 16 kHz."""
    out, T = [], wav.shape[-1]
    for w in wav.split(batch):
        x = data.resample(w, SR, codec.sample_rate)[:, None].repeat(1, codec.channels, 1)  # [b, C, T']
        y = codec.decode(codec.encode(x.to(device), n_q=n_q)).float().mean(1).clamp(-1, 1).cpu()  # [b, frames*hop]
        y = data.resample(y, codec.sample_rate, SR)[:, :T]
        out.append(F.pad(y, (0, T - y.shape[-1])))
    return torch.cat(out)


def adherence(preds, prompts):
    """preds {head: [N]}, prompts [N] (source, scene, instrument) -> (what, scene): the share of clips whose prompted
    source (sound) or instrument (music) the classifier picks, and of sound clips whose prompted scene it picks."""
    what, scene = [], []
    for i, (src, scn, instr) in enumerate(prompts):
        if src is not None:
            what.append(preds["source"][i].item() == HEADS["source"].index(src))
            scene.append(preds["scene"][i].item() == HEADS["scene"].index(scn))
        else:
            what.append(preds["instrument"][i].item() == HEADS["instrument"].index(instr))
    return sum(what) / len(what), sum(scene) / max(1, len(scene))


def per_class(preds, prompts):
    """'dog bark 3/4, ...': adherence (source or instrument) per prompted class."""
    hits = {}
    for i, (src, _, instr) in enumerate(prompts):
        head, name = ("source", src) if src is not None else ("instrument", instr)
        h = hits.setdefault(name, [0, 0])
        h[0] += preds[head][i].item() == HEADS[head].index(name)
        h[1] += 1
    return ", ".join(f"{k} {a}/{b}" for k, (a, b) in hits.items())

# ----------------------------------------------------------------------------- the evaluation


def table(rows):
    """Markdown table of rows [(name, n, (what, scene) tags, (what, scene) paraphrases, FD tags, FD paraphrases)]."""
    pct = lambda x: f"{100 * x:.0f}%"  # noqa: E731
    lines = ["| clips | n | source/instrument, tags | scene, tags | source/instrument, paraphrases | "
             "scene, paraphrases | FD, tags | FD, paraphrases |", "|---|---|---|---|---|---|---|---|"]
    for name, n, (wt, st), (wp, sp), ft, fp in rows:
        lines.append(f"| {name} | {n} | {pct(wt)} | {pct(st)} | {pct(wp)} | {pct(sp)} | {ft:.2f} | {fp:.2f} |")
    return "\n".join(lines)


def parse_args(argv=None):
    """The flags, with the sizes --fast or the defaults give to those left unset; bad values: a one-line error."""
    args = parser.parse_args(argv)
    sizes = FAST if args.fast else DEFAULTS
    for k in ("duration", "n_per_prompt", "train_clips", "epochs", "width", "pairs"):
        if getattr(args, k) is None:
            setattr(args, k, sizes["detector_epochs" if k == "epochs" and args.two_source else k])
    args.held_out = sizes["held_out"]
    if args.n_per_prompt < 2 or not 0 < args.duration < math.inf or min(args.train_clips, args.epochs, args.width,
                                                                         args.pairs) < 1:
        raise SystemExit("eval_audio.py: error: --n-per-prompt must be >= 2 (a covariance needs 2 clips), "
                         "--duration, --train-clips, --epochs, --width and --pairs > 0")
    if not 0 <= args.seed < 2**30:  # the clip seeds are TRAIN_SEED + seed etc., below data's 2**31 split offset
        raise SystemExit(f"eval_audio.py: error: --seed {args.seed} must be in [0, 2**30)")
    return args


def classifier_settings(args, codec=None, n_q=None):
    """What the classifier depends on (its cache key): sizes, clip length, seed, batch, learning rate, and the codec
    (the hash of its weights, checkpoint.codec_hash) and number of codebooks its training clips pass through."""
    return dict(train_clips=args.train_clips, epochs=args.epochs, width=args.width, duration=args.duration,
                seed=args.seed, batch=32, lr=3e-3, held_out=args.held_out,
                codec=None if codec is None else codec_hash(codec), n_q=None if codec is None else n_q)


def load(args):
    """--model -> the frozen TextToAudio (model.load_model) on --device, or a one-line error."""
    try:
        return load_model(args.model, args.device)
    except Exception as e:
        raise SystemExit(f"eval_audio.py: error: cannot load --model {args.model}: "
                         f"{(str(e).strip() or type(e).__name__).splitlines()[0]}") from None


def model_classifier(args, model):
    """1. of the file docstring: the classifier (cached) trained on clean clips and on their rendering by the model's
    codec (unless --clean-classifier), its held-out accuracy printed -> (classifier, its settings, accuracy)."""
    clf_codec = None if args.clean_classifier else model.codec
    settings = classifier_settings(args, clf_codec, model.lm.config.n_q)
    clf, acc = get_classifier(settings, args.out_dir, args.device, clf_codec)
    print("classifier held-out accuracy: " + ", ".join(f"{k} {100 * v:.0f}%" for k, v in acc.items()))
    return clf, settings, acc


def compare(args, model, clf):
    """Steps 2 to 4 of the file docstring, printed -> the table's rows (see table)."""
    # 2. the prompts and the real clips: set A (prompts, the real row), set R (the reference)
    n, n_q = args.n_per_prompt, model.lm.config.n_q
    sets = eval_sets(n, args.seed, args.duration)
    A, prompts = set_a(sets, n)
    R = [c for _, clips in sets for c in clips[n:]]
    tags, sentences = [c["tags"] for c in A], [c["sentence"] for c in A]
    wav_a, wav_r = (torch.stack([torch.from_numpy(c["wav"]) for c in s]) for s in (A, R))  # [P * n, T]
    print(f"{len(sets)} prompts x {n} clips of {args.duration:g} s, e.g. {tags[0]!r} / {sentences[0]!r}")
    # 3. generated clips (a melody model gets the null melody), and set A through the codec
    gen_t = generate(model, tags, token_counts(model.conditioner, tags), args.duration, args.seed, args.cfg_coef)
    gen_p = generate(model, sentences, token_counts(model.conditioner, sentences), args.duration, args.seed + 1,
                     args.cfg_coef)
    wav_c = through_codec(model.codec, n_q, wav_a, args.device)
    # 4. classify and compare: adherence per caption style, Frechet distance to R
    (emb_r, _), (emb_a, pred_a), (emb_c, pred_c), (emb_t, pred_t), (emb_p, pred_p) = (
        classify(clf, w) for w in (wav_r, wav_a, wav_c, gen_t, gen_p))
    real, cod = adherence(pred_a, prompts), adherence(pred_c, prompts)
    fd_a, fd_c = fad(emb_a, emb_r), fad(emb_c, emb_r)
    rows = [("generated", len(A), adherence(pred_t, prompts), adherence(pred_p, prompts), fad(emb_t, emb_r),
             fad(emb_p, emb_r)),
            ("real", len(A), real, real, fd_a, fd_a),
            (f"real through the codec ({n_q} codebooks)", len(A), cod, cod, fd_c, fd_c)]
    print(f"\nmodel {args.model}, {len(sets)} prompts x {n}, {args.duration:g} s, seed {args.seed}, cfg "
          f"{args.cfg_coef:g}; FD to {len(R)} other real clips of the same prompts\n")
    print(table(rows))
    print(f"\nper class, generated from tags: {per_class(pred_t, prompts)}")
    print(f"per class, generated from paraphrases: {per_class(pred_p, prompts)}")
    return rows


def main(argv=None):
    args, t0 = parse_args(argv), time.time()
    model = load(args)  # the model first: a missing one is an error now, not after training the classifier
    if args.melody:
        import eval_melody  # its own file: chroma agreement with the reference melody
        return eval_melody.main_melody(args, model, t0)
    if args.two_source:
        import eval_two_source  # its own file: the detector, the prompts, the table
        return eval_two_source.main_two_source(args, model, t0)
    if args.unknown_words:
        import eval_unknown_words  # its own file: the invented words, the prompts with them, the table
        return eval_unknown_words.main_unknown_words(args, model, t0)
    clf, settings, acc = model_classifier(args, model)  # 1.
    rows = compare(args, model, clf)  # 2. to 4.
    results = dict(model=args.model, n_per_prompt=args.n_per_prompt, duration=args.duration, seed=args.seed,
                   cfg_coef=args.cfg_coef, classifier=dict(settings, accuracy=acc),
                   rows=[dict(clips=r[0], n=r[1], tags=dict(what=r[2][0], scene=r[2][1]),
                              paraphrases=dict(what=r[3][0], scene=r[3][1]), fd_tags=r[4], fd_paraphrases=r[5])
                         for r in rows])
    os.makedirs(args.out_dir, exist_ok=True)
    with open(os.path.join(args.out_dir, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    with open(os.path.join(args.out_dir, "table.md"), "w") as f:
        f.write(table(rows) + "\n")
    print(f"\nwrote {args.out_dir}/results.json and table.md in {time.time() - t0:.0f} s")
    return results


if __name__ == "__main__":
    main()
