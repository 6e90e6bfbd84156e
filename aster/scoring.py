"""Window scores -> one score per time step.

Default (ASTER.md, ours): stride-1 windows, every step gets the mean score of the windows covering it. With a
larger stride a final window ending at T-1 is always added, so every step is covered (no zero-padded tail).
`tab_faithful=True` reproduces TAB's artefact instead (PROTOCOL.md §1.4): non-overlapping windows and the last
T mod W steps scored 0; use it only to compare with TAB's published numbers.

Everything runs through a `scorer`: a callable mapping a float32 (B, W, C) numpy batch to (B,) scores, so the
same code scores a torch model (`torch_scorer`) or an onnxruntime session.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from aster.training import resolve_device
from aster.windows import check_series, windows_batch

Scorer = Callable[[np.ndarray], np.ndarray]


def torch_scorer(model: nn.Module, device: str | torch.device = "auto") -> Scorer:
    """Wrap `model.score` (sigmoid of the logit) as a numpy -> numpy scorer, in eval mode, without autograd."""
    device = resolve_device(device) if isinstance(device, str) else device
    model.to(device).eval()

    def score(batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model.score(torch.from_numpy(batch).to(device)).float().cpu().numpy()

    return score


def window_starts(T: int, window: int, stride: int = 1, tab_faithful: bool = False) -> np.ndarray:
    """Start rows of the scoring windows. Default: every `stride` rows plus one window ending at T-1."""
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    if T < window:
        raise ValueError(f"series has {T} rows, window needs {window}")
    if tab_faithful:
        return np.arange(T // window, dtype=np.int64) * window
    starts = np.arange(0, T - window + 1, stride, dtype=np.int64)
    return starts if starts[-1] == T - window else np.append(starts, T - window)


def per_step_from_windows(starts: np.ndarray, scores: np.ndarray, T: int, window: int,
                          fill: float = np.nan) -> np.ndarray:
    """(T,) float64 mean of the scores of the windows covering each step; `fill` where none does.

    Difference arrays + cumulative sums: O(T + n_windows) time and memory, never O(T * W).
    """
    starts, scores = np.asarray(starts, dtype=np.int64), np.asarray(scores, dtype=np.float64)
    if starts.shape != scores.shape or starts.ndim != 1:
        raise ValueError(f"starts {starts.shape} and scores {scores.shape} must be matching 1-D arrays")
    if starts.size and (starts.min() < 0 or starts.max() > T - window):
        raise ValueError(f"window starts must lie in [0, {T - window}] for T={T}, window={window}")
    total = np.cumsum(np.bincount(starts, scores, T + 1) - np.bincount(starts + window, scores, T + 1))[:T]
    count = np.cumsum(np.bincount(starts, minlength=T + 1) - np.bincount(starts + window, minlength=T + 1))[:T]
    out = np.full(T, fill, dtype=np.float64)
    covered = count > 0
    out[covered] = total[covered] / count[covered]
    return out


def window_scores(scorer: Scorer | nn.Module, series: np.ndarray, window: int, stride: int = 1,
                  batch_size: int = 256, device: str = "auto", tab_faithful: bool = False,
                  progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(starts, scores) of the scoring windows of a (T, C) series, scored batch by batch (memory O(B*W*C))."""
    series = check_series(series, window)
    if isinstance(scorer, nn.Module):
        scorer = torch_scorer(scorer, device)
    starts = window_starts(series.shape[0], window, stride, tab_faithful)
    scores = np.empty(len(starts), dtype=np.float64)
    for i in tqdm(range(0, len(starts), batch_size), desc="scoring", disable=not progress, leave=False):
        batch = starts[i:i + batch_size]
        s = np.asarray(scorer(windows_batch(series, batch, window)), dtype=np.float64).reshape(-1)
        if s.shape != batch.shape:
            raise ValueError(f"scorer returned {s.shape[0]} scores for a batch of {len(batch)} windows")
        scores[i:i + batch_size] = s
    if not np.isfinite(scores).all():
        raise FloatingPointError(f"scorer returned {int((~np.isfinite(scores)).sum())} non-finite window scores")
    return starts, scores


def step_scores(scorer: Scorer | nn.Module, series: np.ndarray, window: int, stride: int = 1,
                batch_size: int = 256, device: str = "auto", tab_faithful: bool = False,
                progress: bool = False) -> np.ndarray:
    """(T,) float64 per-step anomaly scores of a (T, C) series; every step covered.

    tab_faithful=True ignores `stride` (windows [kW, (k+1)W)) and gives the last T mod W steps 0: an artefact mode.
    """
    starts, scores = window_scores(scorer, series, window, stride, batch_size, device, tab_faithful, progress)
    return per_step_from_windows(starts, scores, len(series), window, fill=0.0 if tab_faithful else np.nan)
