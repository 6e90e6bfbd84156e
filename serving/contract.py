"""The input contract of the service: what a request may contain, checked before anything is scored.

Every check raises ValueError saying what was expected (the API answers HTTP 400). Nothing is reshaped or coerced:
a boolean among numbers, a stride given as `true`, "2" or 2.0, or an unknown field is refused (pydantic strict
input models with `extra="forbid"`). Scaled values beyond ASTER_MAX_ABS_VALUE (default 1e6 standard deviations of
the training data) are refused too: far outside anything a model was trained on, and where float32 arithmetic
in the network stops being finite; checking them per request keeps one such request from failing the adaptive
batch it would join.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Annotated, Any

import numpy as np
from pydantic import BaseModel, BeforeValidator, ConfigDict, StrictInt, StrictStr

from aster.inference import ExportedModel
from aster.windows import window_starts


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    try:
        value = int(raw) if raw else default
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from None
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return value


@dataclass(frozen=True)
class Contract:
    """What a request may contain, from the card and the limits; every check raises ValueError saying what was
    expected (the API turns it into HTTP 400)."""

    window: int
    channels: tuple[str, ...]
    max_batch: int
    max_series_length: int
    max_series_windows: int
    max_abs: float = 1e6

    @staticmethod
    def numbers(value: Any, name: str, expected: str) -> np.ndarray:
        """A rectangular, non-empty, all-finite array of int/float values as float64 (never reshaped)."""
        if _holds_bool(value):  # numpy would read true as 1.0
            raise ValueError(f"{name}: expected numbers ({expected}), got a boolean (true/false) among them")
        try:
            a = np.asarray(value)
        except (ValueError, TypeError) as e:
            raise ValueError(f"{name}: expected {expected}, got a ragged or non-array value ({e})") from None
        if a.size == 0:
            raise ValueError(f"{name}: empty input (shape {a.shape}); expected {expected}")
        if a.dtype.kind not in "iuf":
            raise ValueError(f"{name}: expected numbers ({expected}), got {a.dtype.name} values")
        a = a.astype(np.float64, copy=False)
        if not np.isfinite(a).all():
            raise ValueError(f"{name}: {int((~np.isfinite(a)).sum())} NaN/inf values; expected finite numbers")
        return a

    @staticmethod
    def for_model(model: ExportedModel) -> "Contract":
        return Contract(window=model.window, channels=model.channels, max_batch=env_int("ASTER_MAX_BATCH", 1024),
                        max_series_length=env_int("ASTER_MAX_SERIES_LENGTH", 100_000),
                        max_series_windows=env_int("ASTER_MAX_SERIES_WINDOWS", 4096),
                        max_abs=float(env_int("ASTER_MAX_ABS_VALUE", 1_000_000)))

    def windows(self, value: Any, limit: bool = True) -> np.ndarray:
        """(B, W, C) float32, 1 <= B (<= max_batch if `limit`), already scaled."""
        w, c = self.window, len(self.channels)
        expected = f"(batch, {w}, {c}) windows of scaled values, batch <= {self.max_batch}"
        a = self.numbers(value, "windows", expected)
        if a.ndim != 3 or a.shape[1:] != (w, c):
            raise ValueError(f"windows: expected shape {expected}, got {a.shape}")
        if limit and a.shape[0] > self.max_batch:
            raise ValueError(f"windows: {a.shape[0]} windows in one request, the limit is {self.max_batch} "
                             f"(ASTER_MAX_BATCH); split the request")
        bad = np.argwhere(np.abs(a) > self.max_abs)
        if len(bad):
            raise ValueError(f"windows: value {a[tuple(bad[0])]:.6g} at index {bad[0].tolist()} is outside "
                             f"+-{self.max_abs:g} (scaled values; ASTER_MAX_ABS_VALUE); {len(bad)} such value(s)")
        return a.astype(np.float32)

    def series(self, value: Any) -> np.ndarray:
        """(T, C) float64 raw series, window <= T <= max_series_length."""
        w, c = self.window, len(self.channels)
        expected = f"a (T, {c}) series (rows = time steps, columns = {list(self.channels)}), {w} <= T <= " \
                   f"{self.max_series_length}"
        a = self.numbers(value, "series", expected)
        if a.ndim != 2 or a.shape[1] != c:
            raise ValueError(f"series: expected {expected}, got shape {a.shape}")
        if a.shape[0] < w:
            raise ValueError(f"series: {a.shape[0]} rows is shorter than one window of {w}; expected {expected}")
        if a.shape[0] > self.max_series_length:
            raise ValueError(f"series: {a.shape[0]} rows, the limit is {self.max_series_length} "
                             f"(ASTER_MAX_SERIES_LENGTH); split the series (keep {w - 1} rows of overlap)")
        return a

    def stride(self, stride: Any, T: int) -> int:
        if isinstance(stride, bool) or not isinstance(stride, (int, np.integer)) or not 1 <= stride <= self.window:
            raise ValueError(f"stride: expected an integer in [1, {self.window}], got {stride!r}")
        n = len(window_starts(T, self.window, stride))  # the windows ExportedModel.score_series will score
        if n > self.max_series_windows:
            raise ValueError(f"series: T={T} with stride {stride} gives {n} windows, the limit is "
                             f"{self.max_series_windows} (ASTER_MAX_SERIES_WINDOWS); use a stride of at least "
                             f"{-(-(T - self.window) // max(1, self.max_series_windows - 1))} or a shorter series")
        return int(stride)


def _holds_bool(value: Any) -> bool:
    """Whether nested lists (parsed JSON) hold a boolean anywhere; arrays are typed already."""
    todo = [value]
    while todo:
        v = todo.pop()
        if isinstance(v, bool):
            return True
        if isinstance(v, list):
            todo.extend(x for x in v if isinstance(x, (list, bool)))
    return False


_active: Contract | None = None


def activate(contract: Contract | None) -> None:
    """The contract the request validators check against: the served series' when there is one; with several
    series (None) the API checks against the series of the request."""
    global _active
    _active = contract


def _validate(kind: str):
    """A pydantic BeforeValidator: runs while the request is parsed, before batching (ValueError -> 400)."""

    def check(value: Any) -> Any:
        if _active is None:
            if _holds_bool(value):
                raise ValueError(f"{kind}: expected numbers, got a boolean (true/false) among them")
            return value
        return getattr(_active, kind)(value)

    return BeforeValidator(check)


Windows = Annotated[np.ndarray, _validate("windows")]
Series = Annotated[np.ndarray, _validate("series")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)


class ScoreInput(_Strict):
    windows: Windows


class WindowsInput(_Strict):
    windows: Windows
    series_id: StrictStr | None = None


class SeriesInput(_Strict):
    series: Series
    stride: StrictInt = 1
    series_id: StrictStr | None = None


class NoInput(_Strict):
    pass
