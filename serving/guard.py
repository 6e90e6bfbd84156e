"""What stands between the network and the service: an ASGI middleware and two adjustments of BentoML's defaults.

RequestGuard (innermost user middleware) answers, before any parsing:
  401  a missing or wrong bearer token (ASTER_API_TOKEN set); every path but the health probes needs it
  404  a path the service does not have
  415  a POST body that is not JSON (e.g. multipart, which BentoML would try to parse)
  413  a body over ASTER_MAX_BODY_BYTES, counted on the bytes actually received (chunked bodies too)
and turns BentoML's load-shedding 503 ("An unexpected error...") into a clear message with `Retry-After`.

`quiet_rejections()` makes a rejected request (4xx, and the 503 of load shedding) one WARNING line without payload
or traceback; tracebacks stay for real server errors. `bounded_metric_labels()` keeps /metrics from growing with
every unknown URL: BentoML's traffic metrics label series by raw path, and its middleware runs before ours.
"""

from __future__ import annotations

import functools
import hmac
import json
import logging
import os
from pathlib import Path

from serving.contract import env_int

HEALTH_PATHS = frozenset({"/healthz", "/livez", "/readyz"})
DOC_PATHS = frozenset({"/", "/docs.json", "/schema.json", "/metrics"})
UNKNOWN = "/unknown-path"
RETRY_AFTER_S = 1


async def reply(send, status: int, message: str, extra: list | None = None) -> None:
    body = json.dumps({"error": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *(extra or [])]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@functools.cache
def _static_paths() -> frozenset[str]:
    """The files BentoML's /docs page loads (static_content/...)."""
    import _bentoml_impl.server as server

    root = Path(server.__file__).parent / "static_content"
    return frozenset(f"/static_content/{p.relative_to(root).as_posix()}" for p in root.rglob("*") if p.is_file())


def known_paths(routes: frozenset[str]) -> frozenset[str]:
    """Every path the service answers: health probes, docs and metrics, the API routes, the docs page's files."""
    return HEALTH_PATHS | DOC_PATHS | routes | _static_paths()


class RequestGuard:
    """ASGI middleware; see the module docstring. `routes`: the API paths (e.g. "/score"). Token and body limit
    are read from the environment when the app is built."""

    def __init__(self, app, routes: frozenset[str]) -> None:
        self.app, self.routes = app, routes
        self.token = os.environ.get("ASTER_API_TOKEN") or None
        self.max_body = env_int("ASTER_MAX_BODY_BYTES", 64 << 20)
        self.known = known_paths(routes)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["path"] in HEALTH_PATHS:
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        if self.token is not None:
            given = headers.get(b"authorization", b"").decode("latin-1")
            scheme, _, credential = given.partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(credential.strip().encode(), self.token.encode()):
                return await reply(send, 401, "missing or invalid bearer token (Authorization: Bearer <token>)",
                                   [(b"www-authenticate", b"Bearer")])
        if scope["path"] not in self.known:
            return await reply(send, 404, "no such route (POST /score, /score_windows, /score_series, /metadata)")
        if scope["path"] in self.routes and scope["method"] == "POST":
            kind = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
            if kind != b"application/json":
                return await reply(send, 415, f"Content-Type {kind.decode('latin-1') or '(none)'!r} is not "
                                              f"accepted; send a JSON body (application/json)")
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body:
            return await self._too_large(send, int(length))
        body, more, size = [], True, 0
        while more:  # read (and count) the whole body before anything parses it
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                return await self._too_large(send, size)
            body.append(chunk)
            more = message.get("more_body", False)
        replay = iter([{"type": "http.request", "body": b"".join(body), "more_body": False}])

        async def receive_again():
            return next(replay, None) or await receive()

        return await self.app(scope, receive_again, self._explain_shedding(send))

    async def _too_large(self, send, size: int) -> None:
        await reply(send, 413, f"request body of at least {size} bytes is over the limit of {self.max_body} bytes "
                               f"(ASTER_MAX_BODY_BYTES)")

    @staticmethod
    def _explain_shedding(send):
        """BentoML sheds load with a bare 503; give it a message saying so and Retry-After."""
        state = {"shed": False, "answered": False}

        async def wrapped(message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 503:
                state["shed"] = True
                return
            if state["shed"] and message["type"] == "http.response.body":
                if not state["answered"]:  # one answer of ours; the rest of BentoML's body is dropped
                    state["answered"] = True
                    await reply(send, 503, f"overloaded: the request was shed to keep latency bounded; retry after "
                                           f"{RETRY_AFTER_S} s", [(b"retry-after", str(RETRY_AFTER_S).encode())])
                return
            await send(message)

        return wrapped


class _QuietRejections(logging.Filter):
    """BentoML logs every rejected request as ERROR with a traceback that quotes the input."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is None:
            return True
        from bentoml.exceptions import BentoMLException
        from pydantic import ValidationError

        status = 400 if isinstance(exc, ValidationError) else \
            exc.error_code.value if isinstance(exc, BentoMLException) else 500
        if status < 500 or status == 503:
            path = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
            record.msg, record.args = "rejected %s with HTTP %d (%s)", (path, status, type(exc).__name__)
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.exc_info, record.exc_text = None, None
        return True


def quiet_rejections() -> None:
    logging.getLogger("bentoml._internal.server.http_app").addFilter(_QuietRejections())


def bounded_metric_labels(known: frozenset[str]) -> None:
    """Label BentoML's traffic metrics of unknown paths as one UNKNOWN path (bentoml 1.4: its middleware labels by
    raw path and runs before any user middleware). The request then gets the guard's 404."""
    from bentoml._internal.server.http.instruments import RunnerTrafficMetricsMiddleware

    if getattr(RunnerTrafficMetricsMiddleware, "_aster_bounded", False):
        return
    original = RunnerTrafficMetricsMiddleware.__call__

    async def call(self, scope, receive, send):
        if scope["type"] == "http" and scope["path"] not in known:
            scope = {**scope, "path": UNKNOWN, "raw_path": UNKNOWN.encode()}
        return await original(self, scope, receive, send)

    RunnerTrafficMetricsMiddleware.__call__ = call
    RunnerTrafficMetricsMiddleware._aster_bounded = True
