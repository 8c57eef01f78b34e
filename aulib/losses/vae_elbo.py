"""The AU-VAE objective (AUNet, aunet.md Eq.2): reconstruct the clean labels from corrupted ones + KL prior."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, diag(exp(logvar))) || N(0, I)) per sample: (B, d) -> (B,)."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(-1)


def vae_loss(recon_logits: torch.Tensor, labels: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor,
             kl_weight: float = 0.1) -> dict[str, torch.Tensor]:
    """L_vae = L_bce(y, D(E(y~))) + lambda L_kl   (Eq.2).

    recon_logits: (B, K) decoder output for the corrupted labels y~; labels: (B, K) clean y in {0, 1};
    mu, logvar: (B, d) encoder moments. Both terms are summed over AUs / latent dims and over the batch, as
    in the official code (BCE-with-logits with reduction "sum"); lambda = ``kl_weight`` in {0.1, 0.2, 0.3}.
    Returns {"loss", "bce", "kl"}.
    """
    bce = F.binary_cross_entropy_with_logits(recon_logits, labels.to(recon_logits.dtype), reduction="sum")
    kl = gaussian_kl(mu, logvar).sum()
    return {"loss": bce + kl_weight * kl, "bce": bce, "kl": kl}  # Eq.2
