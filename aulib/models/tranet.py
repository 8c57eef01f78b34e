"""TRA-Net: three-region attention network (Xia, "Upper, Middle and Lower Region Learning for Facial Action
Unit Detection"; ``/work/shared/papers/tranet.md``).

    image (B, C, S, S)
      -> SE-ResNet blocks 1-5 (1-2 frozen)                       global features, strides 2 .. 32
      -> decoder back through blocks 5, 4, 3: one conv + SE each, skip connections     (Eq.1-3)
      -> decoded map F (B, D, S/8, S/8)
      -> three hard masks split F at the face-centre row y: upper / middle / lower      (Eq.4)
      -> one branch per region: [CBAM -> 2 convs -> max-pool] x2, CBAM -> 2 convs -> avg-pool, 2 FC
      -> each branch predicts only the AUs of its region; the model scatters them back into dataset order.

Table 2's ablations are switches of :class:`TRANet`: ``head="global"`` (the backbone alone),
``hard_masks=False`` (+CBAM), ``cbam_channel=cbam_spatial=False`` (+HM), ``cbam_channel=False`` (CBAM w/o AT),
``cbam_spatial=False`` (CBAM w/o ST) and ``cbam_residual=True`` (with residual structure).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from aulib.models.layers import CBAM, SEBlock
from aulib.models.registry import create_backbone

REGIONS: tuple[str, ...] = ("upper", "middle", "lower")

# The five ResNet stages the paper calls blocks 1-5 (block 1 = stem, block 2 = layer1 behind the max-pool).
_STAGES: tuple[tuple[str, ...], ...] = (("conv1", "bn1", "act1"), ("maxpool", "layer1"), ("layer2",),
                                        ("layer3",), ("layer4",))


def region_masks(height: int, width: int, centre_row: float, device=None) -> torch.Tensor:
    """Eq.4's three binary masks ``(3, H, W)`` (upper, middle, lower) for an ``H x W`` feature map.

    ``centre_row`` is the face-centre row as a fraction of the image height (0 = top, 1 = bottom). On the
    map it falls on row boundary ``y = floor(centre_row * H + 0.5)``: upper = rows ``[0, y)``,
    lower = rows ``[y, H)``, middle = rows ``[y - h, y + h)`` with ``h = floor(H / 4 + 0.5)``, clipped.
    """
    if not 0.0 <= centre_row <= 1.0:
        raise ValueError(f"centre_row is a fraction of the height in [0, 1], got {centre_row}")
    y = math.floor(centre_row * height + 0.5)
    h = math.floor(height / 4 + 0.5)
    rows = torch.arange(height, device=device)
    bands = [rows < y, (rows >= y - h) & (rows < y + h), rows >= y]  # upper, middle, lower
    return torch.stack([b.float()[:, None].expand(height, width) for b in bands])  # (3, H, W)


def conv_bn_relu(cin: int, cout: int, k: int = 3) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, padding=k // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class ConvPair(nn.Module):
    """Two 3x3 convolutions; ``residual=True`` adds the input back (the paper's "two convolution layers with
    residual connection" behind the first two CBAM blocks)."""

    def __init__(self, channels: int, residual: bool):
        super().__init__()
        self.residual = residual
        self.body = nn.Sequential(conv_bn_relu(channels, channels),
                                  nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return torch.relu(x + y if self.residual else y)


class DecoderBlock(nn.Module):
    """Up-sample, concatenate the encoder's skip, one conv, SE with its residual (Eq.1-3)."""

    def __init__(self, cin: int, cskip: int, cout: int, se_reduction: int):
        super().__init__()
        self.conv = conv_bn_relu(cin + cskip, cout)
        self.se = SEBlock(cout, se_reduction, residual=True)  # Eq.3: O = S_e * U + U

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None) -> torch.Tensor:
        if skip is not None:
            x = nn.functional.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = torch.cat([x, skip], dim=1)  # (B, cin + cskip, h, w)
        return self.se(self.conv(x))


class RegionBranch(nn.Module):
    """One region's branch: 3 CBAM blocks, conv pairs and pools between them, two FC layers -> ``n_out``."""

    def __init__(self, channels: int, n_out: int, hidden: int, *, cbam_channel: bool, cbam_spatial: bool,
                 cbam_residual: bool, reduction: int):
        super().__init__()
        self.cbams = nn.ModuleList(
            CBAM(channels, reduction, channel=cbam_channel, spatial=cbam_spatial, residual=cbam_residual)
            for _ in range(3))
        self.convs = nn.ModuleList([ConvPair(channels, residual=True), ConvPair(channels, residual=True),
                                    ConvPair(channels, residual=False)])
        self.pools = nn.ModuleList([nn.MaxPool2d(2, ceil_mode=True), nn.MaxPool2d(2, ceil_mode=True),
                                    nn.AdaptiveAvgPool2d(1)])
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(channels, hidden), nn.ReLU(inplace=True),
                                nn.Linear(hidden, n_out))

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        for cbam, conv, pool in zip(self.cbams, self.convs, self.pools):
            r = pool(conv(cbam(r)))  # (B, D, h/2, w/2) .. (B, D, 1, 1)
        return self.fc(r)  # (B, n_out)

    def spatial_maps(self) -> list[torch.Tensor | None]:
        return [c.last_spatial_map for c in self.cbams]


class TRANet(nn.Module):
    """TRA-Net over a ResNet-style backbone from :func:`aulib.models.create_backbone`.

    aus: the dataset's AU order (the output columns). regions: ``{"upper": [1, 2, 4], ...}``, every AU in
    exactly one region (see :func:`aulib.methods.tranet.group_aus`). centre_row: face-centre row as a fraction
    of the image height. ``head="branches"`` is TRA-Net; ``head="global"`` is Table 2's backbone-only
    baseline (pooled block-5 features -> 2 FC). ``forward(x)`` returns logits ``(B, len(aus))``.
    frozen_blocks: how many of blocks 1-5 keep their weights and BatchNorm statistics, as the paper froze its
    VGGFace2 blocks 1-2. Only applied when ``weights`` are loaded: freezing random blocks only removes capacity,
    so without weights every block trains (and a one-line warning says so).
    """

    def __init__(self, aus: Sequence[int], regions: Mapping[str, Sequence[int]], *, backbone: str = "seresnet50",
                 in_chans: int = 3, weights: str | None = None, frozen_blocks: int = 2, centre_row: float = 0.5,
                 decoder_channels: Sequence[int] = (512, 256, 256), fc_hidden: int = 256, head: str = "branches",
                 hard_masks: bool = True, cbam_channel: bool = True, cbam_spatial: bool = True,
                 cbam_residual: bool = False, reduction: int = 16, backbone_kwargs: Mapping | None = None):
        super().__init__()
        if head not in ("branches", "global"):
            raise ValueError(f"head must be 'branches' or 'global', got {head!r}")
        self.aus = [int(a) for a in aus]
        self.regions = {r: [int(a) for a in regions[r]] for r in REGIONS if r in regions and len(regions[r])}
        unknown = set(regions) - set(REGIONS)
        if unknown:
            raise ValueError(f"unknown region(s) {sorted(unknown)}; valid regions: {', '.join(REGIONS)}")
        grouped = sorted(a for r in self.regions.values() for a in r)
        if grouped != sorted(self.aus):
            raise ValueError(f"regions must cover each AU of {self.aus} exactly once; they hold {grouped}")
        if len(decoder_channels) != 3:
            raise ValueError(f"decoder_channels needs 3 widths (blocks 5, 4, 3), got {tuple(decoder_channels)}")
        self.head, self.hard_masks, self.centre_row = head, hard_masks, float(centre_row)
        if frozen_blocks and weights is None:
            warnings.warn(f"TRANet: frozen_blocks={frozen_blocks} ignored: no backbone weights were loaded, so "
                          "every block trains (freezing is for pretrained blocks)", stacklevel=2)
            frozen_blocks = 0
        self.frozen_blocks = int(frozen_blocks)

        net = create_backbone(backbone, in_chans=in_chans, num_classes=0, weights=weights, **(backbone_kwargs or {}))
        missing = [m for stage in _STAGES for m in stage if not hasattr(net, m)]
        if missing:
            raise TypeError(f"backbone {backbone!r} is not ResNet-shaped (no {', '.join(missing)}); "
                            "TRA-Net needs an SE-ResNet such as 'seresnet50' or 'seresnet_tiny'")
        self.blocks = nn.ModuleList(nn.Sequential(*[getattr(net, m) for m in stage]) for stage in _STAGES)
        # feature widths from one forward pass in eval mode (train mode would move the BatchNorm statistics
        # of loaded weights towards those of a zero image); each module's mode is restored afterwards
        modes = [(m, m.training) for m in self.blocks.modules()]
        self.blocks.eval()
        with torch.no_grad():
            widths = [f.shape[1] for f in self._encode(torch.zeros(1, in_chans, 64, 64))]
        for m, mode in modes:
            m.training = mode
        for block in self.blocks[: self.frozen_blocks]:  # blocks 1-2 frozen as in the paper
            block.requires_grad_(False)

        if head == "global":
            self.global_fc = nn.Sequential(nn.Linear(widths[4], fc_hidden), nn.ReLU(inplace=True),
                                           nn.Linear(fc_hidden, len(self.aus)))
        else:
            d5, d4, d3 = decoder_channels
            self.decoder = nn.ModuleList([DecoderBlock(widths[4], 0, d5, reduction),
                                          DecoderBlock(d5, widths[3], d4, reduction),
                                          DecoderBlock(d4, widths[2], d3, reduction)])
            self.branches = nn.ModuleDict({
                r: RegionBranch(d3, len(a), fc_hidden, cbam_channel=cbam_channel, cbam_spatial=cbam_spatial,
                                cbam_residual=cbam_residual, reduction=reduction)
                for r, a in self.regions.items()})
        # column of each region's AUs in the dataset's AU order
        for r, a in self.regions.items():
            self.register_buffer(f"cols_{r}", torch.tensor([self.aus.index(x) for x in a]), persistent=False)

    # -- pieces ----------------------------------------------------------------------------------------
    def _encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for block in self.blocks:
            x = block(x)
            feats.append(x)  # strides 2, 4, 8, 16, 32
        return feats

    def train(self, mode: bool = True):
        super().train(mode)
        for block in self.blocks[: self.frozen_blocks]:  # frozen blocks keep their BatchNorm statistics too
            block.eval()
        return self

    def columns(self, region: str) -> torch.Tensor:
        return getattr(self, f"cols_{region}")

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        """The decoded feature map ``(B, D, S/8, S/8)`` the hard masks cut."""
        f = self._encode(x)
        d = self.decoder[0](f[4], None)  # block 5 (B, d5, S/32, S/32)
        d = self.decoder[1](d, f[3])  # block 4 (B, d4, S/16, S/16)
        return self.decoder[2](d, f[2])  # block 3 (B, d3, S/8, S/8)

    def masks(self, height: int, width: int, device=None) -> torch.Tensor:
        """``(3, H, W)`` hard masks for the map; all ones when ``hard_masks=False`` (Table 2's "+CBAM")."""
        m = region_masks(height, width, self.centre_row, device)
        return m if self.hard_masks else torch.ones_like(m)

    def forward_branches(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{region: logits (B, k_region)}`` in the region's AU order."""
        if self.head == "global":
            logits = self.global_fc(self._encode(x)[4].mean(dim=(2, 3)))  # (B, K)
            return {r: logits[:, self.columns(r)] for r in self.regions}
        feat = self.decode(x)  # (B, D, h, w)
        m = self.masks(feat.shape[2], feat.shape[3], feat.device)  # (3, h, w)
        out = {}
        for r, branch in self.branches.items():
            masked = feat * m[REGIONS.index(r)]  # Eq.4: I_hm = M_h (x) I, (B, D, h, w)
            out[r] = branch(masked)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = self.forward_branches(x)
        logits = next(iter(branches.values())).new_zeros(x.shape[0], len(self.aus))  # (B, K)
        for r, lg in branches.items():
            logits[:, self.columns(r)] = lg
        return logits

    def spatial_attention_maps(self) -> dict[str, list[torch.Tensor | None]]:
        """The last forward's CBAM spatial maps per branch, ``(B, 1, h, w)`` each (None where switched off)."""
        if self.head == "global":
            return {}
        return {r: b.spatial_maps() for r, b in self.branches.items()}
