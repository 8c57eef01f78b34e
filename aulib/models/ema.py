"""Exponential moving averages of weights (BYOL's target network, MoCo's key encoder) and their schedule."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn


@torch.no_grad()
def ema_update(target: nn.Module | Iterable[torch.Tensor], online: nn.Module | Iterable[torch.Tensor], m: float,
               copy_buffers: bool = True) -> None:
    """xi <- m * xi + (1 - m) * theta for every parameter (BYOL Eq.1 in RRL, MoCo Eq.3 in EmoCo).

    ``target``/``online`` are modules (parameters paired in order; buffers such as BN statistics are copied when
    ``copy_buffers``) or equal-length lists of tensors. One fused foreach kernel per op."""
    if isinstance(target, nn.Module) != isinstance(online, nn.Module):
        raise TypeError("give two modules or two lists of tensors")
    if isinstance(target, nn.Module):
        tp, op = list(target.parameters()), list(online.parameters())
    else:
        tp, op = list(target), list(online)
    if len(tp) != len(op):
        raise ValueError(f"target has {len(tp)} tensors, online {len(op)}")
    if tp:
        torch._foreach_mul_(tp, m)
        torch._foreach_add_(tp, [p.detach() for p in op], alpha=1.0 - m)
    if copy_buffers and isinstance(target, nn.Module):
        for bt, bo in zip(target.buffers(), online.buffers()):
            bt.copy_(bo)


def cosine_ramp(step: int, total_steps: int, start: float, end: float) -> float:
    """Half cosine from ``start`` (step 0) to ``end`` (step ``total_steps``), as BYOL's target momentum and DINO's
    weight-decay schedules: ``end - (end - start) * (1 + cos(pi * t)) / 2`` with t = step / total_steps."""
    t = min(max(step / max(total_steps, 1), 0.0), 1.0)
    return end - (end - start) * (1 + math.cos(math.pi * t)) / 2
