"""RRL's relation loss (Eq.4-6): optimal transport between the online AU vectors o_1..o_K (supplier) and
the target AU vectors t_1..t_K (demander), priced by the AU relation matrix.

    C_ij = 1 - M_ij                                                             (Eq.4)
    a_i = max(o_i . t_g, 0),   b_j = max(t_j . o_g, 0)   (normalised to sum 1)  (Eq.5)
    pi*  = Sinkhorn(C, a, b)
    L_corr = - sum_ij cos(o_i, t_j) pi*_ij                                      (Eq.6)

M_ij = P(AU_j | AU_i) counted on training labels (``aulib.data.stats.cooccurrence``). As in UniVIP (the
paper's [19]) the plan is a constant for the gradient: it is solved under ``no_grad`` and only the cosine
similarities carry gradient. Eq.5 uses l2-normalised vectors by default (UniVIP's choice; with raw vectors
the norm of o_i would decide its weight); ``normalize=False`` gives the raw dot products. All B problems of a
batch are solved at once by POT's batched solver (``ot.batch.solve_batch``).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from ot.batch import solve_batch


def relation_cost(m: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Eq.4: (K, K) cost 1 - M. Undefined entries of M (NaN: an AU never positive) count as unrelated
    (cost 1); M is clipped to [0, 1]."""
    m = torch.as_tensor(np.asarray(m, dtype=np.float32) if not torch.is_tensor(m) else m, dtype=torch.float32)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ValueError(f"relation matrix M must be square (K, K); got {tuple(m.shape)}")
    return 1.0 - torch.nan_to_num(m, nan=0.0).clamp(0.0, 1.0)  # Eq.4


def ot_marginals(local: torch.Tensor, global_: torch.Tensor, normalize: bool = True) -> torch.Tensor:
    """Eq.5: (B, K) weights max(v_i . g, 0) of the K local vectors ``local`` (B, K, D) against the other
    network's global vector ``global_`` (B, D), normalised to sum 1. A row whose weights are all zero (every
    AU vector points away from the global one) falls back to uniform weights."""
    if local.ndim != 3 or global_.shape != (local.shape[0], local.shape[2]):
        raise ValueError(f"expected local (B, K, D) and global (B, D); got {tuple(local.shape)}, {tuple(global_.shape)}")
    if normalize:
        local, global_ = F.normalize(local, dim=-1), F.normalize(global_, dim=-1)
    w = torch.einsum("bkd,bd->bk", local, global_).clamp_min(0.0)  # Eq.5: max(., 0)
    total = w.sum(1, keepdim=True)  # (B, 1)
    uniform = torch.full_like(w, 1.0 / w.shape[1])
    return torch.where(total > 0, w / total.clamp_min(1e-30), uniform)


@torch.no_grad()
def transport_plans(cost: torch.Tensor, a: torch.Tensor, b: torch.Tensor, reg: float = 0.05,
                    max_iter: int = 100, tol: float = 1e-6) -> torch.Tensor:
    """(B, K, K) entropic OT plans for B problems at once (POT ``ot.batch.solve_batch``, log-domain Sinkhorn).

    cost (K, K) shared or (B, K, K); a, b (B, K) marginals summing to 1. Solved in float32 without gradient
    (the plan is a constant of the loss)."""
    a, b = a.detach().float(), b.detach().float()
    cost = cost.to(a.device, torch.float32)
    if cost.ndim == 2:
        cost = cost.expand(a.shape[0], *cost.shape)
    if cost.shape != (a.shape[0], a.shape[1], b.shape[1]):
        raise ValueError(f"cost {tuple(cost.shape)} does not fit marginals a {tuple(a.shape)}, b {tuple(b.shape)}")
    res = solve_batch(cost.contiguous(), reg=reg, a=a, b=b, method="log_sinkhorn", max_iter=max_iter, tol=tol,
                      grad="detach")
    return res.plan


def ot_relation_loss(o_local: torch.Tensor, t_local: torch.Tensor, o_global: torch.Tensor, t_global: torch.Tensor,
                     cost: torch.Tensor, reg: float = 0.05, max_iter: int = 100, normalize: bool = True,
                     return_plan: bool = False):
    """Eq.6, mean over the batch. o_local (B, K, D) online AU vectors, t_local (B, K, D) target AU vectors
    (constants), o_global / t_global (B, D); cost (K, K) from :func:`relation_cost`.
    Returns the loss, or ``(loss, plan (B, K, K))`` with ``return_plan=True``."""
    t_local, t_global = t_local.detach(), t_global.detach()
    a = ot_marginals(o_local.detach(), t_global, normalize)  # (B, K) supplier: online AUs
    b = ot_marginals(t_local, o_global.detach(), normalize)  # (B, K) demander: target AUs
    plan = transport_plans(cost, a, b, reg=reg, max_iter=max_iter)  # (B, K, K), constant
    sim = torch.einsum("bid,bjd->bij", F.normalize(o_local.float(), dim=-1),
                       F.normalize(t_local.float(), dim=-1))  # (B, K, K) cos(o_i, t_j)
    loss = -(sim * plan).sum((1, 2)).mean()  # Eq.6
    return (loss, plan) if return_plan else loss
