"""Label-mode metrics (docs/evaluation.md §4.1): point-wise F1 of the anomaly class at TAB's anomaly-ratio thresholds.

TAB's rule: threshold tau_r = np.percentile(pool, 100 - r) (linear interpolation), prediction = score > tau_r
(strict), F1 from sklearn's `precision_recall_fscore_support(zero_division=0)`, anomaly class. The published value
is the best F1 over the ratio grid, chosen with the test labels (an oracle, like TAB; report the ratio with it).

The pool is built by the caller: scores of the 80 % train part (never the validation part) concatenated with the
test scores; for window models, TAB pools the per-step scores of every stride-1 window (`test` mode), while the
F1 itself is computed on the one-score-per-step test vector.
Metrics that need an anomaly (precision, recall, F1) are NaN when the test labels hold none.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import precision_recall_fscore_support

from aster.metrics.vus import check_inputs, segments

DEFAULT_RATIOS = (0.1, 0.5, 1, 2, 3, 5, 10, 15, 20, 25)  # percent, TAB's grid


def _prf(y: np.ndarray, pred: np.ndarray) -> dict:
    if not y.any():
        nan = float("nan")
        return {"precision": nan, "recall": nan, "f1": nan, "n_flagged": int(pred.sum())}
    p, r, f, _ = precision_recall_fscore_support(y, pred.astype(np.int8), labels=[1], average=None,
                                                 zero_division=0)
    return {"precision": float(p[0]), "recall": float(r[0]), "f1": float(f[0]), "n_flagged": int(pred.sum())}


def f1_at_threshold(labels, scores, threshold: float) -> dict:
    """Precision, recall, F1 of the anomaly class for prediction = score > threshold (e.g. a label-free one)."""
    y, s = check_inputs(labels, scores)
    return {"threshold": float(threshold), **_prf(y, s > threshold)}


def label_mode_f1(test_labels, test_scores, pool_scores, ratios=DEFAULT_RATIOS) -> dict:
    """TAB's label mode: one row per ratio r (percent) and the best F1 with its ratio (first one on ties).

    Returns {"f1", "ratio", "precision", "recall", "threshold", "n_flagged", "per_ratio": [row per r]}, each row
    holding ratio, threshold, precision, recall, f1, n_flagged.
    """
    y, s = check_inputs(test_labels, test_scores)
    pool = np.asarray(pool_scores, dtype=np.float64).ravel()
    if pool.size == 0 or not np.isfinite(pool).all():
        raise ValueError(f"threshold pool must be non-empty and finite ({pool.size} values, "
                         f"{int((~np.isfinite(pool)).sum())} non-finite)")
    ratios = [float(r) for r in ratios]
    if not ratios or not all(0 < r <= 100 for r in ratios):
        raise ValueError(f"anomaly ratios must be percentages in (0, 100], got {ratios}")
    taus = np.percentile(pool, [100 - r for r in ratios])  # one partition of the (possibly huge) pool
    rows = [{"ratio": r, "threshold": float(t), **_prf(y, s > t)} for r, t in zip(ratios, taus)]
    best = rows[int(np.argmax([row["f1"] for row in rows]))] if y.any() else rows[0]
    return {**{k: best[k] for k in ("f1", "ratio", "precision", "recall", "threshold", "n_flagged")},
            "per_ratio": rows}


def point_adjust(labels, predictions) -> np.ndarray:
    """Segment-wise point adjustment: a true segment with any flagged step counts as wholly flagged."""
    y, pred = check_inputs(labels, predictions)
    pred = pred != 0
    starts, ends = segments(y)
    hits = np.concatenate(([0], np.cumsum(pred)))
    hit = hits[ends + 1] > hits[starts]
    mark = np.zeros(len(y) + 1, dtype=np.int64)
    mark[starts[hit]] += 1  # starts and ends+1 are distinct: segments are maximal runs
    mark[ends[hit] + 1] -= 1
    return pred | (np.cumsum(mark[:-1]) > 0)


def point_adjusted_f1(labels, predictions) -> dict:
    """Precision, recall, F1 after point adjustment (TAB's `adjust_*`; an extra, never a headline number)."""
    y, _ = check_inputs(labels, predictions)
    return _prf(y, point_adjust(y, predictions))
