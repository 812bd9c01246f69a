"""
Entropy coding of EnCodec's codes (EnCodec Sec. 3.3): a small transformer predicts a distribution
over each frame's codes from the previous frames, and an arithmetic coder spends -log2 p bits on a
code of probability p.

    pack_bits(values, bits) / unpack_bits(data, bits, n)   fixed-width codes, the format with no LM
    cdf = quantized_cdf(probs)                             probabilities [card] -> integer CDF
    ArithmeticEncoder().push(symbol, cdf) ... .finish()    -> bytes
    ArithmeticDecoder(data).pull(cdf)                      -> symbol (the encoder's cdf sequence)
    EntropyLM(config)(indices, states, offset)             the paper's streaming transformer
    lm_encode(codes, lm) / lm_decode(data, lm, K, T)       codes [K, T] <-> bytes, frame by frame
    lm_bits(lm, codes)                                     codes [B, K, T] -> bits of each code,
                                                           teacher-forced: the training loss

Everything here computes what the official package computes, operation for operation, so that its
`.ecdc` files and ours are the same bytes (compress.py, tests/test_compress.py).

References:
1) EnCodec, High Fidelity Neural Audio Compression, Sec. 3.3: https://arxiv.org/abs/2210.13438
   official code: facebookresearch/encodec encodec/quantization/ac.py (coder, quantized CDF),
   encodec/binary.py (bit packer), encodec/model.py (LMModel, get_lm_model),
   encodec/modules/transformer.py (streaming transformer)
2) Witten, Neal, Cleary, Arithmetic Coding for Data Compression, CACM 1987 (interval coding,
   renormalisation)
3) MacKay, Information Theory, Inference, and Learning Algorithms, Ch. 6 (arithmetic coding and its
   length)
"""

import bisect
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

# -----------------------------------------------------------------------------
# config

# CDFs are integers in [0, 2**24]; the coder's interval never gets narrower than 2**24
TOTAL_RANGE_BITS = 24
# the smallest slice a symbol gets: a code the LM deems impossible costs <= 23 bits, not a failure
MIN_RANGE = 2
ROUNDOFF = 1e-8  # probabilities are floored to this grid before quantisation (the official value)


@dataclass
class EntropyLMConfig:
    # defaults: the official LM of encodec_24khz (get_lm_model): 32 codebooks x 1024 codes,
    # 5 layers of width 200
    n_q: int = 32  # codebooks it has embeddings and heads for; a file may use the first K of them
    card: int = 1024  # codes per codebook
    dim: int = 200
    num_heads: int = 8
    num_layers: int = 5
    hidden_scale: int = 4  # feed-forward width = 4 * dim = 800
    past_context: int = 262  # frames a step sees: int(3.5 s * 75 Hz), the paper's 3.5 s window
    max_period: float = 10000.0  # of the sinusoidal positions

# -----------------------------------------------------------------------------
# bits


def pack_bits(values, bits):
    """Integers in [0, 2**bits) -> bytes, least significant bit first, the last byte padded with
    zeros: the bytes of the integer sum_i values[i] * 2**(i * bits), little-endian (the official
    BitPacker's layout). 10-bit codes 1, 2 -> bits 1000000000 0100000000 -> bytes 0x01 0x08 0x00."""
    bit_array = (np.asarray(values, dtype=np.int64)[:, None] >> np.arange(bits)) & 1  # [N, bits]
    return np.packbits(bit_array.astype(np.uint8).ravel(), bitorder="little").tobytes()


def unpack_bits(data, bits, n):
    """The first n values of `bits` bits each from bytes written by pack_bits -> list of ints
    (ValueError if short)."""
    if len(data) * 8 < n * bits:
        n_bytes = math.ceil(n * bits / 8)
        raise ValueError(f"{n} values of {bits} bits need {n_bytes} bytes, got {len(data)}")
    bit_array = np.unpackbits(np.frombuffer(data, dtype=np.uint8), bitorder="little")[:n * bits]
    return (bit_array.reshape(n, bits).astype(np.int64) << np.arange(bits)).sum(1).tolist()

# -----------------------------------------------------------------------------
# arithmetic coding


def quantized_cdf(probs, total_range_bits=TOTAL_RANGE_BITS, min_range=MIN_RANGE):
    """Probabilities [card] (float) -> integer CDF [card] (int64).

    Symbol s owns the slice [cdf[s-1], cdf[s]) of [0, 2**total_range_bits), cdf[-1] read as 0.
    With p'_s = floor(p_s / 1e-8) * 1e-8, the slice widths are
        width_s = floor((1 - alpha) 2**bits p'_s) + min_range,   alpha = min_range card / 2**bits:
    the probabilities mixed with a little uniform, so that every symbol, however unlikely, keeps a
    slice of at least min_range (a zero-width slice could not be coded at all). The widths add up
    to at most 2**bits; a symbol costs about -log2(width_s / 2**bits) bits.

    Why integers, the same on both sides: the decoder finds a symbol by where the coded number
    falls among the slice boundaries, so one boundary off by 1 derails every later symbol. Floats
    are not safe for that (a different summation order moves the last bit), integers are. The
    decoder recomputes the probabilities, so the LM must give the same floats on both sides (same
    weights, same operations in the same order); the 1e-8 grid absorbs most last-bit differences
    between machines, not all. The expression mirrors the official one term for term, in float32."""
    probs = (probs.detach() / ROUNDOFF).floor() * ROUNDOFF
    total_range = 2 ** total_range_bits
    alpha = min_range * len(probs) / total_range
    if alpha > 1:
        raise ValueError(f"{len(probs)} symbols with min_range {min_range} do not fit in "
                         f"2**{total_range_bits}")
    widths = (((1 - alpha) * total_range) * probs).floor().long() + min_range  # [card]
    return torch.cumsum(widths, dim=-1)


def _slice(cdf, symbol, delta, total_range_bits):
    """The part of an interval of width delta that symbol owns: its CDF slice [lo, hi] of
    [0, 2**bits) scaled by delta / 2**bits, rounded inwards, as offsets from the interval's low end.
    Exact integers (the package computes them in float64, exact too: < 2**49)."""
    lo = int(cdf[symbol - 1]) if symbol > 0 else 0
    hi = int(cdf[symbol]) - 1
    first = -(-lo * delta >> total_range_bits)  # ceil(lo * delta / 2**bits)
    last = hi * delta >> total_range_bits  # floor(hi * delta / 2**bits)
    return first, last


class ArithmeticEncoder:
    """Symbols + CDFs -> bits. The state is an interval [low, high] of integers; coding a symbol
    shrinks it to the symbol's slice (_slice), so after N symbols its width is about
    2**bits * prod_t p_t, and any number inside it identifies all N symbols:
    -log2 prod_t p_t = sum_t -log2 p_t bits, the information content (MacKay Ch. 6).

    Precision and renormalisation. low and high are integers of max_bit + 1 bits, the bits still
    to be written. Before each symbol, while the interval is narrower than 2**total_range_bits, one
    more bit of precision is appended to both ends (low -> 2 low, high -> 2 high + 1): the same
    interval under a magnifier twice as strong. The width then lies in [2**24, 2**25), so every
    slice of at least min_range gets at least one integer. After each symbol, while low and high
    start with the same bit, that bit can no longer change (the interval only shrinks inside
    itself): it is written and removed from both. When the interval straddles a power of two
    (low = 0111..., high = 1000...) no bit can go out and max_bit grows; Python's integers are
    unbounded, so that costs nothing (a C coder counts "pending" bits, Witten et al. 1987).
    finish() writes low's remaining bits: low lies in the interval. The bits are packed by
    pack_bits(..., 1): the first bit is the least significant bit of the first byte."""

    def __init__(self, total_range_bits=TOTAL_RANGE_BITS):
        self.total_range_bits = total_range_bits
        self.low, self.high, self.max_bit = 0, 0, -1  # the empty interval at 0 bits of precision
        self.bits = []

    def push(self, symbol, cdf):
        # renormalise: one more bit of precision at both ends
        while self.high - self.low + 1 < 2 ** self.total_range_bits:
            self.low = 2 * self.low
            self.high = 2 * self.high + 1
            self.max_bit += 1
        # shrink the interval to the symbol's slice
        lo, hi = _slice(cdf, symbol, self.high - self.low + 1, self.total_range_bits)
        base = self.low
        self.low = base + lo
        self.high = base + hi
        # write the leading bits that low and high share: they are settled
        while self.max_bit >= 0 and self.low >> self.max_bit == self.high >> self.max_bit:
            bit = self.low >> self.max_bit
            self.bits.append(bit)
            self.low -= bit << self.max_bit
            self.high -= bit << self.max_bit
            self.max_bit -= 1

    def finish(self):
        """The remaining bits of low, most significant first, then all bits packed into bytes."""
        self.bits += [(self.low >> b) & 1 for b in range(self.max_bit, -1, -1)]
        self.max_bit = -1
        return pack_bits(self.bits, 1)


class ArithmeticDecoder:
    """Bits + the encoder's CDFs -> symbols. It follows the encoder's interval step by step, with
    `current`, the number read so far at the interval's precision: renormalising reads one more bit
    into it, and the symbol is the one whose slice holds it. Every CDF must be exactly the encoder's
    (see quantized_cdf)."""

    def __init__(self, data, total_range_bits=TOTAL_RANGE_BITS):
        self.total_range_bits = total_range_bits
        self.stream = np.unpackbits(np.frombuffer(data, dtype=np.uint8), bitorder="little").tolist()
        self.pos = 0  # the next bit to read
        self.low, self.high, self.current, self.max_bit = 0, 0, 0, -1

    def pull(self, cdf):
        """The next symbol (EOFError when the bits run out, ValueError when no slice holds the
        number)."""
        cdf = cdf.tolist() if torch.is_tensor(cdf) else cdf
        while self.high - self.low + 1 < 2 ** self.total_range_bits:
            if self.pos == len(self.stream):
                raise EOFError("the arithmetic-coded stream ended before its last symbol")
            self.low = 2 * self.low
            self.high = 2 * self.high + 1
            self.max_bit += 1
            self.current = 2 * self.current + self.stream[self.pos]
            self.pos += 1
        delta = self.high - self.low + 1
        offset = self.current - self.low
        # slice s ends at floor((cdf[s] - 1) delta / 2**bits) >= offset  <=>  cdf[s] >
        # ceil(offset 2**bits / delta)
        symbol = bisect.bisect_right(cdf, -(-(offset << self.total_range_bits) // delta))
        if symbol == len(cdf) or _slice(cdf, symbol, delta, self.total_range_bits)[0] > offset:
            raise ValueError("the coded number falls in no symbol's slice: corrupt data or another "
                             "model's CDFs")
        lo, hi = _slice(cdf, symbol, delta, self.total_range_bits)
        base = self.low
        self.low = base + lo
        self.high = base + hi
        # drop the settled leading bits, as the encoder
        while self.max_bit >= 0 and self.low >> self.max_bit == self.high >> self.max_bit:
            bit = self.low >> self.max_bit
            self.low -= bit << self.max_bit
            self.high -= bit << self.max_bit
            self.current -= bit << self.max_bit
            self.max_bit -= 1
        return symbol

# -----------------------------------------------------------------------------
# the entropy model (EnCodec Sec. 3.3)


def sin_embedding(positions, dim, max_period=10000.0):
    """Sinusoidal positions [B, T, 1] -> [B, T, dim]: cos then sin of positions / max_period**(i /
    (dim/2 - 1))."""
    half = dim // 2
    exponents = torch.arange(half).view(1, 1, -1) / (half - 1)  # [1, 1, half]
    phase = positions / (max_period ** exponents)  # [B, T, half]
    return torch.cat([torch.cos(phase), torch.sin(phase)], dim=-1)


class Attention(nn.Module):
    """Multi-head attention of new frames over (past frames + themselves), as torch's
    nn.MultiheadAttention computes it for the official model (same parameter names: in_proj_weight
    [3D, D] packs the q, k, v projections)."""

    def __init__(self, config):
        super().__init__()
        D = config.dim
        self.num_heads = config.num_heads
        self.in_proj_weight = nn.Parameter(nn.init.xavier_uniform_(torch.empty(3 * D, D)))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * D))
        self.out_proj = nn.Linear(D, D)

    def forward(self, x, keys, mask):  # x [B, T, D], keys [B, S, D], mask [T, S] (True: may attend)
        B, T, D = x.shape
        w_q, w_kv = self.in_proj_weight.split([D, 2 * D])
        b_q, b_kv = self.in_proj_bias.split([D, 2 * D])
        q = F.linear(x, w_q, b_q)  # [B, T, D]
        # k and v in one packed product, as torch's
        k, v = F.linear(keys, w_kv, b_kv).chunk(2, dim=-1)  # [B, S, D] each
        H = self.num_heads
        # [B, T or S, D] -> [B, H, T or S, hd]
        q, k, v = (t.view(B, -1, H, D // H).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # [B, H, T, hd]
        return self.out_proj(y.transpose(1, 2).reshape(B, T, D))


class Layer(nn.Module):
    """Post-norm transformer layer (torch's nn.TransformerEncoderLayer, GELU, no dropout), attending
    to the last past_context inputs of this layer. Keys: self_attn, linear1, linear2, norm1,
    norm2."""

    def __init__(self, config):
        super().__init__()
        self.past_context = config.past_context
        self.self_attn = Attention(config)
        self.linear1 = nn.Linear(config.dim, config.hidden_scale * config.dim)
        self.linear2 = nn.Linear(config.hidden_scale * config.dim, config.dim)
        self.norm1 = nn.LayerNorm(config.dim)
        self.norm2 = nn.LayerNorm(config.dim)

    def forward(self, x, past):  # x [B, T, D], past [B, P, D] (this layer's earlier inputs)
        P, T = past.shape[1], x.shape[1]
        # query position - key position [T, P+T]
        delta = torch.arange(P, P + T).view(-1, 1) - torch.arange(P + T).view(1, -1)
        mask = (delta >= 0) & (delta <= self.past_context)  # causal, past_context frames at most
        x = self.norm1(x + self.self_attn(x, torch.cat([past, x], dim=1), mask))
        return self.norm2(x + self.linear2(F.gelu(self.linear1(x))))


class EntropyLM(nn.Module):
    """The paper's entropy model (Sec. 3.3; the package's LMModel): the K code embeddings of frame
    t-1 are summed, a 5-layer transformer over frames (causal, 3.5 s of context) gives one vector
    per frame, and a linear head per codebook turns it into a distribution over the codes of frame
    t. All K codebooks of a frame are predicted at once, from past frames only. Keys as the official
    checkpoint: emb.k, transformer.norm_in, transformer.layers.i, linears.k, so its state dict loads
    with load_state_dict(strict=True)."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.transformer = nn.Module()
        self.transformer.norm_in = nn.LayerNorm(config.dim)
        self.transformer.layers = nn.ModuleList(Layer(config) for _ in range(config.num_layers))
        # index 0 of each embedding: no code (the frame before the first)
        self.emb = nn.ModuleList(nn.Embedding(config.card + 1, config.dim)
                                 for _ in range(config.n_q))
        self.linears = nn.ModuleList(nn.Linear(config.dim, config.card) for _ in range(config.n_q))

    def forward(self, indices, states=None, offset=0):
        """indices [B, K, T]: 1 + code of the previous frame (0 before the first) -> (probs
        [B, card, K, T], states, offset + T). states: each layer's last past_context inputs (None:
        one zero frame, as the official code); pass them back with the next frames to stream. probs
        keeps the official layout: softmax over dim 1."""
        B, K, T = indices.shape
        x = sum(self.emb[k](indices[:, k]) for k in range(K))  # [B, T, D]
        if states is None:
            states = [torch.zeros_like(x[:, :1]) for _ in self.transformer.layers]
        positions = torch.arange(T).view(1, -1, 1) + offset  # [1, T, 1]
        pos_emb = sin_embedding(positions, self.config.dim, self.config.max_period)  # [1, T, D]
        x = self.transformer.norm_in(x) + pos_emb
        new_states = []
        for layer, past in zip(self.transformer.layers, states):
            inputs = torch.cat([past, x], dim=1)  # this layer's inputs so far
            new_states.append(inputs[:, -self.config.past_context:])
            x = layer(x, past)
        logits = torch.stack([self.linears[k](x) for k in range(K)], dim=1)  # [B, K, T, card]
        return torch.softmax(logits.permute(0, 3, 1, 2), dim=1), new_states, offset + T


@torch.no_grad()
def lm_encode(codes, lm):
    """codes [K, T] -> bytes. Frame by frame, as the decoder must go (it learns frame t only by
    decoding it): one LM step gives the K distributions of frame t from frames < t, and each code is
    arithmetic-coded with its own. A single batched pass over all frames would be faster, but would
    round differently from the decoder's steps."""
    K, T = codes.shape
    encoder, states, offset = ArithmeticEncoder(), None, 0
    previous = torch.zeros(1, K, 1, dtype=torch.long)  # [1, K, 1], 0 = no previous frame
    for t in range(T):
        probs, states, offset = lm(previous, states, offset)  # [1, card, K, 1]
        for k in range(K):
            encoder.push(int(codes[k, t]), quantized_cdf(probs[0, :, k, 0]))
        previous = 1 + codes[None, :, t:t + 1]
    return encoder.finish()


@torch.no_grad()
def lm_decode(data, lm, K, T):
    """bytes -> codes [K, T], the mirror of lm_encode (EOFError on truncated data)."""
    decoder, states, offset = ArithmeticDecoder(data), None, 0
    codes = torch.zeros(K, T, dtype=torch.long)
    previous = torch.zeros(1, K, 1, dtype=torch.long)
    for t in range(T):
        probs, states, offset = lm(previous, states, offset)  # [1, card, K, 1]
        for k in range(K):
            codes[k, t] = decoder.pull(quantized_cdf(probs[0, :, k, 0]))
        previous = 1 + codes[None, :, t:t + 1]
    return codes


def lm_bits(lm, codes):
    """codes [B, K, T] -> bits [B, K, T]: -log2 of the probability lm_encode codes each code with,
    for all frames in one teacher-forced pass (differentiable: its mean is the training loss, in
    bits per code = nats / ln 2). The inputs are lm_encode's: frame t gets 1 + the codes of frame
    t-1, 0 for t = 0, with states=None and offset 0, so the zero frame, the positions and the
    past_context window fall on the same frames as when streaming (Layer's mask counts back from
    each query). The probability is quantized_cdf's slice width over 2**bits, without floors:
        q = (1 - alpha) p + min_range / 2**bits,   alpha = min_range card / 2**bits,
    so a code the LM deems impossible costs <= 23 bits here too, as in the file. sum(lm_bits)
    predicts len(lm_encode(codes)) * 8 to < 0.1 % + the coder's last ~32 bits
    (tests/test_compress.py): the floors round q down by < 2**-24, and one frame at a time rounds
    floats a little differently."""
    total = 2 ** TOTAL_RANGE_BITS
    # the inputs [B, K, T], shifted by one frame: 0, then 1 + the codes of frames 0 .. T-2
    previous = torch.cat([torch.zeros_like(codes[:, :, :1]), 1 + codes[:, :, :-1]], dim=2)
    probs, _, _ = lm(previous)  # [B, card, K, T]
    p = probs.gather(1, codes[:, None]).squeeze(1)  # [B, K, T], the probability of the actual code
    alpha = MIN_RANGE * lm.config.card / total
    return -torch.log2((1 - alpha) * p + MIN_RANGE / total)


if __name__ == "__main__":
    torch.manual_seed(0)
    p = torch.softmax(2 * torch.randn(256), dim=0)  # a skewed distribution over 256 codes
    symbols = torch.multinomial(p, 5000, replacement=True).tolist()
    cdf, encoder = quantized_cdf(p), ArithmeticEncoder()
    for s in symbols:
        encoder.push(s, cdf)
    data = encoder.finish()
    decoder = ArithmeticDecoder(data)
    same = [decoder.pull(cdf) for _ in symbols] == symbols
    ideal = -p[symbols].log2().mean().item()  # the information content per code: no coder beats it
    bits_per_code = 8 * len(data) / len(symbols)
    print(f"{len(symbols)} codes of 8 bits: {bits_per_code:.3f} bits per code (ideal {ideal:.3f}), "
          f"decoded back: {same}")
    lm = EntropyLM(EntropyLMConfig(n_q=4, card=256, dim=32, num_heads=2, num_layers=1)).eval()
    codes = torch.randint(0, 256, (4, 50))  # [K, T]
    data = lm_encode(codes, lm)
    predicted = lm_bits(lm, codes[None]).sum().item() / 8  # the teacher-forced loss, in bytes
    same = torch.equal(lm_decode(data, lm, 4, 50), codes)
    print(f"codes {tuple(codes.shape)} with an untrained LM: {len(data)} bytes (fixed width: "
          f"{codes.numel()}, lm_bits predicts {predicted:.1f}), decoded back: {same}")
