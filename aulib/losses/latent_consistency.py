"""AU-VAE consistency: compare predictions and labels in the frozen VAE encoder's latent space (aunet.md Eq.3)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

FORMS = ("paper", "official")


def latent_consistency(mu_p: torch.Tensor, logvar_p: torch.Tensor, mu_g: torch.Tensor, logvar_g: torch.Tensor,
                       form: str = "official") -> torch.Tensor:
    """Distance between the encoder's moments for predictions (p) and ground truth (g); all (B, d).

    ``"paper"``:    ||mu_p - mu_g||^2 + ||Sigma_p - Sigma_g||^2   (Eq.3), Sigma = diag(exp(logvar)),
                    squared norms summed over d, averaged over the batch.
    ``"official"``: MSE(mu_p, mu_g) + mean(sigma_p), sigma_p = exp(0.5 * logvar_p) the standard deviation, not
                    the variance: the official code (jingyang2017/AU-Net, train_video_vae.py ``loss_v =
                    torch.mean(v_s)``) reads v_s from its VAE in eval mode, which returns ``torch.exp(0.5*logvar)``
                    (models/AE.py). The ground-truth spread is not used; shrinking the prediction's spread pushes
                    it to a confident latent code. (Correction: a line of shared/reference/implementation_notes.md
                    was read as sigma^2; the official code adds the mean of sigma.)
    """
    if form == "paper":
        return ((mu_p - mu_g).pow(2).sum(-1) + (logvar_p.exp() - logvar_g.exp()).pow(2).sum(-1)).mean()  # Eq.3
    if form == "official":
        return F.mse_loss(mu_p, mu_g) + (0.5 * logvar_p).exp().mean()  # official code: + mean(sigma_p)
    raise ValueError(f"unknown consistency form {form!r}; choose one of {', '.join(FORMS)}")
