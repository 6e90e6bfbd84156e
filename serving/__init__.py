"""BentoML serving of exported ASTER models (serving.service:AnomalyScorer) and a small retrying client."""
