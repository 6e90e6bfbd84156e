"""PSM (eBay RANSynCoders): train.csv, test.csv, test_label.csv in one directory, the original eBay split."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from aster.data import DataError, Dataset
from aster.data.loaders._common import (_check_len, _fill_gaps, _find, _gap_note, _labels01, _numeric, _provenance,
                                        _read_table, sha256_file)

PSM_TIME = "timestamp_(min)"


def read_psm_labels(path: Path) -> tuple[np.ndarray | None, np.ndarray]:
    """(timestamps or None, int8 0/1 labels) of PSM's test_label.csv[.xz]."""
    df = _read_table(path, str(path))
    if "label" not in df.columns:
        raise DataError(f"{path}: no 'label' column (columns: {list(df.columns)})")
    ts = _numeric(df[[PSM_TIME]], str(path))[:, 0] if PSM_TIME in df.columns else None
    return ts, _labels01(df["label"].to_numpy(), str(path), "label")


def load_psm(path: Path, *, gap_policy: str = "error") -> list[Dataset]:
    """PSM (eBay): train.csv, test.csv, test_label.csv (.csv or .csv.xz) in one directory."""
    files = {k: _find(path, k) for k in ("train", "test", "test_label")}
    frames, filled = {}, {}
    for k in ("train", "test"):
        df = _read_table(files[k], str(files[k]))
        if PSM_TIME not in df.columns:
            raise DataError(f"{files[k]}: no {PSM_TIME!r} column (first columns: {list(df.columns)[:3]})")
        frames[k] = df
    channels = [c for c in frames["train"].columns if c != PSM_TIME]
    test_cols = [c for c in frames["test"].columns if c != PSM_TIME]
    if test_cols != channels:
        raise DataError(f"{files['test']}: {len(test_cols)} feature columns {test_cols[:3]}..., "
                        f"expected the {len(channels)} of {files['train'].name}")
    arrays = {k: _fill_gaps(_numeric(frames[k][channels], str(files[k])), str(files[k]), channels, gap_policy,
                            filled) for k in ("train", "test")}
    ts, labels = read_psm_labels(files["test_label"])
    _check_len(labels, len(arrays["test"]), str(files["test_label"]), str(files["test"]))
    test_ts = _numeric(frames["test"][[PSM_TIME]], str(files["test"]))[:, 0]
    if ts is not None and not np.array_equal(ts, test_ts):
        i = int(np.flatnonzero(ts != test_ts)[0])
        raise DataError(f"{files['test_label']}: timestamp {ts[i]} at line {i + 2} differs from {test_ts[i]} "
                        f"in {files['test'].name}")
    sha = {str(f): sha256_file(f) for f in files.values()}
    notes = ["original eBay split (train 132,481 / test 87,841 rows in the release; TAB keeps it)",
             *_gap_note(filled, gap_policy)]
    return [Dataset("PSM", arrays["train"], arrays["test"], labels, channels,
                    _provenance("psm", sha, notes, gap_policy=gap_policy, gaps_filled=filled))]
