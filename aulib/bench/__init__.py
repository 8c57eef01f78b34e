"""Benchmarks: ``python -m aulib.bench [names...] [--device cpu|cuda] [--quick] [--out DIR] [--key value ...]``.

Each module ``aulib/bench/<name>.py`` exposes ``run(args) -> pandas.DataFrame``; ``args`` is an
``argparse.Namespace`` with ``device`` ("cpu" or "cuda", resolved from "auto"), ``quick`` (bool: CPU-sized
run) and every extra ``--key value`` option given on the command line (``--batch-size 64`` becomes
``args.batch_size == 64``; read them with ``getattr(args, "batch_size", None)`` and a default). With no names
every benchmark runs. Speed lives here, never in tests.
"""

from __future__ import annotations

import importlib
import pkgutil
import time
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any

import torch

_NOT_BENCHES = {"__main__", "__init__"}


def list_benchmarks() -> list[str]:
    """Names of the modules in ``aulib.bench`` (each should expose ``run(args)``)."""
    import aulib.bench as pkg

    return sorted(m.name for m in pkgutil.iter_modules(pkg.__path__)
                  if m.name not in _NOT_BENCHES and not m.name.startswith("_"))


def load_benchmark(name: str) -> ModuleType:
    names = list_benchmarks()
    if name not in names:
        raise ValueError(f"unknown benchmark {name!r}; available: {', '.join(names)}")
    mod = importlib.import_module(f"aulib.bench.{name}")
    if not callable(getattr(mod, "run", None)):
        raise TypeError(f"aulib/bench/{name}.py has no run(args) function")
    return mod


def option(args: Any, name: str, defaults: Mapping[str, Any], quick: Mapping[str, Any] | None = None) -> Any:
    """``--name`` from ``args`` (a Namespace, a dict or None), else its ``quick`` default under ``--quick``,
    else its default."""
    get = args.get if isinstance(args, dict) else (lambda k: getattr(args, k, None))
    value = get(name)
    if value is not None:
        return value
    if quick and get("quick") and name in quick:
        return quick[name]
    return defaults.get(name)


def seconds_per_call(fn: Callable[[], object], steps: int, warmup: int, device: torch.device) -> float:
    """Mean wall seconds per call of ``fn`` over ``steps`` calls after ``warmup`` calls. CUDA work is
    synchronised at both ends, so queued kernels are counted, but not between calls (no per-call stall)."""
    for _ in range(warmup):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - start) / steps


def use_fast_cuda_kernels(device: torch.device) -> None:
    """On CUDA: let cuDNN pick its fastest kernels for the fixed shapes and allow TF32 matmuls and convs."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


__all__ = ["list_benchmarks", "load_benchmark", "option", "seconds_per_call", "use_fast_cuda_kernels"]
