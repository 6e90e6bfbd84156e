"""aster.inference: the one path from an export to scores (scaling, windowing, step mapping, checks), torch-free."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from aster.export import ONNX_PARITY_ATOL, export_model
from aster.inference import CARD_FILE, CARD_FORMAT, ExportedModel, export_dirs, load_exports
from aster.model import Aster, AsterConfig
from aster.scoring import step_scores

W, C = 16, 3
CHANNELS = ["a", "b", "c"]
MEAN, SCALE = np.array([10.0, 0.0, -1.0]), np.array([2.0, 0.5, 4.0])


def export(directory: Path, seed: int, score_level: str = "window", step_mean: str = "arithmetic") -> Aster:
    torch.manual_seed(seed)
    model = Aster(AsterConfig(n_channels=C, window=W, backbone="none", dropout=0.0, patch=4,
                              score_level=score_level, step_mean=step_mean)).eval()
    export_model(model, directory, dataset="toy", series=directory.name, channels=CHANNELS,
                 scaler={"mean": MEAN.tolist(), "scale": SCALE.tolist(), "channels": CHANNELS},
                 threshold={"threshold": 0.5, "contamination": 0.01}, params={}, metrics=None)
    return model


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("export") / "toy"
    models = {"s1": export(root / "s1", 0), "s2": export(root / "s2", 1, score_level="token", step_mean="geometric")}
    (root / "s3").mkdir()  # a series that was not exported (a baseline): its card says so
    (root / "s3" / CARD_FILE).write_text(json.dumps({"format": CARD_FORMAT, "exportable": False, "series": "s3",
                                                   "skipped": "baseline model"}))
    return root, models


def raw(T: int = 40, seed: int = 0) -> np.ndarray:
    return MEAN + SCALE * np.random.default_rng(seed).standard_normal((T, C))


def test_series_scores_equal_the_evaluation_path(dataset):
    root, models = dataset
    loaded = load_exports(root, "cpu")
    assert sorted(loaded) == ["s1", "s2"]  # s3 was not exported
    series = raw()
    for sid, model in models.items():  # window scores, arithmetic (s1); token scores, geometric (s2)
        got = loaded[sid].score_series(series, stride=3)
        assert loaded[sid].step_mean == model.config.step_mean
        ref = step_scores(model, ((series - MEAN) / SCALE).astype(np.float32), W, 3, device="cpu",
                          mean=model.config.step_mean)
        assert got.shape == (len(series),)
        np.testing.assert_allclose(got, ref, atol=ONNX_PARITY_ATOL, rtol=0)
        assert (loaded[sid].flags(got) == (got > 0.5)).all()
        assert loaded[sid].self_check().shape == ((2,) if sid == "s1" else (2, W // 4))


def test_bad_input_is_a_specific_value_error(dataset):
    model = ExportedModel(dataset[0] / "s1", "cpu")
    series = raw()
    series[7, 2] = 2e39  # finite in float64, not after scaling to float32
    with pytest.raises(ValueError, match=r"row 7 channel 'c' = 2e\+39 is out of range after scaling"):
        model.score_series(series)
    with pytest.raises(ValueError, match=r"expected \(T, 3\) rows"):
        model.score_series(raw()[:, :2])
    with pytest.raises(ValueError, match="shorter than one window of 16"):
        model.score_series(raw(T=W - 1))
    with pytest.raises(ValueError, match=r"expected shape \(batch, 16, 3\)"):
        model.score_windows(np.zeros((2, W, C + 1), np.float32))
    with pytest.raises(ValueError, match="not finite in float32"):
        model.score_windows(np.full((1, W, C), 1e39))


def test_non_finite_model_output_is_refused(dataset):
    model = ExportedModel(dataset[0] / "s1", "cpu")
    model._window_scores = lambda x: np.full(len(x), np.nan, np.float32)  # a broken graph
    with pytest.raises(ValueError, match="1 non-finite score"):
        model.score_windows(np.zeros((1, W, C), np.float32))


def test_export_dirs_single_and_dataset(dataset):
    root, _ = dataset
    assert export_dirs(root / "s1") == {"s1": root / "s1"}
    assert export_dirs(root / "s3") == {"s3": root / "s3"}  # loading it then says why it cannot be served
    with pytest.raises(ValueError, match="was not exported"):
        ExportedModel(root / "s3")
    with pytest.raises(FileNotFoundError, match="no exported model"):
        load_exports(root / "nothing-here")


def test_inference_does_not_import_torch(dataset):
    code = ("import sys; from aster.inference import ExportedModel; import numpy as np; "
            f"m = ExportedModel({str(dataset[0] / 's1')!r}, 'cpu'); m.score_series(np.zeros((20, 3)) + 1); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "False"
