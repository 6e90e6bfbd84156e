"""Stage `ingest`: read one dataset in its original format into the ingested format (npz + json)."""

from __future__ import annotations

import logging

from pipeline.common import Paths, dataset_spec, one_line_errors, stage_dataset

log = logging.getLogger("ingest")


def run(spec: dict, paths: Paths) -> None:
    from aster.data.loaders import load
    from aster.data.store import save_series
    from aster.io import atomic_dir

    series = load(spec["loader"], spec.get("path"), **(spec.get("options") or {}))
    with atomic_dir(paths.ingested) as out:
        for ds in series:
            save_series(ds, out)
            log.info("%s: train %s, test %s, %.2f %% anomalous test steps", ds.name, ds.train.shape,
                     ds.test.shape, 100 * ds.test_labels.mean())


def main() -> None:
    dataset = stage_dataset(__doc__)
    with one_line_errors():
        run(dataset_spec(dataset), Paths(dataset))


if __name__ == "__main__":
    main()
