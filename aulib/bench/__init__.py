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
from types import ModuleType

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


__all__ = ["list_benchmarks", "load_benchmark"]
