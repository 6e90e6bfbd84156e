"""VUS / Range-AUC against TAB's golden fixtures (docs/evaluation.md §3.5) and an independent plain-loop reference."""

import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from aster.metrics import buffer_length, range_auc_vus, score_metrics, segments, window_areas


def reference_window_area(y, s, w, right_new=None):
    """docs/evaluation.md §3.3 written as plainly as possible: per window, per threshold, per segment loops.

    right_new: how many new steps the right extension adds (None = TAB's floor(w/2)-1); only to show that the
    fixtures pin that choice.
    """
    y = np.asarray(y, dtype=float)
    s = np.asarray(s, dtype=float)
    n = len(y)

    def runs(mask):
        out, start = [], None
        for i in range(n):
            if mask[i] and start is None:
                start = i
            if not mask[i] and start is not None:
                out.append((start, i - 1))
                start = None
        if start is not None:
            out.append((start, n - 1))
        return out

    soft = y.copy()
    h = w // 2
    right = range(0, h) if right_new is None else range(0, right_new + 1 if h else 0)
    for a, b in runs(y > 0):
        for d in right:
            if b + d < n:
                soft[b + d] += math.sqrt(1 - d / w)
        for d in range(1, h + 1):
            if a - d >= 0:
                soft[a - d] += math.sqrt(1 - d / w)
    soft = np.minimum(soft, 1.0)
    extended = runs(soft > 0)
    P_w = (y.sum() + soft.sum()) / 2
    desc = sorted(s, reverse=True)
    tpr, fpr, prec = [0.0], [0.0], [1.0]
    for pos in np.linspace(0, n - 1, 250).astype(int):
        pred = (s >= desc[pos]).astype(float)
        tp = float(np.sum(soft * pred))
        hit = sum(1 for a, b in extended if pred[a:b + 1].sum() > 0)
        tpr.append(min(tp / P_w, 1.0) * hit / len(extended))
        fpr.append((pred.sum() - tp) / (n - P_w))
        prec.append(tp / pred.sum())
    roc_x, roc_y = fpr + [1.0], tpr + [1.0]
    roc = sum((roc_x[i + 1] - roc_x[i]) * (roc_y[i + 1] + roc_y[i]) / 2 for i in range(len(roc_x) - 1))
    pr = sum((tpr[i + 1] - tpr[i]) * (prec[i + 1] + prec[i]) / 2 for i in range(len(tpr) - 1))
    return roc, pr


def reference_metrics(y, s):
    L = int(np.median([b - a + 1 for a, b in zip(*segments(y))]))
    areas = [reference_window_area(y, s, w) for w in range(2 * L + 1)]
    return {"r_auc_roc": areas[L][0], "r_auc_pr": areas[L][1], "buffer_L": L,
            "vus_roc": np.mean([a[0] for a in areas]), "vus_pr": np.mean([a[1] for a in areas])}


i = np.arange(100)
Y_A = (((i >= 20) & (i < 30)) | ((i >= 60) & (i < 65))).astype(int)
S_A = ((37 * i) % 100) / 100 + 0.5 * Y_A
S_B = np.floor(((37 * i) % 100) / 20) / 5 + 0.4 * Y_A
GOLDEN = {  # TAB's own code, docs/evaluation.md §3.5
    "A": (S_A, dict(buffer_L=7, auroc=0.915294, aupr=0.770586, r_auc_roc=0.842748, r_auc_pr=0.682668,
                    vus_roc=0.877918, vus_pr=0.723085)),
    "B": (S_B, dict(buffer_L=7, auroc=0.894118, aupr=0.676555, r_auc_roc=0.838519, r_auc_pr=0.673145,
                    vus_roc=0.864267, vus_pr=0.709606)),
}


@pytest.mark.parametrize("case", ["A", "B"])
def test_golden_fixtures(case):
    s, want = GOLDEN[case]
    got = score_metrics(Y_A, s)
    assert set(got) == {"auroc", "aupr", "r_auc_roc", "r_auc_pr", "vus_roc", "vus_pr", "buffer_L"}
    assert got["buffer_L"] == want["buffer_L"]
    for key, value in want.items():
        assert got[key] == pytest.approx(value, abs=1e-6), key
    ref = reference_metrics(Y_A, s)  # the loop reference must hit the fixtures too, or it proves nothing
    for key in ("r_auc_roc", "r_auc_pr", "vus_roc", "vus_pr"):
        assert ref[key] == pytest.approx(want[key], abs=1e-6), key


def test_fixture_pins_right_extension():
    # With floor(w/2) new steps on the right (the later `vus`/TSB-AD choice), fixture A no longer matches.
    L = 7
    areas = [reference_window_area(Y_A, S_A, w, right_new=w // 2) for w in range(2 * L + 1)]
    assert abs(np.mean([a[0] for a in areas]) - 0.877918) > 1e-5


def test_buffer_length_is_int_of_median():
    y = np.zeros(60, int)
    for a, b in [(0, 7), (10, 15), (30, 38), (50, 57)]:  # lengths 7, 5, 8, 7 -> median 7.0
        y[a:b] = 1
    assert buffer_length(y) == 7
    y[50:57] = 0  # lengths 7, 5, 8 -> 7; then 7, 5 -> median 6.0; 8, 5 -> 6.5 -> 6
    assert buffer_length(y) == 7
    y[30:38] = 0
    assert buffer_length(y) == 6
    y[0:7] = 0
    y[0:8] = 1
    assert buffer_length(y) == 6  # median 6.5 truncated
    assert buffer_length(np.zeros(5, int)) == 0
    starts, ends = segments(np.array([1, 1, 0, 1, 0, 0, 1]))
    assert starts.tolist() == [0, 3, 6] and ends.tolist() == [1, 3, 6]


def random_case(rng):
    """Random labels (ends touching, gap-1 neighbours that merge, long and short segments) and tied scores."""
    n = int(rng.integers(20, 700))
    y = np.zeros(n, int)
    pos = 0 if rng.random() < 0.4 else int(rng.integers(0, 10))
    mu = rng.uniform(0.3, 3.0)  # L from 1 to ~25
    while pos < n:
        length = int(max(1, rng.lognormal(mu, 0.9)))
        y[pos:pos + length] = 1
        pos += length + int(rng.choice([1, 2, 3, int(rng.integers(1, 60))]))
    if rng.random() < 0.4:
        y[-int(rng.integers(1, 6)):] = 1  # segment touching the end
    if y.all():
        y[n // 2] = 0
    levels = int(rng.choice([2, 5, 20, 10_000]))  # few levels = heavy ties
    s = np.round(rng.random(n) * levels) / levels + rng.choice([0.0, 0.3, 1.0]) * y
    return y, s


def test_random_cases_match_loop_reference():
    rng = np.random.default_rng(2021)
    for _ in range(30):
        y, s = random_case(rng)
        L = buffer_length(y)
        roc, pr = window_areas(y, s, 2 * L)
        for w in range(2 * L + 1):
            want = reference_window_area(y, s, w)
            assert roc[w] == pytest.approx(want[0], abs=1e-10), (len(y), L, w)
            assert pr[w] == pytest.approx(want[1], abs=1e-10), (len(y), L, w)


@pytest.mark.parametrize("y", [
    [1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1],  # segments at both ends
    [1, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],  # gap-1 segments merge once extended
    [0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0],  # one long segment, buffers clipped at both ends
    [0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],  # single step
    [1, 0, 1, 0, 1],  # every buffer step is out of range or inside another segment
])
def test_edge_layouts_match_reference(y):
    y = np.array(y)
    rng = np.random.default_rng(len(y) + int(y.sum()))
    for s in (rng.random(len(y)), np.round(rng.random(len(y)) * 2), y + 0.0, 1 - y + 0.0):
        got, want = range_auc_vus(y, s), reference_metrics(y, s)
        for key in want:
            assert got[key] == pytest.approx(want[key], abs=1e-10), key


def test_large_window_relative_to_series():
    y = np.zeros(40, int)
    y[5:35] = 1  # L = 30: buffers run far past both ends
    s = np.random.default_rng(0).random(40) + y
    roc, pr = window_areas(y, s, 70)
    for w in (0, 1, 2, 31, 60, 70):
        assert (roc[w], pr[w]) == pytest.approx(reference_window_area(y, s, w), abs=1e-10)


def test_constant_score_artefact():
    # docs/evaluation.md §3.6: a constant score gets VUS-PR ~ (1 + AR)/2, because the PR trapezoid starts at precision 1. Exactly:
    # every threshold flags everything, so AP_w = (1 + sum(l_w)/n)/2, which is (1 + AR)/2 at w = 0 and 1 and
    # grows a little with the buffers. VUS-ROC is 0.5 at w = 0 and a little above with buffers.
    rng = np.random.default_rng(3)
    n = 20_000
    y = np.zeros(n, int)
    for start in rng.choice(n - 20, 150, replace=False):
        y[start:start + int(rng.integers(1, 10))] = 1  # short segments: L ~ 5, like PSM
    ar = y.mean()
    got = score_metrics(y, np.zeros(n))
    assert got["auroc"] == 0.5 and got["aupr"] == pytest.approx(ar)
    assert 4 <= got["buffer_L"] <= 6
    roc, pr = window_areas(y, np.zeros(n), 2 * got["buffer_L"])
    assert pr[0] == pytest.approx((1 + ar) / 2, abs=1e-12) and pr[1] == pytest.approx((1 + ar) / 2, abs=1e-12)
    assert roc[0] == pytest.approx(0.5, abs=1e-12)
    assert (1 + ar) / 2 < got["vus_pr"] < (1 + ar) / 2 + 0.02
    assert 0.5 < got["vus_roc"] < 0.55
    assert got["vus_pr"] > 0.5 > 0.2 > got["aupr"]  # the artefact: a useless score looks decent on VUS-PR


def test_perfect_score_beats_random():
    rng = np.random.default_rng(7)
    y, _ = random_case(rng)
    perfect = score_metrics(y, y + 0.0)
    noise = score_metrics(y, rng.random(len(y)))
    assert perfect["auroc"] == 1.0 and perfect["aupr"] == 1.0
    assert perfect["vus_roc"] > noise["vus_roc"] and perfect["vus_pr"] > noise["vus_pr"]


def test_degenerate_labels_give_nan_not_error():
    for y in (np.zeros(50, int), np.ones(50, int)):
        got = score_metrics(y, np.arange(50.0))
        assert all(math.isnan(got[k]) for k in ("auroc", "aupr", "r_auc_roc", "r_auc_pr", "vus_roc", "vus_pr"))
    assert score_metrics(np.zeros(50, int), np.arange(50.0))["buffer_L"] == 0


def test_bad_input_raises_clear_error():
    with pytest.raises(ValueError, match="differ in length"):
        score_metrics([0, 1, 0], [0.1, 0.2])
    with pytest.raises(ValueError, match="0/1"):
        score_metrics([0, 2, 0], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="non-finite"):
        score_metrics([0, 1, 0], [0.1, np.nan, 0.3])
    with pytest.raises(ValueError, match="1-D"):
        score_metrics([[0, 1]], [[0.1, 0.2]])
    with pytest.raises(ValueError, match="both anomalous and normal"):
        window_areas(np.ones(5, int), np.arange(5.0), 2)


def test_vectorised_agrees_with_sklearn_free_invariants():
    # Order-preserving transforms of the scores leave every threshold metric unchanged (thresholds are ranks).
    rng = np.random.default_rng(11)
    y, s = random_case(rng)
    a, b = score_metrics(y, s), score_metrics(y, np.exp(3 * s) - 7)
    for key in a:
        assert a[key] == pytest.approx(b[key], abs=1e-12)
    assert roc_auc_score(y, s) == pytest.approx(a["auroc"])
