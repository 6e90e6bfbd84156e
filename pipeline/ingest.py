"""Stage `ingest`: read one dataset in its original format into the ingested format (npz + json)."""

from __future__ import annotations

import argparse
import logging

from pipeline.common import Paths, dataset_spec, one_line_errors, setup_logging

log = logging.getLogger("ingest")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("dataset")
    args = parser.parse_args()
    setup_logging()
    spec = dataset_spec(args.dataset)
    from aster.data.loaders import load
    from aster.data.store import save_series
    from aster.io import atomic_dir

    with one_line_errors():
        series = load(spec["loader"], spec.get("path"), **(spec.get("options") or {}))
        paths = Paths(args.dataset)
        with atomic_dir(paths.ingested) as out:
            for ds in series:
                save_series(ds, out)
                log.info("%s: train %s, test %s, %.2f %% anomalous test steps", ds.name, ds.train.shape,
                         ds.test.shape, 100 * ds.test_labels.mean())


if __name__ == "__main__":
    main()
