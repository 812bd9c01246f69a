"""
LoRA, low-rank adaptation, written by hand for the LM: a frozen weight W0 [out, in] is read as
W0 + (alpha / r) B A, where A [r, in] and B [out, r] are the only trained parameters. B starts at
zero, so the adapted model starts equal to the base; merge_lora folds B A into W0 for export, so a
loader needs nothing new.

    replaced = add_lora(lm, rank=16)        # in place: LoRA layers in, every other weight frozen
    n_train, n_all, opt_bytes = trainable(lm)
    ...train, save lm.state_dict() (the base keys plus *.lora_A, *.lora_B)...
    merge_lora(lm)                          # plain nn.Linear / lm.Attention again, same keys

Targets (TARGETS; paths inside each lm.Layer, as in the state dict's keys): q, k, v and out_proj
of self- and cross-attention, and the feed-forward linear1, linear2. These are the matrices the
community's MusicGen LoRA fine-tunes adapt: Hugging Face's musicgen-dreamboothing targets
transformers' q_proj, k_proj, v_proj, out_proj, fc1, fc2 with r = alpha = 16 [4], and QLoRA finds
adapters on every linear layer of a block are needed to match full fine-tuning [3]. The LoRA paper
adapts attention only [1, Sec. 4.2, 7.1]: targets=('self_attn.in_proj_weight',
'cross_attention.in_proj_weight') does that. A melody LM (no cross-attention) gets the other four.

Not adapted: the K embeddings and the K output heads (musicgen-dreamboothing adapts them too).
They map the codec's tokens, which fine-tuning does not change, and the LoRA paper freezes all but
the adapted matrices [1, Sec. 4.2]. The LayerNorms stay frozen too. The conditioner's output_proj
lies outside the LM: whether it trains is the trainer's choice.

The q, k, v projections are fused, as in AudioCraft: one in_proj_weight [3D, D] that lm.Attention
multiplies by with F.linear, not an nn.Linear. They get one pair, A [r, D] and B [3D, r]
(LoRAAttention), as peft adapts a fused in_proj_weight (its nn.MultiheadAttention layer, and
target_parameters) [2]. Three pairs, one each for q, k, v (transformers' q_proj, k_proj, v_proj;
loralib's MergedLinear [1]), would hold 6 r D parameters per attention instead of 4 r D.

alpha defaults to the rank (scale 1), as in musicgen-dreamboothing. The paper sets alpha to the
first r it tries and holds it fixed as r changes [1, Sec. 4.1]: pass alpha for that.

References:
1) LoRA, Hu et al. 2021, arXiv:2106.09685, Sec. 4.1 (W0 + B A, B = 0 at the start, scale
   alpha / r, merged for inference). Official code: microsoft/LoRA loralib/layers.py (Linear;
   MergedLinear for a fused qkv; A initialised kaiming-uniform with a = sqrt(5))
2) peft: src/peft/tuners/lora/layer.py (Linear, MultiheadAttention, ParamWrapper),
   src/peft/tuners/lora/model.py (LoraModel.merge_and_unload)
3) QLoRA, Dettmers et al. 2023, arXiv:2305.14314, Sec. 4 (LoRA on all linear layers of a block)
4) ylacombe/musicgen-dreamboothing: dreambooth_musicgen.py (LoraConfig(r=16, lora_alpha=16, ...))
5) ZeRO, Rajbhandari et al. 2019, arXiv:1910.02054, Sec. 3.1 (Adam's memory per parameter)
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from lm import Attention, Layer, LMConfig

# paths inside an lm.Layer: the fused q, k, v weight and out_proj of both attentions, the
# feed-forward pair. A melody LM (no cross-attention) has the other four in each layer.
TARGETS = ('self_attn.in_proj_weight', 'self_attn.out_proj',
           'cross_attention.in_proj_weight', 'cross_attention.out_proj', 'linear1', 'linear2')

# ----------------------------------------------------------------------------- helpers


def check_lora(rank, alpha):
    """One-line errors for a rank below 1 or an alpha that is not positive."""
    if int(rank) != rank or rank < 1:
        raise ValueError(f"--lora {rank}: the rank must be a whole number, 1 or more "
                         f"(e.g. --lora 16)")
    if alpha <= 0:
        raise ValueError(f"--lora-alpha {alpha}: alpha must be positive (default: the rank)")


def lora_pair(weight, rank):
    """A [r, in] drawn as loralib and peft do (kaiming-uniform, a = sqrt(5): U(-1/sqrt(in),
    1/sqrt(in))) and B [out, r] = 0, for weight [out, in], on its device and in its dtype."""
    A = nn.Parameter(weight.new_empty(rank, weight.shape[1]))
    nn.init.kaiming_uniform_(A, a=math.sqrt(5))
    return A, nn.Parameter(weight.new_zeros(weight.shape[0], rank))


@torch.no_grad()
def merged_weight(weight, A, B, scale):
    """W0 + scale * B A, summed in fp32 and rounded once to W0's dtype (bf16 weights included)."""
    return nn.Parameter((weight.float() + scale * (B.float() @ A.float())).to(weight.dtype),
                        requires_grad=False)


def trainable(module):
    """(trainable parameters, all parameters, AdamW's optimizer state in bytes) of module.
    AdamW keeps two moments per trained parameter; counted in fp32, that is 8 bytes, plus a 4-byte
    fp32 master copy for a trained weight stored in bf16 or fp16: 12 bytes, ZeRO's K = 12 [5].
    torch.optim.AdamW itself keeps its moments in the parameter's dtype; this counts the
    mixed-precision recipe. Gradients (one per trained parameter, in its dtype) are not included."""
    params = list(module.parameters())
    train = [p for p in params if p.requires_grad]
    state = sum(p.numel() * (8 if p.dtype == torch.float32 else 12) for p in train)
    return sum(p.numel() for p in train), sum(p.numel() for p in params), state

# ----------------------------------------------------------------------------- modules


class LoRALinear(nn.Linear):
    """nn.Linear plus a low-rank update [1, Sec. 4.1]: y = x W0^T + b + (alpha / r) (x A^T) B^T,
    with W0 [out, in] and b the base layer's own tensors (shared, frozen, under their usual keys
    `weight`, `bias`) and A [r, in], B [out, r] = 0 trained. x A^T is [..., r]: the update costs
    r (in + out) multiply-adds per row, and B A [out, in] is never formed."""

    def __init__(self, base, rank, alpha):
        # on the meta device nn.Linear allocates nothing; the base's tensors replace its own
        super().__init__(base.in_features, base.out_features, bias=base.bias is not None,
                         device='meta')
        self.weight, self.bias = base.weight, base.bias
        self.weight.requires_grad_(False)
        if self.bias is not None:
            self.bias.requires_grad_(False)
        self.lora_A, self.lora_B = lora_pair(self.weight, rank)
        self.scale = alpha / rank

    def forward(self, x):
        return F.linear(x, self.weight, self.bias) + self.scale * F.linear(
            F.linear(x, self.lora_A), self.lora_B)                   # [..., r] -> [..., out]

    def merged(self):
        """A plain nn.Linear holding W0 + scale B A and the bias."""
        linear = nn.Linear(self.in_features, self.out_features, bias=self.bias is not None,
                           device='meta')
        linear.weight = merged_weight(self.weight, self.lora_A, self.lora_B, self.scale)
        linear.bias = self.bias
        return linear.train(self.training)

    def extra_repr(self):
        return f"{super().extra_repr()}, rank={self.lora_A.shape[0]}, scale={self.scale:g}"


class LoRAAttention(Attention):
    """lm.Attention whose fused q, k, v weight W0 [3D, D] gets one low-rank update, A [r, D] and
    B [3D, r] = 0: each projection (Attention.project: all rows, the q rows, or the k, v rows)
    is x W0[rows]^T + (alpha / r) (x A^T) B[rows]^T, as LoRALinear, so B A [3D, D] is never
    formed and the frozen W0 gets no gradient. W0 stays stored under its key `in_proj_weight`:
    checkpoints keep the base keys. out_proj is the base's own module (adapted separately, as a
    LoRALinear, when targeted)."""

    def __init__(self, base, rank, alpha):
        # not Attention.__init__: it would allocate a new in_proj_weight; the base's is kept
        nn.Module.__init__(self)
        self.num_heads, self.out_proj = base.num_heads, base.out_proj
        self.in_proj_weight = base.in_proj_weight.requires_grad_(False)  # [3D, D]
        self.lora_A, self.lora_B = lora_pair(self.in_proj_weight, rank)
        self.scale = alpha / rank

    def project(self, x, rows=slice(None)):
        low_rank = F.linear(F.linear(x, self.lora_A), self.lora_B[rows])  # [..., r] -> [..., rows]
        return F.linear(x, self.in_proj_weight[rows]) + self.scale * low_rank

    def merged(self):
        """A plain lm.Attention holding W0 + scale B A and this out_proj."""
        W = self.in_proj_weight
        config = LMConfig(dim=W.shape[1], num_heads=self.num_heads, cond_dim=W.shape[1])
        with torch.device('meta'):                  # built without memory, then given the tensors
            attn = Attention(config)
        attn.in_proj_weight = merged_weight(W, self.lora_A, self.lora_B, self.scale)
        attn.out_proj = self.out_proj
        return attn.train(self.training)

    def extra_repr(self):
        return f"rank={self.lora_A.shape[0]}, scale={self.scale:g}"

# ----------------------------------------------------------------------------- model surgery


def find_target(layer, target):
    """(parent, name, module) that `target`, a path inside an lm.Layer, names; None if this layer
    lacks it (a melody layer has no cross_attention). in_proj_weight names its Attention."""
    path = target[:-len('.in_proj_weight')] if target.endswith('.in_proj_weight') else target
    parent_path, _, name = path.rpartition('.')
    try:
        parent = layer.get_submodule(parent_path)                   # '' is the layer itself
    except AttributeError:
        return None
    old = getattr(parent, name, None)
    if old is None:
        return None
    fits = isinstance(old, Attention) if path != target else type(old) is nn.Linear
    if not fits:
        raise ValueError(f"LoRA target {target!r} is a {type(old).__name__}: LoRA adapts the "
                         f"nn.Linear layers and attention's in_proj_weight; pick from {TARGETS}")
    return parent, name, old


def add_lora(module, rank, alpha=None, targets=None):
    """Adapt every lm.Layer inside module (an LM, or a model holding one) in place: each target
    becomes a LoRALinear or LoRAAttention of this rank, sharing the base tensors (same device and
    dtype), and every other parameter of module is frozen. targets: paths inside a layer, default
    TARGETS (those a layer has); each one given must match. alpha defaults to the rank (scale
    alpha / rank = 1). Returns the adapted names, as in the state dict (an in_proj_weight
    for the fused q, k, v). A checkpoint of the adapted model holds the base keys plus *.lora_A,
    *.lora_B: an exact resume is the same add_lora call, then load_state_dict."""
    alpha = rank if alpha is None else alpha
    check_lora(rank, alpha)
    explicit, targets = targets is not None, TARGETS if targets is None else tuple(targets)
    if any(isinstance(m, (LoRALinear, LoRAAttention)) for m in module.modules()):
        raise ValueError("this model already has LoRA adapters: add_lora once, or merge_lora "
                         "first")
    layers = [(name, m) for name, m in module.named_modules() if isinstance(m, Layer)]
    # checked whole before anything changes; found again when replaced, so that an out_proj
    # lands in the LoRAAttention that replaced its Attention
    plan = [(f"{name}.{t}".lstrip('.'), layer, t) for t in targets for name, layer in layers
            if find_target(layer, t) is not None]
    missing = [t for t in targets if t not in {target for _, _, target in plan}]
    if not plan or (explicit and missing):
        raise ValueError(f"LoRA targets {missing or list(targets)} match no layer of this "
                         f"{type(module).__name__}: pick from {TARGETS}")
    for p in module.parameters():
        p.requires_grad_(False)
    for _, layer, target in plan:
        parent, name, old = find_target(layer, target)
        new = LoRAAttention(old, rank, alpha) if isinstance(old, Attention) else \
            LoRALinear(old, rank, alpha)
        setattr(parent, name, new.train(old.training))
    return [name for name, _, _ in plan]


def merge_lora(module):
    """Fold every adapter into its weight, W = W0 + (alpha / r) B A, in place: LoRALinear ->
    nn.Linear, LoRAAttention -> lm.Attention. The state dict then has exactly the keys it had before
    add_lora, so any loader reads it (peft's merge_and_unload). Merged weights stay frozen, as
    add_lora left the base. Returns module."""
    # children come after their parents in named_modules; each parent is looked up when its turn
    # comes, so an out_proj lands in the merged Attention
    for name, m in list(module.named_modules()):
        if isinstance(m, (LoRALinear, LoRAAttention)):
            parent_name, _, leaf = name.rpartition('.')
            setattr(module.get_submodule(parent_name), leaf, m.merged())
    return module


if __name__ == '__main__':
    import time
    from lm import LM, PRESETS
    t0 = time.time()
    torch.manual_seed(0)
    c = PRESETS['tiny']
    lm = LM(c).eval()
    codes = torch.randint(0, c.card, (2, c.n_q, 25))           # 0.5 s of codes
    condition = torch.randn(2, 12, c.cond_dim)                   # 12 text tokens
    base, _ = lm(codes, condition)
    keys = set(lm.state_dict())
    names = add_lora(lm, rank=16)
    n_train, n_all, state = trainable(lm)
    print(f"tiny LM, rank 16: {len(names)} layers adapted ({names[0]}, ...); trainable "
          f"{n_train / 1e3:.0f}k of {n_all / 1e6:.2f}M parameters ({100 * n_train / n_all:.1f} %), "
          f"AdamW state {state / 2**20:.2f} MiB")
    same = torch.equal(lm(codes, condition)[0].nan_to_num(), base.nan_to_num())
    print(f"B = 0 at the start: adapted logits equal the base's: {same}")
    for m in lm.modules():                                       # as if trained a little
        if isinstance(m, (LoRALinear, LoRAAttention)):
            nn.init.normal_(m.lora_B, std=0.02)
    adapted, _ = lm(codes, condition)
    merge_lora(lm)
    diff = (lm(codes, condition)[0] - adapted).nan_to_num().abs().max()
    print(f"after merge_lora: max |logits - adapted logits| = {diff:.1e}, same keys as the base: "
          f"{set(lm.state_dict()) == keys}")
    with torch.device('meta'):                                   # shapes only, no memory
        small = LM(PRESETS['musicgen-small'])
    add_lora(small, rank=16)
    n_train, n_all, state = trainable(small)
    print(f"musicgen-small, rank 16: trainable {n_train / 1e6:.2f}M of {n_all / 1e6:.0f}M "
          f"parameters, AdamW state {state / 2**20:.0f} MiB (full fine-tuning: "
          f"{8 * (n_all - n_train) / 2**30:.1f} GiB); {time.time() - t0:.1f} s")
