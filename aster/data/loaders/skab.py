"""SKAB v0.9: data/{valve1,valve2,other}/<n>.csv, ';'-separated; anomaly-free.csv skipped.

34 labelled experiments as 34 series, split as the SKAB authors do (TAB's split inside a file is unknown).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

from aster.data import DataError, Dataset
from aster.data.loaders._common import (_Container, _fill_gaps, _gap_note, _labels01, _natural, _numeric,
                                        _provenance, _read_table)

_SKAB_RE = re.compile(r"(?:^|/)(valve1|valve2|other)/(\d+)\.csv$")


def load_skab(path: Path, *, train_rows: int = 400, series: Sequence[str] | None = None,
              gap_policy: str = "error") -> list[Dataset]:
    """SKAB: the 34 labelled experiments as 34 series; first `train_rows` rows train (SKAB authors' protocol)."""
    wanted = None if series is None else {str(s).removeprefix("SKAB/") for s in series}
    out, found = [], set()
    src = _Container(path, _SKAB_RE)
    for m in src:
        key = f"{m.match.group(1)}/{m.match.group(2)}"
        if wanted is not None and key not in wanted:
            continue
        found.add(key)
        df = _read_table(m.data, m.where, sep=";")
        if "anomaly" not in df.columns:
            raise DataError(f"{m.where}: no 'anomaly' column (columns: {list(df.columns)})")
        channels = [c for c in df.columns if c not in ("datetime", "anomaly", "changepoint")]
        if not 0 < train_rows < len(df):
            raise DataError(f"{m.where}: train_rows={train_rows} out of range for {len(df)} rows")
        filled = {}
        x = _fill_gaps(_numeric(df[channels], m.where), m.where, channels, gap_policy, filled)
        y = _labels01(df["anomaly"].to_numpy(), m.where, "anomaly")
        notes = [f"SKAB authors' split (core/utils.py preprocess_skab): first {train_rows} rows train, rest test; "
                 "TAB's split inside a SKAB file is unknown",
                 f"train part holds {int(y[:train_rows].sum())} anomalous rows (ignored)",
                 "label = 'anomaly' column; 'changepoint' not used", *_gap_note(filled, gap_policy)]
        out.append(Dataset(f"SKAB/{key}", x[:train_rows], x[train_rows:], y[train_rows:], channels,
                           _provenance("skab", src.sha_of([m.where]), notes, member=m.where, train_rows=train_rows,
                                       gap_policy=gap_policy, gaps_filled=filled)))
    if wanted is not None and wanted - found:
        raise DataError(f"{src.label}: SKAB series not found: {sorted(wanted - found, key=_natural)}")
    if not out:
        raise DataError(f"{src.label}: no SKAB files ({{valve1,valve2,other}}/<n>.csv)")
    return sorted(out, key=lambda d: _natural(d.name))
