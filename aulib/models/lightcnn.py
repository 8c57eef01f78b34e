"""Light CNN (Wu, He, Sun, Tan, "A light CNN for deep face representation with noisy labels", TIFS 2018):
LightCNN-9 and LightCNN-29, built from the paper's layer tables, with Max-Feature-Map (MFM) activations.

MFM (Wu et al. Eq.1-2): a layer computes 2n maps and keeps the element-wise max of the two halves, so it
outputs n maps -- a competitive activation that also halves the width. Every conv / FC below is an MFM unit.

LightCNN-9 (Table 1 of Wu et al.): conv1 5x5/96 -> pool; conv2a 1x1/96, conv2 3x3/192 -> pool;
conv3a 1x1/192, conv3 3x3/384 -> pool; conv4a 1x1/384, conv4 3x3/256; conv5a 1x1/256, conv5 3x3/256 -> pool;
fc1 MFM 512 -> 256. LightCNN-29 adds residual blocks (two 3x3 MFM convs + identity) before each group:
1, 2, 3 and 4 blocks. Wu et al. use 128x128 faces (fc1 sees 8*8*128); the CNN study feeds 96x96 faces, so
fc1 sees 6*6*128, and that is how Table I's counts come out exactly (3,649K and 10,741K parameters).
"""

from __future__ import annotations

import torch
from torch import nn

from aulib.models.registry import register_backbone


class MFM(nn.Module):
    """Max-Feature-Map: a conv (or linear) with 2*out outputs, max over the two halves (Wu et al. Eq.2)."""

    def __init__(self, cin: int, cout: int, kernel_size: int = 3, stride: int = 1, padding: int = 1,
                 linear: bool = False):
        super().__init__()
        self.out_channels = cout
        self.filter = (nn.Linear(cin, 2 * cout) if linear
                       else nn.Conv2d(cin, 2 * cout, kernel_size, stride=stride, padding=padding))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.filter(x).chunk(2, dim=1)  # two (B, out, ...) halves
        return torch.maximum(a, b)  # Eq.2


class Group(nn.Module):
    """1x1 MFM conv (cin -> cin) then 3x3 MFM conv (cin -> cout): the 'a' layer and the main layer."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv_a = MFM(cin, cin, 1, padding=0)
        self.conv = MFM(cin, cout, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.conv_a(x))


class ResBlock(nn.Module):
    """LightCNN-29 residual block: two 3x3 MFM convs and an identity shortcut."""

    def __init__(self, c: int):
        super().__init__()
        self.conv1 = MFM(c, c, 3, padding=1)
        self.conv2 = MFM(c, c, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.conv1(x))


def _pool() -> nn.Module:
    return nn.MaxPool2d(2, stride=2, ceil_mode=True)


class LightCNN(nn.Module):
    """``(B, in_chans, S, S) -> (B, num_classes)`` logits, or the 256-d MFM fc1 features."""

    head_prefix = "fc2"

    def __init__(self, blocks: tuple[int, int, int, int] | None, in_chans: int = 1, num_classes: int = 12,
                 image_size: int = 96, widths: tuple[int, ...] = (48, 96, 192, 128, 128), fc: int = 256,
                 dropout: float = 0.0):
        super().__init__()
        w0, w1, w2, w3, w4 = widths
        nb = blocks or (0, 0, 0, 0)
        res = lambda c, n: [ResBlock(c) for _ in range(n)]  # noqa: E731
        self.features = nn.Sequential(
            MFM(in_chans, w0, 5, padding=2), _pool(),                    # (B, 48, S/2, S/2)
            *res(w0, nb[0]), Group(w0, w1), _pool(),                     # (B, 96, S/4, S/4)
            *res(w1, nb[1]), Group(w1, w2), _pool(),                     # (B, 192, S/8, S/8)
            *res(w2, nb[2]), Group(w2, w3),                              # (B, 128, S/8, S/8)
            *res(w3, nb[3]), Group(w3, w4), _pool(),                     # (B, 128, S/16, S/16)
        )
        side = -(-image_size // 16)  # ceil-mode pooling
        self.fc1 = MFM(w4 * side * side, fc, linear=True)
        self.drop = nn.Dropout(dropout)
        self.num_features = fc
        self.num_classes = num_classes
        self.fc2 = nn.Linear(fc, num_classes) if num_classes > 0 else nn.Identity()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc1(self.features(x).flatten(1))  # (B, 256)
        return self.fc2(self.drop(h))  # (B, K)


@register_backbone("lightcnn9", aliases=("lightcnn-9",), description="LightCNN-9 (Wu et al. 2018), MFM, 96x96 grey")
def lightcnn9(in_chans: int = 1, num_classes: int = 0, image_size: int = 96, **kwargs) -> nn.Module:
    return LightCNN(None, in_chans=in_chans, num_classes=num_classes, image_size=image_size, **kwargs)


@register_backbone("lightcnn29", aliases=("lightcnn-29",), description="LightCNN-29 (Wu et al. 2018), MFM + residual")
def lightcnn29(in_chans: int = 1, num_classes: int = 0, image_size: int = 96, **kwargs) -> nn.Module:
    return LightCNN((1, 2, 3, 4), in_chans=in_chans, num_classes=num_classes, image_size=image_size, **kwargs)
