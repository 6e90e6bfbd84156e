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
  ASTER_MAX_BODY_BYTES     request bodies above this get 413 before parsing (default 64 MiB)
  ASTER_MAX_LATENCY_MS     adaptive-batching latency budget, read at import (default 10000: CPU needs seconds,
                           a small budget sheds load as 503s; clients retry 503, serving/client.py)

Input contract, enforced here (BentoML's Shape validator reshapes silently, so it is not used): wrong rank, window
length or channel count, non-numeric, NaN/inf, empty input, a series shorter than a window, and payloads over the
limits get HTTP 400 with a message saying what was expected. Nothing is ever reshaped. For /score the check runs
as a pydantic validator, i.e. before adaptive batching, so one bad request cannot fail the batch it would join.

The serving process is torch-free: it scores through aster.inference (onnxruntime, numpy), the inference path every
consumer of an export shares (/metadata reports `torch_imported`).
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Any

import bentoml
import numpy as np
from bentoml.exceptions import InvalidArgument
from pydantic import BeforeValidator

from aster.env import setup_environment
from aster.inference import CARD_FILE, ONNX_FILE, ExportedModel, export_dirs, load_exports

setup_environment()  # the service module is an entry point (bentoml imports it)
log = logging.getLogger("bentoml.aster")

ROOT = Path(__file__).resolve().parents[1]
HEALTH_PATHS = frozenset({"/healthz", "/livez", "/readyz"})
SCORE_BATCH = 256  # windows per onnxruntime call inside /score_series


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    try:
        value = int(raw) if raw else default
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from None
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return value


MAX_LATENCY_MS = _env_int("ASTER_MAX_LATENCY_MS", 10_000)


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


# ----------------------------------------------------------------------------- input contract

@dataclass(frozen=True)
class Contract:
    """What a request may contain, from the card and the limits; every check raises ValueError saying what was
    expected (the API turns it into HTTP 400)."""

    window: int
    channels: tuple[str, ...]
    max_batch: int
    max_series_length: int
    max_series_windows: int

    @staticmethod
    def numbers(value: Any, name: str, expected: str) -> np.ndarray:
        """A rectangular, non-empty, all-finite array of int/float values as float64 (never reshaped)."""
        try:
            a = np.asarray(value)
        except (ValueError, TypeError) as e:
            raise ValueError(f"{name}: expected {expected}, got a ragged or non-array value ({e})") from None
        if a.size == 0:
            raise ValueError(f"{name}: empty input (shape {a.shape}); expected {expected}")
        if a.dtype.kind not in "iuf":
            raise ValueError(f"{name}: expected numbers ({expected}), got {a.dtype.name} values")
        a = a.astype(np.float64, copy=False)
        if not np.isfinite(a).all():
            raise ValueError(f"{name}: {int((~np.isfinite(a)).sum())} NaN/inf values; expected finite numbers")
        return a

    @staticmethod
    def for_model(model: ExportedModel) -> "Contract":
        return Contract(window=model.window, channels=model.channels, max_batch=_env_int("ASTER_MAX_BATCH", 1024),
                        max_series_length=_env_int("ASTER_MAX_SERIES_LENGTH", 100_000),
                        max_series_windows=_env_int("ASTER_MAX_SERIES_WINDOWS", 4096))

    def windows(self, value: Any, limit: bool = True) -> np.ndarray:
        """(B, W, C) float32, 1 <= B (<= max_batch if `limit`), already scaled."""
        w, c = self.window, len(self.channels)
        expected = f"(batch, {w}, {c}) windows of scaled values, batch <= {self.max_batch}"
        a = self.numbers(value, "windows", expected)
        if a.ndim != 3 or a.shape[1:] != (w, c):
            raise ValueError(f"windows: expected shape {expected}, got {a.shape}")
        if limit and a.shape[0] > self.max_batch:
            raise ValueError(f"windows: {a.shape[0]} windows in one request, the limit is {self.max_batch} "
                             f"(ASTER_MAX_BATCH); split the request")
        out = a.astype(np.float32)
        if not np.isfinite(out).all():
            raise ValueError("windows: values overflow float32; expected scaled values")
        return out

    def series(self, value: Any) -> np.ndarray:
        """(T, C) float64 raw series, window <= T <= max_series_length."""
        w, c = self.window, len(self.channels)
        expected = f"a (T, {c}) series (rows = time steps, columns = {list(self.channels)}), {w} <= T <= " \
                   f"{self.max_series_length}"
        a = self.numbers(value, "series", expected)
        if a.ndim != 2 or a.shape[1] != c:
            raise ValueError(f"series: expected {expected}, got shape {a.shape}")
        if a.shape[0] < w:
            raise ValueError(f"series: {a.shape[0]} rows is shorter than one window of {w}; expected {expected}")
        if a.shape[0] > self.max_series_length:
            raise ValueError(f"series: {a.shape[0]} rows, the limit is {self.max_series_length} "
                             f"(ASTER_MAX_SERIES_LENGTH); split the series (keep {w - 1} rows of overlap)")
        return a

    def stride(self, stride: Any, T: int) -> int:
        if isinstance(stride, bool) or not isinstance(stride, (int, np.integer)) or not 1 <= stride <= self.window:
            raise ValueError(f"stride: expected an integer in [1, {self.window}], got {stride!r}")
        n = (T - self.window) // stride + 1 + ((T - self.window) % stride != 0)  # aster.scoring.window_starts
        if n > self.max_series_windows:
            raise ValueError(f"series: T={T} with stride {stride} gives {n} windows, the limit is "
                             f"{self.max_series_windows} (ASTER_MAX_SERIES_WINDOWS); use a stride of at least "
                             f"{-(-(T - self.window) // max(1, self.max_series_windows - 1))} or a shorter series")
        return int(stride)


_contract: Contract | None = None  # set by AnomalyScorer.__init__ when it serves one series; the validators read it


def _validate(kind: str):
    """A pydantic BeforeValidator: runs while the request is parsed, before batching (ValueError -> 400)."""

    def check(value: Any) -> Any:
        if _contract is None:  # no instance (schema generation) or several series: checked in the API
            return value
        return getattr(_contract, kind)(value)

    return BeforeValidator(check)


Windows = Annotated[np.ndarray, _validate("windows")]
Series = Annotated[np.ndarray, _validate("series")]


# ----------------------------------------------------------------------------- guard middleware

class RequestGuard:
    """ASGI middleware: bearer-token auth (ASTER_API_TOKEN; health probes stay open) and a body-size cap (413)
    checked on Content-Length before anything parses the body."""

    def __init__(self, app) -> None:
        self.app = app
        self.token = os.environ.get("ASTER_API_TOKEN") or None
        self.max_body = _env_int("ASTER_MAX_BODY_BYTES", 64 << 20)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["path"] in HEALTH_PATHS:
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        if self.token is not None:
            given = headers.get(b"authorization", b"").decode("latin-1")
            scheme, _, credential = given.partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(credential.strip().encode(), self.token.encode()):
                return await _reply(send, 401, "missing or invalid bearer token (Authorization: Bearer <token>)",
                                    [(b"www-authenticate", b"Bearer")])
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body:
            return await _reply(send, 413, f"request body of {int(length)} bytes is over the limit of "
                                           f"{self.max_body} bytes (ASTER_MAX_BODY_BYTES)")
        return await self.app(scope, receive, send)


async def _reply(send, status: int, message: str, extra: list | None = None) -> None:
    body = json.dumps({"error": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *(extra or [])]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


# ----------------------------------------------------------------------------- service

# threads=2: a long /score_series call runs beside the /score batches instead of stalling them (adaptive batching
# itself runs one batch at a time); loopback by default, pass --host 0.0.0.0 to expose.
@bentoml.service(resources={"cpu": "2"}, traffic={"timeout": 120}, workers=1, threads=2,
                 http={"host": "127.0.0.1", "port": 3000})
class AnomalyScorer:
    def __init__(self) -> None:
        global _contract
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
        self.info = {"model_dir": str(self.model_dir), "configured_dir": str(configured),
                     "providers": first.providers, "device": self.device, "limits": limits}
        self.ready = True
        _contract = next(iter(self.contracts.values())) if len(self.models) == 1 else None
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

    @bentoml.api(batchable=True, batch_dim=0, max_batch_size=256, max_latency_ms=MAX_LATENCY_MS)
    def score(self, windows: Windows) -> np.ndarray:
        """(B, W, C) scaled windows -> (B,) anomaly scores in [0, 1] (higher = more anomalous); one series only."""
        if len(self.models) > 1:
            raise InvalidArgument(f"/score serves single-series services; this one serves {len(self.models)} "
                                  f"series: use /score_windows with a series_id")
        model, contract = self._series(None)
        # Each HTTP request was checked (with its size limit) by the validator before batching; this re-check
        # covers direct calls, and a merged batch may hold more than max_batch windows, so no limit here.
        return self._checked(model.score_windows, self._checked(contract.windows, windows, False))

    @bentoml.api
    def score_windows(self, windows: np.ndarray, series_id: str | None = None) -> np.ndarray:
        """(B, W, C) scaled windows of series `series_id` -> (B,) anomaly scores in [0, 1]."""
        model, contract = self._series(series_id)
        return self._checked(model.score_windows, self._checked(contract.windows, windows))

    @bentoml.api
    def score_series(self, series: Series, stride: int = 1, series_id: str | None = None) -> dict:
        """Raw (T, C) series -> per-step scores, anomaly flags (score > card threshold) and the threshold."""
        model, contract = self._series(series_id)
        series = self._checked(contract.series, series)
        stride = self._checked(contract.stride, stride, len(series))
        scores = self._checked(model.score_series, series, stride, SCORE_BATCH)
        anomalies = model.flags(scores)
        return {"series_id": model.series_id, "scores": scores.tolist(), "anomalies": anomalies.tolist(),
                "threshold": model.threshold, "n_anomalies": int(anomalies.sum()), "window": model.window,
                "stride": stride}

    @bentoml.api
    def metadata(self) -> dict:
        """What this process serves: per series its card summary and version, providers in use, limits."""
        series = {sid: {"dataset": m.card["dataset"], "window": m.window, "channels": list(m.channels),
                        "threshold": m.threshold, "model_version": m.version} for sid, m in self.models.items()}
        first = next(iter(self.models.values()))
        single = {"card": first.card, "model_version": first.version} if len(self.models) == 1 else {}
        return {**self.info, "series": series, **single, "torch_imported": "torch" in sys.modules}


AnomalyScorer.add_asgi_middleware(RequestGuard)
