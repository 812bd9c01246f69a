"""
Tests for lm.py: python -m pytest -q tests/test_lm.py (CPU, seconds).

(a) Same weights as transformers' MusicGen decoder (random, small config), written in
    AudioCraft's state_dict.bin layout and read back with checkpoint.load_lm: allclose logits,
    identical greedy CFG codes.
(b) The window plan derived by hand (the patterns themselves: tests/test_patterns.py).
(c) Invariants: KV cache == no cache, causality by gradient, cfg_coef = 1 == conditional logits,
    same seed -> same codes, long generation == AudioCraft's window loop, loss falls on an overfit.
"""
import math
import os
from dataclasses import asdict

import pytest
import torch

from checkpoint import config_from_audiocraft, load_lm, read_xp_cfg, save_atomic
from lm import LM, LMConfig, PRESETS, cfg_logits, codebook_cross_entropy, sample_next_token
from patterns import build_pattern, revert_pattern

SHIPPED = os.path.join(os.path.dirname(__file__), '..', 'checkpoints', 'lm.pt')
TINY = LMConfig(dim=64, num_heads=4, num_layers=2, card=32, cond_dim=64, max_duration=1.0,
                extend_stride=0.6)


pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


def tiny_lm(**kw):
    torch.manual_seed(0)
    return LM(LMConfig(**{**TINY.__dict__, **kw})).eval()

# ----------------------------------------------------------------------------- vs transformers


RENAMES = [('model.decoder.embed_tokens', 'emb'), ('model.decoder.layer_norm', 'out_norm'),
           ('model.decoder.layers', 'transformer.layers'),
           ('encoder_attn_layer_norm', 'norm_cross'), ('self_attn_layer_norm', 'norm1'),
           ('final_layer_norm', 'norm2'), ('encoder_attn', 'cross_attention'),
           ('fc1', 'linear1'), ('fc2', 'linear2'), ('lm_heads', 'linears')]


def to_audiocraft(hf_state):
    """Inverse of transformers' convert_musicgen_transformers.py rename_keys: q, k, v ->
    in_proj_weight."""
    out = {}
    for k, v in hf_state.items():
        if k.endswith(('k_proj.weight', 'v_proj.weight')):
            continue
        if k.endswith('q_proj.weight'):
            base = k[:-len('q_proj.weight')]
            qkv = [hf_state[base + f'{n}_proj.weight'] for n in 'qkv']
            k, v = base + 'in_proj_weight', torch.cat(qkv)
        for a, b in RENAMES:
            k = k.replace(a, b)
        out[k] = v
    return out


XP_CFG = """solver: musicgen
sample_rate: 32000
dataset:
  segment_duration: 1
  batch_size: 4
transformer_lm:
  dim: 64
  num_heads: 4
  n_q: 4
codebooks_pattern:
  modeling: delay
  delay:
    delays:
    - 0
    - 1
    - 2
    - 3
    flatten_first: 0
fuser:
  cross:
  - description
  prepend: []
"""


def hf_model(tmp_path, melody=False):
    """Random transformers MusicGen decoder, saved in AudioCraft's layout, loaded with load_lm."""
    tf = pytest.importorskip('transformers')
    name = 'MusicgenMelody' if melody else 'Musicgen'
    hc = getattr(tf, name + 'DecoderConfig')(
        vocab_size=32, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, ffn_dim=256,
        num_codebooks=4, max_position_embeddings=64, pad_token_id=32, bos_token_id=32,
        decoder_start_token_id=32, dropout=0.0)
    torch.manual_seed(0)
    hf = getattr(tf, name + 'ForCausalLM')(hc).eval()
    with torch.no_grad():   # non-trivial norms, so a swapped norm name would show
        for n, p in hf.named_parameters():
            noise = torch.randn_like(p)
            p.copy_(float(n.endswith('norm.weight')) + 0.1 * noise if 'norm' in n else 0.3 * noise)
    state = to_audiocraft(hf.state_dict())
    state['condition_provider.conditioners.description.output_proj.weight'] = torch.randn(64, 12)
    path = str(tmp_path / 'state_dict.bin')
    xp_cfg = XP_CFG
    if melody:
        xp_cfg = XP_CFG.replace('  cross:\n  - description\n  prepend: []',
                                '  cross: []\n  prepend:\n  - description')
    torch.save({'best_state': state, 'xp.cfg': xp_cfg, 'version': '1.3.0', 'exported': True}, path)
    lm, cond_state = load_lm(path)
    assert list(cond_state) == ['condition_provider.conditioners.description.output_proj.weight']
    assert lm.config.cross_attention is not melody and lm.config.num_heads == 4
    assert lm.config.max_duration == 1.0
    return hf, lm


def test_logits_and_greedy_match_transformers(tmp_path):
    """No padded text positions: transformers masks them, AudioCraft attends to them (zeroed)."""
    hf, lm = hf_model(tmp_path)
    B, K, T, card = 2, 4, 12, 32
    codes, cond = torch.randint(0, card, (B, K, T)), torch.randn(B, 5, 64)
    seq, _ = build_pattern(codes, card, valid_only=True)                       # [B, K, T + 1]
    with torch.no_grad():
        theirs = hf(input_ids=seq.reshape(B * K, -1), encoder_hidden_states=cond).logits
        theirs = theirs.view(B, K, -1, card)
        assert torch.allclose(lm.step_logits(seq, cond), theirs, atol=1e-4)
        ours, _ = lm(codes, cond)
    theirs, valid = revert_pattern(theirs, T, float('nan'), logits=True)
    assert torch.allclose(ours[:, valid], theirs[:, valid], atol=1e-4)
    assert ours[:, ~valid].isnan().all()
    # greedy CFG with transformers' own generate: give it the 2B rows (cond, zero null) since only
    # its melody class adds the null rows itself; an all-ones attention_mask (its start token equals
    # pad and would be masked); use_cache=False (its default cache for this class mixes
    # cross-attention keys into the self-attention cache, see bench_lm.py)
    ref = hf.generate(input_ids=torch.full((K, 1), card),
                      encoder_hidden_states=torch.cat([cond[:1], 0 * cond[:1]]),
                      attention_mask=torch.ones(1, 1, dtype=torch.long), guidance_scale=3.0,
                      do_sample=False, max_length=T + K, num_return_sequences=1, use_cache=False)
    assert torch.equal(lm.generate(cond[:1], duration=T / 50, temperature=0), ref)


def test_masked_cross_attention_matches_transformers(tmp_path):
    """With cross_attention_mask, padded text positions are hidden as transformers'
    encoder_attention_mask hides them: a prompt reads the same alone as padded in a batch; without
    it (AudioCraft) the padding changes it. A row with no token (the null condition) attends to its
    zeros either way."""
    hf, lm = hf_model(tmp_path)
    masked = LM(LMConfig(**{**lm.config.__dict__, 'cross_attention_mask': True})).eval()
    masked.load_state_dict(lm.state_dict())
    B, K, T, card = 2, 4, 8, 32
    seq, _ = build_pattern(torch.randint(0, card, (B, K, T)), card, valid_only=True)  # [B, K, T+1]
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0]]).bool()
    cond = torch.randn(B, 6, 64) * mask[..., None]             # the conditioner zeroes padding
    with torch.no_grad():
        theirs = hf(input_ids=seq.reshape(B * K, -1), encoder_hidden_states=cond,
                    encoder_attention_mask=mask.long()).logits.view(B, K, -1, card)
        ours = masked.step_logits(seq, cond, condition_mask=mask)
        assert torch.allclose(ours, theirs, atol=1e-4)
        alone = masked.step_logits(seq[1:], cond[1:, :3], condition_mask=mask[1:, :3])
        assert torch.allclose(ours[1], alone[0], atol=1e-5)
        unmasked = lm.step_logits(seq, cond, condition_mask=mask)   # the flag is off: ignored
        assert not torch.allclose(unmasked[1], alone[0], atol=1e-3)
        null, no_token = torch.zeros(1, 6, 64), torch.zeros(1, 6, dtype=torch.bool)
        assert torch.allclose(masked.step_logits(seq[:1], null, condition_mask=no_token),
                              lm.step_logits(seq[:1], null), atol=1e-6)
        # generation: the mask reaches every step, cached or not
        args = dict(duration=0.2, temperature=0, condition_mask=mask[1:, :3])
        a = masked.generate(cond[1:, :3], **args)
        args['condition_mask'] = mask[1:]
        assert torch.equal(masked.generate(cond[1:], **args), a)
        assert torch.equal(masked.generate(cond[1:], **args, use_cache=False), a)


def test_melody_prepend_matches_transformers(tmp_path):
    hf, lm = hf_model(tmp_path, melody=True)
    B, K, T, card = 2, 4, 10, 32
    codes, prefix = torch.randint(0, card, (B, K, T)), torch.randn(B, 7, 64)
    seq, _ = build_pattern(codes, card, valid_only=True)
    with torch.no_grad():
        theirs = hf(input_ids=seq.reshape(B * K, -1), encoder_hidden_states=prefix).logits
        theirs = theirs.view(B, K, -1, card)[:, :, -seq.shape[-1]:]    # the prefix trimmed
        assert torch.allclose(lm.step_logits(seq, prepend=prefix), theirs, atol=1e-4)
    with pytest.raises(ValueError, match='prepend'):
        lm(codes, prefix)

# ----------------------------------------------------------------------------- invariants


@pytest.mark.parametrize('kw', [dict(), dict(pattern='flatten'), dict(cross_attention=False)])
def test_kv_cache_equals_uncached_greedy(kw):
    lm = tiny_lm(**kw)
    cond = None if kw.get('cross_attention') is False else torch.randn(2, 3, 64)
    prepend = torch.randn(2, 4, 64) if cond is None else None
    prompt = torch.randint(0, 32, (2, 4, 5))
    for p in (None, prompt):
        null_prepend = None if prepend is None else 0 * prepend
        args = dict(condition=cond, prepend=prepend, null_prepend=null_prepend, duration=0.3,
                    prompt=p, temperature=0)
        cached, uncached = lm.generate(**args), lm.generate(**args, use_cache=False)
        assert cached.shape == (2, 4, 15) and torch.equal(cached, uncached)
    assert torch.equal(cached[..., :5], prompt)                                # the prompt is kept


def test_causality_by_gradient():
    lm = tiny_lm()
    seq, _ = build_pattern(torch.randint(0, 32, (1, 4, 8)), 32)               # [1, 4, 12]
    cond, prefix = torch.randn(1, 3, 64), torch.randn(1, 2, 64, requires_grad=True)
    emb = {}

    def keep(module, inputs, out):   # codebook 0's embeddings; the input sums all codebooks'
        out.retain_grad()
        emb['x'] = out
    lm.emb[0].register_forward_hook(keep)
    for s in range(seq.shape[-1]):
        lm.zero_grad()
        prefix.grad = None
        lm.step_logits(seq, cond, prepend=prefix)[:, :, s].sum().backward()
        g = emb['x'].grad[0].abs().sum(-1)                           # [S]: |d out_s / d in_j|
        assert (g[s + 1:] == 0).all() and (g[:s + 1] > 0).all() and prefix.grad.abs().sum() > 0


def test_frames_condition_is_causal_and_aligned():
    """frames= (the melody's 'sum' fuse): frame t's condition is added to the step that predicts
    codebook 0's frame t (step_frames), so no logit of an earlier frame depends on it, and every
    later one may."""
    lm, T = tiny_lm(), 8
    codes, cond = torch.randint(0, 32, (1, 4, T)), torch.randn(1, 3, 64)
    frames = torch.randn(1, T, 64, requires_grad=True)
    logits, _ = lm(codes, cond, frames=frames)                               # [1, K, T, card]
    for t in range(T):
        frames.grad = None
        logits[:, 0, t].sum().backward(retain_graph=True)
        g = frames.grad[0].abs().sum(-1)                        # [T]: |d logit_t / d frame_j|
        assert (g[t + 1:] == 0).all() and g[t] > 0


def test_frames_condition_cached_generation():
    """Generation with frames: cached == uncached (greedy), each window reads its own frames, and
    frames that differ from the null change the output only through CFG; too few frames is a
    one-line error."""
    lm = tiny_lm()
    cond, frames = torch.randn(2, 3, 64), torch.randn(2, 75, 64)
    args = dict(condition=cond, frames=frames, null_frames=0 * frames, duration=1.5,
                temperature=0)                                           # two windows
    cached, uncached = lm.generate(**args), lm.generate(**args, use_cache=False)
    assert cached.shape == (2, 4, 75) and torch.equal(cached, uncached)
    late = frames.clone()
    late[:, 50:] = torch.randn(2, 25, 64)                  # only the second window reads these
    assert torch.equal(lm.generate(**dict(args, frames=late))[..., :50], cached[..., :50])
    assert not torch.equal(cached, lm.generate(**dict(args, frames=0 * frames)))
    with pytest.raises(ValueError, match='frames covers 40 frames'):
        lm.generate(**dict(args, frames=frames[:, :40], null_frames=0 * frames[:, :40]))
    with pytest.raises(ValueError, match='null'):
        lm.generate(**dict(args, null_frames=None))


def test_cfg_coef_one_is_conditional():
    lm = tiny_lm()
    seq, _ = build_pattern(torch.randint(0, 32, (2, 4, 6)), 32)
    cond = torch.randn(2, 3, 64)
    with torch.no_grad():
        both = lm.step_logits(torch.cat([seq, seq]), torch.cat([cond, 0 * cond]))   # one 2B batch
        alone = lm.step_logits(seq, cond)
    c, u = both.chunk(2)
    assert torch.allclose(c, alone, atol=1e-5)
    assert torch.allclose(cfg_logits(c, u, 1.0), c, atol=1e-6)
    assert torch.equal(cfg_logits(c, u, 0.0), u)
    assert torch.allclose(cfg_logits(c, u, 3.0), u + 3 * (c - u))


def test_sampling_rules_and_seed():
    logits = torch.tensor([[[4.0, 3.0, 2.0, 1.0, 0.0]]])                    # [1, 1, 5]
    def draw(**kw):
        return {int(sample_next_token(logits, generator=torch.Generator().manual_seed(i), **kw))
                for i in range(200)}
    assert draw(top_k=2) == {0, 1} and draw(top_k=1) == {0} and draw(temperature=0) == {0}
    assert draw(top_p=0.7, top_k=1) == {0, 1} and draw(top_p=0.6) == {0}    # p = 0.64 0.23 0.09 ...
    assert draw(temperature=0.0, top_k=5) == {0} and len(draw(top_k=0, temperature=5.0)) == 5
    lm, cond = tiny_lm(), torch.randn(1, 3, 64)
    def gen(seed):
        return lm.generate(cond, duration=0.2, generator=torch.Generator().manual_seed(seed))
    assert torch.equal(gen(1), gen(1)) and not torch.equal(gen(1), gen(2))


def test_generation_past_max_duration_is_audiocraft_window_loop():
    """1.5 s, 1 s window, 0.6 s stride: window 1 makes frames 0..49; window 2 starts at 0.6 s, so it
    spans min(1.5 - 0.6, 1) s = 45 frames, prompted with frames 30..49 -> 25 new, 75 in all."""
    lm, cond = tiny_lm(), torch.randn(1, 3, 64)
    calls = []
    out = lm.generate(cond, duration=1.5, temperature=0, callback=lambda i, n: calls.append((i, n)))
    first = lm.generate(cond, duration=1.0, temperature=0)
    second = lm.generate(cond, duration=0.9, prompt=first[..., 30:], temperature=0)
    assert out.shape == (1, 4, 75)
    assert torch.equal(out, torch.cat([first, second[..., 20:]], dim=-1))
    assert calls[:53] == [(i, 53) for i in range(1, 54)]
    assert calls[53:] == [(i, 28) for i in range(1, 29)]


def test_window_plan_by_hand():
    """W = 50 frames (1 s), S = 30 (0.6 s), delays (0, 1, 2, 3): a window of n frames after p given
    ones takes n + 4 - (1 + p) steps. No prompt, 75 frames: (0, 50, 0, 53), then 30 + 45 = 75
    (20 given, 28 steps). A 60-frame prompt (>= W) and 125 frames: the LM sees its last W - S = 20
    frames, so the first window starts at 40; each next one 30 later, re-prompted with 20:
    (40, 50, 20, 33), (70, 50, 20, 33), (100, 25, 20, 8). N frames without a prompt take
    1 + ceil((N - W) / S) windows, 100000 s included."""
    lm = tiny_lm()
    assert lm.windows(1.5) == [(0, 50, 0, 53), (30, 45, 20, 28)]
    assert lm.windows(0.3, 5) == [(0, 15, 5, 13)]       # within one window: the prompt whole
    assert lm.windows(2.5, 60) == [(40, 50, 20, 33), (70, 50, 20, 33), (100, 25, 20, 8)]
    assert len(lm.windows(100000.0)) == 1 + math.ceil((5_000_000 - 50) / 30)


def test_prompt_longer_than_the_window():
    """A 60-frame prompt (1.2 s) past a 50-frame window, 2.5 s in all: the output is the prompt
    verbatim, then new frames; the first window is the generation prompted with the prompt's last
    W - S = 20 frames; the callback
    counts the plan's steps; the same seed gives the same codes."""
    lm, cond = tiny_lm(), torch.randn(1, 3, 64)
    prompt = torch.randint(0, 32, (1, 4, 60))
    calls = []
    out = lm.generate(cond, duration=2.5, prompt=prompt, temperature=0,
                      callback=lambda i, n: calls.append((i, n)))
    assert out.shape == (1, 4, 125) and torch.equal(out[..., :60], prompt)
    first = lm.generate(cond, duration=1.0, prompt=prompt[..., 40:], temperature=0)  # frames 40..89
    assert torch.equal(out[..., :90], torch.cat([prompt, first[..., 20:]], dim=-1))
    assert [n for i, n in calls if i == 1] == [33, 33, 8]             # = lm.windows(2.5, 60)
    assert len(calls) == 33 + 33 + 8

    def gen(seed):
        return lm.generate(cond, duration=2.5, prompt=prompt,
                           generator=torch.Generator().manual_seed(seed))
    a = gen(0)
    assert torch.equal(a, gen(0)) and torch.equal(a[..., :60], prompt)
    assert not torch.equal(a, gen(1))


def test_loss_masks_and_falls_on_tiny_overfit():
    lm = tiny_lm()
    lm.train()
    codes, cond = torch.randint(0, 32, (2, 4, 20)), torch.randn(2, 3, 64)
    logits, loss = lm(codes, cond, targets=codes)
    ce = codebook_cross_entropy(logits, codes)
    assert logits.shape == (2, 4, 20, 32) and ce.shape == (4,) and torch.allclose(loss, ce.mean())
    padded = codes.clone()
    padded[..., 15:] = -1                                           # padded frames are ignored
    assert torch.isfinite(lm(codes, cond, targets=padded)[1])
    opt = torch.optim.Adam(lm.parameters(), lr=3e-3)
    for _ in range(40):
        opt.zero_grad()
        loss = lm(codes, cond, targets=codes)[1]
        loss.backward()
        opt.step()
    assert loss.item() < 0.3 * ce.mean().item()

# ----------------------------------------------------------------------------- checkpoints, errors


def test_own_checkpoint_round_trip(tmp_path):
    lm = tiny_lm(pattern='flatten', max_duration=2.0)
    cond_state = {'condition_provider.conditioners.description.output_proj.weight':
                  torch.ones(64, 12)}
    save_atomic(dict(config=asdict(lm.config), model={**lm.state_dict(), **cond_state}),
                str(tmp_path / 'lm.pt'))
    back, cs = load_lm(str(tmp_path / 'lm.pt'))
    assert back.config == lm.config and torch.equal(cs[next(iter(cs))], torch.ones(64, 12))
    codes, cond = torch.randint(0, 32, (1, 4, 6)), torch.randn(1, 3, 64)
    assert torch.equal(back(codes, cond)[0].nan_to_num(), lm(codes, cond)[0].nan_to_num())


@pytest.mark.skipif(not os.path.exists(SHIPPED), reason='no shipped model in checkpoints/')
def test_tiny_preset_is_the_shipped_model():
    """PRESETS['tiny'] is the architecture and window of checkpoints/lm.pt (train_lm.py
    --duration 3: a 3 s window hopping by 1 s)."""
    assert LMConfig(**torch.load(SHIPPED, weights_only=True)['config']) == PRESETS['tiny']
    assert (PRESETS['tiny'].max_duration, PRESETS['tiny'].extend_stride) == (3.0, 1.0)


def test_presets_and_yaml():
    assert PRESETS['musicgen-small'] == LMConfig() and PRESETS['tiny'].dim == 256
    assert not PRESETS['musicgen-melody'].cross_attention
    assert PRESETS['audiogen-medium'].max_duration == 10
    cfg = read_xp_cfg(XP_CFG)
    delay = cfg['codebooks_pattern']['delay']
    assert delay['delays'] == [0, 1, 2, 3] and delay['flatten_first'] == 0
    assert cfg['fuser']['prepend'] == [] and cfg['fuser']['cross'] == ['description']
    assert cfg['transformer_lm']['num_heads'] == 4 and cfg['dataset']['segment_duration'] == 1
    audiogen = XP_CFG.replace('solver: musicgen', 'solver: audiogen')
    audiogen = audiogen.replace('duration: 1', 'duration: 10')
    unroll = audiogen.replace('modeling: delay', 'modeling: unroll')
    c = config_from_audiocraft(tiny_lm().state_dict(), unroll)
    assert c == LMConfig(**{**TINY.__dict__, 'max_duration': 10.0, 'extend_stride': 2.0,
                            'pattern': 'flatten'})


def one_line_error(fn, exc=ValueError, match=None):
    with pytest.raises(exc, match=match) as e:
        fn()
    assert '\n' not in str(e.value)


def test_bad_inputs_give_one_line_errors(tmp_path):
    lm, cond = tiny_lm(), torch.randn(1, 3, 64)
    codes = torch.randint(0, 32, (1, 4, 5))
    one_line_error(lambda: lm(codes + 32, cond), match='32')                  # out of range
    one_line_error(lambda: lm(codes[:, :3], cond), match='K=4')               # wrong K
    one_line_error(lambda: lm(codes.float(), cond), match='integer')
    one_line_error(lambda: lm(codes, torch.randn(1, 3, 768)), match='768')  # unprojected T5
    one_line_error(lambda: lm(codes, None), match='condition')
    one_line_error(lambda: lm(codes, torch.randn(2, 3, 64)), match='batch')
    one_line_error(lambda: lm.generate(cond, duration=0.0), match='duration')
    one_line_error(lambda: lm.generate(cond, duration=0.1, prompt=codes), match='prompt')
    one_line_error(lambda: tiny_lm(extend_stride=1.0).generate(cond, duration=3.0),
                   match='extend_stride')
    one_line_error(lambda: LMConfig(cond_dim=768), match='cond_dim')
    one_line_error(lambda: load_lm(str(tmp_path / 'missing.bin')), FileNotFoundError)
    (tmp_path / 'junk.bin').write_bytes(b'not a checkpoint')
    one_line_error(lambda: load_lm(str(tmp_path / 'junk.bin')), match='readable')
    torch.save({'weights': torch.zeros(1)}, tmp_path / 'foreign.bin')
    one_line_error(lambda: load_lm(str(tmp_path / 'foreign.bin')), match='neither')
    state = {k: v for k, v in lm.state_dict().items() if 'linears.3' not in k}
    torch.save({'config': lm.config.__dict__, 'model': state}, tmp_path / 'partial.pt')
    one_line_error(lambda: load_lm(str(tmp_path / 'partial.pt')), match='linears.3')
