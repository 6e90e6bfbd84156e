"""ASD (InterFusion): data/processed/omi-N_{train,test,test_label}.pkl, read with a numpy-only unpickler.

The release ships pickles; the restricted unpickler loads plain numpy arrays and refuses anything that could
run code.
"""

from __future__ import annotations

import io
import pickle
import re
from pathlib import Path
from typing import Sequence

import numpy as np

from aster.data import DataError, Dataset
from aster.data.loaders._common import (_check_len, _Container, _fill_gaps, _gap_note, _labels01, _natural,
                                        _oneline, _provenance)

_ASD_RE = re.compile(r"(?:^|/)(omi-\d+)_(train|test|test_label)\.pkl$")
_NUMPY2 = int(np.__version__.split(".")[0]) >= 2


class NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles plain numpy arrays only; any other global (code execution) is refused."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype")}

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"global {module}.{name} not allowed")
        if _NUMPY2:
            module = module.replace("numpy.core", "numpy._core")
        return super().find_class(module, name)


def _unpickle_array(data: bytes, where: str) -> np.ndarray:
    try:
        a = NumpyOnlyUnpickler(io.BytesIO(data)).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as e:
        raise DataError(f"{where}: refused or unreadable pickle ({_oneline(e)})") from None
    if not isinstance(a, np.ndarray):
        raise DataError(f"{where}: pickle holds {type(a).__name__}, expected a numpy array")
    return a


def load_asd(path: Path, *, entities: Sequence[int | str] | None = None, gap_policy: str = "error") -> list[Dataset]:
    """ASD (InterFusion): 12 entities omi-1..omi-12 from pickles, via a numpy-only restricted unpickler."""
    wanted = None if entities is None else {e if str(e).startswith("omi-") else f"omi-{e}" for e in map(str, entities)}
    src = _Container(path, _ASD_RE)
    parts: dict[str, dict[str, tuple[np.ndarray, str]]] = {}
    for m in src:
        ent, part = m.match.groups()
        if wanted is None or ent in wanted:
            parts.setdefault(ent, {})[part] = (_unpickle_array(m.data, m.where), m.where)
    names = sorted(parts, key=_natural)
    if wanted is not None and wanted - set(names):
        raise DataError(f"{src.label}: ASD entities not found: {sorted(wanted - set(names), key=_natural)}")
    if not names:
        raise DataError(f"{src.label}: no ASD pickles (omi-N_train/test/test_label.pkl)")
    out = []
    for ent in names:
        p = parts[ent]
        miss = [k for k in ("train", "test", "test_label") if k not in p]
        if miss:
            raise DataError(f"{src.label}: {ent}_{miss[0]}.pkl not found")
        (tr, w_tr), (te, w_te), (lab, w_lab) = p["train"], p["test"], p["test_label"]
        if tr.ndim != 2 or te.ndim != 2 or tr.shape[1] != te.shape[1]:
            raise DataError(f"{w_te}: shape {te.shape} does not match train {tr.shape}")
        lab = _labels01(np.asarray(lab).reshape(-1), w_lab, "label", first_line=0)
        _check_len(lab, len(te), w_lab, w_te)
        channels = [f"metric_{i}" for i in range(tr.shape[1])]
        filled = {}
        tr = _fill_gaps(tr.astype(np.float64), w_tr, channels, gap_policy, filled)
        te = _fill_gaps(te.astype(np.float64), w_te, channels, gap_policy, filled)
        notes = ["InterFusion split (train = first 30 days, test = last 15); TAB's ASD split is not stated; "
                 "TAB's ASD_dataset_N is presumably omi-N", *_gap_note(filled, gap_policy)]
        out.append(Dataset(f"ASD/{ent}", tr, te, lab, channels,
                           _provenance("asd", src.sha_of([w_tr, w_te, w_lab]), notes, entity=ent,
                                       members=[w_tr, w_te, w_lab],
                                       gap_policy=gap_policy, gaps_filled=filled)))
    return out
