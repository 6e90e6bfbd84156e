"""What a retraining run reports: the markdown summary (registry runs/ and a Prefect artifact) and `status`."""

from __future__ import annotations

from pathlib import Path

from pipeline.retraining.gate import lookup
from pipeline.retraining.registry import Registry

HEADLINE = ("f1", "auroc", "aupr", "vus_roc", "vus_pr")


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
                  f"`{g['command']}`, both scored on {g.get('scored_on', 'their own data')}.", "",
                  "| metric | promoted | candidate | change |", "| --- | --- | --- | --- |"]
        for key, row in g["table"].items():
            old, new, diff = row.get("old"), row.get("new"), row.get("diff")
            lines.append(f"| {key} | {_fmt(old)} | {_fmt(new)} | {_fmt(diff, sign=True)} |")
    return "\n".join(lines) + "\n"


def metric_table(diff: dict | None, target: str, candidate: dict, key: str) -> dict:
    keys = [f"mean.{m}" for m in HEADLINE] + ([key] if key not in {f"mean.{m}" for m in HEADLINE} else [])
    if diff is not None:
        entries = diff.get(target, {})
        return {k: entries.get(k, {}) for k in keys}
    return {k: {"new": lookup(candidate, k)} for k in keys}


def status(project: Path, registry_dir: str) -> str:
    registry = Registry(project / registry_dir)
    lines = []
    for d in sorted(p for p in registry.root.iterdir() if p.is_dir()) if registry.root.is_dir() else []:
        cur = registry.current(d.name)
        last = registry.last_run(d.name)
        lines.append(f"{d.name}: serving {cur.name if cur else 'nothing'} "
                     f"(versions: {', '.join(v.name for v in registry.versions(d.name)) or 'none'}); last run "
                     f"{last.get('run', '-')}: {last.get('decision', '-')} ({last.get('reason', '')})")
    return "\n".join(lines) or f"{registry.root}: no promoted model yet"
