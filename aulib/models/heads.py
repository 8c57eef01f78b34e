"""Small heads shared by the methods: BYOL/MoCo MLPs and the linear probe's heads."""

from __future__ import annotations

from torch import nn


def mlp(in_dim: int, hidden: int, out_dim: int, norm: bool = True, last_norm: bool = False) -> nn.Sequential:
    """Linear - [BN] - ReLU - Linear [- BN (no affine)]: BYOL's projector and predictor (norm=True), MoCo v2's
    projection head (norm=False)."""
    layers: list[nn.Module] = [nn.Linear(in_dim, hidden, bias=not norm)]
    if norm:
        layers.append(nn.BatchNorm1d(hidden))
    layers += [nn.ReLU(inplace=True), nn.Linear(hidden, out_dim)]
    if last_norm:
        layers.append(nn.BatchNorm1d(out_dim, affine=False))
    return nn.Sequential(*layers)


def linear_head(in_dim: int, out_dim: int, kind: str = "linear") -> nn.Module:
    """``"linear"``: Linear(D, K); ``"bn_linear"``: BatchNorm1d(D) + Linear(D, K, bias=False), RRL's linear
    evaluation ("a batch-norm layer followed by a linear fully connected layer with no bias", rrl.md Sec. 3).
    The BatchNorm keeps its affine shift beta, so the logits carry the offset W beta: without it (affine=False)
    every logit has mean 0 over the training features and the decision boundary cannot leave the mean."""
    if kind == "linear":
        return nn.Linear(in_dim, out_dim)
    if kind == "bn_linear":
        return nn.Sequential(nn.BatchNorm1d(in_dim), nn.Linear(in_dim, out_dim, bias=False))
    raise ValueError(f"head kind {kind!r}; choose 'linear' or 'bn_linear'")
