import tracemalloc

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from aster.windows import SlidingWindows, windows_batch


@pytest.mark.parametrize("T,W,stride", [(50, 7, 1), (50, 7, 3), (23, 5, 5), (9, 9, 2), (100, 1, 4)])
def test_windows_match_naive_slices(T, W, stride):
    a = np.random.default_rng(T * W + stride).normal(size=(T, 3)).astype(np.float32)
    ds = SlidingWindows(a, W, stride)
    naive = [a[s:s + W] for s in range(0, T - W + 1, stride)]
    assert len(ds) == len(naive)
    for i, w in enumerate(naive):
        assert ds[i].dtype == torch.float32 and torch.equal(ds[i], torch.from_numpy(w))
    assert torch.equal(ds[-1], torch.from_numpy(naive[-1]))
    idx = np.random.default_rng(0).integers(0, len(ds), 17)
    assert np.array_equal(ds.batch(idx), np.stack([naive[i] for i in idx]))
    assert np.array_equal(windows_batch(a, idx * stride, W), np.stack([naive[i] for i in idx]))
    with pytest.raises(IndexError):
        ds[len(ds)]


def test_training_windows_have_no_end_aligned_extra():
    ds = SlidingWindows(np.arange(20, dtype=np.float32).reshape(10, 2), window=4, stride=4)
    assert len(ds) == 2 and ds[1][-1, 0].item() == 14.0  # rows 8, 9 are not used for training


def test_bad_input_errors():
    with pytest.raises(ValueError, match="series has 5 rows, window needs 10"):
        SlidingWindows(np.zeros((5, 2), np.float32), 10)
    with pytest.raises(ValueError, match="2-D"):
        SlidingWindows(np.zeros(50, np.float32), 10)
    with pytest.raises(ValueError, match="floats"):
        SlidingWindows(np.zeros((50, 2), np.int64), 10)
    with pytest.raises(ValueError, match="stride"):
        SlidingWindows(np.zeros((50, 2), np.float32), 10, stride=0)


def test_dataloader_batches_and_float64_input():
    a = np.random.default_rng(1).normal(size=(40, 2))  # float64 in, float32 windows out
    ds = SlidingWindows(a, 6)
    batches = list(DataLoader(ds, batch_size=8))
    assert [b.shape for b in batches[:1]] == [torch.Size([8, 6, 2])] and batches[0].dtype == torch.float32
    naive = np.stack([a[s:s + 6] for s in range(35)]).astype(np.float32)
    assert torch.equal(torch.cat(batches), torch.from_numpy(naive))


def test_mmap_series_is_not_copied(tmp_path):
    T, C, W = 1_000_000, 8, 100
    path = tmp_path / "series.npy"
    np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(T, C))[-1] = 1.0
    mm = np.load(path, mmap_mode="r")
    tracemalloc.start()
    ds = SlidingWindows(mm, W)
    batch = ds.batch(np.arange(len(ds) - 64, len(ds)))
    item = ds[len(ds) - 1]
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(ds) == T - W + 1
    assert np.shares_memory(ds.series, mm) and not ds.series.flags.owndata
    assert peak < 2 * 64 * W * C * 4 + 1_000_000  # one batch, nowhere near T*C*4 = 32 MB or T*W*C*4 = 3.2 GB
    assert batch.shape == (64, W, C) and batch[-1, -1, 0] == 1.0 and item[-1, 0].item() == 1.0
