"""Several independently trained ASTER models scored as one (`model.members`).

Seeds disagree most where the training part is short: C's boundary then depends on the random pseudo-anomalies it
happened to see. The mean of K members' window (and token) scores averages that out. Members are plain `Aster`s
trained one after another with seeds seed, seed + 1, ... (pipeline/train.py); the ensemble only scores, and exports
as one ONNX graph, so serving and the step mapping do not change.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from aster.model import Aster, AsterConfig

PROBABILITY_EPS = 1e-7  # keeps the logit of a mean probability finite (the ensemble's `forward`)


def build_model(cfg: AsterConfig) -> nn.Module:
    """One `Aster`, or an `AsterEnsemble` when cfg.members > 1."""
    return AsterEnsemble(cfg) if cfg.members > 1 else Aster(cfg)


def members_of(model: nn.Module) -> list[Aster]:
    """The models to train: the members of an ensemble, or the model itself."""
    return list(model.members) if isinstance(model, AsterEnsemble) else [model]


class ExportedEnsemble(nn.Module):
    """What gets exported: the mean of the members' exported outputs (window scores, and token scores if any)."""

    def __init__(self, members: list[nn.Module]):
        super().__init__()
        self.members = nn.ModuleList(members)
        self.token_scores = members[0].token_scores

    def forward(self, windows: torch.Tensor):
        outs = [m(windows) for m in self.members]
        if self.token_scores:
            return tuple(torch.stack(o).mean(0) for o in zip(*outs))
        return torch.stack(outs).mean(0)


class AsterEnsemble(nn.Module):
    """cfg.members `Aster`s with the same config; scores are the mean of theirs."""

    def __init__(self, cfg: AsterConfig):
        super().__init__()
        self.config = cfg
        self.members = nn.ModuleList(Aster(cfg) for _ in range(cfg.members))

    @property
    def extractor(self) -> nn.Module:
        """The first member's F (plots and probes of the feature space look at one member)."""
        return self.members[0].extractor

    def pseudo_anomalies(self, h: torch.Tensor):
        return self.members[0].pseudo_anomalies(h)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The logit of the mean window probability, so sigmoid(forward) is the ensemble's window score."""
        p = torch.stack([torch.sigmoid(m(x)) for m in self.members]).mean(0)
        return torch.logit(p, eps=PROBABILITY_EPS)

    def score(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([m.score(x) for m in self.members]).mean(0)

    def export_module(self) -> ExportedEnsemble:
        return ExportedEnsemble([m.export_module() for m in self.members]).eval()

    def num_parameters(self, trainable_only: bool = False) -> int:
        return sum(m.num_parameters(trainable_only) for m in self.members)
