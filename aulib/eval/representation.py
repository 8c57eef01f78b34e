"""How many directions a frozen encoder's features use: the singular-value spectrum of the centred features.

A self-supervised encoder can keep every image apart and still squeeze its features into a few directions
("dimensional collapse", Jing et al. 2022); a linear probe then has little to read. Two summaries of the
spectrum sigma_1 >= ... >= sigma_D of the centred (N, D) feature matrix:

    effective rank  exp(H(p)),  p_k = sigma_k / sum_j sigma_j,  H the Shannon entropy  (RankMe, Garrido et al.
                    2023; D for an isotropic cloud, 1 for a line)
    top-1 share     sigma_1^2 / sum_j sigma_j^2: the share of the variance on the leading direction

RankMe takes the embeddings as they are; here their mean is removed first, so that an offset every image shares
(large in a randomly initialised encoder) does not count as a direction.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import entropy


def singular_values(features) -> np.ndarray:
    """(min(N, D),) singular values, largest first, of the (N, D) features after removing their mean."""
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"features must be (N, D) with N >= 2; got shape {f.shape}")
    return np.linalg.svd(f - f.mean(0), compute_uv=False)


def spectrum_summary(features) -> dict[str, float]:
    """``{"dim", "effective_rank", "top1_share", "top5_share"}`` of (N, D) features (see the module)."""
    s = singular_values(features)
    var = s**2
    if var.sum() <= 0:
        raise ValueError("features are constant: every singular value is 0")
    return {"dim": int(np.asarray(features).shape[1]),
            "effective_rank": float(np.exp(entropy(s))),  # RankMe (scipy normalises s to sum 1)
            "top1_share": float(var[0] / var.sum()),
            "top5_share": float(var[:5].sum() / var.sum())}


def spectrum_table(features: dict[str, np.ndarray], results: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per named (N, D) feature matrix (column ``variant``): :func:`spectrum_summary`, and with a tidy
    ``results`` frame the mean ``f1`` / ``auc`` of the rows of that variant (``probe F1``, ``probe AUC``)."""
    table = pd.DataFrame([{"variant": name, **spectrum_summary(f)} for name, f in features.items()])
    if results is not None:
        mean = results[results["variant"].isin(list(features))].groupby("variant")[["f1", "auc"]].mean()
        table = table.join(mean.rename(columns={"f1": "probe F1", "auc": "probe AUC"}), on="variant")
    return table


def spectra(features: dict[str, np.ndarray], n: int = 32) -> pd.DataFrame:
    """Tidy (name, k, share) of the first ``n`` variance shares sigma_k^2 / sum sigma^2 of each named feature
    matrix, for a plot of the spectra side by side."""
    rows = []
    for name, f in features.items():
        var = singular_values(f) ** 2
        share = var / var.sum()
        rows += [{"name": name, "k": k + 1, "share": float(v)} for k, v in enumerate(share[:n])]
    return pd.DataFrame(rows)


__all__ = ["singular_values", "spectra", "spectrum_summary", "spectrum_table"]
