"""Plotting helpers for notebooks (and eval tables): one style, figures drawn from tidy frames.

    set_style()                                   # once per notebook
    fig = per_au_bars(df, value="f1", hue="variant")   # mean +- std over folds/seeds per AU
    save_figure(fig, out_dir, "f1_per_au")        # -> out_dir/f1_per_au.png
    save_table(df, out_dir, "f1_per_au")          # -> out_dir/f1_per_au.csv
"""

from aulib.viz.plots import (
    au_timeseries,
    heatmap,
    per_au_bars,
    rung_heatmap,
    save_figure,
    save_table,
    scores_vs_baselines,
    set_style,
    spectrum_plot,
    training_curves,
)

__all__ = ["au_timeseries", "heatmap", "per_au_bars", "rung_heatmap", "save_figure", "save_table", "scores_vs_baselines", "set_style", "spectrum_plot",
           "training_curves"]
