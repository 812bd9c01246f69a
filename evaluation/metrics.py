"""
What evaluation/eval_audio.py and its modes (eval_melody.py, eval_two_source.py,
eval_unknown_words.py) measure with: a small audio classifier trained on the built-in data's labels
(Classifier, get_classifier: cached under its settings), the Frechet distance of Gaussians fitted
to its embeddings (fad), the held-out prompt sets (eval_sets), one generated clip per prompt
(generate) or a clip through the codec (through_codec), and the share of clips the classifier
recognises as prompted (adherence). eval_audio.py's docstring tells how they make the evaluation.
An onset detector (onsets, event_density) counts the events of a clip.

References:
1) Frechet Audio Distance, Kilgour et al. 2019, arXiv:1812.08466 (Gaussians fitted to classifier
   embeddings, compared with the Frechet distance). Official code: google-research/google-research
   frechet_audio_distance/
2) The Frechet distance of two Gaussians: Dowson & Landau 1982, J. Multivariate Analysis 12(3);
   FID, Heusel et al. 2017, arXiv:1706.08500 (Tr (S1 S2)^(1/2) by a matrix square root)
3) PANNs, Kong et al. 2020, arXiv:1912.10211 (log-mel CNN audio taggers, pooling over time)
4) A Tutorial on Onset Detection in Music Signals, Bello et al. 2005, IEEE Trans. Speech and
   Audio Processing 13(5) (spectral flux, adaptive median threshold, peak picking)
5) Onset Detection Revisited, Dixon 2006, DAFx (half-wave rectified flux, local maximum and mean
   threshold, w = 3 frames)
6) Maximum Filter Vibrato Suppression for Onset Detection, Boeck & Widmer 2013, DAFx (SuperFlux:
   the previous frame max-filtered over frequency; log-filtered bands). Official code:
   CPJKU/SuperFlux SuperFlux.py
"""

import hashlib
import json
import math
import os
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

import audio
import data
import synth
from checkpoint import codec_hash, save_atomic
from losses import mel_filterbank, mel_spectrogram

SR = synth.SAMPLE_RATE  # the classifier's rate; generated audio at another rate is resampled
N_FFT, HOP, N_MELS, F_MIN = 1024, 256, 64, 30.0  # 64 ms windows, 16 ms hop: 188 frames for 3 s
HEADS = {"source": [None, *synth.SOURCES], "scene": [None, *synth.SCENES],
         "instrument": [None, *synth.INSTRUMENTS]}
# the clips' seeds, each + --seed: training, held-out accuracy, the prompt sets
TRAIN_SEED, HELD_OUT_SEED, EVAL_SEED = (1000, data.VALID_SEED_OFFSET + 1000,
                                        data.VALID_SEED_OFFSET + 2000)
VERSION = 1  # of the classifier's recipe: part of the cache key

# -----------------------------------------------------------------------------
# the classifier


def mel_power(wav):
    """wav [B, T] at 16 kHz -> power mel spectrogram [B, n_mels, frames] (losses.mel_spectrogram).
    """
    return mel_spectrogram(wav[:, None].float(), SR, N_FFT, HOP, N_MELS, F_MIN)


def to_features(mel):
    """Power mel [B, n_mels, frames] -> features: dB below the clip's loudest bin, floored at -80 dB
    (so the clip's level does not matter), scaled to [-1, 1]."""
    # <= 0 dB; a silent clip: -100
    db = 10 * torch.log10(mel / (mel.amax((1, 2), keepdim=True) + 1e-20) + 1e-10)
    return db.clamp(min=-80.0) / 40 + 1


def log_mel(wav):
    """wav [B, T] at 16 kHz -> features [B, n_mels, frames]."""
    return to_features(mel_power(wav))


class Classifier(nn.Module):
    """log-mel [B, n_mels, frames] -> 4 x (conv1d over time, batch norm, ReLU), frames / 4 -> mean
    over time = the embedding [B, width] -> a linear head per label type: {head: logits [B,
    len(HEADS[head])]}."""

    def __init__(self, n_mels=N_MELS, width=64, heads=None):
        super().__init__()
        layers, ch = [], n_mels
        for stride in (1, 2, 2, 1):  # receptive field 33 frames = 0.5 s
            layers += [nn.Conv1d(ch, width, 5, stride, padding=2), nn.BatchNorm1d(width), nn.ReLU()]
            ch = width
        self.convs = nn.Sequential(*layers)
        # eval_two_source's detector: {"present": SOURCES}, one sigmoid each
        heads = HEADS if heads is None else heads
        self.heads = nn.ModuleDict({h: nn.Linear(width, len(classes))
                                    for h, classes in heads.items()})

    def forward(self, feats):
        emb = self.convs(feats).mean(-1)  # [B, width]: the FAD embedding
        return emb, {h: head(emb) for h, head in self.heads.items()}


def targets(labels):
    """labels [N] (make_clip's dicts) -> {head: class index [N] long} (0 = none: a clip of the other
    kind)."""
    return {h: torch.tensor([classes.index(lab[h]) for lab in labels])
            for h, classes in HEADS.items()}


def clip_mels(n, seed, duration, codec=None, n_q=None, device="cpu", batch=64):
    """Power mels of make_clip(i, seed) for i < n, made 64 clips at a time: (mel [n, n_mels,
    frames], labels [n]). With a codec, the odd clips are its renderings (through_codec with n_q
    codebooks).
    """
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
    """wav [N, T] (or its power mel) -> (embeddings [N, width] float64, predicted class {head: [N]
    long}), eval mode."""
    model.eval()
    if mel is None:
        mel = torch.cat([mel_power(w) for w in wav.split(batch)])
    feats = to_features(mel)
    device = next(model.parameters()).device
    embs, preds = [], {h: [] for h in HEADS}
    for x in feats.split(batch):
        emb, logits = model(x.to(device))
        embs.append(emb.double().cpu())
        for h in HEADS:
            preds[h].append(logits[h].argmax(-1).cpu())
    return torch.cat(embs), {h: torch.cat(p) for h, p in preds.items()}


def accuracy(preds, labels):
    """Held-out accuracy of each head on the clips that have its label: {source: on sound clips,
    scene: on sound clips, instrument: on music clips, kind: sound/music right (each head's none
    where it should be)}."""
    y = targets(labels)
    out = {h: (preds[h] == y[h])[y[h] > 0].float().mean().item() for h in HEADS}
    kind = torch.stack([(preds[h] > 0) == (y[h] > 0) for h in HEADS]).all(0)  # [N]
    out["kind"] = kind.float().mean().item()
    return out


def fit(model, mels, loss_fn, s, device, log=print, name="classifier"):
    """Train model on power mels [N, n_mels, frames] for s["epochs"] epochs of batches of
    s["batch"], AdamW, cosine decay from s["lr"] to 0; loss_fn(logits, idx) -> the loss of the clips
    idx. The batches: a function of the seed."""
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
        log(f"{name}: epoch {epoch + 1}/{s['epochs']} | loss {loss_sum / per_epoch:.3f} | "
            f"{time.time() - t0:.0f} s")
    return model.eval()


def train_classifier(s, device, codec=None, log=print):
    """Train a Classifier with settings s (train_clips, epochs, width, duration, seed, batch, lr,
    n_q) on make_clip(i, TRAIN_SEED + seed), the odd clips through the codec if one is given: fit,
    the sum of the heads' cross-entropies -> (model, held-out accuracy {head: clean, head (codec):
    through the codec})."""
    t0 = time.time()
    mels, labels = clip_mels(s["train_clips"], TRAIN_SEED + s["seed"], s["duration"], codec,
                             s["n_q"], device)
    y = targets(labels)
    log(f"classifier: {len(mels)} clips of {s['duration']:g} s -> mel spectrograms "
        f"{tuple(mels.shape)} ({time.time() - t0:.0f} s)")
    torch.manual_seed(s["seed"])
    model = Classifier(N_MELS, s["width"]).to(device).train()
    loss_fn = lambda logits, idx: sum(  # noqa: E731
        F.cross_entropy(logits[h], y[h][idx].to(device)) for h in HEADS)
    fit(model, mels, loss_fn, s, device, log)
    mels, labels = clip_mels(s["held_out"], HELD_OUT_SEED + s["seed"], s["duration"], codec,
                             s["n_q"], device)
    preds = classify(model, mel=mels)[1]
    if codec is None:
        return model.eval(), accuracy(preds, labels)
    acc = accuracy({h: p[0::2] for h, p in preds.items()}, labels[0::2])  # the even clips: clean
    # the odd ones: through the codec
    acc_codec = accuracy({h: p[1::2] for h, p in preds.items()}, labels[1::2])
    return model.eval(), {**acc, **{f"{h} (codec)": a for h, a in acc_codec.items()}}


def get_classifier(s, out_dir, device, codec=None, log=print, name="classifier", heads=HEADS,
                   train=None):
    """The classifier of settings s (or another Classifier with these heads and this train(s,
    device, codec, log), e.g. eval_two_source's detector): out_dir/<name>_<hash of s>.pt if it is
    there, else trained and saved there -> (model in eval mode, its held-out accuracy)."""
    key = hashlib.sha256(json.dumps(dict(s, version=VERSION), sort_keys=True).encode())
    key = key.hexdigest()[:12]
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

# -----------------------------------------------------------------------------
# the Frechet distance [1, 2]


def gaussian(emb):
    """Embeddings [N, D] -> (mean [D], covariance [D, D]), float64, the unbiased covariance
    (numpy.cov, as FAD)."""
    emb = emb.double()
    d = emb - emb.mean(0)
    return emb.mean(0), d.T @ d / (len(emb) - 1)


def sqrtm_psd(m):
    """The square root of a symmetric positive semi-definite matrix, by eigendecomposition m = V
    diag(w) V^T -> V diag(sqrt(w)) V^T (round-off's small negative eigenvalues are taken as 0)."""
    w, v = torch.linalg.eigh(m)
    return (v * w.clamp(min=0).sqrt()) @ v.T


def frechet_distance(mu1, cov1, mu2, cov2):
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)). S1 S2 is not symmetric, but it is similar to
    the symmetric PSD S1^(1/2) S2 S1^(1/2) (conjugate by S1^(1/2)), so Tr (S1 S2)^(1/2) = sum
    sqrt(eigenvalues of the latter)."""
    mu1, cov1, mu2, cov2 = (torch.as_tensor(x, dtype=torch.float64) for x in (mu1, cov1, mu2, cov2))
    r1 = sqrtm_psd(cov1)
    m = r1 @ cov2 @ r1
    tr_sqrt = torch.linalg.eigvalsh((m + m.T) / 2).clamp(min=0).sqrt().sum()
    return ((mu1 - mu2).pow(2).sum() + cov1.trace() + cov2.trace() - 2 * tr_sqrt).item()


def fad(emb1, emb2):
    """Frechet distance between Gaussians fitted to two sets of embeddings [N1, D], [N2, D]."""
    return frechet_distance(*gaussian(emb1), *gaussian(emb2))

# -----------------------------------------------------------------------------
# prompts, real and generated clips


def prompt_labels():
    """The prompts' labels (source, scene, instrument): every plausible (source, scene) pair, then
    each instrument. The plausible scenes of a source are synth.SCENES_OF's (no knocking on the
    beach).
    """
    sfx = [(s, scene, None) for s in synth.SOURCES for scene in synth.SCENES_OF[s]]
    return sfx + [(None, None, i) for i in synth.INSTRUMENTS]


def eval_sets(n, seed, duration, max_scan=200_000):
    """For each prompt of prompt_labels(), 2n held-out clips with its labels, found by scanning
    make_clip(i, EVAL_SEED + seed, kind=...) from i = 0 -> [(prompt labels, [2n make_clip dicts])].
    """
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
    """eval_sets' output -> (set A: the first n clips of each prompt [P * n], their prompt labels [P
    * n] (source, scene, instrument), in A's order)."""
    return [c for _, clips in sets for c in clips[:n]], [p for p, _ in sets for _ in range(n)]


@torch.no_grad()
def token_counts(text, texts, batch=64):
    """How many positions each prompt fills in the model's text conditioner (normalised, tokenised,
    with eos): its mask [N, L] summed -> [N] ints."""
    return [n for k in range(0, len(texts), batch)
            for n in text(texts[k:k + batch])[1].sum(1).tolist()]


@torch.no_grad()
def generate(model, texts, lengths, duration, seed, sampling, batch=48, log=print):
    """One clip per text with TextToAudio.generate (sample.py's sampling; sampling: the keyword
    arguments that the flags set, sampling(args)): model = model.load_model's TextToAudio, texts
    [N], their lengths in text tokens [N] -> wav [N, T] at 16 kHz. An LM without
    cross_attention_mask attends to the zeroed positions of a padded prompt (as AudioCraft), so
    padding changes what it generates: there a batch holds prompts of one length only, so that
    each clip is conditioned as `sample.py --prompt TEXT` alone conditions it. Batches of at most
    `batch` prompts; batch j samples with seed 1000 * seed + j."""
    T, out, t0 = round(duration * SR), [None] * len(texts), time.time()
    if model.lm.config.cross_attention_mask:  # padding is masked: any prompts may share a batch
        lengths = [0] * len(texts)
    groups = [[i for i in range(len(texts)) if lengths[i] == n] for n in sorted(set(lengths))]
    # [[index into texts]]
    chunks = [g[k:k + batch] for g in groups for k in range(0, len(g), batch)]
    for j, chunk in enumerate(chunks):
        wav = model.generate([texts[i] for i in chunk], duration, seed=1000 * seed + j, **sampling)
        wav = audio.resample(wav.mean(1), model.codec.sample_rate, SR)  # [b, T'] (mono, 16 kHz)
        for i, w in zip(chunk, wav):
            out[i] = F.pad(w, (0, max(0, T - len(w))))[:T]
        log(f"generated {sum(w is not None for w in out)}/{len(texts)} clips "
            f"({time.time() - t0:.0f} s)")
    return torch.stack(out)


def sampling(args):
    """The flags' sampling settings -> TextToAudio.generate's keyword arguments."""
    return dict(cfg_coef=args.cfg_coef, temperature=args.temperature)


def generate_styles(model, tags, sentences, args):
    """One clip per prompt from its tags (seed: args.seed) and one from its sentence (args.seed +
    1), by generate with args.duration and sampling(args) -> (wav [N, T], wav [N, T]) at 16 kHz."""
    return tuple(generate(model, texts, token_counts(model.conditioner, texts), args.duration,
                          args.seed + k, sampling(args))
                 for k, texts in enumerate((tags, sentences)))


@torch.no_grad()
def through_codec(codec, n_q, wav, device, batch=16):
    """wav [N, T] at 16 kHz -> encoded with the codec's first n_q codebooks and decoded -> [N, T] at
    16 kHz."""
    out, T = [], wav.shape[-1]
    for w in wav.split(batch):
        # [b, C, T']
        x = audio.resample(w, SR, codec.sample_rate)[:, None].repeat(1, codec.channels, 1)
        y = codec.decode(codec.encode(x.to(device), n_q=n_q))  # [b, C, frames * hop]
        y = y.float().mean(1).clamp(-1, 1).cpu()  # [b, frames * hop]
        y = audio.resample(y, codec.sample_rate, SR)[:, :T]
        out.append(F.pad(y, (0, T - y.shape[-1])))
    return torch.cat(out)


def adherence(preds, prompts):
    """preds {head: [N]}, prompts [N] (source, scene, instrument) -> (what, scene): the share of
    clips whose prompted source (sound) or instrument (music) the classifier picks, and of sound
    clips whose prompted scene it picks."""
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

# -----------------------------------------------------------------------------
# the classifier of a model


def classifier_settings(args, codec=None, n_q=None):
    """What the classifier depends on (its cache key): the built-in data (synth.fingerprint), sizes,
    clip length, seed, batch, learning rate, and the codec (the hash of its weights,
    checkpoint.codec_hash) and number of codebooks its training clips pass through."""
    return dict(synth=synth.fingerprint(), train_clips=args.train_clips, epochs=args.epochs,
                width=args.width, duration=args.duration,
                seed=args.seed, batch=32, lr=3e-3, held_out=args.held_out,
                codec=None if codec is None else codec_hash(codec),
                n_q=None if codec is None else n_q)


def model_classifier(args, model):
    """1. of eval_audio.py's docstring: the classifier (cached) trained on clean clips and on their
       rendering by the model's
    codec (unless --clean-classifier), its held-out accuracy printed -> (classifier, its settings,
    accuracy)."""
    clf_codec = None if args.clean_classifier else model.codec
    settings = classifier_settings(args, clf_codec, model.lm.config.n_q)
    clf, acc = get_classifier(settings, args.out_dir, args.device, clf_codec)
    print("classifier held-out accuracy: "
          + ", ".join(f"{k} {100 * v:.0f}%" for k, v in acc.items()))
    return clf, settings, acc

# -----------------------------------------------------------------------------
# events: an onset detector [4, 5, 6]

# 32 ms Hann windows every 10 ms at 16 kHz (Bello [4] and Dixon [5]: 23-46 ms windows, ~10 ms
# hops): an event's rise spans ~3 frames, far fewer than the 10 between two counted events; a 64 ms
# window blurs a hi-hat into the snare before it
ONSET_FFT, ONSET_HOP = 512, 160
# 40 mel bands from 30 Hz (the classifier's F_MIN): a heel's thump below 1 kHz counts as much as a
# hi-hat's hiss above 6 kHz, as they would not on linear bins (90% of them above 1 kHz)
ONSET_BANDS = 40
# the levels: dB below the clip's loudest band, floored 50 dB down. The built-in clips put their
# ambience 20-30 dB under the events; below 50 dB lie reverb tails, codec hiss and the click of a
# drum sample's cut end, which a log spectrum would otherwise magnify into onsets
ONSET_FLOOR_DB = 50.0
# the previous frame is max-filtered over +-2 bands before the difference (SuperFlux [6]): a
# glide (a bark's 'woof' rises 0.7 octave in 50 ms) or the codec's smearing moves energy into a
# neighbouring band, which is no new event
ONSET_MAX_BANDS = 2
# peak picking, in frames of 10 ms: an onset is the largest flux within +-30 ms (Dixon's w = 3),
# rises DELTA dB above the median flux within +-100 ms, and comes MIN_GAP after the previous one.
# DELTA = 2.5 dB of the mean band: steady noise and tones stay under 1.2 dB above their median, the
# quietest events of the built-in clips (a distant first footstep, a hi-hat right after a snare:
# 4 of the 40 bands, over the snare's tail) rise 2-5 dB, most events 5-25 dB: some such hi-hats are
# missed. MIN_GAP = 100 ms: a footstep's heel and toe scuff (50-80 ms apart
# in sounds.footsteps) are one event, a door's knocks (at least 110 ms apart) are several
ONSET_PEAK, ONSET_MEDIAN, ONSET_DELTA_DB, ONSET_MIN_GAP = 3, 10, 2.5, 10


def onset_strength(wav):
    """wav [T] at 16 kHz -> the detection function [frames], frame i = samples [i hop, i hop +
    n_fft): the spectral flux of log band levels [4, 5], the mean over the 40 mel bands b of the
    half-wave rectified rise in dB
        flux(i) = mean_b max(0, L(b, i) - max_{|b' - b| <= 2} L(b', i - 1)),
    L = 10 log10(band power / the clip's loudest band power), floored at -50 dB (level-invariant:
    a clip and the same clip 40 dB quieter have the same flux). The frame before the first is the
    clip's background: each band's median over the first 210 ms, so a clip that starts on an event
    has an onset in frame 0, and one that starts on its steady ambience has none."""
    wav = F.pad(wav.float(), (0, max(0, ONSET_FFT - wav.shape[-1])))  # at least one frame
    spec = torch.stft(wav, ONSET_FFT, ONSET_HOP, window=torch.hann_window(ONSET_FFT),
                      center=False, return_complex=True).abs().pow(2)  # [F, frames]
    bands = mel_filterbank(SR, ONSET_FFT, ONSET_BANDS, F_MIN).T @ spec  # [bands, frames]
    db = 10 * torch.log10(bands / (bands.max() + 1e-20) + 1e-20)  # dB below the loudest band
    db = db.clamp(min=-ONSET_FLOOR_DB)
    background = db[:, :2 * ONSET_MEDIAN + 1].median(1, keepdim=True).values  # [bands, 1]
    prev = torch.cat([background, db[:, :-1]], 1)  # [bands, frames]: L(b, i - 1)
    k = 2 * ONSET_MAX_BANDS + 1
    prev = F.max_pool1d(prev.T[:, None], k, 1, ONSET_MAX_BANDS)[:, 0].T  # max over +-2 bands
    return (db - prev).clamp(min=0).mean(0)  # [frames] dB


def pick_peaks(flux):
    """The detection function [frames] -> onset frames [K] long, Bello et al. 2005 Sec. V [4] and
    Dixon 2006 Sec. 2.6 [5]: frame i is an onset if
        flux(i) = max flux over [i - 3, i + 3],
        flux(i) >= median flux over [i - 10, i + 10] + 2.5 dB (the windows cut at the clip's ends),
    and i is at least 10 frames after the previous onset (the earlier one of two close ones stays).
    """
    m, w = ONSET_MEDIAN, ONSET_PEAK
    local = F.pad(flux, (m, m), value=math.nan).unfold(0, 2 * m + 1, 1).nanmedian(1).values
    is_max = flux >= F.pad(flux, (w, w), value=-1.0).unfold(0, 2 * w + 1, 1).amax(1)
    out = []
    for i in ((flux >= local + ONSET_DELTA_DB) & is_max).nonzero()[:, 0].tolist():
        if not out or i - out[-1] >= ONSET_MIN_GAP:
            out.append(i)
    return torch.tensor(out, dtype=torch.long)


def onsets(wav, sample_rate=SR):
    """The onset times of one clip wav [T] (resampled to 16 kHz first) -> [K] seconds: the frames
    pick_peaks picks in onset_strength. An event first lifts the flux of the frame whose window
    holds it in its last quarter, where the Hann window passes 1/2, so a frame's onset time is its
    start + 3/4 window (on clicks: within 10 ms; an event in a clip's first 24 ms: at 24 ms)."""
    wav = torch.as_tensor(wav)
    if sample_rate != SR:
        wav = audio.resample(wav, sample_rate, SR)
    frames = pick_peaks(onset_strength(wav))
    return (frames * ONSET_HOP + 0.75 * ONSET_FFT) / SR


def onset_settings():
    """The onset detector's constants, for a results file (frames of 10 ms at 16 kHz)."""
    return dict(n_fft=ONSET_FFT, hop=ONSET_HOP, bands=ONSET_BANDS, floor_db=ONSET_FLOOR_DB,
                max_bands=ONSET_MAX_BANDS, peak=ONSET_PEAK, median=ONSET_MEDIAN,
                delta_db=ONSET_DELTA_DB, min_gap=ONSET_MIN_GAP)


def event_density(wavs, sample_rate=SR):
    """Events per clip: wavs [N, T] -> the number of onsets of each clip [N] long."""
    return torch.tensor([len(onsets(w, sample_rate)) for w in wavs], dtype=torch.long)
