import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

import aster.baselines as bl
from aster.baselines import NAMES, BaselineConfig, fit_score
from aster.windows import per_step_from_windows


def _series(seed=0, n_train=800, n_test=600, c=4):
    """Noisy sine channels; test steps 300..359 get a level shift of +3 on every channel."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_train + n_test)
    x = np.stack([np.sin(2 * np.pi * t / (25 + 7 * k) + k) for k in range(c)], 1)
    x = x + 0.1 * rng.standard_normal(x.shape)
    y = np.zeros(n_test, np.int8)
    y[300:360] = 1
    x[n_train + 300:n_train + 360] += 3.0
    return x[:n_train].astype(np.float32), x[n_train:].astype(np.float32), y


def _cfg(name, **kw):
    return BaselineConfig(name, window=20, n_clusters=5, **kw) if name == "kmeans" else BaselineConfig(name, **kw)


@pytest.mark.parametrize("name", NAMES)
def test_scores_shapes_detection_and_determinism(name):
    train, test, y = _series()
    tr, te, info = fit_score(_cfg(name), train, test)
    assert tr.shape == (len(train),) and te.shape == (len(test),)
    assert tr.dtype == te.dtype == np.float64
    assert np.isfinite(tr).all() and np.isfinite(te).all()
    assert roc_auc_score(y, te) > 0.8
    assert te[y == 1].mean() > te[y == 0].mean()
    assert info["name"] == name and info["library"].split()[0] in ("pyod", "sklearn")
    assert info["fit_seconds"] >= 0 and info["score_seconds"] >= 0 and not info["subsampled"]
    tr2, te2, _ = fit_score(_cfg(name), train, test)
    np.testing.assert_array_equal(tr, tr2)
    np.testing.assert_array_equal(te, te2)


def test_seed_changes_randomised_model():
    train, test, _ = _series()
    _, a, _ = fit_score(BaselineConfig("iforest", seed=1), train, test)
    _, b, _ = fit_score(BaselineConfig("iforest", seed=2), train, test)
    assert not np.array_equal(a, b)


def test_covering_mean_matches_naive_loop():
    rng = np.random.default_rng(3)
    for n, w in [(7, 3), (1, 4), (5, 1), (3, 6)]:
        s = rng.standard_normal(n)
        naive = [np.mean([s[i] for i in range(n) if i <= t < i + w]) for t in range(n + w - 1)]
        np.testing.assert_allclose(per_step_from_windows(np.arange(len(s)), s, len(s) + w - 1, w), naive, rtol=1e-12)


def test_kmeans_matches_naive_windows_and_chunking(monkeypatch):
    from sklearn.cluster import KMeans

    train, test, _ = _series(n_train=200, n_test=120, c=3)
    w = 10
    tr, te, info = fit_score(BaselineConfig("kmeans", window=w, n_clusters=4), train, test)
    fit_wins = np.stack([train[i:i + w].T.ravel() for i in range(191)]).astype(np.float64)
    km = KMeans(n_clusters=4, random_state=2021).fit(fit_wins)
    wins = np.stack([test[i:i + w].T.ravel() for i in range(len(test) - w + 1)])
    ws = np.linalg.norm(wins[:, None, :] - km.cluster_centers_[None], axis=2).min(1)
    naive = [np.mean([ws[i] for i in range(len(ws)) if i <= t < i + w]) for t in range(len(test))]
    np.testing.assert_allclose(te, naive, rtol=1e-4)
    assert info["train_windows"] == info["fit_windows"] == 191
    monkeypatch.setattr(bl, "_CHUNK_FLOATS", 7 * w * 3)  # 7 windows per chunk: many chunk edges
    tr2, te2, _ = fit_score(BaselineConfig("kmeans", window=w, n_clusters=4), train, test)
    np.testing.assert_allclose(tr2, tr, rtol=1e-6)
    np.testing.assert_allclose(te2, te, rtol=1e-6)


@pytest.mark.parametrize("name", ["knn", "lof", "kmeans"])
def test_subsampling_is_deterministic_and_reported(name):
    train, test, y = _series()
    cfg = _cfg(name, max_train_rows=150)
    tr, te, info = fit_score(cfg, train, test)
    assert info["subsampled"] and info.get("fit_rows", info.get("fit_windows")) == 150
    assert tr.shape == (len(train),) and np.isfinite(tr).all()
    assert roc_auc_score(y, te) > 0.8
    np.testing.assert_array_equal(te, fit_score(cfg, train, test)[1])


def test_fitted_train_rows_get_leave_one_out_scores():
    from pyod.models.knn import KNN

    train, test, _ = _series()
    tr, _, _ = fit_score(BaselineConfig("knn"), train, test)
    ref = KNN().fit(train)
    np.testing.assert_allclose(tr, ref.decision_scores_)
    in_sample = ref.decision_function(train)  # counts the row itself as its nearest neighbour: (k-1)-th distance
    assert np.all(tr >= in_sample - 1e-9) and np.mean(tr > in_sample) > 0.9


def test_per_step_models_do_not_subsample():
    train, test, _ = _series()
    _, _, info = fit_score(BaselineConfig("pca", max_train_rows=100), train, test)
    assert info["fit_rows"] == len(train) and not info["subsampled"]


def test_fit_index_is_even_and_keeps_ends():
    idx = bl._fit_index(1000, 10)
    assert len(idx) == 10 and idx[0] == 0 and idx[-1] == 999 and np.all(np.diff(idx) >= 110)
    assert bl._fit_index(10, 10) is None and bl._fit_index(10, None) is None


def test_params_reach_the_estimator():
    train, test, _ = _series()
    _, _, info = fit_score(BaselineConfig("knn", params={"n_neighbors": 7, "method": "mean"}), train, test)
    assert info["params"]["n_neighbors"] == 7 and info["params"]["method"] == "mean"


def test_bad_input_raises_clear_errors():
    train, test, _ = _series()
    with pytest.raises(ValueError, match="unknown baseline 'eif'.*kmeans"):
        fit_score(BaselineConfig("eif"), train, test)
    with pytest.raises(ValueError, match="train has 4 channels, test 3"):
        fit_score(BaselineConfig("hbos"), train, test[:, :3])
    bad = train.copy()
    bad[5, 1] = np.nan
    with pytest.raises(ValueError, match="train holds 1 NaN/inf"):
        fit_score(BaselineConfig("knn"), bad, test)
    with pytest.raises(ValueError, match="window 1000 must be"):
        fit_score(BaselineConfig("kmeans", window=1000), train, test)
    with pytest.raises(ValueError, match="2-D"):
        fit_score(BaselineConfig("pca"), train[:, 0], test)
