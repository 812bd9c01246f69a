"""
Tests for patterns.py: python -m pytest -q tests/test_patterns.py (CPU, seconds).

(b) The delay example derived by hand; every pattern checked against AudioCraft's layout lists,
    rebuilt from their definition in codebooks_patterns.py.
(c) Invariants: revert_pattern inverts build_pattern; the training mask is AudioCraft's; the steps
    a window samples and the frame each step predicts, by hand.
"""
import pytest
import torch

from patterns import build_pattern, pattern_steps, revert_pattern, step_frames, window_steps


def test_delay_pattern_hand_example():
    """K=3, T=4, delays (0, 1, 2), S = special = 99. Codebook q frame t lands at step 1 + t + q,
    step 0 is all special, length T + max_delay + 1 = 7:
        S a0 a1 a2 a3  S  S
        S  S b0 b1 b2 b3  S
        S  S  S c0 c1 c2 c3
    The training input keeps T + 1 = 5 steps; its logits at step s predict step s + 1, and a code
    is trained only if its own cell is among those 5 steps: a0..a3, b0..b2, c0..c1."""
    S = 99
    codes = torch.tensor([[[10, 11, 12, 13], [20, 21, 22, 23], [30, 31, 32, 33]]])
    seq, mask = build_pattern(codes, S, 'delay', (0, 1, 2))
    assert seq[0].tolist() == [[S, 10, 11, 12, 13, S, S], [S, S, 20, 21, 22, 23, S],
                               [S, S, S, 30, 31, 32, 33]]
    assert mask.tolist() == [[s in range(1, 5) for s in range(7)],
                             [s in range(2, 6) for s in range(7)],
                             [s in range(3, 7) for s in range(7)]]
    seq_in, _ = build_pattern(codes, S, 'delay', (0, 1, 2), valid_only=True)
    assert seq_in[0].tolist() == [row[:5] for row in seq[0].tolist()]
    # "logits" that predict exactly the next cell revert to the codes wherever they are trained
    fake = torch.cat([seq_in[..., 1:], torch.full((1, 3, 1), S)], dim=-1)[..., None].float()
    out, valid = revert_pattern(fake, 4, -1.0, 'delay', (0, 1, 2), logits=True)  # fake [1, K, 5, 1]
    assert valid.tolist() == [[True] * 4, [True] * 3 + [False], [True] * 2 + [False] * 2]
    assert out[0, ..., 0].tolist() == [[10, 11, 12, 13], [20, 21, 22, -1], [30, 31, -1, -1]]


def audiocraft_layout(T, K, pattern, delays):
    """The layout lists of audiocraft/modules/codebooks_patterns.py, rebuilt from their definition:
    a list of steps, each a list of (t, q); the first step is empty."""
    if pattern in ('delay', 'parallel'):
        d = [0] * K if pattern == 'parallel' else list(delays)
        return [[]] + [[(t - dq, q) for q, dq in enumerate(d) if t - dq >= 0]
                       for t in range(T + max(d))]
    if pattern == 'flatten':  # UnrolledPatternProvider(flattening=delays, delays=0): by (t, coords)
        groups = {}
        for q, inner in enumerate(delays):
            groups.setdefault(inner, []).append(q)
        indexed = [(-1, [])] + [(t, [(t, q) for q in groups.get(i, [])]) for t in range(T)
                                for i in range(max(delays) + 1)]
        return [coords for _, coords in sorted(indexed)]
    d = list(delays[1:])           # CoarseFirstPattern(delays[1:])
    fine = [[(t - dq, q + 1) for q, dq in enumerate(d) if t - dq >= 0] for t in range(T + max(d))]
    return [[]] + [[(t, 0)] for t in range(T)] + fine


CASES = [('delay', (0,)), ('delay', (0, 1)), ('delay', (0, 1, 2)), ('delay', (0, 1, 2, 3)),
         ('delay', (0, 2, 2, 2)), ('delay', tuple(range(8))), ('parallel', (0, 0, 0)),
         ('parallel', (0,) * 8), ('flatten', (0, 1, 2, 3)), ('flatten', (0, 1, 1, 1)),
         ('flatten', (0, 1)), ('coarse_first', (0, 0, 0, 0)), ('coarse_first', (0, 0, 1, 2))]


@pytest.mark.parametrize('pattern,delays', CASES)
def test_patterns_match_audiocraft_and_round_trip(pattern, delays):
    K, T, S = len(delays), 6, -7
    layout = audiocraft_layout(T, K, pattern, delays)
    max_delay = max(t + 1 for step in layout for t, _ in step) - T
    n_valid = len(layout) - max_delay
    codes = torch.randint(0, 50, (2, K, T))
    expected = torch.full((2, K, len(layout)), S)
    for s, step in enumerate(layout):
        for t, q in step:
            if t < T:
                expected[:, q, s] = codes[:, q, t]
    seq, mask = build_pattern(codes, S, pattern, delays)
    assert torch.equal(seq, expected) and mask.sum() == K * T
    assert pattern_steps(T, K, pattern, delays)[1:] == (len(layout), n_valid)
    back, valid = revert_pattern(seq, T, S, pattern, delays)
    assert torch.equal(back, codes) and valid.all()
    # training mask (AudioCraft: revert_pattern_logits on valid_layout[1:]) == ours on the input
    trained = torch.zeros(K, T, dtype=torch.bool)
    for step in layout[1:n_valid]:
        for t, q in step:
            trained[q, t] |= t < T
    seq_in, _ = build_pattern(codes, S, pattern, delays, valid_only=True)
    assert seq_in.shape[-1] == n_valid
    logits = seq_in[..., None].float()
    _, valid = revert_pattern(logits, T, float('nan'), pattern, delays, logits=True)
    assert torch.equal(valid, trained)


def test_window_steps_and_step_frames_by_hand():
    """Delay (0, 1, 2, 3): T frames take T + 4 steps; with P given frames the first sampled step is
    1 + P, where codebook 0 of frame P lands. Step s predicts the cell at step s + 1, which holds
    codebook 0 of frame s (delay) or of frame s // 4 (full flattening: frame t's codebook 0 sits at
    step 1 + 4t); steps past the last frame read it again."""
    assert window_steps(10, 0, 4) == (1, 14) and window_steps(10, 3, 4) == (4, 14)
    assert window_steps(5, 2, 4, 'flatten') == (9, 21)            # frame 2 starts at 1 + 4 * 2
    assert step_frames(9, 8).tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 7]
    assert step_frames(9, 3, 'flatten').tolist() == [0, 0, 0, 0, 1, 1, 1, 1, 2]


def test_bad_patterns_give_one_line_errors():
    codes = torch.randint(0, 32, (1, 4, 5))
    for delays, pattern, match in (((0, 1), 'delay', 'delays'), ((0, 2, 1, 3), 'delay', 'sorted'),
                                   ((0, 2, 2, 2), 'flatten', 'gaps'),
                                   ((0, 1, 2, 3), 'zigzag', 'zigzag')):
        with pytest.raises(ValueError, match=match) as e:
            build_pattern(codes, 32, pattern, delays)
        assert '\n' not in str(e.value)
