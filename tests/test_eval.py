"""Evaluation: metrics against sklearn, t-test against the textbook formula, protocols, k-fold driver, cost."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import make_dataset
from scipy import stats as sps
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from aulib.eval import (
    ProbeConfig,
    accuracy_per_au,
    balanced_accuracy_per_au,
    balanced_batch_accuracy,
    f1_per_au,
    finetune,
    linear_probe,
    masked_bce,
    mean_f1,
    model_cost,
    paired_ttest,
    per_au_table,
    run_folds,
)
from aulib.eval.crossval import summarize
from aulib.train import TrainConfig


def _random_labels(seed=0, n=60, k=5):
    rng = np.random.default_rng(seed)
    y = (rng.random((n, k)) < 0.3).astype(float)
    p = np.clip(y * 0.6 + rng.random((n, k)) * 0.6 - 0.1, 0, 1)
    valid = rng.random((n, k)) > 0.2
    y[~valid] = 9  # unknown code
    return y, p, valid


def test_f1_accuracy_match_sklearn_ignoring_unknowns():
    y, p, valid = _random_labels()
    f1 = f1_per_au(y, p, valid)
    acc = accuracy_per_au(y, p, valid)
    bacc = balanced_accuracy_per_au(y, p, valid)
    for k in range(y.shape[1]):
        m = valid[:, k]
        yt, yp = y[m, k].astype(int), (p[m, k] >= 0.5).astype(int)
        assert f1[k] == pytest.approx(f1_score(yt, yp, zero_division=0))
        assert acc[k] == pytest.approx(accuracy_score(yt, yp))
        assert bacc[k] == pytest.approx(balanced_accuracy_score(yt, yp))
    assert mean_f1(y, p, valid) == pytest.approx(np.mean(f1))
    # default mask: labels that are 0/1 (the 9s are unknown)
    np.testing.assert_allclose(f1_per_au(y, p), f1)


def test_f1_edge_cases():
    y = np.array([[0, 1, 0], [0, 1, 0]])
    p = np.array([[0.1, 0.9, 0.2], [0.2, 0.8, 0.3]])
    valid = np.array([[1, 1, 0], [1, 1, 0]], bool)
    f1 = f1_per_au(y, p, valid)
    assert f1[0] == 0.0  # no positive predicted or true: sklearn's zero_division=0
    assert f1[1] == 1.0
    assert math.isnan(f1[2])  # no known label
    assert mean_f1(y, p, valid) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="row 0, AU column 0"):
        f1_per_au(np.array([[9]]), np.array([[0.2]]), np.array([[True]]))
    # torch tensors work too
    np.testing.assert_allclose(f1_per_au(torch.tensor(y), torch.tensor(p), torch.tensor(valid)), f1)


def test_balanced_batch_accuracy_hand_worked():
    # two AUs, one batch of 2 positives + 2 negatives each; rows 0-3 drawn for AU0, rows 4-7 for AU1
    groups = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    y = np.array([[1, 0], [1, 1], [0, 1], [0, 0], [0, 1], [1, 1], [0, 0], [1, 0]])
    p = np.array([[0.9, 0.9], [0.2, 0.9], [0.1, 0.1], [0.7, 0.1],  # AU0: right, wrong, right, wrong
                  [0.0, 0.8], [0.0, 0.6], [0.0, 0.2], [0.0, 0.1]])  # AU1: all right
    np.testing.assert_allclose(balanced_batch_accuracy(p, y, groups), [0.5, 1.0])


def test_per_au_table_columns():
    y, p, valid = _random_labels(1)
    t = per_au_table(y, p, valid, aus=[1, 2, 4, 6, 7], fold=2, seed=0)
    assert list(t.columns[:3]) == ["fold", "seed", "au"]
    assert t["au"].tolist() == ["AU1", "AU2", "AU4", "AU6", "AU7"]
    assert (t["n_valid"].to_numpy() == valid.sum(0)).all()


def test_paired_ttest_matches_the_formula():
    a = np.array([0.61, 0.55, 0.70, 0.48, 0.66])
    b = np.array([0.58, 0.50, 0.69, 0.49, 0.60])
    d = a - b
    t = d.mean() / (d.std(ddof=1) / math.sqrt(len(d)))
    p = 2 * sps.t.sf(abs(t), len(d) - 1)
    r = paired_ttest(a, b)
    assert r["t"] == pytest.approx(t) and r["p"] == pytest.approx(p) and r["n"] == 5
    assert r["mean_diff"] == pytest.approx(d.mean())
    # frames pair on (fold, au) regardless of row order
    fa = pd.DataFrame({"fold": [1, 1, 2, 2, 3], "au": ["AU1", "AU2", "AU1", "AU2", "AU1"], "f1": a})
    fb = fa.assign(f1=b).iloc[::-1]
    assert paired_ttest(fa, fb)["t"] == pytest.approx(t)
    with pytest.raises(ValueError, match="do not pair"):
        paired_ttest(fa, fb.iloc[1:])


def test_masked_bce_ignores_unknown_labels():
    logits = torch.tensor([[0.3, -1.0], [2.0, 0.5]])
    labels = torch.tensor([[1.0, 9.0], [0.0, 1.0]])
    valid = torch.tensor([[True, False], [True, True]])
    known = torch.tensor([[0.3, 1.0], [2.0, 0.0], [0.5, 1.0]])  # (logit, label) of the three known entries
    ref = -np.mean([math.log(1 / (1 + math.exp(-z))) if t == 1 else math.log(1 - 1 / (1 + math.exp(-z)))
                    for z, t in known.tolist()])
    assert masked_bce(logits, labels, valid).item() == pytest.approx(ref, rel=1e-5)


def _separable(n=96, d=6, k=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    y = (x[:, :k] > 0).float()
    return x, y, torch.ones_like(y, dtype=torch.bool)


class CountingEncoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(6, 6)
        with torch.no_grad():
            self.lin.weight.copy_(torch.eye(6) * 2)
            self.lin.bias.zero_()
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return self.lin(x)


@pytest.mark.parametrize("head", ["linear", "bn_linear"])
def test_linear_probe_frozen_encoder(head):
    x, y, v = _separable()
    xt, yt, vt = _separable(seed=1)
    train = DataLoader(TensorDataset(x, y, v), batch_size=32)
    test = DataLoader(TensorDataset(xt, yt, vt), batch_size=32)
    enc = CountingEncoder()
    before = {k: t.clone() for k, t in enc.state_dict().items()}
    res = linear_probe(enc, train, test, ProbeConfig(head=head, epochs=60, lr=0.05, progress=False, device="cpu"))
    assert enc.calls == len(train) + len(test)  # features extracted once
    for k, t in enc.state_dict().items():
        torch.testing.assert_close(t, before[k])
    assert all(p.requires_grad for p in enc.parameters())  # restored afterwards
    assert res.probs.shape == (96, 3)
    assert mean_f1(res.labels, res.probs, res.valid) > 0.85
    if head == "bn_linear":
        assert isinstance(res.model[0], nn.BatchNorm1d) and res.model[1].bias is None
    t = res.table(aus=[1, 2, 4], fold=1)
    assert t["f1"].mean() == pytest.approx(mean_f1(res.labels, res.probs, res.valid))


def _noisy_logistic(n=400, d=5, k=2, seed=0):
    """Features with correlated columns and labels drawn from a logistic model: not separable, so the unpenalised
    maximum-likelihood fit exists and is unique."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, d, generator=g)
    x = z @ (torch.eye(d) + 0.8 * torch.randn(d, d, generator=g)) + 3.0  # ill-conditioned, off-centre
    w = torch.randn(d, k, generator=g)
    y = (torch.rand(n, k, generator=g) < torch.sigmoid(z @ w - 0.7)).float()
    return x, y


def _bce_sklearn_fit(x, y, **kw):
    """Mean BCE over (N, K) of sklearn's per-AU logistic regressions on x (the independent reference)."""
    from sklearn.linear_model import LogisticRegression

    losses = []
    for k in range(y.shape[1]):
        lr = LogisticRegression(max_iter=10_000, tol=1e-12, **kw).fit(x, y[:, k])
        p = np.clip(lr.predict_proba(x)[:, 1], 1e-15, 1 - 1e-15)
        losses.append(-np.mean(y[:, k] * np.log(p) + (1 - y[:, k]) * np.log(1 - p)))
    return float(np.mean(losses))


def test_lbfgs_probe_reaches_the_maximum_likelihood_fit_of_sklearn():
    from aulib.eval.protocols import train_head

    x, y = _noisy_logistic()
    cfg = ProbeConfig(head="linear", optimizer="lbfgs", epochs=500, lr=1.0, progress=False, device="cpu")
    head = train_head(x, y, None, cfg)
    with torch.no_grad():
        loss = masked_bce(head(x), y).item()
    assert loss == pytest.approx(_bce_sklearn_fit(x.numpy(), y.numpy(), C=np.inf), abs=1e-6)
    # the same head with BatchNorm: the same function class (standardise, then a linear map), so the same minimum;
    # its running statistics are the training set's own, so the eval-mode head computes what was minimised
    bn = train_head(x, y, None, replace(cfg, head="bn_linear"))
    torch.testing.assert_close(bn[0].running_mean, x.mean(0), rtol=0, atol=1e-5)
    torch.testing.assert_close(bn[0].running_var, x.var(0), rtol=1e-5, atol=0)
    with torch.no_grad():
        loss_bn = masked_bce(bn(x), y).item()
    assert loss_bn == pytest.approx(loss, abs=1e-4)
    short = train_head(x, y, None, replace(cfg, head="bn_linear", epochs=2))
    torch.testing.assert_close(short[0].running_mean, x.mean(0), rtol=0, atol=1e-5)  # exact after a few calls too
    # a probe stopped early (the minibatch optimiser of old at the cpu profile's epochs) lies measurably above it
    adam = train_head(x, y, None, ProbeConfig(head="bn_linear", epochs=5, lr=1e-3, progress=False, device="cpu"))
    with torch.no_grad():
        assert masked_bce(adam(x), y).item() > loss + 0.01


def test_lbfgs_probe_weight_decay_matches_scipy_on_the_penalised_objective():
    from scipy.optimize import minimize

    from aulib.eval.protocols import train_head

    x, y = _noisy_logistic(seed=1)
    wd = 0.05
    head = train_head(x, y, None, ProbeConfig(head="linear", optimizer="lbfgs", epochs=500, lr=1.0,
                                             weight_decay=wd, progress=False, device="cpu"))
    X, Y = x.double().numpy(), y.double().numpy()
    d, k = X.shape[1], Y.shape[1]

    def objective(theta):  # mean BCE over (N, K) + wd / 2 * ||W, b||^2, written out by hand
        W, b = theta[:d * k].reshape(d, k), theta[d * k:]
        z = X @ W + b
        return np.mean(np.logaddexp(0, z) - Y * z) + 0.5 * wd * np.sum(theta ** 2)

    ref = minimize(objective, np.zeros(d * k + k), method="BFGS", options={"gtol": 1e-10})
    ours = np.concatenate([head.weight.detach().double().numpy().T.ravel(), head.bias.detach().double().numpy()])
    assert objective(ours) == pytest.approx(ref.fun, abs=1e-7)
    np.testing.assert_allclose(ours, ref.x, atol=1e-3)


def test_probe_rejects_an_unknown_optimizer():
    from aulib.eval.protocols import train_head

    x, y = _noisy_logistic(n=20)
    with pytest.raises(ValueError, match="lbfgs"):
        train_head(x, y, None, ProbeConfig(optimizer="newton", progress=False, device="cpu"))


def test_finetune_learns_separable_data():
    torch.manual_seed(0)
    x, y, v = _separable()
    loader = DataLoader(TensorDataset(x, y, v), batch_size=16, shuffle=True)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3))
    res = finetune(model, loader, loader, TrainConfig(epochs=15, optimizer="adam", lr=0.02, progress=False))
    assert len(res.history) == 15 and res.history["loss"].iloc[-1] < res.history["loss"].iloc[0]
    assert mean_f1(res.labels, res.probs, res.valid) > 0.85


def test_run_folds_tidy_and_subject_exclusive():
    ds = make_dataset(n_subjects=6, seqs=1, frames=4, aus=(1, 2, 4))
    labels, valid = ds.au_matrix()
    subjects = ds.frames.subject.to_numpy()
    seen_test = []

    def oracle(train_rows, test_rows, fold, seed):
        assert not set(subjects[train_rows]) & set(subjects[test_rows])
        seen_test.extend(test_rows.tolist())
        return labels[test_rows]  # perfect predictions

    full = run_folds(ds, oracle, k=3, seeds=(0, 1), variant="oracle", progress=False)
    assert set(full["variant"]) == {"oracle", "always present", "prior"}
    t = full[full["variant"] == "oracle"]
    assert len(t) == 3 * 2 * 3
    assert {"variant", "fold", "seed", "au", "f1", "auc", "accuracy", "n_train", "n_test"} <= set(t.columns)
    assert sorted(set(seen_test)) == list(range(len(ds)))  # every row tested
    assert (t["accuracy"] == 1).all()
    assert (t.loc[t.n_pos > 0, "f1"] == 1).all()
    s = summarize(t)
    assert s["variant"].tolist() == ["oracle"] and s["n_runs"].item() == 6

    def wrong_shape(train_rows, test_rows, fold, seed):
        return np.zeros((len(test_rows), 2))

    with pytest.raises(ValueError, match="fold 1"):
        run_folds(ds, wrong_shape, progress=False)


def test_model_cost_hand_worked():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(18, 4))
    c = model_cost(model, (1, 5, 5))
    # conv: 2x3x3 outputs x 9 multiply-adds = 162; linear: 18 x 4 = 72
    assert c["macs"] == 162 + 72 and c["flops"] == 2 * (162 + 72)
    assert c["params"] == (2 * 9 + 2) + (18 * 4 + 4) == c["trainable_params"]
    assert c["memory_kind"] == "cpu_estimate"
    # params 96 floats + outputs conv 18 + relu 18 + flatten 18 + linear 4 floats
    assert c["memory_mb"] * 1024**2 == pytest.approx(4 * (96 + 18 + 18 + 18 + 4))
    model[0].requires_grad_(False)
    assert model_cost(model, (1, 1, 5, 5))["trainable_params"] == 76


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_model_cost_on_cuda_reports_peak_memory():
    model = nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 30 * 30, 4))
    c = model_cost(model, (1, 32, 32), device="cuda")
    assert c["memory_kind"] == "cuda_peak"
    assert c["memory_mb"] * 1024**2 >= c["param_mb"] * 1024**2  # parameters are resident
    assert c["macs"] == 8 * 30 * 30 * 9 + 8 * 30 * 30 * 4
