"""Bishay et al., "Which CNNs and training settings to choose for Action Unit detection?": the algorithm.

A single CNN predicts all AUs of a 96x96 grey face aligned on 4 landmarks (Sec. II-B); the study varies

* the CNN (Table I): any backbone of :func:`aulib.models.create_backbone` (the baseline CNN, EmoNets,
  LightCNN-9/-29, timm's ImageNet networks, VGG-16 with a GAP head);
* the input normalisation (Table II left): ``NORMALISATIONS``, applied inside the model (:class:`InputNormalisation`);
* the augmentation severity (Table II middle): groups A-D (:func:`augmentation`);
* the data balancing (Table II right): ``BALANCING`` (the batch samplers and, for ``cost``, the per-batch
  weights of :func:`aulib.losses.masked_bce.cost_weights`, which the experiment's collate puts in the batch).

Training (Sec. II-C): batches of 4 positive + 4 negative images per AU (96 images for 12 AUs); BCE; "the total
loss is the average of the BCE losses calculated over each AU images" (:meth:`CNNStudy.training_step`: the
shared ``masked_bce(..., reduction="per_au")`` with the balanced sampler's ``au_group`` folded into the valid
mask). Adagrad lr 0.005 for the baseline (from scratch), Adam lr 1e-4 for the pretrained backbones (Sec. III).

The paper's tables, the data subsets of Fig. 2, the loaders and the driver live in
:mod:`aulib.experiments.cnn_study`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from aulib.config import from_dict
from aulib.data.batch_augment import flip_faces
from aulib.losses.masked_bce import masked_bce
from aulib.methods.base import Method
from aulib.models import create_backbone

NORMALISATIONS = ("raw", "samplewise_centering", "featurewise_centering", "samplewise_normalization",
                  "featurewise_normalization")
AUGMENTATIONS = ("A", "B", "C", "D", "baseline")
BALANCING = ("random", "undersampling", "oversampling", "cost")


# --------------------------------------------------------------------------------------------- config
@dataclass
class CNNStudyConfig:
    """One cell of the study. A notebook's / profile's dict maps onto it with :meth:`from_dict`."""

    backbone: str = "baseline_cnn"
    in_chans: int = 1  # 3 for ImageNet/face-pretrained backbones: the grey face is repeated
    image_size: int = 96  # the aligned face side (Sec. II-B)
    weights: str | None = None  # local pretrained weights (nothing is downloaded)
    normalisation: str = "raw"
    augmentation: str = "baseline"  # Sec. II-C: "random flipping, shifting, zooming"
    balancing: str = "oversampling"
    pos_per_au: int = 4  # Sec. II-C: 4 positive + 4 negative images per AU per batch
    neg_per_au: int = 4
    batch_size: int | None = None  # random / cost batches; None -> (pos + neg) x K, the oversampling size
    # augmentation magnitudes: the paper names the augmenters but not their ranges (Keras-style values)
    brightness: float = 0.3
    contrast: float = 0.3
    blur_sigma: tuple[float, float] = (0.1, 1.2)
    blur_p: float = 0.5
    zoom: tuple[float, float] = (0.9, 1.1)
    shift: float = 0.1
    rotation: float = 10.0
    # training (Sec. II-C / III)
    optimizer: str | None = None  # None -> adagrad for from-scratch models, adam for pretrained ones
    lr: float | None = None  # None -> 0.005 (adagrad) / 1e-4 (adam)
    epochs: int = 600
    steps_per_epoch: int = 300
    seed: int = 0

    def __post_init__(self) -> None:
        for name, value, valid in (("normalisation", self.normalisation, NORMALISATIONS),
                                   ("augmentation", self.augmentation, AUGMENTATIONS),
                                   ("balancing", self.balancing, BALANCING)):
            if value not in valid:
                raise ValueError(f"CNNStudyConfig.{name}={value!r}; choose one of {', '.join(valid)}")
        self.blur_sigma, self.zoom = tuple(self.blur_sigma), tuple(self.zoom)

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None = None, **overrides: Any) -> CNNStudyConfig:
        """The one strict ``aulib.config.from_dict``: an unknown key raises, naming the valid fields."""
        return from_dict(cls, d, **overrides)

    def train_settings(self) -> tuple[str, float]:
        """(optimizer, lr) as the paper trains: Adagrad 0.005 for networks trained from scratch (the baseline,
        EmoNets, and any backbone given no ``weights``), Adam 1e-4 to finetune pretrained weights (Sec. III)."""
        opt = self.optimizer or ("adagrad" if self.weights is None else "adam")
        lr = self.lr if self.lr is not None else (0.005 if opt == "adagrad" else 1e-4)
        return opt, lr


# --------------------------------------------------------------------------------------------- preprocessing
class InputNormalisation(nn.Module):
    """The five inputs of Table II (Sec. IV-A), with Keras ``ImageDataGenerator`` semantics.

    samplewise: statistics of each image over all its pixels; featurewise: one mean / std per channel over
    every pixel of the *training* set (call :meth:`fit` with training images only). ``eps`` guards flat images.
    """

    def __init__(self, kind: str = "raw", channels: int = 1, eps: float = 1e-6):
        super().__init__()
        if kind not in NORMALISATIONS:
            raise ValueError(f"unknown normalisation {kind!r}; choose one of {', '.join(NORMALISATIONS)}")
        self.kind, self.eps = kind, eps
        self.register_buffer("mean", torch.zeros(1, channels, 1, 1))
        self.register_buffer("std", torch.ones(1, channels, 1, 1))
        self.register_buffer("fitted", torch.tensor(False))

    @torch.no_grad()
    def fit(self, images: torch.Tensor | Sequence[torch.Tensor]) -> InputNormalisation:
        """Fit the featurewise statistics on training images ``(N, C, H, W)`` (or an iterable of such batches)."""
        batches = [images] if torch.is_tensor(images) else list(images)
        n, s, s2 = 0, 0.0, 0.0
        for b in batches:
            b = b.double()
            n += b.shape[0] * b.shape[2] * b.shape[3]
            s = s + b.sum(dim=(0, 2, 3))
            s2 = s2 + (b * b).sum(dim=(0, 2, 3))
        mean = s / n
        std = (s2 / n - mean**2).clamp_min(0).sqrt()  # population std, as numpy's / Keras'
        self.mean.copy_(mean.view(1, -1, 1, 1).float())
        self.std.copy_(std.view(1, -1, 1, 1).float())
        self.fitted.fill_(True)
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, C, H, W)
        k = self.kind
        if k == "raw":
            return x
        if k.startswith("featurewise") and not bool(self.fitted):
            raise RuntimeError(f"{k} needs statistics of the training set: call InputNormalisation.fit(train_images)")
        if k == "samplewise_centering":
            return x - x.mean(dim=(1, 2, 3), keepdim=True)
        if k == "samplewise_normalization":
            x = x - x.mean(dim=(1, 2, 3), keepdim=True)
            return x / (x.std(dim=(1, 2, 3), keepdim=True, unbiased=False) + self.eps)
        if k == "featurewise_centering":
            return x - self.mean
        return (x - self.mean) / (self.std + self.eps)  # featurewise_normalization


class BatchAugmentation(nn.Module):
    """Augmentation group of Sec. IV-B on a whole batch, every image with its own random parameters (Kornia;
    torchvision v2 on a batched tensor would give the whole batch one set). A batch dict with ``image``
    (B, 1, S, S) in [0, 1] and ``landmarks`` (B, 68, 2) -> the same dict, landmarks following every geometric
    change; labels untouched.

    A: none. B: horizontal flip + random brightness and contrast. C: B + random blur + zoom.
    D: C + horizontal / vertical shift + rotation. "baseline": flip, shift, zoom (Sec. II-C).
    Flipping keeps the labels: all twelve AUs are bilateral, so a mirrored face shows the same AUs.
    Order: flip, brightness / contrast, blur, affine (zero fill), clamp to [0, 1].
    """

    def __init__(self, group: str, cfg: CNNStudyConfig | None = None):
        super().__init__()
        import kornia.augmentation as K

        cfg = cfg or CNNStudyConfig()
        if group not in AUGMENTATIONS:
            raise ValueError(f"unknown augmentation group {group!r}; choose one of {', '.join(AUGMENTATIONS)}")
        self.group = group
        self.flip_p = 0.0 if group == "A" else 0.5
        photometric: list[nn.Module] = []
        if group in ("B", "C", "D"):
            photometric.append(K.ColorJitter(brightness=cfg.brightness, contrast=cfg.contrast, p=1.0))
        if group in ("C", "D"):
            photometric.append(K.RandomGaussianBlur((5, 5), cfg.blur_sigma, p=cfg.blur_p))
        affine: dict[str, Any] = {
            "A": {}, "B": {}, "C": {"scale": cfg.zoom},
            "D": {"degrees": cfg.rotation, "translate": (cfg.shift, cfg.shift), "scale": cfg.zoom},
            "baseline": {"translate": (cfg.shift, cfg.shift), "scale": cfg.zoom}}[group]
        self.affine_args = {"degrees": 0.0, **affine} if affine else None  # kornia RandomAffine's arguments
        self.photometric = K.AugmentationSequential(*photometric) if photometric else None
        self.affine = (K.AugmentationSequential(K.RandomAffine(**self.affine_args, p=1.0),
                                                data_keys=["input", "keypoints"]) if affine else None)

    @torch.no_grad()
    def forward(self, batch: dict) -> dict:
        x, lm = batch["image"], batch["landmarks"].to(batch["image"].dtype)  # (B, 1, S, S), (B, 68, 2)
        if self.flip_p > 0:
            x, lm = flip_faces(x, lm, torch.rand(x.shape[0], device=x.device) < self.flip_p)
        if self.photometric is not None:
            x = self.photometric(x)
        if self.affine is not None:
            x, lm = self.affine(x, lm)
        out = dict(batch)
        out["image"], out["landmarks"] = x.clamp(0, 1), lm
        return out


def augmentation(group: str, cfg: CNNStudyConfig | None = None) -> BatchAugmentation:
    """The :class:`BatchAugmentation` of ``group`` with the magnitudes of ``cfg``."""
    return BatchAugmentation(group, cfg)


# --------------------------------------------------------------------------------------------- loss
def own_au_mask(valid: torch.Tensor, au_group: torch.Tensor | None) -> torch.Tensor:
    """(B, K) bool: ``valid`` restricted, for each image, to the AU a balanced sampler drew it for.

    ``au_group`` (B,) names that AU per batch position (-1 = the image counts for every valid AU, e.g. random
    batches); ``None`` leaves ``valid`` as it is."""
    valid = valid.bool()
    if au_group is None:
        return valid
    own = F.one_hot(au_group.clamp_min(0), valid.shape[1]).bool()  # (B, K)
    own = own | (au_group < 0)[:, None]
    return valid & own


# --------------------------------------------------------------------------------------------- method
class CNNStudy(Method):
    """The study's AU detector: normalisation -> CNN -> K logits, trained with the per-AU BCE of Sec. II-C."""

    def __init__(self, cfg: CNNStudyConfig, num_aus: int = 12):
        super().__init__()
        self.cfg = cfg
        self.num_aus = num_aus
        kw: dict[str, Any] = {}
        if cfg.backbone in ("baseline_cnn", "emonets", "lightcnn9", "lightcnn29"):
            kw["image_size"] = cfg.image_size
        self.normalise = InputNormalisation(cfg.normalisation, channels=1)
        self.model = create_backbone(cfg.backbone, in_chans=cfg.in_chans, num_classes=num_aus,
                                     weights=cfg.weights, **kw)

    def forward(self, images: torch.Tensor) -> torch.Tensor:  # (B, 1, S, S) in [0, 1] -> (B, K) logits
        x = self.normalise(images)  # Sec. IV-A
        if self.cfg.in_chans == 3 and x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)  # a grey face for RGB-pretrained weights
        return self.model(x)

    def training_step(self, batch: dict, step: int) -> dict[str, torch.Tensor]:
        logits = self(batch["image"])  # (B, K)
        valid = own_au_mask(batch["valid"], batch.get("au_group"))  # (B, K): each image in its own AU's loss
        # Sec. II-C: BCE averaged over each AU's images, then over the AUs; ``weight`` (B, K): cost manipulation
        loss = masked_bce(logits, batch["labels"], valid, weight=batch.get("weight"), reduction="per_au")
        return {"loss": loss}

    @torch.no_grad()
    def predict(self, loader, device: torch.device | str | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(probabilities (N, K), labels (N, K), valid (N, K)) over a loader of FrameDataset batches."""
        was = self.training
        self.eval()
        dev = torch.device(device) if device is not None else next(self.parameters()).device
        ps, ys, vs = [], [], []
        for b in loader:
            ps.append(torch.sigmoid(self(b["image"].to(dev)).float()).cpu())
            ys.append(b["labels"])
            vs.append(b["valid"])
        self.train(was)
        return torch.cat(ps).numpy(), torch.cat(ys).numpy(), torch.cat(vs).numpy().astype(bool)
