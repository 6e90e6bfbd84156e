"""NASA telemanom (MSL, SMAP): labeled_anomalies.csv + data/{train,test}/<chan>.npy, directory or tar archive.

The channels are concatenated into one series per spacecraft (the layout of TAB's and the common MSL/SMAP
arrays); `read_telemanom` exposes the arrays before the float32 cast so their checksum can be compared.
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from aster.data import DataError, Dataset
from aster.data.loaders._common import _Container, _fill_gaps, _gap_note, _oneline, _provenance, _read_table

_TELEMANOM_RE = re.compile(r"(?:^|/)(?:(labeled_anomalies)\.csv|(train|test)/([^/]+)\.npy)$")


@dataclass
class TelemanomArrays:
    """The benchmark arrays before the float32 cast (MSL's sha256 cited in docs/evaluation.md §1 is over these)."""

    train: np.ndarray  # float64 (T_train, C), channels' train arrays concatenated in chan_id order
    test: np.ndarray  # float64 (T_test, C)
    labels: np.ndarray  # bool (T_test,)
    chan_ids: list[str]
    sha256: dict[str, str] = field(default_factory=dict)
    members: list[str] = field(default_factory=list)  # where each array came from, in order


def read_telemanom(path: Path, spacecraft: str = "MSL", exclude: Sequence[str] = ()) -> TelemanomArrays:
    """Sort labeled_anomalies.csv rows of `spacecraft` by chan_id (string), concatenate train then test."""
    src = _Container(Path(path), _TELEMANOM_RE)
    arrays: dict[tuple[str, str], tuple[np.ndarray, str]] = {}
    table = None
    for m in src:
        if m.match.group(1):
            table = (_read_table(m.data, m.where), m.where)
            continue
        try:
            a = np.load(io.BytesIO(m.data), allow_pickle=False)
        except (ValueError, OSError, EOFError) as e:
            raise DataError(f"{m.where}: not a readable .npy ({_oneline(e)})") from None
        if a.ndim != 2:
            raise DataError(f"{m.where}: array of shape {a.shape}, expected (T, channels)")
        arrays[m.match.group(2), m.match.group(3)] = (a.astype(np.float64, copy=False), m.where)
    if table is None:
        raise DataError(f"{src.label}: labeled_anomalies.csv not found")
    df, where = table
    for c in ("chan_id", "spacecraft", "anomaly_sequences", "num_values"):
        if c not in df.columns:
            raise DataError(f"{where}: no {c!r} column")
    df = df[(df["spacecraft"].astype(str).str.strip() == spacecraft)
            & ~df["chan_id"].astype(str).isin(list(exclude))]
    chans = sorted(df["chan_id"].astype(str))
    if not chans:
        raise DataError(f"{where}: no rows with spacecraft == {spacecraft!r}")
    if len(set(chans)) != len(chans):
        raise DataError(f"{where}: duplicate chan_id rows for {spacecraft}")
    rows = df.set_index(df["chan_id"].astype(str))
    trains, tests, labels, wheres = [], [], [], []
    for ch in chans:
        for part in ("train", "test"):
            if (part, ch) not in arrays:
                raise DataError(f"{src.label}: {part}/{ch}.npy not found (listed in labeled_anomalies.csv)")
        (tr, w_tr), (te, w_te) = arrays["train", ch], arrays["test", ch]
        width = trains[0].shape[1] if trains else tr.shape[1]
        for a, w in ((tr, w_tr), (te, w_te)):
            if a.shape[1] != width:
                raise DataError(f"{w}: {a.shape[1]} columns, expected {width} like the other channels")
        n = int(rows.loc[ch, "num_values"])
        if n != len(te):
            raise DataError(f"{where}: chan {ch} num_values {n} but {w_te} has {len(te)} rows")
        lab = np.zeros(len(te), bool)
        try:
            seqs = [(int(s), int(e)) for s, e in json.loads(rows.loc[ch, "anomaly_sequences"])]
        except (TypeError, ValueError):
            raise DataError(f"{where}: chan {ch}: anomaly_sequences {rows.loc[ch, 'anomaly_sequences']!r} "
                            "is not a list of [start, end]") from None
        for s, e in seqs:
            if not 0 <= s <= e < len(te):
                raise DataError(f"{where}: chan {ch}: anomaly [{s}, {e}] outside its {len(te)} test rows")
            lab[s:e + 1] = True
        trains.append(tr)
        tests.append(te)
        labels.append(lab)
        wheres += [w_tr, w_te]
    return TelemanomArrays(np.concatenate(trains), np.concatenate(tests), np.concatenate(labels), chans,
                           src.sha_of([table[1], *wheres]), wheres)


def _load_telemanom(path: Path, spacecraft: str, exclude: Sequence[str], gap_policy: str) -> list[Dataset]:
    t = read_telemanom(path, spacecraft, exclude)
    channels = ["value"] + [f"cmd_{i}" for i in range(1, t.train.shape[1])]
    filled = {}
    train = _fill_gaps(t.train, f"{path} ({spacecraft} train)", channels, gap_policy, filled)
    test = _fill_gaps(t.test, f"{path} ({spacecraft} test)", channels, gap_policy, filled)
    notes = [f"{len(t.chan_ids)} channels sorted by chan_id, train arrays then test arrays concatenated "
             "(the layout of TAB's/common MSL/SMAP arrays); labels 1 on inclusive anomaly_sequences",
             "column 0 is the telemetry value of whichever channel a row comes from, the rest command flags",
             *_gap_note(filled, gap_policy)]
    if exclude:
        notes.append(f"excluded chan_id {list(exclude)} (OmniAnomaly preprocessing drops P-2 for SMAP)")
    return [Dataset(spacecraft, train, test, t.labels, channels,
                    _provenance(spacecraft.lower(), t.sha256, notes, chan_ids=t.chan_ids, members=t.members,
                                gap_policy=gap_policy, gaps_filled=filled))]


def load_msl(path: Path, *, exclude: Sequence[str] = (), gap_policy: str = "error") -> list[Dataset]:
    """MSL (telemanom): the 27 channels as one series, 55 columns."""
    return _load_telemanom(path, "MSL", exclude, gap_policy)


def load_smap(path: Path, *, exclude: Sequence[str] = ("P-2",), gap_policy: str = "error") -> list[Dataset]:
    """SMAP (telemanom): channels as one series, 25 columns; P-2 dropped by default (OmniAnomaly convention)."""
    return _load_telemanom(path, "SMAP", exclude, gap_policy)
