"""TSB-AD CSV: channel columns + `Label` last; train length in the file name (`_tr_<N>_`).

Also Daphnet, which is only available here as TSB-AD-M's curated CSV: the same reader, with its caveat noted.
"""

from __future__ import annotations

import re
from pathlib import Path

from aster.data import DataError, Dataset
from aster.data.loaders._common import (TABLE_SUFFIXES, _fill_gaps, _gap_note, _labels01, _numeric, _provenance,
                                        _read_table, sha256_file)


def _tsbad_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    files = sorted(f for f in path.iterdir() if f.is_file() and f.name.lower().endswith(TABLE_SUFFIXES))
    if not files:
        raise DataError(f"{path}: no TSB-AD CSV files (*.csv, *.csv.xz, ...)")
    return files


def _tsbad_one(f: Path, train_len: int | None, gap_policy: str, loader: str, notes: list[str]) -> Dataset:
    where = str(f)
    df = _read_table(f, where)
    if df.columns[-1].lower() != "label":
        raise DataError(f"{where}: last column is {df.columns[-1]!r}, expected 'Label'")
    if train_len is None:
        m = re.search(r"_tr_(\d+)_", f.name)
        if not m:
            raise DataError(f"{where}: no '_tr_<N>_' in the file name; pass train_len=")
        train_len = int(m.group(1))
    if not 0 < train_len < len(df):
        raise DataError(f"{where}: train_len={train_len} out of range for {len(df)} rows")
    channels = list(df.columns[:-1])
    filled = {}
    x = _fill_gaps(_numeric(df[channels], where), where, channels, gap_policy, filled)
    y = _labels01(df.iloc[:, -1].to_numpy(), where, df.columns[-1])
    notes = [*notes, f"TSB-AD split: first {train_len} rows train ({int(y[:train_len].sum())} label-1 rows "
             "there, ignored)", *_gap_note(filled, gap_policy)]
    name = f.name.split(".")[0].split("_tr_")[0]
    return Dataset(name, x[:train_len], x[train_len:], y[train_len:], channels,
                   _provenance(loader, {where: sha256_file(f)}, notes, train_len=train_len,
                               gap_policy=gap_policy, gaps_filled=filled))


def load_tsbad_csv(path: Path, *, train_len: int | None = None, gap_policy: str = "error") -> list[Dataset]:
    """TSB-AD CSV (channels + `Label` last), one file or every CSV of a directory; train length from `_tr_<N>_`."""
    files = _tsbad_files(path)
    if train_len is not None and len(files) > 1:
        raise DataError(f"{path}: train_len= applies to one file, {len(files)} found")
    return [_tsbad_one(f, train_len, gap_policy, "tsbad_csv", []) for f in files]


def load_daphnet(path: Path, *, train_len: int | None = None, gap_policy: str = "error") -> list[Dataset]:
    """Daphnet as curated by TSB-AD-M (one series, 9 channels): the tsbad_csv reader with its caveat noted."""
    files = _tsbad_files(path)
    if len(files) != 1:
        raise DataError(f"{path}: expected the one TSB-AD-M Daphnet CSV, found {[f.name for f in files]}")
    note = ("TSB-AD-M's single Daphnet series; TAB's Daphnet is probably 7 recordings "
            "(daphnet_S01R02 ... S08R01), so results are not TAB-comparable")
    return [_tsbad_one(files[0], train_len, gap_policy, "daphnet", [note])]
