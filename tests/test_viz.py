"""Plot helpers: files land where asked, bars show mean and spread computed from the tidy frame."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from aulib.viz import heatmap, per_au_bars, save_figure, save_table, set_style, training_curves  # noqa: E402


def _tidy():
    rows = []
    for variant, shift in (("a", 0.0), ("b", 0.1)):
        for fold in (1, 2, 3):
            for au, base in (("AU1", 0.4), ("AU12", 0.8), ("AU2", 0.5)):
                rows.append({"variant": variant, "fold": fold, "au": au, "f1": base + shift + 0.01 * fold})
    return pd.DataFrame(rows)


def test_save_figure_and_table(tmp_path):
    set_style()
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    p = save_figure(fig, tmp_path / "new" / "dir", "curve")
    assert p == tmp_path / "new" / "dir" / "curve.png" and p.read_bytes()[:4] == b"\x89PNG"
    t = save_table(pd.DataFrame({"x": [1, 2]}), tmp_path, "tab")
    assert pd.read_csv(t)["x"].tolist() == [1, 2]
    with pytest.raises(ValueError, match="no extension"):
        save_table(pd.DataFrame(), tmp_path, "tab.csv")
    plt.close("all")


def test_per_au_bars_heights_and_errors():
    df = _tidy()
    fig = per_au_bars(df, value="f1", hue="variant")
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels == ["AU1", "AU2", "AU12", "avg"]  # numeric AU order, then the average
    heights = [b.get_height() for b in ax.patches]
    # variant a: AU1 mean over folds = 0.4 + 0.02; avg = mean over AUs of each fold, then over folds
    assert heights[0] == pytest.approx(0.42)
    assert heights[3] == pytest.approx(np.mean([0.4, 0.5, 0.8]) + 0.02)
    assert heights[4] == pytest.approx(0.52)  # variant b, AU1
    # error bars: standard deviation over folds (0.01 * (1, 2, 3) -> sd 0.01)
    err_lines = [c for c in ax.collections if c.get_segments()]
    seg = err_lines[0].get_segments()[0]
    assert seg[1][1] - seg[0][1] == pytest.approx(2 * 0.01)
    with pytest.raises(KeyError, match="accuracy"):
        per_au_bars(df, value="accuracy")
    plt.close("all")


def test_training_curves_and_heatmap():
    h = pd.DataFrame({"epoch": [1, 2, 3], "step": [5, 10, 15], "loss": [1.0, 0.5, 0.3], "f1": [0.2, 0.4, 0.5],
                      "lr": [0.1] * 3, "time": [1.0] * 3})
    fig = training_curves(h)
    titles = [a.get_title() for a in fig.axes if a.get_visible()]
    assert titles == ["loss", "f1"]
    np.testing.assert_allclose(fig.axes[0].lines[0].get_ydata(), [1.0, 0.5, 0.3])
    # one line per (run, seed): two seeds of one run are two curves, not one line that jumps back to epoch 1
    two = pd.concat([h.assign(run="EmoCo", seed=0), h.assign(run="EmoCo", seed=1, loss=h.loss + 1)])
    ax = training_curves(two, columns=["loss"], hue=["run", "seed"]).axes[0]
    assert [ln.get_label() for ln in ax.lines] == ["EmoCo, seed 0", "EmoCo, seed 1"]
    np.testing.assert_allclose(ax.lines[1].get_ydata(), [2.0, 1.5, 1.3])
    m = np.array([[1.0, 0.2], [0.3, 1.0]])
    fig2 = heatmap(m, labels=["AU1", "AU2"], title="co-occurrence")
    assert [t.get_text() for t in fig2.axes[0].get_xticklabels()] == ["AU1", "AU2"]
    with pytest.raises(ValueError, match="2-D"):
        heatmap(np.zeros(3))
    plt.close("all")
