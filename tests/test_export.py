"""ONNX export: onnxruntime matches PyTorch (LoRA merged), the graph contract, the card, and the export stage."""

import json

import numpy as np
import onnx
import pytest
import torch

from aster.artifacts import save_model, save_threshold
from aster.data.prepare import Scaler
from aster.export import ONNX_PARITY_ATOL, export_model, export_onnx, params_hash, sha256_file
from aster.inference import (CARD_FILE, CARD_FORMAT, INPUT, ONNX_FILE, OUTPUT, load_card, onnx_session,
                             session_scorer, window_scorer)
from aster.io import write_json
from aster.model import Aster, AsterConfig

W, C = 16, 5
CHANNELS = [f"c{i}" for i in range(C)]
BACKBONES = {"tiny-gpt2": dict(backbone="tiny-gpt2"), "minilm": dict(backbone="minilm", backbone_layers=2),
             "none": dict(backbone="none")}


def make(backbone: str = "tiny-gpt2", seed: int = 0, perturb: bool = True) -> Aster:
    torch.manual_seed(seed)
    m = Aster(AsterConfig(n_channels=C, window=W, dropout=0.0, **BACKBONES[backbone])).eval()
    if perturb:  # LoRA B starts at zero, which would make the merge a no-op: give it weight
        with torch.no_grad():
            for name, p in m.named_parameters():
                if "lora_B" in name:
                    p.normal_(0.0, 0.1)
    return m


def windows(b: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((b, W, C)).astype(np.float32)


def torch_scores(m: Aster, x: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return m.score(torch.from_numpy(x)).numpy()


def card_fields(**kw) -> dict:
    scaler = {"mean": [0.5] * C, "scale": [2.0] * C, "channels": CHANNELS}
    return dict(dataset="toy", series="s1", channels=CHANNELS, scaler=scaler,
                threshold={"threshold": 0.4, "contamination": 0.01}, params={"window": W, "model": {"r": 8}},
                metrics={"f1": 0.5, "auroc": 0.7, "aupr": float("nan")}) | kw


@pytest.mark.parametrize("backbone", list(BACKBONES))
def test_onnxruntime_matches_pytorch(backbone, tmp_path):
    m = make(backbone)
    path = export_onnx(m, tmp_path / "m.onnx")
    sess, providers = onnx_session(path, "cpu")
    assert providers == ["CPUExecutionProvider"]
    score = session_scorer(sess)
    for b in (1, 7, 64):  # dynamic batch, including the sizes the trace never saw
        x = windows(b, seed=b)
        got, ref = score(x), torch_scores(m, x)
        assert got.shape == (b,) and got.dtype == np.float32
        np.testing.assert_allclose(got, ref, rtol=0, atol=ONNX_PARITY_ATOL)
        assert ((got > 0) & (got < 1)).all()
    if backbone != "none":  # the merged LoRA weights are in the graph: without them the scores differ
        x = windows(64)
        without_lora = torch_scores(make(backbone, perturb=False), x)
        assert np.abs(score(x) - without_lora).max() > 100 * ONNX_PARITY_ATOL


def test_graph_contract(tmp_path):
    g = onnx.load(str(export_onnx(make("none"), tmp_path / "m.onnx"))).graph
    (inp,), (out,) = g.input, g.output
    dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
    assert (inp.name, out.name) == (INPUT, OUTPUT)
    assert isinstance(dims[0], str) and dims[1:] == [W, C]  # symbolic batch, fixed window and channels
    assert inp.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert len(out.type.tensor_type.shape.dim) == 1
    assert not list(tmp_path.glob("*.data")) and not list(tmp_path.glob(".*"))  # one file, no temp leftovers


@pytest.mark.parametrize("backbone", ["none", "tiny-gpt2"])
def test_token_scores_are_a_second_output_with_parity(backbone, tmp_path):
    """score_level 'token': `score` stays one score per window, `token_scores` (batch, W / patch) feed the steps."""
    torch.manual_seed(0)
    m = Aster(AsterConfig(n_channels=C, window=W, dropout=0.0, patch=4, pooling="max", target="token",
                          score_level="token", pseudo="anchored", **BACKBONES[backbone])).eval()
    card = export_model(m, tmp_path, **card_fields())
    assert card["token_output"] == {**card["token_output"], "name": "token_scores", "shape": ["batch", 4], "patch": 4}
    assert card["onnx"]["parity"]["max_abs_diff"] <= ONNX_PARITY_ATOL
    g = onnx.load(str(tmp_path / ONNX_FILE)).graph
    assert [o.name for o in g.output] == [OUTPUT, "token_scores"]
    sess, _ = onnx_session(tmp_path / ONNX_FILE, "cpu")
    x = windows(9)
    tokens, win = session_scorer(sess)(x), window_scorer(sess)(x)
    assert tokens.shape == (9, 4) and win.shape == (9,)
    np.testing.assert_allclose(tokens, torch_scores(m, x), rtol=0, atol=ONNX_PARITY_ATOL)
    np.testing.assert_allclose(win, tokens.max(1), rtol=0, atol=ONNX_PARITY_ATOL)  # max pooling of the logits
    assert card["onnx"] and make("none").config.score_level == "window"  # the paper's default has no second output


@pytest.mark.slow  # the dynamo exporter takes ~5 s even for the smallest model
def test_dynamo_export_is_one_file_with_parity(tmp_path):
    m = make("none")
    path = export_onnx(m, tmp_path / "m.onnx", opset=18, dynamo=True)
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]
    x = windows(7)
    np.testing.assert_allclose(session_scorer(onnx_session(path, "cpu")[0])(x), torch_scores(m, x),
                               atol=ONNX_PARITY_ATOL, rtol=0)


def test_card_contents_and_integrity(tmp_path):
    m = make("tiny-gpt2")
    card = export_model(m, tmp_path, **card_fields())
    on_disk = json.loads((tmp_path / CARD_FILE).read_text())
    assert on_disk == card and card["format"] == CARD_FORMAT and card["exportable"]
    assert card["channels"] == CHANNELS and card["window"] == W and card["input"]["shape"] == ["batch", W, C]
    assert card["scaler"] == {"mean": [0.5] * C, "scale": [2.0] * C}
    assert card["threshold"] == {"threshold": 0.4, "contamination": 0.01}
    assert card["model"]["backbone"] == "tiny-gpt2" and card["model"]["finetune"] == "lora"
    assert card["model"]["config"]["n_channels"] == C
    assert card["metrics"] == {"f1": 0.5, "auroc": 0.7, "aupr": None}  # NaN -> null: strict JSON
    json.loads((tmp_path / CARD_FILE).read_text(), parse_constant=lambda c: pytest.fail(f"{c} in card.json"))
    assert card["onnx"]["sha256"] == sha256_file(tmp_path / ONNX_FILE) and card["onnx"]["opset"] == 17
    assert card["onnx"]["parity"]["max_abs_diff"] <= ONNX_PARITY_ATOL
    assert card["exported_at"].endswith("+00:00") and card["versions"]["aster"]
    assert card["params_sha256"] == params_hash({"model": {"r": 8}, "window": W})  # key order is irrelevant
    assert params_hash({"window": W, "model": {"r": 4}}) != card["params_sha256"]
    assert load_card(tmp_path) == card
    (tmp_path / ONNX_FILE).write_bytes((tmp_path / ONNX_FILE).read_bytes() + b"\0")  # the pair drifted apart
    with pytest.raises(ValueError, match="sha256 differs"):
        load_card(tmp_path)


def test_card_rejects_inconsistent_channels(tmp_path):
    bad = card_fields(scaler={"mean": [0.0] * C, "scale": [1.0] * C, "channels": CHANNELS[::-1]})
    with pytest.raises(ValueError, match="scaler channels"):
        export_model(make("none"), tmp_path, **bad)
    with pytest.raises(ValueError, match="scaler has 4 channels"):
        export_model(make("none"), tmp_path, **card_fields(scaler={"mean": [0.0] * 4, "scale": [1.0] * 4}))


def test_cuda_device_fails_clearly_without_cuda(tmp_path):
    path = export_onnx(make("none"), tmp_path / "m.onnx")
    assert onnx_session(path, "auto")[1][-1] == "CPUExecutionProvider"
    if "CUDAExecutionProvider" in onnx_session(path, "auto")[1]:
        pytest.skip("CUDA is really available here")
    with pytest.raises(RuntimeError, match="could not load CUDA"):
        onnx_session(path, "cuda")
    with pytest.raises(ValueError, match="device must be one of"):
        onnx_session(path, "tpu")


# ----------------------------------------------------------------------------- the export stage

def fake_tree(root):
    """models/, data/prepared/ and metrics/ of one dataset as train/prepare/evaluate would leave them."""
    from pipeline.common import Paths

    paths = Paths("toy", root=root)
    m = make("tiny-gpt2")
    for sid in ("a", "b"):
        out = paths.models / sid
        if sid == "b":  # a baseline: scores, no network
            out.mkdir(parents=True)
            np.savez(out / "scores.npz", train=np.zeros(3), val=np.zeros(3), test=np.zeros(3))
            model = "iforest"
        else:
            save_model(m, out)
            model = "aster"
        save_threshold(out, {"threshold": 0.3, "contamination": 0.01})
        write_json(out / "meta.json", {"series": sid, "channels": CHANNELS, "model": model, "window": W})
        Scaler(mean=[1.0] * C, scale=[3.0] * C, channels=CHANNELS).save(paths.prepared / sid / "scaler.json")
    write_json(paths.metrics, {"mean": {"f1": 0.6}, "series": {"a": {"f1": 0.5}, "b": {"f1": 0.7}}})
    return paths, m


def test_export_stage(tmp_path):
    from pipeline.export import run

    paths, m = fake_tree(tmp_path)
    p = {"window": W, "export": {"opset": 17, "dynamo": False}, "model": {"name": "aster"},
         "datasets": {"toy": {"loader": "x"}, "other": {"loader": "y"}}}
    a, b = run(p, paths)
    assert a["metrics"] == {"f1": 0.5} and a["scaler"]["scale"] == [3.0] * C and a["series"] == "a"
    assert a["params_sha256"] == params_hash({"window": W, "export": p["export"], "model": p["model"],
                                              "dataset": {"toy": {"loader": "x"}}})  # only this dataset's spec
    assert load_card(paths.export / "a") == a
    x = windows(4)
    sess, _ = onnx_session(paths.export / "a" / ONNX_FILE, "cpu")
    np.testing.assert_allclose(session_scorer(sess)(x), torch_scores(m, x), atol=ONNX_PARITY_ATOL, rtol=0)

    assert not b["exportable"] and "iforest" in b["skipped"] and b["onnx"] is None  # baseline: skipped, says why
    assert not (paths.export / "b" / ONNX_FILE).exists()
    with pytest.raises(ValueError, match="not exported: baseline model 'iforest'"):
        load_card(paths.export / "b")

    with pytest.raises(ValueError, match="trained with window 16, params.yaml says 32"):
        run({**p, "window": 32}, paths)
    assert load_card(paths.export / "a") == a  # a failed run leaves the previous export whole (atomic_dir)
