"""Evaluation protocols: the linear probe (frozen encoder) and fine-tuning.

Loaders yield :class:`aulib.data.dataset.FrameDataset` dicts (``image``, ``labels``, ``valid``) or
``(image, labels[, valid])`` tuples.

Linear probe (RRL, EmoCo)::

    res = linear_probe(encoder, train_loader, test_loader, ProbeConfig(head="bn_linear"))
    res.probs            # (N_test, K) sigmoid outputs; res.labels / res.valid alongside
    res.table(aus=ds.aus, fold=1)   # tidy per-AU F1 / accuracy

The encoder is frozen and put in eval mode; features are extracted once under ``no_grad`` (``feature_fn(encoder,
images)`` when the encoder's ``forward`` is not the representation), then a head is trained on the cached
features with BCE per AU over the known labels: ``"linear"`` = ``Linear(D, K)``; ``"bn_linear"`` =
``BatchNorm1d(D)`` + ``Linear(D, K, bias=False)`` (RRL's linear evaluation; the BatchNorm's shift is the offset).

Fine-tuning (the CNN study, TRA-Net-like supervised baselines)::

    res = finetune(model, train_loader, test_loader, TrainConfig(epochs=5, optimizer="adam", lr=1e-4))

trains ``model`` (images -> logits (B, K)) with the shared trainer and masked BCE, then predicts the test set.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from torch import nn

from aulib.eval.metrics import per_au_table
from aulib.losses.masked_bce import balanced_pos_weight, masked_bce
from aulib.methods.base import unpack_batch
from aulib.methods.supervised import Supervised
from aulib.models.heads import linear_head
from aulib.train import TrainConfig, fit, resolve_device, seed_everything


@torch.no_grad()
def extract_features(encoder: nn.Module, loader: Iterable, device: str | torch.device = "auto",
                     feature_fn: Callable[[nn.Module, torch.Tensor], torch.Tensor] | None = None,
                     input_key: str = "image", progress: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(features (N, D), labels (N, K), valid (N, K)) on the CPU, the encoder in eval mode, no gradients."""
    from aulib.progress import tqdm

    dev = resolve_device(device)
    was_training = encoder.training
    encoder.eval().to(dev)
    feats, labels, valids = [], [], []
    try:
        for batch in tqdm(loader, desc="features", leave=False, disable=not progress):
            x, y, v = unpack_batch(batch, input_key)
            x = x.to(dev, non_blocking=True)
            f = feature_fn(encoder, x) if feature_fn is not None else encoder(x)
            if f.ndim > 2:
                f = f.flatten(1)
            feats.append(f.float().cpu())
            if y is not None:
                labels.append(y.float().cpu())
                valids.append((v if v is not None else torch.ones_like(y, dtype=torch.bool)).bool().cpu())
    finally:
        encoder.train(was_training)
    if not feats:
        raise ValueError("extract_features: the loader yielded no batch")
    lab = torch.cat(labels) if labels else torch.empty(0)
    val = torch.cat(valids) if valids else torch.empty(0, dtype=torch.bool)
    return torch.cat(feats), lab, val


@dataclass
class ProbeConfig:
    """Head training on cached features. ``optimizer="lbfgs"``: full-batch L-BFGS (strong-Wolfe line search,
    torch.optim.LBFGS) on the whole training set, ``epochs`` its iteration cap, ``lr`` its step scale (1.0, as
    the line search expects), ``batch_size`` unused: the head reaches the minimum of its training loss, where
    minibatch Adam at a fixed number of epochs stops short of it on features that lie on a few directions. It
    suits standardised inputs, which the ``bn_linear`` head makes; raw features whose columns differ in scale by
    orders of magnitude condition it poorly."""

    head: str = "linear"  # linear | bn_linear (BatchNorm1d with its affine shift + Linear without bias, RRL)
    epochs: int = 100  # lbfgs: the cap on its iterations
    lr: float = 1e-3
    optimizer: str = "adam"  # adam | adamw | sgd | lbfgs
    weight_decay: float = 0.0
    momentum: float = 0.9
    batch_size: int = 256
    pos_weight: str | None = None  # None | "balanced": BCE positives weighted by neg/pos of the training set
    seed: int = 0
    device: str = "auto"
    progress: bool = True


#: the probe's head (``"linear"`` or ``"bn_linear"``): :func:`aulib.models.heads.linear_head`
make_head = linear_head


def _pos_weight(labels: torch.Tensor, valid: torch.Tensor, mode: str | None) -> torch.Tensor | None:
    if mode is None:
        return None
    if mode != "balanced":
        raise ValueError(f"pos_weight={mode!r}; choose None or 'balanced'")
    return balanced_pos_weight(labels, valid)


def train_head(features: torch.Tensor, labels: torch.Tensor, valid: torch.Tensor | None = None,
               cfg: ProbeConfig | None = None) -> nn.Module:
    """Train a probe head on (N, D) features for (N, K) labels; returns the head in eval mode (CPU)."""
    cfg = cfg or ProbeConfig()
    from aulib.progress import tqdm

    dev = resolve_device(cfg.device)
    valid = torch.ones_like(labels, dtype=torch.bool) if valid is None else valid.bool()
    g = torch.Generator().manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    head = make_head(features.shape[1], labels.shape[1], cfg.head).to(dev)
    params = [p for p in head.parameters() if p.requires_grad]
    pw = _pos_weight(labels.float(), valid, cfg.pos_weight)
    pw = pw.to(dev) if pw is not None else None
    x, y, v = features.to(dev), labels.float().to(dev), valid.to(dev)
    if cfg.optimizer == "lbfgs":
        return _train_head_lbfgs(head, params, x, y, v, pw, cfg)
    if cfg.optimizer == "adam":
        opt = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    elif cfg.optimizer == "adamw":
        opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    elif cfg.optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    else:
        raise ValueError(f"ProbeConfig.optimizer={cfg.optimizer!r}; choose adam, adamw, sgd or lbfgs")
    n = len(x)
    bs = min(cfg.batch_size, n)
    head.train()
    for _ in tqdm(range(cfg.epochs), desc="probe head", leave=False, disable=not cfg.progress):
        perm = torch.randperm(n, generator=g).to(dev)
        for i in range(0, n, bs):
            idx = perm[i:i + bs]
            if len(idx) < 2 and cfg.head == "bn_linear" and i > 0:
                continue  # BatchNorm cannot train on one sample
            loss = masked_bce(head(x[idx]), y[idx], v[idx], pos_weight=pw)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return head.eval().cpu()


def _train_head_lbfgs(head: nn.Module, params: list, x: torch.Tensor, y: torch.Tensor, v: torch.Tensor,
                      pw: torch.Tensor | None, cfg: ProbeConfig) -> nn.Module:
    """Full-batch L-BFGS on masked BCE (+ weight_decay / 2 * ||params||^2). A BatchNorm sees the whole set in every
    call, so its running statistics are set to the set's own (momentum None: the cumulative average of identical
    batches; restored afterwards) and the eval-mode head computes what was minimised, up to the unbiased variance's
    n / (n - 1)."""
    norms = {m: m.momentum for m in head.modules() if isinstance(m, nn.BatchNorm1d)}
    for m in norms:
        m.momentum = None
    opt = torch.optim.LBFGS(params, lr=cfg.lr, max_iter=cfg.epochs, history_size=20, tolerance_grad=1e-9,
                            tolerance_change=1e-12, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad(set_to_none=True)
        loss = masked_bce(head(x), y, v, pos_weight=pw)
        if cfg.weight_decay:
            loss = loss + 0.5 * cfg.weight_decay * sum(p.pow(2).sum() for p in params)
        loss.backward()
        return loss

    head.train()
    opt.step(closure)
    for m, momentum in norms.items():
        m.momentum = momentum
    return head.eval().cpu()


@torch.no_grad()
def predict_head(head: nn.Module, features: torch.Tensor) -> np.ndarray:
    head.eval()
    return torch.sigmoid(head(features.float())).numpy()


class ProbedEncoder(nn.Module):
    """The linear protocol as one model: a pretrained method's frozen ``features(x)`` (B, D) and the probe head
    trained on them; images (B, C, H, W) -> AU logits (B, K). What ``aulib train rrl|emoco`` saves."""

    def __init__(self, method: nn.Module, head: nn.Module):
        super().__init__()
        if not hasattr(method, "features"):
            raise TypeError(f"{type(method).__name__} has no features(x) for a probe head")
        self.method, self.head = method, head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            f = self.method.features(x)  # (B, D), frozen
        return self.head(f.float())  # (B, K)


@dataclass
class ProbeResult:
    """Test-set predictions of a protocol: ``probs``/``labels`` (N, K) float, ``valid`` (N, K) bool."""

    probs: np.ndarray
    labels: np.ndarray
    valid: np.ndarray
    model: nn.Module | None = None  # the probe head, or the fine-tuned model
    history: pd.DataFrame | None = None
    extra: dict = field(default_factory=dict)

    def table(self, aus: Sequence | None = None, threshold: float = 0.5, **columns) -> pd.DataFrame:
        """Tidy per-AU metrics (see :func:`aulib.eval.metrics.per_au_table`)."""
        return per_au_table(self.labels, self.probs, self.valid, aus=aus, threshold=threshold, **columns)


def linear_probe(encoder: nn.Module, train_loader: Iterable, test_loader: Iterable, cfg: ProbeConfig | None = None,
                 feature_fn: Callable[[nn.Module, torch.Tensor], torch.Tensor] | None = None,
                 input_key: str = "image") -> ProbeResult:
    """Frozen ``encoder`` -> features once (train and test) -> head trained on train -> test probabilities."""
    cfg = cfg or ProbeConfig()
    requires = [p.requires_grad for p in encoder.parameters()]
    for p in encoder.parameters():
        p.requires_grad_(False)
    try:
        ftr, ytr, vtr = extract_features(encoder, train_loader, cfg.device, feature_fn, input_key, cfg.progress)
        fte, yte, vte = extract_features(encoder, test_loader, cfg.device, feature_fn, input_key, cfg.progress)
    finally:
        for p, r in zip(encoder.parameters(), requires):
            p.requires_grad_(r)
    if ytr.numel() == 0:
        raise ValueError("linear_probe: the training loader yields no labels")
    head = train_head(ftr, ytr, vtr, cfg)
    return ProbeResult(predict_head(head, fte), yte.numpy(), vte.numpy(), head,
                       extra={"train_features": ftr, "test_features": fte})


#: the fine-tuning protocol's method, now :class:`aulib.methods.supervised.Supervised` (kept as an alias)
SupervisedBCE = Supervised


@torch.no_grad()
def predict(model: nn.Module, loader: Iterable, device: str | torch.device = "auto", input_key: str = "image",
            flip_tta: bool = False, progress: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(probs, labels, valid) of ``model`` (images -> logits) over ``loader``; ``flip_tta`` averages the
    logits of the image and its mirror (AUNet's test protocol)."""
    from aulib.progress import tqdm

    dev = resolve_device(device)
    was = model.training
    model.eval().to(dev)
    ps, ys, vs = [], [], []
    try:
        for batch in tqdm(loader, desc="predict", leave=False, disable=not progress):
            x, y, v = unpack_batch(batch, input_key)
            x = x.to(dev)
            logits = model(x).float()
            if flip_tta:
                logits = 0.5 * (logits + model(torch.flip(x, dims=[-1])).float())
            ps.append(torch.sigmoid(logits).cpu())
            if y is not None:
                ys.append(y.float().cpu())
                vs.append((v if v is not None else torch.ones_like(y, dtype=torch.bool)).bool().cpu())
    finally:
        model.train(was)
    return (torch.cat(ps).numpy(), torch.cat(ys).numpy() if ys else np.empty((0, 0)),
            torch.cat(vs).numpy() if vs else np.empty((0, 0), bool))


def finetune(model: nn.Module, train_loader: Iterable, test_loader: Iterable, cfg: TrainConfig | None = None,
             out_dir: str | os.PathLike | None = None, pos_weight: torch.Tensor | None = None,
             cost_manipulation: bool = False, au_mask: torch.Tensor | None = None, flip_tta: bool = False,
             evaluate: Callable | None = None, resume: bool = True) -> ProbeResult:
    """Train ``model`` end to end with masked BCE via :func:`aulib.train.fit`, then predict ``test_loader``."""
    cfg = cfg or TrainConfig()
    method = Supervised(model=model, pos_weight=pos_weight, cost_manipulation=cost_manipulation, au_mask=au_mask)
    history = fit(method, train_loader, cfg, out_dir=out_dir, resume=resume, evaluate=evaluate)
    probs, labels, valid = predict(model, test_loader, cfg.device, flip_tta=flip_tta, progress=cfg.progress)
    return ProbeResult(probs, labels, valid, model, history)


__all__ = [
    "ProbeConfig", "ProbeResult", "SupervisedBCE", "extract_features", "finetune", "linear_probe", "make_head",
    "masked_bce", "predict", "predict_head", "seed_everything", "train_head", "unpack_batch",
]
