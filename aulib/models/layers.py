"""Small composable attention layers: Squeeze-and-Excitation and CBAM.

``SEBlock``            channel gate from average-pooled descriptors (Hu et al., TRA-Net Eq.1-3).
``ChannelAttention``   CBAM's channel gate: a shared MLP over average- *and* max-pooled descriptors.
``SpatialAttention``   CBAM's spatial gate: a 7x7 conv over the channel-wise mean and max maps.
``CBAM``               channel gate then spatial gate; each can be switched off, and the residual (x + CBAM(x))
                       is a switch too, because TRA-Net's point is to drop it.

Every block keeps the input shape ``(B, C, H, W)``.
"""

from __future__ import annotations

import torch
from torch import nn


def _hidden(channels: int, reduction: int) -> int:
    return max(1, channels // reduction)


class SEBlock(nn.Module):
    """Squeeze-and-Excitation. ``residual=True`` gives TRA-Net's Eq.3 form ``O = S_e * U + U``."""

    def __init__(self, channels: int, reduction: int = 16, residual: bool = False):
        super().__init__()
        self.residual = residual
        self.fc1 = nn.Conv2d(channels, _hidden(channels, reduction), 1)  # W1 in Eq.2
        self.fc2 = nn.Conv2d(_hidden(channels, reduction), channels, 1)  # W2 in Eq.2

    def gate(self, u: torch.Tensor) -> torch.Tensor:
        z = u.mean(dim=(2, 3), keepdim=True)  # (B, C, 1, 1)  Eq.1 squeeze
        return torch.sigmoid(self.fc2(torch.relu(self.fc1(z))))  # (B, C, 1, 1)  Eq.2 excitation

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        o = self.gate(u) * u  # S_e (x) U, the gate broadcast over H, W
        return o + u if self.residual else o  # Eq.3


class ChannelAttention(nn.Module):
    """CBAM channel gate: ``sigmoid(MLP(avgpool(x)) + MLP(maxpool(x)))`` with one MLP shared by both."""

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        self.mlp = nn.Sequential(nn.Conv2d(channels, _hidden(channels, reduction), 1, bias=False), nn.ReLU(),
                                 nn.Conv2d(_hidden(channels, reduction), channels, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        avg = self.mlp(x.mean(dim=(2, 3), keepdim=True))  # (B, C, 1, 1)
        mx = self.mlp(x.amax(dim=(2, 3), keepdim=True))  # (B, C, 1, 1)
        return torch.sigmoid(avg + mx)  # (B, C, 1, 1)


class SpatialAttention(nn.Module):
    """CBAM spatial gate: ``sigmoid(conv([mean_c(x), max_c(x)]))``, one map shared by all channels."""

    def __init__(self, kernel_size: int = 7):
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"SpatialAttention kernel_size must be odd to keep H, W; got {kernel_size}")
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        desc = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)  # (B, 2, H, W)
        return torch.sigmoid(self.conv(desc))  # (B, 1, H, W)


class CBAM(nn.Module):
    """Convolutional Block Attention Module (Woo et al. 2018) with switches.

    ``out = Ms(x') * x'`` with ``x' = Mc(x) * x``; a switched-off gate is the identity. With ``residual=True``
    the block returns ``x + out`` (the form TRA-Net's Table 2 compares against). The last spatial map is kept
    in ``last_spatial_map`` (detached, ``(B, 1, H, W)``) so notebooks can draw it.
    """

    def __init__(self, channels: int, reduction: int = 16, kernel_size: int = 7, channel: bool = True,
                 spatial: bool = True, residual: bool = False):
        super().__init__()
        self.channel_gate = ChannelAttention(channels, reduction) if channel else None
        self.spatial_gate = SpatialAttention(kernel_size) if spatial else None
        self.residual = residual
        self.last_spatial_map: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        if self.channel_gate is not None:
            out = self.channel_gate(out) * out  # (B, C, H, W)
        if self.spatial_gate is not None:
            ms = self.spatial_gate(out)  # (B, 1, H, W)
            self.last_spatial_map = ms.detach()
            out = ms * out
        return x + out if self.residual else out

    def extra_repr(self) -> str:
        return (f"channel={self.channel_gate is not None}, spatial={self.spatial_gate is not None}, "
                f"residual={self.residual}")
