"""Ablation of C: an MLP over the flattened window instead of the Transformer, at the same trainable size."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn as nn

if TYPE_CHECKING:
    from aster.model import AsterConfig


def mlp_params(n_in: int, hidden: int, depth: int) -> int:
    """Trainable parameters of an MLP with `depth` hidden layers of width `hidden` and one output."""
    return (n_in + 1) * hidden + (depth - 1) * (hidden + 1) * hidden + hidden + 1


def mlp_hidden_width(n_in: int, depth: int, target: int) -> int:
    """The hidden width whose MLP comes closest to `target` trainable parameters."""
    h = 1
    while mlp_params(n_in, h + 1, depth) <= target:
        h += 1
    return min(h, h + 1, key=lambda w: abs(mlp_params(n_in, w, depth) - target))


class MLPClassifier(nn.Module):
    """An MLP over the flattened window (N * d_model) with `depth` hidden layers, one logit per window."""

    def __init__(self, cfg: AsterConfig, hidden: int):
        super().__init__()
        layers, n_in = [nn.Flatten(1)], cfg.tokens * cfg.d_model
        for _ in range(cfg.depth):
            layers += [nn.Linear(n_in, hidden), nn.GELU(), nn.Dropout(cfg.dropout)]
            n_in = hidden
        self.net = nn.Sequential(*layers, nn.Linear(hidden, 1))

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, None]:
        return self.net(h).squeeze(-1), None
