"""ONNX export of the inference path (windows -> score) and its JSON model card (the reader: aster.inference).

The exported graph is `Aster.export_module()`: extractor (LoRA merged) + classifier + sigmoid. Input `windows`
(batch, W, C) float32 with a dynamic batch, already scaled with the card's statistics; output `score` (batch,)
in [0, 1], and for a model that scores per token (`score_level: token`) a second output `token_scores`
(batch, N), N = W / patch, which the per-step mapping uses (aster.scoring). The legacy exporter is the default
(one self-contained file); the trace bakes in the window length, so a new `window` needs a re-export. Only export_onnx, check_parity and export_model import torch
(lazily).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np

from aster.inference import (CARD_FILE, CARD_FORMAT, INPUT, ONNX_FILE, OUTPUT, TOKEN_OUTPUT, onnx_session,
                             session_scorer, window_scorer)
from aster.io import atomic_path, sha256_file, write_json

log = logging.getLogger(__name__)

ONNX_PARITY_ATOL = 1e-5  # max |ORT - PyTorch| score difference accepted by the parity test and the export stage


# ----------------------------------------------------------------------------- export (needs torch)

def export_onnx(model, path: str | Path, opset: int = 17, dynamo: bool = False) -> Path:
    """Export `model.export_module()` (an `Aster`) to `path` atomically; return `path`.

    `dynamo=True` uses torch's default exporter (needs onnxscript) but still writes one file (no .onnx.data).
    """
    import torch

    cfg = model.config
    module = model.export_module()
    outputs = [OUTPUT, TOKEN_OUTPUT] if module.token_scores else [OUTPUT]
    example = torch.randn(2, cfg.window, cfg.n_channels)  # batch 2: a batch of 1 invites size-1 specialisation
    path = Path(path)
    with atomic_path(path, ".onnx") as tmp, _traceable(), warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # legacy-exporter DeprecationWarning, transformers' TracerWarnings
        if dynamo:
            batch = torch.export.Dim("batch")
            torch.onnx.export(module, (example,), str(tmp), dynamo=True, opset_version=opset, input_names=[INPUT],
                              output_names=outputs, dynamic_shapes={INPUT: {0: batch}}, external_data=False,
                              verbose=False)
        else:
            torch.onnx.export(module, (example,), str(tmp), dynamo=False, opset_version=opset, input_names=[INPUT],
                              output_names=outputs, dynamic_axes={k: {0: "batch"} for k in [INPUT, *outputs]})
        check_graph(tmp, cfg.window, cfg.n_channels, cfg.tokens if module.token_scores else None)
    return path


@contextmanager
def _traceable() -> Iterator[None]:
    """Switch off two eager-only paths the legacy exporter cannot translate, for the duration of the export.

    * nn.TransformerEncoderLayer's inference fast path (`aten::_transformer_encoder_layer_fwd`, taken because the
      export module has no grads): the documented switch `torch.backends.mha.set_fastpath_enabled(False)`.
    * transformers 5 probes position_ids for packed sequences with `torch.diff` ("aten::diff not supported").
      Our windows are never packed (positions 0..W-1, where eager mode returns None too), so the probe is
      replaced by its answer.
    """
    import torch

    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        import transformers.masking_utils as mu
    except ImportError:
        mu = None
    probe = getattr(mu, "find_packed_sequence_indices", None)
    if probe is not None:
        mu.find_packed_sequence_indices = lambda position_ids: None
    try:
        yield
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
        if probe is not None:
            mu.find_packed_sequence_indices = probe


def check_graph(path: str | Path, window: int, n_channels: int, tokens: int | None = None) -> None:
    """The exported file honours the contract: input `windows` (batch, W, C) float32, output `score` (batch,),
    and `token_scores` (batch, tokens) when `tokens` is given."""
    import onnx

    m = onnx.load(str(path))
    onnx.checker.check_model(m)

    def dims(v) -> list:
        return [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]

    def fixed(d):  # the legacy exporter may leave the token axis symbolic; parity checks its length
        return tokens if isinstance(d, str) and tokens else d

    (inp,), outs = m.graph.input, m.graph.output
    got = (inp.name, dims(inp)[1:], inp.type.tensor_type.elem_type,
           [(o.name, [fixed(d) for d in dims(o)[1:]]) for o in outs])
    want = (INPUT, [window, n_channels], onnx.TensorProto.FLOAT,
            [(OUTPUT, [])] + ([(TOKEN_OUTPUT, [tokens])] if tokens else []))
    if got != want or isinstance(dims(inp)[0], int) and dims(inp)[0] > 0:
        raise ValueError(f"{path}: exported graph {got} (batch {dims(inp)[0]!r}) does not match {want} with a "
                         f"dynamic batch")


def check_parity(model, onnx_path: str | Path, n_windows: int = 8, atol: float = ONNX_PARITY_ATOL,
                 seed: int = 0) -> dict:
    """Score the same random windows with PyTorch and onnxruntime (CPU), window scores and the scores of the step
    mapping (`model.score`: per window or per token); raise past `atol`."""
    import torch

    cfg = model.config
    x = np.random.default_rng(seed).standard_normal((n_windows, cfg.window, cfg.n_channels)).astype(np.float32)
    model.eval()
    with torch.inference_mode():
        ref, ref_window = model.score(torch.from_numpy(x)).numpy(), torch.sigmoid(model(torch.from_numpy(x))).numpy()
    sess, _ = onnx_session(onnx_path, "cpu")
    got = session_scorer(sess)(x)
    if got.shape != ref.shape:
        raise ValueError(f"{onnx_path}: onnxruntime scores have shape {got.shape}, PyTorch {ref.shape}")
    diff = max(float(np.abs(got - ref).max()), float(np.abs(window_scorer(sess)(x) - ref_window).max()))
    if not diff <= atol:
        raise ValueError(f"{onnx_path}: onnxruntime and PyTorch scores differ by {diff:.3g} > {atol:g}")
    return {"max_abs_diff": diff, "atol": atol, "n_windows": n_windows, "provider": "CPUExecutionProvider"}


def export_model(model, directory: str | Path, *, opset: int = 17, dynamo: bool = False, **card_fields) -> dict:
    """`model.onnx` (parity-checked) + `card.json` into `directory`; returns the card.

    `card_fields`: make_card's dataset, series, channels, scaler, threshold, params, metrics (config, window and
    the onnx fields come from the model and the export). Make `directory` atomic at the caller (atomic_dir).
    """
    from dataclasses import asdict

    directory = Path(directory)
    onnx_path = export_onnx(model, directory / ONNX_FILE, opset, dynamo)
    parity = check_parity(model, onnx_path)
    return write_card(directory / CARD_FILE, config=asdict(model.config), window=model.config.window,
                      onnx_path=onnx_path, opset=opset, dynamo=dynamo, parity=parity, **card_fields)


# ----------------------------------------------------------------------------- card

def params_hash(blocks: dict) -> str:
    """sha256 of params blocks as canonical JSON (sorted keys, no whitespace): same params, same hash."""
    canonical = json.dumps(blocks, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    import aster

    out = {"aster": aster.__version__}
    for pkg in ("torch", "onnx", "onnxruntime-gpu", "transformers", "peft"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def _strict_json(obj):
    if isinstance(obj, dict):
        return {k: _strict_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_strict_json(v) for v in obj]
    if isinstance(obj, (float, np.floating)):
        return float(obj) if np.isfinite(obj) else None
    return obj


def make_card(*, dataset: str, series: str, channels: list[str], window: int, scaler: dict, threshold: dict,
              config: dict | None, params: dict, metrics: dict | None, onnx_path: str | Path | None,
              opset: int | None, dynamo: bool = False, parity: dict | None = None,
              skipped: str | None = None) -> dict:
    """The model card: everything a consumer needs to use `model.onnx` correctly, and where it came from.

    `scaler` is the prepare stage's Scaler as a dict (mean, scale, channels); `threshold` is threshold.json;
    `params` the params.yaml blocks behind the model (hashed). `skipped` (with `onnx_path=None`) records a model
    that was not exported and why.
    """
    if len(scaler["mean"]) != len(channels) or len(scaler["scale"]) != len(channels):
        raise ValueError(f"{dataset}/{series}: scaler has {len(scaler['mean'])} channels, card lists {len(channels)}")
    if scaler.get("channels") is not None and list(scaler["channels"]) != list(channels):
        raise ValueError(f"{dataset}/{series}: scaler channels {scaler['channels']} differ from model channels "
                         f"{channels}")
    if config is not None and (config["n_channels"], config["window"]) != (len(channels), window):
        raise ValueError(f"{dataset}/{series}: model expects (window {config['window']}, {config['n_channels']} "
                         f"channels) but the card has (window {window}, {len(channels)} channels)")
    card = {
        "format": CARD_FORMAT,
        "dataset": dataset,
        "series": series,
        "exportable": skipped is None,
        "channels": list(channels),  # the order of the last input axis
        "n_channels": len(channels),
        "window": int(window),
        "input": {"name": INPUT, "shape": ["batch", int(window), len(channels)], "dtype": "float32",
                  "preprocessing": "(x - scaler.mean) / scaler.scale per channel, then sliding windows"},
        "output": {"name": OUTPUT, "shape": ["batch"], "dtype": "float32", "range": [0.0, 1.0],
                   "meaning": "anomaly score of each window; higher = more anomalous"},
        "token_output": None if not config or config.get("score_level") != "token" else {
            "name": TOKEN_OUTPUT, "shape": ["batch", window // config["patch"]], "dtype": "float32",
            "patch": config["patch"], "meaning": "anomaly score of each token of `patch` steps; per-step scores "
                                                 "are their means over the windows covering a step"},
        # a step's score: this mean ("arithmetic" | "geometric") of the scores of the windows covering it
        "step_mean": (config or {}).get("step_mean", "arithmetic"),
        "scaler": {"mean": [float(v) for v in scaler["mean"]], "scale": [float(v) for v in scaler["scale"]]},
        "threshold": {"threshold": float(threshold["threshold"]), **{k: v for k, v in threshold.items()
                                                                     if k != "threshold"}},
        "model": None if config is None else {"backbone": config.get("backbone"), "finetune": config.get("finetune"),
                                              "config": config},
        "params_sha256": params_hash(params),
        "params_blocks": sorted(params),
        "metrics": _strict_json(metrics),  # NaN (e.g. AUROC without anomalies) -> null: strict JSON readers
        "exported_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "onnx": None,
        "versions": _versions(),
    }
    if skipped is not None:
        card["skipped"] = skipped
    if onnx_path is not None:
        card["onnx"] = {"file": Path(onnx_path).name, "sha256": sha256_file(onnx_path),
                        "bytes": Path(onnx_path).stat().st_size, "opset": opset,
                        "exporter": "dynamo" if dynamo else "legacy", "parity": parity}
    return card


def write_card(path: str | Path, **fields) -> dict:
    """`make_card(**fields)` written atomically as JSON to `path`; returns the card."""
    card = make_card(**fields)
    write_json(path, card)
    return card
