"""Helpers shared by the loader tests in this folder: tiny fixtures are written in each original layout.

Imported as a plain module (`from loaders_testutil import ...`): pytest's default "prepend" import mode puts this
folder on sys.path when it imports a test module here, and the name is unique across the repository."""

import io
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd


def write_tar(path: Path, files: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:xz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def csv_bytes(df: pd.DataFrame, **kw) -> bytes:
    return df.to_csv(index=False, **kw).encode()


def rng_frame(rows: int, cols: list[str], seed: int = 0) -> pd.DataFrame:
    return pd.DataFrame(np.random.default_rng(seed).random((rows, len(cols))).round(6), columns=cols)
