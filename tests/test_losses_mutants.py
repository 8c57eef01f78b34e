"""Tests that kill the mutants `nox -s mutants` found alive in aulib/losses (issue 14): each pins one term or
argument of an equation against an independent reference (hand-worked numbers, numpy/scipy, POT)."""

from __future__ import annotations

import numpy as np
import ot
import pytest
import torch
from scipy.spatial.distance import cosine as cosine_distance
from scipy.special import log_expit, logsumexp

from aulib.losses.byol import negative_cosine
from aulib.losses.emoco_contrastive import emoco_contrastive_loss, info_nce_from_logits
from aulib.losses.intra_class_norm import intra_class_normalize
from aulib.losses.masked_bce import balanced_pos_weight, cost_weights, masked_bce
from aulib.losses.ot_relation import ot_marginals, ot_relation_loss, relation_cost, transport_plans
from aulib.losses.weighted_bce import weighted_bce


def _bce(x, y, pos_weight=1.0):
    """-(pw y log sigma(x) + (1 - y) log(1 - sigma(x))), elementwise, numpy float64."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    return -(pos_weight * y * log_expit(x) + (1 - y) * log_expit(-x))


def _unit(x, eps=0.0):
    """x / max(||x||, eps) over the last axis (torch's F.normalize)."""
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), eps)


# --- BYOL (RRL Eq.2) -------------------------------------------------------------------------------------------

def test_negative_cosine_is_scale_free_for_short_vectors():
    """cos does not depend on the vectors' length, also for norms far below 1 (eps only guards zero)."""
    rng = np.random.default_rng(0)
    p, z = rng.normal(size=(4, 5)) * 1e-3, rng.normal(size=(4, 5)) * 1e-3
    ref = [-(1 - cosine_distance(p[i], z[i])) for i in range(4)]
    got = negative_cosine(torch.tensor(p, dtype=torch.float32), torch.tensor(z, dtype=torch.float32))
    np.testing.assert_allclose(got.numpy(), ref, rtol=1e-5, atol=1e-6)


# --- weighted BCE (AUNet Eq.1) ---------------------------------------------------------------------------------

def test_weighted_bce_masks_unknown_labels_and_takes_integer_labels():
    logits = np.array([[0.5, -1.0, 2.0], [-0.3, 0.8, -2.0]])
    labels = np.array([[1, 0, 1], [0, 1, 9]], dtype=np.int8)  # 9: unknown, masked below
    valid = np.array([[True, True, False], [True, True, False]])
    w = np.array([0.5, 0.3, 0.2])
    y = np.where(valid, labels, 0)
    ref = (_bce(logits, y) * valid * w).sum(1).mean()  # Eq.1 over the known labels
    got = weighted_bce(torch.tensor(logits, dtype=torch.float32), torch.tensor(y), torch.tensor(w, dtype=torch.float32),
                       torch.tensor(valid))
    assert got.item() == pytest.approx(ref, rel=1e-6)


def test_weighted_bce_refuses_mismatched_shapes():
    with pytest.raises(ValueError, match="differ in shape"):
        weighted_bce(torch.zeros(2, 3), torch.zeros(2, 4), torch.ones(3))
    with pytest.raises(ValueError, match="do not match"):
        weighted_bce(torch.zeros(2, 3), torch.zeros(2, 3), torch.ones(4))


# --- intra-class normalisation (EmoCo Eq.4) --------------------------------------------------------------------

def test_intra_class_normalize_works_on_the_last_axis_of_3d_features():
    """(B, K, D) features with (B, 1, D) prototypes: every normalisation is over D (Eq.4)."""
    rng = np.random.default_rng(1)
    v, w = rng.normal(size=(2, 3, 4)), rng.normal(size=(2, 1, 4))
    ref = _unit(_unit(v) - _unit(w))
    got = intra_class_normalize(torch.tensor(v), torch.tensor(w))
    np.testing.assert_allclose(got.numpy(), ref, rtol=1e-10, atol=1e-12)


def test_intra_class_normalize_uses_the_given_eps_everywhere():
    """Each of the three normalisations divides by max(||x||, eps) with the caller's eps."""
    v = np.array([[0.03, 0.04], [0.0, 0.1]])  # norms 0.05, 0.1
    w = np.array([[0.0, 0.06], [0.08, 0.0]])  # norms 0.06, 0.08
    eps = 0.5
    ref = _unit(_unit(v, eps) - _unit(w, eps), eps)
    got = intra_class_normalize(torch.tensor(v), torch.tensor(w), eps=eps)
    np.testing.assert_allclose(got.numpy(), ref, rtol=1e-10, atol=1e-12)


# --- EmoCo InfoNCE (Eq.5) --------------------------------------------------------------------------------------

def _info_nce_ref(pos, neg, tau):
    logits = np.concatenate([pos[:, None], neg], 1) / tau
    return float(np.mean(logsumexp(logits, axis=1) - logits[:, 0]))


def test_info_nce_default_temperature_is_emocos_0_2():
    rng = np.random.default_rng(2)
    pos, neg = rng.uniform(-1, 1, 4), rng.uniform(-1, 1, (4, 6))
    got = info_nce_from_logits(torch.tensor(pos), torch.tensor(neg))
    assert got.item() == pytest.approx(_info_nce_ref(pos, neg, 0.2), rel=1e-10)


def test_emoco_contrastive_loss_passes_its_temperature_on():
    rng = np.random.default_rng(3)
    q, kp = _unit(rng.normal(size=(3, 5))), _unit(rng.normal(size=(3, 5)))
    kn = _unit(rng.normal(size=(3, 4, 5)))
    pos, neg = (q * kp).sum(1), np.einsum("bd,bkd->bk", q, kn)
    got = emoco_contrastive_loss(torch.tensor(q), torch.tensor(kp), torch.tensor(kn), tau=0.07)
    assert got.item() == pytest.approx(_info_nce_ref(pos, neg, 0.07), rel=1e-10)


def test_info_nce_keeps_float64_and_lifts_bfloat16_to_float32():
    rng = np.random.default_rng(4)
    pos, neg = rng.uniform(-1, 1, 8), rng.uniform(-1, 1, (8, 16))
    out64 = info_nce_from_logits(torch.tensor(pos), torch.tensor(neg), 0.1)
    assert out64.dtype == torch.float64
    assert out64.item() == pytest.approx(_info_nce_ref(pos, neg, 0.1), rel=1e-12)
    out16 = info_nce_from_logits(torch.tensor(pos).bfloat16(), torch.tensor(neg).bfloat16(), 0.1)
    assert out16.dtype == torch.float32


def test_contrastive_losses_refuse_bad_shapes():
    with pytest.raises(ValueError, match="expected pos"):
        info_nce_from_logits(torch.zeros(3), torch.zeros(2, 4))  # batch sizes differ
    with pytest.raises(ValueError, match="expected pos"):
        info_nce_from_logits(torch.zeros(3, 1), torch.zeros(3, 4))  # pos is not (B,)
    with pytest.raises(ValueError, match="q and k_pos"):
        emoco_contrastive_loss(torch.zeros(3, 4), torch.zeros(3, 5), torch.zeros(6, 4))


# --- masked BCE, cost weights, balanced pos_weight -------------------------------------------------------------

LOGITS = np.array([[0.5, -1.0, 2.0], [-0.3, 0.8, -2.0], [1.5, 0.2, 0.1], [-0.7, -0.4, 0.9]])
LABELS = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 1]], dtype=np.int8)


def test_masked_bce_without_a_mask_is_the_plain_mean_bce_also_for_integer_labels():
    got = masked_bce(torch.tensor(LOGITS), torch.tensor(LABELS))
    assert got.item() == pytest.approx(_bce(LOGITS, LABELS).mean(), rel=1e-6)


def test_masked_bce_applies_pos_weight_and_weight():
    valid = np.array([[1, 1, 0], [1, 1, 1], [0, 1, 1], [1, 1, 1]], dtype=bool)
    pw = np.array([3.0, 0.5, 2.0])
    w = np.arange(1, 13, dtype=np.float64).reshape(4, 3) / 6
    ref = (_bce(LOGITS, LABELS, pw) * w * valid).sum() / valid.sum()
    got = masked_bce(torch.tensor(LOGITS), torch.tensor(LABELS), torch.tensor(valid),
                     pos_weight=torch.tensor(pw, dtype=torch.float32), weight=torch.tensor(w, dtype=torch.float32))
    assert got.item() == pytest.approx(ref, rel=1e-6)


def test_masked_bce_with_a_single_known_label_is_that_labels_bce():
    valid = np.zeros((4, 3), dtype=bool)
    valid[2, 1] = True
    got = masked_bce(torch.tensor(LOGITS), torch.tensor(LABELS), torch.tensor(valid))
    assert got.item() == pytest.approx(_bce(LOGITS[2, 1], LABELS[2, 1]), rel=1e-6)


def test_masked_bce_per_au_averages_only_the_aus_with_a_known_label():
    valid = np.array([[1, 1, 0], [0, 1, 0], [0, 1, 0], [0, 0, 0]], dtype=bool)  # AU0: 1 known, AU1: 3, AU2: none
    per = _bce(LOGITS, LABELS)
    ref = np.mean([per[0, 0], per[:3, 1].mean()])
    got = masked_bce(torch.tensor(LOGITS), torch.tensor(LABELS), torch.tensor(valid), reduction="per_au")
    assert got.item() == pytest.approx(ref, rel=1e-6)
    with pytest.raises(ValueError, match="reduction"):
        masked_bce(torch.tensor(LOGITS), torch.tensor(LABELS), reduction="sum")


def test_cost_weights_and_balanced_pos_weight_without_a_mask():
    y = torch.tensor([[1, 0], [1, 0], [0, 1], [0, 0], [0, 0]], dtype=torch.int8)
    # AU0: 2 positives, 3 negatives -> positives weigh 3/2; AU1: 1 positive, 4 negatives -> 4
    expected = torch.tensor([[1.5, 1.0], [1.5, 1.0], [1.0, 4.0], [1.0, 1.0], [1.0, 1.0]])
    torch.testing.assert_close(cost_weights(y), expected)
    torch.testing.assert_close(balanced_pos_weight(y), torch.tensor([1.5, 4.0]))


# --- RRL relation loss (Eq.4-6) --------------------------------------------------------------------------------

def _rrl_batch(seed=5, b=2, k=3, d=4):
    g = torch.Generator().manual_seed(seed)
    scale = torch.tensor([1.0, 10.0, 0.1])[:k, None]  # AU vectors of very different lengths
    o_l, t_l = torch.randn(b, k, d, generator=g) * scale, torch.randn(b, k, d, generator=g) * scale
    o_g, t_g = torch.randn(b, d, generator=g) * 3, torch.randn(b, d, generator=g) * 0.2
    m = torch.rand(k, k, generator=g)
    m.fill_diagonal_(1.0)
    return o_l, t_l, o_g, t_g, relation_cost(m)


def _marginals_ref(local, glob, normalize):
    local, glob = local.double().numpy(), glob.double().numpy()
    if normalize:
        local, glob = _unit(local), _unit(glob)
    w = np.maximum(np.einsum("bkd,bd->bk", local, glob), 0.0)  # Eq.5
    total = w.sum(1, keepdims=True)
    return np.where(total > 0, w / np.where(total > 0, total, 1), 1 / w.shape[1])  # all-zero row: uniform


def _relation_loss_ref(o_l, t_l, o_g, t_g, cost, reg, normalize):
    a, b = _marginals_ref(o_l, t_g, normalize), _marginals_ref(t_l, o_g, normalize)
    sim = np.einsum("bid,bjd->bij", _unit(o_l.double().numpy()), _unit(t_l.double().numpy()))
    plans = [ot.sinkhorn(a[i], b[i], cost.double().numpy(), reg, method="sinkhorn_log", numItermax=5000,
                         stopThr=1e-10) for i in range(len(a))]
    return -np.mean([(sim[i] * plans[i]).sum() for i in range(len(a))])  # Eq.6


def test_ot_marginals_default_normalises_each_vector_on_its_last_axis():
    o_l, _, _, t_g, _ = _rrl_batch()
    np.testing.assert_allclose(ot_marginals(o_l, t_g).numpy(), _marginals_ref(o_l, t_g, True), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(ot_marginals(o_l, t_g, normalize=False).numpy(), _marginals_ref(o_l, t_g, False),
                               rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match="expected local"):
        ot_marginals(o_l, torch.zeros(2, 5))


@pytest.mark.filterwarnings("ignore:Sinkhorn did not converge")
def test_ot_relation_loss_defaults_match_pot_with_reg_0_05_and_normalised_marginals():
    o_l, t_l, o_g, t_g, cost = _rrl_batch()
    got = ot_relation_loss(o_l, t_l, o_g, t_g, cost, max_iter=2000)
    assert got.item() == pytest.approx(_relation_loss_ref(o_l, t_l, o_g, t_g, cost, 0.05, True), abs=1e-4)


def test_ot_relation_loss_passes_reg_and_normalize_on():
    o_l, t_l, o_g, t_g, cost = _rrl_batch(seed=6)
    got = ot_relation_loss(o_l, t_l, o_g, t_g, cost, reg=0.5, normalize=False)
    assert got.item() == pytest.approx(_relation_loss_ref(o_l, t_l, o_g, t_g, cost, 0.5, False), abs=1e-5)


def test_ot_relation_loss_passes_max_iter_on():
    o_l, t_l, o_g, t_g, cost = _rrl_batch(seed=7)
    _, plan = ot_relation_loss(o_l, t_l, o_g, t_g, cost, max_iter=1, return_plan=True)
    a, b = ot_marginals(o_l, t_g), ot_marginals(t_l, o_g)
    torch.testing.assert_close(plan, transport_plans(cost, a, b, reg=0.05, max_iter=1))
    assert not torch.allclose(plan, transport_plans(cost, a, b, reg=0.05, max_iter=100), atol=1e-4)


# --- AUNet: VAE objective (Eq.2) and latent consistency (Eq.3) -------------------------------------------------

def test_vae_loss_default_kl_weight_is_0_1_and_takes_integer_labels():
    from torch.distributions import Normal, kl_divergence

    from aulib.losses.vae_elbo import vae_loss
    rng = np.random.default_rng(8)
    logits, labels = rng.normal(size=(3, 4)), rng.integers(0, 2, (3, 4)).astype(np.int8)
    mu, logvar = torch.tensor(rng.normal(size=(3, 2))), torch.tensor(rng.normal(size=(3, 2)))
    kl = kl_divergence(Normal(mu, (0.5 * logvar).exp()), Normal(0.0, 1.0)).sum().item()
    out = vae_loss(torch.tensor(logits), torch.tensor(labels), mu, logvar)
    assert out["kl"].item() == pytest.approx(kl, rel=1e-10)
    assert out["loss"].item() == pytest.approx(_bce(logits, labels).sum() + 0.1 * kl, rel=1e-10)


def test_latent_consistency_paper_form_sums_squares_per_sample_then_averages():
    from aulib.losses.latent_consistency import latent_consistency
    mu_p, mu_g = np.array([[0.5, -2.0], [1.5, 0.0]]), np.array([[0.0, 0.0], [0.0, 0.5]])
    lv_p, lv_g = np.array([[0.3, -0.2], [0.0, 1.0]]), np.array([[0.0, 0.4], [-0.5, 0.0]])
    ref = (((mu_p - mu_g) ** 2).sum(1) + ((np.exp(lv_p) - np.exp(lv_g)) ** 2).sum(1)).mean()  # Eq.3
    t = [torch.tensor(x) for x in (mu_p, lv_p, mu_g, lv_g)]
    assert latent_consistency(*t, form="paper").item() == pytest.approx(ref, rel=1e-10)
    # the default form is the official code's
    assert latent_consistency(*t).item() == latent_consistency(*t, form="official").item()
