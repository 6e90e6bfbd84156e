"""What every stage script shares: params, paths, logging and the one-line error exit."""

from __future__ import annotations

import logging
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import yaml

ROOT = Path(__file__).resolve().parents[1]


def params(*blocks: str, path: Path | None = None) -> dict:
    """The named top-level blocks of params.yaml (a stage reads only its own)."""
    with open(path or ROOT / "params.yaml") as f:
        all_params = yaml.safe_load(f)
    missing = [b for b in blocks if b not in all_params]
    if missing:
        raise SystemExit(f"params.yaml: missing block(s) {missing}")
    return {b: all_params[b] for b in blocks}


def dotted_keys(value, prefix: str = "") -> dict:
    """{"a": {"b": 1}} -> {"a.b": 1}: nested params as one flat dict (an empty dict stays a value)."""
    if not (isinstance(value, dict) and value):
        return {prefix: value}
    out: dict = {}
    for k, v in value.items():
        out.update(dotted_keys(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def dataset_spec(name: str) -> dict:
    spec = params("datasets")["datasets"].get(name)
    if spec is None:
        raise SystemExit(f"params.yaml: dataset '{name}' is not defined under 'datasets:'")
    return spec


class Paths:
    """Where each stage of one dataset reads and writes (mirrors dvc.yaml)."""

    def __init__(self, dataset: str, root: Path = ROOT):
        self.dataset, self.root = dataset, root
        self.ingested = root / "data" / "ingested" / dataset
        self.prepared = root / "data" / "prepared" / dataset
        self.validation = root / "reports" / dataset / "validation.json"
        self.train_report = root / "reports" / dataset / "train.json"
        self.models = root / "models" / dataset
        self.checkpoints = root / "checkpoints" / dataset
        self.live_train = root / "dvclive" / dataset / "train"
        self.live_eval = root / "dvclive" / dataset / "eval"
        self.metrics = root / "metrics" / f"{dataset}.json"
        self.plots = root / "plots" / dataset
        self.export = root / "export" / dataset


def stage_dataset(description: str | None) -> str:
    """Parse a stage script's command line (one argument: the dataset key) and set up logging."""
    import argparse

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("dataset", help="a key of `datasets:` in params.yaml")
    dataset = parser.parse_args().dataset
    setup_logging()
    return dataset


def setup_logging() -> None:
    """Logging and the process environment (aster.env) of an entry point."""
    from aster.env import setup_environment

    setup_environment()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    for noisy in ("great_expectations", "httpx", "urllib3", "filelock"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@contextmanager
def one_line_errors() -> Iterator[None]:
    """Turn a data/config error into a one-line message and exit code 1 (no traceback wall)."""
    from aster.data import DataError

    try:
        yield
    except (DataError, FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(1) from None
