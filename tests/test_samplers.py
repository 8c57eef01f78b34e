"""Samplers on a small hand-worked label set."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from aulib.train.samplers import (
    BalancingError,
    OversamplingBatchSampler,
    RandomBatchSampler,
    UndersamplingBatchSampler,
    WeightedRandomBatchSampler,
    cost_weights,
    make_batch_sampler,
    positive_sample_weights,
)

# 10 frames, 3 AUs. AU0 positives: rows 0, 1; AU1 positive: row 2 only; AU2 positives: rows 3-8,
# row 9's AU2 label is unknown.
Y = np.zeros((10, 3), np.float32)
Y[[0, 1], 0] = 1
Y[2, 1] = 1
Y[3:9, 2] = 1
V = np.ones_like(Y, bool)
V[9, 2] = False
POS = {0: {0, 1}, 1: {2}, 2: {3, 4, 5, 6, 7, 8}}
NEG = {0: set(range(2, 10)), 1: set(range(10)) - {2}, 2: {0, 1, 2}}


def test_oversampling_layout_and_grouping():
    s = OversamplingBatchSampler(Y, V, n_pos=2, n_neg=2, steps_per_epoch=50, seed=1)
    assert len(s) == 50 and s.batch_size == 12
    assert s.groups.tolist() == [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2]
    mask = s.au_mask()
    assert mask.shape == (12, 3) and mask.sum(0).tolist() == [4, 4, 4] and mask.sum(1).eq(1).all()
    assert s.expected_labels().tolist() == [1, 1, 0, 0] * 3
    seen_pos1 = set()
    for batch in s:
        assert len(batch) == 12
        for k in range(3):
            p, n = batch[4 * k:4 * k + 2], batch[4 * k + 2:4 * k + 4]
            assert set(p) <= POS[k] and set(n) <= NEG[k]
            assert Y[p, k].tolist() == [1, 1] and Y[n, k].tolist() == [0, 0]
        assert batch[0] != batch[1]  # AU0 has 2 positives: no duplicate inside a batch
        seen_pos1.update(batch[4:6])
    assert seen_pos1 == {2}  # the single AU1 positive is repeated (oversampled)
    assert 9 not in {i for b in s for i in b[8:12]}  # unknown AU2 label never drawn for AU2


def test_study_batch_is_96_for_12_aus():
    rng = np.random.default_rng(0)
    y = (rng.random((200, 12)) < 0.3).astype(np.float32)
    s = make_batch_sampler("oversampling", y, None, steps_per_epoch=3)
    batches = list(s)
    assert [len(b) for b in batches] == [96, 96, 96]
    for b in batches:
        for k in range(12):
            assert y[b[8 * k:8 * k + 4], k].tolist() == [1, 1, 1, 1]
            assert y[b[8 * k + 4:8 * k + 8], k].tolist() == [0, 0, 0, 0]


def test_undersampling_keeps_as_many_negatives_as_positives():
    s = UndersamplingBatchSampler(Y, V, n_pos=1, n_neg=1, steps_per_epoch=40, seed=3)
    assert [len(n) for n in s.negatives] == [2, 1, 3]  # = number of positives (AU2 has only 3 negatives)
    for k in range(3):
        assert set(s.negatives[k].tolist()) <= NEG[k]
    drawn_neg0 = {b[1] for b in s}
    assert drawn_neg0 <= set(s.negatives[0].tolist())  # the discarded negatives are never drawn


@pytest.mark.parametrize("method", ["oversampling", "undersampling", "cost", "weighted"])
def test_au_without_positives_names_the_au(method):
    y = Y.copy()
    y[2, 1] = 0  # AU1 has no positive any more
    with pytest.raises(BalancingError, match="AU2 has no positive"):
        make_batch_sampler(method, y, V, aus=[1, 2, 4])


def test_au_without_negatives_is_an_error():
    y = Y.copy()
    y[:, 0] = 1
    with pytest.raises(BalancingError, match="AU column 0 has no negative"):
        OversamplingBatchSampler(y, V)


def test_cost_weights_hand_worked():
    y = torch.tensor([[1, 0], [0, 0], [0, 1], [0, 0], [1, 9]], dtype=torch.float32)
    v = torch.tensor([[1, 1], [1, 1], [1, 1], [1, 1], [1, 0]], dtype=torch.bool)
    w = cost_weights(y, v)
    # AU0: 2 positives, 3 negatives -> positives weigh 1.5; AU1: 1 positive, 3 valid negatives -> 3
    expected = torch.tensor([[1.5, 1], [1, 1], [1, 3], [1, 1], [1.5, 0]])
    torch.testing.assert_close(w, expected)
    # the weighted positive mass equals the negative mass per AU (that is what balances the loss)
    pos_mass = (w * (y == 1) * v).sum(0)
    neg_mass = (w * (y == 0) * v).sum(0)
    torch.testing.assert_close(pos_mass, neg_mass)


def test_positive_sample_weights_hand_worked():
    # rates: AU0 2/10, AU1 1/10, AU2 6/9
    w = positive_sample_weights(Y, V, reduction="max")
    expected = np.array([5, 5, 10, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5, 1.0])
    np.testing.assert_allclose(w, expected)
    ws = positive_sample_weights(Y, V, reduction="sum")
    np.testing.assert_allclose(ws, 1 + np.array([5, 5, 10, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5, 0.0]))


def test_weighted_sampler_follows_the_weights():
    w = np.array([1.0, 3.0, 0.0, 4.0])
    s = WeightedRandomBatchSampler(w, batch_size=64, steps_per_epoch=100, seed=0)
    counts = np.bincount(np.concatenate([np.asarray(b) for b in s]), minlength=4) / 6400
    np.testing.assert_allclose(counts, w / w.sum(), atol=0.02)
    assert counts[2] == 0


def test_random_sampler_one_pass_and_epochs():
    s = RandomBatchSampler(10, 4, seed=0)
    batches = list(s)
    assert [len(b) for b in batches] == [4, 4, 2]
    assert sorted(i for b in batches for i in b) == list(range(10))
    assert list(s) == batches  # same epoch -> same order
    s.set_epoch(1)
    assert list(s) != batches
    s2 = RandomBatchSampler(10, 4, steps_per_epoch=5, seed=0, drop_last=True)
    b2 = list(s2)
    assert len(b2) == 5 and all(len(b) == 4 for b in b2)
    assert len(set(b2[0]) | set(b2[1])) == 8  # no repeat inside a pass


def test_sampler_drives_a_dataloader():
    ds = TensorDataset(torch.as_tensor(Y), torch.as_tensor(V))
    s = make_batch_sampler("oversampling", Y, V, n_pos=1, n_neg=1, steps_per_epoch=4)
    dl = DataLoader(ds, batch_sampler=s)
    assert len(dl) == 4
    for y, _ in dl:
        # row 2k is a positive of AU k, row 2k+1 a negative
        assert y[[0, 2, 4], [0, 1, 2]].tolist() == [1, 1, 1]
        assert y[[1, 3, 5], [0, 1, 2]].tolist() == [0, 0, 0]


def test_unknown_method_lists_the_valid_ones():
    with pytest.raises(ValueError, match="oversampling"):
        make_batch_sampler("smote", Y, V)
