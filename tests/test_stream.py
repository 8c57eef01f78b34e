"""FaceStream: faces drawn on the fly are a function of (seed, index) only; the loader order does not depend on
the worker count; a stream resumed at position p continues exactly; memory stays bounded."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader

from aulib.data.stream import FaceStream, draw_face


def _stream(**kw):
    base = dict(preset="affectnet", n=12, image_size=48, channels=3, seed=7, block=3)
    return FaceStream(**{**base, **kw})


def _collect(stream, workers, batch=3):
    loader = DataLoader(stream, batch_size=batch, num_workers=workers, drop_last=False)
    out = [b for b in loader]
    return torch.cat([b["index"] for b in out]), torch.cat([b["image"] for b in out])


def test_same_seed_index_same_bytes_and_seed_matters():
    a, b = draw_face("affectnet", 5, seed=7, image_size=48), draw_face("affectnet", 5, seed=7, image_size=48)
    assert a["image"].dtype == np.uint8 and a["image"].shape == (48, 48, 3)
    assert np.array_equal(a["image"], b["image"]) and np.array_equal(a["landmarks"], b["landmarks"])
    assert a["emotion"] == b["emotion"] and 0 <= a["emotion"] < 7
    assert not np.array_equal(a["image"], draw_face("affectnet", 6, seed=7, image_size=48)["image"])
    assert not np.array_equal(a["image"], draw_face("affectnet", 5, seed=8, image_size=48)["image"])


def test_loader_order_and_bytes_do_not_depend_on_worker_count():
    idx0, img0 = _collect(_stream(), 0)
    idx2, img2 = _collect(_stream(), 2)
    idx3, img3 = _collect(_stream(), 3)
    assert sorted(idx0.tolist()) == list(range(12))  # each face once per epoch, shuffled
    assert idx0.tolist() != list(range(12))
    assert torch.equal(idx0, idx2) and torch.equal(idx0, idx3)
    assert torch.equal(img0, img2) and torch.equal(img0, img3)
    # a face's bytes are the same wherever it lands in the order
    face = draw_face("affectnet", int(idx0[4]), seed=7, image_size=48)["image"]
    assert torch.equal(img0[4], torch.from_numpy(face).permute(2, 0, 1).float() / 255)


def test_resumed_stream_continues_exactly():
    idx, img = _collect(_stream(), 2)
    for start in (3, 7):  # a block boundary and mid-block
        ridx, rimg = _collect(_stream(start=start), 2)
        assert torch.equal(ridx, idx[start:]) and torch.equal(rimg, img[start:])


def test_epochs_reshuffle_and_ranks_split_the_faces():
    s = _stream(block=2)
    e0 = [int(x["index"]) for x in s]
    s.set_epoch(1)
    e1 = [int(x["index"]) for x in s]
    assert sorted(e0) == sorted(e1) == list(range(12)) and e0 != e1
    r0 = [int(x["index"]) for x in _stream(block=2, rank=0, world_size=2)]
    r1 = [int(x["index"]) for x in _stream(block=2, rank=1, world_size=2)]
    assert not set(r0) & set(r1) and sorted(r0 + r1) == list(range(12))
    # rank-interleaved blocks give back the single-process order
    merged = [x for k in range(3) for x in r0[2 * k:2 * k + 2] + r1[2 * k:2 * k + 2]]
    assert merged == e0


def test_persistent_workers_and_fit_advance_the_epoch():
    from aulib.data.loader import make_loader

    s = _stream(block=3)
    expect = [s.order(e)[:12].tolist() for e in range(2)]
    loader = make_loader(s, batch_size=3, num_workers=2)  # persistent workers keep their own copy
    got = []
    for e in range(2):
        s.set_epoch(e)  # what fit does; the workers' copies count their passes instead
        got.append(torch.cat([b["index"] for b in loader]).tolist())
    assert got == expect and expect[0] != expect[1]
    from aulib.train.loop import _set_epoch

    _set_epoch(loader, 5)
    assert s.epoch == 5


def test_auto_workers_from_affinity(monkeypatch):
    import os

    from aulib.data import loader as L

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)), raising=False)
    assert L.available_cores() == 16 and L.auto_workers() == 15
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert L.auto_workers() == 7
    dl = L.make_loader(list(range(8)), batch_size=2, num_workers=2)
    assert dl.persistent_workers and dl.prefetch_factor == 4 and dl.pin_memory == torch.cuda.is_available()


def test_emotions_without_rendering_match_the_faces():
    s = _stream(n=6)
    assert s.emotions().tolist() == [s.face(i)["emotion"] for i in range(6)]


def test_len_counts_this_ranks_faces():
    for n, block, world in ((12, 3, 2), (13, 3, 2), (10, 4, 3)):
        for rank in range(world):
            s = _stream(n=n, block=block, rank=rank, world_size=world)
            assert len(s) == len(list(s))
    assert len(_stream(start=5)) == 7


def test_aligned_stream_cuts_each_face_as_face_crop_does():
    from aulib.data.align import face_crop

    s = _stream(align="rrl", draw_size=96)
    f = s.face(4)
    raw = draw_face("affectnet", 4, seed=7, image_size=96)
    img, lm, _ = face_crop(raw["image"], raw["landmarks"], "rrl", 48, 3)
    assert f["image"].shape == (48, 48, 3) and f["landmarks"].dtype == np.float32
    assert np.array_equal(f["image"], img)
    np.testing.assert_allclose(f["landmarks"], lm, rtol=0, atol=1e-5)
    assert f["emotion"] == raw["emotion"] and f["index"] == 4
    assert not np.array_equal(f["image"], _stream().face(4)["image"])  # the unaligned stream is untouched
