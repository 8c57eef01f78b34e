"""Batched self-supervised views (aulib.data.batch_augment) against the per-sample torchvision v2 pipeline."""

import dataclasses

import numpy as np
import pytest
import torch
from scipy import stats
from torchvision.transforms import v2

from aulib.data.batch_augment import BatchTwoViews, BatchView, OnDevice, flip_faces
from aulib.data.transforms import FaceHorizontalFlip, ViewAug, to_sample, view_pipeline

OFF = ViewAug(flip=0.0, jitter_p=0.0, grey=0.0, blur=0.0)


def _faces(b=4, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 3, size, size, generator=g), torch.rand(b, 68, 2, generator=g) * (size - 1)


def test_flip_matches_the_per_sample_face_flip_and_leaves_the_others():
    x, lm = _faces()
    mask = torch.tensor([True, False, True, False])
    fx, flm = flip_faces(x, lm, mask)
    for i in range(4):
        ref = FaceHorizontalFlip(1.0)(to_sample(x[i], lm[i])) if mask[i] else to_sample(x[i], lm[i])
        assert torch.equal(fx[i], ref["image"].as_subclass(torch.Tensor))
        assert torch.allclose(flm[i], ref["landmarks"].as_subclass(torch.Tensor))


def test_everything_off_is_the_identity():
    x, lm = _faces()
    y, ylm = BatchView(OFF, 32)(x, lm)
    assert torch.allclose(y, x) and torch.allclose(ylm, lm)


def test_landmarks_follow_the_affine():
    size = 48
    x = torch.zeros(6, 3, size, size)
    lm = torch.full((6, 68, 2), size / 2)
    lm[:, 30] = torch.tensor([14.0, 31.0])  # a bright dot at landmark 30
    x[:, :, 30:33, 13:16] = 1.0
    torch.manual_seed(0)
    y, ylm = BatchView(dataclasses.replace(OFF, rotation=30.0, scale=(0.8, 1.2), shift=0.1), size)(x, lm)
    for i in range(6):
        img = y[i, 0]
        yy, xx = np.unravel_index(int(img.argmax()), img.shape)
        # the dot's brightest pixel sits where its landmark went (within the dot's half-width + interpolation)
        assert abs(xx - float(ylm[i, 30, 0])) <= 1.6 and abs(yy - float(ylm[i, 30, 1])) <= 1.6
    assert not torch.allclose(ylm[0, 30], ylm[1, 30])  # each sample its own affine


def test_parameters_are_drawn_per_sample_where_v2_on_a_batch_draws_one_set():
    x = _faces(1)[0].expand(16, -1, -1, -1).contiguous()
    lm = torch.full((16, 68, 2), 16.0)
    torch.manual_seed(0)
    jitter = dataclasses.replace(OFF, jitter_p=1.0)
    y, _ = BatchView(jitter, 32)(x, lm)
    assert y.flatten(1).mean(1).std() > 1e-3  # 16 copies of one face, 16 different jitters
    z = v2.ColorJitter(0.4, 0.4, 0.2, 0.1)(x)  # the reason for Kornia: v2 jitters a batch as one image
    assert torch.allclose(z, z[:1].expand_as(z))


def test_batched_views_have_the_per_sample_brightness_distribution():
    """Kornia's ColorJitter uses torchvision's formulas: per-image mean brightness of RRL's first view, batched
    vs per sample, are one distribution (two-sample KS test)."""
    from aulib.methods.rrl import VIEW1

    n, size = 300, 24
    x = torch.rand(1, 3, size, size).expand(n, -1, -1, -1).contiguous() * 0.6 + 0.2
    lm = torch.full((n, 68, 2), size / 2)
    torch.manual_seed(1)
    batched = BatchView(VIEW1, size)(x, lm)[0].mean((1, 2, 3)).numpy()
    pipe = view_pipeline(VIEW1, size)
    torch.manual_seed(2)
    single = np.array([float(pipe(to_sample(x[i], lm[i]))["image"].mean()) for i in range(n)])
    assert stats.ks_2samp(batched, single).pvalue > 1e-3
    assert abs(np.std(batched) - np.std(single)) < 0.3 * np.std(single)


def test_two_views_shapes_and_no_augment_stacks_the_image_twice():
    x, lm = _faces()
    from aulib.methods.rrl import VIEW1, VIEW2

    out = BatchTwoViews(VIEW1, VIEW2, 32)({"image": x, "landmarks": lm, "row": torch.arange(4)})
    assert out["image"].shape == (4, 2, 3, 32, 32) and out["landmarks"].shape == (4, 2, 68, 2)
    assert torch.equal(out["row"], torch.arange(4))
    same = BatchTwoViews(VIEW1, VIEW2, 32, augment=False)({"image": x, "landmarks": lm})
    assert torch.equal(same["image"][:, 0], x) and torch.equal(same["image"][:, 1], x)
    with pytest.raises(ValueError, match="3-channel"):
        BatchView(VIEW1, 32)(x[:, :1], lm)


def test_on_device_wraps_a_loader():
    from torch.utils.data import DataLoader, TensorDataset

    ds = TensorDataset(torch.arange(10.0))
    loader = DataLoader(ds, batch_size=4)
    wrapped = OnDevice([{"v": torch.arange(3.0)}] * 2, lambda b: {"v": b["v"] * 2}, device="cpu")
    assert [b["v"].tolist() for b in wrapped] == [[0.0, 2.0, 4.0]] * 2 and len(wrapped) == 2
    w2 = OnDevice(loader, lambda b: b, device="cpu")
    assert len(w2) == 3 and w2.dataset is ds and w2.sampler is loader.sampler


def test_rrl_pretrains_with_batched_views():
    from aulib.data.synthetic import SynthConfig, generate
    from aulib.experiments import rrl

    P = rrl.settings("smoke")
    cfg = rrl.base_config(P)
    ds = generate(SynthConfig(preset="bp4d", n_subjects=2, sequences_per_subject=1, frames_per_sequence=8,
                              image_size=cfg.image_size, channels=3))
    loader = rrl.pretrain_loader(ds, cfg, batch_augment=True, device="cpu")
    batch = next(iter(loader))
    assert batch["image"].shape[1:3] == (2, 3) and batch["landmarks"].shape[1:] == (2, 68, 2)
    method, hist = rrl.pretrain(ds, cfg, rrl.relation_matrix(ds, aus=cfg.aus), epochs=1, device="cpu",
                                progress=False, batch_augment=True)
    assert len(hist) == 1 and np.isfinite(hist["loss"]).all()


@pytest.mark.parametrize("channels", [1, 3])
def test_moco_views_are_two_independent_views_per_face(channels):
    from aulib.data.batch_augment import BatchMoCoViews

    x = torch.rand(1, channels, 40, 40).expand(8, -1, -1, -1).contiguous()
    torch.manual_seed(0)
    out = BatchMoCoViews(32, channels, blur=True, crop_scale=(0.3, 1.0))({"image": x, "emotion": torch.arange(8)})
    assert out["q"].shape == out["k"].shape == (8, channels, 32, 32) and torch.equal(out["emotion"], torch.arange(8))
    assert 0 <= float(out["q"].min()) and float(out["q"].max()) <= 1
    assert not torch.allclose(out["q"], out["k"])  # q and k: two draws
    assert out["q"].flatten(1).std(0).mean() > 1e-3  # eight copies of one face, eight different crops


def test_emoco_pretrains_with_batched_views():
    from aulib.experiments import emoco

    P = {**emoco.settings("smoke"), "batch_augment": True}
    data = emoco.make_data(P)
    loader = emoco.pretrain_loader(data, P, device="cpu")
    b = next(iter(loader))
    assert set(b) == {"q", "k", "emotion"} and b["q"].shape[-1] == data.image_size
    models, hist = emoco.pretrain(data, {**P, "epochs": 1}, device="cpu")
    assert len(models) and np.isfinite(hist["loss"]).all()


def test_flip_crop_is_the_plain_flip_at_full_scale_and_identity_without_flip():
    from aulib.data.batch_augment import BatchFlipCrop

    x = torch.rand(6, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    y = torch.arange(6)
    fx, fy = BatchFlipCrop(16, crop_scale=(1.0, 1.0), flip=1.0)((x, y))
    assert torch.allclose(fx, x.flip(-1), atol=1e-6) and torch.equal(fy, y)  # the labels pass through
    out = BatchFlipCrop(16, crop_scale=(1.0, 1.0), flip=0.0)({"image": x, "labels": y})
    assert torch.allclose(out["image"], x, atol=1e-6) and out["labels"] is y


def test_flip_crop_draws_per_sample_and_zooms_into_the_asked_area():
    from aulib.data.batch_augment import BatchFlipCrop

    torch.manual_seed(0)
    ramp = torch.linspace(0, 1, 32).expand(64, 1, 32, 32).clone()  # x-coordinate in [0, 1]
    out, = BatchFlipCrop(32, crop_scale=(0.25, 0.25), flip=0.0)([ramp])
    span = out.amax((1, 2, 3)) - out.amin((1, 2, 3))
    assert torch.allclose(span, torch.full_like(span, 0.5), atol=0.05)  # half the side of a quarter of the area
    assert out.amin((1, 2, 3)).std() > 0.05  # every face its own crop, not one for the whole batch
    flipped, = BatchFlipCrop(32, crop_scale=(1.0, 1.0), flip=0.5)([ramp])
    share = (flipped[:, 0, 0, 0] > 0.5).float().mean()  # a flipped ramp starts at 1
    assert 0.25 < share < 0.75


def test_geometric_without_warp_is_the_face_flip_and_landmarks_follow_a_warp():
    from aulib.data.batch_augment import BatchGeometric

    x, lm = _faces(b=4, size=32)
    out = BatchGeometric(rotation=0.0, scale=(1.0, 1.0), shift=0.0, flip=1.0)({"image": x, "landmarks": lm, "y": 7})
    fx, flm = flip_faces(x, lm, torch.ones(4, dtype=torch.bool))
    assert torch.allclose(out["image"], fx, atol=1e-5) and torch.allclose(out["landmarks"], flm, atol=1e-4)
    assert out["y"] == 7  # labels and the rest pass through
    size = 48
    x = torch.zeros(6, 1, size, size)
    lm = torch.full((6, 68, 2), size / 2)
    lm[:, 30] = torch.tensor([14.0, 31.0])
    x[:, :, 30:33, 13:16] = 1.0  # a bright dot at landmark 30
    torch.manual_seed(0)
    out = BatchGeometric(rotation=30.0, scale=(0.8, 1.2), shift=0.1, flip=0.5)({"image": x, "landmarks": lm})
    for i in range(6):
        yy, xx = np.unravel_index(int(out["image"][i, 0].argmax()), (size, size))
        assert abs(xx - float(out["landmarks"][i, 30, 0])) <= 1.6 and abs(yy - float(out["landmarks"][i, 30, 1])) <= 1.6
    assert not torch.allclose(out["landmarks"][0, 30], out["landmarks"][1, 30])  # each sample its own draw


def test_geometric_warps_a_triplet_alike_and_keeps_its_centre_frame_as_the_image():
    from aulib.data.batch_augment import BatchGeometric

    frame = _faces(b=5, size=24, seed=1)[0]  # (5, 3, 24, 24)
    images = torch.stack([frame, frame.flip(-2), frame], 1)  # (B, 3 frames, C, H, W)
    lm = torch.rand(5, 68, 2) * 23
    torch.manual_seed(3)
    out = BatchGeometric(rotation=20.0, scale=(0.8, 1.2), shift=0.1, flip=0.5)(
        {"images": images, "image": images[:, 1], "landmarks": lm})
    assert out["images"].shape == images.shape
    assert torch.equal(out["images"][:, 0], out["images"][:, 2])  # frames t-T and t+T were equal: one warp
    assert torch.equal(out["image"], out["images"][:, 1])
    assert not torch.allclose(out["images"][0, 0], out["images"][1, 0])  # a draw per sample


def test_aunet_image_path_augments_on_the_batch_and_tests_without_it():
    from conftest import make_dataset

    from aulib.experiments.aunet import make_loader
    from aulib.methods.aunet import AUNetConfig

    ds = make_dataset(n_subjects=2, seqs=1, frames=6, size=32)
    rows = np.arange(len(ds))
    cfg = AUNetConfig(variant="resnet18", n_aus=3, image_size=32, batch_size=4, channels=1)
    train = make_loader(ds, rows, cfg, train=True)
    assert isinstance(train, OnDevice) and train.dataset.transform is None  # no per-frame transform in the loader
    b = next(iter(train))
    assert b["image"].shape == (4, 1, 32, 32) and b["landmarks"].shape == (4, 68, 2)
    plain = make_loader(ds, rows, cfg, train=False)
    assert not isinstance(plain, OnDevice)
    unaugmented = make_loader(ds, rows, dataclasses.replace(cfg, augment=False), train=True)
    assert not isinstance(unaugmented, OnDevice)
