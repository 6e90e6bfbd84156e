"""Benchmark runner: every (dataset, model) through the pipeline's own stage functions, on the same data.

    python benchmarks/run.py --datasets msl asd skab daphnet smd --models kmeans hbos iforest knn pca lof
    python benchmarks/run.py --datasets msl --models aster --set train.epochs=8 model.backbone=none --tag aster-none
    python benchmarks/run.py --datasets msl --models aster --variant paper --seeds 2021 2022 2023

For each dataset of benchmarks/datasets.yaml: ingest once (shared by every model), validate + prepare once per
(window, train_fraction) (shared), then per model: train and evaluate with `pipeline.train.run` /
`pipeline.evaluate.run`, i.e. the same loaders, chronological split, train-only scaling, scoring and TAB metrics
for every model. Parameters: params.yaml, then the catalog's per-dataset `window`/`set`, then the named
`--variant` of benchmarks/variants.yaml, then `--set`, then `model.name`; `--seeds` runs each setting once per seed
(tag suffix `-s<seed>`), and report.py shows their mean ± std. Outputs (gitignored):

    <out-root>/_shared/data/ingested/<ds>/              ingest, one per dataset
    <out-root>/_shared/w<window>-tf<fraction>/...       validation report + prepared arrays
    <out-root>/<tag>/{models,checkpoints,dvclive,plots,metrics,reports}/...   per model tag (Paths(ds, root))

and the committed result `<results>/<ds>/<tag>.json` = evaluate's result (mean + per series) + run info (params,
wall times, machine). Resumable: a (dataset, tag) whose result exists is skipped unless --force; an ASTER run cut
off mid-training resumes from its checkpoint. A failure is written to `<ds>/<tag>.failed.json` and the run goes
on with the next model (exit code 1 at the end).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import shutil
import sys
import time
import traceback
from copy import deepcopy
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import machine_info  # noqa: E402
from pipeline.common import Paths, dotted_keys, params, setup_logging  # noqa: E402

log = logging.getLogger("bench")
CATALOG = ROOT / "benchmarks" / "datasets.yaml"
VARIANTS = ROOT / "benchmarks" / "variants.yaml"
RESULTS = ROOT / "benchmarks" / "results"
OUT_ROOT = ROOT / "benchmarks" / "runs"
MODELS = ("kmeans", "hbos", "iforest", "knn", "pca", "lof", "cblof", "aster")


# ----------------------------------------------------------------------------- params

def load_catalog(path: Path = CATALOG) -> dict:
    with open(path) as f:
        catalog = yaml.safe_load(f) or {}
    for name, entry in catalog.items():
        if not isinstance(entry, dict) or "loader" not in entry:
            raise SystemExit(f"{path}: dataset '{name}' needs at least a 'loader'")
    return catalog


def set_key(p: dict, assignment: str) -> None:
    """Apply one `dotted.key=value` (value parsed as YAML) in place; the parent of the key must exist."""
    key, sep, raw = assignment.partition("=")
    if not sep or not key:
        raise SystemExit(f"--set {assignment!r}: expected key=value, e.g. train.epochs=8")
    *parents, leaf = key.split(".")
    node = p
    for i, k in enumerate(parents):
        if not isinstance(node.get(k), dict):
            raise SystemExit(f"--set {assignment!r}: params has no block '{'.'.join(parents[:i + 1])}'")
        node = node[k]
    if not parents and leaf not in p:
        raise SystemExit(f"--set {assignment!r}: params.yaml has no top-level key '{leaf}'")
    node[leaf] = yaml.safe_load(raw)


def load_variants(path: Path = VARIANTS) -> dict[str, dict]:
    with open(path) as f:
        variants = yaml.safe_load(f) or {}
    for name, entry in variants.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("set"), dict):
            raise SystemExit(f"{path}: variant '{name}' needs a 'set' mapping of dotted keys to values")
    return variants


def run_params(base: dict, entry: dict, model: str, sets: list[str], variant: dict | None = None) -> dict:
    """params.yaml < catalog window/set < variant < --set < model.name."""
    p = deepcopy(base)
    if "window" in entry:
        p["window"] = int(entry["window"])
    for k, v in {**(entry.get("set") or {}), **((variant or {}).get("set") or {})}.items():
        set_key(p, f"{k}={json.dumps(v)}")
    for s in sets:
        set_key(p, s)
    p["model"]["name"] = model
    return p


def dataset_spec(entry: dict) -> dict:
    """The params.yaml-style spec for ingest; a relative path is relative to the repository root."""
    path = entry.get("path")
    return {"loader": entry["loader"], "path": None if path is None else str((ROOT / path).resolve()),
            "options": dict(entry.get("options") or {})}


def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


# ----------------------------------------------------------------------------- shared stages

def _stamped(directory: Path, stamp: dict) -> bool:
    f = directory / ".bench-stamp.json"
    return directory.is_dir() and f.exists() and json.loads(f.read_text()) == stamp


def _write_stamp(directory: Path, stamp: dict) -> None:
    from aster.io import write_json

    write_json(directory / ".bench-stamp.json", stamp)


def ensure_ingested(name: str, entry: dict, out_root: Path) -> tuple[Paths, float]:
    """Ingest once per dataset (re-done only if its spec changes); returns (paths, seconds spent now)."""
    from pipeline import ingest

    paths = Paths(name, root=out_root / "_shared")
    spec = dataset_spec(entry)
    if _stamped(paths.ingested, spec):
        return paths, 0.0
    t0 = time.perf_counter()
    ingest.run(spec, paths)
    _write_stamp(paths.ingested, spec)
    return paths, time.perf_counter() - t0


def ensure_prepared(name: str, p: dict, ingested: Paths, out_root: Path) -> tuple[Paths, dict]:
    """Validate + prepare once per (dataset, window, train_fraction); returns (paths, seconds spent now)."""
    from pipeline import prepare, validate

    frac = p["prepare"]["train_fraction"]
    paths = Paths(name, root=out_root / "_shared" / f"w{p['window']}-tf{frac}")
    paths.ingested = ingested.ingested
    stamp = {"window": p["window"], "prepare": p["prepare"],
             "ingest": json.loads((ingested.ingested / ".bench-stamp.json").read_text())}
    if _stamped(paths.prepared, stamp):
        return paths, {}
    t0 = time.perf_counter()
    failures = validate.run(p, paths)
    if failures:
        raise ValueError(f"{name}: validation failed ({len(failures)} expectations, report {paths.validation}): "
                         + "; ".join(failures[:3]))
    t1 = time.perf_counter()
    prepare.run(p, paths)
    _write_stamp(paths.prepared, stamp)
    return paths, {"validate": t1 - t0, "prepare": time.perf_counter() - t1}


# ----------------------------------------------------------------------------- one (dataset, model)

def _series_info(models_dir: Path) -> dict:
    """Compact per-series training info from the train stage's meta.json (baseline fit info / ASTER last epoch)."""
    out = {}
    for meta_file in sorted(models_dir.glob("*/meta.json")):
        meta = json.loads(meta_file.read_text())
        if "info" in meta:
            i = meta["info"]
            out[meta_file.parent.name] = {k: i[k] for k in ("fit_rows", "fit_windows", "train_rows", "train_windows",
                                                            "subsampled", "fit_seconds", "score_seconds", "n_iter")
                                          if k in i}
        elif meta.get("history"):
            last = meta["history"][-1]
            out[meta_file.parent.name] = {"epochs": last.get("epoch"), "final_loss": last.get("loss"),
                                          "epoch_seconds": last.get("seconds"),
                                          "step_seconds": last.get("step_seconds")}
    return out


def training_params(p: dict) -> dict:
    """What trained weights depend on: p without the evaluate block, the threshold and the model's inference-only
    settings (AsterConfig.inference_only, e.g. step_mean)."""
    from aster.model import AsterConfig

    out = {k: deepcopy(v) for k, v in p.items() if k != "evaluate"}
    out["train"].pop("threshold", None)
    for k in AsterConfig.inference_only:
        out["model"].pop(k, None)
    return out


def reused_weights(name: str, p: dict, source: Path) -> Path:
    """The models directory of run <source> for dataset `name`, refused unless it was trained with these params."""
    stamp_file = source / "checkpoints" / f".{name}.params.json"
    if not stamp_file.exists() or not (source / "models" / name).is_dir():
        raise FileNotFoundError(f"--weights-from: no trained {name} models under {source}")
    theirs, ours = dotted_keys(training_params(json.loads(stamp_file.read_text()))), dotted_keys(training_params(p))
    diff = sorted(k for k in set(theirs) | set(ours) if theirs.get(k) != ours.get(k))
    if diff:
        raise ValueError(f"--weights-from {source.name}: trained with other params (differ: {', '.join(diff)})")
    return source / "models" / name


def train_and_evaluate(name: str, tag: str, p: dict, prepared: Paths, out_root: Path, fresh: bool,
                       weights_from: str | None = None) -> tuple:
    """pipeline.train.run + pipeline.evaluate.run into <out_root>/<tag>; returns (result, seconds, series info).

    weights_from: the tag of a finished ASTER run to take the trained weights from instead of training (only the
    threshold and evaluation are redone, e.g. for another step mean); its params must match but for inference."""
    from pipeline import evaluate, train

    paths = Paths(name, root=out_root / tag)
    paths.prepared = prepared.prepared
    source = None if weights_from is None else reused_weights(name, p, out_root / weights_from)
    # Checkpoints only resume a run with the same params; anything else (or --force) starts afresh.
    stamp_file = paths.checkpoints.parent / f".{name}.params.json"
    if fresh or not stamp_file.exists() or json.loads(stamp_file.read_text()) != p:
        shutil.rmtree(paths.checkpoints, ignore_errors=True)
        stamp_file.parent.mkdir(parents=True, exist_ok=True)
        stamp_file.write_text(json.dumps(p, indent=1))
    t0 = time.perf_counter()
    train.run(p, paths, weights_from=source)
    t1 = time.perf_counter()
    result = evaluate.run(p, paths)
    t2 = time.perf_counter()
    return result, {"train": t1 - t0, "evaluate": t2 - t1}, _series_info(paths.models)


def result_path(results: Path, dataset: str, tag: str) -> Path:
    return results / dataset / f"{tag}.json"


def run_one(name: str, entry: dict, model: str, tag: str, args, base: dict, machine: dict, seed: int | None) -> dict:
    from aster.io import write_json

    p = run_params(base, entry, model, args.set, args.variant_entry)
    if seed is not None:
        p["train"]["seed"] = seed
    t0 = time.perf_counter()
    ingested, t_ingest = ensure_ingested(name, entry, args.out_root)
    prepared, t_prep = ensure_prepared(name, p, ingested, args.out_root)
    source = None if args.weights_from is None else args.weights_from + (f"-s{seed}" if seed is not None else "")
    result, t_model, info = train_and_evaluate(name, tag, p, prepared, args.out_root, args.force, source)
    seconds = {"ingest": t_ingest, **t_prep, **t_model, "total": time.perf_counter() - t0}
    out = {**result, "dataset": name, "model": model, "tag": tag,
           "run": {"params": {k: p[k] for k in ("window", "prepare", "model", "train", "evaluate")},
                   "dataset_spec": dataset_spec(entry) | {"path": entry.get("path")}, "note": entry.get("note"),
                   "seconds": seconds, "series_info": info, "machine": machine,
                   "overrides": list(args.set), "variant": args.variant, "params_digest": _digest(p),
                   "weights_from": source}}
    write_json(result_path(args.results, name, tag), out)
    failed = args.results / name / f"{tag}.failed.json"
    failed.unlink(missing_ok=True)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", required=True, help="names in the catalog")
    parser.add_argument("--models", nargs="+", required=True, choices=MODELS)
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="params overrides, e.g. train.epochs=8 model.backbone=none")
    parser.add_argument("--variant", help="a named setting of benchmarks/variants.yaml (e.g. paper)")
    parser.add_argument("--seeds", nargs="+", type=int, help="train.seed values; tags get the suffix -s<seed>")
    parser.add_argument("--tag", help="result/run tag (default: the model name); needs exactly one model")
    parser.add_argument("--out-root", type=Path, default=OUT_ROOT)
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--catalog", type=Path, default=CATALOG)
    parser.add_argument("--force", action="store_true", help="re-run even where a result exists")
    parser.add_argument("--weights-from", metavar="TAG",
                        help="ASTER: evaluate the trained weights of run TAG (-s<seed> added) instead of training; "
                             "refused unless TAG was trained with the same params but for inference-only settings")
    args = parser.parse_args(argv)
    if args.weights_from and args.models != ["aster"]:
        parser.error("--weights-from reuses ASTER weights; pass --models aster")
    if args.tag and len(args.models) != 1:
        parser.error("--tag names one model's runs; pass exactly one --models")
    if args.tag and (args.tag.startswith(("_", ".")) or "/" in args.tag):
        parser.error(f"--tag {args.tag!r}: must not start with '_' or '.' nor contain '/'")
    args.out_root, args.results = args.out_root.resolve(), args.results.resolve()
    setup_logging()
    catalog = load_catalog(args.catalog)
    unknown = [d for d in args.datasets if d not in catalog]
    if unknown:
        parser.error(f"datasets {unknown} not in {args.catalog} (has {sorted(catalog)})")
    variants = load_variants()
    if args.variant is not None and args.variant not in variants:
        parser.error(f"--variant {args.variant!r} not in {VARIANTS} (has {sorted(variants)})")
    args.variant_entry = variants.get(args.variant)
    base = params("window", "prepare", "model", "train", "evaluate")
    machine = machine_info()
    log.info("machine: %s", {k: machine[k] for k in ("cpu_model", "usable_cpus", "torch_threads", "cuda")})

    failed, summary = [], []
    runs = [(name, model, seed) for name in args.datasets for model in args.models for seed in (args.seeds or [None])]
    for name, model, seed in runs:
        tag = (args.tag or (f"{model}-{args.variant}" if args.variant else model)) + (
            f"-s{seed}" if seed is not None else "")
        if result_path(args.results, name, tag).exists() and not args.force:
            log.info("%s / %s: result exists, skipped (--force re-runs it)", name, tag)
            continue
        log.info("=== %s / %s", name, tag)
        try:
            out = run_one(name, catalog[name], model, tag, args, base, machine, seed)
        except Exception as e:  # noqa: BLE001  one failed model must not stop the others
            from aster.io import write_json

            msg = f"{type(e).__name__}: {e}".splitlines()[0]
            log.error("%s / %s failed: %s", name, tag, msg)
            write_json(args.results / name / f"{tag}.failed.json",
                       {"dataset": name, "tag": tag, "model": model, "error": msg, "overrides": list(args.set),
                        "traceback": traceback.format_exc().splitlines()[-12:], "date": machine["date"]})
            failed.append(f"{name}/{tag}: {msg}")
            continue
        m, s = out["mean"], out["run"]["seconds"]
        summary.append(f"{name:9s} {tag:12s} {s['total']:8.1f} s  F1 {m['f1']:.3f}  AUROC {m['auroc']:.3f}  "
                       f"AUPR {m['aupr']:.3f}  VUS-ROC {m['vus_roc']:.3f}  VUS-PR {m['vus_pr']:.3f}")
        log.info("%s", summary[-1])
    print("\n".join(summary))
    for line in failed:
        print(f"FAILED {line}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
