"""A trained model on disk: `config.json` + `model.safetensors` (+ `threshold.json`), no pickles."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np

from aster.io import atomic_path, write_json

THRESHOLD = "threshold.json"


def save_model(model, directory: str | Path) -> None:
    from safetensors.torch import save_model as save_tensors

    directory = Path(directory)
    with atomic_path(directory / "model.safetensors", ".safetensors") as tmp:
        save_tensors(model, str(tmp))
    write_json(directory / "config.json", asdict(model.config))


def load_model(directory: str | Path):
    """Rebuild the model from its config (backbone structure included) and load the trained weights."""
    from safetensors.torch import load_model as load_tensors

    from aster.ensemble import build_model
    from aster.model import AsterConfig

    directory = Path(directory)
    model = build_model(AsterConfig(**json.loads((directory / "config.json").read_text())))
    load_tensors(model, str(directory / "model.safetensors"), device="cpu")
    return model.eval()


def label_free_threshold(validation_scores: np.ndarray, contamination: float) -> dict:
    """Production threshold from normal-assumed validation scores only: their (1 - contamination) quantile."""
    if not 0 < contamination < 1:
        raise ValueError(f"contamination must be in (0, 1), got {contamination}")
    scores = np.asarray(validation_scores, dtype=np.float64)
    scores = scores[np.isfinite(scores)]
    return {"threshold": float(np.quantile(scores, 1 - contamination)), "contamination": contamination,
            "rule": "score > threshold is an anomaly; threshold = (1 - contamination) quantile of validation scores",
            "n_validation_scores": int(scores.size)}


def save_threshold(directory: str | Path, threshold: dict) -> None:
    write_json(Path(directory) / THRESHOLD, threshold)


def load_threshold(directory: str | Path) -> dict:
    return json.loads((Path(directory) / THRESHOLD).read_text())
