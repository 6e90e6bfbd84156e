"""Scheduled retraining (Prefect 3): rebuild a dataset's model when DVC says its inputs changed, promote it only if
it is not worse than the served one, and switch the served model atomically (pipeline/retraining/).

    python -m pipeline.retrain run [--datasets synthetic] [--metric vus_pr] [--max-drop 0.01] [--force] [--experiments]
    python -m pipeline.retrain serve [--cron "0 3 * * *"] [--datasets synthetic]     # needs a Prefect server
    python -m pipeline.retrain status | rollback DATASET VERSION

Per dataset, under one registry lock (a second run gets "busy"):
  1. `dvc status export@DS --with-deps`: up to date, and dvc.lock's entries equal those recorded with the promoted
     version (or with a build a previous run rejected) -> "skipped" (nothing is run).
  2. clear the persisted checkpoints of stages that will re-run, then `dvc repro export@DS` (or `dvc exp run`;
     `--force` adds -f: every stage is rebuilt), a subprocess task retried on transient failures.
  3. check the candidate export (cards match their ONNX files, every series scores through aster.inference); a
     candidate identical to the served model (same ONNX files) is not promoted as a new version.
  4. `dvc metrics diff --json --all HEAD` between the promoted metrics and the candidate's; promote iff
     new >= old - max_drop (the first model is always promoted), else keep the served model.
  5. write registry/DS/runs/<stamp>.{json,md,log} (what changed: the dvc.lock entries of the promoted build against
     the candidate's) and a Prefect markdown artifact.
Defaults come from the optional `retrain:` block of params.yaml (cron, metric, max_drop, datasets, ...).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from aster.env import setup_environment
from pipeline.retraining.flow import RetrainFailed, retrain, retrain_config
from pipeline.retraining.registry import Registry
from pipeline.retraining.report import status
from pipeline.retraining.runner import stop_on_signals, stop_reason


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
        p.add_argument("--force", action="store_true",
                       help="rebuild every stage (dvc repro -f); a model identical to the served one is not promoted")
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
        print(status(project, cfg["registry"]))
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
    stop_on_signals()
    try:
        result = retrain(**parameters)
    except RetrainFailed as e:
        print(f"retraining failed: {e}", file=sys.stderr)
        return 1
    except BaseException as e:  # a stop signal: the run summary records it, the served model is untouched
        if not stop_reason(e):
            raise
        print(f"retraining {stop_reason(e)}", file=sys.stderr)
        return 143
    print(json.dumps({ds: {k: r.get(k) for k in ("decision", "version", "reason", "changes", "summary")}
                      for ds, r in result["datasets"].items()} or result, indent=2))
    return 75 if result["status"] == "busy" else 0  # 75 = EX_TEMPFAIL: try again later


if __name__ == "__main__":
    sys.exit(main())
