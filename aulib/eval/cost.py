"""Model cost: parameters, FLOPs / multiply-adds and memory at a given input size.

FLOPs come from ``torch.utils.flop_counter.FlopCounterMode``, which counts the matrix-multiply and
convolution family (conv, mm, bmm, addmm, attention) as 2 FLOPs per multiply-add and ignores element-wise
ops, pooling and normalisation. ``macs = flops / 2`` is the multiply-add count. Papers differ: the CNN
study's Table I "FLOPs" match ``flops`` (its baseline: 81.6M reported, 80.8M counted), while AUNet's "FLOPs"
match ``macs`` (its AU-FAN head: 3.02G reported, 3.01 GMACs counted). Both are returned; say which a table shows.

Memory, stated in ``memory_kind``:

* ``"cuda_peak"`` (model on a CUDA device): peak allocated CUDA memory during one no-grad forward, parameters
  included (``torch.cuda.max_memory_allocated``);
* ``"cpu_estimate"`` (otherwise): parameter bytes + the bytes of every leaf module's output in one forward
  (an activation-size estimate, fp32, nothing freed), as tools like torchsummary count it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import pandas as pd
import torch
from torch import nn

MB = 1024**2


def _input(input_size: Sequence[int], batch_size: int, device: torch.device) -> torch.Tensor:
    size = tuple(int(s) for s in input_size)
    if len(size) == 3:
        size = (batch_size, *size)
    if len(size) != 4:
        raise ValueError(f"input_size must be (C, H, W) or (B, C, H, W), got {input_size}")
    return torch.randn(size, device=device)


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(all parameters, trainable parameters); shared tensors counted once."""
    seen, total, trainable = set(), 0, 0
    for p in model.parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        total += p.numel()
        trainable += p.numel() if p.requires_grad else 0
    return total, trainable


@torch.no_grad()
def model_cost(model: nn.Module, input_size: Sequence[int] = (3, 224, 224), device: str | torch.device = "cpu",
               batch_size: int = 1) -> dict:
    """Cost of one forward of ``model`` on a ``(batch_size, *input_size)`` input.

    Returns ``params``, ``trainable_params``, ``flops`` (FlopCounterMode, 2 per multiply-add), ``macs``
    (multiply-adds = flops / 2), ``gflops``, ``gmacs``, ``param_mb`` (fp32), ``memory_mb`` and ``memory_kind``
    (see the module docstring), ``input_size``.
    """
    from torch.utils.flop_counter import FlopCounterMode

    dev = torch.device(device)
    was = model.training
    model.eval().to(dev)
    x = _input(input_size, batch_size, dev)
    params, trainable = count_parameters(model)
    param_bytes = sum(p.numel() * p.element_size() for p in {id(p): p for p in model.parameters()}.values())
    buffer_bytes = sum(b.numel() * b.element_size() for b in model.buffers())
    try:
        counter = FlopCounterMode(display=False)
        with counter:
            model(x)
        flops = int(counter.get_total_flops())

        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
            torch.cuda.reset_peak_memory_stats(dev)
            model(x)
            torch.cuda.synchronize(dev)
            memory = torch.cuda.max_memory_allocated(dev)
            kind = "cuda_peak"
        else:
            acts = [0]

            def hook(_m, _i, out):
                for t in (out if isinstance(out, (tuple, list)) else (out,)):
                    if torch.is_tensor(t):
                        acts[0] += t.numel() * 4

            handles = [m.register_forward_hook(hook) for m in model.modules() if not list(m.children())]
            try:
                model(x)
            finally:
                for h in handles:
                    h.remove()
            memory = param_bytes + buffer_bytes + acts[0]
            kind = "cpu_estimate"
    finally:
        model.train(was)
    return {
        "params": params, "trainable_params": trainable, "flops": flops, "macs": flops // 2,
        "gflops": flops / 1e9, "gmacs": flops / 2e9, "param_mb": param_bytes / MB, "memory_mb": memory / MB,
        "memory_kind": kind, "input_size": tuple(x.shape),
    }


def cost_table(names: Iterable[str], input_size: Sequence[int] = (3, 224, 224), num_classes: int = 12,
               device: str | torch.device = "cpu", **backbone_kwargs) -> pd.DataFrame:
    """:func:`model_cost` of registered backbones (``aulib.models.create_backbone``), one row per name.
    ``in_chans`` is taken from ``input_size``."""
    from aulib.models import create_backbone

    rows = []
    size = tuple(input_size)
    chans = size[-3]
    for name in names:
        m = create_backbone(name, in_chans=chans, num_classes=num_classes, **backbone_kwargs)
        rows.append({"model": name, **model_cost(m, size, device)})
        del m
    return pd.DataFrame(rows)
