"""Trivial baselines that every result table carries beside its methods.

``always present``  predicts 1 for every AU. Its F1 per AU is 2p / (1 + p) for a test positive rate p, its
                    AUC 0.5: a detector whose F1 does not beat it has learnt nothing that F1 can see.
``prior``           predicts each AU's rate on the training fold (the same score for every test frame), so its
                    AUC is 0.5 and, at threshold 0.5, it says "present" only for AUs present in most training
                    frames.

Both are computed on exactly the test frames and known labels the methods are scored on
(:func:`aulib.eval.crossval.run_folds` adds them for every dataset and fold).
The learnt baselines (``untrained encoder``: the method's backbone with random weights through the same probe;
``supervised``: the same backbone trained on the labels) are variants an experiment supplies.
"""

from __future__ import annotations

import numpy as np

ALWAYS_PRESENT = "always present"
PRIOR = "prior"
UNTRAINED = "untrained encoder"
SUPERVISED = "supervised"
TRIVIAL = (ALWAYS_PRESENT, PRIOR)


def always_present(n: int, k: int) -> np.ndarray:
    """(n, k) ones."""
    return np.ones((n, k))


def training_rates(labels: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """(K,) positive rate per AU over the known training labels (0.5 for an AU with none)."""
    labels, valid = np.asarray(labels), np.asarray(valid, bool)
    pos = ((labels == 1) & valid).sum(0)
    n = valid.sum(0)
    return np.where(n > 0, pos / np.maximum(n, 1), 0.5)


def prior(train_labels: np.ndarray, train_valid: np.ndarray, n_test: int) -> np.ndarray:
    """(n_test, K): every test frame scored with the training fold's positive rate of each AU."""
    return np.broadcast_to(training_rates(train_labels, train_valid), (n_test, np.asarray(train_labels).shape[1])).copy()
