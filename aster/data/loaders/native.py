"""Our own sources: the ingested .npz format (read back for round trips) and the embedded synthetic default."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from aster.data import DataError, Dataset
from aster.data.loaders._common import _labels01, _oneline, _provenance, sha256_file

# Our ingested format (aster.data.store): <id>.npz (train, test, test_labels, channels) + <id>.json

def load_npz(path: Path) -> list[Dataset]:
    """Ingested series (`aster.data.store.save_series`): one .npz, or every .npz of a directory."""
    from aster.data.store import read_series

    files = [path] if path.is_file() else sorted(path.glob("*.npz"))
    if not files:
        raise DataError(f"{path}: no .npz files")
    out = []
    for f in files:
        ds = read_series(f)
        prov = _provenance("npz", {str(f): sha256_file(f)}, ["round trip of our ingested format"],
                           original=ds.provenance)
        out.append(Dataset(ds.name, ds.train, ds.test, _labels01(ds.test_labels, str(f), "test_labels", 0),
                           ds.channels, prov))
    return out


# The embedded synthetic default (params.yaml `loader: synthetic`; path = the generator, for provenance)

def _synthetic_options() -> dict[str, Any]:
    from aster.data.synthetic import SyntheticConfig
    return {f.name: (f.default if f.default is not dataclasses.MISSING else f.default_factory())
            for f in dataclasses.fields(SyntheticConfig)}


def load_synthetic(path: Path | None = None, **options) -> list[Dataset]:
    """Synthetic series generated from code (`aster.data.synthetic`); options are SyntheticConfig fields."""
    from aster.data.synthetic import SyntheticConfig, make_synthetic
    try:
        ds = make_synthetic(SyntheticConfig(**options))
    except (TypeError, ValueError) as e:
        raise DataError(f"synthetic: {_oneline(e)}") from None
    sha = {str(path): sha256_file(Path(path))} if path is not None and Path(path).is_file() else {}
    ds.provenance = {**_provenance("synthetic", sha, []), **ds.provenance}
    return [ds]
