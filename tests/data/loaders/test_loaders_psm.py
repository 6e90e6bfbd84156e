"""PSM loader (aster/data/loaders/psm.py), with the gap policies, provenance and bad-input errors it exercises."""

import hashlib
import logging
import lzma
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from loaders_testutil import csv_bytes, rng_frame

from aster.data import DataError
from aster.data.loaders import load

# ---------------------------------------------------------------------------------------------------------------
# PSM: train.csv / test.csv / test_label.csv, timestamp_(min) + feature_0..24

PSM_COLS = [f"feature_{i}" for i in range(25)]


def make_psm(d: Path, n_train=40, n_test=30, nan_cells=((3, "feature_2"), (4, "feature_2"), (7, "feature_9")),
             xz_labels=True) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    train = rng_frame(n_train, PSM_COLS, 1)
    for r, c in nan_cells:
        train.loc[r, c] = np.nan
    train.insert(0, "timestamp_(min)", np.arange(n_train, dtype=float))
    test = rng_frame(n_test, PSM_COLS, 2)
    test.insert(0, "timestamp_(min)", np.arange(n_train, n_train + n_test, dtype=float))
    labels = pd.DataFrame({"timestamp_(min)": test["timestamp_(min)"], "label": (np.arange(n_test) % 7 == 0) * 1})
    train.to_csv(d / "train.csv", index=False)
    test.to_csv(d / "test.csv", index=False)
    if xz_labels:
        (d / "test_label.csv.xz").write_bytes(lzma.compress(csv_bytes(labels)))
    else:
        labels.to_csv(d / "test_label.csv", index=False)
    return d


def test_psm_gap_policies(tmp_path, caplog):
    d = make_psm(tmp_path / "PSM")
    with pytest.raises(DataError, match=r"train\.csv: 2 missing values .* column 'feature_2' \(and 1 more"):
        load("psm", d)
    with caplog.at_level(logging.INFO, logger="aster.data.loaders"):
        (ds,) = load("psm", d, gap_policy="zero")
    assert "filled 3 values" in caplog.text
    assert ds.name == "PSM" and ds.channels == PSM_COLS
    assert ds.train.shape == (40, 25) and ds.test.shape == (30, 25) and ds.test_labels.sum() == 5
    assert ds.train[3, 2] == 0 and ds.train[7, 9] == 0 and not np.isnan(ds.train).any()
    assert ds.provenance["gaps_filled"] == {str(d / "train.csv"): {"feature_2": 2, "feature_9": 1}}
    digest = hashlib.sha256((d / "train.csv").read_bytes()).hexdigest()
    assert ds.provenance["sha256"][str(d / "train.csv")] == digest
    (ff,) = load("psm", d, gap_policy="ffill")
    raw = pd.read_csv(d / "train.csv")
    assert ff.train[3, 2] == ff.train[4, 2] == np.float32(raw.loc[2, "feature_2"])
    assert ff.train[7, 9] == np.float32(raw.loc[6, "feature_9"])
    (lead,) = load("psm", make_psm(tmp_path / "lead", nan_cells=((0, "feature_0"),)), gap_policy="ffill")
    assert lead.train[0, 0] == lead.train[1, 0]  # a leading gap takes the first valid value


def test_psm_bad_inputs_name_the_file(tmp_path):
    d = make_psm(tmp_path / "a", nan_cells=(), xz_labels=False)
    df = pd.read_csv(d / "test_label.csv")
    df.iloc[:-1].to_csv(d / "test_label.csv", index=False)
    with pytest.raises(DataError, match=r"test_label\.csv: 29 labels for 30 test rows"):
        load("psm", d)

    d = make_psm(tmp_path / "b", nan_cells=())
    pd.read_csv(d / "test.csv").drop(columns="feature_24").to_csv(d / "test.csv", index=False)
    with pytest.raises(DataError, match=r"test\.csv: 24 feature columns"):
        load("psm", d)

    d = make_psm(tmp_path / "c", nan_cells=())
    df = pd.read_csv(d / "train.csv").astype({"feature_3": object})
    df.loc[5, "feature_3"] = "abc"
    df.to_csv(d / "train.csv", index=False)
    with pytest.raises(DataError, match=r"train\.csv: non-numeric value 'abc' in column 'feature_3' at line 7"):
        load("psm", d)

    d = make_psm(tmp_path / "d", nan_cells=())
    lines = (d / "test.csv").read_text().splitlines()
    lines[3] += ",0.5"
    (d / "test.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"test\.csv: malformed CSV, wrong number of fields .*line 4"):
        load("psm", d)

    d = make_psm(tmp_path / "e", nan_cells=())
    (d / "test_label.csv.xz").unlink()
    with pytest.raises(DataError, match=r"test_label\.csv not found"):
        load("psm", d)
