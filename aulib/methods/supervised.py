"""Supervised: a backbone and a linear head trained on the AU labels with masked BCE.

The plain detector every paper is measured against: the CNN study's fine-tuning protocol, TRA-Net's and AUNet's
"backbone only" rows, and the ``supervised`` reference (ceiling) of the self-supervised papers (RRL, EmoCo),
whose encoders are judged by how close a probe on them comes to this model.

    model = create("supervised", backbone="resnet18", num_aus=12, in_chans=3)
    out = model.training_step({"image": x, "labels": y, "valid": v}, step)   # {"loss": masked BCE}
    logits = model(x)                                                        # (B, K)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from aulib.losses.masked_bce import cost_weights, masked_bce
from aulib.methods.base import Method, unpack_batch
from aulib.models.heads import linear_head
from aulib.models.registry import create_backbone


@dataclass
class SupervisedConfig:
    backbone: str = "resnet18"
    backbone_kwargs: dict[str, Any] = field(default_factory=dict)
    num_aus: int = 12
    in_chans: int = 3
    weights: str | None = None  # a local state-dict path (nothing is downloaded)
    head: str = "linear"  # linear | bn_linear
    cost_manipulation: bool = False  # the CNN study's per-batch positive weights (Sec. II-D)


class Supervised(Method):
    """``model``: images -> logits (B, K), trained with BCE over the known labels.

    Built from a :class:`SupervisedConfig` (a backbone by name + a linear head) or around any given ``model``.
    ``pos_weight`` (K,) weighs positives; ``cfg.cost_manipulation`` uses per-batch weights
    (:func:`aulib.losses.masked_bce.cost_weights`); ``au_mask`` (B, K) bool (from a balanced sampler) scores each
    AU only on the images drawn for it and averages the per-AU BCEs (the CNN study's loss).
    """

    def __init__(self, cfg: SupervisedConfig | None = None, model: nn.Module | None = None,
                 pos_weight: torch.Tensor | None = None, au_mask: torch.Tensor | None = None,
                 input_key: str = "image", cost_manipulation: bool | None = None):
        super().__init__()
        self.cfg = cfg or SupervisedConfig()
        if model is None:
            encoder = create_backbone(self.cfg.backbone, in_chans=self.cfg.in_chans, num_classes=0,
                                      weights=self.cfg.weights, **self.cfg.backbone_kwargs)
            model = nn.Sequential(encoder, linear_head(encoder.num_features, self.cfg.num_aus, self.cfg.head))
        self.model = model
        self.register_buffer("pos_weight", pos_weight.float() if pos_weight is not None else None)
        self.register_buffer("au_mask", au_mask.bool() if au_mask is not None else None)
        self.cost_manipulation = self.cfg.cost_manipulation if cost_manipulation is None else cost_manipulation
        self.input_key = input_key

    @property
    def encoder(self) -> nn.Module:
        """The backbone (the model without its head) when built from a config."""
        return self.model[0] if isinstance(self.model, nn.Sequential) else self.model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)  # (B, K) logits

    def training_step(self, batch, step):
        x, y, v = unpack_batch(batch, self.input_key)
        logits = self.model(x)  # (B, K)
        v = torch.ones_like(y, dtype=torch.bool) if v is None else v.bool()
        weight = cost_weights(y, v) if self.cost_manipulation else None
        if self.au_mask is not None and self.au_mask.shape == v.shape:
            return {"loss": masked_bce(logits, y, v & self.au_mask, self.pos_weight, weight, reduction="per_au")}
        return {"loss": masked_bce(logits, y, v, self.pos_weight, weight)}
