"""EmoCo's experiments (Sun, Zeng & Shan, FG 2021, Sec. IV): pretrain on emotion-labelled faces, evaluate the
encoder on AU sets by a linear probe and by finetuning, Table IV's ablations, Fig. 4's lambda sweep.

The chapter ``notebooks/05_emoco.ipynb`` calls one function per step::

    P = settings("cpu")
    data = make_data(P, data_root=None, seed=0)                    # pretraining faces + AU sets (in memory)
    models, history = pretrain(data, P, seed=0)                    # {(run, seed): EmoCo}: Table IV / Fig. 4
    results, eval_history = evaluate(data, models, P, seed=0)      # run_folds: linear + finetune, baselines
    claims = judge_claims(results, P)                              # the one rule of aulib.eval.claims
    by_seed = claims_per_seed(results)                             # the same claims on each seed's units alone

Protocol (read from the profile's ``emoco`` section): the pretraining variants of Table IV (+ the lambda sweep
of Fig. 4 on ``sweep_sets``), each scored on every AU set by the linear protocol (``linear_folds``) and the
finetune protocol (``finetune_sets`` x ``finetune_folds``), subject-exclusive 3-fold splits
(:func:`aulib.data.folds.fold_split`). Beside them, on the same (dataset, fold, seed) test frames:
``always present`` and ``prior`` (added by :func:`aulib.eval.crossval.run_folds`), the ``untrained encoder``
(the same backbone with random weights through the same probe / finetune; role ``baseline``) and the
``supervised`` reference (the same backbone trained on the training fold's AU labels with masked BCE, on
flipped and randomly cropped batches when ``supervised_crop_scale`` is set (:class:`BatchFlipCrop`),
:class:`aulib.methods.supervised.Supervised` via :func:`aulib.train.fit`; role ``reference``; trained once per
(dataset, fold, seed) and scored in both experiments).

Pretraining seeds (:func:`pretrain_seeds`): Table IV's runs are pretrained ``P["table_iv_seeds"]`` times (seeds
``seed``, ``seed + 1``, ...); each seed's encoder and the untrained backbone of that seed go through both protocols,
so a Table IV claim's units are (dataset, fold, pretraining seed) and its interval includes the pretraining's own
randomness. The lambda sweep's other runs and the supervised reference use the first seed.

Roles: ``EmoCo`` (the full method) = ``method``; one-loss / one-queue / plain-L2 / lambda-sweep variants =
``ablation``.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset, default_collate

from aulib import profiles
from aulib.data.align import aligned
from aulib.data.batch_augment import BatchFlipCrop, BatchMoCoViews, OnDevice
from aulib.data.dataset import FrameDataset
from aulib.data.loader import make_loader
from aulib.data.schema import EMOTIONS, open_dataset
from aulib.data.stream import FaceStream
from aulib.data.synthetic import SynthConfig, generate
from aulib.eval.baselines import ALWAYS_PRESENT, SUPERVISED, UNTRAINED
from aulib.eval.claims import Claim, judge
from aulib.eval.crossval import Variant, run_folds, scores, tidy
from aulib.eval.protocols import ProbeConfig, finetune, linear_probe, predict
from aulib.eval.representation import spectra, spectrum_table
from aulib.losses.emoco_contrastive import info_nce_from_logits
from aulib.losses.intra_class_norm import intra_class_normalize
from aulib.losses.masked_bce import balanced_pos_weight
from aulib.methods.emoco import EmoCo, EmoCoConfig, MultiQueue, TwoViews, mocov2_augmentation
from aulib.methods.supervised import Supervised, SupervisedConfig
from aulib.models import create_backbone
from aulib.progress import tqdm
from aulib.train import TrainConfig, fit, resolve_device, seed_everything

# --- the protocol as data -------------------------------------------------------------------------------------
#: Table IV's pretraining rows as EmoCoConfig flags (the F column, linear vs finetune, is the evaluation)
TABLE_IV_VARIANTS: dict[str, dict[str, bool]] = {
    "emoco": dict(multi_queue=True, use_cont=True, use_emo=True, intra_norm=True),
    "one_queue": dict(multi_queue=False, use_cont=True, use_emo=True, intra_norm=True),
    "l2_norm": dict(multi_queue=True, use_cont=True, use_emo=True, intra_norm=False),
    "cont_only": dict(multi_queue=True, use_cont=True, use_emo=False, intra_norm=False),  # multi-queue MoCo
    "emo_only": dict(multi_queue=True, use_cont=False, use_emo=True, intra_norm=False),  # emotion classifier
}
#: Tables I-III's self-supervised baseline that is not a Table IV row: plain MoCo (one queue, no emotion)
EXTRA_VARIANTS: dict[str, dict[str, bool]] = {
    "moco": dict(multi_queue=False, use_cont=True, use_emo=False, intra_norm=False),
}
#: the name each variant carries in results.csv
NAMES = {"emoco": "EmoCo", "one_queue": "one queue", "l2_norm": "plain L2", "cont_only": "L_cont only",
         "emo_only": "L_emo only", "moco": "MoCo"}
METHOD = NAMES["emoco"]
EXPERIMENTS = ("linear", "finetune")  # Table IV's F column: the evaluation protocol
DATASETS = ("gft", "disfa", "bp4d")


def variant_config(name: str, **overrides: Any) -> EmoCoConfig:
    """The EmoCoConfig of a Table IV row or extra baseline (``overrides`` set the other fields, e.g. lam)."""
    table = {**TABLE_IV_VARIANTS, **EXTRA_VARIANTS}
    if name not in table:
        raise KeyError(f"unknown EmoCo variant {name!r}; valid variants: {', '.join(table)}")
    return EmoCoConfig.from_dict({**overrides, **table[name]})


def sweep_name(key: str, lam: float) -> str:
    """results.csv name of a Fig. 4 run, e.g. ``EmoCo λ=0.2``."""
    return f"{NAMES[key]} λ={lam:g}"


def role_of(variant: str) -> str:
    return "method" if variant == METHOD else "ablation"


# --- the paper's numbers as data ------------------------------------------------------------------------------
#: Table IV, average F1 (%) per dataset, variant and protocol (rows without / with F)
PAPER_TABLE_IV = pd.DataFrame(
    [(ds, NAMES[v], protocol, f1, "Table IV")
     for ds, rows in {
         "gft": {"emoco": (53.0, 58.6), "one_queue": (48.6, 57.7), "l2_norm": (47.5, 57.3), "cont_only": (46.2, 53.3),
                 "emo_only": (47.6, 52.3)},
         "disfa": {"emoco": (53.3, 58.6), "one_queue": (50.2, 57.2), "l2_norm": (48.4, 57.0),
                   "cont_only": (41.4, 54.0), "emo_only": (47.6, 53.6)},
         "bp4d": {"emoco": (59.3, 61.9), "one_queue": (57.8, 60.6), "l2_norm": (56.2, 60.7), "cont_only": (55.0, 59.6),
                  "emo_only": (58.5, 58.9)}}.items()
     for v, pair in rows.items() for protocol, f1 in zip(EXPERIMENTS, pair)],
    columns=["dataset", "variant", "protocol", "f1", "source"])

_AU_TEXT = {  # paper Tables I-III (F1 %), the self-supervised block + EmoCo; Avg. last
    "gft": ("Table I", "1 2 4 6 10 12 14 15 23 24", """
MoCo|linear|21.7 38.1 10.2 74.7 79.1 80.9 25.9 30.5 49.3 45.2 45.6
MoCo|finetune|45.3 48.2 20.3 80.7 78.8 78.1 22.6 46.0 53.9 50.3 52.4
ResNet-50 (supervised)|supervised|23.5 37.8 3.5 79.1 70.1 82.1 20.9 11.7 49.1 40.3 41.8
EmoCo|linear|51.8 42.9 22.9 79.8 77.0 85.2 23.4 42.5 55.4 49.6 53.0
EmoCo|finetune|65.9 55.9 40.7 83.1 75.1 81.4 21.3 48.5 58.0 56.5 58.6"""),
    "disfa": ("Table II", "1 2 4 6 9 12 25 26", """
MoCo|linear|13.8 16.4 43.8 53.1 37.1 74.2 75.5 43.7 44.7
MoCo|finetune|31.1 27.7 59.8 40.3 35.0 70.1 84.6 60.8 51.2
EmoCo|linear|34.3 31.9 63.9 52.5 44.0 77.0 78.3 44.2 53.3
EmoCo|finetune|42.7 41.0 66.3 45.1 50.9 75.5 88.9 58.6 58.6"""),
    "bp4d": ("Table III", "1 2 4 6 7 10 12 14 15 17 23 24", """
MoCo|linear|41.9 28.7 40.8 75.6 70.8 82.7 85.8 62.4 31.0 54.2 31.3 37.6 53.6
MoCo|finetune|40.8 28.9 41.0 72.2 71.0 81.4 84.4 62.0 35.7 54.8 37.1 39.8 54.1
EmoCo|linear|45.4 30.5 55.5 76.1 75.7 84.4 87.6 66.6 39.6 59.1 41.3 49.8 59.3
EmoCo|finetune|50.2 44.7 53.9 74.8 76.6 83.7 87.9 61.7 47.6 59.8 46.9 54.6 61.9"""),
}
#: paper Tables I-III, long form: table, dataset, variant, protocol, au ("AU1".. or "Avg."), f1 (%)
PAPER_AU_TABLES = pd.DataFrame(
    [(table, ds, name, protocol, col, float(x))
     for ds, (table, aus, text) in _AU_TEXT.items()
     for name, protocol, vals in (line.split("|") for line in text.strip().splitlines())
     for col, x in zip([f"AU{a}" for a in aus.split()] + ["Avg."], vals.split())],
    columns=["table", "dataset", "variant", "protocol", "au", "f1"])


# --- claims ----------------------------------------------------------------------------------------------------
def _paper_diff(a: str, b: str, protocol: str) -> float:
    """Mean over the three datasets of the paper's Table IV a - b, in [0, 1] units."""
    t = PAPER_TABLE_IV[PAPER_TABLE_IV.protocol == protocol].pivot(index="dataset", columns="variant", values="f1")
    return round(float((t[a] - t[b]).mean()) / 100, 4)


#: Table IV (both protocols, pooled over the AU sets: the paper's difference is the mean of its three) and
#: "pretrained EmoCo beats the untrained encoder"
CLAIMS: list[Claim] = [
    *(Claim(f"Table IV ({protocol}): EmoCo > {NAMES[other]}", METHOD, NAMES[other],
            paper_diff=_paper_diff(METHOD, NAMES[other], protocol), experiment=protocol)
      for protocol in EXPERIMENTS for other in ("one_queue", "l2_norm", "cont_only", "emo_only")),
    *(Claim(f"{protocol}: pretrained EmoCo > untrained encoder", METHOD, UNTRAINED, experiment=protocol)
      for protocol in EXPERIMENTS),
]


def table_iv_runs(P: dict) -> list[str]:
    """The names of Table IV's pretraining runs and ``P["extra_variants"]``: the runs every seed of
    :func:`pretrain_seeds` pretrains (the lambda sweep's other runs use the first seed only)."""
    return [NAMES[k] for k in [*TABLE_IV_VARIANTS, *P["extra_variants"]]]


def pretrain_seeds(P: dict, seed: int = 0) -> list[int]:
    """The pretraining seeds of Table IV's runs: ``seed`` and the next ``P["table_iv_seeds"] - 1`` (default 1)."""
    return [seed + i for i in range(int(P.get("table_iv_seeds", 1)))]


def sweep_claims(P: dict) -> list[Claim]:
    """Fig. 4 as comparisons: at every swept lambda, EmoCo with N beats plain L2 under the linear protocol (the
    paper: N is superior "without special search on lambda"; the paper gives the curve, not numbers). lambda =
    P["lam"] is Table IV's N vs L2 claim already."""
    return [Claim(f"Fig. 4 (linear): N > plain L2 at λ={lam:g}", sweep_name("emoco", lam), sweep_name("l2_norm", lam),
                  experiment="linear")
            for lam in P["sweep_lambdas"] if lam != P["lam"]]


def judge_claims(results: pd.DataFrame, P: dict) -> pd.DataFrame:
    """Every claim of this paper through :func:`aulib.eval.claims.judge`."""
    return judge(results, [*CLAIMS, *sweep_claims(P)])


def claims_per_seed(results: pd.DataFrame) -> pd.DataFrame:
    """:data:`CLAIMS` judged by the same rule on the units of each pretraining seed alone (column ``seed``): does
    a verdict survive re-running the pretraining? (The pooled verdict is :func:`judge_claims`'s.)"""
    seeds = sorted(results.loc[results.variant == METHOD, "seed"].unique())
    return pd.concat([judge(results[results.seed == s], CLAIMS).assign(seed=int(s)) for s in seeds],
                     ignore_index=True)


def seed_agreement(per_seed: pd.DataFrame, claims: pd.DataFrame) -> pd.DataFrame:
    """One row per claim: the pooled verdict and diff (``claims``) beside each seed's (``per_seed``), F1 points."""
    cell = per_seed.assign(v=[f"{v} ({100 * d:+.1f})" for v, d in zip(per_seed.verdict, per_seed["diff"])])
    wide = cell.pivot(index="claim", columns="seed", values="v").add_prefix("seed ")
    pooled = claims.set_index("claim").loc[wide.index]
    out = wide.assign(pooled=[f"{v} ({100 * d:+.1f})" for v, d in zip(pooled.verdict, pooled["diff"])])
    out["seeds agree"] = per_seed.groupby("claim")["verdict"].nunique().loc[wide.index].eq(1)
    return out.loc[[c.claim for c in CLAIMS if c.claim in out.index]].reset_index()


# --- settings and data -----------------------------------------------------------------------------------------
def settings(profile: str) -> dict:
    """The profile's ``emoco`` section."""
    return profiles.get(profile, "emoco")


@dataclass
class EmoCoData:
    """The pretraining faces (emotion labels only are used) and the AU sets, with in-memory tensors."""

    pretrain: Any  # CanonicalDataset
    au_sets: dict  # name -> CanonicalDataset
    tensors: dict  # name -> (images (N, C, H, W), labels (N, K), valid (N, K))
    image_size: int
    channels: int


def _as_tensors(ds, channels: int, compact: bool = False):
    """(images (N, C, H, W), labels (N, K), valid (N, K)); ``compact``: images stay the dataset's uint8 (a view,
    no copy; gpu profile), converted to float per batch by :class:`_Rows`."""
    if compact and ds.meta.storage == "packed" and ds.meta.channels == channels:
        labels, valid = ds.au_matrix()
        img = torch.from_numpy(np.asarray(ds.images)).permute(0, 3, 1, 2)  # (M, C, H, W) uint8 view
        idx = ds.frames["image"].to_numpy()
        if not np.array_equal(idx, np.arange(len(img))):
            img = img[torch.from_numpy(idx)]  # frames in another order: one uint8 copy
        return img, torch.as_tensor(labels, dtype=torch.float32), torch.as_tensor(valid)
    fd = FrameDataset(ds, channels=channels)
    b = default_collate([fd[i] for i in range(len(fd))])
    return b["image"], b["labels"], b["valid"]


def make_data(P: dict, data_root: str | None = None, seed: int = 0) -> EmoCoData:
    """The synthetic AffectNet-like pretraining set (or the canonical dataset at ``data_root``) and the
    BP4D-, DISFA- and GFT-like AU sets of ``P["au_sets"]``, loaded once into memory. With ``P["align"]`` every
    face is drawn at ``P["draw_size"]`` and cut by that template (:func:`aulib.data.align.aligned`; EmoCo aligns
    its faces on facial points before cropping)."""
    S, C, tpl = P["image_size"], P["channels"], P.get("align")
    draw = P.get("draw_size") or S
    if data_root is None and P.get("stream"):  # gpu profile: drawn on the fly in the loader's workers
        pre = FaceStream("affectnet", n=P["pretrain_subjects"], image_size=S, channels=C, seed=seed,
                         block=P["batch_size"], align=tpl, draw_size=draw)
    elif data_root is None:
        pre = aligned(generate(SynthConfig(preset="affectnet", n_subjects=P["pretrain_subjects"], image_size=draw,
                                           channels=C, seed=seed)), tpl, S, C)
    else:
        pre = open_dataset(data_root)
        C = pre.meta.channels
        pre = aligned(pre, tpl, S, C)
    au_sets = {name: aligned(generate(SynthConfig(preset=name, image_size=draw, channels=C, seed=seed + 1 + i,
                                                  **sizes)), tpl, S, C)
               for i, (name, sizes) in enumerate(P["au_sets"].items())}
    return EmoCoData(pre, au_sets, {n: _as_tensors(ds, C, bool(P.get("compact"))) for n, ds in au_sets.items()},
                     S, C)


def data_summary(data: EmoCoData) -> pd.DataFrame:
    """One row per dataset: frames, subjects, AUs (and emotion counts for the pretraining set)."""
    emo = np.bincount(data.pretrain.emotions(), minlength=len(EMOTIONS))
    rows = [{"dataset": data.pretrain.meta.name, "use": "pretraining (emotion labels)", "frames": len(data.pretrain),
             "subjects": len(data.pretrain.subjects), "AUs / emotions": dict(zip(EMOTIONS, emo.tolist()))}]
    rows += [{"dataset": n, "use": "AU evaluation", "frames": len(ds), "subjects": len(ds.subjects),
              "AUs / emotions": ds.aus} for n, ds in data.au_sets.items()]
    return pd.DataFrame(rows)


def emotion_examples(data: EmoCoData):
    """One pretraining face per emotion."""
    emo = data.pretrain.emotions()
    fig, axes = plt.subplots(1, len(EMOTIONS), figsize=(12, 2))
    for c, ax in enumerate(axes):
        hit = np.flatnonzero(emo == c)
        if len(hit):
            ax.imshow(data.pretrain.image(int(hit[0])).squeeze(), cmap="gray")
        ax.set_title(EMOTIONS[c], fontsize=9)
        ax.axis("off")
    return fig


# --- Fig. 3 toy and the multi-queue demo ----------------------------------------------------------------------
def _deg(u, v):
    return np.degrees(np.arccos(np.clip((u * v).sum(-1), -1, 1)))


def toy_descent(intra: bool, steps: int = 100, lr: float = 0.05) -> tuple[np.ndarray, pd.DataFrame]:
    """Two same-emotion unit features q, k- near their prototype w~ = e_z: gradient descent on an L_emo-like pull
    (-<v, w~>) plus a repulsion of the negative pair (Eq.5 with one negative) measured in the N space (Eq.4,
    ``intra``) or on the plain sphere. Returns the path (steps, 2, 3) and the angles per step (degrees)."""
    w = torch.tensor([0.0, 0.0, 1.0])
    q = torch.tensor([0.25, 0.05, 1.0], requires_grad=True)
    k = torch.tensor([0.10, 0.30, 1.0], requires_grad=True)
    path = []
    for _ in range(steps):
        qn, kn = F.normalize(q, dim=0), F.normalize(k, dim=0)
        path.append(torch.stack([qn, kn]).detach().clone())
        proto = w if intra else torch.zeros(3)
        a, b = intra_class_normalize(qn, proto), intra_class_normalize(kn, proto)  # Eq.4
        pull = -(qn @ w + kn @ w)  # L_emo-like: both towards the prototype
        push = info_nce_from_logits(torch.ones(1), (a @ b).reshape(1, 1), tau=0.2)  # Eq.5: negative pair apart
        (pull + push).backward()
        with torch.no_grad():
            q -= lr * q.grad
            k -= lr * k.grad
            q.grad = k.grad = None
    path = torch.stack(path).numpy()
    qs, ks, wn = path[:, 0], path[:, 1], w.numpy()

    def around(v):
        return (v - wn) / np.linalg.norm(v - wn, axis=-1, keepdims=True)

    return path, pd.DataFrame({"step": np.arange(steps), "alpha (q, k-)": _deg(qs, ks),
                               "beta (N(q), N(k-))": _deg(around(qs), around(ks)),
                               "q to prototype": _deg(qs, wn), "k- to prototype": _deg(ks, wn)})


def fig3_toy(steps: int = 100):
    """Fig. 3 on a toy sphere: paths and angles with plain L2 (top) and intra-class N (bottom); the final angles."""
    fig = plt.figure(figsize=(13, 7.5))
    rows = []
    for r, intra in enumerate([False, True]):
        path, ang = toy_descent(intra, steps)
        name = "intra-class N" if intra else "plain L2"
        ax = fig.add_subplot(2, 2, 2 * r + 1, projection="3d")
        u, v = np.mgrid[0:2 * np.pi:30j, 0:0.5 * np.pi:15j]
        ax.plot_wireframe(np.cos(u) * np.sin(v), np.sin(u) * np.sin(v), np.cos(v), color="0.85", lw=0.4)
        ax.scatter([0], [0], [1], color="k", s=40, label="prototype w~")
        for i, (c, lab) in enumerate([("tab:blue", "q"), ("tab:red", "k-")]):
            ax.plot(*path[:, i].T, color=c, lw=2, label=f"{lab} path")
            ax.scatter(*path[-1, i], color=c, s=30)
        ax.set_title(f"{name}: end alpha={ang.iloc[-1, 1]:.0f}°, beta={ang.iloc[-1, 2]:.0f}°")
        ax.view_init(35, 30)
        ax.legend(loc="upper left", fontsize=8)
        ax2 = fig.add_subplot(2, 2, 2 * r + 2)
        ang.plot(x="step", ax=ax2)
        ax2.set_ylabel("degrees")
        ax2.set_title(f"{name}: angles during descent")
        rows.append({"normalisation": name, **ang.iloc[-1, 1:].round(1).to_dict()})
    fig.tight_layout()
    return fig, pd.DataFrame(rows)


def multi_queue_demo(seed: int = 0, num_queues: int = 7, size: int = 6, batches: int = 3, batch: int = 9):
    """Keys tagged (class, batch) pushed into a small multi-queue dictionary; the figure of its slots."""
    mq = MultiQueue(num_queues=num_queues, dim=2, size=size)
    mq.queue.fill_(float("nan"))
    g = torch.Generator().manual_seed(seed)
    for b in range(batches):
        y = torch.multinomial(torch.tensor([3.0, 4, 1, 1, 1, 1, 2][:num_queues]), batch, replacement=True, generator=g)
        mq.enqueue(torch.stack([y.float(), torch.full_like(y, b, dtype=torch.float)], 1), y)
    fig, ax = plt.subplots(figsize=(7, 3.4))
    cmap = plt.get_cmap("tab10").copy()
    cmap.set_bad("white")  # empty slot
    ax.imshow(np.ma.masked_invalid(mq.queue[:, 0].numpy()), cmap=cmap, vmin=0, vmax=9, aspect="auto")
    ax.grid(False)
    for c in range(num_queues):
        for s in range(size):
            v = mq.queue[c, 1, s].item()
            ax.text(s, c, "" if np.isnan(v) else f"b{int(v)}", ha="center", va="center", fontsize=8)
        ax.text(mq.ptr[c].item() - 0.5, c, "▶", ha="center", va="center", fontsize=9)
    ax.set_yticks(range(num_queues), EMOTIONS[:num_queues])
    ax.set_xlabel("slot (colour = class of the stored key, text = batch it came from, ▶ = write pointer)")
    ax.set_title(f"multi-queue dictionary after {batches} batches")
    return fig


# --- pretraining -----------------------------------------------------------------------------------------------
def pretrain_runs(P: dict, channels: int) -> dict[str, EmoCoConfig]:
    """results.csv name -> EmoCoConfig of every pretraining run: Table IV's rows, ``extra_variants`` and the
    lambda sweep of Fig. 4 with and without N (lambda = P["lam"] is the Table IV run)."""
    lr = P["base_lr"] * P["batch_size"] / 256
    base = dict(backbone=P["backbone"], in_chans=channels, proj_hidden=P["proj_hidden"], proj_dim=P["proj_dim"],
                queue_size=P["queue_size"], momentum=P["momentum"], tau=P["tau"],
                classifier_lr=lr * P["classifier_lr_mult"] if P["classifier_lr_mult"] else None)
    runs = {NAMES[k]: variant_config(k, lam=P["lam"], **base) for k in [*TABLE_IV_VARIANTS, *P["extra_variants"]]}
    for lam in P["sweep_lambdas"]:
        if lam != P["lam"]:
            for k in ("emoco", "l2_norm"):
                runs[sweep_name(k, lam)] = variant_config(k, lam=lam, **base)
    return runs


def pretrain_config(P: dict, seed: int = 0, device: str = "auto") -> TrainConfig:
    """Sec. IV-B: SGD, lr = base_lr x BS/256, cosine decay, weight decay 1e-4, momentum 0.9."""
    return TrainConfig(epochs=P["epochs"], optimizer="sgd", lr=P["base_lr"] * P["batch_size"] / 256,
                       weight_decay=1e-4, momentum=0.9, schedule="cosine", seed=seed, device=device, progress=False)


def pretrain_loader(data: EmoCoData, P: dict, device: str = "auto"):
    """Batches ``{"q", "k", "emotion"}`` of the pretraining faces: MoCo v2 views made per sample in the loader
    (:func:`mocov2_augmentation`), or, with ``P["batch_augment"]``, plain faces from the loader and both views
    made on the whole batch on ``device`` (:class:`aulib.data.batch_augment.BatchMoCoViews`, Kornia)."""
    batched = bool(P.get("batch_augment"))
    augment = None if batched else mocov2_augmentation(data.image_size, data.channels, blur=P["blur"],
                                                        crop_scale=P["crop_scale"])
    if isinstance(data.pretrain, FaceStream):
        data.pretrain.item = _TwoViewItem(augment)
        loader = make_loader(data.pretrain, P["batch_size"], num_workers=P.get("num_workers", 0), drop_last=True)
    else:
        faces = TwoViews.from_canonical(data.pretrain, transform=augment)
        loader = DataLoader(faces.base if batched else faces, batch_size=P["batch_size"], shuffle=True,
                            drop_last=True, num_workers=0)
    if batched:
        views = BatchMoCoViews(data.image_size, data.channels, blur=P["blur"], crop_scale=tuple(P["crop_scale"]))
        return OnDevice(loader, views, resolve_device(device))
    return loader


def pretrain(data: EmoCoData, P: dict, seed: int = 0, device: str = "auto"
             ) -> tuple[dict[tuple[str, int], EmoCo], pd.DataFrame]:
    """Pretrain every run of :func:`pretrain_runs` with ``seed``, and Table IV's runs (+ ``extra_variants``) again
    with each further seed of :func:`pretrain_seeds`, on the emotion-labelled faces (AU labels never read).
    Returns ``{(run, seed): model}`` (CPU, eval mode) and the histories (columns ``run``, ``seed``, ``seconds``)."""
    loader = pretrain_loader(data, P, device)
    runs = pretrain_runs(P, data.channels)
    jobs = [(name, seed) for name in runs] + [(name, s) for s in pretrain_seeds(P, seed)[1:] for name in table_iv_runs(P)]
    models, histories = {}, []
    for name, s in tqdm(jobs, desc="pretraining"):
        t = time.time()
        seed_everything(s)
        model = EmoCo(runs[name])
        h = fit(model, loader, pretrain_config(P, s, device))
        models[(name, s)] = model.cpu().eval()
        histories.append(h.assign(run=name, seed=s, seconds=time.time() - t))
    return models, pd.concat(histories, ignore_index=True)


def pretrain_summary(history: pd.DataFrame) -> pd.DataFrame:
    """Last epoch of every pretraining run (and seed): its losses and wall time."""
    cols = [c for c in ("L_emo", "L_cont", "loss") if c in history]
    last = history.groupby(["run", "seed"], sort=False).tail(1)
    return last.set_index(["run", "seed"])[cols + ["seconds"]].round(3)


def emotion_loss_vs_prior(history: pd.DataFrame, data: EmoCoData) -> pd.DataFrame:
    """The final L_emo of every run (and seed) that uses it, beside the entropy of the pretraining set's emotion
    frequencies (the L_emo of a classifier that learnt only how common each class is) and log C (uniform
    guessing)."""
    counts = np.bincount(data.pretrain.emotions(), minlength=len(EMOTIONS)).astype(float)
    p = counts[counts > 0] / counts.sum()
    entropy = float(-(p * np.log(p)).sum())
    if "L_emo" not in history:
        return pd.DataFrame(columns=["run", "seed", "L_emo first epoch", "L_emo last epoch", "class-prior entropy",
                                     "log C"])
    h = history.dropna(subset=["L_emo"])
    g = h.groupby(["run", "seed"], sort=False)["L_emo"]
    return pd.DataFrame({"L_emo first epoch": g.first(), "L_emo last epoch": g.last(),
                         "class-prior entropy": entropy, "log C": np.log(len(EMOTIONS))}).round(3).reset_index()


class _TwoViewItem:
    """A streamed face -> ``{"q", "k", "emotion"}`` as TwoViews gives it (picklable, for loader workers)."""

    def __init__(self, transform):
        self.transform = transform

    def __call__(self, face: dict) -> dict:
        img = torch.from_numpy(face["image"]).permute(2, 0, 1).float() / 255  # (C, H, W)
        if self.transform is None:  # the views are made on the batch (BatchMoCoViews)
            return {"image": img, "emotion": torch.tensor(face["emotion"])}
        return {"q": self.transform(img), "k": self.transform(img), "emotion": torch.tensor(face["emotion"])}


class _Rows(torch.utils.data.Dataset):
    """(image float (C, H, W) in [0, 1], labels, valid) of ``rows``, read from uint8 images per item (no copy)."""

    def __init__(self, x, y, v, rows):
        self.x, self.y, self.v, self.rows = x, y, v, torch.as_tensor(np.asarray(rows), dtype=torch.long)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i):
        r = self.rows[i]
        return self.x[r].float() / 255, self.y[r], self.v[r]


# --- evaluation: linear probe and finetuning through run_folds -----------------------------------------------
def untrained_backbone(P: dict, channels: int, seed: int) -> nn.Module:
    """The profile's backbone with random weights (seeded by ``seed``), in eval mode: the ``untrained encoder``."""
    seed_everything(seed)
    return create_backbone(P["backbone"], in_chans=channels, num_classes=0).eval()


class _Evaluator:
    """The two protocols and the supervised reference on one AU set; caches what both experiments share."""

    def __init__(self, data: EmoCoData, models: dict, P: dict, device: str):
        self.data, self.models, self.P, self.device = data, models, P, device
        self.histories: list[pd.DataFrame] = []
        self._supervised: dict[tuple, np.ndarray] = {}
        self._untrained: dict[int, nn.Module] = {}

    def loaders(self, name, train_rows, test_rows, shuffle_seed):
        x, y, v = self.data.tensors[name]
        g = torch.Generator().manual_seed(shuffle_seed)
        bs = self.P["finetune_batch"]
        if x.dtype == torch.uint8:  # compact (gpu profile): no per-fold copy
            tr = DataLoader(_Rows(x, y, v, train_rows), batch_size=bs, shuffle=True, generator=g)
            te = DataLoader(_Rows(x, y, v, test_rows), batch_size=bs, shuffle=False)
        else:
            tr = DataLoader(TensorDataset(x[train_rows], y[train_rows], v[train_rows]), batch_size=bs, shuffle=True,
                            generator=g)
            te = DataLoader(TensorDataset(x[test_rows], y[test_rows], v[test_rows]), batch_size=bs, shuffle=False)
        return tr, te, y[train_rows], v[train_rows]

    def untrained(self, seed: int) -> nn.Module:
        """The same backbone with random weights (seeded), shared by both protocols."""
        if seed not in self._untrained:
            self._untrained[seed] = untrained_backbone(self.P, self.data.channels, seed)
        return self._untrained[seed]

    def encoder(self, variant: str, seed: int) -> nn.Module:
        return self.untrained(seed) if variant == UNTRAINED else self.models[(variant, seed)].encoder

    def linear_fn(self, name: str, variant: str):
        def fn(train_rows, test_rows, fold, seed):
            tr, te, _, _ = self.loaders(name, train_rows, test_rows, seed)
            res = linear_probe(self.encoder(variant, seed), tr, te,
                               ProbeConfig(epochs=self.P["probe_epochs"], lr=self.P["probe_lr"], pos_weight="balanced",
                                           seed=seed, device=self.device, progress=False))
            return res.probs
        return fn

    def finetune_fn(self, name: str, variant: str):
        def fn(train_rows, test_rows, fold, seed):
            tr, te, ytr, vtr = self.loaders(name, train_rows, test_rows, seed)
            enc = self.encoder(variant, seed)
            seed_everything(seed)
            net = nn.Sequential(copy.deepcopy(enc), nn.Linear(enc.num_features, ytr.shape[1]))
            res = finetune(net, tr, te, TrainConfig(epochs=self.P["finetune_epochs"], optimizer="adam",
                                                    lr=self.P["finetune_lr"], seed=seed, device=self.device,
                                                    progress=False), pos_weight=balanced_pos_weight(ytr, vtr))
            self.histories.append(res.history.assign(run=f"{variant} (finetune)", dataset=name, fold=fold, seed=seed))
            return res.probs
        return fn

    def supervised_fn(self, name: str):
        """The backbone trained on the training fold's AU labels (masked BCE, balanced positive weights), with
        ``supervised_crop_scale`` set on flipped and randomly cropped training batches (:class:`BatchFlipCrop`)."""
        def fn(train_rows, test_rows, fold, seed):
            key = (name, fold, seed)
            if key not in self._supervised:
                tr, te, ytr, vtr = self.loaders(name, train_rows, test_rows, seed)
                seed_everything(seed)
                if self.P.get("supervised_crop_scale"):  # flip + resized crop on the training batches
                    tr = OnDevice(tr, BatchFlipCrop(self.data.image_size, tuple(self.P["supervised_crop_scale"])),
                                  resolve_device(self.device))
                model = Supervised(SupervisedConfig(backbone=self.P["backbone"], num_aus=ytr.shape[1],
                                                    in_chans=self.data.channels), pos_weight=balanced_pos_weight(ytr, vtr))
                h = fit(model, tr, TrainConfig(epochs=self.P["supervised_epochs"], optimizer="adam",
                                               lr=self.P["finetune_lr"], seed=seed, device=self.device, progress=False))
                self.histories.append(h.assign(run=SUPERVISED, dataset=name, fold=fold, seed=seed))
                self._supervised[key] = predict(model.model, te, self.device, progress=False)[0]
            return self._supervised[key]
        return fn


def evaluation_variants(P: dict, dataset: str) -> list[str]:
    """The pretrained variants scored on ``dataset``: Table IV's rows + extras, and the sweep on ``sweep_sets``."""
    names = table_iv_runs(P)
    if dataset in P["sweep_sets"]:
        names += [sweep_name(k, lam) for lam in P["sweep_lambdas"] if lam != P["lam"] for k in ("emoco", "l2_norm")]
    return names


def evaluate(data: EmoCoData, models: dict, P: dict, seed: int = 0, device: str = "auto"
             ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Both protocols on every AU set through :func:`run_folds` (baselines ``always present``/``prior`` on the
    same test frames), with the ``untrained encoder`` and ``supervised`` rows; Table IV's runs and the untrained
    encoder again at every further seed of :func:`pretrain_seeds` (the encoder pretrained, or initialised, with
    that seed). Returns (results, the training histories of the finetuned and supervised models)."""
    ev = _Evaluator(data, models, P, device)
    extra_seeds = pretrain_seeds(P, seed)[1:]
    plan = [("linear", name, P["linear_folds"]) for name in data.au_sets]
    plan += [("finetune", name, P["finetune_folds"]) for name in P["finetune_sets"] if name in data.au_sets]
    tables = []
    for protocol, name, folds in tqdm(plan, desc="evaluation"):
        protocol_fn = ev.linear_fn if protocol == "linear" else ev.finetune_fn
        variants = [Variant(v, protocol_fn(name, v), role_of(v)) for v in evaluation_variants(P, name)]
        untrained = Variant(UNTRAINED, protocol_fn(name, UNTRAINED), "baseline")
        tables.append(run_folds(data.au_sets[name], [*variants, untrained,
                                                     Variant(SUPERVISED, ev.supervised_fn(name), "reference")],
                                k=3, folds=folds, seeds=(seed,), experiment=protocol, dataset=name, progress=False))
        if extra_seeds:
            tables.append(run_folds(data.au_sets[name], [v for v in variants if v.name in table_iv_runs(P)]
                                    + [untrained], k=3, folds=folds, seeds=extra_seeds, experiment=protocol,
                                    dataset=name, progress=False))
    hist = pd.concat(ev.histories, ignore_index=True) if ev.histories else pd.DataFrame()
    return tidy(tables), hist


def plot_eval_histories(history: pd.DataFrame, column: str = "loss"):
    """Training loss per epoch of every finetuned / supervised model, one panel per AU set."""
    sets = list(dict.fromkeys(history["dataset"]))
    fig, axes = plt.subplots(1, len(sets), figsize=(4.6 * len(sets), 3.4), squeeze=False)
    for ax, name in zip(axes[0], sets):
        several = history["seed"].nunique() > 1
        for (run, fold, seed), part in history[history.dataset == name].groupby(["run", "fold", "seed"], sort=False):
            ax.plot(part["epoch"], part[column], marker="o", ms=3,
                    label=f"{run}, fold {fold}" + (f", seed {seed}" if several else ""),
                    ls="-" if run == SUPERVISED else "--")
        ax.set_title(f"{name}: {column}")
        ax.set_xlabel("epoch")
        ax.legend(fontsize=6)
    fig.tight_layout()
    return fig


# --- paper tables beside aulib's --------------------------------------------------------------------------------
def _mean_f1(results: pd.DataFrame) -> pd.DataFrame:
    s = scores(results, values=("f1",))
    return s.assign(f1=100 * s["f1"], f1_std=100 * s["f1_std"])


def table_iv(results: pd.DataFrame) -> pd.DataFrame:
    """Table IV: flags, then per AU set aulib's mean F1 (%) beside the paper's, per protocol; the baselines and
    the supervised reference as extra rows (no paper number)."""
    s = _mean_f1(results)
    flags = pd.DataFrame(TABLE_IV_VARIANTS).T.rename(columns={"multi_queue": "MQ", "use_cont": "L_cont",
                                                              "use_emo": "L_emo", "intra_norm": "N"})
    flags.index = [NAMES[k] for k in flags.index]
    order = [*flags.index, UNTRAINED, SUPERVISED, ALWAYS_PRESENT]
    rows = []
    for protocol in EXPERIMENTS:
        for v in order:
            row = {"F": protocol == "finetune", **(flags.loc[v].to_dict() if v in flags.index else {}), "variant": v,
                   "role": role_of(v) if v in flags.index else ("reference" if v == SUPERVISED else "baseline")}
            for name in DATASETS:
                hit = s[(s.experiment == protocol) & (s.dataset == name) & (s.variant == v)]
                row[f"{name} aulib"] = round(hit.f1.iloc[0], 1) if len(hit) else np.nan
                paper = PAPER_TABLE_IV[(PAPER_TABLE_IV.dataset == name) & (PAPER_TABLE_IV.variant == v)
                                       & (PAPER_TABLE_IV.protocol == protocol)]
                row[f"{name} paper (reported)"] = paper.f1.iloc[0] if len(paper) else np.nan
            rows.append(row)
    t = pd.DataFrame(rows)
    t["mean aulib"] = t[[f"{n} aulib" for n in DATASETS]].mean(axis=1).round(1)
    return t


def au_tables(results: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Tables I-III: per AU set, the paper's rows (reported) and aulib's EmoCo, MoCo-like rows, untrained encoder
    and supervised reference, per-AU F1 (%) and the Avg. (mean over AUs per run, then over runs)."""
    out = {}
    shown = [METHOD, NAMES["moco"], NAMES["cont_only"], NAMES["emo_only"], UNTRAINED, SUPERVISED, ALWAYS_PRESENT]
    for name, (_, aus, _) in _AU_TEXT.items():
        cols = [f"AU{a}" for a in aus.split()] + ["Avg."]
        paper = PAPER_AU_TABLES[PAPER_AU_TABLES.dataset == name]
        paper = paper.pivot_table(index=["variant", "protocol"], columns="au", values="f1", sort=False)
        paper.index = [f"{v}{'' if p in ('linear', 'supervised') else f' ({p})'} — paper (reported)" for v, p in paper.index]
        sub = results[(results.dataset == name) & results.variant.isin(shown)]
        if not len(sub):
            continue
        ours = sub.groupby(["variant", "experiment", "au"], sort=False)["f1"].mean().mul(100).unstack("au")
        ours["Avg."] = (sub.groupby(["variant", "experiment", "fold", "seed"])["f1"].mean()
                        .groupby(["variant", "experiment"]).mean() * 100)
        ours.index = [f"{v}{'' if e == 'linear' else f' ({e})'} — aulib (synthetic)" for v, e in ours.index]
        out[name] = pd.concat([paper.reindex(columns=cols), ours.reindex(columns=cols)]).round(1)
    return out


def lambda_sweep(results: pd.DataFrame, P: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Fig. 4: mean F1 (%) per (AU set, protocol, normalisation, lambda) on ``sweep_sets``, and the F1 range over
    lambda with and without N (numbers side by side; the comparisons are in :func:`sweep_claims`)."""
    names = {NAMES["emoco"]: ("with N", P["lam"]), NAMES["l2_norm"]: ("plain L2", P["lam"])}
    for lam in P["sweep_lambdas"]:
        if lam != P["lam"]:
            names[sweep_name("emoco", lam)] = ("with N", lam)
            names[sweep_name("l2_norm", lam)] = ("plain L2", lam)
    swept = [v for v in names if v not in (NAMES["emoco"], NAMES["l2_norm"])]
    if swept:  # the units the swept runs have (their first seed), so every lambda is scored on the same runs
        results = results[results.seed.isin(results.loc[results.variant.isin(swept), "seed"].unique())]
    s = _mean_f1(results)
    s = s[s.variant.isin(names) & s.dataset.isin(P["sweep_sets"])].copy()
    s["normalisation"] = s.variant.map(lambda v: names[v][0])
    s["lambda"] = s.variant.map(lambda v: names[v][1])
    sweep = s.rename(columns={"experiment": "protocol"})[["dataset", "protocol", "normalisation", "lambda", "variant",
                                                          "f1", "f1_std", "n_runs"]]
    sweep = sweep.sort_values(["dataset", "protocol", "normalisation", "lambda"]).reset_index(drop=True)
    rng = (sweep.groupby(["dataset", "protocol", "normalisation"])["f1"].agg(lambda x: x.max() - x.min())
           .unstack("normalisation").round(1).add_prefix("F1 range over λ, ").reset_index())
    return sweep.round(2), rng


def plot_lambda_sweep(sweep: pd.DataFrame):
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for ax, protocol in zip(axes, EXPERIMENTS):
        for (name, norm), g in sweep[sweep.protocol == protocol].groupby(["dataset", "normalisation"]):
            ax.errorbar(g["lambda"], g["f1"], yerr=g["f1_std"].fillna(0), marker="o", capsize=3,
                        ls="-" if norm == "with N" else "--", label=f"{name}, {norm}")
        lams = sorted(sweep["lambda"].unique())
        ax.set_xscale("log")
        ax.set_xticks(lams, [f"{v:g}" for v in lams])
        ax.minorticks_off()
        ax.set_xlabel("λ (weight of L_emo)")
        ax.set_ylabel("mean F1 (%)")
        ax.set_title(f"{protocol} protocol")
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


# --- Fig. 5: the features --------------------------------------------------------------------------------------
def _knn_score(f, y):
    from sklearn.model_selection import cross_val_score
    from sklearn.neighbors import KNeighborsClassifier

    cv = min(5, int(np.bincount(y).min()))  # stratified folds need every class in each
    if cv < 2:
        return np.nan
    return cross_val_score(KNeighborsClassifier(5), f, y, cv=cv, scoring="balanced_accuracy").mean()


def feature_views(models: dict, data: EmoCoData, P: dict, seed: int = 0,
                  variants: tuple[str, ...] = (NAMES["emo_only"], METHOD)):
    """Fig. 5: encoder features of held-out emotion-labelled faces, t-SNE (and UMAP when ``P["umap"]``), coloured by
    emotion and, inside ``P["viz_emotion"]``, by AU6; plus 5-NN balanced accuracies of the same two questions
    without the projection. Returns (figure, table)."""
    from sklearn.manifold import TSNE

    viz = aligned(generate(SynthConfig(preset="affectnet", n_subjects=P["viz_images"],
                                       image_size=P.get("draw_size") or data.image_size, channels=data.channels,
                                       seed=seed + 100)), P.get("align"), data.image_size, data.channels)
    x = torch.from_numpy(np.ascontiguousarray(viz.image_batch(np.arange(len(viz))))).permute(0, 3, 1, 2).float() / 255
    emo = viz.emotions()
    au = viz.au_matrix()[0]
    au6 = au[:, viz.aus.index(6)].astype(int)
    inside = emo == EMOTIONS.index(P["viz_emotion"])
    projections = [("t-SNE", "tsne")] + ([("UMAP", "umap")] if P["umap"] else [])

    def project(z, how):
        if how == "tsne":
            return TSNE(2, init="pca", perplexity=min(30, len(z) // 4), random_state=seed).fit_transform(z)
        import umap

        return umap.UMAP(n_neighbors=min(15, len(z) - 1), random_state=seed).fit_transform(z)

    fig, axes = plt.subplots(len(variants), 2 * len(projections), figsize=(8 * len(projections), 3.75 * len(variants)),
                             squeeze=False)
    rows = []
    for r, m in enumerate(variants):
        with torch.no_grad():
            f = torch.cat([models[(m, seed)].encoder(b) for b in x.split(256)]).numpy()
        f = (f - f.mean(0)) / (f.std(0) + 1e-6)
        rows.append({"features": m, "5-NN emotion (all faces)": _knn_score(f, emo),
                     f"5-NN AU6 inside '{P['viz_emotion']}'": _knn_score(f[inside], au6[inside]),
                     "chance (emotion)": 1 / len(EMOTIONS), "chance (AU6)": 0.5})
        for c, (title, how) in enumerate(projections):
            z = project(f, how)
            ax = axes[r, 2 * c]
            for e in range(len(EMOTIONS)):
                ax.scatter(*z[emo == e].T, s=6, label=EMOTIONS[e])
            ax.set_title(f"{m} · {title} · emotion")
            ax = axes[r, 2 * c + 1]
            zi = project(f[inside], how)
            for val, col in ((0, "0.6"), (1, "tab:red")):
                ax.scatter(*zi[au6[inside] == val].T, s=8, color=col, label=f"AU6={val}")
            ax.set_title(f"{m} · {title} · AU6 within {P['viz_emotion']}")
    axes[0, 0].legend(fontsize=7, markerscale=2)
    axes[0, 1].legend(fontsize=7, markerscale=2)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return fig, pd.DataFrame(rows).round(3)


def feature_spectra(models: dict, data: EmoCoData, P: dict, seed: int = 0, results: pd.DataFrame | None = None,
                    dataset: str = "bp4d", n: int = 32) -> tuple[pd.DataFrame, pd.DataFrame]:
    """How many directions the features the linear probe reads use on every frame of the AU set ``dataset``:
    the untrained backbone of ``seed`` (:func:`untrained_backbone`, as the protocols build it) beside each
    Table IV row's encoder pretrained with ``seed``. Returns (one row per encoder: effective rank, top-1 / top-5
    variance shares and, with ``results``, the linear probe's mean F1 / AUC on ``dataset`` at ``seed``; the
    tidy first-``n`` spectra). See :mod:`aulib.eval.representation`."""
    encoders = {UNTRAINED: untrained_backbone(P, data.channels, seed),
                **{NAMES[k]: models[(NAMES[k], seed)].encoder for k in TABLE_IV_VARIANTS}}
    x = data.tensors[dataset][0]  # (N, C, H, W)
    feats = {}
    with torch.no_grad():
        for name, enc in encoders.items():
            enc.eval()
            feats[name] = torch.cat([enc(b.float() / 255 if b.dtype == torch.uint8 else b)
                                     for b in x.split(256)]).numpy()  # (N, D)
    linear = None if results is None else results[(results["experiment"] == "linear")
                                                  & (results["dataset"] == dataset)
                                                  & (results["seed"] == seed if "seed" in results else True)]
    return spectrum_table(feats, linear), spectra(feats, n)


# --- the closing prose, read from the tables ----------------------------------------------------------------
def summary_markdown(results: pd.DataFrame, claims: pd.DataFrame, emotion_loss: pd.DataFrame,
                     toy: pd.DataFrame, by_seed: pd.DataFrame | None = None) -> str:
    """The chapter's closing sentences, every number formatted from the tables of this run (``by_seed``:
    :func:`claims_per_seed`, for how many verdicts each pretraining seed alone repeats)."""
    s = _mean_f1(results)
    lines = []
    for protocol in EXPERIMENTS:
        part = s[s.experiment == protocol]
        if not len(part):
            continue
        per = []
        for name, g in part.groupby("dataset", sort=False):
            f = g.set_index("variant")["f1"]
            per.append(f"{name}: EmoCo {f.get(METHOD, np.nan):.1f}, always present {f.get(ALWAYS_PRESENT, np.nan):.1f}, "
                       f"untrained encoder {f.get(UNTRAINED, np.nan):.1f}, supervised {f.get(SUPERVISED, np.nan):.1f}")
        wins = [n for n, g in part.groupby("dataset", sort=False)
                if g.set_index("variant")["f1"].get(METHOD, np.nan) > g.set_index("variant")["f1"].get(ALWAYS_PRESENT, np.inf)]
        lines.append(f"- **{protocol} protocol** (mean F1 %): " + "; ".join(per) + f". EmoCo beats `always present` "
                     f"on {len(wins)} of {part.dataset.nunique()} AU sets" + (f" ({', '.join(wins)})." if wins else "."))
    counts = claims["verdict"].value_counts()
    lines.append("- **Claims**: " + ", ".join(f"{int(counts.get(v, 0))} {v}" for v in
                                               ("holds", "opposite", "not resolved", "no evidence")) + ".")
    held = claims[claims.verdict == "holds"]["claim"].tolist()
    lines.append("- Holding in this run: " + ("; ".join(held) if held else "none of the paper's comparisons") + ".")
    if by_seed is not None and by_seed["seed"].nunique() > 1:
        agree = seed_agreement(by_seed, claims)
        seeds = sorted(by_seed["seed"].unique())
        cols = [f"seed {s}" for s in seeds]  # seed_agreement's columns
        moved = [f"{r.claim} ({'; '.join(f'{c}: {r[c]}' for c in cols)})" for _, r in agree.iterrows()
                 if not r["seeds agree"]]
        lines.append(f"- **Pretraining seeds** ({', '.join(str(s) for s in seeds)}): {int(agree['seeds agree'].sum())} "
                     f"of {len(agree)} claims get the same verdict from each seed's units alone"
                     + (". Not: " + "; ".join(moved) if moved else "") + ".")
    if len(emotion_loss):
        last = emotion_loss["L_emo last epoch"]
        ent = float(emotion_loss["class-prior entropy"].iloc[0])
        below = int((last < ent - 0.05).sum())
        lines.append(f"- **Pretraining**: the final L_emo ranges {last.min():.3f}-{last.max():.3f} against a "
                     f"class-prior entropy of {ent:.3f} (log 7 = {float(emotion_loss['log C'].iloc[0]):.3f}); "
                     f"{below} of {len(last)} runs end more than 0.05 below it"
                     + (" — the emotion classifier learnt little beyond the class frequencies." if below == 0 else "."))
    t = toy.set_index("normalisation")
    if {"plain L2", "intra-class N"} <= set(t.index):
        n, l2 = t.loc["intra-class N"], t.loc["plain L2"]
        lines.append(f"- **Fig. 3 toy**: with N the two features end {n['q to prototype']:.1f}° and "
                     f"{n['k- to prototype']:.1f}° from the prototype at beta = {n['beta (N(q), N(k-))']:.1f}°; with "
                     f"plain L2 they stop {l2['q to prototype']:.1f}° and {l2['k- to prototype']:.1f}° away at "
                     f"alpha = {l2['alpha (q, k-)']:.1f}°.")
    return "\n".join(lines)


__all__ = [
    "CLAIMS", "DATASETS", "EXPERIMENTS", "EXTRA_VARIANTS", "EmoCoData", "METHOD", "NAMES", "PAPER_AU_TABLES",
    "PAPER_TABLE_IV", "TABLE_IV_VARIANTS", "au_tables", "claims_per_seed", "data_summary", "emotion_examples",
    "emotion_loss_vs_prior", "evaluate", "evaluation_variants", "feature_spectra", "feature_views", "fig3_toy",
    "judge_claims", "lambda_sweep", "make_data", "multi_queue_demo", "plot_eval_histories", "plot_lambda_sweep",
    "pretrain", "pretrain_config", "pretrain_runs", "pretrain_seeds", "pretrain_summary", "role_of",
    "seed_agreement", "settings", "summary_markdown", "sweep_claims", "sweep_name", "table_iv", "table_iv_runs", "toy_descent",
    "untrained_backbone", "variant_config",
]
