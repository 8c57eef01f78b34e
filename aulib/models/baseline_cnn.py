"""The CNN study's baseline network and the Keras-style VGG-16 of its Table I.

Baseline (Bishay et al., Sec. II-B): a 96x96 grey face -> 4 conv layers (32, 32, 64, 64 filters, 3x3) each
followed by ReLU and 2x2 max-pooling -> FC 256 -> 12 sigmoid units. Table I's 659K parameters and 81.6M FLOPs
are only reached with 'same' padding (96 -> 48 -> 24 -> 12 -> 6, so FC 256 sees 6*6*64 = 2304 inputs):
with 'valid' padding the network would have ~330K parameters.

VGG-16 / FaceVGG (Table I): 14,721K parameters is exactly VGG-16's 13 conv layers (14,714,688, Keras
``include_top=False``) plus a 512 -> 12 dense layer on globally average-pooled features; VGG-16 with its
4096-wide FC layers would have 134M. So the study replaced *all* FC layers, and ``vgg16_gap`` does the same
(timm's VGG-16 conv trunk, so timm / torchvision-layout weights load into ``features.*``). ``facevgg`` is the
same network; it only differs by the weights the user gives (VGG-Face, converted to this key layout).
"""

from __future__ import annotations

import torch
from torch import nn

from aulib.models.registry import register_backbone


class BaselineCNN(nn.Module):
    """Bishay et al. baseline: ``(B, in_chans, S, S) -> (B, num_classes)`` logits, or ``(B, 256)`` features."""

    head_prefix = "fc"

    def __init__(self, in_chans: int = 1, num_classes: int = 12, image_size: int = 96,
                 widths: tuple[int, ...] = (32, 32, 64, 64), hidden: int = 256):
        super().__init__()
        if image_size % (2 ** len(widths)) != 0:
            raise ValueError(f"image_size {image_size} must be divisible by {2 ** len(widths)} "
                             f"({len(widths)} 2x2 poolings)")
        layers: list[nn.Module] = []
        c = in_chans
        for w in widths:
            layers += [nn.Conv2d(c, w, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            c = w
        self.features = nn.Sequential(*layers)
        side = image_size // 2 ** len(widths)  # 96 -> 6
        self.hidden = nn.Sequential(nn.Flatten(), nn.Linear(c * side * side, hidden), nn.ReLU(inplace=True))
        self.num_features = hidden
        self.num_classes = num_classes
        self.fc = nn.Linear(hidden, num_classes) if num_classes > 0 else nn.Identity()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)  # (B, 64, S/16, S/16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.hidden(self.features(x))  # (B, 256)
        return self.fc(h)  # (B, K) logits; the paper's sigmoid lives in the loss (BCE with logits)


@register_backbone("baseline_cnn", description="CNN study baseline: 4 conv 32-32-64-64 + FC 256, 96x96 grey")
def baseline_cnn(in_chans: int = 1, num_classes: int = 0, image_size: int = 96, **kwargs) -> nn.Module:
    return BaselineCNN(in_chans=in_chans, num_classes=num_classes, image_size=image_size, **kwargs)


class VGG16GAP(nn.Module):
    """VGG-16 conv trunk -> global average pool -> linear (Keras ``VGG16(include_top=False, pooling='avg')``)."""

    # a full timm/torchvision VGG-16 checkpoint carries FC layers this model dropped: skip them when loading
    head_prefix = ("fc", "pre_logits", "head", "classifier")

    def __init__(self, in_chans: int = 3, num_classes: int = 12, width_div: int = 1):
        super().__init__()
        cfg = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]
        layers: list[nn.Module] = []
        c = in_chans
        for v in cfg:  # same indices as timm's / torchvision's vgg16.features, so their weights load
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                w = int(v) // width_div
                layers += [nn.Conv2d(c, w, 3, padding=1), nn.ReLU(inplace=True)]
                c = w
        self.features = nn.Sequential(*layers)
        self.num_features = c
        self.num_classes = num_classes
        self.fc = nn.Linear(c, num_classes) if num_classes > 0 else nn.Identity()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)  # (B, 512, S/32, S/32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x).mean(dim=(2, 3)))  # (B, K)


@register_backbone("vgg16_gap", description="VGG-16 conv layers + global average pool + linear (Table I VGG-16)")
def vgg16_gap(in_chans: int = 3, num_classes: int = 0, **kwargs) -> nn.Module:
    return VGG16GAP(in_chans=in_chans, num_classes=num_classes, **kwargs)


@register_backbone("facevgg", description="VGG-16 topology for VGG-Face weights (give weights=<local path>)")
def facevgg(in_chans: int = 3, num_classes: int = 0, **kwargs) -> nn.Module:
    return VGG16GAP(in_chans=in_chans, num_classes=num_classes, **kwargs)


@register_backbone("vgg16_gap_tiny", description="vgg16_gap with widths / 16, for tests and the smoke profile")
def vgg16_gap_tiny(in_chans: int = 3, num_classes: int = 0, **kwargs) -> nn.Module:
    return VGG16GAP(in_chans=in_chans, num_classes=num_classes, width_div=16)
