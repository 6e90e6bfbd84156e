"""The retraining flow (Prefect 3): per dataset, ask DVC whether anything changed since the served model was built,
rebuild with `dvc repro` (or `dvc exp run`), check the export, gate on `dvc metrics diff`, promote atomically."""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import yaml
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from pipeline.retraining import dvc as dvc_state
from pipeline.retraining.gate import check_export, gate, lookup, metric_key, metrics_diff, same_data_metrics
from pipeline.retraining.registry import Registry, RegistryBusy, utc_now
from pipeline.retraining.report import markdown_summary, metric_table
from pipeline.retraining.runner import PipelineError, dvc, reap_orphans, run_command, stop_reason

DEFAULTS = {"cron": "0 3 * * *", "metric": "vus_pr", "max_drop": 0.01, "datasets": None, "use_experiments": False,
            "registry": "registry", "timeout_s": 6 * 3600}


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


@task(cache_policy=NO_CACHE, task_run_name="promote-{dataset}")
def promote_task(registry: Registry, dataset: str, export_dir: Path, metrics: Path, record: dict) -> str:
    return registry.promote(dataset, export_dir, record, metrics=metrics).name


def _git_state(project: Path) -> dict | None:
    r = subprocess.run(["git", "rev-parse", "HEAD"], cwd=project, capture_output=True, text=True)
    if r.returncode != 0:
        return None
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=project,
                           capture_output=True, text=True).stdout.strip()
    return {"rev": r.stdout.strip(), "dirty": bool(dirty)}


def _experiment_rev(project: Path, name: str) -> str | None:
    refs = subprocess.run(["git", "for-each-ref", "--format=%(objectname) %(refname)", "refs/exps"], cwd=project,
                          capture_output=True, text=True).stdout.split("\n")
    return next((line.split()[0] for line in refs if line.endswith(f"/{name}")), None)


def _up_to_date(registry: Registry, dataset: str, served, state: dict | None, lock: dict) -> str | None:
    """Why nothing needs to run, or None: DVC says the pipeline is up to date and its build is the served one's,
    or one a previous run already rejected."""
    if served is None or state != {}:
        return None
    if lock == served.record.get("dvc_lock"):
        return f"DVC reports the pipeline up to date, built from the same inputs as {served.name}"
    last = registry.last_run(dataset)
    if last.get("decision") == "rejected" and last.get("dvc_lock") == lock:
        return f"DVC reports the pipeline up to date; run {last['run']} already rejected this build"
    return None


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
        state = dvc_state.status(project, dataset)
        s["dvc_status"] = state
        lock = dvc_state.lock_entries(project, dataset)
        why = None if force else _up_to_date(registry, dataset, served, state, lock)
        if why:
            s["decision"], s["reason"], s["dvc_lock"] = "skipped", why, lock
            return s
        s["cleared"] = dvc_state.clear_persisted(project, dataset, None if force or state is None else list(state))
        rebuild = ["-f"] if force else []  # --force rebuilds every stage, whatever DVC says
        if use_experiments:
            exp = f"retrain-{dataset}-{base.name}"
            cmd = dvc("exp", "run", dvc_state.target(dataset), "--name", exp, *rebuild)
        else:
            cmd = dvc("repro", dvc_state.target(dataset), *rebuild)
        s["pipeline"] = run_command(cmd, str(project), str(base.with_suffix(".log")), timeout_s,
                                    name=f"{'exp-run' if use_experiments else 'repro'}-{dataset}")
        if use_experiments:
            s["experiment"] = {"name": exp, "rev": _experiment_rev(project, exp)}
        s["dvc_lock"] = dvc_state.lock_entries(project, dataset)
        s["changes"] = dvc_state.changes(served and served.record.get("dvc_lock"), s["dvc_lock"])
        export_dir, candidate_metrics = project / "export" / dataset, project / target
        s["series"] = check_export(export_dir, dataset)
        if served and s["series"] == served.record.get("series"):
            s["decision"] = "skipped"
            s["reason"] = f"the rebuilt candidate is identical to {served.name} (same ONNX files): not a new version"
            return s
        if not candidate_metrics.exists():
            raise PipelineError(f"{candidate_metrics}: missing after the pipeline run")
        candidate = json.loads(candidate_metrics.read_text())
        diff = None
        if served:  # champion and challenger scored on the same, current data
            evaluate = (yaml.safe_load((project / "params.yaml").read_text()) or {})["evaluate"]
            common = sorted(sid for sid, sha in s["series"].items() if sha and sid in served.series())
            scored = same_data_metrics({"champion": served.path, "challenger": export_dir},
                                       project / "data" / "prepared" / dataset, evaluate, common)
            paths = {role: base.with_name(f"{base.name}.{role}.json") for role in scored}
            for role, metrics in scored.items():
                paths[role].write_text(json.dumps(metrics, indent=1))
            diff = metrics_diff(paths["champion"], paths["challenger"], target)
            candidate = json.loads(paths["challenger"].read_text())
        entry = (diff or {}).get("diff", {}).get(target, {}).get(key, {})
        old = entry.get("old")
        new = entry.get("new") if diff else lookup(candidate, key)
        if served:
            ok, reason = gate(old, new, key, max_drop)
        else:
            ok, reason = True, f"first model of '{dataset}' (candidate {key} = {new!r})"
        s["gate"] = {"metric": key, "max_drop": max_drop, "old": old, "new": new,
                     "scored_on": "the current prepared data, champion and challenger alike" if diff else
                                  "the evaluate stage (no champion)",
                     "command": diff["command"] if diff else "no promoted model: nothing to diff",
                     "table": metric_table(diff and diff["diff"], target, candidate, key),
                     "dvc_metrics_diff": diff and diff["diff"]}
        if not ok:
            s["decision"], s["reason"] = "rejected", reason
            return s
        record = {k: s.get(k) for k in ("run", "flow_run_id", "git", "changes", "series", "experiment", "gate",
                                        "dvc_lock")}
        record.update(decision="promoted", reason=reason)
        s["version"] = promote_task(registry, dataset, export_dir, candidate_metrics, record)
        s["decision"], s["reason"] = "promoted", reason
        return s
    except BaseException as e:  # recorded, the served model untouched; the flow fails at the end
        s["decision"], s["reason"] = "failed", stop_reason(e) or f"{type(e).__name__}: {e}"
        logger.error("%s: %s", dataset, s["reason"])
        if not isinstance(e, Exception):  # stopped (a signal): the flow ends now
            raise
        return s
    finally:
        now = registry.current(dataset)
        s["version"] = now.name if now else None
        s["seconds"] = round(time.perf_counter() - t0, 1)
        md = markdown_summary(s)
        s["summary"] = [str(p) for p in registry.write_run(base, s, md)]
        create_markdown_artifact(markdown=md, key=_artifact_key(dataset), description=f"retraining {dataset}")
        logger.info("%s: %s (%s)", dataset, s["decision"], s["reason"])


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
            for line in reap_orphans(registry.root):  # left by a retraining that was killed (SIGKILL)
                get_run_logger().warning("%s", line)
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
