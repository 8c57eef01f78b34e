"""FAN: the stacked-hourglass face alignment network (Bulat & Tzimiropoulos 2017) that AUNet builds on.

AUNet (aunet.md Sec. IV-A, Fig. 4a) uses a frozen 2-hourglass FAN as its feature extractor. The module and
parameter names below follow the public FAN checkpoint layout (``conv1, bn1, conv2..conv4`` stem; per stack
``m{i}`` hourglass, ``top_m_{i}``, ``conv_last{i}``, ``bn_end{i}``, ``l{i}`` heatmap head, ``bl{i}``/``al{i}``
feedback), so a public state dict loads with :func:`load_fan_weights`.

Pooling follows AUNet's official FAN (github jingyang2017/AU-Net ``models/FAN.py``, the code its ``2dfan2.pth``
runs in): ``F.max_pool2d(., 2, stride=2)`` both in the stem (after ``conv2``) and in every hourglass level.
The face-alignment package (1adrianb) switched both places to ``F.avg_pool2d`` in Jan 2018 (commit a36efd3);
``pool="avg"`` gives that layout for its checkpoints.

``width`` scales every channel count: 256 is the published FAN (~12M parameters at 256x256 input);
``width=32`` is aulib's tiny variant for smoke / CPU runs. Heatmaps are at 1/4 of the input resolution.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from aulib.models.registry import WeightsError, read_state_dict

N_LANDMARKS = 68


def _conv3x3(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, padding=1, bias=False)


class ConvBlock(nn.Module):
    """FAN's pre-activation multi-scale residual block (aunet.md Fig. 5).

    Three chained 3x3 convs with out/2, out/4, out/4 channels; their outputs are concatenated (multi-scale
    receptive fields) and added to the (projected) input.
    """

    def __init__(self, cin: int, cout: int):
        super().__init__()
        if cout % 4:
            raise ValueError(f"ConvBlock needs out channels divisible by 4, got {cout}")
        self.bn1, self.conv1 = nn.BatchNorm2d(cin), _conv3x3(cin, cout // 2)
        self.bn2, self.conv2 = nn.BatchNorm2d(cout // 2), _conv3x3(cout // 2, cout // 4)
        self.bn3, self.conv3 = nn.BatchNorm2d(cout // 4), _conv3x3(cout // 4, cout // 4)
        # the projection is itself pre-activated, as in FAN (keys downsample.0 / downsample.2)
        self.downsample = (None if cin == cout else
                           nn.Sequential(nn.BatchNorm2d(cin), nn.ReLU(True), nn.Conv2d(cin, cout, 1, bias=False)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, cin, H, W) -> (B, cout, H, W)
        out1 = self.conv1(F.relu(self.bn1(x)))
        out2 = self.conv2(F.relu(self.bn2(out1)))
        out3 = self.conv3(F.relu(self.bn3(out2)))
        residual = x if self.downsample is None else self.downsample(x)
        return torch.cat([out1, out2, out3], 1) + residual


POOLS = {"max": F.max_pool2d, "avg": F.avg_pool2d}


def _pool(name: str):
    if name not in POOLS:
        raise ValueError(f"FAN pool must be one of {', '.join(POOLS)}, got {name!r}")
    return POOLS[name]


class HourGlass(nn.Module):
    """Recursive hourglass of ``depth`` levels: skip branch + (pool, block, inner hourglass, block, upsample)."""

    def __init__(self, depth: int, features: int, pool: str = "max"):
        super().__init__()
        self.depth, self.pool = depth, _pool(pool)
        for level in range(depth, 0, -1):  # names b1_<level>, b2_<level>, b3_<level>, b2_plus_1 as in FAN
            self.add_module(f"b1_{level}", ConvBlock(features, features))
            self.add_module(f"b2_{level}", ConvBlock(features, features))
            if level == 1:
                self.add_module("b2_plus_1", ConvBlock(features, features))
            self.add_module(f"b3_{level}", ConvBlock(features, features))

    def _level(self, level: int, x: torch.Tensor) -> torch.Tensor:
        up1 = self._modules[f"b1_{level}"](x)
        low = self._modules[f"b2_{level}"](self.pool(x, 2, stride=2))  # max pool in AUNet's FAN
        low = self._level(level - 1, low) if level > 1 else self._modules["b2_plus_1"](low)
        low = self._modules[f"b3_{level}"](low)
        return up1 + F.interpolate(low, size=up1.shape[-2:], mode="nearest")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if min(x.shape[-2:]) < 2 ** self.depth:
            raise ValueError(f"hourglass of depth {self.depth} needs feature maps >= {2 ** self.depth} px, "
                             f"got {tuple(x.shape[-2:])} (input too small for this FAN)")
        return self._level(self.depth, x)


@dataclass
class FANOutput:
    heatmaps: list[torch.Tensor]          # per stack (B, 68, H/4, W/4)
    stem: torch.Tensor                    # F_l: (B, width, H/4, W/4), the features entering the 1st hourglass
    # F_h1, F_h2: (B, width, H/4, W/4) each; F_h_i of a non-last stack is taken after its ``bl{i}`` 1x1 conv
    hourglass: list[torch.Tensor] = field(default_factory=list)


class FAN(nn.Module):
    """Stacked-hourglass face alignment network with ``n_stacks`` hourglasses and 68 heatmaps per stack."""

    def __init__(self, n_stacks: int = 2, width: int = 256, depth: int = 4, in_chans: int = 3,
                 n_landmarks: int = N_LANDMARKS, pool: str = "max"):
        super().__init__()
        self.pool_name, self.pool = pool, _pool(pool)
        if width % 16:
            raise ValueError(f"FAN width must be a multiple of 16, got {width}")
        self.n_stacks, self.width, self.in_chans, self.n_landmarks = n_stacks, width, in_chans, n_landmarks
        w4, w2 = width // 4, width // 2  # the published stem is 64 -> 128 -> 128 -> 256
        self.conv1 = nn.Conv2d(in_chans, w4, 7, stride=2, padding=3)
        self.bn1 = nn.BatchNorm2d(w4)
        self.conv2, self.conv3, self.conv4 = ConvBlock(w4, w2), ConvBlock(w2, w2), ConvBlock(w2, width)
        for i in range(n_stacks):
            self.add_module(f"m{i}", HourGlass(depth, width, pool))
            self.add_module(f"top_m_{i}", ConvBlock(width, width))
            self.add_module(f"conv_last{i}", nn.Conv2d(width, width, 1))
            self.add_module(f"bn_end{i}", nn.BatchNorm2d(width))
            self.add_module(f"l{i}", nn.Conv2d(width, n_landmarks, 1))
            if i < n_stacks - 1:  # intermediate supervision fed back into the next stack
                self.add_module(f"bl{i}", nn.Conv2d(width, width, 1))
                self.add_module(f"al{i}", nn.Conv2d(n_landmarks, width, 1))

    def forward_all(self, x: torch.Tensor) -> FANOutput:  # x: (B, C, H, W) in [0, 1]
        if x.shape[1] != self.in_chans:
            if x.shape[1] == 1 and self.in_chans == 3:  # grey faces into an RGB FAN
                x = x.expand(-1, 3, -1, -1)
            else:
                raise ValueError(f"FAN expects {self.in_chans} input channels, got {x.shape[1]}")
        x = F.relu(self.bn1(self.conv1(x)))                          # (B, w/4, H/2, W/2)
        x = self.conv4(self.conv3(self.pool(self.conv2(x), 2, stride=2)))  # (B, w, H/4, W/4)
        out = FANOutput(heatmaps=[], stem=x)
        previous = x
        for i in range(self.n_stacks):
            ll = self._modules[f"top_m_{i}"](self._modules[f"m{i}"](previous))
            ll = F.relu(self._modules[f"bn_end{i}"](self._modules[f"conv_last{i}"](ll)))  # (B, w, h, w)
            hm = self._modules[f"l{i}"](ll)                                               # (B, 68, h, w)
            out.heatmaps.append(hm)
            if i < self.n_stacks - 1:
                ll = self._modules[f"bl{i}"](ll)  # the official AUNet code keeps F_h_i after bl_i (FAN.py)
                previous = previous + ll + self._modules[f"al{i}"](hm)
            out.hourglass.append(ll)
        return out

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Heatmaps of every stack, each (B, 68, H/4, W/4)."""
        return self.forward_all(x).heatmaps

    def au_features(self, x: torch.Tensor) -> torch.Tensor:
        """AUNet's basic AU features F (aunet.md Fig. 4a): concat(F_l, F_h1 * A, F_h2 * A), where the attention
        A is the sum of the last stack's 68 heatmaps and F_h1 is taken after the ``bl0`` 1x1 conv (official code,
        ``FAN_.forward`` in models/FAN.py).
        (B, C, H, W) -> (B, (1 + n_stacks) * width, H/4, W/4); 768 x 64 x 64 for the published FAN at 256 px."""
        o = self.forward_all(x)
        att = o.heatmaps[-1].sum(1, keepdim=True)  # (B, 1, h, w)
        return torch.cat([o.stem, *[h * att for h in o.hourglass]], 1)

    @property
    def feature_channels(self) -> int:
        return (1 + self.n_stacks) * self.width


# ----------------------------------------------------------------------------------------- heatmaps <-> points
def landmark_heatmaps(points: torch.Tensor, size: tuple[int, int], stride: float, sigma: float = 1.0) -> torch.Tensor:
    """Gaussian heatmap targets. points (B, L, 2) pixel (x, y) of the input image -> (B, L, h, w) peaking
    at 1 at each landmark, with h, w = size (the heatmap grid) and ``stride`` input pixels per cell."""
    h, w = size
    ys = torch.arange(h, dtype=points.dtype, device=points.device).view(1, 1, h, 1)
    xs = torch.arange(w, dtype=points.dtype, device=points.device).view(1, 1, 1, w)
    # a cell's centre sits at (i + 0.5) * stride input pixels
    px = (points[..., 0] / stride - 0.5)[..., None, None]
    py = (points[..., 1] / stride - 0.5)[..., None, None]
    return torch.exp(-((xs - px) ** 2 + (ys - py) ** 2) / (2 * sigma ** 2))


def heatmap_argmax(heatmaps: torch.Tensor, stride: float, refine: bool | str = True) -> torch.Tensor:
    """(B, L, h, w) -> (B, L, 2) pixel (x, y) of each heatmap's peak, in input-image pixels.

    ``refine`` places the peak inside its cell: ``True`` / ``"taylor"`` takes one Newton step on the log heatmap
    from the maximum cell, with the gradient and Hessian from central differences over its 3x3 neighbourhood
    (the second-order Taylor decoding of DARK, Zhang et al., CVPR 2020, without its blur); exact for a Gaussian
    peak, and the cell centre where the neighbourhood is not concave. ``"centroid"``: the centroid of the
    positive 3x3 window, which is biased towards the cell centre (on 16x16 Gaussian targets of sigma 1.5 drawn at
    the true points of 64-px aligned faces it left an NME of 0.032, the Taylor step 0.0001). ``False``: the
    maximum cell's centre."""
    if refine not in (True, False, "taylor", "centroid"):
        raise ValueError(f"refine must be True, False, 'taylor' or 'centroid', got {refine!r}")
    b, l, h, w = heatmaps.shape
    idx = heatmaps.flatten(2).argmax(-1)  # (B, L)
    x = (idx % w).to(torch.float32)
    y = torch.div(idx, w, rounding_mode="floor").to(torch.float32)

    def window(maps: torch.Tensor, mode: str) -> torch.Tensor:  # (B, L, h, w) -> (B, L, 3, 3) around the max
        padded = F.pad(maps.float(), (1, 1, 1, 1), mode=mode)                # (B, L, h+2, w+2)
        win = padded.unfold(2, 3, 1).unfold(3, 3, 1)                          # (B, L, h, w, 3, 3)
        return win.flatten(2, 3).gather(2, idx[..., None, None, None].expand(-1, -1, 1, 3, 3))[:, :, 0]

    if refine == "centroid":
        win = window(heatmaps, "constant").clamp(min=0)                       # (B, L, 3, 3)
        mass = win.sum((-1, -2)).clamp(min=1e-8)
        off = torch.tensor([-1.0, 0.0, 1.0], device=heatmaps.device)
        x = x + (win.sum(-2) * off).sum(-1) / mass
        y = y + (win.sum(-1) * off).sum(-1) / mass
    elif refine:
        g = window(heatmaps.float().clamp(min=1e-10).log(), "replicate")       # (B, L, 3, 3), [row = y, col = x]
        dx, dy = (g[..., 1, 2] - g[..., 1, 0]) / 2, (g[..., 2, 1] - g[..., 0, 1]) / 2
        dxx = g[..., 1, 2] - 2 * g[..., 1, 1] + g[..., 1, 0]
        dyy = g[..., 2, 1] - 2 * g[..., 1, 1] + g[..., 0, 1]
        dxy = (g[..., 2, 2] - g[..., 2, 0] - g[..., 0, 2] + g[..., 0, 0]) / 4
        det = dxx * dyy - dxy ** 2
        concave = (dxx < 0) & (det > 1e-8)                                   # a maximum: Hessian negative definite
        safe = torch.where(concave, det, torch.ones_like(det))
        # offset = -H^-1 grad, H = [[dxx, dxy], [dxy, dyy]]; at most one cell
        x = x + torch.where(concave, -(dyy * dx - dxy * dy) / safe, torch.zeros_like(dx)).clamp(-1, 1)
        y = y + torch.where(concave, -(dxx * dy - dxy * dx) / safe, torch.zeros_like(dy)).clamp(-1, 1)
    return (torch.stack([x, y], -1) + 0.5) * stride


def nme(pred: np.ndarray | torch.Tensor, true: np.ndarray | torch.Tensor) -> np.ndarray:
    """Normalised mean error per face: mean point-to-point distance / inter-ocular distance (outer eye
    corners, iBUG points 36 and 45). (N, 68, 2) x2 -> (N,)."""
    pred, true = np.asarray(pred, dtype=np.float64), np.asarray(true, dtype=np.float64)
    iod = np.linalg.norm(true[:, 36] - true[:, 45], axis=-1)
    return np.linalg.norm(pred - true, axis=-1).mean(-1) / np.maximum(iod, 1e-6)


# ----------------------------------------------------------------------------------------- checkpoint loading
@dataclass
class LoadReport:
    """What :func:`load_fan_weights` did: the keys it mapped and the ones it could not."""
    path: str
    mapped: list[str]
    missing: list[str]        # in the model, absent from the checkpoint
    unexpected: list[str]     # in the checkpoint, absent from the model
    mismatched: list[str]     # present in both with different shapes ("key: ckpt shape vs model shape")

    def __str__(self) -> str:
        return (f"{self.path}: mapped {len(self.mapped)} tensors; missing {len(self.missing)}, "
                f"unexpected {len(self.unexpected)}, shape-mismatched {len(self.mismatched)}")


class CheckpointMismatchError(WeightsError):
    """A FAN checkpoint whose keys or shapes do not fit the model; the message names them."""


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    try:
        sd = read_state_dict(path)  # plain / {"state_dict": ..} / {"model": ..}, "module." stripped
    except WeightsError as first:  # TorchScript archives (newer face-alignment releases) load through jit
        try:
            sd = torch.jit.load(str(path), map_location="cpu").state_dict()
        except Exception:
            raise CheckpointMismatchError(str(first)) from first
    return {(k[4:] if k.startswith("fan.") else k): v for k, v in sd.items()}  # a wrapper's "fan." prefix


def load_fan_weights(model: FAN, path: str | os.PathLike, strict: bool = True) -> LoadReport:
    """Load a FAN state dict from a local file (no downloads). Accepts a plain state dict, a dict holding one
    under ``state_dict``/``model``, ``module.``-prefixed keys, or a TorchScript archive.

    Returns a :class:`LoadReport`. With ``strict`` (default) any missing, unexpected or shape-mismatched key
    raises :class:`CheckpointMismatchError` naming them. ``strict=False`` only tolerates unexpected keys (e.g. a
    4-stack checkpoint into a 2-stack FAN leaves ``m2.*``/``m3.*`` unused) and says so in a one-line warning; a
    checkpoint that does not fit the model (missing or shape-mismatched keys would leave random weights in a
    frozen FAN) still raises.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"FAN checkpoint {path} does not exist")
    ckpt = _read_state_dict(path)
    own = model.state_dict()
    mapped, mismatched = [], []
    for k, v in ckpt.items():
        if k in own:
            if own[k].shape == v.shape:
                mapped.append(k)
            else:
                mismatched.append(f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}")
    # BatchNorm's num_batches_tracked is bookkeeping, not a weight: never report it as missing
    missing = [k for k in own if k not in ckpt and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in ckpt if k not in own]
    report = LoadReport(str(path), mapped, missing, unexpected, mismatched)
    if missing or mismatched or (strict and unexpected):
        def show(name, keys):
            return f"\n  {name} ({len(keys)}): " + ", ".join(keys[:12]) + (" ..." if len(keys) > 12 else "")
        raise CheckpointMismatchError(
            f"{path} does not fit FAN(n_stacks={model.n_stacks}, width={model.width}, in_chans={model.in_chans})"
            + (show("shape-mismatched", mismatched) if mismatched else "")
            + (show("missing from checkpoint", missing) if missing else "")
            + (show("unexpected in checkpoint", unexpected) if unexpected else "")
            + ("\n  (strict=False tolerates unexpected keys only)" if strict and not (missing or mismatched) else ""))
    if unexpected:
        warnings.warn(f"{report} (ignored: {', '.join(unexpected[:6])}{' ...' if len(unexpected) > 6 else ''})",
                      stacklevel=2)
    model.load_state_dict({k: ckpt[k] for k in mapped}, strict=False)
    return report


def freeze(module: nn.Module) -> nn.Module:
    """Eval mode (BatchNorm statistics fixed) and no gradients; ``train()`` calls by a parent do not unfreeze
    BatchNorm because callers re-apply ``eval()`` (see AUNet's ``train`` override)."""
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return module
