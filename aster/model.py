"""ASTER model: feature extractor F, perturbator P (Transformer VAE with decoder D and generator G), classifier C.

Plain nn.Modules with one dataclass config; the training loop lives elsewhere. The method as implemented, and
every choice of ours, is described in docs/method.md. A window of W steps is cut into W / patch tokens of `patch`
consecutive steps (patch 1: the paper's one token per step). Gradient routing, all of it in
`Aster.training_step_outputs`:
  H = F(x)                      F learns only from cls_normal = BCE(C(H), 0)
  P sees H.detach()             stop-gradient P -> F
  z ~ q(z | H) from E           E and D learn only from the ELBO (recon + KL)
  g = G(z.detach())             stop-gradient G -> E
  H~ = pseudo(H.detach(), GRL(g))   free: H~ = g (paper); anchored: a bounded deviation of H (aster/game.py)
  cls_pseudo = BCE(C(H~), 1)    C learns normally, G gets the gradient times -lambda
    [+ rank_weight * softplus(C(H~) - C(H + 2 (H~ - H)))]   anchored: the doubled deviation must score higher
Inference (and ONNX export) runs only sigmoid(C(F(x))): one score per window, or per token (`score_level`).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import ClassVar

import torch
import torch.nn as nn
import torch.nn.functional as nnf

from aster.extractor import FeatureExtractor
from aster.game import anchored, game_stats, log_uniform, span_mask
from aster.mlp import MLPClassifier, mlp_hidden_width
from aster.windows import STEP_MEANS

FINETUNE_MODES = ("lora", "frozen", "full")
CLASSIFIERS = ("transformer", "mlp")
POOLINGS = ("mean", "max", "cls")
PSEUDO_MODES = ("free", "anchored")
LEVELS = ("window", "token")
SIGMA_MIN = 1e-4  # floor of the posterior std: keeps log(sigma) in the KL finite
# scalars of one training step that the trainer logs (loss terms, then the game statistics of aster/game.py)
LOGGED = ("elbo", "recon", "kl", "cls_normal", "cls_pseudo", "rank", "feat_distance", "grl_grad", "acc_normal",
          "acc_pseudo", "pseudo_spread", "pseudo_nn_dist")
PERTURBATOR_TERMS = ("elbo", "recon", "kl", "grl_grad")  # not logged when P is not run (`Aster.runs_perturbator`)
RANK_FACTOR = 2.0  # the size-ranking term compares each pseudo-anomaly with its deviation scaled by this factor


@dataclass
class AsterConfig:
    # settings that change only how scores map to steps: a finished training run resumes across them
    inference_only: ClassVar[tuple[str, ...]] = ("score_level", "step_mean")
    n_channels: int
    window: int = 100
    patch: int = 1  # (ours) time steps per token; 1 = the paper's one token per step. window % patch == 0
    backbone: str = "minilm"  # "minilm" | "none" | "tiny-gpt2" | HF id or local path ("gpt2")
    finetune: str = "lora"  # "lora" | "frozen" | "full"
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.0
    lora_targets: list[str] | None = None  # None: GPT-2 c_attn,c_proj; BERT query,key,value,dense
    backbone_layers: int | None = None  # (ours) keep only the first N LM layers: a speed option
    d_model: int = 64  # (ours) width of P and C; F projects the LM hidden size to it
    n_heads: int = 4
    depth: int = 2  # layers in E, D, G and C
    ff_mult: int = 4
    dropout: float = 0.1
    norm_first: bool = True  # (ours) pre-LayerNorm Transformer layers: steadier under plain SGD
    classifier: str = "transformer"  # "transformer" | "mlp" (ablation, same trainable parameter count)
    pooling: str = "mean"  # (ours) window logit from the token logits: "mean" | "max" | "cls"
    target: str = "window"  # (ours) C's loss per "window" (paper) or per "token" (pseudo-anomalous span = 1)
    score_level: str = "window"  # (ours) what the exported graph scores for the step mapping: "window" | "token"
    step_mean: str = "arithmetic"  # (ours) a step's score from its covering windows': "arithmetic" | "geometric"
    pseudo: str = "free"  # "free": H~ = G(z) (paper) | "anchored": bounded deviation of H (ours, aster/game.py)
    pseudo_size: list[float] = field(default_factory=lambda: [0.25, 2.0])  # anchored: [low, high] deviation size,
    # drawn log-uniformly per window, in per-dimension standard deviations of the normal token features
    pseudo_span: float = 0.3  # anchored: longest deviating span, as a fraction of the window's tokens
    pseudo_random: float = 0.0  # anchored: share of windows deviating in a random direction instead of G's
    rank_weight: float = 0.0  # (ours) anchored: weight of the size-ranking term in cls_pseudo; 0 = off (paper)
    grl_lambda: float = 1.0
    extractor_lr: float = 1.0  # (ours) learning-rate multiplier of F's trainable weights; 0 keeps F at its init
    generator_lr: float = 1.0  # (ours) learning-rate multiplier of G: under Adam, lambda only sets the sign
    kl_weight: float = 1.0  # the paper calls ELBO vs classification losses imbalanced: weights are parameters
    recon_weight: float = 1.0
    elbo_weight: float = 1.0
    members: int = 1  # (ours) independently trained copies scored as their mean (aster/ensemble.py); 1 = one model

    def __post_init__(self) -> None:
        def need(ok: bool, msg: str) -> None:
            if not ok:
                raise ValueError(f"AsterConfig: {msg}")

        need(self.n_channels >= 1, f"n_channels must be >= 1, got {self.n_channels}")
        need(self.window >= 1, f"window must be >= 1, got {self.window}")
        need(self.patch >= 1 and self.window % self.patch == 0,
             f"patch must be >= 1 and divide window={self.window}, got {self.patch}")
        need(self.pseudo in PSEUDO_MODES, f"pseudo must be one of {PSEUDO_MODES}, got {self.pseudo!r}")
        need(self.target in LEVELS, f"target must be one of {LEVELS}, got {self.target!r}")
        need(self.score_level in LEVELS, f"score_level must be one of {LEVELS}, got {self.score_level!r}")
        need(self.step_mean in STEP_MEANS, f"step_mean must be one of {STEP_MEANS}, got {self.step_mean!r}")
        need(self.classifier == "transformer" or (self.target, self.score_level) == ("window", "window"),
             "target and score_level 'token' need classifier 'transformer' (the MLP gives one logit per window)")
        self.pseudo_size = [float(v) for v in self.pseudo_size]
        need(len(self.pseudo_size) == 2 and 0 < self.pseudo_size[0] <= self.pseudo_size[1],
             f"pseudo_size must be [low, high] with 0 < low <= high, got {list(self.pseudo_size)}")
        need(0 < self.pseudo_span <= 1, f"pseudo_span must be in (0, 1], got {self.pseudo_span}")
        need(0 <= self.pseudo_random <= 1, f"pseudo_random must be in [0, 1], got {self.pseudo_random}")
        need(self.rank_weight >= 0, f"rank_weight must be >= 0, got {self.rank_weight}")
        need(self.rank_weight == 0 or self.pseudo == "anchored",
             "rank_weight > 0 needs pseudo 'anchored' (it scales an anchored deviation)")
        need(self.extractor_lr >= 0 and self.generator_lr >= 0, "extractor_lr and generator_lr must be >= 0")
        need(self.finetune in FINETUNE_MODES, f"finetune must be one of {FINETUNE_MODES}, got {self.finetune!r}")
        need(self.classifier in CLASSIFIERS, f"classifier must be one of {CLASSIFIERS}, got {self.classifier!r}")
        need(self.pooling in POOLINGS, f"pooling must be one of {POOLINGS}, got {self.pooling!r}")
        need(self.d_model % self.n_heads == 0, f"d_model={self.d_model} is not divisible by n_heads={self.n_heads}")
        need(self.depth >= 1 and self.ff_mult >= 1, "depth and ff_mult must be >= 1")
        need(self.backbone_layers is None or self.backbone_layers >= 1, "backbone_layers must be None or >= 1")
        need(self.lora_r >= 1, f"lora_r must be >= 1, got {self.lora_r}")
        need(self.members >= 1, f"members must be >= 1, got {self.members}")

    @property
    def tokens(self) -> int:
        return self.window // self.patch


# ----------------------------------------------------------------------------- building blocks

class SinusoidalPositions(nn.Module):
    """Fixed sinusoidal positional encodings (Vaswani et al.): PE[t, 2i] = sin(t / 10000^(2i/d)), PE[t, 2i+1] = cos."""

    def __init__(self, d: int, max_len: int):
        super().__init__()
        t = torch.arange(max_len, dtype=torch.float32)[:, None]
        freq = torch.exp(torch.arange(0, d, 2, dtype=torch.float32) * (-math.log(10000.0) / d))
        pe = torch.zeros(max_len, d)
        pe[:, 0::2] = torch.sin(t * freq)
        pe[:, 1::2] = torch.cos(t * freq)[:, : d // 2]
        self.register_buffer("pe", pe, persistent=False)

    def forward(self, length: int) -> torch.Tensor:
        return self.pe[:length]  # (T, d)


class GradientReversal(torch.autograd.Function):
    """Identity forward; backward multiplies the incoming gradient by -lambda."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, lambda_: float) -> torch.Tensor:
        ctx.lambda_ = lambda_
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return -ctx.lambda_ * grad, None


def grad_reverse(x: torch.Tensor, lambda_: float = 1.0) -> torch.Tensor:
    return GradientReversal.apply(x, lambda_)


def _encoder(cfg: AsterConfig) -> nn.TransformerEncoder:
    layer = nn.TransformerEncoderLayer(cfg.d_model, cfg.n_heads, cfg.ff_mult * cfg.d_model, cfg.dropout,
                                       activation="gelu", batch_first=True, norm_first=cfg.norm_first)
    norm = nn.LayerNorm(cfg.d_model) if cfg.norm_first else None  # pre-LN stacks need a final norm
    return nn.TransformerEncoder(layer, cfg.depth, norm=norm, enable_nested_tensor=False)


def _decoder(cfg: AsterConfig) -> nn.TransformerDecoder:
    layer = nn.TransformerDecoderLayer(cfg.d_model, cfg.n_heads, cfg.ff_mult * cfg.d_model, cfg.dropout,
                                       activation="gelu", batch_first=True, norm_first=cfg.norm_first)
    norm = nn.LayerNorm(cfg.d_model) if cfg.norm_first else None
    return nn.TransformerDecoder(layer, cfg.depth, norm=norm)


# ----------------------------------------------------------------------------- P: Transformer VAE + generator

class Perturbator(nn.Module):
    """Encoder E over H + PE -> (mu, sigma) per time step; decoders D (reconstruction) and G (pseudo-anomalies)
    whose queries are only the positional encodings and whose keys/values are the sampled latent window z."""

    def __init__(self, cfg: AsterConfig):
        super().__init__()
        d = cfg.d_model
        self.pos = SinusoidalPositions(d, cfg.tokens)
        self.encoder, self.to_mu, self.to_sigma = _encoder(cfg), nn.Linear(d, d), nn.Linear(d, d)  # E
        self.decoder, self.decoder_head = _decoder(cfg), nn.Linear(d, d)  # D
        self.generator, self.generator_head = _decoder(cfg), nn.Linear(d, d)  # G

    def encode(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        e = self.encoder(h + self.pos(h.shape[1]))
        return self.to_mu(e), nnf.softplus(self.to_sigma(e)) + SIGMA_MIN  # softplus: sigma > 0 without exp overflow

    @staticmethod
    def sample(mu: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        return mu + sigma * torch.randn_like(sigma)  # reparametrisation trick

    def queries(self, z: torch.Tensor) -> torch.Tensor:
        return self.pos(z.shape[1]).expand(z.shape[0], -1, -1)  # PE only: no H, so D cannot copy its input

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder_head(self.decoder(self.queries(z), z))

    def generate(self, z: torch.Tensor) -> torch.Tensor:
        return self.generator_head(self.generator(self.queries(z), z))

    def forward(self, h: torch.Tensor) -> dict[str, torch.Tensor]:
        mu, sigma = self.encode(h)
        z = self.sample(mu, sigma)
        return {"mu": mu, "sigma": sigma, "z": z, "h_rec": self.decode(z),
                "g": self.generate(z.detach())}  # stop-gradient G -> E


# ----------------------------------------------------------------------------- C: classifiers

class Classifier(nn.Module):
    """C: Transformer encoder over the N feature tokens (+ PE), a logit per token, pooled into one per window."""

    def __init__(self, cfg: AsterConfig):
        super().__init__()
        self.pooling = cfg.pooling
        self.pos = SinusoidalPositions(cfg.d_model, cfg.tokens + 1)
        self.cls_token = nn.Parameter(0.02 * torch.randn(1, 1, cfg.d_model)) if cfg.pooling == "cls" else None
        self.encoder = _encoder(cfg)
        self.head = nn.Linear(cfg.d_model, 1)

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(window logits (B,), token logits (B, N)); mean pooling of logits = the head on mean-pooled states."""
        if self.cls_token is not None:
            h = torch.cat([self.cls_token.expand(h.shape[0], -1, -1), h], dim=1)
        logits = self.head(self.encoder(h + self.pos(h.shape[1]))).squeeze(-1)
        if self.cls_token is not None:
            return logits[:, 0], logits[:, 1:]
        return (logits.mean(1) if self.pooling == "mean" else logits.amax(1)), logits


# ----------------------------------------------------------------------------- ASTER

class ExportedScorer(nn.Module):
    """What gets exported: windows (B, W, C) -> window score (B,) in [0, 1], and token scores (B, N) when the model
    scores per token (`score_level: token`)."""

    def __init__(self, extractor: FeatureExtractor, classifier: nn.Module, token_scores: bool):
        super().__init__()
        self.extractor, self.classifier, self.token_scores = extractor, classifier, token_scores

    def forward(self, windows: torch.Tensor):
        window_logits, token_logits = self.classifier(self.extractor(windows))
        if self.token_scores:
            return torch.sigmoid(window_logits), torch.sigmoid(token_logits)
        return torch.sigmoid(window_logits)


class Aster(nn.Module):
    """F + P + C. `forward` is the inference path; `training_losses` is one training step's routed loss."""

    def __init__(self, cfg: AsterConfig):
        super().__init__()
        self.config = cfg
        self.extractor = FeatureExtractor(cfg)
        if cfg.extractor_lr == 0:  # F stays at its init (pre-trained LM, random adapter): no gradient computed
            self.extractor.requires_grad_(False)
        self.perturbator = Perturbator(cfg)
        if cfg.classifier == "transformer":
            self.classifier: nn.Module = Classifier(cfg)
        else:
            target = sum(p.numel() for p in Classifier(cfg).parameters())  # same trainable size as the Transformer
            self.classifier = MLPClassifier(cfg, mlp_hidden_width(cfg.tokens * cfg.d_model, cfg.depth, target))

    @property
    def runs_perturbator(self) -> bool:
        """False when every anchored deviation takes a random direction: nothing of P reaches C or F then."""
        return not (self.config.pseudo == "anchored" and self.config.pseudo_random == 1)

    def _check(self, x: torch.Tensor) -> None:
        want = (self.config.window, self.config.n_channels)
        if x.ndim != 3 or tuple(x.shape[1:]) != want:
            raise ValueError(f"Aster: expected windows of shape (B, {want[0]}, {want[1]}), got {tuple(x.shape)}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Inference path: one logit per window, C(F(x))."""
        self._check(x)
        return self.classifier(self.extractor(x))[0]

    def score(self, x: torch.Tensor) -> torch.Tensor:
        """The scores that become per-step scores: (B,) per window, or (B, N) per token with score_level 'token'."""
        self._check(x)
        window_logits, token_logits = self.classifier(self.extractor(x))
        return torch.sigmoid(token_logits if self.config.score_level == "token" else window_logits)

    def pseudo(self, h: torch.Tensor, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(H~, mask of pseudo-anomalous tokens (B, N), deviation sizes (B,)) from detached h and G's output g."""
        cfg = self.config
        b, n = h.shape[:2]
        if cfg.pseudo == "free":
            return g, torch.ones(b, n, dtype=torch.bool, device=h.device), torch.ones(b, device=h.device)
        mask = span_mask(b, n, cfg.pseudo_span, h.device)
        size = log_uniform(b, *cfg.pseudo_size, device=h.device)
        if cfg.pseudo_random > 0:  # isotropic directions for a share of windows: deviations G would not choose
            pick = torch.rand(b, 1, 1, device=h.device) < cfg.pseudo_random
            g = torch.where(pick, torch.randn_like(g), g)
        return anchored(h, g, mask, size), mask, size

    def training_step_outputs(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every tensor of one training step, still attached to the graph (tests and plots read them).

        `grl_grad` is filled in place by a backward hook: after `loss.backward()` it holds the norm of the
        (reversed, lambda-scaled) gradient that reached G's output, the signal that keeps the game going.
        """
        self._check(x)
        cfg = self.config
        h = self.extractor(x)
        if self.runs_perturbator:
            p = self.perturbator(h.detach())  # stop-gradient P -> F
            recon = nnf.mse_loss(p["h_rec"], h.detach())
            # KL(N(mu, sigma^2) || N(0, 1)) per latent element, averaged like the MSE so both weights share a scale
            kl = (0.5 * (p["mu"] ** 2 + p["sigma"] ** 2 - 1.0) - torch.log(p["sigma"])).mean()
        else:  # every direction is random: G's output would be discarded, so P (and its ELBO) is not run
            p, recon, kl = {"g": torch.zeros_like(h)}, h.new_zeros(()), h.new_zeros(())
        elbo = cfg.recon_weight * recon + cfg.kl_weight * kl
        grl_grad = torch.zeros((), device=h.device)
        if p["g"].requires_grad:
            def record(grad: torch.Tensor) -> None:
                grl_grad.copy_(grad.detach().float().norm())

            p["g"].register_hook(record)
        h_tilde, mask, size = self.pseudo(h.detach(), grad_reverse(p["g"], cfg.grl_lambda))
        b = h.shape[0]
        batch = [h, h_tilde]
        if cfg.rank_weight > 0:  # the same deviation, RANK_FACTOR times as large, scored alongside
            batch.append(h.detach() + RANK_FACTOR * (h_tilde - h.detach()))
        window_logits, token_logits = self.classifier(torch.cat(batch))
        bce = nnf.binary_cross_entropy_with_logits
        if cfg.target == "window":
            logits_normal, logits_pseudo = window_logits[:b], window_logits[b:2 * b]
            target_pseudo = torch.ones_like(logits_pseudo)
            cls_pseudo = bce(logits_pseudo, target_pseudo)
        else:  # tokens in the deviating span -> 1, the rest of a pseudo-anomalous window -> 0 (localisation)
            logits_normal, logits_pseudo = token_logits[:b], token_logits[b:2 * b]
            target_pseudo = mask.to(logits_pseudo.dtype)
            cls_pseudo = bce(logits_pseudo[mask], target_pseudo[mask])
            if not mask.all():
                cls_pseudo = cls_pseudo + bce(logits_pseudo[~mask], target_pseudo[~mask])
        rank = h.new_zeros(())
        if cfg.rank_weight > 0:  # RankNet: -log P(C ranks the larger deviation above the drawn one), per window
            rank = nnf.softplus(window_logits[b:2 * b] - window_logits[2 * b:]).mean()
            cls_pseudo = cls_pseudo + cfg.rank_weight * rank
        cls_normal = bce(logits_normal, torch.zeros_like(logits_normal))
        loss = cls_normal + cls_pseudo + cfg.elbo_weight * elbo
        # paper eq. 3 (ours: one vector per window, N * d_model long): how close pseudo-anomalies get to normal H
        feat_distance = 1.0 - nnf.cosine_similarity(h.flatten(1), h_tilde.flatten(1), dim=1).mean()
        stats = game_stats(h.detach(), h_tilde.detach(), mask, logits_normal.detach(), logits_pseudo.detach(),
                           target_pseudo)
        return {"loss": loss, "elbo": elbo, "recon": recon, "kl": kl, "cls_normal": cls_normal,
                "cls_pseudo": cls_pseudo, "rank": rank, "feat_distance": feat_distance, "grl_grad": grl_grad, **stats,
                "h": h, "h_tilde": h_tilde, "mask": mask, "size": size, "logits_normal": logits_normal,
                "logits_pseudo": logits_pseudo, **p}

    def training_losses(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """{"loss": total (one backward trains everything as routed), plus detached scalar components}."""
        out = self.training_step_outputs(x)
        idle = (() if self.runs_perturbator else PERTURBATOR_TERMS) + (() if self.config.rank_weight else ("rank",))
        logged = [k for k in LOGGED if k not in idle]
        return {"loss": out["loss"], **{k: out[k].detach() for k in logged}}  # detach shares grl_grad's storage

    @torch.no_grad()
    def pseudo_anomalies(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(H~, mask of pseudo-anomalous tokens) for features H = extractor(x), z ~ q(z | H): for plots. Like a
        training step, it does not run P when G's output would be discarded."""
        if not self.runs_perturbator:
            return self.pseudo(h, torch.zeros_like(h))[:2]
        mu, sigma = self.perturbator.encode(h)
        return self.pseudo(h, self.perturbator.generate(self.perturbator.sample(mu, sigma)))[:2]

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    def param_groups(self) -> list[dict]:
        """Trainable parameters with their learning-rate multipliers (F and G have their own)."""
        gen = self.perturbator
        groups = {"extractor": (self.config.extractor_lr, list(self.extractor.parameters())),
                  "generator": (self.config.generator_lr,
                                list(gen.generator.parameters()) + list(gen.generator_head.parameters()))}
        taken = {id(p) for _, ps in groups.values() for p in ps}
        groups["rest"] = (1.0, [p for p in self.parameters() if id(p) not in taken])
        return [{"name": k, "lr_scale": scale, "params": [p for p in ps if p.requires_grad]}
                for k, (scale, ps) in groups.items() if any(p.requires_grad for p in ps)]

    def num_parameters(self, trainable_only: bool = False) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    def export_module(self) -> ExportedScorer:
        """Extractor (LoRA merged into the LM weights, on a copy) + classifier + sigmoid, in eval mode, for ONNX.

        Two things keep the legacy (TorchScript) ONNX exporter working: (1) parameters keep requires_grad, so with
        grad enabled nn.TransformerEncoderLayer skips its fused eval fast path (aten::_transformer_encoder_layer_fwd
        has no ONNX symbolic); under torch.no_grad() switch it off with torch.backends.mha.set_fastpath_enabled(False)
        as aster/export.py does; (2) the LM runs with its default use_cache: with use_cache=False and no
        attention_mask, transformers 5 traces a packed-sequence check that uses aten::diff.
        """
        extractor = copy.deepcopy(self.extractor)
        extractor.lm_kwargs = {}
        if extractor.lm is not None and self.config.finetune == "lora":
            extractor.lm = extractor.lm.merge_and_unload()
        token_scores = self.config.score_level == "token"
        return ExportedScorer(extractor, copy.deepcopy(self.classifier), token_scores).eval()
