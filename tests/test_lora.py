"""
Tests for lora.py: python -m pytest -q tests/test_lora.py (CPU, seconds).

(a) Right after add_lora the logits equal the base LM's exactly (B = 0).
(b) With random A, B: merged logits equal unmerged (1e-5) and greedy codes are identical;
    merge_lora leaves exactly the base's keys.
(c) Only lora_* parameters train; a few AdamW steps on a tiny batch lower the loss while the base
    weights stay bit-identical. The trainable count, derived by hand.
(d) Exact resume: add_lora on a fresh LM, then load_state_dict(adapted.state_dict()), gives the
    same logits.
(e) peft (test-only, skipped without it): its LoRA on a copy of the same LM, the same A, B copied
    in, gives the same logits (1e-6).
(f) Bad input: a rank below 1, alpha <= 0, a second add_lora, a target that is not there or not
    a linear map; a refused call leaves the model as it was.
"""
import copy

import pytest
import torch
import torch.nn as nn

from lm import LM, LMConfig
from lora import TARGETS, LoRAAttention, LoRALinear, add_lora, merge_lora, trainable

TINY = LMConfig(dim=64, num_heads=4, num_layers=2, card=32, cond_dim=64, max_duration=1.0,
                extend_stride=0.6)
RANK, ALPHA = 4, 8                                    # scale 2: alpha is not silently the rank

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


def tiny_lm(seed=0, **kw):
    torch.manual_seed(seed)
    return LM(LMConfig(**{**TINY.__dict__, **kw})).eval()


def batch():
    g = torch.Generator().manual_seed(1)
    codes = torch.randint(0, TINY.card, (2, TINY.n_q, 12), generator=g)   # [B, K, T]
    condition = torch.randn(2, 5, TINY.dim, generator=g)                   # [B, S, D]
    return codes, condition


def logits(lm):
    return lm(*batch())[0]                                # [B, K, T, card], NaN: no prediction


def randomize(lm, seed=2):
    """As if trained: A and B drawn at random (B = 0 would hide every mistake in the update)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in lm.modules():
            if isinstance(m, (LoRALinear, LoRAAttention)):
                m.lora_A.copy_(torch.randn(m.lora_A.shape, generator=g) * 0.1)
                m.lora_B.copy_(torch.randn(m.lora_B.shape, generator=g) * 0.1)
    return lm


def exact(a, b):
    torch.testing.assert_close(a, b, rtol=0, atol=0, equal_nan=True)

# ----------------------------------------------------------------------------- (a), (b)


def test_starts_equal_to_base():
    lm = tiny_lm()
    base = logits(lm)
    names = add_lora(lm, RANK, ALPHA)
    assert len(names) == TINY.num_layers * len(TARGETS)
    exact(logits(lm), base)


def test_merge_matches_unmerged_and_keeps_keys():
    lm = tiny_lm()
    keys, base = set(lm.state_dict()), logits(lm)
    add_lora(lm, RANK, ALPHA)
    randomize(lm)
    adapted = logits(lm)
    condition = batch()[1][:1]
    gen = dict(duration=0.3, temperature=0, cfg_coef=3.0)                   # greedy, with CFG
    codes = lm.generate(condition, **gen)
    merge_lora(lm)
    assert not any(isinstance(m, (LoRALinear, LoRAAttention)) for m in lm.modules())
    assert set(lm.state_dict()) == keys
    merged = logits(lm)
    assert (adapted - base).nan_to_num().abs().max() > 0.1         # the adapters changed the LM
    torch.testing.assert_close(merged, adapted, rtol=0, atol=1e-5, equal_nan=True)
    assert torch.equal(lm.generate(condition, **gen), codes)


def test_linear_with_bias():
    """The LM's linears have no bias; a LoRALinear keeps one under its key and in the merge."""
    torch.manual_seed(0)
    base = nn.Linear(6, 5)
    x = torch.randn(3, 6)
    lora = LoRALinear(base, rank=2, alpha=2)
    assert set(lora.state_dict()) == {'weight', 'bias', 'lora_A', 'lora_B'}
    exact(lora(x), base(x))
    nn.init.normal_(lora.lora_B)
    torch.testing.assert_close(lora.merged()(x), lora(x), rtol=0, atol=1e-6)
    assert set(lora.merged().state_dict()) == {'weight', 'bias'}

# ----------------------------------------------------------------------------- (c)


def test_only_adapters_train_and_loss_falls():
    lm = tiny_lm()
    add_lora(lm, RANK, ALPHA)
    base = {k: v.clone() for k, v in lm.state_dict().items() if 'lora_' not in k}
    train = {n for n, p in lm.named_parameters() if p.requires_grad}
    assert train == {n for n, _ in lm.named_parameters() if n.endswith(('lora_A', 'lora_B'))}
    opt = torch.optim.AdamW([p for p in lm.parameters() if p.requires_grad], lr=1e-2)
    codes, condition = batch()
    losses = []
    lm.train()
    for _ in range(8):
        _, loss = lm(codes, condition, targets=codes)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.1, losses
    for k, v in lm.state_dict().items():
        if 'lora_' not in k:
            assert torch.equal(v, base[k]), k


def test_trainable_count_by_hand():
    """Per layer, D = 64, H = 4 D = 256, r = 4, each adapter holding r (in + out) parameters:
    two attentions of in_proj r (D + 3D) = 1024 and out_proj r (D + D) = 512, linear1 and linear2
    r (D + H) = 1280 each: 2 (1024 + 512) + 2 * 1280 = 5632; 2 layers: 11264, AdamW's two fp32
    moments 8 bytes each. A melody LM (no cross-attention): 1536 + 2560 = 4096 per layer. bf16
    weights: a bf16 adapter, 12 bytes (fp32 master copy and moments)."""
    lm = tiny_lm()
    n_all = sum(p.numel() for p in lm.parameters())
    add_lora(lm, RANK, ALPHA)
    assert trainable(lm) == (11264, n_all + 11264, 8 * 11264)
    melody = tiny_lm(cross_attention=False)
    names = add_lora(melody, RANK)
    assert len(names) == 2 * 4 and not any('cross_attention' in n for n in names)
    assert trainable(melody)[0] == 2 * 4096
    half = tiny_lm().to(torch.bfloat16)
    add_lora(half, RANK)
    assert half.transformer.layers[0].linear1.lora_A.dtype == torch.bfloat16
    assert trainable(half)[2] == 12 * 11264

# ----------------------------------------------------------------------------- (d)


def test_state_dict_round_trip_is_exact():
    adapted = tiny_lm()
    add_lora(adapted, RANK, ALPHA)
    randomize(adapted)
    state = adapted.state_dict()
    base_keys = set(tiny_lm().state_dict())
    lora_keys = set(state) - base_keys
    assert set(state) >= base_keys and all(k.endswith(('.lora_A', '.lora_B')) for k in lora_keys)
    assert len(lora_keys) == 2 * TINY.num_layers * len(TARGETS)
    fresh = tiny_lm(seed=5)                                # other base weights, other A
    add_lora(fresh, RANK, ALPHA)
    fresh.load_state_dict(state)
    exact(logits(fresh), logits(adapted))

# ----------------------------------------------------------------------------- (e)


def test_matches_peft():
    """peft (>= 0.17) wraps these plain modules: target_modules for the nn.Linear layers, and
    target_parameters for the fused in_proj_weight (one pair A [r, D], B [3D, r], as ours). Its
    names hold ours: strip 'base_layer.' and '.default.weight'."""
    peft = pytest.importorskip("peft", minversion="0.17", reason="peft is a test-only extra "
                               "(tests/requirements.txt); target_parameters needs peft >= 0.17")
    lm = tiny_lm()
    ours = copy.deepcopy(lm)
    add_lora(ours, RANK, ALPHA)
    randomize(ours)
    config = peft.LoraConfig(r=RANK, lora_alpha=ALPHA, target_parameters=['in_proj_weight'],
                             target_modules=['out_proj', 'linear1', 'linear2'])
    theirs = peft.inject_adapter_in_model(config, copy.deepcopy(lm))
    theirs_lora = {n.replace('base_layer.', '').replace('.default.weight', ''): p
                   for n, p in theirs.named_parameters() if 'lora_' in n}
    ours_lora = {n: p for n, p in ours.named_parameters() if 'lora_' in n}
    assert theirs_lora.keys() == ours_lora.keys()       # the same layers adapted
    with torch.no_grad():
        for n, p in ours_lora.items():
            assert theirs_lora[n].shape == p.shape, n
            theirs_lora[n].copy_(p)
    # peft's in_proj_weight is W0 + s B A; ours adds s (x A^T) B^T: one sum, rounded in two orders
    torch.testing.assert_close(logits(theirs), logits(ours), rtol=0, atol=1e-5, equal_nan=True)

# ----------------------------------------------------------------------------- (f)


@pytest.mark.parametrize('rank, alpha, message', [
    (0, None, r"--lora 0: the rank must be a whole number, 1 or more"),
    (-2, None, r"--lora -2: the rank must"),
    (2.5, None, r"--lora 2.5: the rank must"),
    (4, 0, r"--lora-alpha 0: alpha must be positive"),
])
def test_bad_rank_or_alpha(rank, alpha, message):
    lm = tiny_lm()
    with pytest.raises(ValueError, match=message):
        add_lora(lm, rank, alpha)
    assert all(p.requires_grad for p in lm.parameters())       # refused: nothing changed


@pytest.mark.parametrize('targets, message', [
    (('linear3',), r"LoRA targets \['linear3'\] match no layer"),
    (('norm1',), r"'norm1' is a LayerNorm"),
    (('self_attn',), r"'self_attn' is a Attention"),
])
def test_bad_targets(targets, message):
    lm = tiny_lm()
    keys = set(lm.state_dict())
    with pytest.raises(ValueError, match=message):
        add_lora(lm, RANK, targets=targets)
    assert set(lm.state_dict()) == keys and all(p.requires_grad for p in lm.parameters())


def test_explicit_cross_attention_target_on_melody_and_twice():
    with pytest.raises(ValueError, match=r"\['cross_attention.out_proj'\] match no layer"):
        add_lora(tiny_lm(cross_attention=False), RANK, targets=('linear1',
                                                                'cross_attention.out_proj'))
    lm = tiny_lm()
    add_lora(lm, RANK)
    with pytest.raises(ValueError, match="already has LoRA adapters: add_lora once"):
        add_lora(lm, RANK)
