"""TAB long CSV and TSB-AD CSV loaders (aster/data/loaders/tab.py, tsbad.py), with the Daphnet alias."""

import lzma
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from loaders_testutil import csv_bytes, rng_frame

from aster.data import DataError
from aster.data.loaders import load

# ---------------------------------------------------------------------------------------------------------------
# TAB long CSV

def tab_long(x: np.ndarray, y: np.ndarray, names: list[str], date: bool = True) -> pd.DataFrame:
    n = len(x)
    blocks = [pd.DataFrame({"data": x[:, j], "cols": c}) for j, c in enumerate(names)]
    blocks.append(pd.DataFrame({"data": y, "cols": "label"}))
    df = pd.concat(blocks, ignore_index=True)
    if date:
        df.insert(0, "date", np.tile(pd.date_range("2020-01-01", periods=n, freq="min").astype(str), len(names) + 1))
    return df


def test_tab_csv_pivot_split_and_meta(tmp_path):
    x = np.random.default_rng(5).random((30, 3)).round(6)
    y = (np.arange(30) >= 25).astype(int)
    names = ["zeta", "alpha", "mid"]  # order of first appearance, not sorted
    f = tmp_path / "TOY.csv"
    tab_long(x, y, names).to_csv(f, index=False)
    (ds,) = load("tab_csv", f, train_lens=20)
    assert ds.name == "TOY" and ds.channels == names
    np.testing.assert_allclose(ds.train, x[:20], rtol=1e-6)
    assert ds.test.shape == (10, 3) and ds.test_labels.tolist() == [0] * 5 + [1] * 5
    with pytest.raises(DataError, match="train_lens not given and no DETECT_META.csv"):
        load("tab_csv", f)
    pd.DataFrame({"file_name": ["TOY.csv", "OTHER.csv"], "freq": ["min", "min"], "train_lens": [24, 5]}).to_csv(
        tmp_path / "DETECT_META.csv", index=False)
    assert load("tab_csv", f)[0].train.shape == (24, 3)

    g = tmp_path / "INTERLEAVED.csv"  # same values, rows shuffled across channels but stable within each
    long = tab_long(x, y, names, date=False)
    order = np.argsort(np.tile(np.arange(30), 4), kind="stable")
    long.iloc[order].to_csv(g, index=False)
    (di,) = load("tab_csv", g, train_lens=20)
    assert di.channels == names and np.array_equal(di.train, ds.train)


def test_tab_csv_bad_inputs(tmp_path):
    x = np.random.default_rng(6).random((10, 2))
    y = np.zeros(10, int)
    long = tab_long(x, y, ["a", "b"])
    f = tmp_path / "BAD.csv"
    long.iloc[:-1].to_csv(f, index=False)
    with pytest.raises(DataError, match=r"BAD\.csv: channel 'label' has 9 values, others 10"):
        load("tab_csv", f, train_lens=5)
    tab_long(x, y, ["a", "b"]).pipe(lambda d: pd.concat([d.iloc[20:], d.iloc[:20]])).to_csv(f, index=False)
    with pytest.raises(DataError, match="'label' block must be the last one"):
        load("tab_csv", f, train_lens=5)
    bad = long.astype({"data": object})
    bad.loc[13, "data"] = "n/a?"
    bad.to_csv(f, index=False)
    with pytest.raises(DataError, match=r"BAD\.csv: non-numeric value 'n/a\?' in column 'data' at line 15"):
        load("tab_csv", f, train_lens=5)
    long.rename(columns={"cols": "channel"}).to_csv(f, index=False)
    with pytest.raises(DataError, match="expected date,data,cols or data,cols"):
        load("tab_csv", f, train_lens=5)


# ---------------------------------------------------------------------------------------------------------------
# TSB-AD CSV (and the Daphnet alias)

def make_tsbad(d: Path, name="018_Daphnet_id_1_HumanActivity_tr_40_1st_50.csv", n=60, xz=True) -> Path:
    d.mkdir(exist_ok=True)
    df = rng_frame(n, ["ankle_horiz_fwd", "ankle_vert", "trunk_vert"], 7).mul(1000).round()
    df["Label"] = (np.arange(n) >= 50) * 1
    data = csv_bytes(df)
    path = d / (name + ".xz" if xz else name)
    path.write_bytes(lzma.compress(data) if xz else data)
    return path


def test_tsbad_csv_and_daphnet(tmp_path):
    f = make_tsbad(tmp_path / "Daphnet")
    (ds,) = load("tsbad_csv", f)
    assert ds.name == "018_Daphnet_id_1_HumanActivity"
    assert ds.train.shape == (40, 3) and ds.test.shape == (20, 3) and ds.test_labels.sum() == 10
    (dp,) = load("daphnet", tmp_path / "Daphnet")
    assert np.array_equal(dp.test, ds.test) and "not TAB-comparable" in dp.provenance["notes"][0]
    g = make_tsbad(tmp_path / "other", name="plain.csv", xz=False)
    with pytest.raises(DataError, match=r"plain\.csv: no '_tr_<N>_'"):
        load("tsbad_csv", g)
    assert load("tsbad_csv", g, train_len=30)[0].train.shape == (30, 3)
    df = pd.read_csv(g)
    df.loc[10, "Label"] = 2
    df.to_csv(g, index=False)
    with pytest.raises(DataError, match=r"plain\.csv: label column 'Label' has '2' at line 12"):
        load("tsbad_csv", g, train_len=30)
