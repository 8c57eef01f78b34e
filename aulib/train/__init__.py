"""The one training loop (AMP, DDP, progress, atomic checkpoints, resume), seeding and samplers."""

from aulib.train.loop import (
    NonFiniteLossError,
    TrainConfig,
    atomic_torch_save,
    build_optimizer,
    fit,
    git_revision,
    library_versions,
    load_checkpoint,
    lr_factor,
    resolve_device,
    to_device,
    write_run_info,
)
from aulib.train.seeding import seed_everything

__all__ = [
    "NonFiniteLossError",
    "TrainConfig",
    "atomic_torch_save",
    "build_optimizer",
    "fit",
    "git_revision",
    "library_versions",
    "load_checkpoint",
    "lr_factor",
    "resolve_device",
    "seed_everything",
    "to_device",
    "write_run_info",
]
