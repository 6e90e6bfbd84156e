"""Classical baselines that win TAB (docs/evaluation.md §5): KMeansAD, HBOS, IForest, KNN, PCA, LOF, CBLOF.

They run through scikit-learn and PyOD, not re-implementations, so their numbers are those of the libraries that the
community uses. Two families:

* Per-step models (PyOD `hbos`, `iforest`, `knn`, `pca`, `lof`, `cblof`): fit on the train rows, then one score per
  row from `decision_function` (higher = more anomalous). Train rows that were in the fit set get PyOD's
  `decision_scores_` instead: for KNN/LOF these leave the point itself out, whereas `decision_function` on a fitted
  row would find it at distance 0 and understate its score.
* `kmeans` (TAB's KMeansAD): every stride-1 window of `window` steps, flattened over channels, scikit-learn `KMeans`
  fitted on the train windows; window score = distance to the nearest centroid; a step's score = mean of the scores
  of all windows covering it (full coverage, no zero tail). Train and test are windowed separately.

Unlike TAB, which feeds tods/merlion baselines raw data and KMeans data scaled on the whole train part, the caller
passes arrays that went through our own pipeline (same loaders, split and train-only scaling for every model), so
all methods see the same input. HBOS, IForest and PyOD's PCA (which standardises itself) do not depend on per-channel
scaling anyway.

KNN and LOF cost grows quadratically with the fit set, and KMeans holds its fit windows in memory (peak about
2 x fit windows x window x C x 8 bytes, since scikit-learn's tolerance takes a variance: 4.4 GB for 50,000 MSL
windows of 100 x 55), so when the train part has more than `max_train_rows` rows (windows for KMeans) these three
are fitted on an evenly strided, deterministic subset; every train row is still scored. TAB fits on everything; the
subsampling is logged and returned in the info dict (`subsampled`, `fit_rows` / `fit_windows`).

CBLOF is PyOD's, which raises when its clusters have similar sizes (no large/small split); pass e.g.
params={"alpha": 0.8} or another n_clusters then. Extended IF is not offered: its libraries (isotree, eif) come only
as sources to compile.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import time
from dataclasses import dataclass, field

import numpy as np

from aster.windows import per_step_from_windows

log = logging.getLogger(__name__)

# name -> (module, class, default kwargs). `seed` fills random_state where the estimator takes one.
_PYOD = {
    "hbos": ("pyod.models.hbos", "HBOS", {}),
    "iforest": ("pyod.models.iforest", "IForest", {"n_jobs": 1}),
    "knn": ("pyod.models.knn", "KNN", {"n_jobs": 1}),
    "pca": ("pyod.models.pca", "PCA", {}),
    "lof": ("pyod.models.lof", "LOF", {"n_jobs": 1, "novelty": True}),
    "cblof": ("pyod.models.cblof", "CBLOF", {"n_jobs": 1}),
}
NAMES = ("kmeans", *_PYOD)
_SUBSAMPLED = {"kmeans", "knn", "lof"}  # quadratic cost or large fit memory
_CHUNK_FLOATS = 2**23  # kmeans scoring: 64 MB of float64 windows per chunk


@dataclass
class BaselineConfig:
    name: str  # one of NAMES
    window: int = 100  # kmeans only: TAB's KMeansAD window
    n_clusters: int = 20  # kmeans only
    seed: int = 2021
    max_train_rows: int | None = 50000  # knn/lof: fit rows; kmeans: fit windows; None = all
    params: dict = field(default_factory=dict)  # extra kwargs for the library estimator


def fit_score(cfg: BaselineConfig, train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict]:
    """Fit on `train` (T_train, C), score every step of train and `test` (T_test, C), both already scaled.

    Returns (train_scores (T_train,), test_scores (T_test,), info) with float64 scores, higher = more anomalous.
    """
    if cfg.name not in NAMES:
        raise ValueError(f"unknown baseline {cfg.name!r}; choose one of {', '.join(NAMES)}")
    train, test = _check(cfg.name, "train", train), _check(cfg.name, "test", test)
    if train.shape[1] != test.shape[1]:
        raise ValueError(f"baseline {cfg.name}: train has {train.shape[1]} channels, test {test.shape[1]}")
    if cfg.max_train_rows is not None and cfg.max_train_rows < 2:
        raise ValueError(f"baseline {cfg.name}: max_train_rows must be >= 2 or None, got {cfg.max_train_rows}")
    if cfg.name == "kmeans":
        return _kmeans(cfg, train, test)
    return _pyod(cfg, train, test)


def _check(name: str, part: str, x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] < 1:
        raise ValueError(f"baseline {name}: {part} must be a non-empty 2-D (time x channels) array, got {x.shape}")
    bad = int((~np.isfinite(x)).sum())
    if bad:
        raise ValueError(f"baseline {name}: {part} holds {bad} NaN/inf values; impute them before scoring")
    return x


def _fit_index(n: int, cap: int | None) -> np.ndarray | None:
    """Evenly strided subset of range(n) of size cap (first and last included), or None if no subsampling."""
    if cap is None or n <= cap:
        return None
    return np.unique(np.linspace(0, n - 1, num=cap).round().astype(np.int64))


def _library(module: str) -> str:
    top = module.split(".")[0]
    return f"{top} {importlib.import_module(top).__version__}"


def _jsonable(params: dict) -> dict:
    return {k: v if v is None or isinstance(v, (bool, int, float, str)) else repr(v) for k, v in params.items()}


def _pyod(cfg: BaselineConfig, train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict]:
    module, cls_name, defaults = _PYOD[cfg.name]
    cls = getattr(importlib.import_module(module), cls_name)
    kwargs = dict(defaults)
    if "random_state" in inspect.signature(cls).parameters:
        kwargs["random_state"] = cfg.seed
    kwargs.update(cfg.params)
    est = cls(**kwargs)

    idx = _fit_index(len(train), cfg.max_train_rows) if cfg.name in _SUBSAMPLED else None
    fit_x = train if idx is None else train[idx]
    if idx is not None:
        log.info("baseline %s: fitting on %d of %d train rows (evenly strided)", cfg.name, len(idx), len(train))
    t0 = time.perf_counter()
    try:
        est.fit(fit_x)
    except ValueError as e:  # CBLOF: no large/small split when clusters have similar sizes (e.g. i.i.d. noise)
        raise ValueError(f"baseline {cfg.name}: {cls_name} fit failed: {e}") from e
    t1 = time.perf_counter()
    train_scores = np.empty(len(train), dtype=np.float64)
    if idx is None:
        train_scores[:] = est.decision_scores_
    else:
        rest = np.ones(len(train), dtype=bool)
        rest[idx] = False
        train_scores[idx] = est.decision_scores_
        if rest.any():
            train_scores[rest] = est.decision_function(train[rest])
    test_scores = np.asarray(est.decision_function(test), dtype=np.float64)
    t2 = time.perf_counter()
    info = {
        "name": cfg.name,
        "library": _library(module),
        "estimator": repr(est),
        "params": _jsonable(est.get_params()),
        "fit_rows": len(fit_x),
        "train_rows": len(train),
        "subsampled": idx is not None,
        "fit_seconds": t1 - t0,
        "score_seconds": t2 - t1,
    }
    return _finite(cfg.name, train_scores), _finite(cfg.name, test_scores), info


def _finite(name: str, s: np.ndarray) -> np.ndarray:
    if not np.isfinite(s).all():
        raise FloatingPointError(f"baseline {name}: {int((~np.isfinite(s)).sum())} non-finite scores")
    return s


def _windows(x: np.ndarray, window: int, rows: np.ndarray | slice) -> np.ndarray:
    """Flattened stride-1 windows x[i:i+window].ravel() for the window starts in `rows`: float64 (n, window*C).

    Rows of the 1-D sliding view over x.ravel() taken every C values are exactly the time-major windows, so indexing
    copies each window once. (TAB flattens channel-major; a fixed permutation of features changes no distance.)
    float64 on purpose: on float32 input scikit-learn's k-means++ init takes a slow upcasting path (4x slower).
    """
    c = x.shape[1]
    view = np.lib.stride_tricks.sliding_window_view(x.ravel(), window * c)[::c]  # (T-window+1, window*C), no copy
    return np.ascontiguousarray(view[rows], dtype=np.float64)


def _kmeans_scores(km, x: np.ndarray, window: int) -> np.ndarray:
    n = len(x) - window + 1
    step = max(1, _CHUNK_FLOATS // (window * x.shape[1]))
    ws = np.empty(n, dtype=np.float64)
    for a in range(0, n, step):
        ws[a:a + step] = km.transform(_windows(x, window, slice(a, a + step))).min(axis=1)
    return per_step_from_windows(np.arange(n), ws, len(x), window)


def _kmeans(cfg: BaselineConfig, train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict]:
    from sklearn.cluster import KMeans

    w = cfg.window
    train, test = np.ascontiguousarray(train, np.float64), np.ascontiguousarray(test, np.float64)
    if w < 1 or len(train) < w or len(test) < w:
        raise ValueError(f"baseline kmeans: window {w} must be >= 1 and fit in train ({len(train)} steps) "
                         f"and test ({len(test)} steps)")
    n_win = len(train) - w + 1
    if n_win < cfg.n_clusters:
        raise ValueError(f"baseline kmeans: {n_win} train windows for {cfg.n_clusters} clusters")
    idx = _fit_index(n_win, cfg.max_train_rows)
    if idx is not None:
        log.info("baseline kmeans: fitting on %d of %d train windows (evenly strided)", len(idx), n_win)
    # copy_x=False: the fit windows are a private copy already, so KMeans may centre them in place
    km = KMeans(**{"n_clusters": cfg.n_clusters, "random_state": cfg.seed, "copy_x": False, **cfg.params})
    t0 = time.perf_counter()
    km.fit(_windows(train, w, slice(None) if idx is None else idx))
    t1 = time.perf_counter()
    train_scores, test_scores = _kmeans_scores(km, train, w), _kmeans_scores(km, test, w)
    t2 = time.perf_counter()
    info = {
        "name": "kmeans",
        "library": _library("sklearn"),
        "estimator": repr(km),
        "params": _jsonable(km.get_params()),
        "window": w,
        "fit_windows": n_win if idx is None else len(idx),
        "train_windows": n_win,
        "subsampled": idx is not None,
        "n_iter": int(km.n_iter_),
        "fit_seconds": t1 - t0,
        "score_seconds": t2 - t1,
    }
    return _finite("kmeans", train_scores), _finite("kmeans", test_scores), info
