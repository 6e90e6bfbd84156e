"""BentoML service: ASTER anomaly scores from an exported ONNX model and its card (export/DS/SID/).

    bentoml serve serving.service:AnomalyScorer --host 127.0.0.1 --port 3000

APIs (POST, JSON):
  /score         {"windows": (B, W, C) already scaled}  -> (B,) window scores in [0, 1]; adaptive batching
  /score_series  {"series": (T, C) raw, unscaled; "stride": 1} -> {"scores": (T,) per step, "anomalies": (T,)
                 score > card threshold, "threshold", ...}; scaled with the card's train statistics
  /metadata      {} -> card, providers in use, model directory and version, limits
Health (always open): /healthz /livez /readyz (ready once the session is loaded and a warm-up scoring passed).

Environment:
  ASTER_MODEL_DIR          export directory (model.onnx + card.json); a symlink (a "promoted" pointer) works.
                           Default: export/synthetic/synthetic/, else the first export/*/*/ with a model.onnx.
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

The serving process is torch-free: onnxruntime scores, aster.scoring (numpy) maps window scores to steps
(/metadata reports `torch_imported`).
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
from aster.export import CARD_FILE, ONNX_FILE, load_card, onnx_session, session_scorer, window_scorer

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
    """ASTER_MODEL_DIR, else export/synthetic/synthetic/, else the first export/*/*/ holding a model.onnx."""
    if os.environ.get("ASTER_MODEL_DIR"):
        return Path(os.environ["ASTER_MODEL_DIR"])
    preferred = root / "export" / "synthetic" / "synthetic"
    if (preferred / ONNX_FILE).exists():
        return preferred
    found = sorted(p.parent for p in root.glob(f"export/*/*/{ONNX_FILE}"))
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


_contract: Contract | None = None  # set by AnomalyScorer.__init__; the request validators below read it


def _validate(kind: str):
    """A pydantic BeforeValidator: runs while the request is parsed, before batching (ValueError -> 400)."""

    def check(value: Any) -> Any:
        if _contract is None:  # no service instance in this process (e.g. schema generation): checked in the API
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
        self.card = load_card(self.model_dir)
        self.device = os.environ.get("ASTER_DEVICE", "auto").lower()
        self.session, self.providers = onnx_session(self.model_dir / ONNX_FILE, self.device)
        self.window_scorer = window_scorer(self.session)  # /score: one score per window
        self.step_scorer = session_scorer(self.session)  # /score_series: per-token scores where the model has them
        self.contract = Contract(window=int(self.card["window"]), channels=tuple(self.card["channels"]),
                                 max_batch=_env_int("ASTER_MAX_BATCH", 1024),
                                 max_series_length=_env_int("ASTER_MAX_SERIES_LENGTH", 100_000),
                                 max_series_windows=_env_int("ASTER_MAX_SERIES_WINDOWS", 4096))
        self.mean = np.asarray(self.card["scaler"]["mean"], dtype=np.float64)
        self.scale = np.asarray(self.card["scaler"]["scale"], dtype=np.float64)
        self.threshold = float(self.card["threshold"]["threshold"])
        limits = {k: v for k, v in asdict(self.contract).items() if k.startswith("max_")}
        self.info = {"model_dir": str(self.model_dir), "configured_dir": str(configured),
                     "model_version": self.card["onnx"]["sha256"][:12], "providers": self.providers,
                     "device": self.device, "limits": limits}
        # warm-up through the whole /score_series path (first ORT run): ready only after it passed
        warm = self._score_series(np.tile(self.mean, (self.contract.window + 1, 1)), stride=1)
        if len(warm["scores"]) != self.contract.window + 1 or not np.isfinite(warm["scores"]).all():
            raise RuntimeError(f"{self.model_dir}: warm-up scoring failed: {warm}")
        self.ready = True
        _contract = self.contract
        log.info("ASTER model %s/%s (%s) loaded from %s; providers in use: %s", self.card["dataset"],
                 self.card["series"], self.info["model_version"], self.model_dir, self.providers)

    def __is_ready__(self) -> bool:
        return getattr(self, "ready", False)

    def _checked(self, check, *args):
        try:
            return check(*args)
        except ValueError as e:
            raise InvalidArgument(str(e)) from None

    @bentoml.api(batchable=True, batch_dim=0, max_batch_size=256, max_latency_ms=MAX_LATENCY_MS)
    def score(self, windows: Windows) -> np.ndarray:
        """(B, W, C) scaled windows -> (B,) anomaly scores in [0, 1] (higher = more anomalous)."""
        # Each HTTP request was checked (with its size limit) by the validator before batching; this re-check
        # covers direct calls, and a merged batch may hold more than max_batch windows, so no limit here.
        return self.window_scorer(self._checked(self.contract.windows, windows, False))

    @bentoml.api
    def score_series(self, series: Series, stride: int = 1) -> dict:
        """Raw (T, C) series -> per-step scores, anomaly flags (score > card threshold) and the threshold."""
        series = self._checked(self.contract.series, series)
        stride = self._checked(self.contract.stride, stride, len(series))
        return self._score_series(series, stride)

    def _score_series(self, series: np.ndarray, stride: int) -> dict:
        from aster.scoring import step_scores  # numpy only

        scaled = ((series - self.mean) / self.scale).astype(np.float32)
        if not np.isfinite(scaled).all():
            raise InvalidArgument("series: values overflow float32 after scaling; expected values in the range of "
                                  "the training data")
        scores = step_scores(self.step_scorer, scaled, self.contract.window, stride, SCORE_BATCH)
        anomalies = scores > self.threshold
        return {"scores": scores.tolist(), "anomalies": anomalies.tolist(), "threshold": self.threshold,
                "n_anomalies": int(anomalies.sum()), "window": self.contract.window, "stride": stride}

    @bentoml.api
    def metadata(self) -> dict:
        """The model card plus what this process actually runs: providers in use, model directory and version."""
        return {**self.info, "torch_imported": "torch" in sys.modules, "card": self.card}


AnomalyScorer.add_asgi_middleware(RequestGuard)
