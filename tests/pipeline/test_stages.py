"""The DVC stage functions on a tiny synthetic dataset: outputs, a failing validation, atomic outputs."""

import json

import numpy as np
import pytest

from aster.data import DataError
from pipeline import ingest, prepare, validate
from pipeline.common import Paths

SPEC = {"loader": "synthetic", "path": None, "options": {"train_length": 1000, "test_length": 2000, "n_channels": 8}}
P = {"window": 50, "prepare": {"train_fraction": 0.8}}


def test_ingest_validate_prepare(tmp_path):
    paths = Paths("toy", tmp_path)
    ingest.run(SPEC, paths)
    assert sorted(f.name for f in paths.ingested.iterdir()) == ["synthetic.json", "synthetic.npz"]
    assert validate.run(P, paths) == []
    assert json.loads(paths.validation.read_text())["success"] is True
    prepare.run(P, paths)
    out = paths.prepared / "synthetic"
    assert {f.name for f in out.iterdir()} == {"train.npy", "val.npy", "test.npy", "test_labels.npy", "scaler.json",
                                               "meta.json"}
    assert np.load(out / "train.npy").shape == (800, 8)


def test_failed_validation_lists_expectations_and_blocks(tmp_path):
    paths = Paths("toy", tmp_path)
    ingest.run(SPEC, paths)
    failures = validate.run({**P, "window": 900}, paths)  # 200 validation rows < one window of 900
    assert failures and all(f.startswith("synthetic [") for f in failures)
    assert json.loads(paths.validation.read_text())["success"] is False


def test_prepare_failure_leaves_previous_output(tmp_path):
    paths = Paths("toy", tmp_path)
    ingest.run(SPEC, paths)
    prepare.run(P, paths)
    before = (paths.prepared / "synthetic" / "scaler.json").read_text()
    with pytest.raises(DataError, match="fewer than one window"):
        prepare.run({**P, "window": 900}, paths)
    assert (paths.prepared / "synthetic" / "scaler.json").read_text() == before
    assert [p.name for p in paths.prepared.parent.iterdir()] == ["toy"]  # no temporary directory left behind


def test_unknown_model_or_train_keys_are_errors():
    from aster.training import TrainConfig
    from pipeline.train import aster_config, config_kwargs

    with pytest.raises(ValueError, match=r"params.yaml model: unknown key\(s\) \['d_modle'\]"):
        aster_config({"name": "aster", "backbone": "none", "d_modle": 32}, n_channels=3, window=8)
    cfg = aster_config({"name": "aster", "baseline": {}, "backbone": "none", "d_model": 32}, n_channels=3, window=8)
    assert cfg.d_model == 32 and cfg.n_channels == 3
    assert config_kwargs(TrainConfig, {"epochs": 2, "threshold": {}}, "train", {"threshold"}) == {"epochs": 2}
    with pytest.raises(ValueError, match=r"params.yaml train: unknown key\(s\) \['epoch'\]"):
        config_kwargs(TrainConfig, {"epoch": 2}, "train", {"threshold"})
