"""Benchmark: the learnability ladder's logistic rungs (00_data), one BLAS thread against several.

    python -m aulib.bench ladder [--quick] [--frames 2460] [--pixel_size 32] [--threads 2]

One logistic regression per AU (:func:`aulib.experiments.learnability.logistic_per_au`) on the grey pixels of a
BP4D-like set, two thirds of its frames for training, run once with one BLAS thread (what the ladder uses) and
once with ``threads`` (the machine's default on 2 cores). Rows (tidy): blas_threads, frames, features, aus, wall_s,
fits_per_s, ratio (wall time over the one-thread run's, measured in the same run) and max_abs_diff (largest
difference of a predicted probability from the one-thread run's).
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np
import pandas as pd

from aulib.bench import option
from aulib.data.synthetic import SynthConfig, generate
from aulib.experiments.learnability import logistic_per_au, pixel_features

DEFAULTS: dict[str, Any] = {"frames": 2460, "pixel_size": 32, "threads": None, "max_iter": 2000}
QUICK: dict[str, Any] = {"frames": 400, "pixel_size": 16, "max_iter": 200}


def run(args: Any = None) -> pd.DataFrame:
    frames = int(option(args, "frames", DEFAULTS, QUICK))
    size = int(option(args, "pixel_size", DEFAULTS, QUICK))
    threads = int(option(args, "threads", DEFAULTS, QUICK) or min(2, os.cpu_count() or 1))
    max_iter = int(option(args, "max_iter", DEFAULTS, QUICK))
    per_seq = max(1, frames // (41 * 2))
    ds = generate(SynthConfig(preset="bp4d", n_subjects=41, sequences_per_subject=2, frames_per_sequence=per_seq,
                              image_size=112, seed=0))
    labels, valid = ds.au_matrix()
    n = len(ds)
    train, test = np.arange(n * 2 // 3), np.arange(n * 2 // 3, n)
    x_train, x_test = pixel_features(ds, train, size), pixel_features(ds, test, size)
    rows, ref = [], None
    for k in (1, threads):
        t0 = time.perf_counter()
        probs = logistic_per_au(x_train, labels[train], valid[train], x_test, max_iter=max_iter, blas_threads=k)
        wall = time.perf_counter() - t0
        if ref is None:
            ref = (wall, probs)
        rows.append({"blas_threads": k, "frames": len(train), "features": x_train.shape[1], "aus": labels.shape[1],
                     "wall_s": round(wall, 3), "fits_per_s": round(labels.shape[1] / wall, 2),
                     "ratio": round(wall / ref[0], 2), "max_abs_diff": float(np.abs(probs - ref[1]).max())})
        print(f"ladder logistic rung, {k} BLAS thread(s): {wall:.1f} s for {labels.shape[1]} fits on "
              f"{len(train)} x {x_train.shape[1]} ({wall / ref[0]:.2f}x the one-thread run)", flush=True)
    return pd.DataFrame(rows)
