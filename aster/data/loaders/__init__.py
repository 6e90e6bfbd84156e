"""One loader per source format; every loader returns `list[Dataset]` (one series, or several).

`load(kind, path=None, **options)` dispatches through `LOADERS`. With `path=None` the dataset's file in the
shared data folder is used (`$ASTER_SHARED_DATA`, else `../shared/data` beside the repository root).
Every loader reads in place (a tar archive in one forward pass, never unpacked), records provenance (`loader`,
`source`, `sha256` of each source file, `notes`), and raises `DataError` with one line naming the file
and the problem. Options common to all file loaders: `gap_policy` = "error" (default: any NaN/empty cell
is an error naming file, column and count) | "zero" (TSLib convention) | "ffill" (forward fill; leading
gaps take the first valid value); filled counts are logged and stored in `provenance["gaps_filled"]`.

kind        path                                   options (default)                    series
----------  -------------------------------------  -----------------------------------  ------------------------
psm         dir: train/test/test_label .csv[.xz]   gap_policy                           "PSM"
pump        dir: PUMP_train/PUMP_test .zip|.csv    gap_policy                           "PUMP"
swat        dir: SWaT_Dataset_Normal*/Attack* or   gap_policy, train_skip (0),          "SWaT"
            SWaT_train/SWaT_test (.csv/.xz/.zip;   train_file, test_file (auto)
            iTrust .xlsx: export to CSV first)
catsv2      data.csv[.xz] (+ metadata.csv)         subsets (required), metadata,        "CATSv2/<start>-<end>"
                                                   gap_policy
tab_csv     one TAB long CSV (date,data,cols)      train_lens (or DETECT_META.csv),     file stem
                                                   gap_policy
tsbad_csv   TSB-AD CSV file, or a dir of them      train_len (from "_tr_<N>_"),         stem before "_tr_"
                                                   gap_policy
daphnet     the TSB-AD-M Daphnet CSV (alias)       as tsbad_csv                         stem before "_tr_"
msl, smap   telemanom dir or tar archive           exclude (smap: ("P-2",)), gap_policy "MSL" / "SMAP"
smd         OmniAnomaly dir or tar archive         machines ("all" with features),      "SMD/machine-X-Y", or
                                                   mode (per_machine|concat), gap_policy "SMD" / "SMD/concat-N"
skab        SKAB dir or tar archive                train_rows (400), series (all 34),   "SKAB/valve1/0", ...
                                                   gap_policy
asd         InterFusion dir or tar archive         entities (all 12), gap_policy        "ASD/omi-1", ...
npz         ingested .npz (+ .json) file or dir    -                                    stored name
synthetic   aster/data/synthetic.py (provenance)   SyntheticConfig fields               "synthetic"

Comparability caveats (see docs/evaluation.md §1) are written into `provenance["notes"]`.
`describe_loaders()` returns this listing as data. Cost: xz decompression dominates the archives (SMD: one
machine or all 19 both take one pass, ~5-10 s on 2 cores); MSL, SKAB, ASD, Daphnet load in about a second.

This package holds the registry and `load`; each source family has its module (psm, pump, swat, catsv2, tab,
tsbad, telemanom, smd, skab, asd, native for npz/synthetic), and what they share (archive and CSV reading, gap
policy, labels, provenance, the shared data folder) is in `_common`. Every name is re-exported here.
"""

from __future__ import annotations

import inspect
import logging
import os
from pathlib import Path
from typing import Any, Callable

from aster.data import DataError, Dataset
from aster.data.loaders._common import GAP_POLICIES, TABLE_SUFFIXES, TAR_SUFFIXES, sha256_file, shared_data_dir
from aster.data.loaders.asd import NumpyOnlyUnpickler, load_asd
from aster.data.loaders.catsv2 import CATS_NON_CHANNELS, load_catsv2
from aster.data.loaders.native import _synthetic_options, load_npz, load_synthetic
from aster.data.loaders.psm import PSM_TIME, load_psm, read_psm_labels
from aster.data.loaders.pump import load_pump
from aster.data.loaders.skab import load_skab
from aster.data.loaders.smd import SMD_MACHINES, load_smd
from aster.data.loaders.swat import load_swat
from aster.data.loaders.tab import load_tab_csv
from aster.data.loaders.telemanom import TelemanomArrays, load_msl, load_smap, read_telemanom
from aster.data.loaders.tsbad import load_daphnet, load_tsbad_csv

__all__ = [
    "CATS_NON_CHANNELS", "DEFAULT_PATHS", "GAP_POLICIES", "LOADERS", "PSM_TIME", "SMD_MACHINES", "TABLE_SUFFIXES",
    "TAR_SUFFIXES", "NumpyOnlyUnpickler", "TelemanomArrays", "describe_loaders", "load", "load_asd", "load_catsv2",
    "load_daphnet", "load_msl", "load_npz", "load_psm", "load_pump", "load_skab", "load_smap", "load_smd",
    "load_swat", "load_synthetic", "load_tab_csv", "load_tsbad_csv", "loader_options", "read_psm_labels",
    "read_telemanom", "register", "sha256_file", "shared_data_dir",
]

log = logging.getLogger(__name__)

LOADERS: dict[str, Callable[..., list[Dataset]]] = {}
_OPTIONS: dict[str, dict[str, Any] | Callable[[], dict[str, Any]]] = {}  # kind -> {option: default}, or a thunk
DEFAULT_PATHS = {"msl": "MSL/msl_data.tar.xz", "smd": "SMD/ServerMachineDataset.tar.xz",
                 "skab": "SKAB/SKAB_data.tar.xz", "asd": "ASD/ASD_data.tar.xz", "daphnet": "Daphnet", "psm": "PSM"}


def register(kind: str, options: dict[str, Any] | Callable[[], dict[str, Any]] | None = None):
    """Add a loader `fn(path, **options)`; its options are its keyword-only parameters unless given."""
    def deco(fn):
        LOADERS[kind] = fn
        _OPTIONS[kind] = options if options is not None else {
            p.name: p.default for p in inspect.signature(fn).parameters.values() if p.kind == p.KEYWORD_ONLY}
        return fn
    return deco


def loader_options(kind: str) -> dict[str, Any]:
    """Option names of a loader with their defaults."""
    opts = _OPTIONS[kind]
    if callable(opts):
        opts = _OPTIONS[kind] = opts()
    return dict(opts)


def load(kind: str, path: str | os.PathLike | None = None, **options) -> list[Dataset]:
    """Read dataset `kind` from `path` (default: its copy in the shared data folder, if there is one)."""
    if kind not in LOADERS:
        raise DataError(f"unknown dataset kind {kind!r}; known: {', '.join(sorted(LOADERS))}")
    known = loader_options(kind)
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise DataError(f"{kind}: unknown option(s) {unknown}; known: {sorted(known) or 'none'}")
    if "gap_policy" in options and options["gap_policy"] not in GAP_POLICIES:
        raise DataError(f"{kind}: gap_policy={options['gap_policy']!r}; choose one of {list(GAP_POLICIES)}")
    if path is None:
        if kind not in DEFAULT_PATHS:
            raise DataError(f"{kind}: no path given and no default location for this kind")
        path = shared_data_dir() / DEFAULT_PATHS[kind]
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: not found (dataset kind {kind!r})")
    series = LOADERS[kind](path, **options)
    log.info("%s: loaded %d series from %s", kind, len(series), path)
    return series


def describe_loaders() -> dict[str, dict]:
    """kind -> summary line, options with defaults, default path (for a CLI listing)."""
    return {k: {"summary": (fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else "",
                "options": loader_options(k), "default_path": DEFAULT_PATHS.get(k)}
            for k, fn in sorted(LOADERS.items())}


# ---------------------------------------------------------------------------------------------------------------
# the registry: kind -> loader, in the order of the listing above

for _kind, _fn in (("psm", load_psm), ("pump", load_pump), ("swat", load_swat), ("catsv2", load_catsv2),
                   ("tab_csv", load_tab_csv), ("tsbad_csv", load_tsbad_csv), ("daphnet", load_daphnet),
                   ("msl", load_msl), ("smap", load_smap), ("smd", load_smd), ("skab", load_skab), ("asd", load_asd),
                   ("npz", load_npz)):
    register(_kind)(_fn)
del _kind, _fn
register("synthetic", _synthetic_options)(load_synthetic)  # options resolved on first use (lazy scipy import)
DEFAULT_PATHS["synthetic"] = str(Path(__file__).parent.with_name("synthetic.py"))  # absolute: wins over the shared dir
