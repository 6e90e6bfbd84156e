"""Time TAB-style VUS on a SWaT-size series (n = 450,000, L = 364, 729 windows) and compare with the plain loop.

Usage: python benchmarks/bench_vus.py [--smoke] [--json [DIR]] [--vus-python /tmp/vusenv/bin/python]

The loop reference (tests/metrics/test_vus.py, docs/evaluation.md §3.3 written as per-window, per-threshold loops)
would take many minutes on the big series: it is timed on a small series of the same recipe (a few windows, side
by side with the vectorised code), and on the big series for one window only (w = L), which is multiplied by the
729 windows; that big-series total is an extrapolation, printed as such.
--smoke: a tiny series, both implementations, an agreement check; about a second (CI).
--json: also write the figures to benchmarks/results/speed/vus.json (vus.smoke.json with --smoke).
If --vus-python (default /tmp/vusenv/bin/python, a throwaway venv with `pip install vus==0.0.6`) exists, the PyPI
`vus` package is timed on the small series too, in that interpreter (it needs TensorFlow, which stays out of .venv).
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


VUS_CHILD = """
import json, sys, time, warnings
warnings.filterwarnings("ignore")
import numpy as np
t0 = time.perf_counter()
from vus.metrics import get_metrics
import vus
t_import = time.perf_counter() - t0
z = np.load(sys.argv[1])
y, s, W = z["y"].astype(int), z["s"].astype(float), int(z["W"])
t0 = time.perf_counter()
m = get_metrics(s, y, metric="vus", slidingWindow=W)
t = time.perf_counter() - t0
print(json.dumps({"seconds": t, "import_seconds": t_import, "metrics": {k: float(v) for k, v in m.items()},
                  "version": getattr(vus, "__version__", None)}))
"""


def time_vus_package(python: str, y: np.ndarray, s: np.ndarray, max_window: int, timeout: float) -> dict:
    """PyPI `vus` (get_metrics(metric='vus', slidingWindow=2L), its own windows 0..2L) in another interpreter."""
    import json
    import subprocess
    import tempfile

    if not Path(python).exists():
        return {"status": "not installed", "detail": f"{python} does not exist"}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "series.npz"
        np.savez(data, y=y, s=s, W=max_window)
        try:
            out = subprocess.run([python, "-c", VUS_CHILD, str(data)], capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"status": "timeout", "detail": f"no result within {timeout:.0f} s"}
    if out.returncode != 0:
        return {"status": "failed", "detail": (out.stderr.strip().splitlines() or ["?"])[-1]}
    return {"status": "ok", **json.loads(out.stdout.strip().splitlines()[-1])}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny series, about a second (CI)")
    parser.add_argument("--json", nargs="?", const="", metavar="DIR",
                        help="write the figures as JSON (default dir benchmarks/results/speed; vus[.smoke].json)")
    parser.add_argument("--vus-python", default="/tmp/vusenv/bin/python",
                        help="interpreter of a venv with PyPI vus==0.0.6, timed on the small series if it exists")
    parser.add_argument("--vus-timeout", type=float, default=1800.0)
    parser.add_argument("--vus-big", action="store_true",
                        help="also time PyPI vus on the big series (about 10 min on 2 cores)")
    args = parser.parse_args(argv)
    reference = load_reference()
    fig: dict = {}

    if args.smoke:
        big, small = dict(n=3_000, n_seg=7, anomaly_ratio=0.12, L=20), None
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
    fig["big"] = {**big, "windows": n_windows, "vectorised_s": t_vus, "score_metrics_s": t_all, "metrics": metrics}

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
    fig["small"] = {"n": len(ys), "L": Ls, "windows": 2 * Ls + 1, "loop_windows_timed": windows,
                    "loop_s_per_window": loop_per_window, "vectorised_s": t_vec_small,
                    "vectorised_s_per_window": vec_per_window, "max_abs_diff": diff,
                    "vus_roc": float(np.mean(roc_s)), "vus_pr": float(np.mean(pr_s))}
    if small is not None:  # one window of the loop on the big series, then x 729 (cost hardly depends on w)
        t_one, (a, b) = timed(lambda: reference(y, s, L))
        assert max(abs(roc[L] - a), abs(pr[L] - b)) < 1e-9, "vectorised and loop VUS disagree on the big series"
        extrapolated = t_one * n_windows
        print(f"loop reference on the big series: window L measured {t_one:.2f} s -> ~{extrapolated:.0f} s for "
              f"{n_windows} windows (EXTRAPOLATED, not run) vs {t_vus:.2f} s vectorised "
              f"-> ~{extrapolated / t_vus:.0f}x")
        fig["big"].update(loop_one_window_s=t_one, loop_extrapolated_s=extrapolated)

        # PyPI vus 0.0.6 on the small series (the big one would take ~10 min, docs/evaluation.md §3.4): its own windows
        # 0..2L, so its time compares with the vectorised time over all windows of the same series.
        pkg = time_vus_package(args.vus_python, ys, ss, 2 * Ls, args.vus_timeout)
        fig["vus_package"] = pkg
        if pkg["status"] == "ok":
            m = pkg["metrics"]
            print(f"PyPI vus {pkg.get('version') or '0.0.6'} on n = {len(ys):,} (slidingWindow 2L = {2 * Ls}): "
                  f"{pkg['seconds']:.2f} s vs vectorised {t_vec_small:.3f} s -> {pkg['seconds'] / t_vec_small:.0f}x; "
                  f"its VUS-ROC {m.get('VUS_ROC', float('nan')):.4f} / VUS-PR {m.get('VUS_PR', float('nan')):.4f} vs "
                  f"TAB's {np.mean(roc_s):.4f} / {np.mean(pr_s):.4f} (a different quantity, docs/evaluation.md §3.4)")
        else:
            print(f"PyPI vus: {pkg['status']} ({pkg['detail']})")
        if args.vus_big and pkg["status"] == "ok":
            big_pkg = time_vus_package(args.vus_python, y, s, 2 * L, args.vus_timeout)
            fig["vus_package_big"] = big_pkg
            if big_pkg["status"] == "ok":
                print(f"PyPI vus on the big series (slidingWindow {2 * L}): {big_pkg['seconds']:.1f} s vs "
                      f"vectorised {t_vus:.2f} s -> {big_pkg['seconds'] / t_vus:.0f}x")
            else:
                print(f"PyPI vus on the big series: {big_pkg['status']} ({big_pkg['detail']})")

    if args.json is not None:
        write_json_result(fig, args)
    return fig


def write_json_result(fig: dict, args) -> None:
    from benchmarks.common import write_speed

    b, sm = fig["big"], fig["small"]
    rows = []
    if "loop_extrapolated_s" in b:  # not in --smoke, where the one series is the small one
        rows.append([f"vectorised, n = {b['n']:,}, L = {b['L']} ({b['windows']} windows)", f"{b['vectorised_s']:.3f}",
                     f"{b['vectorised_s'] / b['windows'] * 1e3:.2f}", "1x", "measured"])
        rows.append(["plain loop (TAB's algorithm), same series", f"{b['loop_extrapolated_s']:.0f}",
                     f"{b['loop_one_window_s'] * 1e3:.0f}", f"{b['loop_extrapolated_s'] / b['vectorised_s']:.0f}x",
                     "window L measured, x windows (extrapolated)"])
    rows += [[f"vectorised, n = {sm['n']:,}, L = {sm['L']} ({sm['windows']} windows)", f"{sm['vectorised_s']:.3f}",
              f"{sm['vectorised_s_per_window'] * 1e3:.2f}", "1x", "measured"],
             ["plain loop, same series", f"{sm['loop_s_per_window'] * sm['windows']:.2f}",
              f"{sm['loop_s_per_window'] * 1e3:.0f}",
              f"{sm['loop_s_per_window'] / sm['vectorised_s_per_window']:.0f}x",
              f"windows {sm['loop_windows_timed']} measured, x windows"]]
    notes = [f"vectorised and loop agree to {sm['max_abs_diff']:.1e} (asserted < 1e-9)",
             "synthetic labels with log-normal segment lengths (median exactly L, ~12 % anomalous), "
             "weak-signal random scores (benchmarks/bench_vus.py make_series)"]
    pkg = fig.get("vus_package")
    if pkg is not None:
        if pkg["status"] == "ok":
            m = pkg["metrics"]
            rows.append([f"PyPI vus {pkg.get('version') or '0.0.6'} get_metrics(slidingWindow=2L), same small series",
                         f"{pkg['seconds']:.2f}", f"{pkg['seconds'] / sm['windows'] * 1e3:.1f}",
                         f"{pkg['seconds'] / sm['vectorised_s']:.0f}x", "measured (separate venv)"])
            notes.append(f"PyPI vus values on the small series: VUS-ROC {m.get('VUS_ROC', float('nan')):.4f}, "
                         f"VUS-PR {m.get('VUS_PR', float('nan')):.4f}; TAB's definition (ours): "
                         f"{sm['vus_roc']:.4f}, {sm['vus_pr']:.4f}: a different quantity (docs/evaluation.md §3.4)")
        else:
            notes.append(f"PyPI vus 0.0.6: {pkg['status']} ({pkg['detail']})")
    big_pkg = fig.get("vus_package_big")
    if big_pkg is not None and big_pkg["status"] == "ok":
        m = big_pkg["metrics"]
        rows.insert(2, ["PyPI vus get_metrics(slidingWindow=2L), big series", f"{big_pkg['seconds']:.1f}",
                        f"{big_pkg['seconds'] / b['windows'] * 1e3:.0f}",
                        f"{big_pkg['seconds'] / b['vectorised_s']:.0f}x", "measured (separate venv)"])
        notes.append(f"PyPI vus values on the big series: VUS-ROC {m.get('VUS_ROC', float('nan')):.4f}, VUS-PR "
                     f"{m.get('VUS_PR', float('nan')):.4f}; TAB's definition (ours): {b['metrics']['vus_roc']:.4f}, "
                     f"{b['metrics']['vus_pr']:.4f}")
    elif big_pkg is not None:
        rows.insert(2, ["PyPI vus get_metrics(slidingWindow=2L), big series", big_pkg["status"], "", "",
                        big_pkg["detail"]])
        notes.append(f"PyPI vus on the big series: {big_pkg['status']} ({big_pkg['detail']})")
    write_speed("vus", "VUS (TAB's 2022 definition): vectorised vs plain loop vs PyPI vus",
                ["what", "seconds", "ms/window", "vs vectorised", "how"], rows, notes, fig, args.smoke,
                Path(args.json) if args.json else None, with_torch=False)


if __name__ == "__main__":
    main()
