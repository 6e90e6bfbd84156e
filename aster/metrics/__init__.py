"""Evaluation metrics exactly as TAB computes them (docs/evaluation.md §3-4): score mode and label mode.

Every metric sees test vectors only. Score mode: `score_metrics(labels, scores)`; label mode:
`label_mode_f1(test_labels, test_scores, pool_scores)`, `f1_at_threshold`, `point_adjusted_f1` (extra).
"""

from aster.metrics.label import DEFAULT_RATIOS, f1_at_threshold, label_mode_f1, point_adjust, point_adjusted_f1
from aster.metrics.score import SCORE_KEYS, score_metrics
from aster.metrics.vus import buffer_length, range_auc_vus, segments, window_areas

__all__ = ["DEFAULT_RATIOS", "SCORE_KEYS", "buffer_length", "f1_at_threshold", "label_mode_f1", "point_adjust",
           "point_adjusted_f1", "range_auc_vus", "score_metrics", "segments", "window_areas"]
