"""After a conversion: frames per subject and positive rate per AU, beside the known totals of the release."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from ..schema import UNKNOWN, CanonicalDataset
from ..stats import REFERENCE, positive_rates

# (labelled frames, subjects) of the full releases. DISFA: 27 videos x 4,845 frames (the field's 3-fold lists
# hold 130,814 of these 130,815 frames); BP4D: the 12-AU occurrence frames of the 3-fold lists.
KNOWN_TOTALS: dict[str, tuple[int, int]] = {"bp4d": (146_847, 41), "disfa": (27 * 4_845, 27)}


class ConversionWarning(UserWarning):
    """A converted dataset differs from the release's known totals (expected for a subset or a synthetic export)."""


def per_subject(frames: pd.DataFrame) -> pd.DataFrame:
    """One row per subject: frames, sequences."""
    g = frames.groupby("subject")
    return pd.DataFrame({"frames": g.size(), "sequences": g["sequence"].nunique()}).reset_index()


def per_au(ds: CanonicalDataset, name: str | None = None) -> pd.DataFrame:
    """One row per AU: positive rate among known labels, unknown fraction, and the reference rate
    (``reference``, the real release's, from shared/reference) where the dataset is BP4D or DISFA."""
    labels, valid = ds.au_matrix()
    ref = REFERENCE.get((name or ds.meta.name).lower())
    rates = positive_rates(labels, valid) if len(ds) else np.full(len(ds.aus), np.nan)
    rows = []
    for k, au in enumerate(ds.aus):
        r = {"au": au, "rate": float(rates[k]), "unknown": float(1 - valid[:, k].mean()) if len(ds) else np.nan}
        r["reference"] = float(ref.rates[ref.aus.index(au)]) if ref is not None and au in ref.aus else np.nan
        rows.append(r)
    return pd.DataFrame(rows)


def check_totals(ds: CanonicalDataset, name: str, warn: bool = True) -> list[str]:
    """Messages (and ConversionWarnings) where frames / subjects differ from the release's known totals."""
    if name not in KNOWN_TOTALS:
        return []
    n_frames, n_subjects = KNOWN_TOTALS[name]
    msgs = []
    if len(ds) != n_frames:
        msgs.append(f"{name}: {len(ds):,} labelled frames converted, the full release has {n_frames:,}")
    if ds.frames.subject.nunique() != n_subjects:
        msgs.append(f"{name}: {ds.frames.subject.nunique()} subjects converted, the full release has {n_subjects}")
    if warn:
        for m in msgs:
            warnings.warn(m + " (fine for a subset or a synthetic export)", ConversionWarning, stacklevel=3)
    return msgs


def summary_table(ds: CanonicalDataset, name: str | None = None) -> pd.DataFrame:
    """A tidy table: rows ``(kind, key, value, reference)`` for frames per subject, totals and AU rates."""
    name = (name or ds.meta.name).lower()
    rows = [{"kind": "frames_per_subject", "key": r.subject, "value": float(r.frames), "reference": np.nan}
            for r in per_subject(ds.frames).itertuples()]
    tot = KNOWN_TOTALS.get(name, (np.nan, np.nan))
    rows.append({"kind": "total", "key": "frames", "value": float(len(ds)), "reference": float(tot[0])})
    rows.append({"kind": "total", "key": "subjects", "value": float(ds.frames.subject.nunique()),
                 "reference": float(tot[1])})
    for r in per_au(ds, name).itertuples():
        rows.append({"kind": "positive_rate", "key": f"AU{r.au}", "value": r.rate, "reference": r.reference})
    if ds.aus:
        _, valid = ds.au_matrix()
        rows.append({"kind": "total", "key": "unknown_labels", "value": float((~valid).mean()), "reference": np.nan})
    return pd.DataFrame(rows)


__all__ = ["KNOWN_TOTALS", "UNKNOWN", "ConversionWarning", "check_totals", "per_au", "per_subject", "summary_table"]
