"""Bishay et al., "Which CNNs and training settings to choose for Action Unit detection?" as one method.

A single CNN predicts all AUs of a 96x96 grey face aligned on 4 landmarks (Sec. II-B); the study varies

* the CNN (Table I): ``TABLE_I`` maps each of its 11 columns onto an aulib backbone;
* the input normalisation (Table II left): ``NORMALISATIONS``, applied inside the model (:class:`InputNormalisation`);
* the augmentation severity (Table II middle): groups A-D (:func:`augmentation`);
* the data balancing (Table II right): ``BALANCING`` -> the core samplers (:func:`make_train_loader`);
* the training-set structure (Fig. 2): :func:`frames_subset`, :func:`subjects_subset`.

Training (Sec. II-C): batches of 4 positive + 4 negative images per AU (96 images for 12 AUs); BCE; "the total
loss is the average of the BCE losses calculated over each AU images" (:func:`per_au_bce`). Adagrad lr 0.005
for the baseline (from scratch), Adam lr 1e-4 for the pretrained backbones (Sec. III). Testing: accuracy on
balanced batches, i.e. the mean of the true-positive and true-negative rates per AU.

Layering note: the experiment driver at the end (:func:`run_variant`) borrows ``aulib.train`` / ``aulib.eval``
with imports inside the functions, as ``aulib.methods.emoco`` does; the method itself needs only models.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.transforms import v2

from aulib.data.align import TEMPLATES, Template, align_face
from aulib.data.schema import CanonicalDataset
from aulib.data.transforms import FaceHorizontalFlip
from aulib.methods.base import Method
from aulib.models import create_backbone

NORMALISATIONS = ("raw", "samplewise_centering", "featurewise_centering", "samplewise_normalization",
                  "featurewise_normalization")
AUGMENTATIONS = ("A", "B", "C", "D", "baseline")
BALANCING = ("random", "undersampling", "oversampling", "cost")

# --------------------------------------------------------------------------------------------- paper numbers
# Table I of the paper (reported): aulib backbone, input channels, pretrained?, FLOPs (M), params (K), memory
# (MB), average accuracy (%). All models see 96x96 faces; the pretrained ones take the grey face copied to 3
# channels, as ImageNet / face weights expect.
TABLE_I: dict[str, dict[str, Any]] = {
    "Baseline": dict(backbone="baseline_cnn", in_chans=1, pretrained=False, flops_m=81.6, params_k=659,
                     memory_mb=4.71, avg_acc=76.3),
    "MobileNetV2": dict(backbone="mobilenetv2_100", in_chans=3, pretrained=True, flops_m=110.1, params_k=2276,
                        memory_mb=16.44, avg_acc=75.4),
    "InceptionV3": dict(backbone="inception_v3", in_chans=3, pretrained=True, flops_m=679.2, params_k=21831,
                        memory_mb=91.41, avg_acc=75.9),
    "EmoNets": dict(backbone="emonets", in_chans=1, pretrained=False, flops_m=739.4, params_k=567,
                    memory_mb=6.32, avg_acc=77.8),
    "DenseNet121": dict(backbone="densenet121", in_chans=3, pretrained=True, flops_m=1040, params_k=7052,
                        memory_mb=49.15, avg_acc=77.4),
    "LightCNN-9": dict(backbone="lightcnn9", in_chans=1, pretrained=True, flops_m=1100, params_k=3649,
                       memory_mb=31.76, avg_acc=79.1),
    "ResNet50": dict(backbone="resnet50", in_chans=3, pretrained=True, flops_m=1420, params_k=23587,
                     memory_mb=102.95, avg_acc=78.3),
    "Xception": dict(backbone="xception", in_chans=3, pretrained=True, flops_m=1650, params_k=20890,
                     memory_mb=101.07, avg_acc=76.7),
    "LightCNN-29": dict(backbone="lightcnn29", in_chans=1, pretrained=True, flops_m=4080, params_k=10741,
                        memory_mb=72.22, avg_acc=80.6),
    "FaceVGG": dict(backbone="facevgg", in_chans=3, pretrained=True, flops_m=5640, params_k=14721,
                    memory_mb=69.97, avg_acc=79.7),
    "VGG-16": dict(backbone="vgg16_gap", in_chans=3, pretrained=True, flops_m=5640, params_k=14721,
                   memory_mb=69.97, avg_acc=81.8),
}
# Where aulib cannot match Table I's parameter count within 5%, and why (the test and the notebook use this).
TABLE_I_EXCEPTIONS = {
    "EmoNets": "Kahou et al.'s layer list (5x5 conv 64-64-128, 3x3/2 pooling, dense output) at 96x96 gives 530K "
               "parameters and 738M FLOPs; Table I reports 567K and 739.4M. The FLOPs agree, so the layers "
               "match; the 37K extra parameters cannot be placed from any published layer list.",
}
# Table II (reported): average accuracy (%) over the 12 AUs, baseline CNN.
TABLE_II = {
    "normalisation": {"raw": 76.3, "samplewise_centering": 77.3, "featurewise_centering": 76.2,
                      "samplewise_normalization": 77.2, "featurewise_normalization": 77.2},
    "augmentation": {"A": 73.8, "B": 76.0, "C": 77.5, "D": 77.6},
    "balancing": {"random": 74.8, "undersampling": 75.0, "oversampling": 76.3, "cost": 76.0},
}


# --------------------------------------------------------------------------------------------- config
@dataclass
class CNNStudyConfig:
    """One cell of the study. A notebook's / profile's dict maps onto it with :meth:`from_dict`."""

    backbone: str = "baseline_cnn"
    in_chans: int = 1  # 3 for ImageNet/face-pretrained backbones: the grey face is repeated
    image_size: int = 96  # the aligned face side (Sec. II-B)
    weights: str | None = None  # local pretrained weights (nothing is downloaded)
    normalisation: str = "raw"
    augmentation: str = "baseline"  # Sec. II-C: "random flipping, shifting, zooming"
    balancing: str = "oversampling"
    pos_per_au: int = 4  # Sec. II-C: 4 positive + 4 negative images per AU per batch
    neg_per_au: int = 4
    batch_size: int | None = None  # random / cost batches; None -> (pos + neg) x K, the oversampling size
    # augmentation magnitudes: the paper names the augmenters but not their ranges (Keras-style values)
    brightness: float = 0.3
    contrast: float = 0.3
    blur_sigma: tuple[float, float] = (0.1, 1.2)
    blur_p: float = 0.5
    zoom: tuple[float, float] = (0.9, 1.1)
    shift: float = 0.1
    rotation: float = 10.0
    # training (Sec. II-C / III)
    optimizer: str | None = None  # None -> adagrad for from-scratch models, adam for pretrained ones
    lr: float | None = None  # None -> 0.005 (adagrad) / 1e-4 (adam)
    epochs: int = 600
    steps_per_epoch: int = 300
    seed: int = 0

    def __post_init__(self) -> None:
        for name, value, valid in (("normalisation", self.normalisation, NORMALISATIONS),
                                   ("augmentation", self.augmentation, AUGMENTATIONS),
                                   ("balancing", self.balancing, BALANCING)):
            if value not in valid:
                raise ValueError(f"CNNStudyConfig.{name}={value!r}; choose one of {', '.join(valid)}")
        self.blur_sigma, self.zoom = tuple(self.blur_sigma), tuple(self.zoom)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CNNStudyConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise TypeError(f"unknown CNNStudyConfig field(s) {unknown}; valid: {', '.join(sorted(names))}")
        return cls(**d)

    def train_settings(self) -> tuple[str, float]:
        """(optimizer, lr) as the paper trains: Adagrad 0.005 for networks trained from scratch (the baseline,
        EmoNets, and any backbone given no ``weights``), Adam 1e-4 to finetune pretrained weights (Sec. III)."""
        opt = self.optimizer or ("adagrad" if self.weights is None else "adam")
        lr = self.lr if self.lr is not None else (0.005 if opt == "adagrad" else 1e-4)
        return opt, lr


# --------------------------------------------------------------------------------------------- data
def synthetic_bp4d(n_subjects: int = 41, seed: int = 0, **kwargs: Any) -> CanonicalDataset:
    """The synthetic "bp4d" preset with any number of subjects.

    The preset draws from BP4D's 41 real subject ids (so the official folds apply); for more subjects, further
    blocks of up to 41 are generated with other seeds (new identities) and their ids get a suffix (``F001_b``),
    after which :func:`aulib.data.folds.fold_split` deals subjects into seeded subject-exclusive folds.
    ``kwargs`` go to ``SynthConfig`` (sequences_per_subject, frames_per_sequence, image_size, au_strength ...)."""
    from aulib.data.synthetic import SynthConfig, generate

    blocks, left, b = [], n_subjects, 0
    while left > 0:
        n = min(41, left)
        ds = generate(SynthConfig(preset="bp4d", n_subjects=n, seed=seed + 1000 * b, **kwargs))
        if b:
            ds.frames["subject"] = ds.frames["subject"].astype(str) + "_" + "abcdefghijklmnopqrstuvwxyz"[b]
        blocks.append(ds)
        left -= n
        b += 1
    if len(blocks) == 1:
        return blocks[0]
    frames, images, offset = [], [], 0
    for ds in blocks:
        f = ds.frames.copy()
        f["image"] = np.arange(len(f)) + offset
        offset += len(f)
        frames.append(f)
        images.append(ds.image_batch(np.arange(len(ds))))
    meta = dataclasses.replace(blocks[0].meta, name=f"{blocks[0].meta.name}_{n_subjects}subjects")
    return CanonicalDataset(meta, pd.concat(frames, ignore_index=True),
                            np.concatenate([ds.landmarks for ds in blocks]), np.concatenate(images))


# --------------------------------------------------------------------------------------------- preprocessing
def study_template(size: int = 96) -> Template:
    """The 4-point template (outer eye corners 36/45, nose tip 30, chin 8) of ``aulib.data.align`` at ``size``."""
    base = TEMPLATES["cnn_study"]
    if size == base.size:
        return base
    pts = (base.points + 0.5) * size / base.size - 0.5  # pixel-centre convention
    return Template(f"cnn_study_{size}", size, 1, base.groups, pts)


def align_dataset(ds: CanonicalDataset, size: int = 96) -> CanonicalDataset:
    """Every frame aligned on 4 landmarks by a least-squares similarity and converted to grey (Sec. II-B).

    Returns an in-memory dataset with (size, size, 1) images and the landmarks moved into them."""
    tpl = study_template(size)
    n = len(ds)
    images = np.empty((n, size, size, 1), np.uint8)
    landmarks = np.empty((n, 68, 2), np.float32)
    for i in range(n):
        images[i], landmarks[i] = align_face(ds.image(i), ds.landmarks[i], tpl)
    frames = ds.frames.copy()
    frames["image"] = np.arange(n)
    if "path" in frames:
        frames = frames.drop(columns="path")
    meta = dataclasses.replace(ds.meta, name=f"{ds.meta.name}_aligned{size}", image_size=(size, size), channels=1)
    if hasattr(meta, "storage"):
        meta.storage = "packed"
    return CanonicalDataset(meta, frames, landmarks, images)


class InputNormalisation(nn.Module):
    """The five inputs of Table II (Sec. IV-A), with Keras ``ImageDataGenerator`` semantics.

    samplewise: statistics of each image over all its pixels; featurewise: one mean / std per channel over
    every pixel of the *training* set (call :meth:`fit` with training images only). ``eps`` guards flat images.
    """

    def __init__(self, kind: str = "raw", channels: int = 1, eps: float = 1e-6):
        super().__init__()
        if kind not in NORMALISATIONS:
            raise ValueError(f"unknown normalisation {kind!r}; choose one of {', '.join(NORMALISATIONS)}")
        self.kind, self.eps = kind, eps
        self.register_buffer("mean", torch.zeros(1, channels, 1, 1))
        self.register_buffer("std", torch.ones(1, channels, 1, 1))
        self.register_buffer("fitted", torch.tensor(False))

    @torch.no_grad()
    def fit(self, images: torch.Tensor | Sequence[torch.Tensor]) -> InputNormalisation:
        """Fit the featurewise statistics on training images ``(N, C, H, W)`` (or an iterable of such batches)."""
        batches = [images] if torch.is_tensor(images) else list(images)
        n, s, s2 = 0, 0.0, 0.0
        for b in batches:
            b = b.double()
            n += b.shape[0] * b.shape[2] * b.shape[3]
            s = s + b.sum(dim=(0, 2, 3))
            s2 = s2 + (b * b).sum(dim=(0, 2, 3))
        mean = s / n
        std = (s2 / n - mean**2).clamp_min(0).sqrt()  # population std, as numpy's / Keras'
        self.mean.copy_(mean.view(1, -1, 1, 1).float())
        self.std.copy_(std.view(1, -1, 1, 1).float())
        self.fitted.fill_(True)
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, C, H, W)
        k = self.kind
        if k == "raw":
            return x
        if k.startswith("featurewise") and not bool(self.fitted):
            raise RuntimeError(f"{k} needs statistics of the training set: call InputNormalisation.fit(train_images)")
        if k == "samplewise_centering":
            return x - x.mean(dim=(1, 2, 3), keepdim=True)
        if k == "samplewise_normalization":
            x = x - x.mean(dim=(1, 2, 3), keepdim=True)
            return x / (x.std(dim=(1, 2, 3), keepdim=True, unbiased=False) + self.eps)
        if k == "featurewise_centering":
            return x - self.mean
        return (x - self.mean) / (self.std + self.eps)  # featurewise_normalization


def augmentation(group: str, cfg: CNNStudyConfig | None = None) -> v2.Compose:
    """Augmentation group of Sec. IV-B on a sample dict (landmarks follow every geometric change).

    A: none. B: horizontal flip + random brightness and contrast. C: B + random blur + zoom.
    D: C + horizontal / vertical shift + rotation. "baseline": flip, shift, zoom (Sec. II-C).
    Flipping keeps the labels: all twelve AUs are bilateral, so a mirrored face shows the same AUs.
    """
    cfg = cfg or CNNStudyConfig()
    if group not in AUGMENTATIONS:
        raise ValueError(f"unknown augmentation group {group!r}; choose one of {', '.join(AUGMENTATIONS)}")
    flip = FaceHorizontalFlip(0.5)
    photometric = v2.ColorJitter(brightness=cfg.brightness, contrast=cfg.contrast)
    blur = v2.RandomApply([v2.GaussianBlur(kernel_size=5, sigma=cfg.blur_sigma)], p=cfg.blur_p)
    if group == "A":
        ops: list[nn.Module] = []
    elif group == "B":
        ops = [flip, photometric]
    elif group == "C":
        ops = [flip, photometric, blur, v2.RandomAffine(degrees=0, scale=cfg.zoom)]
    elif group == "D":
        ops = [flip, photometric, blur,
               v2.RandomAffine(degrees=cfg.rotation, translate=(cfg.shift, cfg.shift), scale=cfg.zoom)]
    else:  # baseline
        ops = [flip, v2.RandomAffine(degrees=0, translate=(cfg.shift, cfg.shift), scale=cfg.zoom)]
    ops.append(_Clamp01())
    return v2.Compose(ops)


class _Clamp01(nn.Module):
    """Keep pixel values in [0, 1] after brightness / contrast changes (the range FrameDataset promises)."""

    def forward(self, sample: dict) -> dict:
        from torchvision import tv_tensors

        out = dict(sample)
        out["image"] = tv_tensors.wrap(sample["image"].clamp(0, 1), like=sample["image"])
        return out


# --------------------------------------------------------------------------------------------- loss
def per_au_bce(logits: torch.Tensor, labels: torch.Tensor, valid: torch.Tensor,
               au_group: torch.Tensor | None = None, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Sec. II-C: BCE averaged over each AU's images, then over the AUs.

    logits, labels, valid: (B, K). ``au_group`` (B,) names the AU each image was drawn for by the 4+4
    balanced samplers: the image then counts only in that AU's loss (-1 = counts for every valid AU).
    ``weight`` (B, K) scales each term (the cost-manipulation weights of ``aulib.train.samplers.cost_weights``).
    AUs with no image in the batch are skipped.
    """
    mask = valid.float()  # (B, K)
    if au_group is not None:
        own = F.one_hot(au_group.clamp_min(0), logits.shape[1]).float()  # (B, K)
        own = torch.where((au_group < 0)[:, None], torch.ones_like(own), own)
        mask = mask * own
    bce = F.binary_cross_entropy_with_logits(logits.float(), labels.float(), reduction="none")  # (B, K)
    if weight is not None:
        bce = bce * weight
    count = mask.sum(0)  # (K,)
    per_au = (bce * mask).sum(0) / count.clamp_min(1)  # (K,) mean over each AU's images
    present = count > 0
    if not present.any():
        raise ValueError("per_au_bce: the batch has no valid label for any AU")
    return per_au[present].mean()


# --------------------------------------------------------------------------------------------- method
class CNNStudy(Method):
    """The study's AU detector: normalisation -> CNN -> K logits, trained with :func:`per_au_bce`."""

    def __init__(self, cfg: CNNStudyConfig, num_aus: int = 12):
        super().__init__()
        self.cfg = cfg
        self.num_aus = num_aus
        kw: dict[str, Any] = {}
        if cfg.backbone in ("baseline_cnn", "emonets", "lightcnn9", "lightcnn29"):
            kw["image_size"] = cfg.image_size
        self.normalise = InputNormalisation(cfg.normalisation, channels=1)
        self.model = create_backbone(cfg.backbone, in_chans=cfg.in_chans, num_classes=num_aus,
                                     weights=cfg.weights, **kw)

    def forward(self, images: torch.Tensor) -> torch.Tensor:  # (B, 1, S, S) in [0, 1] -> (B, K) logits
        x = self.normalise(images)
        if self.cfg.in_chans == 3 and x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)  # a grey face for RGB-pretrained weights
        return self.model(x)

    def training_step(self, batch: dict, step: int) -> dict[str, torch.Tensor]:
        logits = self(batch["image"])  # (B, K)
        loss = per_au_bce(logits, batch["labels"], batch["valid"], batch.get("au_group"), batch.get("weight"))
        return {"loss": loss}

    @torch.no_grad()
    def predict(self, loader, device: torch.device | str | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(probabilities (N, K), labels (N, K), valid (N, K)) over a loader of FrameDataset batches."""
        was = self.training
        self.eval()
        dev = torch.device(device) if device is not None else next(self.parameters()).device
        ps, ys, vs = [], [], []
        for b in loader:
            ps.append(torch.sigmoid(self(b["image"].to(dev)).float()).cpu())
            ys.append(b["labels"])
            vs.append(b["valid"])
        self.train(was)
        return torch.cat(ps).numpy(), torch.cat(ys).numpy(), torch.cat(vs).numpy().astype(bool)


# --------------------------------------------------------------------------------------------- Fig. 2 helpers
def _by_subject(ds: CanonicalDataset, rows: np.ndarray) -> dict[str, np.ndarray]:
    subj = ds.frames.subject.to_numpy()[rows]
    return {s: rows[subj == s] for s in sorted(set(subj))}


def frames_subset(ds: CanonicalDataset, rows: np.ndarray, fraction: float, seed: int = 0) -> np.ndarray:
    """Fig. 2 left: every training subject, ``fraction`` of each subject's frames (at least one), chosen at
    random; a smaller fraction's frames are a subset of a larger one's (same seed)."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    rng = np.random.default_rng(seed)
    keep = []
    for r in _by_subject(ds, np.asarray(rows)).values():
        order = r[rng.permutation(len(r))]
        keep.append(order[: max(1, int(round(fraction * len(r))))])
    return np.sort(np.concatenate(keep))


def subjects_subset(ds: CanonicalDataset, rows: np.ndarray, subject_fraction: float, frame_budget: float = 0.2,
                    seed: int = 0) -> np.ndarray:
    """Fig. 2 right: a fixed budget of ``frame_budget`` x len(rows) frames spread evenly over
    ``subject_fraction`` of the training subjects (each chosen subject gives budget / n_subjects frames, so
    more subjects means fewer frames from each). Subjects are nested across fractions (same seed)."""
    if not 0 < subject_fraction <= 1:
        raise ValueError(f"subject_fraction must be in (0, 1], got {subject_fraction}")
    rows = np.asarray(rows)
    groups = _by_subject(ds, rows)
    names = list(groups)
    rng = np.random.default_rng(seed)
    order = [names[i] for i in rng.permutation(len(names))]
    n_subj = max(1, int(round(subject_fraction * len(names))))
    chosen = order[:n_subj]
    budget = int(round(frame_budget * len(rows)))
    per = budget // n_subj
    short = [s for s in chosen if len(groups[s]) < per]
    if short:
        raise ValueError(f"a budget of {budget} frames over {n_subj} subjects needs {per} frames each; "
                         f"subject(s) {short[:5]} have fewer: raise subject_fraction or lower frame_budget")
    keep = [groups[s][rng.permutation(len(groups[s]))[:per]] for s in chosen]
    return np.sort(np.concatenate(keep))


def split_validation(ds: CanonicalDataset, rows: np.ndarray, fraction: float, seed: int = 0
                     ) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) rows: ``fraction`` of the subjects of ``rows`` (at least one when fraction > 0) are
    held out for choosing the best epoch (Sec. II-C), subject-exclusive. ``fraction=0`` -> (rows, empty)."""
    rows = np.asarray(rows)
    if fraction <= 0:
        return rows, rows[:0]
    groups = _by_subject(ds, rows)
    names = list(groups)
    if len(names) < 2:
        raise ValueError("a validation split needs at least 2 training subjects")
    n_val = min(len(names) - 1, max(1, int(round(fraction * len(names)))))
    val = {names[i] for i in np.random.default_rng(seed).permutation(len(names))[:n_val]}
    is_val = np.isin(ds.frames.subject.to_numpy()[rows], list(val))
    return rows[~is_val], rows[is_val]


# --------------------------------------------------------------------------------------------- driver
@dataclass
class RunResult:
    """What :func:`run_variant` returns: per-AU accuracy / F1 rows, the training history and the seconds."""

    per_au: pd.DataFrame
    history: pd.DataFrame
    seconds: float
    method: CNNStudy | None = field(default=None, repr=False)


class _Collate:
    """Stack FrameDataset items and add what the loss needs: ``au_group`` (the AU each position of a balanced
    batch was drawn for) and, for cost manipulation, ``weight`` (B, K)."""

    def __init__(self, groups: np.ndarray | None, cost: bool):
        self.groups = None if groups is None else torch.as_tensor(groups, dtype=torch.long)
        self.cost = cost

    def __call__(self, items: list[dict]) -> dict:
        from torch.utils.data import default_collate

        batch = default_collate(items)
        if self.groups is not None:
            batch["au_group"] = self.groups
        if self.cost:
            from aulib.train.samplers import cost_weights  # driver only: methods sit below train

            batch["weight"] = cost_weights(batch["labels"], batch["valid"])
        return batch


def make_train_loader(ds: CanonicalDataset, rows: np.ndarray, cfg: CNNStudyConfig, steps_per_epoch: int | None = None,
                      num_workers: int = 0):
    """DataLoader over ``rows`` with the augmentation group and balancing method of ``cfg``.

    ``oversampling`` / ``undersampling``: the core's 4+4-per-AU batch samplers (96 images for 12 AUs);
    ``random`` / ``cost``: shuffled batches of the same size (``cfg.batch_size`` overrides), with the
    per-batch cost weights for ``cost``."""
    from torch.utils.data import DataLoader

    from aulib.data.dataset import FrameDataset
    from aulib.train.samplers import make_batch_sampler

    rows = np.asarray(rows)
    labels, valid = ds.au_matrix()
    k = labels.shape[1]
    bs = cfg.batch_size or k * (cfg.pos_per_au + cfg.neg_per_au)
    sampler = make_batch_sampler(cfg.balancing, labels[rows], valid[rows], batch_size=bs, n_pos=cfg.pos_per_au,
                                 n_neg=cfg.neg_per_au, steps_per_epoch=steps_per_epoch or cfg.steps_per_epoch,
                                 seed=cfg.seed, aus=ds.aus)
    groups = getattr(sampler, "groups", None)
    data = FrameDataset(ds, rows, transform=augmentation(cfg.augmentation, cfg), size=cfg.image_size, channels=1)
    return DataLoader(data, batch_sampler=sampler, collate_fn=_Collate(groups, cfg.balancing == "cost"),
                      num_workers=num_workers)


def make_eval_loader(ds: CanonicalDataset, rows: np.ndarray, image_size: int = 96, batch_size: int = 256):
    from torch.utils.data import DataLoader

    from aulib.data.dataset import FrameDataset

    return DataLoader(FrameDataset(ds, np.asarray(rows), size=image_size, channels=1), batch_size=batch_size)


def training_images(ds: CanonicalDataset, rows: np.ndarray, image_size: int = 96) -> torch.Tensor:
    """The unaugmented training images (N, 1, S, S) in [0, 1]: what featurewise statistics are fitted on."""
    return torch.cat([b["image"] for b in make_eval_loader(ds, rows, image_size)])


def score(prob: np.ndarray, labels: np.ndarray, valid: np.ndarray, aus: Sequence[int]) -> pd.DataFrame:
    """Per-AU frame: accuracy on balanced batches (the study's metric: the expected accuracy of a batch with as
    many positives as negatives, (TPR + TNR) / 2, computed over every test frame instead of 3000 sampled
    batches) and F1 (the field's metric), both in %."""
    from aulib.eval.metrics import balanced_accuracy_per_au, f1_per_au

    acc = np.asarray(balanced_accuracy_per_au(labels, prob, valid), dtype=float)
    f1 = np.asarray(f1_per_au(labels, prob, valid), dtype=float)
    return pd.DataFrame({"au": [f"AU{a}" for a in aus], "accuracy": 100 * acc, "f1": 100 * f1})


def run_variant(ds: CanonicalDataset, train_rows: np.ndarray, test_rows: np.ndarray, cfg: CNNStudyConfig,
                val_rows: np.ndarray | None = None, device: str = "auto", progress: bool = False,
                keep_method: bool = False, num_workers: int = 0, **labels: Any) -> RunResult:
    """Train one configuration on ``train_rows`` of an aligned dataset and score it on ``test_rows``.

    With ``val_rows`` the model of the epoch with the best validation accuracy is kept (Sec. II-C: "the best
    validation model is tested"). ``labels`` (e.g. ``experiment="balancing", variant="cost"``) become columns
    of the per-AU result, together with the seed."""
    from aulib.train import TrainConfig, fit, seed_everything

    t0 = time.perf_counter()
    seed_everything(cfg.seed)
    k = len(ds.aus)
    method = CNNStudy(cfg, num_aus=k)
    if cfg.normalisation.startswith("featurewise"):
        method.normalise.fit(training_images(ds, train_rows, cfg.image_size))  # training rows only
    loader = make_train_loader(ds, train_rows, cfg, num_workers=num_workers)
    opt, lr = cfg.train_settings()
    evaluate = None
    if val_rows is not None and len(val_rows):
        val_loader = make_eval_loader(ds, val_rows, cfg.image_size)

        def evaluate(m: CNNStudy, epoch: int) -> dict[str, float]:
            p, y, v = m.predict(val_loader)
            return {"val_accuracy": float(np.nanmean(score(p, y, v, ds.aus)["accuracy"]))}

    tcfg = TrainConfig(epochs=cfg.epochs, optimizer=opt, lr=lr, steps_per_epoch=cfg.steps_per_epoch,
                       seed=cfg.seed, device=device, progress=progress,
                       monitor="val_accuracy" if evaluate else None)
    history = fit(method, loader, tcfg, out_dir=None, evaluate=evaluate)
    prob, y, v = method.predict(make_eval_loader(ds, test_rows, cfg.image_size))
    per_au = score(prob, y, v, ds.aus)
    per_au.insert(0, "seed", cfg.seed)
    for i, (name, value) in enumerate(labels.items()):
        per_au.insert(i, name, value)
    return RunResult(per_au, history, time.perf_counter() - t0, method if keep_method else None)


# --------------------------------------------------------------------------------------------- the paper's claims
def _avg_by_seed(results: pd.DataFrame, experiment: str, variant: Any) -> pd.Series:
    """Mean accuracy over AUs per (fold, seed) of one cell of the study."""
    d = results[(results.experiment == experiment) & (results.variant.astype(str) == str(variant))]
    keys = [c for c in ("fold", "seed") if c in d]
    return d.groupby(keys).accuracy.mean()


def _delta(results: pd.DataFrame, experiment: str, a: Any, b: Any) -> tuple[float, float, int]:
    """(mean, sd, n) over (fold, seed) of accuracy(b) - accuracy(a); NaN when a cell is missing."""
    sa, sb = _avg_by_seed(results, experiment, a), _avg_by_seed(results, experiment, b)
    d = (sb - sa).dropna()
    if d.empty:
        return float("nan"), float("nan"), 0
    return float(d.mean()), float(d.std(ddof=1)) if len(d) > 1 else float("nan"), len(d)


# (claim, experiment, from-variant, to-variant, the paper's difference in points, expected sign: +1 better,
# 0 "about the same" (|delta| < 1 point in the paper))
CLAIMS: tuple[tuple[str, str, Any, Any, float, int], ...] = (
    ("LightCNN-9 beats the baseline", "table1", "Baseline", "LightCNN-9", 79.1 - 76.3, 1),
    ("EmoNets beats the baseline", "table1", "Baseline", "EmoNets", 77.8 - 76.3, 1),
    ("VGG-16 beats the baseline", "table1", "Baseline", "VGG-16", 81.8 - 76.3, 1),
    ("sample-wise centring beats raw input", "normalisation", "raw", "samplewise_centering", 1.0, 1),
    ("sample-wise normalisation beats raw input", "normalisation", "raw", "samplewise_normalization", 0.9, 1),
    ("feature-wise normalisation beats raw input", "normalisation", "raw", "featurewise_normalization", 0.9, 1),
    ("feature-wise centring is about raw input", "normalisation", "raw", "featurewise_centering", -0.1, 0),
    ("augmentation helps (D vs A)", "augmentation", "A", "D", 3.8, 1),
    ("more augmenters help (C vs B)", "augmentation", "B", "C", 1.5, 1),
    ("C and D are about the same", "augmentation", "C", "D", 0.1, 0),
    ("oversampling beats random sampling", "balancing", "random", "oversampling", 1.5, 1),
    ("cost manipulation beats random sampling", "balancing", "random", "cost", 1.2, 1),
    ("undersampling beats random sampling", "balancing", "random", "undersampling", 0.2, 1),
    ("oversampling beats undersampling", "balancing", "undersampling", "oversampling", 1.3, 1),
    ("more frames of the same subjects: about no change", "frames", "min", "max", 0.0, 0),
    ("more subjects for the same frames: better", "subjects", "min", "max", float("nan"), 1),
)


def claims_table(results: pd.DataFrame, tolerance: float = 1.0) -> pd.DataFrame:
    """Each claim of the paper against ``results`` (the tidy per-AU frame of the notebook, columns experiment,
    variant, fold, seed, au, accuracy). ``delta`` is aulib's mean paired difference (points) over folds x seeds,
    ``sd`` its spread. Verdict: for "better" claims, *holds* when delta > max(sd, 0) and > 0, *opposite* when
    delta < -max(sd, 0), else *unclear*; for "about the same" claims, *holds* when |delta| <= max(tolerance,
    sd), else *does not hold*. Fig. 2 claims compare the smallest and the largest fraction."""
    rows = []
    for claim, exp, a, b, paper, sign in CLAIMS:
        if exp in ("frames", "subjects"):
            d = results[results.experiment == exp]
            if d.empty:
                continue
            fr = sorted(pd.to_numeric(d.variant).unique())
            a, b = fr[0], fr[-1]
        mean, sd, n = _delta(results, exp, a, b)
        if n == 0:
            continue
        spread = 0.0 if np.isnan(sd) else sd
        if sign == 1:
            verdict = "holds" if mean > spread and mean > 0 else ("opposite" if mean < -spread else "unclear")
        else:
            verdict = "holds" if abs(mean) <= max(tolerance, spread) else "does not hold"
        rows.append({"claim": claim, "compared": f"{b} vs {a}", "paper_delta": paper, "aulib_delta": mean,
                     "aulib_sd": sd, "n_runs": n, "verdict": verdict})
    return pd.DataFrame(rows)
