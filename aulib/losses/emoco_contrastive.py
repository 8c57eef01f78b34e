"""Emotion-aware contrastive loss (EmoCo Eq.5): InfoNCE of a query against its positive key and K negatives.

    L_cont = -log  exp(<q, k+>/tau) / ( exp(<q, k+>/tau) + sum_i exp(<q, k_i->/tau) )

The vectors are already mapped by N (Eq.4) or by plain L2 normalisation; this function only scores them.
As in MoCo the positive logit is column 0 and the loss is cross-entropy with target 0. Negatives are given
per query (B, K, D) or shared by the whole batch (K, D); EmoCo's multi-queue gives each query the queue of its
own class, so the method computes the negative logits itself and calls :func:`info_nce_from_logits`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def info_nce_from_logits(pos: torch.Tensor, neg: torch.Tensor, tau: float = 0.2) -> torch.Tensor:
    """Eq.5 from similarities: ``pos`` (B,) = <q, k+>, ``neg`` (B, K) = <q, k_i->; mean over the batch."""
    if pos.ndim != 1 or neg.ndim != 2 or neg.shape[0] != pos.shape[0]:
        raise ValueError(f"expected pos (B,) and neg (B, K); got pos {tuple(pos.shape)}, neg {tuple(neg.shape)}")
    if tau <= 0:
        raise ValueError(f"temperature tau must be positive, got {tau}")
    logits = torch.cat([pos[:, None], neg], dim=1) / tau  # (B, 1+K), positive first
    target = torch.zeros(len(logits), dtype=torch.long, device=logits.device)
    logits = logits if logits.dtype == torch.float64 else logits.float()  # bf16 logits lose the softmax tail
    return F.cross_entropy(logits, target)  # Eq.5


def emoco_contrastive_loss(q: torch.Tensor, k_pos: torch.Tensor, k_neg: torch.Tensor, tau: float = 0.2) -> torch.Tensor:
    """Eq.5 for normalised queries ``q`` (B, D), positives ``k_pos`` (B, D) and negatives ``k_neg`` (B, K, D)
    (one set per query) or (K, D) (shared)."""
    if q.shape != k_pos.shape or q.ndim != 2:
        raise ValueError(f"q and k_pos must both be (B, D); got {tuple(q.shape)} and {tuple(k_pos.shape)}")
    pos = (q * k_pos).sum(-1)  # (B,)
    if k_neg.ndim == 2:
        neg = q @ k_neg.T  # (B, K)
    elif k_neg.ndim == 3:
        neg = torch.einsum("bd,bkd->bk", q, k_neg)  # (B, K)
    else:
        raise ValueError(f"k_neg must be (K, D) or (B, K, D); got {tuple(k_neg.shape)}")
    return info_nce_from_logits(pos, neg, tau)
