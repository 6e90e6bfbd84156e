"""Great Expectations checks on an ingested series, before anything is fit on it.

Checks: same channels in the same order in train and test, numeric finite values (gaps must have
been handled by the loader's explicit `gap_policy`), binary labels of the right length, and enough
rows for one window in the fit part, the validation part and the test part.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from aster.data import Dataset
from aster.data.prepare import CONSTANT_POLICIES, constant_channels, split_point

log = logging.getLogger(__name__)
FLOAT32_MAX = float(np.finfo(np.float32).max)


@dataclass
class ValidationResult:
    series: str
    success: bool
    failures: list[str]  # one readable line per failed expectation
    report: dict  # GX's own JSON report per batch
    warnings: list[str] = field(default_factory=list)  # accepted by policy, reported (constant channels)


def _expectations(gxe, channels: list[str], min_rows: int, labelled: bool) -> list:
    columns = list(channels) + (["label"] if labelled else [])
    exps = [gxe.ExpectTableColumnsToMatchOrderedList(column_list=columns),
            gxe.ExpectTableRowCountToBeBetween(min_value=min_rows)]
    for c in channels:
        exps.append(gxe.ExpectColumnValuesToNotBeNull(column=c))
        exps.append(gxe.ExpectColumnValuesToBeBetween(column=c, min_value=-FLOAT32_MAX, max_value=FLOAT32_MAX))
    if labelled:
        exps.append(gxe.ExpectColumnValuesToNotBeNull(column="label"))
        exps.append(gxe.ExpectColumnValuesToBeInSet(column="label", value_set=[0, 1]))
    return exps


def _describe(result) -> str:
    cfg = result.expectation_config
    kwargs = {k: v for k, v in cfg.kwargs.items() if k not in ("batch_id",)}
    observed = result.result.get("observed_value", result.result.get("unexpected_count"))
    return f"{cfg.type}({', '.join(f'{k}={v!r}' for k, v in kwargs.items())}) failed; observed: {observed!r}"


def validate_series(ds: Dataset, window: int, train_fraction: float = 0.8,
                    constant: str = "keep") -> ValidationResult:
    """Run the expectation suites on one series; never raises for bad data, reports instead. Channels constant
    on the fit part are a failure under the policy "error", a warning under "keep" (aster.data.prepare)."""
    if constant not in CONSTANT_POLICIES:
        raise ValueError(f"prepare.constant_channels must be one of {CONSTANT_POLICIES}, got {constant!r}")
    import great_expectations as gx
    import great_expectations.expectations as gxe

    ctx = gx.get_context(mode="ephemeral")
    try:
        from great_expectations.data_context.types.base import ProgressBarsConfig
        ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    except ImportError:  # pragma: no cover - only cosmetic
        pass
    test_channels = list(ds.provenance.get("test_channels", ds.channels))
    cut = split_point(len(ds.train), train_fraction)
    batches = {
        "train_fit": (pd.DataFrame(ds.train[:cut], columns=ds.channels), ds.channels, False),
        "train_val": (pd.DataFrame(ds.train[cut:], columns=ds.channels), ds.channels, False),
        "test": (pd.DataFrame(ds.test, columns=test_channels).assign(label=ds.test_labels), ds.channels, True),
    }
    source = ctx.data_sources.add_pandas("ingested")
    failures, report = [], {}
    for part, (frame, expected_channels, labelled) in batches.items():
        suite = ctx.suites.add(gx.ExpectationSuite(name=f"{part}_suite"))
        for exp in _expectations(gxe, expected_channels, window, labelled):
            suite.add_expectation(exp)
        batch_def = source.add_dataframe_asset(part).add_batch_definition_whole_dataframe("all")
        res = batch_def.get_batch(batch_parameters={"dataframe": frame}).validate(suite)
        report[part] = res.to_json_dict()
        failures += [f"{ds.name} [{part}]: {_describe(r)}" for r in res.results if not r.success]
    flat = constant_channels(ds.train[:cut], list(ds.channels)) if cut else {}
    kept = ": kept with scale max(|mean|, 1)" if constant == "keep" else ""
    lines = [f"{ds.name} [train_fit]: channel {ch!r} is constant ({v:g}) on the fit part; "
             f"prepare.constant_channels: {constant}{kept}" for ch, v in flat.items()]
    if constant == "error":
        failures += lines
    return ValidationResult(series=ds.name, success=not failures, failures=failures, report=report,
                            warnings=lines if constant == "keep" else [])
