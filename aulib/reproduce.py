"""Run the notebooks through papermill: executed copies (with figures and tables) go to ``reports/``.

``reports/NN_name.ipynb`` is the executed notebook and ``reports/NN_name/`` holds the figures (PNG) and
result tables (CSV) it saved. Each notebook is executed into a temporary file first, so a failed run never
replaces a good report.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path

from .profiles import PROFILE_NAMES

REPO_ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = REPO_ROOT / "notebooks"
REPORT_DIR = REPO_ROOT / "reports"


def list_notebooks(notebook_dir: Path = NOTEBOOK_DIR) -> list[Path]:
    if not notebook_dir.is_dir():
        raise FileNotFoundError(f"{notebook_dir} does not exist: `reproduce` runs from a clone of aulib "
                                "(pip install -e .), or pass --notebooks DIR")
    return sorted(p for p in notebook_dir.glob("*.ipynb") if not p.name.startswith("."))


def select(names: Sequence[str], notebooks: Sequence[Path]) -> list[Path]:
    """Notebooks whose stem starts with or equals one of ``names`` (all when ``names`` is empty)."""
    if not names:
        return list(notebooks)
    chosen = []
    for n in names:
        hits = [p for p in notebooks if p.stem == n or p.stem.startswith(n) or n in p.stem.split("_", 1)[-1:]]
        if not hits:
            raise ValueError(f"no notebook matches {n!r}; notebooks: {', '.join(p.stem for p in notebooks)}")
        chosen += [h for h in hits if h not in chosen]
    return chosen


def parse_param(text: str) -> tuple[str, object]:
    """``"seed=1"`` -> ``("seed", 1)``: the value typed as papermill's ``-p`` types it (int, float, bool, None,
    else the string)."""
    from papermill.cli import _resolve_type

    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"--param {text!r}: expected KEY=VALUE")
    return key.strip(), _resolve_type(value)


def run_notebook(notebook: Path, output: Path, out_dir: Path, profile: str = "cpu",
                 parameters: dict | None = None, progress: bool = True, kernel_name: str | None = None) -> float:
    """Execute ``notebook`` into ``output`` with papermill; returns seconds taken."""
    import papermill as pm

    if profile not in PROFILE_NAMES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILE_NAMES)}")
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.stem}.running.ipynb")
    params = {"profile": profile, "out_dir": str(out_dir), **(parameters or {})}
    start = time.perf_counter()
    quiet = os.environ.get("AULIB_PROGRESS")
    os.environ["AULIB_PROGRESS"] = "0"  # the kernel inherits it: no progress-bar stream in the saved notebook
    try:
        pm.execute_notebook(str(notebook), str(tmp), parameters=params, cwd=str(notebook.parent),
                            progress_bar=progress, kernel_name=kernel_name, log_output=False)
    except BaseException:
        # Keep the failed copy beside the good report for inspection, never over it.
        if tmp.exists():
            os.replace(tmp, output.with_name(f"{output.stem}.failed.ipynb"))
        raise
    finally:
        if quiet is None:
            os.environ.pop("AULIB_PROGRESS", None)
        else:
            os.environ["AULIB_PROGRESS"] = quiet
    os.replace(tmp, output)
    return time.perf_counter() - start


def reproduce(names: Sequence[str] = (), profile: str = "cpu", report_dir: Path = REPORT_DIR,
              notebook_dir: Path = NOTEBOOK_DIR, parameters: dict | None = None) -> list[tuple[str, float]]:
    """Run the selected notebooks (all by default) into ``report_dir``; returns (name, seconds)."""
    timings = []
    for nb in select(names, list_notebooks(notebook_dir)):
        print(f"[aulib] {nb.stem}: running ({profile} profile)", flush=True)
        secs = run_notebook(nb, report_dir / nb.name, report_dir / nb.stem, profile, parameters)
        print(f"[aulib] {nb.stem}: done in {secs / 60:.1f} min -> {report_dir / nb.name}", flush=True)
        timings.append((nb.stem, secs))
    return timings


def print_plan(names: Sequence[str] = (), profile: str = "gpu", machine: str | None = None) -> bool:
    """Print the plan of the selected notebooks (:mod:`aulib.experiments.plan`) for ``machine`` (None: this
    one); returns False, after one line on stderr naming the first run and the resource, when a run does not fit."""
    import sys

    import pandas as pd

    from .experiments import plan as P

    m = P.machine(machine)
    rows = P.plan(profile, list(names) or None, on=m)
    gpu = f"{m.gpu_gib:.0f} GiB GPU" if m.gpu_gib is not None else "no GPU"
    print(f"plan: profile {profile} on {m.name} ({gpu}, {m.cores} cores, {m.ram_gib:.0f} GiB RAM, "
          f"{m.disk_gib:.0f} GiB disk); throughput 'estimated' = FLOPs at {P.SUSTAINED_TFLOPS:.0f} TFLOP/s")
    with pd.option_context("display.width", 250, "display.max_columns", 20, "display.max_colwidth", 70):
        df = P.table(rows)
        df["GPU-hours"] = df["GPU-hours"].map("{:.3g}".format)
        print(df.to_string(index=False))
    total = sum(r.hours for r in rows)
    print(f"total: {total:.1f} hours")
    bad = P.check(rows, m)
    if bad:
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        print(f"aulib: error: does not fit: {bad[0]}{more}", file=sys.stderr)
        return False
    return True
