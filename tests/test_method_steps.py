"""Every method's training step against a hand-worked recomputation of its loss from the same network outputs.

These tests were written against the mutants that survived `nox -s mutants` over the methods' training steps
(Eq.3's symmetrisation weight, the OT settings of Eq.5-6, Eq.4's gamma term of AUNet, the masks of Eq.1, the
label-space alignment, FAN's heatmap objective, the single EmoCo queue, the supervised reference's weights):
each assertion fails when the step computes a different equation from the one named beside it.
"""

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from aulib.losses.byol import byol_loss
from aulib.losses.latent_consistency import latent_consistency
from aulib.losses.local_byol import local_byol_loss
from aulib.losses.masked_bce import cost_weights
from aulib.losses.ot_relation import ot_relation_loss
from aulib.losses.weighted_bce import weighted_bce
from aulib.methods.aunet import AUNetConfig, AUNetMethod, FANPretrain
from aulib.methods.emoco import EmoCo
from aulib.methods.rrl import RRL, RRLConfig
from aulib.methods.supervised import Supervised
from aulib.models.aunet import AUVAE
from aulib.models.fan import FAN, landmark_heatmaps

AUS = (1, 2, 4, 6)


# ----------------------------------------------------------------------------------------------- RRL (Eq.2-7)
def _rrl_batch(b=8, s=64):
    g = torch.Generator().manual_seed(0)
    lm = torch.rand(b, 2, 68, 2, generator=g) * 24 + 20
    return {"image": torch.rand(b, 2, 3, s, s, generator=g), "landmarks": lm}


@pytest.mark.parametrize("normalize", [True, False])
def test_rrl_step_is_eq7_of_the_symmetrised_terms_with_the_configured_ot(normalize):
    """L = a1 L_glo + a2 L_loc + a3 L_corr (Eq.7); L_loc = (Eq.3 view 1->2 + view 2->1) / 2; L_corr = Eq.6 with the
    config's entropic weight, iterations and l2-normalised marginals (non-default values, so a dropped keyword
    shows)."""
    torch.manual_seed(0)
    relation = np.full((4, 4), 0.3)
    np.fill_diagonal(relation, 1.0)
    cfg = RRLConfig(backbone="swin_tiny_test", image_size=64, local_stride=8, hidden_dim=32, proj_dim=16,
                    batch_size=8, aus=AUS, alphas=(0.3, 0.5, 0.7), ot_reg=0.3, ot_iters=3, ot_normalize=normalize)
    m = RRL(cfg, relation).train()
    twin = copy.deepcopy(m)
    batch = _rrl_batch()
    out = m.training_step(batch, 0)

    x1, x2, m1, m2 = twin._views(batch)
    on1, on2 = twin.online(x1, m1), twin.online(x2, m2)
    with torch.no_grad():
        tg1, tg2 = twin.target(x1, m1), twin.target(x2, m2)
    b, k, _ = on1["z_loc"].shape
    q = twin.predictor
    qg1, qg2 = q(on1["z_g"]), q(on2["z_g"])
    ql1, ql2 = (q(o["z_loc"].flatten(0, 1)).view(b, k, -1) for o in (on1, on2))
    glo = byol_loss(qg1, tg2["z_g"], qg2, tg1["z_g"])
    loc = 0.5 * (local_byol_loss(ql1, tg2["z_loc"], qg1) + local_byol_loss(ql2, tg1["z_loc"], qg2))
    corr = ot_relation_loss(torch.cat([ql1, ql2]), torch.cat([tg2["z_loc"], tg1["z_loc"]]), torch.cat([qg1, qg2]),
                            torch.cat([tg2["z_g"], tg1["z_g"]]), m.cost, reg=0.3, max_iter=3, normalize=normalize)
    torch.testing.assert_close(out["global"], glo, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out["local"], loc, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out["corr"], corr, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out["loss"], 0.3 * glo + 0.5 * loc + 0.7 * corr, rtol=1e-5, atol=1e-6)
    # the settings matter at these values: the defaults (reg 0.05, 100 iterations) or the other marginals differ
    for kw in ({"reg": 0.05, "max_iter": 3}, {"reg": 0.3, "max_iter": 100}, {"reg": 0.3, "max_iter": 3,
                                                                             "normalize": not normalize}):
        other = ot_relation_loss(torch.cat([ql1, ql2]), torch.cat([tg2["z_loc"], tg1["z_loc"]]),
                                 torch.cat([qg1, qg2]), torch.cat([tg2["z_g"], tg1["z_g"]]), m.cost,
                                 **{"normalize": normalize, **kw})
        assert abs(float(other - corr.detach())) > 1e-5, kw


# ----------------------------------------------------------------------------------------------- EmoCo
EMO = dict(backbone="resnet_tiny", proj_hidden=32, proj_dim=8, queue_size=6)


def test_emoco_one_queue_step_puts_every_key_in_the_single_queue():
    from aulib.experiments.emoco import variant_config

    torch.manual_seed(0)
    m = EmoCo(variant_config("one_queue", **EMO))
    assert m.dictionary.queue.shape[0] == 1
    y = torch.tensor([4, 4, 1])
    m.training_step({"q": torch.rand(3, 3, 32, 32), "k": torch.rand(3, 3, 32, 32), "emotion": y}, 0)
    assert m.dictionary.ptr.tolist() == [3]


def test_emoco_rejects_an_emotion_id_equal_to_the_class_count():
    from aulib.experiments.emoco import variant_config

    m = EmoCo(variant_config("emoco", **EMO))
    bad = torch.tensor([0, m.cfg.num_classes])
    with pytest.raises(ValueError, match="emotion label 0..6"):
        m.training_step({"q": torch.rand(2, 3, 32, 32), "k": torch.rand(2, 3, 32, 32), "emotion": bad}, 0)


def test_emoco_contrastive_loss_uses_the_configured_temperature():
    from aulib.experiments.emoco import variant_config

    torch.manual_seed(0)
    m = EmoCo(variant_config("emoco", **EMO, tau=0.07)).double()
    q = F.normalize(torch.randn(4, 8, dtype=torch.float64), dim=1)
    k = F.normalize(torch.randn(4, 8, dtype=torch.float64), dim=1)
    y = torch.tensor([0, 2, 2, 5])
    got = m.contrastive_loss(q, k, y)
    m.cfg.tau = 0.2
    at_default = m.contrastive_loss(q, k, y)
    assert abs(float(got - at_default)) > 1e-3  # Eq.5's 1 / tau is the config's, not a default


# ----------------------------------------------------------------------------------------------- AUNet
def _aunet(variant="au_vae", **kw):
    cfg = AUNetConfig(variant=variant, n_aus=3, image_size=64, fan_width=16, fan_depth=3, head_width=16,
                      head_hidden=8, head_blocks=3, latent=2, temporal_offset=2, batch_size=4, **kw)
    torch.manual_seed(0)
    return AUNetMethod(cfg, np.array([0.2, 0.3, 0.5]), fan=FAN(width=16, depth=3), vae=AUVAE(3, 2)).train()


def _aunet_batch():
    torch.manual_seed(1)
    y = (torch.rand(4, 3) > 0.5).float()
    valid = torch.tensor([[1, 1, 0], [1, 0, 1], [1, 1, 1], [0, 1, 1]], dtype=torch.bool)
    return {"image": torch.rand(4, 3, 64, 64), "labels": y, "valid": valid}


def test_aunet_step_is_eq4_over_known_labels():
    """L = Eq.1 (weighted BCE over the known labels only) + gamma * the consistency of sigmoid(logits) with the
    labels, unknown ones zeroed (Eq.3-4)."""
    m = _aunet(gamma=0.7)
    batch = _aunet_batch()
    out = m.training_step(batch, 0)
    with torch.no_grad():
        logits = m(batch)
    y, v = batch["labels"], batch["valid"]
    cls = weighted_bce(logits, y, m.au_weights, v)
    cons = m.consistency(torch.sigmoid(logits), y * v)
    torch.testing.assert_close(out["cls"], cls)
    torch.testing.assert_close(out["cons"], cons)
    torch.testing.assert_close(out["loss"], cls + 0.7 * cons)
    assert abs(float(cls - weighted_bce(logits, y, m.au_weights))) > 1e-4  # the mask matters on this batch


@pytest.mark.parametrize("form", ["paper", "official"])
def test_aunet_consistency_in_latent_space_by_hand(form):
    m = _aunet(consistency=form).eval()
    p, y = torch.rand(5, 3), (torch.rand(5, 3) > 0.5).float()
    mu_p, lv_p = m.vae.encode(p)
    mu_g, lv_g = m.vae.encode(y)
    torch.testing.assert_close(m.consistency(p, y), latent_consistency(mu_p, lv_p, mu_g, lv_g, form))
    if form == "paper":  # Eq.3's second moment uses the ground truth's variance too
        other = latent_consistency(mu_p, lv_p, mu_g, torch.zeros_like(lv_g), form)
        assert abs(float(other - m.consistency(p, y))) > 1e-6


def test_aunet_label_space_alignment_is_bce_of_the_decoded_prediction():
    """Sec. V-E's rejected alternative: BCE(D(mu_p), y), not the latent distance."""
    m = _aunet(align="label").eval()
    p, y = torch.rand(5, 3), (torch.rand(5, 3) > 0.5).float()
    mu_p, lv_p = m.vae.encode(p)
    want = F.binary_cross_entropy_with_logits(m.vae.decode(mu_p), y)
    torch.testing.assert_close(m.consistency(p, y), want)
    mu_g, lv_g = m.vae.encode(y)
    assert abs(float(want - latent_consistency(mu_p, lv_p, mu_g, lv_g, "official"))) > 1e-6


def test_fan_objective_is_the_foreground_weighted_heatmap_mse_of_both_stacks():
    torch.manual_seed(0)
    fan = FAN(n_stacks=2, width=16, depth=3)
    step = FANPretrain(fan, sigma=1.5, fg_weight=4.0)
    x = torch.rand(2, 3, 64, 64)
    pts = torch.rand(2, 68, 2) * 50 + 7
    out = step.training_step({"image": x, "landmarks": pts}, 0)
    with torch.no_grad():
        heatmaps = fan(x)
    h, w = heatmaps[0].shape[-2:]
    target = landmark_heatmaps(pts, (h, w), 64 / w, 1.5)  # stride: input pixels per heatmap cell
    want = [(((hm - target) ** 2) * (1 + 4.0 * target)).mean() * 68 for hm in heatmaps]
    torch.testing.assert_close(out["stack0"], want[0])
    torch.testing.assert_close(out["stack1"], want[1])
    torch.testing.assert_close(out["loss"], want[0] + want[1])


# ----------------------------------------------------------------------------------------------- supervised
class _Fixed(torch.nn.Module):
    """A model whose logits are a fixed function of the input, so the loss can be worked out by hand."""

    def forward(self, x):
        return x.flatten(1)[:, :3] * 4 - 2  # (B, 3)


def _bce(z, y, w=None, pw=None):
    p = torch.sigmoid(z)
    pw = torch.ones_like(y) if pw is None else pw.expand_as(y)
    terms = -(pw * y * torch.log(p) + (1 - y) * torch.log(1 - p))
    return terms if w is None else terms * w


def test_supervised_step_by_hand_with_masks_positive_weights_and_cost_manipulation():
    torch.manual_seed(0)
    x = torch.rand(6, 1, 2, 2)
    y = (torch.rand(6, 3) > 0.4).float()
    v = torch.rand(6, 3) > 0.2
    z = _Fixed()(x)
    pw = torch.tensor([2.0, 0.5, 3.0])
    batch = {"image": x, "labels": y, "valid": v}

    plain = Supervised(model=_Fixed()).training_step(batch, 0)["loss"]
    torch.testing.assert_close(plain, _bce(z, y)[v].mean())
    no_valid = Supervised(model=_Fixed()).training_step({"image": x, "labels": y}, 0)["loss"]
    torch.testing.assert_close(no_valid, _bce(z, y).mean())
    weighted = Supervised(model=_Fixed(), pos_weight=pw).training_step(batch, 0)["loss"]
    torch.testing.assert_close(weighted, _bce(z, y, pw=pw)[v].mean())
    cost = Supervised(model=_Fixed(), cost_manipulation=True).training_step(batch, 0)["loss"]
    cw = cost_weights(y, v)
    torch.testing.assert_close(cost, (_bce(z, y) * cw)[v].sum() / v.sum())
    assert abs(float(cost - plain)) > 1e-4

    mask = torch.rand(6, 3) > 0.3
    per_au = Supervised(model=_Fixed(), au_mask=mask, pos_weight=pw, cost_manipulation=True).training_step(
        batch, 0)["loss"]
    keep = v & mask
    terms = _bce(z, y, w=cw, pw=pw)
    per = [terms[keep[:, k], k].mean() for k in range(3) if keep[:, k].any()]
    torch.testing.assert_close(per_au, torch.stack(per).mean())
