"""Landmark-aware augmentation on top of torchvision.transforms.v2.

A sample is a dict: ``image`` a ``tv_tensors.Image`` (C, H, W) — or (3, C, H, W) for a temporal triplet,
which v2 then augments with ONE set of random parameters, as AUNet's shared triplet augmentation needs —
and ``landmarks`` a ``tv_tensors.KeyPoints`` (68, 2). v2's geometric transforms move the keypoints with the
image; :class:`FaceHorizontalFlip` also swaps the iBUG left/right indices so landmark k keeps its meaning.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2


def _ibug_mirror() -> np.ndarray:
    """Index permutation of the 68 iBUG points under a horizontal mirror."""
    p = np.arange(68)
    pairs = [*zip(range(0, 8), range(16, 8, -1)),  # jaw
             *zip(range(17, 22), range(26, 21, -1)),  # brows
             *zip(range(31, 33), range(35, 33, -1)),  # nostrils
             (36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46),  # eyes
             (48, 54), (49, 53), (50, 52), (59, 55), (58, 56),  # outer lip
             (60, 64), (61, 63), (67, 65)]  # inner lip
    for a, b in pairs:
        p[a], p[b] = b, a
    return p


IBUG_MIRROR = _ibug_mirror()


class FaceHorizontalFlip(torch.nn.Module):
    """Mirror image and landmarks with probability ``p``; landmark indices are swapped left <-> right."""

    def __init__(self, p: float = 0.5):
        super().__init__()
        self.p = p

    def forward(self, sample: dict) -> dict:
        if torch.rand(()) >= self.p:
            return sample
        out = dict(sample)
        out["image"] = tv_tensors.wrap(sample["image"].flip(-1), like=sample["image"])
        if "landmarks" in sample:
            lm = sample["landmarks"]
            w = lm.canvas_size[1]
            flipped = lm.clone().as_subclass(torch.Tensor)
            flipped[..., 0] = (w - 1) - flipped[..., 0]
            out["landmarks"] = tv_tensors.wrap(flipped[..., IBUG_MIRROR, :], like=lm)
        return out


def geometric(rotation: float = 15.0, scale: tuple[float, float] = (0.9, 1.1), shift: float = 0.05,
              flip: float = 0.5) -> v2.Compose:
    """A common geometric augmentation (landmarks follow)."""
    return v2.Compose([FaceHorizontalFlip(flip),
                       v2.RandomAffine(degrees=rotation, translate=(shift, shift), scale=scale)])


@dataclass
class ViewAug:
    """One view's augmentation for self-supervised pairs (probabilities and strengths, as BYOL / RRL give them):
    a face flip, an optional affine, colour jitter, greyscale and Gaussian blur. :func:`view_pipeline` makes it
    per sample (torchvision v2), :class:`aulib.data.batch_augment.BatchView` on a whole batch (Kornia)."""

    flip: float = 0.5
    jitter_p: float = 0.8
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.2
    hue: float = 0.1
    grey: float = 0.2
    blur: float = 1.0  # probability of a Gaussian blur
    blur_sigma: tuple[float, float] = (0.1, 2.0)  # at 224 px; scaled with the image size
    rotation: float = 0.0  # degrees (RRL uses no geometric augmentation besides the flip)
    scale: tuple[float, float] = (1.0, 1.0)  # random zoom range (landmarks follow)
    shift: float = 0.0  # random translation, fraction of the image side

    @property
    def geometric(self) -> bool:
        return self.rotation > 0 or self.shift > 0 or tuple(self.scale) != (1.0, 1.0)

    def blur_kernel(self, size: int) -> int:
        """Odd kernel of about 10 % of the image side (BYOL), at least 3."""
        return max(3, int(round(0.1 * size)) // 2 * 2 + 1)


def view_pipeline(v: ViewAug, size: int) -> v2.Compose:
    """``v`` as a per-sample torchvision v2 pipeline (sample dict in, sample dict out; landmarks follow)."""
    s = size / 224
    k = v.blur_kernel(size)
    ops: list = [FaceHorizontalFlip(v.flip)]
    if v.geometric:
        ops.append(v2.RandomAffine(degrees=v.rotation, translate=(v.shift, v.shift) if v.shift > 0 else None,
                                   scale=tuple(v.scale) if tuple(v.scale) != (1.0, 1.0) else None))
    ops += [v2.RandomApply([v2.ColorJitter(v.brightness, v.contrast, v.saturation, v.hue)], p=v.jitter_p),
            v2.RandomGrayscale(v.grey),
            v2.RandomApply([v2.GaussianBlur(k, (v.blur_sigma[0] * s, v.blur_sigma[1] * s))], p=v.blur)]
    return v2.Compose(ops)


def to_sample(image: torch.Tensor, landmarks: torch.Tensor) -> dict:
    """Wrap plain tensors as the tv_tensors a v2 pipeline recognises."""
    h, w = image.shape[-2:]
    return {"image": tv_tensors.Image(image), "landmarks": tv_tensors.KeyPoints(landmarks, canvas_size=(h, w))}
