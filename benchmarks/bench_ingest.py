"""Ingest + prepare wall time and peak memory on the largest series we have, and proof that windowing is linear.

    python benchmarks/bench_ingest.py [--window 100]     # SMD, all 19 machines concatenated (loader smd, mode concat)
    python benchmarks/bench_ingest.py --smoke            # a small synthetic series instead (CI)

(1) The pipeline's own `pipeline.ingest.run` and `pipeline.prepare.run`, each in a fresh child process: wall time
    and peak resident memory (getrusage ru_maxrss of the child, and its increase over the child's RSS after
    imports), next to the size of the arrays involved.
(2) Scaling: for 1/4, 1/2 and all of the ingested series (train and test cut to that share), in a fresh child each:
    `aster.data.prepare.prepare` + `save_prepared` + `load_prepared` (memory-mapped) + every stride-1 training
    window fetched through `SlidingWindows.batch` in batches of 256, under tracemalloc (numpy reports its buffers
    to it). Peak traced memory should grow like the series length (ratio ~ 1 : 2 : 4), far below what
    materialising the windows would take (windows x window x channels x 4 bytes).
Writes benchmarks/results/speed/ingest.json (ingest.smoke.json with --smoke).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SMD = {"loader": "smd", "path": str(ROOT / "../shared/data/SMD/ServerMachineDataset.tar.xz"),
       "options": {"mode": "concat"}}
SMOKE = {"loader": "synthetic", "path": None,
         "options": {"n_channels": 8, "train_length": 4000, "test_length": 4000, "seed": 1}}
FRACTIONS = (0.25, 0.5, 1.0)


def _rss_mb() -> float:
    """Current resident set size of this process (Linux /proc), MB."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KB on Linux


# ----------------------------------------------------------------------------- child jobs (fresh process each)

def child_stage(job: dict) -> dict:
    from pipeline import ingest, prepare
    from pipeline.common import Paths

    paths = Paths(job["name"], root=Path(job["root"]))
    base = _rss_mb()
    t0 = time.perf_counter()
    if job["stage"] == "ingest":
        ingest.run(job["spec"], paths)
    else:
        prepare.run({"window": job["window"], "prepare": {"train_fraction": 0.8}}, paths)
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "maxrss_mb": _maxrss_mb(), "rss_after_imports_mb": base}


def child_scaling(job: dict) -> dict:
    import tracemalloc

    import numpy as np

    from aster.data import Dataset
    from aster.data.prepare import load_prepared, prepare, save_prepared
    from aster.data.store import load_series
    from aster.windows import SlidingWindows

    full = load_series(Path(job["ingested"]))[0]
    f, w = job["fraction"], job["window"]
    n_tr, n_te = int(len(full.train) * f), int(len(full.test) * f)
    ds = Dataset(full.name, np.array(full.train[:n_tr]), np.array(full.test[:n_te]),
                 np.array(full.test_labels[:n_te]), full.channels, {})
    del full
    tracemalloc.start()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        save_prepared(prepare(ds, 0.8, w), ds, tmp)
        prepared, _ = load_prepared(tmp)  # memory-mapped, as training reads it
        windows = SlidingWindows(prepared.train, w, 1)
        checksum = 0.0
        for a in range(0, len(windows), 256):
            checksum += float(windows.batch(np.arange(a, min(a + 256, len(windows))))[:, -1, 0].sum())
        n_windows = len(windows)
        del prepared, windows
    seconds = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    c = ds.train.shape[1]
    return {"fraction": f, "rows": n_tr + n_te, "train_rows": n_tr, "channels": c, "windows": n_windows,
            "seconds": seconds, "traced_peak_mb": peak / 2**20, "series_mb": (ds.train.nbytes + ds.test.nbytes) / 2**20,
            "materialised_windows_mb": n_windows * w * c * 4 / 2**20, "checksum": checksum}


def run_child(job: dict) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", json.dumps(job)], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"child {job.get('stage', 'scaling')} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------- parent

def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--window", type=int, default=100)
    parser.add_argument("--smoke", action="store_true", help="small synthetic series (CI)")
    parser.add_argument("--out-dir", type=Path, help="where the JSON goes (default benchmarks/results/speed)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        job = json.loads(args.child)
        print(json.dumps(child_stage(job) if "stage" in job else child_scaling(job)))
        return {}

    from aster.data.store import load_series
    from benchmarks.common import write_speed

    spec, name = (SMOKE, "synthetic") if args.smoke else (SMD, "smd-concat")
    window = 16 if args.smoke else args.window
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as root:
        common = {"name": name, "root": root, "spec": spec, "window": window}
        ing = run_child({**common, "stage": "ingest"})
        ingested = Path(root) / "data" / "ingested" / name
        series = load_series(ingested)[0]
        series_name, shape_train, shape_test = series.name, series.train.shape, series.test.shape
        array_mb = (series.train.nbytes + series.test.nbytes) / 2**20
        del series
        prep = run_child({**common, "stage": "prepare"})
        print(f"{series_name}: train {shape_train}, test {shape_test} float32 = {array_mb:.0f} MB")
        for label, r in (("ingest", ing), ("prepare", prep)):
            print(f"  {label:8s} {r['seconds']:7.1f} s   peak RSS {r['maxrss_mb']:7.0f} MB "
                  f"(+{r['maxrss_mb'] - r['rss_after_imports_mb']:.0f} MB over imports)")
        scaling = [run_child({"ingested": str(ingested), "fraction": f, "window": window}) for f in FRACTIONS]

    full = scaling[-1]
    print(f"windowing (window {window}, stride 1, batches of 256) under tracemalloc:")
    for s in scaling:
        print(f"  {s['fraction']:4.2f} x: {s['rows']:>9,} rows, {s['windows']:>9,} windows, {s['seconds']:6.1f} s, "
              f"traced peak {s['traced_peak_mb']:7.1f} MB (x{s['traced_peak_mb'] / full['traced_peak_mb']:.2f} "
              f"of full; length x{s['rows'] / full['rows']:.2f}); materialised windows would be "
              f"{s['materialised_windows_mb'] / 1024:.1f} GB")
    rows = [[f"ingest ({spec['loader']}{', concat' if name == 'smd-concat' else ''})", f"{ing['seconds']:.1f}",
             f"{ing['maxrss_mb']:.0f}", f"{ing['maxrss_mb'] - ing['rss_after_imports_mb']:.0f}", "", ""],
            ["prepare (split, scale, .npy)", f"{prep['seconds']:.1f}", f"{prep['maxrss_mb']:.0f}",
             f"{prep['maxrss_mb'] - prep['rss_after_imports_mb']:.0f}", "", ""]]
    for s in scaling:
        rows.append([f"prepare + all {s['windows']:,} windows, {s['fraction']:g} x ({s['rows']:,} rows)",
                     f"{s['seconds']:.1f}", "", f"{s['traced_peak_mb']:.0f} (traced)",
                     f"{s['traced_peak_mb'] / full['traced_peak_mb']:.2f} (length {s['rows'] / full['rows']:.2f})",
                     f"{s['materialised_windows_mb'] / 1024:.2f}"])
    notes = [f"series: {series_name}, train {shape_train[0]:,} x {shape_train[1]} + test {shape_test[0]:,} rows, "
             f"float32 arrays {array_mb:.0f} MB; window {window}",
             "ingest/prepare: the pipeline's stage functions, each in a fresh child process; peak RSS = getrusage "
             "ru_maxrss of that child (includes the ~interpreter and imports), '+' = above the RSS after imports",
             "scaling rows: tracemalloc peak over prepare + save + memory-mapped load + fetching every stride-1 "
             "training window in batches of 256; 'ratio' = peak / peak at full length; the last column is what "
             "holding every window in memory at once would take"]
    data = {"series": series_name, "train_shape": shape_train, "test_shape": shape_test, "array_mb": array_mb,
            "ingest": ing, "prepare": prep, "scaling": scaling, "window": window}
    write_speed("ingest", "Ingest and prepare: wall time, peak memory, linear windowing",
                ["step", "seconds", "peak RSS MB", "memory above imports MB", "ratio", "materialised windows GB"],
                rows, notes, data, args.smoke, args.out_dir, with_torch=False)
    return data


if __name__ == "__main__":
    main()
