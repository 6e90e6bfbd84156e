"""Sliding windows over a (T, C) series without materialising them (memory grows with T, not T*W).

Numpy only (torch is imported lazily by `SlidingWindows.__getitem__`), so the serving process can window and
map window scores to steps without importing torch.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def check_series(series: np.ndarray, window: int, name: str = "series") -> np.ndarray:
    """Return `series` as a 2-D array (no copy; a np.load mmap stays an mmap); raise a one-line error if unusable."""
    a = np.asarray(series)
    if a.ndim != 2:
        raise ValueError(f"{name} must be 2-D (T, C), got shape {a.shape}")
    if not np.issubdtype(a.dtype, np.floating):
        raise ValueError(f"{name} must hold floats, got dtype {a.dtype}")
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    if a.shape[0] < window:
        raise ValueError(f"{name} has {a.shape[0]} rows, window needs {window}")
    return a


def windows_batch(array: np.ndarray, starts: np.ndarray, window: int) -> np.ndarray:
    """Copy the windows starting at `starts` into one contiguous float32 (B, W, C) array.

    sliding_window_view is a view (no copy); the fancy index copies only the B requested windows.
    """
    view = sliding_window_view(array, window, axis=0)  # (T-W+1, C, W), a view
    out = view[np.asarray(starts, dtype=np.int64)]  # (B, C, W), the only copy
    return np.ascontiguousarray(out.transpose(0, 2, 1), dtype=np.float32)


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


STEP_MEANS = ("arithmetic", "geometric")
# geometric mean: scores are clipped here first, so a float32 probability of exactly 0 stays finite in the log
GEOMETRIC_FLOOR = float(np.finfo(np.float32).tiny)


def per_step_from_windows(starts: np.ndarray, scores: np.ndarray, T: int, window: int,
                          fill: float = np.nan, mean: str = "arithmetic") -> np.ndarray:
    """(T,) float64 mean of the scores of the windows covering each step; `fill` where none does.

    mean "geometric" (for scores in [0, 1]): exp(mean log max(score, GEOMETRIC_FLOOR)). A step scores high only
    when every window covering it does, so windows that merely reach into an anomaly pull its neighbours less than
    in the arithmetic mean. Difference arrays + cumulative sums: O(T + n_windows) time and memory, never O(T * W).
    """
    starts, scores = np.asarray(starts, dtype=np.int64), np.asarray(scores, dtype=np.float64)
    if starts.shape != scores.shape or starts.ndim != 1:
        raise ValueError(f"starts {starts.shape} and scores {scores.shape} must be matching 1-D arrays")
    if starts.size and (starts.min() < 0 or starts.max() > T - window):
        raise ValueError(f"window starts must lie in [0, {T - window}] for T={T}, window={window}")
    if mean not in STEP_MEANS:
        raise ValueError(f"mean must be one of {STEP_MEANS}, got {mean!r}")
    if mean == "geometric":
        if scores.size and not (scores.min() >= 0 and scores.max() <= 1):
            raise ValueError(f"a geometric step mean needs scores in [0, 1], got [{scores.min():g}, {scores.max():g}]")
        out = per_step_from_windows(starts, np.log(np.maximum(scores, GEOMETRIC_FLOOR)), T, window, np.nan)
        return np.where(np.isnan(out), fill, np.exp(out))
    total = np.cumsum(np.bincount(starts, scores, T + 1) - np.bincount(starts + window, scores, T + 1))[:T]
    count = np.cumsum(np.bincount(starts, minlength=T + 1) - np.bincount(starts + window, minlength=T + 1))[:T]
    out = np.full(T, fill, dtype=np.float64)
    covered = count > 0
    out[covered] = total[covered] / count[covered]
    return out



class SlidingWindows:
    """Windows [i*stride, i*stride + W) of a (T, C) series, built on demand.

    Training windows: with stride > 1 the tail rows past the last full stride step are simply not used
    (no extra end-aligned window): training only needs a representative sample of normal windows, and an
    extra window would be sampled with a different frequency than the others. Scoring, which must cover
    every step, adds the end-aligned window itself (aster.scoring.window_starts).
    """

    def __init__(self, series: np.ndarray, window: int, stride: int = 1):
        if stride < 1:
            raise ValueError(f"stride must be >= 1, got {stride}")
        self.series = check_series(series, window)
        self.window, self.stride = int(window), int(stride)
        self.n = (self.series.shape[0] - self.window) // self.stride + 1

    def __len__(self) -> int:
        return self.n

    def starts(self, idx: np.ndarray | list[int]) -> np.ndarray:
        idx = np.asarray(idx, dtype=np.int64)
        if idx.size and (idx.min() < -self.n or idx.max() >= self.n):
            raise IndexError(f"window index out of range for {self.n} windows")
        return (idx % self.n) * self.stride

    def __getitem__(self, i: int):
        import torch

        s = int(self.starts([i])[0])
        return torch.from_numpy(np.array(self.series[s : s + self.window], dtype=np.float32))

    def __getitems__(self, idx: list[int]) -> list:
        """Batched fetch used by DataLoader: one fancy-index copy instead of B small ones."""
        import torch

        return list(torch.from_numpy(self.batch(idx)).unbind(0))

    def batch(self, idx: np.ndarray | list[int]) -> np.ndarray:
        """(B, W, C) float32 array of the windows with indices `idx`."""
        return windows_batch(self.series, self.starts(idx), self.window)
