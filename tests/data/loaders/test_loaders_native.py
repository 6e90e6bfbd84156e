"""Native loaders (aster/data/loaders/native.py): synthetic (config and provenance) and our ingested npz format."""

import numpy as np
import pytest

from aster.data import DataError, Dataset
from aster.data.loaders import load

# ---------------------------------------------------------------------------------------------------------------
# synthetic

def test_synthetic_loader_passes_config_and_records_source():
    (ds,) = load("synthetic", n_channels=8, train_length=1000, test_length=3000, seed=3)
    assert ds.train.shape == (1000, 8) and ds.test.shape == (3000, 8)
    assert ds.provenance["loader"] == "synthetic" and ds.provenance["config"]["seed"] == 3
    assert next(iter(ds.provenance["sha256"])).endswith("synthetic.py")
    with pytest.raises(DataError, match="synthetic: .*n_channels"):
        load("synthetic", n_channels=3)


# ---------------------------------------------------------------------------------------------------------------
# our ingested format: round trip

def test_npz_round_trip(tmp_path):
    from aster.data.store import save_series

    ds = Dataset("SKAB/valve1/0", np.random.rand(20, 3), np.random.rand(10, 3), np.arange(10) % 2, ["a", "b", "c"],
                 {"loader": "skab", "notes": ["x"]})
    save_series(ds, tmp_path)
    (back,) = load("npz", tmp_path)
    assert back.name == ds.name and back.channels == ds.channels
    np.testing.assert_array_equal(back.train, ds.train)
    np.testing.assert_array_equal(back.test_labels, ds.test_labels)
    assert back.provenance["original"] == {"loader": "skab", "notes": ["x"]}
