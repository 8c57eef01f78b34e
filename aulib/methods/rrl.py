"""RRL: self-supervised facial AU learning with region and relation learning (Song & Liu; rrl.md).

BYOL-style pretraining of an encoder f on unlabeled faces with three terms (Eq.7):

    global   (Eq.2)    online prediction of view 1 regresses the target projection of view 2 (and back)
    local    (Eq.3)    per-AU vectors pooled from f's feature map with landmark attention maps (Sec. 2.2)
    relation (Eq.4-6)  OT between online and target AU vectors priced by C = 1 - M (AU co-occurrence)

    L_all = a1 L_glo + a2 L_loc + a3 L_corr,   (a1, a2, a3) = (0.4, 0.6, 1.0)            (Eq.7)

Online network: encoder f_theta, local head (3x3 conv + map-weighted pooling), projector g_theta, predictor
q_theta. Target network: EMA copies of f, the local head and g (Eq.1), m cosine 0.98 -> 1.0.
Only f is kept for the downstream linear protocol.

Batches: ``image`` (B, 2, C, H, W) two augmented views and ``landmarks`` (B, 2, 68, 2) their landmarks
(:class:`TwoViewAugment` makes them from a :class:`aulib.data.dataset.FrameDataset` sample); a batch with one
view (B, C, H, W) is used as both views (the "no augmentation" ablation). The AU attention maps are built in
the step from the *transformed* landmarks, so they follow the flips.

Where the paper is silent (documented choices): the local vectors come from the stride-16 stage of f (14x14
for a 224 input, the paper's map size; Swin-T stage 3, VGG-16 block 5), the global vector from the last
stage; the OT (Eq.5-6) pairs the online predictions q(z_k), q(z_g) with the target projections z_k = g(o_k),
z_g = g(o_g) (see :meth:`RRL.relation_inputs`); every term is symmetrised over the two views as BYOL does; the
lr schedule is cosine without warm-up and the weight decay follows its own cosine (applied decoupled, as AdamW
does, after each step).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from aulib.config import from_dict
from aulib.data.au_maps import au_attention_maps, resize_maps
from aulib.data.transforms import ViewAug, view_pipeline
from aulib.losses.byol import byol_loss
from aulib.losses.local_byol import local_byol_loss
from aulib.losses.ot_relation import ot_marginals, ot_relation_loss, relation_cost, transport_plans
from aulib.methods.base import Method
from aulib.models import create_backbone
from aulib.models.ema import cosine_ramp, ema_update
from aulib.models.heads import mlp

BP4D_AUS = (1, 2, 4, 6, 7, 10, 12, 14, 15, 17, 23, 24)
DISFA_AUS = (1, 2, 4, 6, 9, 12, 25, 26)


# --------------------------------------------------------------------------------------------- schedules


def scaled_lr(base_lr: float, batch_size: int) -> float:
    """RRL's linear scaling rule: lr = base * BS / 256 (base 0.05 in the paper)."""
    return base_lr * batch_size / 256


# --------------------------------------------------------------------------------------------- config


@dataclass
class RRLConfig:
    """Everything of one RRL pretraining; a profile's "rrl" section and the ablation flags map onto it.

    Swin backbones are built with ``drop_path_rate=0.0``: timm's Swin defaults to stochastic depth 0.1, which
    would also run in the EMA target network; the paper mentions none. ``backbone_kwargs`` may set it.
    """

    backbone: str = "swin_t"  # registry name (swin_t, vgg16, swin_tiny_test, ...) or "vgg_tiny"
    backbone_kwargs: dict = field(default_factory=dict)  # e.g. img_size=64 for Swin; Swin's drop_path_rate -> 0.0
    in_chans: int = 3
    image_size: int = 224
    aus: tuple[int, ...] = BP4D_AUS  # K AU attention maps (12 on BP4D, 8 on DISFA)
    local_stride: int = 16  # feature stage the AU vectors are pooled from
    hidden_dim: int = 4096  # projector / predictor MLP width (BYOL)
    proj_dim: int = 256
    use_local: bool = True  # Table 3 "Local"
    use_corr: bool = True  # Table 3 "Correlation"
    alphas: tuple[float, float, float] = (0.4, 0.6, 1.0)  # Eq.7
    ot_reg: float = 0.1  # entropic regularisation (C in [0, 1]); 50 iterations reach ~2e-3 L1 of the plan
    ot_iters: int = 50
    ot_normalize: bool = True  # Eq.5 on l2-normalised vectors (UniVIP)
    m_start: float = 0.98  # Eq.1 EMA, cosine to m_end
    m_end: float = 1.0
    base_lr: float = 0.05  # lr = base_lr * BS / 256 (AdamW, cosine)
    batch_size: int = 256
    wd_start: float = 0.04  # weight decay cosine 0.04 -> 0.4
    wd_end: float = 0.4
    map_variant: str = "ellipse"  # "ellipse" (RRL) or "square" (EAC-Net)
    map_sigma: float = 3.0
    map_size: int = 14

    @classmethod
    def from_dict(cls, d: dict, strict: bool = True, **overrides: Any) -> RRLConfig:
        return from_dict(cls, d, strict, **overrides)

    @property
    def lr(self) -> float:
        return scaled_lr(self.base_lr, self.batch_size)


# --------------------------------------------------------------------------------------------- networks


def build_backbone(name: str, in_chans: int = 3, **kwargs: Any) -> nn.Module:
    """Registry backbone, plus "vgg_tiny": VGG's layout (3x3 convs, 5 max-pools) with widths 16-128."""
    if name == "vgg_tiny":
        from timm.models.vgg import VGG

        cfg = [16, "M", 32, "M", 64, 64, "M", 128, 128, "M", 128, 128, "M"]
        model = VGG(cfg, num_classes=0, in_chans=in_chans, mlp_ratio=kwargs.pop("mlp_ratio", 0.0625), **kwargs)
        return model
    return create_backbone(name, in_chans=in_chans, **kwargs)


class Encoder(nn.Module):
    """f: image (B, C, H, W) -> global vector (B, D) and the stride-``local_stride`` feature map (B, C', h, w)."""

    def __init__(self, backbone: nn.Module, local_stride: int = 16):
        super().__init__()
        self.backbone = backbone
        if hasattr(backbone, "pre_logits"):  # VGG's 4096-wide conv MLP head is not part of f's features
            backbone.pre_logits = nn.Identity()
        info = backbone.feature_info
        strides = [int(i["reduction"]) for i in info]
        cand = [i for i, s in enumerate(strides) if s <= local_stride]
        if not cand:
            raise ValueError(f"backbone has no stage with stride <= {local_stride}; stage strides: {strides}")
        self.local_index = cand[-1]  # the last stage at that stride
        self.local_dim = int(info[self.local_index]["num_chs"])
        self.nhwc = getattr(backbone, "output_fmt", "NCHW") == "NHWC"
        self.dim = int(info[-1]["num_chs"])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        final, inter = self.backbone.forward_intermediates(x, indices=[self.local_index], norm=False)
        if self.nhwc:
            final = final.permute(0, 3, 1, 2)
        return final.mean((2, 3)), inter[0]  # (B, D), (B, C', h, w)


class GlobalVector(nn.Module):
    """f's global vector alone: image (B, C, H, W) -> (B, D). What the linear protocol reads, and the body of
    the ``supervised`` reference (the same f trained on the labels)."""

    def __init__(self, encoder: Encoder):
        super().__init__()
        self.encoder = encoder
        self.num_features = encoder.dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)[0]  # (B, D)


def build_encoder(cfg: RRLConfig, seed: int | None = None) -> Encoder:
    """f of ``cfg`` (random weights; ``seed`` fixes them): what RRL pretrains, and what the ``untrained encoder``
    baseline probes as it is."""
    if seed is not None:
        torch.manual_seed(seed)
    kw = dict(cfg.backbone_kwargs)
    if cfg.backbone.startswith("swin"):
        kw.setdefault("img_size", cfg.image_size)
        kw.setdefault("drop_path_rate", 0.0)  # no stochastic depth (timm's Swin default is 0.1); see RRLConfig
    return Encoder(build_backbone(cfg.backbone, in_chans=cfg.in_chans, **kw), cfg.local_stride)


class LocalHead(nn.Module):
    """The local feature learning network: a small CNN on f's feature map, then one vector per AU by
    attention-map-weighted average pooling: o_k = sum_p i_k(p) h(p) / sum_p i_k(p)."""

    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(in_dim, out_dim, 3, padding=1, bias=False), nn.BatchNorm2d(out_dim),
                                  nn.ReLU(inplace=True))

    def forward(self, fmap: torch.Tensor, maps: torch.Tensor) -> torch.Tensor:
        h = self.conv(fmap)  # (B, D, h, w)
        w = resize_maps(maps, h.shape[-2:]).to(h.dtype)  # (B, K, h, w)
        w = w / w.sum((2, 3), keepdim=True).clamp_min(1e-6)
        return torch.einsum("bkhw,bdhw->bkd", w, h)  # (B, K, D)


class Branch(nn.Module):
    """One network (online or target): encoder f, local head and projector g."""

    def __init__(self, encoder: Encoder, hidden: int, proj: int, use_local: bool):
        super().__init__()
        self.encoder = encoder
        self.local = LocalHead(encoder.local_dim, encoder.dim) if use_local else None
        self.projector = mlp(encoder.dim, hidden, proj)  # BYOL's g: Linear-BN-ReLU-Linear

    def forward(self, x: torch.Tensor, maps: torch.Tensor | None) -> dict[str, torch.Tensor]:
        g, fmap = self.encoder(x)  # (B, D), (B, C', h, w)
        out = {"g": g, "z_g": self.projector(g)}  # (B, D), (B, P)
        if self.local is not None:
            loc = self.local(fmap, maps)  # (B, K, D)
            b, k, d = loc.shape
            out["loc"] = loc
            out["z_loc"] = self.projector(loc.reshape(b * k, d)).view(b, k, -1)  # (B, K, P) shared g
        return out


# --------------------------------------------------------------------------------------------- method


class RRL(Method):
    """RRL pretraining (Eq.1-7). ``relation`` is the (K, K) AU relation matrix M (needed when use_corr)."""

    def __init__(self, cfg: RRLConfig, relation: np.ndarray | torch.Tensor | None = None):
        super().__init__()
        self.cfg = cfg
        # the OT is between AU vectors, so "+corr" without the local loss still builds them (Table 3, col 3)
        self.needs_local = cfg.use_local or cfg.use_corr
        self.online = Branch(build_encoder(cfg), cfg.hidden_dim, cfg.proj_dim, self.needs_local)
        self.predictor = mlp(cfg.proj_dim, cfg.hidden_dim, cfg.proj_dim)
        self.target = copy.deepcopy(self.online)
        for p in self.target.parameters():
            p.requires_grad_(False)
        if cfg.use_corr:
            if relation is None:
                raise ValueError("use_corr=True needs the AU relation matrix M (aulib.data.stats.cooccurrence "
                                 "of the training labels)")
            cost = relation_cost(relation)  # Eq.4
            if cost.shape != (len(cfg.aus), len(cfg.aus)):
                raise ValueError(f"relation matrix is {tuple(cost.shape)} but cfg.aus has {len(cfg.aus)} AUs")
            self.register_buffer("cost", cost)
        else:
            self.cost = None
        self.momentum = cfg.m_start

    # ---- encoder for the downstream protocol
    @property
    def encoder(self) -> Encoder:
        return self.online.encoder

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, D): the global vector of f, what the linear protocol's head reads (everything else is dropped)."""
        return self.online.encoder(x)[0]

    @torch.no_grad()
    def embed(self, images: torch.Tensor, landmarks: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Frozen online features: ``global`` (B, D) and, with landmarks and a local head, ``local`` (B, K, D)."""
        g, fmap = self.online.encoder(images)
        out = {"global": g}
        if landmarks is not None and self.online.local is not None:
            out["local"] = self.online.local(fmap, self.attention_maps(landmarks, images.shape[-2:]))
        return out

    def attention_maps(self, landmarks: torch.Tensor, hw: Sequence[int]) -> torch.Tensor:
        return au_attention_maps(landmarks, self.cfg.aus, tuple(hw), out_size=self.cfg.map_size,
                                 variant=self.cfg.map_variant, sigma=self.cfg.map_sigma)  # (B, K, 14, 14)

    # ---- training
    def _views(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        x, lm = batch["image"], batch.get("landmarks")
        if x.ndim == 4:  # one view: both networks see the same image (no augmentation)
            x = torch.stack([x, x], 1)
            lm = None if lm is None else torch.stack([lm, lm], 1)
        if x.ndim != 5 or x.shape[1] != 2:
            raise ValueError(f"RRL expects batch['image'] (B, 2, C, H, W) or (B, C, H, W); got {tuple(x.shape)}")
        if self.needs_local and lm is None:
            raise ValueError("RRL's local / relation terms need batch['landmarks'] (B, 2, 68, 2)")
        m1 = m2 = None
        if self.needs_local:
            maps = self.attention_maps(lm.flatten(0, 1), x.shape[-2:])  # (2B, K, 14, 14)
            maps = maps.view(x.shape[0], 2, *maps.shape[1:])
            m1, m2 = maps[:, 0], maps[:, 1]
        return x[:, 0], x[:, 1], m1, m2

    def training_step(self, batch: dict, step: int) -> dict[str, torch.Tensor]:
        x1, x2, m1, m2 = self._views(batch)
        cfg = self.cfg
        on1, on2 = self.online(x1, m1), self.online(x2, m2)
        with torch.no_grad():
            self.target.train()
            tg1, tg2 = self.target(x1, m1), self.target(x2, m2)
        for on in (on1, on2):  # the online network's outputs: the predictor q on its projections
            on["q_g"] = self.predictor(on["z_g"])  # (B, P) q(z^g)
            if self.needs_local:
                b, k, _ = on["z_loc"].shape
                on["q_loc"] = self.predictor(on["z_loc"].flatten(0, 1)).view(b, k, -1)  # (B, K, P) q(z^k)
        p1, p2 = on1["q_g"], on2["q_g"]
        terms: dict[str, torch.Tensor] = {}
        terms["global"] = byol_loss(p1, tg2["z_g"], p2, tg1["z_g"])  # Eq.2, symmetrised
        total = cfg.alphas[0] * terms["global"]
        if cfg.use_local:
            terms["local"] = 0.5 * (local_byol_loss(on1["q_loc"], tg2["z_loc"], p1)
                                    + local_byol_loss(on2["q_loc"], tg1["z_loc"], p2))  # Eq.3, symmetrised
            total = total + cfg.alphas[1] * terms["local"]
        if cfg.use_corr:
            # both directions (online 1 -> target 2, online 2 -> target 1) in ONE batched Sinkhorn call of 2B
            # problems; the mean over 2B equals the average of the two directions' Eq.6
            terms["corr"] = ot_relation_loss(*self.relation_inputs((on1, on2), (tg2, tg1)), self.cost,
                                             reg=cfg.ot_reg, max_iter=cfg.ot_iters,
                                             normalize=cfg.ot_normalize)  # Eq.6, symmetrised
            total = total + cfg.alphas[2] * terms["corr"]
        terms["loss"] = total  # Eq.7
        terms["momentum"] = torch.tensor(self.momentum)
        return terms

    def relation_inputs(self, online: Sequence[dict], target: Sequence[dict]) -> tuple[torch.Tensor, ...]:
        """(o_local (N, K, P), t_local (N, K, P), o_global (N, P), t_global (N, P)) for Eq.5-6, the branch
        outputs of matching views concatenated along the batch.

        Eq.5 takes the dot product of a local vector with the *other* network's global vector, which only
        means something if both live in one space. f's pooled last stage and the local head's output do not:
        on them the cosines sat near 0, the clamp in Eq.5 zeroed all but one AU, and every plan collapsed to
        a single row (seen in an earlier version's cpu report). So the OT works where BYOL's own losses live:
        the online side is the online network's output, the predictor q on the projection (q(z_k), q(z_g)),
        the target side the target projections (z_k, z_g), as UniVIP (the paper's [19]) pairs online
        predictions with target projections. Without q the term would pull the online projections straight
        onto the EMA target's, the predictor-free BYOL that collapses."""
        cat = torch.cat

        def q(o: dict, key: str) -> torch.Tensor:  # branch dicts from training_step carry q already
            if f"q_{key}" in o:
                return o[f"q_{key}"]
            z = o[f"z_{key}"]
            return self.predictor(z.flatten(0, 1)).view_as(z) if z.ndim == 3 else self.predictor(z)

        return (cat([q(o, "loc") for o in online]), cat([t["z_loc"] for t in target]),
                cat([q(o, "g") for o in online]), cat([t["z_g"] for t in target]))

    def parameter_groups(self) -> list[dict]:
        """Online f, g, local head and q; biases and norm weights are never decayed (DINO's rule). The
        optimiser's own weight decay is 0: the cosine weight-decay schedule is applied here, decoupled."""
        decay, no_decay = [], []
        for mod in (self.online, self.predictor):
            for n, p in mod.named_parameters():
                if p.requires_grad:
                    (no_decay if p.ndim <= 1 or n.endswith(".bias") else decay).append(p)
        self._decay_params = decay
        return [{"params": decay, "weight_decay": 0.0}, {"params": no_decay, "weight_decay": 0.0}]

    def current_lr(self, step: int, total_steps: int) -> float:
        return cosine_ramp(step, total_steps, self.cfg.lr, 0.0)

    def current_wd(self, step: int, total_steps: int) -> float:
        return cosine_ramp(step, total_steps, self.cfg.wd_start, self.cfg.wd_end)  # DINO's wd schedule

    def current_momentum(self, step: int, total_steps: int) -> float:
        return cosine_ramp(step, total_steps, self.cfg.m_start, self.cfg.m_end)  # BYOL's m: 0.98 -> 1

    @torch.no_grad()
    def on_after_optimizer_step(self, step: int, total_steps: int) -> None:
        # decoupled weight decay p <- p (1 - lr_t wd_t), the AdamW update with the scheduled wd
        lr, wd = self.current_lr(step, total_steps), self.current_wd(step, total_steps)
        params = getattr(self, "_decay_params", None)
        if params is None:
            self.parameter_groups()
            params = self._decay_params
        for p in params:
            p.mul_(1.0 - lr * wd)
        self.momentum = self.current_momentum(step + 1, total_steps)  # m for the update after this step
        ema_update(self.target, self.online, self.momentum)  # Eq.1: xi <- m xi + (1 - m) theta

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in asdict(self.cfg).items() if k in ("backbone", "use_local", "use_corr"))


# --------------------------------------------------------------------------------------------- augmentation


# BYOL's asymmetric pair (blur always vs rarely) with RRL's per-view colour strengths
VIEW1 = ViewAug()
VIEW2 = ViewAug(brightness=0.2, contrast=0.2, saturation=0.1, hue=0.05, blur=0.1)


class TwoViewAugment:
    """FrameDataset transform: sample -> ``image`` (2, C, H, W) and ``landmarks`` (2, 68, 2), two views made
    with torchvision.transforms.v2; flips (and rotations) move the landmarks, so AU maps follow them.
    ``augment=False`` returns the image twice (Table 4's "without augmentation")."""

    def __init__(self, view1: ViewAug = VIEW1, view2: ViewAug = VIEW2, augment: bool = True, image_size: int = 224):
        self.augment = augment
        self.pipes = [view_pipeline(v, image_size) for v in (view1, view2)]

    def __call__(self, sample: dict) -> dict:
        if sample["image"].shape[-3] != 3:
            raise ValueError("TwoViewAugment needs 3-channel images (FrameDataset(channels=3)); colour jitter "
                             f"and greyscale are undefined for {sample['image'].shape[-3]} channel(s)")
        views = [p(dict(sample)) for p in self.pipes] if self.augment else [sample, sample]
        out = dict(sample)
        out["image"] = torch.stack([v["image"].as_subclass(torch.Tensor) for v in views])  # (2, C, H, W)
        out["landmarks"] = torch.stack([v["landmarks"].as_subclass(torch.Tensor) for v in views])  # (2, 68, 2)
        return out


@torch.no_grad()
def transport_plans_of(method: RRL, batch: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(plan (B, K, K), a (B, K), b (B, K)) the relation loss computes for view 1 online -> view 2 target.

    The networks run as in a training step (BatchNorm on the batch's statistics, so pass a whole training
    batch), on a copy so that the model's running statistics are left untouched."""
    if method.cost is None or method.online.local is None:
        raise ValueError("this RRL variant has no relation term (use_corr=False)")
    twin = copy.deepcopy(method).train()
    x1, x2, m1, m2 = twin._views(batch)
    o_loc, t_loc, o_g, t_g = twin.relation_inputs([twin.online(x1, m1)], [twin.target(x2, m2)])
    a = ot_marginals(o_loc, t_g, method.cfg.ot_normalize)  # Eq.5
    b = ot_marginals(t_loc, o_g, method.cfg.ot_normalize)
    plan = transport_plans(method.cost, a, b, reg=method.cfg.ot_reg, max_iter=method.cfg.ot_iters)
    return plan, a, b
