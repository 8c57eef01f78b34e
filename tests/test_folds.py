import numpy as np
import pytest
from conftest import make_dataset

from aulib.data.folds import BP4D_PARTS, DISFA_PARTS, fold_split, fold_subjects


def test_official_parts_are_the_reference_lists():
    assert sum(map(len, BP4D_PARTS)) == 41 and len(set().union(*BP4D_PARTS)) == 41
    assert sum(map(len, DISFA_PARTS)) == 27
    assert BP4D_PARTS[0][:3] == ("F001", "F002", "F008") and DISFA_PARTS[2][-1] == "SN029"
    all_bp4d = [s for p in BP4D_PARTS for s in p]
    assert [set(p) for p in map(set, fold_subjects(all_bp4d, 3))] == [set(p) for p in BP4D_PARTS]


def test_official_parts_restricted_to_the_subjects_present():
    subs = ["F001", "F002", "F003", "M002", "F004", "M003"]
    assert fold_subjects(subs, 3) == [["F001", "F002"], ["F003", "M002"], ["F004", "M003"]]


@pytest.mark.parametrize("k", [2, 3, 5])
def test_generic_folds_are_subject_exclusive_and_cover_everything(k):
    ds = make_dataset(n_subjects=7)
    seen = []
    for fold in range(1, k + 1):
        train, test = fold_split(ds, fold, k)
        tr, te = set(ds.frames.subject.iloc[train]), set(ds.frames.subject.iloc[test])
        assert not tr & te and len(train) + len(test) == len(ds)
        seen += sorted(te)
    assert sorted(seen) == ds.subjects
    sizes = [len(p) for p in fold_subjects(ds.subjects, k)]
    assert max(sizes) - min(sizes) <= 1


def test_bad_fold_number():
    with pytest.raises(ValueError, match="folds are named by the part they test"):
        fold_split(make_dataset(), 0)
    np.testing.assert_array_equal(fold_split(make_dataset(), 1)[1], fold_split(make_dataset(), 1)[1])
