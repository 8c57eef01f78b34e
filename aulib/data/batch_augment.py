"""Self-supervised views made on a whole batch, on the batch's device, every sample with its own parameters.

Per-sample torchvision v2 pipelines (:func:`aulib.data.transforms.view_pipeline`) run in Python once per image:
at 64 px on a CPU core that is most of an RRL step, and at paper size a GPU would wait for the loader. Here the
same :class:`~aulib.data.transforms.ViewAug` runs as batched tensor ops, after the batch reaches the device:

    views = BatchTwoViews(VIEW1, VIEW2, image_size=224)
    loader = OnDevice(plain_loader, views, device="cuda")   # yields image (B, 2, C, H, W), landmarks (B, 2, 68, 2)

Why Kornia: torchvision v2 applied to a batched tensor draws ONE set of random parameters for the whole batch,
which makes every image of a batch share its jitter, blur and flip (useless for contrastive pairs); Kornia
draws them per sample, runs on the GPU and moves keypoints through its geometric transforms. The face flip is
done here (a per-sample ``torch.where``), since it must also swap the iBUG left/right landmark indices
(:data:`aulib.data.transforms.IBUG_MIRROR`), which Kornia's flip does not.

Order per view, as in :func:`view_pipeline`: flip, affine (optional), colour jitter (probability ``jitter_p``,
torchvision's formulas: ``kornia.augmentation.ColorJitter``), greyscale, Gaussian blur (sigma scaled by
size / 224, kernel ~10 % of the side).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
from torch import nn

from aulib.data.loader import to_device
from aulib.data.transforms import IBUG_MIRROR, ViewAug


def flip_faces(image: torch.Tensor, landmarks: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mirror the samples where ``mask`` (B,) is true: image (B, C, H, W) and landmarks (B, 68, 2) in pixels;
    x -> (W - 1) - x and the left/right landmark indices swapped (as :class:`FaceHorizontalFlip`)."""
    w = image.shape[-1]
    mirrored = landmarks[:, torch.as_tensor(IBUG_MIRROR, device=landmarks.device)].clone()
    mirrored[..., 0] = (w - 1) - mirrored[..., 0]
    m = mask.view(-1, 1, 1, 1)
    return torch.where(m, image.flip(-1), image), torch.where(mask.view(-1, 1, 1), mirrored, landmarks)


class BatchView(nn.Module):
    """One :class:`ViewAug` on a batch: (image (B, C, H, W) in [0, 1], landmarks (B, 68, 2)) -> the same shapes."""

    def __init__(self, v: ViewAug, image_size: int):
        super().__init__()
        import kornia.augmentation as K

        self.v = v
        s = image_size / 224
        k = v.blur_kernel(image_size)
        self.affine = None
        if v.geometric:
            self.affine = K.AugmentationSequential(
                K.RandomAffine(degrees=v.rotation, translate=(v.shift, v.shift) if v.shift > 0 else None,
                               scale=tuple(v.scale) if tuple(v.scale) != (1.0, 1.0) else None, p=1.0),
                data_keys=["input", "keypoints"])
        self.photometric = K.AugmentationSequential(
            K.ColorJitter(v.brightness, v.contrast, v.saturation, v.hue, p=v.jitter_p),
            K.RandomGrayscale(p=v.grey),
            K.RandomGaussianBlur((k, k), (v.blur_sigma[0] * s, v.blur_sigma[1] * s), p=v.blur))

    def forward(self, image: torch.Tensor, landmarks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if image.shape[-3] != 3:
            raise ValueError(f"BatchView needs 3-channel images; colour jitter and greyscale are undefined for "
                             f"{image.shape[-3]} channel(s)")
        b = image.shape[0]
        mask = torch.rand(b, device=image.device) < self.v.flip
        image, landmarks = flip_faces(image, landmarks.to(image.dtype), mask)
        if self.affine is not None:
            image, landmarks = self.affine(image, landmarks)
        image = self.photometric(image).clamp_(0, 1)
        return image, landmarks


class BatchTwoViews(nn.Module):
    """A batch dict -> the same dict with ``image`` (B, 2, C, H, W) and ``landmarks`` (B, 2, 68, 2): two views,
    the batched counterpart of RRL's per-sample ``TwoViewAugment``. ``augment=False`` stacks the image twice."""

    def __init__(self, view1: ViewAug, view2: ViewAug, image_size: int, augment: bool = True):
        super().__init__()
        self.augment = augment
        self.views = nn.ModuleList([BatchView(view1, image_size), BatchView(view2, image_size)])

    @torch.no_grad()
    def forward(self, batch: dict) -> dict:
        x, lm = batch["image"], batch["landmarks"]  # (B, C, H, W), (B, 68, 2)
        if self.augment:
            pairs = [view(x, lm) for view in self.views]
        else:
            pairs = [(x, lm), (x, lm)]
        out = dict(batch)
        out["image"] = torch.stack([p[0] for p in pairs], 1)  # (B, 2, C, H, W)
        out["landmarks"] = torch.stack([p[1] for p in pairs], 1)  # (B, 2, 68, 2)
        return out


class OnDevice:
    """Iterate ``loader``, move each batch to ``device`` and apply ``transform(batch) -> batch`` there.

    ``device`` is the training device (the trainer's, e.g. ``aulib.train.resolve_device("auto")``, which gives
    each DDP rank its own GPU). Everything else (``len``, ``sampler``, ``batch_sampler``, ``dataset``) is the
    wrapped loader's, so
    :func:`aulib.train.fit` sets epochs and shards as before; its data-wait time now includes the transform."""

    def __init__(self, loader: Iterable, transform: Callable[[dict], dict], device: str | torch.device):
        self.loader, self.transform, self.device = loader, transform, torch.device(device)
        if isinstance(transform, nn.Module):
            transform.to(self.device)

    def __iter__(self) -> Iterator[dict]:
        for batch in self.loader:
            yield self.transform(to_device(batch, self.device))

    def __len__(self) -> int:
        return len(self.loader)  # type: ignore[arg-type]

    def __getattr__(self, name: str) -> Any:
        if name in ("loader", "transform", "device"):
            raise AttributeError(name)
        return getattr(self.loader, name)


class BatchMoCoViews(nn.Module):
    """MoCo v2's two views of a batch (EmoCo's pretraining), per-sample parameters, on the batch's device:
    ``{"image" (B, C, H, W) in [0, 1], "emotion"}`` -> ``{"q", "k" (B, C, size, size), "emotion"}``.

    The batched counterpart of :func:`aulib.methods.emoco.mocov2_augmentation`, step for step: random resized
    crop (``crop_scale``), colour jitter 0.4/0.4/0.4/0.1 with p 0.8 (brightness and contrast only on grey
    faces), greyscale p 0.2 (colour only), Gaussian blur p 0.5 (sigma 0.1 .. 2 x size / 224), horizontal flip."""

    def __init__(self, size: int, channels: int = 3, blur: bool = True, crop_scale: tuple[float, float] = (0.2, 1.0)):
        super().__init__()
        import kornia.augmentation as K

        jitter = (K.ColorJitter(0.4, 0.4, 0.4, 0.1, p=0.8) if channels == 3 else K.ColorJitter(0.4, 0.4, p=0.8))
        steps: list[nn.Module] = [K.RandomResizedCrop((size, size), scale=tuple(crop_scale)), jitter]
        if channels == 3:
            steps.append(K.RandomGrayscale(p=0.2))
        if blur:
            k = max(3, (size // 10) | 1)
            steps.append(K.RandomGaussianBlur((k, k), (0.1, 2.0 * size / 224), p=0.5))
        steps.append(K.RandomHorizontalFlip())
        self.view = K.AugmentationSequential(*steps)

    @torch.no_grad()
    def forward(self, batch: dict) -> dict:
        x = batch["image"]  # (B, C, H, W)
        return {"q": self.view(x).clamp_(0, 1), "k": self.view(x).clamp_(0, 1), "emotion": batch["emotion"]}


class BatchFlipCrop(nn.Module):
    """A supervised model's training views, on the batch: every image flipped left-right with probability
    ``flip`` and cut by a square random resized crop of ``crop_scale`` of its area, back to its own size
    (Kornia, per-sample draws). Labels pass through unchanged (AUs are coded on both sides of the face).

    Takes what a loader yields, a dict with ``image`` (B, C, H, W) or a tuple / list whose first item is that
    image, and returns the same structure."""

    def __init__(self, size: int, crop_scale: tuple[float, float] = (0.8, 1.0), flip: float = 0.5):
        super().__init__()
        import kornia.augmentation as K

        self.view = K.AugmentationSequential(K.RandomHorizontalFlip(p=flip),
                                             K.RandomResizedCrop((size, size), scale=tuple(crop_scale),
                                                                 ratio=(1.0, 1.0)))

    @torch.no_grad()
    def forward(self, batch):
        if isinstance(batch, dict):
            return {**batch, "image": self.view(batch["image"])}  # (B, C, H, W)
        x, *rest = batch
        return type(batch)([self.view(x), *rest])


class BatchGeometric(nn.Module):
    """A supervised model's geometric augmentation on the batch, the batched counterpart of
    :func:`aulib.data.transforms.geometric`: per sample, a face flip with probability ``flip`` (left/right
    landmark indices swapped, :func:`flip_faces`), then a random affine (``rotation`` degrees, zoom ``scale``,
    ``shift`` a fraction of the side; zero fill, bilinear), Kornia, every sample with its own draw.

    A batch dict with ``image`` (B, C, H, W) in [0, 1] and ``landmarks`` (B, 68, 2) -> the same dict, landmarks
    following. Temporal triplets ``images`` (B, T, C, H, W) share their sample's flip and warp (one draw per
    sample, as :class:`aulib.data.dataset.FrameDataset`'s transform gives them) and ``image`` becomes their
    centre frame again. Labels pass through unchanged."""

    def __init__(self, rotation: float = 15.0, scale: tuple[float, float] = (0.9, 1.1), shift: float = 0.05,
                 flip: float = 0.5):
        super().__init__()
        import kornia.augmentation as K

        self.flip = flip
        self.affine = K.AugmentationSequential(
            K.RandomAffine(degrees=rotation, translate=(shift, shift) if shift > 0 else None,
                           scale=tuple(scale) if tuple(scale) != (1.0, 1.0) else None, p=1.0),
            data_keys=["input", "keypoints"])

    @torch.no_grad()
    def forward(self, batch: dict) -> dict:
        triplet = "images" in batch
        x = batch["images"] if triplet else batch["image"]  # (B, T, C, H, W) or (B, C, H, W)
        shape = x.shape
        x = x.flatten(1, 2) if triplet else x  # the frames of a triplet as channels: one warp for all of them
        lm = batch["landmarks"].to(x.dtype)  # (B, 68, 2)
        if self.flip > 0:
            x, lm = flip_faces(x, lm, torch.rand(x.shape[0], device=x.device) < self.flip)
        x, lm = self.affine(x, lm)
        out = dict(batch)
        out["landmarks"] = lm
        if triplet:
            out["images"] = x.view(shape)
            out["image"] = out["images"][:, shape[1] // 2]
        else:
            out["image"] = x
        return out
