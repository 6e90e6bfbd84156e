"""Stage `export`: every trained ASTER model of a dataset -> export/DS/SID/{model.onnx, card.json}.

The ONNX file is parity-checked against PyTorch before it is written; the card carries what serving needs (channel
order, window, scaler statistics, label-free threshold) and the lineage (config, params hash, metrics, sha256).
Baseline models (`model.name` other than aster: models/DS/SID/scores.npz, no network) are not exportable: they
are skipped with a warning and get a card with `"exportable": false` and the reason, so the stage still succeeds
and serving refuses such a directory with that reason.
"""

from __future__ import annotations

import json
import logging

from pipeline.common import Paths, one_line_errors, params, stage_dataset

log = logging.getLogger("export")
LINEAGE_BLOCKS = ("window", "prepare", "model", "train", "export")  # params behind an exported model (hashed)


def lineage(p: dict, dataset: str) -> dict:
    """The params blocks behind the exported models (those of LINEAGE_BLOCKS present in `p`, plus the dataset's
    spec when `p` has `datasets`): the card's params hash is computed over exactly this."""
    out = {b: p[b] for b in LINEAGE_BLOCKS if b in p}
    if dataset in (p.get("datasets") or {}):
        out["dataset"] = {dataset: p["datasets"][dataset]}
    return out


def series_metrics(paths: Paths, sid: str) -> dict:
    if not paths.metrics.exists():
        raise FileNotFoundError(f"{paths.metrics}: missing; run the evaluate stage first")
    per_series = json.loads(paths.metrics.read_text()).get("series", {})
    if sid not in per_series:
        raise ValueError(f"{paths.metrics}: no metrics for series '{sid}' (has {sorted(per_series)}); "
                         f"re-run the evaluate stage")
    return per_series[sid]


def export_series(model_dir, out, sid: str, paths: Paths, p: dict, lineage: dict) -> dict:
    from aster.artifacts import load_model, load_threshold
    from aster.data.prepare import Scaler
    from aster.export import CARD_FILE, ONNX_FILE, export_model, write_card

    meta = json.loads((model_dir / "meta.json").read_text())
    scaler = Scaler.load(paths.prepared / sid / "scaler.json")
    fields = dict(dataset=paths.dataset, series=sid, channels=meta["channels"], scaler=vars(scaler),
                  threshold=load_threshold(model_dir), params=lineage, metrics=series_metrics(paths, sid))
    if not (model_dir / "model.safetensors").exists():
        what = meta.get("model", "unknown")
        reason = (f"baseline model '{what}' has no network to export (its scores are stored in scores.npz); "
                  f"only ASTER models (model.name: aster) are exportable")
        log.warning("%s/%s: skipped, %s", paths.dataset, sid, reason)
        return write_card(out / CARD_FILE, config=None, window=p["window"], onnx_path=None, opset=None,
                          skipped=reason, **fields)
    model = load_model(model_dir)
    if model.config.window != p["window"]:
        raise ValueError(f"{model_dir}: model trained with window {model.config.window}, params.yaml says "
                         f"{p['window']}; re-run the train stage")
    e = p["export"]
    card = export_model(model, out, opset=int(e["opset"]), dynamo=bool(e["dynamo"]), **fields)
    log.info("%s/%s: exported %s (%.1f MB, parity %.1e)", paths.dataset, sid, paths.export / sid / ONNX_FILE,
             card["onnx"]["bytes"] / 1e6, card["onnx"]["parity"]["max_abs_diff"])
    return card


def run(p: dict, paths: Paths) -> list[dict]:
    """Export every series of `paths.dataset` (`p` needs `window` and `export`; see `lineage` for the hash)."""
    from aster.io import atomic_dir

    series_dirs = sorted(d for d in paths.models.iterdir() if (d / "meta.json").exists()) \
        if paths.models.is_dir() else []
    if not series_dirs:
        raise FileNotFoundError(f"{paths.models}: no trained models; run the train stage first")
    hashed = lineage(p, paths.dataset)
    with atomic_dir(paths.export) as out_dir:
        return [export_series(d, out_dir / d.name, d.name, paths, p, hashed) for d in series_dirs]


def main() -> None:
    dataset = stage_dataset(__doc__)
    with one_line_errors():
        # window + export drive the stage; the other lineage blocks are only hashed into the card
        cards = run(params("datasets", *LINEAGE_BLOCKS), Paths(dataset))
    n = sum(c["exportable"] for c in cards)
    print(f"{dataset}: exported {n} of {len(cards)} series to {Paths(dataset).export}")


if __name__ == "__main__":
    main()
