"""EmoNets' face ConvNet (Kahou et al., "EmoNets: multimodal deep learning approaches for emotion recognition
in video", JMUI 2016), as the CNN study's Table I uses it (trained from scratch, 96x96 grey input).

Layer list (Kahou et al., face ConvNet): three convolution stages of 5x5 filters with 64, 64 and 128 maps,
ReLU, each followed by 3x3 pooling with stride 2 (max after the first stage, average after the other two),
then a dense output layer. Kahou et al. feed 48x48 faces to a 7-way softmax; the study feeds 96x96 faces to
12 sigmoid units, so the dense layer sees 12*12*128 inputs ('same' padding throughout).

This reconstruction lands on Table I's FLOPs (737M counted by torch vs 739.4M reported) but has 530K
parameters against Table I's 567K (-6.5%): the 37K difference cannot be placed from the published layer
list (the CNN study gives no layer list of its own). tests/test_cnn_study.py records this exception.
"""

from __future__ import annotations

import torch
from torch import nn

from aulib.models.registry import register_backbone


class EmoNetsCNN(nn.Module):
    """``(B, in_chans, S, S) -> (B, num_classes)`` logits, or the flattened last stage ``(B, 128*(S/8)^2)``."""

    head_prefix = "fc"

    def __init__(self, in_chans: int = 1, num_classes: int = 12, image_size: int = 96,
                 widths: tuple[int, int, int] = (64, 64, 128)):
        super().__init__()
        if image_size % 8 != 0:
            raise ValueError(f"image_size {image_size} must be divisible by 8 (three stride-2 poolings)")
        w1, w2, w3 = widths
        self.features = nn.Sequential(
            nn.Conv2d(in_chans, w1, 5, padding=2), nn.ReLU(inplace=True),
            nn.MaxPool2d(3, stride=2, padding=1),                        # (B, 64, S/2, S/2)
            nn.Conv2d(w1, w2, 5, padding=2), nn.ReLU(inplace=True),
            nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False),  # (B, 64, S/4, S/4)
            nn.Conv2d(w2, w3, 5, padding=2), nn.ReLU(inplace=True),
            nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False),  # (B, 128, S/8, S/8)
        )
        side = image_size // 8
        self.num_features = w3 * side * side
        self.num_classes = num_classes
        self.fc = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x).flatten(1))  # (B, K)


@register_backbone("emonets", description="EmoNets face ConvNet (Kahou et al.): 5x5 conv 64-64-128 + dense")
def emonets(in_chans: int = 1, num_classes: int = 0, image_size: int = 96, **kwargs) -> nn.Module:
    return EmoNetsCNN(in_chans=in_chans, num_classes=num_classes, image_size=image_size, **kwargs)
