"""EmoCo method: multi-queue dictionary, negatives per class, Eq.5 with N, momentum update, DDP key gathering."""

import math
import os
import tempfile

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from aulib.config import ConfigError
from aulib.experiments.emoco import TABLE_IV_VARIANTS, variant_config
from aulib.methods.emoco import EmoCo, EmoCoConfig, MultiQueue, TwoViews

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
    m = EmoCo(variant_config(variant, **TINY, tau=0.07)).double()  # not the default 0.2: the config's tau counts
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
    with pytest.raises(ConfigError, match="valid fields"):
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


# ---- shared pieces: the projector is the shared MLP, the key gather lives in methods.base -----------------------
def test_projector_is_the_shared_mlp_and_gather_is_identity_single_process():
    from aulib.methods.base import all_gather_concat
    from aulib.train.distributed import all_gather_concat as reexported

    m = EmoCo(variant_config("emoco", **TINY))
    kinds = [type(layer).__name__ for layer in m.projector]
    assert kinds == ["Linear", "ReLU", "Linear"] and m.projector[0].bias is not None  # FC-ReLU-FC (Sec. IV-B)
    t = torch.arange(3.0)
    assert all_gather_concat(t) is t and reexported is all_gather_concat


def test_momentum_update_leaves_key_bn_statistics_alone():
    m = EmoCo(variant_config("emoco", **TINY))
    with torch.no_grad():
        for b in m.encoder.buffers():
            if b.dtype.is_floating_point:
                b.add_(1.0)
    before = [b.clone() for b in m.key_encoder.buffers()]
    m.momentum_update()
    assert all(torch.equal(a, b) for a, b in zip(before, m.key_encoder.buffers()))  # MoCo: own BN statistics


# ---- the experiment driver at smoke sizes: schema, baselines, claims ----------------------------------------------
def _tiny_protocol():
    from aulib.experiments import emoco as E

    P = E.settings("smoke")
    P.update(image_size=32, pretrain_subjects=56, proj_hidden=16, proj_dim=8, queue_size=4, batch_size=14,
             probe_epochs=2, au_sets={"bp4d": {"n_subjects": 9, "sequences_per_subject": 1, "frames_per_sequence": 3}},
             linear_folds=[1, 2], finetune_folds=[1], finetune_sets=["bp4d"], sweep_lambdas=[0.2, 1.0],
             sweep_sets=["bp4d"], viz_images=28)
    return E, P


def test_driver_returns_results_with_baselines_and_judge_runs(tmp_path):
    from aulib.eval.claims import CLAIM_COLUMNS, VERDICTS
    from aulib.experiments.report import check_results, write_tables

    E, P = _tiny_protocol()
    data = E.make_data(P, None, seed=0)
    assert P["table_iv_seeds"] == 2 and E.pretrain_seeds(P, 5) == [5, 6]
    models, history = E.pretrain(data, P, seed=0, device="cpu")
    table_iv = {"EmoCo", "one queue", "plain L2", "L_cont only", "L_emo only"}
    # every run with seed 0; Table IV's again with seed 1 (the sweep's other runs once)
    assert set(models) == {(n, 0) for n in table_iv | {"EmoCo λ=0.2", "plain L2 λ=0.2"}} | {(n, 1) for n in table_iv}
    assert set(zip(history["run"], history["seed"])) == set(models)
    w0, w1 = (next(models[("EmoCo", s)].encoder.parameters()) for s in (0, 1))
    assert not torch.equal(w0, w1)  # two seeds, two encoders
    assert E.pretrain_summary(history).index.names == ["run", "seed"]
    results, eval_history = E.evaluate(data, models, P, seed=0, device="cpu")
    check_results(results)
    assert set(results["experiment"]) == {"linear", "finetune"}
    for _, g in results.groupby(["experiment", "fold"]):
        roles = g.groupby("variant")["role"].first()
        assert roles["EmoCo"] == "method" and roles["one queue"] == "ablation" and roles["EmoCo λ=0.2"] == "ablation"
        assert roles["always present"] == roles["prior"] == roles["untrained encoder"] == "baseline"
        assert roles["supervised"] == "reference"
    assert sorted(results.loc[results.experiment == "linear", "fold"].unique()) == [1, 2]
    # seed 1: Table IV's runs, the untrained encoder and the trivial baselines on the same folds; not the sweep's
    # other runs nor the supervised reference
    at1 = set(results.loc[results.seed == 1, "variant"])
    assert at1 == table_iv | {"untrained encoder", "always present", "prior"}
    lin = results[(results.experiment == "linear") & (results.variant == "EmoCo")]
    assert set(zip(lin.fold, lin.seed)) == {(1, 0), (2, 0), (1, 1), (2, 1)}
    ev = E._Evaluator(data, models, P, "cpu")  # seed 1's units probe the seed-1 encoder, not seed 0's again
    assert ev.encoder("EmoCo", 1) is models[("EmoCo", 1)].encoder and ev.encoder("EmoCo", 0) is not ev.encoder("EmoCo", 1)
    # the supervised reference is trained once per (dataset, fold, seed) and scored in both experiments
    sup = results[(results.variant == "supervised") & (results.fold == 1)].pivot(index="au", columns="experiment",
                                                                                  values="f1")
    assert np.allclose(sup["linear"], sup["finetune"])
    assert {"loss", "run", "dataset", "fold"} <= set(eval_history.columns)
    claims = E.judge_claims(results, P)
    assert list(claims.columns[:len(CLAIM_COLUMNS)]) == CLAIM_COLUMNS
    assert len(claims) == len(E.CLAIMS) + 1 and set(claims["verdict"]) <= set(VERDICTS)
    units = claims.set_index("claim")["n_units"]
    assert units["Table IV (linear): EmoCo > one queue"] == 2 * 2  # bp4d x 2 folds x 2 seeds
    assert units["Fig. 4 (linear): N > plain L2 at λ=0.2"] == 2  # seed 0 only
    by_seed = E.claims_per_seed(results)
    assert set(by_seed.seed) == {0, 1} and len(by_seed) == 2 * len(E.CLAIMS)
    assert (by_seed.groupby("claim")["n_units"].sum() == units[by_seed.groupby("claim").size().index]).all()
    agree = E.seed_agreement(by_seed, claims)
    assert list(agree.claim) == [c.claim for c in E.CLAIMS]
    assert {"seed 0", "seed 1", "pooled", "seeds agree"} <= set(agree.columns)
    write_tables(tmp_path, results, claims)
    t4 = E.table_iv(results)
    assert {"bp4d aulib", "bp4d paper (reported)"} <= set(t4.columns) and "untrained encoder" in set(t4.variant)
    sweep, rng = E.lambda_sweep(results, P)
    assert set(sweep["lambda"]) == {0.2, 1.0} and len(rng) == 2
    # every lambda on the swept runs' units (seed 0; linear: 2 folds, finetune: 1), λ=1 too
    assert sweep.groupby("protocol")["n_runs"].unique().map(list).to_dict() == {"linear": [2], "finetune": [1]}
    emo = E.emotion_loss_vs_prior(history, data)
    assert (emo["class-prior entropy"] <= emo["log C"]).all()
    assert "bp4d" in E.au_tables(results)
    _, toy = E.fig3_toy(steps=5)
    text = E.summary_markdown(results, claims, emo, toy, by_seed)
    assert "always present" in text and "Claims" in text
    n_agree = int(agree["seeds agree"].sum())
    assert f"{n_agree} of {len(E.CLAIMS)} claims get the same verdict" in text


def test_claims_cover_table_iv_and_the_untrained_encoder():
    from aulib.experiments import emoco as E

    assert {c.experiment for c in E.CLAIMS} == {"linear", "finetune"}
    t4 = [c for c in E.CLAIMS if c.claim.startswith("Table IV")]
    assert len(t4) == 8 and all(c.a == "EmoCo" and c.paper_diff > 0 for c in t4)
    # the paper's pooled difference: EmoCo - one queue, linear = mean(53.0-48.6, 53.3-50.2, 59.3-57.8) / 100
    one_q = next(c for c in t4 if c.b == "one queue" and c.experiment == "linear")
    assert one_q.paper_diff == pytest.approx((4.4 + 3.1 + 1.5) / 3 / 100, abs=1e-4)
    assert sum(c.b == "untrained encoder" for c in E.CLAIMS) == 2


def test_fig3_toy_intra_class_norm_reaches_the_prototype():
    from aulib.experiments import emoco as E

    _, ang_n = E.toy_descent(intra=True)
    _, ang_l2 = E.toy_descent(intra=False)
    assert ang_n["q to prototype"].iloc[-1] < ang_l2["q to prototype"].iloc[-1]
    assert ang_n["beta (N(q), N(k-))"].iloc[-1] > 150


def test_make_data_cuts_every_set_by_the_profiles_template():
    from aulib.data.align import resized_template

    E, P = _tiny_protocol()
    P = {**P, "pretrain_subjects": 14, "align": "emoco", "draw_size": 96}
    al, raw = E.make_data(P, None, seed=0), E.make_data({**P, "align": None}, None, seed=0)
    sets = [(al.pretrain, raw.pretrain)] + [(al.au_sets[k], raw.au_sets[k]) for k in al.au_sets]
    for a, r in sets:
        assert a.meta.provenance["aligned"].startswith("emoco") and "aligned" not in r.meta.provenance
        assert a.meta.image_size == (P["image_size"],) * 2 and a.meta.channels == P["channels"]
        home = resized_template("emoco", a.meta.image_size[0]).template_landmarks()  # (68, 2)
        assert np.abs(a.landmarks - home).mean() < 0.75 * np.abs(r.landmarks - home).mean()
    np.testing.assert_array_equal(al.pretrain.emotions(), raw.pretrain.emotions())
    assert al.tensors["bp4d"][0].shape[-1] == P["image_size"]


def test_feature_spectra_read_what_the_linear_probe_reads():
    import pandas as pd

    from aulib.eval.representation import spectrum_summary
    from aulib.experiments import emoco as E

    P = E.settings("smoke")
    data = E.make_data(P)
    runs = E.pretrain_runs(P, data.channels)
    models = {(E.NAMES[k], 3): E.EmoCo(runs[E.NAMES[k]]).eval() for k in E.TABLE_IV_VARIANTS}
    results = pd.DataFrame({"experiment": ["linear", "linear", "finetune", "linear"],
                            "dataset": ["bp4d", "gft", "bp4d", "bp4d"], "seed": [3, 3, 3, 4],
                            "variant": [E.METHOD] * 4, "f1": [0.5, 0.1, 0.9, 0.0], "auc": [0.8, 0.2, 0.9, 0.0]})
    table, spec = E.feature_spectra(models, data, P, seed=3, results=results)
    assert list(table.variant) == ["untrained encoder", *[E.NAMES[k] for k in E.TABLE_IV_VARIANTS]]
    x = data.tensors["bp4d"][0]
    untrained = E._Evaluator(data, models, P, "cpu").untrained(3)  # the encoder the protocols probe
    with torch.no_grad():
        f = untrained(x).numpy()
    row = table.set_index("variant").loc["untrained encoder"]
    assert row.effective_rank == pytest.approx(spectrum_summary(f)["effective_rank"], rel=1e-5)
    em = table.set_index("variant").loc[E.METHOD]
    # linear, bp4d, the seed of the encoders only
    assert em["probe F1"] == pytest.approx(0.5) and em["probe AUC"] == pytest.approx(0.8)
    assert set(spec.name) == set(table.variant)


@pytest.mark.parametrize("crop", [[0.8, 1.0], None])
def test_supervised_reference_trains_on_flipped_cropped_batches_only_when_asked(monkeypatch, crop):
    import aulib.data.batch_augment as BA

    E, P = _tiny_protocol()
    P.update(supervised_crop_scale=crop, supervised_epochs=2, finetune_batch=8)
    data = E.make_data(P, None, seed=0)
    seen, forward = [], BA.BatchFlipCrop.forward

    def spy(self, batch):
        seen.append(len(batch[0]))
        return forward(self, batch)

    monkeypatch.setattr(BA.BatchFlipCrop, "forward", spy)
    n = len(data.tensors["bp4d"][0])
    probs = E._Evaluator(data, {}, P, "cpu").supervised_fn("bp4d")(np.arange(16), np.arange(16, n), 1, 0)
    assert probs.shape == (n - 16, data.tensors["bp4d"][1].shape[1])
    assert seen == ([8, 8] * 2 if crop else [])  # the 16 training frames, every epoch; never the test frames
