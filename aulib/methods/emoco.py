"""EmoCo: emotion-aware contrastive learning (Sun, Zeng & Shan, FG 2021), one readable file.

MoCo (momentum key encoder + dictionary of keys) extended in three ways:

* an emotion classifier C (one FC on the unit query q, Eq.2) gives the coarse supervision L_emo;
* a multi-queue dictionary: one queue of K keys per emotion, a write pointer per queue; a query's negatives
  come only from the queue of its own emotion (hard negatives: same coarse class, other AU combination);
* intra-class normalisation N (Eq.4) maps q, k+ and k- into the emotion-specific space around the class
  prototype w~_y before the InfoNCE loss L_cont (Eq.5, tau 0.2); total Eq.1: lambda * L_emo + L_cont.

Every ablation of the paper's Table IV is a config flag (``multi_queue``, ``use_cont``, ``use_emo``,
``intra_norm``; "finetune" is an evaluation protocol, not a pretraining option); the table's rows as configs,
the drivers and the claims live in :mod:`aulib.experiments.emoco`.

Batches: ``{"q": (B, C, H, W), "k": (B, C, H, W), "emotion": (B,) long}`` — two MoCo v2 augmentations of the
same face (see :class:`TwoViews` and :func:`mocov2_augmentation`). AU labels are never read here.
Paper facts the text leaves open follow ``shared/reference/implementation_notes.md`` (marked "notes").
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset
from torchvision.transforms import v2

from aulib.config import from_dict
from aulib.losses.emoco_contrastive import info_nce_from_logits
from aulib.losses.intra_class_norm import intra_class_normalize
from aulib.methods.base import Method, all_gather_concat
from aulib.models import create_backbone
from aulib.models.ema import ema_update
from aulib.models.heads import mlp


@dataclass
class EmoCoConfig:
    """EmoCo's hyper-parameters (paper Sec. IV-B defaults); the optimiser lives in the trainer's config."""

    backbone: str = "resnet50"
    in_chans: int = 3
    num_classes: int = 7  # AffectNet's 7 expressions (neutral included)
    proj_hidden: int = 2048
    proj_dim: int = 128
    queue_size: int = 65536  # K, per queue
    tau: float = 0.2
    momentum: float = 0.999  # m of Eq.3
    lam: float = 1.0  # lambda of Eq.1
    multi_queue: bool = True  # MQ: one queue per emotion (False: one queue for all, as MoCo)
    use_cont: bool = True  # L_cont
    use_emo: bool = True  # L_emo
    intra_norm: bool = True  # N of Eq.4 (False: plain L2 normalisation)
    # lr of C alone (None: the trainer's). Not in the paper: a short CPU schedule needs a faster C, because
    # |w_y| bounds the logits of the unit q (Eq.2) and scales the gradient L_emo sends into the encoder.
    classifier_lr: float | None = None
    backbone_kwargs: dict = field(default_factory=dict)

    def __post_init__(self):
        if not (self.use_cont or self.use_emo):
            raise ValueError("EmoCoConfig: at least one of use_cont / use_emo must be True (nothing to train)")
        if self.intra_norm and not self.use_emo:
            raise ValueError("EmoCoConfig: intra_norm=True needs use_emo=True — the prototypes of Eq.4 are the "
                             "rows of the emotion classifier, which only L_emo trains (Table IV has no such row)")
        if self.queue_size < 1 or self.tau <= 0 or not 0 <= self.momentum < 1:
            raise ValueError(f"EmoCoConfig: need queue_size >= 1, tau > 0, 0 <= momentum < 1; got "
                             f"{self.queue_size}, {self.tau}, {self.momentum}")

    @classmethod
    def from_dict(cls, d: dict[str, Any], **overrides: Any) -> EmoCoConfig:
        """Strict: an unknown key raises :class:`aulib.config.ConfigError` naming the valid fields."""
        return from_dict(cls, d, **overrides)


class MultiQueue(nn.Module):
    """The multi-queue dictionary: ``num_queues`` ring buffers of ``size`` unit keys each, one pointer per queue.

    ``queue[c]`` is (D, K) as in MoCo (notes: a (C, D, K) buffer). Keys are written at their queue's pointer,
    which then advances modulo K, so the oldest keys of *that* queue are replaced first. Vectorised: no loop
    over classes and no host synchronisation, so it costs little inside a GPU step.
    """

    def __init__(self, num_queues: int, dim: int, size: int):
        super().__init__()
        self.num_queues, self.dim, self.size = num_queues, dim, size
        self.register_buffer("queue", F.normalize(torch.randn(num_queues, dim, size), dim=1))  # (C, D, K)
        self.register_buffer("ptr", torch.zeros(num_queues, dtype=torch.long))  # (C,)

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor, queue_ids: torch.Tensor) -> None:
        """Write ``keys`` (N, D) into the queues ``queue_ids`` (N,), in batch order within each queue."""
        if keys.ndim != 2 or keys.shape[1] != self.dim or queue_ids.shape != keys.shape[:1]:
            raise ValueError(f"enqueue expects keys (N, {self.dim}) and queue_ids (N,); "
                             f"got {tuple(keys.shape)} and {tuple(queue_ids.shape)}")
        ids = queue_ids.long()
        if len(ids) and (int(ids.min()) < 0 or int(ids.max()) >= self.num_queues):
            raise ValueError(f"queue ids must lie in 0..{self.num_queues - 1}; got {ids.min()}..{ids.max()}")
        onehot = F.one_hot(ids, self.num_queues)  # (N, C)
        rank = (onehot.cumsum(0) * onehot).sum(1) - 1  # (N,) position of each key within its queue's batch
        count = onehot.sum(0)  # (C,)
        keep = rank >= count[ids] - self.size  # more than K keys for one queue: only the last K survive
        pos = (self.ptr[ids] + rank) % self.size  # (N,)
        self.queue[ids[keep], :, pos[keep]] = keys[keep].to(self.queue.dtype)
        self.ptr.copy_((self.ptr + count) % self.size)

    def keys(self, c: int) -> torch.Tensor:
        """Queue ``c`` as (K, D) rows."""
        return self.queue[c].T


class TwoViews(Dataset):
    """Two independent augmentations of each face: ``{"q", "k", "emotion"}`` for EmoCo's pretraining.

    ``base`` is any dataset whose items hold ``image`` (C, H, W) float in [0, 1] and ``emotion`` (e.g. a
    FrameDataset); AU labels in the item are dropped so the pretraining cannot see them.
    :meth:`from_canonical` holds the images in memory instead (much faster on a small CPU).
    """

    def __init__(self, base: Dataset, transform):
        self.base, self.transform = base, transform

    @classmethod
    def from_canonical(cls, ds, rows=None, transform=None) -> TwoViews:
        """Preload ``ds``'s images (uint8) and emotions (rows ``rows``); AU labels are not read at all."""
        import numpy as np

        rows = np.arange(len(ds)) if rows is None else np.asarray(rows)
        emotions = torch.as_tensor(np.asarray(ds.emotions())[rows], dtype=torch.long)
        if bool((emotions < 0).any()):
            bad = int(rows[int(torch.nonzero(emotions < 0)[0])])
            raise ValueError(f"dataset {ds.meta.name!r}, row {bad}: no emotion label (-1); EmoCo pretrains on "
                             "emotion-labelled faces only")
        images = torch.from_numpy(np.ascontiguousarray(ds.image_batch(rows))).permute(0, 3, 1, 2).contiguous()
        return cls(_InMemoryFaces(images, emotions), transform)

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> dict:
        item = self.base[i]
        img = item["image"]
        return {"q": self.transform(img), "k": self.transform(img), "emotion": item["emotion"]}


class _InMemoryFaces(Dataset):
    def __init__(self, images: torch.Tensor, emotions: torch.Tensor):
        self.images, self.emotions = images, emotions  # uint8 (N, C, H, W), long (N,)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict:
        return {"image": self.images[i].float() / 255, "emotion": self.emotions[i]}


def mocov2_augmentation(size: int, channels: int = 3, blur: bool = True,
                        crop_scale: tuple[float, float] = (0.2, 1.0)) -> v2.Compose:
    """MoCo v2's augmentation (crop 0.2-1, colour jitter 0.4/0.4/0.4/0.1 p0.8, grey p0.2, blur p0.5, flip)
    on float images in [0, 1], which stay in [0, 1] (no mean/std: the stem's BatchNorm absorbs it, and the
    evaluation loaders then need no matching transform). Grey images (``channels=1``) get brightness/contrast
    jitter only; ``blur=False`` drops the blur (the costliest step on a small CPU); ``crop_scale`` is MoCo's
    (0.2, 1) unless a short schedule needs crops that keep most of the face."""
    jitter = v2.ColorJitter(0.4, 0.4, 0.4, 0.1) if channels == 3 else v2.ColorJitter(0.4, 0.4)
    steps = [v2.RandomResizedCrop(size, scale=tuple(crop_scale), antialias=True), v2.RandomApply([jitter], p=0.8)]
    if channels == 3:
        steps.append(v2.RandomGrayscale(p=0.2))
    if blur:  # sigma scales with the image as in MoCo v2 (kernel ~10% of 224 px)
        k = max(3, (size // 10) | 1)
        steps.append(v2.RandomApply([v2.GaussianBlur(k, sigma=(0.1, 2.0 * size / 224))], p=0.5))
    steps.append(v2.RandomHorizontalFlip())
    return v2.Compose(steps)


class EmoCo(Method):
    """EmoCo (Fig.2): ``encoder`` + ``projector`` give q, C classifies q, a momentum copy gives the keys."""

    sync_batchnorm = True  # paper Sec. IV-B: BN synchronised across GPUs (instead of MoCo's shuffle BN)

    def __init__(self, cfg: EmoCoConfig | None = None, **kwargs: Any):
        super().__init__()
        self.cfg = cfg = cfg or EmoCoConfig(**kwargs)
        self.encoder = create_backbone(cfg.backbone, in_chans=cfg.in_chans, num_classes=0, **cfg.backbone_kwargs)
        self.num_features = self.encoder.num_features
        # h_q: FC 2048 - ReLU - FC 128 (Sec. IV-B), MoCo v2's head without BN
        self.projector = mlp(self.num_features, cfg.proj_hidden, cfg.proj_dim, norm=False)
        self.classifier = nn.Linear(cfg.proj_dim, cfg.num_classes, bias=False)  # C: W (C, 128), Eq.2 has no bias
        self.classifier.requires_grad_(cfg.use_emo)
        if cfg.use_cont:
            # theta_k starts as a copy of theta_q and is never touched by back-propagation (Eq.3)
            self.key_encoder = copy.deepcopy(self.encoder).requires_grad_(False)
            self.key_projector = copy.deepcopy(self.projector).requires_grad_(False)
            self.dictionary = MultiQueue(cfg.num_classes if cfg.multi_queue else 1, cfg.proj_dim, cfg.queue_size)

    # --- features -------------------------------------------------------------------------------------
    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Encoder features (B, F): what the linear / finetune protocols (and their heads) and Fig.5 use."""
        return self.encoder(x)

    forward = features

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The unit query q (B, 128)."""
        return F.normalize(self.projector(self.encoder(x)), dim=1)

    def prototypes(self) -> torch.Tensor:
        """w~: the L2-normalised rows of C (C, 128), or zeros (plain L2) when N is off."""
        w = self.classifier.weight.detach()
        return F.normalize(w, dim=1) if self.cfg.intra_norm else torch.zeros_like(w)

    # --- training ---------------------------------------------------------------------------------------
    def parameter_groups(self) -> list[dict]:
        own = [p for n, p in self.named_parameters() if p.requires_grad and not n.startswith("classifier.")]
        groups = [{"params": own}]
        if self.cfg.use_emo:
            cls = {"params": list(self.classifier.parameters())}
            if self.cfg.classifier_lr is not None:
                cls["lr"] = self.cfg.classifier_lr
            groups.append(cls)
        return groups

    def training_step(self, batch: dict, step: int) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        x_q, y = batch["q"], batch["emotion"].long()
        if bool((y < 0).any()) or bool((y >= cfg.num_classes).any()):
            raise ValueError(f"EmoCo needs an emotion label 0..{cfg.num_classes - 1} for every image; "
                             f"batch has {sorted(set(y.tolist()))}")
        q = F.normalize(self.projector(self.encoder(x_q)), dim=1)  # (B, D) unit query
        out: dict[str, torch.Tensor] = {}
        loss = q.new_zeros(())
        if cfg.use_emo:
            out["L_emo"] = F.cross_entropy(self.classifier(q).float(), y)  # Eq.2
            loss = loss + cfg.lam * out["L_emo"]  # Eq.1
        if cfg.use_cont:
            with torch.no_grad():
                k = F.normalize(self.key_projector(self.key_encoder(batch["k"])), dim=1)  # (B, D) k+
            out["L_cont"] = self.contrastive_loss(q, k, y)
            loss = loss + out["L_cont"]  # Eq.1
            # enqueue after the logits so a key is never its own negative; under DDP every process's keys
            keys, labels = all_gather_concat(k.detach()), all_gather_concat(y)  # (B * world, D), (B * world,)
            self.dictionary.enqueue(keys, labels if cfg.multi_queue else torch.zeros_like(labels))
        out["loss"] = loss
        return out

    def contrastive_loss(self, q: torch.Tensor, k: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Eq.5 with N (Eq.4) of q, k+ and the negatives of q's own queue, all around the prototype w~_y."""
        w = self.prototypes()  # (C, D), detached (notes)
        nq = intra_class_normalize(q, w[y])  # (B, D)   Eq.4
        nk = intra_class_normalize(k, w[y])  # (B, D)   Eq.4
        queue = self.dictionary.queue.transpose(1, 2)  # (Q, K, D), Q = C (MQ) or 1
        # The negatives of a class-c query: queue c (MQ) or the single queue, mapped into c's space.
        src = torch.arange(self.cfg.num_classes, device=q.device) if self.cfg.multi_queue else \
            torch.zeros(self.cfg.num_classes, dtype=torch.long, device=q.device)
        negs = intra_class_normalize(queue[src], w[:, None, :]).to(nq.dtype)  # (C, K, D)   Eq.4
        # all classes' logits then pick the query's own: one batched matmul, no per-class host sync
        neg = torch.einsum("bd,ckd->bck", nq, negs)  # (B, C, K)
        neg = neg[torch.arange(len(y), device=y.device), y]  # (B, K): only q's class queue
        pos = (nq * nk).sum(1)  # (B,)
        return info_nce_from_logits(pos, neg, self.cfg.tau)  # Eq.5

    @torch.no_grad()
    def on_after_optimizer_step(self, step: int, total_steps: int) -> None:
        if self.cfg.use_cont:
            self.momentum_update()

    @torch.no_grad()
    def momentum_update(self) -> None:
        """theta_k := m theta_k + (1 - m) theta_q for encoder and projector (Eq.3)."""
        online = [*self.encoder.parameters(), *self.projector.parameters()]
        key = [*self.key_encoder.parameters(), *self.key_projector.parameters()]
        # parameters only (tensor lists): as in MoCo, the key encoder keeps its own BN statistics
        ema_update(key, online, self.cfg.momentum)  # Eq.3: theta_k := m theta_k + (1 - m) theta_q

    def config_dict(self) -> dict:
        return asdict(self.cfg)
