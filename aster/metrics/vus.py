"""Range-AUC and VUS exactly as TAB computes them (the 2022 `RangeAUC_volume`), vectorised.

Re-implemented from docs/evaluation.md §3.2-3.3 (TAB has no licence; the PyPI `vus`/`TSB-AD` packages compute a
different quantity, §3.4). Definition, for labels y (n steps, P anomalous) and scores s:

* 250 thresholds t_k = sorted-descending s at positions floor(linspace(0, n-1, 250)); prediction_k = s >= t_k.
* Window w, h = w // 2: the soft label l_w is y plus sqrt(1 - d/w) at e_j+d (d = 0..h-1, e_j = last step of
  segment j, inclusive, so h-1 new steps on the right) and at s_j-d (d = 1..h) on the left, clipped to [0, n),
  summed, then capped at 1. Extended segments = maximal runs of l_w > 0. P_w = (P + sum l_w) / 2.
* TP_k = sum l_w * pred_k, recall = min(TP/P_w, 1), existence = share of extended segments with a predicted
  step, TPR = recall * existence, FPR = (sum pred_k - TP)/(n - P_w), precision = TP / sum pred_k.
* ROC area: trapezoid over (0,0), the 250 points, (1,1). PR area: trapezoid from (TPR 0, precision 1) over the
  250 points. VUS = mean over w = 0..2L, R-AUC = the value at w = L, L = int(median segment length).

Vectorisation: each step's first-flag index f_x = number of thresholds strictly above s_x is computed once, so
pred_k = (f <= k). TP_k of the fixed anomaly steps is one weighted bincount + cumsum; per window only the
buffer steps (a compact index of the steps next to segments) are touched. Existence per window is a min-reduce
of f over each extended segment, built from per-segment prefix minima of the buffers; all else is O(250).
"""

from __future__ import annotations

import numpy as np

N_THRESHOLDS = 250


def check_inputs(labels, scores) -> tuple[np.ndarray, np.ndarray]:
    """Return (labels int8, scores float64) or raise a one-line ValueError on malformed input."""
    y = np.asarray(labels)
    s = np.asarray(scores, dtype=np.float64)
    if y.ndim != 1 or s.ndim != 1:
        raise ValueError(f"labels and scores must be 1-D, got shapes {y.shape} and {s.shape}")
    if len(y) != len(s):
        raise ValueError(f"labels ({len(y)}) and scores ({len(s)}) differ in length")
    if len(y) == 0:
        raise ValueError("labels and scores are empty")
    if not np.isin(y, (0, 1)).all():
        raise ValueError(f"labels must be 0/1, got values {np.unique(y)[:5].tolist()}")
    if not np.isfinite(s).all():
        raise ValueError(f"scores hold {int((~np.isfinite(s)).sum())} non-finite values (NaN/inf)")
    return y.astype(np.int8), s


def segments(labels) -> tuple[np.ndarray, np.ndarray]:
    """Maximal runs of 1s: (starts, ends), ends inclusive."""
    d = np.diff(np.concatenate(([0], np.asarray(labels) != 0, [0])).astype(np.int8))
    return np.flatnonzero(d == 1), np.flatnonzero(d == -1) - 1


def buffer_length(labels) -> int:
    """TAB's L: int(median length of the anomaly segments of the test labels); 0 when there is none."""
    starts, ends = segments(labels)
    return int(np.median(ends - starts + 1)) if len(starts) else 0


def first_flag(scores: np.ndarray) -> np.ndarray:
    """Index of the first of TAB's 250 thresholds that flags each step (= count of thresholds strictly above)."""
    n = len(scores)
    thresholds = np.sort(scores)[::-1][np.linspace(0, n - 1, N_THRESHOLDS).astype(np.int64)]  # non-increasing
    return N_THRESHOLDS - np.searchsorted(thresholds[::-1], scores, side="right")


def window_areas(labels, scores, max_window: int) -> tuple[np.ndarray, np.ndarray]:
    """ROC and PR areas of the range curves for every window w = 0..max_window: two arrays of max_window+1.

    Needs at least one anomalous and one normal step (else n - P_w can be 0); `score_metrics` checks that.
    """
    y, s = check_inputs(labels, scores)
    n, K, BIG = len(y), N_THRESHOLDS, N_THRESHOLDS  # BIG: "never flagged", above every real f
    starts, ends = segments(y)
    nseg = len(starts)
    if nseg == 0 or y.all():
        raise ValueError("range AUC needs both anomalous and normal steps")
    if max_window < 0:
        raise ValueError(f"max_window must be >= 0, got {max_window}")
    f = first_flag(s)
    n_pred = np.cumsum(np.bincount(f, minlength=K))[:K].astype(np.float64)
    P = float(y.sum())
    tp_anom = np.cumsum(np.bincount(f[y == 1], minlength=K))[:K].astype(np.float64)  # same for every window

    # Buffer geometry for the largest window: row d-1 holds the step at distance d from each segment.
    H = max_window // 2
    left = starts[None, :] - np.arange(1, H + 1)[:, None]  # (H, nseg), d = 1..H
    right = ends[None, :] + np.arange(1, H)[:, None]  # (H-1, nseg), d = 1..H-1 (d = 0 is the segment's own end)
    in_left, in_right = left >= 0, right < n
    f_left = np.where(in_left, f[np.clip(left, 0, n - 1)], BIG)
    f_right = np.where(in_right, f[np.clip(right, 0, n - 1)], BIG)
    # Prefix minima of f over the buffers: left_min[h] = min over d = 1..h, right_min[h] = min over d = 1..h-1.
    left_min = np.vstack([np.full((1, nseg), BIG), np.minimum.accumulate(f_left, axis=0)])
    right_min = np.vstack([np.full((2, nseg), BIG), np.minimum.accumulate(f_right, axis=0)])
    seg_min = np.minimum.reduceat(np.where(y == 1, f, BIG), starts)  # gaps hold BIG, so this is per segment

    # Compact index over the normal steps a buffer can reach; steps inside another segment (l = 1 already) and
    # out-of-range steps go to the dump slot M.
    usable_left = in_left & (y[np.clip(left, 0, n - 1)] == 0)
    usable_right = in_right & (y[np.clip(right, 0, n - 1)] == 0)
    buf_pos = np.unique(np.concatenate([left[usable_left], right[usable_right]]))
    M = len(buf_pos)
    c_left = np.where(usable_left, np.searchsorted(buf_pos, left), M)
    c_right = np.where(usable_right, np.searchsorted(buf_pos, right), M)
    f_buf = f[buf_pos]

    W = max_window + 1
    tp, sum_l, exist = np.empty((W, K)), np.empty(W), np.empty((W, K))
    for w in range(W):
        h = w // 2
        if h == 0:
            tp[w], sum_l[w] = tp_anom, P
        else:
            dl, dr = np.arange(1, h + 1), np.arange(1, h)
            idx = np.concatenate([c_left[:h].ravel(), c_right[: h - 1].ravel()])
            wts = np.concatenate([np.repeat(np.sqrt(1 - dl / w), nseg), np.repeat(np.sqrt(1 - dr / w), nseg)])
            soft = np.minimum(np.bincount(idx, weights=wts, minlength=M + 1)[:M], 1.0)  # overlapping buffers add, cap
            tp[w] = tp_anom + np.cumsum(np.bincount(f_buf, weights=soft, minlength=K))[:K]
            sum_l[w] = P + soft.sum()
        # Extended segments: [s_j - h, e_j + h - 1] clipped; neighbours merge when they touch or overlap.
        ext_start, ext_end = np.maximum(starts - h, 0), np.minimum(ends + max(h - 1, 0), n - 1)
        run_heads = np.flatnonzero(np.concatenate(([True], ext_start[1:] > ext_end[:-1] + 1)))
        seg_first = np.minimum(seg_min, np.minimum(left_min[h], right_min[h]))
        run_first = np.minimum.reduceat(seg_first, run_heads)
        exist[w] = np.cumsum(np.bincount(run_first, minlength=K + 1))[:K] / len(run_heads)

    P_w = (P + sum_l)[:, None] / 2
    tpr = np.minimum(tp / P_w, 1.0) * exist
    fpr = (n_pred - tp) / (n - P_w)
    precision = tp / n_pred
    zeros, ones = np.zeros((W, 1)), np.ones((W, 1))
    fpr_c, tpr_c = np.hstack([zeros, fpr, ones]), np.hstack([zeros, tpr, ones])
    roc = np.sum(np.diff(fpr_c, axis=1) * (tpr_c[:, 1:] + tpr_c[:, :-1]) / 2, axis=1)
    rec_c, prec_c = tpr_c[:, :-1], np.hstack([ones, precision])
    pr = np.sum(np.diff(rec_c, axis=1) * (prec_c[:, 1:] + prec_c[:, :-1]) / 2, axis=1)
    return roc, pr


def range_auc_vus(labels, scores, L: int | None = None) -> dict:
    """R-AUC-ROC/PR (window L) and VUS-ROC/PR (mean over windows 0..2L); L defaults to TAB's `buffer_length`."""
    L = buffer_length(labels) if L is None else int(L)
    roc, pr = window_areas(labels, scores, 2 * L)
    return {"r_auc_roc": float(roc[L]), "r_auc_pr": float(pr[L]),
            "vus_roc": float(roc.mean()), "vus_pr": float(pr.mean()), "buffer_L": L}
