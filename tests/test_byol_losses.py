"""BYOL global loss (RRL Eq.2) and local loss (Eq.3) against hand-worked vectors."""

import math

import pytest
import torch

from aulib.losses.byol import byol_loss, negative_cosine
from aulib.losses.local_byol import local_byol_loss


def test_negative_cosine_hand_worked():
    p = torch.tensor([[1.0, 0.0], [1.0, 1.0], [3.0, 4.0]])
    z = torch.tensor([[0.0, 1.0], [1.0, 0.0], [6.0, 8.0]])
    expected = torch.tensor([0.0, -1 / math.sqrt(2), -1.0])
    torch.testing.assert_close(negative_cosine(p, z), expected)


def test_byol_loss_mean_and_symmetrised():
    p1 = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    z2 = torch.tensor([[1.0, 0.0], [1.0, 0.0]])  # cos: 1, 0 -> mean -0.5
    p2 = torch.tensor([[1.0, 1.0], [-1.0, 0.0]])
    z1 = torch.tensor([[0.0, 1.0], [1.0, 0.0]])  # cos: 1/sqrt2, -1 -> mean -(1/sqrt2 - 1)/2
    assert byol_loss(p1, z2).item() == pytest.approx(-0.5)
    sym = 0.5 * (-0.5 + -(1 / math.sqrt(2) - 1) / 2)
    assert byol_loss(p1, z2, p2, z1).item() == pytest.approx(sym)


def test_byol_target_gets_no_gradient_and_shapes_checked():
    p = torch.randn(4, 8, requires_grad=True)
    z = torch.randn(4, 8, requires_grad=True)
    byol_loss(p, z).backward()
    assert p.grad is not None and z.grad is None
    with pytest.raises(ValueError, match="same shape"):
        byol_loss(torch.randn(4, 8), torch.randn(4, 7))
    with pytest.raises(ValueError, match="both"):
        byol_loss(torch.randn(4, 8), torch.randn(4, 8), p2=torch.randn(4, 8))


def test_local_loss_hand_worked():
    pred_local = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])  # (1, K=2, 2)
    target_local = torch.tensor([[[1.0, 0.0], [1.0, 0.0]]])
    pred_global = torch.tensor([[1.0, 0.0]])
    # k=1: cos=1 and 1; k=2: cos=0 and 1 -> -(1+1+0+1)/(2*2)
    assert local_byol_loss(pred_local, target_local, pred_global).item() == pytest.approx(-0.75)


def test_local_loss_shapes_checked():
    with pytest.raises(ValueError, match="pred_global"):
        local_byol_loss(torch.randn(2, 3, 4), torch.randn(2, 3, 4), torch.randn(2, 5))
    with pytest.raises(ValueError, match="equal shape"):
        local_byol_loss(torch.randn(2, 3, 4), torch.randn(2, 2, 4), torch.randn(2, 4))


@pytest.mark.parametrize("which", ["global", "local"])
def test_losses_fall_on_a_fixed_batch(which):
    torch.manual_seed(0)
    p = torch.randn(8, 3, 16, requires_grad=True)
    g = torch.randn(8, 16, requires_grad=True)
    t = torch.randn(8, 3, 16)
    opt = torch.optim.SGD([p, g], lr=50.0)

    def loss():
        return byol_loss(g, t[:, 0]) if which == "global" else local_byol_loss(p, t, g)

    first = loss().item()
    for _ in range(30):
        opt.zero_grad()
        loss().backward()
        opt.step()
    assert loss().item() < first - 0.3
