"""
Codebook interleaving patterns: how K parallel codebook streams [B, K, T] become one sequence of
S steps that a single transformer predicts, K tokens per step (MusicGen Sec. 2.2). Delay, the
default, offsets codebook q by delays[q] steps, so a step predicts codebook q of frame t after
codebooks < q of that frame; parallel, flatten and coarse-first (VALL-E) are the other layouts the
paper compares. A pattern here is an index map, steps[q, t] = the step code (q, t) lands on
(pattern_steps); build_pattern and revert_pattern scatter and gather through it, and lm.py trains
and samples through them.

References:
1) MusicGen, Copet et al. 2023, arXiv:2306.05284, Sec. 2.2. Official code:
   audiocraft/modules/codebooks_patterns.py (DelayedPatternProvider, UnrolledPatternProvider,
   CoarseFirstPattern)
2) VALL-E, Wang et al. 2023, arXiv:2301.02111 (codebook 0 first, then the rest)

Deviations from AudioCraft: index maps instead of its layout lists of (t, q) per step, the same
steps (tests/test_patterns.py rebuilds its layouts); no flatten_first/empty_initial, no MusicLM
pattern, no delays inside 'flatten'.
"""
import functools

import torch


def pattern_steps(T, K, pattern='delay', delays=(0, 1, 2, 3)):
    """Where code (q, t) lands in the interleaved sequence -> (steps [K, T], S steps, S_valid =
    S - max_delay kept for training: AudioCraft's keep_only_valid_steps, T + 1 for delay). Step 0 is
    always all special.
    - delay: step = 1 + t + delays[q]; S = T + max_delay + 1. MusicGen: delays (0, 1, 2, 3);
      parallel: all 0.
    - flatten: delays[q] is the inner step of codebook q; each frame spans max(delays) + 1 steps,
      so (0, 1, 2, 3) is full flattening, (0, 1, 1, 1) partial (AudioCraft's `flattening`).
    - coarse_first (VALL-E): all of codebook 0 first, then codebooks 1.. with delays[1:]."""
    d = (torch.zeros(K, dtype=torch.long) if pattern == 'parallel'
         else torch.tensor(delays, dtype=torch.long))
    if len(d) != K or (d < 0).any() or (d.diff() < 0).any():
        raise ValueError(f"delays={tuple(d.tolist())} must be {K} sorted non-negative ints, "
                         f"one per codebook")
    t = torch.arange(T)
    tail = int(d.max())                                # steps after the last complete frame
    if pattern in ('delay', 'parallel'):
        steps = 1 + t + d[:, None]                     # [K, T]
        S = T + tail + 1
    elif pattern == 'flatten':
        inner = tail + 1                               # steps per frame
        tail = 0                                       # frames are complete: no tail
        if sorted(set(d.tolist())) != list(range(inner)):
            raise ValueError(f"flatten delays={tuple(d.tolist())} must use inner steps 0..n "
                             f"without gaps")
        steps = 1 + t * inner + d[:, None]             # [K, T]
        S = 1 + T * inner
    elif pattern == 'coarse_first':                    # delays[0] is unused
        tail = int(d[1:].max()) if K > 1 else 0
        coarse = 1 + t                                 # [T]: codebook 0 takes steps 1..T
        fine = 1 + T + t + d[:, None]                  # [K, T]: the others follow, delayed
        is_coarse = torch.arange(K)[:, None] == 0      # [K, 1]
        steps = torch.where(is_coarse, coarse, fine)   # [K, T]
        S = 1 + 2 * T + tail
    else:
        raise ValueError(f"pattern={pattern!r} is unknown; use 'delay', 'parallel', 'flatten' "
                         f"or 'coarse_first'")
    return steps.expand(K, T), S, S - tail


def build_pattern(codes, special, pattern='delay', delays=(0, 1, 2, 3), valid_only=False):
    """codes [B, K, T] -> (seq [B, K, S], mask [K, S]); cells no code lands on hold `special`.
    Example, K=3, T=4, delays (0, 1, 2): T + max_delay + 1 = 7 steps, S the special token:
        a0 a1 a2 a3        S a0 a1 a2 a3  S  S
        b0 b1 b2 b3   ->   S  S b0 b1 b2 b3  S
        c0 c1 c2 c3        S  S  S c0 c1 c2 c3
    With valid_only (the training input) only the first S_valid = T + 1 = 5 steps are kept."""
    B, K, T = codes.shape
    steps, S, S_valid = pattern_steps(T, K, pattern, delays)
    steps = steps.to(codes.device)
    seq = codes.new_full((B, K, S), special).scatter_(2, steps.expand(B, K, T), codes)  # [B, K, S]
    mask = torch.zeros(K, S, dtype=torch.bool, device=codes.device).scatter_(1, steps, True)
    if valid_only:
        return seq[..., :S_valid], mask[:, :S_valid]
    return seq, mask


def revert_pattern(seq, T, special, pattern='delay', delays=(0, 1, 2, 3), logits=False):
    """seq [B, K, S, ...] -> (codes [B, K, T, ...], mask [K, T]); inverse of build_pattern. With
    logits=True the input is model output, where step s predicts the cell at step s + 1, so code
    (q, t) reads step steps[q, t] - 1. A code is valid only if its own cell lies within the S given
    steps: for a delay training input of T + 1 steps, the last delays[q] frames of codebook q are
    never trained, as in AudioCraft. Invalid codes hold `special` (NaN for logits)."""
    B, K, S = seq.shape[:3]
    steps = pattern_steps(T, K, pattern, delays)[0].to(seq.device)  # [K, T]
    valid = steps < S                                              # [K, T]
    src = torch.where(valid, steps - int(logits), 0)               # [K, T]
    extra = seq.shape[3:]                                          # () or (card,)
    ones = [1] * len(extra)                                        # broadcast over the extra dims
    out = seq.gather(2, src.view(1, K, T, *ones).expand(B, K, T, *extra))  # [B, K, T, ...]
    return torch.where(valid.view(1, K, T, *ones), out, special), valid


@functools.lru_cache(maxsize=None)  # a long generation repeats two or three window shapes
def window_steps(T, P, K, pattern='delay', delays=(0, 1, 2, 3)):
    """(first, S): filling T frames whose first P are given samples the pattern steps
    first .. S - 1, first being the earliest step that holds a code of frame P.
    Delay (0, 1, 2, 3): first = 1 + P, S = T + 4."""
    steps, S, _ = pattern_steps(T, K, pattern, delays)
    return int(steps[:, P].min()), S


def step_frames(S, T, pattern='delay', delays=(0, 1, 2, 3)):
    """[S] -> for each of the first S pattern steps, the frame (< T) whose codebook-0 code the LM
    predicts there (step s predicts step s + 1, see revert_pattern). A condition given per frame
    (the melody's 'sum' fuse) is added to the input of these steps, so each step reads the melody of
    the frame it writes. Delay: frame s; the last steps, past frame T - 1, read frame T - 1."""
    first_step = pattern_steps(T, len(delays), pattern, delays)[0][0]  # [T]: codebook 0's steps
    frame = torch.searchsorted(first_step, torch.arange(S) + 1, right=True) - 1  # [S]
    return frame.clamp(0, T - 1)
