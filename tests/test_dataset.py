import numpy as np
import pytest
import torch
from conftest import make_dataset

from aulib.data.dataset import FrameDataset, temporal_neighbours
from aulib.data.schema import DatasetError
from aulib.data.transforms import IBUG_MIRROR, FaceHorizontalFlip, to_sample


def test_triplets_stay_inside_their_sequence_and_clamp():
    ds = make_dataset(n_subjects=2, seqs=2, frames=5)
    ds.frames = ds.frames.sample(frac=1, random_state=0).reset_index(drop=True)  # order must not matter
    prev, nxt = temporal_neighbours(ds, 2)
    f = ds.frames
    for r in range(len(f)):
        for other, want in ((prev[r], max(f.frame[r] - 2, 0)), (nxt[r], min(f.frame[r] + 2, 4))):
            assert f.subject[other] == f.subject[r] and f.sequence[other] == f.sequence[r]
            assert f.frame[other] == want


def test_dataset_without_temporal_order_says_so():
    ds = make_dataset(n_subjects=3, seqs=2, frames=1)
    with pytest.raises(DatasetError, match="no temporal order"):
        FrameDataset(ds, temporal_offset=1)


def test_items_and_resize():
    ds = make_dataset(size=16)
    item = FrameDataset(ds, size=32, channels=3)[4]
    assert item["image"].shape == (3, 32, 32) and 0 <= item["image"].min() and item["image"].max() <= 1
    np.testing.assert_allclose(item["landmarks"].numpy(), ds.landmarks[4] * 2, rtol=1e-6)
    trip = FrameDataset(ds, temporal_offset=1)[0]
    assert trip["images"].shape == (3, 1, 16, 16)
    torch.testing.assert_close(trip["images"][1], trip["image"])


def test_mirror_is_an_involution_that_swaps_eye_corners():
    assert (IBUG_MIRROR[IBUG_MIRROR] == np.arange(68)).all()
    assert IBUG_MIRROR[36] == 45 and IBUG_MIRROR[48] == 54 and IBUG_MIRROR[30] == 30 and IBUG_MIRROR[8] == 8


def test_flip_moves_landmarks_with_pixels():
    img = torch.zeros(1, 8, 10)
    lm = torch.zeros(68, 2)
    lm[36] = torch.tensor([2.0, 3.0])  # right eye outer corner on a bright pixel
    img[0, 3, 2] = 1
    out = FaceHorizontalFlip(p=1.0)(to_sample(img, lm))
    x, y = out["landmarks"][45].tolist()  # it is now the left eye's corner
    assert (x, y) == (7.0, 3.0) and out["image"][0, 3, 7] == 1
