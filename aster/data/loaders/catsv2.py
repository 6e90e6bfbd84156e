"""CATSv2 (Solenix): data.csv (timestamp, 17 channels, y, category) + metadata.csv (start_time, end_time, ...).

One 5-million-row release cut into series by caller-given row ranges, since TAB's subsets are not published.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from aster.data import DataError, Dataset
from aster.data.loaders._common import (_fill_gaps, _find, _gap_note, _labels01, _numeric, _oneline, _provenance,
                                        _read_table, sha256_file)

CATS_NON_CHANNELS = ("timestamp", "y", "category")


def load_catsv2(path: Path, *, subsets: Sequence[Sequence[int]] | None = None, metadata: str | None = None,
                gap_policy: str = "error") -> list[Dataset]:
    """CATSv2 release data.csv cut into series by `subsets` = [(start, end, train_len), ...] row ranges.

    `subsets` is required: TAB's 4 CATSv2 series are, by docs/evaluation.md §1, probably TSB-AD-M's
    `138/139/141/143_CATSv2_id_{1,2,4,6}` files, but their row offsets in the 5-million-row release are not
    known here, so no default can be derived. Load the TSB-AD-M CSVs themselves with kind `tsbad_csv`.
    Rows [start, end) form a series, its first `train_len` rows are train. Labels: the `y` column when
    present, else 1 on every inclusive [start_time, end_time] of `metadata.csv` (same folder, or `metadata`).
    """
    data = _find(path, "data") if path.is_dir() else path
    if not subsets:
        raise DataError(f"{data}: option subsets=[(start, end, train_len), ...] is required (TAB's CATSv2 row "
                        "ranges are unknown); or load the TSB-AD-M CATSv2 CSVs with kind 'tsbad_csv'")
    try:
        subsets = [tuple(int(v) for v in s) for s in subsets]
    except (TypeError, ValueError):
        raise DataError(f"catsv2: subsets must be (start, end, train_len) integer triples, got {subsets!r}") from None
    if any(len(s) != 3 or not 0 <= s[0] < s[0] + s[2] < s[1] for s in subsets):
        raise DataError(f"catsv2: each subset needs 0 <= start < start + train_len < end, got {subsets}")
    n_rows = max(s[1] for s in subsets)
    df = _read_table(data, str(data), nrows=n_rows)
    if len(df) < n_rows:
        raise DataError(f"{data}: {len(df)} rows, subsets need {n_rows}")
    channels = [c for c in df.columns if c.lower() not in CATS_NON_CHANNELS]
    filled = {}
    x = _fill_gaps(_numeric(df[channels], str(data)), str(data), channels, gap_policy, filled)
    sha = {str(data): sha256_file(data)}
    notes = [f"{len(channels)} channels (the release has 17)"] if len(channels) != 17 else []
    if "y" in df.columns:
        y = _labels01(df["y"].to_numpy(), str(data), "y")
        notes.append("labels from the y column")
    else:
        meta = Path(metadata) if metadata else data.parent / "metadata.csv"
        if not meta.exists():
            raise DataError(f"{data}: no 'y' column and no metadata file {meta}")
        y = _cats_labels(df, data, meta)
        sha[str(meta)] = sha256_file(meta)
        notes.append(f"labels from {meta.name}: 1 on every inclusive [start_time, end_time]")
    notes.append("row ranges chosen by the caller; TAB's 4 CATSv2 subsets are not published (docs/evaluation.md §1)")
    notes += _gap_note(filled, gap_policy)
    out = []
    for start, end, train_len in subsets:
        cut = start + train_len
        out.append(Dataset(f"CATSv2/{start}-{end}", x[start:cut], x[cut:end], y[cut:end], channels,
                           _provenance("catsv2", sha, notes, rows=[start, end], train_len=train_len,
                                       gap_policy=gap_policy, gaps_filled=filled)))
    return out


def _cats_labels(df: pd.DataFrame, data: Path, meta: Path) -> np.ndarray:
    m = _read_table(meta, str(meta))
    for c in ("start_time", "end_time"):
        if c not in m.columns:
            raise DataError(f"{meta}: no {c!r} column (columns: {list(m.columns)})")
    if "timestamp" not in df.columns:
        raise DataError(f"{data}: no 'timestamp' column to match {meta.name} against")
    try:
        ts = pd.to_datetime(df["timestamp"]).to_numpy()
        start, end = (pd.to_datetime(m[c]).to_numpy() for c in ("start_time", "end_time"))
    except (ValueError, TypeError) as e:
        raise DataError(f"{meta}: cannot parse times ({_oneline(e)})") from None
    if not (ts[1:] >= ts[:-1]).all():
        raise DataError(f"{data}: timestamps are not sorted")
    mark = np.zeros(len(ts) + 1, np.int64)
    np.add.at(mark, np.searchsorted(ts, start, "left"), 1)
    np.add.at(mark, np.searchsorted(ts, end, "right"), -1)
    return (np.cumsum(mark[:-1]) > 0).astype(np.int8)
