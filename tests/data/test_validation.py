"""Great Expectations checks: what passes, and a readable line per failed expectation."""

import numpy as np

from aster.data import Dataset
from aster.data.validation import validate_series


def good(n_train=600, n_test=300) -> Dataset:
    rng = np.random.default_rng(0)
    labels = np.zeros(n_test)
    labels[100:120] = 1
    return Dataset("toy", rng.normal(size=(n_train, 3)), rng.normal(size=(n_test, 3)), labels, ["a", "b", "c"])


def test_clean_series_passes():
    result = validate_series(good(), window=50)
    assert result.success and result.failures == []
    assert set(result.report) == {"train_fit", "train_val", "test"}


def test_each_problem_is_named():
    ds = good()
    ds.train[10, 1] = np.nan
    ds.test[5, 2] = np.inf
    ds.test_labels[7] = 2
    ds.provenance["test_channels"] = ["a", "c", "b"]  # the test file had another column order
    failures = validate_series(ds, window=50).failures
    text = "\n".join(failures)
    assert "[train_fit]: expect_column_values_to_not_be_null(column='b')" in text
    assert "[test]: expect_column_values_to_be_between(column='b'" in text  # test column 2 is named b there
    assert "[test]: expect_column_values_to_be_in_set(column='label'" in text
    assert "expect_table_columns_to_match_ordered_list" in text


def test_constant_channel_is_reported_by_policy():
    ds = good()
    ds.train[:, 2] = 3.5  # constant on the fit part
    kept = validate_series(ds, window=50, constant="keep")
    assert kept.success and kept.warnings == [
        "toy [train_fit]: channel 'c' is constant (3.5) on the fit part; prepare.constant_channels: keep: kept with "
        "scale max(|mean|, 1)"]
    refused = validate_series(ds, window=50, constant="error")
    assert not refused.success and "channel 'c' is constant" in refused.failures[-1]
    assert validate_series(good(), window=50).warnings == []


def test_too_few_rows_for_a_window():
    failures = validate_series(good(n_train=200), window=50).failures
    assert any("[train_val]" in f and "row_count" in f for f in failures)
