"""Promotion store for served models: immutable versions and one pointer, switched atomically.

    registry/
      .lock                   fcntl lock: one retraining (promotion) at a time
      DS/
        v0001/                a promoted export: SID/{model.onnx, card.json}, metrics.json, record.json
        v0002/
        current -> v0002      relative symlink; serve ASTER_MODEL_DIR=registry/DS/current/SID
        runs/                 one summary per retraining run (.json, .md, .log), whatever its decision

A version is built in a hidden temporary directory, fsynced, then renamed to vNNNN (rename is atomic), and only
then is `current` replaced by a new symlink with os.replace (atomic too). A crash at any point leaves `current`
pointing to a complete older version; leftovers of an interrupted promotion are hidden (dot-names) and removed by
the next one. Nothing here knows about DVC or Prefect: callers pass a directory and a record.
"""

from __future__ import annotations

import datetime as dt
import errno
import fcntl
import json
import os
import re
import secrets
import shutil
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

VERSION_RE = re.compile(r"^v(\d{4,})$")
CURRENT, RECORD, METRICS, RUNS, LOCK = "current", "record.json", "metrics.json", "runs", ".lock"


class RegistryBusy(RuntimeError):
    """Another process holds the registry lock (a retraining is running)."""


@dataclass(frozen=True)
class Version:
    dataset: str
    name: str  # "v0003"
    path: Path

    @property
    def record(self) -> dict:
        return json.loads((self.path / RECORD).read_text())

    @property
    def metrics_path(self) -> Path:
        return self.path / METRICS

    def series(self) -> list[str]:
        return sorted(d.name for d in self.path.iterdir() if d.is_dir())


def utc_now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _seal_tree(root: Path, dir_mode: int) -> None:
    """Give every directory `dir_mode` and every file its read/write part (copies keep the source's modes, and
    the export stage writes 0700 temp dirs), then flush everything to disk, files before their directories."""
    for dirpath, _, filenames in os.walk(root, topdown=False):
        for name in filenames:
            os.chmod(Path(dirpath) / name, dir_mode & 0o666)
            _fsync_path(Path(dirpath) / name)
        os.chmod(dirpath, dir_mode)
        _fsync_path(Path(dirpath))


class Registry:
    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def dataset_dir(self, dataset: str) -> Path:
        if not dataset or "/" in dataset or dataset.startswith("."):
            raise ValueError(f"registry: invalid dataset name {dataset!r}")
        return self.root / dataset

    # ------------------------------------------------------------------ reading

    def versions(self, dataset: str) -> list[Version]:
        """Complete versions (renamed into place, record present), oldest first."""
        d = self.dataset_dir(dataset)
        if not d.is_dir():
            return []
        found = [(int(m.group(1)), p) for p in d.iterdir()
                 if (m := VERSION_RE.match(p.name)) and p.is_dir() and not p.is_symlink() and (p / RECORD).exists()]
        return [Version(dataset, p.name, p) for _, p in sorted(found)]

    def current(self, dataset: str) -> Version | None:
        """The version `current` points to; None before the first promotion. A broken pointer is an error."""
        link = self.dataset_dir(dataset) / CURRENT
        if not link.is_symlink():
            if link.exists():
                raise ValueError(f"{link}: expected a symlink to a version directory")
            return None
        target = os.readlink(link)
        path = link.parent / target
        if not VERSION_RE.match(target) or not (path / RECORD).exists():
            raise ValueError(f"{link}: points to {target!r}, which is not a complete version")
        return Version(dataset, target, path)

    # ------------------------------------------------------------------ writing (hold the lock)

    def promote(self, dataset: str, model_dir: str | os.PathLike, record: dict,
                metrics: str | os.PathLike | None = None) -> Version:
        """Copy `model_dir` (SID/ subdirectories) into a new version and point `current` at it.

        `record` (JSON-able: fingerprint, git rev, decision, ...) is stored as record.json with `version`,
        `dataset` and `promoted_at` added; `metrics` (a file) is stored as metrics.json.
        """
        model_dir = Path(model_dir)
        if not model_dir.is_dir():
            raise FileNotFoundError(f"{model_dir}: no such directory to promote")
        d = self.dataset_dir(dataset)
        d.mkdir(parents=True, exist_ok=True)
        self._remove_leftovers(d)
        served = self.current(dataset)
        taken = [int(m.group(1)) for p in d.iterdir() if (m := VERSION_RE.match(p.name))]  # incl. incomplete
        name = f"v{max(taken, default=0) + 1:04d}"
        tmp = d / f".{name}.tmp-{os.getpid()}-{secrets.token_hex(4)}"  # hidden until renamed; mode from umask
        tmp.mkdir()
        dir_mode = tmp.stat().st_mode & 0o777  # what the umask allows, so that the serving user can read it
        try:
            shutil.copytree(model_dir, tmp, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".*"))
            if metrics is not None:
                shutil.copy2(metrics, tmp / METRICS)
            full = {**record, "version": name, "dataset": dataset, "promoted_at": utc_now(),
                    "previous": served.name if served else None}
            (tmp / RECORD).write_text(json.dumps(full, indent=2, default=str) + "\n")
            _seal_tree(tmp, dir_mode)
            os.rename(tmp, d / name)  # atomic; the version exists completely or not at all
            _fsync_path(d)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp)
        return self.set_current(dataset, name)

    def set_current(self, dataset: str, name: str) -> Version:
        """Point `current` at an existing complete version in one step (promotion's last step; rollback)."""
        d = self.dataset_dir(dataset)
        if not VERSION_RE.match(name) or not (d / name / RECORD).exists():
            raise ValueError(f"{d / name}: not a complete version of '{dataset}' "
                             f"(have {[v.name for v in self.versions(dataset)]})")
        tmp_link = d / f".{CURRENT}.tmp-{os.getpid()}"
        try:
            if tmp_link.is_symlink():
                tmp_link.unlink()
            tmp_link.symlink_to(name, target_is_directory=True)  # relative: the registry can be moved or mounted
            os.replace(tmp_link, d / CURRENT)  # rename(2) over the old link: readers see old or new, never none
            _fsync_path(d)
        finally:
            if tmp_link.is_symlink():
                tmp_link.unlink()
        return Version(dataset, name, d / name)

    def _remove_leftovers(self, d: Path) -> None:
        """Hidden temporaries of an interrupted promotion (a crash before rename/replace)."""
        for p in d.iterdir():
            if p.name.startswith(".v") and ".tmp-" in p.name and p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            elif p.name.startswith(f".{CURRENT}.tmp-") and p.is_symlink():
                p.unlink()

    def new_run(self, dataset: str) -> Path:
        """Reserve runs/<UTC stamp> for one retraining run (creates <stamp>.log); returns that base path."""
        runs = self.dataset_dir(dataset) / RUNS
        runs.mkdir(parents=True, exist_ok=True)
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        for n in range(1, 1000):
            base = runs / (stamp if n == 1 else f"{stamp}-{n}")
            try:
                os.close(os.open(base.with_suffix(".log"), os.O_CREAT | os.O_EXCL | os.O_WRONLY))
                return base
            except FileExistsError:
                continue
        raise RuntimeError(f"{runs}: cannot reserve a run name for {stamp}")

    def last_run(self, dataset: str) -> dict:
        """The summary of the dataset's latest finished run ({} if none)."""
        runs = self.dataset_dir(dataset) / RUNS
        done = sorted(runs.glob("*.json")) if runs.is_dir() else []
        return json.loads(done[-1].read_text()) if done else {}

    @staticmethod
    def write_run(base: Path, summary: dict, markdown: str) -> tuple[Path, Path]:
        """<base>.json and <base>.md (base from new_run), each written atomically."""
        paths = base.with_suffix(".json"), base.with_suffix(".md")
        for path, text in zip(paths, (json.dumps(summary, indent=2, default=str) + "\n", markdown)):
            tmp = path.with_name(f".{path.name}.tmp")
            tmp.write_text(text)
            os.replace(tmp, path)
        return paths

    # ------------------------------------------------------------------ one retraining at a time

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Exclusive, non-blocking lock on registry/.lock; raise RegistryBusy if another process holds it.

        flock is released by the kernel when the holder dies, so a crashed run never leaves a stale lock.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / LOCK
        with open(path, "a+") as f:
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise
                f.seek(0)
                holder = f.read().strip() or "unknown holder"
                raise RegistryBusy(f"another retraining is running ({path} is locked by {holder})") from None
            f.seek(0)
            f.truncate()
            f.write(f"pid {os.getpid()} since {utc_now()}\n")
            f.flush()
            try:
                yield
            finally:
                f.seek(0)
                f.truncate()
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)
