"""
The T5 encoder that turns a tokenized prompt into the vectors the text conditioner projects to the
LM width: token embeddings (no absolute positions), then pre-norm blocks of self-attention with a
learned relative position bias and a feed-forward, then a final RMS norm. Parameter names are those
of Hugging Face's T5EncoderModel, so its checkpoints load directly (checkpoint.load_t5).

References:
1) T5: Raffel et al. 2019, "Exploring the Limits of Transfer Learning with a Unified Text-to-Text
   Transformer", arXiv:1910.10683 (Sec. 2.1: relative position buckets, RMS layer norm)
   https://github.com/huggingface/transformers/blob/main/src/transformers/models/t5/modeling_t5.py
2) T5 v1.1 (gated-GELU feed-forward): Shazeer 2020, "GLU Variants Improve Transformer",
   arXiv:2002.05202
"""
import math
from dataclasses import dataclass

import torch
import torch.nn as nn
from torch.nn import functional as F


@dataclass
class T5Config:
    # field names are those of Hugging Face's config.json, so load_t5 reads it directly;
    # defaults = t5-small
    vocab_size: int = 32128  # 32000 pieces + 100 sentinels, rounded up to a multiple of 128
    d_model: int = 512
    d_kv: int = 64  # width of one head; num_heads * d_kv need not equal d_model
    d_ff: int = 2048
    num_layers: int = 6
    num_heads: int = 8
    relative_attention_num_buckets: int = 32
    relative_attention_max_distance: int = 128
    dropout_rate: float = 0.1
    layer_norm_epsilon: float = 1e-6
    # "relu" (T5 v1.0: t5-small/base/large) or "gated-gelu" (v1.1, flan-t5)
    feed_forward_proj: str = "relu"

    def __post_init__(self):
        if self.feed_forward_proj not in ("relu", "gated-gelu"):
            raise ValueError(f"feed_forward_proj={self.feed_forward_proj!r}: "
                             f"use 'relu' or 'gated-gelu'")


T5_PRESETS = {  # copy with dataclasses.replace() before editing one
    "t5-small": T5Config(),
    "t5-base": T5Config(d_model=768, d_ff=3072, num_layers=12, num_heads=12),  # MusicGen
    # AudioGen (text2sound.yaml)
    "t5-large": T5Config(d_model=1024, d_ff=4096, num_layers=24, num_heads=16),
    # trained here with the LM (train_lm.py --t5 tiny)
    "tiny": T5Config(vocab_size=1000, d_model=128, d_kv=32, d_ff=512, num_layers=2, num_heads=4),
}


def relative_position_bucket(rel, num_buckets=32, max_distance=128):
    """Map offsets rel = key position - query position to T5's bidirectional buckets (1910.10683
    §2.1). Half the buckets are for keys after the query, half for keys before. In each half of
    n = num_buckets // 2, offsets d = |rel| below e = n // 2 get a bucket each; larger ones share
    log-spaced buckets up to max_distance:
        bucket = n * [rel > 0] + b,   b = d if d < e, else
        b = min(n - 1, e + floor(log(d / e) / log(max_distance / e) * (n - e)))
    Defaults (32, 128): d = 0..7 exact, 8..127 in 8 log buckets, >= 128 all in bucket 15 (31 for
    keys after)."""
    n = num_buckets // 2
    e, d = n // 2, rel.abs()
    log_bucket = e + (torch.log(d.float().clamp(min=1) / e) / math.log(max_distance / e)
                      * (n - e)).long()
    return n * (rel > 0).long() + torch.where(d < e, d, log_bucket.clamp(max=n - 1))


# -----------------------------------------------------------------------------
# leaf modules. Names follow HF's keys, e.g. encoder.block.0.layer.0.SelfAttention.q.weight

class T5LayerNorm(nn.Module):
    """T5's layer norm: y = w * x / sqrt(mean(x^2) + eps), no mean subtraction and no bias (an
    RMSNorm)."""

    def __init__(self, config):
        super().__init__()
        self.weight, self.eps = nn.Parameter(torch.ones(config.d_model)), config.layer_norm_epsilon

    def forward(self, x):
        rms = torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + self.eps)  # [B, L, 1], fp32
        return self.weight * (x * rms).type_as(x)


class T5Attention(nn.Module):
    """Multi-head self-attention without biases, with T5's learned relative position bias (block 0
    owns it)."""

    def __init__(self, config, has_relative_attention_bias=False):
        super().__init__()
        self.config = config
        d, inner = config.d_model, config.num_heads * config.d_kv
        self.q, self.k, self.v = (nn.Linear(d, inner, bias=False) for _ in range(3))
        self.o = nn.Linear(inner, d, bias=False)
        # T5's init: q is sqrt(d_kv) smaller than k, v; that replaces the usual 1/sqrt(d_kv) in the
        # softmax
        nn.init.normal_(self.q.weight, std=(d * config.d_kv) ** -0.5)
        nn.init.normal_(self.k.weight, std=d**-0.5)
        nn.init.normal_(self.v.weight, std=d**-0.5)
        nn.init.normal_(self.o.weight, std=inner**-0.5)
        if has_relative_attention_bias:  # one learned scalar per (bucket, head)
            self.relative_attention_bias = nn.Embedding(config.relative_attention_num_buckets,
                                                        config.num_heads)
            nn.init.normal_(self.relative_attention_bias.weight, std=d**-0.5)
        self.dropout = nn.Dropout(config.dropout_rate)

    def compute_bias(self, L, device):
        """Relative position bias [1, H, L, L], added to the attention logits of every layer."""
        c, pos = self.config, torch.arange(L, device=device)
        buckets = relative_position_bucket(pos[None, :] - pos[:, None],  # [L, L]: key - query
                                           c.relative_attention_num_buckets,
                                           c.relative_attention_max_distance)
        # [L, L, H] -> [1, H, L, L]
        return self.relative_attention_bias(buckets).permute(2, 0, 1)[None]

    def forward(self, x, bias):
        B, L, _ = x.shape
        H, dk = self.config.num_heads, self.config.d_kv
        # [B, L, d_model] -> [B, H, L, dk] each
        q, k, v = (lin(x).view(B, L, H, dk).transpose(1, 2) for lin in (self.q, self.k, self.v))
        att = q @ k.transpose(-2, -1) + bias  # [B, H, L, L]; no 1/sqrt(dk) scaling (see init)
        att = self.dropout(F.softmax(att.float(), dim=-1).type_as(att))
        return self.o((att @ v).transpose(1, 2).reshape(B, L, H * dk))  # [B, L, d_model]


class T5FF(nn.Module):
    """Position-wise feed-forward, no biases. v1.0: wo(relu(wi x)); v1.1: wo(gelu_tanh(wi_0 x) *
    wi_1 x)."""

    def __init__(self, config):
        super().__init__()
        self.gated = config.feed_forward_proj == "gated-gelu"
        d, d_ff = config.d_model, config.d_ff
        if self.gated:
            self.wi_0, self.wi_1 = nn.Linear(d, d_ff, bias=False), nn.Linear(d, d_ff, bias=False)
        else:
            self.wi = nn.Linear(d, d_ff, bias=False)
        self.wo = nn.Linear(d_ff, d, bias=False)
        for lin in self.children():  # T5's init: std = fan_in^-0.5
            nn.init.normal_(lin.weight, std=lin.in_features**-0.5)
        self.dropout = nn.Dropout(config.dropout_rate)

    def forward(self, x):  # [B, L, d_model] -> [B, L, d_ff] -> [B, L, d_model]
        if self.gated:
            return self.wo(self.dropout(F.gelu(self.wi_0(x), approximate="tanh") * self.wi_1(x)))
        return self.wo(self.dropout(F.relu(self.wi(x))))


class T5Block(nn.Module):
    """Pre-norm residual block: x + attn(norm(x)), then x + ff(norm(x)), dropout on each branch."""

    def __init__(self, config, has_relative_attention_bias):
        super().__init__()
        # the ModuleDicts only reproduce HF's names: layer.0 = attention sub-layer, layer.1 =
        # feed-forward
        attn = dict(SelfAttention=T5Attention(config, has_relative_attention_bias),
                    layer_norm=T5LayerNorm(config))
        ff = dict(DenseReluDense=T5FF(config), layer_norm=T5LayerNorm(config))
        self.layer = nn.ModuleList([nn.ModuleDict(attn), nn.ModuleDict(ff)])
        self.dropout = nn.Dropout(config.dropout_rate)

    def forward(self, x, bias):
        attn, ff = self.layer
        x = x + self.dropout(attn.SelfAttention(attn.layer_norm(x), bias))
        return x + self.dropout(ff.DenseReluDense(ff.layer_norm(x)))


# -----------------------------------------------------------------------------
# top module

class T5Encoder(nn.Module):
    """T5's encoder stack; state_dict keys equal those of HF's T5EncoderModel (minus the tied
    encoder.embed_tokens.weight), so its checkpoints load directly: see checkpoint.load_t5."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.shared = nn.Embedding(config.vocab_size, config.d_model)
        nn.init.normal_(self.shared.weight, std=1.0)
        self.encoder = nn.ModuleDict(dict(
            block=nn.ModuleList([T5Block(config, i == 0) for i in range(config.num_layers)]),
            final_layer_norm=T5LayerNorm(config)))
        self.dropout = nn.Dropout(config.dropout_rate)

    def forward(self, ids, mask=None):
        """ids [B, L] long, mask [B, L] bool (True = real token) -> last hidden state
        [B, L, d_model]."""
        if ids.max() >= self.config.vocab_size:
            raise ValueError(f"token id {ids.max()} >= vocab_size {self.config.vocab_size}: "
                             f"tokenizer and T5 differ")
        mask = torch.ones_like(ids, dtype=torch.bool) if mask is None else mask.bool()
        # [B, L, d_model]; no absolute positions, no sqrt(d_model) scale
        x = self.dropout(self.shared(ids))
        attn0 = self.encoder.block[0].layer[0].SelfAttention
        bias = attn0.compute_bias(ids.shape[1], ids.device)  # [1, H, L, L]
        # padded keys get the most negative float (as HF), not -inf: an all-padded (null) row stays
        # finite
        pad = torch.where(mask, 0.0, torch.finfo(x.dtype).min)  # [B, L]: 0 or -max per key
        bias = bias + pad[:, None, None, :]  # [B, H, L, L]
        for block in self.encoder.block:  # all share block 0's position bias
            x = block(x, bias)
        return self.dropout(self.encoder.final_layer_norm(x))


if __name__ == "__main__":
    # shape demo with random weights: the tiny preset on a padded batch of token ids
    torch.manual_seed(0)
    t5 = T5Encoder(T5_PRESETS["tiny"]).eval()
    ids = torch.tensor([[5, 6, 7, 1], [8, 1, 0, 0]])  # two prompts + eos (1), padded with 0
    mask = ids.ne(0)  # [B, L]; True = real token
    with torch.no_grad():
        h = t5(ids, mask)  # [B, L, d_model]
    n = sum(p.numel() for p in t5.parameters())
    print(f"tiny T5: {n / 1e6:.2f}M parameters; ids {tuple(ids.shape)} -> hidden {tuple(h.shape)}")
    print(f"buckets of offsets -3..3: {relative_position_bucket(torch.arange(-3, 4)).tolist()}")
