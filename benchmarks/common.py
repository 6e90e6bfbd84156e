"""What the benchmark scripts share: the machine description and the speed-result JSON format.

A speed result (benchmarks/results/speed/<name>.json) is a table report.py can print without knowing the script:
{"name", "title", "command", "smoke", "headers": [...], "rows": [[...], ...], "notes": [...], "machine", "data"},
where `data` holds the raw figures for anyone who wants more than the table.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPEED_DIR = ROOT / "benchmarks" / "results" / "speed"


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown"


def machine_info(with_torch: bool = True) -> dict:
    """Date, CPU, usable cores, torch threads and CUDA device (with_torch), versions: enough to judge a timing."""
    import numpy

    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    info = {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "host_cpus": os.cpu_count(),
            "usable_cpus": usable, "cpu_model": cpu_model(), "platform": platform.platform(),
            "python": platform.python_version(), "versions": {"numpy": numpy.__version__},
            "load_average_1m": round(os.getloadavg()[0], 2)}  # the CPU may be shared: judge timings by it
    for mod in ("sklearn", "pyod", "torch") if with_torch else ("sklearn", "pyod"):
        try:
            info["versions"][mod] = __import__(mod).__version__
        except ImportError:
            pass
    if "torch" in info["versions"]:
        import torch

        info["torch_threads"] = torch.get_num_threads()
        info["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    try:
        info["git_commit"] = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                                            capture_output=True, text=True, timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        info["git_commit"] = None
    return info


def write_speed(name: str, title: str, headers: list[str], rows: list[list], notes: list[str], data: dict,
                smoke: bool, out_dir: Path | None = None, with_torch: bool = True) -> Path:
    """Write benchmarks/results/speed/<name>.json (or <name>.smoke.json for --smoke runs, which report.py skips)."""
    from aster.io import write_json

    out_dir = Path(out_dir or SPEED_DIR)
    path = out_dir / f"{name}{'.smoke' if smoke else ''}.json"
    write_json(path, {"name": name, "title": title, "command": " ".join(["python", *sys.argv]), "smoke": smoke,
                      "headers": headers, "rows": rows, "notes": notes,
                      "machine": machine_info(with_torch), "data": data})
    return path
