import tracemalloc

import numpy as np
import pytest
import torch
from torch import nn

from aster.scoring import per_step_from_windows, step_scores, torch_scorer, window_scores, window_starts
from aster.windows import GEOMETRIC_FLOOR


def naive_per_step(starts, scores, T, W, fill=np.nan):
    acc = [[] for _ in range(T)]
    for s, v in zip(starts, scores):
        for t in range(s, s + W):
            acc[t].append(v)
    return np.array([np.mean(a) if a else fill for a in acc])


def mean_scorer(batch):  # a numpy scorer, as an onnxruntime session would be wrapped
    assert batch.dtype == np.float32 and batch.ndim == 3
    return batch.mean(axis=(1, 2)) + batch[:, 0, 0]


class Toy(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin, self.drop = nn.Linear(3, 1), nn.Dropout(0.5)

    def forward(self, x):
        return self.lin(self.drop(x)).mean(dim=(1, 2))

    def score(self, x):
        assert torch.is_inference_mode_enabled()
        return torch.sigmoid(self(x))


def test_window_starts():
    assert window_starts(10, 4).tolist() == [0, 1, 2, 3, 4, 5, 6]
    assert window_starts(10, 4, stride=3).tolist() == [0, 3, 6]  # already ends at T-1
    assert window_starts(11, 4, stride=3).tolist() == [0, 3, 6, 7]  # final window added, ends at T-1
    assert window_starts(11, 4, tab_faithful=True).tolist() == [0, 4]  # steps 8..10 uncovered
    with pytest.raises(ValueError, match="series has 3 rows, window needs 4"):
        window_starts(3, 4)


@pytest.mark.parametrize("seed", range(8))
def test_per_step_matches_naive_loop(seed):
    rng = np.random.default_rng(seed)
    T = int(rng.integers(5, 200))
    W = int(rng.integers(1, T + 1))
    starts = window_starts(T, W, int(rng.integers(1, 2 * W + 2)))
    scores = rng.normal(size=len(starts))
    got = per_step_from_windows(starts, scores, T, W)
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, naive_per_step(starts, scores, T, W), rtol=1e-10, atol=1e-12)
    # arbitrary starts, repeats and gaps included: uncovered steps get the fill value
    starts = np.sort(rng.integers(0, T - W + 1, 5))
    scores = rng.normal(size=5)
    np.testing.assert_allclose(per_step_from_windows(starts, scores, T, W, fill=-1.0),
                               naive_per_step(starts, scores, T, W, fill=-1.0), rtol=1e-10, atol=1e-12)


def test_geometric_step_mean():
    """exp(mean log score) over the covering windows; a score of exactly 0 is floored, so the step stays finite."""
    rng = np.random.default_rng(3)
    T, W = 57, 9
    starts = np.sort(rng.integers(0, T - W + 1, size=30))
    scores = rng.random(30)
    scores[4] = 0.0
    got = per_step_from_windows(starts, scores, T, W, fill=-1.0, mean="geometric")
    logs = naive_per_step(starts, np.log(np.maximum(scores, GEOMETRIC_FLOOR)), T, W, fill=np.nan)
    np.testing.assert_allclose(got, np.where(np.isnan(logs), -1.0, np.exp(logs)), rtol=1e-10, atol=0)
    assert (got[(got != -1.0)] > 0).all()
    # one high window next to low ones raises its steps less than the arithmetic mean does
    one = per_step_from_windows(np.array([0, 2]), np.array([0.9, 0.01]), 6, 4, mean="geometric")
    assert one[3] < per_step_from_windows(np.array([0, 2]), np.array([0.9, 0.01]), 6, 4)[3]


@pytest.mark.parametrize("scores, kw, msg", [([0.5, 1.5], dict(mean="geometric"), r"needs scores in \[0, 1\]"),
                                             ([0.5, 0.5], dict(mean="median"), "mean must be one of")])
def test_per_step_mean_errors(scores, kw, msg):
    with pytest.raises(ValueError, match=msg):
        per_step_from_windows(np.array([0, 2]), np.array(scores), T=8, window=4, **kw)


def test_per_step_rejects_bad_starts():
    with pytest.raises(ValueError, match="window starts must lie in"):
        per_step_from_windows(np.array([0, 7]), np.array([1.0, 2.0]), T=10, window=4)


@pytest.mark.parametrize("stride", [1, 4, 7])
def test_step_scores_cover_every_step(stride):
    x = np.random.default_rng(stride).normal(size=(103, 3)).astype(np.float32)
    W = 10
    got = step_scores(mean_scorer, x, W, stride=stride, batch_size=16)
    starts = window_starts(103, W, stride)
    naive = naive_per_step(starts, [mean_scorer(x[None, s:s + W])[0] for s in starts], 103, W)
    assert got.shape == (103,) and got.dtype == np.float64
    np.testing.assert_allclose(got, naive, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(got, step_scores(mean_scorer, x, W, stride=stride, batch_size=1000))


def test_tab_faithful_zero_tail():
    x = np.random.default_rng(0).normal(size=(103, 3)).astype(np.float32) + 5.0
    got = step_scores(mean_scorer, x, 10, tab_faithful=True)
    assert (got[100:] == 0).all() and (got[:100] > 0).all()
    assert np.array_equal(got[:10], np.full(10, mean_scorer(x[None, :10])[0], dtype=np.float64))


def test_torch_model_scored_in_eval_and_inference_mode():
    torch.manual_seed(0)
    model = Toy().train()
    x = np.random.default_rng(0).normal(size=(60, 3)).astype(np.float32)
    starts, s1 = window_scores(model, x, window=8, stride=2, batch_size=7, device="cpu")
    assert not model.training and ((s1 > 0) & (s1 < 1)).all()
    _, s2 = window_scores(torch_scorer(model, "cpu"), x, window=8, stride=2, batch_size=64)
    np.testing.assert_allclose(s1, s2, rtol=1e-6)  # dropout off: same scores whatever the batching
    steps = step_scores(model, x, window=8, stride=2, device="cpu")
    np.testing.assert_allclose(steps, per_step_from_windows(starts, s1, 60, 8), rtol=1e-6)


def test_scorer_errors():
    x = np.zeros((20, 2), np.float32)
    with pytest.raises(ValueError, match=r"shape \(1,\) for a batch of 5"):
        window_scores(lambda b: np.zeros(1), x, window=16)
    with pytest.raises(ValueError, match=r"N dividing 16"):
        window_scores(lambda b: np.zeros((len(b), 3)), x, window=16)
    with pytest.raises(FloatingPointError, match="non-finite"):
        window_scores(lambda b: np.full(len(b), np.nan), x, window=16)
    with pytest.raises(ValueError, match="series has 20 rows, window needs 32"):
        step_scores(mean_scorer, x, window=32)


def test_step_scores_memory_is_linear_in_T():
    T, W = 100_000, 100
    x = np.zeros((T, 2), np.float32)
    tracemalloc.start()
    out = step_scores(lambda b: b[:, 0, 0] + 1.0, x, W, batch_size=256)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert np.array_equal(out, np.ones(T))
    assert peak < 20 * T * 8  # a few (T,) float64 arrays; T*W*8 = 80 MB would be the naive matrix


@pytest.mark.parametrize("stride", [1, 3, 8])
def test_token_scores_map_each_step_to_its_token(stride):
    """(B, N) token scores: a step gets the mean over covering windows of the score of the token holding it."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(45, 2)).astype(np.float32)
    window, patch = 8, 2
    table = rng.random(45)  # a token's score = table[first step of the token]: any mapping error shows

    def token_scorer(batch):
        firsts = [int(np.flatnonzero((x[:, 0] == w[0, 0]))[0]) for w in batch]  # recover each window's start
        return np.array([[table[s + k * patch] for k in range(window // patch)] for s in firsts])

    got = step_scores(token_scorer, x, window, stride)
    starts = window_starts(45, window, stride)
    want = np.zeros(45)
    for t in range(45):
        covering = [s for s in starts if s <= t < s + window]
        want[t] = np.mean([table[s + ((t - s) // patch) * patch] for s in covering])
    np.testing.assert_allclose(got, want)
