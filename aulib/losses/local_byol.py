"""RRL's local loss (Eq.3): each AU's online prediction regresses the target projection of the same AU
region, and the online *global* prediction regresses every target AU projection as well.

    L_loc = - 1/(2K) sum_k [ cos(q(z_1^k), g_xi(t_k)) + cos(g_xi(t_k), q(z_1^g)) ]       (Eq.3)

Target vectors are constants (stop-gradient).
"""

from __future__ import annotations

import torch

from aulib.losses.byol import negative_cosine


def local_byol_loss(pred_local: torch.Tensor, target_local: torch.Tensor, pred_global: torch.Tensor) -> torch.Tensor:
    """Eq.3, mean over the batch. pred_local (B, K, D) = q(z_1^k); target_local (B, K, D) = g_xi(t_k);
    pred_global (B, D) = q(z_1^g)."""
    if pred_local.ndim != 3 or pred_local.shape != target_local.shape:
        raise ValueError(f"expected pred_local and target_local (B, K, D) of equal shape; got "
                         f"{tuple(pred_local.shape)} and {tuple(target_local.shape)}")
    if pred_global.shape != (pred_local.shape[0], pred_local.shape[2]):
        raise ValueError(f"pred_global must be (B, D) = {(pred_local.shape[0], pred_local.shape[2])}; "
                         f"got {tuple(pred_global.shape)}")
    same_au = negative_cosine(pred_local, target_local)  # (B, K)
    glob_to_au = negative_cosine(pred_global[:, None].expand_as(target_local), target_local)  # (B, K)
    return (same_au + glob_to_au).mean(1).mul(0.5).mean()  # Eq.3: 1/(2K) sum_k [..]
