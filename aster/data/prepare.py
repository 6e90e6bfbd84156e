"""Train-only scaling and the chronological train/validation split (docs/evaluation.md §1.2-1.3).

The scaler is fit on the first `train_fraction` of the training series only and stored as JSON
(never pickle). The validation tail is used for the label-free production threshold, never for the
protocol's threshold pool. A channel that is constant on the fit part has no spread to scale by: the policy
`constant_channels` (params.yaml `prepare`) either refuses it ("error") or keeps it with the scale max(|mean|, 1)
and a logged warning ("keep"), so a later deviation is measured relative to the channel's level, never amplified.
A channel with only a few distinct values on the fit part (a command or a flag, mostly in one state) has a tiny
standard deviation, so z-scoring turns each rare switch into tens or hundreds of sd, which then dominates every
distance. The policy `few_valued_scale` keeps z-scoring ("zscore") or scales such a channel by at least half its
range ("half_range": a switch between its two extreme values then counts about 2 sd, as for a balanced flag),
with one logged line per series listing the channels it changed.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from sklearn.preprocessing import StandardScaler

from aster.data import DataError, Dataset
from aster.io import write_json

log = logging.getLogger(__name__)
CONSTANT_POLICIES = ("keep", "error")
FEW_VALUED_POLICIES = ("zscore", "half_range")
FEW_VALUES = 5  # at most this many distinct values on the fit part (and at least 2) make a channel few-valued


def constant_channels(fit: np.ndarray, channels: list[str]) -> dict[str, float]:
    """channel -> its value, for every channel without variation on the fit part."""
    fit = np.asarray(fit, dtype=np.float64)
    flat = np.ptp(fit, axis=0) == 0 if len(fit) else np.zeros(len(channels), bool)
    return {channels[i]: float(fit[0, i]) for i in np.flatnonzero(flat)}


def few_valued_channels(fit: np.ndarray) -> list[int]:
    """Indices of the channels with 2 to FEW_VALUES distinct values on the fit part."""
    fit = np.asarray(fit, dtype=np.float64)
    return [i for i in range(fit.shape[1]) if 2 <= len(np.unique(fit[:, i])) <= FEW_VALUES]


@dataclass
class Scaler:
    """z-score statistics per channel; a constant channel gets the scale max(|mean|, 1), a few-valued one at least
    half its range under `few_valued="half_range"` (see the module doc)."""

    mean: list[float]
    scale: list[float]
    channels: list[str]

    @classmethod
    def fit(cls, data: np.ndarray, channels: list[str], constant: str = "keep", name: str = "series",
            few_valued: str = "zscore") -> "Scaler":
        if constant not in CONSTANT_POLICIES:
            raise ValueError(f"prepare.constant_channels must be one of {CONSTANT_POLICIES}, got {constant!r}")
        if few_valued not in FEW_VALUED_POLICIES:
            raise ValueError(f"prepare.few_valued_scale must be one of {FEW_VALUED_POLICIES}, got {few_valued!r}")
        sk = StandardScaler().fit(data.astype(np.float64))
        scale = sk.scale_.copy()
        flat = constant_channels(data, list(channels))
        if flat and constant == "error":
            raise DataError(f"{name}: channel(s) {sorted(flat)} are constant on the fit part "
                            f"(prepare.constant_channels: error)")
        for ch in flat:
            i = list(channels).index(ch)
            scale[i] = max(abs(float(sk.mean_[i])), 1.0)
            log.warning("%s: channel %r is constant (%g) on the fit part: kept with scale %g "
                        "(prepare.constant_channels: keep)", name, ch, flat[ch], scale[i])
        if few_valued == "half_range":
            changed = []
            for i in few_valued_channels(data):
                half = float(np.ptp(data[:, i])) / 2
                if half > scale[i]:
                    changed.append(f"{channels[i]} {scale[i]:.3g} -> {half:.3g}")
                    scale[i] = half
            if changed:
                log.info("%s: %d few-valued channel(s) scaled by half their range (prepare.few_valued_scale: "
                         "half_range): %s", name, len(changed), ", ".join(changed))
        return cls(mean=sk.mean_.tolist(), scale=scale.tolist(), channels=list(channels))

    def transform(self, data: np.ndarray) -> np.ndarray:
        if data.ndim != 2 or data.shape[1] != len(self.mean):
            raise DataError(f"scaler expects (T, {len(self.mean)}) data, got {data.shape}")
        out = (data - np.asarray(self.mean)) / np.asarray(self.scale)
        return out.astype(np.float32)

    def save(self, path: str | Path) -> None:
        write_json(path, asdict(self))

    @classmethod
    def load(cls, path: str | Path) -> "Scaler":
        return cls(**json.loads(Path(path).read_text()))


@dataclass
class Prepared:
    """One series after the split and scaling: what training and evaluation read."""

    name: str
    train: np.ndarray  # scaled first 80 % of the training series (fit part)
    val: np.ndarray  # scaled last 20 %
    test: np.ndarray
    test_labels: np.ndarray
    scaler: Scaler


def split_point(n_train: int, train_fraction: float) -> int:
    """TAB's `train_val_split`: the first floor(fraction * n) rows fit the model."""
    return int(np.floor(train_fraction * n_train))


def prepare(ds: Dataset, train_fraction: float = 0.8, window: int = 100, constant: str = "keep",
            few_valued: str = "zscore") -> Prepared:
    cut = split_point(len(ds.train), train_fraction)
    for part, rows in (("train (fit part)", cut), ("validation", len(ds.train) - cut), ("test", len(ds.test))):
        if rows < window:
            raise DataError(f"{ds.name}: {part} has {rows} rows, fewer than one window of {window}")
    scaler = Scaler.fit(ds.train[:cut], ds.channels, constant, ds.name, few_valued)
    return Prepared(name=ds.name, train=scaler.transform(ds.train[:cut]), val=scaler.transform(ds.train[cut:]),
                    test=scaler.transform(ds.test), test_labels=ds.test_labels, scaler=scaler)


def save_prepared(p: Prepared, ds: Dataset, directory: str | Path) -> None:
    """Arrays as .npy (memory-mappable by the training windows), scaler and metadata as JSON."""
    from aster.io import write_npy

    directory = Path(directory)
    for part in ("train", "val", "test", "test_labels"):
        write_npy(directory / f"{part}.npy", getattr(p, part))
    p.scaler.save(directory / "scaler.json")
    write_json(directory / "meta.json", {"name": p.name, "channels": ds.channels, "provenance": ds.provenance,
                                          "rows": {"train": len(p.train), "val": len(p.val), "test": len(p.test)}})


def load_prepared(directory: str | Path, mmap: bool = True) -> tuple[Prepared, dict]:
    directory = Path(directory)
    mode = "r" if mmap else None
    arrays = {part: np.load(directory / f"{part}.npy", mmap_mode=mode, allow_pickle=False)
              for part in ("train", "val", "test", "test_labels")}
    meta = json.loads((directory / "meta.json").read_text())
    return Prepared(name=meta["name"], scaler=Scaler.load(directory / "scaler.json"), **arrays), meta


def prepared_series(directory: str | Path) -> list[Path]:
    """The per-series sub-directories of a prepared dataset, in name order."""
    dirs = sorted(d for d in Path(directory).iterdir() if (d / "meta.json").exists())
    if not dirs:
        raise DataError(f"{directory}: no prepared series found; run the prepare stage first")
    return dirs
