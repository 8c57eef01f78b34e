"""RRL's experiments (Song & Liu, rrl.md Sec. 3), on aulib's data: the protocol, the paper's numbers, the driver
that runs every row through :func:`aulib.eval.crossval.run_folds`, and the claims.

Protocol (read from a profile's ``rrl`` section, :func:`settings`): every row of Tables 3 and 4 is one
:class:`aulib.methods.rrl.RRLConfig` (:data:`ABLATIONS`), pretrained from scratch per seed on an *unlabelled*
set, then probed with RRL's linear evaluation (frozen f, BatchNorm1d + bias-free Linear, plain BCE per AU, Sec. 3)
on each subject-exclusive fold of the BP4D-like set; on the DISFA-like set the full RRL (K = 8 maps, DISFA's M).
The rows with the relation term are pretrained once per (fold, seed): their M is counted on that fold's training
labels only (:func:`relation_matrix`), so no test label reaches the encoder.
Beside them, on the same (dataset, fold, seed) units:

``untrained encoder`` (role ``baseline``)  the same f with random weights, through the same probe;
``supervised`` (role ``reference``)        the same f plus the same BN + Linear head, trained end to end on the
                                           training fold's labels with plain masked BCE (:class:`Supervised`,
                                           :func:`aulib.train.fit`), then scored like the probes;
``always present``, ``prior``              added by ``run_folds``.

    P = settings("cpu"); data = make_data(P)
    M = relation_matrices(data)                  # fold 1's M, for the figure (the driver counts M per fold)
    run = run_linear_protocol(P, data)           # run.results (tidy), run.history, run.supervised_history
    claims = judge_claims(run.results)           # Table 3, Table 4, "RRL beats the untrained encoder"

Roles: ``global+local+corr`` (RRL) is ``method``; every other Table 3 / Table 4 row is ``ablation``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader

from aulib import profiles
from aulib.data import open_dataset
from aulib.data.align import aligned
from aulib.data.batch_augment import BatchTwoViews, OnDevice
from aulib.data.dataset import FrameDataset
from aulib.data.folds import fold_split
from aulib.data.loader import make_loader
from aulib.data.stats import REFERENCE, cooccurrence
from aulib.data.stream import FaceStream
from aulib.data.synthetic import SynthConfig, generate
from aulib.eval.baselines import SUPERVISED, UNTRAINED
from aulib.eval.claims import Claim, judge
from aulib.eval.crossval import Variant, run_folds, scores, tidy
from aulib.eval.protocols import ProbeConfig, extract_features, predict, predict_head, train_head
from aulib.eval.representation import spectra, spectrum_table
from aulib.methods.rrl import (
    RRL,
    VIEW1,
    VIEW2,
    Encoder,
    GlobalVector,
    RRLConfig,
    TwoViewAugment,
    ViewAug,
    build_encoder,
    transport_plans_of,
)
from aulib.methods.supervised import Supervised
from aulib.models.heads import linear_head
from aulib.train import TrainConfig, fit, resolve_device, seed_everything

BP4D = "BP4D-like"
DISFA = "DISFA-like"
EXP_BP4D = "tables 2-4"  # the BP4D rows: Table 2 (per AU), Table 3 (components), Table 4 (backbone, augmentation)
EXP_DISFA = "table 1"
RRL_ROW = "global+local+corr"

# --------------------------------------------------------------------------------------------- protocol

#: Table 3 (components) and Table 4 (backbone, augmentation) rows as RRLConfig overrides + augmentation flag
ABLATIONS: dict[str, dict[str, Any]] = {
    "global": dict(use_local=False, use_corr=False),
    "global+local": dict(use_local=True, use_corr=False),
    "global+corr": dict(use_local=False, use_corr=True),
    RRL_ROW: dict(use_local=True, use_corr=True),  # RRL; also Table 4 "Swin-T + augment"
    "swin, no augment": dict(use_local=True, use_corr=True, augment=False),
    "vgg, no augment": dict(use_local=True, use_corr=True, augment=False, backbone="@vgg"),
}


def role_of(variant: str) -> str:
    """``method`` for RRL (global+local+corr), ``ablation`` for the other Table 3 / 4 rows."""
    return "method" if variant == RRL_ROW else "ablation"


def settings(profile: str) -> dict[str, Any]:
    """The profile's ``rrl`` section (sizes, seeds, folds, variants, probe, supervised reference)."""
    return profiles.get(profile, "rrl")


def base_config(P: dict) -> RRLConfig:
    return RRLConfig.from_dict(P["method"])


def variant_config(base: RRLConfig, name: str, vgg_backbone: str = "vgg16",
                   vgg_kwargs: dict | None = None) -> tuple[RRLConfig, bool]:
    """(RRLConfig, augment) of ablation ``name`` (see :data:`ABLATIONS`)."""
    if name not in ABLATIONS:
        raise KeyError(f"unknown RRL ablation {name!r}; valid: {', '.join(ABLATIONS)}")
    over = dict(ABLATIONS[name])
    augment = over.pop("augment", True)
    if over.get("backbone") == "@vgg":
        over["backbone"], over["backbone_kwargs"] = vgg_backbone, dict(vgg_kwargs or {})
    return RRLConfig.from_dict(asdict(base), **over), augment


# --------------------------------------------------------------------------------------------- paper numbers

#: Table 2 of the paper (BP4D, F1 %, one run each; * = supervised methods)
PAPER_TABLE2 = pd.DataFrame({
    "AU": [1, 2, 4, 6, 7, 10, 12, 14, 15, 17, 23, 24],
    "AlexNet*": [40.3, 39.0, 41.7, 62.8, 54.2, 75.1, 78.1, 44.7, 32.9, 47.3, 27.3, 40.1],
    "DRML*": [36.4, 41.8, 43.0, 55.0, 67.0, 66.3, 65.8, 54.1, 33.2, 48.0, 31.7, 30.0],
    "JAA-Net*": [47.2, 44.0, 54.9, 77.5, 74.6, 84.0, 86.9, 61.9, 43.6, 60.3, 42.7, 41.9],
    "FAb-Net": [33.4, 24.8, 41.0, 73.5, 66.2, 78.8, 84.7, 57.9, 21.2, 55.7, 26.8, 37.9],
    "TCAE": [33.5, 32.2, 43.8, 73.7, 67.7, 80.1, 81.5, 57.4, 26.5, 54.5, 23.2, 31.8],
    "TC-Net k=1*": [35.2, 25.5, 30.2, 71.3, 69.6, 81.3, 83.3, 59.1, 30.3, 56.1, 27.0, 33.4],
    "TC-Net*": [42.3, 24.3, 44.1, 71.8, 70.5, 77.6, 83.3, 61.2, 31.6, 51.6, 29.8, 38.6],
    "RRL": [42.0, 35.7, 34.0, 67.4, 67.8, 79.1, 80.6, 63.9, 28.6, 48.6, 26.5, 32.4]})

#: Table 1 of the paper (DISFA, F1 %)
PAPER_TABLE1 = pd.DataFrame({
    "AU": [1, 2, 4, 6, 9, 12, 25, 26],
    "DRML*": [17.3, 17.7, 37.4, 29.0, 10.7, 37.7, 38.5, 20.1],
    "JAA-Net*": [43.7, 46.2, 56.0, 41.4, 44.7, 69.6, 88.3, 58.4],
    "FAb-Net": [27.5, 19.6, 28.7, 45.2, 20.9, 65.6, 67.9, 24.0],
    "TCAE": [24.8, 25.5, 37.3, 34.7, 31.1, 59.6, 58.1, 25.2],
    "TC-Net k=1*": [10.8, 20.7, 43.3, 37.6, 12.2, 68.7, 62.9, 46.2],
    "TC-Net*": [18.7, 27.4, 35.1, 33.6, 20.7, 67.5, 68.0, 43.8],
    "RRL": [15.4, 15.9, 49.5, 48.8, 22.1, 70.3, 81.4, 46.8]})

#: Tables 3 and 4 of the paper (BP4D, mean F1 %): (table, row as the paper names it, aulib variant, F1)
PAPER_ABLATIONS = pd.DataFrame([
    ("Table 3", "Global", "global", 48.0),
    ("Table 3", "Global + Local", "global+local", 48.9),
    ("Table 3", "Global + Correlation", "global+corr", 49.5),
    ("Table 3", "Global + Local + Correlation", RRL_ROW, 50.2),
    ("Table 4", "VGG-16 w/o augmentation", "vgg, no augment", 48.8),
    ("Table 4", "Swin-T w/o augmentation", "swin, no augment", 49.1),
    ("Table 4", "Swin-T with augmentation", RRL_ROW, 50.2),
], columns=["table", "paper row", "variant", "paper F1"])


def _paper_diff(a: str, b: str, table: str) -> float:
    t = PAPER_ABLATIONS[PAPER_ABLATIONS["table"] == table].set_index("variant")["paper F1"]
    return round(float(t[a] - t[b]) / 100, 4)


#: the paper's claims, each judged by :func:`aulib.eval.claims.judge` on the BP4D-like (fold, seed) units
CLAIMS: list[Claim] = [
    Claim("Table 3: local learning adds to global only", "global+local", "global",
          _paper_diff("global+local", "global", "Table 3"), dataset=BP4D),
    Claim("Table 3: relation learning adds to global only", "global+corr", "global",
          _paper_diff("global+corr", "global", "Table 3"), dataset=BP4D),
    Claim("Table 3: local + relation beat global only", RRL_ROW, "global",
          _paper_diff(RRL_ROW, "global", "Table 3"), dataset=BP4D),
    Claim("Table 4: augmentation helps Swin-T", RRL_ROW, "swin, no augment",
          _paper_diff(RRL_ROW, "swin, no augment", "Table 4"), dataset=BP4D),
    Claim("Table 4: Swin-T beats VGG-16 (no augmentation)", "swin, no augment", "vgg, no augment",
          _paper_diff("swin, no augment", "vgg, no augment", "Table 4"), dataset=BP4D),
    Claim("pretrained RRL beats the untrained encoder", RRL_ROW, UNTRAINED, None, dataset=BP4D),
    # not a claim of the paper: its premise that BYOL pretraining itself (Table 3's "global" row) beats random
    # weights, which says whether a failure of the row above lies in BYOL or in the local / relation terms
    Claim("BYOL alone (global) beats the untrained encoder", "global", UNTRAINED, None, dataset=BP4D),
]


def judge_claims(results: pd.DataFrame, claims: Sequence[Claim] = CLAIMS) -> pd.DataFrame:
    """:data:`CLAIMS` through the one rule; a claim whose rows this profile did not run is left out (listed by
    :func:`claims_not_run`)."""
    return judge(results, [c for c in claims if not _missing(results, c)])


def _missing(results: pd.DataFrame, c: Claim) -> list[str]:
    return [v for v in (c.a, c.b) if v not in set(results["variant"])]


def claims_not_run(results: pd.DataFrame, claims: Sequence[Claim] = CLAIMS) -> list[str]:
    """The claims :func:`judge_claims` leaves out because the profile did not run one of their rows."""
    return [f"{c.claim} (row {', '.join(map(repr, _missing(results, c)))} not run)" for c in claims
            if _missing(results, c)]


# --------------------------------------------------------------------------------------------- data


@dataclass
class Data:
    """The unlabelled pretraining set and the two downstream sets."""

    pretrain: Any
    bp4d: Any
    disfa: Any

    def overview(self) -> pd.DataFrame:
        return pd.DataFrame([{"set": n, "frames": len(d), "subjects": len(d.subjects), "AUs": d.aus}
                             for n, d in [("pretraining (unlabelled)", self.pretrain), (BP4D, self.bp4d),
                                          (DISFA, self.disfa)]])


def make_data(P: dict, data_root: str | None = None, seed: int = 0) -> Data:
    """Synthetic RGB sets at the profile's image size; ``data_root`` replaces the BP4D-like set by a canonical
    dataset folder. With ``P["align"]`` every face (streamed ones too) is drawn at ``P["draw_size"]`` and cut by
    that template (:func:`aulib.data.align.aligned`; RRL aligns dlib-landmarked faces), as ``aulib train`` cuts
    a user's frames."""
    size, tpl = P["method"]["image_size"], P.get("align")
    draw = P.get("draw_size") or size
    pre_kw = dict(P["pretrain_data"])
    if P.get("stream"):  # gpu profile: faces drawn on the fly in the loader's workers (aulib.data.stream)
        pretrain_set = FaceStream(pre_kw["preset"], n=_frames(pre_kw), image_size=size, channels=3,
                                  seed=pre_kw.get("seed", 0), block=P["method"]["batch_size"], align=tpl,
                                  draw_size=draw)
    else:
        pretrain_set = aligned(generate(SynthConfig(preset=pre_kw.pop("preset"), image_size=draw, channels=3,
                                                    **pre_kw)), tpl, size, 3)
    bp4d = aligned(open_dataset(data_root) if data_root is not None else
                   generate(SynthConfig(preset="bp4d", image_size=draw, channels=3, seed=seed, **P["bp4d_data"])),
                   tpl, size, 3)
    disfa = aligned(generate(SynthConfig(preset="disfa", image_size=draw, channels=3, seed=seed, **P["disfa_data"])),
                    tpl, size, 3)
    return Data(pretrain_set, bp4d, disfa)


def relation_matrix(ds, rows: np.ndarray | None = None, aus: Sequence[int] | None = None) -> np.ndarray:
    """M (K, K) = P(AU_j | AU_i) counted on the labels of ``rows`` (the training subjects), Fig. 2."""
    labels, valid = ds.au_matrix()
    if rows is not None:
        labels, valid = labels[rows], valid[rows]
    if aus is not None:
        missing = [a for a in aus if a not in ds.aus]
        if missing:
            raise KeyError(f"AU(s) {missing} are not labelled in {ds.meta.name}; its AUs: {ds.aus}")
        idx = [ds.aus.index(a) for a in aus]
        labels, valid = labels[:, idx], valid[:, idx]
    return cooccurrence(labels, valid)


def relation_matrices(data: Data, fold: int = 1) -> dict[str, np.ndarray]:
    """M of each downstream set, counted on the training subjects of ``fold`` (as the paper counts it on its
    training set): what the figure shows; :func:`run_linear_protocol` counts M on each fold's own training rows."""
    return {name: relation_matrix(ds, fold_split(ds, fold)[0]) for name, ds in ((BP4D, data.bp4d),
                                                                                 (DISFA, data.disfa))}


def relation_gap(M: dict[str, np.ndarray]) -> pd.DataFrame:
    """Mean |M_synthetic - M_real| per set (the real matrices: ``aulib.data.stats.REFERENCE``)."""
    ref = {BP4D: "bp4d", DISFA: "disfa"}
    return pd.DataFrame([{"set": n, "mean |M_synthetic - M_real|":
                          float(np.nanmean(np.abs(m - REFERENCE[ref[n]].cooccurrence)))} for n, m in M.items()])


# --------------------------------------------------------------------------------------------- pretraining


def _frames(d: dict) -> int:
    return int(d["n_subjects"]) * int(d.get("sequences_per_subject", 1)) * int(d.get("frames_per_sequence", 1))


class _StreamItem:
    """A streamed face as FrameDataset gives it to TwoViewAugment (picklable, for the loader's workers)."""

    def __init__(self, transform):
        self.transform = transform

    def __call__(self, face: dict) -> dict:
        from torchvision import tv_tensors

        img = torch.from_numpy(face["image"]).permute(2, 0, 1).float() / 255  # (C, H, W)
        sample = {"image": tv_tensors.Image(img),
                  "landmarks": tv_tensors.KeyPoints(torch.from_numpy(face["landmarks"]), canvas_size=img.shape[-2:])}
        if self.transform is not None:  # None: the views are made on the batch (BatchTwoViews)
            sample = self.transform(sample)
        return {"image": sample["image"].as_subclass(torch.Tensor),
                "landmarks": sample["landmarks"].as_subclass(torch.Tensor).float(), "row": torch.tensor(face["index"])}


def pretrain_loader(ds, cfg: RRLConfig, rows: np.ndarray | None = None, augment: bool = True, seed: int = 0,
                    num_workers: int | str = 0, view1: ViewAug = VIEW1, view2: ViewAug = VIEW2,
                    batch_augment: bool = False, device: str = "auto"):
    """Shuffled two-view loader over ``ds`` (labels are carried by FrameDataset but never read by RRL); a
    :class:`FaceStream` is drawn in ``num_workers`` workers (``"auto"``: from the cores) and orders itself.

    ``batch_augment``: the loader yields plain frames and the two views are made on the whole batch on
    ``device`` (:class:`aulib.data.batch_augment.BatchTwoViews`, Kornia, per-sample parameters), instead of
    per sample with torchvision v2 in the loader (:class:`TwoViewAugment`); the same ViewAug settings."""
    per_sample = None if batch_augment else TwoViewAugment(view1, view2, augment, cfg.image_size)
    if isinstance(ds, FaceStream):
        ds.item, ds.block = _StreamItem(per_sample), cfg.batch_size
        loader = make_loader(ds, batch_size=cfg.batch_size, num_workers=num_workers, drop_last=True)
    else:
        fd = FrameDataset(ds, rows, transform=per_sample, size=cfg.image_size, channels=cfg.in_chans)
        g = torch.Generator().manual_seed(seed)
        loader = DataLoader(fd, batch_size=min(cfg.batch_size, len(fd)), shuffle=True, drop_last=True, generator=g,
                            num_workers=num_workers)
    if batch_augment:
        return OnDevice(loader, BatchTwoViews(view1, view2, cfg.image_size, augment), resolve_device(device))
    return loader


def pretrain(ds, cfg: RRLConfig, relation: np.ndarray | None, epochs: int, augment: bool = True, seed: int = 0,
             rows: np.ndarray | None = None, device: str = "auto", out_dir=None, progress: bool = True,
             num_workers: int | str = 0, warmup_epochs: float = 0.0, batch_augment: bool = False
             ) -> tuple[RRL, pd.DataFrame]:
    """Self-supervised RRL pretraining on the (unlabelled) frames ``rows`` of ``ds``: AdamW,
    lr = base_lr * BS / 256 with a cosine decay (after ``warmup_epochs`` of linear warm-up), the weight-decay
    and momentum schedules of the method. Returns (method, per-epoch history)."""
    seed_everything(seed)
    method = RRL(cfg, relation if cfg.use_corr else None)
    loader = pretrain_loader(ds, cfg, rows, augment, seed, num_workers, batch_augment=batch_augment, device=device)
    tc = TrainConfig(epochs=epochs, optimizer="adamw", lr=cfg.lr, weight_decay=0.0, schedule="cosine", seed=seed,
                     device=device, progress=progress, warmup_epochs=warmup_epochs)
    history = fit(method, loader, tc, out_dir=out_dir, resume=out_dir is not None)
    return method.cpu().eval(), history


def untrained_encoder(cfg: RRLConfig, seed: int = 0) -> Encoder:
    """The encoder f with random weights: the ``untrained encoder`` baseline of the linear protocol."""
    return build_encoder(cfg, seed).eval()


def _global(encoder: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return encoder(x)[0]


def encoder_features(encoder: Encoder, ds, rows: np.ndarray | None = None, image_size: int = 224,
                     in_chans: int = 3, batch_size: int = 128, device: str = "auto",
                     progress: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(global features (N, D), labels (N, K), valid (N, K)) of the frozen encoder over ``rows``."""
    loader = DataLoader(FrameDataset(ds, rows, size=image_size, channels=in_chans), batch_size=batch_size)
    return extract_features(encoder, loader, device, feature_fn=_global, progress=progress)


# --------------------------------------------------------------------------------------------- the variants


class FrozenProbe:
    """A run_folds function: the frozen f of ``make_encoder(seed)``, features of the whole set extracted once per
    seed, then RRL's linear evaluation (BatchNorm1d + bias-free Linear, plain BCE per AU) trained on each fold
    with the profile's probe settings (``P["probe"]``: full-batch L-BFGS to convergence).
    A ``make_encoder`` with ``per_fold = True`` (an encoder pretrained with the fold's M) is called as
    ``make_encoder(seed, train_rows, fold)`` and its features are kept per (seed, fold)."""

    def __init__(self, make_encoder: Callable[[int], Encoder], ds, image_size: int, probe: dict,
                 device: str = "auto"):
        self.make_encoder, self.ds, self.image_size, self.device = make_encoder, ds, image_size, device
        self.probe = {"head": "bn_linear", "progress": False, **probe}
        self._features: dict[int, tuple] = {}

    def __call__(self, train_rows, test_rows, fold, seed):
        per_fold = getattr(self.make_encoder, "per_fold", False)
        key = (seed, fold) if per_fold else seed
        if key not in self._features:
            enc = self.make_encoder(seed, train_rows, fold) if per_fold else self.make_encoder(seed)
            self._features[key] = encoder_features(enc, self.ds, None, self.image_size, device=self.device)
        feats, labels, valid = self._features[key]
        cfg = ProbeConfig(**{**self.probe, "seed": seed, "device": self.device})
        head = train_head(feats[train_rows], labels[train_rows], valid[train_rows], cfg)
        return predict_head(head, feats[test_rows])


@dataclass
class SupervisedReference:
    """A run_folds function: the same f (random init) + the probe's BN + Linear head, trained end to end on the
    training fold's labels with plain masked BCE (as the probe), then the test frames scored."""

    cfg: RRLConfig
    ds: Any
    epochs: int = 4
    lr: float = 1e-3
    batch_size: int = 32
    device: str = "auto"
    dataset: str = ""
    histories: list = field(default_factory=list)

    def __call__(self, train_rows, test_rows, fold, seed):
        seed_everything(seed)
        f = GlobalVector(build_encoder(self.cfg, seed))
        model = nn.Sequential(f, linear_head(f.num_features, len(self.ds.aus), "bn_linear"))
        labels, valid = self.ds.au_matrix()
        size, ch = self.cfg.image_size, self.cfg.in_chans
        g = torch.Generator().manual_seed(seed)
        train = DataLoader(FrameDataset(self.ds, train_rows, size=size, channels=ch), batch_size=self.batch_size,
                           shuffle=True, drop_last=True, generator=g)
        tc = TrainConfig(epochs=self.epochs, optimizer="adamw", lr=self.lr, schedule="cosine", seed=seed,
                         device=self.device, progress=False)
        hist = fit(Supervised(model=model), train, tc, resume=False)
        self.histories.append(hist.assign(dataset=self.dataset, fold=fold, seed=seed, run=f"fold {fold} s{seed}"))
        test = DataLoader(FrameDataset(self.ds, test_rows, size=size, channels=ch), batch_size=128)
        probs, _, _ = predict(model, test, self.device, progress=False)
        return probs


@dataclass
class Run:
    """Everything :func:`run_linear_protocol` measured."""

    results: pd.DataFrame  # tidy, one row per experiment x variant x dataset x fold x seed x AU, baselines in
    history: pd.DataFrame  # RRL pretraining, per epoch, per variant / dataset / seed
    supervised_history: pd.DataFrame  # the supervised reference's training, per epoch, per dataset / fold / seed
    models: dict[str, RRL]  # the first seed's pretrained model of each BP4D variant
    timings: dict[str, float] = field(default_factory=dict)


@dataclass
class _Pretrained:
    """make_encoder for FrozenProbe: pretrains one RRL row per seed (per fold and seed when the row has the
    relation term: M counted on the fold's training rows of ``labelled``), keeps its history (and the first
    seed's model, of the first fold)."""

    pretrain_set: Any
    cfg: RRLConfig
    augment: bool
    labelled: Any  # the downstream set whose training labels give M
    epochs: int
    device: str
    name: str
    dataset: str
    histories: list
    models: dict | None
    keep_seed: int
    warmup_epochs: float = 0.0
    num_workers: int | str = 0
    batch_augment: bool = False

    @property
    def per_fold(self) -> bool:
        return self.cfg.use_corr

    def __call__(self, seed: int, train_rows: np.ndarray | None = None, fold: int | None = None) -> Encoder:
        relation = None
        if self.cfg.use_corr:
            if train_rows is None:
                raise ValueError("a row with the relation term needs the fold's training rows to count M")
            relation = relation_matrix(self.labelled, train_rows, aus=self.cfg.aus)  # this fold's M (Fig. 2)
        method, hist = pretrain(self.pretrain_set, self.cfg, relation, epochs=self.epochs,
                                augment=self.augment, seed=seed, device=self.device, progress=False,
                                num_workers=self.num_workers, warmup_epochs=self.warmup_epochs,
                                batch_augment=self.batch_augment)
        run = f"{self.name} s{seed}" + (f" fold {fold}" if fold is not None else "")
        self.histories.append(hist.assign(variant=self.name, dataset=self.dataset, seed=seed, fold=fold, run=run))
        if self.models is not None and seed == self.keep_seed and self.name not in self.models:
            self.models[self.name] = method
        return method.encoder


def pretrain_runs(P: dict) -> int:
    """How many pretrainings :func:`run_linear_protocol` makes: per seed one per BP4D-like row, one per fold for
    the rows with the relation term (M per fold), and the full RRL per DISFA-like (fold, seed)."""
    bp4d = sum(len(P["seeds"]) * (len(P["folds"]) if ABLATIONS[v].get("use_corr") else 1) for v in P["variants"])
    return bp4d + len(P["disfa_seeds"]) * len(P.get("disfa_folds", P["folds"]))


def run_linear_protocol(P: dict, data: Data, device: str = "auto", progress: bool = True) -> Run:
    """Every Table 3 / 4 row (``P["variants"]``) on the BP4D-like folds and seeds, the full RRL on the DISFA-like
    folds (``P["disfa_folds"]``, default ``P["folds"]``; seeds ``P["disfa_seeds"]``), each with the untrained
    encoder and the supervised reference on the same units.
    Rows with the relation term are pretrained per (fold, seed) with M counted on that fold's training labels."""
    import time

    base = base_config(P)
    size, probe, sup = base.image_size, P["probe"], dict(P["supervised"])
    histories: list[pd.DataFrame] = []
    models: dict[str, RRL] = {}
    tables, sup_hist, timings = [], [], {}
    protocols = [(BP4D, EXP_BP4D, data.bp4d, base, list(P["variants"]), P["seeds"], P["folds"]),
                 (DISFA, EXP_DISFA, data.disfa, RRLConfig.from_dict(asdict(base), aus=tuple(data.disfa.aus)),
                  [RRL_ROW], P["disfa_seeds"], P.get("disfa_folds", P["folds"]))]
    for dataset, exp, ds, cfg0, names, seeds, folds in protocols:
        t0 = time.perf_counter()
        variants = [Variant(UNTRAINED, FrozenProbe(lambda s, c=cfg0: untrained_encoder(c, s), ds, size, probe,
                                                   device), role="baseline")]
        for name in names:
            cfg, augment = variant_config(cfg0, name, P["vgg_backbone"], P["vgg_kwargs"])
            make = _Pretrained(data.pretrain, cfg, augment, ds, P["epochs"], device, name, dataset,
                               histories, models if dataset == BP4D else None, seeds[0],
                               P.get("warmup_epochs", 0.0), P.get("num_workers", 0), P.get("batch_augment", False))
            variants.append(Variant(name, FrozenProbe(make, ds, size, probe, device), role=role_of(name)))
        ref = SupervisedReference(cfg0, ds, device=device, dataset=dataset, **sup)
        variants.append(Variant(SUPERVISED, ref, role="reference"))
        tables.append(run_folds(ds, variants, folds=folds, seeds=seeds, experiment=exp, dataset=dataset,
                                progress=progress))
        sup_hist += ref.histories
        timings[f"{dataset} pretrain + probe + references"] = time.perf_counter() - t0
    history = pd.concat(histories, ignore_index=True)
    return Run(tidy(tables), history, pd.concat(sup_hist, ignore_index=True), models, timings)


# --------------------------------------------------------------------------------------------- paper tables


def per_au_beside_paper(results: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """Table 1 (DISFA) or Table 2 (BP4D): aulib's per-AU F1 (%) of RRL, the untrained encoder and the supervised
    reference (mean over folds and seeds) beside the paper's columns (labelled "paper (reported)")."""
    paper = PAPER_TABLE1 if dataset == DISFA else PAPER_TABLE2
    r = results[results["dataset"] == dataset]
    ours = r.groupby(["variant", "au"])["f1"].mean().mul(100).unstack(0)
    ours.index = [int(a[2:]) for a in ours.index]
    ours = ours[[c for c in (RRL_ROW, UNTRAINED, SUPERVISED, "always present") if c in ours]]
    ours.columns = [f"aulib {c} (synthetic)" for c in ours.columns]
    table = pd.concat([ours, paper.set_index("AU").add_suffix(" — paper (reported)")], axis=1).loc[paper.AU]
    table.loc["Avg."] = table.mean()
    return table.round(1)


def ablation_per_seed(results: pd.DataFrame, dataset: str = BP4D) -> pd.DataFrame:
    """Mean F1 (%) over AUs and folds per (variant, seed) on ``dataset``."""
    r = results[results["dataset"] == dataset]
    return r.groupby(["variant", "role", "seed"])["f1"].mean().mul(100).rename("mean F1").reset_index()


def ablation_tables(results: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Tables 3 and 4: mean and std over seeds of the per-seed mean F1 (%) on the BP4D-like set, the baselines
    and the supervised reference first, the paper's F1 beside each row."""
    per_seed = ablation_per_seed(results)
    agg = per_seed.groupby(["variant", "role"])["mean F1"].agg(["mean", "std", "count"]).reset_index().rename(
        columns={"mean": "aulib mean F1 (synthetic)", "std": "std over seeds", "count": "seeds"})
    out = []
    for table in ("Table 3", "Table 4"):
        rows = PAPER_ABLATIONS[PAPER_ABLATIONS["table"] == table][["paper row", "variant", "paper F1"]]
        refs = pd.DataFrame({"paper row": "-", "variant": ["always present", UNTRAINED, SUPERVISED],
                             "paper F1": np.nan})
        t = pd.concat([refs, rows]).merge(agg, on="variant", how="left")
        out.append(t[["paper row", "variant", "role", "aulib mean F1 (synthetic)", "std over seeds", "seeds",
                      "paper F1"]].round(2))
    return out[0], out[1]


def ablation_figure(results: pd.DataFrame):
    """One dot per seed (mean F1 over AUs and folds), bar = mean +- std, per BP4D-like row."""
    import matplotlib.pyplot as plt

    per_seed = ablation_per_seed(results)
    order = [v for v in ["always present", "prior", UNTRAINED, SUPERVISED, *ABLATIONS] if v in set(per_seed.variant)]
    fig, ax = plt.subplots(figsize=(10, 3.5))
    for i, v in enumerate(order):
        pts = per_seed[per_seed.variant == v]["mean F1"]
        ax.scatter([i] * len(pts), pts, color="C0", alpha=0.6)
        ax.errorbar(i, pts.mean(), yerr=pts.std() if len(pts) > 1 else 0, color="k", capsize=4, marker="_", ms=20)
    ax.set_xticks(range(len(order)), order, rotation=20, ha="right")
    ax.set_ylabel(f"mean F1 (%), {BP4D}")
    ax.set_title("one dot per seed (mean over AUs and folds), bar = mean +- std")
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------------- figures


def attention_map_figure(ds, size: int):
    """A face, an augmented view of it (flip + rotation + colour) and EAC-Net's squares, each with six AU maps."""
    import matplotlib.pyplot as plt

    from aulib.data.au_maps import AU_CENTRE_RULES, au_attention_maps
    from aulib.data.transforms import to_sample

    sample = FrameDataset(ds, size=size, channels=3)[0]
    img, lm = sample["image"], sample["landmarks"]
    view = TwoViewAugment(ViewAug(flip=1.0, rotation=20.0), VIEW2, image_size=size)(to_sample(img, lm))
    views = [("original", img, lm, "ellipse"),
             ("augmented view (flip + rotation + colour)", view["image"][0], view["landmarks"][0], "ellipse"),
             ("EAC-Net squares (original)", img, lm, "square")]
    show = [a for a in ds.aus if a in AU_CENTRE_RULES]
    cols = ([show.index(a) for a in (1, 2, 4, 6, 12, 17) if a in show] + list(range(len(show))))[:6]
    fig, axes = plt.subplots(len(views), 7, figsize=(15, 2.3 * len(views)))
    for r, (title, im, points, variant) in enumerate(views):
        maps = au_attention_maps(points, show, size, variant=variant)  # (K, 14, 14)
        axes[r, 0].imshow(im.permute(1, 2, 0).clamp(0, 1))
        axes[r, 0].scatter(points[:, 0], points[:, 1], s=3, c="lime")
        axes[r, 0].set_title(title, fontsize=8)
        for c, k in enumerate(cols):
            up = torch.nn.functional.interpolate(maps[None, k:k + 1], size=(size, size), mode="bilinear")[0, 0]
            axes[r, c + 1].imshow(im.permute(1, 2, 0).clamp(0, 1))
            axes[r, c + 1].imshow(up, alpha=0.55, cmap="jet", vmin=0, vmax=1)
            axes[r, c + 1].set_title(f"AU{show[k]} ({variant})", fontsize=8)
    for a in axes.ravel():
        a.axis("off")
    fig.tight_layout()
    return fig


def relation_figure(data: Data, M: dict[str, np.ndarray]):
    """The synthetic M of each set beside the real dataset's (reference statistics)."""
    import matplotlib.pyplot as plt

    from aulib.viz import heatmap

    fig, axes = plt.subplots(2, 2, figsize=(13, 12))
    for r, (name, key, ds) in enumerate([(BP4D, "bp4d", data.bp4d), (DISFA, "disfa", data.disfa)]):
        heatmap(M[name], [f"AU{a}" for a in ds.aus], ax=axes[r, 0], title=f"{name} synthetic M (fold-1 training "
                "labels)", vmin=0, vmax=1, fmt=".1f")
        ref = REFERENCE[key]
        heatmap(ref.cooccurrence, [f"AU{a}" for a in ref.aus], ax=axes[r, 1],
                title=f"real {ref.name} (reference statistics)", vmin=0, vmax=1, fmt=".1f")
    fig.tight_layout()
    return fig


@dataclass
class Plans:
    plans: torch.Tensor  # (B, K, K)
    a: torch.Tensor  # (B, K) Eq.5 supplier weights
    b: torch.Tensor  # (B, K) receiver weights
    cost: torch.Tensor  # (K, K)
    aus: tuple[int, ...]

    def stats(self) -> pd.DataFrame:
        """Per image: diagonal mass, <C, plan>, the cost of the independent plan a b^T, max_i a_i."""
        p, c = self.plans, self.cost
        return pd.DataFrame({"image": range(len(p)), "mass on diagonal": p.diagonal(dim1=1, dim2=2).sum(1).numpy(),
                             "transport cost <C, plan>": (p * c).sum((1, 2)).numpy(),
                             "cost of the independent plan a b^T": torch.einsum("bi,bj,ij->b", self.a, self.b,
                                                                                 c).numpy(),
                             "largest supplier weight max a_i": self.a.max(1).values.numpy()})

    def figure(self, n_images: int):
        import matplotlib.pyplot as plt

        from aulib.viz import heatmap

        labels = [f"AU{x}" for x in self.aus]
        n = min(n_images, len(self.plans))
        fig, axes = plt.subplots(1, n + 1, figsize=(4.2 * (n + 1), 4))
        heatmap(self.cost.numpy(), labels, ax=axes[0], title="cost C = 1 - M", annot=False, vmin=0, vmax=1)
        for i in range(n):
            heatmap(self.plans[i].numpy(), labels, ax=axes[i + 1], title=f"plan, image {i}", annot=False,
                    cmap="magma")
        fig.tight_layout()
        return fig


def transport_plans(method: RRL, pretrain_set, seed: int = 0) -> Plans:
    """The plans the relation loss computes on one whole training batch (BatchNorm sees training statistics)."""
    batch = next(iter(pretrain_loader(pretrain_set, method.cfg, seed=seed)))
    plans, a, b = transport_plans_of(method, batch)
    return Plans(plans, a, b, method.cost.detach().cpu(), tuple(method.cfg.aus))


def plan_summary(plans: Plans) -> pd.DataFrame:
    return plans.stats().drop(columns="image").describe().loc[["mean", "std", "min", "max"]].round(3)


@torch.no_grad()
def embeddings(method: RRL, ds, rows: np.ndarray, batch_size: int = 128) -> dict[str, np.ndarray]:
    """Online global (N, D) and local (N, K, D) vectors of ``rows`` (maps from the frames' own landmarks)."""
    fd = FrameDataset(ds, rows, size=method.cfg.image_size, channels=method.cfg.in_chans)
    method.eval()
    glob, loc = [], []
    for i in range(0, len(fd), batch_size):
        items = [fd[j] for j in range(i, min(i + batch_size, len(fd)))]
        out = method.embed(torch.stack([it["image"] for it in items]), torch.stack([it["landmarks"] for it in items]))
        glob.append(out["global"])
        if "local" in out:
            loc.append(out["local"])
    res = {"global": torch.cat(glob).numpy()}
    if loc:
        res["local"] = torch.cat(loc).numpy()
    return res


def embedding_figure(method: RRL, ds, n_rows: int, seed: int = 0, colour_au: int = 12, use_umap: bool = True):
    """t-SNE (and UMAP) of the frozen online encoder's global vectors coloured by one AU's label, and of the
    local AU vectors coloured by AU."""
    import matplotlib.pyplot as plt
    from sklearn.manifold import TSNE

    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(len(ds), size=min(n_rows, len(ds)), replace=False))
    emb = embeddings(method, ds, rows)
    labels_all, _ = ds.au_matrix()
    k_show = min(len(method.cfg.aus), 12)
    local = emb["local"][:, :k_show].reshape(-1, emb["local"].shape[-1])
    local_au = np.tile(np.arange(k_show), len(rows))

    def reducer(kind, n):
        if kind == "t-SNE":
            return TSNE(2, perplexity=min(30, max(5, n // 4)), init="pca", random_state=seed)
        import umap

        return umap.UMAP(n_neighbors=min(15, n - 1), random_state=seed)

    kinds = ["t-SNE", "UMAP"] if use_umap else ["t-SNE"]
    fig, axes = plt.subplots(2, len(kinds), figsize=(5.5 * len(kinds), 9), squeeze=False)
    for c, kind in enumerate(kinds):
        g2 = reducer(kind, len(rows)).fit_transform(emb["global"])
        axes[0, c].scatter(g2[:, 0], g2[:, 1], c=labels_all[rows, ds.aus.index(colour_au)], cmap="coolwarm", s=8)
        axes[0, c].set_title(f"{kind}: global vectors, colour = AU{colour_au} active")
        l2 = reducer(kind, len(local)).fit_transform(local)
        axes[1, c].scatter(l2[:, 0], l2[:, 1], c=local_au, cmap="tab20", s=4)
        axes[1, c].set_title(f"{kind}: local AU vectors, colour = AU")
    handles = [plt.Line2D([], [], marker="o", ls="", color=plt.cm.tab20(i / max(1, k_show - 1)),
                          label=f"AU{method.cfg.aus[i]}") for i in range(k_show)]
    axes[1, -1].legend(handles=handles, fontsize=6, loc="center left", bbox_to_anchor=(1, 0.5))
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------------- feature spectra


def feature_spectra(models: dict[str, RRL], ds, cfg: RRLConfig, seed: int = 0,
                    results: pd.DataFrame | None = None, n: int = 32) -> tuple[pd.DataFrame, pd.DataFrame]:
    """How many directions each frozen encoder's global vectors use on ``ds`` (the features the probe reads):
    the untrained encoder of ``seed`` beside each pretrained model of ``models``.

    Returns (one row per encoder: effective rank, top-1 / top-5 variance shares and, with ``results``, the
    probe's mean F1 / AUC of that row; the tidy first-``n`` spectra for :func:`aulib.viz.spectrum_plot`).
    See :mod:`aulib.eval.representation`."""
    encoders = {UNTRAINED: untrained_encoder(cfg, seed), **{name: m.encoder for name, m in models.items()}}
    feats = {name: encoder_features(enc.eval(), ds, None, cfg.image_size, cfg.in_chans)[0].numpy()
             for name, enc in encoders.items()}
    return spectrum_table(feats, results), spectra(feats, n)


__all__ = ["ABLATIONS", "CLAIMS", "PAPER_ABLATIONS", "PAPER_TABLE1", "PAPER_TABLE2", "Data", "FrozenProbe", "Plans",
           "Run", "SupervisedReference", "ablation_figure", "ablation_tables", "attention_map_figure", "base_config",
           "embedding_figure", "feature_spectra", "judge_claims", "make_data", "per_au_beside_paper", "pretrain",
           "pretrain_loader",
           "relation_figure", "relation_gap", "relation_matrices", "relation_matrix", "role_of",
           "run_linear_protocol", "settings", "summary_markdown", "timings_table", "transport_plans", "untrained_encoder", "variant_config"]


# --------------------------------------------------------------------------------------------- prose


def summary_markdown(results: pd.DataFrame, claims: pd.DataFrame) -> str:
    """The closing section's sentences, read from the tables just computed: per dataset, RRL next to the
    baselines and the supervised reference; then what the verdicts say."""
    from aulib.eval.claims import verdict_counts

    s = scores(results).set_index(["dataset", "variant"])
    lines = []
    for ds in dict.fromkeys(results["dataset"]):
        def f(v, ds=ds):
            return (f"{100 * s.loc[(ds, v), 'f1']:.1f} (AUC {s.loc[(ds, v), 'auc']:.2f})"
                    if (ds, v) in s.index else "n/a")
        rrl_f1, ap_f1 = s.loc[(ds, RRL_ROW), "f1"], s.loc[(ds, "always present"), "f1"]
        beats = "beats" if rrl_f1 > ap_f1 else "does **not** beat"
        lines.append(f"- *{ds}*: RRL F1 {f(RRL_ROW)}; always present {f('always present')}; untrained encoder "
                     f"{f(UNTRAINED)}; supervised {f(SUPERVISED)}. RRL's probe {beats} predicting every AU present.")
    counts = verdict_counts(claims)
    lines.append(f"- Claims: {', '.join(f'{n} {v}' for v, n in counts.items())} (of {len(claims)}).")
    for verdict, text in (("holds", "hold in the paper's direction (the 95% interval excludes 0)"),
                          ("opposite", "go the other way (the interval lies on the wrong side of 0)"),
                          ("not resolved", "are within the run-to-run spread (the interval contains 0)"),
                          ("no evidence", "compare rows of which at least one pretrained row does not beat "
                           "`always present` on F1 or has AUC below 0.6, so they say nothing on this data")):
        names = claims.loc[claims["verdict"] == verdict, "claim"].tolist()
        if names:
            lines.append(f"- These {text}: " + "; ".join(names) + ".")
    skipped = claims_not_run(results)
    if skipped:
        lines.append("- Not judged in this profile: " + "; ".join(skipped) + ".")
    return "\n".join(lines)


def timings_table(timings: dict[str, float]) -> pd.DataFrame:
    """{stage: seconds} as a two-column table."""
    return pd.DataFrame({"stage": list(timings), "seconds": [round(float(v), 1) for v in timings.values()]})
