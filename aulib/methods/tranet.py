"""TRA-Net as an aulib method: config, AU-to-region map, Table 2 ablations, training step, fold driver.

Paper: Xia, "Upper, Middle and Lower Region Learning for Facial Action Unit Detection" (tranet.md).

    cfg = TRANetConfig(aus=[1, 2, 4, 6, 9, 12, 25, 26])          # DISFA's 8, grouped by region from AU_REGION
    method = TRANetMethod(cfg.with_variant("SENet-50 + HM"))      # any row of Table 2
    out = method.training_step({"image": x, "labels": y, "valid": v}, step=0)   # {"loss", "bce_upper", ...}

Loss (§4.1): the sum over the three branches of each branch's multi-label BCE over its own AUs.
Training (§4.1): SGD momentum 0.9, weight decay 1e-3, lr 1e-3, batches of 64 drawn with per-AU positive
weights, 100 batches an epoch, early stopping after 10 epochs without gain. The paper watched the *test*
fold for early stopping; :func:`train_variant` watches subjects held out from the training fold instead.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from aulib.data.align import Template, align_face
from aulib.data.dataset import FrameDataset
from aulib.data.schema import CanonicalDataset
from aulib.methods.base import Method
from aulib.models.tranet import REGIONS, TRANet

DISFA_AUS: tuple[int, ...] = (1, 2, 4, 6, 9, 12, 25, 26)

# Where each AU acts, as data: the paper's three groups for DISFA (upper 1, 2, 4; middle 6, 9; lower 12, 25,
# 26) extended by facial anatomy to the other AUs aulib's datasets carry (BP4D's 12, GFT, Aff-Wild2, ...).
# Brows and lids are upper; cheek, nose and upper-lip raisers middle; mouth and chin lower.
AU_REGION: dict[int, str] = {
    1: "upper", 2: "upper", 4: "upper", 5: "upper", 7: "upper", 41: "upper", 42: "upper", 43: "upper",
    44: "upper", 45: "upper", 46: "upper",
    6: "middle", 9: "middle", 10: "middle", 11: "middle", 13: "middle", 38: "middle", 39: "middle",
    12: "lower", 14: "lower", 15: "lower", 16: "lower", 17: "lower", 18: "lower", 20: "lower", 22: "lower",
    23: "lower", 24: "lower", 25: "lower", 26: "lower", 27: "lower", 28: "lower",
}

# Table 2's rows as switches of the model (names as in the paper; "TRA-Net" is the full model).
VARIANTS: dict[str, dict[str, Any]] = {
    "SENet-50": {"head": "global"},
    "SENet-50 + CBAM": {"hard_masks": False},
    "SENet-50 + HM": {"cbam_channel": False, "cbam_spatial": False},
    "SENet-50 + HM + CBAM w/o AT": {"cbam_channel": False},
    "SENet-50 + HM + CBAM w/o ST": {"cbam_spatial": False},
    "TRA-Net with residual structure": {"cbam_residual": True},
    "TRA-Net": {},
}
_SWITCHES = ("head", "hard_masks", "cbam_channel", "cbam_spatial", "cbam_residual")


def group_aus(aus: Sequence[int], region_of: Mapping[int, str] | None = None) -> dict[str, list[int]]:
    """``{"upper": [...], "middle": [...], "lower": [...]}`` for ``aus`` (kept in their order; empty regions
    dropped). An AU without a region raises, listing the AUs the map knows."""
    region_of = AU_REGION if region_of is None else region_of
    missing = [a for a in aus if int(a) not in region_of]
    if missing:
        raise KeyError(f"no face region for AU(s) {missing}; the map knows AUs {sorted(region_of)} "
                       f"(pass region_of= or TRANetConfig.regions to add them)")
    bad = {a: r for a, r in region_of.items() if a in aus and r not in REGIONS}
    if bad:
        raise ValueError(f"unknown region(s) in the AU map {bad}; valid regions: {', '.join(REGIONS)}")
    out = {r: [int(a) for a in aus if region_of[int(a)] == r] for r in REGIONS}
    return {r: a for r, a in out.items() if a}


def face_centre_row(landmarks: np.ndarray, image_height: int) -> float:
    """The face-centre row as a fraction of the height: the mean over frames of the mid-point of nose root
    (27) and nose tip (30). ``landmarks`` (N, 68, 2) pixel (x, y) with pixel-centre coordinates."""
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.ndim != 3 or lm.shape[1:] != (68, 2):
        raise ValueError(f"landmarks must be (N, 68, 2), got {lm.shape}")
    y = 0.5 * (lm[:, 27, 1] + lm[:, 30, 1])  # (N,)
    return float(np.clip((y.mean() + 0.5) / image_height, 0.0, 1.0))


def tranet_template(size: int = 224, channels: int = 3) -> Template:
    """§4.1's alignment at any size: nose mid-point (27, 30) at the image centre, chin (8) near the bottom."""
    c = (size - 1) / 2
    return Template("tranet", size, channels, ((27, 30), (8,)), np.array([[c, c], [c, 0.94 * (size - 1)]]))


def align_dataset(ds: CanonicalDataset, size: int, channels: int | None = None) -> CanonicalDataset:
    """Every frame of ``ds`` aligned by :func:`tranet_template` (packed, in memory); landmarks follow."""
    channels = channels or ds.meta.channels
    tpl = tranet_template(size, channels)
    images = np.empty((len(ds), size, size, channels), np.uint8)
    landmarks = np.empty((len(ds), 68, 2), np.float32)
    for i in range(len(ds)):
        images[i], landmarks[i] = align_face(ds.image(i), ds.landmarks[i], tpl)
    meta = dataclasses.replace(ds.meta, image_size=(size, size), channels=channels, storage="packed",
                               provenance={**ds.meta.provenance, "aligned": f"tranet template {size}px"})
    frames = ds.frames.drop(columns=[c for c in ("path",) if c in ds.frames]).assign(image=np.arange(len(ds)))
    return CanonicalDataset(meta, frames, landmarks, images)


@dataclass
class TRANetConfig:
    """Model, ablation switches and §4.1's training settings. ``regions=None`` groups ``aus`` by AU_REGION."""

    aus: list[int] = field(default_factory=lambda: list(DISFA_AUS))
    regions: dict[str, list[int]] | None = None
    variant: str = "TRA-Net"  # a key of VARIANTS (label only; the switches below are what the model reads)
    # model
    backbone: str = "seresnet50"  # any ResNet-shaped registry name; "seresnet_tiny" for smoke / cpu
    backbone_kwargs: dict[str, Any] = field(default_factory=dict)
    weights: str | None = None  # local VGGFace2 SE-ResNet50 state dict (timm key names); never downloaded
    frozen_blocks: int = 2
    image_size: int = 224
    in_chans: int = 3
    centre_row: float = 0.5  # face-centre row / height; 0.5 for the tranet template
    decoder_channels: tuple[int, int, int] = (512, 256, 256)
    fc_hidden: int = 256
    reduction: int = 16
    head: str = "branches"
    hard_masks: bool = True
    cbam_channel: bool = True
    cbam_spatial: bool = True
    cbam_residual: bool = False
    # training (§4.1)
    optimizer: str = "sgd"
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 1e-3
    batch_size: int = 64
    batches_per_epoch: int = 100
    max_epochs: int = 100
    patience: int = 10
    hflip: float = 0.5
    val_fraction: float = 0.2  # of the training subjects, watched for early stopping
    val_max_frames: int | None = None  # subsample the validation frames (speed)
    num_workers: int = 0  # DataLoader workers (GPU runs: image loading is the bottleneck)

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise KeyError(f"unknown TRA-Net variant {self.variant!r}; valid: {', '.join(VARIANTS)}")
        if self.regions is None:
            self.regions = group_aus(self.aus)
        self.decoder_channels = tuple(self.decoder_channels)

    def with_variant(self, name: str, **overrides: Any) -> TRANetConfig:
        """This config switched to Table 2's row ``name`` (the switches not named by the row are reset)."""
        if name not in VARIANTS:
            raise KeyError(f"unknown TRA-Net variant {name!r}; valid: {', '.join(VARIANTS)}")
        base = {f.name: f.default for f in dataclasses.fields(self) if f.name in _SWITCHES}
        return dataclasses.replace(self, variant=name, **{**base, **VARIANTS[name], **overrides})

    def train_config(self, **overrides: Any):
        """The :class:`aulib.train.TrainConfig` of §4.1 (early stopping on validation mean F1)."""
        from aulib.train import TrainConfig

        kw = dict(epochs=self.max_epochs, optimizer=self.optimizer, lr=self.lr, momentum=self.momentum,
                  weight_decay=self.weight_decay, schedule="none", steps_per_epoch=self.batches_per_epoch,
                  monitor="val_f1", monitor_mode="max", patience=self.patience)
        return TrainConfig(**{**kw, **overrides})

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TRANetConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise TypeError(f"unknown TRANetConfig field(s) {unknown}; valid fields: {', '.join(sorted(names))}")
        return cls(**d)


def build_model(cfg: TRANetConfig) -> TRANet:
    return TRANet(cfg.aus, cfg.regions, backbone=cfg.backbone, in_chans=cfg.in_chans, weights=cfg.weights,
                  frozen_blocks=cfg.frozen_blocks, centre_row=cfg.centre_row, decoder_channels=cfg.decoder_channels,
                  fc_hidden=cfg.fc_hidden, head=cfg.head, hard_masks=cfg.hard_masks, cbam_channel=cfg.cbam_channel,
                  cbam_spatial=cfg.cbam_spatial, cbam_residual=cfg.cbam_residual, reduction=cfg.reduction,
                  backbone_kwargs=cfg.backbone_kwargs)


def branch_bce(logits: torch.Tensor, labels: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Multi-label BCE of one branch, averaged over its known labels. logits, labels, valid: (B, k)."""
    per = F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype), reduction="none")  # (B, k)
    v = valid.to(per.dtype)
    return (per * v).sum() / v.sum().clamp_min(1.0)


class TRANetMethod(Method):
    """TRA-Net (or one of its ablations) with the summed per-branch BCE."""

    def __init__(self, cfg: TRANetConfig):
        super().__init__()
        self.cfg = cfg
        self.model = build_model(cfg)

    def training_step(self, batch: dict, step: int) -> dict[str, torch.Tensor]:
        x, y, v = batch["image"], batch["labels"], batch["valid"]  # (B, C, S, S), (B, K), (B, K)
        out = self.model.forward_branches(x)  # {region: (B, k_r)}
        terms = {}
        for r, logits in out.items():
            cols = self.model.columns(r)
            terms[f"bce_{r}"] = branch_bce(logits, y[:, cols], v[:, cols])
        loss = torch.stack(list(terms.values())).sum()  # §4.1: the three branches' losses summed
        return {"loss": loss, **terms}

    def parameter_groups(self):
        return [p for p in self.model.parameters() if p.requires_grad]

    @torch.no_grad()
    def predict(self, loader, device: str | torch.device = "cpu") -> tuple[np.ndarray, np.ndarray]:
        """(probabilities (N, K), dataset rows (N,)) over ``loader`` (FrameDataset batches)."""
        was = self.training
        self.eval().to(device)
        probs, rows = [], []
        for b in loader:
            probs.append(torch.sigmoid(self.model(b["image"].to(device)).float()).cpu())
            rows.append(b["row"])
        self.train(was)
        return torch.cat(probs).numpy(), torch.cat(rows).numpy()


# ---------------------------------------------------------------------------------------- data and driver
def train_loader(ds: CanonicalDataset, rows: np.ndarray, cfg: TRANetConfig, seed: int = 0) -> DataLoader:
    """Batches of ``cfg.batch_size`` drawn with per-AU positive weights (the TRA sampler), random flips."""
    from aulib.data.transforms import FaceHorizontalFlip
    from aulib.train.samplers import WeightedRandomBatchSampler, positive_sample_weights

    labels, valid = ds.au_matrix()
    data = FrameDataset(ds, rows, transform=FaceHorizontalFlip(cfg.hflip) if cfg.hflip else None,
                        size=cfg.image_size, channels=cfg.in_chans)
    y, v = labels[rows], valid[rows]
    has_pos = ((y > 0.5) & v).any(0)  # an AU with no positive here cannot be up-weighted: leave it out
    w = (positive_sample_weights(y[:, has_pos], v[:, has_pos]) if has_pos.any()
         else np.ones(len(rows)))  # (N,) frames with rare AUs weigh more
    sampler = WeightedRandomBatchSampler(w, cfg.batch_size, cfg.batches_per_epoch, seed=seed)
    return DataLoader(data, batch_sampler=sampler, num_workers=cfg.num_workers,
                      persistent_workers=cfg.num_workers > 0)


def eval_loader(ds: CanonicalDataset, rows: np.ndarray, cfg: TRANetConfig, batch_size: int = 256) -> DataLoader:
    return DataLoader(FrameDataset(ds, rows, size=cfg.image_size, channels=cfg.in_chans), batch_size=batch_size,
                      num_workers=cfg.num_workers)


def split_validation(ds: CanonicalDataset, rows: np.ndarray, fraction: float, seed: int = 0,
                     max_frames: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(fit_rows, val_rows): whole subjects of ``rows`` held out for early stopping (at least one)."""
    rows = np.asarray(rows)
    subjects = np.array(sorted(ds.frames.subject.iloc[rows].unique()))
    if fraction <= 0 or len(subjects) < 2:
        return rows, rows[:0]
    rng = np.random.default_rng(seed)
    n_val = max(1, int(round(fraction * len(subjects))))
    val_subj = set(rng.choice(subjects, n_val, replace=False))
    is_val = ds.frames.subject.iloc[rows].isin(val_subj).to_numpy()
    val = rows[is_val]
    if max_frames is not None and len(val) > max_frames:
        val = np.sort(rng.choice(val, max_frames, replace=False))
    return rows[~is_val], val


def train_variant(ds: CanonicalDataset, train_rows: np.ndarray, cfg: TRANetConfig, seed: int = 0,
                  device: str = "auto", progress: bool = False, out_dir=None) -> tuple[TRANetMethod, pd.DataFrame]:
    """Train ``cfg`` on ``train_rows`` with early stopping on held-out training subjects."""
    from aulib.train import fit, resolve_device, seed_everything

    seed_everything(seed)
    fit_rows, val_rows = split_validation(ds, train_rows, cfg.val_fraction, seed, cfg.val_max_frames)
    method = TRANetMethod(cfg)
    labels, valid = ds.au_matrix()
    dev = resolve_device(device)
    evaluate = None
    if len(val_rows):
        vloader = eval_loader(ds, val_rows, cfg)

        def evaluate(m: TRANetMethod, epoch: int) -> dict[str, float]:
            from aulib.eval.metrics import mean_f1

            p, r = m.predict(vloader, dev)
            return {"val_f1": mean_f1(labels[r], p, valid[r])}

    tcfg = cfg.train_config(seed=seed, device=str(dev), progress=progress)
    if evaluate is None:
        tcfg = dataclasses.replace(tcfg, monitor=None, patience=None)
    hist = fit(method, train_loader(ds, fit_rows, cfg, seed), tcfg, out_dir=out_dir, evaluate=evaluate)
    return method, hist


def run_variants(ds: CanonicalDataset, cfg: TRANetConfig, variants: Sequence[str] = tuple(VARIANTS),
                 folds: Sequence[int] = (1, 2, 3), seeds: Sequence[int] = (0,), k: int = 3, device: str = "auto",
                 progress: bool = True, keep: Sequence[str] = ("TRA-Net",)) -> tuple[pd.DataFrame, dict]:
    """Train and test every Table 2 variant on subject-exclusive folds (:func:`aulib.eval.crossval.run_folds`).

    Returns (tidy per-AU table: variant, fold, seed, au, f1, accuracy, ... plus epochs, best_epoch, train_s;
    ``{(variant, fold, seed): method}`` for the variants in ``keep``, for the notebook's pictures).
    """
    from aulib.eval.crossval import run_folds

    kept: dict = {}
    tables = []
    for variant in variants:
        vcfg = cfg.with_variant(variant)

        def train_and_predict(train_rows, test_rows, fold, seed, vcfg=vcfg, variant=variant):
            t0 = time.perf_counter()
            method, hist = train_variant(ds, train_rows, vcfg, seed=seed, device=device)
            train_s = time.perf_counter() - t0
            probs, rows = method.predict(eval_loader(ds, test_rows, vcfg), next(method.parameters()).device)
            assert np.array_equal(rows, test_rows)  # eval loader keeps the order
            if variant in keep:
                kept[(variant, fold, seed)] = method.cpu()
            n = len(ds.aus)
            return {"probs": probs, "metrics": {"epochs": np.full(n, len(hist)), "train_s": np.full(n, train_s),
                                                "best_epoch": np.full(n, hist.attrs.get("best_epoch") or len(hist))}}

        tables.append(run_folds(ds, train_and_predict, k=k, folds=folds, seeds=seeds, variant=variant,
                                progress=progress))
    return pd.concat(tables, ignore_index=True), kept


# ------------------------------------------------------------------------------------ the paper's numbers
_T1_METHODS = ("CMS", "LP", "DRML", "EAC", "DSIN", "JAA", "SRERL", "ARL", "STRAL", "TRA")
_T1_F1 = {  # Table 1, F1-frame on DISFA (3-fold), per AU in DISFA_AUS order, then the paper's Avg
    "CMS": (40.2, 44.3, 53.2, 57.1, 50.3, 73.5, 81.1, 59.7, 57.4),
    "LP": (29.9, 24.7, 72.7, 46.8, 49.6, 72.9, 93.8, 65.0, 56.9),
    "DRML": (17.3, 17.7, 37.4, 29.0, 10.7, 37.7, 38.5, 20.1, 26.7),
    "EAC": (41.5, 26.4, 66.4, 50.7, 80.5, 89.3, 88.9, 15.6, 48.5),
    "DSIN": (42.4, 39.0, 68.4, 28.6, 46.8, 70.8, 90.4, 42.2, 53.6),
    "JAA": (43.7, 46.2, 56.0, 41.4, 44.7, 69.6, 88.3, 58.4, 56.0),
    "SRERL": (45.7, 47.8, 59.6, 47.1, 45.6, 73.5, 84.3, 43.6, 55.9),
    "ARL": (43.9, 42.1, 63.6, 41.8, 40.0, 76.2, 95.2, 66.8, 58.7),
    "STRAL": (52.2, 47.4, 68.9, 47.8, 56.7, 72.5, 91.3, 67.6, 63.0),
    "TRA": (56.9, 61.5, 72.6, 45.2, 46.0, 67.5, 89.5, 33.1, 59.0),
}
_T1_ACC = {  # Table 1, accuracy
    "CMS": (91.6, 94.7, 79.9, 82.6, 95.2, 87.8, 86.3, 80.7, 87.3),
    "EAC": (85.6, 84.9, 79.1, 69.1, 88.1, 90.0, 80.5, 64.8, 80.6),
    "JAA": (93.4, 96.1, 86.9, 91.4, 95.8, 91.2, 93.4, 93.2, 92.7),
    "ARL": (92.1, 92.7, 88.5, 91.6, 95.9, 93.9, 97.3, 94.3, 93.3),
    "STRAL": (94.9, 93.5, 89.5, 90.4, 96.8, 92.4, 94.9, 94.0, 93.3),
    "TRA": (97.3, 97.9, 93.5, 96.2, 97.6, 94.2, 95.9, 94.3, 95.9),
}
_T2 = {  # Table 2, F1-frame of the ablations (the full TRA-Net is Table 1's TRA row)
    "SENet-50": (27.4, 25.8, 70.3, 29.3, 36.6, 64.1, 88.7, 34.0, 47.0),
    "SENet-50 + CBAM": (35.4, 39.4, 66.9, 31.2, 39.4, 67.4, 89.9, 30.0, 49.9),
    "SENet-50 + HM": (33.0, 37.0, 58.1, 46.7, 50.0, 68.7, 90.2, 31.5, 51.9),
    "SENet-50 + HM + CBAM w/o AT": (45.2, 47.8, 66.5, 41.1, 41.3, 72.3, 87.1, 41.0, 55.3),
    "SENet-50 + HM + CBAM w/o ST": (45.2, 45.8, 65.8, 47.3, 55.1, 70.5, 89.4, 33.3, 56.2),
    "TRA-Net with residual structure": (48.9, 49.4, 63.1, 46.8, 47.3, 70.2, 89.8, 34.8, 56.3),
    "TRA-Net": _T1_F1["TRA"],
}
_COLS = [f"AU{a}" for a in DISFA_AUS] + ["Avg"]


def paper_table1(metric: str = "f1") -> pd.DataFrame:
    """The paper's Table 1 (``metric`` "f1" or "accuracy"): rows AU1..AU26 + Avg, one column per method."""
    src = {"f1": _T1_F1, "accuracy": _T1_ACC}
    if metric not in src:
        raise KeyError(f"metric must be one of {', '.join(src)}, got {metric!r}")
    return pd.DataFrame({m: v for m, v in src[metric].items()}, index=_COLS).rename_axis("au")


def paper_table2() -> pd.DataFrame:
    """The paper's Table 2 (F1 of the ablations; TRA-Net from Table 1): rows variants, columns AUs + Avg."""
    return pd.DataFrame.from_dict(_T2, orient="index", columns=_COLS).rename_axis("variant")


# The paper's claims as paired comparisons (a vs b over the listed AUs; None = all of the dataset's AUs).
CLAIMS: tuple[tuple[str, str, str, tuple[int, ...] | None], ...] = (
    ("hard masks help upper-face AUs", "TRA-Net", "SENet-50 + CBAM", (1, 2, 4)),
    ("hard masks help upper-face AUs (no CBAM)", "SENet-50 + HM", "SENet-50", (1, 2, 4)),
    ("hard masks help overall", "TRA-Net", "SENet-50 + CBAM", None),
    ("no residual beats residual", "TRA-Net", "TRA-Net with residual structure", None),
    ("channel attention matters", "TRA-Net", "SENet-50 + HM + CBAM w/o AT", None),
    ("spatial attention matters", "TRA-Net", "SENet-50 + HM + CBAM w/o ST", None),
    ("CBAM helps on top of hard masks", "TRA-Net", "SENet-50 + HM", None),
    ("attention adds nothing for lower-face AUs", "TRA-Net", "SENet-50", (12, 25, 26)),
)


def claims_table(table: pd.DataFrame, value: str = "f1") -> pd.DataFrame:
    """Each claim of :data:`CLAIMS` measured on a tidy per-AU table (variant, fold, seed, au, f1, ...):
    mean of a and b, their difference and a paired t-test over (fold, seed, AU) pairs. Claims whose variants
    are missing from ``table`` are skipped."""
    from aulib.eval.stats import paired_ttest

    rows = []
    for claim, a, b, aus in CLAIMS:
        if not {a, b} <= set(table.variant):
            continue
        sel = table if aus is None else table[table.au.isin([f"AU{x}" for x in aus])]
        ta, tb = sel[sel.variant == a], sel[sel.variant == b]
        if ta.empty or tb.empty:
            continue
        n_pairs = len(ta)
        res = paired_ttest(ta, tb, value=value) if n_pairs >= 2 else {"p": float("nan"), "n": n_pairs}
        ma, mb = float(ta[value].mean()), float(tb[value].mean())
        rows.append({"claim": claim, "a": a, "b": b, "aus": "all" if aus is None else ",".join(f"AU{x}" for x in aus),
                     f"{value}_a": ma, f"{value}_b": mb, "diff": ma - mb, "p": res["p"], "n_pairs": res["n"],
                     "direction_as_paper": bool(ma > mb) if "nothing" not in claim else None})
    return pd.DataFrame(rows)
