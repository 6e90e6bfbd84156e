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

Comparability caveats (see ../shared/data/*/SOURCE.md, PROTOCOL.md) are written into `provenance["notes"]`.
`describe_loaders()` returns this listing as data. Cost: xz decompression dominates the archives (SMD: one
machine or all 19 both take one pass, ~5-10 s on 2 cores); MSL, SKAB, ASD, Daphnet load in about a second.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import io
import json
import logging
import lzma
import os
import pickle
import re
import tarfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import pandas as pd

from aster.data import DataError, Dataset
from aster.io import sha256_file as io_sha256_file

log = logging.getLogger(__name__)

LOADERS: dict[str, Callable[..., list[Dataset]]] = {}
_OPTIONS: dict[str, dict[str, Any] | Callable[[], dict[str, Any]]] = {}  # kind -> {option: default}, or a thunk
GAP_POLICIES = ("error", "zero", "ffill")
TABLE_SUFFIXES = (".csv", ".csv.xz", ".csv.gz", ".csv.bz2", ".zip", ".csv.zip")
TAR_SUFFIXES = (".tar", ".tar.xz", ".txz", ".tar.gz", ".tgz", ".tar.bz2")
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


def shared_data_dir() -> Path:
    env = os.environ.get("ASTER_SHARED_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[3] / "shared" / "data"


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
# shared helpers: hashing, provenance, reading members of a directory or tar archive, CSV parsing, gaps, labels

_SHA_CACHE: dict[tuple, str] = {}


def sha256_file(path: Path) -> str:
    """Streamed sha256 of a file (cached on path, size and mtime)."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _SHA_CACHE:
        _SHA_CACHE[key] = io_sha256_file(path)
    return _SHA_CACHE[key]


def _provenance(loader: str, sha: dict[str, str], notes: Sequence[str], **extra) -> dict:
    return {"loader": loader, "source": list(sha), "sha256": dict(sha), "notes": list(notes), **extra}


def _oneline(e: BaseException) -> str:
    return " ".join(str(e).split())


@dataclass
class _Member:
    where: str  # for messages: the file path, or "archive:member"
    match: re.Match
    data: bytes


class _Container:
    """A directory (or one tar archive inside it) or a tar archive; members matching `pattern`, one pass."""

    def __init__(self, path: Path, pattern: re.Pattern):
        self.path, self.pattern, self.archive, self.files = path, pattern, None, []
        self.sha: dict[str, str] = {}
        if path.is_dir():
            self.files = [f for f in sorted(path.rglob("*"))
                          if f.is_file() and pattern.search(f.relative_to(path).as_posix())]
            archives = [f for f in sorted(path.iterdir()) if f.name.endswith(TAR_SUFFIXES)]
            if not self.files and len(archives) == 1:
                self.archive = archives[0]
        elif path.name.endswith(TAR_SUFFIXES) or tarfile.is_tarfile(path):
            self.archive = path
        else:
            raise DataError(f"{path}: expected a directory or a tar archive")

    def __iter__(self) -> Iterator[_Member]:
        if self.archive is None:
            for f in self.files:
                rel = f.relative_to(self.path).as_posix()
                data = f.read_bytes()
                self.sha[str(f)] = hashlib.sha256(data).hexdigest()
                yield _Member(str(f), self.pattern.search(rel), data)
            return
        self.sha[str(self.archive)] = sha256_file(self.archive)
        try:
            # Members in archive order, each read right after its header: one forward pass through the
            # decompressed stream (measured faster than the "r|*" streaming mode, whose reads are small).
            with tarfile.open(self.archive, "r:*") as tar:
                for m in tar:
                    hit = self.pattern.search(m.name) if m.isfile() else None
                    if hit:
                        yield _Member(f"{self.archive}:{m.name}", hit, tar.extractfile(m).read())
        except (tarfile.TarError, lzma.LZMAError, EOFError, OSError) as e:
            raise DataError(f"{self.archive}: cannot read archive ({_oneline(e)})") from None

    @property
    def label(self) -> str:
        return str(self.archive or self.path)

    def sha_of(self, wheres: Sequence[str]) -> dict[str, str]:
        """sha256 of the sources behind these members: the archive, or each file read from the directory."""
        if self.archive is not None:
            return {str(self.archive): self.sha[str(self.archive)]}
        return {w: self.sha[w] for w in wheres}


def _find(directory: Path, stem: str) -> Path:
    """`directory/stem` with a table suffix (.csv, .csv.xz, .zip, ...), case-insensitive."""
    if not directory.is_dir():
        raise DataError(f"{directory}: expected a directory holding {stem}.csv")
    for f in sorted(directory.iterdir()):
        low = f.name.lower()
        if any(low == stem.lower() + s for s in TABLE_SUFFIXES):
            return f
    raise DataError(f"{directory}: {stem}.csv not found (also tried {', '.join(TABLE_SUFFIXES[1:])})")


def _read_table(src: Path | bytes, where: str, **kw) -> pd.DataFrame:
    """pandas.read_csv with one-line DataErrors; a .zip must hold exactly one table; headers are stripped."""
    try:
        if isinstance(src, bytes):
            df = pd.read_csv(io.BytesIO(src), **kw)
        elif src.name.lower().endswith(".zip"):
            with zipfile.ZipFile(src) as z:
                names = [n for n in z.namelist() if not n.endswith("/") and not n.startswith("__MACOSX")]
                if len(names) != 1:
                    raise DataError(f"{where}: expected exactly one file inside the zip, found {names}")
                with z.open(names[0]) as f:
                    df = pd.read_csv(f, **kw)
        else:
            df = pd.read_csv(src, **kw)
    except FileNotFoundError:
        raise DataError(f"{where}: file not found") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{where}: empty file") from None
    except pd.errors.ParserError as e:
        raise DataError(f"{where}: malformed CSV, wrong number of fields ({_oneline(e)})") from None
    except (UnicodeDecodeError, zipfile.BadZipFile, lzma.LZMAError, EOFError, OSError) as e:
        raise DataError(f"{where}: cannot read ({_oneline(e)})") from None
    df.columns = [str(c).strip() for c in df.columns]
    return df


def _numeric(df: pd.DataFrame, where: str, header_lines: int = 1) -> np.ndarray:
    """float64 array of `df`; a non-numeric cell is a DataError naming its column and file line."""
    for c in df.columns:
        if pd.api.types.is_numeric_dtype(df[c]):
            continue
        num = pd.to_numeric(df[c], errors="coerce")
        bad = (num.isna() & df[c].notna()).to_numpy()
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            col = f"column {c!r}" if header_lines else f"field {int(c) + 1}"  # headerless: 1-based position
            raise DataError(f"{where}: non-numeric value {str(df[c].iloc[i])!r} in {col} "
                            f"at line {i + header_lines + 1}")
        df[c] = num
    return df.to_numpy(np.float64)


def _headerless(data: bytes, where: str, dtype=np.float32) -> np.ndarray:
    """A comma-separated numeric text file without header (SMD layout)."""
    try:
        return _read_table(data, where, header=None, dtype=dtype).to_numpy()
    except ValueError as e:
        if isinstance(e, DataError):
            raise
        return _numeric(_read_table(data, where, header=None), where, header_lines=0).astype(dtype)


def _fill_gaps(x: np.ndarray, where: str, channels: Sequence[str], policy: str, filled: dict) -> np.ndarray:
    """Apply the gap policy to the NaNs of `x` (rows x channels); record per-column fill counts in `filled`."""
    if policy not in GAP_POLICIES:
        raise DataError(f"gap_policy={policy!r}; choose one of {list(GAP_POLICIES)}")
    if np.isinf(x).any():
        j = int(np.flatnonzero(np.isinf(x).any(0))[0])
        raise DataError(f"{where}: infinite value in column {channels[j]!r}")
    nan = np.isnan(x)
    if not nan.any():
        return x
    counts = nan.sum(0)
    cols = np.flatnonzero(counts)
    if policy == "error":
        more = f" (and {len(cols) - 1} more columns)" if len(cols) > 1 else ""
        raise DataError(f"{where}: {counts[cols[0]]} missing values (NaN/empty) in column {channels[cols[0]]!r}"
                        f"{more}; set gap_policy='zero' or 'ffill' to fill them")
    if policy == "zero":
        x = np.where(nan, 0, x).astype(x.dtype, copy=False)
    else:
        x = pd.DataFrame(x).ffill().bfill().to_numpy(x.dtype)
        if np.isnan(x).any():
            j = int(np.flatnonzero(np.isnan(x).any(0))[0])
            raise DataError(f"{where}: column {channels[j]!r} is entirely empty; gap_policy='ffill' cannot fill it")
    per_col = {str(channels[j]): int(counts[j]) for j in cols}
    filled[where] = per_col
    log.info("%s: gap_policy=%s filled %d values in %d columns: %s", where, policy, int(counts.sum()),
             len(cols), per_col)
    return x


def _gap_note(filled: dict, policy: str) -> list[str]:
    if not filled:
        return []
    n = sum(sum(c.values()) for c in filled.values())
    return [f"{n} missing values filled with gap_policy={policy!r} (counts per file and column in gaps_filled)"]


def _labels01(values, where: str, column: str, first_line: int = 2) -> np.ndarray:
    """0/1 labels as int8; anything else (NaN, 2, text) is a DataError naming the file line."""
    raw = pd.Series(values)
    v = pd.to_numeric(raw, errors="coerce").to_numpy(np.float64)
    bad = ~np.isin(v, (0.0, 1.0))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(f"{where}: label column {column!r} has {str(raw.iloc[i])!r} at line {i + first_line}; "
                        f"expected 0 or 1")
    return v.astype(np.int8)


def _check_len(labels: np.ndarray, rows: int, where_labels: str, where_rows: str) -> None:
    if len(labels) != rows:
        raise DataError(f"{where_labels}: {len(labels)} labels for {rows} test rows of {where_rows}")


def _natural(s: str) -> tuple:
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s))


# ---------------------------------------------------------------------------------------------------------------
# PSM (eBay RANSynCoders): train.csv, test.csv, test_label.csv

PSM_TIME = "timestamp_(min)"


def read_psm_labels(path: Path) -> tuple[np.ndarray | None, np.ndarray]:
    """(timestamps or None, int8 0/1 labels) of PSM's test_label.csv[.xz]."""
    df = _read_table(path, str(path))
    if "label" not in df.columns:
        raise DataError(f"{path}: no 'label' column (columns: {list(df.columns)})")
    ts = _numeric(df[[PSM_TIME]], str(path))[:, 0] if PSM_TIME in df.columns else None
    return ts, _labels01(df["label"].to_numpy(), str(path), "label")


@register("psm")
def load_psm(path: Path, *, gap_policy: str = "error") -> list[Dataset]:
    """PSM (eBay): train.csv, test.csv, test_label.csv (.csv or .csv.xz) in one directory."""
    files = {k: _find(path, k) for k in ("train", "test", "test_label")}
    frames, filled = {}, {}
    for k in ("train", "test"):
        df = _read_table(files[k], str(files[k]))
        if PSM_TIME not in df.columns:
            raise DataError(f"{files[k]}: no {PSM_TIME!r} column (first columns: {list(df.columns)[:3]})")
        frames[k] = df
    channels = [c for c in frames["train"].columns if c != PSM_TIME]
    test_cols = [c for c in frames["test"].columns if c != PSM_TIME]
    if test_cols != channels:
        raise DataError(f"{files['test']}: {len(test_cols)} feature columns {test_cols[:3]}..., "
                        f"expected the {len(channels)} of {files['train'].name}")
    arrays = {k: _fill_gaps(_numeric(frames[k][channels], str(files[k])), str(files[k]), channels, gap_policy,
                            filled) for k in ("train", "test")}
    ts, labels = read_psm_labels(files["test_label"])
    _check_len(labels, len(arrays["test"]), str(files["test_label"]), str(files["test"]))
    test_ts = _numeric(frames["test"][[PSM_TIME]], str(files["test"]))[:, 0]
    if ts is not None and not np.array_equal(ts, test_ts):
        i = int(np.flatnonzero(ts != test_ts)[0])
        raise DataError(f"{files['test_label']}: timestamp {ts[i]} at line {i + 2} differs from {test_ts[i]} "
                        f"in {files['test'].name}")
    sha = {str(f): sha256_file(f) for f in files.values()}
    notes = ["original eBay split (train 132,481 / test 87,841 rows in the release; TAB keeps it)",
             *_gap_note(filled, gap_policy)]
    return [Dataset("PSM", arrays["train"], arrays["test"], labels, channels,
                    _provenance("psm", sha, notes, gap_policy=gap_policy, gaps_filled=filled))]


# ---------------------------------------------------------------------------------------------------------------
# PUMP (NSIBF): PUMP_train / PUMP_test, sensor* columns, label only in test

@register("pump")
def load_pump(path: Path, *, gap_policy: str = "error") -> list[Dataset]:
    """PUMP (NSIBF): PUMP_train and PUMP_test (.zip or .csv); keeps `sensor*` columns, `label` from test only."""
    files = {k: _find(path, f"PUMP_{k}") for k in ("train", "test")}
    frames = {k: _read_table(f, str(f)) for k, f in files.items()}
    channels = [c for c in frames["train"].columns if c.startswith("sensor")]
    if not channels:
        raise DataError(f"{files['train']}: no columns starting with 'sensor'")
    test_ch = [c for c in frames["test"].columns if c.startswith("sensor")]
    if test_ch != channels:
        raise DataError(f"{files['test']}: {len(test_ch)} sensor columns, expected the {len(channels)} of "
                        f"{files['train'].name}")
    if "label" not in frames["test"].columns:
        raise DataError(f"{files['test']}: no 'label' column")
    filled = {}
    arrays = {k: _fill_gaps(_numeric(frames[k][channels], str(files[k])), str(files[k]), channels, gap_policy,
                            filled) for k in ("train", "test")}
    labels = _labels01(frames["test"]["label"].to_numpy(), str(files["test"]), "label")
    notes = ["NSIBF (KDD 2021) PUMP files; train labels ignored, as in NSIBF's loader (PROTOCOL.md section 6)",
             f"TAB's PUMP.csv is inferred to be this train + test with train_lens 76,901; this train has "
             f"{len(arrays['train'])} rows", *_gap_note(filled, gap_policy)]
    sha = {str(f): sha256_file(f) for f in files.values()}
    return [Dataset("PUMP", arrays["train"], arrays["test"], labels, channels,
                    _provenance("pump", sha, notes, gap_policy=gap_policy, gaps_filled=filled))]


# ---------------------------------------------------------------------------------------------------------------
# SWaT: iTrust Normal/Attack files, or the processed SWaT_train/SWaT_test CSVs

_SWAT_LABELS = {"normal": 0, "attack": 1}


def _swat_file(directory: Path, given: str | None, words: tuple[str, ...], what: str) -> Path:
    if given is not None:
        f = Path(given) if Path(given).is_absolute() else directory / given
        if not f.exists():
            raise DataError(f"{f}: {what} file not found")
        return f
    hits = [f for f in sorted(directory.iterdir()) if f.is_file() and f.name.lower().endswith(TABLE_SUFFIXES)
            and any(w in f.name.lower() for w in words)]
    if len(hits) != 1:
        raise DataError(f"{directory}: need exactly one {what} file (name containing {' or '.join(words)}), "
                        f"found {[h.name for h in hits]}; pass {what}_file=")
    return hits[0]


def _head_lines(path: Path, n: int) -> list[str]:
    """First `n` text lines of a (possibly compressed or zipped) table file."""
    import bz2
    import gzip
    low = path.name.lower()
    try:
        if low.endswith(".zip"):
            with zipfile.ZipFile(path) as z:
                names = [x for x in z.namelist() if not x.endswith("/") and not x.startswith("__MACOSX")]
                with z.open(names[0]) as f:
                    return [f.readline().decode("utf-8", "replace") for _ in range(n)]
        opener = {".xz": lzma.open, ".gz": gzip.open, ".bz2": bz2.open}.get(path.suffix.lower(), open)
        with opener(path, "rt", errors="replace") as f:
            return [f.readline() for _ in range(n)]
    except (IndexError, zipfile.BadZipFile, lzma.LZMAError, EOFError, OSError) as e:
        raise DataError(f"{path}: cannot read ({_oneline(e)})") from None


def _read_swat(path: Path) -> tuple[pd.DataFrame, int]:
    """The table below its header row (iTrust exports may have title rows above it); header line number."""
    lines = _head_lines(path, 5)
    key = [re.sub(r"\s+", "", line).lower() for line in lines]
    r = next((i for i, k in enumerate(key) if "normal/attack" in k or "timestamp" in k), 0)
    return _read_table(path, str(path), skiprows=r), r + 1


def _swat_label_column(df: pd.DataFrame) -> str | None:
    for c in df.columns:
        if re.sub(r"\s+", "", c).lower() in ("normal/attack", "label", "attack"):
            return c
    return None


def _swat_labels(values: np.ndarray, where: str, column: str, first_line: int) -> np.ndarray:
    if pd.api.types.is_numeric_dtype(values):
        return _labels01(values, where, column, first_line)
    key = pd.Series(values).astype(str).str.replace(r"\s+", "", regex=True).str.lower()
    out = key.map(_SWAT_LABELS)
    if out.isna().any():
        i = int(np.flatnonzero(out.isna().to_numpy())[0])
        raise DataError(f"{where}: label {values[i]!r} in column {column!r} at line {i + first_line}; "
                        f"expected Normal or Attack")
    return out.to_numpy(np.int8)


@register("swat")
def load_swat(path: Path, *, gap_policy: str = "error", train_skip: int = 0, train_file: str | None = None,
              test_file: str | None = None) -> list[Dataset]:
    """SWaT: iTrust SWaT_Dataset_Normal/Attack CSVs, or the processed SWaT_train/SWaT_test CSVs (NSIBF style)."""
    if not path.is_dir():
        raise DataError(f"{path}: expected a directory holding the SWaT train (Normal) and test (Attack) files")
    files = {"train": _swat_file(path, train_file, ("normal", "train"), "train"),
             "test": _swat_file(path, test_file, ("attack", "test"), "test")}
    parts, filled, channels, notes = {}, {}, None, []
    for k, f in files.items():
        df, header_line = _read_swat(f)
        empty = [c for c in df.columns if c.startswith("Unnamed:") and df[c].isna().all()]
        df = df.drop(columns=empty)
        lab = _swat_label_column(df)
        if lab is None and k == "test":
            raise DataError(f"{f}: no label column ('Normal/Attack' or 'label')")
        feats = [c for c in df.columns if c != lab and re.sub(r"\s+", "", c).lower() != "timestamp"]
        if channels is None:
            channels = feats
        elif feats != channels:
            raise DataError(f"{f}: {len(feats)} feature columns, expected the {len(channels)} of "
                            f"{files['train'].name}" + ("" if len(feats) != len(channels) else
                                                        f" (first difference: {_first_diff(feats, channels)})"))
        x = _fill_gaps(_numeric(df[feats], str(f), header_line), str(f), feats, gap_policy, filled)
        y = _swat_labels(df[lab].to_numpy(), str(f), lab, header_line + 1) if lab else None
        if k == "train":
            if not 0 <= train_skip < len(x):
                raise DataError(f"{f}: train_skip={train_skip} out of range for {len(x)} rows")
            x, y = x[train_skip:], (y[train_skip:] if y is not None else None)
            if y is not None and y.any():
                notes.append(f"train file marks {int(y.sum())} rows as attack; train labels are ignored")
        parts[k] = (x, y)
    n_train = len(parts["train"][0])
    notes += [f"train {n_train} rows after train_skip={train_skip}; TAB's SWAT.csv uses train_lens 495,000 "
              "(Normal_v1 = Normal_v0 without its first 1,800 rows, inferred)",
              f"test {len(parts['test'][0])} rows (TAB: 449,919)", *_gap_note(filled, gap_policy)]
    sha = {str(f): sha256_file(f) for f in files.values()}
    return [Dataset("SWaT", parts["train"][0], parts["test"][0], parts["test"][1], channels,
                    _provenance("swat", sha, notes, gap_policy=gap_policy, gaps_filled=filled,
                                train_skip=train_skip))]


def _first_diff(a: list[str], b: list[str]) -> str:
    i = next(i for i, (u, v) in enumerate(zip(a, b)) if u != v)
    return f"column {i}: {a[i]!r} vs {b[i]!r}"


# ---------------------------------------------------------------------------------------------------------------
# CATSv2 (Solenix): data.csv (timestamp, 17 channels, y, category) + metadata.csv (start_time, end_time, ...)

CATS_NON_CHANNELS = ("timestamp", "y", "category")


@register("catsv2")
def load_catsv2(path: Path, *, subsets: Sequence[Sequence[int]] | None = None, metadata: str | None = None,
                gap_policy: str = "error") -> list[Dataset]:
    """CATSv2 release data.csv cut into series by `subsets` = [(start, end, train_len), ...] row ranges.

    `subsets` is required: TAB's 4 CATSv2 series are, by PROTOCOL.md section 1.2, probably TSB-AD-M's
    `138/139/141/143_CATSv2_id_{1,2,4,6}` files, but their row offsets in the 5-million-row release are not
    known here, so no default can be derived. Load the TSB-AD-M CSVs themselves with kind `tsbad_csv`.
    Rows [start, end) form a series, its first `train_len` rows are train. Labels: the `y` column when
    present, else 1 on every inclusive [start_time, end_time] of `metadata.csv` (same folder, or `metadata`).
    """
    data = _find(path, "data") if path.is_dir() else path
    if not subsets:
        raise DataError(f"{data}: option subsets=[(start, end, train_len), ...] is required (TAB's CATSv2 row "
                        "ranges are unknown); or load the TSB-AD-M CATSv2 CSVs with kind 'tsbad_csv'")
    try:
        subsets = [tuple(int(v) for v in s) for s in subsets]
    except (TypeError, ValueError):
        raise DataError(f"catsv2: subsets must be (start, end, train_len) integer triples, got {subsets!r}") from None
    if any(len(s) != 3 or not 0 <= s[0] < s[0] + s[2] < s[1] for s in subsets):
        raise DataError(f"catsv2: each subset needs 0 <= start < start + train_len < end, got {subsets}")
    n_rows = max(s[1] for s in subsets)
    df = _read_table(data, str(data), nrows=n_rows)
    if len(df) < n_rows:
        raise DataError(f"{data}: {len(df)} rows, subsets need {n_rows}")
    channels = [c for c in df.columns if c.lower() not in CATS_NON_CHANNELS]
    filled = {}
    x = _fill_gaps(_numeric(df[channels], str(data)), str(data), channels, gap_policy, filled)
    sha = {str(data): sha256_file(data)}
    notes = [f"{len(channels)} channels (the release has 17)"] if len(channels) != 17 else []
    if "y" in df.columns:
        y = _labels01(df["y"].to_numpy(), str(data), "y")
        notes.append("labels from the y column")
    else:
        meta = Path(metadata) if metadata else data.parent / "metadata.csv"
        if not meta.exists():
            raise DataError(f"{data}: no 'y' column and no metadata file {meta}")
        y = _cats_labels(df, data, meta)
        sha[str(meta)] = sha256_file(meta)
        notes.append(f"labels from {meta.name}: 1 on every inclusive [start_time, end_time]")
    notes.append("row ranges chosen by the caller; TAB's 4 CATSv2 subsets are not published (PROTOCOL 1.2)")
    notes += _gap_note(filled, gap_policy)
    out = []
    for start, end, train_len in subsets:
        cut = start + train_len
        out.append(Dataset(f"CATSv2/{start}-{end}", x[start:cut], x[cut:end], y[cut:end], channels,
                           _provenance("catsv2", sha, notes, rows=[start, end], train_len=train_len,
                                       gap_policy=gap_policy, gaps_filled=filled)))
    return out


def _cats_labels(df: pd.DataFrame, data: Path, meta: Path) -> np.ndarray:
    m = _read_table(meta, str(meta))
    for c in ("start_time", "end_time"):
        if c not in m.columns:
            raise DataError(f"{meta}: no {c!r} column (columns: {list(m.columns)})")
    if "timestamp" not in df.columns:
        raise DataError(f"{data}: no 'timestamp' column to match {meta.name} against")
    try:
        ts = pd.to_datetime(df["timestamp"]).to_numpy()
        start, end = (pd.to_datetime(m[c]).to_numpy() for c in ("start_time", "end_time"))
    except (ValueError, TypeError) as e:
        raise DataError(f"{meta}: cannot parse times ({_oneline(e)})") from None
    if not (ts[1:] >= ts[:-1]).all():
        raise DataError(f"{data}: timestamps are not sorted")
    mark = np.zeros(len(ts) + 1, np.int64)
    np.add.at(mark, np.searchsorted(ts, start, "left"), 1)
    np.add.at(mark, np.searchsorted(ts, end, "right"), -1)
    return (np.cumsum(mark[:-1]) > 0).astype(np.int8)


# ---------------------------------------------------------------------------------------------------------------
# TAB long CSV: date,data,cols (or data,cols); channel blocks in order of first appearance, `label` block last

def _tab_train_lens(path: Path) -> int:
    meta = path.parent / "DETECT_META.csv"
    if not meta.exists():
        raise DataError(f"{path}: option train_lens not given and no DETECT_META.csv next to it")
    m = _read_table(meta, str(meta))
    for c in ("file_name", "train_lens"):
        if c not in m.columns:
            raise DataError(f"{meta}: no {c!r} column")
    row = m[m["file_name"].astype(str).str.strip() == path.name]
    if len(row) != 1:
        raise DataError(f"{meta}: {len(row)} rows for file_name {path.name!r}, expected 1")
    return int(row["train_lens"].iloc[0])


@register("tab_csv")
def load_tab_csv(path: Path, *, train_lens: int | None = None, gap_policy: str = "error") -> list[Dataset]:
    """TAB long CSV (`date,data,cols` or `data,cols`) pivoted to T x C; the last block must be `label`."""
    where = str(path)
    header = list(_read_table(path, where, nrows=0).columns)
    if header not in (["date", "data", "cols"], ["data", "cols"]):
        raise DataError(f"{where}: columns {header}, expected date,data,cols or data,cols")
    read = dict(header=0, names=header, usecols=["data", "cols"])  # the date column is never parsed
    try:
        df = _read_table(path, where, dtype={"data": np.float64, "cols": "category"}, **read)
    except ValueError as e:
        if isinstance(e, DataError):
            raise
        _numeric(_read_table(path, where, dtype={"cols": "category"}, **read)[["data"]], where)  # names the line
        raise DataError(f"{where}: column 'data' is not numeric ({_oneline(e)})") from None
    codes = df["cols"].cat.codes.to_numpy()
    if (codes < 0).any():
        raise DataError(f"{where}: empty 'cols' cell at line {int(np.flatnonzero(codes < 0)[0]) + 2}")
    names = np.asarray(df["cols"].cat.categories, dtype=object)
    values = df["data"].to_numpy()
    starts = np.concatenate([[0], np.flatnonzero(codes[1:] != codes[:-1]) + 1])
    block_codes = codes[starts]
    if len(np.unique(block_codes)) == len(block_codes):  # contiguous blocks (TAB's layout): reshape, no copy
        order = block_codes
        lengths = np.diff(np.append(starts, len(codes)))
    else:  # interleaved rows: stable sort by channel in order of first appearance
        first = {c: i for i, c in reversed(list(enumerate(block_codes)))}
        order = np.array(sorted(first, key=first.get))
        rank = np.empty(len(names), np.int64)
        rank[order] = np.arange(len(order))
        idx = np.argsort(rank[codes], kind="stable")
        values = values[idx]
        lengths = np.bincount(rank[codes], minlength=len(order))
    channels = [str(names[c]) for c in order]
    if len(set(lengths)) != 1:
        j = int(np.argmin(lengths == lengths.max()))
        raise DataError(f"{where}: channel {channels[j]!r} has {lengths[j]} values, others {lengths.max()}")
    n = int(lengths[0])
    table = values.reshape(len(channels), n).T
    if "label" not in channels:
        raise DataError(f"{where}: no 'label' block in column 'cols'")
    if channels[-1] != "label":
        raise DataError(f"{where}: the 'label' block must be the last one, it is block "
                        f"{channels.index('label') + 1} of {len(channels)}")
    feats = channels[:-1]
    if train_lens is None:
        train_lens = _tab_train_lens(path)
    if not 0 < train_lens < n:
        raise DataError(f"{where}: train_lens={train_lens} out of range for {n} rows")
    filled = {}
    x = _fill_gaps(np.ascontiguousarray(table[:, :-1]), where, feats, gap_policy, filled)
    y = _labels01(table[:, -1], where, "label")
    notes = [f"TAB layout: first {train_lens} rows train, rest test; train part holds "
             f"{int(y[:train_lens].sum())} label-1 rows (ignored)", *_gap_note(filled, gap_policy)]
    name = path.name.split(".")[0]
    return [Dataset(name, x[:train_lens], x[train_lens:], y[train_lens:], feats,
                    _provenance("tab_csv", {where: sha256_file(path)}, notes, train_lens=int(train_lens),
                                gap_policy=gap_policy, gaps_filled=filled))]


# ---------------------------------------------------------------------------------------------------------------
# TSB-AD CSV: channel columns + `Label` last; train length in the file name (`_tr_<N>_`)

def _tsbad_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    files = sorted(f for f in path.iterdir() if f.is_file() and f.name.lower().endswith(TABLE_SUFFIXES))
    if not files:
        raise DataError(f"{path}: no TSB-AD CSV files (*.csv, *.csv.xz, ...)")
    return files


def _tsbad_one(f: Path, train_len: int | None, gap_policy: str, loader: str, notes: list[str]) -> Dataset:
    where = str(f)
    df = _read_table(f, where)
    if df.columns[-1].lower() != "label":
        raise DataError(f"{where}: last column is {df.columns[-1]!r}, expected 'Label'")
    if train_len is None:
        m = re.search(r"_tr_(\d+)_", f.name)
        if not m:
            raise DataError(f"{where}: no '_tr_<N>_' in the file name; pass train_len=")
        train_len = int(m.group(1))
    if not 0 < train_len < len(df):
        raise DataError(f"{where}: train_len={train_len} out of range for {len(df)} rows")
    channels = list(df.columns[:-1])
    filled = {}
    x = _fill_gaps(_numeric(df[channels], where), where, channels, gap_policy, filled)
    y = _labels01(df.iloc[:, -1].to_numpy(), where, df.columns[-1])
    notes = [*notes, f"TSB-AD split: first {train_len} rows train ({int(y[:train_len].sum())} label-1 rows "
             "there, ignored)", *_gap_note(filled, gap_policy)]
    name = f.name.split(".")[0].split("_tr_")[0]
    return Dataset(name, x[:train_len], x[train_len:], y[train_len:], channels,
                   _provenance(loader, {where: sha256_file(f)}, notes, train_len=train_len,
                               gap_policy=gap_policy, gaps_filled=filled))


@register("tsbad_csv")
def load_tsbad_csv(path: Path, *, train_len: int | None = None, gap_policy: str = "error") -> list[Dataset]:
    """TSB-AD CSV (channels + `Label` last), one file or every CSV of a directory; train length from `_tr_<N>_`."""
    files = _tsbad_files(path)
    if train_len is not None and len(files) > 1:
        raise DataError(f"{path}: train_len= applies to one file, {len(files)} found")
    return [_tsbad_one(f, train_len, gap_policy, "tsbad_csv", []) for f in files]


@register("daphnet")
def load_daphnet(path: Path, *, train_len: int | None = None, gap_policy: str = "error") -> list[Dataset]:
    """Daphnet as curated by TSB-AD-M (one series, 9 channels): the tsbad_csv reader with its caveat noted."""
    files = _tsbad_files(path)
    if len(files) != 1:
        raise DataError(f"{path}: expected the one TSB-AD-M Daphnet CSV, found {[f.name for f in files]}")
    note = ("TSB-AD-M's single Daphnet series; TAB's Daphnet is probably 7 recordings "
            "(daphnet_S01R02 ... S08R01), so results are not TAB-comparable")
    return [_tsbad_one(files[0], train_len, gap_policy, "daphnet", [note])]


# ---------------------------------------------------------------------------------------------------------------
# NASA telemanom (MSL, SMAP): labeled_anomalies.csv + data/{train,test}/<chan>.npy

_TELEMANOM_RE = re.compile(r"(?:^|/)(?:(labeled_anomalies)\.csv|(train|test)/([^/]+)\.npy)$")


@dataclass
class TelemanomArrays:
    """The benchmark arrays before the float32 cast (MSL's sha256 in SOURCE.md is over these)."""

    train: np.ndarray  # float64 (T_train, C), channels' train arrays concatenated in chan_id order
    test: np.ndarray  # float64 (T_test, C)
    labels: np.ndarray  # bool (T_test,)
    chan_ids: list[str]
    sha256: dict[str, str] = field(default_factory=dict)
    members: list[str] = field(default_factory=list)  # where each array came from, in order


def read_telemanom(path: Path, spacecraft: str = "MSL", exclude: Sequence[str] = ()) -> TelemanomArrays:
    """Sort labeled_anomalies.csv rows of `spacecraft` by chan_id (string), concatenate train then test."""
    src = _Container(Path(path), _TELEMANOM_RE)
    arrays: dict[tuple[str, str], tuple[np.ndarray, str]] = {}
    table = None
    for m in src:
        if m.match.group(1):
            table = (_read_table(m.data, m.where), m.where)
            continue
        try:
            a = np.load(io.BytesIO(m.data), allow_pickle=False)
        except (ValueError, OSError, EOFError) as e:
            raise DataError(f"{m.where}: not a readable .npy ({_oneline(e)})") from None
        if a.ndim != 2:
            raise DataError(f"{m.where}: array of shape {a.shape}, expected (T, channels)")
        arrays[m.match.group(2), m.match.group(3)] = (a.astype(np.float64, copy=False), m.where)
    if table is None:
        raise DataError(f"{src.label}: labeled_anomalies.csv not found")
    df, where = table
    for c in ("chan_id", "spacecraft", "anomaly_sequences", "num_values"):
        if c not in df.columns:
            raise DataError(f"{where}: no {c!r} column")
    df = df[(df["spacecraft"].astype(str).str.strip() == spacecraft)
            & ~df["chan_id"].astype(str).isin(list(exclude))]
    chans = sorted(df["chan_id"].astype(str))
    if not chans:
        raise DataError(f"{where}: no rows with spacecraft == {spacecraft!r}")
    if len(set(chans)) != len(chans):
        raise DataError(f"{where}: duplicate chan_id rows for {spacecraft}")
    rows = df.set_index(df["chan_id"].astype(str))
    trains, tests, labels, wheres = [], [], [], []
    for ch in chans:
        for part in ("train", "test"):
            if (part, ch) not in arrays:
                raise DataError(f"{src.label}: {part}/{ch}.npy not found (listed in labeled_anomalies.csv)")
        (tr, w_tr), (te, w_te) = arrays["train", ch], arrays["test", ch]
        width = trains[0].shape[1] if trains else tr.shape[1]
        for a, w in ((tr, w_tr), (te, w_te)):
            if a.shape[1] != width:
                raise DataError(f"{w}: {a.shape[1]} columns, expected {width} like the other channels")
        n = int(rows.loc[ch, "num_values"])
        if n != len(te):
            raise DataError(f"{where}: chan {ch} num_values {n} but {w_te} has {len(te)} rows")
        lab = np.zeros(len(te), bool)
        try:
            seqs = [(int(s), int(e)) for s, e in json.loads(rows.loc[ch, "anomaly_sequences"])]
        except (TypeError, ValueError):
            raise DataError(f"{where}: chan {ch}: anomaly_sequences {rows.loc[ch, 'anomaly_sequences']!r} "
                            "is not a list of [start, end]") from None
        for s, e in seqs:
            if not 0 <= s <= e < len(te):
                raise DataError(f"{where}: chan {ch}: anomaly [{s}, {e}] outside its {len(te)} test rows")
            lab[s:e + 1] = True
        trains.append(tr)
        tests.append(te)
        labels.append(lab)
        wheres += [w_tr, w_te]
    return TelemanomArrays(np.concatenate(trains), np.concatenate(tests), np.concatenate(labels), chans,
                           src.sha_of([table[1], *wheres]), wheres)


def _load_telemanom(path: Path, spacecraft: str, exclude: Sequence[str], gap_policy: str) -> list[Dataset]:
    t = read_telemanom(path, spacecraft, exclude)
    channels = ["value"] + [f"cmd_{i}" for i in range(1, t.train.shape[1])]
    filled = {}
    train = _fill_gaps(t.train, f"{path} ({spacecraft} train)", channels, gap_policy, filled)
    test = _fill_gaps(t.test, f"{path} ({spacecraft} test)", channels, gap_policy, filled)
    notes = [f"{len(t.chan_ids)} channels sorted by chan_id, train arrays then test arrays concatenated "
             "(the layout of TAB's/common MSL/SMAP arrays); labels 1 on inclusive anomaly_sequences",
             "column 0 is the telemetry value of whichever channel a row comes from, the rest command flags",
             *_gap_note(filled, gap_policy)]
    if exclude:
        notes.append(f"excluded chan_id {list(exclude)} (OmniAnomaly preprocessing drops P-2 for SMAP)")
    return [Dataset(spacecraft, train, test, t.labels, channels,
                    _provenance(spacecraft.lower(), t.sha256, notes, chan_ids=t.chan_ids, members=t.members,
                                gap_policy=gap_policy, gaps_filled=filled))]


@register("msl")
def load_msl(path: Path, *, exclude: Sequence[str] = (), gap_policy: str = "error") -> list[Dataset]:
    """MSL (telemanom): the 27 channels as one series, 55 columns."""
    return _load_telemanom(path, "MSL", exclude, gap_policy)


@register("smap")
def load_smap(path: Path, *, exclude: Sequence[str] = ("P-2",), gap_policy: str = "error") -> list[Dataset]:
    """SMAP (telemanom): channels as one series, 25 columns; P-2 dropped by default (OmniAnomaly convention)."""
    return _load_telemanom(path, "SMAP", exclude, gap_policy)


# ---------------------------------------------------------------------------------------------------------------
# SMD (OmniAnomaly): ServerMachineDataset/{train,test,test_label}/machine-X-Y.txt

_SMD_RE = re.compile(r"(?:^|/)(train|test|test_label)/(machine-\d+-\d+)\.txt$")
SMD_MACHINES = 28


def _machine(m: str) -> str:
    m = str(m)
    return m if m.startswith("machine-") else f"machine-{m}"


@register("smd")
def load_smd(path: Path, *, machines: str | Sequence[str] = "all", mode: str = "per_machine",
             gap_policy: str = "error") -> list[Dataset]:
    """SMD: OmniAnomaly layout (directory or tar archive read in place); one series per machine, or concatenated."""
    if mode not in ("per_machine", "concat"):
        raise DataError(f"smd: mode={mode!r}; choose 'per_machine' or 'concat'")
    wanted = None if machines == "all" else {_machine(m) for m in ([machines] if isinstance(machines, str)
                                                                     else machines)}
    src = _Container(path, _SMD_RE)
    parts: dict[str, dict[str, tuple[np.ndarray, str]]] = {}
    for m in src:
        part, machine = m.match.groups()
        if wanted is not None and machine not in wanted:
            continue
        if part == "test_label":
            arr = _headerless(m.data, m.where, np.float64)
            if arr.shape[1] != 1:
                raise DataError(f"{m.where}: {arr.shape[1]} columns, expected one 0/1 label per line")
            arr = _labels01(arr[:, 0], m.where, "label", first_line=1)
        else:
            arr = _headerless(m.data, m.where, np.float32)
        parts.setdefault(machine, {})[part] = (arr, m.where)
    have = sorted((k for k, v in parts.items() if {"train", "test"} <= set(v)), key=_natural)
    if wanted is not None:
        missing = sorted(wanted - set(have), key=_natural)
        if missing:
            label_only = [k for k in missing if k in parts]
            raise DataError(f"{src.label}: no train/test features for {missing}"
                            + (f" ({label_only} have labels only)" if label_only else ""))
    if not have:
        raise DataError(f"{src.label}: no machine with both train/ and test/ feature files")
    channels = [f"dim_{i}" for i in range(parts[have[0]]["train"][0].shape[1])]
    series = []  # (machine, train, test, labels, wheres, gaps filled)
    for k in have:
        p = parts[k]
        if "test_label" not in p:
            raise DataError(f"{src.label}: test_label/{k}.txt not found")
        (tr, w_tr), (te, w_te), (lab, w_lab) = p["train"], p["test"], p["test_label"]
        for a, w in ((tr, w_tr), (te, w_te)):
            if a.shape[1] != len(channels):
                raise DataError(f"{w}: {a.shape[1]} columns, expected {len(channels)}")
        _check_len(lab, len(te), w_lab, w_te)
        filled = {}
        tr = _fill_gaps(tr, w_tr, channels, gap_policy, filled)
        te = _fill_gaps(te, w_te, channels, gap_policy, filled)
        series.append((k, tr, te, lab, [w_tr, w_te, w_lab], filled))
    if mode == "per_machine":
        return [Dataset(f"SMD/{k}", tr, te, lab, channels,
                        _provenance("smd", src.sha_of(ws), ["one OmniAnomaly machine, original train/test halves; "
                                    "TAB evaluates SMD as all 28 machines concatenated", *_gap_note(fl, gap_policy)],
                                    machine=k, members=ws, gap_policy=gap_policy, gaps_filled=fl))
                for k, tr, te, lab, ws, fl in series]
    filled = {w: c for s in series for w, c in s[5].items()}
    notes = [f"{len(have)} machines concatenated in natural machine order (train parts, then test parts)",
             *_gap_note(filled, gap_policy)]
    if len(have) < SMD_MACHINES:
        notes.append(f"NOT TAB's SMD: only {len(have)} of {SMD_MACHINES} machines (TAB's SMD.csv concatenates "
                     "all 28, train_lens 708,405); scores are not comparable")
    wheres = [w for s in series for w in s[4]]
    return [Dataset("SMD" if len(have) == SMD_MACHINES else f"SMD/concat-{len(have)}",
                    np.concatenate([s[1] for s in series]), np.concatenate([s[2] for s in series]),
                    np.concatenate([s[3] for s in series]), channels,
                    _provenance("smd", src.sha_of(wheres), notes, machines=have,
                                train_offsets=np.cumsum([0] + [len(s[1]) for s in series]).tolist(),
                                test_offsets=np.cumsum([0] + [len(s[2]) for s in series]).tolist(),
                                members=wheres, gap_policy=gap_policy, gaps_filled=filled))]


# ---------------------------------------------------------------------------------------------------------------
# SKAB v0.9: data/{valve1,valve2,other}/<n>.csv, ';'-separated; anomaly-free.csv skipped

_SKAB_RE = re.compile(r"(?:^|/)(valve1|valve2|other)/(\d+)\.csv$")


@register("skab")
def load_skab(path: Path, *, train_rows: int = 400, series: Sequence[str] | None = None,
              gap_policy: str = "error") -> list[Dataset]:
    """SKAB: the 34 labelled experiments as 34 series; first `train_rows` rows train (SKAB authors' protocol)."""
    wanted = None if series is None else {str(s).removeprefix("SKAB/") for s in series}
    out, found = [], set()
    src = _Container(path, _SKAB_RE)
    for m in src:
        key = f"{m.match.group(1)}/{m.match.group(2)}"
        if wanted is not None and key not in wanted:
            continue
        found.add(key)
        df = _read_table(m.data, m.where, sep=";")
        if "anomaly" not in df.columns:
            raise DataError(f"{m.where}: no 'anomaly' column (columns: {list(df.columns)})")
        channels = [c for c in df.columns if c not in ("datetime", "anomaly", "changepoint")]
        if not 0 < train_rows < len(df):
            raise DataError(f"{m.where}: train_rows={train_rows} out of range for {len(df)} rows")
        filled = {}
        x = _fill_gaps(_numeric(df[channels], m.where), m.where, channels, gap_policy, filled)
        y = _labels01(df["anomaly"].to_numpy(), m.where, "anomaly")
        notes = [f"SKAB authors' split (core/utils.py preprocess_skab): first {train_rows} rows train, rest test; "
                 "TAB's split inside a SKAB file is unknown",
                 f"train part holds {int(y[:train_rows].sum())} anomalous rows (ignored)",
                 "label = 'anomaly' column; 'changepoint' not used", *_gap_note(filled, gap_policy)]
        out.append(Dataset(f"SKAB/{key}", x[:train_rows], x[train_rows:], y[train_rows:], channels,
                           _provenance("skab", src.sha_of([m.where]), notes, member=m.where, train_rows=train_rows,
                                       gap_policy=gap_policy, gaps_filled=filled)))
    if wanted is not None and wanted - found:
        raise DataError(f"{src.label}: SKAB series not found: {sorted(wanted - found, key=_natural)}")
    if not out:
        raise DataError(f"{src.label}: no SKAB files ({{valve1,valve2,other}}/<n>.csv)")
    return sorted(out, key=lambda d: _natural(d.name))


# ---------------------------------------------------------------------------------------------------------------
# ASD (InterFusion): data/processed/omi-N_{train,test,test_label}.pkl, read with a numpy-only unpickler

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


@register("asd")
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


# ---------------------------------------------------------------------------------------------------------------
# Our ingested format (aster.data.store): <id>.npz (train, test, test_labels, channels) + <id>.json


@register("npz")
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


# ---------------------------------------------------------------------------------------------------------------
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


register("synthetic", _synthetic_options)(load_synthetic)  # options resolved on first use (lazy scipy import)
DEFAULT_PATHS["synthetic"] = str(Path(__file__).with_name("synthetic.py"))  # absolute: wins over the shared dir
