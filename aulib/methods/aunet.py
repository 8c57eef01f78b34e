"""AUNet (Yang et al., "Towards Robust Facial Action Units Detection", aunet.md): AU detection on the features of
a frozen face-alignment network (AU-FAN), regularised by a label VAE (AU-VAE) and fed frame differences (AU-TDN).

Training order, as the authors train (implementation notes):
  1. FAN: load a public checkpoint, or (synthetic default) train aulib's own FAN on landmark heatmaps
     (:func:`pretrain_fan`), then freeze it.
  2. VAE: train on the training fold's labels + U(-0.2, 0.2) noise (Eq.2, :func:`pretrain_vae`), then freeze.
  3. The head (:class:`AUNetMethod`): weighted BCE (Eq.1) + gamma * latent consistency (Eq.3, Eq.4).

Variants (Table VI + Sec. V-F): ``au_fan``, ``au_vae``, ``au_tdn``, ``aunet``, ``resnet18``, ``resnet18_a``.
At test time the logits of a frame and its mirror image are averaged.

Because FAN is frozen, its features are a pure function of the (augmented) frame. The CPU profiles therefore
compute them once per frame and its mirror (:func:`fan_feature_bank`) and train the heads on the bank with the
mirror as the (shared-across-the-triplet) augmentation; the GPU profile runs FAN on every augmented batch.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from aulib.data.dataset import FrameDataset, temporal_neighbours
from aulib.data.schema import CanonicalDataset
from aulib.data.stats import correlation, inverse_rate_weights
from aulib.losses.latent_consistency import latent_consistency
from aulib.losses.vae_elbo import vae_loss
from aulib.losses.weighted_bce import weighted_bce
from aulib.methods.base import Method
from aulib.models.aunet import AUVAE, AUHead, ResNet18A
from aulib.models.fan import FAN, freeze, heatmap_argmax, landmark_heatmaps, load_fan_weights, nme

VARIANTS: dict[str, dict] = {  # Table VI (+ ResNet18 / ResNet18-A of Table XIII)
    "au_fan": {"backbone": "fan", "vae": False, "tdn": False},
    "au_vae": {"backbone": "fan", "vae": True, "tdn": False},
    "au_tdn": {"backbone": "fan", "vae": False, "tdn": True},
    "aunet": {"backbone": "fan", "vae": True, "tdn": True},
    "resnet18": {"backbone": "resnet18", "vae": False, "tdn": False},
    "resnet18_a": {"backbone": "resnet18", "vae": True, "tdn": True},
}
PAPER_NAMES = {"au_fan": "AU-FAN", "au_vae": "AU-VAE", "au_tdn": "AU-TDN", "aunet": "AUNet",
               "resnet18": "ResNet18", "resnet18_a": "ResNet18-A"}


@dataclass
class AUNetConfig:
    """Everything AUNet needs; defaults are the paper's (256 px, full widths). Profiles shrink them."""

    variant: str = "aunet"
    n_aus: int = 12
    image_size: int = 256
    channels: int = 3
    # FAN (frozen feature extractor)
    fan_weights: str | None = None     # local public-FAN checkpoint; None -> train aulib's own (pretrain_fan)
    fan_width: int = 256
    fan_depth: int = 4
    fan_epochs: int = 30
    fan_lr: float = 1e-3
    fan_batch_size: int = 32
    fan_sigma: float = 1.0             # heatmap Gaussian, in heatmap cells
    fan_fg_weight: float = 10.0        # extra weight of the heatmap peaks in the MSE
    fan_augment: bool = True           # rotation / scale / shift / flip while training aulib's FAN
    # head
    head_width: int = 256
    head_hidden: int = 128
    head_blocks: int = 4
    alpha: float = 0.9                 # TDN fusion: alpha * static + beta * motion
    beta: float = 0.1
    temporal_offset: int = 10          # T: frames t-T, t, t+T
    resnet_channels: tuple[int, ...] = (64, 128, 256, 512)
    resnet_stem: int = 64
    # AU-VAE
    latent: int = 8                    # k = 8 for BP4D, 6 DISFA, 5 AffWild2
    kl_weight: float = 0.1             # lambda of Eq.2, from {0.1, 0.2, 0.3}
    vae_noise: float = 0.2             # labels + U(-0.2, 0.2)
    vae_epochs: int = 100
    vae_lr: float = 1e-3
    vae_batch_size: int = 128
    gamma: float = 1.0                 # Eq.4
    consistency: str = "official"      # "paper" (Eq.3 both moments) | "official" (MSE(mu) + mean(var))
    align: str = "latent"              # "latent" (the paper) | "label" (aligning decoder outputs, Sec. V-E)
    # head training (AdamW 1e-4, x0.3 every 4 epochs, 12 epochs, batch 64)
    epochs: int = 12
    lr: float = 1e-4
    weight_decay: float = 0.0
    batch_size: int = 64
    step_size: int = 4
    lr_decay: float = 0.3
    mirror_test: bool = True
    feature_bank: bool = False         # precompute frozen-FAN features (CPU profiles)
    augment: bool = True               # on-the-fly geometric augmentation (image path only)

    def __post_init__(self):
        if self.variant not in VARIANTS:
            raise ValueError(f"unknown AUNet variant {self.variant!r}; valid variants: {', '.join(VARIANTS)}")
        if self.consistency not in ("paper", "official"):
            raise ValueError(f"consistency must be 'paper' or 'official', got {self.consistency!r}")
        if self.align not in ("latent", "label"):
            raise ValueError(f"align must be 'latent' or 'label', got {self.align!r}")
        self.resnet_channels = tuple(self.resnet_channels)

    @classmethod
    def from_dict(cls, d: dict, **overrides) -> AUNetConfig:
        names = set(cls.__dataclass_fields__)
        unknown = sorted(set(d) - names)
        if unknown:
            raise TypeError(f"unknown AUNetConfig field(s) {unknown}; valid fields: {', '.join(sorted(names))}")
        return cls(**{**d, **overrides})

    def train_config(self, **kw):
        from aulib.train import TrainConfig  # train sits above methods; imported lazily by helpers only

        return TrainConfig(epochs=self.epochs, optimizer="adamw", lr=self.lr, weight_decay=self.weight_decay,
                           schedule="step", step_size=self.step_size, gamma=self.lr_decay, **kw)


def build_fan(cfg: AUNetConfig) -> FAN:
    return FAN(n_stacks=2, width=cfg.fan_width, depth=cfg.fan_depth, in_chans=3)


# ------------------------------------------------------------------------------------------- 1. FAN pretraining
class FANPretrain(Method):
    """Heatmap regression with intermediate supervision on both stacks (FAN's training objective)."""

    def __init__(self, fan: FAN, sigma: float = 1.0, fg_weight: float = 10.0):
        super().__init__()
        self.fan, self.sigma, self.fg_weight = fan, sigma, fg_weight

    def training_step(self, batch: dict, step: int) -> dict[str, torch.Tensor]:
        x, pts = batch["image"], batch["landmarks"]                 # (B, C, H, W), (B, 68, 2) pixels
        heatmaps = self.fan(x)                                      # n_stacks x (B, 68, h, w)
        stride = x.shape[-1] / heatmaps[0].shape[-1]
        target = landmark_heatmaps(pts, heatmaps[0].shape[-2:], stride, self.sigma)
        # foreground-weighted MSE: plain MSE first settles on all-zero maps (the peaks cover ~2% of the grid)
        w = 1.0 + self.fg_weight * target
        terms = {f"stack{i}": ((h - target) ** 2 * w).mean() * target.shape[1] for i, h in enumerate(heatmaps)}
        return {"loss": sum(terms.values()), **terms}


def pretrain_fan(ds: CanonicalDataset, rows: np.ndarray, cfg: AUNetConfig, out_dir: str | Path | None = None,
                 device: str = "auto", progress: bool = True) -> tuple[FAN, pd.DataFrame]:
    """Train aulib's own FAN on ground-truth landmark heatmaps of ``rows`` (synthetic faces), save it to
    ``out_dir/fan.pt`` and return it frozen with the training history. If ``out_dir/fan.pt`` exists it is
    loaded instead (strictly; a mismatch names the keys)."""
    fan = build_fan(cfg)
    path = Path(out_dir) / "fan.pt" if out_dir is not None else None
    if path is not None and path.is_file():
        load_fan_weights(fan, path)
        return freeze(fan), pd.DataFrame()
    from aulib.train import fit

    transform = None
    if cfg.fan_augment:  # pose variety (the real FAN saw large poses); landmarks follow, flips swap L/R indices
        from aulib.data.transforms import geometric

        transform = geometric(rotation=15, scale=(0.9, 1.1), shift=0.08, flip=0.5)
    loader = DataLoader(FrameDataset(ds, rows, size=cfg.image_size, channels=3, transform=transform),
                        batch_size=cfg.fan_batch_size, shuffle=True, drop_last=len(rows) > cfg.fan_batch_size)
    tc = _train_cfg(epochs=cfg.fan_epochs, optimizer="adam", lr=cfg.fan_lr, schedule="cosine", device=device,
                    progress=progress)
    hist = fit(FANPretrain(fan, cfg.fan_sigma, cfg.fan_fg_weight), loader, tc)
    fan = fan.cpu()
    if path is not None:
        from aulib.train import atomic_torch_save

        atomic_torch_save(fan.state_dict(), path)
    return freeze(fan), hist


def _train_cfg(**kw):
    from aulib.train import TrainConfig

    return TrainConfig(**kw)


@torch.no_grad()
def fan_landmarks(fan: FAN, ds: CanonicalDataset, rows: np.ndarray, size: int, batch_size: int = 64,
                  device: str | torch.device = "cpu", perturb: bool = False, seed: int = 0
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(predicted, true) landmarks (N, 68, 2) in pixels of the ``size`` input: argmax of the last stack.
    ``perturb`` first moves each face by a seeded random rotation (+-15 deg), scale (0.9-1.1) and shift (8%)."""
    transform = None
    if perturb:
        from aulib.data.transforms import geometric

        transform = geometric(rotation=15, scale=(0.9, 1.1), shift=0.08, flip=0.0)
    fan = fan.to(device).eval()
    pred, true = [], []
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    for b in DataLoader(FrameDataset(ds, rows, size=size, channels=3, transform=transform), batch_size=batch_size):
        hm = fan(b["image"].to(device))[-1]
        pred.append(heatmap_argmax(hm.float().cpu(), size / hm.shape[-1]).numpy())
        true.append(b["landmarks"].numpy())
    torch.random.set_rng_state(state)
    return np.concatenate(pred), np.concatenate(true)


def landmark_nme(fan: FAN, ds: CanonicalDataset, rows: np.ndarray, size: int, device="cpu",
                 untrained: FAN | None = None) -> pd.DataFrame:
    """Tidy per-frame NME of the FAN, of the 'mean shape' reference (the average landmark layout of the
    evaluated frames: a strong baseline on near-aligned faces) and optionally of an ``untrained`` FAN, on the
    frames as stored ("aligned") and after a random rotation/scale/shift ("perturbed")."""
    out = []
    for setting, perturb in (("aligned", False), ("perturbed", True)):
        models = {"FAN (heatmap argmax)": fan, **({"untrained FAN": untrained} if untrained is not None else {})}
        for name, model in models.items():
            pred, true = fan_landmarks(model, ds, rows, size, device=device, perturb=perturb)
            out.append(pd.DataFrame({"row": rows, "setting": setting, "predictor": name, "nme": nme(pred, true)}))
        mean_shape = np.broadcast_to(true.mean(0, keepdims=True), true.shape)
        out.append(pd.DataFrame({"row": rows, "setting": setting, "predictor": "mean shape",
                                 "nme": nme(mean_shape, true)}))
    return pd.concat(out, ignore_index=True)


# ------------------------------------------------------------------------------------------- 2. VAE pretraining
class _Labels(Dataset):
    def __init__(self, labels: np.ndarray):
        self.labels = torch.as_tensor(labels, dtype=torch.float32)

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return {"labels": self.labels[i]}


class VAEPretrain(Method):
    """Eq.2: reconstruct the clean labels y from y~ = y + U(-noise, noise)."""

    def __init__(self, vae: AUVAE, kl_weight: float, noise: float):
        super().__init__()
        self.vae, self.kl_weight, self.noise = vae, kl_weight, noise

    def training_step(self, batch: dict, step: int) -> dict[str, torch.Tensor]:
        y = batch["labels"]                                            # (B, K)
        y_tilde = y + (torch.rand_like(y) * 2 - 1) * self.noise         # corrupted labels
        recon, mu, logvar = self.vae(y_tilde)
        return vae_loss(recon, y, mu, logvar, self.kl_weight)           # Eq.2


def pretrain_vae(labels: np.ndarray, valid: np.ndarray, cfg: AUNetConfig, device: str = "auto",
                 progress: bool = True) -> tuple[AUVAE, pd.DataFrame]:
    """Train the AU-VAE on the training fold's fully-known label vectors; returns it frozen + history."""
    keep = valid.all(1)
    if keep.sum() < 2:
        raise ValueError(f"only {int(keep.sum())} training frames have every AU known; the VAE needs label vectors")
    from aulib.train import fit

    vae = AUVAE(labels.shape[1], cfg.latent)
    loader = DataLoader(_Labels(labels[keep]), batch_size=cfg.vae_batch_size, shuffle=True)
    hist = fit(VAEPretrain(vae, cfg.kl_weight, cfg.vae_noise), loader,
               _train_cfg(epochs=cfg.vae_epochs, optimizer="adam", lr=cfg.vae_lr, device=device, progress=progress))
    return freeze(vae.cpu()), hist


# ------------------------------------------------------------------------------------------- 3. the AU detector
class AUNetMethod(Method):
    """AU-FAN / AU-VAE / AU-TDN / AUNet / ResNet18(-A) on one training fold.

    batch keys: ``image`` (B, C, H, W) or ``images`` (B, 3, C, H, W) for TDN variants, or the frozen-FAN bank's
    ``features`` (B, C', h, w) / ``feature_triplet`` (B, 3, C', h, w); ``labels`` (B, K); ``valid`` (B, K).
    """

    def __init__(self, cfg: AUNetConfig, au_weights: np.ndarray, fan: FAN | None = None, vae: AUVAE | None = None):
        super().__init__()
        self.cfg = cfg
        spec = VARIANTS[cfg.variant]
        self.tdn, self.uses_vae, self.backbone = spec["tdn"], spec["vae"], spec["backbone"]
        if self.backbone == "fan":
            if fan is None:
                raise ValueError(f"variant {cfg.variant!r} needs a (frozen) FAN; pass fan=")
            self.fan = freeze(fan)
            self.head = AUHead(fan.feature_channels, cfg.n_aus, cfg.head_width, cfg.head_hidden, cfg.head_blocks,
                               tdn=self.tdn, alpha=cfg.alpha, beta=cfg.beta)
        else:
            self.fan = None
            self.head = ResNet18A(cfg.n_aus, cfg.channels, tdn=self.tdn, hidden=cfg.head_hidden,
                                  channels=cfg.resnet_channels, stem_width=cfg.resnet_stem,
                                  alpha=cfg.alpha, beta=cfg.beta)
        if self.uses_vae:
            if vae is None:
                raise ValueError(f"variant {cfg.variant!r} needs the pretrained AU-VAE; pass vae=")
            self.vae = freeze(vae)
        else:
            self.vae = None
        self.register_buffer("au_weights", torch.as_tensor(au_weights, dtype=torch.float32))  # Eq.1 w_i

    def train(self, mode: bool = True):
        """The frozen FAN and VAE stay in eval mode (fixed BatchNorm statistics) whatever the trainer asks."""
        super().train(mode)
        for frozen in (self.fan, self.vae):
            if frozen is not None:
                frozen.eval()
        return self

    # --- forward ----------------------------------------------------------------------------------------------
    @torch.no_grad()
    def fan_features(self, images: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> frozen FAN AU features (N, C', H/4, W/4)."""
        return self.fan.au_features(images)

    def forward(self, batch: dict, mirror: bool = False) -> torch.Tensor:
        """AU logits (B, K). ``mirror=True`` uses the horizontally flipped input (bank: its mirror features)."""
        if self.backbone == "resnet18":
            x = batch["images"] if self.tdn else batch["image"]
            return self.head(x.flip(-1) if mirror else x)
        if self.tdn:
            if "feature_triplet" in batch:
                f = batch["feature_triplet_mirror" if mirror else "feature_triplet"].float()  # (B, 3, C', h, w)
            else:
                x = batch["images"]                                            # (B, 3, C, H, W)
                x = x.flip(-1) if mirror else x
                f = self.fan_features(x.flatten(0, 1)).unflatten(0, x.shape[:2])
            return self.head(f[:, 1], f[:, 0], f[:, 2])
        if "features" in batch:
            f = batch["features_mirror" if mirror else "features"].float()
        else:
            x = batch["image"]
            f = self.fan_features(x.flip(-1) if mirror else x)
        return self.head(f)

    def training_step(self, batch: dict, step: int) -> dict[str, torch.Tensor]:
        y, valid = batch["labels"], batch["valid"]                             # (B, K)
        logits = self(batch)                                                   # (B, K)
        cls = weighted_bce(logits, y, self.au_weights, valid)                  # Eq.1
        out = {"cls": cls}
        loss = cls
        if self.uses_vae:
            cons = self.consistency(torch.sigmoid(logits), y * valid)
            loss = cls + self.cfg.gamma * cons                                 # Eq.4
            out["cons"] = cons
        return {"loss": loss, **out}

    def consistency(self, p: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Distance between predictions p and labels y seen through the frozen VAE: in its latent space (Eq.3),
        or with ``align="label"`` in label space, the paper's rejected alternative (Sec. V-E, "aligning output of
        the decoder"), which aulib reads as BCE between the decoded prediction D(mu_p) and the labels."""
        mu_p, lv_p = self.vae.encode(p)                                        # (B, d) each
        if self.cfg.align == "label":
            return F.binary_cross_entropy_with_logits(self.vae.decode(mu_p), y)
        with torch.no_grad():
            mu_g, lv_g = self.vae.encode(y)
        return latent_consistency(mu_p, lv_p, mu_g, lv_g, self.cfg.consistency)

    @torch.no_grad()
    def predict(self, loader, device: str | torch.device = "cpu") -> tuple[np.ndarray, np.ndarray]:
        """(logits (N, K), rows (N,)); with ``cfg.mirror_test`` the mean of the frame's and its mirror's logits."""
        self.to(device).eval()
        logits, rows = [], []
        for b in loader:
            b = {k: (v.to(device) if torch.is_tensor(v) else v) for k, v in b.items()}
            z = self(b)
            if self.cfg.mirror_test:
                z = 0.5 * (z + self(b, mirror=True))
            logits.append(z.float().cpu())
            rows.append(b["row"].cpu())
        return torch.cat(logits).numpy(), torch.cat(rows).numpy()


# ------------------------------------------------------------------------------------------- data plumbing
def require_temporal_order(ds: CanonicalDataset, offset: int) -> tuple[np.ndarray, np.ndarray]:
    """(prev, next) rows of every frame within its own sequence; a dataset with no temporal order raises
    :class:`DatasetError` saying so (TDN never pairs unrelated frames)."""
    return temporal_neighbours(ds, offset)


@torch.no_grad()
def fan_feature_bank(fan: FAN, ds: CanonicalDataset, size: int, batch_size: int = 64,
                     device: str | torch.device = "cpu", dtype=torch.float16, progress: bool = True) -> dict:
    """Frozen-FAN AU features of every frame of ``ds`` and of its mirror: {"features", "mirror"} each
    (N, C', size/4, size/4), stored in ``dtype`` on the CPU."""
    from tqdm.auto import tqdm

    fan = fan.to(device).eval()
    feats, mirrored = [], []
    loader = DataLoader(FrameDataset(ds, size=size, channels=3), batch_size=batch_size)
    for b in tqdm(loader, desc="FAN features", disable=not progress, leave=False):
        x = b["image"].to(device)
        feats.append(fan.au_features(x).to("cpu", dtype))
        mirrored.append(fan.au_features(x.flip(-1)).to("cpu", dtype))
    return {"features": torch.cat(feats), "mirror": torch.cat(mirrored)}


class FeatureBankDataset(Dataset):
    """Items of a :func:`fan_feature_bank` for ``rows``: features (and triplets t-T, t, t+T within the frame's
    own sequence), labels, valid, row. ``flip_p`` mirrors all three frames together (shared augmentation);
    at test time (``flip_p=0``) both orientations are returned for mirror averaging."""

    def __init__(self, bank: dict, ds: CanonicalDataset, rows: np.ndarray, temporal_offset: int | None = None,
                 flip_p: float = 0.0):
        self.bank, self.rows, self.flip_p = bank, np.asarray(rows, dtype=np.int64), flip_p
        self.labels, self.valid = ds.au_matrix()
        self.offset = temporal_offset
        if temporal_offset is not None:
            self.prev, self.next = require_temporal_order(ds, temporal_offset)

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i: int) -> dict:
        row = int(self.rows[i])
        flip = self.flip_p > 0 and bool(torch.rand(()) < self.flip_p)
        main, other = ("mirror", "features") if flip else ("features", "mirror")
        out = {"labels": torch.from_numpy(self.labels[row]), "valid": torch.from_numpy(self.valid[row]),
               "row": torch.tensor(row)}
        if self.offset is None:
            out["features"] = self.bank[main][row]
            if self.flip_p == 0:
                out["features_mirror"] = self.bank[other][row]
        else:
            idx = [int(self.prev[row]), row, int(self.next[row])]
            out["feature_triplet"] = self.bank[main][idx]                       # (3, C', h, w)
            if self.flip_p == 0:
                out["feature_triplet_mirror"] = self.bank[other][idx]
        return out


def make_loader(ds: CanonicalDataset, rows: np.ndarray, cfg: AUNetConfig, train: bool, bank: dict | None = None,
                num_workers: int = 0) -> DataLoader:
    """The loader a variant needs: triplets for TDN variants, frozen-FAN bank items when ``bank`` is given."""
    tdn = VARIANTS[cfg.variant]["tdn"]
    offset = cfg.temporal_offset if tdn else None
    if tdn:
        require_temporal_order(ds, cfg.temporal_offset)  # clear error before building anything
    if bank is not None and VARIANTS[cfg.variant]["backbone"] == "fan":
        data = FeatureBankDataset(bank, ds, rows, offset, flip_p=0.5 if train else 0.0)
    else:
        transform = None
        if train and cfg.augment:
            from aulib.data.transforms import geometric

            transform = geometric(rotation=15, scale=(0.75, 1.25), shift=10 / 256, flip=0.5)
        channels = 3 if VARIANTS[cfg.variant]["backbone"] == "fan" else cfg.channels
        data = FrameDataset(ds, rows, transform=transform, temporal_offset=offset, size=cfg.image_size,
                            channels=channels)
    return DataLoader(data, batch_size=cfg.batch_size, shuffle=train, num_workers=num_workers,
                      drop_last=train and len(rows) > cfg.batch_size)


def au_weights(labels: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Eq.1 weights w_i = (1/r_i) / sum_k (1/r_k). An AU with no positive in a (tiny) training fold would get an
    infinite weight; there the rates get one pseudo-positive and a warning says so."""
    try:
        return inverse_rate_weights(labels, valid)
    except ValueError as e:
        import warnings

        warnings.warn(f"{e}; using rates with one pseudo-positive per AU", stacklevel=2)
        y = np.where(valid, labels, 0)
        r = (y.sum(0) + 1) / (valid.sum(0) + 2)
        return (1 / r) / (1 / r).sum()


def train_variant(ds: CanonicalDataset, train_rows: np.ndarray, cfg: AUNetConfig, fan: FAN | None = None,
                  vae: AUVAE | None = None, bank: dict | None = None, device: str = "auto",
                  progress: bool = True, out_dir: str | Path | None = None, seed: int = 0
                  ) -> tuple[AUNetMethod, pd.DataFrame]:
    """Build and train one variant on ``train_rows``; Eq.1 weights come from the same rows."""
    from aulib.train import fit, seed_everything

    labels, valid = ds.au_matrix()
    seed_everything(seed)  # the head's initialisation depends only on the seed, not on earlier runs
    method = AUNetMethod(cfg, au_weights(labels[train_rows], valid[train_rows]), fan=fan, vae=vae)
    loader = make_loader(ds, train_rows, cfg, train=True, bank=bank)
    hist = fit(method, loader, cfg.train_config(device=device, progress=progress, seed=seed), out_dir=out_dir)
    return method, hist


def predictions_frame(method: AUNetMethod, ds: CanonicalDataset, rows: np.ndarray, bank: dict | None = None,
                      device: str = "cpu", **labels) -> pd.DataFrame:
    """Tidy per-frame x AU predictions: row, subject, sequence, frame, au, logit, prob, pred, label, valid, + labels."""
    loader = make_loader(ds, rows, method.cfg, train=False, bank=bank)
    logits, got = method.predict(loader, device)
    y, v = ds.au_matrix()
    f = ds.frames.iloc[got]
    k = len(ds.aus)
    prob = 1 / (1 + np.exp(-logits))
    out = pd.DataFrame({
        "row": np.repeat(got, k), "subject": np.repeat(f.subject.to_numpy(), k),
        "sequence": np.repeat(f.sequence.to_numpy(), k), "frame": np.repeat(f.frame.to_numpy(), k),
        "au": np.tile([f"AU{a}" for a in ds.aus], len(got)), "logit": logits.ravel(), "prob": prob.ravel(),
        "pred": (prob.ravel() > 0.5).astype(int), "label": y[got].ravel().astype(int), "valid": v[got].ravel()})
    for key, val in labels.items():
        out[key] = val
    return out


def run_folds(ds: CanonicalDataset, cfg: AUNetConfig, runs: dict[str, dict], fan: FAN | None = None,
              folds=(1, 2, 3), k: int = 3, bank: dict | None = None, device: str = "auto", seed: int = 0,
              progress: bool = True, vaes: dict | None = None) -> tuple[pd.DataFrame, pd.DataFrame, dict, dict]:
    """Train every run on every subject-exclusive fold and predict its test subjects.

    runs: name -> AUNetConfig overrides, e.g. ``{"AU-FAN": {"variant": "au_fan"}, "AU-VAE": {"variant": "au_vae"}}``.
    Each fold trains its own VAE on its training labels (Sec. IV-B: "each training set owns its VAE").
    ``vaes`` ({fold: frozen VAE}) reuses VAEs of an earlier call instead of training new ones.
    Returns (tidy predictions: fold x run x frame x AU, per-epoch histories, {fold: VAE}, {(fold, run): method}).
    """
    from aulib.data.folds import fold_split
    from aulib.train import resolve_device

    dev = resolve_device(device)
    labels, valid = ds.au_matrix()
    preds, hists, models = [], [], {}
    vaes = dict(vaes or {})
    for fold in folds:
        train_rows, test_rows = fold_split(ds, fold, k)
        vae = vaes.get(fold)
        if vae is None and any(VARIANTS[o.get("variant", cfg.variant)]["vae"] for o in runs.values()):
            vae, h = pretrain_vae(labels[train_rows], valid[train_rows], cfg, device=str(dev), progress=progress)
            vaes[fold] = vae
            hists.append(h.assign(fold=fold, run="VAE pretraining"))
        for name, overrides in runs.items():
            rcfg = replace(cfg, **overrides)
            method, h = train_variant(ds, train_rows, rcfg, fan=fan, vae=vae, bank=bank, device=str(dev),
                                      progress=progress, seed=seed)
            hists.append(h.assign(fold=fold, run=name))
            models[(fold, name)] = method.cpu()
            preds.append(predictions_frame(method, ds, test_rows, bank, dev, run=name, variant=rcfg.variant,
                                           fold=fold))
    return pd.concat(preds, ignore_index=True), pd.concat(hists, ignore_index=True), vaes, models


def prediction_breaks(preds: pd.DataFrame) -> pd.DataFrame:
    """Fig. 10's 'fewer breaks': per run, the number of on/off switches of the thresholded predictions per
    100 frames (within sequences), next to the same count for the ground truth."""
    df = preds.sort_values(["run", "fold", "subject", "sequence", "au", "frame"])
    g = df.groupby(["run", "fold", "subject", "sequence", "au"], sort=False)
    switches = g.pred.apply(lambda s: int(np.abs(np.diff(s.to_numpy())).sum())).rename("pred_switches")
    truth = g.label.apply(lambda s: int(np.abs(np.diff(s.to_numpy())).sum())).rename("label_switches")
    n = g.size().rename("frames")
    out = pd.concat([switches, truth, n], axis=1).groupby(level="run").sum()
    return pd.DataFrame({"pred_switches_per_100_frames": 100 * out.pred_switches / out.frames,
                         "label_switches_per_100_frames": 100 * out.label_switches / out.frames})


# ------------------------------------------------------------------------------------------- Table X metrics
def adjacency(binary: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """AUNet's adjacency matrix (Fig. 8): Pearson correlation between AU columns; undefined entries -> 0."""
    return np.nan_to_num(correlation(binary, valid), nan=0.0)


def adjacency_l2(pred: np.ndarray, labels: np.ndarray, valid: np.ndarray | None = None) -> float:
    """Table X 'L2 distance': Frobenius norm of (A_pred - A_label) divided by K (aulib's normalisation, so
    the number is comparable across AU sets); pred, labels binary (N, K)."""
    a, b = adjacency(pred, valid), adjacency(labels, valid)
    return float(np.linalg.norm(a - b) / a.shape[0])


def dependency_f1(pred: np.ndarray, labels: np.ndarray, valid: np.ndarray | None = None,
                  threshold: float = 0.1) -> float:
    """Table X 'dependency F1' (aulib's reading of [65]): AU pairs i<j whose correlation exceeds
    ``threshold`` in magnitude are dependency edges with a sign (+/-); F1 of the predictions' signed edges
    against the labels' signed edges."""
    a, b = adjacency(pred, valid), adjacency(labels, valid)
    iu = np.triu_indices(a.shape[0], 1)
    ep = np.sign(a[iu]) * (np.abs(a[iu]) > threshold)
    eg = np.sign(b[iu]) * (np.abs(b[iu]) > threshold)
    tp = float(((ep == eg) & (eg != 0)).sum())
    n_pred, n_true = float((ep != 0).sum()), float((eg != 0).sum())
    if n_pred == 0 and n_true == 0:
        return 1.0
    return 0.0 if tp == 0 else 2 * tp / (n_pred + n_true)


def cost_table(image_size: int = 256, n_aus: int = 12, device: str = "cpu") -> pd.DataFrame:
    """Trainable parameters and GMACs (FlopCounterMode FLOPs / 2) of the full-size models next to the paper's.

    The paper's "flops" are multiply-accumulates (its AU-FAN head figure 3.02G matches our MAC count)."""
    from torch.utils.flop_counter import FlopCounterMode

    paper = {"FAN (frozen)": (12.11, 13.97), "AU-FAN head": (1.86, 3.02), "AUNet head (TDN)": (2.66, 3.84),
             "ResNet18": (11.38, 2.35), "ResNet18-A": (math.nan, math.nan)}
    c = 768
    s = image_size // 4
    f = torch.zeros(1, c, s, s, device=device)
    x = torch.zeros(1, 3, image_size, image_size, device=device)
    models = {
        "FAN (frozen)": (FAN(), lambda m: m.au_features(x)),
        "AU-FAN head": (AUHead(c, n_aus), lambda m: m(f)),
        "AUNet head (TDN)": (AUHead(c, n_aus, tdn=True), lambda m: m(f, f, f)),
        "ResNet18": (ResNet18A(n_aus, tdn=False), lambda m: m(x)),
        "ResNet18-A": (ResNet18A(n_aus, tdn=True), lambda m: m(x[:, None].expand(-1, 3, -1, -1, -1))),
    }
    rows = []
    for name, (m, run) in models.items():
        m = m.to(device).eval()
        with FlopCounterMode(display=False) as fc, torch.no_grad():
            run(m)
        rows.append({"model": name, "params_M": sum(p.numel() for p in m.parameters()) / 1e6,
                     "GMACs": fc.get_total_flops() / 2e9, "paper_params_M (reported)": paper[name][0],
                     "paper_GFLOPs (reported)": paper[name][1]})
    return pd.DataFrame(rows)


def config_dict(cfg: AUNetConfig) -> dict:
    return asdict(cfg)


__all__ = ["VARIANTS", "PAPER_NAMES", "AUNetConfig", "AUNetMethod", "FANPretrain", "VAEPretrain", "pretrain_fan",
           "pretrain_vae", "fan_feature_bank", "FeatureBankDataset", "make_loader", "train_variant",
           "predictions_frame", "adjacency", "adjacency_l2", "dependency_f1", "cost_table", "landmark_nme",
           "fan_landmarks", "require_temporal_order", "build_fan", "run_folds", "prediction_breaks"]
