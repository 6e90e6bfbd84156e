"""BentoML service: ASTER anomaly scores from the exported ONNX models of a dataset (export/DS/SID/), by series.

    bentoml serve serving.service:AnomalyScorer --host 127.0.0.1 --port 3000

APIs (POST, JSON):
  /score         {"windows": (B, W, C) already scaled}  -> (B,) window scores in [0, 1]; adaptive batching.
                 Single-series services only (BentoML batches one argument, so a batched call cannot carry a series)
  /score_windows {"windows": (B, W, C) already scaled, "series_id": SID} -> (B,) window scores (no batching)
  /score_series  {"series": (T, C) raw, unscaled; "stride": 1; "series_id": SID} -> {"scores": (T,) per step,
                 "anomalies": (T,) score > card threshold, "threshold", ...}; scaled with the card's train statistics
  /metadata      {} -> the served series (card summary, version), providers in use, limits; "card" when one series
`series_id` may be left out when the service serves one series; with several it is required (400 naming them).
Health (always open): /healthz /livez /readyz (ready once the session is loaded and a warm-up scoring passed).

Environment:
  ASTER_MODEL_DIR          a dataset's export (export/DS/: every series in it is served, by id), one series'
                           export (model.onnx + card.json), or a promoted registry version (registry/DS/current).
                           Default: export/synthetic/, else the first export/*/ holding a model.
  ASTER_DEVICE             auto (CUDA only if it really loads) | cpu | cuda
  ASTER_API_TOKEN          if set, every route except the health probes needs `Authorization: Bearer <token>`
  ASTER_MAX_BATCH          windows per /score request (default 1024)
  ASTER_MAX_SERIES_LENGTH  rows per /score_series request (default 100000)
  ASTER_MAX_SERIES_WINDOWS windows one /score_series request may score, after its stride (default 4096: about
                           20-40 s for the default MiniLM model on 2 CPU cores; the request timeout is 120 s)
  ASTER_MAX_BODY_BYTES     request bodies above this get 413, counted on the bytes received (default 64 MiB)
  ASTER_MAX_ABS_VALUE      scaled values beyond +-this get 400 (default 1000000)
  ASTER_MAX_LATENCY_MS     adaptive-batching latency budget, read at import (default 10000: CPU needs seconds,
                           a small budget sheds load as 503 with Retry-After; serving/client.py honours it)

Input contract (serving/contract.py; BentoML's Shape validator reshapes silently, so it is not used): wrong rank,
window length or channel count, non-numeric values or booleans among numbers, NaN/inf, empty input, a series
shorter than a window, scaled values out of range, a stride that is not a JSON integer, unknown fields and payloads
over the limits get HTTP 400 with a message saying what was expected. Nothing is ever reshaped or coerced. For
/score the check runs as a pydantic validator, i.e. before adaptive batching, so one bad request cannot fail the
batch it would join. Around it (serving/guard.py): 401 without the token, 404 for unknown paths (which never become
metric series), 415 for non-JSON bodies, 413 for oversized bodies; a rejected request is logged as one WARNING line.

The serving process is torch-free: it scores through aster.inference (onnxruntime, numpy), the inference path every
consumer of an export shares (/metadata reports `torch_imported`).
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import bentoml
import numpy as np
from bentoml.exceptions import InvalidArgument

from aster.env import setup_environment
from aster.inference import CARD_FILE, ONNX_FILE, ExportedModel, export_dirs, load_exports
from serving import contract
from serving.contract import Contract, NoInput, ScoreInput, SeriesInput, WindowsInput, env_int
from serving.guard import RequestGuard, bounded_metric_labels, known_paths, quiet_rejections

setup_environment()  # the service module is an entry point (bentoml imports it)
log = logging.getLogger("bentoml.aster")

ROOT = Path(__file__).resolve().parents[1]
SCORE_BATCH = 256  # windows per onnxruntime call inside /score_series
MAX_LATENCY_MS = env_int("ASTER_MAX_LATENCY_MS", 10_000)


def default_model_dir(root: Path = ROOT) -> Path:
    """ASTER_MODEL_DIR, else export/synthetic/, else the first export/*/ holding a servable model."""
    if os.environ.get("ASTER_MODEL_DIR"):
        return Path(os.environ["ASTER_MODEL_DIR"])
    preferred = root / "export" / "synthetic"
    if export_dirs(preferred):
        return preferred
    found = sorted(p for p in root.glob("export/*/") if export_dirs(p))
    if not found:
        raise FileNotFoundError(f"no exported model under {root / 'export'}: run `dvc repro` (export stage) or set "
                                f"ASTER_MODEL_DIR to a directory with {ONNX_FILE} and {CARD_FILE}")
    return found[0]


# ----------------------------------------------------------------------------- service

# threads=2: a long /score_series call runs beside the /score batches instead of stalling them (adaptive batching
# itself runs one batch at a time); loopback by default, pass --host 0.0.0.0 to expose.
@bentoml.service(resources={"cpu": "2"}, traffic={"timeout": 120}, workers=1, threads=2,
                 http={"host": "127.0.0.1", "port": 3000})
class AnomalyScorer:
    def __init__(self) -> None:
        configured = default_model_dir()
        self.model_dir = configured.resolve()  # a "promoted" symlink is followed once, at load
        self.device = os.environ.get("ASTER_DEVICE", "auto").lower()
        self.models = load_exports(self.model_dir, self.device)
        self.contracts = {sid: Contract.for_model(m) for sid, m in self.models.items()}
        for sid, model in self.models.items():  # warm-up through the whole /score_series path (first ORT run)
            warm = model.score_series(np.tile(model.mean, (model.window + 1, 1)), stride=1)
            if len(warm) != model.window + 1:
                raise RuntimeError(f"{model.directory}: warm-up scoring gave {len(warm)} scores")
        first = next(iter(self.models.values()))
        limits = {k: v for k, v in asdict(next(iter(self.contracts.values()))).items() if k.startswith("max_")}
        # names only: /metadata does not reveal where the server's files are
        self.info = {"model_dir": self.model_dir.name, "configured_dir": configured.name,
                     "providers": first.providers, "device": self.device, "limits": limits}
        self.ready = True
        contract.activate(next(iter(self.contracts.values())) if len(self.models) == 1 else None)
        log.info("ASTER: %d series model(s) of %s loaded from %s; providers in use: %s", len(self.models),
                 first.card["dataset"], self.model_dir, first.providers)

    def __is_ready__(self) -> bool:
        return getattr(self, "ready", False)

    def _checked(self, check, *args):
        try:
            return check(*args)
        except ValueError as e:
            raise InvalidArgument(str(e)) from None

    def _series(self, series_id: Any) -> tuple[ExportedModel, Contract]:
        """The model and contract of `series_id`; may be None (left out) when one series is served."""
        if series_id is None and len(self.models) == 1:
            series_id = next(iter(self.models))
        if not isinstance(series_id, str) or series_id not in self.models:
            known = sorted(self.models)
            raise InvalidArgument(f"series_id: expected one of {known[:20]}{' ...' if len(known) > 20 else ''} "
                                  f"({len(known)} series served), got {series_id!r}")
        return self.models[series_id], self.contracts[series_id]

    @bentoml.api(batchable=True, batch_dim=0, max_batch_size=256, max_latency_ms=MAX_LATENCY_MS,
                 input_spec=ScoreInput)
    def score(self, windows: np.ndarray) -> np.ndarray:
        """(B, W, C) scaled windows -> (B,) anomaly scores in [0, 1] (higher = more anomalous); one series only."""
        if len(self.models) > 1:
            raise InvalidArgument(f"/score serves single-series services; this one serves {len(self.models)} "
                                  f"series: use /score_windows with a series_id")
        model, rules = self._series(None)
        # Each HTTP request was checked (with its size limit) by the validator before batching; this re-check
        # covers direct calls, and a merged batch may hold more than max_batch windows, so no limit here.
        return self._checked(model.score_windows, self._checked(rules.windows, windows, False))

    @bentoml.api(input_spec=WindowsInput)
    def score_windows(self, windows: np.ndarray, series_id: str | None = None) -> np.ndarray:
        """(B, W, C) scaled windows of series `series_id` -> (B,) anomaly scores in [0, 1]."""
        model, rules = self._series(series_id)
        return self._checked(model.score_windows, self._checked(rules.windows, windows))

    @bentoml.api(input_spec=SeriesInput)
    def score_series(self, series: np.ndarray, stride: int = 1, series_id: str | None = None) -> dict:
        """Raw (T, C) series -> per-step scores, anomaly flags (score > card threshold) and the threshold."""
        model, rules = self._series(series_id)
        series = self._checked(rules.series, series)
        stride = self._checked(rules.stride, stride, len(series))
        scores = self._checked(model.score_series, series, stride, SCORE_BATCH, False, rules.max_abs)
        anomalies = model.flags(scores)
        return {"series_id": model.series_id, "scores": scores.tolist(), "anomalies": anomalies.tolist(),
                "threshold": model.threshold, "n_anomalies": int(anomalies.sum()), "window": model.window,
                "stride": stride}

    @bentoml.api(input_spec=NoInput)
    def metadata(self) -> dict:
        """What this process serves: per series its card summary and version, providers in use, limits."""
        series = {sid: {"dataset": m.card["dataset"], "window": m.window, "channels": list(m.channels),
                        "threshold": m.threshold, "model_version": m.version} for sid, m in self.models.items()}
        first = next(iter(self.models.values()))
        single = {"card": first.card, "model_version": first.version} if len(self.models) == 1 else {}
        return {**self.info, "series": series, **single, "torch_imported": "torch" in sys.modules}


ROUTES = frozenset(f"/{name}" for name in AnomalyScorer.apis)
AnomalyScorer.add_asgi_middleware(RequestGuard, routes=ROUTES)
bounded_metric_labels(known_paths(ROUTES))
quiet_rejections()
