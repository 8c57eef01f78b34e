"""The synthetic face generator: label statistics against the real datasets' published numbers, FACS-consistent
landmark motion per AU, local appearance change, determinism, temporal smoothness and the canonical round trip.

Reference numbers are copied from shared/reference/au_statistics.md (BP4D / DISFA 3-fold label lists); the
statistics of generated sets are computed here with plain numpy, not with the generator's helpers.
"""

import numpy as np
import pytest

from aulib.data.schema import AU_UNION, EMOTIONS, open_dataset, write_dataset
from aulib.data.synthetic import PRESETS, SynthConfig, generate, render_faces

BP4D_AUS = (1, 2, 4, 6, 7, 10, 12, 14, 15, 17, 23, 24)
BP4D_RATES = np.array([.211, .171, .203, .461, .549, .594, .562, .466, .169, .343, .165, .151])
BP4D_COOC = np.array([
    [1, .51, .30, .45, .55, .66, .58, .46, .15, .36, .15, .12],
    [.63, 1, .13, .51, .53, .67, .68, .49, .14, .32, .17, .13],
    [.31, .11, 1, .40, .62, .52, .30, .42, .16, .40, .19, .19],
    [.21, .19, .18, 1, .84, .86, .85, .60, .23, .36, .20, .14],
    [.21, .16, .23, .70, 1, .77, .72, .55, .23, .38, .19, .16],
    [.24, .19, .18, .67, .71, 1, .78, .57, .22, .35, .18, .12],
    [.22, .21, .11, .70, .70, .82, 1, .56, .21, .33, .19, .12],
    [.21, .18, .18, .59, .65, .73, .68, 1, .23, .43, .23, .24],
    [.19, .14, .19, .64, .74, .76, .69, .63, 1, .65, .36, .28],
    [.22, .16, .24, .48, .60, .60, .55, .58, .32, 1, .31, .36],
    [.20, .17, .24, .56, .63, .64, .63, .63, .37, .64, 1, .36],
    [.16, .15, .25, .44, .57, .48, .46, .73, .32, .81, .40, 1]])
DISFA_AUS = (1, 2, 4, 6, 9, 12, 25, 26)
DISFA_RATES = np.array([.050, .043, .152, .079, .042, .129, .277, .088])

# FACS regions of the iBUG 68 landmarks (0-based)
REGION = {"jaw": range(0, 17), "brows": range(17, 27), "nose": range(27, 36), "eyes": range(36, 48),
          "mouth": range(48, 68)}
ALLOWED = {1: {"brows"}, 2: {"brows"}, 4: {"brows"}, 5: {"eyes"}, 6: {"eyes"}, 7: {"eyes"}, 9: {"nose", "mouth"},
           10: {"nose", "mouth"}, 12: {"mouth"}, 14: {"mouth"}, 15: {"mouth"}, 17: {"mouth", "jaw"}, 20: {"mouth"},
           23: {"mouth"}, 24: {"mouth"}, 25: {"mouth"}, 26: {"mouth", "jaw"}, 28: {"mouth"}}


def _one_au(au: int, value: float = 5.0, size: int = 112, subject_seed=None, **kw):
    v = np.zeros((2, len(AU_UNION)), np.float32)
    v[1, AU_UNION.index(au)] = value
    return render_faces(v, subject_seed=subject_seed, image_size=size, **kw)


def _rates_cooc(y: np.ndarray):
    y = y.astype(np.float64)
    rates = y.mean(0)
    cooc = (y.T @ y) / np.maximum(y.sum(0), 1)[:, None]
    return rates, cooc


@pytest.fixture(scope="module")
def bp4d_set():
    # many short sequences: frames of one sequence are correlated (AU episodes), so they add little evidence
    return generate(SynthConfig(preset="bp4d", n_subjects=41, sequences_per_subject=12, frames_per_sequence=4,
                                image_size=64, seed=3))


def test_bp4d_label_statistics_match_reference(bp4d_set):
    ds = bp4d_set
    assert ds.aus == list(BP4D_AUS)
    y = ds.frames[[f"AU{a}" for a in BP4D_AUS]].to_numpy()
    assert set(np.unique(y)) <= {0, 1}
    rates, cooc = _rates_cooc(y)
    assert np.abs(rates - BP4D_RATES).max() < 0.09, np.round(rates - BP4D_RATES, 3)
    assert np.abs(rates - BP4D_RATES).mean() < 0.035
    off = ~np.eye(len(BP4D_AUS), dtype=bool)
    err = np.abs(cooc - BP4D_COOC)[off]
    assert err.mean() < 0.05, err.mean()
    assert np.corrcoef(cooc[off], BP4D_COOC[off])[0, 1] > 0.95
    # the structure that RRL / AUNet exploit: AU6 and AU12 go together far more than AU4 and AU12
    j = {a: i for i, a in enumerate(BP4D_AUS)}
    assert cooc[j[6], j[12]] > 0.7 and cooc[j[4], j[12]] < 0.45


def test_bp4d_uses_real_subject_ids_spread_over_parts(bp4d_set):
    part1 = "F001 F002 F008 F009 F010 F016 F018 F023 M001 M004 M007 M008 M012 M014".split()
    part2 = "F003 F005 F011 F013 F020 F022 M002 M005 M010 M011 M013 M016 M017 M018".split()
    part3 = "F004 F006 F007 F012 F014 F015 F017 F019 F021 M003 M006 M009 M015".split()
    assert sorted(bp4d_set.subjects) == sorted(part1 + part2 + part3)
    ds = generate(SynthConfig(preset="bp4d", n_subjects=6, sequences_per_subject=1, frames_per_sequence=2,
                              image_size=64))
    subs = ds.subjects
    assert len(subs) == 6 and all(sum(s in p for s in subs) == 2 for p in (part1, part2, part3))
    with pytest.raises(ValueError, match="41"):
        generate(SynthConfig(preset="bp4d", n_subjects=42, frames_per_sequence=1, sequences_per_subject=1))


def test_bivariate_normal_orthant_matches_scipy():
    from scipy import stats

    from aulib.data.synthetic.labels import _tetrachoric, _upper_orthant

    h, k, rho = np.array([0.8, -0.3, 1.5, 0.0]), np.array([0.2, 1.1, 1.7, 0.0]), np.array([0.5, -0.6, 0.9, 0.3])
    ref = [stats.multivariate_normal.cdf([-a, -b], cov=[[1, r], [r, 1]]) for a, b, r in zip(h, k, rho)]
    np.testing.assert_allclose(_upper_orthant(h, k, rho), ref, atol=1e-6)
    p = stats.norm.sf(h)
    q = stats.norm.sf(k)
    np.testing.assert_allclose(_tetrachoric(p, q, np.array(ref)), rho, atol=1e-3)


def test_disfa_intensity_and_rates():
    ds = generate(SynthConfig(preset="disfa", n_subjects=27, sequences_per_subject=8, frames_per_sequence=8,
                              image_size=64, seed=1))
    assert ds.has("intensity") and ds.aus == list(DISFA_AUS)
    assert all(s.startswith("SN") for s in ds.subjects)
    inten = ds.intensity_matrix()
    occ, _ = ds.au_matrix()
    assert inten.min() >= 0 and inten.max() == 5
    np.testing.assert_array_equal(occ, (inten >= 2).astype(np.float32))  # DISFA's occurrence rule
    rates = occ.mean(0)
    assert np.abs(rates - DISFA_RATES).max() < 0.05, np.round(rates - DISFA_RATES, 3)
    # many frames with no active AU, as in DISFA (53.7%)
    assert 0.35 < (occ.sum(1) == 0).mean() < 0.75


def test_emotion_preset_follows_emfacs_with_varied_combinations():
    ds = generate(SynthConfig(preset="affectnet", n_subjects=700, image_size=64, seed=2))
    emo = ds.emotions()
    assert set(np.unique(emo)) == set(range(len(EMOTIONS)))
    y, _ = ds.au_matrix()
    col = {a: i for i, a in enumerate(ds.aus)}
    happy, surprise, neutral = (emo == EMOTIONS.index(e) for e in ("happy", "surprise", "neutral"))
    assert y[happy, col[12]].mean() > 0.8  # AU12 in smiles (Table II: 6+12, 7+12)
    assert y[surprise][:, [col[1], col[2]]].mean() > 0.8  # 1+2(+26) in surprise
    assert y[neutral][:, [col[a] for a in (1, 4, 9, 12, 15)]].mean() < 0.05
    # inside one emotion the AU combination varies, and AU6 comes and goes (EmoCo's intra-class structure)
    combos = {tuple(r) for r in y[happy].astype(int)}
    assert len(combos) >= 6
    assert 0.25 < y[happy, col[6]].mean() < 0.85


@pytest.mark.parametrize("au", AU_UNION)
def test_each_au_moves_only_its_region(au):
    _, lm = _one_au(au)
    d = np.abs(lm[1] - lm[0]).max(1)  # (68,) pixels
    allowed = sorted(set().union(*(REGION[r] for r in ALLOWED[au])))
    others = np.setdiff1d(np.arange(68), allowed)
    assert d[others].max() < 1e-3, f"AU{au} moved landmarks {others[d[others] > 1e-3].tolist()}"
    assert d[allowed].max() > 2.0, f"AU{au} barely moves its region (max {d[allowed].max():.2f} px)"


def test_au_landmark_directions_follow_facs():
    def delta(au):
        _, lm = _one_au(au)
        return lm[1] - lm[0], lm[0]

    d, lm0 = delta(1)  # inner brow raiser: inner brows up more than outer
    assert d[[21, 22], 1].mean() < -2 and d[[21, 22], 1].mean() < d[[17, 26], 1].mean() - 1
    d, _ = delta(2)  # outer brow raiser: the other way round
    assert d[[17, 26], 1].mean() < -2 and d[[17, 26], 1].mean() < d[[21, 22], 1].mean() - 1
    d, lm0 = delta(4)  # brow lowerer: down and together
    gap0 = lm0[22, 0] - lm0[21, 0]
    assert d[17:27, 1].mean() > 1.5 and (lm0[22, 0] + d[22, 0]) - (lm0[21, 0] + d[21, 0]) < gap0 - 2
    d, _ = delta(5)  # upper lid raiser
    assert d[[37, 38, 43, 44], 1].mean() < -1.5
    for au in (6, 7):  # lower lid up
        d, _ = delta(au)
        assert d[[40, 41, 46, 47], 1].mean() < -1.0
    d, _ = delta(9)  # nostrils up
    assert d[31:36, 1].mean() < -1.0
    d, _ = delta(10)  # upper lip up
    assert d[[50, 51, 52], 1].mean() < -2
    d, lm0 = delta(12)  # corners up and out
    assert d[[48, 54], 1].mean() < -2 and d[48, 0] < -2 and d[54, 0] > 2
    d, _ = delta(15)  # corners down
    assert d[[48, 54], 1].mean() > 2
    d, _ = delta(17)  # chin and lower lip up
    assert d[8, 1] < -1.5 and d[57, 1] < -1.5
    d, _ = delta(20)  # corners pulled sideways
    assert d[48, 0] < -2 and d[54, 0] > 2 and abs(d[[48, 54], 1]).max() < 1.5
    for au in (23, 24):  # lips narrowed / pressed: red part thinner
        d, lm0 = delta(au)
        h0 = lm0[57, 1] - lm0[51, 1]
        assert (lm0[57, 1] + d[57, 1]) - (lm0[51, 1] + d[51, 1]) < h0 - 1.5
    d, lm0 = delta(25)  # lips part
    assert (d[66, 1] - d[62, 1]) > 3
    d, _ = delta(26)  # jaw drops
    assert d[8, 1] > 4 and d[66, 1] > 4
    d, lm0 = delta(28)  # lip suck: both red parts drawn in, far thinner than pressed lips (AU24), mouth closed
    d24, _ = delta(24)
    h0 = lm0[57, 1] - lm0[51, 1]
    assert (lm0[57, 1] + d[57, 1]) - (lm0[51, 1] + d[51, 1]) < h0 - 5
    assert d[57, 1] - d[51, 1] < d24[57, 1] - d24[51, 1] - 1
    assert abs(d[66, 1] - d[62, 1]) < 0.5 and d[48, 0] > 0.5 and d[54, 0] < -0.5


def _au_box(lm: np.ndarray, au: int) -> np.ndarray:
    """Boolean pixel mask of the AU's region from the EAC-Net/JAA-Net centre rules (au_statistics.md)."""
    rules = {1: ((21, 22), -1 / 2), 2: ((18, 25), -1 / 3), 4: ((19, 24), 1 / 3), 5: ((37, 44), 0), 6: ((41, 46), 1),
             7: ((38, 43), 0), 9: ((32, 34), -1 / 2), 10: ((61, 63), 0), 12: ((48, 54), 0), 14: ((48, 54), 0),
             15: ((48, 54), 0), 17: ((56, 58), 1 / 2), 20: ((48, 54), 0), 23: ((51, 57), 0), 24: ((51, 57), 0),
             25: ((51, 57), 0), 26: ((56, 58), 1 / 2), 28: ((51, 57), 0)}
    pts, off = rules[au]
    r = abs(lm[39, 0] - lm[42, 0])
    yy, xx = np.mgrid[0:112, 0:112] + 0.5
    m = np.zeros((112, 112), bool)
    for p in pts:
        cx, cy = lm[p, 0], lm[p, 1] + off * r
        m |= (np.abs(xx - cx) < 0.75 * r) & (np.abs(yy - cy) < 0.75 * r)
    return m


@pytest.mark.parametrize("au", AU_UNION)
def test_each_au_changes_pixels_in_its_region(au):
    img, lm = _one_au(au)
    diff = np.abs(img[1].astype(float) - img[0].astype(float))[..., 0]
    box = _au_box(lm[0], au) | _au_box(lm[1], au)
    inside, outside = diff[box].mean(), diff[~box].mean()
    assert inside > 2.0, f"AU{au}: weak change inside its region ({inside:.2f} grey levels)"
    assert inside > 3 * outside, f"AU{au}: inside {inside:.2f} vs outside {outside:.2f}"


def test_appearance_cue_exists_beyond_landmarks():
    """Landmarks alone do not tell everything: with the same landmarks, AU appearance cues still change pixels."""
    from aulib.data.synthetic import _frame_params
    from aulib.data.synthetic.face import deform
    from aulib.data.synthetic.render import Renderer
    from aulib.data.synthetic.video import neutral_identity, sample_sequence_nuisance

    ident = neutral_identity()
    nuis = sample_sequence_nuisance(np.random.default_rng(0), 2, pose_jitter=0, nuisance=0)
    for au in (1, 4, 6, 9, 14, 17):
        v = np.zeros((2, len(AU_UNION)), np.float32)
        v[1, AU_UNION.index(au)] = 5
        fp = _frame_params(ident, nuis, v, SynthConfig())
        fp["lm"] = deform(fp["shape"], np.zeros_like(v), fp["blink"])  # geometry of the neutral face for both
        img, _ = Renderer(112, 1).render(fp, np.random.default_rng(0))
        assert np.abs(img[1].astype(float) - img[0]).max() > 25, au


def test_faces_are_roughly_aligned(bp4d_set):
    lm = bp4d_set.landmarks / 64.0  # fractions of the image
    nose = lm[:, 30]
    assert np.abs(np.median(nose, 0) - [0.5, 0.56]).max() < 0.06
    eye_r, eye_l = lm[:, 36:42].mean(1), lm[:, 42:48].mean(1)
    tilt = np.degrees(np.arctan2(eye_l[:, 1] - eye_r[:, 1], eye_l[:, 0] - eye_r[:, 0]))
    assert np.percentile(np.abs(tilt), 95) < 12
    assert (lm > 0).all() and (lm < 1).all()


@pytest.mark.parametrize("size,channels", [(64, 1), (96, 3), (256, 1)])
def test_sizes_and_channels(size, channels):
    ds = generate(SynthConfig(preset="gft", n_subjects=2, sequences_per_subject=1, frames_per_sequence=3,
                              image_size=size, channels=channels))
    assert ds.images.shape == (6, size, size, channels) and ds.images.dtype == np.uint8
    assert ds.meta.image_size == (size, size) and ds.meta.channels == channels
    assert ds.images.std() > 10  # not a blank image
    if channels == 3:  # skin is tinted: R above B on the face centre
        c = ds.images[:, size // 2 - 4 : size // 2 + 4, size // 2 - 4 : size // 2 + 4].astype(float).mean((0, 1, 2))
        assert c[0] > c[2]


def test_determinism_and_worker_independence():
    kw = dict(preset="bp4d", n_subjects=3, sequences_per_subject=2, frames_per_sequence=50, image_size=64)
    a = generate(SynthConfig(**kw, seed=7, workers=1))
    b = generate(SynthConfig(**kw, seed=7, workers=2))
    c = generate(SynthConfig(**kw, seed=8, workers=1))
    assert a.images.tobytes() == b.images.tobytes()
    np.testing.assert_array_equal(a.landmarks, b.landmarks)
    assert a.frames.equals(b.frames)
    assert a.images.tobytes() != c.images.tobytes()
    assert not a.frames[a.au_columns].equals(c.frames[c.au_columns])


def test_video_is_temporally_smooth_with_au_episodes():
    ds = generate(SynthConfig(preset="bp4d", n_subjects=3, sequences_per_subject=2, frames_per_sequence=60,
                              image_size=64, seed=4, occlusion_rate=0.0))
    img = ds.images[..., 0].astype(np.float32)
    f = ds.frames
    same = (f.subject.values[1:] == f.subject.values[:-1]) & (f.sequence.values[1:] == f.sequence.values[:-1])
    consecutive = np.abs(img[1:] - img[:-1]).mean((1, 2))[same].mean()
    rng = np.random.default_rng(0)
    i, j = rng.integers(0, len(img), (2, 400))
    random_pairs = np.abs(img[i] - img[j]).mean((1, 2)).mean()
    assert consecutive < 0.5 * random_pairs
    # frames T apart differ more than neighbours (signal for TDN's t-T, t, t+T)
    t10 = np.abs(img[10:] - img[:-10]).mean((1, 2))
    same10 = (f.subject.values[10:] == f.subject.values[:-10]) & (f.sequence.values[10:] == f.sequence.values[:-10])
    assert t10[same10].mean() > consecutive
    # labels form episodes lasting several frames, not flicker
    y, _ = ds.au_matrix()
    changes = (y[1:] != y[:-1])[same].mean()
    assert changes < 0.12
    for _s, g in f.groupby(["subject", "sequence"]):
        lab = y[g.index.to_numpy()]
        assert (lab.sum(0) > 0).any() and ((1 - lab).sum(0) > 0).any()


def test_canonical_round_trip(tmp_path):
    ds = generate(SynthConfig(preset="disfa", n_subjects=3, sequences_per_subject=1, frames_per_sequence=8,
                              image_size=64, channels=3))
    assert ds.meta.provenance["config"]["preset"] == "disfa"
    assert ds.meta.provenance["config"]["n_subjects"] == 3
    out = write_dataset(ds, tmp_path / "synth")
    back = open_dataset(out, mmap=False)
    assert back.meta.to_json() == ds.meta.to_json()
    np.testing.assert_array_equal(back.images, ds.images)
    np.testing.assert_array_equal(back.landmarks, ds.landmarks)
    assert back.frames.equals(ds.frames)


def test_presets_and_config_errors():
    assert {"bp4d", "disfa", "gft", "affwild2", "affectnet", "emotionet"} <= set(PRESETS)
    for name, p in PRESETS.items():
        assert {"n_subjects", "sequences_per_subject", "frames_per_sequence"} <= set(p.default_sizes), name
    with pytest.raises(ValueError, match="bp4d"):
        generate(SynthConfig(preset="nope"))
    with pytest.raises(ValueError, match="image_size"):
        generate(SynthConfig(image_size=8))
    with pytest.raises(ValueError, match="channels"):
        generate(SynthConfig(channels=2))
    ds = generate(SynthConfig(preset="emotionet", n_subjects=5, image_size=64))
    assert len(ds) == 5 and ds.frames.subject.nunique() == 5 and not ds.has("emotion")
    gft = generate(SynthConfig(preset="gft", n_subjects=2, sequences_per_subject=1, frames_per_sequence=2,
                               image_size=64))
    aff = generate(SynthConfig(preset="affwild2", n_subjects=2, sequences_per_subject=1, frames_per_sequence=2,
                               image_size=64))
    assert gft.aus == [1, 2, 4, 6, 10, 12, 14, 15, 23, 24]
    assert aff.aus == [1, 2, 4, 6, 7, 10, 12, 15, 23, 24, 25, 26]


def test_au_strength_and_label_noise_knobs():
    kw = dict(preset="bp4d", n_subjects=2, sequences_per_subject=1, frames_per_sequence=30, image_size=64, seed=5,
              landmark_noise=0.0)
    weak = generate(SynthConfig(**kw, au_strength=0.0))
    strong = generate(SynthConfig(**kw, au_strength=1.5))
    assert weak.frames.equals(strong.frames)  # labels do not depend on how strongly they are shown
    spread = lambda d: d.landmarks[:, 48:68].std(0).mean()  # noqa: E731
    assert spread(strong) > spread(weak)
    noisy = generate(SynthConfig(**kw, label_noise=0.3))
    y0, _ = weak.au_matrix()
    y1, _ = noisy.au_matrix()
    assert 0.05 < (y0 != y1).mean() < 0.4


@pytest.mark.parametrize("pose", [dict(theta=0.2, scale=1.1, tx=0.05, ty=-0.04, yaw=0.25),
                                  dict(theta=-0.15, scale=0.9, tx=-0.06, ty=0.05, yaw=-0.3)])
def test_landmarks_match_the_drawn_face_under_head_pose(pose):
    """The pupils are dark exactly where the (posed) landmarks put the eye centres."""
    v = np.zeros((1, len(AU_UNION)), np.float32)
    img, lm = render_faces(v, pose=pose, image_size=224)
    g = img[0, ..., 0].astype(float)
    for eye in ((37, 38, 40, 41), (43, 44, 46, 47)):
        x, y = lm[0, list(eye)].mean(0)
        assert g[int(y), int(x)] < 40, (eye, g[int(y), int(x)])
    x, y = lm[0, 30]  # nose tip is skin, not background
    assert abs(g[int(y), int(x)] - g.mean()) < 80


# -- generator v2: AU28, the amfed preset, appearance cues that survive at 64 px ----------------------------
PAPER_AUS = (1, 2, 4, 6, 7, 9, 12, 15, 17, 24, 25, 28)  # the CNN study's Table I


def test_au28_hides_the_red_of_the_lips():
    """Lip suck (AU28): the lips roll in, so much less red lip shows than on the neutral face (RGB)."""
    img, lm = _one_au(28, channels=3)
    box = _au_box(lm[0], 28)
    red = img[..., 0].astype(float) - img[..., 2]  # (2, H, W) R - B
    assert red[1][box].mean() < red[0][box].mean() - 3, (red[0][box].mean(), red[1][box].mean())
    grey, _ = _one_au(28)
    assert np.percentile(grey[1, ..., 0][box], 5) < np.percentile(grey[0, ..., 0][box], 5) - 8  # dark pressed line


def test_amfed_preset_codes_the_cnn_studys_12_aus():
    p = PRESETS["amfed"]
    ds = generate(SynthConfig(preset="amfed", n_subjects=120, sequences_per_subject=8, frames_per_sequence=4,
                              image_size=32, seed=3))
    assert ds.aus == list(PAPER_AUS) and 28 in AU_UNION
    y, _ = ds.au_matrix()
    rates = y.mean(0)
    assert np.abs(rates - np.array(p.rates)).max() < 0.05, np.round(rates - np.array(p.rates), 3)
    j = {a: i for i, a in enumerate(PAPER_AUS)}
    on28 = y[:, j[28]] == 1
    assert y[on28, j[25]].mean() < 0.5 * rates[j[25]]  # lips sucked in are not parted
    assert y[on28, j[24]].mean() > 1.5 * rates[j[24]]  # ... and go with pressing
    assert y[y[:, j[6]] == 1, j[12]].mean() > 0.6  # BP4D's structure where the preset has no own table


GEOMETRY_ONLY = (25, 26)  # the mouth opening is drawn from the landmarks themselves


def test_appearance_cues_survive_at_64px():
    """Generator v2: with the landmarks of the neutral face, an AU just above the occurrence threshold
    (intensity 2) still changes its EAC-Net region by >= 1.5 grey levels on average at 64 px, for every AU with an
    appearance cue (version 1: 0.2-2.1, most below 1; a small CNN could not see them)."""
    from aulib.data.synthetic import _frame_params
    from aulib.data.synthetic.face import deform
    from aulib.data.synthetic.render import Renderer
    from aulib.data.synthetic.video import sample_identity, sample_sequence_nuisance

    S = 64
    ren = Renderer(S, 1)
    nuis = sample_sequence_nuisance(np.random.default_rng(0), 2, pose_jitter=0, nuisance=0)
    weak = {}
    for au in AU_UNION:
        if au in GEOMETRY_ONLY:
            continue
        change = []
        for seed in range(6):
            ident = sample_identity(np.random.default_rng(seed), quirk_rate=0.0)
            v = np.zeros((2, len(AU_UNION)), np.float32)
            v[1, AU_UNION.index(au)] = 2.0
            fp = _frame_params(ident, nuis, v, SynthConfig())
            fp["lm"] = deform(fp["shape"], np.zeros_like(v), fp["blink"])  # same geometry for both
            img, lm = ren.render(fp, np.random.default_rng(0))
            box = _box64(lm[0], au, S)
            change.append(np.abs(img[1, ..., 0].astype(float) - img[0, ..., 0])[box].mean())
        if np.mean(change) < 1.5:
            weak[au] = round(float(np.mean(change)), 2)
    assert not weak, f"appearance cues too weak at 64 px (mean grey change in the AU's region): {weak}"


def _box64(lm: np.ndarray, au: int, S: int) -> np.ndarray:
    """_au_box's EAC-Net region on an S x S image."""
    m = _au_box(lm * (112 / S), au)  # the rule on a 112 grid, pixel centres scaled back
    yy, xx = (np.mgrid[0:S, 0:S] + 0.5) * (112 / S)
    return m[np.clip(yy.astype(int), 0, 111), np.clip(xx.astype(int), 0, 111)]
