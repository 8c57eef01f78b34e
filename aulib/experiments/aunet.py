"""AUNet's experiments (aunet.md Sec. IV-V): the protocol, the paper's numbers, the staged drivers, the claims.

The chapter (notebooks/03_aunet) calls one function per step:

    P = protocol(profile)                                    # sizes, folds, seeds from aulib.profiles
    ds = make_data(P, data_root, seed); cfg = make_config(P, ds, fan_weights)
    fan, fan_hist = load_or_train_fan(cfg, P, ds, data_root, seed, out_dir, device)    # stage 1 (frozen)
    bank = feature_bank(fan, ds, cfg, device)                # frozen-FAN features once per frame (CPU profiles)
    ab = run_ablation(ds, cfg, P, fan, bank, device, seed)   # stages 2-3 per fold, through run_folds
    claims = judge_claims(ab.results)                        # the one rule of aulib.eval.claims

Variants (Table VI): ``AUNet`` (role ``method``), ``AU-FAN``, ``AU-VAE``, ``AU-TDN`` and ``AU-VAE (label space)``
(Sec. V-E's rejected alignment; role ``ablation``), and ``ResNet18`` trained from raw pixels on the labels with the
same loss and budget (Table III; role ``reference``: the plain backbone trained on the labels). Every results
table carries the ``always present`` and ``prior`` baselines of :func:`aulib.eval.crossval.run_folds`.

Besides F1/AUC/accuracy, each variant's rows carry the per-AU on/off switches of its thresholded test
predictions per 100 frames (Fig. 10, ``switches_per_100_frames``) and the run's adjacency metrics of Table X
(``adjacency_l2``, ``dependency_f1``: one value per (fold, seed) run, repeated on each AU row so that the mean over
AUs is the run's value), so Table X, Table XII and Fig. 10 are judged by :func:`aulib.eval.claims.judge` like
every other comparison.

Because FAN is frozen, its features are a pure function of the (augmented) frame. The CPU profiles therefore
compute them once per frame and its mirror (:func:`fan_feature_bank`) and train the heads on the bank with the
mirror as the (shared-across-the-triplet) augmentation; the GPU profile runs FAN on every augmented batch.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy import stats
from torch.utils.data import DataLoader, Dataset

from aulib import profiles
from aulib.data.batch_augment import BatchGeometric, OnDevice
from aulib.data.dataset import FrameDataset, temporal_neighbours
from aulib.data.folds import split_validation
from aulib.data.schema import CanonicalDataset, open_dataset
from aulib.data.stats import correlation
from aulib.eval.baselines import ALWAYS_PRESENT
from aulib.eval.claims import Claim, judge, per_unit, verdict_counts
from aulib.eval.crossval import Variant, run_folds, scores, tidy
from aulib.eval.metrics import action_conditional_f1
from aulib.methods.aunet import (
    VARIANTS,
    AUNetConfig,
    AUNetMethod,
    FANPretrain,
    VAEPretrain,
    au_weights,
    build_fan,
)
from aulib.models.aunet import AUVAE, AUHead, ResNet18A
from aulib.models.fan import FAN, freeze, heatmap_argmax, landmark_heatmaps, load_fan_weights, nme
from aulib.train import TrainConfig, atomic_torch_save, fit, resolve_device, seed_everything

EXPERIMENT = "Table VI ablation"

# ------------------------------------------------------------------------------------------- the protocol
#: name -> (AUNetConfig overrides, role); the four variants of Table VI
TABLE6: dict[str, tuple[dict, str]] = {
    "AU-FAN": ({"variant": "au_fan"}, "ablation"),
    "AU-VAE": ({"variant": "au_vae"}, "ablation"),
    "AU-TDN": ({"variant": "au_tdn"}, "ablation"),
    "AUNet": ({"variant": "aunet"}, "method"),
}
#: Sec. V-E: alignment in the VAE's label space instead of its latent space (on the static AU-VAE, cheaper)
LABEL_SPACE: dict[str, tuple[dict, str]] = {"AU-VAE (label space)": ({"variant": "au_vae", "align": "label"},
                                                                     "ablation")}
#: Table III: ResNet18 from raw pixels, the same loss and budget: the plain backbone trained on the labels
REFERENCE: dict[str, tuple[dict, str]] = {"ResNet18": ({"variant": "resnet18"}, "reference")}

BP4D_AUS = (1, 2, 4, 6, 7, 10, 12, 14, 15, 17, 23, 24)

# ------------------------------------------------------------------------------------------- the paper's numbers
#: Table VII (BP4D, F1 %): per-AU F1 of the four variants, in BP4D_AUS order
PAPER_TABLE7 = pd.DataFrame(
    [{"table": "VII", "variant": v, "au": f"AU{a}", "f1": f}
     for v, fs in {"AU-FAN": [54.9, 46.6, 61.0, 82.9, 74.5, 86.2, 87.5, 50.7, 40.0, 64.6, 47.9, 47.6],
                   "AU-VAE": [54.9, 53.0, 61.1, 83.8, 74.6, 88.2, 88.3, 63.2, 44.8, 66.6, 37.8, 43.4],
                   "AU-TDN": [56.5, 50.2, 63.1, 82.3, 74.2, 87.5, 88.8, 64.4, 48.5, 67.2, 50.4, 45.8],
                   "AUNet": [59.8, 47.3, 63.9, 83.9, 76.8, 87.5, 90.5, 61.2, 46.8, 66.1, 50.9, 51.3]}.items()
     for a, f in zip(BP4D_AUS, fs)])
#: Table VII's printed Avg row (F1 %); AU-FAN's 62.7 is not the mean of its 12 values (62.0)
PAPER_AVG = {"AU-FAN": 62.7, "AU-VAE": 63.3, "AU-TDN": 64.9, "AUNet": 65.5}
#: Table XII: paired t-tests between AU-FAN and each variant on BP4D predictions (t < 0: the variant is better)
PAPER_TABLE12 = pd.DataFrame({"table": "XII", "variant": ["AU-VAE", "AU-TDN", "AUNet"],
                              "t": [-26.78, -26.94, -26.40], "p": [6.33e-158, 7.62e-160, 1.51e-153]})
#: Table X (BP4D column): AU-VAE - AU-FAN in L2 distance between adjacency matrices (lower is better) and in
#: dependency F1 (higher is better); the paper's "2.2%" / "1.5%" read as 0.022 / 0.015
PAPER_TABLE10 = {"adjacency_l2": -0.022, "dependency_f1": 0.015}
#: Sec. V-E: AUNet on BP4D, latent vs label-space alignment (F1 %)
PAPER_ALIGNMENT = {"latent space": 65.5, "label space": 65.0}
#: Table III (BP4D, F1 % Avg): ResNet18 from raw pixels vs AU-FAN
PAPER_TABLE3 = {"ResNet18": 56.6, "AU-FAN": 63.8}
#: Sec. IV / implementation notes: trainable parameters (M) and "flops" (G, multiply-accumulates)
PAPER_COST = {"FAN (frozen)": (12.11, 13.97), "AU-FAN head": (1.86, 3.02), "AUNet head (TDN)": (2.66, 3.84),
              "ResNet18": (11.38, 2.35), "ResNet18-A": (math.nan, math.nan)}

SWITCHES = "switches_per_100_frames"

#: every "a beats b" of the paper that this chapter can test, judged by aulib.eval.claims.judge
CLAIMS: list[Claim] = [
    Claim("AU-VAE beats AU-FAN (Table VII Avg)", "AU-VAE", "AU-FAN", 0.006),
    Claim("AU-TDN beats AU-FAN (Table VII Avg)", "AU-TDN", "AU-FAN", 0.022),
    Claim("AUNet beats AU-FAN (Table VII Avg)", "AUNet", "AU-FAN", 0.028),
    Claim("AUNet beats AU-VAE (Table VII Avg)", "AUNet", "AU-VAE", 0.022),
    Claim("AUNet beats AU-TDN (Table VII Avg)", "AUNet", "AU-TDN", 0.006),
    Claim("AU-VAE's predictions are more often right than AU-FAN's (Table XII)", "AU-VAE", "AU-FAN",
          metric="accuracy"),
    Claim("AU-TDN's predictions are more often right than AU-FAN's (Table XII)", "AU-TDN", "AU-FAN",
          metric="accuracy"),
    Claim("AUNet's predictions are more often right than AU-FAN's (Table XII)", "AUNet", "AU-FAN",
          metric="accuracy"),
    Claim("AU-VAE's predicted adjacency is closer to the labels' than AU-FAN's (Table X, L2)", "AU-VAE", "AU-FAN",
          PAPER_TABLE10["adjacency_l2"], metric="adjacency_l2"),
    Claim("AU-VAE's predictions keep more AU dependencies than AU-FAN's (Table X, dependency F1)", "AU-VAE",
          "AU-FAN", PAPER_TABLE10["dependency_f1"], metric="dependency_f1"),
    Claim("latent-space alignment beats label-space alignment (Sec. V-E)", "AU-VAE", "AU-VAE (label space)",
          (PAPER_ALIGNMENT["latent space"] - PAPER_ALIGNMENT["label space"]) / 100),
    Claim("AU-FAN's predictions switch on/off more often than AU-TDN's (Fig 10, 'fewer breaks')", "AU-FAN",
          "AU-TDN", metric=SWITCHES),
    Claim("AU-FAN beats ResNet18 trained from raw pixels (Table III)", "AU-FAN", "ResNet18",
          (PAPER_TABLE3["AU-FAN"] - PAPER_TABLE3["ResNet18"]) / 100),
]


def protocol(profile: str = "cpu") -> dict:
    """The profile's ``aunet`` section: data sizes, ``folds``, ``seeds``, ``label_space_folds`` (folds of the
    label-space run), ``reference_folds`` (folds of the ResNet18 reference) and the ``method`` config."""
    P = profiles.get(profile, "aunet")
    P.setdefault("seeds", [0])
    P.setdefault("label_space_folds", P["folds"][:1])
    P.setdefault("reference_folds", P["folds"][:1])
    P.setdefault("val_fraction", 0.0)
    P.setdefault("align", None)
    return P


def make_data(P: dict, data_root: str | None = None, seed: int = 0) -> CanonicalDataset:
    """The BP4D-like synthetic videos of the profile, or the canonical dataset at ``data_root``; with
    ``P["align"]`` every frame cut by that template (:func:`aulib.data.align.align_dataset`, the crop ``aulib
    train`` and ``predict`` use) at the method's image size."""
    if data_root is not None:
        return _aligned(P, open_dataset(data_root))
    from aulib.data.synthetic import SynthConfig, generate

    return _aligned(P, generate(SynthConfig(preset="bp4d", seed=seed, **P["data"])))


def _aligned(P: dict, ds: CanonicalDataset) -> CanonicalDataset:
    from aulib.data.align import aligned

    return aligned(ds, P.get("align"), size=P["method"]["image_size"])


def make_config(P: dict, ds: CanonicalDataset, fan_weights: str | None = None) -> AUNetConfig:
    """The profile's AUNetConfig with the dataset's AU count and image channels."""
    return AUNetConfig.from_dict(P["method"], fan_weights=fan_weights, n_aus=len(ds.aus), channels=ds.meta.channels)


def data_summary(ds: CanonicalDataset) -> pd.DataFrame:
    """One row: the positive rate of every AU (over known labels)."""
    y, v = ds.au_matrix()
    rate = np.where(v, y, 0).sum(0) / np.maximum(v.sum(0), 1)
    return pd.DataFrame([rate.round(3)], columns=[f"AU{a}" for a in ds.aus], index=["positive rate"])


def head_train_config(cfg: AUNetConfig, **kw) -> TrainConfig:
    """The head's schedule: AdamW, step decay x``lr_decay`` every ``step_size`` epochs (paper: 1e-4, x0.3 / 4)."""
    return TrainConfig(epochs=cfg.epochs, optimizer="adamw", lr=cfg.lr, weight_decay=cfg.weight_decay,
                       schedule="step", step_size=cfg.step_size, gamma=cfg.lr_decay, **kw)


# ------------------------------------------------------------------------------------------- 1. the FAN
FAN_SETTINGS = ("image_size", "fan_width", "fan_depth", "fan_pool", "fan_epochs", "fan_lr", "fan_batch_size",
                "fan_sigma", "fan_fg_weight", "fan_augment")


def fan_cache_key(ds: CanonicalDataset, rows: np.ndarray, cfg: AUNetConfig) -> tuple[str, dict]:
    """(short hash, settings dict) naming a trained FAN: the FAN settings of ``cfg`` and the identity of its
    training data (dataset name, the rows' frame table and landmarks, a sample of their pixels)."""
    import hashlib
    import json

    rows = np.asarray(rows)
    h = hashlib.sha1()
    h.update(json.dumps(ds.meta.to_json(), sort_keys=True, default=str).encode())
    h.update(ds.frames.iloc[rows].to_csv(index=False).encode())
    h.update(np.ascontiguousarray(ds.landmarks[rows], dtype=np.float32).tobytes())
    for r in rows[np.linspace(0, len(rows) - 1, min(len(rows), 8)).astype(int)] if len(rows) else []:
        h.update(np.ascontiguousarray(ds.image(int(r))).tobytes())
    settings = {k: getattr(cfg, k) for k in FAN_SETTINGS} | {"data": h.hexdigest()[:16], "n_rows": len(rows)}
    key = hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
    return key, settings


def pretrain_fan(ds: CanonicalDataset, rows: np.ndarray, cfg: AUNetConfig, out_dir: str | Path | None = None,
                 device: str = "auto", progress: bool = True) -> tuple[FAN, pd.DataFrame]:
    """Train aulib's own FAN on ground-truth landmark heatmaps of ``rows`` (synthetic faces), save it to
    ``out_dir/fan_<key>.pt`` (history ``fan_<key>_history.csv``, settings ``fan_<key>.json``) and return it frozen
    with the training history. The key (:func:`fan_cache_key`) hashes the FAN settings and the training data, so
    a FAN trained with other settings or data is never reused (nor overwritten): it is retrained under its own
    key. A cached FAN whose stored settings differ from the key's (a corrupt cache) raises."""
    import json

    fan = build_fan(cfg)
    path = hist_path = None
    if out_dir is not None:
        key, settings = fan_cache_key(ds, rows, cfg)
        path, hist_path = Path(out_dir) / f"fan_{key}.pt", Path(out_dir) / f"fan_{key}_history.csv"
        meta_path = Path(out_dir) / f"fan_{key}.json"
        if path.is_file() and hist_path.is_file() and meta_path.is_file():
            stored = json.loads(meta_path.read_text())
            if stored != json.loads(json.dumps(settings)):
                raise ValueError(f"{meta_path} holds settings {stored}, not the {settings} its name stands for")
            load_fan_weights(fan, path)
            return freeze(fan), pd.read_csv(hist_path)
    transform = None
    if cfg.fan_augment:  # pose variety (the real FAN saw large poses); landmarks follow, flips swap L/R indices
        from aulib.data.transforms import geometric

        transform = geometric(rotation=15, scale=(0.9, 1.1), shift=0.08, flip=0.5)
    loader = DataLoader(FrameDataset(ds, rows, size=cfg.image_size, channels=3, transform=transform),
                        batch_size=cfg.fan_batch_size, shuffle=True, drop_last=len(rows) > cfg.fan_batch_size)
    tc = TrainConfig(epochs=cfg.fan_epochs, optimizer="adam", lr=cfg.fan_lr, schedule="cosine", device=str(device),
                     progress=progress)
    hist = fit(FANPretrain(fan, cfg.fan_sigma, cfg.fan_fg_weight), loader, tc)
    fan = fan.cpu()
    if path is not None:
        atomic_torch_save(fan.state_dict(), path)
        hist.to_csv(hist_path, index=False)
        meta_path.write_text(json.dumps(settings, sort_keys=True, indent=1))
    return freeze(fan), hist


def fan_training_data(P: dict, ds: CanonicalDataset, data_root: str | None, seed: int) -> CanonicalDataset:
    """Faces to train aulib's FAN on: separately generated synthetic people, one image each (the stand-in for the
    alignment datasets the real FAN saw); with real data, an evenly spaced subset of its frames."""
    if data_root is not None:  # ds is aligned already (make_data)
        return ds.subset(np.arange(0, len(ds), max(1, len(ds) // P["fan_data"]["n_subjects"])))
    from aulib.data.synthetic import SynthConfig, generate

    return _aligned(P, generate(SynthConfig(preset="emotionet", seed=seed + 1, **P["fan_data"])))


def load_or_train_fan(cfg: AUNetConfig, P: dict, ds: CanonicalDataset, data_root: str | None = None, seed: int = 0,
                      out_dir: str | Path | None = None, device: str = "auto") -> tuple[FAN, pd.DataFrame]:
    """Stage 1: the public checkpoint ``cfg.fan_weights`` (loaded strictly unless ``cfg.fan_strict`` is False, which
    ignores extra keys with a one-line warning; the load report is printed), else aulib's FAN trained by
    :func:`pretrain_fan`; frozen. Returns (fan, training history; empty when loaded)."""
    fan = build_fan(cfg)
    if cfg.fan_weights is not None:
        print(load_fan_weights(fan, cfg.fan_weights, strict=cfg.fan_strict))
        return freeze(fan), pd.DataFrame()
    fan_ds = fan_training_data(P, ds, data_root, seed)
    return pretrain_fan(fan_ds, np.arange(len(fan_ds)), cfg, out_dir=out_dir, device=str(device), progress=False)


@torch.no_grad()
def fan_landmarks(fan: FAN, ds: CanonicalDataset, rows: np.ndarray, size: int, batch_size: int = 64,
                  device: str | torch.device = "cpu", perturb: bool = False, seed: int = 0
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(predicted, true) landmarks (N, 68, 2) in pixels of the ``size`` input: the last stack's heatmap peaks
    (:func:`aulib.models.fan.heatmap_argmax`, sub-cell by a Taylor step on the log heatmap).
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


def check_rows(P: dict, ds: CanonicalDataset) -> np.ndarray:
    """About ``P['nme_frames']`` evenly spaced frames for the localisation check."""
    return np.arange(0, len(ds), max(1, len(ds) // P["nme_frames"]))


def landmark_nme(fan: FAN, ds: CanonicalDataset, rows: np.ndarray, size: int, device="cpu",
                 untrained: FAN | None = None, sigma: float | None = None) -> pd.DataFrame:
    """Tidy per-frame NME of the FAN, of the 'mean shape' reference (the average landmark layout of the
    evaluated frames: a strong baseline on near-aligned faces), optionally of an ``untrained`` FAN and, with
    ``sigma``, of FAN's training targets decoded ("targets decoded": Gaussian heatmaps of width ``sigma`` cells
    at the true points, read back by the same decoder: what decoding alone loses), on the frames as stored
    ("aligned") and after a random rotation/scale/shift ("perturbed")."""
    out = []
    for setting, perturb in (("aligned", False), ("perturbed", True)):
        models = {"FAN (heatmap argmax)": fan, **({"untrained FAN": untrained} if untrained is not None else {})}
        for name, model in models.items():
            pred, true = fan_landmarks(model, ds, rows, size, device=device, perturb=perturb)
            out.append(pd.DataFrame({"row": rows, "setting": setting, "predictor": name, "nme": nme(pred, true)}))
        mean_shape = np.broadcast_to(true.mean(0, keepdims=True), true.shape)
        out.append(pd.DataFrame({"row": rows, "setting": setting, "predictor": "mean shape",
                                 "nme": nme(mean_shape, true)}))
        if sigma is not None:
            with torch.no_grad():  # the heatmap grid (h, w) of this FAN at this input size
                grid = fan.to(device).eval()(torch.zeros(1, 3, size, size, device=device))[-1].shape[-2:]
            stride = size / grid[-1]
            targets = landmark_heatmaps(torch.as_tensor(true, dtype=torch.float32), tuple(grid), stride, sigma)
            out.append(pd.DataFrame({"row": rows, "setting": setting, "predictor": "targets decoded",
                                     "nme": nme(heatmap_argmax(targets, stride).numpy(), true)}))
    return pd.concat(out, ignore_index=True)


def nme_table(nme_df: pd.DataFrame) -> pd.DataFrame:
    """Mean NME per setting (rows) and predictor (columns), side by side, then FAN / mean shape and whether that
    ratio is at most 0.5 (the issue's bar for a localiser: half the mean layout's error)."""
    t = nme_df.pivot_table(index="setting", columns="predictor", values="nme", aggfunc="mean")
    t.columns.name = None
    t["FAN / mean shape"] = t["FAN (heatmap argmax)"] / t["mean shape"]
    t["at most half"] = t["FAN / mean shape"] <= 0.5
    return t


def noise_free_landmarks(P: dict, seed: int, rows: np.ndarray) -> np.ndarray:
    """Synthetic default only: the generator's landmarks of :func:`make_data`'s frames ``rows`` before its
    annotation jitter (``SynthConfig.landmark_noise``, per coordinate, a fraction of the inter-ocular distance), in
    the pixels of the aligned frames. The same videos are drawn again with ``landmark_noise=0`` (the jitter has its
    own random stream, so the faces are the same, which is checked) and their landmarks moved by the similarity
    transform that the stored, jittered ones gave each frame. -> (N, 68, 2)."""
    from aulib.data.align import align_face, apply_transform, resized_template
    from aulib.data.synthetic import SynthConfig, generate

    kw = {"preset": "bp4d", "seed": seed, **P["data"]}
    raw, clean = generate(SynthConfig(**kw)), generate(SynthConfig(**{**kw, "landmark_noise": 0.0}))
    tpl = resized_template(P["align"], P["method"]["image_size"]) if P.get("align") else None
    out = []
    for i in np.asarray(rows, dtype=np.int64):
        if not np.array_equal(raw.image(i), clean.image(i)):
            raise RuntimeError(f"frame {i}: the generator drew another face without landmark jitter")
        m = None if tpl is None else align_face(raw.image(i), raw.landmarks[i], tpl, return_matrix=True)[2]
        out.append(clean.landmarks[i] if m is None else apply_transform(m, clean.landmarks[i]))
    return np.asarray(out, dtype=np.float32)


def jitter_table(fan: FAN, ds: CanonicalDataset, rows: np.ndarray, size: int, clean: np.ndarray,
                 device="cpu") -> pd.DataFrame:
    """Mean NME on the aligned frames ``rows`` against two truths (rows): the stored landmarks, which carry the
    generator's jitter, and the ``clean`` ones (:func:`noise_free_landmarks`). Columns: FAN; the mean layout of that
    truth; the noise-free landmarks themselves (against the stored ones: what a perfect localiser scores, the
    jitter alone); FAN / mean shape, and whether that ratio is at most 0.5."""
    pred, stored = fan_landmarks(fan, ds, rows, size, device=device)
    out = {}
    for truth, t in (("stored (jittered)", stored), ("noise-free", clean)):
        mean_shape = np.broadcast_to(t.mean(0, keepdims=True), t.shape)
        out[truth] = {"FAN (heatmap argmax)": nme(pred, t).mean(), "mean shape": nme(mean_shape, t).mean(),
                      "noise-free landmarks": nme(clean, t).mean()}
    df = pd.DataFrame(out).T.rename_axis("truth")
    df["FAN / mean shape"] = df["FAN (heatmap argmax)"] / df["mean shape"]
    df["at most half"] = df["FAN / mean shape"] <= 0.5
    return df


@torch.no_grad()
def attention_maps(fan: FAN, ds: CanonicalDataset, row: int, cfg: AUNetConfig, device="cpu") -> dict:
    """One frame, the summed heatmaps of FAN's last stack (the attention map) and the mean |attended hourglass
    feature|, as arrays for plotting."""
    x = FrameDataset(ds, [row], size=cfg.image_size, channels=3)[0]["image"][None].to(device)
    fan = fan.to(device).eval()
    o = fan.forward_all(x)
    feat = fan.au_features(x)[0].cpu()
    return {"frame": x[0].permute(1, 2, 0).cpu().numpy(), "attention": o.heatmaps[-1].sum(1)[0].cpu().numpy(),
            "attended": feat[cfg.fan_width:].abs().mean(0).numpy()}


# ------------------------------------------------------------------------------------------- 2. the feature bank
def require_temporal_order(ds: CanonicalDataset, offset: int) -> tuple[np.ndarray, np.ndarray]:
    """(prev, next) rows of every frame within its own sequence; a dataset with no temporal order raises
    :class:`DatasetError` saying so (TDN never pairs unrelated frames)."""
    return temporal_neighbours(ds, offset)


@torch.no_grad()
def fan_feature_bank(fan: FAN, ds: CanonicalDataset, size: int, batch_size: int = 64,
                     device: str | torch.device = "cpu", dtype=torch.float16, progress: bool = True) -> dict:
    """Frozen-FAN AU features of every frame of ``ds`` and of its mirror: {"features", "mirror"} each
    (N, C', size/4, size/4), stored in ``dtype`` on the CPU."""
    from aulib.progress import tqdm

    fan = fan.to(device).eval()
    feats, mirrored = [], []
    loader = DataLoader(FrameDataset(ds, size=size, channels=3), batch_size=batch_size)
    for b in tqdm(loader, desc="FAN features", disable=not progress, leave=False):
        x = b["image"].to(device)
        feats.append(fan.au_features(x).to("cpu", dtype))
        mirrored.append(fan.au_features(x.flip(-1)).to("cpu", dtype))
    return {"features": torch.cat(feats), "mirror": torch.cat(mirrored)}


def feature_bank(fan: FAN, ds: CanonicalDataset, cfg: AUNetConfig, device="cpu") -> dict | None:
    """The bank when ``cfg.feature_bank`` (CPU profiles), else None (FAN runs on every augmented batch)."""
    return fan_feature_bank(fan, ds, cfg.image_size, device=device, progress=False) if cfg.feature_bank else None


def bank_summary(bank: dict | None) -> str:
    if bank is None:
        return "no feature bank: FAN runs on every augmented batch"
    f = bank["features"]
    return f"feature bank: {tuple(f.shape)} {f.dtype}, {2 * f.numel() * f.element_size() / 2**20:.0f} MiB"


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
                num_workers: int = 0, device: str | torch.device = "cpu") -> DataLoader | OnDevice:
    """The loader a variant needs: triplets for TDN variants, frozen-FAN bank items when ``bank`` is given.
    On the image path a training loader's geometric augmentation (``cfg.augment``: the official code's rotation
    15 deg, scale 0.75-1.25, shift 10 px at 256, flip) is made on whole batches on ``device``
    (:class:`aulib.data.batch_augment.BatchGeometric`, per-sample draws), not per frame in the loader."""
    tdn = VARIANTS[cfg.variant]["tdn"]
    offset = cfg.temporal_offset if tdn else None
    if tdn:
        require_temporal_order(ds, cfg.temporal_offset)  # clear error before building anything
    augment = None
    if bank is not None and VARIANTS[cfg.variant]["backbone"] == "fan":
        data = FeatureBankDataset(bank, ds, rows, offset, flip_p=0.5 if train else 0.0)
    else:
        if train and cfg.augment:
            augment = BatchGeometric(rotation=15, scale=(0.75, 1.25), shift=10 / 256, flip=0.5)
        channels = 3 if VARIANTS[cfg.variant]["backbone"] == "fan" else cfg.channels
        data = FrameDataset(ds, rows, temporal_offset=offset, size=cfg.image_size, channels=channels)
    loader = DataLoader(data, batch_size=cfg.batch_size, shuffle=train, num_workers=num_workers,
                        drop_last=train and len(rows) > cfg.batch_size)
    return loader if augment is None else OnDevice(loader, augment, resolve_device(device))


# ------------------------------------------------------------------------------------------- 3. VAE and heads
class _Labels(Dataset):
    def __init__(self, labels: np.ndarray):
        self.labels = torch.as_tensor(labels, dtype=torch.float32)

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return {"labels": self.labels[i]}


def pretrain_vae(labels: np.ndarray, valid: np.ndarray, cfg: AUNetConfig, device: str = "auto",
                 progress: bool = True) -> tuple[AUVAE, pd.DataFrame]:
    """Stage 2: train the AU-VAE on the training fold's fully-known label vectors; returns it frozen + history."""
    keep = valid.all(1)
    if keep.sum() < 2:
        raise ValueError(f"only {int(keep.sum())} training frames have every AU known; the VAE needs label vectors")
    vae = AUVAE(labels.shape[1], cfg.latent)
    loader = DataLoader(_Labels(labels[keep]), batch_size=cfg.vae_batch_size, shuffle=True)
    tc = TrainConfig(epochs=cfg.vae_epochs, optimizer="adam", lr=cfg.vae_lr, device=str(device), progress=progress)
    hist = fit(VAEPretrain(vae, cfg.kl_weight, cfg.vae_noise), loader, tc)
    return freeze(vae.cpu()), hist


def train_variant(ds: CanonicalDataset, train_rows: np.ndarray, cfg: AUNetConfig, fan: FAN | None = None,
                  vae: AUVAE | None = None, bank: dict | None = None, device: str = "auto",
                  progress: bool = True, out_dir: str | Path | None = None, seed: int = 0,
                  val_rows: np.ndarray | None = None,
                  val_probs: Callable[[AUNetMethod], np.ndarray] | None = None, num_workers: int = 0,
                  run_info: dict | None = None) -> tuple[AUNetMethod, pd.DataFrame]:
    """Stage 3: build and train one variant on ``train_rows``; Eq.1 weights come from the same rows. With
    ``val_rows`` (held-out training subjects) every epoch is scored on them (mean F1 at 0.5 and AUC) and the
    best-F1 epoch's weights are the ones returned. ``val_probs(method)`` gives their probabilities (default: the
    test protocol, :func:`predict` on the bank / triplets). With ``out_dir`` the run resumes from it."""
    from aulib.eval.metrics import auc_per_au, mean_f1

    labels, valid = ds.au_matrix()
    seed_everything(seed)  # the head's initialisation depends only on the seed, not on earlier runs
    method = AUNetMethod(cfg, au_weights(labels[train_rows], valid[train_rows]), fan=fan, vae=vae)
    loader = make_loader(ds, train_rows, cfg, train=True, bank=bank, num_workers=num_workers, device=device)
    evaluate = None
    if val_rows is not None and len(val_rows):
        probs = val_probs or (lambda m: 1 / (1 + np.exp(-predict(m, ds, val_rows, bank, device))))

        def evaluate(m, epoch):
            p, y, v = probs(m), labels[val_rows], valid[val_rows]
            return {"val_f1": mean_f1(y, p, v), "val_auc": float(np.nanmean(auc_per_au(y, p, v)))}
    tc = head_train_config(cfg, device=str(device), progress=progress, seed=seed,
                           monitor="val_f1" if evaluate else None)
    hist = fit(method, loader, tc, out_dir=out_dir, evaluate=evaluate, run_info=run_info)
    return method, hist


def predict(method: AUNetMethod, ds: CanonicalDataset, rows: np.ndarray, bank: dict | None = None,
            device="cpu") -> np.ndarray:
    """Logits (len(rows), K) in ``rows`` order (mirror-averaged when ``cfg.mirror_test``)."""
    logits, got = method.predict(make_loader(ds, rows, method.cfg, train=False, bank=bank), device)
    if not np.array_equal(got, rows):
        raise RuntimeError("the test loader changed the order of the rows")
    return logits


def predictions_frame(ds: CanonicalDataset, rows: np.ndarray, logits: np.ndarray, **labels) -> pd.DataFrame:
    """Tidy per-frame x AU predictions: row, subject, sequence, frame, au, logit, prob, pred, label, valid, + labels."""
    y, v = ds.au_matrix()
    f = ds.frames.iloc[rows]
    k = len(ds.aus)
    prob = 1 / (1 + np.exp(-logits))
    out = pd.DataFrame({
        "row": np.repeat(rows, k), "subject": np.repeat(f.subject.to_numpy(), k),
        "sequence": np.repeat(f.sequence.to_numpy(), k), "frame": np.repeat(f.frame.to_numpy(), k),
        "au": np.tile([f"AU{a}" for a in ds.aus], len(rows)), "logit": logits.ravel(), "prob": prob.ravel(),
        "pred": (prob.ravel() > 0.5).astype(int), "label": y[rows].ravel().astype(int), "valid": v[rows].ravel()})
    for key, val in labels.items():
        out[key] = val
    return out


# ------------------------------------------------------------------------------------------- per-run metrics
def adjacency(binary: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """AUNet's adjacency matrix (Fig. 8): Pearson correlation between AU columns; undefined entries -> 0."""
    return np.nan_to_num(correlation(binary, valid), nan=0.0)


def adjacency_l2(pred: np.ndarray, labels: np.ndarray, valid: np.ndarray | None = None) -> float:
    """Table X 'L2 distance': Frobenius norm of (A_pred - A_label) divided by K (aulib's normalisation, so
    the number is comparable across AU sets); pred, labels binary (N, K)."""
    a, b = adjacency(pred, valid), adjacency(labels, valid)
    return float(np.linalg.norm(a - b) / a.shape[0])


def dependency_f1(pred: np.ndarray, labels: np.ndarray, valid: np.ndarray | None = None) -> float:
    """Table X 'dependency F1-score' [65]: the action-conditional F1 of Tirupattur et al. (CVPR 2021), the F1 of
    AU i's detection on the frames where AU j is present, averaged over AU pairs
    (:func:`aulib.eval.metrics.action_conditional_f1`); pred, labels binary (N, K)."""
    return action_conditional_f1(labels, pred, valid)


def switches_per_100_frames(ds: CanonicalDataset, rows: np.ndarray, binary: np.ndarray) -> np.ndarray:
    """(K,) on/off switches of ``binary`` (len(rows), K) between consecutive frames of the same sequence, per
    100 frames (Fig. 10's 'breaks')."""
    f = ds.frames.iloc[rows]
    order = np.lexsort((f.frame.to_numpy(), f.sequence.astype(str).to_numpy(), f.subject.astype(str).to_numpy()))
    key = (f.subject.astype(str) + "/" + f.sequence.astype(str)).to_numpy()[order]
    b = np.asarray(binary)[order].astype(int)
    same = key[1:] == key[:-1]
    return 100 * (np.abs(np.diff(b, axis=0)) * same[:, None]).sum(0) / max(len(rows), 1)


def run_metrics(ds: CanonicalDataset, rows: np.ndarray, probs: np.ndarray) -> dict[str, np.ndarray]:
    """The extra per-AU columns of a variant's results rows: Fig. 10 switches and Table X's run-level adjacency
    metrics (repeated on each AU row)."""
    y, v = ds.au_matrix()
    pred = (probs > 0.5).astype(int)
    k = pred.shape[1]
    return {SWITCHES: switches_per_100_frames(ds, rows, pred),
            "adjacency_l2": np.full(k, adjacency_l2(pred, y[rows], v[rows])),
            "dependency_f1": np.full(k, dependency_f1(pred, y[rows], v[rows]))}


# ------------------------------------------------------------------------------------------- the ablation driver
@dataclass
class Ablation:
    """Trains the variants fold by fold (one VAE per training fold and seed, Sec. IV-B: "each training set owns its
    VAE") and keeps what the chapter plots beside the scores: test predictions, histories, trained models."""

    ds: CanonicalDataset
    cfg: AUNetConfig
    fan: FAN | None = None
    bank: dict | None = None
    device: str = "auto"
    progress: bool = False
    val_fraction: float = 0.0  # training subjects held out to pick each run's epoch (0: the last epoch)
    predictions: list = field(default_factory=list)
    histories: list = field(default_factory=list)
    vaes: dict = field(default_factory=dict)
    models: dict = field(default_factory=dict)
    tables: list = field(default_factory=list)

    def vae(self, fold: int, seed: int, train_rows: np.ndarray) -> AUVAE:
        if (fold, seed) not in self.vaes:
            labels, valid = self.ds.au_matrix()
            seed_everything(seed)
            vae, h = pretrain_vae(labels[train_rows], valid[train_rows], self.cfg, device=self.device,
                                  progress=self.progress)
            self.vaes[(fold, seed)] = vae
            self.histories.append(h.assign(fold=fold, seed=seed, run="VAE pretraining"))
        return self.vaes[(fold, seed)]

    def fit_predict(self, name: str, overrides: dict, train_rows, test_rows, fold: int, seed: int) -> dict:
        cfg = replace(self.cfg, **overrides)
        fit_rows, val_rows = split_validation(self.ds, train_rows, self.val_fraction, seed=seed)
        vae = self.vae(fold, seed, fit_rows) if VARIANTS[cfg.variant]["vae"] else None
        method, h = train_variant(self.ds, fit_rows, cfg, fan=self.fan, vae=vae, bank=self.bank,
                                  device=self.device, progress=self.progress, seed=seed, val_rows=val_rows)
        self.histories.append(h.assign(fold=fold, seed=seed, run=name))
        logits = predict(method, self.ds, test_rows, self.bank, self.device)
        probs = 1 / (1 + np.exp(-logits))
        self.models[(fold, seed, name)] = method.cpu()
        self.predictions.append(predictions_frame(self.ds, test_rows, logits, run=name, fold=fold, seed=seed))
        return {"probs": probs, "metrics": run_metrics(self.ds, test_rows, probs)}

    def variants(self, runs: dict[str, tuple[dict, str]]) -> list[Variant]:
        return [Variant(name, partial(self.fit_predict, name, overrides), role)
                for name, (overrides, role) in runs.items()]

    def run(self, runs: dict[str, tuple[dict, str]], folds, seeds) -> pd.DataFrame:
        t = run_folds(self.ds, self.variants(runs), folds=folds, seeds=tuple(seeds), experiment=EXPERIMENT,
                      progress=self.progress)
        self.tables.append(t)
        return t

    @property
    def results(self) -> pd.DataFrame:
        return tidy(self.tables)

    @property
    def preds(self) -> pd.DataFrame:
        return pd.concat(self.predictions, ignore_index=True)

    @property
    def history(self) -> pd.DataFrame:
        return pd.concat(self.histories, ignore_index=True)


def run_ablation(ds: CanonicalDataset, cfg: AUNetConfig, P: dict, fan: FAN | None, bank: dict | None = None,
                 device: str = "auto", seed: int | None = None) -> Ablation:
    """Table VI on ``P['folds']`` x seeds, the label-space alignment on ``P['label_space_folds']`` and the
    ResNet18 reference on ``P['reference_folds']``; every results table with its baselines."""
    seeds = [seed] if seed is not None else P["seeds"]
    ab = Ablation(ds, cfg, fan, bank, str(resolve_device(device)), val_fraction=P["val_fraction"])
    ab.run(TABLE6, P["folds"], seeds)
    ab.run(LABEL_SPACE, P["label_space_folds"], seeds)
    ab.run(REFERENCE, P["reference_folds"], seeds)
    return ab


def head_history(history: pd.DataFrame) -> pd.DataFrame:
    """Head-training history, mean over folds and seeds per (run, epoch): the curves to plot."""
    h = history[history.run != "VAE pretraining"]
    cols = [c for c in ("loss", "cls", "cons") if c in h.columns]
    return h.groupby(["run", "epoch"], sort=False)[cols].mean().reset_index()


def vae_history(history: pd.DataFrame) -> pd.DataFrame:
    """VAE pretraining history, mean over folds and seeds per epoch."""
    h = history[history.run == "VAE pretraining"]
    cols = [c for c in ("loss", "bce", "kl") if c in h.columns]
    return h.groupby("epoch")[cols].mean().reset_index()


# ------------------------------------------------------------------------------------------- the paper's tables
def headline(results: pd.DataFrame) -> pd.DataFrame:
    """Mean over AUs per run, then mean/std over runs: every variant next to the baselines (F1, AUC in [0, 1])."""
    return scores(results, values=("f1", "auc", "balanced_accuracy", "accuracy"))


def fold_scores(results: pd.DataFrame) -> pd.DataFrame:
    """Mean F1 (%) over AUs per (fold, seed) run (rows) and variant (columns)."""
    r = results[results.role != "baseline"]
    return 100 * r.pivot_table(index=["fold", "seed"], columns="variant", values="f1", aggfunc="mean")


def table7(results: pd.DataFrame) -> pd.DataFrame:
    """Per-AU F1 (%) of the four variants (mean over folds and seeds) with an Avg row, and the paper's Table VII
    beside them when the AUs are BP4D's 12."""
    r = results[results.variant.isin(list(TABLE6)) | (results.variant == ALWAYS_PRESENT)]
    aus = list(dict.fromkeys(results.au))
    t = 100 * r.pivot_table(index="au", columns="variant", values="f1", aggfunc="mean").reindex(aus)
    t = t[[*TABLE6, ALWAYS_PRESENT]]
    t.loc["Avg"] = t.mean()
    if aus == [f"AU{a}" for a in BP4D_AUS]:
        paper = PAPER_TABLE7.pivot(index="au", columns="variant", values="f1").reindex(aus)
        for v in TABLE6:
            t[f"{v} · paper (reported)"] = [*paper[v], PAPER_AVG[v]]
    return t


def table12(results: pd.DataFrame, preds: pd.DataFrame) -> pd.DataFrame:
    """Paired t-tests between AU-FAN and each variant (t < 0: the variant is better), on the F1 of each
    (fold, seed, AU) and on the per-frame-and-AU correctness of the thresholded predictions, beside the paper's
    t and p. Numbers only; the verdicts are in the claims."""
    rows = []
    f = results.set_index(["fold", "seed", "au", "variant"]).f1.unstack("variant")
    p = preds[preds.valid].assign(right=lambda d: (d.pred == d.label).astype(float))
    right = p.pivot_table(index=["fold", "seed", "row", "au"], columns="run", values="right")
    for _, paper in PAPER_TABLE12.iterrows():
        v = paper.variant
        fa, fb = f["AU-FAN"].dropna(), f[v].reindex(f["AU-FAN"].dropna().index)
        t1 = stats.ttest_rel(fa, fb)
        ra = right[["AU-FAN", v]].dropna()
        t2 = stats.ttest_rel(ra["AU-FAN"], ra[v])
        rows.append({"variant": v, "mean F1 diff (variant - AU-FAN)": float((fb - fa).mean()),
                     "t (F1 per fold x AU)": t1.statistic, "p (F1 per fold x AU)": t1.pvalue, "n pairs (F1)": len(fa),
                     "t (per-frame correctness)": t2.statistic, "p (per-frame correctness)": t2.pvalue,
                     "n pairs (frames x AUs)": len(ra), "paper t (reported)": paper.t, "paper p (reported)": paper.p})
    return pd.DataFrame(rows)


def table10(results: pd.DataFrame) -> pd.DataFrame:
    """Table X: mean adjacency L2 distance and dependency F1 of the Table VI variants' test predictions, and the
    AU-VAE - AU-FAN difference beside the paper's."""
    r = results[results.variant.isin(list(TABLE6))]
    t = r.groupby(["variant", "fold", "seed"])[["adjacency_l2", "dependency_f1"]].mean().groupby("variant").mean()
    t = t.reindex(list(TABLE6))
    t.loc["AU-VAE - AU-FAN"] = t.loc["AU-VAE"] - t.loc["AU-FAN"]
    t.loc["AU-VAE - AU-FAN · paper (reported)"] = [PAPER_TABLE10["adjacency_l2"], PAPER_TABLE10["dependency_f1"]]
    return t


def adjacency_matrices(preds: pd.DataFrame, fold: int, aus: list[str]) -> dict[str, np.ndarray]:
    """Fig. 8: adjacency matrices of the labels and of AU-FAN's and AU-VAE's predictions on ``fold``'s test frames."""
    g = preds[preds.fold == fold]
    out = {}
    for title, run, col in (("labels (test fold)", "AU-FAN", "label"), ("AU-FAN", "AU-FAN", "pred"),
                            ("AU-VAE", "AU-VAE", "pred")):
        part = g[g.run == run]
        wide = part.pivot_table(index="row", columns="au", values=col, aggfunc="first")[aus]
        out[title] = adjacency(wide.to_numpy())
    return out


def alignment_table(results: pd.DataFrame) -> pd.DataFrame:
    """Sec. V-E: mean F1 (%) of latent- and label-space alignment on the folds both ran, beside the paper's."""
    f = fold_scores(results)[["AU-FAN", "AU-VAE", "AU-VAE (label space)"]].dropna()
    t = pd.DataFrame({f"mean F1 (%) over {len(f)} run(s)": f.mean()})
    t["paper (reported, AUNet on BP4D)"] = [np.nan, PAPER_ALIGNMENT["latent space"], PAPER_ALIGNMENT["label space"]]
    return t


def reference_table(results: pd.DataFrame) -> pd.DataFrame:
    """Table III: AU-FAN vs ResNet18 from raw pixels (mean F1 % on the folds both ran), beside the paper's."""
    f = fold_scores(results)[["AU-FAN", "ResNet18"]].dropna()
    return pd.DataFrame({f"mean F1 (%) over {len(f)} run(s)": f.mean(),
                         "paper Table III (reported)": [PAPER_TABLE3["AU-FAN"], PAPER_TABLE3["ResNet18"]]})


def switches_table(preds: pd.DataFrame) -> pd.DataFrame:
    """Fig. 10: on/off switches per 100 test frames of each variant's thresholded predictions, beside the same
    count for the ground truth (mean over AUs and runs)."""
    rows = []
    for (run, fold, seed), g in preds.groupby(["run", "fold", "seed"], sort=False):
        g = g.sort_values(["subject", "sequence", "au", "frame"])
        same = ((g.subject.to_numpy()[1:] == g.subject.to_numpy()[:-1])
                & (g.sequence.to_numpy()[1:] == g.sequence.to_numpy()[:-1]) & (g.au.to_numpy()[1:] == g.au.to_numpy()[:-1]))
        n = g.row.nunique() * g.au.nunique()
        rows.append({"variant": run, "fold": fold, "seed": seed,
                     "prediction switches per 100 frames": 100 * (np.abs(np.diff(g.pred.to_numpy())) * same).sum() / n,
                     "label switches per 100 frames": 100 * (np.abs(np.diff(g.label.to_numpy())) * same).sum() / n})
    return pd.DataFrame(rows).groupby("variant", sort=False)[["prediction switches per 100 frames",
                                                               "label switches per 100 frames"]].mean()


def busiest_sequence(preds: pd.DataFrame, fold: int, runs=("AU-FAN", "AU-TDN")) -> pd.DataFrame:
    """Fig. 10's video: the test sequence of ``fold`` with the most positive labels, predictions of ``runs``."""
    g = preds[(preds.fold == fold) & preds.run.isin(list(runs))]
    subj, seq = g[g.run == runs[0]].groupby(["subject", "sequence"]).label.sum().idxmax()
    return g[(g.subject == subj) & (g.sequence == seq)].sort_values("frame")


def cost_table(image_size: int = 256, n_aus: int = 12, device: str = "cpu") -> pd.DataFrame:
    """Trainable parameters and GMACs (FlopCounterMode FLOPs / 2) of the full-size models next to the paper's.

    The paper's "flops" are multiply-accumulates (its AU-FAN head figure 3.02G matches our MAC count)."""
    from torch.utils.flop_counter import FlopCounterMode

    c = 768
    s = image_size // 4
    f = torch.zeros(1, c, s, s, device=device)
    x = torch.zeros(1, 3, image_size, image_size, device=device)
    models = {
        "FAN (frozen)": (FAN(), "au_features", (x,)),
        "AU-FAN head": (AUHead(c, n_aus), "forward", (f,)),
        "AUNet head (TDN)": (AUHead(c, n_aus, tdn=True), "forward", (f, f, f)),
        "ResNet18": (ResNet18A(n_aus, tdn=False), "forward", (x,)),
        "ResNet18-A": (ResNet18A(n_aus, tdn=True), "forward", (x[:, None].expand(-1, 3, -1, -1, -1),)),
    }
    rows = []
    for name, (m, fn, args) in models.items():
        m = m.to(device).eval()
        with FlopCounterMode(display=False) as fc, torch.no_grad():
            getattr(m, fn)(*args)
        rows.append({"model": name, "params_M": sum(p.numel() for p in m.parameters()) / 1e6,
                     "GMACs": fc.get_total_flops() / 2e9, "paper_params_M (reported)": PAPER_COST[name][0],
                     "paper_GFLOPs (reported)": PAPER_COST[name][1]})
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------------------- Fig. 6
@torch.no_grad()
def feature_maps(resnet: AUNetMethod, aufan: AUNetMethod, fan: FAN, ds: CanonicalDataset, rows: np.ndarray,
                 cfg: AUNetConfig, device="cpu") -> tuple[list[dict], pd.DataFrame]:
    """Fig. 6 idea: channel-mean |activation| at three depths of a ResNet18 trained from pixels and of AU-FAN
    for each frame of ``rows``, and the share of activation within 1/16 of the image size of a landmark
    ("landmark concentration"), beside the landmark area's share of the map ("uniform map").

    Returns ([{"image", "maps": {network: [3 maps]}} for the first two frames], concentration frame)."""
    resnet.eval().to(device)
    aufan.eval().to(device)
    fan = fan.to(device).eval()
    item = FrameDataset(ds, rows, size=cfg.image_size, channels=cfg.channels)
    shown, conc = [], []
    for i, row in enumerate(rows):
        b = item[i]
        _, rmaps = resnet.head(b["image"][None].to(device), return_maps=True)
        x3 = FrameDataset(ds, [row], size=cfg.image_size, channels=3)[0]["image"][None].to(device)
        f = fan.au_features(x3)
        _, amaps = aufan.head(f, return_maps=True)
        pairs = {"ResNet18": [rmaps["layer1"], rmaps["layer2"], rmaps["layer3"]],
                 "AU-FAN": [f, amaps["static_0"], amaps["static_1"]]}
        maps = {}
        for net, ms in pairs.items():
            maps[net] = []
            for level, m in enumerate(ms):
                a = m[0].abs().mean(0).cpu().numpy()
                h = a.shape[0]
                pts = b["landmarks"].numpy() * h / cfg.image_size
                yy, xx = np.mgrid[:h, :h]
                radius = max(0.75, h / 16)  # 1/16 of the face image, in cells
                near = (np.min((xx[..., None] - pts[:, 0] + 0.5) ** 2 + (yy[..., None] - pts[:, 1] + 0.5) ** 2, -1)
                        <= radius ** 2)
                conc.append({"network": net, "level": level, "resolution": h, "frame": int(row),
                             "landmark concentration": float(a[near].sum() / a.sum()),
                             "uniform map": float(near.mean())})
                maps[net].append(a)
        if i < 2:
            shown.append({"image": b["image"].permute(1, 2, 0).numpy().squeeze(), "maps": maps})
    conc = pd.DataFrame(conc)
    table = conc.groupby(["network", "level", "resolution"])[["landmark concentration", "uniform map"]].mean()
    return shown, table


def fig6_inputs(ab: Ablation, P: dict, ds: CanonicalDataset) -> tuple[AUNetMethod, AUNetMethod, np.ndarray]:
    """(ResNet18, AU-FAN, frames) for Fig. 6: the models of the first reference fold and seed, evenly spaced test
    frames of that fold."""
    from aulib.data.folds import fold_split

    fold, seed = P["reference_folds"][0], sorted(s for (_, s, _) in ab.models)[0]
    _, test = fold_split(ds, fold)
    rows = test[:: max(1, len(test) // P["fig6_frames"])][: P["fig6_frames"]]
    return ab.models[(fold, seed, "ResNet18")], ab.models[(fold, seed, "AU-FAN")], rows


# ------------------------------------------------------------------------------------------- claims and prose
def judge_claims(results: pd.DataFrame) -> pd.DataFrame:
    """Every claim of :data:`CLAIMS` through the one rule (:func:`aulib.eval.claims.judge`)."""
    return judge(results, CLAIMS)


def closing_markdown(results: pd.DataFrame, claims: pd.DataFrame) -> str:
    """The closing paragraph, read from this run's tables: does AUNet detect, and which claims show."""
    s = scores(results)
    ap = per_unit(results, ALWAYS_PRESENT)
    lines = []
    for _, r in s[s.role.isin(["method", "ablation", "reference"])].iterrows():
        units = per_unit(results[results.dataset == r.dataset], r.variant).index
        base = ap.loc[units.intersection(ap.index)].mean()
        word = "above" if r.f1 > base else "below"
        lines.append(f"- **{r.variant}** ({r.role}, {int(r.n_runs)} run(s)): mean F1 {100 * r.f1:.1f}, AUC "
                     f"{r.auc:.2f}, {word} `always present` on the same runs ({100 * base:.1f}).")
    counts = verdict_counts(claims)
    held = claims[claims.verdict == "holds"].claim.tolist()
    text = ["**Does it detect?**", *lines, "",
            f"**Claims** ({len(claims)}): " + ", ".join(f"{n} {v}" for v, n in counts.items()) + "."]
    text.append("Holding: " + ("; ".join(held) if held else "none") + ".")
    if counts["no evidence"]:
        text.append(f"{counts['no evidence']} claim(s) compare variants of which at least one does not beat "
                    "`always present` in F1 or has AUC below 0.6: at this size they say nothing about the paper.")
    if counts["not resolved"]:
        text.append(f"{counts['not resolved']} claim(s) have a 95% interval that contains 0: the effect does not "
                    "show beyond the run-to-run spread.")
    if counts["opposite"]:
        opp = claims[claims.verdict == "opposite"].claim.tolist()
        text.append("Opposite to the paper: " + "; ".join(opp) + ".")
    return "\n".join(text)


__all__ = ["CLAIMS", "EXPERIMENT", "LABEL_SPACE", "PAPER_ALIGNMENT", "PAPER_AVG", "PAPER_COST", "PAPER_TABLE10",
           "PAPER_TABLE12", "PAPER_TABLE3", "PAPER_TABLE7", "REFERENCE", "TABLE6", "Ablation", "FeatureBankDataset",
           "adjacency", "adjacency_l2", "adjacency_matrices", "alignment_table", "attention_maps", "bank_summary",
           "busiest_sequence", "check_rows", "closing_markdown", "cost_table", "data_summary", "dependency_f1",
           "fan_feature_bank", "fan_landmarks", "feature_bank", "feature_maps", "fig6_inputs", "fold_scores",
           "head_history", "head_train_config", "headline", "judge_claims", "landmark_nme", "load_or_train_fan",
           "make_config", "make_data", "make_loader", "nme_table", "predict", "predictions_frame", "pretrain_fan",
           "pretrain_vae", "protocol", "reference_table", "require_temporal_order", "run_ablation", "run_metrics",
           "switches_per_100_frames", "switches_table", "table10", "table12", "table7", "train_variant",
           "vae_history"]
