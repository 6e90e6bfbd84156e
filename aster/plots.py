"""PNG figures people look at: score timeline against labels, and the paper's PCA of features."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from aster.io import atomic_path  # noqa: E402


def _save(fig, path: str | Path) -> None:
    with atomic_path(path, ".png") as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)


def _shade(ax, labels: np.ndarray) -> None:
    padded = np.concatenate(([0], labels.astype(np.int8), [0]))
    starts, ends = np.flatnonzero(np.diff(padded) == 1), np.flatnonzero(np.diff(padded) == -1)
    for i, (s, e) in enumerate(zip(starts, ends)):
        ax.axvspan(s, e, color="tab:red", alpha=0.18, lw=0, label="labelled anomaly" if i == 0 else None)


def score_timeline(scores: np.ndarray, labels: np.ndarray, path: str | Path, title: str,
                   thresholds: dict[str, float] | None = None) -> None:
    """Per-step test scores over time, labelled anomalies shaded, thresholds as horizontal lines."""
    fig, ax = plt.subplots(figsize=(14, 3.5))
    _shade(ax, labels)
    ax.plot(np.arange(len(scores)), scores, lw=0.6, color="tab:blue", label="anomaly score")
    for (name, value), style in zip((thresholds or {}).items(), ("--", ":", "-.")):
        ax.axhline(value, ls=style, color="black", lw=0.9, label=f"{name} = {value:.3g}")
    ax.set(title=title, xlabel="test step", ylabel="score", xlim=(0, len(scores)))
    ax.legend(loc="upper right", fontsize=8)
    _save(fig, path)


def feature_pca(normal: np.ndarray, anomaly: np.ndarray, pseudo: np.ndarray, path: str | Path, title: str) -> None:
    """2-D PCA (fit on normal features) of normal (N), real-anomaly (A) and pseudo-anomaly (PA) features."""
    from sklearn.decomposition import PCA

    pca = PCA(n_components=2, random_state=0).fit(normal)
    fig, ax = plt.subplots(figsize=(6, 5))
    for feats, name, color in ((normal, "normal (N)", "tab:blue"), (pseudo, "pseudo-anomaly (PA)", "tab:orange"),
                               (anomaly, "real anomaly (A)", "tab:red")):
        if len(feats):
            xy = pca.transform(feats)
            ax.scatter(xy[:, 0], xy[:, 1], s=5, alpha=0.5, color=color, label=f"{name}, n={len(feats)}")
    ax.set(title=title, xlabel="PC 1", ylabel="PC 2")
    ax.legend(fontsize=8, markerscale=3)
    _save(fig, path)
