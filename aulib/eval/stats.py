"""Paired t-test between two runs' scores (scipy.stats.ttest_rel)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats


def paired_ttest(a, b, value: str = "f1", on: Sequence[str] | None = None,
                 alternative: str = "two-sided") -> dict:
    """Paired t-test of ``a`` against ``b``.

    ``a``/``b`` are equal-length score vectors (per AU, or per fold) or two tidy frames; frames are paired on
    the ``on`` columns (default: those of ``fold``, ``seed``, ``au`` present in both) and compare ``value``.
    Returns ``{"t", "p", "mean_a", "mean_b", "mean_diff", "n"}`` with ``mean_diff = mean(a - b)``.
    """
    if isinstance(a, pd.DataFrame) or isinstance(b, pd.DataFrame):
        if not (isinstance(a, pd.DataFrame) and isinstance(b, pd.DataFrame)):
            raise TypeError("give two frames or two vectors")
        on = list(on) if on is not None else [c for c in ("fold", "seed", "au") if c in a.columns and c in b.columns]
        if not on:
            raise ValueError("no columns to pair the two frames on; pass on=[...]")
        for name, df in (("a", a), ("b", b)):
            if value not in df.columns:
                raise KeyError(f"frame {name} has no column {value!r}; columns: {list(df.columns)}")
            if df.duplicated(on).any():
                raise ValueError(f"frame {name} has several rows per {on}: aggregate first or add columns to on")
        m = a[on + [value]].merge(b[on + [value]], on=on, suffixes=("_a", "_b"), how="inner")
        if len(m) < len(a) or len(m) < len(b):
            raise ValueError(f"the frames do not pair up on {on}: {len(a)} and {len(b)} rows, {len(m)} matched")
        x, y = m[f"{value}_a"].to_numpy(float), m[f"{value}_b"].to_numpy(float)
    else:
        x, y = np.asarray(a, float).ravel(), np.asarray(b, float).ravel()
        if x.shape != y.shape:
            raise ValueError(f"paired scores differ in length: {len(x)} vs {len(y)}")
    keep = ~(np.isnan(x) | np.isnan(y))
    x, y = x[keep], y[keep]
    if len(x) < 2:
        raise ValueError(f"a paired t-test needs at least 2 pairs, got {len(x)}")
    res = stats.ttest_rel(x, y, alternative=alternative)
    return {"t": float(res.statistic), "p": float(res.pvalue), "mean_a": float(x.mean()), "mean_b": float(y.mean()),
            "mean_diff": float((x - y).mean()), "n": int(len(x))}
