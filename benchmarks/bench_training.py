"""ASTER training throughput, side by side: the default against the old default and the paper's setting.

    python benchmarks/bench_training.py [--channels 38] [--steps 10] [--warmup 3] [--threads N] [--device cpu|cuda|all]
    python benchmarks/bench_training.py --smoke          # tiny model and window, a couple of steps (CI)

Configs: `default` is params.yaml as it is; `old-default` and `paper` are the named variants of
benchmarks/variants.yaml applied over it; `default-minilm-6` is the default with all six MiniLM layers. Each is built
by the pipeline's own `pipeline.train.aster_config`; one training step is exactly the loop's (`training_losses` ->
backward -> optimiser step with the config's optimiser, bf16 autocast on CUDA), on windows fetched with
`SlidingWindows` from a random series (fetching is part of the step, as in training). The ratio column is the
speed-up of the default over each config (windows/s of the default / windows/s of the config), measured in the same
run. Timed over --steps steps after --warmup steps.
FLOPs of one step (forward + backward) are counted with torch.utils.flop_counter.FlopCounterMode (matmul/conv/
attention ops; elementwise ops are not counted, so this slightly understates the work); on CUDA, model FLOP
utilisation = counted FLOP/s / the GPU's dense bf16 peak (--peak-tflops overrides the table).
Writes benchmarks/results/speed/training.json (training.smoke.json with --smoke).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import write_speed  # noqa: E402
from aster.env import setup_environment  # noqa: E402
from pipeline.common import params  # noqa: E402

CONFIGS = ("default", "old-default", "paper", "default-minilm-6")
PEAK_BF16_TFLOPS = {"H100 PCIe": 756.0, "H100 NVL": 835.0, "H100": 989.0, "H200": 989.0, "A100": 312.0,
                    "L4": 121.0, "L40S": 362.0, "A10": 125.0, "V100": 125.0}  # dense, no sparsity


def peak_tflops(device_name: str) -> float | None:
    for key in sorted(PEAK_BF16_TFLOPS, key=len, reverse=True):  # "H100 PCIe" before "H100"
        if key in device_name:
            return PEAK_BF16_TFLOPS[key]
    return None


def config_params(name: str, base: dict) -> dict:
    """params of a config: the default, a named variant over it (as run.py applies it), or all MiniLM layers."""
    from benchmarks.run import load_variants, run_params

    p = run_params(base, {}, "aster", [], None if name in ("default", "default-minilm-6") else load_variants()[name])
    if name == "default-minilm-6":
        p["model"].update(backbone="minilm", backbone_layers=None)
    return p


def build(p: dict, n_channels: int):
    import torch

    from aster.model import Aster
    from pipeline.train import aster_config

    torch.manual_seed(0)
    return Aster(aster_config(p["model"], n_channels, p["window"]))


def measure(name: str, p: dict, n_channels: int, device: str, steps: int, warmup: int, peak: float | None) -> dict:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from aster.training import TrainConfig, make_optimizer
    from aster.windows import SlidingWindows
    from pipeline.train import config_kwargs

    model = build(p, n_channels).to(device).train()
    w, b = p["window"], p["train"]["batch_size"]
    series = np.random.default_rng(0).standard_normal((w + 4096, n_channels)).astype(np.float32)
    windows = SlidingWindows(series, w, 1)
    opt, _ = make_optimizer(model, TrainConfig(**config_kwargs(TrainConfig, p["train"], "train", {"threshold"})),
                            steps + warmup + 1)
    rng = np.random.default_rng(1)
    amp = device.startswith("cuda")

    def step() -> None:
        x = torch.from_numpy(windows.batch(rng.integers(0, len(windows), b))).to(device, non_blocking=True)
        with torch.autocast("cuda" if amp else "cpu", dtype=torch.bfloat16, enabled=amp):
            loss = model.training_losses(x)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def sync() -> None:
        if amp:
            torch.cuda.synchronize()

    with FlopCounterMode(display=False) as fc:
        step()
    flops = fc.get_total_flops()
    for _ in range(warmup):
        step()
    if amp:
        torch.cuda.reset_peak_memory_stats()
    sync()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    dt = (time.perf_counter() - t0) / steps
    cfg = model.config
    out = {"config": name, "device": device, "patch": cfg.patch, "backbone": cfg.backbone,
           "backbone_layers": cfg.backbone_layers, "optimizer": p["train"]["optimizer"],
           "trainable_params": model.num_parameters(True),
           "total_params": model.num_parameters(), "batch": b, "window": w, "channels": n_channels,
           "step_seconds": dt, "windows_per_s": b / dt, "flops_per_step": flops,
           "achieved_tflops": flops / dt / 1e12}
    if amp:
        out["peak_memory_gb"] = torch.cuda.max_memory_allocated() / 2**30
        out["mfu"] = out["achieved_tflops"] / peak if peak else None
    print(f"{device:5s} {name:16s} {out['trainable_params']:>10,} trainable / {out['total_params']:>11,}  "
          f"{dt * 1e3:8.1f} ms/step  {out['windows_per_s']:9.1f} windows/s  {flops / 1e9:8.2f} GFLOP/step  "
          f"{out['achieved_tflops'] * 1e3:8.1f} GFLOP/s" + (f"  MFU {out['mfu']:.1%}" if out.get("mfu") else ""))
    return out


def main(argv: list[str] | None = None) -> list[dict]:
    setup_environment()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, default=38, help="input channels (38 = SMD)")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--device", choices=("cpu", "cuda", "all"), default="all",
                        help="all = CPU, and CUDA if present")
    parser.add_argument("--configs", nargs="+", choices=CONFIGS, default=list(CONFIGS))
    parser.add_argument("--peak-tflops", type=float, help="GPU dense bf16 peak for MFU (default: by device name)")
    parser.add_argument("--smoke", action="store_true", help="tiny window/batch/model, backbone none, 2 steps")
    parser.add_argument("--out-dir", type=Path, help="where the JSON goes (default benchmarks/results/speed)")
    args = parser.parse_args(argv)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    base = params("window", "model", "train", "evaluate")  # variants also set evaluate keys
    configs = {k: config_params(k, base) for k in args.configs}
    if args.smoke:
        for name, p in list(configs.items()):
            p["window"], p["train"]["batch_size"] = 20, 8
            p["model"].update(d_model=16, depth=1, backbone="none", patch=min(p["model"].get("patch", 1), 10))
        configs = {k: configs[k] for k in ("default", "old-default")}
        args.steps, args.warmup, args.channels = 2, 1, 4
    p = configs["default"] if "default" in configs else next(iter(configs.values()))
    devices = ["cpu"] if args.device == "cpu" else []
    if args.device in ("cuda", "all") and torch.cuda.is_available():
        devices.append("cuda")
    elif args.device == "cuda":
        raise SystemExit("--device cuda: CUDA is not available on this machine")
    gpu = torch.cuda.get_device_name(0) if "cuda" in devices else None
    peak = args.peak_tflops or (peak_tflops(gpu) if gpu else None)
    if args.device == "all":
        devices.insert(0, "cpu")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads"
          + (f", {gpu} (bf16 peak {peak} TFLOP/s)" if gpu else ", no CUDA")
          + f"; window {p['window']}, batch {p['train']['batch_size']}, {args.channels} channels, "
            f"{args.steps} steps after {args.warmup} warm-up")

    results = [measure(name, cp, args.channels, dev, args.steps, args.warmup, peak)
               for dev in devices for name, cp in configs.items()]
    default = {r["device"]: r["windows_per_s"] for r in results if r["config"] == "default"}
    rows = []
    for r in results:
        ratio = f"{default[r['device']] / r['windows_per_s']:.1f}x" if r["device"] in default else "–"
        rows.append([r["device"], r["config"], str(r["patch"]),
                     f"{r['backbone']}" + (f" ({r['backbone_layers']} layers)" if r["backbone_layers"] else ""),
                     f"{r['trainable_params']:,} / {r['total_params']:,}",
                     f"{r['step_seconds'] * 1e3:.1f}", f"{r['windows_per_s']:.1f}", ratio,
                     f"{r['flops_per_step'] / 1e9:.2f}", f"{r['achieved_tflops'] * 1e3:.1f}",
                     f"{r['mfu']:.1%}" if r.get("mfu") else "–"])
    notes = [f"window {p['window']}, batch {p['train']['batch_size']}, {args.channels} channels, LoRA "
             f"r {p['model']['lora_r']}; {args.steps} timed steps after {args.warmup} warm-up; torch threads "
             f"{torch.get_num_threads()}" + ("; CUDA runs in bf16 autocast" if gpu else ""),
             "FLOPs: torch.utils.flop_counter.FlopCounterMode on one step (forward + backward, matmul-class ops "
             "only)", "default is: windows/s of the default / windows/s of the config, same device, same run"]
    if not gpu:
        notes.append("no CUDA device on this machine: GPU windows/s and MFU not measured")
    write_speed("training", "Training throughput (ASTER, one SGD step as in the training loop)",
                ["device", "config", "patch", "backbone", "trainable / total params", "ms/step", "windows/s",
                 "default is", "GFLOP/step",
                 "GFLOP/s", "MFU"], rows, notes, {"results": results, "peak_tflops": peak}, args.smoke,
                args.out_dir)
    return results


if __name__ == "__main__":
    main()
