"""Score-mode metrics of TAB's table (docs/evaluation.md §3.1-3.3): AUROC, AUPR, R-AUC-ROC/PR, VUS-ROC/PR."""

from __future__ import annotations

from sklearn.metrics import average_precision_score, roc_auc_score

from aster.metrics.vus import buffer_length, check_inputs, range_auc_vus

SCORE_KEYS = ("auroc", "aupr", "r_auc_roc", "r_auc_pr", "vus_roc", "vus_pr")


def score_metrics(labels, scores) -> dict:
    """All six score-mode metrics on the test vectors, plus `buffer_L` (TAB's L, an int).

    AUROC = sklearn `roc_auc_score`; AUPR = `average_precision_score` (step-wise AP, not a trapezoid).
    Labels with a single class (no anomaly, or every step anomalous) leave every metric undefined: all six are
    NaN then (TAB turns a metric that raises into NaN), never an exception. Malformed input (length mismatch,
    labels other than 0/1, NaN/inf scores, empty) raises ValueError: that is a bug upstream, not a result.
    """
    y, s = check_inputs(labels, scores)
    out = dict.fromkeys(SCORE_KEYS, float("nan"))
    out["buffer_L"] = buffer_length(y)
    if y.all() or not y.any():
        return out
    out["auroc"] = float(roc_auc_score(y, s))
    out["aupr"] = float(average_precision_score(y, s))
    out.update(range_auc_vus(y, s, out["buffer_L"]))
    return out
