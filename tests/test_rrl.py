"""RRL method: EMA (Eq.1) by hand, the m / lr / wd schedules, ablation switches, a falling loss on a fixed
batch, two-view augmentation keeping landmarks consistent; the experiment driver (aulib.experiments.rrl) on a
tiny synthetic set: results in the schema with the baselines and the supervised reference, judged claims."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from aulib.experiments.rrl import ABLATIONS, variant_config
from aulib.methods.rrl import RRL, RRLConfig, TwoViewAugment, scaled_lr, transport_plans_of
from aulib.models.ema import cosine_ramp, ema_update

AUS = (1, 2, 4, 12)


def _tiny(**kw) -> RRLConfig:
    base = dict(backbone="swin_tiny_test", image_size=64, local_stride=8, hidden_dim=32, proj_dim=16,
                batch_size=8, aus=AUS)
    base.update(kw)
    return RRLConfig(**base)


def _relation(k=4):
    m = np.full((k, k), 0.3)
    np.fill_diagonal(m, 1.0)
    return m


def _batch(b=8, s=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    lm = torch.rand(b, 2, 68, 2, generator=g) * 24 + 20
    lm[..., 39, 0], lm[..., 42, 0] = 28.0, 36.0
    return {"image": torch.rand(b, 2, 3, s, s, generator=g), "landmarks": lm}


def test_ema_update_matches_eq1_by_hand():
    online, target = nn.Linear(2, 1), nn.Linear(2, 1)
    with torch.no_grad():
        online.weight.copy_(torch.tensor([[1.0, 2.0]]))
        online.bias.fill_(3.0)
        target.weight.copy_(torch.tensor([[-1.0, 0.0]]))
        target.bias.fill_(1.0)
    ema_update(target, online, 0.9)
    torch.testing.assert_close(target.weight, torch.tensor([[-0.8, 0.2]]))  # 0.9*xi + 0.1*theta
    torch.testing.assert_close(target.bias, torch.tensor([1.2]))


def test_method_ema_uses_the_scheduled_momentum():
    torch.manual_seed(0)
    m = RRL(_tiny(use_local=False, use_corr=False))
    with torch.no_grad():
        for p in m.online.parameters():
            p.add_(1.0)  # make online and target differ
    before = [p.detach().clone() for p in m.target.parameters()]
    online = [p.detach().clone() for p in m.online.parameters()]
    m.parameter_groups()
    m.cfg.wd_start = m.cfg.wd_end = 0.0  # isolate Eq.1 from the weight decay
    m.on_after_optimizer_step(step=1, total_steps=4)  # m at step 2 of 4: halfway, 0.99
    assert m.momentum == pytest.approx(0.99)
    for t0, th, t1 in zip(before, online, m.target.parameters()):
        torch.testing.assert_close(t1, 0.99 * t0 + 0.01 * th)


def test_schedules_start_middle_end():
    assert cosine_ramp(0, 100, 0.98, 1.0) == pytest.approx(0.98)
    assert cosine_ramp(50, 100, 0.98, 1.0) == pytest.approx(0.99)
    assert cosine_ramp(100, 100, 0.98, 1.0) == pytest.approx(1.0)
    m = RRL(_tiny(use_local=False, use_corr=False, batch_size=512))
    assert scaled_lr(0.05, 512) == pytest.approx(0.1)
    assert [m.current_lr(s, 10) for s in (0, 5, 10)] == pytest.approx([0.1, 0.05, 0.0])
    assert [m.current_wd(s, 10) for s in (0, 5, 10)] == pytest.approx([0.04, 0.22, 0.4])
    assert [m.current_momentum(s, 10) for s in (0, 5, 10)] == pytest.approx([0.98, 0.99, 1.0])
    # a quarter of the way: the cosine, not a straight line
    assert m.current_wd(2.5, 10) == pytest.approx(0.4 + (0.04 - 0.4) * 0.5 * (1 + math.cos(math.pi / 4)))


def test_weight_decay_is_decoupled_and_skips_biases():
    m = RRL(_tiny(use_local=False, use_corr=False, batch_size=256, base_lr=0.5))  # lr 0.5
    decay = m.parameter_groups()[0]["params"]
    w = decay[0].detach().clone()
    bias = [p for n, p in m.online.named_parameters() if n.endswith(".bias")][0].detach().clone()
    m.on_after_optimizer_step(0, 10)  # lr 0.5, wd 0.04 -> factor 0.98
    torch.testing.assert_close(decay[0], w * (1 - 0.5 * 0.04))
    torch.testing.assert_close([p for n, p in m.online.named_parameters() if n.endswith(".bias")][0], bias)


@pytest.mark.parametrize("name", list(ABLATIONS))
def test_every_ablation_builds_and_reports_its_terms(name):
    cfg, augment = variant_config(_tiny(), name, vgg_backbone="vgg_tiny")
    m = RRL(cfg, _relation())
    out = m.training_step(_batch(), 0)
    expect = {"global"} | ({"local"} if cfg.use_local else set()) | ({"corr"} if cfg.use_corr else set())
    assert expect <= set(out) and not ({"local", "corr"} - expect) & set(out)
    total = sum(a * out[k] for a, k in zip(cfg.alphas, ("global", "local", "corr")) if k in out)  # Eq.7
    torch.testing.assert_close(out["loss"], total)
    assert augment == (name not in ("swin, no augment", "vgg, no augment"))


def test_corr_needs_the_relation_matrix_and_unknown_names_list_the_valid_ones():
    with pytest.raises(ValueError, match="relation matrix"):
        RRL(_tiny())
    with pytest.raises(ValueError, match="4 AUs"):
        RRL(_tiny(), _relation(5))
    with pytest.raises(KeyError, match="valid"):
        variant_config(_tiny(), "local only")
    with pytest.raises(TypeError, match="valid fields"):  # aulib.config.from_dict's ConfigError
        RRLConfig.from_dict({"lr_base": 1.0})


def test_loss_falls_on_a_fixed_batch():
    torch.manual_seed(0)
    m = RRL(_tiny(), _relation())
    opt = torch.optim.AdamW(m.parameter_groups(), lr=1e-3)
    batch = _batch()
    losses = []
    for step in range(12):
        out = m.training_step(batch, step)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        m.on_after_optimizer_step(step, 1000)
        losses.append(float(out["loss"].detach()))
    assert np.mean(losses[-3:]) < np.mean(losses[:3]) - 0.05


def test_two_view_augment_keeps_landmarks_with_the_flip():
    from aulib.data.transforms import IBUG_MIRROR, to_sample
    from aulib.methods.rrl import ViewAug

    img = torch.zeros(3, 32, 32)
    img[:, :, :8] = 1.0  # a bright stripe on the left
    lm = torch.rand(68, 2) * 31
    always_flip = ViewAug(flip=1.0, jitter_p=0.0, grey=0.0, blur=0.0)
    never = ViewAug(flip=0.0, jitter_p=0.0, grey=0.0, blur=0.0)
    out = TwoViewAugment(always_flip, never, image_size=32)(to_sample(img, lm))
    assert out["image"].shape == (2, 3, 32, 32) and out["landmarks"].shape == (2, 68, 2)
    torch.testing.assert_close(out["image"][0], img.flip(-1))
    torch.testing.assert_close(out["image"][1], img)
    expected = lm.clone()
    expected[:, 0] = 31 - expected[:, 0]
    torch.testing.assert_close(out["landmarks"][0], expected[IBUG_MIRROR])
    same = TwoViewAugment(always_flip, always_flip, augment=False, image_size=32)(to_sample(img, lm))
    torch.testing.assert_close(same["image"][0], same["image"][1])
    with pytest.raises(ValueError, match="3-channel"):
        TwoViewAugment(image_size=32)(to_sample(torch.zeros(1, 32, 32), lm))


def test_relation_term_works_in_one_space_and_plans_leave_the_model_untouched():
    torch.manual_seed(0)
    m = RRL(_tiny(), _relation())
    batch = _batch(16)
    x1, x2, m1, m2 = m._views(batch)
    with torch.no_grad():
        on, tg = m.online(x1, m1), m.target(x2, m2)
    o_loc, t_loc, o_g, t_g = m.relation_inputs([on], [tg])
    # Eq.5 dots a local vector with the other network's global one: both must live in the space of g (and q)
    assert o_loc.shape == t_loc.shape == (16, len(AUS), m.cfg.proj_dim)
    assert o_g.shape == t_g.shape == (16, m.cfg.proj_dim)

    before = {k: v.clone() for k, v in m.state_dict().items()}
    m.eval()
    plan, a, b = transport_plans_of(m, batch)
    assert not m.training
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())  # BN running stats untouched
    torch.testing.assert_close(a.sum(1), torch.ones(16))
    torch.testing.assert_close(plan.sum(2), a, atol=2e-3, rtol=0)  # rows ship a (Eq.5)
    torch.testing.assert_close(plan.sum(1), b, atol=2e-3, rtol=0)  # columns receive b


def test_relation_term_pairs_online_predictions_with_target_projections():
    """Eq.6 compares the online network's *outputs* (the predictor q on its AU and global projections) with the
    target projections, as BYOL's Eq.2-3 and UniVIP's OT do: the corr term alone must train q, and the
    vectors it is given must be q(z) online and z on the target side. (Fed the bare online projections, the
    term is predictor-free BYOL, which collapses; that was aulib's defect until this test.)"""
    import aulib.methods.rrl as rrl_mod

    torch.manual_seed(0)
    m = RRL(_tiny(use_local=False, alphas=(0.0, 0.0, 1.0)), _relation()).train()
    batch = _batch(8)
    seen = {}
    real = rrl_mod.ot_relation_loss

    def spy(o_loc, t_loc, o_g, t_g, *a, **kw):
        seen.update(o_loc=o_loc, t_loc=t_loc, o_g=o_g, t_g=t_g)
        return real(o_loc, t_loc, o_g, t_g, *a, **kw)

    rrl_mod.ot_relation_loss = spy
    try:
        out = m.training_step(batch, 0)
    finally:
        rrl_mod.ot_relation_loss = real
    out["loss"].backward()
    q_grad = sum(float(p.grad.abs().sum()) for p in m.predictor.parameters() if p.grad is not None)
    assert q_grad > 0  # the relation term reaches the predictor
    x1, x2, m1, m2 = m._views(batch)
    on1, on2 = m.online(x1, m1), m.online(x2, m2)
    tg2 = m.target(x2, m2)
    b, k, d = on1["z_loc"].shape
    q_loc = torch.cat([m.predictor(o["z_loc"].flatten(0, 1)).view(b, k, -1) for o in (on1, on2)])  # BN per view
    torch.testing.assert_close(seen["o_loc"], q_loc)
    torch.testing.assert_close(seen["o_g"], torch.cat([m.predictor(o["z_g"]) for o in (on1, on2)]))
    torch.testing.assert_close(seen["t_loc"][:b], tg2["z_loc"])  # online view 1 -> target view 2


def test_experiment_driver_returns_results_with_baselines_and_reference_and_judges_claims():
    from aulib.eval.claims import CLAIM_COLUMNS, VERDICTS
    from aulib.experiments import rrl as X
    from aulib.experiments.report import check_results

    P = X.settings("smoke")
    P["variants"] = ["global", "global+local+corr"]  # seconds: two rows are enough for the wiring
    P["folds"], P["seeds"], P["disfa_seeds"] = [1, 2], [0], [0]
    data = X.make_data(P)
    run = X.run_linear_protocol(P, data, device="cpu", progress=False)
    r = run.results
    check_results(r)  # the schema write_tables enforces
    for ds in (X.BP4D, X.DISFA):
        part = r[r["dataset"] == ds]
        roles = part.groupby("variant")["role"].first().to_dict()
        assert roles["always present"] == roles["prior"] == roles["untrained encoder"] == "baseline"
        assert roles["supervised"] == "reference" and roles["global+local+corr"] == "method"
        units = part.groupby("variant")[["fold", "seed"]].apply(lambda g: set(map(tuple, g.to_numpy())))
        assert all(u == units["global+local+corr"] for u in units)  # every row on the same units
    assert r.loc[r["variant"] == "global", "role"].eq("ablation").all()
    assert set(run.history["variant"]) == {"global", "global+local+corr"}
    assert len(run.supervised_history) and "loss" in run.supervised_history
    assert "global+local+corr" in run.models
    claims = X.judge_claims(r, [c for c in X.CLAIMS if {c.a, c.b} <= set(r["variant"])])
    assert list(claims.columns[: len(CLAIM_COLUMNS)]) == CLAIM_COLUMNS and len(claims) == 3
    assert set(claims["verdict"]) <= set(VERDICTS) and (claims["n_units"] == 2).all()
    assert "RRL F1" in X.summary_markdown(r, claims)


def test_claims_name_the_papers_rows_and_directions():
    from aulib.experiments import rrl as X

    by = {c.claim: c for c in X.CLAIMS}
    assert len(X.CLAIMS) == 7 and all(c.dataset == X.BP4D for c in X.CLAIMS)
    assert by["BYOL alone (global) beats the untrained encoder"].b == "untrained encoder"
    assert by["Table 3: local learning adds to global only"].paper_diff == pytest.approx(0.009)
    assert by["Table 4: augmentation helps Swin-T"].paper_diff == pytest.approx(0.011)
    assert by["pretrained RRL beats the untrained encoder"].direction == 1
    names = set(X.ABLATIONS) | {"untrained encoder"}
    assert all({c.a, c.b} <= names for c in X.CLAIMS)


def test_pretrain_runs_count_the_relation_rows_per_fold():
    from aulib.experiments import rrl as X

    P = {"variants": ["global", "global+local+corr", "global+corr"], "seeds": [0, 1], "folds": [1, 2, 3],
         "disfa_seeds": [0], "disfa_folds": [1]}
    assert X.pretrain_runs(P) == 2 * (1 + 3 + 3) + 1
    assert X.pretrain_runs({**P, "disfa_folds": [1, 2]}) == 2 * 7 + 2
    assert X.pretrain_runs(X.settings("cpu")) == 1 + 1 + 3 + 1  # what the cpu report runs
    assert X.pretrain_runs(X.settings("gpu")) == 3 * (1 + 1 + 3 + 3 + 3 + 3) + 3 * 3


def test_make_data_cuts_every_set_by_the_profiles_template():
    from aulib.data.align import resized_template
    from aulib.experiments import rrl as X

    P = X.settings("smoke")
    P["pretrain_data"] = {**P["pretrain_data"], "n_subjects": 8}
    assert P["align"] == "rrl"
    al, raw = X.make_data(P), X.make_data({**P, "align": None})
    for a, r in ((al.pretrain, raw.pretrain), (al.bp4d, raw.bp4d), (al.disfa, raw.disfa)):
        assert a.meta.provenance["aligned"].startswith("rrl") and "aligned" not in r.meta.provenance
        assert a.meta.image_size == (64, 64) and a.meta.channels == 3 and len(a) == len(r)
        # the faces are registered: their landmarks sit near the template's, unlike the frames as drawn
        home = resized_template("rrl", a.meta.image_size[0]).template_landmarks()  # (68, 2)
        assert np.abs(a.landmarks - home).mean() < 0.75 * np.abs(r.landmarks - home).mean()


def test_feature_spectra_read_the_probed_features_and_name_each_row():
    import pandas as pd

    from aulib.eval.representation import spectrum_summary
    from aulib.experiments import rrl as X
    from aulib.experiments.report import spectrum_markdown

    P = X.settings("smoke")
    P["pretrain_data"] = {**P["pretrain_data"], "n_subjects": 8}
    data = X.make_data(P)
    cfg = X.base_config(P)
    model = RRL(RRLConfig.from_dict(vars(cfg), use_local=False, use_corr=False))
    torch.manual_seed(3)
    for p in model.online.encoder.parameters():  # any weights other than the untrained encoder's
        p.data.add_(0.5 * torch.randn_like(p))
    results = pd.DataFrame({"variant": ["global", "global", "untrained encoder"], "f1": [0.4, 0.6, 0.3],
                            "auc": [0.7, 0.9, 0.6]})
    table, spec = X.feature_spectra({"global": model}, data.bp4d, cfg, seed=0, results=results, n=4)
    assert list(table.variant) == ["untrained encoder", "global"]
    feats = X.encoder_features(model.encoder.eval(), data.bp4d, None, cfg.image_size)[0].numpy()
    assert table.set_index("variant").loc["global", "effective_rank"] == pytest.approx(
        spectrum_summary(feats)["effective_rank"])
    assert table.set_index("variant").loc["global", "probe F1"] == pytest.approx(0.5)
    assert len(spec) == 8 and set(spec.name) == {"untrained encoder", "global"}
    text = spectrum_markdown(table)
    u = table.set_index("variant").loc["untrained encoder"]
    assert text.startswith("- `global`: effective rank") and f"(untrained {u.effective_rank:.1f})" in text
