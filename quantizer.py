"""
Residual vector quantization (RVQ), as in SoundStream and EnCodec.

A latent sequence [B, D, T] from the EnCodec encoder is turned into K integer codes per frame:
codebook 1 quantizes the latent, codebook 2 what codebook 1 missed (the residual), and so on. Each
codebook is a table of `bins` vectors learnt without gradients, by k-means at the first batch, then
by exponential moving averages (EMA) of the vectors assigned to each code. Dropping the last
codebooks at random in training ("quantizer dropout") makes one model serve several bitrates:
bandwidth = K * log2(bins) * frame_rate bits per second.

Buffer names and shapes are those of the official checkpoints once checkpoint.py's short rename
list is applied (`quantizer.vq.layers.{i}._codebook.embed` -> `quantizer.layers.{i}.embed`).

References:
1) SoundStream, Algorithm 1 (RVQ) and Sec. 3.3 (quantizer dropout): https://arxiv.org/abs/2107.03312
2) EnCodec, Sec. 3.2: https://arxiv.org/abs/2210.13438
   official code: facebookresearch/encodec encodec/quantization/core_vq.py,
   facebookresearch/audiocraft audiocraft/quantization/core_vq.py and vq.py
3) EMA codebook updates: VQ-VAE, Appendix A.1, https://arxiv.org/abs/1711.00937
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

# -----------------------------------------------------------------------------
# helpers


def sample_vectors(samples, num):
    """Pick `num` rows of samples [N, D]: without replacement when there are enough rows."""
    n = samples.shape[0]
    if n >= num:
        idx = torch.randperm(n, device=samples.device)[:num]
    else:
        idx = torch.randint(0, n, (num,), device=samples.device)
    return samples[idx]


def kmeans(samples, num_clusters, num_iters=50):
    """Lloyd's k-means on samples [N, D], started from random samples.
    Returns (means [num_clusters, D], counts [num_clusters]). A cluster that ends up empty keeps its
    previous centroid, as in the official code."""
    means = sample_vectors(samples, num_clusters)  # [C, D]
    for _ in range(num_iters):
        dists = torch.cdist(samples, means)  # [N, C]
        buckets = dists.argmin(dim=-1)  # [N]
        counts = torch.bincount(buckets, minlength=num_clusters)  # [C]
        sums = torch.zeros_like(means).index_add_(0, buckets, samples)  # [C, D]
        new_means = sums / counts.clamp(min=1)[:, None]
        means = torch.where((counts == 0)[:, None], means, new_means)
    return means, counts


def bandwidth_per_codebook(frame_rate, bins):
    """Bits per second carried by one codebook: log2(bins) bits per frame, frame_rate frames/s."""
    return math.log2(bins) * frame_rate


def n_q_for_bandwidth(bandwidth_kbps, frame_rate, bins):
    """Codebooks that fit in a bandwidth, as EnCodec's `set_target_bandwidth` (at least one).
    encodec_24khz: 1.5 / 3 / 6 / 12 / 24 kbps -> 2 / 4 / 8 / 16 / 32 codebooks of 750 bps each."""
    return max(1, math.floor(bandwidth_kbps * 1000 / bandwidth_per_codebook(frame_rate, bins)))


def codebook_usage(codes, bins):
    """Per-codebook usage and perplexity of codes [B, K, T], for logging.
    usage: fraction of the `bins` codes used at least once; perplexity: exp(entropy) of the code
    histogram, i.e. the number of equally likely codes with the same entropy (bins at best)."""
    K = codes.shape[1]
    hist = torch.stack([torch.bincount(codes[:, k].flatten(), minlength=bins) for k in range(K)])
    probs = hist.float() / hist.sum(dim=1, keepdim=True)  # [K, bins]
    usage = (hist > 0).float().mean(dim=1)  # [K]
    entropy = -(probs * torch.log(probs.clamp(min=1e-10))).sum(dim=1)  # [K]
    return usage, entropy.exp()


# -----------------------------------------------------------------------------
# modules


class Codebook(nn.Module):
    """One vector-quantization table, learnt by k-means init + EMA (no gradients).
    Buffers (official names): inited [1], cluster_size [bins] (EMA count of assignments),
    embed [bins, D] (the codebook), embed_avg [bins, D] (EMA sum of assigned vectors)."""

    def __init__(self, dim, bins, decay=0.99, epsilon=1e-5, kmeans_iters=50,
                 threshold_ema_dead_code=2.0):
        super().__init__()
        self.bins, self.decay, self.epsilon = bins, decay, epsilon
        self.kmeans_iters, self.threshold_ema_dead_code = kmeans_iters, threshold_ema_dead_code
        # all zeros until k-means runs on the first training batch (official kmeans_init=True)
        self.register_buffer("inited", torch.zeros(1))
        self.register_buffer("cluster_size", torch.zeros(bins))
        self.register_buffer("embed", torch.zeros(bins, dim))
        self.register_buffer("embed_avg", torch.zeros(bins, dim))

    def quantize(self, x):
        """Index of the nearest code for each row of x [N, D] -> [N].
        Written as the official code writes it, -(|x|^2 - 2 x.e + |e|^2), so that float rounding
        (and hence the chosen code in a near tie) is the same."""
        e = self.embed.t()  # [D, bins]
        dist = -(x.pow(2).sum(1, keepdim=True) - 2 * x @ e + e.pow(2).sum(0, keepdim=True))
        return dist.argmax(dim=-1)

    def decode(self, indices):
        """Codes [...] -> vectors [..., D]: a table lookup."""
        return F.embedding(indices, self.embed)

    @torch.no_grad()
    def _init_kmeans(self, x):
        embed, counts = kmeans(x, self.bins, self.kmeans_iters)
        self.embed.copy_(embed)
        # Deviation: the official code sets embed_avg = embed, breaking the invariant
        # embed = embed_avg / cluster_size, so its first EMA step shrinks every code by ~1/count;
        # embed_avg = embed * count leaves the codes in place.
        self.embed_avg.copy_(embed * counts[:, None])
        self.cluster_size.copy_(counts)
        self.inited.fill_(1.0)

    @torch.no_grad()
    def _expire_dead_codes(self, x):
        """Replace codes whose EMA usage fell under the threshold by random vectors of the batch.
        Deviation (see README): the official code replaces only `embed`, and the EMA step of the
        same call then overwrites it with embed_avg / cluster_size, so its replacement has no
        effect. Here it runs after the EMA step and resets embed_avg and cluster_size too
        (count = threshold), so the new vector survives, as in lucidrains/vector-quantize-pytorch.
        It never runs before the batch is assigned: the batch's own vectors would then be in the
        codebook and quantize themselves exactly (no bottleneck, zero commitment loss)."""
        threshold = self.threshold_ema_dead_code
        dead = self.cluster_size < threshold  # [bins]
        if threshold <= 0 or not dead.any():
            return
        new = sample_vectors(x, self.bins)  # [bins, D]
        self.embed.copy_(torch.where(dead[:, None], new, self.embed))
        self.embed_avg.copy_(torch.where(dead[:, None], new * threshold, self.embed_avg))
        self.cluster_size.masked_fill_(dead, threshold)

    @torch.no_grad()
    def _ema_update(self, x, indices):
        """VQ-VAE App. A.1: N <- d N + (1-d) n,  m <- d m + (1-d) sum x,  e = m / N (smoothed)."""
        onehot = F.one_hot(indices, self.bins).type(x.dtype)  # [N, bins]
        self.cluster_size.mul_(self.decay).add_(onehot.sum(0), alpha=1 - self.decay)
        self.embed_avg.mul_(self.decay).add_(onehot.t() @ x, alpha=1 - self.decay)
        # Laplace smoothing keeps unused codes from dividing by zero
        n = self.cluster_size.sum()
        smoothed = (self.cluster_size + self.epsilon) / (n + self.bins * self.epsilon) * n
        self.embed.copy_(self.embed_avg / smoothed[:, None])

    def forward(self, x):
        """x [N, D] -> (quantized [N, D], indices [N]); learns from x in training mode."""
        if self.training and not self.inited.item():
            self._init_kmeans(x.detach())
        indices = self.quantize(x)
        quantized = self.decode(indices)
        if self.training:  # learn from this batch; the changes apply from the next one
            self._ema_update(x.detach(), indices)
            self._expire_dead_codes(x.detach())
        return quantized, indices


class ResidualVectorQuantizer(nn.Module):
    """n_q codebooks applied one after the other to the residual (SoundStream Algorithm 1)."""

    def __init__(self, dim=128, n_q=4, bins=2048, q_dropout=False, decay=0.99, epsilon=1e-5,
                 kmeans_iters=50, threshold_ema_dead_code=2.0):
        super().__init__()
        self.n_q, self.bins, self.q_dropout = n_q, bins, q_dropout
        self.layers = nn.ModuleList(
            Codebook(dim, bins, decay, epsilon, kmeans_iters, threshold_ema_dead_code)
            for _ in range(n_q))

    def _check_n_q(self, n_q):
        n_q = self.n_q if n_q is None else n_q
        if not 1 <= n_q <= self.n_q:
            raise ValueError(f"n_q={n_q} is out of range: this quantizer has 1..{self.n_q} "
                             "codebooks")
        return n_q

    def forward(self, x, n_q=None):
        """x [B, D, T] -> (quantized [B, D, T], codes [B, K, T], commitment loss).
        Training: quantizer dropout draws K ~ U{1..n_q} once per batch (AudioCraft `q_dropout`),
        every codebook learns by EMA, and the gradient reaches the encoder by the straight-through
        estimator. As AudioCraft (not the encodec repo, see facebookresearch/encodec issue #25) each
        stage's output is detached and one straight-through is applied to the sum, so
        d(out)/dx = identity."""
        n_q = self._check_n_q(n_q)
        if self.training and self.q_dropout:
            n_q = int(torch.randint(1, n_q + 1, (1,)).item())
        B, D, T = x.shape
        residual = x.transpose(1, 2).reshape(B * T, D)  # [B*T, D]
        quantized_out = torch.zeros_like(residual)  # [B*T, D], the sum of the stages' codes
        codes, losses = [], []
        for layer in self.layers[:n_q]:
            quantized, indices = layer(residual)
            # commitment loss: pull the encoder output towards its (fixed) code, ||sg(q) - r||^2
            losses.append(F.mse_loss(quantized.detach(), residual))
            residual = residual - quantized.detach()
            quantized_out = quantized_out + quantized.detach()
            codes.append(indices.view(B, T))
        quantized_out = quantized_out.view(B, T, D).transpose(1, 2)  # [B, D, T]
        if self.training:
            quantized_out = x + (quantized_out - x).detach()  # straight-through estimator
        commit_loss = torch.stack(losses).mean()
        return quantized_out, torch.stack(codes, dim=1), commit_loss

    @torch.no_grad()
    def encode(self, x, n_q=None):
        """x [B, D, T] -> codes [B, K, T] (int64), greedily, codebook by codebook."""
        n_q = self._check_n_q(n_q)
        B, D, T = x.shape
        residual = x.transpose(1, 2).reshape(B * T, D)  # [B*T, D]
        codes = []
        for layer in self.layers[:n_q]:
            indices = layer.quantize(residual)
            residual = residual - layer.decode(indices)
            codes.append(indices.view(B, T))
        return torch.stack(codes, dim=1)

    def decode(self, codes):
        """codes [B, K, T] -> latent [B, D, T]: the sum of the K looked-up vectors."""
        if codes.dim() != 3 or not 1 <= codes.shape[1] <= self.n_q:
            raise ValueError(f"codes must be [B, K, T] with 1 <= K <= {self.n_q}, "
                             f"got shape {tuple(codes.shape)}")
        if codes.min() < 0 or codes.max() >= self.bins:
            raise ValueError(f"codes must lie in [0, {self.bins}), got values in "
                             f"[{codes.min().item()}, {codes.max().item()}]")
        K = codes.shape[1]
        latent = sum(self.layers[k].decode(codes[:, k]) for k in range(K))  # [B, T, D]
        return latent.transpose(1, 2)  # [B, D, T]


if __name__ == "__main__":
    torch.manual_seed(0)
    rvq = ResidualVectorQuantizer(dim=8, n_q=4, bins=16, kmeans_iters=10)
    x = torch.randn(2, 8, 50)  # [B, D, T]
    rvq.train()
    rvq(x)  # first training batch: k-means init of each codebook
    rvq.eval()
    for k in range(1, 5):
        codes = rvq.encode(x, n_q=k)  # [B, K, T]
        err = (rvq.decode(codes) - x).pow(2).mean() / x.pow(2).mean()
        print(f"{k} codebooks: codes {tuple(codes.shape)}, relative error {err:.3f}")
    usage, ppl = codebook_usage(codes, 16)
    print("usage", usage.tolist(), "perplexity", [round(p, 1) for p in ppl.tolist()])
