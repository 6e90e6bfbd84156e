"""The ingested format between pipeline stages: one `.npz` (arrays, no pickle) + one `.json` per series."""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

import numpy as np

from aster.data import DataError, Dataset
from aster.io import atomic_path, write_json


ARRAYS = ("train", "test", "test_labels", "channels")  # the arrays of one ingested .npz


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


def read_series(path: str | Path) -> Dataset:
    """One ingested series (.npz arrays + its .json side file); a one-line DataError if it is not one."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in ARRAYS if k not in z.files]
            if missing:
                raise DataError(f"{path}: no array {missing[0]!r} (has {z.files})")
            arrays = {k: z[k] for k in ARRAYS}
    except (ValueError, OSError, zipfile.BadZipFile) as e:
        if isinstance(e, DataError):
            raise
        raise DataError(f"{path}: not a readable .npz ({' '.join(str(e).split())})") from None
    if len(arrays["test_labels"]) != len(arrays["test"]):
        raise DataError(f"{path}: {len(arrays['test_labels'])} test labels for {len(arrays['test'])} test rows")
    side = path.with_suffix(".json")
    meta = json.loads(side.read_text()) if side.exists() else {}
    return Dataset(name=meta.get("name", path.stem), train=arrays["train"], test=arrays["test"],
                   test_labels=arrays["test_labels"], channels=[str(c) for c in arrays["channels"]],
                   provenance=meta.get("provenance", {}))


def load_series(directory: str | Path) -> list[Dataset]:
    """All series of an ingested dataset directory, in name order."""
    directory = Path(directory)
    files = sorted(directory.glob("*.npz"))
    if not files:
        raise DataError(f"{directory}: no ingested series (*.npz) found; run the ingest stage first")
    return [read_series(path) for path in files]
