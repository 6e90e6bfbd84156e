"""The ingested format between pipeline stages: one `.npz` (arrays, no pickle) + one `.json` per series."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from aster.data import DataError, Dataset
from aster.io import atomic_path, write_json


def series_id(name: str) -> str:
    """File-system-safe id of a series name: 'SKAB/valve1/0' -> 'SKAB-valve1-0'."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-")


def save_series(ds: Dataset, directory: str | Path) -> Path:
    directory = Path(directory)
    sid = series_id(ds.name)
    with atomic_path(directory / f"{sid}.npz", ".npz") as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, train=ds.train, test=ds.test, test_labels=ds.test_labels,
                     channels=np.array(ds.channels, dtype=str))
    write_json(directory / f"{sid}.json", {"name": ds.name, "channels": ds.channels, "provenance": ds.provenance})
    return directory / f"{sid}.npz"


def load_series(directory: str | Path) -> list[Dataset]:
    """All series of an ingested dataset directory, in name order."""
    directory = Path(directory)
    files = sorted(directory.glob("*.npz"))
    if not files:
        raise DataError(f"{directory}: no ingested series (*.npz) found; run the ingest stage first")
    out = []
    for path in files:
        meta = json.loads(path.with_suffix(".json").read_text())
        with np.load(path, allow_pickle=False) as z:
            out.append(Dataset(name=meta["name"], train=z["train"], test=z["test"], test_labels=z["test_labels"],
                               channels=[str(c) for c in z["channels"]], provenance=meta["provenance"]))
    return out
