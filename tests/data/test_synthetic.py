import json
import time

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view as windows

from aster.data import Dataset, DataError
from aster.data.synthetic import KINDS, SyntheticConfig, anomaly_catalogue, make_synthetic, plot_synthetic


@pytest.fixture(scope="module")
def ds() -> Dataset:
    return make_synthetic()


def test_default_shapes_dtypes_and_names(ds):
    assert ds.name == "synthetic"
    assert ds.train.shape == (12000, 12) and ds.test.shape == (8000, 12)
    assert ds.train.dtype == np.float32 and ds.test.dtype == np.float32 and ds.test_labels.dtype == np.int8
    assert set(np.unique(ds.test_labels)) == {0, 1}
    assert len(set(ds.channels)) == 12
    assert ds.provenance["config"]["seed"] == 2021
    assert json.loads(json.dumps(ds.provenance)) == ds.provenance  # plain JSON types: goes into run records


def test_deterministic_and_seed_dependent(ds):
    again = make_synthetic(SyntheticConfig())
    for a, b in [(ds.train, again.train), (ds.test, again.test), (ds.test_labels, again.test_labels)]:
        assert a.tobytes() == b.tobytes()
    assert ds.provenance == again.provenance
    other = make_synthetic(SyntheticConfig(seed=2022))
    assert not np.array_equal(ds.train, other.train)
    assert not np.array_equal(ds.test_labels, other.test_labels)


@pytest.mark.parametrize("n", [7, 17, 0])
def test_channel_count_enforced(n):
    with pytest.raises(ValueError, match=f"n_channels={n}: must be between 8 and 16"):
        SyntheticConfig(n_channels=n)


@pytest.mark.parametrize("n", [8, 16])
def test_channel_count_bounds_work(n):
    d = make_synthetic(SyntheticConfig(n_channels=n, train_length=2000, test_length=3000, seed=n))
    assert d.train.shape == (2000, n) and d.test.shape == (3000, n) and len(d.channels) == n


@pytest.mark.parametrize("kw, match", [
    (dict(anomaly_fraction=0.2), "anomaly_fraction=0.2"),
    (dict(test_length=500), "test_length=500"),
    (dict(test_length=2000, anomaly_fraction=0.03), "cannot hold one segment of each"),
    (dict(n_regimes=4, regime_changes=2), "n_regimes=4"),
    (dict(segment_lengths={"spike": (1, 4)}), "segment_lengths"),
])
def test_bad_config_is_a_clear_error(kw, match):
    with pytest.raises(ValueError, match=match):
        SyntheticConfig(**kw)


@pytest.mark.parametrize("kw", [
    dict(),
    dict(seed=1, train_length=3000, test_length=2000),
    dict(seed=7, train_length=10000, test_length=20000, n_channels=16),
    dict(seed=11, test_length=5000, anomaly_fraction=0.03),
    dict(seed=12, anomaly_fraction=0.10, daily_periods=(24,)),
])
def test_anomaly_ratio_and_segments(kw):
    cfg = SyntheticConfig(**kw)
    d = make_synthetic(cfg)
    frac = d.test_labels.mean()
    assert 0.03 <= frac <= 0.10
    assert abs(frac - cfg.anomaly_fraction) < 0.01
    assert d.provenance["anomaly_fraction"] == pytest.approx(frac)
    cat = anomaly_catalogue(d)
    assert {a["kind"] for a in cat} == set(KINDS)
    # segments are separated by at least min_gap normal steps, also from both ends
    bounds = [0] + [x for a in cat for x in (a["start"], a["end"])] + [cfg.test_length]
    assert all(b - a >= cfg.min_gap for a, b in zip(bounds[::2], bounds[1::2]))


def test_labels_match_catalogue_and_train_is_clean(ds):
    cat = anomaly_catalogue(ds)
    assert {a["kind"] for a in cat} == set(KINDS)
    labels = np.zeros_like(ds.test_labels)
    kinds = ds.provenance["channel_kinds"]
    for a in cat:
        assert 0 < a["start"] < a["end"] <= len(labels)
        assert labels[a["start"]:a["end"]].sum() == 0  # no overlap
        labels[a["start"]:a["end"]] = 1
        assert a["channels"] and all(kinds[c] in ("sensor", "hetero") for c in a["channels"])
        assert a["channel_names"] == [ds.channels[c] for c in a["channels"]]
    np.testing.assert_array_equal(labels, ds.test_labels)
    assert np.isfinite(ds.train).all() and np.isfinite(ds.test).all()
    assert (ds.train.std(0) > 0).all()


def test_normal_behaviour_is_realistic(ds):
    r = np.abs(np.corrcoef(ds.train.T))
    off = r[~np.eye(len(r), dtype=bool)]
    assert off.max() > 0.8  # channels share latent factors...
    assert off.min() < 0.5  # ...but are not copies of each other
    kinds = ds.provenance["channel_kinds"]
    assert {"setpoint", "counter", "hetero", "sensor"} <= set(kinds)
    counter = ds.train[:, kinds.index("counter")]
    assert np.array_equal(counter, np.round(counter)) and counter.min() >= 0
    assert np.ptp(ds.train, axis=0).max() / np.ptp(ds.train, axis=0).min() > 10  # different scales
    # mode switches happen in train and in test, and test only revisits modes seen in train
    regimes = ds.provenance["regimes"]
    train_modes = [r["mode"] for r in regimes if r["part"] == "train"]
    test_modes = [r["mode"] for r in regimes if r["part"] == "test"]
    assert len(set(train_modes)) == 3 and len(set(test_modes)) >= 2 and set(test_modes) <= set(train_modes)
    sp = kinds.index("setpoint")
    train_levels = np.unique(np.round(ds.train[:, sp], 0))
    mid = [(r["start"] + 200) for r in regimes if r["part"] == "test"]
    for t in mid:  # the setpoint in each test mode sits at a level seen in train
        assert np.abs(train_levels - ds.test[t, sp]).min() < 1.0


def _residuals(d: Dataset, c: int, exclude: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """A 'normal model': channel c regressed on the unaffected channels over train."""
    others = [j for j in range(d.n_channels) if j not in exclude]
    fit = np.c_[d.train[:, others], np.ones(len(d.train))].astype(np.float64)
    beta = np.linalg.lstsq(fit, d.train[:, c], rcond=None)[0]
    return d.train[:, c] - fit @ beta, d.test[:, c] - np.c_[d.test[:, others], np.ones(len(d.test))] @ beta


def _local_corr(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    x, y = x - x.mean(-1, keepdims=True), y - y.mean(-1, keepdims=True)
    return (x * y).sum(-1) / np.sqrt((x * x).sum(-1) * (y * y).sum(-1))


def test_each_anomaly_kind_is_detectable(ds):
    """Each anomaly stands out against everything the normal train data shows, by a simple statistic."""
    kinds = ds.provenance["channel_kinds"]
    checked = set()
    for a in anomaly_catalogue(ds):
        s, e, kind = a["start"], a["end"], a["kind"]
        L = e - s
        for c in a["channels"]:
            tr, te = ds.train[:, c].astype(np.float64), ds.test[:, c].astype(np.float64)
            if kind == "flat_line":  # stuck sensor: zero spread, never seen in train
                assert np.ptp(te[s:e]) == 0 and windows(tr, L).std(1).min() > 0
            elif kind == "spike":  # the jump is many normal step-to-step deviations
                assert np.abs(te[s:e] - te[s - 1]).max() / np.diff(tr).std() > 5
            elif kind == "correlation_break":  # the local correlation with its closest partner collapses
                r = np.corrcoef(ds.train.T)[c]
                r[[j for j in range(len(r)) if j == c or kinds[j] not in ("sensor", "hetero")]] = 0
                p = int(np.argmax(np.abs(r)))
                sign = np.sign(r[p])
                seg = sign * _local_corr(te[s:e], ds.test[s:e, p].astype(np.float64))
                normal = sign * _local_corr(windows(tr, L), windows(ds.train[:, p].astype(np.float64), L))
                assert seg < np.quantile(normal, 0.01)
            else:  # residual of the cross-channel model beyond any train window
                rtr, rte = _residuals(ds, c, a["channels"])
                if kind == "level_shift":
                    assert abs(rte[s:e].mean()) > np.abs(windows(rtr, L).mean(1)).max()
                elif kind == "drift":  # grows: the end is off, the start is not
                    q = max(1, L // 4)
                    assert abs(rte[e - q:e].mean()) > np.abs(windows(rtr, q).mean(1)).max()
                    assert abs(rte[e - q:e].mean()) > 3 * abs(rte[s:s + q].mean())
                elif kind == "frequency_change":
                    assert np.sqrt((rte[s:e] ** 2).mean()) > np.sqrt((windows(rtr, L) ** 2).mean(1)).max()
                    # and the segment's dominant period is shorter than the daily one
                    seg = te[s:e] - np.polyval(np.polyfit(np.arange(L), te[s:e], 1), np.arange(L))
                    f = np.fft.rfftfreq(L)[1:][np.argmax(np.abs(np.fft.rfft(seg))[1:])]
                    assert 1 / f < 0.7 * ds.provenance["daily_period"]
            checked.add(kind)
    assert checked == set(KINDS)


def test_catalogue_needs_synthetic_provenance():
    plain = Dataset("x", np.zeros((5, 8)), np.zeros((4, 8)), np.zeros(4), [f"c{i}" for i in range(8)])
    with pytest.raises(DataError, match="x: provenance has no anomaly catalogue"):
        anomaly_catalogue(plain)


def test_default_generation_is_fast():
    t0 = time.perf_counter()
    make_synthetic()
    assert time.perf_counter() - t0 < 1.0


def test_plot_writes_png(tmp_path):
    small = make_synthetic(SyntheticConfig(train_length=1000, test_length=2000))
    out = plot_synthetic(small, tmp_path / "plots" / "synthetic.png", max_channels=3)
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
    assert list(out.parent.iterdir()) == [out]  # no temporary file left behind
