"""SKAB and ASD loaders (aster/data/loaders/skab.py, asd.py): SKAB v0.9 series, InterFusion pickles read with
the restricted unpickler."""

import os
import pickle

import numpy as np
import pandas as pd
import pytest
from loaders_testutil import csv_bytes, rng_frame, write_tar

from aster.data import DataError
from aster.data.loaders import load

# ---------------------------------------------------------------------------------------------------------------
# SKAB v0.9

SKAB_COLS = ["Accelerometer1RMS", "Accelerometer2RMS", "Current", "Pressure", "Temperature", "Thermocouple",
             "Voltage", "Volume Flow RateRMS"]


def skab_csv(n: int, seed: int, labelled=True) -> bytes:
    df = rng_frame(n, SKAB_COLS, seed)
    df.insert(0, "datetime", pd.date_range("2020-03-09 10:14:33", periods=n, freq="s").astype(str))
    if labelled:
        df["anomaly"] = (np.arange(n) >= n - 10).astype(float)
        df["changepoint"] = (np.arange(n) == n - 10).astype(float)
    return csv_bytes(df, sep=";")


def test_skab_series_and_split(tmp_path):
    src = write_tar(tmp_path / "SKAB_data.tar.xz", {
        "data/anomaly-free/anomaly-free.csv": skab_csv(50, 0, labelled=False), "data/other/2.csv": skab_csv(30, 1),
        "data/valve1/10.csv": skab_csv(25, 2), "data/valve1/9.csv": skab_csv(28, 3)})
    out = load("skab", src, train_rows=12)
    assert [d.name for d in out] == ["SKAB/other/2", "SKAB/valve1/9", "SKAB/valve1/10"]
    assert out[0].channels == SKAB_COLS and out[0].train.shape == (12, 8) and out[0].test.shape == (18, 8)
    assert all(d.test_labels.sum() == 10 for d in out)
    assert "TAB's split inside a SKAB file is unknown" in out[0].provenance["notes"][0]
    (one,) = load("skab", src, series=["valve1/9"], train_rows=12)
    assert one.name == "SKAB/valve1/9"
    with pytest.raises(DataError, match=r"other/2\.csv: train_rows=40 out of range for 30 rows"):
        load("skab", src, train_rows=40)


# ---------------------------------------------------------------------------------------------------------------
# ASD (InterFusion pickles), restricted unpickler

def legacy_pickle(a: np.ndarray) -> bytes:
    """Protocol-3 pickle referencing numpy.core.multiarray, like the InterFusion files (written by numpy 1.x)."""
    return pickle.dumps(a, protocol=3).replace(b"numpy._core.multiarray", b"numpy.core.multiarray")


def asd_files(n_ent=3, train=20, test=10) -> dict[str, bytes]:
    rng = np.random.default_rng(10)
    files = {"data/interpretation_label/anomaly_type.txt": b"dataset,anomaly_segment,anomaly_type\n"}
    for i in range(1, n_ent + 1):
        p = f"data/processed/omi-{i}"
        files[f"{p}_train.pkl"] = legacy_pickle(rng.random((train - (i == n_ent), 19)).astype(np.float32))
        files[f"{p}_test.pkl"] = legacy_pickle(rng.random((test, 19)).astype(np.float32))
        files[f"{p}_test_label.pkl"] = legacy_pickle((np.arange(test) < i).astype(np.float64))
    return files


def test_asd_entities(tmp_path):
    assert b"cnumpy.core.multiarray\n_reconstruct" in legacy_pickle(np.zeros(2))
    src = write_tar(tmp_path / "ASD_data.tar.xz", asd_files())
    out = load("asd", src)
    assert [d.name for d in out] == ["ASD/omi-1", "ASD/omi-2", "ASD/omi-3"]
    assert out[2].train.shape == (19, 19) and out[2].test.shape == (10, 19)
    assert [int(d.test_labels.sum()) for d in out] == [1, 2, 3]
    assert [d.name for d in load("asd", src, entities=[2])] == ["ASD/omi-2"]


def test_asd_refuses_code_in_pickles(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    files = asd_files(1)
    files["data/processed/omi-1_test_label.pkl"] = pickle.dumps(Evil(), protocol=3)
    with pytest.raises(DataError, match=r"omi-1_test_label\.pkl: refused or unreadable pickle .*not allowed"):
        load("asd", write_tar(tmp_path / "ASD_data.tar.xz", files))
    assert not (tmp_path / "pwned").exists()
