"""Scheduled retraining (Prefect 3): rebuild a dataset's model when its inputs changed, promote it only if it is
not worse than the served one, and switch the served model atomically (aster.registry).

    python -m pipeline.retrain run [--datasets synthetic] [--metric vus_pr] [--max-drop 0.01] [--force] [--experiments]
    python -m pipeline.retrain serve [--cron "0 3 * * *"] [--datasets synthetic]     # needs a Prefect server
    python -m pipeline.retrain status | rollback DATASET VERSION

Per dataset, under one registry lock (a second run gets "busy"):
  1. fingerprint the inputs of the dataset's stages as dvc.yaml declares them: the data (`datasets.DS.path`), the
     code deps, the params values. Equal to the promoted version's record -> "skipped" (nothing is run).
  2. `dvc repro export@DS` (or `dvc exp run export@DS -n NAME`), a subprocess task retried on transient failures.
  3. check the candidate export (cards match their ONNX files, every session scores), then
     `dvc metrics diff --json --all HEAD` in a scratch DVC repo whose HEAD holds the promoted metrics.json and whose
     workspace holds the candidate's metrics/DS.json: the decision reads `mean.<metric>` from that output.
  4. promote if new >= old - max_drop (the first model is always promoted), else keep the served model.
  5. write registry/DS/runs/<stamp>.{json,md,log} and a Prefect markdown artifact.
Defaults come from the optional `retrain:` block of params.yaml (cron, metric, max_drop, datasets, ...).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from aster.env import setup_environment
from aster.registry import Registry, RegistryBusy, utc_now

DEFAULTS = {"cron": "0 3 * * *", "metric": "vus_pr", "max_drop": 0.01, "datasets": None, "use_experiments": False,
            "registry": "registry", "timeout_s": 6 * 3600}
HEADLINE = ("f1", "auroc", "aupr", "vus_roc", "vus_pr")
# Output of a failed command that says "try again later", not "this is broken".
TRANSIENT = re.compile(r"Unable to acquire lock|database is locked|exited with -\d+|Resource temporarily unavailable|"
                       r"Temporary failure|Connection (reset|refused|timed out)", re.I)


class TransientError(RuntimeError):
    """Worth retrying: a timeout, a process killed by a signal, lock contention, a network hiccup."""


class PipelineError(RuntimeError):
    """Not worth retrying: the pipeline itself failed (bad data or params, a bug); the log says why."""


class RetrainFailed(RuntimeError):
    """Raised at the end of a flow run in which some dataset failed (the others were still processed)."""


def retrain_config(project: Path) -> dict:
    """DEFAULTS overridden by the `retrain:` block of params.yaml, if any."""
    p = yaml.safe_load((project / "params.yaml").read_text()) or {}
    block = p.get("retrain") or {}
    unknown = set(block) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"params.yaml: unknown key(s) {sorted(unknown)} in 'retrain:' (known: {sorted(DEFAULTS)})")
    return {**DEFAULTS, **block}


# ----------------------------------------------------------------------------- what the dataset's stages depend on

_VAR = re.compile(r"\$\{\s*(key|item(?:\.[\w-]+)*)\s*\}")


def dataset_stages(project: Path, dataset: str) -> dict[str, dict]:
    """dvc.yaml's per-dataset stages (foreach over `datasets`), resolved for `dataset`, in file order:
    {"train@DS": {"deps": [path], "params": [(file, key)], "outs": [(path, persist)]}}."""
    all_params = yaml.safe_load((project / "params.yaml").read_text()) or {}
    spec = (all_params.get("datasets") or {}).get(dataset)
    if spec is None:
        raise ValueError(f"params.yaml: dataset '{dataset}' is not defined under 'datasets:'")

    def sub(text: str) -> str:
        def value(m: re.Match) -> str:
            if m.group(1) == "key":
                return dataset
            v = spec
            for part in m.group(1).split(".")[1:]:
                v = v[part]
            return str(v)
        return _VAR.sub(value, text)

    stages = {}
    for name, st in (yaml.safe_load((project / "dvc.yaml").read_text()).get("stages") or {}).items():
        if str(st.get("foreach", "")).replace(" ", "") != "${datasets}":
            continue
        body = st["do"]
        params = []
        for entry in body.get("params") or []:
            if isinstance(entry, dict):  # {other_params.yaml: [keys]}
                params += [(file, sub(k)) for file, keys in entry.items() for k in keys]
            else:
                params.append(("params.yaml", sub(entry)))
        outs = []
        for entry in [*(body.get("outs") or []), *(body.get("metrics") or []), *(body.get("plots") or [])]:
            path, opts = (next(iter(entry.items())) if isinstance(entry, dict) else (entry, None))
            outs.append((sub(path), bool((opts or {}).get("persist", False))))
        stages[f"{name}@{dataset}"] = {"deps": [sub(d) for d in body.get("deps") or []], "params": params,
                                       "outs": outs, "data": sub(str(spec.get("path", "")))}
    if not stages:
        raise ValueError(f"{project / 'dvc.yaml'}: no stage with `foreach: ${{datasets}}`")
    return stages


def hash_path(path: Path) -> str:
    """sha256 of a file; of a directory: over its sorted relative paths and file hashes (no __pycache__)."""
    import hashlib

    def file_sha(p: Path) -> str:
        h = hashlib.sha256()
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        return h.hexdigest()

    if path.is_file():
        return file_sha(path)
    if not path.is_dir():
        return "missing"
    h = hashlib.sha256()
    for p in sorted(path.rglob("*")):
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc":
            h.update(f"{p.relative_to(path).as_posix()}\0{file_sha(p)}\n".encode())
    return h.hexdigest()


def _flatten(prefix: str, value, out: dict) -> None:
    if isinstance(value, dict) and value:
        for k, v in value.items():
            _flatten(f"{prefix}.{k}", v, out)
    else:
        out[prefix] = value


def fingerprint(project: Path, dataset: str) -> dict:
    """What a model of `dataset` is a function of: {"data": {path: sha256}, "code": {path: sha256},
    "params": {dotted key: value}}, read from the stages' deps and params in dvc.yaml (outputs of other stages
    are excluded: they follow from these)."""
    stages = dataset_stages(project, dataset)
    outs = {o for st in stages.values() for o, _ in st["outs"]}
    data = next(iter(stages.values()))["data"]
    deps = sorted({d for st in stages.values() for d in st["deps"]} - outs - {data})
    files: dict[str, dict] = {}
    params: dict = {}
    for file, key in sorted({p for st in stages.values() for p in st["params"]}):
        if file not in files:
            files[file] = yaml.safe_load((project / file).read_text()) or {}
        value = files[file]
        for part in key.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        _flatten(key if file == "params.yaml" else f"{file}:{key}", value, params)
    return {"data": {data: hash_path(project / data)}, "code": {d: hash_path(project / d) for d in deps},
            "params": dict(sorted(params.items()))}


def fingerprint_changes(old: dict | None, new: dict) -> list[str]:
    """Readable differences between two fingerprints, e.g. "params: train.seed: 2021 -> 2022"."""
    if not old:
        return ["no promoted model yet"]
    missing, out = object(), []
    for section in ("data", "code", "params"):
        o, n = old.get(section) or {}, new.get(section) or {}
        for key in sorted(set(o) | set(n)):
            a, b = o.get(key, missing), n.get(key, missing)
            if a == b:
                continue
            if section == "params":
                show = lambda v: "(unset)" if v is missing else json.dumps(v)  # noqa: E731
                out.append(f"params: {key}: {show(a)} -> {show(b)}")
            else:
                what = "added" if a is missing else "removed" if b is missing else "changed"
                out.append(f"{section}: {key} {what}")
    return out


def affected_stages(stages: dict[str, dict], stale: list[str]) -> list[str]:
    """The stale stages and every stage downstream of one (through outs -> deps), in dvc.yaml order."""
    hit = set(stale)
    while True:
        outs = {o for name in hit for o, _ in stages[name]["outs"]} if hit else set()
        more = {name for name, st in stages.items() if name not in hit
                and any(d == o or d.startswith(o.rstrip("/") + "/") for d in st["deps"] for o in outs)}
        if not more:
            return [name for name in stages if name in hit]
        hit |= more


# ----------------------------------------------------------------------------- subprocesses

def tool_env() -> dict:
    """The environment for dvc and the stage commands: this interpreter's bin/ first on PATH (stages call
    `python`), no telemetry, offline model hubs."""
    env = setup_environment(dict(os.environ))
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    return env


def dvc(*args: str) -> list[str]:
    return [sys.executable, "-m", "dvc", *args]


def _quick(cmd: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run(cmd, cwd=cwd, env=tool_env(), capture_output=True, text=True)
    if check and r.returncode != 0:
        raise PipelineError(f"{shlex.join(cmd)} (in {cwd}) exited with {r.returncode}: "
                            f"{(r.stderr or r.stdout).strip()[-2000:]}")
    return r


def _is_transient(task, task_run, state) -> bool:
    """retry_condition_fn: retry TransientError only."""
    try:
        state.result()
    except TransientError:
        return True
    except BaseException:
        return False
    return False


@task(retries=2, retry_delay_seconds=[30, 120], retry_condition_fn=_is_transient, cache_policy=NO_CACHE,
      task_run_name="{name}")
def run_command(cmd: list[str], cwd: str, log_path: str, timeout_s: float, name: str = "command") -> dict:
    """Run `cmd` in its own process group, output appended to `log_path`. Raises TransientError (retried) on a
    timeout, a signal or a transient message in the output, PipelineError (not retried) on any other failure."""
    log_path = Path(log_path)
    with open(log_path, "a") as log:
        log.write(f"\n$ {shlex.join(cmd)}    # {utc_now()}\n")
        log.flush()
        start, t0 = log.tell(), time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, env=tool_env(), stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            rc = proc.wait(timeout=timeout_s)
        except BaseException as e:  # timeout, or this process is being stopped: never leave the stages running
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            if isinstance(e, subprocess.TimeoutExpired):
                raise TransientError(f"{shlex.join(cmd)}: timed out after {timeout_s:g} s (log: {log_path})") from None
            raise
    seconds = time.perf_counter() - t0
    with open(log_path) as f:
        f.seek(start)
        output = f.read()
    if rc == 0:
        return {"command": shlex.join(cmd), "seconds": round(seconds, 1), "log": str(log_path)}
    last = [ln for ln in output.strip().splitlines() if ln.strip()][-3:]
    msg = f"{shlex.join(cmd)} exited with {rc} after {seconds:.0f} s: {' | '.join(last)} (log: {log_path})"
    raise (TransientError if rc < 0 or TRANSIENT.search(output) else PipelineError)(msg)


# ----------------------------------------------------------------------------- tasks

@task(cache_policy=NO_CACHE, task_run_name="fingerprint-{dataset}")
def fingerprint_task(project: Path, dataset: str) -> dict:
    return fingerprint(project, dataset)


@task(cache_policy=NO_CACHE, task_run_name="clear-stale-state-{dataset}")
def clear_stale_state(project: Path, dataset: str) -> list[str]:
    """Delete the `persist: true` outputs (train's resumable checkpoints) of stages that are about to re-run.

    They belong to the previous candidate: the train stage would resume them (silently keeping the old weights
    after a data change, or refusing a new seed). Retries inside one run still resume, since this runs once.
    """
    import shutil

    stages = dataset_stages(project, dataset)
    r = _quick(dvc("status", f"export@{dataset}", "--with-deps", "--json"), project, check=False)
    try:
        stale = [s for s in json.loads(r.stdout or "{}") if s in stages]
    except json.JSONDecodeError:
        return []  # dvc status itself failed (e.g. missing data): the pipeline run will report it
    removed = []
    for name in affected_stages(stages, stale):
        for out, persist in stages[name]["outs"]:
            p = project / out
            if persist and (p.exists() or p.is_symlink()):
                shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
                removed.append(out)
    return removed


@task(cache_policy=NO_CACHE, task_run_name="check-export-{dataset}")
def check_export(export_dir: Path, dataset: str) -> dict:
    """Every exportable series loads (card sha256 matches its ONNX file) and scores finite values in [0, 1]."""
    from aster.inference import CARD_FILE, ExportedModel, export_dirs

    series = {p.parent.name: None for p in sorted(export_dir.glob(f"*/{CARD_FILE}"))}  # None: not exported
    for directory in export_dirs(export_dir).values():
        try:
            model = ExportedModel(directory, "cpu")
            model.self_check()
        except ValueError as e:
            raise PipelineError(str(e)) from None
        series[directory.name] = model.card["onnx"]["sha256"]
    if not any(series.values()):
        raise PipelineError(f"{export_dir}: no servable model (series: {sorted(series) or 'none'})")
    return series


@task(cache_policy=NO_CACHE, task_run_name="metrics-diff-{target}")
def metrics_diff(baseline: Path, candidate: Path, target: str) -> dict:
    """`dvc metrics diff --json --all HEAD` between the promoted metrics file (`baseline`, committed) and the
    candidate's (`candidate`, workspace), both placed at `target` in a scratch DVC repo: the promoted metrics live
    in the registry, not necessarily in any commit of the project."""
    with tempfile.TemporaryDirectory(prefix="aster-metrics-diff-") as tmp:
        scratch = Path(tmp)
        git = ["git", "-c", "user.name=aster-retrain", "-c", "user.email=aster-retrain@localhost",
               "-c", "commit.gpgsign=false"]
        _quick(git + ["init", "-q"], scratch)
        _quick(dvc("init", "-q"), scratch)
        (scratch / "dvc.yaml").write_text(yaml.safe_dump({"metrics": [target]}))
        (scratch / target).parent.mkdir(parents=True, exist_ok=True)
        (scratch / target).write_bytes(baseline.read_bytes())
        _quick(git + ["add", "-A"], scratch)
        _quick(git + ["commit", "-q", "-m", "promoted metrics"], scratch)
        (scratch / target).write_bytes(candidate.read_bytes())
        out = _quick(dvc("metrics", "diff", "--json", "--all", "HEAD"), scratch).stdout
    return {"command": "dvc metrics diff --json --all HEAD", "diff": json.loads(out or "{}")}


def gate(old, new, key: str, max_drop: float) -> tuple[bool, str]:
    """Promote iff `new` >= `old` - max_drop (a negative max_drop demands an improvement)."""
    finite = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)  # noqa: E731
    if not finite(new):
        return False, f"candidate {key} is {new!r}, not a number"
    if not finite(old):
        return True, f"the promoted model has no usable {key} ({old!r}); candidate {key} = {new:.4f}"
    delta, need = new - old, -max_drop
    verdict = "within" if delta >= need else "outside"
    return delta >= need, (f"{key} {old:.4f} -> {new:.4f} (change {delta:+.4f}) is {verdict} the allowed change "
                           f">= {need:+.4f} (max_drop {max_drop:g})")


@task(cache_policy=NO_CACHE, task_run_name="promote-{dataset}")
def promote_task(registry: Registry, dataset: str, export_dir: Path, metrics: Path, record: dict) -> str:
    return registry.promote(dataset, export_dir, record, metrics=metrics).name


# ----------------------------------------------------------------------------- reporting

def _fmt(v, sign: bool = False) -> str:
    if isinstance(v, float):
        return f"{v:+.4f}" if sign else f"{v:.4f}"
    return "—" if v is None else str(v)


def markdown_summary(s: dict) -> str:
    head = {"promoted": f"promoted {s.get('version')}", "rejected": f"rejected, still serving {s.get('version')}",
            "skipped": f"skipped, still serving {s.get('version')}",
            "failed": f"FAILED, still serving {s.get('version') or 'nothing'}"}[s["decision"]]
    lines = [f"# Retraining `{s['dataset']}`: {head}", "",
             f"- run `{s['run']}` (flow run `{s.get('flow_run_id')}`), started {s['started_at']}, "
             f"{s['seconds']:.0f} s",
             f"- decision: **{s['decision']}**: {s['reason']}",
             f"- served before: {s.get('previous') or 'nothing'}; served now: {s.get('version') or 'nothing'}",
             f"- git: {(s.get('git') or {}).get('rev', 'not a git repo')}"
             f"{' (dirty)' if (s.get('git') or {}).get('dirty') else ''}", "", "## What changed", ""]
    lines += [f"- {c}" for c in s["changes"]] or ["- nothing (data, code and params equal the promoted model's)"]
    if s.get("pipeline"):
        p = s["pipeline"]
        lines += ["", "## Pipeline", "", f"- `{p['command']}`: {p['seconds']:.0f} s (log `{p['log']}`)"]
        if s.get("cleared"):
            lines.append(f"- cleared stale persisted outputs first: {', '.join(s['cleared'])}")
        if s.get("experiment"):
            lines.append(f"- experiment `{s['experiment']['name']}` ({s['experiment'].get('rev')})")
    g = s.get("gate")
    if g:
        lines += ["", "## Metrics (promoted -> candidate)", "",
                  f"Gate: promote iff candidate `{g['metric']}` >= promoted - {g['max_drop']:g}; values from "
                  f"`{g['command']}`.", "",
                  "| metric | promoted | candidate | change |", "| --- | --- | --- | --- |"]
        for key, row in g["table"].items():
            old, new, diff = row.get("old"), row.get("new"), row.get("diff")
            lines.append(f"| {key} | {_fmt(old)} | {_fmt(new)} | {_fmt(diff, sign=True)} |")
    return "\n".join(lines) + "\n"


def _metric_table(diff: dict | None, target: str, candidate: dict, key: str) -> dict:
    keys = [f"mean.{m}" for m in HEADLINE] + ([key] if key not in {f"mean.{m}" for m in HEADLINE} else [])
    if diff is not None:
        entries = diff.get(target, {})
        return {k: entries.get(k, {}) for k in keys}
    return {k: {"new": _lookup(candidate, k)} for k in keys}


def _git_state(project: Path) -> dict | None:
    r = subprocess.run(["git", "rev-parse", "HEAD"], cwd=project, capture_output=True, text=True)
    if r.returncode != 0:
        return None
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=project,
                           capture_output=True, text=True).stdout.strip()
    return {"rev": r.stdout.strip(), "dirty": bool(dirty)}


def _lock_entries(project: Path, dataset: str) -> dict:
    """The dvc.lock entries (deps/outs hashes) of the dataset's stages: what DVC says the candidate was built from."""
    lock_file = project / "dvc.lock"
    stages = (yaml.safe_load(lock_file.read_text()) or {}).get("stages", {}) if lock_file.exists() else {}
    pick = lambda items: {i["path"]: i.get("md5") for i in items or []}  # noqa: E731
    return {name: {"deps": pick(st.get("deps")), "outs": pick(st.get("outs"))}
            for name, st in stages.items() if name.endswith(f"@{dataset}")}


def _experiment_rev(project: Path, name: str) -> str | None:
    refs = subprocess.run(["git", "for-each-ref", "--format=%(objectname) %(refname)", "refs/exps"], cwd=project,
                          capture_output=True, text=True).stdout.split("\n")
    return next((line.split()[0] for line in refs if line.endswith(f"/{name}")), None)


# ----------------------------------------------------------------------------- the flow

def metric_key(metric: str) -> str:
    """"vus_pr" -> "mean.vus_pr" (the dataset mean in metrics/DS.json); a dotted key is used as given."""
    return metric if "." in metric else f"mean.{metric}"


def retrain_dataset(project: Path, registry: Registry, dataset: str, metric: str, max_drop: float,
                    use_experiments: bool, force: bool, timeout_s: float) -> dict:
    """One dataset: skip | run -> check -> diff -> gate -> promote | keep. Always writes a run summary."""
    logger = get_run_logger()
    t0 = time.perf_counter()
    base = registry.new_run(dataset)
    key, target = metric_key(metric), f"metrics/{dataset}.json"
    served = registry.current(dataset)
    s = {"dataset": dataset, "run": base.name, "started_at": utc_now(), "flow_run_id": _flow_run_id(),
         "previous": served and served.name, "version": served and served.name, "git": _git_state(project),
         "changes": [], "decision": "failed", "reason": ""}
    try:
        fp = fingerprint_task(project, dataset)
        s["fingerprint"] = fp
        s["changes"] = fingerprint_changes(served and served.record.get("fingerprint"), fp)
        if served and not s["changes"] and not force:
            s["decision"], s["reason"] = "skipped", f"data, code and params equal those of {served.name}"
            return s
        s["cleared"] = clear_stale_state(project, dataset)
        if use_experiments:
            exp = f"retrain-{dataset}-{base.name}"
            cmd = dvc("exp", "run", f"export@{dataset}", "--name", exp)
        else:
            cmd = dvc("repro", f"export@{dataset}")
        s["pipeline"] = run_command(cmd, str(project), str(base.with_suffix(".log")), timeout_s,
                                    name=f"{'exp-run' if use_experiments else 'repro'}-{dataset}")
        if use_experiments:
            s["experiment"] = {"name": exp, "rev": _experiment_rev(project, exp)}
        export_dir, candidate_metrics = project / "export" / dataset, project / target
        s["series"] = check_export(export_dir, dataset)
        if not candidate_metrics.exists():
            raise PipelineError(f"{candidate_metrics}: missing after the pipeline run")
        candidate = json.loads(candidate_metrics.read_text())
        diff = metrics_diff(served.metrics_path, candidate_metrics, target) if served else None
        entry = (diff or {}).get("diff", {}).get(target, {}).get(key, {})
        old = entry.get("old")
        new = entry.get("new") if diff else _lookup(candidate, key)
        if served:
            ok, reason = gate(old, new, key, max_drop)
        else:
            ok, reason = True, f"first model of '{dataset}' (candidate {key} = {_fmt(new)})"
        s["gate"] = {"metric": key, "max_drop": max_drop, "old": old, "new": new,
                     "command": diff["command"] if diff else "no promoted model: nothing to diff",
                     "table": _metric_table(diff and diff["diff"], target, candidate, key),
                     "dvc_metrics_diff": diff and diff["diff"]}
        if not ok:
            s["decision"], s["reason"] = "rejected", reason
            return s
        record = {k: s.get(k) for k in ("run", "flow_run_id", "git", "fingerprint", "changes", "series",
                                        "experiment", "gate")}
        record.update(decision="promoted", reason=reason, dvc_lock=_lock_entries(project, dataset))
        s["version"] = promote_task(registry, dataset, export_dir, candidate_metrics, record)
        s["decision"], s["reason"] = "promoted", reason
        return s
    except Exception as e:  # recorded, the served model untouched; the flow fails at the end
        s["decision"], s["reason"] = "failed", f"{type(e).__name__}: {e}"
        logger.error("%s: %s", dataset, s["reason"])
        return s
    finally:
        now = registry.current(dataset)
        s["version"] = now.name if now else None
        s["seconds"] = round(time.perf_counter() - t0, 1)
        md = markdown_summary(s)
        s["summary"] = [str(p) for p in registry.write_run(base, s, md)]
        create_markdown_artifact(markdown=md, key=_artifact_key(dataset), description=f"retraining {dataset}")
        logger.info("%s: %s (%s)", dataset, s["decision"], s["reason"])


def _lookup(d: dict, dotted: str):
    for part in dotted.split("."):
        d = d.get(part) if isinstance(d, dict) else None
    return d


def _artifact_key(dataset: str) -> str:
    return "retrain-" + (re.sub(r"[^a-z0-9-]+", "-", dataset.lower()).strip("-") or "dataset")


def _flow_run_id() -> str | None:
    from prefect.runtime import flow_run

    return flow_run.id


@flow(name="retrain", log_prints=True)
def retrain(datasets: list[str] | None = None, project_dir: str = ".", metric: str = "vus_pr",
            max_drop: float = 0.01, use_experiments: bool = False, registry_dir: str = "registry",
            force: bool = False, timeout_s: float = DEFAULTS["timeout_s"]) -> dict:
    """Retrain and gate-promote each dataset (default: params.yaml `retrain.datasets`, else all `datasets:`).

    Returns {"status": "done" | "busy", "reason", "datasets": {DS: summary}}; raises RetrainFailed after all
    datasets were processed if one of them failed (its served model is untouched).
    """
    project = Path(project_dir).resolve()
    registry = Registry(project / registry_dir)
    if not datasets:
        datasets = retrain_config(project)["datasets"] or \
            list((yaml.safe_load((project / "params.yaml").read_text()).get("datasets") or {}))
    try:
        with registry.lock():
            results = {ds: retrain_dataset(project, registry, ds, metric, max_drop, use_experiments, force,
                                           timeout_s) for ds in datasets}
    except RegistryBusy as e:
        get_run_logger().warning("%s", e)
        create_markdown_artifact(markdown=f"# Retraining not started\n\n{e}\n", key="retrain-busy",
                                 description="retraining skipped: busy")
        return {"status": "busy", "reason": str(e), "datasets": {}}
    failed = {ds: r["reason"] for ds, r in results.items() if r["decision"] == "failed"}
    if failed:
        raise RetrainFailed("; ".join(f"{ds}: {why}" for ds, why in failed.items()))
    return {"status": "done", "reason": None, "datasets": results}


# ----------------------------------------------------------------------------- command line

def _status(project: Path, registry_dir: str) -> str:
    registry = Registry(project / registry_dir)
    lines = []
    for d in sorted(p for p in registry.root.iterdir() if p.is_dir()) if registry.root.is_dir() else []:
        cur = registry.current(d.name)
        runs = sorted((d / "runs").glob("*.json")) if (d / "runs").is_dir() else []
        last = json.loads(runs[-1].read_text()) if runs else {}
        lines.append(f"{d.name}: serving {cur.name if cur else 'nothing'} "
                     f"(versions: {', '.join(v.name for v in registry.versions(d.name)) or 'none'}); last run "
                     f"{last.get('run', '-')}: {last.get('decision', '-')} ({last.get('reason', '')})")
    return "\n".join(lines) or f"{registry.root}: no promoted model yet"


def main(argv: list[str] | None = None) -> int:
    setup_environment()
    parser = argparse.ArgumentParser(prog="python -m pipeline.retrain", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--project-dir", default=".", help="repository root (default: .)")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("run", "serve"):
        p = sub.add_parser(name)
        p.add_argument("--datasets", nargs="+", help="default: params.yaml retrain.datasets, else all datasets")
        p.add_argument("--metric", help="gate metric under `mean` in metrics/DS.json, or a dotted key (vus_pr)")
        p.add_argument("--max-drop", type=float, help="largest allowed drop of the metric (0.01)")
        p.add_argument("--experiments", action="store_true", default=None, help="dvc exp run instead of repro")
        p.add_argument("--registry", help="registry directory, relative to the project (registry)")
        p.add_argument("--timeout", type=float, help="seconds one pipeline run may take (21600)")
        p.add_argument("--force", action="store_true", help="run the pipeline even if nothing changed")
        if name == "serve":
            p.add_argument("--cron", help='schedule, e.g. "0 3 * * *" (default: params.yaml retrain.cron)')
            p.add_argument("--name", default="nightly-retrain", help="deployment name")
    sub.add_parser("status")
    rb = sub.add_parser("rollback", help="point DATASET's current at an older VERSION (e.g. v0001)")
    rb.add_argument("dataset")
    rb.add_argument("version")
    rb.add_argument("--registry")
    args = parser.parse_args(argv)

    project = Path(args.project_dir).resolve()
    cfg = retrain_config(project)
    if args.command == "status":
        print(_status(project, cfg["registry"]))
        return 0
    if args.command == "rollback":
        registry = Registry(project / (args.registry or cfg["registry"]))
        with registry.lock():
            print(f"{args.dataset}: current -> {registry.set_current(args.dataset, args.version).name}")
        return 0
    pick = lambda value, key: cfg[key] if value is None else value  # noqa: E731
    parameters = {"datasets": args.datasets or cfg["datasets"], "project_dir": str(project),
                  "metric": pick(args.metric, "metric"), "max_drop": pick(args.max_drop, "max_drop"),
                  "use_experiments": bool(pick(args.experiments, "use_experiments")),
                  "registry_dir": pick(args.registry, "registry"), "force": args.force,
                  "timeout_s": pick(args.timeout, "timeout_s")}
    if args.command == "serve":
        # One run at a time, also across serve processes: a run triggered while one is running waits for it
        # (and then usually skips). A run started outside Prefect meets the registry lock instead ("busy").
        retrain.serve(name=args.name, cron=args.cron or cfg["cron"], parameters=parameters, limit=1, global_limit=1)
        return 0
    try:
        result = retrain(**parameters)
    except RetrainFailed as e:
        print(f"retraining failed: {e}", file=sys.stderr)
        return 1
    print(json.dumps({ds: {k: r.get(k) for k in ("decision", "version", "reason", "changes", "summary")}
                      for ds, r in result["datasets"].items()} or result, indent=2))
    return 75 if result["status"] == "busy" else 0  # 75 = EX_TEMPFAIL: try again later


if __name__ == "__main__":
    sys.exit(main())
