"""Label statistics, in one place. Unknown labels (``valid == False``) are always excluded.

- ``positive_rates``        per-AU rate of 1s among known labels
- ``cooccurrence``          P(AU_j = 1 | AU_i = 1), row i (RRL's relation matrix M, its Fig 2)
- ``correlation``           Pearson correlation between AU columns (AUNet's adjacency matrix, Fig 8)
- ``inverse_rate_weights``  w_i = (1/r_i) / sum_k (1/r_k) (AUNet Eq.1)

``REFERENCE`` holds the real BP4D / DISFA statistics of the field's 3-fold lists
(shared/reference/au_statistics.md); they calibrate the synthetic generator and are shown beside it.
They are facts about the real datasets, never results of aulib.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


def _valid(labels: np.ndarray, valid: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(labels, dtype=np.float64)
    valid = np.ones(labels.shape, dtype=bool) if valid is None else np.asarray(valid, dtype=bool)
    if labels.shape != valid.shape or labels.ndim != 2:
        raise ValueError(f"labels {labels.shape} and valid {valid.shape} must be the same (N, K) shape")
    return np.where(valid, labels, 0.0), valid


def positive_rates(labels: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """(K,) fraction of positives among the known labels of each AU (NaN if an AU has none known)."""
    y, v = _valid(labels, valid)
    with np.errstate(invalid="ignore", divide="ignore"):
        return y.sum(0) / v.sum(0)


def cooccurrence(labels: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """(K, K) P(AU_j = 1 | AU_i = 1), over frames where both AU i and AU j are known. Diagonal is 1 and a
    row with no positive AU i is NaN."""
    y, v = _valid(labels, valid)
    both_known = v.T.astype(np.float64) @ v  # (K, K) frames with i and j known
    joint = y.T @ y  # (K, K) frames with i and j both positive (unknowns are 0 in y)
    pos_i = y.T @ v  # (K, K) frames with i positive and j known
    with np.errstate(invalid="ignore", divide="ignore"):
        m = joint / pos_i
    m[both_known == 0] = np.nan
    return m


def correlation(labels: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """(K, K) Pearson correlation of AU columns over frames where both are known (AUNet Fig 8)."""
    y, v = _valid(labels, valid)
    k = y.shape[1]
    out = np.full((k, k), np.nan)
    for i in range(k):
        for j in range(i, k):
            m = v[:, i] & v[:, j]
            a, b = y[m, i], y[m, j]
            if m.sum() > 1 and a.std() > 0 and b.std() > 0:
                out[i, j] = out[j, i] = float(np.corrcoef(a, b)[0, 1])
    return out


def inverse_rate_weights(labels: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """(K,) AUNet Eq.1 weights: normalised inverse positive rates, summing to 1."""
    r = positive_rates(labels, valid)
    if np.any(~np.isfinite(r)) or np.any(r <= 0):
        bad = np.flatnonzero(~np.isfinite(r) | (r <= 0)).tolist()
        raise ValueError(f"AU column(s) {bad} have no positive (or no known) label: inverse rate undefined")
    inv = 1.0 / r
    return inv / inv.sum()


@dataclass(frozen=True)
class ReferenceStats:
    name: str
    aus: tuple[int, ...]
    rates: np.ndarray  # (K,)
    cooccurrence: np.ndarray  # (K, K) P(j | i), row i
    n_frames: int
    no_active_fraction: float


def _matrix(text: str) -> np.ndarray:
    return np.array([[float(x) for x in row.split()[1:]] for row in text.strip().splitlines()])


REFERENCE: dict[str, ReferenceStats] = {
    "bp4d": ReferenceStats(
        "BP4D", (1, 2, 4, 6, 7, 10, 12, 14, 15, 17, 23, 24),
        np.array([.211, .171, .203, .461, .549, .594, .562, .466, .169, .343, .165, .151]),
        _matrix("""
 1     1  .51 .30 .45 .55 .66 .58 .46 .15 .36 .15 .12
 2    .63  1  .13 .51 .53 .67 .68 .49 .14 .32 .17 .13
 4    .31 .11  1  .40 .62 .52 .30 .42 .16 .40 .19 .19
 6    .21 .19 .18  1  .84 .86 .85 .60 .23 .36 .20 .14
 7    .21 .16 .23 .70  1  .77 .72 .55 .23 .38 .19 .16
10    .24 .19 .18 .67 .71  1  .78 .57 .22 .35 .18 .12
12    .22 .21 .11 .70 .70 .82  1  .56 .21 .33 .19 .12
14    .21 .18 .18 .59 .65 .73 .68  1  .23 .43 .23 .24
15    .19 .14 .19 .64 .74 .76 .69 .63  1  .65 .36 .28
17    .22 .16 .24 .48 .60 .60 .55 .58 .32  1  .31 .36
23    .20 .17 .24 .56 .63 .64 .63 .63 .37 .64  1  .36
24    .16 .15 .25 .44 .57 .48 .46 .73 .32 .81 .40  1"""),
        146_847, 0.079),
    "disfa": ReferenceStats(
        "DISFA", (1, 2, 4, 6, 9, 12, 25, 26),
        np.array([.050, .043, .152, .079, .042, .129, .277, .088]),
        _matrix("""
 1     1  .60 .36 .07 .10 .10 .33 .17
 2    .70  1  .33 .04 .03 .06 .16 .10
 4    .12 .09  1  .08 .20 .03 .31 .11
 6    .04 .02 .16  1  .17 .71 .83 .13
 9    .12 .03 .74 .32  1  .09 .54 .19
12    .04 .02 .04 .43 .03  1  .81 .13
25    .06 .03 .17 .24 .08 .38  1  .23
26    .10 .05 .18 .12 .09 .20 .72  1"""),
        130_814, 0.537),
}


def rates_table(sets: dict, real=None) -> pd.DataFrame:
    """Tidy positive rates per AU: each synthetic set of ``sets`` ({preset: dataset}) beside the reported rates of
    :data:`REFERENCE` for that preset and, when ``real`` (a converted dataset) has those AUs, beside it. Columns
    ``dataset, au, source, rate``."""
    rows = []
    for name, ds in sets.items():
        ref = REFERENCE[name]
        r = positive_rates(*ds.au_matrix())
        for j, au in enumerate(ds.aus):
            rows.append({"dataset": name, "au": f"AU{au}", "source": "synthetic", "rate": r[j]})
            rows.append({"dataset": name, "au": f"AU{au}", "source": f"{ref.name} (reported)",
                         "rate": ref.rates[ref.aus.index(au)]})
        if real is not None and set(ds.aus) <= set(real.aus):
            rr = positive_rates(*real.au_matrix())
            rows += [{"dataset": name, "au": f"AU{au}", "source": f"{real.meta.name} (your data)",
                      "rate": rr[real.aus.index(au)]} for au in ds.aus]
    return pd.DataFrame(rows)
