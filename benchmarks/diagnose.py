"""Is C the weak link? Trained ASTER models of benchmarks/run.py, scored three ways on the same test windows.

    python benchmarks/diagnose.py --dataset daphnet --tag aster --seeds 2021 2022 2023 [--out-root benchmarks/runs]

  C         the model's own score (sigmoid of C's window logit), as evaluate computes it
  kNN(F)    mean distance of a test window's F features (mean over tokens) to its 5 nearest training windows'
  kNN(raw)  the same on the raw scaled windows (a KNN baseline on windows)
Per-step scores: the mean over covering windows (stride `--stride`). When kNN(F) beats C, F's features hold the
signal and C's decision is where it is lost. With several seeds it also scores their ensemble: per series, the mean
over seeds of C's per-step scores (what averaging the seeds' models would buy, at that multiple of training time).
Writes benchmarks/results/diagnostics/<dataset>-<tag>.json.
A diagnostic of trained models, not a model of its own: labels are used only in the metrics, as everywhere.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def window_features(model, series: np.ndarray, window: int, stride: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(starts, C's window scores, mean F features) of the stride windows of a series."""
    import torch

    from aster.ensemble import AsterEnsemble
    from aster.windows import window_starts, windows_batch

    starts = window_starts(len(series), window, stride)
    scores, feats = [], []
    with torch.inference_mode():
        for i in range(0, len(starts), 512):
            x = torch.from_numpy(windows_batch(series, starts[i:i + 512], window))
            h = model.extractor(x)  # an ensemble's: its first member's F
            logits = model(x) if isinstance(model, AsterEnsemble) else model.classifier(h)[0]  # one F pass
            scores.append(torch.sigmoid(logits).numpy())
            feats.append(h.mean(1).numpy())
    return starts, np.concatenate(scores), np.concatenate(feats)


def diagnose_series(model_dir: Path, prepared_dir: Path, stride: int, k: int = 5) -> tuple[dict, np.ndarray, np.ndarray]:
    """({score name: metrics}, C's per-step test scores, test labels) of one trained series."""
    from sklearn.neighbors import NearestNeighbors

    from aster.artifacts import load_model
    from aster.data.prepare import load_prepared
    from aster.windows import per_step_from_windows, windows_batch

    model = load_model(model_dir).eval()
    prepared, _ = load_prepared(prepared_dir)
    window = model.config.window
    train, test, labels = np.asarray(prepared.train), np.asarray(prepared.test), np.asarray(prepared.test_labels)
    starts, c_scores, f_test = window_features(model, test, window, stride)
    train_starts, _, f_train = window_features(model, train, window, stride)
    raw_train = windows_batch(train, train_starts, window).reshape(len(train_starts), -1)
    raw_test = windows_batch(test, starts, window).reshape(len(starts), -1)
    scores = {"C": c_scores,
              "kNN(F)": NearestNeighbors(n_neighbors=k).fit(f_train).kneighbors(f_test)[0].mean(1),
              "kNN(raw)": NearestNeighbors(n_neighbors=k).fit(raw_train).kneighbors(raw_test)[0].mean(1)}
    per_step = {name: per_step_from_windows(starts, s, len(test), window, fill=np.nan,
                                            mean=model.config.step_mean if name == "C" else "arithmetic")
                for name, s in scores.items()}
    return {name: _metrics(labels, s) for name, s in per_step.items()}, per_step["C"], labels


def _metrics(labels: np.ndarray, scores: np.ndarray) -> dict:
    from aster.metrics import score_metrics

    m = score_metrics(labels, scores)
    return {"auroc": m["auroc"], "vus_pr": m["vus_pr"]}


def main() -> None:
    from aster.env import setup_environment

    setup_environment()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--tag", default="aster", help="benchmarks/run.py tag (without -s<seed>)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[2021, 2022, 2023])
    parser.add_argument("--stride", type=int, default=10)
    parser.add_argument("--out-root", type=Path, default=ROOT / "benchmarks" / "runs")
    args = parser.parse_args()
    prepared_root = next((args.out_root / "_shared").glob(f"w*-tf*/data/prepared/{args.dataset}"), None)
    if prepared_root is None:
        raise SystemExit(f"{args.out_root}/_shared: no prepared '{args.dataset}' (run benchmarks/run.py first)")
    result = {"dataset": args.dataset, "tag": args.tag, "stride": args.stride, "seeds": {}}
    c_scores = {}  # series -> (labels, [C's per-step scores per seed])
    for seed in args.seeds:
        models = args.out_root / f"{args.tag}-s{seed}" / "models" / args.dataset
        per_series = {}
        for d in sorted(models.iterdir()):
            if (d / "config.json").exists():
                per_series[d.name], scores, labels = diagnose_series(d, prepared_root / d.name, args.stride)
                c_scores.setdefault(d.name, (labels, []))[1].append(scores)
        per_series = {k: v for k, v in per_series.items() if not np.isnan(v["C"]["auroc"])}  # no anomaly in test
        mean = {name: {m: float(np.mean([s[name][m] for s in per_series.values()])) for m in ("auroc", "vus_pr")}
                for name in ("C", "kNN(F)", "kNN(raw)")}
        result["seeds"][seed] = {"mean": mean, "series": per_series}
        print(f"{args.dataset} seed {seed}: " + ", ".join(f"{n} {v['auroc']:.3f} / {v['vus_pr']:.3f}"
                                                           for n, v in mean.items()), flush=True)
    if len(args.seeds) > 1:
        ensemble = {k: _metrics(labels, np.mean(runs, 0)) for k, (labels, runs) in c_scores.items()
                    if len(runs) == len(args.seeds) and labels.any()}
        result["ensemble"] = {"mean": {m: float(np.mean([e[m] for e in ensemble.values()])) for m in ("auroc", "vus_pr")},
                              "series": ensemble}
        print(f"{args.dataset} ensemble of {len(args.seeds)} seeds (mean of C's per-step scores): "
              f"{result['ensemble']['mean']['auroc']:.3f} / {result['ensemble']['mean']['vus_pr']:.3f}", flush=True)
    out = ROOT / "benchmarks" / "results" / "diagnostics" / f"{args.dataset}-{args.tag}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
