"""Face alignment: similarity transforms against hand-worked cases and scikit-image, warping, templates."""

import numpy as np
import pytest

from aulib.data.align import (
    MEAN_SHAPE_68,
    TEMPLATES,
    align_face,
    apply_transform,
    get_template,
    similarity_transform,
    warp,
)


def test_two_points_hand_worked():
    # (0,0)->(1,1) and (1,0)->(1,3): the unit x-vector becomes (0,2): rotation +90 deg, scale 2, shift (1,1).
    m = similarity_transform(np.array([[0.0, 0.0], [1.0, 0.0]]), np.array([[1.0, 1.0], [1.0, 3.0]]))
    np.testing.assert_allclose(m, [[0, -2, 1], [2, 0, 1]], atol=1e-12)


def test_known_rotation_scale_shift_recovered_exactly():
    a, s, t = np.deg2rad(30.0), 1.5, np.array([5.0, -3.0])
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    src = np.array([[0.0, 0.0], [10.0, 0.0], [10.0, 20.0], [-4.0, 7.0], [3.0, 3.0]])
    dst = src @ (s * rot).T + t
    m = similarity_transform(src, dst)
    # hand-worked: s*cos30 = 1.299038..., s*sin30 = 0.75
    np.testing.assert_allclose(m, [[1.299038105676658, -0.75, 5.0], [0.75, 1.299038105676658, -3.0]], atol=1e-9)


def test_no_reflection():
    rng = np.random.default_rng(0)
    src = rng.normal(size=(10, 2))
    dst = src * [-1, 1]  # a mirror image: the best similarity must still be a proper rotation
    m = similarity_transform(src, dst)
    assert np.linalg.det(m[:, :2]) > 0


def test_matches_scikit_image_least_squares():
    skt = pytest.importorskip("skimage.transform")
    rng = np.random.default_rng(1)
    src = rng.uniform(0, 100, size=(68, 2))
    dst = src @ np.array([[0.9, -0.3], [0.3, 0.9]]).T + [12, -7] + rng.normal(scale=2.0, size=(68, 2))
    if hasattr(skt.SimilarityTransform, "from_estimate"):
        ref = skt.SimilarityTransform.from_estimate(src, dst)
    else:
        ref = skt.SimilarityTransform()
        assert ref.estimate(src, dst)
    np.testing.assert_allclose(similarity_transform(src, dst), ref.params[:2], atol=1e-8)


def test_bad_points_raise():
    with pytest.raises(ValueError, match="coincide"):
        similarity_transform(np.ones((4, 2)), np.zeros((4, 2)))
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        similarity_transform(np.ones((4, 3)), np.zeros((4, 3)))


def test_warp_moves_a_pixel_where_the_matrix_says():
    img = np.zeros((10, 12), np.uint8)
    img[5, 3] = 200  # (x=3, y=5)
    m = np.array([[1.0, 0.0, 2.0], [0.0, 1.0, 1.0]])
    out = warp(img, m, (10, 12))
    assert out.shape == (10, 12)
    assert out[6, 5] == 200 and out.sum() == 200


def test_warp_rotation_equals_rot90():
    rng = np.random.default_rng(2)
    img = rng.integers(0, 256, size=(9, 9, 3), dtype=np.uint8)
    # rotate by -90 deg about the centre (4, 4): (x, y) -> (y, 8 - x), which is np.rot90 (counter-clockwise)
    m = np.array([[0.0, 1.0, 0.0], [-1.0, 0.0, 8.0]])
    np.testing.assert_array_equal(warp(img, m, 9), np.rot90(img))


def test_warp_matches_scikit_image_bilinear():
    skt = pytest.importorskip("skimage.transform")
    rng = np.random.default_rng(3)
    img = rng.integers(0, 256, size=(40, 40), dtype=np.uint8)
    m = similarity_transform(np.array([[0.0, 0.0], [39.0, 0.0]]), np.array([[5.0, 3.0], [30.0, 12.0]]))
    ref = skt.warp(img, skt.SimilarityTransform(np.r_[m, [[0, 0, 1]]]).inverse, output_shape=(32, 32),
                   order=1, preserve_range=True)
    ours = warp(img, m, 32).astype(float)
    # compare where the sampled source point lies at least a pixel inside the image (the two libraries treat
    # the border differently); PIL's fixed-point bilinear truncates, so it is within 1-2 levels
    yy, xx = np.mgrid[0:32, 0:32]
    src = apply_transform(np.linalg.inv(np.r_[m, [[0, 0, 1]]])[:2], np.stack([xx, yy], -1).astype(float))
    inside = ((src >= 1) & (src <= 38)).all(-1)
    assert inside.sum() > 300
    assert np.abs(ours - ref)[inside].max() <= 2


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_align_face_maps_a_posed_face_onto_the_template(name):
    tpl = TEMPLATES[name]
    face = tpl.template_landmarks()
    # pose the template face in a 300x200 image: rotate 20 deg, scale 0.6, shift
    a = np.deg2rad(20)
    pose = np.array([[0.6 * np.cos(a), -0.6 * np.sin(a), 40], [0.6 * np.sin(a), 0.6 * np.cos(a), 10]])
    lm = apply_transform(pose, face)
    img = np.full((200, 300, 3), 90, np.uint8)
    out, out_lm = align_face(img, lm, name)
    assert out.shape == (tpl.size, tpl.size, tpl.channels) and out.dtype == np.uint8
    np.testing.assert_allclose(out_lm, face, atol=1e-3)


def test_tranet_template_geometry():
    tpl = TEMPLATES["tranet"]
    lm = tpl.template_landmarks()
    centre = (tpl.size - 1) / 2
    np.testing.assert_allclose((lm[27] + lm[30]) / 2, [centre, centre], atol=1e-6)  # nose mid-point at centre
    assert abs(lm[8, 0] - centre) < 1e-6 and lm[8, 1] > 0.9 * tpl.size                # chin near the bottom


def test_cnn_study_is_grey_96_on_four_points():
    tpl = TEMPLATES["cnn_study"]
    assert (tpl.size, tpl.channels) == (96, 1)
    assert [g[0] for g in tpl.groups] == [36, 45, 30, 8]


def test_mean_shape_is_mirror_symmetric():
    # iBUG mirror pairs: jaw i <-> 16-i, outer eye corners 36 <-> 45, mouth corners 48 <-> 54
    s = MEAN_SHAPE_68
    for i, j in [(0, 16), (3, 13), (36, 45), (39, 42), (48, 54), (17, 26), (31, 35)]:
        np.testing.assert_allclose(s[i], s[j] * [-1, 1], atol=1e-6)
    assert s[8, 1] > s[57, 1] > s[33, 1] > s[30, 1] > s[27, 1] > s[19, 1]  # chin below mouth below nose ... brow


def test_unknown_template_lists_names():
    with pytest.raises(KeyError, match="aunet"):
        get_template("nope")


def test_aligned_is_align_dataset_or_the_set_itself():
    from conftest import make_dataset

    from aulib.data.align import align_dataset, aligned

    ds = make_dataset(n_subjects=1, seqs=1, frames=3, size=48)
    assert aligned(ds, None) is ds and aligned(ds, "") is ds
    a, b = aligned(ds, "rrl", 32, 3), align_dataset(ds, "rrl", size=32, channels=3)
    assert a.meta.image_size == (32, 32) and a.meta.channels == 3
    assert np.array_equal(a.image_batch(np.arange(3)), b.image_batch(np.arange(3)))
    np.testing.assert_array_equal(a.landmarks, b.landmarks)
    assert "rrl" in a.meta.provenance["aligned"]
