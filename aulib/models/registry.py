"""Backbones by name: timm's architectures plus aulib's own models, all built with the same keywords.

    create_backbone(name, in_chans=3, num_classes=0, weights=None, **kwargs) -> nn.Module

``num_classes=0`` (the default) returns a feature extractor: ``model(x)`` gives pooled features
``(B, model.num_features)``; ``num_classes=K`` adds a linear head giving ``(B, K)`` logits. timm models keep
their ``forward_features(x)`` (feature maps; NCHW for CNNs, NHWC ``(B, H, W, C)`` for Swin).

Nothing is ever downloaded: timm models are built with ``pretrained=False`` and ``weights`` may only be a
local file (a ``state_dict``, or a checkpoint holding one under ``"state_dict"``/``"model"``). A missing file
or a state dict that does not fit raises :class:`WeightsError` listing the missing, unexpected and
wrongly-shaped keys. Keys of the classification head are allowed to differ (a pretrained 1000-class head is
dropped when the model has another number of classes).

aulib's own models register themselves with the decorator::

    @register_backbone("baseline_cnn")
    def baseline_cnn(in_chans=1, num_classes=0, **kwargs) -> nn.Module: ...

The builder must accept ``in_chans`` and ``num_classes`` (0 = features only), and the module should set
``num_features`` (the width of its pooled features) and optionally ``head_prefix`` (the state-dict prefix of
its classification head, e.g. ``"fc"``) so that pretrained weights can skip it.
"""

from __future__ import annotations

import importlib
import inspect
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn


class WeightsError(ValueError):
    """A weights file is missing or its state dict does not fit the model (message lists the keys)."""


class UnknownBackboneError(KeyError):
    """A backbone name that is not registered (message lists the registered names)."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0]) if self.args else ""


@dataclass
class _Entry:
    name: str
    builder: Callable[..., nn.Module]
    source: str  # "timm" or "aulib"
    defaults: dict[str, Any] = field(default_factory=dict)
    description: str = ""


_REGISTRY: dict[str, _Entry] = {}

# aulib's own backbones live in the other modules of ``aulib.models`` and register themselves with
# ``@register_backbone`` when imported. They are imported on the first lookup; a module that fails to import
# is remembered and named in the "unknown backbone" error, so one broken file does not hide the others.
_imported_own = False
_import_errors: dict[str, str] = {}


def register_backbone(name: str | None = None, *, aliases: tuple[str, ...] = (), description: str = ""):
    """Decorator registering ``builder(in_chans=..., num_classes=..., **kw) -> nn.Module`` under ``name``."""

    def deco(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        key = name or builder.__name__
        for k in (key, *aliases):
            old = _REGISTRY.get(k)
            if old is not None and (old.source != "aulib" or old.builder.__qualname__ != builder.__qualname__):
                warnings.warn(f"register_backbone({k!r}) replaces the existing {old.source} entry", stacklevel=2)
            _REGISTRY[k] = _Entry(k, builder, "aulib", {}, description or (builder.__doc__ or "").strip())
        return builder

    return deco


def _timm_builder(timm_name: str) -> Callable[..., nn.Module]:
    def build(**kwargs: Any) -> nn.Module:
        import timm

        kwargs.pop("pretrained", None)
        return timm.create_model(timm_name, pretrained=False, **kwargs)

    build.__name__ = f"timm_{timm_name}"
    return build


def _register_timm(name: str, timm_name: str | None = None, description: str = "", **defaults: Any) -> None:
    tn = timm_name or name
    _REGISTRY[name] = _Entry(name, _timm_builder(tn), "timm", defaults, description or f"timm {tn}")


# The backbones the five papers use (timm 1.0 names). ``xception`` is timm's ``legacy_xception``: Chollet's
# original Xception (the Keras one the CNN study used), not the aligned ``xception41/65`` variants.
for _n in ("resnet18", "resnet34", "resnet50", "vgg16", "vgg16_bn", "vgg11", "densenet121", "mobilenetv2_100",
           "inception_v3", "legacy_xception", "xception41", "xception65", "seresnet50", "legacy_seresnet50",
           "swin_tiny_patch4_window7_224", "efficientnet_b0"):
    _register_timm(_n)
_register_timm("xception", "legacy_xception", "Chollet's Xception (timm legacy_xception)")
_register_timm("mobilenetv2", "mobilenetv2_100")
_register_timm("swin_t", "swin_tiny_patch4_window7_224", "Swin-T (timm swin_tiny_patch4_window7_224)")

# Tiny variants for the smoke profile and tests (same code paths, 0.1-0.7M parameters).
_register_timm("resnet_tiny", "resnet18", "ResNet with one BasicBlock per stage, stage widths 8-64 (64-wide 7x7 stem)",
               layers=(1, 1, 1, 1), channels=(8, 16, 32, 64))
_register_timm("seresnet_tiny", "seresnet50", "SE-ResNet (bottleneck) with one block per stage, widths 8-64",
               layers=(1, 1, 1, 1), channels=(8, 16, 32, 64))
_register_timm("swin_tiny_test", "swin_tiny_patch4_window7_224", "Swin with embed 24, 1 block per stage, 64x64",
               img_size=64, window_size=4, embed_dim=24, depths=(1, 1, 1, 1), num_heads=(1, 1, 2, 2))


def _import_own_models() -> None:
    global _imported_own
    if _imported_own:
        return
    _imported_own = True
    import pkgutil

    import aulib.models as pkg

    for info in pkgutil.iter_modules(pkg.__path__):
        if info.name in ("registry", "__init__") or info.name.startswith("_"):
            continue
        mod = f"{pkg.__name__}.{info.name}"
        try:
            importlib.import_module(mod)
        except Exception as e:  # noqa: BLE001 - reported when a name is not found
            _import_errors[mod] = f"{type(e).__name__}: {e}"


def list_backbones(source: str | None = None) -> list[str]:
    """Sorted registered names; ``source="timm"`` or ``"aulib"`` filters by origin."""
    _import_own_models()
    return sorted(n for n, e in _REGISTRY.items() if source is None or e.source == source)


def backbone_table():
    """A pandas frame of the registry: name, source, defaults, description."""
    import pandas as pd

    _import_own_models()
    return pd.DataFrame(
        [{"name": e.name, "source": e.source, "defaults": e.defaults, "description": e.description}
         for e in sorted(_REGISTRY.values(), key=lambda e: e.name)]
    )


def create_backbone(
    name: str,
    in_chans: int = 3,
    num_classes: int = 0,
    weights: str | os.PathLike | None = None,
    *,
    img_size: int | None = None,
    num_features_only: bool | None = None,
    weights_prefix: str | None = None,
    strict: bool = True,
    **kwargs: Any,
) -> nn.Module:
    """Build backbone ``name`` (see :func:`list_backbones`).

    in_chans: input channels (1 for grey faces). num_classes: 0 -> pooled features ``(B, num_features)``;
    K -> logits ``(B, K)``. ``num_features_only=True`` is the same as ``num_classes=0``. ``img_size``: the input
    side for models whose layers depend on it (Swin/ViT ``img_size``, aulib builders taking ``image_size`` or
    ``img_size``); size-agnostic CNNs ignore it. Extra keyword
    arguments go to the builder (e.g. ``img_size=64`` for Swin, ``drop_path_rate``), overriding the entry's
    defaults. ``weights``: local state-dict file, loaded with :func:`load_weights` (``weights_prefix`` keeps
    only keys under that prefix, e.g. ``"encoder."`` of a method checkpoint, and strips it).
    """
    _import_own_models()
    if name not in _REGISTRY:
        broken = "".join(f"\n  (module {m} failed to import: {err})" for m, err in _import_errors.items())
        raise UnknownBackboneError(
            f"unknown backbone {name!r}; registered backbones: {', '.join(sorted(_REGISTRY))}{broken}"
        )
    if num_features_only:
        num_classes = 0
    entry = _REGISTRY[name]
    kw = {**entry.defaults, **kwargs, "in_chans": in_chans, "num_classes": num_classes}
    if img_size is not None:
        kw.update(_size_kwarg(entry, int(img_size)))
    try:
        model = entry.builder(**kw)
    except TypeError as e:
        if entry.source == "timm" and img_size is not None and "img_size" in str(e):
            kw.pop("img_size")  # a size-agnostic timm CNN
            model = entry.builder(**kw)
        else:
            raise
    if not hasattr(model, "num_features"):
        raise TypeError(f"backbone {name!r} ({entry.builder.__name__}) does not set .num_features")
    model.backbone_name = name
    if weights is not None:
        load_weights(model, weights, prefix=weights_prefix, strict=strict)
    return model


def _size_kwarg(entry: _Entry, size: int) -> dict[str, int]:
    if entry.source == "timm":
        return {"img_size": size}
    params = inspect.signature(entry.builder).parameters
    for key in ("image_size", "img_size"):
        if key in params:
            return {key: size}
    return {}


def _head_prefixes(model: nn.Module) -> tuple[str, ...]:
    own = getattr(model, "head_prefix", None)
    if own:
        return (own,) if isinstance(own, str) else tuple(own)
    cfg = getattr(model, "pretrained_cfg", None) or {}
    cls = cfg.get("classifier")
    if not cls:
        return ()
    return (cls,) if isinstance(cls, str) else tuple(cls)


def _fmt(keys: list[str], limit: int = 15) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")


def read_state_dict(path: str | os.PathLike, prefix: str | None = None) -> dict[str, torch.Tensor]:
    """Tensors of a local weights file: unwraps ``{"state_dict": ..}`` / ``{"model": ..}``, strips DDP's
    ``module.``; with ``prefix`` keeps only keys starting with it (prefix removed)."""
    p = Path(path)
    if not p.is_file():
        raise WeightsError(f"weights file {str(p)!r} does not exist (aulib never downloads weights; give a local path)")
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - re-raised with the file name
        raise WeightsError(f"weights file {str(p)!r} could not be read as a torch state dict: {e}") from e
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not all(torch.is_tensor(v) for v in obj.values()):
        raise WeightsError(f"weights file {str(p)!r} does not hold a state dict of tensors")
    sd = {(k[len("module."):] if k.startswith("module.") else k): v for k, v in obj.items()}
    if prefix:
        sd = {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}
        if not sd:
            raise WeightsError(f"weights file {str(p)!r} has no keys starting with {prefix!r}")
    return sd


def load_weights(model: nn.Module, path: str | os.PathLike, prefix: str | None = None, strict: bool = True) -> dict:
    """Load a local state dict into ``model``; returns ``{"missing", "unexpected", "mismatched", "skipped_head"}``.

    Head keys (``model.head_prefix`` or timm's classifier) may be missing, unexpected or differently shaped:
    they are skipped. Any other difference raises :class:`WeightsError` naming the keys (unless
    ``strict=False``, which loads what fits).
    """
    sd = read_state_dict(path, prefix)
    own = model.state_dict()
    heads = _head_prefixes(model)

    def is_head(k: str) -> bool:
        return any(k == h or k.startswith(h + ".") for h in heads)

    missing = sorted(k for k in own if k not in sd and not is_head(k))
    unexpected = sorted(k for k in sd if k not in own and not is_head(k))
    mismatched = sorted(
        f"{k}: file {tuple(sd[k].shape)} vs model {tuple(own[k].shape)}"
        for k in sd if k in own and sd[k].shape != own[k].shape and not is_head(k)
    )
    skipped = sorted(k for k in sd if is_head(k) and (k not in own or sd[k].shape != own[k].shape))
    if strict and (missing or unexpected or mismatched):
        parts = [f"weights {str(path)!r} do not fit {type(model).__name__}"
                 f"{' (' + model.backbone_name + ')' if hasattr(model, 'backbone_name') else ''}:"]
        if missing:
            parts.append(f"missing keys ({len(missing)}): {_fmt(missing)}")
        if unexpected:
            parts.append(f"unexpected keys ({len(unexpected)}): {_fmt(unexpected)}")
        if mismatched:
            parts.append(f"shape mismatch ({len(mismatched)}): {_fmt(mismatched)}")
        raise WeightsError("\n  ".join(parts))
    fitting = {k: v for k, v in sd.items() if k in own and v.shape == own[k].shape}
    model.load_state_dict(fitting, strict=False)
    return {"missing": missing, "unexpected": unexpected, "mismatched": mismatched, "skipped_head": skipped}
