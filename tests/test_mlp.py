"""The MLP ablation of C: the same trainable size as the Transformer classifier, and it trains."""

import pytest
import torch

from aster.mlp import MLPClassifier, mlp_hidden_width, mlp_params
from aster.model import AsterConfig, Classifier
from model_testutil import BASE, C, make


@pytest.mark.parametrize("kw", [dict(window=100), dict(), dict(d_model=32, depth=3), dict(pooling="cls")])
def test_mlp_classifier_matches_transformer_size(kw):
    cfg = AsterConfig(**{**BASE, "backbone": "none", **kw})
    n_tf = sum(p.numel() for p in Classifier(cfg).parameters())
    hidden = mlp_hidden_width(cfg.tokens * cfg.d_model, cfg.depth, n_tf)
    mlp = MLPClassifier(cfg, hidden)
    n_mlp = sum(p.numel() for p in mlp.parameters())
    assert n_mlp == mlp_params(cfg.window * cfg.d_model, hidden, cfg.depth)
    assert abs(n_mlp - n_tf) / n_tf < 0.10
    m_mlp, m_tf = make(backbone="none", classifier="mlp", **kw), make(backbone="none", **kw)
    assert m_mlp.num_parameters(True) - m_tf.num_parameters(True) == n_mlp - n_tf
    x = torch.randn(3, cfg.window, C)
    assert m_mlp(x).shape == (3,)
    m_mlp.training_losses(x)["loss"].backward()
    assert all(p.grad is not None for p in m_mlp.classifier.parameters())
