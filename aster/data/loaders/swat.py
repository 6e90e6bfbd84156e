"""SWaT: iTrust Normal/Attack files, or the processed SWaT_train/SWaT_test CSVs (NSIBF style).

The two releases differ in title rows, label spelling (Normal/Attack or 0/1) and file names; both are read as
they are. iTrust's .xlsx files must be exported to CSV first.
"""

from __future__ import annotations

import lzma
import re
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from aster.data import DataError, Dataset
from aster.data.loaders._common import (TABLE_SUFFIXES, _fill_gaps, _gap_note, _labels01, _numeric, _oneline,
                                        _provenance, _read_table, sha256_file)

_SWAT_LABELS = {"normal": 0, "attack": 1}


def _swat_file(directory: Path, given: str | None, words: tuple[str, ...], what: str) -> Path:
    if given is not None:
        f = Path(given) if Path(given).is_absolute() else directory / given
        if not f.exists():
            raise DataError(f"{f}: {what} file not found")
        return f
    hits = [f for f in sorted(directory.iterdir()) if f.is_file() and f.name.lower().endswith(TABLE_SUFFIXES)
            and any(w in f.name.lower() for w in words)]
    if len(hits) != 1:
        raise DataError(f"{directory}: need exactly one {what} file (name containing {' or '.join(words)}), "
                        f"found {[h.name for h in hits]}; pass {what}_file=")
    return hits[0]


def _head_lines(path: Path, n: int) -> list[str]:
    """First `n` text lines of a (possibly compressed or zipped) table file."""
    import bz2
    import gzip
    low = path.name.lower()
    try:
        if low.endswith(".zip"):
            with zipfile.ZipFile(path) as z:
                names = [x for x in z.namelist() if not x.endswith("/") and not x.startswith("__MACOSX")]
                with z.open(names[0]) as f:
                    return [f.readline().decode("utf-8", "replace") for _ in range(n)]
        opener = {".xz": lzma.open, ".gz": gzip.open, ".bz2": bz2.open}.get(path.suffix.lower(), open)
        with opener(path, "rt", errors="replace") as f:
            return [f.readline() for _ in range(n)]
    except (IndexError, zipfile.BadZipFile, lzma.LZMAError, EOFError, OSError) as e:
        raise DataError(f"{path}: cannot read ({_oneline(e)})") from None


def _read_swat(path: Path) -> tuple[pd.DataFrame, int]:
    """The table below its header row (iTrust exports may have title rows above it); header line number."""
    lines = _head_lines(path, 5)
    key = [re.sub(r"\s+", "", line).lower() for line in lines]
    r = next((i for i, k in enumerate(key) if "normal/attack" in k or "timestamp" in k), 0)
    return _read_table(path, str(path), skiprows=r), r + 1


def _swat_label_column(df: pd.DataFrame) -> str | None:
    for c in df.columns:
        if re.sub(r"\s+", "", c).lower() in ("normal/attack", "label", "attack"):
            return c
    return None


def _swat_labels(values: np.ndarray, where: str, column: str, first_line: int) -> np.ndarray:
    if pd.api.types.is_numeric_dtype(values):
        return _labels01(values, where, column, first_line)
    key = pd.Series(values).astype(str).str.replace(r"\s+", "", regex=True).str.lower()
    out = key.map(_SWAT_LABELS)
    if out.isna().any():
        i = int(np.flatnonzero(out.isna().to_numpy())[0])
        raise DataError(f"{where}: label {values[i]!r} in column {column!r} at line {i + first_line}; "
                        f"expected Normal or Attack")
    return out.to_numpy(np.int8)


def load_swat(path: Path, *, gap_policy: str = "error", train_skip: int = 0, train_file: str | None = None,
              test_file: str | None = None) -> list[Dataset]:
    """SWaT: iTrust SWaT_Dataset_Normal/Attack CSVs, or the processed SWaT_train/SWaT_test CSVs (NSIBF style)."""
    if not path.is_dir():
        raise DataError(f"{path}: expected a directory holding the SWaT train (Normal) and test (Attack) files")
    files = {"train": _swat_file(path, train_file, ("normal", "train"), "train"),
             "test": _swat_file(path, test_file, ("attack", "test"), "test")}
    parts, filled, channels, notes = {}, {}, None, []
    for k, f in files.items():
        df, header_line = _read_swat(f)
        empty = [c for c in df.columns if c.startswith("Unnamed:") and df[c].isna().all()]
        df = df.drop(columns=empty)
        lab = _swat_label_column(df)
        if lab is None and k == "test":
            raise DataError(f"{f}: no label column ('Normal/Attack' or 'label')")
        feats = [c for c in df.columns if c != lab and re.sub(r"\s+", "", c).lower() != "timestamp"]
        if channels is None:
            channels = feats
        elif feats != channels:
            raise DataError(f"{f}: {len(feats)} feature columns, expected the {len(channels)} of "
                            f"{files['train'].name}" + ("" if len(feats) != len(channels) else
                                                        f" (first difference: {_first_diff(feats, channels)})"))
        x = _fill_gaps(_numeric(df[feats], str(f), header_line), str(f), feats, gap_policy, filled)
        y = _swat_labels(df[lab].to_numpy(), str(f), lab, header_line + 1) if lab else None
        if k == "train":
            if not 0 <= train_skip < len(x):
                raise DataError(f"{f}: train_skip={train_skip} out of range for {len(x)} rows")
            x, y = x[train_skip:], (y[train_skip:] if y is not None else None)
            if y is not None and y.any():
                notes.append(f"train file marks {int(y.sum())} rows as attack; train labels are ignored")
        parts[k] = (x, y)
    n_train = len(parts["train"][0])
    notes += [f"train {n_train} rows after train_skip={train_skip}; TAB's SWAT.csv uses train_lens 495,000 "
              "(Normal_v1 = Normal_v0 without its first 1,800 rows, inferred)",
              f"test {len(parts['test'][0])} rows (TAB: 449,919)", *_gap_note(filled, gap_policy)]
    sha = {str(f): sha256_file(f) for f in files.values()}
    return [Dataset("SWaT", parts["train"][0], parts["test"][0], parts["test"][1], channels,
                    _provenance("swat", sha, notes, gap_policy=gap_policy, gaps_filled=filled,
                                train_skip=train_skip))]


def _first_diff(a: list[str], b: list[str]) -> str:
    i = next(i for i, (u, v) in enumerate(zip(a, b)) if u != v)
    return f"column {i}: {a[i]!r} vs {b[i]!r}"
