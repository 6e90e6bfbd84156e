"""The promotion gate: the candidate export must score; then the served model (champion) and the candidate
(challenger) are both scored on the same, current prepared data through aster.inference, and `dvc metrics diff`
between the two decides (promote iff new >= old - max_drop). Comparing against the champion's stored metrics would
compare different test sets whenever the data changed."""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path

import yaml
from prefect import task
from prefect.cache_policies import NO_CACHE

from pipeline.retraining.runner import PipelineError, dvc, quick


def metric_key(metric: str) -> str:
    """"vus_pr" -> "mean.vus_pr" (the dataset mean in metrics/DS.json); a dotted key is used as given."""
    return metric if "." in metric else f"mean.{metric}"


def same_data_metrics(export_roots: dict[str, Path], prepared_dir: Path, evaluate: dict, series: list[str]) -> dict:
    """{role: {"mean", "series"}} metrics of the exported models under each of `export_roots` ({role: export dir})
    on the current prepared data of `series` (raw rows rebuilt from the prepared scaler, then each model's own card
    scaler; each series is loaded once for all roles), scored as the evaluate stage does: stride
    `evaluate.score_stride`, TAB's score-mode metrics and label-mode F1."""
    import numpy as np

    from aster.data.prepare import load_prepared
    from aster.inference import ExportedModel, export_dirs
    from aster.metrics import label_mode_f1, score_metrics
    from pipeline.evaluate import mean_over_series

    if not series:
        raise PipelineError(f"{sorted(export_roots.values())}: no series in common to score on {prepared_dir}")
    models = {role: export_dirs(root) for role, root in export_roots.items()}
    per_series: dict[str, dict] = {role: {} for role in export_roots}
    for sid in series:
        prepared, _ = load_prepared(prepared_dir / sid)
        mean, scale = np.asarray(prepared.scaler.mean), np.asarray(prepared.scaler.scale)
        test_raw, train_raw = (np.asarray(part, np.float64) * scale + mean for part in (prepared.test, prepared.train))
        labels = np.asarray(prepared.test_labels)
        for role in export_roots:
            model = ExportedModel(models[role][sid], "cpu")
            test = model.score_series(test_raw, evaluate["score_stride"])
            train = model.score_series(train_raw, evaluate["score_stride"])
            f1 = label_mode_f1(labels, test, np.concatenate([train, test]), evaluate["ratios"])["f1"]
            per_series[role][sid] = {"f1": f1, **score_metrics(labels, test)}
    return {role: {"mean": mean_over_series(scores), "series": scores} for role, scores in per_series.items()}


def lookup(d: dict, dotted: str):
    for part in dotted.split("."):
        d = d.get(part) if isinstance(d, dict) else None
    return d


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
        quick(git + ["init", "-q"], scratch)
        quick(dvc("init", "-q"), scratch)
        (scratch / "dvc.yaml").write_text(yaml.safe_dump({"metrics": [target]}))
        (scratch / target).parent.mkdir(parents=True, exist_ok=True)
        (scratch / target).write_bytes(baseline.read_bytes())
        quick(git + ["add", "-A"], scratch)
        quick(git + ["commit", "-q", "-m", "promoted metrics"], scratch)
        (scratch / target).write_bytes(candidate.read_bytes())
        out = quick(dvc("metrics", "diff", "--json", "--all", "HEAD"), scratch).stdout
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
