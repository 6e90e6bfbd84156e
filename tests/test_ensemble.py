"""aster.ensemble: K members scored as the mean of their scores, saved, loaded and exported as one model."""

import numpy as np
import pytest
import torch

from aster.artifacts import load_model, save_model
from aster.ensemble import AsterEnsemble, build_model, members_of
from aster.export import export_model
from aster.inference import ExportedModel
from aster.model import Aster, AsterConfig

KW = dict(n_channels=3, window=16, patch=4, backbone="none", d_model=16, n_heads=2, depth=1, dropout=0.0,
          pseudo="anchored", target="token", pooling="max")


def make(members: int, **kw) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(AsterConfig(**KW, members=members, **kw)).eval()


def test_one_member_is_a_plain_model_and_members_must_be_positive():
    assert type(make(1)) is Aster and members_of(make(1))[0].config.members == 1
    assert isinstance(make(3), AsterEnsemble) and len(members_of(make(3))) == 3
    with pytest.raises(ValueError, match="members must be >= 1"):
        AsterConfig(**KW, members=0)


@pytest.mark.parametrize("score_level", ["window", "token"])
def test_scores_are_the_mean_of_the_members(score_level):
    model = make(3, score_level=score_level)
    x = torch.randn(5, 16, 3)
    with torch.inference_mode():
        each = [m.score(x) for m in model.members]
        assert not torch.allclose(each[0], each[1])  # members start from different weights
        torch.testing.assert_close(model.score(x), torch.stack(each).mean(0))
        window = torch.stack([torch.sigmoid(m(x)) for m in model.members]).mean(0)
        torch.testing.assert_close(torch.sigmoid(model(x)), window, atol=1e-6, rtol=0)


def test_save_load_and_export_keep_the_ensemble(tmp_path):
    model = make(2, score_level="token", step_mean="geometric")
    save_model(model, tmp_path / "saved")
    loaded = load_model(tmp_path / "saved")
    x = torch.randn(4, 16, 3)
    assert isinstance(loaded, AsterEnsemble)
    with torch.inference_mode():
        torch.testing.assert_close(loaded.score(x), model.score(x))
    channels = ["a", "b", "c"]
    card = export_model(model, tmp_path / "export", dataset="toy", series="s", channels=channels,
                        scaler={"mean": [0.0] * 3, "scale": [1.0] * 3, "channels": channels},
                        threshold={"threshold": 0.5, "contamination": 0.01}, params={}, metrics=None)
    assert card["onnx"]["parity"]["max_abs_diff"] <= card["onnx"]["parity"]["atol"]
    served = ExportedModel(tmp_path / "export", "cpu")
    series = np.random.default_rng(0).standard_normal((40, 3))
    from aster.scoring import step_scores

    np.testing.assert_allclose(served.score_series(series, stride=3),
                               step_scores(model, series.astype(np.float32), 16, 3, device="cpu", mean="geometric"),
                               atol=1e-5, rtol=0)
