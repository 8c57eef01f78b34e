"""Property tests: a malformed row anywhere in a label file -> DatasetError naming that file and row, and
nothing written (no output folder, no work folder)."""

import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from aulib.data.convert import convert, work_dir_for
from aulib.data.schema import DatasetError

AUS = (1, 2, 4, 6, 7, 10, 12, 14, 15, 17, 23, 24)

# a malformed value and the words the error must use
BAD_VALUES = st.sampled_from([("2", "not 0, 1 or 9"), ("-1", "not 0, 1 or 9"), ("abc", "not a number"),
                              ("", "not a number"), ("1.5e", "not a number"), ("10", "not 0, 1 or 9")])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n_rows=st.integers(1, 6), bad_row=st.data(), column=st.integers(0, len(AUS)), bad=BAD_VALUES,
       values=st.lists(st.sampled_from([0, 1, 9]), min_size=len(AUS), max_size=len(AUS)))
def test_bp4d_malformed_row(n_rows, bad_row, column, bad, values):
    i = bad_row.draw(st.integers(0, n_rows - 1))
    with tempfile.TemporaryDirectory() as d:
        root = Path(d) / "raw"
        seq = root / "F001" / "T1"
        seq.mkdir(parents=True)
        lines = ["0," + ",".join(str(a) for a in AUS)]
        for r in range(n_rows):
            row = [str(r + 1), *(str(v) for v in values)]
            if r == i:
                if column == 0:  # the frame number itself
                    row[0] = bad[0] if bad[0] not in ("2", "10") else "x" + bad[0]
                else:
                    row[column] = bad[0]
            lines.append(",".join(row))
            Image.new("L", (8, 8)).save(seq / f"{r + 1}.jpg")
        f = root / "AUCoding" / "AU_OCC" / "F001_T1.csv"
        f.parent.mkdir(parents=True)
        f.write_text("\n".join(lines) + "\n")
        out = Path(d) / "out"
        with pytest.raises(DatasetError) as e:
            convert("bp4d", root, out, landmarks="template", progress=False)
        assert Path(e.value.file).name == "F001_T1.csv"
        assert e.value.row == i + 2                       # header is line 1
        assert f"row {i + 2}" in str(e.value)
        if column > 0:
            assert f"AU{AUS[column - 1]}" in e.value.problem and bad[1] in e.value.problem
        else:
            assert "frame number" in e.value.problem
        assert not out.exists() and not work_dir_for(out).exists()


@settings(max_examples=20, deadline=None)
@given(n=st.integers(2, 6), data=st.data(),
       junk=st.sampled_from(["1", "1,2,3", "a,b", "1,6", "1,-2", "0,1", "2;x", "1,2.5x"]))
def test_disfa_malformed_line(n, data, junk):
    i = data.draw(st.integers(0, n - 1))
    with tempfile.TemporaryDirectory() as d:
        root = Path(d) / "raw"
        lab = root / "ActionUnit_Labels" / "SN001"
        lab.mkdir(parents=True)
        (root / "LeftVideoSN001_comp.avi").write_bytes(b"")  # never opened: the labels fail first
        for a in (1, 2, 4, 6, 9, 12, 25, 26):
            lines = [f"{f},0" for f in range(1, n + 1)]
            if a == 12:
                lines[i] = junk
            (lab / f"SN001_au{a}.txt").write_text("\n".join(lines) + "\n")
        out = Path(d) / "out"
        with pytest.raises(DatasetError) as e:
            convert("disfa", root, out, landmarks="template", progress=False)
        assert Path(e.value.file).name == "SN001_au12.txt" and e.value.row == i + 1
        assert not out.exists() and not work_dir_for(out).exists()
