"""Stage `train`: fit the model named in params (`model.name`: ASTER or a baseline) on every prepared series.

ASTER: SGD with fixed lr and epochs, last epoch kept, checkpoint every epoch (resumable), dvclive curves.
Baselines: fit + per-step scores of every part (they have no separate inference artefact).
Both save the label-free production threshold computed on validation scores only.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import numpy as np

from pipeline.common import Paths, one_line_errors, params, stage_dataset

log = logging.getLogger("train")


def config_kwargs(config_cls, block: dict, block_name: str, not_for_config: set[str]) -> dict:
    """The keys of a params.yaml block that `config_cls` takes; any key neither it nor the stage knows is an error."""
    known = {f.name for f in dataclasses.fields(config_cls)}
    unknown = set(block) - known - not_for_config
    if unknown:
        raise ValueError(f"params.yaml {block_name}: unknown key(s) {sorted(unknown)}; "
                         f"{config_cls.__name__} has {sorted(known)}")
    return {k: v for k, v in block.items() if k in known}


def aster_config(model_params: dict, n_channels: int, window: int):
    from aster.model import AsterConfig

    kwargs = config_kwargs(AsterConfig, model_params, "model", {"name", "baseline"})
    return AsterConfig(n_channels=n_channels, window=window, **kwargs)


def train_aster(prepared, sid: str, p: dict, paths: Paths, out, weights_from: Path | None = None) -> dict:
    """Train (or, with `weights_from`, take the trained weights and history of <weights_from>/<sid>: the caller
    vouches that they were trained with these params) and derive the label-free threshold."""
    import torch
    from dvclive import Live

    from aster.artifacts import label_free_threshold, save_model
    from aster.ensemble import build_model, members_of
    from aster.scoring import step_scores
    from aster.training import TrainConfig, train

    tp = p["train"]
    cfg = TrainConfig(**config_kwargs(TrainConfig, tp, "train", {"threshold"}))
    torch.manual_seed(cfg.seed)
    model = build_model(aster_config(p["model"], prepared.train.shape[1], p["window"]))
    members = members_of(model)
    first = members[0]
    idle = "" if first.runs_perturbator else f" (P's {sum(q.numel() for q in first.perturbator.parameters())} not run)"
    log.info("%s: ASTER %s/%s, %d member(s), %d trainable of %d parameters%s", sid, model.config.backbone,
             model.config.finetune, len(members), model.num_parameters(True), model.num_parameters(), idle)
    if weights_from is not None:
        from safetensors.torch import load_model as load_tensors

        load_tensors(model, str(weights_from / sid / "model.safetensors"), device="cpu")
        history = json.loads((weights_from / sid / "meta.json").read_text())["history"]
    else:  # member k: seed + k, its own checkpoint and curves; one member keeps the single model's layout
        history = []
        for k, member in enumerate(members):
            run = sid if len(members) == 1 else f"{sid}/member-{k}"
            with Live(str(paths.live_train / run), dvcyaml=None, save_dvc_exp=False) as live:
                member_history = train(member, prepared.train, dataclasses.replace(cfg, seed=cfg.seed + k),
                                       paths.checkpoints / run, resume=True, live=live)
            history += [dict(h, member=k) for h in member_history] if len(members) > 1 else member_history
    save_model(model, out)
    val = step_scores(model, prepared.val, p["window"], tp["threshold"]["score_stride"], device=cfg.device,
                      mean=model.config.step_mean)
    return {"history": history, "threshold": label_free_threshold(val, tp["threshold"]["contamination"])}


def train_baseline(prepared, sid: str, p: dict, out) -> dict:
    from aster.artifacts import label_free_threshold
    from aster.baselines import BaselineConfig, fit_score
    from aster.io import atomic_path

    bp = dict(p["model"].get("baseline") or {})
    cfg = BaselineConfig(name=p["model"]["name"], seed=p["train"]["seed"], **bp)
    rest = np.concatenate([prepared.val, prepared.test])
    train_scores, rest_scores, info = fit_score(cfg, np.asarray(prepared.train), rest)
    val_scores, test_scores = rest_scores[:len(prepared.val)], rest_scores[len(prepared.val):]
    with atomic_path(out / "scores.npz", ".npz") as tmp, open(tmp, "wb") as f:
        np.savez(f, train=train_scores, val=val_scores, test=test_scores)
    log.info("%s: baseline %s fitted (%s)", sid, cfg.name, info)
    return {"info": info, "threshold": label_free_threshold(val_scores, p["train"]["threshold"]["contamination"])}


def run(p: dict, paths: Paths, weights_from: Path | None = None) -> None:
    from aster.artifacts import save_threshold
    from aster.data.prepare import load_prepared, prepared_series
    from aster.io import atomic_dir, write_json

    with atomic_dir(paths.models) as models_dir:
        for series_dir in prepared_series(paths.prepared):
            prepared, meta = load_prepared(series_dir)
            sid, out = series_dir.name, models_dir / series_dir.name
            if p["model"]["name"] == "aster":
                result = train_aster(prepared, sid, p, paths, out, weights_from)
            else:
                result = train_baseline(prepared, sid, p, out)
            save_threshold(out, result["threshold"])
            write_json(out / "meta.json", {"series": meta["name"], "channels": meta["channels"],
                                           "model": p["model"]["name"], "window": p["window"],
                                           **{k: v for k, v in result.items() if k != "threshold"}})
    write_json(paths.train_report, _final_losses(paths))


def _final_losses(paths: Paths) -> dict:
    """Last-epoch losses of every series (DVC metrics of the train stage)."""
    import json

    out = {}
    for meta_file in sorted(paths.models.glob("*/meta.json")):
        history = json.loads(meta_file.read_text()).get("history") or []
        if history:
            out[meta_file.parent.name] = {k: v for k, v in history[-1].items() if k != "epoch"}
    return out


def main() -> None:
    dataset = stage_dataset(__doc__)
    with one_line_errors():
        run(params("window", "model", "train"), Paths(dataset))


if __name__ == "__main__":
    main()
