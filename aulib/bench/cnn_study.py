"""CNN-study throughput: the study's training step (input normalisation + CNN + per-AU BCE on a 4+4-per-AU
batch + optimiser step) against the bare backbone forward+backward in the same run, for the baseline CNN and
VGG-16 (Table I's cheapest and most expensive), plus the CPU data pipeline (alignment already done: frame
loading + augmentation group D + the oversampling batch sampler). Printed, never asserted.

    python -m aulib.bench cnn_study --device cuda      # or run(argparse.Namespace(device="cuda", ...))

Measured on one H100 (bf16 autocast, 96x96, 96-image batches): baseline study step 5.1 ms (18.8K images/s)
vs bare backbone forward+backward 3.0 ms (32K images/s); VGG-16 11.5 ms (8.3K images/s) vs 9.6 ms (10K
images/s). The single-process CPU loader (augmentation D) gives ~460 images/s, so GPU training needs ~8+
DataLoader workers to keep up with the baseline.
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from types import SimpleNamespace

import numpy as np
import pandas as pd
import torch

from aulib.bench import option, seconds_per_call
from aulib.experiments.cnn_study import TABLE_I
from aulib.methods.cnn_study import CNNStudy, CNNStudyConfig

DEFAULTS = {"device": "auto", "image_size": 96, "n_aus": 12, "steps": 20, "warmup": 5,
            "models": "Baseline,VGG-16", "normalisation": "samplewise_normalization", "loader_batches": 5}


QUICK = {"image_size": 32, "steps": 3, "warmup": 1, "loader_batches": 2}  # --quick: CPU-sized


def _arg(args, name):
    return option(args, name, DEFAULTS, QUICK)


def _loader_rate(image_size: int, n_aus: int, batches: int) -> float:
    """Images/s of FrameDataset + 4+4 oversampling on random aligned faces, with augmentation D on each batch (one
    process)."""
    from aulib.data.schema import CanonicalDataset, DatasetMeta
    from aulib.experiments.cnn_study import make_train_loader

    rng = np.random.default_rng(0)
    n = 600
    frames = pd.DataFrame({"subject": [f"S{i % 10}" for i in range(n)], "sequence": "T0", "frame": np.arange(n),
                           "image": np.arange(n)})
    aus = list(range(1, n_aus + 1))
    for a in aus:
        frames[f"AU{a}"] = (rng.random(n) < 0.3).astype(np.int8)
    ds = CanonicalDataset(DatasetMeta("bench", aus, (image_size, image_size), 1), frames,
                          rng.uniform(0, image_size - 1, (n, 68, 2)).astype(np.float32),
                          rng.integers(0, 256, (n, image_size, image_size, 1), dtype=np.uint8))
    cfg = CNNStudyConfig(image_size=image_size, augmentation="D", steps_per_epoch=batches)
    loader = make_train_loader(ds, np.arange(n), cfg)
    t0 = time.perf_counter()
    count = sum(len(b["image"]) for b in loader)
    return count / (time.perf_counter() - t0)


def _bench_model(name: str, device: torch.device, size: int, k: int, steps: int, warmup: int,
                 normalisation: str) -> list[dict]:
    """Rows for one Table I model: the study's training step and the bare backbone forward+backward."""
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()
    b = k * 8  # 4 positives + 4 negatives per AU (Sec. II-C)
    row = TABLE_I[name]
    cfg = CNNStudyConfig(backbone=row["backbone"], in_chans=row["in_chans"], image_size=size,
                         normalisation=normalisation)
    torch.manual_seed(0)
    method = CNNStudy(cfg, num_aus=k).to(device).train()
    opt_name, lr = cfg.train_settings()
    opt = (torch.optim.Adagrad if opt_name == "adagrad" else torch.optim.Adam)(method.parameters(), lr=lr)
    images = torch.rand(b, 1, size, size, device=device)
    batch = {"image": images, "labels": torch.randint(0, 2, (b, k), device=device).float(),
             "valid": torch.ones(b, k, dtype=torch.bool, device=device),
             "au_group": torch.arange(k, device=device).repeat_interleave(8)}
    bare_in = images.expand(-1, row["in_chans"], -1, -1).contiguous()

    def train_step():
        with amp:
            loss = method.training_step(batch, 0)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def backbone_fwd_bwd():
        with amp:
            out = method.model(bare_in).float().mean()
        method.model.zero_grad(set_to_none=True)
        out.backward()

    rows = []
    for bench, fn in (("study_train_step", train_step), ("backbone_forward_backward", backbone_fwd_bwd)):
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        s = seconds_per_call(fn, steps, warmup, device)
        r = {"model": name, "backbone": row["backbone"], "benchmark": bench, "device": str(device),
             "dtype": "bf16" if device.type == "cuda" else "fp32", "batch_size": b, "image_size": size,
             "sec_per_step": s, "images_per_s": b / s}
        if device.type == "cuda":
            r["peak_mem_GiB"] = torch.cuda.max_memory_allocated(device) / 2**30
        rows.append(r)
    return rows


def run(args=None) -> pd.DataFrame:
    """Seconds per step and images/s of each model's study training step and its bare backbone
    forward+backward, on ``args.device`` (cuda with bf16 autocast when available); plus the loader's rate."""
    args = args if args is not None else SimpleNamespace()
    dev = _arg(args, "device")
    device = torch.device("cuda" if dev == "auto" and torch.cuda.is_available() else ("cpu" if dev == "auto" else dev))
    size, k, steps, warmup = (int(_arg(args, n)) for n in ("image_size", "n_aus", "steps", "warmup"))
    names = [m.strip() for m in str(_arg(args, "models")).split(",") if m.strip()]
    unknown = [m for m in names if m not in TABLE_I]
    if unknown:
        raise ValueError(f"unknown Table I model(s) {unknown}; choose from {', '.join(TABLE_I)}")
    rows = []
    for name in names:
        rows += _bench_model(name, device, size, k, steps, warmup, str(_arg(args, "normalisation")))
    nb = int(_arg(args, "loader_batches"))
    if nb > 0:
        rows.append({"model": "-", "backbone": "-", "benchmark": "cpu_loader_augD_oversampling", "device": "cpu",
                     "dtype": "fp32", "batch_size": k * 8, "image_size": size, "sec_per_step": np.nan,
                     "images_per_s": _loader_rate(size, k, nb)})
    df = pd.DataFrame(rows)
    step = df[df.benchmark == "study_train_step"].set_index("model").sec_per_step
    df["share_of_train_step"] = [r.sec_per_step / step[r.model] if r.model in step else np.nan
                                 for r in df.itertuples()]
    return df


if __name__ == "__main__":  # the same as `python -m aulib.bench cnn_study [--device ...] [--key value ...]`
    import sys

    from aulib.bench.__main__ import main

    raise SystemExit(main(["cnn_study", *sys.argv[1:]]))
