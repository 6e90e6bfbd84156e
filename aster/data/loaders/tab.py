"""TAB long CSV: date,data,cols (or data,cols); channel blocks in order of first appearance, `label` block last.

TAB's own files, so a series can be scored exactly as TAB stores it; train length from `train_lens` or
DETECT_META.csv.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from aster.data import DataError, Dataset
from aster.data.loaders._common import (_fill_gaps, _gap_note, _labels01, _numeric, _oneline, _provenance,
                                        _read_table, sha256_file)


def _tab_train_lens(path: Path) -> int:
    meta = path.parent / "DETECT_META.csv"
    if not meta.exists():
        raise DataError(f"{path}: option train_lens not given and no DETECT_META.csv next to it")
    m = _read_table(meta, str(meta))
    for c in ("file_name", "train_lens"):
        if c not in m.columns:
            raise DataError(f"{meta}: no {c!r} column")
    row = m[m["file_name"].astype(str).str.strip() == path.name]
    if len(row) != 1:
        raise DataError(f"{meta}: {len(row)} rows for file_name {path.name!r}, expected 1")
    return int(row["train_lens"].iloc[0])


def load_tab_csv(path: Path, *, train_lens: int | None = None, gap_policy: str = "error") -> list[Dataset]:
    """TAB long CSV (`date,data,cols` or `data,cols`) pivoted to T x C; the last block must be `label`."""
    where = str(path)
    header = list(_read_table(path, where, nrows=0).columns)
    if header not in (["date", "data", "cols"], ["data", "cols"]):
        raise DataError(f"{where}: columns {header}, expected date,data,cols or data,cols")
    read = dict(header=0, names=header, usecols=["data", "cols"])  # the date column is never parsed
    try:
        df = _read_table(path, where, dtype={"data": np.float64, "cols": "category"}, **read)
    except ValueError as e:
        if isinstance(e, DataError):
            raise
        _numeric(_read_table(path, where, dtype={"cols": "category"}, **read)[["data"]], where)  # names the line
        raise DataError(f"{where}: column 'data' is not numeric ({_oneline(e)})") from None
    codes = df["cols"].cat.codes.to_numpy()
    if (codes < 0).any():
        raise DataError(f"{where}: empty 'cols' cell at line {int(np.flatnonzero(codes < 0)[0]) + 2}")
    names = np.asarray(df["cols"].cat.categories, dtype=object)
    values = df["data"].to_numpy()
    starts = np.concatenate([[0], np.flatnonzero(codes[1:] != codes[:-1]) + 1])
    block_codes = codes[starts]
    if len(np.unique(block_codes)) == len(block_codes):  # contiguous blocks (TAB's layout): reshape, no copy
        order = block_codes
        lengths = np.diff(np.append(starts, len(codes)))
    else:  # interleaved rows: stable sort by channel in order of first appearance
        first = {c: i for i, c in reversed(list(enumerate(block_codes)))}
        order = np.array(sorted(first, key=first.get))
        rank = np.empty(len(names), np.int64)
        rank[order] = np.arange(len(order))
        idx = np.argsort(rank[codes], kind="stable")
        values = values[idx]
        lengths = np.bincount(rank[codes], minlength=len(order))
    channels = [str(names[c]) for c in order]
    if len(set(lengths)) != 1:
        j = int(np.argmin(lengths == lengths.max()))
        raise DataError(f"{where}: channel {channels[j]!r} has {lengths[j]} values, others {lengths.max()}")
    n = int(lengths[0])
    table = values.reshape(len(channels), n).T
    if "label" not in channels:
        raise DataError(f"{where}: no 'label' block in column 'cols'")
    if channels[-1] != "label":
        raise DataError(f"{where}: the 'label' block must be the last one, it is block "
                        f"{channels.index('label') + 1} of {len(channels)}")
    feats = channels[:-1]
    if train_lens is None:
        train_lens = _tab_train_lens(path)
    if not 0 < train_lens < n:
        raise DataError(f"{where}: train_lens={train_lens} out of range for {n} rows")
    filled = {}
    x = _fill_gaps(np.ascontiguousarray(table[:, :-1]), where, feats, gap_policy, filled)
    y = _labels01(table[:, -1], where, "label")
    notes = [f"TAB layout: first {train_lens} rows train, rest test; train part holds "
             f"{int(y[:train_lens].sum())} label-1 rows (ignored)", *_gap_note(filled, gap_policy)]
    name = path.name.split(".")[0]
    return [Dataset(name, x[:train_lens], x[train_lens:], y[train_lens:], feats,
                    _provenance("tab_csv", {where: sha256_file(path)}, notes, train_lens=int(train_lens),
                                gap_policy=gap_policy, gaps_filled=filled))]
