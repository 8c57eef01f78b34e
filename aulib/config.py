"""One strict ``from_dict`` for every config dataclass (methods, trainer, experiments).

    cfg = from_dict(RRLConfig, {"image_size": 64, "batch_size": 32})   # unknown keys raise, listing valid ones
    cfg = from_dict(RRLConfig, profile_section, batch_size=16)          # keyword overrides win

Values are taken as given (a profile is plain Python data); a field whose default is a tuple receives a list
from JSON/YAML as a tuple, so configs compare equal however they were written.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, TypeVar

T = TypeVar("T")


class ConfigError(TypeError):
    """A config dict names a field the dataclass does not have."""


def field_names(cls) -> list[str]:
    """The init fields of dataclass ``cls``, in declaration order."""
    return [f.name for f in dataclasses.fields(cls) if f.init]


def from_dict(cls: type[T], d: Mapping[str, Any] | None = None, strict: bool = True, **overrides: Any) -> T:
    """``cls(**d, **overrides)``; an unknown key raises :class:`ConfigError` naming the valid fields
    (``strict=False`` drops unknown keys instead)."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    values = {**(d or {}), **overrides}
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(values) - set(fields))
    if unknown and strict:
        raise ConfigError(f"unknown {cls.__name__} field(s) {unknown}; valid fields: {', '.join(sorted(fields))}")
    kwargs = {}
    for k, v in values.items():
        if k not in fields:
            continue
        default = fields[k].default
        if isinstance(v, list) and isinstance(default, tuple):
            v = tuple(v)
        kwargs[k] = v
    return cls(**kwargs)
