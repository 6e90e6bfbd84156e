"""AnomalyScorer in-process: (1) the class called directly, (2) its ASGI app. The real `bentoml serve` is tier 3,
tests/serving/test_server.py. Every tier runs on tiny exported models built in conftest.py; the same table of bad
inputs must give 400 with a message saying what was expected in tiers 2 and 3.
"""

import json
import os

import numpy as np
import pytest

os.environ.setdefault("BENTOML_DO_NOT_TRACK", "True")

from bentoml.exceptions import InvalidArgument  # noqa: E402

from aster.export import ONNX_PARITY_ATOL, write_card  # noqa: E402
from aster.inference import CARD_FILE  # noqa: E402
from aster.scoring import step_scores  # noqa: E402
from serving.service import AnomalyScorer, default_model_dir  # noqa: E402
from service_testutil import (BAD, CHANNELS, LIMITS, MEAN, NAN_BODIES, SCALE, TOKEN, C, T, W, assert_400,  # noqa: E402
                              raw_series, scaled_windows, torch_scores)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # incl. ~30 PydanticDeprecatedSince211 from bentoml


@pytest.fixture(scope="module")
def service(exported):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ASTER_MODEL_DIR", str(exported[0]))
        mp.setenv("ASTER_DEVICE", "cpu")
        yield AnomalyScorer()


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
