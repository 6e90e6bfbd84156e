"""A small HTTP client for the AnomalyScorer service that retries 503 (load shed by adaptive batching).

    with ScorerClient("http://127.0.0.1:3000", token=None) as c:
        c.score(windows)            # (B, W, C) scaled -> (B,) np.ndarray
        c.score_series(series)      # (T, C) raw -> {"scores", "anomalies", "threshold", ...}
        c.score_series(series, series_id="machine-1-1")   # a service serving several series
        c.score_windows(windows, series_id="machine-1-1")

    python -m serving.client series.csv [--url URL] [--token T] [--stride N] [--series-id SID]

503 is retried with capped exponential backoff and full jitter (honouring Retry-After); connection errors are
retried the same way (a server still starting). Any other non-2xx raises ScoringError with the server's message.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import httpx
import numpy as np

RETRY_STATUS = frozenset({503})


class ScoringError(RuntimeError):
    def __init__(self, status: int, message: str):
        super().__init__(f"HTTP {status}: {message}")
        self.status, self.message = status, message


def backoff_delay(attempt: int, base: float, cap: float = 5.0, response: httpx.Response | None = None) -> float:
    """Full-jitter exponential backoff; a numeric Retry-After header is the minimum (plus the jitter, so that shed
    clients do not all come back at the same instant)."""
    after = response.headers.get("retry-after") if response is not None else None
    floor = min(float(after), cap) if after is not None and after.replace(".", "", 1).isdigit() else 0.0
    return floor + random.uniform(0, min(cap, base * 2 ** attempt))


def _result(r: httpx.Response):
    if r.is_success:
        return r.json()
    try:
        body = r.json()
        if isinstance(body, list) and body:  # BentoML wraps InvalidArgument messages in a list
            body = body[0]
        detail = body.get("detail")
        message = "; ".join(d.get("msg", str(d)) for d in detail) if isinstance(detail, list) else body["error"]
    except (ValueError, KeyError, TypeError, AttributeError):
        message = r.text
    raise ScoringError(r.status_code, message)


def _headers(token: str | None) -> dict:
    return {"Authorization": f"Bearer {token}"} if token else {}


class ScorerClient:
    def __init__(self, url: str = "http://127.0.0.1:3000", token: str | None = None, timeout: float = 60.0,
                 retries: int = 6, backoff: float = 0.1):
        self.http = httpx.Client(base_url=url, headers=_headers(token), timeout=timeout)
        self.retries, self.backoff, self.retried, self.shed = retries, backoff, 0, 0

    def post(self, route: str, payload: dict):
        for attempt in range(self.retries + 1):
            try:
                r = self.http.post(route, json=payload)
            except httpx.TransportError:
                if attempt == self.retries:
                    raise
                r = None
            if r is not None and (r.status_code not in RETRY_STATUS or attempt == self.retries):
                return _result(r)
            self.retried += 1
            self.shed += r is not None and r.status_code == 503
            time.sleep(backoff_delay(attempt, self.backoff, response=r))

    def score(self, windows) -> np.ndarray:
        return np.asarray(self.post("/score", {"windows": np.asarray(windows).tolist()}), dtype=np.float32)

    def score_windows(self, windows, series_id: str | None = None) -> np.ndarray:
        payload = {"windows": np.asarray(windows).tolist(), "series_id": series_id}
        return np.asarray(self.post("/score_windows", payload), dtype=np.float32)

    def score_series(self, series, stride: int = 1, series_id: str | None = None) -> dict:
        return self.post("/score_series", {"series": np.asarray(series).tolist(), "stride": stride,
                                           "series_id": series_id})

    def metadata(self) -> dict:
        return self.post("/metadata", {})

    def wait_ready(self, timeout: float = 60.0) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                if self.http.get("/readyz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"{self.http.base_url} not ready after {timeout} s")

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> "ScorerClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class AsyncScorerClient:
    """The same retry policy for asyncio callers (the load benchmark)."""

    def __init__(self, url: str = "http://127.0.0.1:3000", token: str | None = None, timeout: float = 60.0,
                 retries: int = 6, backoff: float = 0.1, max_connections: int = 256):
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        self.http = httpx.AsyncClient(base_url=url, headers=_headers(token), timeout=timeout, limits=limits)
        self.retries, self.backoff, self.retried, self.shed = retries, backoff, 0, 0

    async def post(self, route: str, payload: dict):
        for attempt in range(self.retries + 1):
            try:
                r = await self.http.post(route, json=payload)
            except httpx.TransportError:
                if attempt == self.retries:
                    raise
                r = None
            if r is not None and (r.status_code not in RETRY_STATUS or attempt == self.retries):
                return _result(r)
            self.retried += 1
            self.shed += r is not None and r.status_code == 503
            await asyncio.sleep(backoff_delay(attempt, self.backoff, response=r))

    async def score(self, windows) -> np.ndarray:
        return np.asarray(await self.post("/score", {"windows": np.asarray(windows).tolist()}), dtype=np.float32)

    async def aclose(self) -> None:
        await self.http.aclose()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def local_server(model_dir: str | Path, port: int | None = None, env: dict | None = None,
                 log_path: str | Path | None = None, ready_timeout: float = 60.0) -> Iterator[str]:
    """Run `bentoml serve serving.service:AnomalyScorer` on loopback for `model_dir`; yield its URL once /readyz
    answers 200; stop it (its own process group) on exit. For tests and benchmarks."""
    port = port or free_port()
    env = {**os.environ, "BENTOML_DO_NOT_TRACK": "True", **(env or {}), "ASTER_MODEL_DIR": str(model_dir)}
    cmd = [sys.executable, "-m", "bentoml", "serve", "serving.service:AnomalyScorer", "--host", "127.0.0.1",
           "--port", str(port)]
    root = Path(__file__).resolve().parents[1]
    log = open(log_path, "w") if log_path else subprocess.DEVNULL
    proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + ready_timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"bentoml serve exited with {proc.returncode} (log: {log_path})")
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"bentoml serve not ready after {ready_timeout} s (log: {log_path})")
            time.sleep(0.2)
        yield url
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)  # the server's own group (start_new_session), nothing else
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if log is not subprocess.DEVNULL:
            log.close()


def main() -> None:
    parser = argparse.ArgumentParser(description="Score a CSV series (header = channel names) with the service.")
    parser.add_argument("csv")
    parser.add_argument("--url", default="http://127.0.0.1:3000")
    parser.add_argument("--token", default=None)
    parser.add_argument("--stride", type=int, default=1)
    parser.add_argument("--series-id", default=None, help="needed when the service serves several series")
    args = parser.parse_args()
    with ScorerClient(args.url, args.token) as c:
        served = c.metadata()["series"]
        if args.series_id is None and len(served) > 1:
            raise SystemExit(f"the service serves {len(served)} series: pass --series-id (one of {sorted(served)})")
        sid = args.series_id or next(iter(served))
        if sid not in served:
            raise SystemExit(f"--series-id {sid!r}: the service serves {sorted(served)}")
        channels = served[sid]["channels"]
        with open(args.csv) as f:
            header = f.readline().strip().split(",")
        if header != channels:
            raise SystemExit(f"{args.csv}: columns {header} differ from the model's channels {channels}")
        series = np.loadtxt(args.csv, delimiter=",", skiprows=1, ndmin=2)
        out = c.score_series(series, args.stride, sid)
    steps = np.flatnonzero(out["anomalies"]).tolist()
    print(json.dumps({"n_steps": len(out["scores"]), "threshold": out["threshold"], "anomalous_steps": steps}))


if __name__ == "__main__":
    main()
