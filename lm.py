"""
The MusicGen / AudioGen language model: one causal transformer over K parallel EnCodec codebook
streams, interleaved by a codebook pattern (patterns.py, delay by default), conditioned on text by
cross-attention (or, for melody, by prepending the condition or adding it frame by frame), sampled
with classifier-free guidance and a KV cache. Parameter names are AudioCraft's state_dict keys: its
`state_dict.bin` loads with a loop (checkpoint.load_lm).

References:
1) MusicGen, Copet et al. 2023, arXiv:2306.05284. Official code: audiocraft/models/lm.py
   (LMModel), audiocraft/modules/transformer.py, audiocraft/models/genmodel.py
2) AudioGen, Kreuk et al. 2022, arXiv:2209.15352. Official code: audiocraft/models/audiogen.py
3) Classifier-free guidance, Ho & Salimans 2022, arXiv:2207.12598
4) Attention Is All You Need (sinusoidal positions), Vaswani et al. 2017, arXiv:1706.03762
5) Nucleus (top-p) sampling, Holtzman et al. 2019, arXiv:1904.09751
6) Gradient checkpointing, Chen et al. 2016, arXiv:1604.06174 (torch.utils.checkpoint)

Deviations from AudioCraft (none changes the official models' numbers): cross-attention keys and
values are computed once per window (AudioCraft: every step); a preallocated self-attention cache;
no `two_step_cfg`; CFG dropout is the trainer's (AudioCraft: in LMModel); past max_duration the
melody prepend is not re-windowed; callback counts the current window's steps; a prompt as long as
the window or longer is cut (AudioCraft asserts it fits; see LM.generate).
"""
import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from patterns import build_pattern, revert_pattern, step_frames, window_steps


@dataclass
class LMConfig:
    dim: int = 1024
    num_heads: int = 16
    num_layers: int = 24
    hidden_scale: int = 4              # feed-forward width = hidden_scale * dim
    n_q: int = 4                       # K, codebooks modelled in parallel
    card: int = 2048                   # codebook size; token id `card` is the special (empty) token
    pattern: str = 'delay'             # 'delay' | 'parallel' | 'flatten' | 'coarse_first'
    delays: tuple = (0, 1, 2, 3)       # per-codebook offsets (see patterns.pattern_steps)
    cross_attention: bool = True       # False (melody): text and chroma are prepended instead
    cross_attention_mask: bool = False # True: padded text positions are masked out (see Attention)
    cond_dim: int = 1024               # width of the condition after the conditioner's output_proj
    frame_rate: int = 50               # codec frames per second (all official codecs: 50 Hz)
    max_duration: float = 30.0         # training segment (s) = the longest generation window
    extend_stride: float = 18.0        # window hop (s) when generating past max_duration

    def __post_init__(self):
        self.delays = tuple(self.delays)
        if self.dim % self.num_heads:
            raise ValueError(f"dim={self.dim} is not divisible by num_heads={self.num_heads}; "
                             f"pick a divisor")
        if self.cond_dim != self.dim:  # the fused in_proj maps the condition with [dim, dim] blocks
            raise ValueError(f"cond_dim={self.cond_dim} must equal dim={self.dim}; project the "
                             f"condition to dim")


PRESETS = {
    'musicgen-small': LMConfig(),
    'musicgen-medium': LMConfig(dim=1536, num_heads=24, num_layers=48, cond_dim=1536),
    'musicgen-large': LMConfig(dim=2048, num_heads=32, num_layers=48, cond_dim=2048),
    'musicgen-melody': LMConfig(dim=1536, num_heads=24, num_layers=48, cond_dim=1536,
                                cross_attention=False),
    'audiogen-medium': LMConfig(dim=1536, num_heads=24, num_layers=48, cond_dim=1536,
                                max_duration=10.0, extend_stride=2.0),
    # the default model (checkpoints/lm.pt), trained by train_lm.py --duration 3:
    # max_duration = the training clip, extend_stride = a third of it
    'tiny': LMConfig(dim=256, num_heads=8, num_layers=6, card=256, cond_dim=256, max_duration=3.0,
                     extend_stride=1.0, cross_attention_mask=True),
}

# ----------------------------------------------------------------------------- helpers


def sin_embedding(positions, dim, max_period=10000.0):
    """Positions [T] -> [T, dim]: concat(cos(p / P^(i/(h-1))), sin(...)), i < h = dim/2, cos first,
    the formula of AudioCraft's create_sin_embedding (the last frequency is exactly 1/P)."""
    half = dim // 2
    i = torch.arange(half, dtype=torch.float32, device=positions.device)
    phase = positions.float()[:, None] / max_period ** (i / (half - 1))      # [T, half]
    return torch.cat([torch.cos(phase), torch.sin(phase)], dim=-1)            # [T, dim]


def cfg_logits(cond, uncond, cfg_coef):
    """CFG on raw logits: uncond + cfg_coef * (cond - uncond); cfg_coef 1 gives cond, 0 uncond,
    > 1 goes past cond."""
    return uncond + cfg_coef * (cond - uncond)


def sample_next_token(logits, temperature=1.0, top_k=250, top_p=0.0, generator=None):
    """logits [B, K, card] -> tokens [B, K] (K codebooks in parallel), AudioCraft's rules:
    temperature <= 0 is greedy; else p = softmax(logits / temperature), then top_p > 0 keeps the
    smallest set of tokens with mass >= p (a token stays while the mass before it is <= p), else
    top_k > 0 keeps the k most likely; one multinomial draw."""
    if temperature <= 0:
        return logits.argmax(dim=-1)
    probs = F.softmax(logits.float() / temperature, dim=-1)                  # [B, K, card]
    if top_p > 0:
        sorted_p, order = probs.sort(dim=-1, descending=True)
        keep = sorted_p.cumsum(dim=-1) - sorted_p <= top_p
        probs = torch.zeros_like(probs).scatter_(-1, order, sorted_p * keep)
    elif top_k > 0:
        kth = probs.topk(min(top_k, probs.shape[-1]), dim=-1).values[..., -1:]  # [B, K, 1]
        probs = probs * (probs >= kth)
    flat = torch.multinomial(probs.flatten(0, -2), 1, generator=generator)  # [B*K, 1]; renormalizes
    return flat.view(probs.shape[:-1])


def codebook_cross_entropy(logits, targets):
    """Per-codebook cross-entropy [K] over valid positions: logits [B, K, T, card] (NaN: no
    prediction), targets [B, K, T] (< 0: padding). LM.forward's loss is its mean over K
    (AudioCraft: solvers/musicgen.py)."""
    valid = (targets >= 0) & ~logits[..., 0].isnan()                          # [B, K, T]
    return torch.stack([F.cross_entropy(logits[:, k][valid[:, k]], targets[:, k][valid[:, k]])
                        for k in range(logits.shape[1])])

# ----------------------------------------------------------------------------- modules


class Attention(nn.Module):
    """Multi-head attention with AudioCraft's fused in_proj_weight [3D, D] (q, k, v rows), no
    biases. Self-attention is causal; cross-attention (source given) takes k, v from the condition.
    AudioCraft zeroes padded text positions but still attends to them (logit q.0 = 0): a prompt then
    reads differently alone than padded in a batch. With cross_attention_mask (transformers'
    MusicGen, this repo's tiny model) source_mask [B, 1, 1, S] hides them."""

    def __init__(self, config):
        super().__init__()
        self.num_heads = config.num_heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * config.dim, config.dim))
        self.out_proj = nn.Linear(config.dim, config.dim, bias=False)

    def project(self, x, rows=slice(None)):
        """x [B, T, D] -> x W[rows]^T with W the fused in_proj_weight: rows [0, 3D) give q, k, v,
        [0, D) q, [D, 3D) k, v. (lora.LoRAAttention adds its low-rank update here.)"""
        return F.linear(x, self.in_proj_weight[rows])

    def forward(self, x, source=None, cache=None, offset=0, source_mask=None):
        B, T, D = x.shape
        hd = D // self.num_heads
        def heads(z):  # [B, *, D] -> [B, H, *, hd]
            return z.view(B, -1, self.num_heads, hd).transpose(1, 2)
        if source is None:
            q, k, v = map(heads, self.project(x).split(D, dim=-1))
        else:
            q = heads(self.project(x, slice(None, D)))
            if cache is not None and 'k' in cache:   # the condition is fixed: project it once
                k, v = cache['k'], cache['v']
            else:
                k, v = map(heads, self.project(source, slice(D, None)).split(D, dim=-1))
                if cache is not None:
                    cache['k'], cache['v'] = k, v
        if source is None and cache is not None:     # append to the preallocated cache
            if 'k' not in cache:
                cache['k'] = k.new_empty(B, self.num_heads, cache['size'], hd)  # [B, H, size, hd]
                cache['v'] = torch.empty_like(cache['k'])
            cache['k'][:, :, offset:offset + T] = k
            cache['v'][:, :, offset:offset + T] = v
            k = cache['k'][:, :, :offset + T]                            # [B, H, L, hd]
            v = cache['v'][:, :, :offset + T]
        # masks: cross-attention takes source_mask; one new step sees every key (no mask); T steps
        # without a past use is_causal; T new steps after L - T cached ones: query i sees keys
        # j <= i + L - T
        L = k.shape[2]
        causal = source is None and T > 1
        mask = None
        if source is not None:
            mask = source_mask
        elif causal and L > T:
            mask = torch.ones(T, L, dtype=torch.bool, device=x.device).tril(L - T)   # [T, L]
        is_causal = causal and L == T
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=is_causal)
        return self.out_proj(y.transpose(1, 2).reshape(B, T, D))   # [B, H, T, hd] -> [B, T, D]


class Layer(nn.Module):
    """Pre-norm layer: x += self_attn(norm1 x); x += cross_attention(norm_cross x, cond);
    x += linear2(gelu(linear1(norm2 x))). LayerNorm eps 1e-5 with bias; exact (erf) GELU."""

    def __init__(self, config):
        super().__init__()
        D, H = config.dim, config.hidden_scale * config.dim
        self.self_attn, self.norm1, self.norm2 = Attention(config), nn.LayerNorm(D), nn.LayerNorm(D)
        if config.cross_attention:
            self.cross_attention, self.norm_cross = Attention(config), nn.LayerNorm(D)
        self.linear1, self.linear2 = nn.Linear(D, H, bias=False), nn.Linear(H, D, bias=False)

    def forward(self, x, condition=None, cache=None, offset=0, cross_mask=None):
        """cache: this layer's {'self', 'cross'} caches; cross_mask: the cross-attention mask
        [B, 1, 1, S_cond] (True = attend) or None, see Attention."""
        self_cache = cache['self'] if cache is not None else None
        cross_cache = cache['cross'] if cache is not None else None
        x = x + self.self_attn(self.norm1(x), cache=self_cache, offset=offset)
        if condition is not None:
            x = x + self.cross_attention(self.norm_cross(x), condition, cross_cache, 0, cross_mask)
        return x + self.linear2(F.gelu(self.linear1(self.norm2(x))))

# ----------------------------------------------------------------------------- model


class LM(nn.Module):
    """Embeddings (summed over codebooks) + sinusoidal positions -> layers -> out_norm -> K
    heads. grad_checkpointing (train_lm.py --grad-checkpointing; not in the config, no saved file
    changes): a training forward keeps only each layer's input [B, S, D] and recomputes the layer
    in backward, one more forward of the layers instead of storing what is inside them (attention
    maps, the 4 D wide feed-forward)."""

    def __init__(self, config):
        super().__init__()
        self.config = c = config
        # card + 1 rows: the last is the special token
        self.emb = nn.ModuleList([nn.Embedding(c.card + 1, c.dim) for _ in range(c.n_q)])
        layers = nn.ModuleList([Layer(c) for _ in range(c.num_layers)])
        self.transformer = nn.ModuleDict(dict(layers=layers))  # AudioCraft's transformer.layers.{i}
        self.out_norm = nn.LayerNorm(c.dim)
        self.linears = nn.ModuleList([nn.Linear(c.dim, c.card, bias=False) for _ in range(c.n_q)])
        self.grad_checkpointing = False
        # AudioCraft init ('gaussian', depthwise 'current'): truncated normal, std 1/sqrt(fan_in),
        # divided by sqrt(2 * depth) in layer `depth`; the fused in_proj escapes that loop:
        # nn.Linear's U(-1/sqrt(D), 1/sqrt(D)).
        def init(w, std):
            nn.init.trunc_normal_(w, std=std, a=-3 * std, b=3 * std)
        for m in [*self.emb, *self.linears]:
            init(m.weight, 1 / math.sqrt(c.dim))
        for depth, layer in enumerate(self.transformer.layers, start=1):
            for name, p in layer.named_parameters():
                if name.endswith('in_proj_weight'):
                    nn.init.uniform_(p, -1 / math.sqrt(c.dim), 1 / math.sqrt(c.dim))
                elif 'norm' not in name:
                    init(p, 1 / math.sqrt(p.shape[1]) / math.sqrt(2 * depth))

    def check(self, codes, condition=None, prepend=None, frames=None):
        """One-line ValueErrors naming the bad value and the fix."""
        c = self.config
        if codes.dim() != 3 or codes.shape[1] != c.n_q or codes.is_floating_point():
            raise ValueError(f"codes must be integer [B, K={c.n_q}, T]; got {codes.dtype} "
                             f"{tuple(codes.shape)}: encode with {c.n_q} codebooks")
        if codes.numel() and (codes.min() < 0 or codes.max() >= c.card):
            raise ValueError(f"codes must lie in [0, {c.card}); got [{int(codes.min())}, "
                             f"{int(codes.max())}]: use a codec with {c.card} bins")
        sizes = [x.shape[0] for x in (codes, condition, prepend, frames) if x is not None]
        if len(set(sizes)) > 1:
            raise ValueError(f"batch sizes differ (codes, condition, prepend, frames): {sizes}: "
                             f"give one row each")
        if c.cross_attention and condition is None:
            raise ValueError("this LM cross-attends to text: pass condition [B, S, dim] from the "
                             "conditioner")
        if not c.cross_attention and condition is not None:
            raise ValueError("this LM has no cross-attention (melody): pass the condition as "
                             "prepend=")
        for name, x in (('condition', condition), ('prepend', prepend), ('frames', frames)):
            if x is not None and (x.dim() != 3 or x.shape[-1] != c.cond_dim):
                raise ValueError(f"{name} must be [B, S, {c.cond_dim}]; got {tuple(x.shape)}: "
                                 f"project it to cond_dim={c.cond_dim} with the conditioner's "
                                 f"output_proj")

    def step_logits(self, seq, condition=None, prepend=None, cache=None, condition_mask=None,
                    frames=None):
        """Pattern sequence [B, K, S] -> logits [B, K, S, card] (AudioCraft's LMModel.forward).
        prepend [B, P, D] goes before the sequence (positions count it, its outputs are trimmed);
        frames [B, S, D], a condition per step, is added to the step's input (AudioCraft's
        ConditionFuser 'sum'). With a cache (new_cache) only the new steps are given; positions
        continue. condition_mask [B, S_cond] (True = token): only with cross_attention_mask."""
        offset = cache['offset'] if cache is not None else 0     # position of the first given step
        cross_mask = None
        masked = self.config.cross_attention_mask and condition_mask is not None
        if masked and condition is not None:
            m = condition_mask.bool()
            # a row without tokens (the null condition) attends to all its zeros, as AudioCraft
            cross_mask = (m | ~m.any(-1, keepdim=True))[:, None, None, :]      # [B, 1, 1, S_cond]
        x = sum(emb(seq[:, k]) for k, emb in enumerate(self.emb))                   # [B, S, D]
        if frames is not None:
            x = x + frames.to(x.dtype)                                               # [B, S, D]
        if condition is not None:
            condition = condition.to(x.dtype)                             # bf16 LM: bf16 condition
        if prepend is not None:
            x = torch.cat([prepend.to(x.dtype), x], dim=1)                           # [B, P + S, D]
        positions = torch.arange(offset, offset + x.shape[1], device=x.device)       # [P + S]
        x = x + sin_embedding(positions, x.shape[-1]).to(x.dtype)
        # a training forward (no cache, gradients on) with grad_checkpointing: non-reentrant
        # checkpoint, which recomputes under the same autocast and lets FSDP re-gather the layer
        recompute = self.grad_checkpointing and cache is None and torch.is_grad_enabled()
        for i, layer in enumerate(self.transformer.layers):
            layer_cache = cache['layers'][i] if cache is not None else None
            if recompute:
                x = checkpoint(layer, x, condition, None, offset, cross_mask, use_reentrant=False)
            else:
                x = layer(x, condition, layer_cache, offset, cross_mask)
        if cache is not None:
            cache['offset'] += x.shape[1]
        x = self.out_norm(x[:, -seq.shape[2]:])                                      # [B, S, D]
        return torch.stack([lin(x) for lin in self.linears], dim=1)              # [B, K, S, card]

    def new_cache(self, size):
        """Empty KV cache for up to `size` positions (prepend included)."""
        layers = [dict(self=dict(size=size), cross={}) for _ in self.transformer.layers]
        return dict(offset=0, layers=layers)

    def forward(self, codes, condition=None, condition_mask=None, targets=None, prepend=None,
                frames=None):
        """codes [B, K, T], condition [B, S, D] -> (logits [B, K, T, card], loss or None);
        logits[:, q, t] predicts codes[:, q, t] (aligned, no shift), NaN where the pattern gives
        none. condition_mask [B, S] (1 = token) zeroes padding as the conditioner does (masking:
        Attention); frames [B, T, D]: a condition per frame, added to the steps that predict it
        (step_frames); loss = codebook_cross_entropy(logits, targets).mean()."""
        c = self.config
        self.check(codes, condition, prepend, frames)
        if condition is not None and condition_mask is not None:
            condition = condition * condition_mask[..., None].to(condition.dtype)
        seq, _ = build_pattern(codes, c.card, c.pattern, c.delays, valid_only=True)  # [B, K, S_v]
        T = codes.shape[2]
        if frames is not None:                          # [B, T, D] -> [B, S_v, D]
            frames = frames[:, step_frames(seq.shape[2], T, c.pattern, c.delays).to(frames.device)]
        logits = self.step_logits(seq, condition, prepend, None, condition_mask, frames)
        logits, _ = revert_pattern(logits, T, float('nan'), c.pattern, c.delays, logits=True)
        loss = None if targets is None else codebook_cross_entropy(logits, targets).mean()
        return logits, loss                                               # [B, K, T, card]

    def windows(self, duration, prompt_frames=0):
        """The windows generate() samples, [(start, frames, given, steps)] in order: window i covers
        output frames [start, start + frames), the first `given` known (its prompt), the rest filled
        in `steps` sampling steps (the callback's total). Of T = int(duration * frame_rate) frames,
        with W the window and S the stride in frames (AudioCraft genmodel._generate_tokens): one
        window if T <= W, else each next one starts S frames later, prompted with the last W - S
        frames of the one before; a prompt of P >= W frames starts the first at P - (W - S) (see
        generate). Example, delays (0, 1, 2, 3), W = 50, S = 30, P = 0, T = 75:
        [(0, 50, 0, 53), (30, 45, 20, 28)]."""
        c, fr = self.config, self.config.frame_rate
        T = int(duration * fr)                                         # output frames
        W = int(min(duration, c.max_duration) * fr)                    # window
        S = int(c.extend_stride * fr)                                  # stride
        if T < 1 or prompt_frames >= T:
            raise ValueError(f"duration={duration} s gives {T} frames at {fr} Hz, not more than "
                             f"the {prompt_frames}-frame prompt: ask for a duration longer than "
                             f"the prompt")
        if T > W and not 0 < S < W:
            raise ValueError(f"extend_stride={c.extend_stride} s must lie in (0, "
                             f"max_duration={c.max_duration}) s")
        start = prompt_frames - (W - S) if prompt_frames >= W else 0   # first frame the LM sees
        end, plan = prompt_frames, []                                  # end: frames made so far
        while end < T:
            n = min(T - start, W)                          # this window's frames, prompt included
            first, steps = window_steps(n, end - start, c.n_q, c.pattern, c.delays)
            plan.append((start, n, end - start, steps - first))
            end = start + n
            start = start + S
        return plan

    @torch.no_grad()
    def generate(self, condition=None, condition_mask=None, prepend=None, null_prepend=None,
                 duration=None, prompt=None, cfg_coef=3.0, temperature=1.0, top_k=250, top_p=0.0,
                 generator=None, callback=None, use_cache=True, frames=None, null_frames=None):
        """Sample codes [B, K, int(duration * frame_rate)] (duration defaults to max_duration)
        starting with the prompt codes [B, K, P] verbatim, window by window (LM.windows: W frames,
        hop S = extend_stride). CFG runs conditional and null rows as one 2B batch; the null text
        is zeros with no token, exactly AudioCraft's (embeddings times an all-zero mask); melody's
        null prepend is not zeros: pass null_prepend. A prompt of P >= W frames (AudioCraft asserts
        P < W) stays whole in the output, but the LM sees only its last W - S frames: the newest
        audio is what the new frames continue, positions past W were never trained, and W - S
        frames is every later window's context, leaving S to add. callback(done, total) counts the
        current window's steps; condition_mask: see forward. frames, null_frames [B, >= T, D]: a
        condition per output frame and its null (the melody's 'sum' fuse); each window reads the
        frames it covers."""
        c = self.config
        if prompt is None:   # an empty prompt [B, K, 0]
            B = next((x.shape[0] for x in (condition, prepend) if x is not None), 1)
            prompt = torch.zeros(B, c.n_q, 0, dtype=torch.long)
        self.check(prompt, condition, prepend, frames)
        prompt = prompt.to(self.out_norm.weight.device)
        plan = self.windows(c.max_duration if duration is None else duration, prompt.shape[2])
        no_null = prepend is not None and null_prepend is None
        if no_null or (frames is not None and null_frames is None):
            raise ValueError("a melody (prepend or frames) needs its null (null_prepend, "
                             "null_frames) for CFG")
        needed = plan[-1][0] + plan[-1][1]              # the end of the last window
        if frames is not None and frames.shape[1] < needed:
            raise ValueError(f"frames covers {frames.shape[1]} frames; this duration needs "
                             f"{needed}")
        # [2B, ...]: conditional rows, then null rows; one conditioning for all windows
        if condition is not None:  # null rows: no token, all zeros
            mask = torch.ones(condition.shape[:2]) if condition_mask is None else condition_mask
            condition_mask = torch.cat([mask.bool(), torch.zeros_like(mask, dtype=torch.bool)])
            condition_mask = condition_mask.to(condition.device)                     # [2B, S]
            condition = torch.cat([condition, torch.zeros_like(condition)])        # [2B, S, D]
            condition = condition * condition_mask[..., None].to(condition.dtype)
        if prepend is not None:
            prepend = torch.cat([prepend, null_prepend])                          # [2B, P, D]
        if frames is not None:
            frames = torch.cat([frames, null_frames])                             # [2B, T, D]
        # CFG needs something to drop: with no condition at all, B rows and no null half
        guided = condition is not None or prepend is not None or frames is not None

        def draw(logits):  # [2B or B, K, card] -> tokens [B, K]
            if guided:
                logits = cfg_logits(*logits.chunk(2), cfg_coef)
            return sample_next_token(logits, temperature, top_k, top_p, generator)

        chunks, last = [prompt], prompt                 # last: the latest frames, [B, K, *]
        for start, n, given, _ in plan:
            window = frames[:, start:start + n] if frames is not None else None  # [2B, n, D]
            context = last[..., last.shape[2] - given:]  # [B, K, given]
            last = self.sample_window(context, n, draw, guided, condition, condition_mask,
                                      prepend, window, use_cache, callback)       # [B, K, n]
            chunks.append(last[..., given:])            # only the new frames
        return torch.cat(chunks, dim=-1)

    def sample_window(self, prompt, num_frames, draw, guided, condition=None, condition_mask=None,
                      prepend=None, frames=None, use_cache=True, callback=None):
        """One window (AudioCraft's LMModel.generate), step by step: prompt [B, K, P] -> codes
        [B, K, num_frames]. draw(the last step's logits) -> tokens [B, K]; guided: the conditions
        (frames [*, num_frames, D]) hold 2B rows, conditional then null, and each step runs the
        sequence twice."""
        c = self.config
        B, K, P = prompt.shape
        codes = torch.full((B, K, num_frames), -1, dtype=torch.long, device=prompt.device)
        codes[..., :P] = prompt                                # [B, K, num_frames], -1: unknown
        seq, mask = build_pattern(codes, c.card, c.pattern, c.delays)    # [B, K, S], [K, S]
        start = window_steps(num_frames, P, K, c.pattern, c.delays)[0]   # the first step of frame P
        if frames is not None:                           # [*, num_frames, D] -> [*, S, D]
            frame_of_step = step_frames(seq.shape[2], num_frames, c.pattern, c.delays)
            frames = frames[:, frame_of_step.to(frames.device)]
        cache = None
        if use_cache:                                          # room for the prepend and S steps
            cache = self.new_cache((prepend.shape[1] if prepend is not None else 0) + seq.shape[2])
        prev = 0                                               # steps [0, prev) are in the cache
        for s in range(start, seq.shape[2]):                   # step s is sampled from steps < s
            x = seq[..., prev:s] if use_cache else seq[..., :s]      # cached: only the new steps
            x = torch.cat([x, x]) if guided else x                   # [2B, K, *]
            first = not use_cache or prev == 0                 # prepend enters on the first call
            steps = frames[:, s - x.shape[2]:s] if frames is not None else None  # their melody
            logits = self.step_logits(x, condition, prepend if first else None, cache,
                                      condition_mask, steps)
            logits = logits[:, :, -1].float()                        # [2B, K, card]; CFG in fp32
            token = torch.where(mask[:, s], draw(logits), c.card)    # [B, K]; holes stay special
            seq[..., s] = torch.where(seq[..., s] == -1, token, seq[..., s])  # keep the prompt
            prev = s
            if callback is not None:
                callback(s - start + 1, seq.shape[2] - start)
        return revert_pattern(seq, num_frames, -1, c.pattern, c.delays)[0]   # [B, K, num_frames]


if __name__ == '__main__':
    import time
    torch.manual_seed(0)
    c = PRESETS['tiny']
    lm = LM(c).eval()
    print(f"tiny LM: {sum(p.numel() for p in lm.parameters()) / 1e6:.2f}M parameters, {c}")
    codes = torch.randint(0, c.card, (2, c.n_q, 50))       # 1 s of codes
    condition = torch.randn(2, 12, c.cond_dim)               # 12 text tokens
    logits, loss = lm(codes, condition, targets=codes)
    print(f"codes {tuple(codes.shape)} -> logits {tuple(logits.shape)}, "
          f"loss {loss:.3f} (uniform guess: ln card = {math.log(c.card):.3f})")
    t0 = time.time()
    out = lm.generate(condition[:1], duration=0.5, generator=torch.Generator().manual_seed(0))
    steps = out.shape[2] + max(c.delays)                     # T + max_delay sequence steps
    print(f"generated {tuple(out.shape)} with CFG in {steps} steps, {time.time() - t0:.2f} s")
