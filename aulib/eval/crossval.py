"""The one fold x seed runner: every paper's variants, scored on the same test frames, baselines beside them.

    def train_and_predict(train_rows, test_rows, fold, seed):
        ...                                   # build loaders on FrameDataset(ds, rows), train, predict
        return probs                          # (len(test_rows), K), rows in test_rows order

    results = run_folds(ds, [Variant("TRA-Net", train_and_predict),
                             Variant("backbone only", plain, role="reference")],
                        experiment="table2", k=3, seeds=(0, 1))

``results`` is tidy, one row per (experiment, variant, dataset, fold, seed, au) with the columns of
:data:`COLUMNS`. For every (fold, seed) it also holds the trivial baselines of :mod:`aulib.eval.baselines`
(``always present``, ``prior``, role ``baseline``) computed on exactly the test frames the variants were scored
on. ``role`` is ``method`` (the paper's full method; each studied network in the CNN study), ``ablation``,
``baseline`` or ``reference`` (the supervised ceiling).

``train_and_predict`` may instead return a dict ``{"probs", "labels"?, "valid"?, "metrics"?}``: labels/valid
default to the dataset's labels of ``test_rows``; ``metrics`` is an optional ``{name: (K,) array}`` of extra
per-AU columns (e.g. the CNN study's balanced-batch accuracy).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from aulib.data.folds import fold_split
from aulib.eval import baselines as B
from aulib.eval.metrics import per_au_table
from aulib.progress import tqdm

ROLES = ("method", "ablation", "baseline", "reference")
#: the leading columns of every results table, in this order (extra metric columns follow)
COLUMNS = ["experiment", "variant", "role", "dataset", "fold", "seed", "au", "f1", "auc", "balanced_accuracy",
           "accuracy", "n_pos", "n_valid", "n_train", "n_test"]
KEYS = ["experiment", "variant", "dataset", "fold", "seed", "au"]

TrainAndPredict = Callable[[np.ndarray, np.ndarray, int, int], Any]


@dataclass(frozen=True)
class Variant:
    """One row of a paper's table: a name, the function that trains it on a fold and predicts the test frames,
    and its role."""

    name: str
    fn: TrainAndPredict
    role: str = "method"

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"variant {self.name!r}: role {self.role!r}; choose one of {', '.join(ROLES)}")


def _as_variants(variants, variant: str | None, role: str) -> list[Variant]:
    if callable(variants) and not isinstance(variants, Variant):
        return [Variant(variant or "model", variants, role)]
    if isinstance(variants, Variant):
        return [variants]
    if isinstance(variants, Mapping):
        return [v if isinstance(v, Variant) else Variant(name, v, role) for name, v in variants.items()]
    return list(variants)


def _unpack(out, labels_all, valid_all, test_rows):
    if isinstance(out, dict):
        probs = out["probs"]
        y = out.get("labels", labels_all[test_rows])
        v = out.get("valid", valid_all[test_rows] if "labels" not in out else None)
        extra = dict(out.get("metrics", {}))
    else:
        probs, y, v, extra = out, labels_all[test_rows], valid_all[test_rows], {}
    y = np.asarray(y)
    v = ((y == 0) | (y == 1)) if v is None else np.asarray(v, bool)
    return np.asarray(probs, dtype=np.float64), y, v, extra


def run_folds(ds, variants: Sequence[Variant] | Mapping[str, TrainAndPredict] | TrainAndPredict, k: int = 3,
              folds: Iterable[int] | None = None, seeds: Sequence[int] = (0,), variant: str | None = None,
              threshold: float = 0.5, split_seed: int = 0, progress: bool = True, *, experiment: str = "",
              dataset: str | None = None, role: str = "method", baselines: Sequence[str] = B.TRIVIAL
              ) -> pd.DataFrame:
    """Run every variant on each subject-exclusive fold (``aulib.data.folds.fold_split``, folds numbered 1..k by
    the part they test) and seed; returns the tidy results with the ``baselines`` rows (``()`` for none).

    ``variants`` is a list of :class:`Variant`, a ``{name: fn}`` mapping (all of role ``role``) or one function
    (named ``variant``). ``dataset`` defaults to ``ds.meta.name``."""
    vs = _as_variants(variants, variant, role)
    unknown = sorted(set(baselines) - set(B.TRIVIAL))
    if unknown:
        raise ValueError(f"unknown baseline(s) {unknown}; run_folds adds {B.TRIVIAL} (learnt baselines are variants)")
    dataset = dataset or ds.meta.name
    if k < 2:
        raise ValueError(f"k-fold cross-validation needs k >= 2 folds, got k={k}")
    folds = list(folds) if folds is not None else list(range(1, k + 1))
    labels_all, valid_all = ds.au_matrix()
    aus = [f"AU{a}" for a in ds.aus]
    tables = []
    jobs = [(f, s, v) for f in folds for s in seeds for v in vs]
    done_baselines: set[tuple[int, int]] = set()
    for fold, seed, var in tqdm(jobs, desc=f"{experiment or 'folds'}", disable=not progress):
        train_rows, test_rows = fold_split(ds, fold, k=k, seed=split_seed)
        probs, y, v, extra = _unpack(var.fn(train_rows, test_rows, fold, seed), labels_all, valid_all, test_rows)
        if probs.shape != y.shape:
            raise ValueError(f"{var.name}, fold {fold}, seed {seed}: predictions have shape {probs.shape} but the "
                             f"test labels have {y.shape} ({len(test_rows)} test rows x {len(aus)} AUs)")
        common = dict(experiment=experiment, dataset=dataset, fold=fold, seed=seed)
        t = per_au_table(y, probs, v, aus=aus, threshold=threshold, variant=var.name, role=var.role, **common)
        for name, values in extra.items():
            values = np.asarray(values, dtype=float)
            if values.shape != (len(aus),):
                raise ValueError(f"fold {fold}: metric {name!r} has shape {values.shape}, expected ({len(aus)},)")
            t[name] = values
        t["n_train"], t["n_test"] = len(train_rows), len(test_rows)
        tables.append(t)
        if (fold, seed) not in done_baselines:
            done_baselines.add((fold, seed))
            for name in baselines:
                p = (B.always_present(*y.shape) if name == B.ALWAYS_PRESENT
                     else B.prior(labels_all[train_rows], valid_all[train_rows], len(y)))
                b = per_au_table(y, p, v, aus=aus, threshold=threshold, variant=name, role="baseline", **common)
                b["n_train"], b["n_test"] = len(train_rows), len(test_rows)
                tables.append(b)
    return tidy(tables)


def tidy(tables: Iterable[pd.DataFrame] | pd.DataFrame) -> pd.DataFrame:
    """Concatenate results tables into the canonical column order, dropping repeated baseline rows (the same
    baseline on the same experiment, dataset, fold, seed and AU, e.g. from two ``run_folds`` calls)."""
    tables = [tables] if isinstance(tables, pd.DataFrame) else [t for t in tables if len(t)]
    if not tables:
        return pd.DataFrame(columns=COLUMNS)
    df = pd.concat(tables, ignore_index=True)
    for c in COLUMNS:
        if c not in df.columns:
            df[c] = "" if c in ("experiment", "dataset", "role", "variant") else np.nan
    is_base = df["role"].eq("baseline") & df["variant"].isin(B.TRIVIAL)
    keys = [c for c in KEYS if c in df.columns]
    df = df[~(is_base & df.duplicated(keys))]
    return df[COLUMNS + [c for c in df.columns if c not in COLUMNS]].reset_index(drop=True)


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


def scores(results: pd.DataFrame, by: Sequence[str] = ("experiment", "dataset", "role", "variant"),
           values: Sequence[str] = ("f1", "auc", "balanced_accuracy")) -> pd.DataFrame:
    """The headline table: per ``by`` group, the mean over AUs per run, then mean and std over runs (fold x seed)
    of each of ``values``, plus ``n_runs``; baselines first within each experiment and dataset."""
    by = [b for b in by if b in results.columns]
    out = None
    for v in values:
        s = summarize(results, v, by)
        out = s if out is None else out.merge(s.drop(columns="n_runs"), on=by)
    if "role" in by:
        order = {r: i for i, r in enumerate(("baseline", "reference", "method", "ablation"))}
        out = out.assign(_o=out["role"].map(order)).sort_values(
            [b for b in by if b not in ("role", "variant")] + ["_o"], kind="stable").drop(columns="_o")
    return out.reset_index(drop=True)
