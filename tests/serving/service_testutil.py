"""What the serving tests share: a tiny model's constants, inputs, and the table of bad requests (tiers 2 and 3)."""

from pathlib import Path

import httpx
import numpy as np
import torch

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
