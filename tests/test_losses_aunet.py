"""AUNet's losses (Eq.1-3) against hand computations and independent references."""

import math

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import log_loss

from aulib.losses.latent_consistency import latent_consistency
from aulib.losses.vae_elbo import gaussian_kl, vae_loss
from aulib.losses.weighted_bce import weighted_bce


def test_weighted_bce_matches_hand_computation():
    logits = torch.tensor([[0.0, 2.0], [-1.0, 0.5]])
    y = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    w = torch.tensor([0.25, 0.75])
    p = 1 / (1 + np.exp(-logits.numpy()))
    per = -(y.numpy() * np.log(p) + (1 - y.numpy()) * np.log(1 - p))
    expected = (per * w.numpy()).sum(1).mean()
    assert math.isclose(float(weighted_bce(logits, y, w)), expected, rel_tol=1e-6)


def test_weighted_bce_equal_weights_is_sklearn_log_loss_over_k():
    rng = np.random.default_rng(0)
    logits = torch.tensor(rng.normal(size=(50, 4)), dtype=torch.float64)
    y = torch.tensor(rng.integers(0, 2, (50, 4)), dtype=torch.float64)
    w = torch.full((4,), 0.25, dtype=torch.float64)
    p = torch.sigmoid(logits).numpy()
    ref = np.mean([log_loss(y[:, k].numpy(), p[:, k], labels=[0, 1]) for k in range(4)])  # mean over AUs
    assert math.isclose(float(weighted_bce(logits, y, w)), ref, rel_tol=1e-9)


def test_weighted_bce_ignores_unknown_labels():
    logits = torch.tensor([[0.3, -4.0]])
    w = torch.tensor([0.5, 0.5])
    valid = torch.tensor([[True, False]])
    a = weighted_bce(logits, torch.tensor([[1.0, 0.0]]), w, valid)
    b = weighted_bce(logits, torch.tensor([[1.0, 1.0]]), w, valid)  # the unknown entry's value is irrelevant
    assert torch.allclose(a, b)


def test_weighted_bce_falls_on_a_fixed_batch():
    torch.manual_seed(0)
    x, y = torch.randn(32, 5), torch.randint(0, 2, (32, 3)).float()
    lin = torch.nn.Linear(5, 3)
    opt = torch.optim.SGD(lin.parameters(), lr=0.5)
    w = torch.tensor([0.2, 0.3, 0.5])
    first = weighted_bce(lin(x), y, w).item()
    for _ in range(50):
        opt.zero_grad()
        weighted_bce(lin(x), y, w).backward()
        opt.step()
    assert weighted_bce(lin(x), y, w).item() < first


def test_vae_loss_hand_computation():
    # one sample, K=2, d=1: BCE-with-logits summed + lambda * KL(N(mu, s^2) || N(0, 1))
    recon = torch.tensor([[0.0, math.log(3.0)]])  # sigmoid -> 0.5, 0.75
    y = torch.tensor([[1.0, 0.0]])
    mu, logvar = torch.tensor([[1.0]]), torch.tensor([[math.log(4.0)]])  # sigma^2 = 4
    bce = -math.log(0.5) - math.log(1 - 0.75)
    kl = 0.5 * (4.0 + 1.0 ** 2 - 1.0 - math.log(4.0))  # standard closed form for a 1-D Gaussian
    out = vae_loss(recon, y, mu, logvar, kl_weight=0.2)
    assert math.isclose(float(out["bce"]), bce, rel_tol=1e-6)
    assert math.isclose(float(out["kl"]), kl, rel_tol=1e-6)
    assert math.isclose(float(out["loss"]), bce + 0.2 * kl, rel_tol=1e-6)


def test_gaussian_kl_against_torch_distributions():
    torch.manual_seed(1)
    mu, logvar = torch.randn(6, 3), torch.randn(6, 3)
    q = torch.distributions.Normal(mu, (0.5 * logvar).exp())
    p = torch.distributions.Normal(torch.zeros(3), torch.ones(3))
    ref = torch.distributions.kl_divergence(q, p).sum(-1)
    assert torch.allclose(gaussian_kl(mu, logvar), ref, atol=1e-5)


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 6), st.integers(1, 5), st.integers(0, 1000))
def test_paper_consistency_is_zero_iff_moments_equal(b, d, seed):
    g = torch.Generator().manual_seed(seed)
    mu, lv = torch.randn(b, d, generator=g), torch.randn(b, d, generator=g)
    assert float(latent_consistency(mu, lv, mu.clone(), lv.clone(), "paper")) == 0.0
    assert float(latent_consistency(mu + 0.1, lv, mu, lv, "paper")) > 0


def test_consistency_forms_hand_computation():
    mu_p, mu_g = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 0.0]])
    lv_p, lv_g = torch.tensor([[0.0, math.log(2.0)]]), torch.tensor([[0.0, 0.0]])  # var_p = (1, 2), var_g = (1, 1)
    assert math.isclose(float(latent_consistency(mu_p, lv_p, mu_g, lv_g, "paper")), 1.0 + 1.0, rel_tol=1e-6)
    # official: MSE(mu) = mean((1, 0)^2) = 0.5; mean(sigma_p) = (1 + sqrt 2) / 2 (the std, not the variance)
    assert math.isclose(float(latent_consistency(mu_p, lv_p, mu_g, lv_g, "official")), 0.5 + (1 + math.sqrt(2)) / 2,
                        rel_tol=1e-6)


def test_consistency_unknown_form_lists_valid():
    z = torch.zeros(1, 2)
    try:
        latent_consistency(z, z, z, z, "moments")
    except ValueError as e:
        assert "paper" in str(e) and "official" in str(e)
    else:
        raise AssertionError("an unknown form must raise")
