"""Figures and tables from tidy frames, in one consistent style."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

import matplotlib

if os.environ.get("MPLBACKEND") is None and "ipykernel" not in __import__("sys").modules:
    matplotlib.use("Agg")  # headless scripts/tests; notebooks keep their inline backend

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

DPI = 110
PALETTE = "colorblind"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


def set_style(context: str = "notebook") -> None:
    """The one aulib style: seaborn whitegrid, colour-blind palette, readable sizes."""
    import seaborn as sns

    sns.set_theme(context=context, style="whitegrid", palette=PALETTE)
    plt.rcParams.update({
        "figure.dpi": DPI, "savefig.dpi": DPI, "figure.figsize": (7.0, 4.0), "axes.titlesize": "medium",
        "axes.spines.top": False, "axes.spines.right": False, "savefig.bbox": "tight",
    })


def _check_name(name: str) -> str:
    if not _NAME_RE.match(name) or name.endswith((".png", ".csv")):
        raise ValueError(f"file name {name!r}: use letters, digits, '_', '-', '.' and no extension")
    return name


def save_figure(fig, out_dir: str | os.PathLike, name: str, dpi: int = DPI) -> Path:
    """Save ``fig`` as ``out_dir/name.png`` (the folder is created); returns the path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{_check_name(name)}.png"
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    return path


def save_table(df: pd.DataFrame, out_dir: str | os.PathLike, name: str, index: bool = False) -> Path:
    """Save ``df`` as ``out_dir/name.csv`` (the folder is created); returns the path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{_check_name(name)}.csv"
    df.to_csv(path, index=index)
    return path


def _require(df: pd.DataFrame, cols: Sequence[str], what: str) -> None:
    missing = [c for c in cols if c is not None and c not in df.columns]
    if missing:
        raise KeyError(f"{what}: column(s) {missing} not in the frame; columns: {list(df.columns)}")


def _au_sort_key(values) -> list:
    def key(v):
        m = re.search(r"(\d+)", str(v))
        return (0, int(m.group(1)), str(v)) if m else (1, 0, str(v))

    return sorted(pd.unique(values), key=key)


def per_au_bars(df: pd.DataFrame, value: str = "f1", au: str = "au", hue: str | None = None,
                ax=None, title: str | None = None, add_mean: bool = True, errorbar: str = "sd",
                replicate_cols: Sequence[str] = ("fold", "seed")):
    """Bar per AU (and per ``hue`` level) of ``value``'s mean, error bars over the other rows (folds /
    seeds): ``errorbar="sd"`` (standard deviation) or ``"se"`` (standard error).
    ``add_mean`` appends an "avg" group: per replicate (the ``replicate_cols`` present) the mean over AUs,
    then mean and spread of those."""
    _require(df, [value, au, hue], "per_au_bars")
    if errorbar not in ("sd", "se"):
        raise ValueError("errorbar must be 'sd' or 'se'")
    d = df.copy()
    d[au] = d[au].astype(str)
    order = [str(a) for a in _au_sort_key(d[au])]
    if add_mean:
        keys = ([hue] if hue else []) + [c for c in replicate_cols if c in d.columns and c != hue]
        if keys:
            avg = d.groupby(keys, dropna=False, observed=True)[value].mean().reset_index()
        else:
            avg = pd.DataFrame({value: [d[value].mean()]})
        avg[au] = "avg"
        d = pd.concat([d, avg], ignore_index=True)
        order.append("avg")
    hues = list(pd.unique(d[hue])) if hue else [None]
    g = d.groupby([au] + ([hue] if hue else []), observed=True)[value]
    mean, sd, n = g.mean(), g.std(ddof=1), g.count()
    err = sd if errorbar == "sd" else sd / np.sqrt(n)
    if ax is None:
        fig, ax = plt.subplots(figsize=(max(6.0, 0.55 * len(order) * max(1, len(hues)) ** 0.5 + 2), 4.0))
    else:
        fig = ax.figure
    width = 0.8 / len(hues)
    x = np.arange(len(order))
    for i, h in enumerate(hues):
        idx = [(a, h) if hue else a for a in order]
        m = np.array([mean.get(k, np.nan) for k in idx], dtype=float)
        e = np.array([err.get(k, np.nan) for k in idx], dtype=float)
        ax.bar(x + (i - (len(hues) - 1) / 2) * width, m, width, yerr=np.nan_to_num(e), capsize=2,
               label=str(h) if hue else None)
    ax.set_xticks(x, order, rotation=45 if len(order) > 10 else 0)
    ax.set_xlabel("AU")
    ax.set_ylabel(value)
    if hue:
        ax.legend(title=hue, fontsize="small", ncols=min(4, len(hues)))
    if title:
        ax.set_title(title)
    return fig


def training_curves(history: pd.DataFrame, columns: Sequence[str] | None = None, x: str = "epoch",
                    hue: str | Sequence[str] | None = None, axes=None, title: str | None = None):
    """One panel per column of a :func:`aulib.train.fit` history (default: every loss term and metric); one line
    per value of ``hue`` (a column, or several: one line per combination, e.g. ``["run", "seed"]``)."""
    hues = [] if hue is None else [hue] if isinstance(hue, str) else list(hue)
    _require(history, [x, *hues], "training_curves")
    skip = {x, "step", "time", "lr", *hues}
    cols = list(columns) if columns else [c for c in history.columns
                                         if c not in skip and pd.api.types.is_numeric_dtype(history[c])]
    _require(history, cols, "training_curves")
    if not cols:
        raise ValueError("training_curves: no numeric column to plot")
    if axes is None:
        ncol = min(3, len(cols))
        nrow = int(np.ceil(len(cols) / ncol))
        fig, axes = plt.subplots(nrow, ncol, figsize=(4.2 * ncol, 3.0 * nrow), squeeze=False)
        axes = axes.ravel()
    else:
        axes = np.atleast_1d(axes).ravel()
        fig = axes[0].figure
    for ax, c in zip(axes, cols):
        if hues:
            for h, part in history.groupby(hues if len(hues) > 1 else hues[0], observed=True):
                # several columns: the first's value, then "column value" (e.g. "EmoCo, seed 1")
                label = ", ".join([str(h[0]), *(f"{k} {v}" for k, v in zip(hues[1:], h[1:]))]) if len(hues) > 1 \
                    else str(h)
                ax.plot(part[x], part[c], marker="o", ms=3, label=label)
            ax.legend(fontsize="small")
        else:
            ax.plot(history[x], history[c], marker="o", ms=3)
        ax.set_title(c)
        ax.set_xlabel(x)
    for ax in axes[len(cols):]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def heatmap(matrix, labels: Sequence[str] | None = None, col_labels: Sequence[str] | None = None, ax=None,
            title: str | None = None, fmt: str = ".2f", annot: bool | None = None, cmap: str = "viridis",
            vmin: float | None = None, vmax: float | None = None, cbar_label: str | None = None):
    """Heatmap of a matrix (numpy array or DataFrame, e.g. AU co-occurrence or a confusion matrix)."""
    import seaborn as sns

    if isinstance(matrix, pd.DataFrame):
        data = matrix
    else:
        arr = np.asarray(matrix, dtype=float)
        if arr.ndim != 2:
            raise ValueError(f"heatmap needs a 2-D matrix, got shape {arr.shape}")
        data = pd.DataFrame(arr, index=labels if labels is not None else range(arr.shape[0]),
                            columns=col_labels if col_labels is not None else
                            (labels if labels is not None and len(labels) == arr.shape[1] else range(arr.shape[1])))
    if annot is None:
        annot = max(data.shape) <= 17
    if ax is None:
        side = 0.45 * max(data.shape) + 2.5
        fig, ax = plt.subplots(figsize=(side + 1, side))
    else:
        fig = ax.figure
    sns.heatmap(data, ax=ax, annot=annot, fmt=fmt, cmap=cmap, vmin=vmin, vmax=vmax, square=True,
                annot_kws={"fontsize": 7}, cbar_kws={"label": cbar_label} if cbar_label else None)
    if title:
        ax.set_title(title)
    return fig


def spectrum_plot(spectra: pd.DataFrame, title: str | None = None):
    """Variance share of each leading direction (log scale) per feature set, from
    :func:`aulib.eval.representation.spectra` (columns name, k, share)."""
    _require(spectra, ["name", "k", "share"], "spectrum_plot")
    fig, ax = plt.subplots(figsize=(6.0, 3.6))
    for name, part in spectra.groupby("name", sort=False):
        ax.plot(part["k"], part["share"], marker="o", ms=3, label=str(name))
    ax.set_yscale("log")
    ax.set_xlabel("direction k (largest first)")
    ax.set_ylabel("share of the variance")
    ax.legend(fontsize="small")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def scores_vs_baselines(results: pd.DataFrame, values: Sequence[str] = ("f1", "auc"), dataset: str | None = None,
                        title: str | None = None):
    """Mean over AUs per run, then mean +- std over runs, of every non-baseline variant (bars, coloured by role)
    with the baselines (``always present``, ``prior``, ``untrained encoder``) as dashed lines: the one figure
    that says whether a method detects anything. One row of panels per dataset."""
    _require(results, ["variant", "role", "dataset", "fold", "seed", *values], "scores_vs_baselines")
    r = results if dataset is None else results[results["dataset"] == dataset]
    datasets = list(dict.fromkeys(r["dataset"]))
    fig, axes = plt.subplots(len(datasets), len(values), figsize=(5.2 * len(values), 0.2 + 2.8 * len(datasets)),
                             squeeze=False)
    colours = dict(zip(("method", "ablation", "reference"), plt.get_cmap("tab10").colors))
    line_styles = {"always present": ("k", "--"), "prior": ("0.5", ":"), "untrained encoder": ("tab:red", "-.")}
    for i, ds in enumerate(datasets):
        part = r[r["dataset"] == ds]
        per_run = part.groupby(["role", "variant", "fold", "seed"], observed=True)[list(values)].mean().reset_index()
        agg = per_run.groupby(["role", "variant"], observed=True)[list(values)].agg(["mean", "std"])
        bars = agg.drop(index="baseline", level="role", errors="ignore")
        order = sorted(bars.index, key=lambda rv: (("reference", "method", "ablation").index(rv[0]), rv[1]))
        for j, v in enumerate(values):
            ax = axes[i, j]
            names = [n for _, n in order]
            ax.barh(names, [bars.loc[o, (v, "mean")] for o in order],
                    xerr=[np.nan_to_num(bars.loc[o, (v, "std")]) for o in order],
                    color=[colours[o[0]] for o in order])
            base = agg.loc["baseline"] if "baseline" in agg.index.get_level_values(0) else None
            if base is not None:
                for name, row in base.iterrows():
                    c, ls = line_styles.get(name, ("0.3", "--"))
                    ax.axvline(row[(v, "mean")], color=c, ls=ls, lw=1.2, label=name)
            ax.invert_yaxis()
            ax.set_xlabel(f"mean {v.upper() if v != 'balanced_accuracy' else 'balanced accuracy'} over AUs")
            ax.set_title(ds if len(values) == 1 else f"{ds}: {v}")
            if i == 0 and j == len(values) - 1:
                ax.legend(fontsize="small", loc="lower right")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def rung_heatmap(results: pd.DataFrame, value: str = "auc", title: str | None = None):
    """Per-AU ``value`` (mean over runs) of every variant of tidy ``results``: one heatmap per dataset, rows =
    baselines first, then variants in the order they first appear (e.g. the rungs of a learnability ladder),
    columns = AUs. The one
    figure that says which AU each detector can see."""
    _require(results, ["variant", "dataset", "au", value], "rung_heatmap")
    datasets = list(dict.fromkeys(results["dataset"]))
    tables = []
    for ds in datasets:
        part = results[results["dataset"] == ds]
        t = part.groupby(["variant", "au"], observed=True)[value].mean().unstack("au")
        first = part.sort_values("role", key=lambda r: r.ne("baseline"), kind="stable") if "role" in part else part
        tables.append(t.loc[list(dict.fromkeys(first["variant"])), _au_sort_key(t.columns)])
    fig, axes = plt.subplots(len(datasets), 1, squeeze=False,
                             figsize=(0.55 * max(t.shape[1] for t in tables) + 3, 0.5 + sum(0.42 * len(t) + 0.6 for t in tables)),
                             gridspec_kw={"height_ratios": [len(t) for t in tables]})
    lo, hi = (0.4, 1.0) if value in ("auc", "balanced_accuracy") else (0.0, 1.0)
    for ax, ds, t in zip(axes[:, 0], datasets, tables):
        heatmap(t, ax=ax, title=ds, vmin=lo, vmax=hi, annot=True, cbar_label=value.upper())
        ax.set_xlabel(""), ax.set_ylabel("")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def au_timeseries(predictions: pd.DataFrame, aus: Sequence[str] | None = None, input: str | None = None,
                  face_id: int | None = None, x: str = "timestamp", ax=None):
    """AU probabilities over time for one video, from the table of ``aulib.predict`` (one line per AU and face;
    frames without that face are gaps). ``input`` picks the video (default: the first), ``face_id`` one face
    (default: every face, one panel each), ``aus`` the columns (default: every ``AU<k>`` column)."""
    _require(predictions, ["input", "face_id", "success", x], "au_timeseries")
    df = predictions[predictions["input"] == (input if input is not None else predictions["input"].iloc[0])]
    aus = list(aus) if aus is not None else [c for c in df.columns if re.fullmatch(r"AU\d+", c)]
    faces = sorted(df.loc[df.success == 1, "face_id"].unique()) if face_id is None else [face_id]
    faces = faces or [-1]
    if ax is None:
        fig, axes = plt.subplots(len(faces), 1, figsize=(9, 2.6 * len(faces)), sharex=True, squeeze=False)
        axes = axes[:, 0]
    else:
        fig, axes = ax.figure, [ax]
    times = np.sort(df[x].unique())
    colors = plt.get_cmap("tab20")(np.linspace(0, 1, max(1, len(aus))))
    for a, fid in zip(axes, faces):
        f = df[(df.face_id == fid) & (df.success == 1)].set_index(x).reindex(times)
        for c, col in zip(aus, colors):
            a.plot(times, f[c].to_numpy(dtype=float), label=c, color=col, lw=1.4)
        a.set_ylim(0, 1)
        a.set_ylabel("P(AU)")
        a.set_title(f"face {fid}" if fid >= 0 else "no face found", fontsize=10)
    axes[-1].set_xlabel("time (s)" if x == "timestamp" else x)
    axes[0].legend(ncol=min(len(aus), 6), fontsize=7, loc="upper right", frameon=False)
    fig.tight_layout()
    return fig
