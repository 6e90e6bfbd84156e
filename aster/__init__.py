"""ASTER: latent pseudo-anomaly generation for unsupervised multivariate time-series anomaly detection."""

__version__ = "0.1.0"
