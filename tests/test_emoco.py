"""EmoCo method: multi-queue dictionary, negatives per class, Eq.5 with N, momentum update, DDP key gathering."""

import math
import os
import tempfile

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from aulib.methods.emoco import TABLE_IV_VARIANTS, EmoCo, EmoCoConfig, MultiQueue, TwoViews, variant_config

TINY = dict(backbone="resnet_tiny", proj_hidden=32, proj_dim=8, queue_size=6)


def _tagged_keys(cls_ids, start=0):
    """Keys whose first coordinate is a running serial number and second the class, so they can be traced."""
    keys = torch.zeros(len(cls_ids), 4)
    keys[:, 0] = torch.arange(start, start + len(cls_ids), dtype=torch.float)
    keys[:, 1] = torch.as_tensor(cls_ids, dtype=torch.float)
    return keys


def _slots(q: MultiQueue, c: int):
    """(serial, class) stored in queue c, in slot order."""
    return [(int(a), int(b)) for a, b in q.queue[c, :2].T.tolist()]


# ---- multi-queue dictionary ------------------------------------------------------------------------------
def test_keys_land_in_their_own_class_in_batch_order():
    q = MultiQueue(num_queues=3, dim=4, size=4)
    ids = [2, 0, 2, 1, 2]
    q.enqueue(_tagged_keys(ids), torch.tensor(ids))
    # class 2 got serials 0, 2, 4 in slots 0..2; class 0 serial 1; class 1 serial 3
    assert _slots(q, 2)[:3] == [(0, 2), (2, 2), (4, 2)]
    assert _slots(q, 0)[0] == (1, 0)
    assert _slots(q, 1)[0] == (3, 1)
    assert q.ptr.tolist() == [1, 1, 3]


def test_pointer_wraps_and_oldest_keys_are_replaced():
    q = MultiQueue(num_queues=2, dim=4, size=4)
    q.enqueue(_tagged_keys([0, 0, 0]), torch.tensor([0, 0, 0]))  # serials 0,1,2 -> slots 0,1,2
    q.enqueue(_tagged_keys([0, 0, 0], start=10), torch.tensor([0, 0, 0]))  # 10 -> slot 3, 11 -> 0, 12 -> 1
    assert [s for s, _ in _slots(q, 0)] == [11, 12, 2, 10]
    assert int(q.ptr[0]) == 2  # (3 + 3) % 4
    assert int(q.ptr[1]) == 0  # the other queue is untouched


def test_more_keys_than_slots_keeps_the_newest():
    q = MultiQueue(num_queues=1, dim=4, size=4)
    q.enqueue(_tagged_keys([0] * 6), torch.zeros(6, dtype=torch.long))  # serials 0..5 into 4 slots
    # sequential writes would leave 4, 5 in slots 0, 1 and 2, 3 in slots 2, 3
    assert [s for s, _ in _slots(q, 0)] == [4, 5, 2, 3]
    assert int(q.ptr[0]) == 2


def test_enqueue_rejects_bad_ids():
    q = MultiQueue(num_queues=2, dim=4, size=4)
    with pytest.raises(ValueError, match="0..1"):
        q.enqueue(torch.zeros(2, 4), torch.tensor([0, 2]))


# ---- Eq.5 with N over the class queue ---------------------------------------------------------------------
def _np_unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _hand_loss(q, k, y, queue, W, tau, intra, multi):
    """Independent numpy Eq.4 + Eq.5: each query only against the (C, D, K) queue of its class."""
    total = 0.0
    for qi, ki, yi in zip(q, k, y):
        w = _np_unit(W[yi]) if intra else np.zeros_like(W[yi])
        n = lambda v, w=w: _np_unit(_np_unit(v) - w)  # noqa: E731
        negs = queue[yi if multi else 0].T  # (K, D)
        logits = [n(qi) @ n(ki) / tau] + [n(qi) @ n(kn) / tau for kn in negs]
        total += -(logits[0] - math.log(sum(math.exp(z) for z in logits)))
    return total / len(q)


@pytest.mark.parametrize("variant", ["emoco", "one_queue", "l2_norm"])
def test_contrastive_loss_matches_hand_computation(variant):
    torch.manual_seed(0)
    m = EmoCo(variant_config(variant, **TINY)).double()
    m.dictionary.queue.copy_(torch.nn.functional.normalize(torch.randn_like(m.dictionary.queue), dim=1))
    q = torch.nn.functional.normalize(torch.randn(5, 8, dtype=torch.float64), dim=1)
    k = torch.nn.functional.normalize(torch.randn(5, 8, dtype=torch.float64), dim=1)
    y = torch.tensor([0, 3, 3, 6, 1])
    got = m.contrastive_loss(q, k, y).item()
    cfg = m.cfg
    expected = _hand_loss(q.numpy(), k.numpy(), y.numpy(), m.dictionary.queue.numpy(),
                          m.classifier.weight.detach().numpy(), cfg.tau, cfg.intra_norm, cfg.multi_queue)
    assert got == pytest.approx(expected, rel=1e-9)


def test_negatives_never_come_from_another_class():
    torch.manual_seed(1)
    m = EmoCo(variant_config("emoco", **TINY)).double()
    q = torch.nn.functional.normalize(torch.randn(4, 8, dtype=torch.float64), dim=1)
    k = torch.nn.functional.normalize(torch.randn(4, 8, dtype=torch.float64), dim=1)
    y = torch.tensor([2, 2, 5, 5])
    before = m.contrastive_loss(q, k, y)
    others = [c for c in range(7) if c not in (2, 5)]
    m.dictionary.queue[others] = torch.randn_like(m.dictionary.queue[others])  # scramble foreign queues
    assert torch.equal(m.contrastive_loss(q, k, y), before)
    m.dictionary.queue[5] = torch.randn_like(m.dictionary.queue[5])  # own queue changes the loss
    assert not torch.equal(m.contrastive_loss(q, k, y), before)


def test_training_step_enqueues_keys_by_emotion():
    torch.manual_seed(0)
    m = EmoCo(variant_config("emoco", **TINY))
    y = torch.tensor([4, 4, 1])
    out = m.training_step({"q": torch.rand(3, 3, 32, 32), "k": torch.rand(3, 3, 32, 32), "emotion": y}, 0)
    assert set(out) == {"loss", "L_emo", "L_cont"}
    assert m.dictionary.ptr.tolist() == [0, 1, 0, 0, 2, 0, 0]


# ---- momentum update (Eq.3) -------------------------------------------------------------------------------
def test_momentum_update_by_hand():
    torch.manual_seed(0)
    m = EmoCo(EmoCoConfig(**{**TINY, "momentum": 0.9}))
    with torch.no_grad():
        for p in m.encoder.parameters():
            p.normal_()
    q_params = [p.detach().clone() for p in (*m.encoder.parameters(), *m.projector.parameters())]
    k_params = [p.detach().clone() for p in (*m.key_encoder.parameters(), *m.key_projector.parameters())]
    m.on_after_optimizer_step(0, 10)
    new_k = [p.detach() for p in (*m.key_encoder.parameters(), *m.key_projector.parameters())]
    for a, b, c in zip(q_params, k_params, new_k):
        assert torch.allclose(c, 0.9 * b + 0.1 * a, atol=1e-6)
    assert not any(p.requires_grad for p in m.key_encoder.parameters())


# ---- configuration -----------------------------------------------------------------------------------------
def test_variants_and_bad_config():
    assert set(TABLE_IV_VARIANTS) == {"emoco", "one_queue", "l2_norm", "cont_only", "emo_only"}
    with pytest.raises(KeyError, match="valid variants"):
        variant_config("nope")
    with pytest.raises(ValueError, match="intra_norm"):
        EmoCoConfig(use_emo=False, intra_norm=True)
    with pytest.raises(KeyError, match="valid fields"):
        EmoCoConfig.from_dict({"lambda_": 1})
    m = EmoCo(variant_config("emoco", **TINY))
    with pytest.raises(ValueError, match="emotion label"):
        m.training_step({"q": torch.rand(2, 3, 32, 32), "k": torch.rand(2, 3, 32, 32), "emotion": torch.tensor([0, -1])}, 0)


def test_two_views_drop_au_labels():
    base = [{"image": torch.rand(3, 16, 16), "emotion": torch.tensor(2), "labels": torch.ones(5)}]
    item = TwoViews(base, lambda x: x + 0)[0]
    assert set(item) == {"q", "k", "emotion"}


# ---- loss falls on a fixed batch ----------------------------------------------------------------------------
@pytest.mark.parametrize("variant", ["emoco", "emo_only"])
def test_loss_falls_on_fixed_batch(variant):
    torch.manual_seed(0)
    m = EmoCo(variant_config(variant, **{**TINY, "queue_size": 64, "momentum": 0.9}))
    g = torch.Generator().manual_seed(0)
    batch = {"q": torch.rand(14, 3, 32, 32, generator=g), "k": torch.rand(14, 3, 32, 32, generator=g),
             "emotion": torch.arange(14) % 7}
    opt = torch.optim.SGD(m.parameter_groups(), lr=0.1, momentum=0.9)
    losses = []
    for step in range(40):
        out = m.training_step(batch, step)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        m.on_after_optimizer_step(step, 40)
        losses.append(out["loss"].item())
    assert np.mean(losses[-3:]) < 0.85 * np.mean(losses[:3])


# ---- DDP: keys of every process reach every dictionary -----------------------------------------------------
def _ddp_worker(rank, world, port, out_dir):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.distributed.init_process_group("gloo", rank=rank, world_size=world)
    torch.manual_seed(0)  # same initial weights on both ranks
    m = EmoCo(variant_config("emoco", **TINY))
    g = torch.Generator().manual_seed(100 + rank)
    y = torch.tensor([rank, rank, 3])  # rank 0 -> classes 0,0,3; rank 1 -> 1,1,3
    batch = {"q": torch.rand(3, 3, 32, 32, generator=g), "k": torch.rand(3, 3, 32, 32, generator=g), "emotion": y}
    with torch.no_grad():
        k = torch.nn.functional.normalize(m.key_projector(m.key_encoder(batch["k"])), dim=1)
    m.training_step(batch, 0)
    torch.save({"k": k, "y": y, "queue": m.dictionary.queue.clone(), "ptr": m.dictionary.ptr.clone()},
               os.path.join(out_dir, f"rank{rank}.pt"))
    torch.distributed.destroy_process_group()


def test_ddp_keys_gathered_from_all_processes():
    from aulib.train.distributed import free_port

    with tempfile.TemporaryDirectory() as d:
        mp.spawn(_ddp_worker, args=(2, free_port(), d), nprocs=2, join=True)
        r = [torch.load(os.path.join(d, f"rank{i}.pt")) for i in range(2)]
    assert torch.equal(r[0]["queue"], r[1]["queue"])  # every process holds the same dictionary
    assert r[0]["ptr"].tolist() == [2, 2, 0, 2, 0, 0, 0]
    q = r[0]["queue"]
    # rank order: rank 0's keys first; class 3 got rank 0's third key then rank 1's third key
    assert torch.allclose(q[0, :, :2].T, r[0]["k"][:2], atol=1e-6)
    assert torch.allclose(q[1, :, :2].T, r[1]["k"][:2], atol=1e-6)
    assert torch.allclose(q[3, :, 0], r[0]["k"][2], atol=1e-6)
    assert torch.allclose(q[3, :, 1], r[1]["k"][2], atol=1e-6)


def test_two_views_from_canonical_and_augmentation():
    from conftest import make_dataset

    from aulib.methods.emoco import mocov2_augmentation

    ds = make_dataset(n_subjects=2, seqs=1, frames=4, size=32, emotion=True)
    tv = TwoViews.from_canonical(ds, rows=[1, 3], transform=mocov2_augmentation(24, channels=1))
    item = tv[1]
    assert item["q"].shape == item["k"].shape == (1, 24, 24)
    assert int(item["emotion"]) == int(ds.emotions()[3])
    assert 0 <= float(item["q"].min()) and float(item["q"].max()) <= 1
    assert not torch.equal(item["q"], item["k"])  # two independent draws
    ds.frames.loc[2, "emotion"] = -1
    with pytest.raises(ValueError, match="row 2"):
        TwoViews.from_canonical(ds, transform=lambda x: x)


def test_parameter_groups_classifier_lr_and_frozen_key_encoder():
    m = EmoCo(variant_config("emoco", **TINY, classifier_lr=0.5))
    groups = m.parameter_groups()
    ids = [{id(p) for p in g["params"]} for g in groups]
    assert ids[1] == {id(m.classifier.weight)} and groups[1]["lr"] == 0.5
    assert not ({id(p) for p in m.key_encoder.parameters()} & (ids[0] | ids[1]))  # Eq.3 only, no gradient
    moco = EmoCo(variant_config("moco", **TINY))
    assert moco.dictionary.num_queues == 1 and len(moco.parameter_groups()) == 1
