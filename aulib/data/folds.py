"""Subject-exclusive evaluation protocols.

BP4D and DISFA use the field's fixed 3-fold split (JAA-Net / ME-GraphAU lists): the subjects are divided
into three parts and fold k tests on part k and trains on the other two. aulib names a fold by the part it
tests (``fold=1`` tests part 1). Other repositories number differently: ME-GraphAU's fold k tests part 4-k,
AU-Net's subset k tests part k.

Any other dataset gets subject-exclusive k folds: subjects are sorted and dealt round-robin after a seeded
shuffle, so every subject is tested exactly once and fold sizes differ by at most one subject.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .schema import CanonicalDataset

BP4D_PARTS: tuple[tuple[str, ...], ...] = (
    tuple("F001 F002 F008 F009 F010 F016 F018 F023 M001 M004 M007 M008 M012 M014".split()),
    tuple("F003 F005 F011 F013 F020 F022 M002 M005 M010 M011 M013 M016 M017 M018".split()),
    tuple("F004 F006 F007 F012 F014 F015 F017 F019 F021 M003 M006 M009 M015".split()),
)
DISFA_PARTS: tuple[tuple[str, ...], ...] = (
    tuple("SN001 SN002 SN009 SN010 SN016 SN026 SN027 SN030 SN032".split()),
    tuple("SN006 SN011 SN012 SN013 SN018 SN021 SN024 SN028 SN031".split()),
    tuple("SN003 SN004 SN005 SN007 SN008 SN017 SN023 SN025 SN029".split()),
)
OFFICIAL_PARTS = {"bp4d": BP4D_PARTS, "disfa": DISFA_PARTS}


def official_parts(subjects: Sequence[str]) -> tuple[tuple[str, ...], ...] | None:
    """The official 3 parts restricted to ``subjects`` if every subject belongs to BP4D's or DISFA's lists
    and each part keeps at least one subject; otherwise None."""
    subjects = set(subjects)
    for parts in OFFICIAL_PARTS.values():
        if subjects <= set().union(*parts):
            kept = tuple(tuple(s for s in p if s in subjects) for p in parts)
            if all(kept):
                return kept
    return None


def fold_subjects(subjects: Sequence[str], k: int = 3, seed: int = 0) -> list[list[str]]:
    """The k test parts (lists of subjects). Official BP4D/DISFA parts when k == 3 and they apply."""
    subjects = sorted(set(subjects))
    if k < 2:
        raise ValueError(f"k must be at least 2, got {k}")
    if len(subjects) < k:
        raise ValueError(f"{len(subjects)} subject(s) cannot make {k} subject-exclusive folds")
    if k == 3 and (parts := official_parts(subjects)) is not None:
        return [list(p) for p in parts]
    order = np.random.default_rng(seed).permutation(len(subjects))
    return [sorted(subjects[i] for i in order[f::k]) for f in range(k)]


def fold_split(ds: CanonicalDataset, fold: int, k: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(train_rows, test_rows) of fold ``fold`` (1..k): test on part ``fold``, train on the rest."""
    if not 1 <= fold <= k:
        raise ValueError(f"fold must be in 1..{k} (folds are named by the part they test), got {fold}")
    test_subjects = fold_subjects(ds.frames.subject.unique(), k, seed)[fold - 1]
    is_test = ds.frames.subject.isin(test_subjects).to_numpy()
    return np.flatnonzero(~is_test), np.flatnonzero(is_test)


def split_validation(ds: CanonicalDataset, rows: np.ndarray, fraction: float, seed: int = 0,
                     max_frames: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(fit_rows, val_rows): ``fraction`` of the subjects of ``rows`` (at least one when fraction > 0, at most all
    but one) held out, subject-exclusive, for choosing the best epoch or early stopping. ``max_frames`` caps the
    validation rows (a seeded random subset, kept in row order). ``fraction <= 0`` or a single subject ->
    (rows, empty)."""
    rows = np.asarray(rows)
    if fraction <= 0:
        return rows, rows[:0]
    subject = ds.frames.subject.to_numpy()[rows]
    subjects = np.array(sorted(set(subject)))
    if len(subjects) < 2:
        return rows, rows[:0]
    rng = np.random.default_rng(seed)
    n_val = min(len(subjects) - 1, max(1, int(round(fraction * len(subjects)))))
    val_subjects = subjects[rng.permutation(len(subjects))[:n_val]]
    is_val = np.isin(subject, val_subjects)
    val = rows[is_val]
    if max_frames is not None and len(val) > max_frames:
        val = np.sort(rng.choice(val, max_frames, replace=False))
    return rows[~is_val], val
