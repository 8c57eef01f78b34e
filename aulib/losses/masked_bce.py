"""Multi-label BCE over the known labels only: the supervised loss every AU detector here shares.

    L = sum_{i,k} v_ik * w_ik * BCE(x_ik, y_ik) / sum_{i,k} v_ik

logits x, labels y and the known-label mask v are (B, K); unknown codes (e.g. 9) may sit in y where v = 0.
``pos_weight`` (K,) scales the positive term (as ``BCEWithLogitsLoss``); ``weight`` (B, K) scales each term
(cost manipulation, :func:`cost_weights`). ``reduction="per_au"`` averages over each AU's known labels first and then over the AUs
present in the batch (the CNN study's Sec. II-C loss; 0 when no AU has a known label).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def masked_bce(logits: torch.Tensor, labels: torch.Tensor, valid: torch.Tensor | None = None,
               pos_weight: torch.Tensor | None = None, weight: torch.Tensor | None = None,
               reduction: str = "mean") -> torch.Tensor:
    """Mean BCE-with-logits over known labels (``reduction="mean"``), or per-AU means averaged over the AUs
    that have a known label in the batch (``reduction="per_au"``)."""
    if reduction not in ("mean", "per_au"):
        raise ValueError(f"reduction={reduction!r}; choose 'mean' or 'per_au'")
    y = labels.to(torch.float32)
    v = torch.ones_like(y) if valid is None else valid.to(torch.float32)
    y = y * v  # unknown codes become 0 where they are masked out anyway
    loss = F.binary_cross_entropy_with_logits(logits.float(), y, reduction="none", pos_weight=pos_weight)  # (B, K)
    if weight is not None:
        loss = loss * weight
    if reduction == "mean":
        return (loss * v).sum() / v.sum().clamp(min=1)
    count = v.sum(0)  # (K,)
    per_au = (loss * v).sum(0) / count.clamp_min(1)  # (K,)
    present = count > 0
    if not present.any():  # nothing to learn from: a zero that keeps the graph
        return (loss * v).sum()
    return per_au[present].mean()


def cost_weights(labels: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """(B, K) BCE weights of the cost-manipulation method for one batch: AU k's positives weigh
    ``#neg_k / #pos_k`` counted in this batch (valid labels only), negatives 1, unknown labels 0. An AU with
    no positive in the batch leaves its negatives at 1 (nothing to up-weight)."""
    y = labels.float()
    v = torch.ones_like(y, dtype=torch.bool) if valid is None else valid.bool()
    pos = (y > 0.5) & v
    neg = (y <= 0.5) & v
    n_pos = pos.sum(0).float()  # (K,)
    n_neg = neg.sum(0).float()
    ratio = torch.where(n_pos > 0, n_neg / n_pos.clamp(min=1), torch.zeros_like(n_pos))
    return torch.where(pos, ratio.expand_as(y), neg.float())


def balanced_pos_weight(labels: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """(K,) BCE ``pos_weight`` that balances each AU over the known labels of a training set: #neg / #pos
    (1 for an AU without positives). labels, valid: (N, K)."""
    y = labels.to(torch.float32)
    v = torch.ones_like(y) if valid is None else valid.to(torch.float32)
    pos, neg = (y * v).sum(0), ((1 - y) * v).sum(0)
    return torch.where(pos > 0, neg / pos.clamp(min=1), torch.ones_like(pos))
