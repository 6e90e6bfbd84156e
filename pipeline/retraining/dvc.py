"""What DVC knows about a dataset's pipeline, read from DVC itself instead of re-derived: whether it is stale
(`dvc status`), what a build was made from (its dvc.lock entries: deps and outs hashes, params values), and which
persisted outputs (train's resumable checkpoints) a re-run must not resume."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import yaml

from pipeline.common import dotted_keys
from pipeline.retraining.runner import dvc, quick


def target(dataset: str) -> str:
    """The last stage of a dataset's pipeline; reproducing it reproduces everything it depends on."""
    return f"export@{dataset}"


def status(project: Path, dataset: str) -> dict | None:
    """`dvc status --with-deps --json` of the dataset's pipeline: {} when up to date, {stage: [changes]} when
    stale, None when DVC could not tell (e.g. missing data; the pipeline run then reports why)."""
    r = quick(dvc("status", target(dataset), "--with-deps", "--json"), project, check=False)
    try:
        return json.loads(r.stdout or "{}") if r.returncode == 0 else None
    except json.JSONDecodeError:
        return None


def lock_entries(project: Path, dataset: str) -> dict:
    """The dvc.lock entries of the dataset's stages: {stage: {"deps": {path: md5}, "outs": {path: md5}, "params"}},
    i.e. what DVC recorded the current build was made from."""
    lock_file = project / "dvc.lock"
    stages = (yaml.safe_load(lock_file.read_text()) or {}).get("stages", {}) if lock_file.exists() else {}
    pick = lambda items: {i["path"]: i.get("md5") for i in items or []}  # noqa: E731
    return {name: {"deps": pick(st.get("deps")), "outs": pick(st.get("outs")), "params": st.get("params") or {}}
            for name, st in stages.items() if name.endswith(f"@{dataset}")}


def _flat_params(lock: dict) -> dict:
    out: dict = {}
    for stage in lock.values():
        for file, keys in stage["params"].items():
            for key, value in keys.items():
                out.update(dotted_keys(value, key if file == "params.yaml" else f"{file}:{key}"))
    return out


def changes(old: dict | None, new: dict) -> list[str]:
    """Readable differences between two builds' dvc.lock entries, e.g. "params: train.seed: 2021 -> 2022" or
    "deps: aster/scoring.py changed". Deps that are outputs of another stage follow from the rest: left out."""
    if not old:
        return ["no promoted model yet"]
    missing, out = object(), []
    a, b = _flat_params(old), _flat_params(new)
    show = lambda v: "(unset)" if v is missing else json.dumps(v)  # noqa: E731
    for key in sorted(set(a) | set(b)):
        if a.get(key, missing) != b.get(key, missing):
            out.append(f"params: {key}: {show(a.get(key, missing))} -> {show(b.get(key, missing))}")
    produced = {o for st in (*old.values(), *new.values()) for o in st["outs"]}
    deps_a = {p: h for st in old.values() for p, h in st["deps"].items() if p not in produced}
    deps_b = {p: h for st in new.values() for p, h in st["deps"].items() if p not in produced}
    for path in sorted(set(deps_a) | set(deps_b)):
        if deps_a.get(path, missing) != deps_b.get(path, missing):
            what = "added" if path not in deps_a else "removed" if path not in deps_b else "changed"
            out.append(f"deps: {path} {what}")
    if not out and old != new:
        out.append("outputs differ from the promoted build's (same inputs)")
    return out


def clear_persisted(project: Path, dataset: str, stale: list[str] | None) -> list[str]:
    """Delete the `persist: true` outputs (train's resumable checkpoints) of every stage that will re-run: a stale
    stage or one after it in dvc.yaml (a linear pipeline); `stale=None` means all. They belong to the previous
    build: the stage would resume them (keeping old weights after a code change, or refusing a new seed)."""
    stages = yaml.safe_load((project / "dvc.yaml").read_text()).get("stages") or {}
    names = [name for name, st in stages.items() if "foreach" in st]
    stale_idx = [names.index(s.split("@")[0]) for s in (stale or []) if s.split("@")[0] in names]
    first = 0 if stale is None else min(stale_idx, default=len(names))
    removed = []
    for name in names[first:]:
        for entry in stages[name]["do"].get("outs") or []:
            path, opts = next(iter(entry.items())) if isinstance(entry, dict) else (entry, None)
            p = project / path.replace("${key}", dataset)
            if (opts or {}).get("persist") and (p.exists() or p.is_symlink()):
                shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
                removed.append(str(p.relative_to(project)))
    return removed
