"""k-fold cross-validation driver: one call per (fold, seed), one tidy per-fold, per-AU table back.

    def train_and_predict(train_rows, test_rows, fold, seed):
        ...                                   # build loaders on ds.subset / FrameDataset(ds, rows)
        return probs                          # (len(test_rows), K), rows in test_rows order

    table = run_folds(ds, train_and_predict, k=3, seeds=(0, 1), variant="baseline")
    # columns: variant, fold, seed, au, f1, accuracy, balanced_accuracy, n_pos, n_valid, n_train, n_test

``train_and_predict`` may instead return a dict ``{"probs", "labels"?, "valid"?, "metrics"?}``: labels/valid
default to the dataset's labels of ``test_rows``; ``metrics`` is an optional ``{name: (K,) array}`` of extra
per-AU columns (e.g. the CNN study's balanced-batch accuracy).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from aulib.eval.metrics import per_au_table


def run_folds(ds, train_and_predict: Callable[[np.ndarray, np.ndarray, int, int], Any], k: int = 3,
              folds: Iterable[int] | None = None, seeds: Sequence[int] = (0,), variant: str | None = None,
              threshold: float = 0.5, split_seed: int = 0, progress: bool = True) -> pd.DataFrame:
    """Run ``train_and_predict`` on each subject-exclusive fold (``aulib.data.folds.fold_split``, folds
    numbered 1..k by the part they test) and seed; returns the concatenated per-AU table."""
    from tqdm.auto import tqdm

    from aulib.data.folds import fold_split

    folds = list(folds) if folds is not None else list(range(1, k + 1))
    labels_all, valid_all = ds.au_matrix()
    aus = [f"AU{a}" for a in ds.aus]
    tables = []
    jobs = [(f, s) for f in folds for s in seeds]
    for fold, seed in tqdm(jobs, desc="folds", disable=not progress):
        train_rows, test_rows = fold_split(ds, fold, k=k, seed=split_seed)
        out = train_and_predict(train_rows, test_rows, fold, seed)
        extra: dict[str, Any] = {}
        if isinstance(out, dict):
            probs = out["probs"]
            y = out.get("labels", labels_all[test_rows])
            v = out.get("valid", valid_all[test_rows] if "labels" not in out else None)
            extra = dict(out.get("metrics", {}))
        else:
            probs, y, v = out, labels_all[test_rows], valid_all[test_rows]
        probs = np.asarray(probs)
        if probs.shape != np.asarray(y).shape:
            raise ValueError(f"fold {fold}, seed {seed}: predictions have shape {probs.shape} but the test labels "
                             f"have {np.asarray(y).shape} ({len(test_rows)} test rows x {len(aus)} AUs)")
        cols = {"variant": variant} if variant is not None else {}
        t = per_au_table(y, probs, v, aus=aus, threshold=threshold, **cols, fold=fold, seed=seed)
        for name, values in extra.items():
            values = np.asarray(values, dtype=float)
            if values.shape != (len(aus),):
                raise ValueError(f"fold {fold}: metric {name!r} has shape {values.shape}, expected ({len(aus)},)")
            t[name] = values
        t["n_train"], t["n_test"] = len(train_rows), len(test_rows)
        tables.append(t)
    return pd.concat(tables, ignore_index=True)


def summarize(table: pd.DataFrame, value: str = "f1", by: Sequence[str] = ("variant",)) -> pd.DataFrame:
    """Mean over AUs per (fold, seed), then mean and std over folds/seeds, per ``by`` group."""
    by = [b for b in by if b in table.columns]
    reps = [c for c in ("fold", "seed") if c in table.columns]
    per_rep = table.groupby(by + reps, observed=True)[value].mean().reset_index()
    if by:
        g = per_rep.groupby(by, observed=True)[value]
        return g.agg(["mean", "std", "count"]).reset_index().rename(columns={"mean": value, "std": f"{value}_std",
                                                                              "count": "n_runs"})
    return pd.DataFrame({value: [per_rep[value].mean()], f"{value}_std": [per_rep[value].std()],
                         "n_runs": [len(per_rep)]})
