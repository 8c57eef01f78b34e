"""Mutations that once passed the whole suite, each now caught by an independent re-derivation of the equation:
AU-VAE training without sampling / reconstructing the noisy labels (aunet.md Eq.2), EmoCo's lambda on the wrong
term (emoco.md Eq.1) and EmoCo enqueueing the keys before scoring them (MoCo order, Eq.5)."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from aulib.experiments.emoco import variant_config
from aulib.methods.aunet import VAEPretrain
from aulib.methods.emoco import EmoCo
from aulib.models.aunet import AUVAE

# ------------------------------------------------------------------------------------------ AU-VAE (Eq.2)
Y = torch.tensor([[1.0, 0.0, 1.0, 0.0], [0.0, 0.0, 1.0, 1.0], [1.0, 1.0, 0.0, 0.0]])  # clean labels (B=3, K=4)
U = torch.tensor([[0.9, 0.1, 0.5, 0.7], [0.2, 0.8, 0.95, 0.05], [0.6, 0.3, 0.0, 1.0]])  # the "rand_like" draw
EPS = torch.tensor([[1.5, -0.7, 0.3], [-1.2, 0.4, 2.0], [0.8, -1.6, -0.2]])            # the "randn_like" draw


@pytest.fixture
def fixed_noise(monkeypatch):
    """torch.rand_like / randn_like return the fixed draws above, so the step is a deterministic function."""
    monkeypatch.setattr(torch, "rand_like", lambda t, **kw: U.to(t.dtype).clone())
    monkeypatch.setattr(torch, "randn_like", lambda t, **kw: EPS.to(t.dtype).clone())


def _np_vae_loss(vae: AUVAE, y: np.ndarray, noise: float, kl_weight: float, sample: bool, target: str) -> float:
    """Eq.2 re-derived in numpy: y~ = y + (2u - 1) noise; (mu, logvar) = E(y~); z = mu + eps * exp(logvar / 2);
    loss = sum BCE-with-logits(D(z), y) + lambda * sum KL(N(mu, var) || N(0, I))."""
    p = {n: t.detach().double().numpy() for n, t in vae.named_parameters()}
    lin = lambda x, n: x @ p[f"{n}.weight"].T + p[f"{n}.bias"]  # noqa: E731
    y_t = y + (2 * U.double().numpy() - 1) * noise
    h = np.maximum(lin(y_t, "fc1"), 0)
    mu, lv = lin(h, "fc21"), lin(h, "fc22")
    z = mu + EPS.double().numpy() * np.exp(0.5 * lv) if sample else mu
    x = lin(np.maximum(lin(z, "fc3"), 0), "fc4")
    t = y if target == "clean" else y_t
    bce = np.sum(np.maximum(x, 0) - x * t + np.log1p(np.exp(-np.abs(x))))
    kl = 0.5 * np.sum(mu ** 2 + np.exp(lv) - 1 - lv)
    return float(bce + kl_weight * kl)


def _vae_step_loss() -> tuple[float, AUVAE]:
    torch.manual_seed(0)
    vae = AUVAE(n_aus=4, latent=3).train()
    out = VAEPretrain(vae, kl_weight=0.2, noise=0.2).training_step({"labels": Y}, 0)
    return float(out["loss"].detach()), vae


def test_vae_training_samples_z_with_the_reparameterisation(fixed_noise):
    """Kills: z = mu instead of mu + sigma * eps while training."""
    got, vae = _vae_step_loss()
    y = Y.double().numpy()
    assert got == pytest.approx(_np_vae_loss(vae, y, 0.2, 0.2, sample=True, target="clean"), rel=1e-5)
    assert abs(got - _np_vae_loss(vae, y, 0.2, 0.2, sample=False, target="clean")) > 1e-3


def test_vae_reconstructs_the_clean_labels_not_the_noisy_ones(fixed_noise):
    """Kills: the BCE of Eq.2 against y~ (the corrupted input) instead of the clean y."""
    got, vae = _vae_step_loss()
    y = Y.double().numpy()
    assert got == pytest.approx(_np_vae_loss(vae, y, 0.2, 0.2, sample=True, target="clean"), rel=1e-5)
    assert abs(got - _np_vae_loss(vae, y, 0.2, 0.2, sample=True, target="noisy")) > 1e-3


# ------------------------------------------------------------------------------------------ EmoCo (Eq.1, Eq.5)
TINY = dict(backbone="resnet_tiny", proj_hidden=32, proj_dim=8, queue_size=6)


def _np_unit(v):
    return v / np.linalg.norm(v)


def _np_info_nce(q, k, y, queue, W, tau):
    """Eq.4 + Eq.5 in numpy: each query against the keys of its own class queue, around prototype w~_y."""
    total = 0.0
    for qi, ki, yi in zip(q, k, y):
        w = _np_unit(W[yi])
        n = lambda v, w=w: _np_unit(_np_unit(v) - w)  # noqa: E731
        logits = [n(qi) @ n(ki) / tau] + [n(qi) @ n(kn) / tau for kn in queue[yi].T]
        total += -(logits[0] - math.log(sum(math.exp(z) for z in logits)))
    return total / len(q)


def _np_cross_entropy(logits, y):
    z = logits - logits.max(1, keepdims=True)
    return float(np.mean(np.log(np.exp(z).sum(1)) - z[np.arange(len(y)), y]))


def _emoco_step(lam: float):
    """One training step and, computed before it from the same batch and the queue as it was, q, k, the queue."""
    torch.manual_seed(0)
    m = EmoCo(variant_config("emoco", lam=lam, **TINY)).double().train()
    m.dictionary.queue.copy_(F.normalize(torch.randn_like(m.dictionary.queue), dim=1))
    batch = {"q": torch.rand(4, 3, 32, 32, dtype=torch.float64), "k": torch.rand(4, 3, 32, 32, dtype=torch.float64),
             "emotion": torch.tensor([2, 2, 5, 0])}
    with torch.no_grad():  # train-mode BatchNorm uses the batch statistics: the same batch gives the same q, k
        q = F.normalize(m.projector(m.encoder(batch["q"])), dim=1).numpy()
        k = F.normalize(m.key_projector(m.key_encoder(batch["k"])), dim=1).numpy()
    queue = m.dictionary.queue.clone().numpy()   # (C, D, K) before the step
    W = m.classifier.weight.detach().clone().numpy()
    out = m.training_step(batch, 0)
    return m, out, q, k, batch["emotion"].numpy(), queue, W


def test_emoco_lambda_weighs_the_emotion_term():
    """Kills: lambda * L_cont + L_emo instead of Eq.1's lambda * L_emo + L_cont."""
    lam = 0.3
    m, out, q, k, y, queue, W = _emoco_step(lam)
    l_emo = _np_cross_entropy(q @ W.T, y)                               # Eq.2, C is bias-free
    l_cont = _np_info_nce(q, k, y, queue, W, m.cfg.tau)                 # Eq.5 with N
    assert float(out["L_emo"]) == pytest.approx(l_emo, rel=1e-6)
    assert float(out["loss"]) == pytest.approx(lam * l_emo + l_cont, rel=1e-6)       # Eq.1
    assert abs(float(out["loss"]) - (l_emo + lam * l_cont)) > 1e-3


def test_emoco_scores_the_keys_before_enqueueing_them():
    """Kills: enqueueing this batch's keys first (a key would be its own / its batch-mates' negative)."""
    m, out, q, k, y, queue, W = _emoco_step(1.0)
    assert float(out["L_cont"]) == pytest.approx(_np_info_nce(q, k, y, queue, W, m.cfg.tau), rel=1e-6)
    # what the mutation would have scored: the queue with the batch written in at the pointers
    after = queue.copy()
    ptr = np.zeros(queue.shape[0], dtype=int)
    for ki, yi in zip(k, y):
        after[yi, :, ptr[yi]] = ki
        ptr[yi] += 1
    assert np.allclose(m.dictionary.queue.numpy(), after)  # the keys were enqueued, after the scoring
    assert abs(float(out["L_cont"]) - _np_info_nce(q, k, y, after, W, m.cfg.tau)) > 1e-3
