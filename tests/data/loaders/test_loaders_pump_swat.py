"""PUMP and SWaT loaders (aster/data/loaders/pump.py, swat.py): NSIBF zips and iTrust CSV exports."""

import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from loaders_testutil import csv_bytes, rng_frame

from aster.data import DataError
from aster.data.loaders import load

# ---------------------------------------------------------------------------------------------------------------
# PUMP (NSIBF zips): timestamp, sensor_00.., machine_status, label; label only used from test

def make_pump(d: Path) -> Path:
    d.mkdir()
    sensors = [f"sensor_{i:02d}" for i in range(4)]
    for part, n, seed in (("train", 20, 1), ("test", 15, 2)):
        df = rng_frame(n, sensors, seed)
        df.insert(0, "timestamp", pd.date_range("2018-04-01", periods=n, freq="min").astype(str))
        df["machine_status"] = "NORMAL"
        df["label"] = (np.arange(n) >= n - 3) * 1
        with zipfile.ZipFile(d / f"PUMP_{part}.zip", "w") as z:
            z.writestr(f"PUMP_{part}.csv", csv_bytes(df))
    return d


def test_pump_keeps_sensors_and_test_labels(tmp_path):
    (ds,) = load("pump", make_pump(tmp_path / "PUMP"))
    assert ds.channels == ["sensor_00", "sensor_01", "sensor_02", "sensor_03"]
    assert ds.train.shape == (20, 4) and ds.test.shape == (15, 4)
    assert ds.test_labels.tolist() == [0] * 12 + [1] * 3
    assert len(ds.provenance["sha256"]) == 2


# ---------------------------------------------------------------------------------------------------------------
# SWaT: iTrust Normal/Attack (whitespace in headers, "A ttack"), and NSIBF SWaT_train/SWaT_test zips

SWAT_HEADER = [" Timestamp", "FIT101", "LIT101", " MV101", "P101", " AIT201", "Normal/Attack"]


def swat_frame(n: int, labels: list[str], seed: int) -> pd.DataFrame:
    df = rng_frame(n, SWAT_HEADER[1:-1], seed)
    df.insert(0, SWAT_HEADER[0], [f" 22/12/2015 4:{i:02d}:00 PM" for i in range(n)])
    df[SWAT_HEADER[-1]] = labels
    return df


def test_swat_itrust_files(tmp_path):
    d = tmp_path / "SWaT"
    d.mkdir()
    title = "Physical Properties,,,,,,\n"  # iTrust exports carry title rows above the header
    (d / "SWaT_Dataset_Normal_v0.csv").write_text(title + swat_frame(12, ["Normal"] * 12, 1).to_csv(index=False))
    labels = ["Normal"] * 5 + ["Attack", "A ttack", " Attack"] + ["Normal"] * 2
    swat_frame(10, labels, 2).to_csv(d / "SWaT_Dataset_Attack_v0.csv", index=False)
    (ds,) = load("swat", d, train_skip=2)
    assert ds.channels == ["FIT101", "LIT101", "MV101", "P101", "AIT201"]
    assert ds.train.shape == (10, 5) and ds.test.shape == (10, 5)
    assert ds.test_labels.tolist() == [0] * 5 + [1] * 3 + [0] * 2

    bad = swat_frame(10, labels[:-1] + ["Maybe"], 2)
    bad.to_csv(d / "SWaT_Dataset_Attack_v0.csv", index=False)
    with pytest.raises(DataError, match=r"Attack_v0\.csv: label 'Maybe' .* at line 11"):
        load("swat", d)
    bad.drop(columns="P101").to_csv(d / "SWaT_Dataset_Attack_v0.csv", index=False)
    with pytest.raises(DataError, match=r"Attack_v0\.csv: 4 feature columns, expected the 5"):
        load("swat", d)


def test_swat_nsibf_zips(tmp_path):
    d = tmp_path / "SWAT"
    d.mkdir()
    for part, n, lab in (("train", 8, ["Normal"] * 8), ("test", 6, ["Normal", "Attack", "Attack", "Normal",
                                                                     "Normal", "A ttack"])):
        df = swat_frame(n, lab, 3)
        df.columns = [c.strip() for c in df.columns]
        with zipfile.ZipFile(d / f"SWaT_{part}.zip", "w") as z:
            z.writestr(f"SWaT_{part}.csv", csv_bytes(df))
    (ds,) = load("swat", d)
    assert ds.train.shape == (8, 5) and ds.test_labels.tolist() == [0, 1, 1, 0, 0, 1]
