"""AUNet (Yang et al., "Towards Robust Facial Action Units Detection", aunet.md): AU detection on the features of
a frozen face-alignment network (AU-FAN), regularised by a label VAE (AU-VAE) and fed frame differences (AU-TDN).

This module holds the algorithm only: the config, the three training objectives and the AU detector. The staged
training drivers (FAN pretraining, VAE pretraining, head training, the frozen-FAN feature bank, loaders, folds,
the paper's tables and claims) live in :mod:`aulib.experiments.aunet`.

Training order, as the authors train (implementation notes):
  1. FAN: load a public checkpoint, or (synthetic default) train aulib's own FAN on landmark heatmaps
     (:class:`FANPretrain`), then freeze it.
  2. VAE: train on the training fold's labels + U(-0.2, 0.2) noise (Eq.2, :class:`VAEPretrain`), then freeze.
  3. The head (:class:`AUNetMethod`): weighted BCE (Eq.1) + gamma * latent consistency (Eq.3, Eq.4).

Variants (Table VI + Sec. V-F): ``au_fan``, ``au_vae``, ``au_tdn``, ``aunet``, ``resnet18``, ``resnet18_a``.
At test time the logits of a frame and its mirror image are averaged.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from aulib.config import from_dict
from aulib.data.stats import inverse_rate_weights
from aulib.losses.latent_consistency import latent_consistency
from aulib.losses.vae_elbo import vae_loss
from aulib.losses.weighted_bce import weighted_bce
from aulib.methods.base import Method
from aulib.models.aunet import AUVAE, AUHead, ResNet18A
from aulib.models.fan import FAN, freeze, landmark_heatmaps

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
    fan_strict: bool = True            # False: a checkpoint's extra keys (e.g. stacks 3-4) are ignored, with a warning
    fan_pool: str = "max"              # AUNet's FAN (official code); "avg" for face-alignment (1adrianb) checkpoints
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
    consistency: str = "official"      # "paper" (Eq.3 both moments) | "official" (MSE(mu) + mean(std))
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
        return from_dict(cls, d, **overrides)


def build_fan(cfg: AUNetConfig) -> FAN:
    """The two-stack FAN of the paper at ``cfg``'s width, hourglass depth and pooling (RGB input)."""
    return FAN(n_stacks=2, width=cfg.fan_width, depth=cfg.fan_depth, in_chans=3, pool=cfg.fan_pool)


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


# ------------------------------------------------------------------------------------------- 2. VAE pretraining
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


def au_weights(labels: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Eq.1 weights w_i = (1/r_i) / sum_k (1/r_k). An AU with no positive in a (tiny) training fold would get an
    infinite weight; there the rates get one pseudo-positive and a warning says so."""
    try:
        return inverse_rate_weights(labels, valid)
    except ValueError as e:
        warnings.warn(f"{e}; using rates with one pseudo-positive per AU", stacklevel=2)
        y = np.where(valid, labels, 0)
        r = (y.sum(0) + 1) / (valid.sum(0) + 2)
        return (1 / r) / (1 / r).sum()


# ------------------------------------------------------------------------------------------- 3. the AU detector

class AUNetMethod(Method):
    """AU-FAN / AU-VAE / AU-TDN / AUNet / ResNet18(-A) on one training fold.

    batch keys: ``image`` (B, C, H, W) or ``images`` (B, 3, C, H, W) for TDN variants, or the frozen-FAN bank's
    ``features`` (B, C', h, w) / ``feature_triplet`` (B, 3, C', h, w); ``labels`` (B, K); ``valid`` (B, K).
    """

    def __init__(self, cfg: AUNetConfig, au_weights: np.ndarray, fan: FAN | None = None, vae: AUVAE | None = None,
                 build_parts: bool = False):
        """``build_parts=True`` builds an untrained FAN / AU-VAE of ``cfg``'s shapes where none is given: the
        empty model that ``load_state_dict`` fills (:func:`aulib.inference.load_model`), never one to train."""
        super().__init__()
        self.cfg = cfg
        spec = VARIANTS[cfg.variant]
        self.tdn, self.uses_vae, self.backbone = spec["tdn"], spec["vae"], spec["backbone"]
        if build_parts:
            fan = fan if fan is not None or self.backbone != "fan" else build_fan(cfg)
            vae = vae if vae is not None or not self.uses_vae else AUVAE(cfg.n_aus, cfg.latent)
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

    def forward(self, batch: dict | torch.Tensor, mirror: bool = False) -> torch.Tensor:
        """AU logits (B, K). ``mirror=True`` uses the horizontally flipped input (bank: its mirror features).
        A plain image tensor (B, C, H, W) goes to :meth:`image_logits` (what ``aulib predict`` passes)."""
        if torch.is_tensor(batch):
            return self.image_logits(batch)
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

    def image_logits(self, x: torch.Tensor) -> torch.Tensor:
        """AU logits (B, K) of single faces x (B, C, H, W), as the paper tests (the mean of the frame's and its
        mirror's logits when ``cfg.mirror_test``). A grey face is repeated to the FAN's three channels. A still
        photo has no frames t-T and t+T: TDN variants get the frame as its own neighbours, so their motion
        input (the frame differences) is zero and only the static branch (alpha) carries information."""
        if self.backbone == "fan" and x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)                                        # (B, 3, H, W)
        key, x = ("images", x.unsqueeze(1).expand(-1, 3, -1, -1, -1)) if self.tdn else ("image", x)
        z = self({key: x})
        return 0.5 * (z + self({key: x}, mirror=True)) if self.cfg.mirror_test else z

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


__all__ = ["VARIANTS", "PAPER_NAMES", "AUNetConfig", "AUNetMethod", "FANPretrain", "VAEPretrain", "au_weights",
           "build_fan"]
