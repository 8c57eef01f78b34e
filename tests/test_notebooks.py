"""Every notebook: stored without outputs, one `parameters` cell, runs in the smoke profile, and its
committed cpu-profile report in reports/ is not stale (same code cells)."""

from pathlib import Path

import nbformat
import pytest

from aulib.reproduce import NOTEBOOK_DIR, REPORT_DIR, list_notebooks, run_notebook

NOTEBOOKS = list_notebooks(NOTEBOOK_DIR)
IDS = [p.stem for p in NOTEBOOKS]


def code_cells(nb) -> list[str]:
    return [c.source.strip() for c in nb.cells
            if c.cell_type == "code" and "injected-parameters" not in c.metadata.get("tags", [])]


def test_there_are_notebooks():
    assert any(p.stem == "00_data" for p in NOTEBOOKS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_stored_without_outputs_with_one_parameters_cell(path: Path):
    nb = nbformat.read(path, as_version=4)
    dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
    assert not dirty, f"{path.name}: cells {dirty} have outputs; strip them (executed copies belong in reports/)"
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: needs exactly one cell tagged 'parameters', found {len(tagged)}"
    for name in ("profile", "data_root", "seed", "out_dir"):
        assert f"{name} =" in tagged[0].source, f"{path.name}: parameters cell lacks {name!r}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_report_is_current(path: Path):
    report = REPORT_DIR / path.name
    assert report.is_file(), f"no report {report}: run `python -m aulib reproduce {path.stem}`"
    assert code_cells(nbformat.read(report, as_version=4)) == code_cells(nbformat.read(path, as_version=4)), (
        f"{report} is stale: its code differs from {path}; rerun `python -m aulib reproduce {path.stem}`")


@pytest.mark.notebook
@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_runs_in_smoke_profile(path: Path, tmp_path: Path):
    out_dir = tmp_path / path.stem
    run_notebook(path, tmp_path / path.name, out_dir, profile="smoke", progress=False)
    executed = nbformat.read(tmp_path / path.name, as_version=4)
    errors = [o for c in executed.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    assert any(out_dir.iterdir()), f"{path.name} saved no figure or table into out_dir"


METHOD_REPORTS = ["01_cnn_study", "02_tranet", "03_aunet", "04_rrl", "05_emoco"]


@pytest.mark.parametrize("name", METHOD_REPORTS)
def test_method_reports_carry_results_and_claims_with_baselines(name: str):
    import pandas as pd

    from aulib.eval.claims import CLAIM_COLUMNS, VERDICTS
    from aulib.experiments.report import check_results

    folder = REPORT_DIR / name
    results = pd.read_csv(folder / "results.csv")
    check_results(results)  # schema, roles, [0, 1] ranges, an always-present row for every dataset and fold
    assert {"method", "baseline"} <= set(results["role"]), f"{name}: results.csv lacks method or baseline rows"
    assert "prior" in set(results["variant"])
    if name in ("04_rrl", "05_emoco"):
        assert {"untrained encoder", "supervised"} <= set(results["variant"]), f"{name}: learnt baselines missing"
    claims = pd.read_csv(folder / "claims.csv")
    assert list(claims.columns[: len(CLAIM_COLUMNS)]) == CLAIM_COLUMNS and len(claims)
    assert set(claims["verdict"]) <= set(VERDICTS)


def test_readme_summary_is_read_from_the_reports():
    from aulib.experiments.report import summary_markdown

    readme = (REPORT_DIR.parent / "README.md").read_text()
    table = summary_markdown(REPORT_DIR)
    assert table in readme, ("README's results table differs from the committed reports; paste this:\n\n" + table)
