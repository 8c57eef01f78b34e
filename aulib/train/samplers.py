"""Batch samplers for imbalanced multi-label AU data (the CNN study's four balancing methods, TRA-Net's
weighted sampling).

Every sampler here is a *batch sampler*: give it to ``DataLoader(dataset, batch_sampler=sampler)``. It yields
lists of dataset indices, has ``len() == steps_per_epoch`` and ``set_epoch(epoch)`` (the trainer calls it), and
draws from a generator seeded by ``(seed, epoch, rank)``, so a resumed run sees the same batches. Labels are
the training rows' ``(N, K)`` 0/1 matrix with its ``(N, K)`` validity mask (``ds.au_matrix()``); unknown labels
are neither positive nor negative.

=================  ==========================================================================================
``random``         :class:`RandomBatchSampler`: shuffled batches, no balancing.
``undersampling``  :class:`UndersamplingBatchSampler`: per AU, a fixed random subset of the negatives as large
                   as its positives is kept (the rest discarded); each batch takes ``n_pos`` positives and
                   ``n_neg`` negatives of every AU from those pools.
``oversampling``   :class:`OversamplingBatchSampler`: each batch takes ``n_pos`` positives and ``n_neg``
                   negatives of every AU from all of them (positives repeat): the study's 4 + 4 per AU,
                   96 images for 12 AUs.
``cost``           :class:`RandomBatchSampler` batches + :func:`cost_weights`: in each batch, AU k's positives
                   weigh (#negatives / #positives of AU k in that batch) in the BCE.
``weighted``       :class:`WeightedRandomBatchSampler`: TRA-Net; frames drawn with probability proportional to
                   :func:`positive_sample_weights` (rare AUs' positive frames weigh more).
=================  ==========================================================================================

The balanced samplers lay a batch out AU by AU: positions ``[k*(n_pos+n_neg), (k+1)*(n_pos+n_neg))`` were
drawn for AU ``k`` (positives first). ``sampler.groups`` gives each position's AU and ``sampler.au_mask()``
the ``(B, K)`` mask, so a loss can average, for each AU, the BCE over that AU's own images (the study's loss)
and :func:`aulib.eval.metrics.balanced_batch_accuracy` can score AU k on its own images.

An AU with no positive (or no negative) frame among the training rows cannot be balanced: the samplers raise
:class:`BalancingError` naming the AU instead of looping forever.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np
import torch

from aulib.losses.masked_bce import cost_weights  # noqa: F401  (re-exported: the cost-manipulation weights)

BALANCING_METHODS = ("random", "undersampling", "oversampling", "cost", "weighted")


class BalancingError(ValueError):
    """The labels cannot be balanced as asked (an AU without positives or negatives, bad shapes)."""


def _as_arrays(labels, valid) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(labels.numpy() if torch.is_tensor(labels) else labels, dtype=np.float32)
    if y.ndim != 2:
        raise BalancingError(f"labels must be (N, K), got shape {y.shape}")
    if valid is None:
        v = np.ones_like(y, dtype=bool)
    else:
        v = np.asarray(valid.numpy() if torch.is_tensor(valid) else valid, dtype=bool)
        if v.shape != y.shape:
            raise BalancingError(f"valid has shape {v.shape} but labels have {y.shape}")
    return y, v


def _au_names(aus: Sequence | None, k: int) -> list[str]:
    if aus is None:
        return [f"AU column {i}" for i in range(k)]
    if len(aus) != k:
        raise BalancingError(f"{len(aus)} AU names for {k} label columns")
    return [a if isinstance(a, str) and a.upper().startswith("AU") else f"AU{a}" for a in aus]


def _rng(seed: int, epoch: int, rank: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(epoch), int(rank)]))


class _EpochSampler:
    steps_per_epoch: int
    seed: int
    rank: int
    epoch: int = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.steps_per_epoch


class RandomBatchSampler(_EpochSampler):
    """Shuffled batches of ``batch_size`` over ``n`` items (the ``random`` method).

    ``steps_per_epoch=None``: one pass (``ceil(n / batch_size)`` batches, the last one short unless
    ``drop_last``); otherwise exactly that many batches, continuing through fresh permutations.
    Under DDP give ``rank``/``world_size``: each rank gets its own stream of batches.
    """

    def __init__(self, n: int, batch_size: int, steps_per_epoch: int | None = None, seed: int = 0,
                 drop_last: bool = False, rank: int = 0, world_size: int = 1):
        if n <= 0:
            raise BalancingError("RandomBatchSampler over an empty set of rows")
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.n, self.batch_size, self.seed, self.drop_last = int(n), int(batch_size), seed, drop_last
        self.rank, self.world_size = rank, world_size
        full = n // batch_size if drop_last else math.ceil(n / batch_size)
        self.steps_per_epoch = int(steps_per_epoch) if steps_per_epoch is not None else max(1, full // world_size)

    def __iter__(self) -> Iterator[list[int]]:
        rng = _rng(self.seed, self.epoch, self.rank)
        perm, pos = rng.permutation(self.n), 0
        for _ in range(self.steps_per_epoch):
            if pos >= self.n or (self.drop_last and pos + self.batch_size > self.n):
                perm, pos = rng.permutation(self.n), 0  # next pass
            yield perm[pos:pos + self.batch_size].tolist()
            pos += self.batch_size


class OversamplingBatchSampler(_EpochSampler):
    """Each batch: for every AU k in order, ``n_pos`` positives then ``n_neg`` negatives of AU k.

    Within a batch an AU's images are distinct when it has enough of them (otherwise drawn with replacement);
    across batches they are drawn afresh, so rare positives repeat (oversampling). Batch size
    ``K * (n_pos + n_neg)`` (96 for the study's 12 AUs and 4 + 4). ``aus`` names the columns in errors.
    """

    kind = "oversampling"

    def __init__(self, labels, valid=None, n_pos: int = 4, n_neg: int = 4, steps_per_epoch: int | None = None,
                 seed: int = 0, aus: Sequence | None = None, rank: int = 0, world_size: int = 1):
        y, v = _as_arrays(labels, valid)
        self.n_aus = y.shape[1]
        self.n_pos, self.n_neg, self.seed, self.rank, self.world_size = n_pos, n_neg, seed, rank, world_size
        names = _au_names(aus, self.n_aus)
        self.positives: list[np.ndarray] = []
        self.negatives: list[np.ndarray] = []
        for k in range(self.n_aus):
            pos = np.flatnonzero(v[:, k] & (y[:, k] > 0.5))
            neg = np.flatnonzero(v[:, k] & (y[:, k] <= 0.5))
            if n_pos > 0 and len(pos) == 0:
                raise BalancingError(f"{self.kind}: {names[k]} has no positive frame among the {len(y)} training "
                                     "rows, so its batches cannot be balanced; drop the AU or change the fold")
            if n_neg > 0 and len(neg) == 0:
                raise BalancingError(f"{self.kind}: {names[k]} has no negative frame among the {len(y)} training "
                                     "rows, so its batches cannot be balanced")
            self.positives.append(pos)
            self.negatives.append(neg)
        self._restrict_negatives()
        self.batch_size = self.n_aus * (n_pos + n_neg)
        if steps_per_epoch is None:
            steps_per_epoch = max(1, math.ceil(len(y) / self.batch_size) // world_size)
        self.steps_per_epoch = int(steps_per_epoch)
        self.groups = np.repeat(np.arange(self.n_aus), n_pos + n_neg)  # (B,) AU each position was drawn for

    def _restrict_negatives(self) -> None:
        pass

    def au_mask(self) -> torch.Tensor:
        """(B, K) bool: position i was drawn for AU k."""
        return torch.nn.functional.one_hot(torch.as_tensor(self.groups), self.n_aus).bool()

    def expected_labels(self) -> torch.Tensor:
        """(B,) float: 1 where the position was drawn as a positive of its AU, 0 for a negative."""
        one = np.r_[np.ones(self.n_pos), np.zeros(self.n_neg)]
        return torch.as_tensor(np.tile(one, self.n_aus), dtype=torch.float32)

    @staticmethod
    def _draw(rng: np.random.Generator, pool: np.ndarray, n: int) -> np.ndarray:
        return rng.choice(pool, size=n, replace=len(pool) < n)

    def __iter__(self) -> Iterator[list[int]]:
        rng = _rng(self.seed, self.epoch, self.rank)
        for _ in range(self.steps_per_epoch):
            parts = []
            for k in range(self.n_aus):
                parts.append(self._draw(rng, self.positives[k], self.n_pos))
                parts.append(self._draw(rng, self.negatives[k], self.n_neg))
            yield np.concatenate(parts).astype(int).tolist()


class UndersamplingBatchSampler(OversamplingBatchSampler):
    """Like :class:`OversamplingBatchSampler`, but each AU keeps only a fixed random subset of its negatives
    as large as its positives (chosen once from ``seed``; the other negatives are never seen)."""

    kind = "undersampling"

    def _restrict_negatives(self) -> None:
        rng = np.random.default_rng(np.random.SeedSequence([int(self.seed), 7919]))
        self.negatives = [neg if len(neg) <= len(pos) else np.sort(rng.choice(neg, size=len(pos), replace=False))
                          for pos, neg in zip(self.positives, self.negatives)]

    def kept_rows(self) -> np.ndarray:
        """Rows any AU can still draw (the union of positives and kept negatives)."""
        return np.unique(np.concatenate(self.positives + self.negatives))


def check_balanceable(labels, valid=None, aus: Sequence | None = None, method: str = "cost") -> None:
    """Raise :class:`BalancingError` naming the first AU with no positive among the (valid) rows."""
    y, v = _as_arrays(labels, valid)
    names = _au_names(aus, y.shape[1])
    n_pos = ((y > 0.5) & v).sum(0)
    for k in np.flatnonzero(n_pos == 0):
        raise BalancingError(f"{method}: {names[k]} has no positive frame among the {len(y)} training rows, "
                             "so it cannot be balanced; drop the AU or change the fold")


def positive_sample_weights(labels, valid=None, reduction: str = "max", aus: Sequence | None = None) -> np.ndarray:
    """(N,) sampling weight of each frame for TRA-Net's weighted random sampling.

    AU k's weight is its inverse positive rate ``w_k = 1 / r_k`` (``r_k`` over valid labels). A frame weighs
    ``max(1, max_k w_k y_k)`` (``reduction="max"``) or ``1 + sum_k w_k y_k`` (``"sum"``) over its positive
    AUs, so frames showing a rare AU are drawn more often and frames without any AU keep weight 1.
    """
    y, v = _as_arrays(labels, valid)
    check_balanceable(y, v, aus, method="weighted sampling")
    pos = ((y > 0.5) & v).astype(np.float64)
    rate = pos.sum(0) / np.maximum(v.sum(0), 1)
    w = pos / rate  # (N, K): w_k where positive, 0 elsewhere
    if reduction == "max":
        return np.maximum(1.0, w.max(1))
    if reduction == "sum":
        return 1.0 + w.sum(1)
    raise ValueError(f"reduction={reduction!r}; choose 'max' or 'sum'")


class WeightedRandomBatchSampler(_EpochSampler):
    """Batches of ``batch_size`` frames drawn with replacement, frame i with probability ``w_i / sum(w)``
    (TRA-Net: ``positive_sample_weights``; 64 frames a batch, 100 batches an epoch)."""

    def __init__(self, weights, batch_size: int = 64, steps_per_epoch: int = 100, seed: int = 0,
                 rank: int = 0, world_size: int = 1):
        w = np.asarray(weights, dtype=np.float64)
        if w.ndim != 1 or len(w) == 0:
            raise BalancingError(f"weights must be a non-empty (N,) vector, got shape {w.shape}")
        if not np.all(np.isfinite(w)) or (w < 0).any() or w.sum() <= 0:
            raise BalancingError("weights must be finite, non-negative and not all zero")
        self.p = w / w.sum()
        self.batch_size, self.steps_per_epoch, self.seed, self.rank = batch_size, int(steps_per_epoch), seed, rank
        self.world_size = world_size

    def __iter__(self) -> Iterator[list[int]]:
        rng = _rng(self.seed, self.epoch, self.rank)
        for _ in range(self.steps_per_epoch):
            yield rng.choice(len(self.p), size=self.batch_size, replace=True, p=self.p).tolist()


def make_batch_sampler(method: str, labels, valid=None, batch_size: int = 96, n_pos: int = 4, n_neg: int = 4,
                       steps_per_epoch: int | None = None, seed: int = 0, aus: Sequence | None = None,
                       rank: int = 0, world_size: int = 1, reduction: str = "max"):
    """The batch sampler of balancing ``method`` (one of :data:`BALANCING_METHODS`) over the training rows.

    ``random``/``cost`` use ``batch_size``; ``under``/``oversampling`` make batches of ``K*(n_pos+n_neg)``;
    ``weighted`` uses ``batch_size`` and ``positive_sample_weights(reduction=...)``. ``cost`` also checks every
    AU has a positive (weights come from :func:`cost_weights` inside the loss).
    """
    y, v = _as_arrays(labels, valid)
    if method == "random":
        return RandomBatchSampler(len(y), batch_size, steps_per_epoch, seed, rank=rank, world_size=world_size)
    if method == "cost":
        check_balanceable(y, v, aus, method="cost manipulation")
        return RandomBatchSampler(len(y), batch_size, steps_per_epoch, seed, rank=rank, world_size=world_size)
    if method == "oversampling":
        return OversamplingBatchSampler(y, v, n_pos, n_neg, steps_per_epoch, seed, aus, rank, world_size)
    if method == "undersampling":
        return UndersamplingBatchSampler(y, v, n_pos, n_neg, steps_per_epoch, seed, aus, rank, world_size)
    if method == "weighted":
        w = positive_sample_weights(y, v, reduction, aus)
        return WeightedRandomBatchSampler(w, batch_size, steps_per_epoch or 100, seed, rank, world_size)
    raise ValueError(f"unknown balancing method {method!r}; choose one of {', '.join(BALANCING_METHODS)}")
