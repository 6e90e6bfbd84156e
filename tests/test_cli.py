"""The `aster` command: list loaders, make the synthetic set, validate a file, score a CSV with an export."""

import numpy as np
import pandas as pd
import torch
from typer.testing import CliRunner

from aster.cli import app
from aster.export import export_model
from aster.model import Aster, AsterConfig

runner = CliRunner()
SMALL = ["-o", "train_length=1000", "-o", "test_length=2000", "-o", "n_channels=8"]


def test_datasets_lists_every_loader():
    result = runner.invoke(app, ["datasets"])
    assert result.exit_code == 0
    for kind in ("msl", "smd", "skab", "asd", "psm", "tab_csv", "synthetic"):
        assert kind in result.stdout


def test_synthetic_writes_data_and_png(tmp_path):
    result = runner.invoke(app, ["synthetic", str(tmp_path), "--train-length", "1000", "--test-length", "2000",
                                 "--n-channels", "8"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "synthetic.npz").stat().st_size > 0
    assert (tmp_path / "synthetic.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_synthetic_rejects_bad_channel_count(tmp_path):
    result = runner.invoke(app, ["synthetic", str(tmp_path), "--n-channels", "3"])
    assert result.exit_code == 1 and "n_channels" in result.output


def test_validate_good_and_bad(tmp_path):
    good = runner.invoke(app, ["validate", "synthetic", *SMALL, "--window", "50"])
    assert good.exit_code == 0 and "ok" in good.output
    too_short = runner.invoke(app, ["validate", "synthetic", *SMALL, "--window", "900"])
    assert too_short.exit_code == 1 and "FAILED" in too_short.output and "row_count" in too_short.output
    csv = tmp_path / "x_tr_50_1st_60.csv"
    frame = pd.DataFrame(np.random.default_rng(0).normal(size=(120, 3)), columns=["a", "b", "c"]).astype(object)
    frame.loc[70, "b"] = "oops"
    frame["Label"] = 0
    frame.to_csv(csv, index=False)
    bad = runner.invoke(app, ["validate", "tsbad_csv", str(csv), "--window", "10"])
    assert bad.exit_code == 1 and csv.name in bad.output


def test_score_csv_with_an_exported_model(tmp_path):
    torch.manual_seed(0)
    channels = ["a", "b", "c"]
    model = Aster(AsterConfig(n_channels=3, window=8, backbone="none", d_model=16, depth=1, dropout=0.0)).eval()
    export_model(model, tmp_path / "export", dataset="toy", series="toy", channels=channels,
                 scaler={"mean": [1.0, 2.0, 3.0], "scale": [1.0, 1.0, 2.0], "channels": channels},
                 threshold={"threshold": 0.5, "contamination": 0.01}, params={"window": 8}, metrics={})
    rng = np.random.default_rng(1)
    pd.DataFrame(rng.normal(size=(40, 3)), columns=channels).to_csv(tmp_path / "in.csv", index=False)
    result = runner.invoke(app, ["score", str(tmp_path / "export"), str(tmp_path / "in.csv")])
    assert result.exit_code == 0, result.output
    out = pd.read_csv(tmp_path / "in.scores.csv")
    assert len(out) == 40 and out["score"].between(0, 1).all()
    assert (out["anomaly"] == (out["score"] > 0.5)).all()
    pd.DataFrame(rng.normal(size=(40, 2)), columns=["a", "b"]).to_csv(tmp_path / "bad.csv", index=False)
    bad = runner.invoke(app, ["score", str(tmp_path / "export"), str(tmp_path / "bad.csv")])
    assert bad.exit_code == 1 and "missing column" in bad.output and "'c'" in bad.output
