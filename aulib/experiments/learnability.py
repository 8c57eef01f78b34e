"""How much of each AU the data makes learnable: a ladder of ever stronger detectors on the same folds.

    results = ladder(ds, LadderConfig(cnn_sizes=(32, 64)), k=3)   # tidy, through run_folds (baselines included)
    scores(results)                                                 # mean F1 / AUC per rung

Rungs, weakest first, each scored on the same subject-exclusive test frames:

``always present``, ``prior``  the trivial baselines :func:`aulib.eval.crossval.run_folds` adds;
``landmarks``       logistic regression on the 68 landmarks (centred on their mean, scaled by the outer-eye
                    distance), one per AU (``sklearn.linear_model.LogisticRegression``, balanced classes);
``pixels``          the same on the grey image down-sampled to ``pixel_size`` and standardised on the training fold;
``cnn <s> px``      :class:`aulib.methods.supervised.Supervised` (``cnn_backbone``) trained on the labels at
                    ``s`` px with masked BCE (:func:`aulib.train.fit`), for each ``s`` of ``cnn_sizes``; with
                    ``cnn_balanced`` each AU's positives weigh n_neg / n_pos of the training fold, as the logistic
                    rungs balance their classes (without it a rare AU is seldom predicted at 0.5);
``..., aligned``    with ``aligned`` a template name: ``pixels`` and ``cnn <s> px`` (``s`` of ``aligned_sizes``)
                    once more on the same frames cut by that template (:func:`aulib.data.align.align_dataset`,
                    at the frames' own size), as the notebooks that align their faces see them.

A rung that should see an AU and does not (e.g. the CNN at 64 px below AUC 0.85) says the generator's cue for
that AU is too weak; a rung far above the method under study says the method, not the data, is the limit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits
from torch.utils.data import DataLoader

from aulib.data.align import align_dataset
from aulib.data.dataset import FrameDataset
from aulib.eval.crossval import Variant, run_folds
from aulib.eval.protocols import predict
from aulib.losses.masked_bce import balanced_pos_weight
from aulib.methods.supervised import Supervised, SupervisedConfig
from aulib.train import TrainConfig, fit, seed_everything


@dataclass
class LadderConfig:
    pixel_size: int = 32
    cnn_sizes: tuple[int, ...] = (32, 64, 112)
    cnn_backbone: str = "resnet_tiny"
    cnn_epochs: int = 8
    cnn_lr: float = 3e-3
    batch_size: int = 64
    max_iter: int = 2000  # logistic regression (lbfgs)
    C: float = 1.0
    aligned: str | None = None  # template of the aligned rungs (None: none)
    aligned_sizes: tuple[int, ...] = (64,)
    cnn_balanced: bool = True  # BCE pos_weight n_neg / n_pos per AU of the training fold, as the logistic
    # rungs' class_weight="balanced" weighs the classes


def landmark_features(landmarks: np.ndarray) -> np.ndarray:
    """(N, 136): the 68 points centred on their mean and divided by the outer-eye-corner distance (36, 45), so
    that position and scale of the face carry no label information."""
    lm = np.asarray(landmarks, dtype=np.float64)
    centred = lm - lm.mean(1, keepdims=True)
    scale = np.linalg.norm(lm[:, 45] - lm[:, 36], axis=1).clip(min=1e-6)[:, None, None]
    return (centred / scale).reshape(len(lm), -1)


def pixel_features(ds, rows: np.ndarray, size: int) -> np.ndarray:
    """(N, size * size) grey pixels in [0, 1], down-sampled with antialiasing."""
    img = torch.from_numpy(np.ascontiguousarray(ds.image_batch(rows))).permute(0, 3, 1, 2).float() / 255
    img = img.mean(1, keepdim=True)
    img = F.interpolate(img, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return img.flatten(1).numpy()


def logistic_per_au(x_train: np.ndarray, y_train: np.ndarray, v_train: np.ndarray, x_test: np.ndarray,
                    C: float = 1.0, max_iter: int = 2000, blas_threads: int | None = 1) -> np.ndarray:
    """(N_test, K) probabilities of one balanced logistic regression per AU on the known training labels; an AU
    with a single class in training scores its training rate.

    The fits run with ``blas_threads`` BLAS threads (None: as the process has them): lbfgs on a (2,000 x 1,024)
    problem makes many small matrix products, and with two OpenBLAS threads (numpy's and scipy's pools both loaded)
    the 12 fits on 1,640 BP4D-like frames took 19.4 s instead of 1.8 s on 2 cores (the same probabilities to 1e-6;
    measured 2026-12-07; ``python -m aulib.bench ladder`` times both)."""
    scaler = StandardScaler().fit(x_train)
    xt, xs = scaler.transform(x_train), scaler.transform(x_test)
    out = np.empty((len(x_test), y_train.shape[1]))
    with threadpool_limits(limits=blas_threads, user_api="blas"):
        for k in range(y_train.shape[1]):
            keep = v_train[:, k]
            yk = y_train[keep, k]
            if len(np.unique(yk)) < 2:
                out[:, k] = yk.mean() if len(yk) else 0.5
                continue
            clf = LogisticRegression(C=C, max_iter=max_iter, class_weight="balanced").fit(xt[keep], yk)
            out[:, k] = clf.predict_proba(xs)[:, 1]
    return out


def ladder(ds, cfg: LadderConfig | None = None, k: int = 3, folds=None, seeds=(0,), device: str = "auto",
           experiment: str = "learnability", progress: bool = True) -> pd.DataFrame:
    """Every rung on every fold x seed of ``ds``: the tidy results of :func:`run_folds` (baselines included).
    Training histories of the CNN rungs are in ``results.attrs["history"]``."""
    cfg = cfg or LadderConfig()
    labels, valid = ds.au_matrix()
    lm = landmark_features(ds.landmarks)
    histories = []

    def landmarks(train_rows, test_rows, fold, seed):
        return logistic_per_au(lm[train_rows], labels[train_rows], valid[train_rows], lm[test_rows], cfg.C,
                               cfg.max_iter)

    def pixels(frames):
        def fit_and_predict(train_rows, test_rows, fold, seed):
            return logistic_per_au(pixel_features(frames, train_rows, cfg.pixel_size), labels[train_rows],
                                   valid[train_rows], pixel_features(frames, test_rows, cfg.pixel_size), cfg.C,
                                   cfg.max_iter)
        return fit_and_predict

    def cnn(size, frames=ds, rung=None):
        def train_and_predict(train_rows, test_rows, fold, seed):
            seed_everything(seed)
            model = Supervised(SupervisedConfig(backbone=cfg.cnn_backbone, num_aus=len(ds.aus), in_chans=1),
                               pos_weight=balanced_pos_weight(torch.from_numpy(labels[train_rows]),
                                                              torch.from_numpy(valid[train_rows]))
                               if cfg.cnn_balanced else None)
            train = DataLoader(FrameDataset(frames, train_rows, size=size, channels=1), batch_size=cfg.batch_size,
                               shuffle=True, drop_last=len(train_rows) > cfg.batch_size)
            test = DataLoader(FrameDataset(frames, test_rows, size=size, channels=1), batch_size=256)
            h = fit(model, train, TrainConfig(epochs=cfg.cnn_epochs, lr=cfg.cnn_lr, optimizer="adamw",
                                              schedule="cosine", seed=seed, device=device, progress=progress))
            histories.append(h.assign(rung=rung or f"cnn {size} px", fold=fold, seed=seed))
            probs, _, _ = predict(model.model, test, device, progress=False)
            return probs
        return train_and_predict

    variants = [Variant("landmarks", landmarks, "reference"), Variant("pixels", pixels(ds), "reference")]
    variants += [Variant(f"cnn {s} px", cnn(s), "reference") for s in cfg.cnn_sizes]
    if cfg.aligned:  # the same frames, in the same order, cut by the template
        al = align_dataset(ds, cfg.aligned, size=ds.meta.image_size[0])
        variants += [Variant("pixels, aligned", pixels(al), "reference")]
        variants += [Variant(f"cnn {s} px, aligned", cnn(s, al, f"cnn {s} px, aligned"), "reference")
                     for s in cfg.aligned_sizes]
    results = run_folds(ds, variants, k=k, folds=folds, seeds=seeds, experiment=experiment, progress=progress)
    results.attrs["history"] = pd.concat(histories, ignore_index=True) if histories else pd.DataFrame()
    return results


def ladders(datasets, cfg: LadderConfig | None = None, k: int = 3, folds=None, seeds=(0,), device: str = "auto",
            progress: bool = True) -> pd.DataFrame:
    """:func:`ladder` on each dataset of an iterable (e.g. one per preset), concatenated; the CNN histories of
    all of them are in ``results.attrs["history"]`` (with a ``dataset`` column)."""
    parts, histories = [], []
    for ds in datasets:
        r = ladder(ds, cfg, k=k, folds=folds, seeds=seeds, device=device, progress=progress)
        histories.append(r.attrs.pop("history").assign(dataset=ds.meta.name))
        parts.append(r)
    results = pd.concat(parts, ignore_index=True)
    results.attrs["history"] = pd.concat(histories, ignore_index=True)
    return results
