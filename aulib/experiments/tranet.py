"""TRA-Net's experiments (Xia, "Upper, Middle and Lower Region Learning for Facial Action Unit Detection", §4):
the protocol, the paper's Tables 1 and 2 as data, the Table 2 driver, the claims, and the chapter's figures.

    P = profiles.get("cpu", "tranet")
    ds, cfg = make_data(P)                          # DISFA-like faces aligned by §4.1's template, TRANetConfig
    run = run_table2(ds, cfg, P)                     # every Table 2 row on subject-exclusive folds (run_folds)
    run.results                                      # tidy: ... variant, role, fold, seed, au, f1, auc ... + baselines
    claims = judge_claims(run.results)               # the one rule of aulib.eval.claims
    write_tables(out_dir, run.results, claims)

Protocol (§4.1): DISFA, 3 subject-exclusive folds, F1-frame at threshold 0.5. Training: batches drawn with
per-AU positive weights, random horizontal flips, the summed branch BCE, early stopping. One deliberate
difference in every profile: the paper stopped on the *test* fold; :func:`train_variant` holds out a fraction
of the training subjects and stops on their mean F1.

Roles: ``TRA-Net`` (the full model) is the ``method``; ``SENet-50`` (Table 2's backbone alone: pooled block-5
features and two FC layers, trained on the labels) is the ``reference``; every other Table 2 row is an
``ablation``. :func:`aulib.eval.crossval.run_folds` adds ``always present`` and ``prior`` on the same frames.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

from aulib.data.align import align_dataset
from aulib.data.dataset import FrameDataset
from aulib.data.folds import fold_split, split_validation
from aulib.data.schema import CanonicalDataset, open_dataset
from aulib.data.stats import positive_rates
from aulib.data.synthetic import SynthConfig, generate
from aulib.data.transforms import FaceHorizontalFlip
from aulib.eval.baselines import ALWAYS_PRESENT
from aulib.eval.claims import Claim, judge, verdict_counts
from aulib.eval.crossval import Variant, run_folds, scores
from aulib.eval.metrics import mean_f1
from aulib.methods.tranet import (
    AU_REGION,
    DISFA_AUS,
    VARIANTS,
    TRANetConfig,
    TRANetMethod,
    build_model,
    face_centre_row,
)
from aulib.models.tranet import REGIONS, region_masks
from aulib.train import TrainConfig, fit, resolve_device, seed_everything
from aulib.train.samplers import WeightedRandomBatchSampler, positive_sample_weights

EXPERIMENT = "table2"
METHOD = "TRA-Net"
REFERENCE = "SENet-50"  # the backbone alone, trained on the labels: "the same backbone trained on the labels"


def role_of(variant: str) -> str:
    """``method`` for TRA-Net, ``reference`` for the plain backbone, ``ablation`` for the other Table 2 rows."""
    return {METHOD: "method", REFERENCE: "reference"}.get(variant, "ablation")


# ------------------------------------------------------------------------------------ the paper's numbers
_COLS = [f"AU{a}" for a in DISFA_AUS] + ["Avg"]
#: Table 1 of the paper: F1-frame on DISFA (3-fold), per AU in DISFA_AUS order, then the paper's Avg
PAPER_TABLE1_F1: dict[str, tuple[float, ...]] = {
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
#: Table 1 of the paper: accuracy on DISFA
PAPER_TABLE1_ACC: dict[str, tuple[float, ...]] = {
    "CMS": (91.6, 94.7, 79.9, 82.6, 95.2, 87.8, 86.3, 80.7, 87.3),
    "EAC": (85.6, 84.9, 79.1, 69.1, 88.1, 90.0, 80.5, 64.8, 80.6),
    "JAA": (93.4, 96.1, 86.9, 91.4, 95.8, 91.2, 93.4, 93.2, 92.7),
    "ARL": (92.1, 92.7, 88.5, 91.6, 95.9, 93.9, 97.3, 94.3, 93.3),
    "STRAL": (94.9, 93.5, 89.5, 90.4, 96.8, 92.4, 94.9, 94.0, 93.3),
    "TRA": (97.3, 97.9, 93.5, 96.2, 97.6, 94.2, 95.9, 94.3, 95.9),
}
#: Table 2 of the paper: F1-frame of the ablations on DISFA (the full TRA-Net row is Table 1's TRA row)
PAPER_TABLE2: dict[str, tuple[float, ...]] = {
    "SENet-50": (27.4, 25.8, 70.3, 29.3, 36.6, 64.1, 88.7, 34.0, 47.0),
    "SENet-50 + CBAM": (35.4, 39.4, 66.9, 31.2, 39.4, 67.4, 89.9, 30.0, 49.9),
    "SENet-50 + HM": (33.0, 37.0, 58.1, 46.7, 50.0, 68.7, 90.2, 31.5, 51.9),
    "SENet-50 + HM + CBAM w/o AT": (45.2, 47.8, 66.5, 41.1, 41.3, 72.3, 87.1, 41.0, 55.3),
    "SENet-50 + HM + CBAM w/o ST": (45.2, 45.8, 65.8, 47.3, 55.1, 70.5, 89.4, 33.3, 56.2),
    "TRA-Net with residual structure": (48.9, 49.4, 63.1, 46.8, 47.3, 70.2, 89.8, 34.8, 56.3),
    "TRA-Net": PAPER_TABLE1_F1["TRA"],
}
PAPER_SOURCE = {"table1_f1": "Table 1 (DISFA, F1-frame, %)", "table1_accuracy": "Table 1 (DISFA, accuracy, %)",
                "table2": "Table 2 (DISFA, F1-frame of the ablations, %; TRA-Net = Table 1's TRA row)"}


def paper_table1(metric: str = "f1") -> pd.DataFrame:
    """The paper's Table 1 (``metric`` "f1" or "accuracy", in %): rows AU1..AU26 + Avg, one column per method."""
    src = {"f1": PAPER_TABLE1_F1, "accuracy": PAPER_TABLE1_ACC}
    if metric not in src:
        raise KeyError(f"metric must be one of {', '.join(src)}, got {metric!r}")
    return pd.DataFrame(dict(src[metric]), index=_COLS).rename_axis("au")


def paper_table2() -> pd.DataFrame:
    """The paper's Table 2 (F1 in %; TRA-Net from Table 1): rows variants, columns AUs + Avg."""
    return pd.DataFrame.from_dict(PAPER_TABLE2, orient="index", columns=_COLS).rename_axis("variant")


def paper_f1(variant: str, aus: Sequence[str] | None = None) -> float:
    """The paper's mean F1 of ``variant`` over ``aus`` (default: its 8 AUs), in [0, 1] units. The mean of the
    per-AU cells, as aulib averages (the paper's own Avg differs by 0.35 for "w/o ST")."""
    row = paper_table2().loc[variant]
    return float(row[list(aus) if aus else _COLS[:-1]].mean()) / 100


UPPER = tuple(f"AU{a}" for a in DISFA_AUS if AU_REGION[a] == "upper")


def _claim(text: str, a: str, b: str, aus: tuple[str, ...] | None = None) -> Claim:
    return Claim(text, a, b, paper_diff=round(paper_f1(a, aus) - paper_f1(b, aus), 4), experiment=EXPERIMENT,
                 aus=aus)


#: Table 2's ablation claims (§4.3), each "a beats b" with the paper's a - b (mean F1 over the listed AUs)
CLAIMS: list[Claim] = [
    _claim("TRA-Net beats the plain backbone", "TRA-Net", "SENet-50"),
    _claim("hard masks help upper-face AUs", "TRA-Net", "SENet-50 + CBAM", UPPER),
    _claim("hard masks help upper-face AUs (no CBAM)", "SENet-50 + HM", "SENet-50", UPPER),
    _claim("hard masks help overall", "TRA-Net", "SENet-50 + CBAM"),
    _claim("hard masks help over the backbone", "SENet-50 + HM", "SENet-50"),
    _claim("CBAM helps over the backbone", "SENet-50 + CBAM", "SENet-50"),
    _claim("CBAM helps on top of hard masks", "TRA-Net", "SENet-50 + HM"),
    _claim("channel attention matters", "TRA-Net", "SENet-50 + HM + CBAM w/o AT"),
    _claim("spatial attention matters", "TRA-Net", "SENet-50 + HM + CBAM w/o ST"),
    _claim("no residual beats residual", "TRA-Net", "TRA-Net with residual structure"),
]


# ------------------------------------------------------------------------------------------- the protocol
def protocol(P: Mapping[str, Any]) -> dict[str, Any]:
    """The profile section's protocol as plain data: folds, seeds, k and the Table 2 rows with their roles."""
    variants = list(P.get("variants", VARIANTS))
    return {"k": 3, "folds": list(P["folds"]), "seeds": list(P["seeds"]),
            "variants": {v: role_of(v) for v in variants}}


def make_data(P: Mapping[str, Any], data_root: str | None = None, seed: int = 0, weights: str | None = None
              ) -> tuple[CanonicalDataset, TRANetConfig]:
    """(DISFA-like synthetic faces, or the canonical DISFA at ``data_root``, aligned by §4.1's template at the
    profile's size; the TRANetConfig of the profile, with the face-centre row measured on the landmarks)."""
    kw = dict(P["config"], weights=weights)
    raw = generate(SynthConfig(preset="disfa", seed=seed, **P["synth"])) if data_root is None else open_dataset(data_root)
    ds = align_dataset(raw, "tranet", kw["image_size"], kw["in_chans"])
    centre = face_centre_row(ds.landmarks, ds.meta.image_size[0])
    return ds, TRANetConfig.from_dict(kw, aus=ds.aus, centre_row=centre)


def label_rates(ds: CanonicalDataset) -> pd.DataFrame:
    """Positive rate and region of every AU (one row per AU)."""
    labels, valid = ds.au_matrix()
    return pd.DataFrame({"au": [f"AU{a}" for a in ds.aus], "positive_rate": positive_rates(labels, valid),
                         "region": [AU_REGION[a] for a in ds.aus]}).set_index("au")


def _trainable(m: torch.nn.Module, frozen_blocks: int = 0) -> float:
    """Trainable parameters (millions), leaving out blocks ``1..frozen_blocks`` of a TRANet as well."""
    frozen = {id(p) for b in getattr(m, "blocks", [])[:frozen_blocks] for p in b.parameters()}
    return sum(p.numel() for p in m.parameters() if p.requires_grad and id(p) not in frozen) / 1e6


def model_sizes(cfg: TRANetConfig) -> pd.DataFrame:
    """Trainable parameters (millions) of every Table 2 row at this profile's size and, for the backbone alone
    and the full model, at the paper's (SE-ResNet50 at 224 px, blocks 1-2 frozen; the other rows differ from
    TRA-Net only by switches without parameters). The paper's count leaves out blocks 1-2, frozen there on
    VGGFace2 weights (built here without weights, so counted as frozen rather than frozen in the model)."""
    full = TRANetConfig(aus=cfg.aus, frozen_blocks=0)
    sizes = pd.DataFrame([{"variant": v, "role": role_of(v),
                           "trainable_M (this profile)": _trainable(build_model(cfg.with_variant(v)))}
                          for v in VARIANTS]).set_index("variant")
    for v in (REFERENCE, METHOD):
        sizes.loc[v, "trainable_M (SE-ResNet50, 224)"] = _trainable(build_model(full.with_variant(v)), 2)
    return sizes


# ---------------------------------------------------------------------------------------- loaders, training
def train_config(cfg: TRANetConfig, **overrides: Any) -> TrainConfig:
    """The :class:`aulib.train.TrainConfig` of §4.1 (early stopping on validation mean F1)."""
    kw = dict(epochs=cfg.max_epochs, optimizer=cfg.optimizer, lr=cfg.lr, momentum=cfg.momentum,
              weight_decay=cfg.weight_decay, schedule="none", steps_per_epoch=cfg.batches_per_epoch,
              monitor="val_f1", monitor_mode="max", patience=cfg.patience)
    return TrainConfig(**{**kw, **overrides})


def train_loader(ds: CanonicalDataset, rows: np.ndarray, cfg: TRANetConfig, seed: int = 0) -> DataLoader:
    """Batches of ``cfg.batch_size`` drawn with per-AU positive weights (the TRA sampler), random flips."""
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
    """The frames ``rows`` in order, unaugmented."""
    return DataLoader(FrameDataset(ds, rows, size=cfg.image_size, channels=cfg.in_chans), batch_size=batch_size,
                      num_workers=cfg.num_workers)


def train_variant(ds: CanonicalDataset, train_rows: np.ndarray, cfg: TRANetConfig, seed: int = 0,
                  device: str = "auto", progress: bool = False, out_dir=None) -> tuple[TRANetMethod, pd.DataFrame]:
    """Train ``cfg`` on ``train_rows`` with early stopping on held-out training subjects; (method, history).
    The returned method holds the weights of the best validation epoch (restored by :func:`aulib.train.fit`,
    ``history.attrs["restored_epoch"]``), with or without ``out_dir``; without validation frames, the last."""
    seed_everything(seed)
    fit_rows, val_rows = split_validation(ds, train_rows, cfg.val_fraction, seed, max_frames=cfg.val_max_frames)
    method = TRANetMethod(cfg)
    labels, valid = ds.au_matrix()
    dev = resolve_device(device)
    tcfg = train_config(cfg, seed=seed, device=str(dev), progress=progress)
    evaluate = None
    if len(val_rows):
        vloader = eval_loader(ds, val_rows, cfg)

        def evaluate(m: TRANetMethod, epoch: int) -> dict[str, float]:
            p, r = m.predict(vloader, dev)
            return {"val_f1": mean_f1(labels[r], p, valid[r])}
    else:
        tcfg = dataclasses.replace(tcfg, monitor=None, patience=None)
    hist = fit(method, train_loader(ds, fit_rows, cfg, seed), tcfg, out_dir=out_dir, evaluate=evaluate)
    return method, hist


# ---------------------------------------------------------------------------------------------- the driver
@dataclass
class Table2Run:
    """What :func:`run_table2` returns: the tidy results (with baselines), the training histories (one row per
    variant, fold, seed and epoch), the trained models kept for pictures, and the wall time."""

    results: pd.DataFrame
    history: pd.DataFrame
    models: dict = field(default_factory=dict)
    minutes: float = 0.0


def run_table2(ds: CanonicalDataset, cfg: TRANetConfig, P: Mapping[str, Any], device: str = "auto",
               keep: Sequence[str] = (METHOD,), progress: bool = True) -> Table2Run:
    """Train and test every Table 2 row of the profile's protocol on subject-exclusive folds through
    :func:`aulib.eval.crossval.run_folds` (so ``always present`` and ``prior`` sit beside them)."""
    proto = protocol(P)
    models: dict = {}
    histories: list[pd.DataFrame] = []
    n = len(ds.aus)

    def fn_for(variant: str):
        vcfg = cfg.with_variant(variant)

        def train_and_predict(train_rows, test_rows, fold, seed):
            t0 = time.perf_counter()
            method, hist = train_variant(ds, train_rows, vcfg, seed=seed, device=device)
            train_s = time.perf_counter() - t0
            probs, rows = method.predict(eval_loader(ds, test_rows, vcfg), next(method.parameters()).device)
            assert np.array_equal(rows, test_rows)  # the eval loader keeps the order
            histories.append(hist.assign(variant=variant, fold=fold, seed=seed))
            if variant in keep:
                models[(variant, fold, seed)] = method.cpu()
            best = hist.attrs.get("best_epoch") or len(hist)
            return {"probs": probs, "metrics": {"epochs": np.full(n, len(hist)), "best_epoch": np.full(n, best),
                                                "train_s": np.full(n, train_s)}}
        return train_and_predict

    t0 = time.perf_counter()
    variants = [Variant(v, fn_for(v), role) for v, role in proto["variants"].items()]
    results = run_folds(ds, variants, k=proto["k"], folds=proto["folds"], seeds=proto["seeds"],
                        experiment=EXPERIMENT, progress=progress)
    history = pd.concat(histories, ignore_index=True) if histories else pd.DataFrame()
    return Table2Run(results, history, models, (time.perf_counter() - t0) / 60)


def fit_summary(results: pd.DataFrame) -> pd.DataFrame:
    """Mean epochs trained, best epoch and training seconds per variant (trained variants only)."""
    r = results[results["role"] != "baseline"]
    return r.groupby("variant", sort=False)[["epochs", "best_epoch", "train_s"]].mean()


def mean_history(history: pd.DataFrame, columns: Sequence[str] = ("loss", "val_f1")) -> pd.DataFrame:
    """Per variant and epoch, the mean over folds and seeds of ``columns`` (for ``training_curves(hue=...)``)."""
    cols = [c for c in columns if c in history.columns]
    return history.groupby(["variant", "epoch"], sort=False)[cols].mean().reset_index()


# ------------------------------------------------------------------------------------- tables beside the paper
def headline(results: pd.DataFrame) -> pd.DataFrame:
    """Mean F1 / AUC / balanced accuracy (over AUs per run, then over runs) of every row, baselines first."""
    return scores(results)


def table1(results: pd.DataFrame) -> pd.DataFrame:
    """TRA-Net's F1 and accuracy per AU (%, mean and sd over runs) beside the paper's Table 1 (%)."""
    tra = results[results["variant"] == METHOD]
    per_au = (100 * tra.groupby("au", sort=False)[["f1", "accuracy"]].agg(["mean", "std"]))
    per_au.columns = ["F1 aulib", "F1 sd", "Acc aulib", "Acc sd"]
    runs = 100 * tra.groupby(["fold", "seed"])[["f1", "accuracy"]].mean()
    per_au.loc["Avg"] = [runs["f1"].mean(), runs["f1"].std(), runs["accuracy"].mean(), runs["accuracy"].std()]
    out = per_au.join(paper_table1("f1").add_prefix("F1 ").add_suffix(" (paper, reported)"))
    return out.join(paper_table1("accuracy").add_prefix("Acc ").add_suffix(" (paper, reported)"))


def table2(results: pd.DataFrame) -> pd.DataFrame:
    """F1 per AU (%) of every Table 2 row and the baselines, Avg and its sd over runs, the paper's Avg beside."""
    aus = list(dict.fromkeys(results["au"]))
    t = 100 * results.pivot_table(index="variant", columns="au", values="f1", aggfunc="mean", sort=False)[aus]
    s = scores(results, by=("variant",), values=("f1", "auc")).set_index("variant")
    t["Avg"], t["Avg sd"], t["AUC"], t["runs"] = 100 * s["f1"], 100 * s["f1_std"], s["auc"], s["n_runs"]
    t["Avg (paper, reported)"] = paper_table2()["Avg"]
    order = [v for v in (*VARIANTS, *dict.fromkeys(results["variant"])) if v in t.index]
    return t.reindex(list(dict.fromkeys(order)))


def region_table(results: pd.DataFrame) -> pd.DataFrame:
    """Mean F1 (%) per face region of every Table 2 row, aulib beside the paper: the numbers behind the paper's
    region remarks (e.g. "attention adds little for the lower face"), shown side by side, no verdict."""
    region = {f"AU{a}": AU_REGION[a] for a in DISFA_AUS}
    r = results[results["role"] != "baseline"].assign(region=lambda d: d["au"].map(region))
    ours = 100 * r.groupby(["variant", "region"])["f1"].mean().unstack()
    paper = paper_table2().drop(columns="Avg").T.assign(region=lambda d: d.index.map(region)).groupby("region").mean().T
    regions = [g for g in REGIONS if g in ours.columns]
    out = ours[regions].add_suffix(" aulib").join(paper[regions].add_suffix(" (paper, reported)"))
    return out.reindex([v for v in VARIANTS if v in out.index])


# -------------------------------------------------------------------------------------------------- claims
def judge_claims(results: pd.DataFrame, claims: Sequence[Claim] = CLAIMS) -> pd.DataFrame:
    """Every claim whose two variants were run, through :func:`aulib.eval.claims.judge`."""
    have = set(results["variant"])
    return judge(results, [c for c in claims if {c.a, c.b} <= have])


def closing_markdown(results: pd.DataFrame, claims: pd.DataFrame) -> str:
    """The chapter's conclusion, read from the results and claims tables of this run."""
    s = scores(results)
    ap = float(s.loc[s["variant"] == ALWAYS_PRESENT, "f1"].mean())
    m = s[s["variant"] == METHOD].iloc[0]
    trained = s[s["role"] != "baseline"]
    n_beat = int((trained["f1"] > ap).sum())
    counts = verdict_counts(claims)
    held = claims.loc[claims["verdict"] == "holds", "claim"].tolist()
    opp = claims.loc[claims["verdict"] == "opposite", "claim"].tolist()
    lines = [f"- **Detection.** TRA-Net's mean F1 is {100 * m['f1']:.1f} (AUC {m['auc']:.2f}) against "
             f"{100 * ap:.1f} for predicting every AU present; {n_beat} of the {len(trained)} trained rows of "
             f"Table 2 beat `always present`, and their mean AUCs range from {trained['auc'].min():.2f} to "
             f"{trained['auc'].max():.2f}.",
             f"- **Claims.** Of {len(claims)} ablation claims, " + ", ".join(f"{counts[v]} {v}" for v in counts)
             + "." + (f" Holding: {'; '.join(held)}." if held else " None holds in this run.")
             + (f" Measured opposite to the paper: {'; '.join(opp)}." if opp else "")]
    if counts["no evidence"]:
        lines.append("- `no evidence` means one side of the comparison does not beat `always present` (or has a "
                     "mean AUC under 0.6) on the same runs: a difference between such detectors says nothing "
                     "about the paper's mechanism.")
    if counts["not resolved"]:
        lines.append("- `not resolved` means the 95% interval of the paired difference over the runs contains 0: "
                     "the difference is within the fold-to-fold spread.")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------- the figures
_COLOURS = {"upper": "tab:blue", "middle": "tab:green", "lower": "tab:red"}


def hard_mask_figure(ds: CanonicalDataset, cfg: TRANetConfig):
    """Eq.4's three bands over an aligned face (top) and over the decoded feature map of an untrained TRA-Net
    (bottom), where they are applied."""
    labels, _ = ds.au_matrix()
    net = build_model(cfg).eval()
    example = int(np.argmax(labels.sum(1)))  # a face showing several AUs
    img = ds.image(example)[..., 0] if ds.meta.channels == 1 else ds.image(example)
    S = ds.meta.image_size[0]
    with torch.no_grad():
        fmap = net.decode(torch.from_numpy(ds.image_batch([example])).permute(0, 3, 1, 2).float() / 255)
    h, w = fmap.shape[-2:]
    masks = region_masks(h, w, cfg.centre_row).numpy()
    fig, axes = plt.subplots(2, 3, figsize=(9, 6.4))
    for k, r in enumerate(REGIONS):
        ax = axes[0, k]
        ax.imshow(img, cmap="gray")
        up = np.kron(masks[k], np.ones((S // h, S // w)))
        ax.imshow(np.ma.masked_where(up == 0, up), cmap=plt.matplotlib.colors.ListedColormap([_COLOURS[r]]),
                  alpha=0.35, extent=(-0.5, S - 0.5, S - 0.5, -0.5))
        ax.axhline(cfg.centre_row * S - 0.5, color="k", lw=1, ls="--")
        ax.set_title(f"{r}: AU{', AU'.join(map(str, cfg.regions.get(r, [])))}")
        ax.axis("off")
        ax = axes[1, k]
        ax.imshow(fmap[0].abs().mean(0).numpy() * masks[k], cmap="magma")
        ax.set_title(f"masked map I_hm ({h}x{w})")
        ax.set_xticks([]), ax.set_yticks([])
    fig.suptitle("Hard masks over the aligned face (top) and over the decoded feature map (bottom, untrained)")
    fig.tight_layout()
    return fig


def attention_figure(run: Table2Run, ds: CanonicalDataset, n_faces: int = 3):
    """The first CBAM block's spatial map of each branch of a trained TRA-Net (first kept fold) on the most
    active test face of ``n_faces`` test subjects, shown inside the branch's band, with the predicted
    probabilities of the branch's AUs."""
    (variant, fold, seed), method = next(iter(run.models.items()))
    model = method.model.eval()
    labels, _ = ds.au_matrix()
    _, test_rows = fold_split(ds, fold, k=3)
    subj = ds.frames.subject.to_numpy()
    pick = [int(test_rows[subj[test_rows] == s][np.argmax(labels[test_rows[subj[test_rows] == s]].sum(1))])
            for s in np.unique(subj[test_rows])[:n_faces]]
    x = torch.from_numpy(ds.image_batch(pick)).permute(0, 3, 1, 2).float() / 255
    with torch.no_grad():
        probs = torch.sigmoid(model(x))
    maps = model.spatial_attention_maps()
    S = ds.meta.image_size[0]
    fig, axes = plt.subplots(len(pick), 1 + len(maps), figsize=(2.6 * (1 + len(maps)), 2.6 * len(pick)),
                             squeeze=False)
    for i, row in enumerate(pick):
        face = x[i].mean(0).numpy()
        on = [f"AU{a}" for a, y in zip(ds.aus, labels[row]) if y == 1]
        axes[i, 0].imshow(face, cmap="gray")
        axes[i, 0].set_title("labels: " + (" ".join(on) or "none"), fontsize=8)
        for j, (r, ms) in enumerate(maps.items()):
            ax = axes[i, j + 1]
            ax.imshow(face, cmap="gray")
            if ms[0] is not None:
                band = model.masks(*ms[0].shape[-2:])[REGIONS.index(r)].numpy()
                m = np.ma.masked_where(band == 0, ms[0][i, 0].numpy())  # outside the band the features are zero
                ax.imshow(m, cmap="jet", alpha=0.5, vmin=0, vmax=1, extent=(-0.5, S - 0.5, S - 0.5, -0.5))
            cols = model.columns(r).numpy()
            ax.set_title(f"{r} CBAM-1\n" + " ".join(f"AU{ds.aus[c]}:{probs[i, c]:.2f}" for c in cols), fontsize=7)
    for ax in axes.ravel():
        ax.axis("off")
    fig.suptitle(f"CBAM spatial attention (block 1) per branch, {variant}, fold {fold}, seed {seed}")
    fig.tight_layout()
    return fig
