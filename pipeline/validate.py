"""Stage `validate`: Great Expectations on every ingested series; a failure stops the pipeline."""

from __future__ import annotations

import logging
import sys

from pipeline.common import Paths, params, stage_dataset

log = logging.getLogger("validate")


def run(p: dict, paths: Paths) -> list[str]:
    """Validate every ingested series, write the JSON report; return the failed expectations (one line each)."""
    from aster.data.store import load_series
    from aster.data.validation import validate_series
    from aster.io import write_json

    results = [validate_series(ds, p["window"], p["prepare"]["train_fraction"],
                               p["prepare"].get("constant_channels", "keep")) for ds in load_series(paths.ingested)]
    failures = [line for r in results for line in r.failures]
    warnings = [line for r in results for line in r.warnings]
    for line in warnings:
        log.warning("%s", line)
    write_json(paths.validation, {
        "dataset": paths.dataset, "success": not failures, "failures": failures, "warnings": warnings,
        "series": {r.series: r.report for r in results}})
    return failures


def main() -> None:
    dataset = stage_dataset(__doc__)
    paths = Paths(dataset)
    failures = run(params("window", "prepare"), paths)
    if failures:
        print(f"validation of '{dataset}' failed ({len(failures)} expectations; report: {paths.validation}):",
              file=sys.stderr)
        for line in failures:
            print(f"  - {line}", file=sys.stderr)
        raise SystemExit(1)
    print(f"validation of '{dataset}': all expectations met")


if __name__ == "__main__":
    main()
