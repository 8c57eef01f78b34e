"""TRA-Net as an aulib method: config, AU-to-region map, Table 2's ablation switches, the training step.

Paper: Xia, "Upper, Middle and Lower Region Learning for Facial Action Unit Detection" (tranet.md).

    cfg = TRANetConfig(aus=[1, 2, 4, 6, 9, 12, 25, 26])          # DISFA's 8, grouped by region from AU_REGION
    method = TRANetMethod(cfg.with_variant("SENet-50 + HM"))      # any row of Table 2
    out = method.training_step({"image": x, "labels": y, "valid": v}, step=0)   # {"loss", "bce_upper", ...}

Loss (§4.1): the sum over the three branches of each branch's multi-label BCE over its own AUs (the masked mean
BCE of :func:`aulib.losses.masked_bce.masked_bce`). The config also carries §4.1's training settings (SGD
momentum 0.9, weight decay 1e-3, lr 1e-3, batches of 64 drawn with per-AU positive weights, 100 batches an
epoch, early stopping after 10 epochs without gain; blocks 1-2 frozen, which aulib applies only when pretrained
``weights`` are given); the protocol that uses them (loaders, early stopping on held-out training subjects,
folds, the paper's tables and claims) lives in :mod:`aulib.experiments.tranet`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from aulib.config import from_dict
from aulib.losses.masked_bce import masked_bce
from aulib.methods.base import Method
from aulib.models.tranet import REGIONS, TRANet

DISFA_AUS: tuple[int, ...] = (1, 2, 4, 6, 9, 12, 25, 26)

# Where each AU acts, as data: the paper's three groups for DISFA (upper 1, 2, 4; middle 6, 9; lower 12, 25,
# 26) extended by facial anatomy to the other AUs aulib's datasets carry (BP4D's 12, GFT, Aff-Wild2, ...).
# Brows and lids are upper; cheek, nose and upper-lip raisers middle; mouth and chin lower.
AU_REGION: dict[int, str] = {
    1: "upper", 2: "upper", 4: "upper", 5: "upper", 7: "upper", 41: "upper", 42: "upper", 43: "upper",
    44: "upper", 45: "upper", 46: "upper",
    6: "middle", 9: "middle", 10: "middle", 11: "middle", 13: "middle", 38: "middle", 39: "middle",
    12: "lower", 14: "lower", 15: "lower", 16: "lower", 17: "lower", 18: "lower", 20: "lower", 22: "lower",
    23: "lower", 24: "lower", 25: "lower", 26: "lower", 27: "lower", 28: "lower",
}

# Table 2's rows as switches of the model (names as in the paper; "TRA-Net" is the full model).
VARIANTS: dict[str, dict[str, Any]] = {
    "SENet-50": {"head": "global"},
    "SENet-50 + CBAM": {"hard_masks": False},
    "SENet-50 + HM": {"cbam_channel": False, "cbam_spatial": False},
    "SENet-50 + HM + CBAM w/o AT": {"cbam_channel": False},
    "SENet-50 + HM + CBAM w/o ST": {"cbam_spatial": False},
    "TRA-Net with residual structure": {"cbam_residual": True},
    "TRA-Net": {},
}
_SWITCHES = ("head", "hard_masks", "cbam_channel", "cbam_spatial", "cbam_residual")


def group_aus(aus: Sequence[int], region_of: Mapping[int, str] | None = None) -> dict[str, list[int]]:
    """``{"upper": [...], "middle": [...], "lower": [...]}`` for ``aus`` (kept in their order; empty regions
    dropped). An AU without a region raises, listing the AUs the map knows."""
    region_of = AU_REGION if region_of is None else region_of
    missing = [a for a in aus if int(a) not in region_of]
    if missing:
        raise KeyError(f"no face region for AU(s) {missing}; the map knows AUs {sorted(region_of)} "
                       f"(pass region_of= or TRANetConfig.regions to add them)")
    bad = {a: r for a, r in region_of.items() if a in aus and r not in REGIONS}
    if bad:
        raise ValueError(f"unknown region(s) in the AU map {bad}; valid regions: {', '.join(REGIONS)}")
    out = {r: [int(a) for a in aus if region_of[int(a)] == r] for r in REGIONS}
    return {r: a for r, a in out.items() if a}


def face_centre_row(landmarks: np.ndarray, image_height: int) -> float:
    """The face-centre row as a fraction of the height: the mean over frames of the mid-point of nose root
    (27) and nose tip (30). ``landmarks`` (N, 68, 2) pixel (x, y) with pixel-centre coordinates."""
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.ndim != 3 or lm.shape[1:] != (68, 2):
        raise ValueError(f"landmarks must be (N, 68, 2), got {lm.shape}")
    y = 0.5 * (lm[:, 27, 1] + lm[:, 30, 1])  # (N,)
    return float(np.clip((y.mean() + 0.5) / image_height, 0.0, 1.0))


@dataclass
class TRANetConfig:
    """Model, ablation switches and §4.1's training settings. ``regions=None`` groups ``aus`` by AU_REGION."""

    aus: list[int] = field(default_factory=lambda: list(DISFA_AUS))
    regions: dict[str, list[int]] | None = None
    variant: str = "TRA-Net"  # a key of VARIANTS (label only; the switches below are what the model reads)
    # model
    backbone: str = "seresnet50"  # any ResNet-shaped registry name; "seresnet_tiny" for smoke / cpu
    backbone_kwargs: dict[str, Any] = field(default_factory=dict)
    weights: str | None = None  # local VGGFace2 SE-ResNet50 state dict (timm key names); never downloaded
    # blocks 1-2 frozen as in the paper, but only when ``weights`` are loaded: without weights every block trains
    # (frozen random blocks only remove capacity) and TRANet warns once that frozen_blocks was ignored
    frozen_blocks: int = 2
    image_size: int = 224
    in_chans: int = 3
    centre_row: float = 0.5  # face-centre row / height; 0.5 for the tranet template
    decoder_channels: tuple[int, int, int] = (512, 256, 256)
    fc_hidden: int = 256
    reduction: int = 16
    head: str = "branches"
    hard_masks: bool = True
    cbam_channel: bool = True
    cbam_spatial: bool = True
    cbam_residual: bool = False
    # training (§4.1)
    optimizer: str = "sgd"
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 1e-3
    batch_size: int = 64
    batches_per_epoch: int = 100
    max_epochs: int = 100
    patience: int = 10
    hflip: float = 0.5
    val_fraction: float = 0.2  # of the training subjects, watched for early stopping
    val_max_frames: int | None = None  # subsample the validation frames (speed)
    num_workers: int = 0  # DataLoader workers (GPU runs: image loading is the bottleneck)

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise KeyError(f"unknown TRA-Net variant {self.variant!r}; valid: {', '.join(VARIANTS)}")
        if self.regions is None:
            self.regions = group_aus(self.aus)
        self.decoder_channels = tuple(self.decoder_channels)

    def with_variant(self, name: str, **overrides: Any) -> TRANetConfig:
        """This config switched to Table 2's row ``name`` (the switches not named by the row are reset)."""
        if name not in VARIANTS:
            raise KeyError(f"unknown TRA-Net variant {name!r}; valid: {', '.join(VARIANTS)}")
        base = {f.name: f.default for f in dataclasses.fields(self) if f.name in _SWITCHES}
        return dataclasses.replace(self, variant=name, **{**base, **VARIANTS[name], **overrides})

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None = None, **overrides: Any) -> TRANetConfig:
        """Strict: an unknown key raises, listing the valid fields (:func:`aulib.config.from_dict`)."""
        return from_dict(cls, d, **overrides)


def build_model(cfg: TRANetConfig) -> TRANet:
    return TRANet(cfg.aus, cfg.regions, backbone=cfg.backbone, in_chans=cfg.in_chans, weights=cfg.weights,
                  frozen_blocks=cfg.frozen_blocks, centre_row=cfg.centre_row, decoder_channels=cfg.decoder_channels,
                  fc_hidden=cfg.fc_hidden, head=cfg.head, hard_masks=cfg.hard_masks, cbam_channel=cfg.cbam_channel,
                  cbam_spatial=cfg.cbam_spatial, cbam_residual=cfg.cbam_residual, reduction=cfg.reduction,
                  backbone_kwargs=cfg.backbone_kwargs)


class TRANetMethod(Method):
    """TRA-Net (or one of its ablations) with the summed per-branch BCE."""

    def __init__(self, cfg: TRANetConfig):
        super().__init__()
        self.cfg = cfg
        self.model = build_model(cfg)

    def forward(self, images: torch.Tensor) -> torch.Tensor:  # (B, C, S, S) -> (B, K) AU logits, dataset order
        return self.model(images)

    def training_step(self, batch: dict, step: int) -> dict[str, torch.Tensor]:
        x, y, v = batch["image"], batch["labels"], batch["valid"]  # (B, C, S, S), (B, K), (B, K)
        out = self.model.forward_branches(x)  # {region: (B, k_r)}
        terms = {}
        for r, logits in out.items():
            cols = self.model.columns(r)  # the region's AU columns in dataset order
            terms[f"bce_{r}"] = masked_bce(logits, y[:, cols], v[:, cols])  # mean BCE over the branch's known labels
        loss = torch.stack(list(terms.values())).sum()  # §4.1: the three branches' losses summed
        return {"loss": loss, **terms}

    def parameter_groups(self):
        return [p for p in self.model.parameters() if p.requires_grad]

    @torch.no_grad()
    def predict(self, loader, device: str | torch.device = "cpu") -> tuple[np.ndarray, np.ndarray]:
        """(probabilities (N, K), dataset rows (N,)) over ``loader`` (FrameDataset batches)."""
        was = self.training
        self.eval().to(device)
        probs, rows = [], []
        for b in loader:
            probs.append(torch.sigmoid(self.model(b["image"].to(device)).float()).cpu())
            rows.append(b["row"])
        self.train(was)
        return torch.cat(probs).numpy(), torch.cat(rows).numpy()
