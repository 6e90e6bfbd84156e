"""AnomalyScorer in three tiers: (1) the class called directly, (2) its ASGI app in-process, (3) `bentoml serve`.

Every tier runs on a tiny exported model built here (random "none"-backbone ASTER, synthetic card): no dependency
on `dvc repro`. The same table of bad inputs must give 400 with a message saying what was expected in tiers 2
and 3; auth (401) and the body cap (413) are checked on the ASGI app and on the real server.
"""

import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch

os.environ.setdefault("BENTOML_DO_NOT_TRACK", "True")

from bentoml.exceptions import InvalidArgument  # noqa: E402

from aster.export import ONNX_PARITY_ATOL, export_model, write_card  # noqa: E402
from aster.inference import CARD_FILE  # noqa: E402
from aster.model import Aster, AsterConfig  # noqa: E402
from aster.scoring import step_scores  # noqa: E402
from serving.client import ScorerClient, ScoringError, local_server  # noqa: E402
from serving.service import AnomalyScorer, default_model_dir  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # incl. ~30 PydanticDeprecatedSince211 from bentoml

ROOT = Path(__file__).resolve().parents[2]
W, C, T = 16, 3, 60
CHANNELS = ["temp", "pressure", "flow"]
MEAN, SCALE = np.array([20.0, 1.0, -3.0]), np.array([5.0, 0.1, 2.0])
TOKEN = "s3cret-token"
LIMITS = {"ASTER_MAX_BATCH": "8", "ASTER_MAX_SERIES_LENGTH": "200", "ASTER_MAX_SERIES_WINDOWS": "100",
          "ASTER_MAX_BODY_BYTES": "300000"}


def raw_series(n: int = T, seed: int = 0) -> np.ndarray:
    return MEAN + SCALE * np.random.default_rng(seed).standard_normal((n, C))


def scaled_windows(b: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((b, W, C)).astype(np.float32)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(export dir, torch model, threshold): threshold = median step score of raw_series(), so both flags occur."""
    torch.manual_seed(0)
    model = Aster(AsterConfig(n_channels=C, window=W, backbone="none", dropout=0.0, patch=4, pseudo="anchored",
                              target="token", pooling="max", score_level="token")).eval()  # the default game
    scaled = ((raw_series() - MEAN) / SCALE).astype(np.float32)
    threshold = float(np.median(step_scores(model, scaled, W, device="cpu")))
    out = tmp_path_factory.mktemp("export") / "toy" / "s1"
    export_model(model, out, dataset="toy", series="s1", channels=CHANNELS,
                 scaler={"mean": MEAN.tolist(), "scale": SCALE.tolist(), "channels": CHANNELS},
                 threshold={"threshold": threshold, "contamination": 0.01}, params={"window": W},
                 metrics={"f1": 0.5})
    return out, model, threshold


@pytest.fixture(scope="module")
def second(exported):
    """A second series of the same export (toy/s2), another model: the dataset directory then serves both."""
    torch.manual_seed(1)
    model = Aster(AsterConfig(n_channels=C, window=W, backbone="none", dropout=0.0, patch=4)).eval()
    out = exported[0].parent / "s2"
    export_model(model, out, dataset="toy", series="s2", channels=CHANNELS,
                 scaler={"mean": MEAN.tolist(), "scale": SCALE.tolist(), "channels": CHANNELS},
                 threshold={"threshold": 0.5, "contamination": 0.01}, params={"window": W}, metrics={"f1": 0.5})
    return out, model


@pytest.fixture(scope="module")
def service(exported):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ASTER_MODEL_DIR", str(exported[0]))
        mp.setenv("ASTER_DEVICE", "cpu")
        yield AnomalyScorer()


def torch_scores(model, x: np.ndarray) -> np.ndarray:
    """Window scores, what /score answers (the model's step mapping uses its token scores)."""
    with torch.inference_mode():
        return torch.sigmoid(model(torch.from_numpy(x))).numpy()


# Bad inputs for tiers 2 and 3: (route, JSON body, text the 400 message must contain).
BAD = {
    "rank": ("/score", {"windows": np.zeros((W, C)).tolist()}, "expected shape (batch, 16, 3)"),
    "window length": ("/score", {"windows": np.zeros((2, W // 2, C)).tolist()}, "got (2, 8, 3)"),
    "channels": ("/score", {"windows": np.zeros((2, W, C + 1)).tolist()}, "got (2, 16, 4)"),
    "ragged": ("/score", {"windows": [np.zeros((W, C)).tolist(), np.zeros((W, C - 1)).tolist()]}, "ragged"),
    "non-numeric": ("/score", {"windows": [[["a"] * C] * W]}, "expected numbers"),
    "null values": ("/score", {"windows": [[[None] * C] * W]}, "expected numbers"),
    "empty": ("/score", {"windows": []}, "empty input"),
    "too many windows": ("/score", {"windows": np.zeros((9, W, C)).tolist()}, "limit is 8 (ASTER_MAX_BATCH)"),
    "series rank": ("/score_series", {"series": np.zeros((T,)).tolist()}, "expected a (T, 3) series"),
    "series channels": ("/score_series", {"series": np.zeros((T, 2)).tolist()}, "got shape (60, 2)"),
    "series too short": ("/score_series", {"series": np.zeros((W - 1, C)).tolist()}, "shorter than one window"),
    "series too long": ("/score_series", {"series": np.zeros((201, C)).tolist()}, "ASTER_MAX_SERIES_LENGTH"),
    "too many series windows": ("/score_series", {"series": np.zeros((200, C)).tolist()}, "use a stride of at least"),
    "series empty": ("/score_series", {"series": []}, "empty input"),
    "series text": ("/score_series", {"series": "1,2,3"}, "expected numbers"),
    "stride 0": ("/score_series", {"series": np.zeros((T, C)).tolist(), "stride": 0}, "stride: expected an integer"),
    "stride > window": ("/score_series", {"series": np.zeros((T, C)).tolist(), "stride": W + 1}, "[1, 16]"),
    "boolean among numbers": ("/score", {"windows": [[[True, 0.0, 1.0]] * W]}, "got a boolean"),
    "boolean in a series": ("/score_series", {"series": [[0.5, False, 1.0]] * T}, "got a boolean"),
    "stride true": ("/score_series", {"series": np.zeros((T, C)).tolist(), "stride": True}, "valid integer"),
    "stride as text": ("/score_series", {"series": np.zeros((T, C)).tolist(), "stride": "2"}, "valid integer"),
    "stride as float": ("/score_series", {"series": np.zeros((T, C)).tolist(), "stride": 2.0}, "valid integer"),
    "unknown field": ("/score_series", {"series": np.zeros((T, C)).tolist(), "threshold": 0}, "threshold"),
    "unknown field of /score": ("/score", {"windows": np.zeros((1, W, C)).tolist(), "x": 1}, "Extra inputs"),
    "series_id not text": ("/score_series", {"series": np.zeros((T, C)).tolist(), "series_id": 1}, "series_id"),
    "huge scaled windows": ("/score", {"windows": np.full((1, W, C), 3e38).tolist()}, "ASTER_MAX_ABS_VALUE"),
    "huge series": ("/score_series", {"series": np.full((T, C), 3e38).tolist()}, "out of range after scaling"),
}
NAN_BODIES = {  # Python's json writes NaN/Infinity literals; the service must refuse them, not score them
    "/score": b'{"windows": [' + b",".join([b"[" + b",".join([b"[NaN, 1, 2]"] * W) + b"]"]) + b"]}",
    "/score_series": b'{"series": [' + b",".join([b"[1, Infinity, 2]"] * T) + b"]}",
}


def assert_400(r: httpx.Response, text: str) -> None:
    assert r.status_code == 400, (r.status_code, r.text)
    assert text in r.text, r.text


# ----------------------------------------------------------------------------- tier 1: the class itself

def test_direct_score_matches_pytorch(service, exported):
    _, model, _ = exported
    for b in (1, 7, 64):
        x = scaled_windows(b, seed=b)
        got = service.score(x)
        assert got.shape == (b,)
        np.testing.assert_allclose(got, torch_scores(model, x), atol=ONNX_PARITY_ATOL, rtol=0)


def test_direct_score_series(service, exported):
    _, model, threshold = exported
    series = raw_series()
    out = service.score_series(series)
    ref = step_scores(model, ((series - MEAN) / SCALE).astype(np.float32), W, device="cpu")
    np.testing.assert_allclose(out["scores"], ref, atol=ONNX_PARITY_ATOL, rtol=0)
    assert out["threshold"] == threshold and out["window"] == W and out["stride"] == 1
    assert out["anomalies"] == (np.asarray(out["scores"]) > threshold).tolist()
    assert 0 < out["n_anomalies"] < T  # the median threshold splits the steps
    strided = service.score_series(series, stride=5)
    assert len(strided["scores"]) == T and np.isfinite(strided["scores"]).all() and strided["stride"] == 5


def test_direct_calls_check_the_contract(service):
    with pytest.raises(InvalidArgument, match=r"expected shape \(batch, 16, 3\)"):
        service.score(np.zeros((2, W, C + 1), dtype=np.float32))
    with pytest.raises(InvalidArgument, match="NaN/inf"):
        service.score(np.full((1, W, C), np.nan, dtype=np.float32))
    with pytest.raises(InvalidArgument, match="shorter than one window"):
        service.score_series(raw_series(W - 1))


def test_metadata(service, exported):
    meta = service.metadata()
    assert meta["providers"] == ["CPUExecutionProvider"] and meta["device"] == "cpu"
    assert meta["card"]["channels"] == CHANNELS and meta["card"]["window"] == W
    assert meta["model_version"] == meta["card"]["onnx"]["sha256"][:12]
    assert meta["model_dir"] == "s1" and service.__is_ready__()
    assert "/" not in json.dumps({k: meta[k] for k in ("model_dir", "configured_dir")})  # no server paths


def test_promoted_symlink_and_default_discovery(exported, tmp_path, monkeypatch):
    link = tmp_path / "promoted"
    link.symlink_to(exported[0], target_is_directory=True)
    monkeypatch.setenv("ASTER_MODEL_DIR", str(link))
    svc = AnomalyScorer()
    assert svc.metadata()["configured_dir"] == "promoted" and svc.metadata()["model_dir"] == "s1"
    monkeypatch.delenv("ASTER_MODEL_DIR")
    for ds in ("msl/a", "synthetic/synthetic", "aaa/b"):
        (tmp_path / "export" / ds).mkdir(parents=True)
        (tmp_path / "export" / ds / CARD_FILE).write_text(json.dumps({"exportable": True, "series": ds}))
    assert default_model_dir(tmp_path) == tmp_path / "export" / "synthetic"  # preferred: every series of it
    (tmp_path / "export" / "synthetic" / "synthetic" / CARD_FILE).write_text(json.dumps({"exportable": False}))
    assert default_model_dir(tmp_path) == tmp_path / "export" / "aaa"  # else the first dataset with a model


def test_one_service_serves_every_series_by_id(exported, second, monkeypatch):
    monkeypatch.setenv("ASTER_MODEL_DIR", str(exported[0].parent))
    monkeypatch.setenv("ASTER_DEVICE", "cpu")
    svc = AnomalyScorer()
    meta = svc.metadata()
    assert sorted(meta["series"]) == ["s1", "s2"] and "card" not in meta
    assert meta["series"]["s2"]["threshold"] == 0.5 and meta["series"]["s1"]["channels"] == CHANNELS
    series, x = raw_series(), scaled_windows(4)
    scaled = ((series - MEAN) / SCALE).astype(np.float32)
    for sid, model in (("s1", exported[1]), ("s2", second[1])):
        out = svc.score_series(series, series_id=sid)
        assert out["series_id"] == sid
        np.testing.assert_allclose(out["scores"], step_scores(model, scaled, W, device="cpu"),
                                   atol=ONNX_PARITY_ATOL, rtol=0)
        np.testing.assert_allclose(svc.score_windows(x, series_id=sid), torch_scores(model, x),
                                   atol=ONNX_PARITY_ATOL, rtol=0)
    with pytest.raises(InvalidArgument, match=r"series_id: expected one of \['s1', 's2'\].*got None"):
        svc.score_series(series)
    with pytest.raises(InvalidArgument, match="got 'nope'"):
        svc.score_windows(x, series_id="nope")
    with pytest.raises(InvalidArgument, match="use /score_windows with a series_id"):
        svc.score(x)


def test_refuses_a_baseline_card(exported, tmp_path, monkeypatch):
    card = json.loads((exported[0] / CARD_FILE).read_text())
    write_card(tmp_path / CARD_FILE, dataset="toy", series="s2", channels=CHANNELS, window=W,
               scaler={"mean": card["scaler"]["mean"], "scale": card["scaler"]["scale"]},
               threshold={"threshold": 0.5}, config=None, params={}, metrics=None, onnx_path=None, opset=None,
               skipped="baseline model 'iforest' has no network to export")
    monkeypatch.setenv("ASTER_MODEL_DIR", str(tmp_path))
    with pytest.raises(ValueError, match="not exported: baseline model 'iforest'"):
        AnomalyScorer()


# ----------------------------------------------------------------------------- tier 2: ASGI app in-process

@pytest.fixture(scope="module")
def asgi(exported):
    from starlette.testclient import TestClient

    with pytest.MonkeyPatch.context() as mp:
        for k, v in {"ASTER_MODEL_DIR": str(exported[0]), "ASTER_API_TOKEN": TOKEN, **LIMITS}.items():
            mp.setenv(k, v)
        with TestClient(AnomalyScorer.to_asgi()) as c:
            c.headers["Authorization"] = f"Bearer {TOKEN}"
            yield c


def test_asgi_good_requests(asgi, exported):
    _, model, threshold = exported
    x = scaled_windows(5)
    r = asgi.post("/score", json={"windows": x.tolist()})
    assert r.status_code == 200
    np.testing.assert_allclose(r.json(), torch_scores(model, x), atol=ONNX_PARITY_ATOL, rtol=0)
    r = asgi.post("/score_series", json={"series": raw_series().tolist(), "stride": 2})
    assert r.status_code == 200 and len(r.json()["scores"]) == T and r.json()["threshold"] == threshold
    assert asgi.post("/metadata", json={}).json()["limits"]["max_batch"] == 8


@pytest.mark.parametrize("case", list(BAD))
def test_asgi_rejects_bad_input(asgi, case):
    route, body, text = BAD[case]
    assert_400(asgi.post(route, json=body), text)


def test_asgi_rejects_nan_inf(asgi):
    for route, body in NAN_BODIES.items():
        assert_400(asgi.post(route, content=body, headers={"Content-Type": "application/json"}), "NaN/inf")


def test_asgi_auth_and_body_cap(asgi):
    body = {"windows": scaled_windows(1).tolist()}
    assert asgi.post("/score", json=body, headers={"Authorization": ""}).status_code == 401
    r = asgi.post("/score", json=body, headers={"Authorization": "Bearer wrong"})
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert asgi.post("/metadata", json={}, headers={"Authorization": "Basic " + TOKEN}).status_code == 401
    for probe in ("/healthz", "/livez", "/readyz"):  # health stays open
        assert asgi.get(probe, headers={"Authorization": ""}).status_code == 200
    big = json.dumps({"series": [[1234.56789012345] * C] * 20000})  # ~1 MB > ASTER_MAX_BODY_BYTES
    r = asgi.post("/score_series", content=big, headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and "ASTER_MAX_BODY_BYTES" in r.text


# ----------------------------------------------------------------------------- tier 3: a real `bentoml serve`

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
