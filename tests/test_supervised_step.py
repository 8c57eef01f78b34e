"""Supervised.training_step against BCE computed independently (scipy's log_expit), for each of its modes."""

import numpy as np
import torch
from scipy.special import log_expit
from torch import nn

from aulib.methods.supervised import Supervised


class Fixed(nn.Module):
    """Returns the logits it was built with, whatever the input."""

    def __init__(self, logits):
        super().__init__()
        self.logits = nn.Parameter(torch.as_tensor(logits, dtype=torch.float32))

    def forward(self, x):
        return self.logits


Z = np.array([[2.0, -1.0, 0.5], [-0.3, 1.5, -2.0], [0.0, 0.7, 1.2], [1.1, -0.4, -0.9]])
Y = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 1]], dtype=np.float32)
V = np.array([[1, 1, 1], [1, 0, 1], [1, 1, 1], [0, 1, 1]], dtype=bool)


def nll(z, y, w_pos=1.0):
    return -(w_pos * y * log_expit(z) + (1 - y) * log_expit(-z))


def batch():
    return {"image": torch.zeros(4, 1, 8, 8), "labels": torch.from_numpy(Y), "valid": torch.from_numpy(V)}


def test_plain_step_is_the_mean_bce_over_known_labels():
    loss = Supervised(model=Fixed(Z)).training_step(batch(), 0)["loss"]
    np.testing.assert_allclose(float(loss), nll(Z, Y)[V].mean(), rtol=1e-6)


def test_pos_weight_multiplies_the_positive_term_per_au():
    pw = np.array([2.0, 0.5, 3.0])
    loss = Supervised(model=Fixed(Z), pos_weight=torch.tensor(pw)).training_step(batch(), 0)["loss"]
    np.testing.assert_allclose(float(loss), nll(Z, Y, pw[None])[V].mean(), rtol=1e-6)


def test_au_mask_averages_per_au_bces():
    mask = np.array([[1, 0, 0], [1, 1, 0], [0, 1, 1], [0, 0, 1]], dtype=bool)
    m = Supervised(model=Fixed(Z), au_mask=torch.from_numpy(mask))
    loss = m.training_step(batch(), 0)["loss"]
    keep = V & mask
    per_au = [nll(Z[:, k], Y[:, k])[keep[:, k]].mean() for k in range(3)]
    np.testing.assert_allclose(float(loss), np.mean(per_au), rtol=1e-6)


def test_missing_valid_means_every_label_is_known():
    b = batch()
    del b["valid"]
    loss = Supervised(model=Fixed(Z)).training_step(b, 0)["loss"]
    np.testing.assert_allclose(float(loss), nll(Z, Y).mean(), rtol=1e-6)
