"""Stage `prepare`: chronological 80/20 split, scaler fit on the 80 % part only, scaled arrays as .npy."""

from __future__ import annotations

import logging

from pipeline.common import Paths, one_line_errors, params, stage_dataset

log = logging.getLogger("prepare")


def run(p: dict, paths: Paths) -> None:
    from aster.data.prepare import prepare, save_prepared
    from aster.data.store import load_series, series_id
    from aster.io import atomic_dir

    with atomic_dir(paths.prepared) as out:
        for ds in load_series(paths.ingested):
            prepared = prepare(ds, p["prepare"]["train_fraction"], p["window"],
                               p["prepare"].get("constant_channels", "keep"),
                               p["prepare"].get("few_valued_scale", "zscore"))
            save_prepared(prepared, ds, out / series_id(ds.name))
            log.info("%s: fit %s, validation %s, test %s", ds.name, prepared.train.shape, prepared.val.shape,
                     prepared.test.shape)


def main() -> None:
    dataset = stage_dataset(__doc__)
    with one_line_errors():
        run(params("window", "prepare"), Paths(dataset))


if __name__ == "__main__":
    main()
