"""BYOL regression loss as RRL writes it (Eq.2): the negative cosine similarity between the online
prediction q_theta(z_1) and the target projection z_2, symmetrised over the two views.

    L_glo = - <z_2, q(z_1)> / (||z_2|| ||q(z_1)||)                      (Eq.2)

BYOL itself uses 2 - 2 cos; RRL's form differs only by an affine map (same gradients up to a factor 2).
The target side is treated as a constant (stop-gradient), as in BYOL.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def negative_cosine(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Per-row -cos(p, z) with z detached: (..., D), (..., D) -> (...)."""
    if p.shape != z.shape:
        raise ValueError(f"prediction {tuple(p.shape)} and target {tuple(z.shape)} must have the same shape")
    return -F.cosine_similarity(p.float(), z.detach().float(), dim=-1, eps=1e-8)


def byol_loss(p1: torch.Tensor, z2: torch.Tensor, p2: torch.Tensor | None = None,
              z1: torch.Tensor | None = None) -> torch.Tensor:
    """Eq.2, mean over the batch. With ``p2, z1`` given (view 2 through the online network, view 1 through
    the target), the loss is symmetrised: (L(p1, z2) + L(p2, z1)) / 2. Shapes (B, D)."""
    loss = negative_cosine(p1, z2).mean()  # Eq.2
    if p2 is None and z1 is None:
        return loss
    if p2 is None or z1 is None:
        raise ValueError("symmetrising needs both p2 (online prediction of view 2) and z1 (target projection of view 1)")
    return 0.5 * (loss + negative_cosine(p2, z1).mean())
