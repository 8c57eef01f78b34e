"""Per-AU detection metrics that ignore unknown labels.

Inputs are ``(N, K)`` arrays or tensors: ``y`` the 0/1 labels (unknown codes such as 9 allowed where
``valid`` is False), ``p`` probabilities (thresholded at ``threshold``) or 0/1 predictions, ``valid`` the
``(N, K)`` mask of known labels (default: every label that is 0 or 1). Every function returns one value per AU
(``nan`` for an AU with no known label); means over AUs skip those ``nan``s.

ROC-AUC ranks the scores as given (sklearn's ``roc_auc_score``), so it needs probabilities, not 0/1 decisions, to
say more than balanced accuracy. F1 is the positive class's F1 (0 when an AU has neither a predicted nor a true positive, as sklearn's
``zero_division=0``). "accuracy" is the plain fraction of correct labels; "balanced accuracy" is
(TPR + TNR) / 2, which is the expected accuracy on batches holding as many positives as negatives;
:func:`balanced_batch_accuracy` scores the CNN study's sampled balanced batches directly.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch


def _np(x) -> np.ndarray:
    if torch.is_tensor(x):
        x = x.detach().float().cpu().numpy() if x.dtype != torch.bool else x.detach().cpu().numpy()
    return np.asarray(x)


def _prep(y, p, valid, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    y, p = _np(y).astype(np.float64), _np(p).astype(np.float64)
    if y.ndim == 1:
        y = y[:, None]
    if p.ndim == 1:
        p = p[:, None]
    if y.shape != p.shape:
        raise ValueError(f"labels {y.shape} and predictions {p.shape} differ in shape")
    if valid is None:
        v = (y == 0) | (y == 1)
    else:
        v = _np(valid).astype(bool)
        if v.ndim == 1:
            v = v[:, None]
        if v.shape != y.shape:
            raise ValueError(f"valid {v.shape} and labels {y.shape} differ in shape")
        bad = v & ~((y == 0) | (y == 1))
        if bad.any():
            r, c = np.argwhere(bad)[0]
            raise ValueError(f"label {y[r, c]} at row {r}, AU column {c} is marked valid but is not 0/1")
    if np.isnan(p[v]).any():
        r, c = np.argwhere(v & np.isnan(p))[0]
        raise ValueError(f"prediction is NaN at row {r}, AU column {c}")
    return y == 1, p >= threshold, v


def confusion_per_au(y, p, valid=None, threshold: float = 0.5) -> dict[str, np.ndarray]:
    """Counts per AU over known labels: ``tp``, ``fp``, ``fn``, ``tn`` (each (K,))."""
    t, q, v = _prep(y, p, valid, threshold)
    return {
        "tp": (t & q & v).sum(0), "fp": (~t & q & v).sum(0),
        "fn": (t & ~q & v).sum(0), "tn": (~t & ~q & v).sum(0),
    }


def f1_per_au(y, p, valid=None, threshold: float = 0.5) -> np.ndarray:
    """(K,) F1 of the positive class per AU over known labels (nan where an AU has no known label)."""
    c = confusion_per_au(y, p, valid, threshold)
    n = c["tp"] + c["fp"] + c["fn"] + c["tn"]
    denom = 2 * c["tp"] + c["fp"] + c["fn"]
    f1 = np.where(denom > 0, 2 * c["tp"] / np.maximum(denom, 1), 0.0)
    return np.where(n > 0, f1, np.nan)


def mean_f1(y, p, valid=None, threshold: float = 0.5) -> float:
    """Average of :func:`f1_per_au` over the AUs that have known labels."""
    return float(np.nanmean(f1_per_au(y, p, valid, threshold)))


def accuracy_per_au(y, p, valid=None, threshold: float = 0.5) -> np.ndarray:
    """(K,) fraction of known labels predicted correctly."""
    c = confusion_per_au(y, p, valid, threshold)
    n = c["tp"] + c["fp"] + c["fn"] + c["tn"]
    return np.where(n > 0, (c["tp"] + c["tn"]) / np.maximum(n, 1), np.nan)


def balanced_accuracy_per_au(y, p, valid=None, threshold: float = 0.5) -> np.ndarray:
    """(K,) (TPR + TNR) / 2 over known labels; an AU lacking positives or negatives uses the rate it has."""
    c = confusion_per_au(y, p, valid, threshold)
    npos, nneg = c["tp"] + c["fn"], c["tn"] + c["fp"]
    tpr = np.where(npos > 0, c["tp"] / np.maximum(npos, 1), np.nan)
    tnr = np.where(nneg > 0, c["tn"] / np.maximum(nneg, 1), np.nan)
    with np.errstate(invalid="ignore"):
        return np.nanmean(np.stack([tpr, tnr]), axis=0) if len(tpr) else tpr


def auc_per_au(y, p, valid=None) -> np.ndarray:
    """(K,) ROC-AUC of the scores ``p`` per AU over known labels (``sklearn.metrics.roc_auc_score``); nan where
    an AU lacks positives or negatives. Constant scores give 0.5."""
    from sklearn.metrics import roc_auc_score

    t, _, v = _prep(y, p, valid, 0.5)
    s = _np(p).astype(np.float64)
    if s.ndim == 1:
        s = s[:, None]
    out = np.full(t.shape[1], np.nan)
    for k in range(t.shape[1]):
        yk, sk = t[v[:, k], k], s[v[:, k], k]
        if yk.any() and not yk.all():
            out[k] = roc_auc_score(yk, sk)
    return out


def balanced_batch_accuracy(p, y, groups, threshold: float = 0.5) -> np.ndarray:
    """(K,) the CNN study's accuracy: AU k is scored only on the images sampled for AU k.

    ``p``/``y`` are (M, K) predictions and labels of the concatenated test batches of an
    :class:`~aulib.train.samplers.OversamplingBatchSampler` (each batch holds ``n_pos`` positives and
    ``n_neg`` negatives of every AU), ``groups`` (M,) is the AU each row was sampled for (the sampler's
    ``groups`` tiled over the batches). Accuracy of AU k = fraction of its rows whose k-th prediction is right.
    """
    p, y = _np(p).astype(np.float64), _np(y).astype(np.float64)
    g = _np(groups).astype(int)
    if p.shape != y.shape or p.ndim != 2 or g.shape != (len(p),):
        raise ValueError(f"need p, y (M, K) and groups (M,); got {p.shape}, {y.shape}, {g.shape}")
    k_idx = np.arange(p.shape[1])
    out = np.full(p.shape[1], np.nan)
    for k in k_idx:
        rows = g == k
        if rows.any():
            out[k] = np.mean((p[rows, k] >= threshold) == (y[rows, k] == 1))
    return out


def per_au_table(y, p, valid=None, aus: Sequence | None = None, threshold: float = 0.5,
                 **columns) -> pd.DataFrame:
    """Tidy per-AU frame: ``au``, ``f1``, ``auc``, ``accuracy``, ``balanced_accuracy``, ``n_pos``, ``n_valid``, plus
    the constant ``columns`` given (e.g. ``fold=1, seed=0, variant="baseline"``) as leading columns. F1, accuracy
    and balanced accuracy threshold ``p`` at ``threshold``; AUC ranks ``p`` as given."""
    c = confusion_per_au(y, p, valid, threshold)
    k = len(c["tp"])
    if aus is None:
        aus = [f"AU{i}" for i in range(k)]
    aus = [a if isinstance(a, str) else f"AU{a}" for a in aus]
    if len(aus) != k:
        raise ValueError(f"{len(aus)} AU names for {k} label columns")
    df = pd.DataFrame({
        "au": aus,
        "f1": f1_per_au(y, p, valid, threshold),
        "auc": auc_per_au(y, p, valid),
        "accuracy": accuracy_per_au(y, p, valid, threshold),
        "balanced_accuracy": balanced_accuracy_per_au(y, p, valid, threshold),
        "n_pos": c["tp"] + c["fn"],
        "n_valid": c["tp"] + c["fp"] + c["fn"] + c["tn"],
    })
    for i, (name, value) in enumerate(columns.items()):
        df.insert(i, name, value)
    return df


def action_conditional_scores(y, p, valid=None, threshold: float = 0.5) -> dict[str, float]:
    """Action-conditional precision, recall and F1 (Tirupattur et al., CVPR 2021, "Modeling multi-label action
    dependencies", Sec. 5; the "dependency F1-score [65]" of AUNet's Table X), for co-occurrence (t = 0).

    For every ordered pair (i, j), i != j, restricted to the frames where AU j is present in the labels:
    P(i|j) = TP_i / (TP_i + FP_i) (0 if AU i is never predicted there), R(i|j) = TP_i / (TP_i + FN_i); a pair
    counts only if AU i has a positive label in those frames. P_AC and R_AC are the means over the counted pairs
    and F1_AC = 2 P_AC R_AC / (P_AC + R_AC) (the F1 of the means, as the authors' code does). Unknown labels
    (``valid`` False) drop a frame from the conditioning set of j, or from the counts of i. ``nan`` when no pair
    counts. Returns {"precision", "recall", "f1", "pairs"}."""
    t, q, v = _prep(y, p, valid, threshold)
    prec, rec = [], []
    for j in range(t.shape[1]):
        given = t[:, j] & v[:, j]                                    # frames where AU j is present
        for i in range(t.shape[1]):
            m = given & v[:, i]
            tp, fp, fn = (t[m, i] & q[m, i]).sum(), (~t[m, i] & q[m, i]).sum(), (t[m, i] & ~q[m, i]).sum()
            if i == j or tp + fn == 0:
                continue
            prec.append(tp / (tp + fp) if tp + fp else 0.0)
            rec.append(tp / (tp + fn))
    if not prec:
        return {"precision": float("nan"), "recall": float("nan"), "f1": float("nan"), "pairs": 0}
    pr, re = float(np.mean(prec)), float(np.mean(rec))
    return {"precision": pr, "recall": re, "f1": 2 * pr * re / (pr + re) if pr + re else 0.0, "pairs": len(prec)}


def action_conditional_f1(y, p, valid=None, threshold: float = 0.5) -> float:
    """F1_AC of :func:`action_conditional_scores`: AUNet's Table X "dependency F1-score"."""
    return action_conditional_scores(y, p, valid, threshold)["f1"]
