"""DataLoaders that keep a GPU busy: workers sized from the cores this process may use, pinned memory on
CUDA, persistent workers and prefetching.

    loader = make_loader(dataset, batch_size=256, num_workers="auto", shuffle=True, drop_last=True)

``num_workers``: an int, or ``"auto"`` (every core of ``os.sched_getaffinity`` but one, shared by the ranks of
this host under torchrun). With 0 workers the loader is the plain main-process one (the cpu / smoke profiles).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset


def available_cores() -> int:
    """Cores this process may run on (``sched_getaffinity``; ``os.cpu_count`` where that does not exist)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def auto_workers(reserve: int = 1, ranks_per_host: int | None = None) -> int:
    """Loader workers per process: the available cores minus ``reserve`` (the training process), split over
    the processes of this host (``LOCAL_WORLD_SIZE`` under torchrun)."""
    ranks = ranks_per_host or int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    return max(0, (available_cores() - reserve * ranks) // max(1, ranks))


def make_loader(dataset: Dataset, batch_size: int, num_workers: int | str = 0, shuffle: bool = False,
                drop_last: bool = False, prefetch_factor: int = 4, pin_memory: bool | None = None,
                generator: torch.Generator | None = None, **kwargs: Any) -> DataLoader:
    """A DataLoader with workers from :func:`auto_workers` (``"auto"``), ``pin_memory`` when CUDA is available,
    ``persistent_workers`` and ``prefetch_factor`` batches per worker; an IterableDataset is never shuffled
    by the loader (it orders itself)."""
    workers = auto_workers() if num_workers == "auto" else int(num_workers)
    pin = torch.cuda.is_available() if pin_memory is None else pin_memory
    extra: dict[str, Any] = {}
    if workers > 0:
        extra.update(persistent_workers=True, prefetch_factor=prefetch_factor)
    if isinstance(dataset, IterableDataset):
        shuffle, generator = False, None
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last, num_workers=workers,
                      pin_memory=pin, generator=generator, **extra, **kwargs)


def to_device(batch: Any, device: torch.device) -> Any:
    """Move tensors inside dicts / lists / tuples to ``device`` (non-tensors unchanged)."""
    if torch.is_tensor(batch):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, Mapping):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):  # namedtuple
        return type(batch)(*(to_device(v, device) for v in batch))
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(v, device) for v in batch)
    return batch
