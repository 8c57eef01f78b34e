"""The one claims rule: a paper's claim "a beats b" judged on the same units, with a 95 % interval.

A unit is one (dataset, fold, seed) run that both variants have. Per unit the metric (F1 unless the claim
says otherwise) is averaged over the AUs, and ``diff = a - b``. Over the ``n`` units:

* ``n >= 2``: the paired t interval, ``mean +- t_{0.975, n-1} * sd / sqrt(n)`` (``scipy.stats.t.interval``),
  wide when ``n`` is small (``t_{0.975, 2} = 4.30``), as it must be. (A percentile bootstrap over 2-4 units, this
  rule's first form, is no 95 % interval: on 3 units the resample that draws the smallest difference three times has
  probability 1/27 > 2.5 %, so the interval is [min, max] of the differences, and where there is no difference it
  excludes 0 one time in four: ``test_intervals_keep_their_level``);
* ``n == 1``: no interval (``nan``), verdict ``not resolved``.

Verdicts, in the paper's direction (``sign(paper_diff)``; "a > b" when the paper gives no number):

``no evidence``   a side that is meant to detect (any role but ``baseline``) has a mean F1 over the units that
                  does not beat ``always present`` on the same units, or a mean AUC below 0.6: a comparison
                  between detectors that do not detect says nothing. A ``baseline`` side (the ``untrained
                  encoder``) is exempt: "pretraining beats random weights" is a claim about the pretrained side,
                  and random weights are not expected to detect;
``holds``         the interval lies above 0;
``opposite``      the interval lies below 0;
``not resolved``  the interval contains 0 (or there is a single unit).

An equivalence claim ("a is about b", ``margin`` set) is judged against the band ``[-margin, +margin]`` instead
of 0: ``holds`` when the interval lies inside the band, ``opposite`` when
it lies wholly outside it (a difference larger than the margin, against the claim of none), ``not resolved``
when it overlaps the band's edge (the 95 % interval inside the band is two one-sided tests at 2.5 % each).
``no evidence`` applies as above.

:func:`judge` returns one row per claim with :data:`CLAIM_COLUMNS`; every report's ``claims.csv`` is its output.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from aulib.eval.baselines import ALWAYS_PRESENT

CLAIM_COLUMNS = ["claim", "a", "b", "metric", "paper_diff", "diff", "ci_low", "ci_high", "n_units", "verdict"]
UNIT = ["dataset", "fold", "seed"]
MIN_AUC = 0.6
VERDICTS = ("holds", "opposite", "not resolved", "no evidence")


@dataclass(frozen=True)
class Claim:
    """"``a`` beats ``b`` on ``metric``" as a paper states it. ``paper_diff`` is the paper's a - b (in the
    metric's [0, 1] scale; its sign gives the direction, None = "a > b" without a number). ``dataset`` restricts
    the units to one dataset, ``aus`` the average to some AUs, ``experiment`` the rows to one experiment.
    ``margin`` (metric scale) makes it an equivalence claim, "a is about b": see the module docstring."""

    claim: str
    a: str
    b: str
    paper_diff: float | None = None
    metric: str = "f1"
    dataset: str | None = None
    experiment: str | None = None
    aus: tuple[str, ...] | None = None
    margin: float | None = None

    @property
    def direction(self) -> int:
        return -1 if self.paper_diff is not None and self.paper_diff < 0 else 1


def interval(diffs: Sequence[float], level: float = 0.95) -> tuple[float, float, str]:
    """(low, high, method) of the mean of paired unit differences (see the module docstring)."""
    d = np.asarray(diffs, dtype=float)
    n = len(d)
    if n < 2:
        return np.nan, np.nan, "none"
    if np.allclose(d, d[0]):
        return float(d[0]), float(d[0]), "degenerate"
    lo, hi = stats.t.interval(level, n - 1, loc=d.mean(), scale=stats.sem(d))
    return float(lo), float(hi), "t"


def verdict(ci_low: float, ci_high: float, direction: int = 1, detects: bool = True,
            margin: float | None = None) -> str:
    """The rule of the module docstring on one interval (an equivalence claim when ``margin`` is given)."""
    if not detects:
        return "no evidence"
    if np.isnan(ci_low) or np.isnan(ci_high):
        return "not resolved"
    if margin is not None:
        if margin < 0:
            raise ValueError(f"an equivalence margin must be >= 0, got {margin}")
        if -margin <= ci_low and ci_high <= margin:
            return "holds"
        if ci_low > margin or ci_high < -margin:
            return "opposite"
        return "not resolved"
    lo, hi = (ci_low, ci_high) if direction > 0 else (-ci_high, -ci_low)
    if lo > 0:
        return "holds"
    if hi < 0:
        return "opposite"
    return "not resolved"


def per_unit(results: pd.DataFrame, variant: str, metric: str = "f1", aus: Sequence[str] | None = None
             ) -> pd.Series:
    """Mean over AUs of ``metric`` per (dataset, fold, seed) unit of ``variant``."""
    r = results[results["variant"] == variant]
    if aus is not None:
        r = r[r["au"].isin(list(aus))]
    return r.groupby(UNIT, observed=True)[metric].mean()


def judge_one(results: pd.DataFrame, c: Claim, level: float = 0.95, min_auc: float = MIN_AUC) -> dict:
    """One row of :func:`judge`."""
    r = results
    if c.experiment is not None:
        r = r[r["experiment"] == c.experiment]
    if c.dataset is not None:
        r = r[r["dataset"] == c.dataset]
    for name in (c.a, c.b):
        if name not in set(r["variant"]):
            raise KeyError(f"claim {c.claim!r}: no results for variant {name!r}; variants: {sorted(set(r['variant']))}")
    a, b = per_unit(r, c.a, c.metric, c.aus), per_unit(r, c.b, c.metric, c.aus)
    units = a.index.intersection(b.index)
    d = (a.loc[units] - b.loc[units]).dropna()
    units = d.index
    lo, hi, how = interval(d.to_numpy(), level)
    detects = len(units) > 0
    if detects:
        base = per_unit(r if ALWAYS_PRESENT in set(r["variant"]) else results, ALWAYS_PRESENT, "f1", c.aus)
        common = units.intersection(base.index)
        if len(common) == 0:
            raise KeyError(f"claim {c.claim!r}: no '{ALWAYS_PRESENT}' rows on its units; run it through run_folds")
        roles = r.groupby("variant", observed=True)["role"].first() if "role" in r else pd.Series(dtype=str)
        for name in (c.a, c.b):
            if roles.get(name) == "baseline":
                continue
            f1 = per_unit(r, name, "f1", c.aus).loc[common].mean()
            auc = per_unit(r, name, "auc", c.aus).loc[units].mean()
            if not (f1 > base.loc[common].mean()) or not (auc >= min_auc):
                detects = False
    return {"claim": c.claim, "a": c.a, "b": c.b, "metric": c.metric, "paper_diff": c.paper_diff,
            "diff": float(d.mean()) if len(d) else np.nan, "ci_low": lo, "ci_high": hi, "n_units": int(len(units)),
            "verdict": verdict(lo, hi, c.direction, detects, c.margin), "interval": how}


def judge(results: pd.DataFrame, claims: Sequence[Claim], level: float = 0.95, min_auc: float = MIN_AUC
          ) -> pd.DataFrame:
    """Every claim through the one rule: a frame with :data:`CLAIM_COLUMNS` (plus ``interval``, the method)."""
    rows = [judge_one(results, c, level, min_auc) for c in claims]
    return pd.DataFrame(rows, columns=CLAIM_COLUMNS + ["interval"])


def verdict_counts(claims: pd.DataFrame) -> dict[str, int]:
    """{verdict: count} over the four verdicts (zeros included)."""
    counts = claims["verdict"].value_counts()
    return {v: int(counts.get(v, 0)) for v in VERDICTS}
