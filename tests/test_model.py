"""ASTER model: shapes, and the gradient routing of docs/method.md proven on the gradients themselves."""

import pytest
import torch

from aster.model import LOGGED, Aster, AsterConfig, grad_reverse
from model_testutil import (B, BASE, GAMES, C, W, all_none, all_nonzero, grads, groups, make, no_signal,
                            perturb_lora, plain_cls_pseudo, same, windows)


@pytest.mark.parametrize("game", GAMES)
@pytest.mark.parametrize("backbone", ["tiny-gpt2", "none"])
def test_extractor_learns_only_from_normal_classification(backbone, game):
    m = make(backbone=backbone, **GAMES[game])
    perturb_lora(m)
    out = m.training_step_outputs(windows())
    f = groups(m)["F"]
    from_normal = grads(out["cls_normal"], f)
    assert all_nonzero(from_normal)  # adapter, every LoRA A and B, projection
    assert same(grads(out["loss"], f), from_normal, tol=0)
    assert no_signal(grads(out["elbo"] + out["cls_pseudo"], f))


@pytest.mark.parametrize("game", GAMES)
def test_encoder_learns_only_from_elbo(game):
    m = make(elbo_weight=0.5, **GAMES[game])
    out = m.training_step_outputs(windows())
    g = groups(m)
    for part in ("E", "D"):
        from_elbo = grads(out["elbo"], g[part])
        assert all_nonzero(from_elbo)
        assert same(grads(out["loss"], g[part]), [0.5 * x for x in from_elbo])
        assert all_none(grads(out["cls_pseudo"] + out["cls_normal"], g[part]))  # stop-gradient G -> E


@pytest.mark.parametrize("game", GAMES)
def test_generator_gets_reversed_lambda_scaled_gradient_only(game):
    m = make(**GAMES[game])
    x = windows()

    def g_grads(lam):
        m.config.grl_lambda = lam
        torch.manual_seed(7)  # same eps, spans and sizes for every lambda
        out = m.training_step_outputs(x)
        return out, grads(out["loss"], groups(m)["G"])

    out, g1 = g_grads(1.0)
    assert all_nonzero(g1)
    assert all_none(grads(out["elbo"], groups(m)["G"]))  # nothing from the ELBO into G
    assert no_signal(grads(out["cls_normal"], groups(m)["G"]))
    # the reversed gradient is exactly -1 times the ordinary gradient of cls_pseudo w.r.t. G
    assert same(g1, [-g for g in grads(plain_cls_pseudo(m, out), groups(m)["G"])])
    assert same(g_grads(-1.0)[1], [-g for g in g1])
    assert same(g_grads(2.0)[1], [2 * g for g in g1])


@pytest.mark.parametrize("game", GAMES)
def test_grl_grad_is_the_norm_of_the_gradient_reaching_g(game):
    m = make(grl_lambda=2.0, **GAMES[game])
    out = m.training_step_outputs(windows())
    assert out["grl_grad"] == 0
    (expected,) = torch.autograd.grad(out["loss"], out["g"], retain_graph=True)
    out["loss"].backward()
    assert torch.allclose(out["grl_grad"], expected.norm())
    (plain,) = torch.autograd.grad(plain_cls_pseudo(m, out), out["g"])
    assert torch.allclose(expected, -2.0 * plain, atol=1e-6)


@pytest.mark.parametrize("game", GAMES)
def test_classifier_learns_from_both_terms_unreversed(game):
    m = make(**GAMES[game])
    out = m.training_step_outputs(windows())
    c = groups(m)["C"]
    n, p = grads(out["cls_normal"], c), grads(out["cls_pseudo"], c)
    assert all_nonzero(n) and all_nonzero(p)
    assert all_none(grads(out["elbo"], c))
    for total, a, b in zip(grads(out["loss"], c), n, p, strict=True):  # the terms cancel: scale by each
        assert (total - (a + b)).abs().max() <= 1e-5 * max(a.abs().max(), b.abs().max())
    # C's pseudo gradient is the plain BCE gradient (the reversal acts only below C, on G)
    assert same(p, grads(plain_cls_pseudo(m, out, detach_h_tilde=True), c))


def test_gradient_reversal_function():
    x = torch.randn(3, 4, requires_grad=True)
    y = grad_reverse(x, 2.5)
    assert torch.equal(y, x)
    (g,) = torch.autograd.grad((y * 3).sum(), x)
    assert torch.equal(g, torch.full_like(x, -7.5))


@pytest.mark.parametrize("finetune", ["lora", "frozen", "full"])
def test_finetune_modes_decide_which_lm_weights_learn(finetune):
    m = make(finetune=finetune)
    perturb_lora(m)
    m.training_losses(windows())["loss"].backward()
    lm = dict(m.extractor.lm.named_parameters())
    head = [n for n, p in m.extractor.named_parameters() if not n.startswith("lm.")]
    assert sorted(head) == ["adapter.bias", "adapter.weight", "proj.bias", "proj.weight"]
    assert all(p.requires_grad and p.grad is not None for n, p in m.extractor.named_parameters() if n in head)
    assert all(p.requires_grad and p.grad is not None for p in groups(m)["E"] + groups(m)["G"] + groups(m)["C"])
    learning = {n for n, p in lm.items() if p.requires_grad}
    assert all((p.grad is not None) == (n in learning) for n, p in lm.items())  # trainable <=> gets a gradient
    if finetune == "lora":
        assert learning and all("lora_" in n for n in learning)
        assert learning == {n for n in lm if "lora_" in n}
    elif finetune == "frozen":
        assert not learning
    else:  # every LM weight except the token-embedding table, which inputs_embeds bypasses
        assert learning == {n for n in lm if not n.startswith("wte.")}


def test_trainable_counts_order():
    counts = {ft: make(finetune=ft).num_parameters(trainable_only=True) for ft in ("frozen", "lora", "full")}
    lm = make(finetune="frozen").extractor.lm
    assert counts["lora"] - counts["frozen"] == 2 * 5632  # 2 layers, r=8 on c_attn/c_proj
    assert counts["full"] - counts["frozen"] == sum(p.numel() for n, p in lm.named_parameters() if n != "wte.weight")
    m = make()
    assert m.num_parameters() == sum(p.numel() for p in m.parameters())
    assert m.num_parameters(True) == sum(p.numel() for p in m.trainable_parameters())


def test_decoder_queries_are_only_positions_and_memory_is_z():
    m = make(backbone="none")
    seen = {}
    for name in ("decoder", "generator"):
        getattr(m.perturbator, name).register_forward_pre_hook(
            lambda mod, args, name=name: seen.setdefault(name, []).append(args))
    outs = [m.training_step_outputs(windows(seed)) for seed in (1, 2)]
    assert not torch.allclose(outs[0]["h"], outs[1]["h"])
    pe = m.perturbator.pos.pe[:W].expand(B, -1, -1)
    for name in ("decoder", "generator"):
        (tgt0, mem0), (tgt1, mem1) = seen[name]
        assert torch.equal(tgt0, pe) and torch.equal(tgt1, pe)  # same queries whatever H is
        assert torch.equal(mem0, outs[0]["z"]) and torch.equal(mem1, outs[1]["z"])
    assert seen["decoder"][0][1].requires_grad and not seen["generator"][0][1].requires_grad  # G sees z.detach()
    # so D's output is a function of z alone: decoding the same z gives the same H_rec after any other H went in
    z = outs[0]["z"].detach()
    m.perturbator.encode(torch.randn(B, W, m.config.d_model))
    assert torch.allclose(m.perturbator.decode(z), outs[0]["h_rec"])


@pytest.mark.parametrize("backbone", ["tiny-gpt2", "none"])
@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_shapes_and_losses(backbone, pooling):
    m = make(backbone=backbone, pooling=pooling, dropout=0.1)
    x = windows()
    assert m(x).shape == (B,)
    s = m.score(x)
    assert ((s > 0) & (s < 1)).all()
    losses = m.training_losses(x)
    assert set(losses) == {"loss", *LOGGED} - {"rank"}  # the size-ranking term is off in the paper's game
    assert all(v.ndim == 0 and torch.isfinite(v) for v in losses.values())
    assert losses["loss"].requires_grad and not any(v.requires_grad for k, v in losses.items() if k != "loss")
    assert 0 <= losses["feat_distance"] <= 2 and losses["kl"] >= 0
    h_tilde, mask = m.pseudo_anomalies(m.extractor(x))
    assert h_tilde.shape == (B, W, m.config.d_model) and not h_tilde.requires_grad and mask.all()
    with pytest.raises(ValueError, match=r"expected windows of shape \(B, 16, 5\)"):
        m(torch.randn(B, W, C + 1))


def test_minilm_forward_backward():
    torch.manual_seed(0)
    m = Aster(AsterConfig(**BASE, backbone="minilm"))
    lm = dict(m.extractor.lm.named_parameters())
    assert not any("pooler" in n for n in lm)
    assert m.extractor.adapter.out_features == 384 and len(m.extractor.lm.base_model.model.encoder.layer) == 6
    x = windows(b=2)
    assert m(x).shape == (2,)
    m.training_losses(x)["loss"].backward()
    assert all((p.grad is not None) == ("lora_" in n) for n, p in lm.items())
    targets = {n.split(".lora_A")[0].split(".")[-1] for n in lm if "lora_A" in n}
    assert targets == {"query", "key", "value", "dense"}


def test_backbone_layers_keeps_the_pretrained_first_layers():
    torch.manual_seed(0)
    m = Aster(AsterConfig(**BASE, backbone="minilm", finetune="frozen", backbone_layers=2))
    full = Aster(AsterConfig(**BASE, backbone="minilm", finetune="frozen"))
    assert len(m.extractor.lm.encoder.layer) == 2
    a, b = m.extractor.lm.encoder.layer[1], full.extractor.lm.encoder.layer[1]
    assert torch.equal(a.attention.self.query.weight, b.attention.self.query.weight)
    assert m(windows(b=2)).shape == (2,)
    assert len(make(backbone_layers=1).extractor.lm.base_model.model.h) == 1
    with pytest.raises(ValueError, match="only 6 layers"):
        Aster(AsterConfig(**BASE, backbone="minilm", backbone_layers=7))


@pytest.mark.parametrize("kw", [dict(), dict(finetune="full"), dict(backbone="none"), dict(classifier="mlp"),
                                dict(pooling="cls")])
def test_export_module_is_merged_and_matches_score(kw):
    m = make(dropout=0.1, lora_dropout=0.1, **kw)
    perturb_lora(m)
    m.eval()
    x = windows(b=7)
    exported = m.export_module()
    assert not exported.training
    assert not any("lora" in n for n in exported.state_dict())
    with torch.no_grad():
        assert torch.allclose(exported(x), m.score(x), atol=1e-5, rtol=0)
    if kw.get("backbone") != "none":
        from transformers import GPT2Model

        assert type(exported.extractor.lm) is GPT2Model
    if not kw:  # LoRA: the merge carries a real, non-zero update, and the training model keeps its adapters
        assert any("lora_B" in n for n, _ in m.named_parameters())
        with torch.no_grad(), m.extractor.lm.disable_adapter():
            assert (exported(x) - m.score(x)).abs().max() > 1e-4


def test_init_is_deterministic_given_seed():
    a, b, c = make(seed=3), make(seed=3), make(seed=4)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    assert any(not torch.equal(sa[k], sc[k]) for k in sa)


@pytest.mark.parametrize("kw, msg", [(dict(finetune="qlora"), "finetune"), (dict(d_model=30), "divisible"),
                                     (dict(pooling="sum"), "pooling"), (dict(classifier="rnn"), "classifier")])
def test_config_rejects_bad_values(kw, msg):
    with pytest.raises(ValueError, match=msg):
        AsterConfig(**{**BASE, **kw})


@pytest.mark.parametrize("backbone", ["tiny-gpt2", "none"])
def test_export_module_traces_to_onnx(backbone, tmp_path):
    """Guards the two traps in export_module's docstring (fused encoder fast path, aten::diff from use_cache)."""
    ort = pytest.importorskip("onnxruntime")
    m = make(backbone=backbone)
    perturb_lora(m)
    exported = m.export_module()
    path = tmp_path / "aster.onnx"
    with pytest.warns():  # the legacy exporter is deprecated and transformers' mask code warns while traced
        torch.onnx.export(exported, (windows(),), path, dynamo=False, opset_version=17, input_names=["windows"],
                          output_names=["score"], dynamic_axes={"windows": {0: "batch"}, "score": {0: "batch"}})
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    x = windows(seed=5, b=9)
    (score,) = session.run(None, {"windows": x.numpy()})
    with torch.no_grad():
        assert score.shape == (9,) and torch.allclose(torch.from_numpy(score), m.eval().score(x), atol=1e-5)


def test_param_groups_cover_every_trainable_parameter_once_with_their_lr_scales():
    m = make(extractor_lr=0.1, generator_lr=0.01)
    groups_ = {g["name"]: g for g in m.param_groups()}
    assert {k: g["lr_scale"] for k, g in groups_.items()} == {"extractor": 0.1, "generator": 0.01, "rest": 1.0}
    ids = [id(p) for g in groups_.values() for p in g["params"]]
    assert len(ids) == len(set(ids)) and set(ids) == {id(p) for p in m.trainable_parameters()}
    assert {id(p) for p in groups_["generator"]["params"]} == {id(p) for p in groups(m)["G"]}
    frozen = make(extractor_lr=0.0)  # F stays at its init: not trainable, so no gradient is even computed
    assert not any(p.requires_grad for p in frozen.extractor.parameters())
    assert [g["name"] for g in frozen.param_groups()] == ["generator", "rest"]
    frozen.training_losses(windows())["loss"].backward()
    assert all(p.grad is not None for p in groups(frozen)["C"])


def test_logged_grl_grad_is_filled_by_the_backward_pass():
    m = make(**GAMES["ours"])
    losses = m.training_losses(windows())
    assert losses["grl_grad"] == 0
    losses["loss"].backward()
    assert losses["grl_grad"] > 0


def test_patch_tokens_shapes():
    m = make(patch=4, backbone="none", score_level="token")
    x = windows()
    assert m.extractor(x).shape == (B, W // 4, m.config.d_model) and m.extractor.adapter.in_features == 4 * C
    assert m(x).shape == (B,) and m.score(x).shape == (B, W // 4)
