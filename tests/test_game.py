"""The game's pieces (aster/game.py, AsterConfig's game settings): where pseudo-anomalies sit, what C is trained on,
and statistics that show a collapse."""

import pytest
import torch

from aster.model import AsterConfig
from model_testutil import BASE, GAMES, W, all_none, all_nonzero, grads, groups, make, windows


def test_anchored_pseudo_anomalies_deviate_only_in_their_span_by_the_drawn_size():
    m = make(**GAMES["ours"], pseudo_size=(0.5, 2.0))
    out = m.training_step_outputs(windows(b=16))
    h, h_tilde, mask, size = out["h"].detach(), out["h_tilde"].detach(), out["mask"], out["size"]
    n = W // 4
    assert h_tilde.shape == h.shape == (16, n, m.config.d_model) and mask.shape == (16, n)
    assert torch.equal(h_tilde[~mask], h[~mask])  # outside the span: the window's own features
    assert (mask.sum(1) >= 1).all() and (mask.sum(1) <= 2).all()  # spans of 1 .. 0.5 * 4 tokens
    assert all(torch.equal(r[r.nonzero().min():r.nonzero().max() + 1], torch.ones(int(r.sum()), dtype=torch.bool))
               for r in mask)  # contiguous
    assert ((size >= 0.5) & (size <= 2.0)).all()
    sd = h.flatten(0, 1).std(0)
    rms = ((h_tilde - h) / sd).pow(2).mean(-1).sqrt()  # deviation in units of the normal spread, per token
    assert torch.allclose(rms[mask], size[:, None].expand_as(mask)[mask], rtol=1e-4)


def test_random_directions_replace_g_in_the_windows_they_draw():
    x = windows(b=16)
    all_random = make(**GAMES["ours"], pseudo_random=1.0)
    out = all_random.training_step_outputs(x)
    assert not all_random.runs_perturbator and out["elbo"] == 0  # G's output would be discarded: P is not run
    assert not {"elbo", "recon", "kl", "grl_grad"} & set(all_random.training_losses(x))  # nor logged
    for part in "EDG":
        assert all_none(grads(out["loss"], groups(all_random)[part]))
    assert all_nonzero(grads(out["loss"], groups(all_random)["C"]))
    h, h_tilde, mask, size = out["h"].detach(), out["h_tilde"].detach(), out["mask"], out["size"]
    assert torch.equal(h_tilde[~mask], h[~mask])
    rms = ((h_tilde - h) / h.flatten(0, 1).std(0)).pow(2).mean(-1).sqrt()
    assert torch.allclose(rms[mask], size[:, None].expand_as(mask)[mask], rtol=1e-4)  # same drawn sizes
    half = make(**GAMES["ours"], pseudo_random=0.5)
    torch.manual_seed(3)
    assert all_nonzero(grads(half.training_step_outputs(x)["loss"], groups(half)["G"]))  # G still plays


def test_size_ranking_term_compares_each_deviation_with_its_double():
    import torch.nn.functional as nnf

    m = make(**GAMES["ours"])
    out = m.training_step_outputs(windows(b=8))
    h, h_tilde = out["h"].detach(), out["h_tilde"].detach()
    window_logits = m.classifier(torch.cat([h_tilde, h + 2 * (h_tilde - h)]))[0]
    assert torch.allclose(out["rank"], nnf.softplus(window_logits[:8] - window_logits[8:]).mean(), atol=1e-6)
    assert "rank" in m.training_losses(windows(b=8))
    assert "rank" not in make(**{**GAMES["ours"], "rank_weight": 0.0}).training_losses(windows(b=8))


def test_token_target_localises_and_stats_see_the_game():
    m = make(**GAMES["ours"])
    out = m.training_step_outputs(windows(b=8))
    assert out["logits_normal"].shape == out["logits_pseudo"].shape == (8, W // 4)
    for k in ("acc_normal", "acc_pseudo"):
        assert 0 <= out[k] <= 1
    assert out["pseudo_spread"] > 0 and out["pseudo_nn_dist"] > 0


def test_game_stats_show_a_collapse():
    from aster.game import game_stats

    h = torch.randn(8, 10, 16)
    blob = torch.full_like(h, 5.0)  # every pseudo-anomaly the same point, far from the normal features
    mask = torch.ones(8, 10, dtype=torch.bool)
    stats = game_stats(h, blob, mask, -torch.ones(8), torch.ones(8), torch.ones(8))
    assert stats["acc_normal"] == 1 and stats["acc_pseudo"] == 1
    assert stats["pseudo_spread"] == 0 and stats["pseudo_nn_dist"] > 2
    spread = game_stats(h, torch.randn(8, 10, 16), mask, torch.ones(8), -torch.ones(8), torch.ones(8))
    assert 0.7 < spread["pseudo_spread"] < 1.4 and spread["acc_normal"] == 0 and spread["acc_pseudo"] == 0


@pytest.mark.parametrize("kw, msg", [(dict(patch=3), "patch"), (dict(pseudo="gan"), "pseudo"),
                                     (dict(target="step"), "target"), (dict(pseudo_size=[0.0, 1.0]), "pseudo_size"),
                                     (dict(pseudo_span=0.0), "pseudo_span"), (dict(generator_lr=-1.0), "generator_lr"),
                                     (dict(pseudo_random=1.5), "pseudo_random"),
                                     (dict(pseudo="anchored", rank_weight=-1.0), "rank_weight must be >= 0"),
                                     (dict(rank_weight=1.0), "rank_weight > 0 needs pseudo 'anchored'"),
                                     (dict(classifier="mlp", score_level="token"), "need classifier 'transformer'"),
                                     (dict(step_mean="median"), "step_mean must be one of")])
def test_config_rejects_bad_game_values(kw, msg):
    with pytest.raises(ValueError, match=msg):
        AsterConfig(**{**BASE, **kw})
