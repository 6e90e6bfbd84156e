"""Sliding windows over a (T, C) series without materialising them (memory grows with T, not T*W)."""

from __future__ import annotations

import numpy as np
import torch
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


class SlidingWindows(torch.utils.data.Dataset):
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

    def __getitem__(self, i: int) -> torch.Tensor:
        s = int(self.starts([i])[0])
        return torch.from_numpy(np.array(self.series[s : s + self.window], dtype=np.float32))

    def __getitems__(self, idx: list[int]) -> list[torch.Tensor]:
        """Batched fetch used by DataLoader: one fancy-index copy instead of B small ones."""
        return list(torch.from_numpy(self.batch(idx)).unbind(0))

    def batch(self, idx: np.ndarray | list[int]) -> np.ndarray:
        """(B, W, C) float32 array of the windows with indices `idx`."""
        return windows_batch(self.series, self.starts(idx), self.window)
