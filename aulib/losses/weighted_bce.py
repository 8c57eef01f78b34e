"""Weighted binary cross-entropy for imbalanced multi-label AU detection (AUNet, aunet.md Eq.1)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def weighted_bce(logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor,
                 valid: torch.Tensor | None = None) -> torch.Tensor:
    """L_cls = - sum_i w_i [y_i ln y^_i + (1 - y_i) ln(1 - y^_i)]   (Eq.1), averaged over the batch.

    logits, labels: (B, K); weights: (K,) e.g. ``aulib.data.stats.inverse_rate_weights`` (sum to 1);
    valid: optional bool (B, K), unknown labels contribute nothing.
    """
    if logits.shape != labels.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and labels {tuple(labels.shape)} differ in shape")
    if weights.shape != logits.shape[-1:]:
        raise ValueError(f"weights {tuple(weights.shape)} do not match {logits.shape[-1]} AUs")
    per = F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype), reduction="none")  # (B, K)
    if valid is not None:
        per = per * valid.to(per.dtype)
    return (per * weights.to(per.dtype)).sum(-1).mean()  # Eq.1 summed over AUs, mean over the batch
