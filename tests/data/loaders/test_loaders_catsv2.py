"""CATSv2 loader (aster/data/loaders/catsv2.py): subsets and labels from the release's data.csv + metadata.csv."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from loaders_testutil import rng_frame

from aster.data import DataError
from aster.data.loaders import load

# ---------------------------------------------------------------------------------------------------------------
# CATSv2 release: data.csv (timestamp, 17 channels, y, category) + metadata.csv

CATS_CH = ["aimp", "amud", "adbr", "adfl", "arnd", "asin1", "asin2", "bed1", "bed2", "bfo1", "bfo2", "bso1",
           "bso2", "bso3", "ced1", "cfo1", "cso1"]


def make_cats(d: Path, with_y: bool) -> Path:
    d.mkdir()
    n = 100
    df = rng_frame(n, CATS_CH, 4)
    ts = pd.date_range("2023-01-01", periods=n, freq="s")
    df.insert(0, "timestamp", ts.astype(str))
    y = np.zeros(n, int)
    y[[*range(30, 36), *range(80, 91)]] = 1
    if with_y:
        df["y"] = y
    df["category"] = 0
    df.to_csv(d / "data.csv", index=False)
    pd.DataFrame({"start_time": [str(ts[30]), str(ts[80])], "end_time": [str(ts[35]), str(ts[90])],
                  "root_cause": ["bso3", "bfo2"], "affected": ["['cfo1']", "['cso1']"], "category": [12, 1]}
                 ).to_csv(d / "metadata.csv", index=False)
    return d


@pytest.mark.parametrize("with_y", [True, False])
def test_catsv2_subsets_and_labels(tmp_path, with_y):
    d = make_cats(tmp_path / "cats", with_y)
    with pytest.raises(DataError, match="subsets=.*is required"):
        load("catsv2", d)
    a, b = load("catsv2", d, subsets=[(0, 50, 20), (50, 100, 25)])
    assert a.channels == CATS_CH and a.name == "CATSv2/0-50"
    assert a.train.shape == (20, 17) and a.test.shape == (30, 17) and b.train.shape == (25, 17)
    assert a.test_labels.sum() == 6 and b.test_labels.sum() == 11
    assert np.flatnonzero(b.test_labels)[[0, -1]].tolist() == [5, 15]  # rows 80 and 90, inclusive end
    with pytest.raises(DataError, match="start < start \\+ train_len < end"):
        load("catsv2", d, subsets=[(0, 50, 60)])
