"""NASA telemanom loaders, MSL and SMAP (aster/data/loaders/telemanom.py): tar archive and directory layouts."""

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from loaders_testutil import csv_bytes, write_tar

from aster.data import DataError
from aster.data.loaders import load, read_telemanom

# ---------------------------------------------------------------------------------------------------------------
# NASA telemanom (MSL / SMAP)

def make_telemanom(tmp_path: Path, as_tar=True, num_values_fix=0) -> Path:
    rng = np.random.default_rng(8)
    rows = [("T-9", "MSL", "[[2, 4]]", 10), ("C-1", "MSL", "[[0, 0], [8, 9]]", 12), ("P-2", "SMAP", "[[1, 2]]", 6),
            ("A-1", "SMAP", "[[3, 3]]", 7), ("P-10", "MSL", "[]", 5)]
    files = {"labeled_anomalies.csv": csv_bytes(pd.DataFrame(
        [(c, s, a, "[point]", n) for c, s, a, n in rows],
        columns=["chan_id", "spacecraft", "anomaly_sequences", "class", "num_values"]))}
    for c, s, _, n in rows:
        width = 5 if s == "MSL" else 3
        for part, length in (("train", n + 3), ("test", n + (num_values_fix if c == "C-1" else 0))):
            b = io.BytesIO()
            np.save(b, rng.random((length, width)))
            files[f"data/{part}/{c}.npy"] = b.getvalue()
    if as_tar:
        return write_tar(tmp_path / "msl_data.tar.xz", files)
    d = tmp_path / "telemanom"
    for name, data in files.items():
        (d / name).parent.mkdir(parents=True, exist_ok=True)
        (d / name).write_bytes(data)
    return d


def test_msl_smap_order_labels_and_float64_internals(tmp_path):
    src = make_telemanom(tmp_path)
    t = read_telemanom(src, "MSL")
    assert t.chan_ids == ["C-1", "P-10", "T-9"]  # string sort
    assert t.train.dtype == np.float64 and t.train.shape == (15 + 8 + 13, 5) and t.test.shape == (27, 5)
    assert t.labels.dtype == bool
    assert np.flatnonzero(t.labels).tolist() == [0, 8, 9, 12 + 5 + 2, 12 + 5 + 3, 12 + 5 + 4]
    (ds,) = load("msl", src)
    assert ds.name == "MSL" and ds.channels[:2] == ["value", "cmd_1"] and ds.test_labels.sum() == 6
    np.testing.assert_array_equal(ds.test, t.test.astype(np.float32))
    d = tmp_path / "dir"
    d.mkdir()
    (sm,) = load("smap", make_telemanom(d, as_tar=False))
    assert sm.provenance["chan_ids"] == ["A-1"] and sm.train.shape == (10, 3)  # P-2 dropped by default
    assert load("smap", src, exclude=[])[0].provenance["chan_ids"] == ["A-1", "P-2"]


def test_truncated_archive_is_a_data_error(tmp_path):
    src = make_telemanom(tmp_path)
    src.write_bytes(src.read_bytes()[:-200])
    with pytest.raises(DataError, match=r"msl_data\.tar\.xz: cannot read archive"):
        load("msl", src)


def test_msl_num_values_mismatch(tmp_path):
    with pytest.raises(DataError, match=r"labeled_anomalies\.csv: chan C-1 num_values 12 but .*test/C-1\.npy has 13"):
        load("msl", make_telemanom(tmp_path, num_values_fix=1))
