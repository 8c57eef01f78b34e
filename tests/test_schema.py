import dataclasses
import json

import numpy as np
import pytest
from conftest import make_dataset

from aulib.data.schema import CanonicalDataset, DatasetError, open_dataset, write_dataset


def test_round_trip_keeps_everything(tmp_path, tiny_dataset):
    out = write_dataset(tiny_dataset, tmp_path / "ds")
    back = open_dataset(out)
    assert back.meta.aus == tiny_dataset.meta.aus
    assert back.frames.equals(tiny_dataset.frames)
    np.testing.assert_array_equal(back.landmarks, tiny_dataset.landmarks)
    np.testing.assert_array_equal(back.image_batch(range(len(back))), tiny_dataset.image_batch(range(len(back))))


def test_unknown_label_is_excluded_from_au_matrix():
    ds = make_dataset()
    ds.frames.loc[3, "AU2"] = 9
    labels, valid = ds.au_matrix()
    assert not valid[3, 1] and labels[3, 1] == 0
    assert valid.sum() == valid.size - 1


@pytest.mark.parametrize("breakage, expected", [
    (lambda ds: setattr(ds, "frames", ds.frames.drop(columns=["AU4"])), "missing column(s) AU4"),
    (lambda ds: ds.frames.__setitem__("AU7", 0), "AU7 are not in meta"),
    (lambda ds: ds.frames.loc.__setitem__((4, "AU1"), 3), "row 4: AU1 must be 0, 1 or 9"),
    (lambda ds: ds.frames.loc.__setitem__((2, "image"), 10_000), "row 2: image index outside"),
])
def test_validation_names_file_row_and_problem(tmp_path, breakage, expected):
    ds = make_dataset()
    out = write_dataset(ds, tmp_path / "ds")
    back = open_dataset(out, mmap=False)
    frames = back.frames.copy()
    ds2 = make_dataset()
    ds2.frames = frames
    breakage(ds2)
    ds2.frames.to_parquet(out / "frames.parquet", index=False)
    with pytest.raises(DatasetError) as err:
        open_dataset(out)
    assert expected in str(err.value) and "frames.parquet" in str(err.value)


def test_wrong_landmark_shape_and_unknown_au_code(tmp_path, tiny_dataset):
    out = write_dataset(tiny_dataset, tmp_path / "ds")
    np.save(out / "landmarks.npy", np.zeros((len(tiny_dataset), 5, 2), np.float32))
    with pytest.raises(DatasetError, match=r"landmarks.npy: landmarks must have shape \(30, 68, 2\)"):
        open_dataset(out)
    np.save(out / "landmarks.npy", tiny_dataset.landmarks)
    meta = json.loads((out / "meta.json").read_text())
    meta["aus"] = [1, 2, 99]
    (out / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(DatasetError, match=r"meta.json: unknown AU code\(s\) \[99\]"):
        open_dataset(out)


def test_missing_image_file_is_named(tmp_path, tiny_dataset):
    from PIL import Image

    ds = tiny_dataset
    root = tmp_path / "files"
    (root / "img").mkdir(parents=True)
    paths = []
    for i in range(len(ds)):
        Image.fromarray(ds.image(i)[..., 0]).save(root / "img" / f"{i}.png")
        paths.append(f"img/{i}.png")
    frames = ds.frames.drop(columns=["image"]).assign(path=paths)
    meta = dataclasses.replace(ds.meta, storage="files")
    files_ds = CanonicalDataset(meta, frames, ds.landmarks, None, root)
    out = write_dataset(files_ds, tmp_path / "copy")
    assert np.array_equal(open_dataset(out).image(5), ds.image(5))
    (out / "img" / "7.png").unlink()
    with pytest.raises(DatasetError, match=r"row 7: image file .*7.png does not exist"):
        open_dataset(out)


def test_interrupted_write_leaves_previous_dataset_untouched(tmp_path, tiny_dataset, monkeypatch):
    out = write_dataset(tiny_dataset, tmp_path / "ds")
    before = sorted(p.name for p in tmp_path.iterdir())
    bigger = make_dataset(n_subjects=4)

    def explode(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("numpy.save", explode)
    with pytest.raises(KeyboardInterrupt):
        write_dataset(bigger, out, overwrite=True)
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no temporary folder left behind
    assert len(open_dataset(out)) == len(tiny_dataset)
