"""AUNet's trainable parts (aunet.md Sec. IV, Fig. 4): the AU-FAN head with the optional temporal difference
net (AU-TDN), the label VAE (AU-VAE), and ResNet18-A (ResNet18 carrying the same VAE and TDN modules).

Layout facts follow shared/reference/implementation_notes.md (official code) where the paper is silent:
head = 1x1 conv C->256, 4 x (ConvBlock + MaxPool), average pool, Linear(256,128)-BN-ReLU-Linear(128,K);
TDN fuses an average-pooled frame-difference path into the static path twice with alpha 0.9 / beta 0.1.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from aulib.models.fan import ConvBlock


def _classifier(cin: int, hidden: int, n_aus: int) -> nn.Sequential:
    # "a hidden layer to reduce dimension, a ReLU activation, and a linear layer" (Sec. IV-A); BN from the notes
    return nn.Sequential(nn.Linear(cin, hidden), nn.BatchNorm1d(hidden), nn.ReLU(True), nn.Linear(hidden, n_aus))


def _fuse(static: torch.Tensor, motion: torch.Tensor, alpha: float, beta: float) -> torch.Tensor:
    """alpha * static + beta * upsample(motion): the motion path runs at half resolution (TDN's low-res design)."""
    return alpha * static + beta * F.interpolate(motion, size=static.shape[-2:], mode="nearest")


class AUHead(nn.Module):
    """AU-FAN head on FAN features F (B, C, h, w); with ``tdn=True`` also the AU-TDN motion path (Fig. 4b, c).

    static:  x = 1x1conv(F_t) -> n_blocks x (ConvBlock + MaxPool) -> avg pool -> classifier
    TDN:     d = 1x1conv(AvgPool2(cat(F_t - F_{t-T}, F_{t+T} - F_t)))      (h/2 x w/2)
             x = a x + b up(d); x = MaxPool(ConvBlock(x)); d = MaxPool(ConvBlock_d(d)); x = a x + b up(d)
             then the remaining n_blocks - 1 static blocks.
    """

    def __init__(self, in_channels: int = 768, n_aus: int = 12, width: int = 256, hidden: int = 128,
                 n_blocks: int = 4, tdn: bool = False, alpha: float = 0.9, beta: float = 0.1):
        super().__init__()
        self.tdn, self.alpha, self.beta = tdn, alpha, beta
        self.reduce = nn.Conv2d(in_channels, width, 1)
        self.blocks = nn.ModuleList([ConvBlock(width, width) for _ in range(n_blocks)])
        if tdn:
            self.reduce_diff = nn.Conv2d(2 * in_channels, width, 1)
            self.block_diff = ConvBlock(width, width)
        self.classifier = _classifier(width, hidden, n_aus)

    @staticmethod
    def differences(f_prev: torch.Tensor, f_t: torch.Tensor, f_next: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w) x3 -> (B, 2C, h, w): the two temporal differences (order as in the official code)."""
        return torch.cat([f_t - f_prev, f_next - f_t], 1)

    def forward(self, f_t: torch.Tensor, f_prev: torch.Tensor | None = None, f_next: torch.Tensor | None = None,
                return_maps: bool = False):
        """Logits (B, K). TDN heads need f_prev and f_next (features of frames t-T and t+T)."""
        diff = None
        if self.tdn:
            if f_prev is None or f_next is None:
                raise ValueError("this AUHead has a TDN: pass the features of frames t-T and t+T as well")
            diff = self.differences(f_prev, f_t, f_next)
        return self.forward_diff(f_t, diff, return_maps)

    def forward_diff(self, f_t: torch.Tensor, diff: torch.Tensor | None, return_maps: bool = False):
        """The head given F_t and an explicit (B, 2C, h, w) difference tensor (None: the static path)."""
        maps = {}
        x = self.reduce(f_t)                                         # (B, W, h, w)
        blocks = list(self.blocks)
        if diff is not None:
            d = self.reduce_diff(F.avg_pool2d(diff, 2))              # (B, W, h/2, w/2)
            x = _fuse(x, d, self.alpha, self.beta)
            x = F.max_pool2d(blocks.pop(0)(x), 2)                    # (B, W, h/2, w/2)
            d = F.max_pool2d(self.block_diff(d), 2)                  # (B, W, h/4, w/4)
            maps["motion"] = d
            x = _fuse(x, d, self.alpha, self.beta)
            maps["static_0"] = x
        for i, block in enumerate(blocks, start=len(self.blocks) - len(blocks)):
            x = F.max_pool2d(block(x), 2)
            maps[f"static_{i}"] = x
        logits = self.classifier(x.mean((2, 3)))                     # (B, K)
        return (logits, maps) if return_maps else logits


class AUVAE(nn.Module):
    """The label VAE of Sec. IV-B (layout from the notes): fc1 K->d ReLU; fc21/fc22 -> mu, logvar (d);
    fc3 d->d ReLU; fc4 d->K (reconstruction logits). d = 8 for BP4D, 6 for DISFA, 5 for AffWild2."""

    def __init__(self, n_aus: int = 12, latent: int = 8):
        super().__init__()
        self.fc1 = nn.Linear(n_aus, latent)
        self.fc21, self.fc22 = nn.Linear(latent, latent), nn.Linear(latent, latent)
        self.fc3, self.fc4 = nn.Linear(latent, latent), nn.Linear(latent, n_aus)

    def encode(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # (B, K) -> mu, logvar (B, d)
        h = F.relu(self.fc1(y))
        return self.fc21(h), self.fc22(h)

    def decode(self, z: torch.Tensor) -> torch.Tensor:  # (B, d) -> reconstruction logits (B, K)
        return self.fc4(F.relu(self.fc3(z)))

    def forward(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mu, logvar = self.encode(y)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp() if self.training else mu  # reparameterisation
        return self.decode(z), mu, logvar


class ResNet18A(nn.Module):
    """ResNet18-A (Sec. V-F): ResNet18 trained on raw frames, with AUNet's TDN fused after ``layer1`` (stride 4,
    where FAN's features sit) and the same classifier; the VAE regulariser is applied by the method.

    ``tdn=False`` gives the plain ResNet18 baseline. ``channels``/``stem_width`` shrink it for CPU runs.
    """

    def __init__(self, n_aus: int = 12, in_chans: int = 3, tdn: bool = True, hidden: int = 128,
                 channels: tuple[int, ...] = (64, 128, 256, 512), stem_width: int = 64,
                 alpha: float = 0.9, beta: float = 0.1):
        super().__init__()
        import timm  # well-kept ResNet18; never pretrained (no downloads)

        net = timm.create_model("resnet18", pretrained=False, in_chans=in_chans, num_classes=0,
                                channels=channels, stem_width=stem_width)
        self.stem = nn.Sequential(net.conv1, net.bn1, net.act1, net.maxpool, net.layer1)  # (B, c1, H/4, W/4)
        self.layer2, self.layer3, self.layer4 = net.layer2, net.layer3, net.layer4
        self.tdn, self.alpha, self.beta = tdn, alpha, beta
        c1, c2 = channels[0], channels[1]
        if tdn:
            self.reduce_diff = nn.Conv2d(2 * c1, c1, 1)
            self.block_diff = ConvBlock(c1, c2)
        self.classifier = _classifier(channels[-1], hidden, n_aus)

    def forward(self, frames: torch.Tensor, return_maps: bool = False):
        """frames: (B, C, H, W) (static) or (B, 3, C, H, W) triplets t-T, t, t+T (TDN). -> logits (B, K)."""
        maps = {}
        if self.tdn:
            if frames.dim() != 5 or frames.shape[1] != 3:
                raise ValueError(f"ResNet18-A with TDN expects (B, 3, C, H, W) triplets, got {tuple(frames.shape)}")
            b = frames.shape[0]
            f = self.stem(frames.flatten(0, 1)).unflatten(0, (b, 3))  # (B, 3, c1, H/4, W/4)
            x = f[:, 1]
            d = self.reduce_diff(F.avg_pool2d(AUHead.differences(f[:, 0], f[:, 1], f[:, 2]), 2))
            x = self.layer2(_fuse(x, d, self.alpha, self.beta))         # (B, c2, H/8, W/8)
            d = F.max_pool2d(self.block_diff(d), 2)                    # (B, c2, H/16, W/16)
            x = _fuse(x, d, self.alpha, self.beta)
        else:
            if frames.dim() == 5:
                frames = frames[:, 1]
            x = self.stem(frames)
            maps["layer1"] = x
            x = self.layer2(x)
        maps["layer2"] = x
        x = self.layer3(x)
        maps["layer3"] = x
        x = self.layer4(x)
        logits = self.classifier(x.mean((2, 3)))
        return (logits, maps) if return_maps else logits
