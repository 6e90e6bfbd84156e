"""Loader checks on the real data in ../shared/data (override with ASTER_SHARED_DATA); each test skips cleanly
when its file is absent."""

import hashlib
import io
import os
from pathlib import Path

import numpy as np
import pytest

from aster.data import DataError
from aster.data.loaders import load, read_psm_labels, read_telemanom

SHARED = Path(os.environ.get("ASTER_SHARED_DATA") or Path(__file__).resolve().parents[4] / "shared" / "data")


# ---------------------------------------------------------------------------------------------------------------
# real data in ../shared/data (skipped cleanly when absent)

def shared(rel: str) -> Path:
    path = SHARED / rel
    if not path.exists():
        pytest.skip(f"{path} not available")
    return path


def npy_sha(a: np.ndarray) -> str:
    b = io.BytesIO()
    np.save(b, a)
    return hashlib.sha256(b.getvalue()).hexdigest()


def test_real_msl_reproduces_reference_sha256():
    t = read_telemanom(shared("MSL/msl_data.tar.xz"), "MSL")
    assert t.train.shape == (58317, 55) and t.test.shape == (73729, 55) and t.labels.sum() == 7766
    assert npy_sha(t.train) == "d767ecfc8ea344f7a6e78f815a84dc7923f600df1beb14359f3e73202148b058"
    assert npy_sha(t.test) == "8b479ebeeabb63ff636e8adeb095a7bcc46a0cdc7befa189b45b05b1e90c9425"
    assert npy_sha(t.labels) == "23e120c30a645000f093ff5311de177601b8220ba3ca4281c6376883444f7b97"
    (ds,) = load("msl")
    assert ds.provenance["sha256"][str(SHARED / "MSL/msl_data.tar.xz")].startswith("663f0ab8")


def test_real_smd_one_machine():
    (ds,) = load("smd", shared("SMD/ServerMachineDataset.tar.xz"), machines=["machine-1-2"])
    assert ds.train.shape == (23694, 38) and ds.test.shape == (23694, 38) and ds.test_labels.sum() == 542
    assert 0 <= ds.train.min() and ds.train.max() <= 1


def test_real_skab_34_series():
    out = load("skab", shared("SKAB/SKAB_data.tar.xz"))
    assert len(out) == 34 and all(d.train.shape == (400, 8) for d in out)
    assert sum(len(d.train) + len(d.test) for d in out) == 37401
    other2 = next(d for d in out if d.name == "SKAB/other/2")
    assert "train part holds" in other2.provenance["notes"][1] and "holds 0 " not in other2.provenance["notes"][1]


def test_real_asd_12_entities():
    out = load("asd", shared("ASD/ASD_data.tar.xz"))
    assert [d.name for d in out] == [f"ASD/omi-{i}" for i in range(1, 13)]
    assert [len(d.train) for d in out] == [8640] * 11 + [7291]
    assert all(d.test.shape == (4320, 19) for d in out)
    assert [int(d.test_labels.sum()) for d in out] == [441, 55, 146, 151, 74, 198, 87, 188, 297, 373, 250, 132]


def test_real_daphnet():
    (ds,) = load("daphnet", shared("Daphnet"))
    assert len(ds.train) + len(ds.test) == 38774 and ds.train.shape == (9693, 9)
    assert ds.test_labels.sum() == 2306


def test_real_psm_labels():
    ts, labels = read_psm_labels(shared("PSM/test_label.csv.xz"))
    assert len(labels) == 87841 and labels.sum() == 24381
    assert ts[0] == 132480.0 and np.all(np.diff(ts) == 1.0)
    assert np.count_nonzero(np.diff(np.concatenate([[0], labels, [0]])) == 1) == 72
    with pytest.raises(DataError, match=r"PSM: train\.csv not found"):
        load("psm")
