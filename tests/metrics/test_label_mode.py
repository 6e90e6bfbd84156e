"""Label mode (docs/evaluation.md §4.1): ratio thresholds from the pool, strict >, anomaly-class F1; point adjustment."""

import math

import numpy as np
import pytest

from aster.metrics import DEFAULT_RATIOS, f1_at_threshold, label_mode_f1, point_adjust, point_adjusted_f1


def test_protocol_check_strict_threshold():
    # docs/evaluation.md §4.1: pool 0..99, r = 5 -> tau = 94.05 (linear interpolation); a score equal to tau is not flagged.
    pool = np.arange(100.0)
    out = label_mode_f1([1, 1, 0], [94.05, 94.06, 3.0], pool, ratios=[5])
    row = out["per_ratio"][0]
    assert row["threshold"] == pytest.approx(94.05, abs=1e-12)
    assert row["n_flagged"] == 1  # only 94.06
    assert (row["precision"], row["recall"], row["f1"]) == pytest.approx((1.0, 0.5, 2 / 3))
    tau = row["threshold"]
    assert f1_at_threshold([1, 0], [tau, tau], tau)["n_flagged"] == 0


def test_grid_and_best_ratio():
    rng = np.random.default_rng(0)
    n = 2000
    y = np.zeros(n, int)
    y[500:560] = 1  # 3 % anomalous
    s = np.where(y == 1, 2 + rng.random(n), 0.5 * rng.random(n))  # test normals stay below the train tail
    train = rng.random(5000)
    out = label_mode_f1(y, s, np.concatenate([train, s]))
    assert [row["ratio"] for row in out["per_ratio"]] == [float(r) for r in DEFAULT_RATIOS]
    taus = [row["threshold"] for row in out["per_ratio"]]
    assert taus == sorted(taus, reverse=True)  # larger ratio, lower threshold, more flags
    flagged = [row["n_flagged"] for row in out["per_ratio"]]
    assert flagged == sorted(flagged)
    assert out["f1"] == max(row["f1"] for row in out["per_ratio"]) == 1.0
    # 1 % of the 7000-value pool = 70 values: the 60 anomalies + 10 train values near 1, so tau ~ 0.99 flags exactly
    # the anomalies; 2 % and 3 % do too, and ties go to the first (smallest) ratio.
    assert out["ratio"] == 1.0 and out["per_ratio"][3]["f1"] == out["per_ratio"][4]["f1"] == 1.0
    assert out["per_ratio"][1]["recall"] < 1
    for row in out["per_ratio"]:
        assert row["threshold"] == pytest.approx(np.percentile(np.concatenate([train, s]), 100 - row["ratio"]))
        p, r = row["precision"], row["recall"]
        assert row["f1"] == pytest.approx(0 if p + r == 0 else 2 * p * r / (p + r))


def test_nothing_flagged_gives_zero_not_error():
    out = f1_at_threshold([0, 1, 1, 0], [0.1, 0.2, 0.3, 0.4], 10.0)
    assert (out["precision"], out["recall"], out["f1"], out["n_flagged"]) == (0.0, 0.0, 0.0, 0)


def test_no_anomaly_gives_nan():
    out = label_mode_f1(np.zeros(10, int), np.arange(10.0), np.arange(10.0))
    assert math.isnan(out["f1"]) and all(math.isnan(row["f1"]) for row in out["per_ratio"])


def test_bad_pool_or_ratio_raises():
    with pytest.raises(ValueError, match="pool"):
        label_mode_f1([0, 1], [0.1, 0.2], [])
    with pytest.raises(ValueError, match="pool"):
        label_mode_f1([0, 1], [0.1, 0.2], [0.1, np.inf])
    with pytest.raises(ValueError, match="ratios"):
        label_mode_f1([0, 1], [0.1, 0.2], [0.1, 0.2], ratios=[0])


def test_point_adjust_fills_hit_segments_only():
    y = np.array([0, 1, 1, 1, 0, 0, 1, 1, 0, 1])
    pred = np.array([1, 0, 1, 0, 0, 0, 0, 0, 0, 1])
    assert point_adjust(y, pred).astype(int).tolist() == [1, 1, 1, 1, 0, 0, 0, 0, 0, 1]
    out = point_adjusted_f1(y, pred)
    # adjusted: TP = 4 (segment 1 + last step), FP = 1, FN = 2
    assert (out["precision"], out["recall"]) == pytest.approx((4 / 5, 4 / 6))
    assert point_adjusted_f1(y, pred)["f1"] >= f1_at_threshold(y, pred, 0.5)["f1"]
