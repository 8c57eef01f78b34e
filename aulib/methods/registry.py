"""Methods by name, as timm names models: ``create("rrl", image_size=64)``, ``available()``.

Each entry is a :class:`~aulib.methods.base.Method` subclass and its config dataclass. ``create(name, **kw)``
builds the config from the keyword arguments that are its fields (strictly: a misspelt key raises, listing the
valid ones) and passes the others (e.g. RRL's ``relation`` matrix, AUNet's ``au_weights``) to the constructor.
Modules are imported on first use, so listing the methods costs nothing.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
from typing import Any

from aulib.config import ConfigError, field_names, from_dict

# name -> (module, method class, config class)
_METHODS: dict[str, tuple[str, str, str]] = {
    "supervised": ("aulib.methods.supervised", "Supervised", "SupervisedConfig"),
    "cnn_study": ("aulib.methods.cnn_study", "CNNStudy", "CNNStudyConfig"),
    "tranet": ("aulib.methods.tranet", "TRANetMethod", "TRANetConfig"),
    "aunet": ("aulib.methods.aunet", "AUNetMethod", "AUNetConfig"),
    "rrl": ("aulib.methods.rrl", "RRL", "RRLConfig"),
    "emoco": ("aulib.methods.emoco", "EmoCo", "EmoCoConfig"),
}
_REGISTERED: dict[str, tuple[type, type]] = {}


class UnknownMethodError(KeyError):
    pass


def register(name: str, method_cls: type, config_cls: type) -> None:
    """Add a method (e.g. one of your own) under ``name``."""
    if not dataclasses.is_dataclass(config_cls):
        raise TypeError(f"{config_cls!r} is not a dataclass")
    _REGISTERED[name] = (method_cls, config_cls)


def available() -> list[str]:
    """Names :func:`create` accepts."""
    return sorted({*_METHODS, *_REGISTERED})


def get(name: str) -> tuple[type, type]:
    """(method class, config class) of ``name``."""
    if name in _REGISTERED:
        return _REGISTERED[name]
    if name not in _METHODS:
        raise UnknownMethodError(f"unknown method {name!r}; available: {', '.join(available())}")
    module, method, config = _METHODS[name]
    mod = importlib.import_module(module)
    return getattr(mod, method), getattr(mod, config)


def config_of(name: str, **config: Any):
    """The config dataclass of ``name`` built strictly from ``config``."""
    return from_dict(get(name)[1], config)


def create(name: str, **kwargs: Any):
    """Build method ``name``: its config from the keyword arguments that are config fields, the rest passed to
    the method's constructor. An argument that is neither raises, listing both."""
    method_cls, config_cls = get(name)
    fields = set(field_names(config_cls))
    params = [p for p in inspect.signature(method_cls.__init__).parameters if p not in ("self", "cfg")]
    cfg = {k: v for k, v in kwargs.items() if k in fields}
    extra = {k: v for k, v in kwargs.items() if k not in fields}
    unknown = sorted(set(extra) - set(params))
    if unknown:
        raise ConfigError(f"{name}: unknown argument(s) {unknown}; config fields: {', '.join(sorted(fields))}; "
                          f"constructor arguments: {', '.join(params)}")
    return method_cls(from_dict(config_cls, cfg), **extra)
