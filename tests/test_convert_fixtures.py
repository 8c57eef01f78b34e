"""Hand-written miniature copies of each release's layout: header variants, zero padding, unknown codes,
dropped classes, broken rows, short videos, landmark files and dlib."""

import warnings

import numpy as np
import pytest
from PIL import Image

from aulib.data.convert import ConversionWarning, convert, work_dir_for
from aulib.data.convert.landmarks import IDX_49, IDX_66, from_49, from_66, to_49
from aulib.data.schema import UNKNOWN, DatasetError

BP4D_AUS = (1, 2, 4, 6, 7, 10, 12, 14, 15, 17, 23, 24)


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConversionWarning)
        yield


def _jpg(path, value=128, size=16, mode="L"):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, (size, size), value if mode == "L" else (value, value, value)).save(path)


def _bp4d_csv(path, header, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([",".join(header)] + [",".join(str(v) for v in r) for r in rows]) + "\n")


def _bp4d_tree(root, header=None, rows=None, pad=True):
    header = header or ["0", *[str(a) for a in BP4D_AUS], "27"]
    rows = rows or [[7, *([1, 0, 9] * 4), 1], [8, *([0] * 12), 0]]
    _bp4d_csv(root / "AUCoding" / "AU_OCC" / "F001_T1.csv", header, rows)
    for r in rows:
        name = f"{int(r[0]):04d}.jpg" if pad else f"{int(r[0])}.jpg"
        _jpg(root / "Sequences" / "F001" / "T1" / name)
    _jpg(root / "Sequences" / "F001" / "T1" / "0099.jpg")  # an uncoded frame: ignored


@pytest.mark.parametrize("pad", [True, False])
@pytest.mark.parametrize("header", [None, ["frame", *[f"AU{a:02d}" for a in BP4D_AUS], "AU27"],
                                    [" 0 ", *[f" AU{a} " for a in BP4D_AUS], "27"]])
def test_bp4d_header_variants_padding_and_unknown(tmp_path, header, pad):
    _bp4d_tree(tmp_path / "raw", header=header, pad=pad)
    ds = convert("bp4d", tmp_path / "raw", tmp_path / "out", landmarks="template", progress=False)
    assert list(ds.frames.frame) == [7, 8] and ds.subjects == ["F001"] and set(ds.frames.sequence) == {"T1"}
    assert ds.aus == list(BP4D_AUS)                       # AU27 is not one of the protocol's 12: dropped
    np.testing.assert_array_equal(ds.frames[ds.au_columns].iloc[0], [1, 0, UNKNOWN] * 4)
    labels, valid = ds.au_matrix()
    assert valid[0].sum() == 8 and labels[0].sum() == 4   # 9 = unknown, excluded


@pytest.mark.parametrize("bad,problem", [("2", "not 0, 1 or 9"), ("x", "not a number"), ("", "not a number")])
def test_bp4d_bad_value_names_file_and_row(tmp_path, bad, problem):
    rows = [[7, *([0] * 12), 0], [8, 1, bad, *([0] * 10), 0], [9, *([0] * 12), 0]]
    _bp4d_tree(tmp_path / "raw", rows=rows)
    with pytest.raises(DatasetError, match=problem) as e:
        convert("bp4d", tmp_path / "raw", tmp_path / "out", landmarks="template", progress=False)
    assert e.value.file.endswith("F001_T1.csv") and e.value.row == 3   # line 3: header is line 1
    assert "AU2" in e.value.problem
    assert not (tmp_path / "out").exists() and not work_dir_for(tmp_path / "out").exists()


def test_bp4d_lenient_mode_skips_and_lists_rows(tmp_path):
    rows = [[7, *([0] * 12), 0], [8, 5, *([0] * 11), 0], [9, *([1] * 12), 0]]
    _bp4d_tree(tmp_path / "raw", rows=rows)
    ds = convert("bp4d", tmp_path / "raw", tmp_path / "out", landmarks="template", lenient=True, progress=False)
    assert list(ds.frames.frame) == [7, 9]
    assert ds.skipped.row.tolist() == [3] and "AU1 value 5" in ds.skipped.problem[0]
    assert (tmp_path / "out" / "skipped.csv").read_text().count("F001_T1.csv") == 1


def test_bp4d_missing_au_column_and_missing_image(tmp_path):
    _bp4d_tree(tmp_path / "a", header=["0", *[str(a) for a in BP4D_AUS[:-1]], "27"])
    with pytest.raises(DatasetError, match=r"AU column\(s\) \[24\] missing") as e:
        convert("bp4d", tmp_path / "a", tmp_path / "out", landmarks="template", progress=False)
    assert e.value.row == 1
    _bp4d_tree(tmp_path / "b")
    (tmp_path / "b" / "Sequences" / "F001" / "T1" / "0008.jpg").unlink()
    with pytest.raises(DatasetError, match="no image for frame 8") as e:
        convert("bp4d", tmp_path / "b", tmp_path / "out", landmarks="template", progress=False)
    assert e.value.row == 3


def test_frame_without_landmarks_says_what_to_pass(tmp_path):
    _bp4d_tree(tmp_path / "raw")
    with pytest.raises(DatasetError, match="landmarks='dlib'"):
        convert("bp4d", tmp_path / "raw", tmp_path / "out", progress=False)


def test_user_landmark_file_is_used(tmp_path):
    _bp4d_tree(tmp_path / "raw")
    lm = np.arange(136, dtype=float).reshape(68, 2) / 10
    cols = [f"x{i}" for i in range(68)] + [f"y{i}" for i in range(68)]
    lines = ["subject,sequence,frame," + ",".join(cols)]
    for fr in (7, 8):
        lines.append(f"F001,T1,{fr}," + ",".join(str(v) for v in np.r_[lm[:, 0], lm[:, 1]]))
    (tmp_path / "marks.csv").write_text("\n".join(lines) + "\n")
    ds = convert("bp4d", tmp_path / "raw", tmp_path / "out", landmarks=tmp_path / "marks.csv", progress=False)
    np.testing.assert_allclose(ds.landmarks[1], lm, atol=1e-5)


# -- DISFA ----------------------------------------------------------------------------------------------------
def _disfa_tree(root, n_frames=4, n_video=4, aus=(1, 2, 4, 6, 9, 12, 25, 26), bad_line=None):
    from aulib.data.convert.export import _write_video

    lab = root / "ActionUnit_Labels" / "SN001"
    lab.mkdir(parents=True)
    for a in aus:
        lines = [f"{f},{(f + a) % 6}" for f in range(1, n_frames + 1)]
        if bad_line is not None and a == 4:
            lines[bad_line - 1] = "3;x"
        (lab / f"SN001_au{a}.txt").write_text("\n".join(lines) + "\n")
    frames = [np.full((16, 16, 3), 40 * i, np.uint8) for i in range(n_video)]
    _write_video(root / "Videos_LeftCamera" / "LeftVideoSN001_comp.avi", frames)


def test_disfa_intensity_threshold_and_video_frames(tmp_path):
    _disfa_tree(tmp_path / "raw")
    ds = convert("disfa", tmp_path / "raw", tmp_path / "out", landmarks="template", progress=False)
    assert ds.has("intensity") and list(ds.frames.frame) == [1, 2, 3, 4]
    inten = ds.intensity_matrix()
    assert inten[:, 0].tolist() == [2, 3, 4, 5]            # AU1: (f + 1) % 6
    assert inten[:, 2].tolist() == [5, 0, 1, 2]            # AU4: (f + 4) % 6
    assert ds.frames.AU4.tolist() == [1, 0, 0, 1]          # occurrence = intensity >= 2
    # label frame f is video frame f - 1: brightness 40 * (f - 1)
    means = ds.image_batch(np.arange(4)).mean(axis=(1, 2, 3))
    np.testing.assert_allclose(means, [0, 40, 80, 120], atol=4)


def test_disfa_bad_line_and_short_video(tmp_path):
    _disfa_tree(tmp_path / "a", bad_line=3)
    with pytest.raises(DatasetError, match="frame,intensity") as e:
        convert("disfa", tmp_path / "a", tmp_path / "out", landmarks="template", progress=False)
    assert e.value.file.endswith("SN001_au4.txt") and e.value.row == 3
    _disfa_tree(tmp_path / "b", n_frames=5, n_video=3)
    with pytest.raises(DatasetError, match="video frame 3") as e:
        convert("disfa", tmp_path / "b", tmp_path / "out", landmarks="template", progress=False)
    assert e.value.file.endswith("LeftVideoSN001_comp.avi")
    assert not (tmp_path / "out").exists()
    ds = convert("disfa", tmp_path / "b", tmp_path / "out", landmarks="template", lenient=True, progress=False)
    assert list(ds.frames.frame) == [1, 2, 3] and len(ds.skipped) == 2


def test_disfa_landmark_files(tmp_path):
    from scipy.io import savemat

    _disfa_tree(tmp_path / "raw", n_frames=2, n_video=2)
    pts = np.random.default_rng(0).uniform(2, 14, (66, 2))
    d = tmp_path / "raw" / "Landmark_Points" / "SN001" / "tmp_frame_lm"
    d.mkdir(parents=True)
    savemat(d / "SN001_0000_lm.mat", {"pts": pts})         # frame 1
    savemat(d / "l00001_lm.mat", {"pts": pts + 1})          # frame 2, the other naming in the release
    ds = convert("disfa", tmp_path / "raw", tmp_path / "out", progress=False)
    np.testing.assert_allclose(ds.landmarks[0][IDX_66], pts, atol=1e-4)
    np.testing.assert_allclose(ds.landmarks[1][IDX_66], pts + 1, atol=1e-4)


def test_disfa_missing_landmark_file_reuses_the_previous_frame(tmp_path):
    from scipy.io import savemat

    _disfa_tree(tmp_path / "raw", n_frames=3, n_video=3)
    pts = np.random.default_rng(1).uniform(2, 14, (66, 2))
    d = tmp_path / "raw" / "Landmark_Points" / "SN001" / "tmp_frame_lm"
    d.mkdir(parents=True)
    savemat(d / "SN001_0000_lm.mat", {"pts": pts})
    savemat(d / "SN001_0002_lm.mat", {"pts": pts + 2})      # frame 2's file is missing
    ds = convert("disfa", tmp_path / "raw", tmp_path / "out", progress=False)
    np.testing.assert_allclose(ds.landmarks[1][IDX_66], pts, atol=1e-4)
    np.testing.assert_allclose(ds.landmarks[2][IDX_66], pts + 2, atol=1e-4)
    assert len(ds.skipped) == 1 and "frame 2" in ds.skipped.problem[0]


def test_point_layout_conversions():
    rng = np.random.default_rng(0)
    p68 = rng.normal(size=(68, 2))
    assert IDX_66.tolist() == [i for i in range(68) if i not in (60, 64)]
    np.testing.assert_array_equal(from_66(p68[IDX_66])[IDX_66], p68[IDX_66])
    assert IDX_49[0] == 17 and len(IDX_49) == 49 and 60 not in IDX_49
    np.testing.assert_allclose(from_49(to_49(p68))[IDX_49], p68[IDX_49])


# -- AffWild2, AffectNet, EmotioNet ------------------------------------------------------------------------------
def test_affwild2_minus_one_and_missing_crops(tmp_path):
    root = tmp_path / "raw"
    f = root / "AU_Set" / "Train_Set" / "video7_left.txt"
    f.parent.mkdir(parents=True)
    aus = (1, 2, 4, 6, 7, 10, 12, 15, 23, 24, 25, 26)
    f.write_text(",".join(f"AU{a}" for a in aus) + "\n" + "1,0,-1,0,0,0,0,0,0,0,0,0\n" + ",".join(["-1"] * 12)
                 + "\n" + ",".join(["0"] * 12) + "\n" + ",".join(["1"] * 12) + "\n")
    for i in (1, 2, 4):  # frame 3 has no crop (no face)
        _jpg(root / "cropped_aligned" / "video7_left" / f"{i:05d}.jpg", size=112, mode="RGB")
    ds = convert("affwild2", root, tmp_path / "out", landmarks="template", progress=False)
    assert list(ds.frames.frame) == [1, 4] and ds.subjects == ["video7_left"]
    assert ds.frames.AU4.tolist() == [UNKNOWN, 1]
    problems = sorted(ds.skipped.problem)
    assert len(problems) == 2
    assert "frame 2: every AU is -1" in problems[0] and "frame 3: no crop" in problems[1]


def _affectnet_row(rel, expr, n_pts=68):
    lm = ";".join(f"{v:.1f}" for v in np.tile([20.0, 30.0], n_pts))
    return f'{rel},10,10,40,40,"{lm}",{expr},0.1,-0.2'


def test_affectnet_headerless_csv_and_dropped_classes(tmp_path):
    root = tmp_path / "raw"
    for k in range(4):
        _jpg(root / "Manually_Annotated_Images" / "101" / f"img{k}.jpg", size=64, mode="RGB")
    csvf = root / "Manually_Annotated_file_lists" / "validation.csv"
    csvf.parent.mkdir(parents=True)
    csvf.write_text("\n".join([_affectnet_row("101/img0.jpg", 1), _affectnet_row("101/img1.jpg", 7),
                               _affectnet_row("101/img2.jpg", 10), _affectnet_row("101/img3.jpg", 6)]) + "\n")
    ds = convert("affectnet", root, tmp_path / "out", progress=False)
    assert ds.emotions().tolist() == [1, 6] and ds.frames.sequence.unique().tolist() == ["validation"]
    assert ds.meta.image_size == (40, 40)                 # the face box, cropped
    np.testing.assert_allclose(ds.landmarks[0, 0], [10, 20], atol=1e-4)  # (20, 30) - box origin (10, 10)
    assert sorted(ds.skipped.row.tolist()) == [2, 3]
    assert "contempt" in " ".join(ds.skipped.problem)


def test_affectnet_bad_rows(tmp_path):
    root = tmp_path / "raw"
    _jpg(root / "Manually_Annotated_Images" / "1" / "a.jpg", size=64)
    csvf = root / "training.csv"
    csvf.write_text("subDirectory_filePath,face_x,face_y,face_width,face_height,facial_landmarks,expression,"
                    "valence,arousal\n" + _affectnet_row("1/a.jpg", 3, n_pts=67) + "\n")
    with pytest.raises(DatasetError, match="136 numbers") as e:
        convert("affectnet", root, tmp_path / "out", progress=False)
    assert e.value.row == 2 and e.value.file.endswith("training.csv")


def test_emotionet_999_unlabelled_and_missing_images(tmp_path):
    root = tmp_path / "raw"
    for n in ("a.jpg", "b.jpg", "c.jpg"):
        _jpg(root / "images" / n, size=32, mode="RGB")
    (root / "emotionet.csv").write_text("URL,AU 1,AU 2,AU 4\nhttp://x.org/a.jpg,1,999,0\n"
                                        "http://x.org/b.jpg,0,0,1\nhttp://x.org/zzz.jpg,1,1,1\n")
    ds = convert("emotionet", root, tmp_path / "out", landmarks="template", progress=False)
    assert ds.aus == [1, 2, 4] and ds.subjects == ["a", "b", "c"]
    np.testing.assert_array_equal(ds.frames[ds.au_columns].to_numpy(), [[1, UNKNOWN, 0], [0, 0, 1], [UNKNOWN] * 3])
    assert ds.skipped.row.tolist() == [4] and "zzz.jpg" in ds.skipped.problem[0]
    (root / "emotionet.csv").write_text("URL,AU 1,AU 2,AU 4\nhttp://x.org/a.jpg,1,7,0\n")
    with pytest.raises(DatasetError, match="AU2 value 7") as e:
        convert("emotionet", root, tmp_path / "out2", landmarks="template", progress=False)
    assert e.value.row == 2


# -- dlib (the landmarks extra) -------------------------------------------------------------------------------------
def test_dlib_missing_gives_a_clear_error(tmp_path, monkeypatch):
    import sys

    import aulib.data.convert as conv
    from aulib.data.convert.landmarks import detect_landmarks

    monkeypatch.setattr(conv, "dlib_available", lambda: False)
    _bp4d_tree(tmp_path / "raw")
    with pytest.raises(DatasetError, match=r"pip install 'aulib\[landmarks\]'"):
        convert("bp4d", tmp_path / "raw", tmp_path / "out", landmarks="dlib", progress=False)
    assert not (tmp_path / "out").exists()
    monkeypatch.setitem(sys.modules, "dlib", None)  # import dlib -> ImportError
    with pytest.raises(DatasetError, match=r"aulib\[landmarks\]"):
        detect_landmarks(np.zeros((32, 32, 3), np.uint8), cache={})


def test_dlib_finds_the_astronauts_face():
    from aulib.data.convert.landmarks import detect_landmarks, dlib_available

    if not dlib_available():
        pytest.skip("the landmarks extra (dlib-bin + face_recognition_models) is not installed")
    skdata = pytest.importorskip("skimage.data")
    img = skdata.astronaut()  # 512 x 512, face roughly at x 170-280, y 60-210
    lm = detect_landmarks(img)
    assert lm.shape == (68, 2)
    assert 150 < lm[30, 0] < 300 and 60 < lm[30, 1] < 220             # nose tip on the face
    assert lm[36, 0] < lm[30, 0] < lm[45, 0]                            # eye corners either side of the nose
    assert lm[19, 1] < lm[36, 1] < lm[30, 1] < lm[57, 1] < lm[8, 1]     # brow, eye, nose, mouth, chin downwards
