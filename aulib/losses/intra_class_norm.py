"""Intra-class normalisation N (EmoCo Eq.4, from ANCOR): move a feature into its emotion-specific space.

    N(v) = normalize( normalize(v) - normalize(w_y) )

``w_y`` is row ``y`` of the emotion classifier's weight matrix; its L2-normalised version is the prototype
(centre) of class ``y`` on the unit sphere. Subtracting it makes the contrastive loss measure angles *around
the prototype* (angle beta of Fig.3), so pushing two same-class negatives apart no longer fights L_emo,
which pulls both towards the prototype.

Not a loss but a transform applied to q, k+ and k- before Eq.5; it lives here beside the loss it feeds.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def intra_class_normalize(v: torch.Tensor, prototypes: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """N(v) of Eq.4 for features ``v`` (..., D) and their class prototypes ``prototypes`` (..., D).

    ``prototypes`` broadcasts against ``v`` (e.g. one (D,) prototype for a (K, D) queue). It is detached here:
    the contrastive loss must not move the classifier's rows (implementation notes: the prototype is fixed
    inside N; only L_emo trains W). A zero prototype gives plain L2 normalisation.
    """
    if v.shape[-1] != prototypes.shape[-1]:
        raise ValueError(
            f"feature width {v.shape[-1]} does not match prototype width {prototypes.shape[-1]} "
            f"(v {tuple(v.shape)}, prototypes {tuple(prototypes.shape)})"
        )
    w = F.normalize(prototypes.detach(), dim=-1, eps=eps)  # w~_y; zero stays zero
    return F.normalize(F.normalize(v, dim=-1, eps=eps) - w, dim=-1, eps=eps)  # Eq.4
