"""
EnCodec's training objectives and quality metrics
(the codec itself is codec.py, its training loop train_codec.py).

    multiscale_mel_loss(x, y)        reconstruction in the frequency domain, 5 scales (Sec. 3.4)
    MSSTFTDiscriminator              the multi-scale STFT discriminator (Sec. 3.4)
    discriminator_loss, adversarial_loss, feature_matching_loss     hinge GAN + feature matching
    Balancer                         weights the losses' gradients, not the losses (Sec. 3.4)
    si_snr, mel_distance             the evaluation metrics

The generator loss is a weighted mix of time-domain L1, the multi-scale mel loss, the adversarial
loss and the feature-matching loss, weighted not on the losses but on their gradients with respect
to the decoded audio (Balancer), so a loss of a larger scale cannot drown the others.

References:
1) EnCodec, Sec. 3.4 (losses, discriminator, balancer): https://arxiv.org/abs/2210.13438
   official code: facebookresearch/audiocraft losses/balancer.py, losses/specloss.py,
   adversarial/losses.py, adversarial/discriminators/msstftd.py
2) Hinge GAN loss: https://arxiv.org/abs/1705.02894
   feature matching: MelGAN https://arxiv.org/abs/1910.06711
3) SI-SNR: Le Roux et al., "SDR - half-baked or well done?", https://arxiv.org/abs/1811.02508
"""

import math
from functools import lru_cache

import torch
import torch.nn as nn
import torch.nn.functional as F

# -----------------------------------------------------------------------------
# spectrogram losses and metrics


@lru_cache(maxsize=None)
def mel_filterbank(sample_rate, n_fft, n_mels, f_min, f_max=None):
    """Triangular HTK-mel filters [n_fft // 2 + 1, n_mels], unnormalised (torchaudio's default,
    which AudioCraft's mel losses use): mel(f) = 2595 log10(1 + f / 700)."""
    f_max = f_max or sample_rate / 2
    mel_min = 2595.0 * math.log10(1.0 + f_min / 700.0)
    mel_max = 2595.0 * math.log10(1.0 + f_max / 700.0)
    freqs = torch.linspace(0, sample_rate // 2, n_fft // 2 + 1, dtype=torch.float64)  # FFT bins
    mels = torch.linspace(mel_min, mel_max, n_mels + 2, dtype=torch.float64)  # evenly spaced
    f_pts = 700.0 * (10 ** (mels / 2595.0) - 1.0)  # filter edges in Hz
    slopes = f_pts[None, :] - freqs[:, None]  # [n_freqs, n_mels + 2]
    down = -slopes[:, :-2] / (f_pts[1:-1] - f_pts[:-2])
    up = slopes[:, 2:] / (f_pts[2:] - f_pts[1:-1])
    return torch.clamp(torch.minimum(down, up), min=0).float()


def stft(x, n_fft, hop):
    """Complex STFT of x [B, C, T] -> [B, C, F, frames], Hann window, no centering, normalised by
    the window energy (torchaudio's `normalized=True`)."""
    window = torch.hann_window(n_fft, device=x.device, dtype=x.dtype)
    B, C, T = x.shape
    spec = torch.stft(x.reshape(B * C, T), n_fft, hop, window=window, center=False,
                      return_complex=True)  # [B*C, F, frames]
    return (spec / window.pow(2).sum().sqrt()).view(B, C, *spec.shape[1:])


def mel_spectrogram(x, sample_rate, n_fft, hop, n_mels=64, f_min=64.0):
    """Power mel spectrogram [B, C * n_mels, frames] of x [B, C, T], padded as AudioCraft's
    MelSpectrogramWrapper: reflect (n_fft - hop) // 2 on both sides, then zeros up to full
    frames."""
    p = (n_fft - hop) // 2
    x = F.pad(x, (p, p), "reflect")
    x = F.pad(x, (0, (-(x.shape[-1] - n_fft)) % hop))  # make the last frame full
    power = stft(x.float(), n_fft, hop).abs().pow(2)  # [B, C, F, frames]
    fb = mel_filterbank(sample_rate, n_fft, n_mels, f_min).to(x.device)
    return torch.einsum("bcft,fm->bcmt", power, fb).flatten(1, 2)  # [B, C*n_mels, frames]


def multiscale_mel_loss(x, y, sample_rate):
    """AudioCraft's msspec loss: for n_fft = 64..1024 (hop n_fft/4, 64 mels from 64 Hz),
    L1 of the mel spectrograms + MSE of their log10, summed, divided by 2 per scale (= 10)."""
    loss = 0.0
    for i in range(6, 11):
        mx = mel_spectrogram(x, sample_rate, 2 ** i, 2 ** i // 4)
        my = mel_spectrogram(y, sample_rate, 2 ** i, 2 ** i // 4)
        log_mse = F.mse_loss(torch.log10(1e-5 + mx), torch.log10(1e-5 + my))
        loss = loss + F.l1_loss(mx, my) + log_mse
    return loss / 10


def mel_distance(x, y, sample_rate):
    """Eval metric: L1 between log10 mel spectrograms (n_fft 1024, hop 256, 64 mels)."""
    return F.l1_loss(torch.log10(1e-5 + mel_spectrogram(x, sample_rate, 1024, 256)),
                     torch.log10(1e-5 + mel_spectrogram(y, sample_rate, 1024, 256)))


def si_snr(estimate, reference, eps=1e-8):
    """Scale-invariant SNR in dB per clip [B] (mean over channels), both signals made zero-mean
    first: 10 log10(|t|^2 / |e - t|^2), t = (<e, r> / |r|^2) r the projection of the estimate e on
    the reference r."""
    estimate = estimate - estimate.mean(-1, keepdim=True)
    reference = reference - reference.mean(-1, keepdim=True)
    dot = (estimate * reference).sum(-1, keepdim=True)  # <e, r>
    scale = dot / (reference.pow(2).sum(-1, keepdim=True) + eps)
    target = scale * reference  # t; estimate - target is the noise
    ratio = target.pow(2).sum(-1) / ((estimate - target).pow(2).sum(-1) + eps)
    return (10 * torch.log10(ratio + eps)).flatten(1).mean(1)


def band_edges(sample_rate):
    """0, 0.5, 1, 2, 4, ... kHz up to Nyquist: octaves, so each band holds a comparable share of
    what one hears."""
    edges = [0, 500]
    while edges[-1] * 2 < sample_rate / 2:
        edges.append(edges[-1] * 2)
    return edges + [sample_rate / 2]


def band_levels(estimate, reference, sample_rate, n_fft=512, eps=1e-10):
    """Energy kept per frequency band, 10 log10(E_estimate / E_reference), in dB per clip and band
    [B, n_bands] (bands: band_edges; summed over channels, Hann STFT n_fft / 4 hop).
    0 dB: the band comes back as loud as it went in; -20 dB: a hundredth of its energy. A waveform
    metric (SI-SNR) hides a lost top octave under the loud low one."""
    spec = stft(torch.cat([estimate, reference]), n_fft, n_fft // 4)  # [2B, C, F, frames]
    power = spec.abs().pow(2).sum((1, 3))  # [2B, F], summed over channels and frames
    freqs = torch.linspace(0, sample_rate / 2, n_fft // 2 + 1, device=power.device)  # [F]
    edges = band_edges(sample_rate)
    bands = []
    for lo, hi in zip(edges, edges[1:]):
        in_band = (freqs >= lo) & ((freqs < hi) | (hi == edges[-1]))  # the last band keeps Nyquist
        bands.append(power[:, in_band].sum(1))  # [2B]
    est, ref = torch.stack(bands, 1).chunk(2)  # [B, n_bands] each
    return 10 * torch.log10((est + eps) / (ref + eps))


# -----------------------------------------------------------------------------
# the multi-scale STFT discriminator (EnCodec Sec. 3.4)


class STFTDiscriminator(nn.Module):
    """2-D conv net over the real and imaginary parts of one STFT scale; returns (logits, feature
    maps). Strides (1, 2) halve the frequency axis three times; dilations 1, 2, 4 grow along
    time."""

    def __init__(self, filters, n_fft, hop):
        super().__init__()
        self.n_fft, self.hop = n_fft, hop
        wn = nn.utils.parametrizations.weight_norm
        # the first conv has no weight norm, as the official one
        self.convs = nn.ModuleList([nn.Conv2d(2, filters, (3, 9), padding=(1, 4))])
        for d in (1, 2, 4):
            conv = nn.Conv2d(filters, filters, (3, 9), stride=(1, 2), dilation=(d, 1),
                             padding=(d, 4))
            self.convs.append(wn(conv))
        self.convs.append(wn(nn.Conv2d(filters, filters, (3, 3), padding=(1, 1))))
        self.conv_post = wn(nn.Conv2d(filters, 1, (3, 3), padding=(1, 1)))

    def forward(self, x):  # x [B, 1, T]
        z = stft(x, self.n_fft, self.hop)  # [B, 1, F, frames] complex
        z = torch.cat([z.real, z.imag], dim=1).transpose(2, 3)  # [B, 2, frames, F]
        fmap = []
        for conv in self.convs:
            z = F.leaky_relu(conv(z), 0.3)  # slope 0.3 as AudioCraft's msstftd config
            fmap.append(z)
        return self.conv_post(z), fmap


class MSSTFTDiscriminator(nn.Module):
    """Five STFT discriminators at window sizes 1024, 2048, 512, 256, 128 (hop = window / 4)."""

    def __init__(self, filters=32, n_ffts=(1024, 2048, 512, 256, 128)):
        super().__init__()
        self.discriminators = nn.ModuleList(STFTDiscriminator(filters, n, n // 4) for n in n_ffts)

    def forward(self, x):  # x [B, 1, T] -> ([logits] * 5, [[fmap] * 5] * 5)
        outs = [d(x) for d in self.discriminators]
        return [o[0] for o in outs], [o[1] for o in outs]


def discriminator_loss(logits_real, logits_fake):
    """Hinge loss: mean(relu(1 - D(x))) + mean(relu(1 + D(G(x)))), averaged over discriminators."""
    return sum(F.relu(1 - r).mean() + F.relu(1 + f).mean()
               for r, f in zip(logits_real, logits_fake)) / len(logits_real)


def adversarial_loss(logits_fake):
    """Generator's hinge loss: -mean(D(G(x))), averaged over discriminators."""
    return sum(-f.mean() for f in logits_fake) / len(logits_fake)


def feature_matching_loss(fmaps_real, fmaps_fake):
    """L1 between the discriminator's feature maps on real and decoded audio, averaged per map,
    then over discriminators (AudioCraft: no division by the real maps' scale)."""
    per_disc = []
    for maps_real, maps_fake in zip(fmaps_real, fmaps_fake):  # one discriminator's maps
        l1 = [F.l1_loss(f, r.detach()) for r, f in zip(maps_real, maps_fake)]
        per_disc.append(sum(l1) / len(maps_real))
    return sum(per_disc) / len(per_disc)


# -----------------------------------------------------------------------------
# the loss balancer (EnCodec Sec. 3.4)


class Balancer:
    """Back-propagates sum_i (w_i / sum w) * g_i / <||g_i||>, g_i = d loss_i / d y_pred.

    <||g_i||> is an exponential moving average (decay 0.999, bias-corrected) of the per-clip
    gradient norm averaged over the batch, so each loss gets the share of a unit gradient its weight
    says, whatever its scale. Checkpoints save its state (exact resume)."""

    def __init__(self, weights, decay=0.999, eps=1e-12):
        self.weights, self.decay, self.eps = weights, decay, eps
        self.total = {k: 0.0 for k in weights}  # EMA numerators
        self.fix = {k: 0.0 for k in weights}  # EMA denominators (bias correction)

    def gradient(self, losses, y_pred):
        """The gradient to back-propagate from y_pred; also returns the measured norms."""
        out = torch.zeros_like(y_pred)
        norms = {}
        total_w = sum(self.weights.values())
        for name, loss in losses.items():
            (grad,) = torch.autograd.grad(loss, [y_pred], retain_graph=True)
            norm = grad.flatten(1).norm(dim=1).mean().item()  # per-clip norm, batch mean
            self.total[name] = self.decay * self.total[name] + norm
            self.fix[name] = self.decay * self.fix[name] + 1.0
            avg_norm = self.total[name] / self.fix[name]  # bias-corrected EMA
            norms[name] = norm
            out = out + (self.weights[name] / total_w) / (self.eps + avg_norm) * grad
        return out, norms

    def state_dict(self):
        return {"total": dict(self.total), "fix": dict(self.fix)}

    def load_state_dict(self, state):
        self.total = dict(state["total"])
        self.fix = dict(state["fix"])
