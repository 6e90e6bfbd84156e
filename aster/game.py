"""The adversarial game's pieces that are not modules: where pseudo-anomalies sit, and how to see the game.

Pseudo-anomalies (`AsterConfig.pseudo`):
  free      H~ = G(z): the paper's rule. G's output is unconstrained, and in our runs it collapses to one blob
            far from the normal features, which C separates within a few hundred steps (docs/method.md).
  anchored  H~ = H + m * s * sd(H) * G(z) / rms(G(z)) (ours): G chooses only the *direction* of a deviation from the
            window's own features; its size s (drawn log-uniformly per window, in units of the per-dimension spread
            of normal token features) and where it sits (m: one contiguous span of tokens) are drawn, so G cannot
            shrink pseudo-anomalies into the normal data nor collapse them to a mean. The reversed gradient still
            reaches G through the direction. With `pseudo_random` > 0 that share of windows deviates in an isotropic
            random direction instead: C then has to enclose the normal features from every side, not only from
            the directions G found (on Daphnet a kNN on F's features beat C, so C's boundary, not F, was the weak
            link; benchmarks/diagnose.py).

Game statistics (`game_stats`) are detached, label-free numbers logged every epoch: C's accuracy on normal and on
pseudo-anomalous tokens/windows, the spread of pseudo-anomalies relative to normal features and their distance to
the nearest normal feature relative to the normal features' own nearest-neighbour distance. A collapse shows as
spread << 1 with distance >> 1 and both accuracies at 1.
"""

from __future__ import annotations

import math

import torch

MAX_STAT_TOKENS = 256  # tokens per side for the nearest-neighbour statistics (cost O(256^2 * d) per step)


def span_mask(b: int, n: int, max_fraction: float, device=None) -> torch.Tensor:
    """(b, n) bool: one contiguous span of 1 .. max(1, round(max_fraction * n)) tokens per row, uniform position."""
    longest = max(1, min(n, round(max_fraction * n)))
    length = torch.randint(1, longest + 1, (b, 1), device=device)
    start = (torch.rand(b, 1, device=device) * (n - length + 1)).floor().long()
    pos = torch.arange(n, device=device)[None]
    return (pos >= start) & (pos < start + length)


def log_uniform(b: int, low: float, high: float, device=None) -> torch.Tensor:
    """(b,) sizes drawn log-uniformly in [low, high]: small and large deviations equally often per octave."""
    u = torch.rand(b, device=device)
    return torch.exp(math.log(low) + u * (math.log(high) - math.log(low)))


def anchored(h: torch.Tensor, direction: torch.Tensor, mask: torch.Tensor, size: torch.Tensor) -> torch.Tensor:
    """H + m * s * sd(H) * direction / rms(direction); h must be detached (no gradient to F)."""
    sd = h.flatten(0, 1).std(0).clamp_min(1e-6)  # (d,) per-dimension spread of the batch's normal tokens
    unit = direction / direction.pow(2).mean(-1, keepdim=True).add(1e-12).sqrt()
    return h + mask[..., None] * size[:, None, None] * sd * unit


def _spread(x: torch.Tensor) -> torch.Tensor:
    return x.var(0).sum().sqrt() if len(x) > 1 else x.new_zeros(())


def _subsample(x: torch.Tensor) -> torch.Tensor:
    return x if len(x) <= MAX_STAT_TOKENS else x[torch.linspace(0, len(x) - 1, MAX_STAT_TOKENS).long()]


@torch.no_grad()
def game_stats(h: torch.Tensor, h_tilde: torch.Tensor, mask: torch.Tensor,
               logits_normal: torch.Tensor, logits_pseudo: torch.Tensor, target_pseudo: torch.Tensor) -> dict:
    """Label-free statistics of one step. h, h_tilde (B, N, d); mask (B, N) marks pseudo-anomalous tokens;
    logits_* and target_pseudo: what C's loss was computed on (per window or per token)."""
    normal_tokens, pseudo_tokens = h.flatten(0, 1).float(), h_tilde[mask].float()
    pos = target_pseudo > 0.5
    stats = {"acc_normal": (logits_normal < 0).float().mean(),
             "acc_pseudo": (logits_pseudo[pos] > 0).float().mean() if pos.any() else h.new_zeros(())}
    a, p = _subsample(normal_tokens), _subsample(pseudo_tokens)
    spread = _spread(a)
    stats["pseudo_spread"] = _spread(p) / spread.clamp_min(1e-12)
    d_nn = torch.cdist(a, a)
    d_nn.fill_diagonal_(float("inf"))
    normal_nn = d_nn.min(1).values.mean().clamp_min(1e-12)
    stats["pseudo_nn_dist"] = torch.cdist(p, a).min(1).values.mean() / normal_nn if len(p) else h.new_zeros(())
    return stats
