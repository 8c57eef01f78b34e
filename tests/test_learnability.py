"""The learnability ladder: each rung sees the cue it is built to see, on the folds every paper uses."""

import numpy as np
import pandas as pd
import pytest
from conftest import make_dataset

from aulib.data.align import MEAN_SHAPE_68
from aulib.eval.crossval import scores
from aulib.experiments.learnability import LadderConfig, ladder, ladders, landmark_features, logistic_per_au


def cue_dataset():
    """AU1 moves the mouth (a landmark cue), AU2 brightens the upper half (a pixel cue), AU4 is noise."""
    ds = make_dataset(n_subjects=6, seqs=1, frames=24, aus=(1, 2, 4), size=32, seed=3)
    rng = np.random.default_rng(0)
    y = ds.frames[["AU1", "AU2", "AU4"]].to_numpy()
    shape = np.asarray(MEAN_SHAPE_68, dtype=np.float32)
    shape = (shape - shape.mean(0)) / np.ptp(shape[:, 0]) * 20 + 16
    lm = shape[None] + rng.normal(0, 0.3, (len(ds), 68, 2)).astype(np.float32)
    lm[y[:, 0] == 1, 48:68, 1] += 2.0  # AU1: mouth 2 px lower
    ds.landmarks[:] = lm
    img = ds.images.astype(np.int16)
    img[y[:, 1] == 1, :16] = np.clip(img[y[:, 1] == 1, :16] + 90, 0, 255)
    ds.images[:] = img.astype(np.uint8)
    return ds


def test_landmark_features_ignore_position_and_scale():
    lm = np.asarray(MEAN_SHAPE_68, dtype=np.float64)[None]
    moved = lm * 3.0 + np.array([40.0, -7.0])
    np.testing.assert_allclose(landmark_features(lm), landmark_features(moved), atol=1e-9)


def test_logistic_per_au_skips_unknown_labels_and_single_class_aus():
    x = np.r_[np.zeros((10, 1)), np.ones((10, 1))]
    y = np.c_[np.r_[np.zeros(10), np.ones(10)], np.ones(20)].astype(int)
    v = np.ones_like(y, dtype=bool)
    v[:3, 0] = False
    p = logistic_per_au(x, y, v, np.array([[0.0], [1.0]]))
    assert p[0, 0] < 0.5 < p[1, 0]
    assert (p[:, 1] == 1.0).all()  # one class in training: its rate


def test_logistic_per_au_fits_with_one_blas_thread(monkeypatch):
    """Two BLAS threads made the pixel rung's fits ~10x slower on 2 cores (see logistic_per_au)."""
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_info, threadpool_limits

    seen, fit = [], LogisticRegression.fit

    def spy(self, *a, **k):
        seen.extend(p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas")
        return fit(self, *a, **k)

    monkeypatch.setattr(LogisticRegression, "fit", spy)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 3)), rng.integers(0, 2, size=(40, 2))
    with threadpool_limits(limits=2, user_api="blas"):  # as in a notebook on 2 cores (the tests run with 1)
        logistic_per_au(x, y, np.ones_like(y, dtype=bool), x[:5])
    assert seen and set(seen) == {1}


def test_each_rung_sees_its_own_cue():
    ds = cue_dataset()
    r = ladder(ds, LadderConfig(cnn_sizes=(16,), cnn_epochs=2, batch_size=32), k=3, device="cpu", progress=False)
    assert {"always present", "prior", "landmarks", "pixels", "cnn 16 px"} == set(r.variant)
    auc = r.groupby(["variant", "au"]).auc.mean()
    assert auc["landmarks", "AU1"] > 0.95 and auc["landmarks", "AU2"] < 0.75
    assert auc["pixels", "AU2"] > 0.95
    assert abs(auc["landmarks", "AU4"] - 0.5) < 0.25
    assert len(r.attrs["history"]) == 3 * 2  # one row per epoch and fold
    s = scores(r).set_index("variant")
    assert s.loc["pixels", "f1"] > s.loc["always present", "f1"] - 0.2


@pytest.mark.parametrize("bad", [0, -1])
def test_ladder_needs_two_folds(bad):
    with pytest.raises(ValueError):
        ladder(cue_dataset(), LadderConfig(cnn_sizes=()), k=bad, progress=False)


def test_ladders_concatenate_datasets_and_histories():
    a, b = cue_dataset(), cue_dataset()
    b.meta.name = "other"
    cfg = LadderConfig(cnn_sizes=(16,), cnn_epochs=1, batch_size=32, max_iter=50)
    r = ladders([a, b], cfg, k=3, folds=[1], progress=False, device="cpu")
    assert list(dict.fromkeys(r.dataset)) == [a.meta.name, "other"]
    assert set(r.attrs["history"].dataset) == {a.meta.name, "other"}
    assert len(r) == len(ladder(a, cfg, k=3, folds=[1], progress=False, device="cpu")) * 2


def test_rung_heatmap_puts_baselines_first_and_shows_each_au():
    import matplotlib

    matplotlib.use("Agg")
    from aulib.viz import rung_heatmap

    rows = [dict(dataset="d", role=role, variant=v, au=au, auc=x)
            for role, v, x in (("reference", "landmarks", 0.9), ("baseline", "always present", 0.5))
            for au in ("AU2", "AU10", "AU1")]
    fig = rung_heatmap(pd.DataFrame(rows))
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["always present", "landmarks"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["AU1", "AU2", "AU10"]


def test_aligned_rungs_see_a_cue_that_moves_with_the_face():
    """AU2 draws a zero-mean light/dark pair beside the nose of faces shifted by up to 6 px: the raw-pixel
    regression cannot place it, the same regression on the aligned frames can."""
    from aulib.data.align import resized_template

    ds = make_dataset(n_subjects=6, seqs=1, frames=24, aus=(1, 2, 4), size=48, seed=3)
    rng = np.random.default_rng(1)
    y = ds.frames["AU2"].to_numpy()
    home = resized_template("rrl", 48).template_landmarks().astype(np.float32)
    shift = rng.integers(-6, 7, (len(ds), 2))
    ds.landmarks[:] = home[None] + shift[:, None]
    img = ds.images.astype(np.int16)
    for i in np.flatnonzero(y == 1):
        cx, cy = np.round(home[30] + shift[i]).astype(int)
        img[i, cy - 2:cy + 2, cx - 4:cx] += 100
        img[i, cy - 2:cy + 2, cx:cx + 4] -= 100
    ds.images[:] = np.clip(img, 0, 255).astype(np.uint8)
    cfg = LadderConfig(pixel_size=48, cnn_sizes=(), aligned="rrl", aligned_sizes=(16,), cnn_epochs=1, batch_size=32)
    r = ladder(ds, cfg, k=3, device="cpu", progress=False)
    assert {"pixels, aligned", "cnn 16 px, aligned"} <= set(r.variant)
    units = r.groupby("variant")[["fold", "n_valid"]].apply(lambda g: tuple(map(tuple, g.to_numpy())))
    assert units["pixels, aligned"] == units["pixels"]  # the same test frames
    auc = r.groupby(["variant", "au"]).auc.mean()
    assert auc["pixels, aligned", "AU2"] > 0.9 and auc["pixels", "AU2"] < auc["pixels, aligned", "AU2"] - 0.15


def test_cnn_rungs_balance_each_au_like_the_logistic_rungs(monkeypatch):
    """With ``cnn_balanced`` (the default) a CNN rung weighs each AU's positives by n_neg / n_pos counted on its
    own training fold; without it the BCE is unweighted."""
    import aulib.experiments.learnability as learnability
    from aulib.data.folds import fold_split

    seen = []
    real = learnability.Supervised

    def recording(cfg, pos_weight=None, **kw):
        seen.append(None if pos_weight is None else pos_weight.numpy().copy())
        return real(cfg, pos_weight=pos_weight, **kw)

    monkeypatch.setattr(learnability, "Supervised", recording)
    ds = cue_dataset()
    cfg = LadderConfig(cnn_sizes=(16,), cnn_epochs=1, batch_size=32, max_iter=50)
    ladder(ds, cfg, k=3, folds=[1], device="cpu", progress=False)
    train_rows, _ = fold_split(ds, 1, k=3)
    y = ds.frames[["AU1", "AU2", "AU4"]].to_numpy()[train_rows]
    expected = (y == 0).sum(0) / (y == 1).sum(0)  # hand count: every label of this dataset is known
    assert len(seen) == 1
    np.testing.assert_allclose(seen[0], expected, rtol=1e-6)
    ladder(ds, LadderConfig(**{**cfg.__dict__, "cnn_balanced": False}), k=3, folds=[1], device="cpu",
           progress=False)
    assert seen[1] is None
