"""Backbones by name (timm + aulib's own models) and shared layers."""

from aulib.models.registry import (
    UnknownBackboneError,
    WeightsError,
    backbone_table,
    create_backbone,
    list_backbones,
    load_weights,
    read_state_dict,
    register_backbone,
)

__all__ = [
    "UnknownBackboneError",
    "WeightsError",
    "backbone_table",
    "create_backbone",
    "list_backbones",
    "load_weights",
    "read_state_dict",
    "register_backbone",
]
