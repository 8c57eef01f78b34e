"""RRL relation loss (Eq.4-6) checked against POT's single-problem ``ot.sinkhorn`` (independent reference)."""

import numpy as np
import ot
import pytest
import torch

from aulib.losses.ot_relation import ot_marginals, ot_relation_loss, relation_cost, transport_plans


def _problem(b=5, k=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    m = torch.rand(k, k, generator=g)
    m.fill_diagonal_(1.0)
    a = torch.rand(b, k, generator=g) + 0.05
    bb = torch.rand(b, k, generator=g) + 0.05
    return relation_cost(m), a / a.sum(1, keepdim=True), bb / bb.sum(1, keepdim=True)


def test_relation_cost_eq4():
    m = np.array([[1.0, 0.25, np.nan], [0.5, 1.0, 0.0], [1.2, -0.1, 1.0]])
    c = relation_cost(m).numpy()
    expected = np.array([[0.0, 0.75, 1.0], [0.5, 0.0, 1.0], [0.0, 1.0, 0.0]])
    np.testing.assert_allclose(c, expected, atol=1e-7)
    with pytest.raises(ValueError, match="square"):
        relation_cost(np.ones((2, 3)))


def test_plan_matches_pot_sinkhorn_per_sample():
    cost, a, b = _problem()
    plan = transport_plans(cost, a, b, reg=0.1, max_iter=2000, tol=1e-9)
    for i in range(len(a)):
        ref = ot.sinkhorn(a[i].double().numpy(), b[i].double().numpy(), cost.double().numpy(), 0.1,
                          numItermax=20000, stopThr=1e-10)
        np.testing.assert_allclose(plan[i].double().numpy(), ref, atol=2e-6)
    # the marginals of the plan are a and b
    torch.testing.assert_close(plan.sum(2), a, atol=1e-5, rtol=0)
    torch.testing.assert_close(plan.sum(1), b, atol=1e-5, rtol=0)


def test_batched_call_equals_per_sample_loop():
    cost, a, b = _problem(b=7, k=12, seed=1)
    batched = transport_plans(cost, a, b, reg=0.05, max_iter=500)
    loop = torch.stack([transport_plans(cost, a[i:i + 1], b[i:i + 1], reg=0.05, max_iter=500)[0]
                        for i in range(len(a))])
    torch.testing.assert_close(batched, loop, atol=1e-6, rtol=1e-5)


def test_marginals_clamp_and_normalise():
    local = torch.tensor([[[2.0, 0.0], [-1.0, 0.0], [1.0, 5.0]],
                          [[-1.0, 0.0], [-2.0, 1.0], [-3.0, 0.0]]])  # (B=2, K=3, D=2)
    glob = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    w = ot_marginals(local, glob, normalize=False)
    # raw dots [2, -1, 1] -> clamp [2, 0, 1] -> /3; second row all <= 0 -> uniform
    torch.testing.assert_close(w, torch.tensor([[2 / 3, 0.0, 1 / 3], [1 / 3, 1 / 3, 1 / 3]]))
    wn = ot_marginals(local, glob, normalize=True)
    c = float(1 / np.sqrt(26))  # cosine of (1, 5) with (1, 0)
    torch.testing.assert_close(wn[0], torch.tensor([1 / (1 + c), 0.0, c / (1 + c)]))


def test_plan_is_a_constant_of_the_gradient():
    torch.manual_seed(0)
    cost, _, _ = _problem(b=3, k=4)
    o = torch.randn(3, 4, 8, requires_grad=True)
    t, og, tg = torch.randn(3, 4, 8), torch.randn(3, 8), torch.randn(3, 8)
    loss, plan = ot_relation_loss(o, t, og, tg, cost, reg=0.1, return_plan=True)
    loss.backward()
    # reference: Eq.6 with the plan frozen, gradient only through the cosines
    o2 = o.detach().clone().requires_grad_(True)
    on, tn = o2 / o2.norm(dim=-1, keepdim=True), t / t.norm(dim=-1, keepdim=True)
    ref = -(torch.einsum("bid,bjd->bij", on, tn) * plan).sum((1, 2)).mean()
    ref.backward()
    torch.testing.assert_close(loss, ref)
    torch.testing.assert_close(o.grad, o2.grad)


def test_zero_marginal_entries_give_zero_rows():
    cost, a, b = _problem(b=2, k=5)
    a = a.clone()
    a[0, 2] = 0.0
    a = a / a.sum(1, keepdim=True)
    plan = transport_plans(cost, a, b, reg=0.05, max_iter=500)
    assert torch.isfinite(plan).all()
    assert plan[0, 2].abs().max() < 1e-7


def test_relation_loss_falls_on_a_fixed_batch():
    torch.manual_seed(0)
    cost, _, _ = _problem(b=4, k=6)
    o = torch.randn(4, 6, 16, requires_grad=True)
    og = torch.randn(4, 16, requires_grad=True)
    t, tg = torch.randn(4, 6, 16), torch.randn(4, 16)
    opt = torch.optim.SGD([o, og], lr=2.0)
    first = ot_relation_loss(o, t, og, tg, cost).item()
    for _ in range(30):
        opt.zero_grad()
        ot_relation_loss(o, t, og, tg, cost).backward()
        opt.step()
    assert ot_relation_loss(o, t, og, tg, cost).item() < first - 0.2


def test_plans_use_the_cost_and_approach_exact_ot_as_reg_shrinks():
    """The plan the loss uses must be priced by C: never dearer than the independent plan a b^T (which has the
    largest entropy, so an entropic optimum cannot cost more), and close to the exact OT cost (POT's network
    simplex, ``ot.emd2``) at a small regularisation."""
    cost, a, b = _problem(b=6, k=12, seed=3)
    independent = torch.einsum("bi,bj,ij->b", a, b, cost)
    for reg in (0.5, 0.1):
        plan = transport_plans(cost, a, b, reg=reg, max_iter=3000, tol=1e-9)
        assert ((plan * cost).sum((1, 2)) <= independent + 1e-6).all()
    plan = transport_plans(cost, a, b, reg=0.01, max_iter=20000, tol=1e-10)
    exact = [ot.emd2(a[i].double().numpy(), b[i].double().numpy(), cost.double().numpy()) for i in range(len(a))]
    np.testing.assert_allclose((plan * cost).sum((1, 2)).numpy(), exact, atol=0.02)
