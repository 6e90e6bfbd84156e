"""AnomalyScorer under a real `bentoml serve` process (tier 3): the contract, auth, limits, logging, shedding and
multi-series routing as a client meets them."""

import json
import os
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest

os.environ.setdefault("BENTOML_DO_NOT_TRACK", "True")

from aster.export import ONNX_PARITY_ATOL  # noqa: E402
from serving.client import ScorerClient, ScoringError, local_server  # noqa: E402
from service_testutil import (BAD, LIMITS, NAN_BODIES, TOKEN, C, T, W, assert_400, raw_series,  # noqa: E402
                              scaled_windows, torch_scores)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def server(exported, tmp_path_factory):
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    env = {"ASTER_API_TOKEN": TOKEN, "ASTER_DEVICE": "auto", "HF_HUB_OFFLINE": "1", **LIMITS}
    try:
        with local_server(exported[0], env=env, log_path=log) as url, \
                httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30) as c:
            yield url, c, log
    except (RuntimeError, TimeoutError) as e:
        pytest.fail(f"{e}\n{log.read_text()[-3000:]}")


def test_server_good_requests(server, exported):
    import bentoml

    url, c, log = server
    _, model, threshold = exported
    x = scaled_windows(6)
    r = c.post("/score", json={"windows": x.tolist()})
    assert r.status_code == 200
    np.testing.assert_allclose(r.json(), torch_scores(model, x), atol=ONNX_PARITY_ATOL, rtol=0)
    with bentoml.SyncHTTPClient(url, token=TOKEN, server_ready_timeout=10) as bc:
        got = bc.score(windows=x)
    assert isinstance(got, np.ndarray) and np.allclose(got, torch_scores(model, x), atol=ONNX_PARITY_ATOL)
    with ScorerClient(url, token=TOKEN) as sc:
        out = sc.score_series(raw_series())
        assert out["threshold"] == threshold and len(out["anomalies"]) == T
        meta = sc.metadata()
        assert meta["torch_imported"] is False  # the serving process runs on onnxruntime + numpy alone
        if "CUDAExecutionProvider" not in meta["providers"]:  # auto on a CPU host: the truth, logged
            assert meta["providers"] == ["CPUExecutionProvider"]
        with pytest.raises(ScoringError, match="shorter than one window") as e:
            sc.score_series(raw_series(W - 1))
        assert e.value.status == 400
    assert f"providers in use: {meta['providers']}" in log.read_text()


@pytest.mark.parametrize("case", list(BAD))
def test_server_rejects_bad_input(server, case):
    route, body, text = BAD[case]
    assert_400(server[1].post(route, json=body), text)


def test_server_rejects_nan_inf(server):
    for route, body in NAN_BODIES.items():
        assert_400(server[1].post(route, content=body, headers={"Content-Type": "application/json"}), "NaN/inf")


def test_server_auth_health_and_body_cap(server):
    url, c, _ = server
    body = {"windows": scaled_windows(1).tolist()}
    for route in ("/score", "/score_series", "/metadata"):
        r = httpx.post(url + route, json=body)
        assert r.status_code == 401 and "bearer token" in r.text
    assert httpx.post(url + "/score", json=body, headers={"Authorization": "Bearer nope"}).status_code == 401
    for probe in ("/healthz", "/livez", "/readyz"):
        assert httpx.get(url + probe).status_code == 200
    big = json.dumps({"series": [[1234.56789012345] * C] * 20000})  # ~1 MB > ASTER_MAX_BODY_BYTES
    r = c.post("/score_series", content=big, headers={"Content-Type": "application/json"})
    assert r.status_code == 413


def test_server_limits_bodies_paths_and_content_types(server):
    url, c, _ = server
    chunks = (b" " * 100_000 for _ in range(5))  # 0.5 MB > ASTER_MAX_BODY_BYTES, chunked: no Content-Length

    def chunked():
        yield b'{"windows": '
        yield from chunks
        yield b"[]}"

    r = c.post("/score", content=chunked(), headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and "ASTER_MAX_BODY_BYTES" in r.text
    for route in ("/metrics", "/docs.json", "/schema.json", "/"):  # every route but health needs the token
        assert httpx.get(url + route).status_code == 401
        assert c.get(route).status_code == 200
    for i in range(30):
        assert c.get(f"/probe-{i}").status_code == 404
        assert httpx.get(url + f"/probe-unauthenticated-{i}").status_code == 401
    after = c.get("/metrics").text
    assert [line for line in after.splitlines() if "probe-" in line] == []
    for i in range(30, 60):
        c.get(f"/probe-{i}")
    assert abs(len(c.get("/metrics").text) - len(after)) < 1_000  # one bucket for all unknown paths: bounded
    r = c.post("/score", files={"windows": ("w.json", b"[[[0, 0, 0]]]")})
    assert r.status_code == 415 and "application/json" in r.text


def test_server_logs_a_rejection_as_one_line(server):
    url, c, log = server
    size = log.stat().st_size
    for _ in range(10):
        assert c.post("/score_series", json={"series": [[1e300, 0, 0]] * T, "secret": 1}).status_code == 400
    new = log.read_text()[size:]
    rejections = [line for line in new.splitlines() if "rejected /score_series with HTTP 400" in line]
    assert len(rejections) == 10 and all("WARNING" in line for line in rejections), new[-2000:]
    assert "Traceback" not in new and "1e+300" not in new and "secret" not in new


def test_server_sheds_load_with_retry_after_and_the_client_honours_it(exported, tmp_path):
    from serving.client import backoff_delay

    env = {"ASTER_DEVICE": "cpu", "ASTER_API_TOKEN": "", "ASTER_MAX_LATENCY_MS": "1"}  # a budget made to shed
    x = scaled_windows(2).tolist()
    with local_server(exported[0], env=env, log_path=tmp_path / "serve.log") as url:
        with httpx.Client(base_url=url, timeout=30) as c, ThreadPoolExecutor(24) as pool:
            answers = list(pool.map(lambda _: c.post("/score", json={"windows": x}), range(96)))
        shed = [r for r in answers if r.status_code == 503]
        assert shed and all(r.status_code in (200, 503) for r in answers)
        assert all(r.headers["retry-after"] == "1" and "overloaded" in r.json()["error"] for r in shed)
        with ScorerClient(url, retries=30, backoff=0.05) as sc, ThreadPoolExecutor(24) as pool:
            scores = list(pool.map(lambda _: sc.score(x), range(96)))  # every request gets through
        assert all(s.shape == (2,) for s in scores) and sc.shed > 0
    log = (tmp_path / "serve.log").read_text()
    assert "Traceback" not in log and "with HTTP 503 (ServiceUnavailable)" in log
    slow = httpx.Response(503, headers={"Retry-After": "2"})
    assert all(2.0 <= backoff_delay(a, 0.1, response=slow) <= 2.0 + 0.1 * 2 ** a for a in range(4))


def test_server_scores_a_multi_series_export_by_id(exported, second, tmp_path):
    env = {"ASTER_DEVICE": "cpu", "HF_HUB_OFFLINE": "1", "ASTER_API_TOKEN": ""}  # no token: open on loopback
    with local_server(exported[0].parent, env=env, log_path=tmp_path / "serve.log") as url, \
            ScorerClient(url) as sc:
        assert sorted(sc.metadata()["series"]) == ["s1", "s2"]
        x = scaled_windows(3)
        np.testing.assert_allclose(sc.score_windows(x, series_id="s2"), torch_scores(second[1], x),
                                   atol=ONNX_PARITY_ATOL, rtol=0)
        assert sc.score_series(raw_series(), series_id="s1")["threshold"] == exported[2]
        with pytest.raises(ScoringError, match="series_id: expected one of") as e:
            sc.score_series(raw_series())
        assert e.value.status == 400


def test_server_bad_request_does_not_poison_its_batch(server, exported):
    """Concurrent requests share adaptive batches; a malformed one must fail alone (checked before batching)."""
    _, c, _ = server
    model = exported[1]
    good = [scaled_windows(3, seed=s) for s in range(12)]
    bad = np.zeros((3, W - 1, C)).tolist()

    def call(i):
        return c.post("/score", json={"windows": bad if i % 4 == 3 else good[i].tolist()})

    with ThreadPoolExecutor(12) as pool:
        responses = list(pool.map(call, range(12)))
    for i, r in enumerate(responses):
        if i % 4 == 3:
            assert_400(r, "got (3, 15, 3)")
        else:
            assert r.status_code == 200, r.text
            np.testing.assert_allclose(r.json(), torch_scores(model, good[i]), atol=ONNX_PARITY_ATOL, rtol=0)
