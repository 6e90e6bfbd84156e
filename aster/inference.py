"""The one inference path of an export: card + onnxruntime session + scaler + threshold -> scores, torch-free.

The service, `aster score`, the retraining check and the serving benchmark all score through `ExportedModel`;
nothing else re-does scaling, windowing or the step mapping. Scaling stays outside the ONNX graph on purpose:
`/score` takes windows that are already scaled (its documented contract), the card carries the scaler for raw
series, and one place (`ExportedModel.scale`) applies it. An export directory holds one series model
(`card.json` + `model.onnx`); a dataset's export holds one such directory per series (`load_exports`).
"""

from __future__ import annotations

import importlib.util
import json
import logging
from pathlib import Path

import numpy as np

from aster.io import sha256_file
from aster.scoring import step_scores
from aster.windows import STEP_MEANS

log = logging.getLogger(__name__)

INPUT, OUTPUT, TOKEN_OUTPUT = "windows", "score", "token_scores"
ONNX_FILE, CARD_FILE = "model.onnx", "card.json"
CARD_FORMAT = "aster-model-card/1"
DEVICES = ("auto", "cpu", "cuda")


def load_card(directory: str | Path) -> dict:
    """The card of an export directory, checked against its model.onnx (sha256) so they cannot drift apart."""
    directory = Path(directory)
    card_path, onnx_path = directory / CARD_FILE, directory / ONNX_FILE
    if not card_path.exists():
        raise FileNotFoundError(f"{card_path}: no model card (run `dvc repro export` or point ASTER_MODEL_DIR "
                                f"at an export directory)")
    card = json.loads(card_path.read_text())
    if card.get("format") != CARD_FORMAT:
        raise ValueError(f"{card_path}: format {card.get('format')!r}, expected {CARD_FORMAT!r}")
    if not card.get("exportable", False):
        raise ValueError(f"{card_path}: this model was not exported: {card.get('skipped', 'no reason given')}")
    if not onnx_path.exists():
        raise FileNotFoundError(f"{onnx_path}: missing (card.json is there)")
    if sha256_file(onnx_path) != card["onnx"]["sha256"]:
        raise ValueError(f"{onnx_path}: sha256 differs from {card_path}: the two files come from different exports")
    return card


# ----------------------------------------------------------------------------- onnxruntime session

def onnx_session(path: str | Path, device: str = "auto", threads: int | None = None):
    """(InferenceSession, providers actually in use).

    `get_available_providers()` lists CUDA even where it cannot load, so CUDA is asked for and the
    session's own providers are the truth. auto: CUDA if it really loads, else CPU (quietly); cuda: CUDA or a
    clear error; cpu: CPU only.
    """
    import onnxruntime as ort

    if device not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, got {device!r}")
    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = int(threads)
    providers = ["CPUExecutionProvider"]
    if device != "cpu" and "CUDAExecutionProvider" in ort.get_available_providers():
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
        if importlib.util.find_spec("nvidia") is not None:  # CUDA/cuDNN from the nvidia-* wheels, if installed
            ort.preload_dlls()
    # auto: the failed CUDA load is expected on CPU hosts; hide its error line (4), we log the truth instead
    ort.set_default_logger_severity(4 if device == "auto" else 3)
    try:
        sess = ort.InferenceSession(str(path), sess_options=opts, providers=providers)
    finally:
        ort.set_default_logger_severity(3)
    used = sess.get_providers()
    if device == "cuda" and "CUDAExecutionProvider" not in used:
        raise RuntimeError(f"device=cuda but onnxruntime could not load CUDA (providers in use: {used}); "
                           f"onnxruntime-gpu {ort.__version__} needs CUDA 13 + cuDNN 9")
    log.info("onnxruntime %s session for %s, providers in use: %s", ort.__version__, path, used)
    return sess, used


def _output_scorer(sess, output: str):
    """numpy (B, W, C) -> the float32 graph output `output` of an ORT session."""

    def score(batch: np.ndarray) -> np.ndarray:
        return sess.run([output], {INPUT: np.ascontiguousarray(batch, dtype=np.float32)})[0]

    return score


def window_scorer(sess):
    """numpy (B, W, C) -> (B,) float32 window scores over an ORT session."""
    return _output_scorer(sess, OUTPUT)


def session_scorer(sess):
    """numpy (B, W, C) -> the scores aster.scoring maps to steps: (B, N) token scores where the graph has them,
    else (B,) window scores."""
    has_tokens = any(o.name == TOKEN_OUTPUT for o in sess.get_outputs())
    return _output_scorer(sess, TOKEN_OUTPUT if has_tokens else OUTPUT)


# ----------------------------------------------------------------------------- a loaded export

class ExportedModel:
    """One series model of an export, loaded once: raw rows in, per-step scores and flags out.

    Every check raises ValueError with what is wrong (callers turn it into their own error: HTTP 400, a CLI
    message), so bad input never reaches onnxruntime and a non-finite score never leaves.
    """

    def __init__(self, directory: str | Path, device: str = "auto", threads: int | None = None):
        self.directory = Path(directory)
        self.card = load_card(self.directory)
        self.session, self.providers = onnx_session(self.directory / ONNX_FILE, device, threads)
        self._window_scores, self._step_outputs = window_scorer(self.session), session_scorer(self.session)
        self.series_id = str(self.card["series"])
        self.window = int(self.card["window"])
        self.channels = tuple(self.card["channels"])
        self.mean = np.asarray(self.card["scaler"]["mean"], dtype=np.float64)
        self.scale_ = np.asarray(self.card["scaler"]["scale"], dtype=np.float64)
        self.threshold = float(self.card["threshold"]["threshold"])
        self.step_mean = self.card.get("step_mean", "arithmetic")  # cards older than the field: arithmetic
        if self.step_mean not in STEP_MEANS:
            raise ValueError(f"{self.directory / CARD_FILE}: step_mean {self.step_mean!r} is not one of {STEP_MEANS}")
        self.version = self.card["onnx"]["sha256"][:12]

    def scale(self, series: np.ndarray, max_abs: float | None = None) -> np.ndarray:
        """Raw (T, C) rows -> float32 rows scaled with the training statistics of the card; scaled values must be
        finite in float32 and, with `max_abs`, within +-max_abs."""
        series = np.asarray(series, dtype=np.float64)
        if series.ndim != 2 or series.shape[1] != len(self.channels):
            raise ValueError(f"series: expected (T, {len(self.channels)}) rows for channels {list(self.channels)}, "
                             f"got shape {series.shape}")
        with np.errstate(over="ignore", invalid="ignore"):
            scaled = ((series - self.mean) / self.scale_).astype(np.float32)
        bad = np.argwhere(~np.isfinite(scaled) | (np.abs(scaled) > (np.inf if max_abs is None else max_abs)))
        if len(bad):
            row, col = bad[0]
            value = float(series[row, col])
            raise ValueError(f"series: row {row} channel {self.channels[col]!r} = {value!r} is out of range after "
                             f"scaling (scaled {scaled[row, col]:.6g}; limit: finite in float32"
                             f"{'' if max_abs is None else f' and within +-{max_abs:g}'}); {len(bad)} such value(s)")
        return scaled

    def _finite(self, scores: np.ndarray, what: str) -> np.ndarray:
        if not np.isfinite(scores).all():
            raise ValueError(f"{what}: the model gave {int((~np.isfinite(scores)).sum())} non-finite score(s); the "
                             f"input is out of the range this model can score")
        return scores

    def score_windows(self, windows: np.ndarray) -> np.ndarray:
        """(B, W, C) already-scaled windows -> (B,) window scores in [0, 1]."""
        windows = np.asarray(windows, dtype=np.float32)
        if windows.ndim != 3 or windows.shape[1:] != (self.window, len(self.channels)):
            raise ValueError(f"windows: expected shape (batch, {self.window}, {len(self.channels)}), "
                             f"got {windows.shape}")
        if not np.isfinite(windows).all():
            raise ValueError("windows: values are not finite in float32; expected scaled values")
        return self._finite(self._window_scores(windows), "windows")

    def score_series(self, series: np.ndarray, stride: int = 1, batch_size: int = 256,
                     progress: bool = False, max_abs: float | None = None) -> np.ndarray:
        """Raw (T, C) rows -> (T,) per-step scores (the same step mapping as evaluation, aster.scoring)."""
        scaled = self.scale(series, max_abs)
        if len(scaled) < self.window:
            raise ValueError(f"series: {len(scaled)} rows is shorter than one window of {self.window}")
        with np.errstate(all="ignore"):
            try:
                scores = step_scores(self._step_outputs, scaled, self.window, stride, batch_size, progress=progress,
                                     mean=self.step_mean)
            except FloatingPointError as e:
                raise ValueError(f"series: {e}; the input is out of the range this model can score") from None
        return self._finite(scores, "series")

    def flags(self, scores: np.ndarray) -> np.ndarray:
        """Anomaly flags: score above the card's label-free threshold."""
        return np.asarray(scores) > self.threshold

    def self_check(self) -> np.ndarray:
        """Score two zero windows through the step path; raise unless the shape and range are the card's."""
        scores = self._step_outputs(np.zeros((2, self.window, len(self.channels)), np.float32))
        tokens = self.card.get("token_output") or {}
        expected = (2, *tokens.get("shape", ["batch"])[1:])  # (2,) window scores, or (2, N) token scores
        if scores.shape != expected or not (np.isfinite(scores).all() and (scores >= 0).all()
                                            and (scores <= 1).all()):
            raise ValueError(f"{self.directory}: the exported model scores {scores!r} on zero windows "
                             f"(expected finite values in [0, 1] of shape {expected})")
        return scores


def export_dirs(root: str | Path) -> dict[str, Path]:
    """series id -> directory of every exported model under `root`: `root` itself when it holds a card (loading
    it says why when it cannot be served), else its sub-directories whose cards are servable (a dataset's
    export, where series that were not exported are left out)."""
    root = Path(root)
    if (root / CARD_FILE).exists():
        return {str(json.loads((root / CARD_FILE).read_text()).get("series", root.name)): root}
    out = {}
    for card_path in sorted(root.glob(f"*/{CARD_FILE}")):
        card = json.loads(card_path.read_text())
        if card.get("exportable", False):
            out[str(card.get("series", card_path.parent.name))] = card_path.parent
    return out


def load_exports(root: str | Path, device: str = "auto", threads: int | None = None) -> dict[str, ExportedModel]:
    """series id -> ExportedModel for every servable model under `root` (see export_dirs)."""
    dirs = export_dirs(root)
    if not dirs:
        raise FileNotFoundError(f"{root}: no exported model ({CARD_FILE} + {ONNX_FILE}, or sub-directories holding "
                                f"them); run `dvc repro` (export stage)")
    return {sid: ExportedModel(d, device, threads) for sid, d in dirs.items()}
