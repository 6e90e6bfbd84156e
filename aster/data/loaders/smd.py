"""SMD (OmniAnomaly): ServerMachineDataset/{train,test,test_label}/machine-X-Y.txt, directory or tar archive.

Per machine (OmniAnomaly's protocol) or all machines concatenated (how TAB evaluates SMD).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

import numpy as np

from aster.data import DataError, Dataset
from aster.data.loaders._common import (_check_len, _Container, _fill_gaps, _gap_note, _headerless, _labels01,
                                        _natural, _provenance)

_SMD_RE = re.compile(r"(?:^|/)(train|test|test_label)/(machine-\d+-\d+)\.txt$")
SMD_MACHINES = 28


def _machine(m: str) -> str:
    m = str(m)
    return m if m.startswith("machine-") else f"machine-{m}"


def load_smd(path: Path, *, machines: str | Sequence[str] = "all", mode: str = "per_machine",
             gap_policy: str = "error") -> list[Dataset]:
    """SMD: OmniAnomaly layout (directory or tar archive read in place); one series per machine, or concatenated."""
    if mode not in ("per_machine", "concat"):
        raise DataError(f"smd: mode={mode!r}; choose 'per_machine' or 'concat'")
    wanted = None if machines == "all" else {_machine(m) for m in ([machines] if isinstance(machines, str)
                                                                     else machines)}
    src = _Container(path, _SMD_RE)
    parts: dict[str, dict[str, tuple[np.ndarray, str]]] = {}
    for m in src:
        part, machine = m.match.groups()
        if wanted is not None and machine not in wanted:
            continue
        if part == "test_label":
            arr = _headerless(m.data, m.where, np.float64)
            if arr.shape[1] != 1:
                raise DataError(f"{m.where}: {arr.shape[1]} columns, expected one 0/1 label per line")
            arr = _labels01(arr[:, 0], m.where, "label", first_line=1)
        else:
            arr = _headerless(m.data, m.where, np.float32)
        parts.setdefault(machine, {})[part] = (arr, m.where)
    have = sorted((k for k, v in parts.items() if {"train", "test"} <= set(v)), key=_natural)
    if wanted is not None:
        missing = sorted(wanted - set(have), key=_natural)
        if missing:
            label_only = [k for k in missing if k in parts]
            raise DataError(f"{src.label}: no train/test features for {missing}"
                            + (f" ({label_only} have labels only)" if label_only else ""))
    if not have:
        raise DataError(f"{src.label}: no machine with both train/ and test/ feature files")
    channels = [f"dim_{i}" for i in range(parts[have[0]]["train"][0].shape[1])]
    series = []  # (machine, train, test, labels, wheres, gaps filled)
    for k in have:
        p = parts[k]
        if "test_label" not in p:
            raise DataError(f"{src.label}: test_label/{k}.txt not found")
        (tr, w_tr), (te, w_te), (lab, w_lab) = p["train"], p["test"], p["test_label"]
        for a, w in ((tr, w_tr), (te, w_te)):
            if a.shape[1] != len(channels):
                raise DataError(f"{w}: {a.shape[1]} columns, expected {len(channels)}")
        _check_len(lab, len(te), w_lab, w_te)
        filled = {}
        tr = _fill_gaps(tr, w_tr, channels, gap_policy, filled)
        te = _fill_gaps(te, w_te, channels, gap_policy, filled)
        series.append((k, tr, te, lab, [w_tr, w_te, w_lab], filled))
    if mode == "per_machine":
        return [Dataset(f"SMD/{k}", tr, te, lab, channels,
                        _provenance("smd", src.sha_of(ws), ["one OmniAnomaly machine, original train/test halves; "
                                    "TAB evaluates SMD as all 28 machines concatenated", *_gap_note(fl, gap_policy)],
                                    machine=k, members=ws, gap_policy=gap_policy, gaps_filled=fl))
                for k, tr, te, lab, ws, fl in series]
    filled = {w: c for s in series for w, c in s[5].items()}
    notes = [f"{len(have)} machines concatenated in natural machine order (train parts, then test parts)",
             *_gap_note(filled, gap_policy)]
    if len(have) < SMD_MACHINES:
        notes.append(f"NOT TAB's SMD: only {len(have)} of {SMD_MACHINES} machines (TAB's SMD.csv concatenates "
                     "all 28, train_lens 708,405); scores are not comparable")
    wheres = [w for s in series for w in s[4]]
    return [Dataset("SMD" if len(have) == SMD_MACHINES else f"SMD/concat-{len(have)}",
                    np.concatenate([s[1] for s in series]), np.concatenate([s[2] for s in series]),
                    np.concatenate([s[3] for s in series]), channels,
                    _provenance("smd", src.sha_of(wheres), notes, machines=have,
                                train_offsets=np.cumsum([0] + [len(s[1]) for s in series]).tolist(),
                                test_offsets=np.cumsum([0] + [len(s[2]) for s in series]).tolist(),
                                members=wheres, gap_policy=gap_policy, gaps_filled=filled))]
