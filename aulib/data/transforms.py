"""Landmark-aware augmentation on top of torchvision.transforms.v2.

A sample is a dict: ``image`` a ``tv_tensors.Image`` (C, H, W) — or (3, C, H, W) for a temporal triplet,
which v2 then augments with ONE set of random parameters, as AUNet's shared triplet augmentation needs —
and ``landmarks`` a ``tv_tensors.KeyPoints`` (68, 2). v2's geometric transforms move the keypoints with the
image; :class:`FaceHorizontalFlip` also swaps the iBUG left/right indices so landmark k keeps its meaning.
"""

from __future__ import annotations

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


def to_sample(image: torch.Tensor, landmarks: torch.Tensor) -> dict:
    """Wrap plain tensors as the tv_tensors a v2 pipeline recognises."""
    h, w = image.shape[-2:]
    return {"image": tv_tensors.Image(image), "landmarks": tv_tensors.KeyPoints(landmarks, canvas_size=(h, w))}
