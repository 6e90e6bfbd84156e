"""PUMP (NSIBF): PUMP_train / PUMP_test, `sensor*` columns, labels only in test (as NSIBF's loader reads them)."""

from __future__ import annotations

from pathlib import Path

from aster.data import DataError, Dataset
from aster.data.loaders._common import (_fill_gaps, _find, _gap_note, _labels01, _numeric, _provenance, _read_table,
                                        sha256_file)


def load_pump(path: Path, *, gap_policy: str = "error") -> list[Dataset]:
    """PUMP (NSIBF): PUMP_train and PUMP_test (.zip or .csv); keeps `sensor*` columns, `label` from test only."""
    files = {k: _find(path, f"PUMP_{k}") for k in ("train", "test")}
    frames = {k: _read_table(f, str(f)) for k, f in files.items()}
    channels = [c for c in frames["train"].columns if c.startswith("sensor")]
    if not channels:
        raise DataError(f"{files['train']}: no columns starting with 'sensor'")
    test_ch = [c for c in frames["test"].columns if c.startswith("sensor")]
    if test_ch != channels:
        raise DataError(f"{files['test']}: {len(test_ch)} sensor columns, expected the {len(channels)} of "
                        f"{files['train'].name}")
    if "label" not in frames["test"].columns:
        raise DataError(f"{files['test']}: no 'label' column")
    filled = {}
    arrays = {k: _fill_gaps(_numeric(frames[k][channels], str(files[k])), str(files[k]), channels, gap_policy,
                            filled) for k in ("train", "test")}
    labels = _labels01(frames["test"]["label"].to_numpy(), str(files["test"]), "label")
    notes = ["NSIBF (KDD 2021) PUMP files; train labels ignored, as in NSIBF's loader (docs/evaluation.md §1)",
             f"TAB's PUMP.csv is inferred to be this train + test with train_lens 76,901; this train has "
             f"{len(arrays['train'])} rows", *_gap_note(filled, gap_policy)]
    sha = {str(f): sha256_file(f) for f in files.values()}
    return [Dataset("PUMP", arrays["train"], arrays["test"], labels, channels,
                    _provenance("pump", sha, notes, gap_policy=gap_policy, gaps_filled=filled))]
