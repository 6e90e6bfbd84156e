"""What the model tests share: a tiny ASTER, windows, parameter groups and gradient predicates, and the two games."""

import torch

from aster.model import Aster, AsterConfig

W, C, B = 16, 5, 4
BASE = dict(n_channels=C, window=W, dropout=0.0)  # no dropout: a seeded forward is then exactly repeatable


def make(seed: int = 0, **kw) -> Aster:
    torch.manual_seed(seed)
    return Aster(AsterConfig(**{**BASE, "backbone": "tiny-gpt2", **kw}))


def windows(seed: int = 1, b: int = B) -> torch.Tensor:
    return torch.randn(b, W, C, generator=torch.Generator().manual_seed(seed))


def perturb_lora(m: Aster) -> None:
    """LoRA B starts at zero, which makes lora_A's gradient and any merge trivially zero; make both real."""
    with torch.no_grad():
        for name, p in m.named_parameters():
            if "lora_B" in name:
                p.normal_(0.0, 0.1)


def groups(m: Aster) -> dict[str, list[torch.nn.Parameter]]:
    p = m.perturbator
    trainable = lambda *mods: [q for mod in mods for q in mod.parameters() if q.requires_grad]  # noqa: E731
    return {"F": trainable(m.extractor), "E": trainable(p.encoder, p.to_mu, p.to_sigma),
            "D": trainable(p.decoder, p.decoder_head), "G": trainable(p.generator, p.generator_head),
            "C": trainable(m.classifier)}


def grads(loss: torch.Tensor, params) -> list[torch.Tensor | None]:
    return list(torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True))


def same(a, b, tol: float = 1e-5) -> bool:
    """Equal up to float32 summation-order noise, relative to each tensor's scale (tol=0: bit-identical)."""
    return all((x - y).abs().max() <= tol * y.abs().max() for x, y in zip(a, b, strict=True))


def all_nonzero(gs) -> bool:
    return all(g is not None and g.abs().sum() > 0 for g in gs)


def all_none(gs) -> bool:  # None: the loss is not connected to these parameters at all
    return all(g is None for g in gs)


def no_signal(gs) -> bool:  # connected through a concatenation, but the gradient is exactly zero
    return all(g is None or not g.any() for g in gs)


# the paper's game, and ours: patch tokens, anchored pseudo-anomalies, per-token targets and max pooling
GAMES = {"paper": dict(), "ours": dict(patch=4, pseudo="anchored", target="token", pooling="max", score_level="token",
                                       pseudo_span=0.5, rank_weight=0.5)}


def plain_cls_pseudo(m: Aster, out: dict, detach_h_tilde: bool = False) -> torch.Tensor:
    """cls_pseudo recomputed from G's raw output without any gradient reversal (same eps, mask and sizes), with
    the size-ranking term written out: softplus(C(H~) - C(H + 2 (H~ - H)))."""
    from aster.game import anchored

    cfg, h = m.config, out["h"].detach()
    g = out["g"].detach() if detach_h_tilde else out["g"]
    h_tilde = g if cfg.pseudo == "free" else anchored(h, g, out["mask"], out["size"])
    doubled = [h + 2 * (h_tilde - h)] if cfg.rank_weight > 0 else []  # only anchored deviations have a double
    window_logits, token_logits = m.classifier(torch.cat([h, h_tilde, *doubled]))
    bce, b, mask = torch.nn.functional.binary_cross_entropy_with_logits, h.shape[0], out["mask"]
    rank = 0.0
    if doubled:
        rank = cfg.rank_weight * torch.nn.functional.softplus(window_logits[b:2 * b] - window_logits[2 * b:]).mean()
    if cfg.target == "window":
        return bce(window_logits[b:2 * b], torch.ones(b)) + rank
    lp = token_logits[b:2 * b]
    return bce(lp[mask], torch.ones_like(lp[mask])) + bce(lp[~mask], torch.zeros_like(lp[~mask])) + rank
