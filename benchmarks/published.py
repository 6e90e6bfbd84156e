"""TAB's published multivariate numbers for the datasets we have, transcribed from TAB's results PDF (docs/evaluation.md §5).

Source: decisionintelligence/TAB at commit e2b43d4, `docs/results/TAB multivariate dataset result.pdf` (16 tables,
58 method rows x 29 datasets), see docs/evaluation.md §5. Every value is the mean over a dataset's series.
F1 is label mode (best anomaly ratio, no point adjustment); the other four are score mode: AUROC (A-R), AUPR (A-P,
average precision), VUS-ROC, VUS-PR (TAB's 2022 VUS with buffer 0..2L). Label and score numbers come from separate
TAB runs; the tods/merlion rows use their library's own thresholds for F1, not the ratio grid.
"""

from __future__ import annotations

SOURCE = ("TAB (decisionintelligence/TAB @ e2b43d4), docs/results/TAB multivariate dataset result.pdf; "
          "see docs/evaluation.md §5")
METRICS = ("f1", "auroc", "aupr", "vus_roc", "vus_pr")

# dataset -> metric -> (best value over all 58 published methods, the method that has it)
BEST: dict[str, dict[str, tuple[float, str]]] = {
    "msl": {"f1": (0.256, "KNN"), "auroc": (0.684, "CATCH"), "aupr": (0.200, "KNN"),
            "vus_roc": (0.750, "CATCH"), "vus_pr": (0.261, "CATCH")},
    "asd": {"f1": (0.267, "KMeans"), "auroc": (0.870, "KMeans"), "aupr": (0.393, "KNN"),
            "vus_roc": (0.852, "KMeans"), "vus_pr": (0.373, "KNN")},
    "skab": {"f1": (0.723, "KMeans"), "auroc": (0.882, "KMeans"), "aupr": (0.833, "KMeans"),
             "vus_roc": (0.902, "KMeans"), "vus_pr": (0.893, "KMeans")},
    "smd": {"f1": (0.257, "CATCH"), "auroc": (0.824, "CATCH"), "aupr": (0.205, "KMeans"),
            "vus_roc": (0.826, "CATCH"), "vus_pr": (0.289, "DAGMM")},
    "daphnet": {"f1": (0.232, "CALF (full)"), "auroc": (0.763, "DP"), "aupr": (0.215, "TimesNet"),
                "vus_roc": (0.837, "IF"), "vus_pr": (0.570, "OCSVM")},
}

# dataset -> method -> (F1, AUROC, AUPR, VUS-ROC, VUS-PR)
ROWS: dict[str, dict[str, tuple[float, float, float, float, float]]] = {
    "msl": {"GPT4TS (full)": (0.103, 0.585, 0.135, 0.656, 0.199), "TimesNet": (0.119, 0.613, 0.146, 0.692, 0.227),
            "KMeans": (0.170, 0.606, 0.178, 0.634, 0.215), "CATCH": (0.143, 0.684, 0.178, 0.750, 0.261)},
    "asd": {"GPT4TS (full)": (0.181, 0.726, 0.166, 0.776, 0.187), "TimesNet": (0.203, 0.805, 0.245, 0.831, 0.253),
            "KMeans": (0.267, 0.870, 0.380, 0.852, 0.340), "CATCH": (0.219, 0.819, 0.230, 0.852, 0.263)},
    "skab": {"GPT4TS (full)": (0.137, 0.567, 0.422, 0.719, 0.635), "TimesNet": (0.161, 0.620, 0.465, 0.761, 0.681),
             "KMeans": (0.723, 0.882, 0.833, 0.902, 0.893), "CATCH": (0.153, 0.699, 0.583, 0.787, 0.732)},
    "smd": {"GPT4TS (full)": (0.171, 0.690, 0.120, 0.711, 0.107), "TimesNet": (0.164, 0.766, 0.175, 0.782, 0.167),
            "KMeans": (0.171, 0.815, 0.205, 0.729, 0.154), "CATCH": (0.257, 0.824, 0.195, 0.826, 0.197)},
    "daphnet": {"GPT4TS (full)": (0.156, 0.734, 0.196, 0.807, 0.305),
                "TimesNet": (0.151, 0.754, 0.215, 0.823, 0.325),
                "KMeans": (0.224, 0.581, 0.171, 0.646, 0.251), "CATCH": (0.139, 0.645, 0.188, 0.703, 0.291)},
}

# dataset -> (comparable with our run?, why). "Comparable" = the same series; splits/hyperparameters may still differ.
COMPARABILITY: dict[str, tuple[bool, str]] = {
    "msl": (True, "same arrays as TAB's MSL.csv (27 channels concatenated, train 58,317 / test 73,729)"),
    "asd": (True, "same 12 entities (TAB's ASD_dataset_N is presumably omi-N; its split is not stated)"),
    "skab": (False, "same 34 files, but TAB's train/test split inside a SKAB file is unknown "
                    "(ours: first 400 rows train, SKAB authors' protocol)"),
    "smd": (False, "19 of 28 machines, scored per machine and averaged; TAB's SMD is all 28 machines "
                   "concatenated into one series"),
    "daphnet": (False, "one TSB-AD-M series; TAB's Daphnet is the mean over 7 recordings (S01R02 ... S08R01)"),
}

# The ASTER paper's own ablations (the paper's tables; GPT-2 backbone, seed 2021): variant -> dataset -> (F1, AUROC, AUPR).
# Other datasets than ours (PSM, PUMP are not in our benchmark data), so a reference for the ordering, not the values.
PAPER_ABLATIONS: dict[str, dict[str, tuple[float, float, float]]] = {
    "no_lm": {"PSM": (0.479, 0.669, 0.447), "PUMP": (0.021, 0.460, 0.087)},
    "frozen": {"PSM": (0.354, 0.496, 0.389), "PUMP": (0.370, 0.802, 0.199)},
    "full": {"PSM": (0.361, 0.499, 0.417), "PUMP": (0.265, 0.707, 0.146)},
    "lora": {"PSM": (0.512, 0.697, 0.501), "PUMP": (0.458, 0.839, 0.254)},
    "mlp": {"PSM": (0.497, 0.724, 0.471), "PUMP": (0.016, 0.307, 0.069)},
}


def best(dataset: str, metric: str) -> tuple[float, str] | None:
    return BEST.get(dataset, {}).get(metric)


def rows(dataset: str) -> dict[str, dict[str, float]]:
    """method -> {metric: value} for the reference rows of one dataset (empty if TAB has none)."""
    return {m: dict(zip(METRICS, v)) for m, v in ROWS.get(dataset, {}).items()}
