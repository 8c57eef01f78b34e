"""``python -m aulib train``: train a method on a canonical dataset into a run folder with a model card.

    card = train("supervised", "data/bp4d_synth", "runs/sup", profile="cpu", fold=1,
                 overrides=["backbone=resnet_tiny", "epochs=8"])

What a run folder holds (``RUN/``):

``config.json``     the resolved settings: method, method config, run config, data, fold, the command
``history.csv``     one row per epoch (loss, lr, time, validation F1 / AUC), written by :func:`aulib.train.fit`
``last.pt``         the resumable checkpoint (:func:`aulib.train.fit`); the same command again continues from it
``best.pt``         the weights of the best validation epoch
``model.pt``        the model to predict with: weights, method + config, AU list, thresholds, preprocessing
``results.csv``     the test fold's per-AU table (aulib.eval.crossval.run_folds), ``always present`` and
                    ``prior`` beside the method
``card.json`` / ``card.md``  the model card

``key=value`` settings go to the method's config dataclass (e.g. ``backbone=resnet18``), to :class:`RunConfig`
(``epochs=5``, ``image_size=96``, ``align=rrl``...) or, with ``--data synth:PRESET``, to the generator
(``synth.n_subjects=40``); values are parsed to the field's type. An unknown key ends with one line listing
the valid ones.

Preprocessing: every frame is cut again by :func:`aulib.data.align.face_crop` (template ``align``, ``image_size``
px, ``channels``) from its landmarks, so training faces and the faces ``predict`` finds in a photo are cut by the
same function; ``align=none`` keeps the frames as stored (then ``predict`` cannot reproduce the crop exactly
unless the dataset was aligned to a template by its converter).
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import types
import typing
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

MODEL_FORMAT = "aulib-model"
MODEL_FORMAT_VERSION = 1

#: methods whose Method maps an image batch (B, C, H, W) to AU logits (B, K) and trains from plain
#: FrameDataset batches ({"image", "labels", "valid"}): ``train`` can build and ``predict`` can run them.
#: ``cnn_study`` trains one study network (``backbone=lightcnn9``, ``normalisation=...``) with the study's
#: per-AU BCE on shuffled batches (the study's balanced AU batches and cost rules run in its notebook);
#: ``tranet`` trains TRA-Net (its switches ``hard_masks``, ``cbam_channel``... are config keys) with its summed
#: per-region BCE.
#: ``rrl`` and ``emoco`` pretrain first (RRL on unlabelled faces, EmoCo on emotion-labelled ones:
#: ``pretrain_data``), then fit the paper's linear probe on the training fold; the saved model is the frozen
#: encoder and the probe head (:class:`aulib.eval.protocols.ProbedEncoder`).
#: ``aunet`` trains in the paper's three stages (:func:`_train_aunet`): its FAN on landmark heatmaps of
#: ``pretrain_data`` faces (or loads ``fan_weights``), frozen; the AU-VAE on the fit frames' labels, frozen; the
#: head with Eq.1 (+ Eq.3-4). Its schedule keys are its config's (``epochs``, ``lr``, ``batch_size``,
#: ``fan_epochs``, ``vae_epochs``...), not the run's.
TRAINABLE = ("supervised", "cnn_study", "tranet", "rrl", "emoco", "aunet")
PRETRAINED = ("rrl", "emoco")
#: where each method pretrains unless ``pretrain_data`` says otherwise (the papers' sets; for AUNet the faces
#: its FAN learns landmarks on, the stand-in for the face-alignment datasets of the public FAN)
PRETRAIN_DATA = {"rrl": "synth:emotionet", "emoco": "synth:affectnet", "aunet": "synth:emotionet"}
#: run settings a method needs unless given: TRA-Net's masks sit on faces cut by its own template; the CNN
#: study works on grey faces
METHOD_RUN_DEFAULTS: dict[str, dict[str, Any]] = {"tranet": {"align": "tranet"}, "cnn_study": {"channels": 1}}


class RunError(ValueError):
    """Bad settings or a run folder that cannot be used; one line, naming the key or file."""


@dataclass
class RunConfig:
    """What ``train`` does around the method: data preparation, the loop's settings, evaluation."""

    epochs: int = 10
    batch_size: int = 64
    steps_per_epoch: int | None = None  # None: one pass over the training frames
    optimizer: str = "adamw"
    lr: float = 2e-3
    weight_decay: float = 1e-4
    schedule: str = "cosine"
    warmup_epochs: float = 0.0
    align: str = "rrl"  # alignment template (aulib.data.align.TEMPLATES) or "none"
    image_size: int = 96
    channels: int = 1  # 1 grey, 3 RGB
    augment: str = "real"  # none | geometric | real (geometric + brightness/contrast/gamma, blur, noise)
    k: int = 3  # subject-exclusive folds; --fold picks the test part
    val_fraction: float = 0.2  # training subjects held out to pick the best epoch and the thresholds
    tune_thresholds: bool = True  # per-AU thresholds maximising validation F1 (else 0.5)
    max_frames: int | None = None  # a seeded random subset of the training frames
    seed: int = 0
    workers: int = 0  # DataLoader worker processes
    device: str = "auto"
    # rrl / emoco: the pretraining (``epochs`` above are its epochs) and the linear probe after it
    pretrain_data: str | None = None  # synth:PRESET, a canonical folder, or "self" (the fit frames, labels unread)
    pretrain_subjects: int = 2000  # faces of a synth: pretraining set (one per subject)
    probe_epochs: int = 100  # probe_optimizer "lbfgs": the cap on its iterations
    probe_lr: float = 1e-3
    probe_optimizer: str = "adam"  # adam | adamw | sgd | lbfgs (full batch, to convergence; see ProbeConfig)
    probe_weight_decay: float = 0.0
    crop_scale: tuple[float, float] = (0.2, 1.0)  # emoco: MoCo v2's random resized crop
    blur: bool = True  # emoco: MoCo v2's Gaussian blur


#: per-profile defaults: the run config, and the method config of ``supervised`` and the CNN study's network
#: (the other methods' sizes come from their notebooks' profile sections: :func:`notebook_defaults`)
PROFILE_DEFAULTS: dict[str, dict[str, dict[str, Any]]] = {
    "smoke": {"run": {"epochs": 1, "batch_size": 16, "steps_per_epoch": 2, "image_size": 48, "val_fraction": 0.25},
              "supervised": {"backbone": "resnet_tiny"}, "cnn_study": {"backbone": "baseline_cnn"}},
    "cpu": {"run": {"epochs": 10, "batch_size": 64, "image_size": 96}, "supervised": {"backbone": "resnet_tiny"},
            "cnn_study": {"backbone": "baseline_cnn"}},
    "gpu": {"run": {"epochs": 30, "batch_size": 128, "image_size": 112, "channels": 3, "lr": 1e-3},
            "supervised": {"backbone": "resnet18"}, "cnn_study": {"backbone": "lightcnn9"}},
}
#: TRA-Net's model fields that ``train`` takes from the notebook's profile (its training loop is ``train``'s)
_TRANET_MODEL_KEYS = ("backbone", "backbone_kwargs", "decoder_channels", "fc_hidden", "reduction", "frozen_blocks",
                      "weights")


def notebook_defaults(method: str, profile: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(method config, run settings) read from a method's notebook profile section (:mod:`aulib.profiles`, the
    one place the sizes live): for ``rrl`` / ``emoco`` the backbone, heads, batch, learning rate, schedule,
    pretraining set size and the probe; for ``tranet`` the model's sizes. Others: ``({}, {})``."""
    from aulib import profiles

    if method == "rrl":
        P = profiles.get(profile, "rrl")
        m = {k: v for k, v in P["method"].items() if k != "image_size"}
        run = {"image_size": P["method"]["image_size"], "channels": 3, "epochs": P["epochs"],
               "warmup_epochs": P.get("warmup_epochs", 0.0), "pretrain_subjects": P["pretrain_data"]["n_subjects"],
               "probe_epochs": P["probe"]["epochs"], "probe_lr": P["probe"]["lr"],
               "probe_optimizer": P["probe"]["optimizer"], "probe_weight_decay": P["probe"]["weight_decay"]}
        return m, run
    if method == "emoco":
        P = profiles.get(profile, "emoco")
        lr = P["base_lr"] * P["batch_size"] / 256  # Sec. IV-B: lr = base x BS / 256
        m = {k: P[k] for k in ("backbone", "proj_hidden", "proj_dim", "queue_size", "momentum", "tau", "lam")}
        if P.get("classifier_lr_mult"):
            m["classifier_lr"] = P["classifier_lr_mult"] * lr
        run = {"image_size": P["image_size"], "channels": P["channels"], "optimizer": "sgd", "lr": lr,
               "weight_decay": 1e-4, "batch_size": P["batch_size"], "epochs": P["epochs"],
               "pretrain_subjects": P["pretrain_subjects"], "probe_epochs": P["probe_epochs"],
               "probe_lr": P["probe_lr"], "blur": P["blur"], "crop_scale": tuple(P["crop_scale"])}
        return m, run
    if method == "tranet":
        P = profiles.get(profile, "tranet")["config"]
        return {k: P[k] for k in _TRANET_MODEL_KEYS if k in P}, {}
    if method == "aunet":
        P = profiles.get(profile, "aunet")
        m = {k: v for k, v in P["method"].items() if k not in ("image_size", "channels")}
        return m, {"image_size": P["method"]["image_size"], "channels": 3,
                   "pretrain_subjects": P["fan_data"]["n_subjects"]}
    return {}, {}


def dataset_settings(method: str, ds, run: RunConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """(config fields, constructor arguments) that come from the prepared dataset ``ds``: its AUs, channels
    and face size (and, for TRA-Net, the face-centre row its region masks are placed by)."""
    k, ch = len(ds.aus), int(ds.meta.channels)
    if method == "cnn_study":
        if ch != 1:
            raise RunError(f"cnn_study trains on grey faces; got {ch} channels (use channels=1)")
        return {"in_chans": 1, "image_size": int(ds.meta.image_size[0])}, {"num_aus": k}
    if method == "tranet":
        from aulib.methods.tranet import face_centre_row

        return {"aus": [int(a) for a in ds.aus], "regions": None, "in_chans": ch,
                "image_size": int(ds.meta.image_size[0]),
                "centre_row": face_centre_row(ds.landmarks, int(ds.meta.image_size[0]))}, {}
    if method == "rrl":
        if ch != 3:
            raise RunError(f"rrl needs RGB faces for its colour augmentation; got {ch} channel(s) (use channels=3)")
        return {"aus": tuple(int(a) for a in ds.aus), "in_chans": 3, "image_size": int(ds.meta.image_size[0])}, {}
    if method == "emoco":
        return {"in_chans": ch}, {}
    if method == "aunet":
        return {"n_aus": k, "channels": ch, "image_size": int(ds.meta.image_size[0])}, {}
    return {"num_aus": k, "in_chans": ch}, {}


# ----------------------------------------------------------------------------------------------- key=value
def _parse_value(text: str, tp: Any, key: str) -> Any:
    """``text`` as type ``tp`` (int, float, bool, str, None, tuples / lists / dicts as JSON, unions)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if type(None) in args and text.strip().lower() in ("none", "null"):
            return None
        errors = []
        for a in (a for a in args if a is not type(None)):
            try:
                return _parse_value(text, a, key)
            except RunError as exc:
                errors.append(str(exc))
        raise RunError(errors[0] if errors else f"{key}={text!r}: cannot parse")
    if tp is bool:
        low = text.strip().lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise RunError(f"{key}={text!r}: expected true or false")
    if tp in (int, float):
        try:
            return tp(text)
        except ValueError:
            raise RunError(f"{key}={text!r}: expected {'an integer' if tp is int else 'a number'}") from None
    if tp is str or tp is Any:
        return text
    if origin in (tuple, list, dict) or tp in (tuple, list, dict):
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            if origin is dict or tp is dict:
                raise RunError(f"{key}={text!r}: expected a JSON object such as {{\"a\": 1}}") from None
            value = [t.strip() for t in text.strip("[]()").split(",") if t.strip()]
            inner = typing.get_args(tp)
            if inner:
                value = [_parse_value(v, inner[0], key) for v in value]
        if (origin is dict or tp is dict) != isinstance(value, dict):
            raise RunError(f"{key}={text!r}: expected {'a JSON object' if origin is dict else 'a list'}")
        return tuple(value) if (origin is tuple or tp is tuple) else value
    return text


def _hints(cls) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def parse_overrides(pairs: list[str] | tuple[str, ...], config_cls: type, method: str,
                    synth: bool = False) -> tuple[dict, dict, dict]:
    """(method config, run config, generator config) keyword dicts from ``key=value`` strings, each value
    parsed to its field's type. An unknown key raises :class:`RunError` listing every valid key."""
    from aulib.data.synthetic import SynthConfig

    groups = {"method": (config_cls, {}), "run": (RunConfig, {}), "synth": (SynthConfig, {})}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise RunError(f"{pair!r}: settings are key=value")
        if key.startswith("synth."):
            group, name = "synth", key.removeprefix("synth.")
            if not synth:
                raise RunError(f"{key}: synth.* settings need --data synth:PRESET")
        elif key in _hints(config_cls) and key in {f.name for f in dataclasses.fields(config_cls)}:
            group, name = "method", key
        elif key in {f.name for f in dataclasses.fields(RunConfig)}:
            group, name = "run", key
        else:
            group, name = None, key
        cls, out = groups[group] if group else (None, None)
        if cls is None or name not in {f.name for f in dataclasses.fields(cls) if f.init}:
            valid = sorted({f.name for f in dataclasses.fields(config_cls) if f.init}
                           | {f.name for f in dataclasses.fields(RunConfig)})
            extra = " and synth.<field> of SynthConfig" if synth else ""
            raise RunError(f"unknown key {key!r} for {method}; valid keys: {', '.join(valid)}{extra}")
        out[name] = _parse_value(text, _hints(cls)[name], key)
    return groups["method"][1], groups["run"][1], groups["synth"][1]


# ----------------------------------------------------------------------------------------------- data
def load_data(data: str | os.PathLike, synth_kw: dict | None = None):
    """A canonical dataset folder, or ``synth:PRESET`` (the generator, ``synth_kw`` its SynthConfig fields)."""
    from aulib.config import from_dict
    from aulib.data.schema import open_dataset

    text = str(data)
    if text.startswith("synth:"):
        from aulib.data.synthetic import SynthConfig, generate

        return generate(from_dict(SynthConfig, synth_kw or {}, preset=text.removeprefix("synth:") or "bp4d"))
    return open_dataset(data)


def prepare(ds, run: RunConfig):
    """``ds`` cut by :func:`aulib.data.align.face_crop` as ``run`` says (or as stored when ``align=none``)."""
    from aulib.data.align import align_dataset

    if run.align == "none":
        return ds
    return align_dataset(ds, run.align, size=run.image_size, channels=run.channels)


def preprocessing_of(ds, run: RunConfig) -> dict[str, Any]:
    if run.align == "none":
        h, w = ds.meta.image_size
        return {"template": None, "size": int(h), "channels": int(ds.meta.channels),
                "note": "frames used as stored: " + str(ds.meta.provenance.get("aligned", "not aligned by aulib"))}
    return {"template": run.align, "size": int(run.image_size), "channels": int(run.channels),
            "crop": "aulib.data.align.face_crop(image, dlib 68 landmarks, template, size, channels)"}


def augmentation(kind: str):
    """Training-time augmentation: ``none``, ``geometric`` (flip, rotation, scale, shift; landmarks follow) or
    ``real`` (geometric + what real photos vary in beyond the generator: brightness, contrast, gamma, blur,
    sensor noise, JPEG compression at quality 30-95 with p 0.5, by Pillow; torchvision's own JPEG codec is
    deprecated since 0.29)."""
    import torch
    from torchvision.transforms import v2

    from aulib.data.transforms import geometric

    if kind == "none":
        return None
    geo = geometric(rotation=8.0, scale=(0.93, 1.07), shift=0.04, flip=0.5)
    if kind == "geometric":
        return geo
    if kind != "real":
        raise RunError(f"augment={kind!r}; choose none, geometric or real")
    photometric = v2.Compose([
        v2.RandomApply([v2.ColorJitter(brightness=0.3, contrast=0.3)], p=0.8),
        v2.RandomApply([v2.GaussianBlur(5, sigma=(0.1, 1.0))], p=0.3),
    ])

    def jpeg(img: torch.Tensor) -> torch.Tensor:  # real photos and video frames arrive compressed
        import io

        from PIL import Image

        arr = (img.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()  # (H, W, C)
        buf = io.BytesIO()
        Image.fromarray(arr[..., 0] if arr.shape[2] == 1 else arr).save(
            buf, "JPEG", quality=int(torch.randint(30, 96, ())))
        out = np.asarray(Image.open(buf), dtype=np.float32) / 255
        return torch.from_numpy(out.reshape(arr.shape)).permute(2, 0, 1).contiguous()

    def apply(sample: dict) -> dict:
        sample = geo(sample)
        img = photometric(sample["image"]).clamp(0, 1)
        gamma = float(torch.empty(()).uniform_(0.8, 1.25))
        img = img.pow(gamma)
        if float(torch.rand(())) < 0.5:
            img = (img + torch.randn_like(img) * float(torch.empty(()).uniform_(0.0, 0.04))).clamp(0, 1)
        if float(torch.rand(())) < 0.5:
            img = jpeg(img)
        from torchvision import tv_tensors

        return {**sample, "image": tv_tensors.Image(img)}

    return apply


# ----------------------------------------------------------------------------------------------- helpers
def predict_rows(method, ds, rows: np.ndarray, batch_size: int = 128, device: str = "auto") -> np.ndarray:
    """Sigmoid outputs (len(rows), K) of ``method`` on frames ``rows`` of ``ds`` (:func:`aulib.eval.protocols.predict`)."""
    from torch.utils.data import DataLoader

    from aulib.data.dataset import FrameDataset
    from aulib.eval.protocols import predict

    if len(rows) == 0:
        return np.zeros((0, len(ds.aus)), np.float32)
    return predict(method, DataLoader(FrameDataset(ds, rows), batch_size=batch_size), device, progress=False)[0]


def tune_thresholds(labels: np.ndarray, valid: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Per-AU threshold (grid 0.05..0.95) maximising F1 on (labels, valid, probs); 0.5 where an AU has no
    known positive."""
    from aulib.eval.metrics import f1_per_au

    grid = np.round(np.arange(0.05, 0.951, 0.025), 3)
    thr = np.full(labels.shape[1], 0.5)
    f1 = np.stack([f1_per_au(labels, probs, valid, threshold=t) for t in grid])  # (T, K)
    for k in range(labels.shape[1]):
        if (labels[valid[:, k], k] > 0).any() and np.isfinite(f1[:, k]).any():
            thr[k] = grid[int(np.nanargmax(f1[:, k]))]
    return thr


def _check_run_folder(out: Path, config: dict) -> None:
    """A new/empty folder, or a run folder written by ``train`` with the same settings (resume)."""
    if not out.exists():
        return
    if not out.is_dir():
        raise RunError(f"{out}: exists and is not a folder")
    entries = [p.name for p in out.iterdir()]
    if not entries:
        return
    cfg_file = out / "config.json"
    if not cfg_file.is_file():
        raise RunError(f"{out}: not empty and not an aulib run folder (no config.json); choose a new --out")
    try:
        old = json.loads(cfg_file.read_text())
    except json.JSONDecodeError as exc:
        raise RunError(f"{cfg_file}: not valid JSON ({exc.msg})") from None
    keep = ("method", "method_config", "data", "fold")
    diff = [k for k in keep if old.get(k) != config.get(k)]
    free = {"epochs", "workers", "device"}
    diff += [f"run.{k}" for k in sorted(set(old.get("run", {})) | set(config["run"]))
             if k not in free and old.get("run", {}).get(k) != config["run"].get(k)]
    if diff:
        raise RunError(f"{out}: holds a run with other settings ({', '.join(diff)}); use a new --out to train "
                       "another model, or the same command to resume")


def _atomic_json(obj: Any, path: Path) -> None:
    from aulib.train.loop import atomic_write_text

    atomic_write_text(json.dumps(obj, indent=2, default=str), path)


def _nanmean(values) -> float:
    v = np.asarray(values, dtype=float)
    return float(np.nanmean(v)) if np.isfinite(v).any() else float("nan")


def _mean_metrics(results, variant: str) -> dict[str, float]:
    t = results[results.variant == variant]
    cols = [c for c in ("f1", "f1_at_thresholds", "auc", "balanced_accuracy") if c in t]
    return {c: float(t[c].mean()) for c in cols}


# ----------------------------------------------------------------------------------------------- train
def train(method: str, data: str | os.PathLike, out: str | os.PathLike, profile: str = "cpu", fold: int = 1,
          overrides: list[str] | tuple[str, ...] = (), progress: bool = True, command: str | None = None) -> dict:
    """Train ``method`` on ``data`` (a canonical folder or ``synth:PRESET``), test on fold ``fold``; writes the
    run folder ``out`` (see the module docstring) and returns the model card. The same call again resumes."""
    import torch

    from aulib import __version__
    from aulib.config import from_dict
    from aulib.data.dataset import FrameDataset
    from aulib.data.folds import fold_split, fold_subjects, split_validation
    from aulib.eval.crossval import run_folds
    from aulib.eval.metrics import auc_per_au, f1_per_au
    from aulib.methods import registry
    from aulib.train import TrainConfig, fit
    from aulib.train.loop import atomic_torch_save

    if profile not in PROFILE_DEFAULTS:
        raise RunError(f"unknown profile {profile!r}; choose {', '.join(PROFILE_DEFAULTS)}")
    if method not in registry.available():
        raise RunError(f"unknown method {method!r}; available: {', '.join(registry.available())}")
    if method not in TRAINABLE:
        raise RunError(f"{method} is trained through its own module for now: its Method needs batches (views, "
                       "triplets, balanced AU groups, pretraining stages) that `aulib train` does not build yet; "
                       f"trainable here: {', '.join(TRAINABLE)}")
    _, config_cls = registry.get(method)
    synth = str(data).startswith("synth:")
    method_kw, run_kw, synth_kw = parse_overrides(list(overrides), config_cls, method, synth=synth)
    defaults = PROFILE_DEFAULTS[profile]
    nb_method, nb_run = notebook_defaults(method, profile)
    run = from_dict(RunConfig, {**defaults["run"], **METHOD_RUN_DEFAULTS.get(method, {}), **nb_run, **run_kw})
    if run.align != "none":
        from aulib.data.align import TEMPLATES

        if run.align not in TEMPLATES:
            raise RunError(f"align={run.align!r}; choose none or one of {', '.join(TEMPLATES)}")
    if run.channels not in (1, 3):
        raise RunError(f"channels={run.channels}; choose 1 or 3")

    raw = load_data(data, {"progress": progress and None, **synth_kw})
    ds = prepare(raw, run)
    pre = preprocessing_of(ds, run)
    from_data, init_kw = dataset_settings(method, ds, run)
    cfg_kw = {**defaults.get(method, {}), **nb_method, **method_kw, **from_data}
    try:
        method_cfg = from_dict(config_cls, cfg_kw)
    except (TypeError, ValueError, KeyError) as exc:
        raise RunError(f"{method}: {str(exc).strip(chr(39))}") from None
    data_info = {"source": str(data), "name": ds.meta.name, "frames": len(ds), "subjects": len(ds.subjects),
                 "aus": ds.aus, "synthetic": raw.meta.provenance.get("generator") == "aulib.data.synthetic",
                 "provenance": raw.meta.provenance}
    config = {"method": method, "method_config": {**asdict(method_cfg), **init_kw}, "run": asdict(run),
              "profile": profile,
              "data": {k: data_info[k] for k in ("source", "name", "frames", "aus")}, "fold": fold,
              "command": command}
    config = json.loads(json.dumps(config, default=str))
    out = Path(out)
    _check_run_folder(out, config)
    out.mkdir(parents=True, exist_ok=True)
    _atomic_json(config, out / "config.json")

    train_rows, test_rows = fold_split(ds, fold, k=run.k, seed=0)
    fit_rows, val_rows = split_validation(ds, train_rows, run.val_fraction, seed=run.seed)
    if run.max_frames is not None and len(fit_rows) > run.max_frames:
        rng = np.random.default_rng(run.seed)
        fit_rows = np.sort(rng.choice(fit_rows, run.max_frames, replace=False))
    labels, valid = ds.au_matrix()

    head_info, notes, protocol_probs = None, [], None
    if method in PRETRAINED:
        model, history, init_kw, head_info = _pretrain_and_probe(method, method_cfg, run, ds, fit_rows, out, config,
                                                                 progress)
    elif method == "aunet":
        model, history, init_kw, notes, protocol_probs = _train_aunet(method_cfg, run, ds, fit_rows, val_rows,
                                                                       test_rows, out, config, progress)
    else:
        model = registry.create(method, **asdict(method_cfg), **init_kw)
        loader = torch.utils.data.DataLoader(
            FrameDataset(ds, fit_rows, transform=augmentation(run.augment)), batch_size=run.batch_size,
            shuffle=True, drop_last=len(fit_rows) > run.batch_size, num_workers=run.workers,
            generator=torch.Generator().manual_seed(run.seed))

        def evaluate(m, epoch):  # validation subjects: mean F1 at 0.5 and AUC
            if len(val_rows) == 0:
                return {}
            p = predict_rows(m, ds, val_rows, device=run.device)
            return {"val_f1": _nanmean(f1_per_au(labels[val_rows], p, valid[val_rows])),
                    "val_auc": _nanmean(auc_per_au(labels[val_rows], p, valid[val_rows]))}

        tcfg = TrainConfig(epochs=run.epochs, optimizer=run.optimizer, lr=run.lr, weight_decay=run.weight_decay,
                           schedule=run.schedule, warmup_epochs=run.warmup_epochs,
                           steps_per_epoch=run.steps_per_epoch, seed=run.seed, device=run.device, progress=progress,
                           monitor="val_f1" if len(val_rows) else None)
        history = fit(model, loader, tcfg, out_dir=out, resume=True, evaluate=evaluate,
                      run_info={"aulib_run": config})

    thresholds = np.full(len(ds.aus), 0.5)
    if run.tune_thresholds and len(val_rows):
        thresholds = tune_thresholds(labels[val_rows], valid[val_rows],
                                     predict_rows(model, ds, val_rows, device=run.device))
    test_probs = predict_rows(model, ds, test_rows, device=run.device)
    hard = (test_probs >= thresholds).astype(np.float32)

    def fitted(tr, te, f, s):  # the model trained above, scored by the one fold runner beside its baselines
        return {"probs": test_probs, "metrics": {"f1_at_thresholds": f1_per_au(labels[te], hard, valid[te])}}

    results = run_folds(ds, {method: fitted}, k=run.k, folds=[fold], experiment="train", progress=False)
    results.to_csv(out / "results.csv", index=False)

    aus = [f"AU{a}" for a in ds.aus]
    per = results[results.variant == method].set_index("au")
    ap = results[results.variant == "always present"].set_index("au")
    card = {
        "format": "aulib-model-card", "aulib_version": __version__, "method": method,
        "method_config": config["method_config"], "run_config": config["run"], "profile": profile,
        "command": command, "data": json.loads(json.dumps(data_info, default=str)),
        "trained_on_synthetic_faces_only": bool(data_info["synthetic"]),
        "fold": {"k": run.k, "test_fold": fold, "test_subjects": fold_subjects(ds.frames.subject.unique(), run.k, 0)[fold - 1],
                 "frames": {"fit": len(fit_rows), "validation": len(val_rows), "test": len(test_rows)}},
        "aus": aus, "thresholds": {a: float(t) for a, t in zip(aus, thresholds)},
        "threshold_rule": "per-AU F1-optimal on the validation subjects" if run.tune_thresholds and len(val_rows)
        else "0.5",
        "preprocessing": pre,
        "metrics": {"test": _mean_metrics(results, method), "always present": _mean_metrics(results, "always present"),
                    "prior": _mean_metrics(results, "prior")},
        "per_au": [{"au": a, "f1": float(per.at[a, "f1"]), "f1_at_thresholds": float(per.at[a, "f1_at_thresholds"]),
                    "auc": float(per.at[a, "auc"]), "always_present_f1": float(ap.at[a, "f1"]),
                    "positive_rate": float(per.at[a, "n_pos"] / max(1, per.at[a, "n_valid"]))} for a in aus],
        "epochs_trained": int(len(history)), "best_epoch": history.attrs.get("best_epoch"),
        "notes": list(notes),
    }
    if protocol_probs is not None:  # AUNet's TDN: the paper's test input beside predict's
        card["metrics"]["test, paper protocol (frames t-T, t, t+T)"] = {
            "f1": _nanmean(f1_per_au(labels[test_rows], protocol_probs, valid[test_rows])),
            "auc": _nanmean(auc_per_au(labels[test_rows], protocol_probs, valid[test_rows]))}
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    atomic_torch_save({"format": MODEL_FORMAT, "format_version": MODEL_FORMAT_VERSION, "method": method,
                       "config": {**config["method_config"], **init_kw}, "aus": ds.aus,
                       "thresholds": thresholds.tolist(), "preprocessing": pre, "state_dict": state, "card": card,
                       **({"head": head_info} if head_info else {})}, out / "model.pt")
    write_card(card, out)
    return card


def pretraining_set(run: RunConfig, method: str, ds, fit_rows: np.ndarray):
    """The pretraining faces, cut like the labelled ones: ``pretrain_data`` (default :data:`PRETRAIN_DATA`), a
    ``synth:`` preset of ``pretrain_subjects`` faces, a canonical folder, or ``"self"``: the fit frames of the
    labelled set (their labels are not read)."""
    src = run.pretrain_data or PRETRAIN_DATA[method]
    if src == "self":
        return ds.subset(fit_rows)
    kw = {"n_subjects": run.pretrain_subjects, "sequences_per_subject": 1, "frames_per_sequence": 1,
          "seed": run.seed + 100, "progress": None} if src.startswith("synth:") else None
    try:
        return prepare(load_data(src, kw), run)
    except ValueError as exc:
        raise RunError(f"pretrain_data={src}: {exc}") from None


def _train_aunet(cfg, run: RunConfig, ds, fit_rows, val_rows, test_rows, out: Path, config: dict, progress: bool):
    """AUNet's three stages (aulib.methods.aunet), each on the fit frames only: (1) the FAN, loaded from
    ``cfg.fan_weights`` or trained on the landmarks of :func:`pretraining_set` faces (cached in ``out`` under a key
    of its settings and data, so a resumed run reuses it), frozen; (2) the AU-VAE on the fit labels (Eq.2),
    frozen; (3) the head (Eq.1, + Eq.3-4 with the VAE) by :func:`aulib.train.fit`, resumable, the best
    validation epoch kept. Returns (model, head history, constructor arguments to save, card notes, test-fold
    probabilities under the paper's triplet input for TDN variants, else None)."""
    import torch

    from aulib.data.schema import DatasetError
    from aulib.experiments import aunet as X
    from aulib.methods.aunet import VARIANTS, au_weights, build_fan
    from aulib.models.fan import freeze, load_fan_weights
    from aulib.train import resolve_device, seed_everything

    spec = VARIANTS[cfg.variant]
    device = resolve_device(run.device)
    if spec["tdn"]:
        try:
            X.require_temporal_order(ds, cfg.temporal_offset)
        except DatasetError as exc:
            raise RunError(f"variant={cfg.variant} (TDN) needs videos: {exc}") from None
    labels, valid = ds.au_matrix()
    notes: list[str] = []
    fan = None
    if spec["backbone"] == "fan":
        if cfg.fan_weights is not None:
            fan = build_fan(cfg)
            notes.append(f"FAN: {load_fan_weights(fan, cfg.fan_weights, strict=cfg.fan_strict)}")
            fan = freeze(fan)
        else:
            faces = pretraining_set(run, "aunet", ds, fit_rows)
            fan, _ = X.pretrain_fan(faces, np.arange(len(faces)), cfg, out_dir=out, device=run.device,
                                    progress=progress)
            notes.append(f"FAN trained by aulib on the 68 landmarks of {len(faces)} faces of "
                         f"{run.pretrain_data or PRETRAIN_DATA['aunet']}, then frozen")
    vae = None
    if spec["vae"]:
        seed_everything(run.seed)
        vae, _ = X.pretrain_vae(labels[fit_rows], valid[fit_rows], cfg, device=run.device, progress=False)
    bank = X.feature_bank(fan, ds, cfg, device=device) if fan is not None else None
    model, history = X.train_variant(  # validation: single frames, as `predict` sees them
        ds, fit_rows, cfg, fan=fan, vae=vae, bank=bank, device=device, progress=progress, out_dir=out,
        seed=run.seed, val_rows=val_rows, val_probs=lambda m: predict_rows(m, ds, val_rows, device=run.device),
        num_workers=run.workers, run_info={"aulib_run": config})
    model = model.cpu().eval()
    protocol = None
    if spec["tdn"]:
        protocol = torch.sigmoid(torch.from_numpy(X.predict(model, ds, test_rows, bank=bank, device=device))).numpy()
        notes.append("TDN on a single photo (aulib predict): the frame is its own neighbour, so the motion input "
                     "is zero; the test metrics above are measured that way, the paper's triplet input beside them")
    weights = au_weights(labels[fit_rows], valid[fit_rows]).tolist()  # Eq.1's w_i, as train_variant counts them
    return model, history, {"au_weights": weights, "build_parts": True}, notes, protocol


def _pretrain_and_probe(method: str, cfg, run: RunConfig, ds, fit_rows, out: Path, config: dict, progress: bool):
    """RRL / EmoCo: pretrain on :func:`pretraining_set` (resumable in ``out``), then fit the paper's linear probe
    on the fit frames' features. Returns (ProbedEncoder, pretraining history, constructor arguments to save,
    the head's description)."""
    import torch
    from torch.utils.data import DataLoader

    from aulib.data.dataset import FrameDataset
    from aulib.eval.protocols import ProbeConfig, ProbedEncoder, extract_features, train_head

    pre = pretraining_set(run, method, ds, fit_rows)
    init_kw: dict[str, Any] = {}
    if method == "rrl":
        from aulib.experiments.rrl import pretrain, relation_matrix

        relation = relation_matrix(ds, fit_rows, aus=cfg.aus) if cfg.use_corr else None  # M: the fit labels only
        if relation is not None:
            init_kw["relation"] = np.asarray(relation).tolist()
        net, history = pretrain(pre, cfg, relation, epochs=run.epochs, seed=run.seed, device=run.device,
                                out_dir=out, progress=progress, num_workers=run.workers,
                                warmup_epochs=run.warmup_epochs, batch_augment=True)
        head_kind = "bn_linear"  # RRL Sec. 3: BatchNorm + Linear without bias
    else:
        from aulib.methods import registry
        from aulib.methods.emoco import TwoViews, mocov2_augmentation
        from aulib.train import TrainConfig, fit

        try:
            faces = TwoViews.from_canonical(pre, transform=mocov2_augmentation(
                run.image_size, run.channels, blur=run.blur, crop_scale=tuple(run.crop_scale)))
        except ValueError as exc:
            raise RunError(f"pretrain_data={run.pretrain_data or PRETRAIN_DATA[method]}: {exc}") from None
        loader = DataLoader(faces, batch_size=min(run.batch_size, len(faces)), shuffle=True, drop_last=True,
                            num_workers=run.workers, generator=torch.Generator().manual_seed(run.seed))
        net = registry.create(method, **asdict(cfg))
        tc = TrainConfig(epochs=run.epochs, optimizer=run.optimizer, lr=run.lr, weight_decay=run.weight_decay,
                         momentum=0.9, schedule=run.schedule, warmup_epochs=run.warmup_epochs, seed=run.seed,
                         device=run.device, progress=progress)
        history = fit(net, loader, tc, out_dir=out, resume=True, run_info={"aulib_run": config})
        net = net.cpu().eval()
        head_kind = "linear"  # EmoCo's linear protocol
    feats, labels, valid = extract_features(
        net, DataLoader(FrameDataset(ds, fit_rows), batch_size=128), run.device,
        feature_fn=lambda m, x: m.features(x), progress=False)
    head = train_head(feats, labels, valid, ProbeConfig(head=head_kind, epochs=run.probe_epochs, lr=run.probe_lr,
                                                        optimizer=run.probe_optimizer,
                                                        weight_decay=run.probe_weight_decay,
                                                        seed=run.seed, device=run.device, progress=False))
    model = ProbedEncoder(net, head.cpu()).eval()
    info = {"kind": head_kind, "in_dim": int(feats.shape[1]), "out_dim": int(labels.shape[1]),
            "pretrain_data": run.pretrain_data or PRETRAIN_DATA[method], "pretrain_frames": len(pre)}
    return model, history, init_kw, info


def write_card(card: dict, out: str | os.PathLike) -> None:
    """``card.json`` and ``card.md`` in ``out``."""
    out = Path(out)
    _atomic_json(card, out / "card.json")
    from aulib.train.loop import atomic_write_text

    atomic_write_text(card_markdown(card), out / "card.md")


def card_markdown(card: dict) -> str:
    m, ap = card["metrics"]["test"], card["metrics"]["always present"]
    pre = card["preprocessing"]
    lines = [f"# Model card: {card['method']} ({card['data']['name']})", ""]
    if card.get("trained_on_synthetic_faces_only"):
        lines += ["**Trained on synthetic faces only** (aulib's generator). Its scores below are on held-out "
                  "synthetic subjects; on real faces it is much weaker (see the notes).", ""]
    lines += [f"- aulib {card['aulib_version']}; method `{card['method']}`; backbone "
              f"`{card['method_config'].get('backbone', '-')}`",
              f"- data: `{card['data']['source']}` ({card['data']['frames']} frames, {card['data']['subjects']} "
              f"subjects); fold {card['fold']['test_fold']} of {card['fold']['k']} (subject-exclusive), frames "
              f"fit/validation/test = {card['fold']['frames']['fit']}/{card['fold']['frames']['validation']}/"
              f"{card['fold']['frames']['test']}",
              f"- preprocessing: template `{pre.get('template')}`, {pre['size']} px, {pre['channels']} channel(s) "
              "(aulib.data.align.face_crop on dlib's 68 landmarks)",
              f"- thresholds: {card['threshold_rule']}",
              f"- command: `{card.get('command') or '-'}`", "",
              "## Test fold (mean over AUs)", "",
              "| | F1 @0.5 | F1 @thresholds | AUC |", "|---|---|---|---|",
              f"| {card['method']} | {m['f1']:.3f} | {m.get('f1_at_thresholds', float('nan')):.3f} | {m['auc']:.3f} |",
              *[f"| {name} | {v['f1']:.3f} | - | {v['auc']:.3f} |" for name, v in card["metrics"].items()
                if name not in ("test", "always present", "prior")],
              f"| always present | {ap['f1']:.3f} | {ap['f1']:.3f} | {ap['auc']:.3f} |", "",
              "## Per AU", "", "| AU | threshold | F1 @thr | AUC | always-present F1 | positive rate |",
              "|---|---|---|---|---|---|"]
    for r in card["per_au"]:
        lines.append(f"| {r['au']} | {card['thresholds'][r['au']]:.3f} | {r['f1_at_thresholds']:.3f} | "
                     f"{r['auc']:.3f} | {r['always_present_f1']:.3f} | {r['positive_rate']:.2f} |")
    if card.get("notes"):
        lines += ["", "## Notes", ""] + [f"- {n}" for n in card["notes"]]
    if card.get("real_photos"):
        lines += ["", "## Real photos", ""]
        for r in card["real_photos"]:
            lines.append(f"- {r['name']}: {r['summary']}")
    return "\n".join(lines) + "\n"


def command_line() -> str:
    return "python -m aulib " + " ".join(sys.argv[1:])


def package_model(run: str | os.PathLike, dest: str | os.PathLike, notes: list[str] | tuple[str, ...] = ()) -> dict:
    """Copy a run's model.pt to ``dest`` (e.g. aulib/weights/aulib_synthetic_v2.pt) with its card completed by
    the real-photo check (:func:`aulib.inference.real_photo_check`) and ``notes``; writes the card as
    ``dest`` .json / .md beside it. Returns the card."""
    import torch

    from aulib.inference import load_model, real_photo_check
    from aulib.train.loop import atomic_torch_save

    run, dest = Path(run), Path(dest)
    ckpt = torch.load(run / "model.pt", map_location="cpu", weights_only=False)
    card = dict(ckpt["card"])
    card["real_photos"] = [{k: v for k, v in r.items() if k != "probabilities"} | {"probabilities": {
        k: round(v, 4) for k, v in r.get("probabilities", {}).items()}} for r in real_photo_check(load_model(run))]
    card["notes"] = list(card.get("notes", [])) + list(notes)
    ckpt["card"] = card
    atomic_torch_save(ckpt, dest)
    _atomic_json(card, dest.with_suffix(".json"))
    from aulib.train.loop import atomic_write_text

    atomic_write_text(card_markdown(card), dest.with_suffix(".md"))
    return card
