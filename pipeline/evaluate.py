"""Stage `evaluate`: score every test step, compute every metric of docs/evaluation.md, write metrics.json and plots.

Score mode: AUROC, AUPR, R-AUC-ROC/PR, VUS-ROC/PR on test scores. Label mode: F1 over TAB's ratio grid with the
pool = per-step scores of the 80 % train part + test scores (the ratio is an oracle choice, as in TAB). Next to
it: F1 at the label-free production threshold saved by `train` (validation scores only).
"""

from __future__ import annotations

import logging
import math

import numpy as np

from pipeline.common import Paths, one_line_errors, params, stage_dataset

log = logging.getLogger("evaluate")
HEADLINE = ("f1", "auroc", "aupr", "vus_roc", "vus_pr")


def series_scores(model_dir, prepared, p: dict) -> tuple[np.ndarray, np.ndarray, object]:
    """(train-part scores, test scores, model or None): computed for ASTER, stored by `train` for baselines."""
    if (model_dir / "scores.npz").exists():
        with np.load(model_dir / "scores.npz") as z:
            return z["train"], z["test"], None
    from aster.artifacts import load_model
    from aster.scoring import step_scores

    model = load_model(model_dir)
    e = p["evaluate"]
    scores = [step_scores(model, x, p["window"], e["score_stride"], e["batch_size"], progress=True,
                          mean=model.config.step_mean) for x in (prepared.train, prepared.test)]
    return scores[0], scores[1], model


def pca_features(model, test: np.ndarray, labels: np.ndarray, window: int, n: int = 600, seed: int = 2021):
    """Token features of sampled test windows, split normal / real anomaly (a labelled step in the token), and the
    pseudo-anomalous tokens generated from the sampled windows: what C has to tell apart."""
    import torch

    from aster.windows import windows_batch

    rng = np.random.default_rng(seed)
    starts = np.sort(rng.choice(len(test) - window + 1, size=min(n, len(test) - window + 1), replace=False))
    n_tokens = model.config.tokens
    patch = window // n_tokens
    covered = np.concatenate(([0], np.cumsum(labels)))
    token_first = starts[:, None] + patch * np.arange(n_tokens)
    anomalous = (covered[token_first + patch] > covered[token_first]).reshape(-1)
    feats, pseudo = [], []
    with torch.inference_mode():
        for i in range(0, len(starts), 256):
            h = model.extractor(torch.from_numpy(windows_batch(test, starts[i:i + 256], window)))
            h_tilde, mask = model.pseudo_anomalies(h)
            feats.append(h.flatten(0, 1).numpy())
            pseudo.append(h_tilde[mask].numpy())
    feats, pseudo = np.concatenate(feats), np.concatenate(pseudo)
    pick = lambda a: a[rng.choice(len(a), size=min(len(a), 3000), replace=False)] if len(a) else a  # noqa: E731
    return pick(feats[~anomalous]), pick(feats[anomalous]), pick(pseudo)


def evaluate_series(series_dir, model_dir, p: dict, plots_dir, live) -> dict:
    from aster.artifacts import load_threshold
    from aster.data.prepare import load_prepared
    from aster.io import write_json
    from aster.metrics import f1_at_threshold, label_mode_f1, point_adjusted_f1, score_metrics
    from aster.plots import feature_pca, score_timeline

    prepared, meta = load_prepared(series_dir)
    sid, labels = series_dir.name, np.asarray(prepared.test_labels)
    train_scores, test_scores, model = series_scores(model_dir, prepared, p)
    metrics = score_metrics(labels, test_scores)
    label_mode = label_mode_f1(labels, test_scores, np.concatenate([train_scores, test_scores]),
                               p["evaluate"]["ratios"])
    production = f1_at_threshold(labels, test_scores, load_threshold(model_dir)["threshold"])
    pa = point_adjusted_f1(labels, test_scores > label_mode["threshold"])
    result = {"f1": label_mode["f1"], "f1_ratio": label_mode["ratio"], "precision": label_mode["precision"],
              "recall": label_mode["recall"], **metrics, "pa_f1": pa["f1"],
              "f1_label_free": production["f1"], "precision_label_free": production["precision"],
              "recall_label_free": production["recall"], "threshold_label_free": production["threshold"]}
    out = plots_dir / sid
    write_json(out / "label_mode.json", label_mode)
    score_timeline(test_scores, labels, out / "scores.png", f"{meta['name']}: test scores",
                   {"oracle-ratio threshold": label_mode["threshold"], "label-free threshold": production["threshold"]})
    if labels.any() and not labels.all():
        live.log_sklearn_plot("roc", labels, test_scores, name=f"{sid}/roc.json")
        live.log_sklearn_plot("precision_recall", labels, test_scores, name=f"{sid}/precision_recall.json")
    if model is not None:
        normal, anomaly, pseudo = pca_features(model, np.asarray(prepared.test), labels, p["window"])
        feature_pca(normal, anomaly, pseudo, out / "feature_pca.png", f"{meta['name']}: test features (PCA)")
    log.info("%s: %s", sid, {k: round(result[k], 4) for k in HEADLINE})
    return result


def mean_over_series(per_series: dict[str, dict]) -> dict:
    """TAB averages metrics over the series of a dataset (NaN-aware, like its report's nanmean)."""
    keys = [k for k in next(iter(per_series.values())) if k != "f1_ratio"]
    out = {}
    for k in keys:
        values = [v[k] for v in per_series.values() if v[k] is not None and not math.isnan(v[k])]
        out[k] = float(np.mean(values)) if values else float("nan")
    return out


def run(p: dict, paths: Paths) -> dict:
    from dvclive import Live

    from aster.data.prepare import prepared_series
    from aster.io import write_json

    with Live(str(paths.live_eval), dvcyaml=None, save_dvc_exp=False) as live:
        per_series = {d.name: evaluate_series(d, paths.models / d.name, p, paths.plots, live)
                      for d in prepared_series(paths.prepared)}
    result = {"dataset": paths.dataset, "n_series": len(per_series), "mean": mean_over_series(per_series),
              "series": per_series}
    write_json(paths.metrics, result)
    return result


def main() -> None:
    dataset = stage_dataset(__doc__)
    with one_line_errors():
        mean = run(params("window", "evaluate"), Paths(dataset))["mean"]
    print(f"{dataset}: " + ", ".join(f"{k} {mean[k]:.3f}" for k in HEADLINE))


if __name__ == "__main__":
    main()
