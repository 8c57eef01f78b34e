"""Converters: synthetic exports in each real layout round-trip to the same canonical dataset; resumability,
atomic output, parallel workers, alignment at conversion, the summary and the CLI."""

import warnings

import numpy as np
import pytest

from aulib.data.align import TEMPLATES, apply_transform, similarity_transform
from aulib.data.convert import CONVERTERS, ConversionWarning, convert, work_dir_for
from aulib.data.convert.export import export
from aulib.data.convert.landmarks import IDX_66
from aulib.data.schema import DatasetError, open_dataset

synthetic = pytest.importorskip("aulib.data.synthetic")


def _synth(preset, **kw):
    cfg = dict(preset=preset, n_subjects=2, sequences_per_subject=2, frames_per_sequence=3, image_size=64, seed=1)
    cfg.update(kw)
    return synthetic.generate(synthetic.SynthConfig(**cfg))


def _all_units(ds):
    return sorted({s + f"T{i + 1}" for s in ds.subjects for i in range(ds.frames.sequence.nunique())})


def _expected(ds, name):
    """Rows of ``ds`` in the order a converter returns them (subject, sequence, frame), and which survive."""
    order = np.lexsort((ds.frames.frame.to_numpy(), ds.frames.sequence.to_numpy(), ds.frames.subject.to_numpy()))
    if name == "affectnet":  # AffectNet keeps the 7 emotion classes; unknown (-1) is exported as 8 "None"
        order = order[ds.frames.emotion.to_numpy()[order] >= 0]
    return order


@pytest.mark.parametrize("name", CONVERTERS)
def test_round_trip_of_synthetic_export(name, tmp_path):
    ds = _synth(name)
    export(ds, tmp_path / "raw", name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConversionWarning)
        out = convert(name, tmp_path / "raw", tmp_path / "out", channels=ds.meta.channels, progress=False)
    rows = _expected(ds, name)
    assert len(out) == len(rows)
    assert out.subjects == sorted(ds.frames.subject.iloc[rows].unique())
    np.testing.assert_array_equal(out.frames.subject.to_numpy(), ds.frames.subject.to_numpy()[rows])
    # labels: every label column the real layout carries comes back unchanged
    cols = {"affectnet": ["emotion"]}.get(name, ds.au_columns + [c for c in ds.frames.columns if c.endswith("_int")])
    np.testing.assert_array_equal(out.frames[cols].to_numpy(), ds.frames[cols].to_numpy()[rows])
    lm_in, lm_out = np.asarray(ds.landmarks)[rows], out.landmarks
    if name == "disfa":  # DISFA stores 66 points: the inner mouth corners come back estimated
        lm_in, lm_out = lm_in[:, IDX_66], lm_out[:, IDX_66]
    np.testing.assert_allclose(lm_out, lm_in, atol=1e-3)
    # images survive JPEG / MPEG-4 encoding closely
    diff = np.abs(out.image_batch(np.arange(len(out))).astype(int) - ds.image_batch(rows).astype(int))
    assert diff.mean() < 4.0
    assert open_dataset(tmp_path / "out").meta.name == name
    assert (tmp_path / "out" / "conversion_summary.csv").is_file()
    assert not work_dir_for(tmp_path / "out").exists()


def test_summary_warns_about_totals_and_compares_rates(tmp_path):
    ds = _synth("bp4d")
    export(ds, tmp_path / "raw", "bp4d")
    with pytest.warns(ConversionWarning) as caught:
        out = convert("bp4d", tmp_path / "raw", tmp_path / "out", progress=False)
    assert any("146,847" in str(w.message) for w in caught) and any("41" in str(w.message) for w in caught)
    s = out.summary
    per_subject = s[s.kind == "frames_per_subject"].set_index("key")["value"]
    assert per_subject.to_dict() == ds.frames.subject.value_counts().astype(float).to_dict()
    rates = s[s.kind == "positive_rate"].set_index("key")
    assert rates.loc["AU1", "reference"] == pytest.approx(0.211)  # BP4D's, from shared/reference
    y = ds.frames["AU12"].to_numpy()
    assert rates.loc["AU12", "value"] == pytest.approx((y == 1).sum() / (y != 9).sum())


def test_resume_continues_where_it_stopped(tmp_path, monkeypatch):
    ds = _synth("bp4d", n_subjects=3)
    export(ds, tmp_path / "raw", "bp4d")
    from aulib.data.convert import _engine

    done = []
    real = _engine.process_unit

    def flaky(unit, *a, **k):
        if len(done) == 2:
            raise KeyboardInterrupt  # the user stops the conversion half-way
        done.append(unit.subject + unit.sequence)
        return real(unit, *a, **k)

    monkeypatch.setattr(_engine, "process_unit", flaky)
    with pytest.raises(KeyboardInterrupt):
        convert("bp4d", tmp_path / "raw", tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()                          # nothing half written
    assert len(list((work_dir_for(tmp_path / "out") / "shards").iterdir())) == 2

    calls = []
    monkeypatch.setattr(_engine, "process_unit", lambda unit, *a, **k: (calls.append(1), real(unit, *a, **k))[1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConversionWarning)
        out = convert("bp4d", tmp_path / "raw", tmp_path / "out", progress=False)
    assert len(calls) == 6 - 2                                      # 3 subjects x 2 tasks, 2 already done
    assert len(out) == len(ds) and not work_dir_for(tmp_path / "out").exists()


def test_resume_redoes_a_unit_whose_labels_changed(tmp_path, monkeypatch):
    ds = _synth("bp4d", n_subjects=2)
    export(ds, tmp_path / "raw", "bp4d")
    from aulib.data.convert import _engine

    real, done = _engine.process_unit, []

    def stop_after_two(unit, *a, **k):
        if len(done) == 2:
            raise KeyboardInterrupt
        done.append(unit.subject + unit.sequence)
        return real(unit, *a, **k)

    monkeypatch.setattr(_engine, "process_unit", stop_after_two)
    with pytest.raises(KeyboardInterrupt):
        convert("bp4d", tmp_path / "raw", tmp_path / "out", progress=False)
    # the user fixes a label of a task that was already converted, then resumes
    subject = sorted(ds.subjects)[0]
    csv = tmp_path / "raw" / "AUCoding" / "AU_OCC" / f"{subject}_T1.csv"
    lines = csv.read_text().splitlines()
    cells = lines[1].split(",")
    cells[1] = "1" if cells[1] != "1" else "0"
    lines[1] = ",".join(cells)
    csv.write_text("\n".join(lines) + "\n")
    calls = []
    monkeypatch.setattr(_engine, "process_unit", lambda unit, *a, **k: (calls.append(unit.subject + unit.sequence),
                                                                         real(unit, *a, **k))[1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConversionWarning)
        out = convert("bp4d", tmp_path / "raw", tmp_path / "out", progress=False)
    assert sorted(calls) == sorted([subject + "T1", *(u for u in _all_units(ds) if u not in done)])
    assert out.frames.AU1.iloc[0] == int(cells[1])


def test_changed_options_restart_instead_of_mixing_shards(tmp_path):
    ds = _synth("gft")
    export(ds, tmp_path / "raw", "gft")
    work = work_dir_for(tmp_path / "out")
    (work / "shards" / "000000").mkdir(parents=True)
    (work / "job.json").write_text('{"fingerprint": "other options"}')
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConversionWarning)
        out = convert("gft", tmp_path / "raw", tmp_path / "out", progress=False)
    assert len(out) == len(ds)


def test_failed_conversion_leaves_existing_output_untouched(tmp_path):
    ds = _synth("bp4d")
    export(ds, tmp_path / "raw", "bp4d")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConversionWarning)
        convert("bp4d", tmp_path / "raw", tmp_path / "out", progress=False)
    before = (tmp_path / "out" / "frames.parquet").read_bytes()
    # now break one image: a truncated JPEG
    img = next((tmp_path / "raw").glob("*/T1/*.jpg"))
    img.write_bytes(img.read_bytes()[:60])
    with pytest.raises(DatasetError, match="cannot read image") as e:
        convert("bp4d", tmp_path / "raw", tmp_path / "out", progress=False, overwrite=True)
    assert img.name in str(e.value)
    assert (tmp_path / "out" / "frames.parquet").read_bytes() == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.tmp")]


def test_worker_error_names_the_file(tmp_path):
    ds = _synth("bp4d")
    export(ds, tmp_path / "raw", "bp4d")
    img = sorted((tmp_path / "raw").glob("*/T2/*.jpg"))[-1]
    img.write_bytes(b"not a jpeg")
    with pytest.raises(DatasetError, match="cannot read image") as e:
        convert("bp4d", tmp_path / "raw", tmp_path / "out", workers=2, progress=False)
    assert e.value.file == str(img)
    assert not (tmp_path / "out").exists()


def test_lenient_skips_the_unreadable_image_and_lists_it(tmp_path):
    ds = _synth("bp4d")
    export(ds, tmp_path / "raw", "bp4d")
    img = sorted((tmp_path / "raw").glob("*/T1/*.jpg"))[0]
    img.write_bytes(b"not a jpeg")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConversionWarning)
        out = convert("bp4d", tmp_path / "raw", tmp_path / "out", lenient=True, progress=False)
    assert len(out) == len(ds) - 1
    assert out.skipped.file.str.contains(img.name).any()
    assert "skipped.csv" in {p.name for p in (tmp_path / "out").iterdir()}


def test_parallel_workers_give_the_same_dataset(tmp_path):
    ds = _synth("bp4d")
    export(ds, tmp_path / "raw", "bp4d")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConversionWarning)
        a = convert("bp4d", tmp_path / "raw", tmp_path / "a", workers=1, progress=False)
        b = convert("bp4d", tmp_path / "raw", tmp_path / "b", workers=2, progress=False)
    assert a.frames.drop(columns="image").equals(b.frames.drop(columns="image"))
    np.testing.assert_array_equal(np.asarray(a.images), np.asarray(b.images))


@pytest.mark.parametrize("template", ["aunet", "cnn_study", "tranet"])
def test_alignment_at_conversion(template, tmp_path):
    ds = _synth("bp4d", n_subjects=1, sequences_per_subject=1)
    export(ds, tmp_path / "raw", "bp4d")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConversionWarning)
        out = convert("bp4d", tmp_path / "raw", tmp_path / "out", align=template, progress=False)
    tpl = TEMPLATES[template]
    assert out.meta.image_size == (tpl.size, tpl.size) and out.meta.channels == tpl.channels
    # the stored landmarks are the source landmarks under the least-squares similarity onto the template
    src = np.asarray(ds.landmarks)[0].astype(np.float64)
    m = similarity_transform(tpl.source_points(src), tpl.points)
    np.testing.assert_allclose(out.landmarks[0], apply_transform(m, src), atol=1e-3)


def test_unknown_converter_lists_the_names(tmp_path):
    with pytest.raises(ValueError, match="bp4d, disfa, gft, affwild2, affectnet, emotionet"):
        convert("ck+", tmp_path, tmp_path / "out")


def test_missing_source_folder_is_named(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        convert("bp4d", tmp_path / "nope", tmp_path / "out")


def test_cli_convert(tmp_path, capsys):
    from aulib.__main__ import main

    ds = _synth("affwild2")
    export(ds, tmp_path / "raw", "affwild2")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConversionWarning)
        main(["convert", "affwild2", "--src", str(tmp_path / "raw"), "--out", str(tmp_path / "out"),
              "--workers", "1"])
    assert len(open_dataset(tmp_path / "out")) == len(ds)
    assert "affwild2" in capsys.readouterr().out
