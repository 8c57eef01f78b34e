"""The two tables every method report writes, checked, and the prose read from them.

    write_tables(out_dir, results, claims)     # -> out_dir/results.csv, out_dir/claims.csv (schema checked)
    display(Markdown(scores_markdown(results)))   # "TRA-Net: F1 31.2 (AUC 0.71) vs always present 28.0 ..."
    display(Markdown(claims_markdown(claims)))    # verdict counts and one line per claim

Numbers in a notebook's prose come from these functions, formatted from the tables just computed, so no
typed number can go stale.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from aulib.eval.baselines import ALWAYS_PRESENT, PRIOR, UNTRAINED
from aulib.eval.claims import CLAIM_COLUMNS, VERDICTS, verdict_counts
from aulib.eval.crossval import ROLES, scores

RESULT_COLUMNS = ["experiment", "variant", "role", "dataset", "fold", "seed", "au", "f1", "auc",
                  "balanced_accuracy", "n_pos", "n_valid"]


def check_results(results: pd.DataFrame) -> None:
    """Raise ValueError naming the first violation of the results schema (columns, roles, [0, 1] ranges,
    baseline names, an ``always present`` row for every dataset and fold)."""
    missing = [c for c in RESULT_COLUMNS if c not in results.columns]
    if missing:
        raise ValueError(f"results lack column(s) {missing}")
    bad_roles = sorted(set(results["role"]) - set(ROLES))
    if bad_roles:
        raise ValueError(f"unknown role(s) {bad_roles}; roles are {ROLES}")
    for c in ("f1", "auc", "balanced_accuracy"):
        v = results[c].dropna()
        if ((v < 0) | (v > 1)).any():
            raise ValueError(f"column {c} has values outside [0, 1] (e.g. {v[(v < 0) | (v > 1)].iloc[0]})")
    base = set(results.loc[results["role"] == "baseline", "variant"])
    odd = sorted(base - {ALWAYS_PRESENT, PRIOR, UNTRAINED})
    if odd:
        raise ValueError(f"baseline variant(s) {odd}; baselines are {ALWAYS_PRESENT!r}, {PRIOR!r}, {UNTRAINED!r}")
    runs = results[["dataset", "fold"]].drop_duplicates()
    ap = results.loc[results["variant"] == ALWAYS_PRESENT, ["dataset", "fold"]].drop_duplicates()
    lacking = runs.merge(ap, how="left", indicator=True).query("_merge == 'left_only'")
    if len(lacking):
        r = lacking.iloc[0]
        raise ValueError(f"no '{ALWAYS_PRESENT}' rows for dataset {r['dataset']!r}, fold {r['fold']}")


def write_tables(out_dir: str | os.PathLike, results: pd.DataFrame, claims: pd.DataFrame | None = None
                 ) -> list[Path]:
    """Check and write ``results.csv`` (and ``claims.csv``) into ``out_dir``; returns the paths."""
    check_results(results)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "results.csv"]
    results.to_csv(paths[0], index=False)
    if claims is not None:
        missing = [c for c in CLAIM_COLUMNS if c not in claims.columns]
        if missing:
            raise ValueError(f"claims lack column(s) {missing}")
        paths.append(out / "claims.csv")
        claims.to_csv(paths[1], index=False)
    return paths


def _pct(x: float) -> str:
    return "n/a" if x is None or np.isnan(x) else f"{100 * x:.1f}"


def scores_markdown(results: pd.DataFrame, roles: tuple[str, ...] = ("method", "reference")) -> str:
    """One line per (experiment, dataset): each variant of ``roles`` with mean F1 (%) and AUC, next to the
    baselines' on the same runs."""
    s = scores(results)
    lines = []
    for (exp, ds), g in s.groupby(["experiment", "dataset"], sort=False, observed=True):
        def one(r):
            return f"**{r['variant']}** F1 {_pct(r['f1'])} (AUC {r['auc']:.2f})"
        shown = [one(r) for _, r in g[g["role"].isin(roles)].iterrows()]
        base = [f"{r['variant']} {_pct(r['f1'])} (AUC {r['auc']:.2f})" for _, r in g[g["role"] == "baseline"].iterrows()]
        where = " / ".join(x for x in (exp, ds) if x)
        lines.append(f"- *{where}*: {'; '.join(shown) or 'no method rows'} — baselines: {'; '.join(base)}.")
    return "\n".join(lines)


#: How a claim's metric is written: (unit, scale). Metrics in [0, 1] read in points (hundredths); a rate that is
#: already a count (AUNet's switches per 100 frames) reads as it is. Any other metric: its name, in points.
METRIC_UNITS = {"f1": ("F1 points", 100.0), "auc": ("AUC points", 100.0),
                "balanced_batch_accuracy": ("balanced-batch accuracy points", 100.0),
                "accuracy": ("accuracy points", 100.0), "dependency_f1": ("dependency-F1 points", 100.0),
                "adjacency_l2": ("adjacency-L2 points", 100.0),
                "switches_per_100_frames": ("switches per 100 frames", 1.0)}


def _metric_unit(metric: str) -> tuple[str, float]:
    return METRIC_UNITS.get(metric, (f"{metric} points", 100.0))


def claims_markdown(claims: pd.DataFrame) -> str:
    """Verdict counts, then one line per claim: the difference (points of its metric) and its interval, and the
    verdict."""
    counts = verdict_counts(claims)
    head = ", ".join(f"{counts[v]} {v}" for v in VERDICTS)
    lines = [f"{len(claims)} claims: {head}."]
    for _, c in claims.iterrows():
        unit, k = _metric_unit(c["metric"])
        paper = "" if pd.isna(c["paper_diff"]) else f", paper {k * c['paper_diff']:+.1f}"
        ci = ("no interval" if np.isnan(c["ci_low"]) else
              f"95% interval [{k * c['ci_low']:+.1f}, {k * c['ci_high']:+.1f}]")
        lines.append(f"- {c['claim']}: {c['a']} − {c['b']} = {k * c['diff']:+.1f} {unit} "
                     f"({ci}, {c['n_units']} runs{paper}) → **{c['verdict']}**")
    return "\n".join(lines)




def spectrum_markdown(table: pd.DataFrame, baseline: str = UNTRAINED) -> str:
    """One line per row of :func:`aulib.eval.representation.spectrum_table` against its ``baseline`` row."""
    t = table.set_index("variant")
    if baseline not in t.index:
        return ""
    u, short = t.loc[baseline], "untrained" if baseline == UNTRAINED else baseline
    lines = [f"- `{name}`: effective rank {r.effective_rank:.1f} ({short} {u.effective_rank:.1f}), "
             f"{100 * r.top1_share:.0f}% of the variance on one direction ({short} {100 * u.top1_share:.0f}%)"
             for name, r in t.drop(index=baseline).iterrows()]
    return "\n".join(lines)


def reports_summary(report_dir: str | os.PathLike) -> pd.DataFrame:
    """One row per (report, experiment, dataset, method variant) of every ``report_dir/<report>/results.csv``:
    the method's mean F1 and AUC beside ``always present``, the ``untrained encoder`` (self-supervised papers) and
    the supervised ``reference`` row (its name and F1), and the report's verdict counts from its ``claims.csv``."""
    rows = []
    for res_path in sorted(Path(report_dir).glob("*/results.csv")):
        res = pd.read_csv(res_path)
        s = scores(res)
        cl = res_path.with_name("claims.csv")
        counts = verdict_counts(pd.read_csv(cl)) if cl.is_file() else {v: 0 for v in VERDICTS}
        for (exp, ds), g in s.groupby(["experiment", "dataset"], sort=False):
            f1 = g.set_index("variant")["f1"]
            ref = g[g["role"] == "reference"]
            for _, r in g[g["role"] == "method"].iterrows():
                rows.append({"report": res_path.parent.name, "experiment": exp, "dataset": ds,
                             "method": r["variant"], "f1": r["f1"], "auc": r["auc"],
                             "always_present_f1": f1.get(ALWAYS_PRESENT, np.nan),
                             "untrained_encoder_f1": f1.get(UNTRAINED, np.nan),
                             "reference": ref["variant"].iloc[0] if len(ref) else "",
                             "reference_f1": ref["f1"].iloc[0] if len(ref) else np.nan, **counts})
    return pd.DataFrame(rows)


def summary_markdown(report_dir: str | os.PathLike) -> str:
    """The README's results table, from :func:`reports_summary` (F1 in %, AUC as a fraction)."""
    df = reports_summary(report_dir)
    lines = ["| report | experiment | dataset | method | F1 | AUC | always present F1 | untrained encoder F1 | "
             "supervised reference: F1 |", "|---|---|---|---|---|---|---|---|---|"]
    for _, r in df.iterrows():
        ref = f"{r['reference']}: {_pct(r['reference_f1'])}" if r["reference"] else "n/a"
        lines.append(f"| {r['report']} | {r['experiment']} | {r['dataset']} | {r['method']} | {_pct(r['f1'])} | "
                     f"{r['auc']:.2f} | {_pct(r['always_present_f1'])} | {_pct(r['untrained_encoder_f1'])} | "
                     f"{ref} |")
    verdicts = df.drop_duplicates("report")
    lines += ["", "| report | claims | " + " | ".join(VERDICTS) + " |", "|---|---|" + "---|" * len(VERDICTS)]
    for _, r in verdicts.iterrows():
        lines.append(f"| {r['report']} | {sum(int(r[v]) for v in VERDICTS)} | "
                     + " | ".join(str(int(r[v])) for v in VERDICTS) + " |")
    return "\n".join(lines)


__all__ = ["RESULT_COLUMNS", "check_results", "claims_markdown", "reports_summary",
           "scores_markdown", "summary_markdown", "write_tables"]
