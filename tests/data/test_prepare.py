"""Train-only scaling and the chronological split (docs/evaluation.md §1.2-1.3), saved without pickles."""

import json

import numpy as np
import pytest

from aster.data import DataError, Dataset
from aster.data.prepare import Scaler, load_prepared, prepare, save_prepared, split_point


def dataset(n_train=1000, n_test=400, c=3, seed=0) -> Dataset:
    rng = np.random.default_rng(seed)
    train = rng.normal(5.0, 2.0, size=(n_train, c))
    train[:, 1] = 7.0  # a constant channel
    train[int(0.8 * n_train):, 0] += 100.0  # the validation tail differs: it must not leak into the scaler
    return Dataset("toy", train, rng.normal(size=(n_test, c)), np.zeros(n_test), [f"c{i}" for i in range(c)])


def test_scaler_is_fit_on_the_first_80_percent_only():
    ds = dataset()
    p = prepare(ds, train_fraction=0.8, window=50)
    cut = split_point(len(ds.train), 0.8)
    assert cut == 800 and len(p.train) == 800 and len(p.val) == 200
    np.testing.assert_allclose(p.scaler.mean, ds.train[:cut].mean(0), rtol=1e-6)
    assert abs(p.train[:, 0].mean()) < 1e-5 and p.val[:, 0].mean() > 40  # tail shifted, not re-centred
    assert p.scaler.scale[1] == 7.0 and np.isfinite(p.train).all() and np.isfinite(p.test).all()
    assert p.train.dtype == np.float32


def test_prepared_round_trip_is_json_and_npy(tmp_path):
    ds = dataset()
    save_prepared(prepare(ds, 0.8, 50), ds, tmp_path / "toy")
    scaler = json.loads((tmp_path / "toy" / "scaler.json").read_text())
    assert set(scaler) == {"mean", "scale", "channels"} and scaler["channels"] == ["c0", "c1", "c2"]
    assert not list(tmp_path.rglob("*.pkl"))
    loaded, meta = load_prepared(tmp_path / "toy")
    assert isinstance(loaded.train, np.memmap) and meta["rows"] == {"train": 800, "val": 200, "test": 400}
    assert Scaler.load(tmp_path / "toy" / "scaler.json") == loaded.scaler


@pytest.mark.parametrize("n_train, n_test, part", [(100, 400, "validation"), (1000, 30, "test")])
def test_too_short_for_one_window(n_train, n_test, part):
    with pytest.raises(DataError, match=f"toy: {part} has"):
        prepare(dataset(n_train, n_test), 0.8, window=50)


def test_constant_channel_policy(caplog):
    ds = dataset()  # c1 is constant (7.0) on the fit part
    with caplog.at_level("WARNING"):
        kept = prepare(ds, 0.8, 50, constant="keep")
    assert "toy: channel 'c1' is constant (7) on the fit part: kept with scale 7" in caplog.text
    assert kept.scaler.scale[1] == 7.0 and abs(kept.test[:, 1]).max() < 2  # relative to its level, not raw
    small = Scaler.fit(np.zeros((10, 1)), ["z"])
    assert small.scale == [1.0]  # a constant 0 keeps unit scale: never amplified
    with pytest.raises(DataError, match=r"toy: channel\(s\) \['c1'\] are constant on the fit part"):
        prepare(ds, 0.8, 50, constant="error")
    with pytest.raises(ValueError, match="constant_channels must be one of"):
        prepare(ds, 0.8, 50, constant="drop")


def test_few_valued_scale_policy(caplog):
    rng = np.random.default_rng(0)
    fit = np.zeros((1000, 4))
    fit[::200, 0] = 1.0  # a command channel, mostly 0: std 0.07, so z-scoring makes a 1 into 14 sd
    fit[:, 1] = rng.normal(size=1000)  # continuous: untouched by either policy
    fit[::2, 2] = 4.0  # a balanced flag: its std (2) is already half its range
    fit[:, 3] = rng.integers(0, 6, size=1000)  # six values: not few-valued
    names = ["cmd", "cont", "flag", "six"]
    plain = Scaler.fit(fit, names)
    assert plain.scale[0] == pytest.approx(np.std(fit[:, 0]))
    with caplog.at_level("INFO"):
        floored = Scaler.fit(fit, names, few_valued="half_range", name="toy")
    assert floored.scale[0] == 0.5 and floored.scale[1:] == plain.scale[1:]
    assert "toy: 1 few-valued channel(s) scaled by half their range" in caplog.text
    assert "cmd 0.0705 -> 0.5" in caplog.text
    assert abs(floored.transform(fit)[:, 0]).max() == pytest.approx(2.0, abs=0.05)  # a switch counts ~2 sd
    with pytest.raises(ValueError, match="few_valued_scale must be one of"):
        Scaler.fit(fit, names, few_valued="floor")


def test_scaler_rejects_wrong_channel_count():
    scaler = Scaler.fit(np.ones((10, 3)), ["a", "b", "c"])
    with pytest.raises(DataError, match=r"expects \(T, 3\)"):
        scaler.transform(np.ones((10, 2)))
