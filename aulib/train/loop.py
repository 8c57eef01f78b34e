"""The one training loop every method plugs into.

    history = fit(method, train_loader, TrainConfig(epochs=10, optimizer="adamw", lr=1e-3), out_dir="runs/x")

``method`` is an :class:`aulib.methods.base.Method`: the loop moves each batch to the device, calls
``method.training_step(batch, step)``, backpropagates ``out["loss"]``, clips, steps the optimiser and the
per-step schedule, then calls ``method.on_after_optimizer_step(step, total_steps)``.

What the loop gives every method:

* optimiser (sgd / adam / adamw / adagrad) and schedule (cosine with linear warm-up, step, none) from config;
  the method's ``parameter_groups()`` may carry their own ``lr`` / ``weight_decay``;
* mixed precision (bf16 or fp16 autocast, a GradScaler for fp16) on CUDA only; gradient clipping;
* a tqdm bar with the running loss; one history row per epoch (epoch, step, each loss term's mean, lr, time,
  ``data_time`` (seconds waiting for and moving batches), ``images`` (samples seen), and whatever
  ``evaluate(method, epoch)`` returns), written to ``out_dir/history.csv``;
* early stopping on a monitored metric (``cfg.monitor``, ``cfg.patience``); the best epoch's weights are kept in
  memory (a CPU copy of the state dict, and in ``out_dir/best.pt`` when there is a folder) and loaded back at
  the end whenever validation selected a best epoch (``cfg.restore_best``), with or without ``out_dir``;
* atomic checkpoints (``out_dir/last.pt``: model, optimiser, scheduler, scaler, epoch, step, RNG states,
  history, early-stopping state) after every epoch; a run started again with the same arguments and
  ``resume=True`` continues from it (a finished run returns its history without training);
* ``out_dir/run.json``: the config, the method's class, git revision and library versions;
* a non-finite loss term stops the run with :class:`NonFiniteLossError` naming the step and the term;
* under ``torchrun`` (see :mod:`aulib.train.distributed`) DistributedDataParallel, SyncBatchNorm when the
  method sets ``sync_batchnorm = True``, ``set_epoch`` on the sampler, and only rank 0 writes files.

Exact resume: RNG states are restored and samplers with ``set_epoch(epoch)`` draw from (seed, epoch), so a run
interrupted after an epoch and resumed gives the same weights as an uninterrupted one. The cosine schedule
depends on ``epochs``; resuming with a larger ``epochs`` is allowed but changes the cosine curve.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import platform
import subprocess
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable, Mapping
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn

from aulib.data.loader import to_device  # noqa: F401  (re-exported: aulib.train.to_device)
from aulib.methods.base import Method
from aulib.train import distributed as dist_utils
from aulib.train.seeding import rng_state, seed_everything, set_rng_state

CHECKPOINT_NAME = "last.pt"
BEST_NAME = "best.pt"
HISTORY_NAME = "history.csv"
RUN_INFO_NAME = "run.json"

# Config fields that may change between the interrupted run and the resumed one.
_RESUME_FREE_FIELDS = {"epochs", "progress", "device", "patience", "check_finite_every"}


class NonFiniteLossError(FloatingPointError):
    """A loss term became NaN or infinite; the message names the epoch, step and term."""


@dataclass
class TrainConfig:
    """Everything the loop needs; a notebook's parameters / a profile section map onto it (``from_dict``)."""

    epochs: int = 1
    optimizer: str = "adamw"  # sgd | adam | adamw | adagrad
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.9  # sgd only
    nesterov: bool = False  # sgd only
    betas: tuple[float, float] = (0.9, 0.999)  # adam / adamw
    optimizer_kwargs: dict = field(default_factory=dict)  # anything else the torch optimiser takes
    schedule: str = "none"  # cosine | step | none (applied per optimiser step)
    step_size: int = 1  # step schedule: epochs between decays
    gamma: float = 0.1  # step schedule: decay factor
    warmup_epochs: float = 0.0  # linear warm-up from 0 (any schedule)
    min_lr_ratio: float = 0.0  # cosine floor as a fraction of the initial lr
    grad_clip: float | None = None  # max global grad norm
    check_finite_every: int | None = None  # steps between NaN/inf checks; None: 1 on CPU, 20 on CUDA
    amp: bool = True  # autocast on CUDA only; ignored on CPU
    amp_dtype: str = "bf16"  # bf16 | fp16 (fp16 uses a GradScaler)
    steps_per_epoch: int | None = None  # None -> len(loader); required for infinite samplers
    seed: int = 0
    deterministic: bool = False
    device: str = "auto"  # auto | cpu | cuda | cuda:1 ...
    progress: bool = True
    monitor: str | None = None  # a key returned by evaluate(); enables best.pt and early stopping
    monitor_mode: str = "max"  # max | min
    patience: int | None = None  # epochs without improvement before stopping (needs monitor)
    min_delta: float = 0.0
    restore_best: bool = True  # load the best epoch's weights at the end when monitor is set (out_dir or not)
    keep_epoch_checkpoints: bool = False  # also keep epoch_<k>.pt

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], strict: bool = True) -> TrainConfig:
        """Build from a dict (e.g. a profile section); unknown keys raise (listing the valid ones) when strict."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown and strict:
            raise TypeError(f"unknown TrainConfig field(s) {unknown}; valid fields: {', '.join(sorted(names))}")
        return cls(**{k: v for k, v in d.items() if k in names})

    def __post_init__(self) -> None:
        if self.optimizer not in ("sgd", "adam", "adamw", "adagrad"):
            raise ValueError(f"TrainConfig.optimizer={self.optimizer!r}; choose sgd, adam, adamw or adagrad")
        if self.schedule not in ("cosine", "step", "none"):
            raise ValueError(f"TrainConfig.schedule={self.schedule!r}; choose cosine, step or none")
        if self.amp_dtype not in ("bf16", "fp16"):
            raise ValueError(f"TrainConfig.amp_dtype={self.amp_dtype!r}; choose bf16 or fp16")
        if self.monitor_mode not in ("max", "min"):
            raise ValueError(f"TrainConfig.monitor_mode={self.monitor_mode!r}; choose max or min")
        if self.patience is not None and self.monitor is None:
            raise ValueError("TrainConfig.patience needs monitor= (a metric returned by evaluate)")
        if self.epochs < 0:
            raise ValueError(f"TrainConfig.epochs={self.epochs} must be >= 0")
        self.betas = tuple(self.betas)


# ----------------------------------------------------------------------------------------------- helpers


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    if str(device) == "auto":
        if dist_utils.is_distributed() and torch.cuda.is_available():
            return torch.device("cuda", dist_utils.local_rank())
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def build_optimizer(params: Iterable, cfg: TrainConfig) -> torch.optim.Optimizer:
    """The optimiser named in ``cfg`` over ``params`` (tensors or group dicts; groups keep their own keys)."""
    params = list(params)
    if not params:
        raise ValueError("the method has no trainable parameters (parameter_groups() is empty)")
    groups = []
    for g in params:
        if isinstance(g, dict):
            g = dict(g)
            g["params"] = [p for p in g["params"]]
            groups.append(g)
        else:
            groups.append({"params": [g]}) if torch.is_tensor(g) else groups.append({"params": list(g)})
    # merge the bare tensors into one group so the optimiser stays small
    bare = [p for g in groups if set(g) == {"params"} for p in g["params"]]
    groups = [g for g in groups if set(g) != {"params"}] + ([{"params": bare}] if bare else [])
    kw = dict(lr=cfg.lr, weight_decay=cfg.weight_decay, **cfg.optimizer_kwargs)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, momentum=cfg.momentum, nesterov=cfg.nesterov, **kw)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(groups, betas=cfg.betas, **kw)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, betas=cfg.betas, **kw)
    return torch.optim.Adagrad(groups, **kw)


def lr_factor(step: int, cfg: TrainConfig, steps_per_epoch: int) -> float:
    """Multiplier of every group's initial lr before optimiser step ``step`` (0-based)."""
    total = max(1, cfg.epochs * steps_per_epoch)
    warm = int(round(cfg.warmup_epochs * steps_per_epoch))
    if warm > 0 and step < warm:
        return (step + 1) / warm
    if cfg.schedule == "cosine":
        t = (step - warm) / max(1, total - warm)
        t = min(max(t, 0.0), 1.0)
        return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t))
    if cfg.schedule == "step":
        return cfg.gamma ** ((step // steps_per_epoch) // max(1, cfg.step_size))
    return 1.0


def build_scheduler(opt: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int):
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, cfg, steps_per_epoch))


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` to a temporary sibling then ``os.replace``: readers never see a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(text: str, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def git_revision(cwd: str | os.PathLike | None = None) -> str | None:
    """``git rev-parse HEAD`` of the aulib checkout (None outside git or before the first commit)."""
    cwd = cwd or Path(__file__).resolve().parents[2]
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    rev = out.stdout.strip()
    if out.returncode != 0 or not rev:
        return None
    try:
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        dirty = ""
    return rev + ("-dirty" if dirty else "")


def library_versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for name in ("aulib", "torch", "torchvision", "timm", "numpy", "pandas", "scipy", "scikit-learn", "pot"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            if name == "aulib":
                import aulib

                out[name] = getattr(aulib, "__version__", "unknown")
    if torch.cuda.is_available():
        out["cuda"] = torch.version.cuda or ""
        out["gpu"] = torch.cuda.get_device_name(0)
    return out


def write_run_info(out_dir: str | os.PathLike, config: Any, extra: Mapping[str, Any] | None = None) -> Path:
    """``out_dir/run.json``: config (dataclass or dict), git revision, library versions, host, time."""
    cfg = asdict(config) if dataclasses.is_dataclass(config) else dict(config)
    info = {
        "config": cfg,
        "git_revision": git_revision(),
        "versions": library_versions(),
        "host": platform.node(),
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **(dict(extra) if extra else {}),
    }
    return atomic_write_text(json.dumps(info, indent=2, default=str), Path(out_dir) / RUN_INFO_NAME)


class _Step(nn.Module):
    """Routes ``forward`` to ``training_step`` so DistributedDataParallel sees the step as its forward."""

    def __init__(self, method: Method):
        super().__init__()
        self.method = method

    def forward(self, batch, step):
        return self.method.training_step(batch, step)


def _set_epoch(loader: Any, epoch: int) -> None:
    seen = set()
    for obj in (getattr(loader, "sampler", None), getattr(loader, "batch_sampler", None),
                getattr(getattr(loader, "batch_sampler", None), "sampler", None),
                getattr(loader, "dataset", None)):  # an IterableDataset that orders itself (data.stream)
        if obj is not None and id(obj) not in seen and hasattr(obj, "set_epoch"):
            seen.add(id(obj))
            obj.set_epoch(epoch)


def _batch_size(batch: Any) -> int:
    """Samples in a batch: the length of its first tensor (a dict's ``image`` when there is one)."""
    if isinstance(batch, Mapping):
        first = batch.get("image", next(iter(batch.values()), None))
    elif isinstance(batch, (list, tuple)):
        first = batch[0] if batch else None
    else:
        return int(len(batch)) if hasattr(batch, "__len__") else 0
    return _batch_size(first) if first is not None else 0


def _batches(loader: Iterable, n: int | None):
    """``n`` batches from ``loader`` (cycling a finite loader), or one pass when ``n`` is None."""
    if n is None:
        yield from loader
        return
    done = 0
    while done < n:
        got = False
        for b in loader:
            got = True
            yield b
            done += 1
            if done >= n:
                return
        if not got:
            raise ValueError("the training loader yielded no batch")


def _is_better(value: float, best: float | None, mode: str, min_delta: float) -> bool:
    if best is None or (isinstance(best, float) and math.isnan(best)):
        return not math.isnan(value)
    return value > best + min_delta if mode == "max" else value < best - min_delta


# ----------------------------------------------------------------------------------------------- fit


def fit(
    method: Method,
    loader: Iterable,
    cfg: TrainConfig | None = None,
    out_dir: str | os.PathLike | None = None,
    resume: bool = True,
    *,
    evaluate: Callable[[Method, int], Mapping[str, float]] | None = None,
    callbacks: Iterable[Callable[[dict], None]] = (),
    run_info: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """Train ``method`` on ``loader``; returns the per-epoch history (also ``out_dir/history.csv``).

    evaluate(method, epoch) -> {metric: float}: called after each epoch (epoch counts from 1) with the method
    in train mode afterwards restored; its metrics join the history row, and ``cfg.monitor`` names one of them.
    callbacks: each called after every epoch with ``{"epoch", "step", "row", "method", "history"}`` (after the
    checkpoint is written; an exception there aborts the run, which a later call can resume).
    run_info: extra entries for ``run.json`` (e.g. the notebook's parameters).
    The returned frame's ``.attrs`` hold ``out_dir``, ``best_epoch``, ``best_value``, ``stopped_early``.
    """
    cfg = cfg or TrainConfig()
    if not isinstance(method, Method):
        raise TypeError(f"fit() needs an aulib.methods.base.Method, got {type(method).__name__}")
    device = resolve_device(cfg.device)
    distributed = dist_utils.is_distributed()
    rank0 = dist_utils.get_rank() == 0
    out = Path(out_dir) if out_dir is not None else None

    if cfg.steps_per_epoch is not None:
        steps_per_epoch = int(cfg.steps_per_epoch)
    else:
        try:
            steps_per_epoch = len(loader)  # type: ignore[arg-type]
        except TypeError as e:
            raise ValueError("the loader has no len(); set TrainConfig.steps_per_epoch") from e
    if steps_per_epoch <= 0:
        raise ValueError(f"steps_per_epoch is {steps_per_epoch}: the loader is empty")
    total_steps = cfg.epochs * steps_per_epoch

    method.to(device)
    if distributed and getattr(method, "sync_batchnorm", False):
        if device.type == "cuda":
            # converts the children; the method object itself stays the same
            for name, child in list(method.named_children()):
                setattr(method, name, nn.SyncBatchNorm.convert_sync_batchnorm(child))
        else:
            warnings.warn("sync_batchnorm needs CUDA (torch's SyncBatchNorm is GPU-only); on CPU each process "
                          "keeps its own BatchNorm statistics", stacklevel=2)
    opt = build_optimizer(method.parameter_groups(), cfg)
    sched = build_scheduler(opt, cfg, steps_per_epoch)
    use_amp = cfg.amp and device.type == "cuda"
    amp_dtype = torch.bfloat16 if cfg.amp_dtype == "bf16" else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype == torch.float16)

    history: list[dict] = []
    start_epoch, step = 0, 0
    best_value: float | None = None
    best_state: dict | None = None  # CPU copy of the best epoch's state dict (restore_best)
    best_epoch: int | None = None
    bad_epochs = 0
    stopped_early = False

    ckpt_path = out / CHECKPOINT_NAME if out is not None else None
    if resume and ckpt_path is not None and ckpt_path.is_file():
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        if ckpt.get("method", type(method).__name__) != type(method).__name__:
            raise ValueError(f"cannot resume from {str(ckpt_path)!r}: it holds a {ckpt['method']} run, not "
                             f"{type(method).__name__}. Use another out_dir or resume=False")
        _check_resume_config(ckpt.get("config", {}), asdict(cfg), ckpt_path)
        method.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        scaler.load_state_dict(ckpt["scaler"])
        start_epoch, step = int(ckpt["epoch"]), int(ckpt["step"])
        history = list(ckpt["history"])
        best_value, best_epoch = ckpt.get("best_value"), ckpt.get("best_epoch")
        bad_epochs = int(ckpt.get("bad_epochs", 0))
        stopped_early = bool(ckpt.get("stopped_early", False))
        set_rng_state(ckpt["rng"])  # rank 0's states (the only ones saved) on every rank
    else:
        seed_everything(cfg.seed + dist_utils.get_rank(), cfg.deterministic)

    if out is not None and rank0:
        out.mkdir(parents=True, exist_ok=True)
        write_run_info(out, cfg, {"method": type(method).__name__, "resumed_from_epoch": start_epoch,
                                  "world_size": dist_utils.get_world_size(), "device": str(device),
                                  **(dict(run_info) if run_info else {})})

    method.optimizer = opt  # lets on_after_optimizer_step schedule per-group settings (e.g. weight decay)
    step_module: nn.Module = _Step(method)
    if distributed:
        sampler = getattr(loader, "sampler", None)
        if isinstance(sampler, (torch.utils.data.RandomSampler, torch.utils.data.SequentialSampler)) and \
                getattr(loader, "batch_sampler", None) is not None and \
                type(loader.batch_sampler) is torch.utils.data.BatchSampler:
            warnings.warn("fit() under DDP with an unsharded DataLoader: every process sees the whole dataset; "
                          "wrap it with aulib.train.distributed.shard_loader(loader)", stacklevel=2)
        step_module = dist_utils.wrap_ddp(step_module, device,
                                          find_unused_parameters=getattr(method, "ddp_find_unused_parameters", False))

    clip_params = [p for g in opt.param_groups for p in g["params"]]
    # checking every step forces a GPU sync; on CUDA the check runs every few steps (the error still names the
    # first bad step and term; the steps in between have already been applied when it is raised)
    check_every = cfg.check_finite_every or (1 if device.type != "cuda" else 20)
    first_step_of_run = step
    from aulib.progress import tqdm

    for epoch in range(start_epoch, cfg.epochs):
        if stopped_early:
            break
        method.train()
        _set_epoch(loader, epoch)
        sums: torch.Tensor | None = None  # (T,) running sums of the loss terms, on the device
        names: list[str] | None = None
        pending: list[tuple[int, torch.Tensor]] = []  # steps whose terms are not yet checked for NaN/inf
        n_seen = 0
        t0 = time.perf_counter()
        bar = tqdm(total=steps_per_epoch, desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False,
                   disable=not (cfg.progress and rank0), dynamic_ncols=True)
        data_time, n_images = 0.0, 0  # seconds spent waiting for (and moving) batches; images seen
        batches = iter(_batches(loader, cfg.steps_per_epoch))
        while True:
            t_data = time.perf_counter()
            batch = next(batches, None)
            if batch is None:
                break
            batch = to_device(batch, device)
            data_time += time.perf_counter() - t_data
            n_images += _batch_size(batch)
            ctx = torch.autocast(device_type="cuda", dtype=amp_dtype) if use_amp else nullcontext()
            with ctx:
                terms = step_module(batch, step)
            if not isinstance(terms, Mapping) or "loss" not in terms:
                raise TypeError(f"{type(method).__name__}.training_step must return a dict with a 'loss' entry")
            if names is None:
                names = list(terms)
            elif list(terms) != names:
                raise TypeError(f"{type(method).__name__}.training_step returned terms {list(terms)} at step {step} "
                                f"but {names} before; return the same terms every step")
            stacked = torch.stack([(v.detach().float().mean() if torch.is_tensor(v) else torch.tensor(float(v)))
                                   .to(device) for v in terms.values()])  # (T,) this step's terms
            pending.append((step, stacked))
            if step == first_step_of_run or len(pending) >= check_every:
                _check_finite(pending, names, epoch, type(method).__name__)
            opt.zero_grad(set_to_none=True)
            scaler.scale(terms["loss"]).backward()
            if cfg.grad_clip is not None:
                scaler.unscale_(opt)
                torch.nn.utils.clip_grad_norm_(clip_params, cfg.grad_clip)
            scaler.step(opt)
            scaler.update()
            if scaler.is_enabled():
                with warnings.catch_warnings():  # fp16 steps skipped by the scaler are expected
                    warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step")
                    sched.step()
            else:
                sched.step()
            method.on_after_optimizer_step(step, total_steps)
            sums = stacked if sums is None else sums + stacked
            n_seen += 1
            step += 1
            if not pending and bar.disable is False:  # just synced: show the running loss for free
                bar.set_postfix(loss=f"{float(sums[names.index('loss')]) / n_seen:.4f}", refresh=False)
            bar.update(1)
        bar.close()
        if n_seen == 0 or sums is None or names is None:
            raise ValueError("the training loader yielded no batch")
        _check_finite(pending, names, epoch, type(method).__name__)
        means = sums / n_seen
        if distributed:
            means = dist_utils.all_reduce_mean(means)
        row: dict[str, Any] = {"epoch": epoch + 1, "step": step}
        row.update({k: float(m) for k, m in zip(names, means)})
        row["lr"] = float(opt.param_groups[0]["lr"])
        row["time"] = time.perf_counter() - t0
        row["data_time"], row["images"] = data_time, n_images
        if evaluate is not None:
            metrics = dict(evaluate(method, epoch + 1) or {})
            method.train()
            row.update({k: float(v) for k, v in metrics.items()})
        improved = False
        if cfg.monitor is not None:
            if cfg.monitor not in row:
                raise KeyError(f"TrainConfig.monitor={cfg.monitor!r} is not in the epoch's metrics: {sorted(row)}")
            value = float(row[cfg.monitor])
            if _is_better(value, best_value, cfg.monitor_mode, cfg.min_delta):
                best_value, best_epoch, bad_epochs, improved = value, epoch + 1, 0, True
            else:
                bad_epochs += 1
            if distributed:  # rank 0 decides so every rank stops together
                bad_epochs = int(dist_utils.broadcast_object(bad_epochs))
            if cfg.patience is not None and bad_epochs >= cfg.patience and epoch + 1 < cfg.epochs:
                stopped_early = True
        history.append(row)
        if improved and cfg.restore_best:
            best_state = _cpu_state_dict(method)
        if out is not None and rank0:
            if improved:
                atomic_torch_save({"model": method.state_dict(), "epoch": epoch + 1, cfg.monitor: best_value},
                                  out / BEST_NAME)
            state = {
                "model": method.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                "scaler": scaler.state_dict(), "epoch": epoch + 1, "step": step, "rng": rng_state(),
                "history": history, "config": asdict(cfg), "best_value": best_value, "best_epoch": best_epoch,
                "bad_epochs": bad_epochs, "stopped_early": stopped_early, "method": type(method).__name__,
            }
            atomic_torch_save(state, ckpt_path)
            if cfg.keep_epoch_checkpoints:
                atomic_torch_save(state, out / f"epoch_{epoch + 1}.pt")
            atomic_write_text(pd.DataFrame(history).to_csv(index=False), out / HISTORY_NAME)
        if distributed:
            dist_utils.barrier()
        for cb in callbacks:
            cb({"epoch": epoch + 1, "step": step, "row": row, "method": method, "history": history})

    method.optimizer = None
    restored = False
    if cfg.monitor is not None and cfg.restore_best and best_epoch is not None:
        if best_state is None and out is not None and (out / BEST_NAME).is_file():  # best epoch before a resume
            best_state = torch.load(out / BEST_NAME, map_location="cpu", weights_only=False)["model"]
        if best_state is not None:
            method.load_state_dict(best_state)
            restored = True
    frame = pd.DataFrame(history)
    frame.attrs.update({"out_dir": str(out) if out is not None else None, "best_epoch": best_epoch,
                        "best_value": best_value, "stopped_early": stopped_early,
                        "restored_epoch": best_epoch if restored else None})
    return frame


def _cpu_state_dict(module: nn.Module) -> dict:
    """A deep copy of ``module.state_dict()`` on the CPU (later training steps do not change it)."""
    sd = module.state_dict()
    out = type(sd)((k, v.detach().to("cpu", copy=True) if torch.is_tensor(v) else copy.deepcopy(v))
                   for k, v in sd.items())
    if hasattr(sd, "_metadata"):  # module versions, read by load_state_dict
        out._metadata = copy.deepcopy(sd._metadata)
    return out


def _check_finite(pending: list[tuple[int, torch.Tensor]], names: list[str], epoch: int, method: str) -> None:
    """Raise NonFiniteLossError naming the first pending step with a NaN/inf term; empties ``pending``."""
    if not pending:
        return
    vals = torch.stack([v for _, v in pending])  # (S, T): one sync for all pending steps
    ok = torch.isfinite(vals)
    if bool(ok.all()):
        pending.clear()
        return
    vals, ok = vals.cpu(), ok.cpu()
    i = int((~ok).any(1).nonzero()[0])
    bad = [f"{n}={float(vals[i, j]):.4g}" for j, n in enumerate(names) if not bool(ok[i, j])]
    raise NonFiniteLossError(f"non-finite loss at epoch {epoch + 1}, step {pending[i][0]} (global, 0-based) in "
                             f"{method}: term(s) {', '.join(bad)}")


def _check_resume_config(saved: Mapping[str, Any], now: Mapping[str, Any], path: Path) -> None:
    diff = [k for k in now if k not in _RESUME_FREE_FIELDS and k in saved
            and _norm(saved[k]) != _norm(now[k])]
    if diff:
        details = "; ".join(f"{k}: checkpoint {saved[k]!r} vs now {now[k]!r}" for k in diff)
        raise ValueError(f"cannot resume from {str(path)!r}: the config differs ({details}). Use the same "
                         "arguments, another out_dir, or resume=False")


def _norm(v: Any) -> Any:
    return list(v) if isinstance(v, tuple) else v


def load_checkpoint(path: str | os.PathLike, method: nn.Module | None = None) -> dict:
    """Read a checkpoint written by :func:`fit` (``last.pt``/``best.pt``/a run folder); loads weights into
    ``method`` when given; returns the checkpoint dict."""
    p = Path(path)
    if p.is_dir():
        p = p / CHECKPOINT_NAME
    if not p.is_file():
        raise FileNotFoundError(f"no checkpoint at {str(p)!r}")
    ckpt = torch.load(p, map_location="cpu", weights_only=False)
    if method is not None:
        method.load_state_dict(ckpt["model"])
    return ckpt
