"""Fixtures of the serving tests: tiny exported models built here (no dependency on `dvc repro`)."""

import numpy as np
import pytest
import torch

from aster.export import export_model
from aster.model import Aster, AsterConfig
from aster.scoring import step_scores
from service_testutil import CHANNELS, MEAN, SCALE, C, W, raw_series


@pytest.fixture(scope="session")
def exported(tmp_path_factory):
    """(export dir, torch model, threshold): threshold = median step score of raw_series(), so both flags occur."""
    torch.manual_seed(0)
    model = Aster(AsterConfig(n_channels=C, window=W, backbone="none", dropout=0.0, patch=4, pseudo="anchored",
                              target="token", pooling="max", score_level="token")).eval()  # the default game
    scaled = ((raw_series() - MEAN) / SCALE).astype(np.float32)
    threshold = float(np.median(step_scores(model, scaled, W, device="cpu")))
    out = tmp_path_factory.mktemp("export") / "toy" / "s1"
    export_model(model, out, dataset="toy", series="s1", channels=CHANNELS,
                 scaler={"mean": MEAN.tolist(), "scale": SCALE.tolist(), "channels": CHANNELS},
                 threshold={"threshold": threshold, "contamination": 0.01}, params={"window": W},
                 metrics={"f1": 0.5})
    return out, model, threshold


@pytest.fixture(scope="session")
def second(exported):
    """A second series of the same export (toy/s2), another model: the dataset directory then serves both."""
    torch.manual_seed(1)
    model = Aster(AsterConfig(n_channels=C, window=W, backbone="none", dropout=0.0, patch=4)).eval()
    out = exported[0].parent / "s2"
    export_model(model, out, dataset="toy", series="s2", channels=CHANNELS,
                 scaler={"mean": MEAN.tolist(), "scale": SCALE.tolist(), "channels": CHANNELS},
                 threshold={"threshold": 0.5, "contamination": 0.01}, params={"window": W}, metrics={"f1": 0.5})
    return out, model
