"""Training loop: fixed epochs or a fixed budget of optimiser steps, keep the last weights; exact resume; DDP.

The paper's setting is plain SGD with a fixed learning rate for a fixed number of epochs. A step budget (`steps`)
gives every series the same number of updates whatever its length (short series got a handful of steps per
epoch), and `optimizer` / `schedule` are levers of ours, measured in BENCHMARKS.md.

The model only has to provide `training_losses(x) -> {"loss": total, <name>: detached scalar, ...}`
(one backward of "loss" does all the gradient routing) and `config.window`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import random
import time
from dataclasses import asdict, dataclass, is_dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler
from tqdm.auto import tqdm

from aster.io import atomic_path
from aster.windows import SlidingWindows

log = logging.getLogger(__name__)
CHECKPOINT = "checkpoint.pt"
# What a checkpoint must have been trained with to be resumed: the data, the model and these settings.
_RESUME_KEYS = ("batch_size", "lr", "momentum", "weight_decay", "seed", "stride", "steps", "optimizer", "schedule")
OPTIMIZERS, SCHEDULES = ("sgd", "adamw"), ("constant", "cosine")


@dataclass
class TrainConfig:
    epochs: int = 10  # (ours): the paper's value is missing from the text we have; ignored when `steps` is set
    steps: int | None = None  # (ours) budget of optimiser steps, as many epochs as it takes (last one partial)
    batch_size: int = 64  # paper
    optimizer: str = "sgd"  # "sgd" (paper) | "adamw" (ours)
    schedule: str = "constant"  # "constant" (paper) | "cosine" (ours): cosine decay to 0 over the run
    lr: float = 1e-3  # (ours): paper says "fixed learning rate", value missing
    momentum: float = 0.0
    weight_decay: float = 0.0
    seed: int = 2021  # TAB seed
    stride: int = 1  # training-window stride; >1 trades coverage of the train split for speed
    num_workers: int = 0  # DataLoader workers; windows are cheap slices, 0 is usually fastest
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    amp: bool = True  # bf16 autocast, CUDA only (ignored on CPU)
    log_every: int = 20  # steps between progress-bar updates (each one syncs the GPU)
    max_steps_per_epoch: int | None = None  # cap for smoke runs
    checkpoint_steps: int = 1  # checkpoint (and log) after the first epoch ending this many steps after the last
    find_unused_parameters: bool = False  # DDP: only needed if some trainable parameter gets no gradient

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"TrainConfig: optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"TrainConfig: schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if self.steps is not None and self.steps < 1:
            raise ValueError(f"TrainConfig: steps must be None or >= 1, got {self.steps}")
        if self.epochs < 1 or self.batch_size < 1 or not self.lr > 0:
            raise ValueError("TrainConfig: epochs and batch_size must be >= 1 and lr > 0")

    def plan(self, batches_per_epoch: int) -> list[int]:
        """Optimiser steps of each epoch: `epochs` full ones, or enough to spend `steps` (the last one partial)."""
        per_epoch = batches_per_epoch if self.max_steps_per_epoch is None else min(batches_per_epoch,
                                                                                    self.max_steps_per_epoch)
        if per_epoch < 1:
            return []
        if self.steps is None:
            return [per_epoch] * self.epochs
        full, rest = divmod(self.steps, per_epoch)
        return [per_epoch] * full + ([rest] if rest else [])


def make_optimizer(model: nn.Module, cfg: TrainConfig, total_steps: int):
    """(optimizer, LambdaLR scheduler) of `cfg`; the scheduler steps once per optimiser step.

    A model with `param_groups()` ([{"params", "lr_scale", ...}]) gets a learning rate per group.
    """
    if hasattr(model, "param_groups"):
        groups = [{"params": g["params"], "lr": cfg.lr * g["lr_scale"]} for g in model.param_groups()]
    else:
        groups = [{"params": [p for p in model.parameters() if p.requires_grad], "lr": cfg.lr}]
    if cfg.optimizer == "sgd":
        opt = torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    else:
        opt = torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.schedule == "constant":
        factor = lambda step: 1.0  # noqa: E731
    else:
        factor = lambda step: 0.5 * (1.0 + math.cos(math.pi * min(step, total_steps) / max(total_steps, 1)))  # noqa: E731
    return opt, torch.optim.lr_scheduler.LambdaLR(opt, factor)


def resolve_device(name: str = "auto", local_rank: int = 0) -> torch.device:
    if name == "auto":
        return torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and device.index is None:
        device = torch.device(f"cuda:{local_rank}")
    return device


class _Losses(nn.Module):
    """Makes `training_losses` the forward, so DDP's hooks (gradient all-reduce) see the training step."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.model.training_losses(x)


def _init_distributed(device_name: str) -> tuple[int, int, torch.device, bool]:
    """(rank, world size, device, whether we created the process group). World size 1 without torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1, resolve_device(device_name), False
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_name, local)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    created = not dist.is_initialized()
    if created:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return rank, world, device, created


def _rng_state(device: torch.device) -> dict:
    np_state = np.random.get_state(legacy=False)
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
        "numpy": {"pos": np_state["state"]["pos"], "key": np_state["state"]["key"].tolist(),
                  "has_gauss": np_state["has_gauss"], "gauss": np_state["gauss"]},
        "python": random.getstate(),
    }


def _set_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and state["cuda"] is not None:
        torch.cuda.set_rng_state(state["cuda"], device)
    n = state["numpy"]
    key = np.array(n["key"], dtype=np.uint32)
    np.random.set_state({"bit_generator": "MT19937", "state": {"key": key, "pos": n["pos"]},
                         "has_gauss": n["has_gauss"], "gauss": n["gauss"]})
    random.setstate(state["python"])


def _seed(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def run_fingerprint(model: nn.Module, windows: SlidingWindows, cfg: TrainConfig) -> str:
    """sha256 of what a resumable run depends on: training data, model config and the optimisation settings.

    A checkpoint is resumed only when this matches, so new data or params (e.g. a DVC re-run after `data.dvc`
    changed) start a fresh run instead of silently continuing, or returning, the old one.
    """
    h = hashlib.sha256(np.ascontiguousarray(windows.series).tobytes())
    model_config = asdict(model.config) if is_dataclass(getattr(model, "config", None)) else repr(model)
    if isinstance(model_config, dict):  # settings that only change inference (e.g. score_level) do not retrain
        model_config = {k: v for k, v in model_config.items()
                        if k not in getattr(model.config, "inference_only", ())}
    h.update(json.dumps({"model": model_config, "window": windows.window,
                         **{k: getattr(cfg, k) for k in _RESUME_KEYS}}, sort_keys=True, default=str).encode())
    return h.hexdigest()


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Read a checkpoint written by `train` (a file, or the out_dir holding checkpoint.pt), on CPU."""
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT
    if not path.exists():
        raise FileNotFoundError(f"{path}: no checkpoint")
    return torch.load(path, map_location="cpu", weights_only=True)


def load_weights(model: nn.Module, path: str | os.PathLike) -> nn.Module:
    """Load the (last-epoch) weights of a checkpoint into `model`."""
    model.load_state_dict(load_checkpoint(path)["model"])
    return model


def _log_live(live, history: list[dict]) -> None:
    """Log every epoch of `history` that `live` has not seen yet (replays old epochs into a fresh Live)."""
    while live.step < len(history):
        for k, v in history[live.step].items():
            if k != "epoch":
                live.log_metric(f"train/{k}", v)
        live.next_step()


def train(model: nn.Module, windows: SlidingWindows | np.ndarray, cfg: TrainConfig, out_dir: str | os.PathLike,
          resume: bool = True, live=None, progress: bool = True) -> list[dict]:
    """Train `model` on normal windows; return per-epoch mean losses (history).

    Checkpoints every epoch to out_dir/checkpoint.pt (atomically) and resumes from it; a resumed run ends with
    the same weights as an uninterrupted one (bit-identical on CPU). Under torchrun (WORLD_SIZE > 1) runs as DDP:
    every rank trains on its share of each epoch, rank 0 alone writes checkpoint, logs and progress; out_dir
    must be visible to every rank. Re-seeds the global RNGs (from cfg.seed + rank) on a fresh start.
    """
    rank, world, device, own_group = _init_distributed(cfg.device)
    try:
        return _train(model, windows, cfg, Path(out_dir), resume, live, progress and rank == 0, rank, world, device)
    finally:
        if own_group:
            dist.destroy_process_group()


def _train(model, windows, cfg, out_dir, resume, live, progress, rank, world, device) -> list[dict]:
    if not isinstance(windows, SlidingWindows):
        windows = SlidingWindows(windows, model.config.window, cfg.stride)
    elif windows.stride != cfg.stride:
        raise ValueError(f"windows have stride {windows.stride} but TrainConfig.stride is {cfg.stride}")
    model.to(device).train()
    loader_gen = torch.Generator()  # base seed of DataLoader workers; saved so a resumed run draws the same
    ckpt_path = out_dir / CHECKPOINT
    start, history = 0, []
    fingerprint = run_fingerprint(model, windows, cfg)
    ck = load_checkpoint(ckpt_path) if resume and ckpt_path.exists() else None
    if ck is not None and ck.get("fingerprint") != fingerprint:
        log.warning("%s was written for other data, model or settings: starting afresh", ckpt_path)
        ck = None
    # DistributedSampler also in a single process: its order is randperm(seed + epoch), so resume is exact.
    sampler = DistributedSampler(windows, num_replicas=world, rank=rank, shuffle=True, seed=cfg.seed)
    loader = DataLoader(windows, batch_size=cfg.batch_size, sampler=sampler, num_workers=cfg.num_workers,
                        generator=loader_gen, pin_memory=device.type == "cuda")
    plan = cfg.plan(len(loader))
    if not plan:
        raise ValueError(f"no training steps: {len(windows)} windows, batch_size {cfg.batch_size}")
    opt, sched = make_optimizer(model, cfg, sum(plan))
    if ck is not None:
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        sched.load_state_dict(ck["scheduler"])
        start, history = ck["epoch"], ck["history"]
        loader_gen.set_state(ck["loader_generator"])
        if len(ck["rng"]) == world:
            _set_rng_state(ck["rng"][rank], device)
        else:  # world size changed: each rank's data share changes anyway, so exactness is lost; stay seeded
            _seed(cfg.seed + 1000 * start + rank)
    else:
        _seed(cfg.seed + rank)
        loader_gen.manual_seed(cfg.seed)

    step_module = _Losses(model)
    if world > 1:
        step_module = DistributedDataParallel(step_module, device_ids=[device.index] if device.type == "cuda" else None,
                                              find_unused_parameters=cfg.find_unused_parameters)
    use_amp = cfg.amp and device.type == "cuda"
    if live is not None and rank == 0:
        _log_live(live, history)

    saved_at = sum(plan[:start])
    for epoch in range(start, len(plan)):
        n_steps = plan[epoch]
        sampler.set_epoch(epoch)
        t0, keys, sums, count = time.perf_counter(), None, None, 0
        bar = tqdm(total=n_steps, desc=f"epoch {epoch + 1}/{len(plan)}", disable=not progress, leave=False,
                   dynamic_ncols=True)
        for step, x in enumerate(loader):
            if step == n_steps:
                break
            x = x.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                losses = step_module(x)
            opt.zero_grad(set_to_none=True)
            losses["loss"].backward()
            opt.step()
            sched.step()
            if keys is None:
                keys = ["loss"] + [k for k in losses if k != "loss"]
            vals = torch.stack([torch.as_tensor(losses[k]).detach().float().to(device) for k in keys])
            sums, count = (vals if sums is None else sums + vals), count + 1
            bar.update()
            if progress and ((step + 1) % cfg.log_every == 0 or step + 1 == n_steps):
                bar.set_postfix({k: f"{v:.4g}" for k, v in zip(keys, vals.tolist())}, refresh=False)
        bar.close()
        if count == 0:
            raise ValueError(f"epoch {epoch + 1} ran no steps ({len(windows)} windows, batch_size {cfg.batch_size})")
        local_steps = count
        if world > 1:  # mean over all ranks' steps; also makes every rank see the same numbers
            packed = torch.cat([sums, torch.tensor([float(count)], device=device)])
            dist.all_reduce(packed)
            sums, count = packed[:-1], int(packed[-1].item())
        means = (sums / count).tolist()
        seconds = time.perf_counter() - t0
        for k, v in zip(keys, means):
            if not np.isfinite(v):
                raise FloatingPointError(f"epoch {epoch + 1}: mean {k} is {v}; lower lr (now {cfg.lr})")
        done = sum(plan[:epoch + 1])
        history.append({"epoch": epoch + 1, **dict(zip(keys, means)), "seconds": seconds,
                        "step_seconds": seconds / local_steps, "steps": done})
        if done - saved_at < cfg.checkpoint_steps and epoch + 1 < len(plan):
            continue  # short epochs (a step budget on a short series): checkpoint every checkpoint_steps steps
        saved_at = done
        rngs = [None] * world
        if world > 1:
            dist.all_gather_object(rngs, _rng_state(device))
        else:
            rngs = [_rng_state(device)]
        if rank == 0:
            with atomic_path(ckpt_path, ".pt") as tmp:
                torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(),
                            "scheduler": sched.state_dict(), "epoch": epoch + 1,
                            "config": asdict(cfg), "fingerprint": fingerprint, "history": history, "rng": rngs,
                            "loader_generator": loader_gen.get_state(), "world_size": world}, tmp)
            if live is not None:  # after the checkpoint: a crash in between is replayed on resume, never doubled
                _log_live(live, history)
            if progress:
                tqdm.write(f"epoch {epoch + 1}/{len(plan)} " + " ".join(f"{k}={v:.4g}" for k, v in zip(keys, means))
                           + f" ({seconds:.1f} s)")
    return history
