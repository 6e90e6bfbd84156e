"""Serving benchmark: (a) HTTP load on a local `bentoml serve`, (b) onnxruntime vs PyTorch eager, side by side.

    python benchmarks/bench_serving.py                       # default model config (params.yaml), random init
    python benchmarks/bench_serving.py --model-dir export/synthetic/synthetic
    python benchmarks/bench_serving.py --smoke               # tiny model, a few requests: a CI smoke run (~20 s)

(a) asyncio + httpx clients at each concurrency (default 1, 8, 32, 128), each level bounded by --requests and
    --duration; /score requests of --windows random scaled windows. 503s (load shed by adaptive batching) are
    retried by the client with backoff and counted; anything else that fails is an error. Reports requests/s,
    windows/s, p50/p99 latency (per request, retries included).
(b) the exported model in onnxruntime vs the same model in PyTorch eager at batch 1 and 256: windows/s and median
    latency, on CPU; where CUDA really loads, also ORT-CUDA, torch fp32 and torch bf16 (autocast). Without
    --model-dir, also onnxruntime on the old default (variant `old-default` of benchmarks/variants.yaml: one token
    per step) in the same run, so the speed-up of the default is measured side by side.
Without --model-dir the model is the params.yaml config for 12 channels, randomly initialised (speed does not depend
on training), exported to a temporary directory.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np



# ----------------------------------------------------------------------------- model

def build_model(smoke: bool, n_channels: int, variant: str = "default"):
    """The params.yaml ASTER config (or a named variant over it) for `n_channels` channels, or a tiny one for
    --smoke; random init: speed does not depend on training."""
    import sys

    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from aster.model import Aster, AsterConfig
    from benchmarks.bench_training import config_params
    from pipeline.common import params
    from pipeline.train import aster_config

    torch.manual_seed(0)
    if smoke:
        patch = 1 if variant == "old-default" else 4
        return Aster(AsterConfig(n_channels=3, window=16, backbone="none", patch=patch)).eval()
    p = config_params(variant, params("window", "model", "train", "evaluate"))
    return Aster(aster_config(p["model"], n_channels, p["window"])).eval()


def export_for_bench(model, directory: Path) -> Path:
    from aster.export import export_model

    c = model.config
    channels = [f"c{i}" for i in range(c.n_channels)]
    export_model(model, directory, dataset="bench", series="random-init", channels=channels,
                 scaler={"mean": [0.0] * c.n_channels, "scale": [1.0] * c.n_channels, "channels": channels},
                 threshold={"threshold": 0.5, "contamination": 0.01}, params={"bench": True}, metrics=None)
    return directory


# ----------------------------------------------------------------------------- (b) in-process engines

def time_calls(fn, x, reps: int, budget_s: float) -> dict:
    """Median/p90 latency of fn(x) over up to `reps` calls (after one warm-up), stopping after `budget_s`."""
    fn(x)
    times, start = [], time.perf_counter()
    while len(times) < reps and (not times or time.perf_counter() - start < budget_s):
        t = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - t)
    med = float(np.median(times))
    return {"batch": len(x), "calls": len(times), "latency_ms_p50": 1e3 * med,
            "latency_ms_p90": 1e3 * float(np.percentile(times, 90)), "windows_per_s": len(x) / med}


def engines(model, export_dir: Path) -> dict:
    """name -> numpy (B, W, C) -> (B,) callable, for every engine this machine can really run; onnxruntime
    through aster.inference, the path the service uses."""
    import torch

    from aster.inference import ExportedModel

    out = {"onnxruntime-cpu": ExportedModel(export_dir, "cpu").score_windows}
    model = model.eval()

    def torch_on(device: str, bf16: bool = False):
        m = model.to(device)

        def run(x: np.ndarray) -> np.ndarray:
            with torch.inference_mode(), torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
                s = m.score(torch.from_numpy(x).to(device)).float().cpu().numpy()
            return s

        return run

    out["torch-eager-cpu-fp32"] = torch_on("cpu")
    on_gpu = ExportedModel(export_dir, "auto")
    if "CUDAExecutionProvider" in on_gpu.providers:
        out["onnxruntime-cuda"] = on_gpu.score_windows
    if torch.cuda.is_available():
        out["torch-eager-cuda-fp32"] = torch_on("cuda")
        out["torch-eager-cuda-bf16"] = torch_on("cuda", bf16=True)
    return out


def side_by_side(model, export_dir: Path, batches: list[int], reps: int, budget_s: float,
                 old_export: Path | None = None) -> dict:
    from aster.inference import ExportedModel

    c = model.config
    runs, rows = engines(model, export_dir), []
    if old_export is not None:
        runs["onnxruntime-cpu, old default"] = ExportedModel(old_export, "cpu").score_windows
    for name, fn in runs.items():
        for b in batches:
            x = np.random.default_rng(b).standard_normal((b, c.window, c.n_channels)).astype(np.float32)
            rows.append({"engine": name, **time_calls(fn, x, reps, budget_s)})
            print(f"  {name:24s} batch {b:4d}: {rows[-1]['windows_per_s']:9.1f} windows/s, "
                  f"p50 {rows[-1]['latency_ms_p50']:8.1f} ms  ({rows[-1]['calls']} calls)", flush=True)
    x = np.random.default_rng(0).standard_normal((8, c.window, c.n_channels)).astype(np.float32)
    ref = runs["onnxruntime-cpu"](x)
    diffs = {name: float(np.abs(fn(x) - ref).max()) for name, fn in runs.items() if "old default" not in name}
    print(f"  max |score - onnxruntime-cpu| on 8 windows: {diffs}")
    return {"rows": rows, "max_abs_diff_vs_onnxruntime_cpu": diffs}


# ----------------------------------------------------------------------------- (a) HTTP load

async def load_level(url: str, concurrency: int, n_requests: int, duration_s: float, payload: np.ndarray) -> dict:
    from serving.client import AsyncScorerClient, ScoringError

    client = AsyncScorerClient(url, retries=8, backoff=0.2, timeout=120.0, max_connections=concurrency)
    latencies, errors, issued = [], {}, 0
    start = time.perf_counter()
    deadline = start + duration_s

    async def worker() -> None:
        nonlocal issued
        while issued < n_requests and time.perf_counter() < deadline:
            issued += 1
            t = time.perf_counter()
            try:
                scores = await client.score(payload)
                if scores.shape != (len(payload),):
                    raise ValueError(f"got {scores.shape} scores")
                latencies.append(time.perf_counter() - t)
            except (ScoringError, ValueError, OSError, asyncio.TimeoutError) as e:
                key = f"HTTP {e.status}" if isinstance(e, ScoringError) else type(e).__name__
                errors[key] = errors.get(key, 0) + 1

    try:
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    finally:
        await client.aclose()
    wall = time.perf_counter() - start
    lat = np.asarray(latencies) * 1e3
    return {"concurrency": concurrency, "requests_ok": len(latencies), "errors": errors,
            "failed": sum(errors.values()), "shed_503": client.shed, "retried": client.retried, "wall_s": wall, "requests_per_s": len(latencies) / wall,
            "windows_per_s": len(latencies) * len(payload) / wall,
            "latency_ms_p50": float(np.percentile(lat, 50)) if lat.size else None,
            "latency_ms_p99": float(np.percentile(lat, 99)) if lat.size else None}


def http_load(model_dir: Path, window: int, n_channels: int, levels: list[int], n_requests: int,
              duration_s: float, windows_per_request: int, log_path: Path) -> list[dict]:
    from serving.client import local_server

    payload = np.random.default_rng(0).standard_normal((windows_per_request, window, n_channels)).astype(np.float32)
    rows = []
    with local_server(model_dir, env={"ASTER_DEVICE": os.environ.get("ASTER_DEVICE", "auto")},
                      log_path=log_path, ready_timeout=120) as url:
        print(f"  server {url} ready; log {log_path}", flush=True)
        asyncio.run(load_level(url, 2, 4, 30, payload))  # warm-up: first ORT runs, dispatcher training
        for c in levels:
            row = asyncio.run(load_level(url, c, n_requests, duration_s, payload))
            rows.append(row)
            p50, p99 = row["latency_ms_p50"], row["latency_ms_p99"]
            print(f"  concurrency {c:4d}: {row['requests_ok']:4d} ok in {row['wall_s']:5.1f} s, "
                  f"{row['requests_per_s']:7.1f} req/s, {row['windows_per_s']:8.1f} windows/s, "
                  f"p50 {p50 or float('nan'):8.1f} ms, p99 {p99 or float('nan'):8.1f} ms, "
                  f"503 shed (retried) {row['shed_503']}, failed {row['failed']} {row['errors'] or ''}", flush=True)
    return rows


def main() -> None:
    from aster.env import setup_environment

    setup_environment()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path, help="an export directory (model.onnx + card.json)")
    parser.add_argument("--channels", type=int, default=12, help="channels of the default model (no --model-dir)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32, 128])
    parser.add_argument("--requests", type=int, default=256, help="requests per concurrency level, at most")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds per concurrency level, at most")
    parser.add_argument("--windows", type=int, default=4, help="windows per /score request")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 256], help="side-by-side batch sizes")
    parser.add_argument("--reps", type=int, default=20, help="side-by-side calls per (engine, batch), at most")
    parser.add_argument("--budget", type=float, default=15.0, help="side-by-side seconds per (engine, batch)")
    parser.add_argument("--skip-load", action="store_true")
    parser.add_argument("--skip-engines", action="store_true")
    parser.add_argument("--smoke", action="store_true", help="tiny model and few requests (CI)")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args()
    if args.smoke:
        args.concurrency, args.requests, args.duration, args.windows = [1, 8], 16, 10.0, 2
        args.batches, args.reps, args.budget = [1, 8], 3, 2.0

    import torch

    from aster.artifacts import load_model
    from aster.inference import load_card

    with tempfile.TemporaryDirectory(prefix="aster-bench-") as tmp:
        tmp = Path(tmp)
        if args.model_dir:
            card = load_card(args.model_dir)
            model_dir = args.model_dir
            models = Path("models") / card["dataset"] / card["series"]
            model = load_model(models) if (models / "model.safetensors").exists() else None
        else:
            model = build_model(args.smoke, args.channels)
            model_dir = export_for_bench(model, tmp / "export")
            card = load_card(model_dir)
            if not args.skip_engines:
                old_dir = export_for_bench(build_model(args.smoke, args.channels, "old-default"), tmp / "old")
        c = card["model"]["config"]
        env = {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(), "platform": platform.platform(),
               "cuda": torch.cuda.is_available(), "loadavg_1m_at_start": os.getloadavg()[0], "model": {k: c.get(k) for k in ("backbone", "backbone_layers",
                                                                                 "finetune", "window", "patch",
                                                                                 "n_channels")}}
        print(f"model {env['model']} from {model_dir}; {env['cpus']} CPUs, CUDA: {env['cuda']}", flush=True)
        results = {"env": env}
        if not args.skip_engines:
            if model is None:
                print("(b) skipped: no PyTorch model next to this export (models/DS/SID/)")
            else:
                print("(b) in-process scoring, same model and windows:")
                results["engines"] = side_by_side(model, Path(model_dir), args.batches, args.reps, args.budget,
                                                  None if args.model_dir else old_dir)
        if not args.skip_load:
            print(f"(a) HTTP load on bentoml serve: /score with {args.windows} windows per request")
            log_path = tmp / "serve.log"
            try:
                results["load"] = http_load(Path(model_dir), card["window"], card["n_channels"], args.concurrency,
                                            args.requests, args.duration, args.windows, log_path)
            except (RuntimeError, TimeoutError):
                print(log_path.read_text()[-3000:] if log_path.exists() else "(no server log)")
                raise
    results["env"]["loadavg_1m_at_end"] = os.getloadavg()[0]
    print(f"load average (1 min) at start / end: {env['loadavg_1m_at_start']:.2f} / "
          f"{results['env']['loadavg_1m_at_end']:.2f} on {env['cpus']} CPUs (other processes skew the figures)")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n")
    if not args.smoke:  # smoke runs (CI) leave the recorded figures alone
        write_speed_tables(results)


def write_speed_tables(results: dict) -> None:
    """benchmarks/results/speed/serving*.json, the tables BENCHMARKS.md shows (report.py)."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from benchmarks.common import write_speed

    notes = [f"model {results['env']['model']}; load average {results['env']['loadavg_1m_at_start']:.1f} at start, "
             f"{results['env']['loadavg_1m_at_end']:.1f} at end on {results['env']['cpus']} CPUs"]
    if "engines" in results:
        rows = [[r["engine"], r["batch"] if "batch" in r else "", f"{r['windows_per_s']:.1f}",
                 f"{r['latency_ms_p50']:.1f}"] for r in results["engines"]["rows"]]
        write_speed("serving_engines", "In-process scoring: onnxruntime vs PyTorch eager",
                    ["engine", "batch", "windows/s", "latency p50 (ms)"], rows, notes, results["engines"], smoke=False)
    if "load" in results:
        rows = [[r["concurrency"], r["requests_ok"], r["shed_503"], r["failed"], f"{r['requests_per_s']:.1f}",
                 f"{r['windows_per_s']:.1f}", f"{r['latency_ms_p50']:.0f}", f"{r['latency_ms_p99']:.0f}"]
                for r in results["load"]]
        write_speed("serving_load", "HTTP load on `bentoml serve` (/score, loopback, through the bundled client)",
                    ["clients", "ok", "shed (503, retried)", "failed", "req/s", "windows/s", "p50 ms", "p99 ms"], rows,
                    notes, {"rows": results["load"]}, smoke=False)


if __name__ == "__main__":
    main()
