"""Synthetic multivariate series: the embedded default dataset, so everything runs without downloads.

Normal behaviour: five latent factors (a daily and a weekly cycle with harmonics, a slow mean-reverting
wander, a linear trend, a fast shared AR(1) term) mixed into correlated channels by a grouped loading matrix,
with per-channel scale, offset and noise (some heteroscedastic), one step-like setpoint channel and one
integer counter channel. The plant switches between a few operating modes (factor levels, seasonal amplitude,
loadings, setpoint) in train and in test alike, so a mode switch is normal behaviour, not an anomaly.
Test anomalies, each one labelled segment on continuous channels: spike, level shift, drift, frequency
change, correlation break, flat line. One seed drives everything: same config, bit-identical arrays.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from aster.data import Dataset, DataError

KINDS = ("spike", "level_shift", "drift", "frequency_change", "correlation_break", "flat_line")
# (min, max) segment length in steps; the minima must fit in the anomaly budget (see SyntheticConfig)
DEFAULT_LENGTHS = {"spike": (1, 4), "level_shift": (16, 100), "drift": (20, 120),
                   "frequency_change": (24, 120), "correlation_break": (24, 120), "flat_line": (12, 64)}
N_FACTORS = 5  # daily, weekly, slow wander, trend, fast AR(1)


@dataclass
class SyntheticConfig:
    n_channels: int = 12  # 8..16
    train_length: int = 12000
    test_length: int = 8000
    seed: int = 2021
    anomaly_fraction: float = 0.05  # target share of anomalous test steps, 0.03..0.10
    daily_periods: tuple[int, ...] = (24, 48)  # the seed picks one; the weekly period is 7x that
    noise_level: float = 0.15  # channel noise std in latent units (the factors have std ~1)
    n_regimes: int = 3  # distinct operating modes; all of them appear in train
    regime_changes: int = 2  # mode switches in train, and again in test
    transition: int = 48  # steps a mode switch takes
    min_gap: int = 48  # normal steps before, between and after anomaly segments
    segment_lengths: dict[str, tuple[int, int]] = field(default_factory=lambda: dict(DEFAULT_LENGTHS))

    def __post_init__(self) -> None:
        def bad(msg: str) -> ValueError:
            return ValueError(f"SyntheticConfig.{msg}")

        if not 8 <= self.n_channels <= 16:
            raise bad(f"n_channels={self.n_channels}: must be between 8 and 16")
        if self.train_length < 1000 or self.test_length < 2000:
            raise bad(f"train_length={self.train_length}, test_length={self.test_length}: "
                      f"need train_length >= 1000 and test_length >= 2000")
        if not 0.03 <= self.anomaly_fraction <= 0.10:
            raise bad(f"anomaly_fraction={self.anomaly_fraction}: must be between 0.03 and 0.10")
        self.daily_periods = tuple(int(p) for p in self.daily_periods)
        if not self.daily_periods or min(self.daily_periods) < 8:
            raise bad(f"daily_periods={self.daily_periods}: need at least one period, each >= 8 steps")
        if self.noise_level <= 0:
            raise bad(f"noise_level={self.noise_level}: must be > 0")
        if self.n_regimes < 1 or self.regime_changes < 0 or self.n_regimes > self.regime_changes + 1 \
                or (self.n_regimes == 1 and self.regime_changes > 0):
            raise bad(f"n_regimes={self.n_regimes}, regime_changes={self.regime_changes}: need "
                      f"n_regimes <= regime_changes + 1 (train must show every mode), and no changes with 1 mode")
        if self.transition < 1 or self.min_gap < 1:
            raise bad(f"transition={self.transition}, min_gap={self.min_gap}: must be >= 1")
        if set(self.segment_lengths) != set(KINDS):
            raise bad(f"segment_lengths has kinds {sorted(self.segment_lengths)}: need exactly {list(KINDS)}")
        self.segment_lengths = {k: (int(self.segment_lengths[k][0]), int(self.segment_lengths[k][1])) for k in KINDS}
        if any(not 1 <= lo <= hi for lo, hi in self.segment_lengths.values()):
            raise bad(f"segment_lengths={self.segment_lengths}: need 1 <= min <= max for every kind")
        need = sum(lo for lo, _ in self.segment_lengths.values())
        if self.budget < need:
            raise bad(f"anomaly_fraction * test_length = {self.budget} anomalous steps cannot hold one "
                      f"segment of each of the {len(KINDS)} kinds (needs >= {need}); raise either")

    @property
    def budget(self) -> int:
        """Anomalous test steps to inject; the realised fraction stays within [0.03, 0.10]."""
        n = self.test_length
        return max(math.ceil(0.03 * n), min(math.floor(0.10 * n), round(self.anomaly_fraction * n)))


def _season(t: np.ndarray, period: float, p: tuple[float, float, float]) -> np.ndarray:
    """A non-sinusoidal cycle: fundamental plus second harmonic; p = (phase, harmonic amplitude, phase 2)."""
    w = 2 * np.pi * t / period
    return np.sin(w + p[0]) + p[1] * np.sin(2 * w + p[2])


def _ar1(rng: np.random.Generator, n: int, phi: float, std: float) -> np.ndarray:
    """Stationary AR(1) path with the given marginal std (starts from the stationary law)."""
    e = rng.standard_normal(n) * std * np.sqrt(1 - phi**2)
    e[0] = rng.standard_normal() * std
    out, acc = [], 0.0
    for v in e.tolist():  # a plain loop: ~10 ms per 100k steps, and no scipy import (1+ s) for the CLI
        acc = phi * acc + v
        out.append(acc)
    return np.array(out)


def _moving_average(x: np.ndarray, size: int) -> np.ndarray:
    """Centred moving average along axis 0, edges padded with the end values (smooths mode switches)."""
    lo = size // 2
    c = np.cumsum(np.pad(x, ((lo, size - 1 - lo), (0, 0)), mode="edge"), axis=0)
    return (c[size - 1:] - np.concatenate([np.zeros((1, x.shape[1])), c[:-size]])) / size


def _regime_layout(rng: np.random.Generator, cfg: SyntheticConfig) -> list[tuple[str, int, int]]:
    """Mode switches at jittered, roughly even positions of each part: [(part, start in part, mode)]."""
    out = []
    perm = rng.permutation(cfg.n_regimes)
    mode = int(perm[0])
    for part, n in (("train", cfg.train_length), ("test", cfg.test_length)):
        step = n / (cfg.regime_changes + 1)
        starts = [0] + [int((i + 1 + rng.uniform(-0.25, 0.25)) * step) for i in range(cfg.regime_changes)]
        for i, s in enumerate(starts):
            if part == "train" and i < cfg.n_regimes:
                mode = int(perm[i])  # train shows every mode
            elif i > 0:  # (the test part starts in the last train mode)
                mode = int(rng.choice([m for m in range(cfg.n_regimes) if m != mode]))
            out.append((part, s, mode))
    return out


def make_synthetic(cfg: SyntheticConfig | None = None) -> Dataset:
    """Generate the synthetic dataset; provenance holds the config, layout and anomaly catalogue."""
    cfg = cfg or SyntheticConfig()
    rng_layout, rng_normal, rng_anom = (np.random.default_rng(s) for s in np.random.SeedSequence(cfg.seed).spawn(3))
    C, K, M = cfg.n_channels, N_FACTORS, cfg.n_regimes
    n_tr, n_te = cfg.train_length, cfg.test_length
    T = n_tr + n_te

    # --- layout: periods, channel kinds, loadings, scales, modes ---
    P = int(rng_layout.choice(cfg.daily_periods))
    PW = 7 * P
    n_het = max(1, C // 6)
    kinds = np.array(["setpoint", "counter"] + ["hetero"] * n_het + ["sensor"] * (C - 2 - n_het))
    kinds = kinds[rng_layout.permutation(C)]
    names = [f"{k}_{i:02d}" for i, k in enumerate(kinds)]
    group = rng_layout.integers(0, 3, C)
    B = rng_layout.normal(size=(3, K)) * np.array([1.0, 0.7, 0.8, 0.4, 0.6])
    B[:, 0] = rng_layout.choice([-1.0, 1.0], 3) * rng_layout.uniform(0.7, 1.2, 3)  # every group has a daily cycle
    W = B[group] * rng_layout.uniform(0.7, 1.3, (C, 1)) + rng_layout.normal(0, 0.2, (C, K))
    W[rng_layout.random(C) < 0.25] *= -1  # some channels move against their group
    scale = 10 ** rng_layout.uniform(-0.5, 1.5, C)
    offset = scale * rng_layout.uniform(-3, 8, C)
    sigma = cfg.noise_level * rng_layout.uniform(0.5, 1.5, C)
    W_m = W + rng_layout.normal(0, 0.08, (M, C, K))  # per-mode loadings
    A_m = np.ones((M, K))
    A_m[:, :2] = rng_layout.uniform(0.6, 1.4, (M, 2))  # per-mode seasonal amplitude
    lvl_m = rng_layout.normal(0, 0.6, (M, K))  # per-mode factor levels
    setpoints = (np.linspace(-1, 1, M) if M > 1 else np.zeros(1))[rng_layout.permutation(M)]
    season_p = [(rng_layout.uniform(0, 2 * np.pi), rng_layout.uniform(0.2, 0.5), rng_layout.uniform(0, 2 * np.pi))
                for _ in range(2)]
    trend_amp = rng_layout.choice([-1, 1]) * rng_layout.uniform(0.2, 0.5)
    regimes = _regime_layout(rng_layout, cfg)

    # --- latent factors (T, K) and mode weights (T, M) with smooth transitions ---
    t = np.arange(T, dtype=np.float64)
    F = np.empty((T, K))
    F[:, 0] = _season(t, P, season_p[0])
    F[:, 1] = 0.8 * _season(t, PW, season_p[1])
    phi_slow = 1 - 1 / (3 * PW)
    F[:, 2] = _ar1(rng_normal, T, phi_slow, 1.0)
    F[:, 3] = trend_amp * np.linspace(-1, 1, T)
    F[:, 4] = _ar1(rng_normal, T, 0.9, 0.5)
    onehot = np.zeros((T, M))
    bounds = [(s + (n_tr if part == "test" else 0), m) for part, s, m in regimes] + [(T, -1)]
    for (a, m), (b, _) in zip(bounds[:-1], bounds[1:]):
        onehot[a:b, m] = 1.0
    w = _moving_average(onehot, cfg.transition)

    # --- channels ---
    lat = np.zeros((T, C))
    for m in range(M):
        lat += w[:, m:m + 1] * ((F * A_m[m] + lvl_m[m]) @ W_m[m].T)
    z = (lat - lat[:n_tr].mean(0)) / lat[:n_tr].std(0)
    noise = rng_normal.standard_normal((T, C)) * sigma
    het = kinds == "hetero"
    noise[:, het] *= np.exp(0.5 * np.clip(z[:, het], -3, 3))  # noisier when the level is high
    X = offset + scale * (lat + noise)
    for c in np.flatnonzero(kinds == "counter"):  # e.g. number of active units
        X[:, c] = np.maximum(0.0, np.round(4 + 1.5 * (lat[:, c] + noise[:, c])))
    for c in np.flatnonzero(kinds == "setpoint"):  # operator setpoint: constant within a mode, ramps between
        X[:, c] = offset[c] + scale[c] * (w @ setpoints + 0.002 * rng_normal.standard_normal(T))
    std = X[:n_tr].std(0)

    # --- anomalies in the test part ---
    test = X[n_tr:].copy()
    labels = np.zeros(n_te, dtype=np.int8)
    cont = np.flatnonzero(np.isin(kinds, ["sensor", "hetero"]))
    daily = cont[np.abs(W[cont, 0]) >= np.median(np.abs(W[cont, 0]))]  # channels with a clear daily cycle
    segments = _draw_segments(rng_anom, cfg)
    catalogue = []
    for kind, s, L in segments:
        e = s + L
        g = slice(n_tr + s, n_tr + e)  # the same steps in the full-series arrays
        n_ch = {"spike": 2, "level_shift": 3, "drift": 2}.get(kind, 1)
        pool = daily if kind in ("frequency_change", "correlation_break") else cont
        chans = np.sort(rng_anom.choice(pool, int(rng_anom.integers(1, n_ch + 1)), replace=False))
        magnitude = []
        ramp = max(1, min(8, L // 4))  # steps to blend a replaced component in and out, so no jumps at the edges
        fade_out = np.minimum(1.0, np.arange(L, 0, -1) / ramp)
        fade_in_out = np.minimum(fade_out, np.arange(1, L + 1) / ramp)
        for c in chans:
            sign = rng_anom.choice([-1.0, 1.0])
            if kind == "spike":
                amp = sign * rng_anom.uniform(4, 8)
                test[s:e, c] += amp * std[c] * rng_anom.uniform(0.6, 1.0, L)
            elif kind == "level_shift":
                amp = sign * rng_anom.uniform(1.5, 3)
                test[s:e, c] += amp * std[c]
            elif kind == "drift":
                amp = sign * rng_anom.uniform(2, 4)
                test[s:e, c] += amp * std[c] * np.linspace(1 / L, 1, L)
            elif kind == "flat_line":
                amp = 0.0
                test[s:e, c] = test[s - 1, c]  # stuck at the last good reading
            else:
                eff = sum(w[g, m:m + 1] * W_m[m, c] * A_m[m] for m in range(M))  # (L, K) loadings in force
                if kind == "frequency_change":
                    amp = rng_anom.uniform(2.5, 4)  # the channel's daily cycle runs this many times faster
                    fast = _season(g.start + amp * np.arange(L), P, season_p[0])
                    delta = eff[:, 0] * (fast - F[g, 0])
                    test[s:e, c] += scale[c] * delta * fade_out  # starts in phase: no fade-in needed
                else:  # correlation break: the channel follows its own, independent copy of the factors
                    amp = rng_anom.uniform(0.25, 0.75)  # phase lag of its daily cycle, in cycles
                    G = F[g].copy()
                    G[:, 0] = _season(t[g], P, (season_p[0][0] + 2 * np.pi * amp, *season_p[0][1:]))
                    lag_w = rng_anom.uniform(0.25, 0.75)
                    G[:, 1] = 0.8 * _season(t[g], PW, (season_p[1][0] + 2 * np.pi * lag_w, *season_p[1][1:]))
                    own = _ar1(rng_anom, L, phi_slow, 1.0)
                    G[:, 2] = F[g.start, 2] + own - own[0]  # same start, own path
                    G[:, 4] = _ar1(rng_anom, L, 0.9, 0.5)
                    test[s:e, c] += scale[c] * ((G - F[g]) * eff).sum(1) * fade_in_out
            magnitude.append(round(float(amp), 4))
        labels[s:e] = 1
        catalogue.append({"kind": kind, "start": int(s), "end": int(e), "channels": [int(c) for c in chans],
                          "channel_names": [names[c] for c in chans], "magnitude": magnitude})

    cfg_dict = asdict(cfg)
    cfg_dict["daily_periods"] = list(cfg.daily_periods)
    cfg_dict["segment_lengths"] = {k: list(v) for k, v in cfg.segment_lengths.items()}
    provenance = {
        "generator": "aster.data.synthetic.make_synthetic",
        "config": cfg_dict,
        "daily_period": P,
        "weekly_period": PW,
        "channel_kinds": [str(k) for k in kinds],
        "regimes": [{"part": part, "start": int(s), "mode": int(m)} for part, s, m in regimes],
        "anomalies": catalogue,
        "anomaly_fraction": float(labels.mean()),
        "notes": "end is exclusive; magnitude per channel: spike/level_shift/drift in train std of the channel "
                 "(drift: at its end), frequency_change: speed-up of the daily cycle, correlation_break: phase "
                 "lag of the daily cycle in cycles (its slow and fast terms are replaced by independent ones), "
                 "flat_line: 0",
    }
    return Dataset(name="synthetic", train=X[:n_tr], test=test, test_labels=labels, channels=names,
                   provenance=provenance)


def _draw_segments(rng: np.random.Generator, cfg: SyntheticConfig) -> list[tuple[str, int, int]]:
    """One segment of each kind, then random kinds until the budget is spent; placed with >= min_gap around."""
    lens = cfg.segment_lengths
    budget = cfg.budget
    first = [(k, int(rng.integers(lens[k][0], lens[k][1] + 1))) for k in KINDS]
    total = sum(L for _, L in first)
    if total > budget:  # shrink towards the minima so one of each kind fits
        need = sum(lens[k][0] for k in KINDS)
        f = (budget - need) / (total - need)
        first = [(k, lens[k][0] + int((L - lens[k][0]) * f)) for k, L in first]
        total = sum(L for _, L in first)
    segs = [first[i] for i in rng.permutation(len(first))]
    while fits := [k for k in KINDS if lens[k][0] <= budget - total]:  # spend the budget exactly
        k = fits[int(rng.integers(len(fits)))]
        L = min(int(rng.integers(lens[k][0], lens[k][1] + 1)), budget - total)
        segs.append((k, L))
        total += L
    free = cfg.test_length - total - (len(segs) + 1) * cfg.min_gap
    if free < 0:
        raise DataError(f"synthetic: {len(segs)} anomaly segments ({total} steps) with min_gap={cfg.min_gap} "
                        f"do not fit in test_length={cfg.test_length}")
    gaps = cfg.min_gap + rng.multinomial(free, np.full(len(segs) + 1, 1 / (len(segs) + 1)))
    out, pos = [], 0
    for (k, L), gap in zip(segs, gaps):
        pos += int(gap)
        out.append((k, pos, L))
        pos += L
    return out


def anomaly_catalogue(dataset: Dataset) -> list[dict]:
    """The injected anomalies [{kind, start, end (exclusive), channels, channel_names, magnitude}]."""
    if "anomalies" not in dataset.provenance:
        raise DataError(f"{dataset.name}: provenance has no anomaly catalogue (not made by make_synthetic)")
    return [dict(a) for a in dataset.provenance["anomalies"]]


def plot_synthetic(dataset: Dataset, path: str | Path, max_channels: int = 6) -> Path:
    """PNG of the test part of a few channels, anomalies shaded; channels picked to show every anomaly kind."""
    from matplotlib.figure import Figure  # no pyplot: no global backend state, renders with Agg
    from matplotlib.patches import Patch

    from aster.io import atomic_path

    cat = anomaly_catalogue(dataset) if "anomalies" in dataset.provenance else []
    if cat:
        spans = [(a["start"], a["end"], a["kind"], set(a["channels"])) for a in cat]
    else:  # fall back to the label runs
        d = np.diff(np.concatenate([[0], dataset.test_labels, [0]]))
        spans = [(int(s), int(e), "anomaly", set()) for s, e in zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1))]
    chosen: list[int] = []
    todo = {k for *_, k, _ in spans}
    while todo and len(chosen) < max_channels:  # greedy cover: the channel showing most unseen kinds
        gain = {c: {k for *_, k, ch in spans if c in ch} & todo for c in range(dataset.n_channels)}
        best = max(gain, key=lambda c: len(gain[c]))
        if not gain[best]:
            break
        chosen.append(best)
        todo -= gain[best]
    chosen += [c for c in range(dataset.n_channels) if c not in chosen][:max_channels - len(chosen)]
    colors = dict(zip(KINDS + ("anomaly",), ["C3", "C1", "C4", "C2", "C6", "C5", "C3"]))

    n = dataset.test.shape[0]
    min_w = n / 400  # keep one-step spikes visible
    fig = Figure(figsize=(14, 1.9 * len(chosen) + 0.6), dpi=100)
    fig.subplots_adjust(left=0.07, right=0.99, top=1 - 0.35 / fig.get_figheight(), bottom=0.5 / fig.get_figheight(),
                        hspace=0.12)
    axes = fig.subplots(len(chosen), 1, sharex=True, squeeze=False)[:, 0]
    for ax, c in zip(axes, sorted(chosen)):
        ax.plot(np.arange(n), dataset.test[:, c], lw=0.5, color="C0")
        for s, e, kind, ch in spans:
            mid, half = (s + e - 1) / 2, max(e - s, min_w) / 2
            ax.axvspan(mid - half, mid + half, color=colors.get(kind, "C3"), alpha=0.4 if c in ch or not cat else 0.1,
                       lw=0)
        ax.set_ylabel(dataset.channels[c], fontsize=8)
    kinds = sorted({k for _, _, k, _ in spans}, key=lambda k: (KINDS + ("anomaly",)).index(k))
    axes[0].legend(handles=[Patch(color=colors[k], alpha=0.4, label=k) for k in kinds], loc="upper right",
                   fontsize=7, ncol=max(1, len(kinds)))
    axes[0].set_title(f"{dataset.name}: test part, anomalies shaded (dark: on this channel)")
    axes[-1].set_xlabel("test step")
    path = Path(path)
    with atomic_path(path, ".png") as tmp:
        fig.savefig(tmp, format="png")
    return path
