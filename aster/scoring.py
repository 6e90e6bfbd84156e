"""Window scores -> one score per time step.

Default (ours, docs/method.md): stride-1 windows, every step gets the mean score of the windows covering it
(arithmetic, or geometric: a model's `step_mean`). With a larger stride a final window ending at T-1 is always
added, so every step is covered (no zero-padded tail).
`tab_faithful=True` reproduces TAB's artefact instead (docs/evaluation.md §2): non-overlapping windows and the last
T mod W steps scored 0; use it only to compare with TAB's published numbers.

Everything runs through a `scorer`: a callable mapping a float32 (B, W, C) numpy batch to (B,) window scores or
(B, N) token scores (N tokens of W / N steps each, `score_level: token`), so the same code scores a torch model
(`torch_scorer`) or an onnxruntime session. Token scores localise: a step gets the mean, over the windows covering
it, of the score of the token that holds it, instead of the mean of whole-window scores.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from tqdm.auto import tqdm

from aster.windows import check_series, per_step_from_windows, window_starts, windows_batch

__all__ = ["Scorer", "per_step_from_windows", "step_scores", "torch_scorer", "window_scores", "window_starts"]

Scorer = Callable[[np.ndarray], np.ndarray]


def torch_scorer(model, device="auto") -> Scorer:
    """Wrap `model.score` (sigmoid of the logit) as a numpy -> numpy scorer, in eval mode, without autograd."""
    import torch

    from aster.training import resolve_device

    device = resolve_device(device) if isinstance(device, str) else device
    model.to(device).eval()

    def score(batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model.score(torch.from_numpy(batch).to(device)).float().cpu().numpy()

    return score


def window_scores(scorer, series: np.ndarray, window: int, stride: int = 1,
                  batch_size: int = 256, device: str = "auto", tab_faithful: bool = False,
                  progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(starts, scores (n,) or (n, N)) of the scoring windows of a (T, C) series, scored batch by batch."""
    series = check_series(series, window)
    if hasattr(scorer, "score") and hasattr(scorer, "parameters"):  # a torch model (torch imported lazily)
        scorer = torch_scorer(scorer, device)
    starts = window_starts(series.shape[0], window, stride, tab_faithful)
    parts = []
    for i in tqdm(range(0, len(starts), batch_size), desc="scoring", disable=not progress, leave=False):
        batch = starts[i:i + batch_size]
        s = np.asarray(scorer(windows_batch(series, batch, window)), dtype=np.float64)
        if s.ndim not in (1, 2) or s.shape[0] != len(batch) or (s.ndim == 2 and window % s.shape[1]):
            raise ValueError(f"scorer returned scores of shape {s.shape} for a batch of {len(batch)} windows "
                             f"(expected ({len(batch)},) or ({len(batch)}, N) with N dividing {window})")
        parts.append(s)
    scores = np.concatenate(parts)
    if not np.isfinite(scores).all():
        raise FloatingPointError(f"scorer returned {int((~np.isfinite(scores)).sum())} non-finite window scores")
    return starts, scores


def step_scores(scorer, series: np.ndarray, window: int, stride: int = 1,
                batch_size: int = 256, device: str = "auto", tab_faithful: bool = False,
                progress: bool = False, mean: str = "arithmetic") -> np.ndarray:
    """(T,) float64 per-step anomaly scores of a (T, C) series; every step covered.

    mean: how the scores of the windows covering a step are averaged, "arithmetic" | "geometric" (a model's
    `step_mean`; per_step_from_windows says why).

    tab_faithful=True ignores `stride` (windows [kW, (k+1)W)) and gives the last T mod W steps 0: an artefact mode.
    """
    starts, scores = window_scores(scorer, series, window, stride, batch_size, device, tab_faithful, progress)
    if scores.ndim == 2:  # token k of the window at s covers [s + k * patch, s + (k + 1) * patch)
        patch = window // scores.shape[1]
        starts = (starts[:, None] + patch * np.arange(scores.shape[1])).reshape(-1)
        scores, window = scores.reshape(-1), patch
    return per_step_from_windows(starts, scores, len(series), window, fill=0.0 if tab_faithful else np.nan,
                                 mean=mean)
