"""JAA-Net / ME-GraphAU list files: fold naming, weights, export -> import round trip, comparison."""

import warnings

import numpy as np
import pandas as pd
import pytest

from aulib.data.convert import ConversionWarning
from aulib.data.convert.export import export
from aulib.data.convert.landmarks import IDX_49
from aulib.data.convert.lists import (
    compare_folds,
    export_lists,
    fold_mapping,
    import_lists,
    megraphau_fold,
    read_lists,
    weights,
)
from aulib.data.schema import CanonicalDataset, DatasetError, DatasetMeta

AUS = (1, 2, 4, 6, 7, 10, 12, 14, 15, 17, 23, 24)
# two subjects of each official BP4D part (au_statistics.md)
SUBJECTS = {"F001": 1, "M014": 1, "F003": 2, "M018": 2, "F004": 3, "M015": 3}


def _ds(frames=3, seed=0):
    rng = np.random.default_rng(seed)
    rows = [{"subject": s, "sequence": "T2", "frame": 100 + f} for s in SUBJECTS for f in range(frames)]
    df = pd.DataFrame(rows)
    n = len(df)
    df["image"] = np.arange(n)
    for a in AUS:
        df[f"AU{a}"] = rng.choice([0, 1, 9], n, p=[0.5, 0.4, 0.1]).astype(np.int8)
    df["AU1"] = np.int8(1) * (np.arange(n) % 2).astype(np.int8)  # every AU keeps a positive
    lm = rng.uniform(10, 50, (n, 68, 2)).astype(np.float32)
    images = rng.integers(0, 256, (n, 64, 64, 1), dtype=np.uint8)
    return CanonicalDataset(DatasetMeta("bp4d", list(AUS), (64, 64), 1), df, lm, images)


def test_fold_numbering_is_by_tested_part():
    assert [megraphau_fold(p) for p in (1, 2, 3)] == [3, 2, 1]     # ME-GraphAU fold k tests part 4 - k
    m = fold_mapping().set_index("aulib_fold")
    assert m.loc[3, "jaanet_train"] == "combine_1_2" and m.loc[1, "jaanet_test"] == "part1"
    assert m.loc[2, "aunet_subset"] == 2


def test_weights_hand_worked():
    y = np.array([[1, 0], [1, 1], [0, 9], [0, 0]])
    # rates: AU a = 2/4, AU b = 1/3 (the 9 is not counted); 1/r = 2, 3; normalised to sum K=2: 0.8, 1.2
    np.testing.assert_allclose(weights(y), [0.8, 1.2])


def test_megraphau_export_files(tmp_path):
    ds = _ds()
    export_lists(ds, tmp_path, "BP4D", "megraphau")
    test1 = (tmp_path / "BP4D_test_img_path_fold1.txt").read_text().split()
    assert {p.split("/")[0] for p in test1} == {"F004", "M015"}      # fold 1 tests part 3
    assert test1[0] == "F004/T2/100.jpg"
    lab = np.loadtxt(tmp_path / "BP4D_test_label_fold1.txt")
    np.testing.assert_array_equal(lab, ds.frames[ds.frames.subject.isin(["F004", "M015"])][ds.au_columns])
    train = ds.frames[~ds.frames.subject.isin(["F004", "M015"])][ds.au_columns].to_numpy()
    np.testing.assert_allclose(np.loadtxt(tmp_path / "BP4D_train_weight_fold1.txt"), weights(train), atol=1e-6)


@pytest.mark.parametrize("style", ["megraphau", "jaanet"])
def test_lists_round_trip_and_compare(tmp_path, style):
    ds = _ds()
    export_lists(ds, tmp_path / "lists", "BP4D", style)
    t = read_lists(tmp_path / "lists", "BP4D", style)
    assert len(t) == len(ds)
    assert sorted(t[t.part == 2].subject.unique()) == ["F003", "M018"]
    merged = t.merge(ds.frames.assign(row=np.arange(len(ds))), on=["subject", "sequence", "frame"], suffixes=("", "_ds"))
    for c in ds.au_columns:
        np.testing.assert_array_equal(merged[c], merged[c + "_ds"])
    if style == "jaanet":  # 49 points, 1-based on disk, 0-based back in aulib
        lm = np.stack(merged.landmarks)
        np.testing.assert_allclose(lm[:, IDX_49], np.asarray(ds.landmarks)[merged.row][:, IDX_49], atol=1e-3)
    cmp = compare_folds(ds, tmp_path / "lists", "BP4D", style)
    assert cmp.same_subjects.all() and (cmp.frames_in_both == cmp.aulib_frames).all()


def test_import_lists_builds_a_dataset(tmp_path):
    ds = _ds(frames=2)
    export_lists(ds, tmp_path / "lists", "BP4D", "jaanet")
    export(ds, tmp_path / "img", "bp4d", zero_pad=1)  # sequence T2 of each subject is exported as task T1
    for p in (tmp_path / "img").glob("*/T1"):
        p.rename(p.with_name("T2"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConversionWarning)
        out = import_lists(tmp_path / "lists", tmp_path / "img", tmp_path / "out", style="jaanet", progress=False)
    assert sorted(out.subjects) == sorted(SUBJECTS) and len(out) == len(ds)
    key = ["subject", "sequence", "frame"]
    m = out.frames.merge(ds.frames, on=key, suffixes=("", "_ds"))
    for c in ds.au_columns:
        np.testing.assert_array_equal(m[c], m[c + "_ds"])


def test_bad_label_line_is_named(tmp_path):
    export_lists(_ds(), tmp_path, "BP4D", "megraphau")
    f = tmp_path / "BP4D_test_label_fold2.txt"
    lines = f.read_text().splitlines()
    lines[1] = "0 1 0"
    f.write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetError, match="3 values, expected 12") as e:
        read_lists(tmp_path, "BP4D", "megraphau")
    assert e.value.row == 2 and e.value.file.endswith("BP4D_test_label_fold2.txt")
    assert len(read_lists(tmp_path, "BP4D", "megraphau", lenient=True)) == len(_ds()) - 1
