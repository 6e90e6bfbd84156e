"""Time TAB-style VUS on a SWaT-size series (n = 450,000, L = 364, 729 windows) and compare with the plain loop.

Usage: python benchmarks/bench_vus.py [--smoke]

The loop reference (tests/metrics/test_vus.py, PROTOCOL.md §2.4 written as per-window, per-threshold loops)
would take many minutes on the big series: it is timed on a small series of the same recipe (a few windows, side
by side with the vectorised code), and on the big series for one window only (w = L), which is multiplied by the
729 windows; that big-series total is an extrapolation, printed as such.
--smoke: a tiny series, both implementations, an agreement check; about a second (CI).
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aster.metrics import buffer_length, score_metrics, window_areas  # noqa: E402


def load_reference():
    spec = importlib.util.spec_from_file_location("vus_reference", ROOT / "tests" / "metrics" / "test_vus.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.reference_window_area


def make_series(n: int, n_seg: int, anomaly_ratio: float, L: int, seed: int = 2021):
    """Labels with log-normal segment lengths whose median is exactly L (n_seg odd), and weak-signal scores."""
    assert n_seg % 2 == 1, "an odd segment count makes the median one segment's length"
    rng = np.random.default_rng(seed)
    lengths = np.sort(np.maximum(1, np.round(L * np.exp(rng.normal(0, 1.6, n_seg))))).astype(np.int64)
    mid = n_seg // 2
    lengths[mid] = L
    lengths[:mid] = np.minimum(lengths[:mid], L)
    # Stretch the long half so the anomalous share is about anomaly_ratio; it stays >= L, so the median stays L.
    long_total = anomaly_ratio * n - lengths[: mid + 1].sum()
    lengths[mid + 1:] = np.maximum(L, np.round(lengths[mid + 1:] * long_total / lengths[mid + 1:].sum()))
    rng.shuffle(lengths)
    gaps = rng.dirichlet(np.ones(n_seg + 1)) * (n - lengths.sum() - (n_seg + 1))
    gaps = np.floor(gaps).astype(np.int64) + 1  # >= 1: segments never touch
    gaps[-1] = n - lengths.sum() - gaps[:-1].sum()
    y = np.zeros(n, dtype=np.int8)
    pos = 0
    for gap, length in zip(gaps[:-1], lengths):
        pos += gap
        y[pos:pos + length] = 1
        pos += length
    scores = rng.normal(size=n) + 0.4 * y  # weak signal on the anomalies
    return y, scores


def timed(fn, repeat: int = 1):
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny series, about a second (CI)")
    args = parser.parse_args()
    reference = load_reference()

    if args.smoke:
        big, small, ref_windows = dict(n=3_000, n_seg=7, anomaly_ratio=0.12, L=20), None, None
    else:
        big = dict(n=450_000, n_seg=35, anomaly_ratio=0.12, L=364)
        small = dict(n=20_000, n_seg=35, anomaly_ratio=0.12, L=16)
    y, s = make_series(**big)
    L = buffer_length(y)
    assert L == big["L"], f"label recipe gave L = {L}, wanted {big['L']}"
    n_windows = 2 * L + 1
    print(f"series: n = {len(y):,}, {len(np.flatnonzero(np.diff(y) == 1)) + y[0]} segments, "
          f"anomalous {y.mean():.2%}, L = {L}, windows 0..2L = {n_windows}")

    t_vus, (roc, pr) = timed(lambda: window_areas(y, s, 2 * L), repeat=1 if args.smoke else 3)
    t_all, metrics = timed(lambda: score_metrics(y, s))
    print(f"vectorised VUS ({n_windows} windows): {t_vus:.3f} s   ({t_vus / n_windows * 1e3:.2f} ms/window)")
    print(f"score_metrics (AUROC, AUPR, R-AUC, VUS): {t_all:.3f} s")
    print("  " + ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in metrics.items()))

    # Plain loop reference: a few windows, on the big series in smoke mode, else on the small series.
    ys, ss = (y, s) if small is None else make_series(**small)
    Ls = buffer_length(ys)
    windows = [0, Ls, 2 * Ls] if small is not None else [Ls]
    t_loop, ref = timed(lambda: [reference(ys, ss, w) for w in windows])
    t_vec_small, (roc_s, pr_s) = timed(lambda: window_areas(ys, ss, 2 * Ls), repeat=3)
    diff = max(max(abs(roc_s[w] - a), abs(pr_s[w] - b)) for w, (a, b) in zip(windows, ref))
    loop_per_window = t_loop / len(windows)
    vec_per_window = t_vec_small / (2 * Ls + 1)
    print(f"loop reference on n = {len(ys):,} (L = {Ls}): {loop_per_window:.3f} s/window measured on windows "
          f"{windows}; vectorised {vec_per_window * 1e3:.3f} ms/window -> {loop_per_window / vec_per_window:.0f}x; "
          f"max |difference| {diff:.1e}")
    assert diff < 1e-9, f"vectorised and loop VUS disagree by {diff}"
    if small is not None:  # one window of the loop on the big series, then x 729 (cost hardly depends on w)
        t_one, (a, b) = timed(lambda: reference(y, s, L))
        assert max(abs(roc[L] - a), abs(pr[L] - b)) < 1e-9, "vectorised and loop VUS disagree on the big series"
        extrapolated = t_one * n_windows
        print(f"loop reference on the big series: window L measured {t_one:.2f} s -> ~{extrapolated:.0f} s for "
              f"{n_windows} windows (EXTRAPOLATED, not run) vs {t_vus:.2f} s vectorised "
              f"-> ~{extrapolated / t_vus:.0f}x")

if __name__ == "__main__":
    main()
