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

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from aulib.models.ema import cosine_ramp  # noqa: F401  (re-exported: the one cosine schedule)


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


def unpack_batch(batch: Any, input_key: str = "image") -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """(images, labels or None, valid or None) from a dict batch or an ``(x, y[, valid])`` tuple."""
    if isinstance(batch, dict):
        if input_key not in batch:
            raise KeyError(f"batch has no {input_key!r}; keys: {sorted(batch)}")
        return batch[input_key], batch.get("labels"), batch.get("valid")
    if isinstance(batch, (list, tuple)):
        x = batch[0]
        y = batch[1] if len(batch) > 1 else None
        v = batch[2] if len(batch) > 2 else None
        return x, y, v
    return batch, None, None


@torch.no_grad()
def all_gather_concat(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate ``tensor`` (B, ...) from every process along dim 0 -> (world*B, ...), rank order.

    No gradient flows through the gathered copies (as in MoCo's key gathering). Single process (or no
    initialised ``torch.distributed`` group): returns ``tensor`` unchanged. All ranks must pass the same shape.
    Lives here, below ``aulib.train``, so a method (EmoCo's key gather) can use it; ``aulib.train.distributed``
    re-exports it.
    """
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return tensor
    parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, tensor.contiguous())
    return torch.cat(parts, dim=0)
