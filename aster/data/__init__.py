"""Datasets: one interface for every source format (see `loaders/`) and the synthetic default."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


class DataError(ValueError):
    """Bad input data. The message is one line naming the file and what is wrong."""


@dataclass
class Dataset:
    """One series: train part, test part and test labels, as the rest of the system sees it."""

    name: str  # e.g. "MSL", "SMD/machine-1-2", "SKAB/valve1/0"
    train: np.ndarray  # (T_train, C) float32; may hold NaN only where the source has gaps
    test: np.ndarray  # (T_test, C) float32
    test_labels: np.ndarray  # (T_test,) int8 of 0/1
    channels: list[str]
    provenance: dict = field(default_factory=dict)  # source files, sha256, loader, notes

    def __post_init__(self) -> None:
        self.train = np.asarray(self.train, dtype=np.float32)
        self.test = np.asarray(self.test, dtype=np.float32)
        self.test_labels = np.asarray(self.test_labels, dtype=np.int8)
        if self.train.ndim != 2 or self.test.ndim != 2:
            raise DataError(f"{self.name}: train and test must be 2-D (time x channels), "
                            f"got {self.train.shape} and {self.test.shape}")
        if self.train.shape[1] != self.test.shape[1] or self.train.shape[1] != len(self.channels):
            raise DataError(f"{self.name}: channel count differs: train {self.train.shape[1]}, "
                            f"test {self.test.shape[1]}, names {len(self.channels)}")
        if self.test_labels.shape != (self.test.shape[0],):
            raise DataError(f"{self.name}: {self.test_labels.shape[0]} test labels for "
                            f"{self.test.shape[0]} test rows")

    @property
    def n_channels(self) -> int:
        return self.train.shape[1]
