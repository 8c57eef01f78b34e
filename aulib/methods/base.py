"""The small base class every method (RRL, EmoCo, AUNet, TRA-Net, the CNN study) builds on.

A method is an ``nn.Module`` that owns its model(s) and its loss and knows how to take one training step,
as in solo-learn or lightly. The trainer (:func:`aulib.train.fit`) only calls the three hooks below, so a
method reads top to bottom like a paper's algorithm box.

Hooks the trainer calls:

``training_step(batch, step) -> {"loss": total, "<term>": value, ...}``
    ``batch`` is whatever the loader yields, already moved to the device (dicts / lists / tensors are moved
    recursively). The trainer backpropagates ``"loss"``; every other entry is logged per epoch (averaged).
``on_after_optimizer_step(step, total_steps)``
    after every optimiser step (``step`` is the 0-based index of the step just taken, ``total_steps`` =
    epochs * steps_per_epoch): EMA / momentum-encoder updates, weight-decay schedules, queue pointers.
    During :func:`aulib.train.fit` the optimiser is reachable as ``self.optimizer`` (e.g. to set
    ``self.optimizer.param_groups[i]["weight_decay"]``); :func:`cosine_ramp` gives the usual cosine schedules.
``parameter_groups()``
    the parameters the optimiser trains: a list of tensors or of dicts ``{"params": [...], "lr": ..,
    "weight_decay": .., ...}``; keys missing in a group take the trainer's defaults. Default: every
    parameter with ``requires_grad``.

Optional attributes read by the trainer:

``sync_batchnorm = True``
    under DDP, convert BatchNorm layers to ``SyncBatchNorm`` (EmoCo).
``ddp_find_unused_parameters = True``
    passed to ``DistributedDataParallel`` when some parameters get no gradient in a step.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn


class Method(nn.Module):
    """Base class of a trainable method; subclasses implement :meth:`training_step`."""

    #: ask the trainer to convert BatchNorm to SyncBatchNorm under DDP
    sync_batchnorm: bool = False
    #: forwarded to DistributedDataParallel(find_unused_parameters=...)
    ddp_find_unused_parameters: bool = False
    #: set by the trainer for the duration of fit() (None otherwise); not part of the state dict
    optimizer: torch.optim.Optimizer | None = None

    def training_step(self, batch: dict, step: int) -> dict[str, torch.Tensor]:
        """One training step; returns ``{"loss": total, <term name>: value, ...}``."""
        raise NotImplementedError(f"{type(self).__name__} must implement training_step(batch, step)")

    def on_after_optimizer_step(self, step: int, total_steps: int) -> None:
        """Called after every optimiser step (``step`` counts from 0); default does nothing."""

    def parameter_groups(self) -> list[dict] | Iterable:
        """Parameters for the optimiser: tensors or param-group dicts. Default: all trainable parameters."""
        return [p for p in self.parameters() if p.requires_grad]

    def forward(self, *args, **kwargs):  # pragma: no cover - methods usually define their own
        raise NotImplementedError(f"{type(self).__name__} has no forward(); call training_step or its model")


def cosine_ramp(step: int, total_steps: int, start: float, end: float) -> float:
    """Cosine interpolation from ``start`` (step 0) to ``end`` (step ``total_steps``), as BYOL's target
    momentum and DINO's weight-decay schedules: ``end - (end - start) * (1 + cos(pi * t)) / 2``."""
    t = min(max(step / max(total_steps, 1), 0.0), 1.0)
    return end - (end - start) * (1 + math.cos(math.pi * t)) / 2
