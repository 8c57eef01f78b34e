"""AU attention maps from the 68 iBUG landmarks (EAC-Net / JAA-Net centres; RRL Sec. 2.2).

Every AU has a left and a right centre: a landmark shifted vertically by a multiple of the ruler
``r = |x39 - x42|`` (the inner-eye-corner distance), see ``shared/reference/au_statistics.md``. Each centre
gets a region, the two regions of an AU are merged by max, and the map is area-resampled to ``out_size``
(14x14 in RRL). Two region shapes:

``"ellipse"`` (RRL)   a filled ellipse around each centre, blurred by a Gaussian of ``sigma`` pixels of a
                      ``reference_size`` (224, RRL's input) image, so the blur scales with the face.
``"square"`` (EAC-Net) on a 100x100 copy of the image, a 14x14 square per centre with value
                      ``1 - 0.07 * (|dx| + |dy|)`` (distance in that 100-pixel grid).

Maps are computed from landmarks, so they follow any geometric augmentation applied to the landmarks
(flip, affine): compute them from the *transformed* landmarks. Everything is batched torch and runs on the
landmarks' device, so methods can build the maps inside their training step.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

# AU -> ((left landmark, right landmark), vertical offset in units of the ruler r); 0-based iBUG indices.
# AU10 uses JAA-Net's 61/63 (EAC-Net used 49/53).
AU_CENTRE_RULES: dict[int, tuple[tuple[int, int], float]] = {
    1: ((21, 22), -1 / 2),
    2: ((18, 25), -1 / 3),
    4: ((19, 24), +1 / 3),
    6: ((41, 46), +1.0),
    7: ((38, 43), 0.0),
    9: ((32, 34), -1 / 2),
    10: ((61, 63), 0.0),
    12: ((48, 54), 0.0),
    14: ((48, 54), 0.0),
    15: ((48, 54), 0.0),
    17: ((56, 58), +1 / 2),
    26: ((56, 58), +1 / 2),
    23: ((51, 57), 0.0),
    24: ((51, 57), 0.0),
    25: ((51, 57), 0.0),
}
VARIANTS = ("ellipse", "square")


def _check_aus(aus: Sequence[int], rules: dict) -> list[int]:
    aus = [int(a) for a in aus]
    missing = [a for a in aus if a not in rules]
    if missing:
        raise KeyError(f"no landmark rule for AU(s) {missing}; AUs with a rule: {sorted(rules)} "
                       "(pass rules={au: ((left, right), offset_in_r)} to add one)")
    return aus


def au_centres(landmarks: torch.Tensor | np.ndarray, aus: Sequence[int],
               rules: dict[int, tuple[tuple[int, int], float]] | None = None) -> torch.Tensor:
    """(B, K, 2, 2) left/right centre (x, y) in the landmarks' pixel coordinates for each AU in ``aus``.

    ``landmarks``: (68, 2) or (B, 68, 2) pixel (x, y). A (68, 2) input gives (K, 2, 2).
    """
    rules = AU_CENTRE_RULES if rules is None else rules
    aus = _check_aus(aus, rules)
    lm = torch.as_tensor(landmarks, dtype=torch.float32)
    single = lm.ndim == 2
    lm = lm[None] if single else lm
    if lm.ndim != 3 or lm.shape[1:] != (68, 2):
        raise ValueError(f"landmarks must be (68, 2) or (B, 68, 2) pixel (x, y); got {tuple(lm.shape)}")
    r = (lm[:, 39, 0] - lm[:, 42, 0]).abs()  # (B,) ruler: inner eye corners
    idx = torch.tensor([rules[a][0] for a in aus], device=lm.device)  # (K, 2)
    off = torch.tensor([rules[a][1] for a in aus], device=lm.device, dtype=lm.dtype)  # (K,)
    c = lm[:, idx]  # (B, K, 2, 2): [b, k, side, xy]
    c = c.clone()
    c[..., 1] = c[..., 1] + (off[None, :, None] * r[:, None, None])  # image y grows downwards
    return c[0] if single else c


def _hw(image_size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(image_size, (int, np.integer)):
        return int(image_size), int(image_size)
    h, w = image_size
    return int(h), int(w)


def _gaussian_kernel(sigma: float, device, dtype) -> torch.Tensor:
    half = max(1, int(math.ceil(3 * sigma)))
    x = torch.arange(-half, half + 1, device=device, dtype=dtype)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()  # (2*half+1,)


def _blur_matrix(sigma: float, n: int, device, dtype) -> torch.Tensor:
    """(n, n) matrix G with (G @ x) = x convolved with a Gaussian of ``sigma`` (zero padding)."""
    k = _gaussian_kernel(sigma, device, dtype)
    half = len(k) // 2
    i = torch.arange(n, device=device)
    d = i[:, None] - i[None, :] + half  # kernel tap of (row, col)
    inside = (d >= 0) & (d < len(k))
    return torch.where(inside, k[d.clamp(0, len(k) - 1)], torch.zeros((), device=device, dtype=dtype))


def au_attention_maps(landmarks: torch.Tensor | np.ndarray, aus: Sequence[int], image_size: int | Sequence[int],
                      out_size: int = 14, variant: str = "ellipse", sigma: float = 3.0,
                      reference_size: int = 224, axes: tuple[float, float] = (0.75, 0.5),
                      canvas: int = 56, rules: dict | None = None) -> torch.Tensor:
    """(B, K, out_size, out_size) AU attention maps in [0, 1] (a (68, 2) input gives (K, out, out)).

    landmarks: pixel (x, y) of an image of ``image_size`` (int or (H, W)); aus: the K AUs, in order.
    ellipse variant: semi-axes ``axes`` (horizontal, vertical) in units of the ruler r (the paper gives no
    numbers; these cover a brow / an eye / a mouth corner), blurred by ``sigma`` pixels of a
    ``reference_size`` image. Maps are drawn on a ``canvas`` x ``canvas`` grid and area-resampled to
    ``out_size``. square variant: EAC-Net's 14x14 square on a 100x100 grid with value 1 - 0.07(|dx|+|dy|).
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown attention-map variant {variant!r}; choose one of {', '.join(VARIANTS)}")
    lm = torch.as_tensor(landmarks, dtype=torch.float32)
    single = lm.ndim == 2
    c = au_centres(lm[None] if single else lm, aus, rules)  # (B, K, 2, 2) pixels
    h, w = _hw(image_size)
    b, k = c.shape[:2]
    dev, dt = c.device, c.dtype
    # canvas cell centres in image pixel coordinates (pixel i has its centre at i, as landmarks count)
    ys = (torch.arange(canvas, device=dev, dtype=dt) + 0.5) * (h / canvas) - 0.5  # (S,)
    xs = (torch.arange(canvas, device=dev, dtype=dt) + 0.5) * (w / canvas) - 0.5
    dx = xs.view(1, 1, 1, 1, canvas) - c[..., 0, None, None]  # (B, K, 2, 1, S)
    dy = ys.view(1, 1, 1, canvas, 1) - c[..., 1, None, None]  # (B, K, 2, S, 1)
    if variant == "square":
        # EAC-Net: distances measured on a 100x100 version of the image
        ax, ay = dx * (100.0 / w), dy * (100.0 / h)
        inside = (ax.abs() <= 7) & (ay.abs() <= 7)
        m = torch.where(inside, 1 - 0.07 * (ax.abs() + ay.abs()), torch.zeros((), device=dev, dtype=dt))
        m = m.amax(2)  # (B, K, S, S) left/right merged by max
    else:
        r = (lm[..., 39, 0] - lm[..., 42, 0]).abs().reshape(-1).to(dev)  # (B,)
        r = r.clamp_min(1e-6).view(b, 1, 1, 1, 1)
        inside = (dx / (axes[0] * r)) ** 2 + (dy / (axes[1] * r)) ** 2 <= 1.0  # (B, K, 2, S, S)
        m = inside.to(dt).amax(2).reshape(b * k, 1, canvas, canvas)  # left/right merged by max
        # Gaussian blur, sigma given in pixels of a reference_size image, expressed in canvas pixels
        s = sigma * canvas / reference_size
        m = m.view(b, k, canvas, canvas)
        if s > 0:  # separable blur with zero padding, as two small matrix products (fast on CPU and GPU)
            g = _blur_matrix(s, canvas, dev, dt)  # (S, S)
            m = g @ m @ g.T
    m = F.adaptive_avg_pool2d(m, out_size)  # (B, K, out, out)
    return m[0] if single else m


def resize_maps(maps: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """Area-resample (B, K, h, w) maps to a feature map's size (adaptive average pooling)."""
    return maps if tuple(maps.shape[-2:]) == _hw(size) else F.adaptive_avg_pool2d(maps, _hw(size))
