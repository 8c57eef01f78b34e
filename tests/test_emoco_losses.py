"""EmoCo's intra-class normalisation (Eq.4) and contrastive loss (Eq.5) against hand computations."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from aulib.losses.emoco_contrastive import emoco_contrastive_loss, info_nce_from_logits
from aulib.losses.intra_class_norm import intra_class_normalize


def _np_norm(x):
    return x / np.linalg.norm(x)


def test_intra_class_norm_hand_case():
    # v = (3, 4) -> (0.6, 0.8); w = (0, 2) -> (0, 1); difference (0.6, -0.2) -> /sqrt(0.4)
    v = torch.tensor([[3.0, 4.0]])
    w = torch.tensor([[0.0, 2.0]])
    out = intra_class_normalize(v, w)
    s = math.sqrt(0.36 + 0.04)
    assert torch.allclose(out, torch.tensor([[0.6 / s, -0.2 / s]]), atol=1e-6)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000), st.integers(2, 16))
def test_intra_class_norm_matches_numpy_and_is_unit(seed, d):
    rng = np.random.default_rng(seed)
    v, w = rng.normal(size=(5, d)), rng.normal(size=(5, d))
    expected = np.stack([_np_norm(_np_norm(a) - _np_norm(b)) for a, b in zip(v, w)])
    out = intra_class_normalize(torch.tensor(v), torch.tensor(w)).numpy()
    np.testing.assert_allclose(out, expected, atol=1e-10)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-10)


def test_intra_class_norm_zero_prototype_is_plain_l2():
    v = torch.randn(7, 12, dtype=torch.float64)
    out = intra_class_normalize(v, torch.zeros(12, dtype=torch.float64))
    expected = v / v.norm(dim=1, keepdim=True)
    assert torch.allclose(out, expected, atol=1e-12)


def test_intra_class_norm_is_scale_invariant_and_detaches_prototype():
    v = torch.randn(4, 6, dtype=torch.float64)
    w = torch.randn(4, 6, dtype=torch.float64, requires_grad=True)
    a = intra_class_normalize(v, w)
    b = intra_class_normalize(3.5 * v, 0.1 * w)
    assert torch.allclose(a, b, atol=1e-12)
    assert not a.requires_grad  # nothing flows back into the classifier rows


def test_intra_class_norm_width_mismatch_names_shapes():
    with pytest.raises(ValueError, match="width 4 .* width 3"):
        intra_class_normalize(torch.randn(2, 4), torch.randn(3))


def test_contrastive_loss_matches_hand_cross_entropy():
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    kp = torch.tensor([[0.6, 0.8], [0.0, 1.0]])
    kn = torch.tensor([[[1.0, 0.0], [0.0, -1.0]], [[0.8, 0.6], [-1.0, 0.0]]])  # (B=2, K=2, D=2)
    tau = 0.2
    # query 0: pos 0.6, negs (1.0, 0.0); query 1: pos 1.0, negs (0.6, 0.0)
    hand = []
    for pos, negs in [(0.6, (1.0, 0.0)), (1.0, (0.6, 0.0))]:
        z = [pos / tau] + [n / tau for n in negs]
        hand.append(-(z[0] - math.log(sum(math.exp(x) for x in z))))
    expected = sum(hand) / 2
    got = emoco_contrastive_loss(q, kp, kn, tau=tau)
    assert abs(got.item() - expected) < 1e-5
    # shared (K, D) negatives equal per-query negatives repeated
    shared = kn[0]
    a = emoco_contrastive_loss(q, kp, shared, tau=tau)
    b = emoco_contrastive_loss(q, kp, shared.expand(2, -1, -1), tau=tau)
    assert torch.allclose(a, b)


def test_info_nce_positive_is_column_zero():
    # a perfect positive with hopeless negatives gives a near-zero loss; swapping them a large one
    pos, neg = torch.tensor([1.0]), torch.tensor([[-1.0, -1.0]])
    assert info_nce_from_logits(pos, neg, 0.2).item() < 1e-3
    assert info_nce_from_logits(-pos, -neg, 0.2).item() > 5


def test_contrastive_loss_falls_on_fixed_batch():
    g = torch.Generator().manual_seed(0)
    q = torch.randn(8, 16, generator=g, requires_grad=True)
    kp = torch.nn.functional.normalize(torch.randn(8, 16, generator=g), dim=1)
    kn = torch.nn.functional.normalize(torch.randn(32, 16, generator=g), dim=1)
    w = torch.randn(16, generator=g)
    opt = torch.optim.Adam([q], lr=0.1)
    losses = []
    for _ in range(60):
        loss = emoco_contrastive_loss(intra_class_normalize(q, w), intra_class_normalize(kp, w),
                                      intra_class_normalize(kn, w))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_bad_shapes_are_named():
    with pytest.raises(ValueError, match="k_neg"):
        emoco_contrastive_loss(torch.randn(2, 3), torch.randn(2, 3), torch.randn(3))
    with pytest.raises(ValueError, match="tau"):
        info_nce_from_logits(torch.zeros(2), torch.zeros(2, 3), tau=0)
