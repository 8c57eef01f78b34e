"""Feature spectra (aulib.eval.representation) against hand-worked cases and an independent eigen-decomposition."""

import numpy as np
import pytest

from aulib.eval.representation import singular_values, spectra, spectrum_summary


def _equal_directions(k: int, d: int = 10, n: int = 400, seed: int = 0) -> np.ndarray:
    """n points spread with equal variance over k orthonormal directions of R^d, exactly centred."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    codes = np.zeros((n, k))
    for j in range(k):  # +-1 in balanced blocks: each column centred, columns orthogonal, equal norms
        codes[:, j] = np.tile(np.repeat([1.0, -1.0], 2**j), n // 2 ** (j + 1))[:n]
    return codes @ q[:, :k].T + 5.0  # an offset the centring removes


@pytest.mark.parametrize("k", [1, 2, 4])
def test_equal_variance_over_k_directions_has_effective_rank_k(k):
    s = spectrum_summary(_equal_directions(k))
    assert s["effective_rank"] == pytest.approx(k, rel=1e-9)
    assert s["top1_share"] == pytest.approx(1 / k, rel=1e-9)
    assert s["top5_share"] == pytest.approx(1.0)
    assert s["dim"] == 10


def test_hand_worked_two_directions():
    # singular values 3 and 1 (x = +-3 along e1, +-1 along e2): p = (3/4, 1/4), variance shares 9/10, 1/10
    f = np.array([[3.0, 1.0], [3.0, -1.0], [-3.0, 1.0], [-3.0, -1.0]]) / 2
    s = spectrum_summary(f)
    p = np.array([0.75, 0.25])
    assert s["effective_rank"] == pytest.approx(np.exp(-(p * np.log(p)).sum()))
    assert s["top1_share"] == pytest.approx(0.9)


def test_matches_the_covariance_eigenvalues():
    rng = np.random.default_rng(1)
    f = rng.normal(size=(300, 6)) * np.array([5.0, 3.0, 2.0, 1.0, 0.5, 0.1]) + rng.normal(size=6)
    lam = np.sort(np.linalg.eigvalsh(np.cov(f, rowvar=False)))[::-1]  # = sigma^2 / (N - 1)
    np.testing.assert_allclose(singular_values(f) ** 2 / (len(f) - 1), lam, rtol=1e-9)
    sig = np.sqrt(lam)
    p = sig / sig.sum()
    s = spectrum_summary(f)
    assert s["effective_rank"] == pytest.approx(np.exp(-(p * np.log(p)).sum()), rel=1e-9)
    assert s["top1_share"] == pytest.approx(lam[0] / lam.sum(), rel=1e-9)
    assert s["top5_share"] == pytest.approx(lam[:5].sum() / lam.sum(), rel=1e-9)


def test_spectra_are_tidy_shares_largest_first():
    rng = np.random.default_rng(2)
    t = spectra({"a": rng.normal(size=(50, 8)), "b": _equal_directions(2)}, n=5)
    assert list(t.columns) == ["name", "k", "share"]
    a = t[t.name == "a"]
    assert list(a.k) == [1, 2, 3, 4, 5] and (np.diff(a.share) <= 0).all() and a.share.sum() < 1
    assert t[t.name == "b"].share.iloc[:2].tolist() == pytest.approx([0.5, 0.5])


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="constant"):
        spectrum_summary(np.ones((5, 3)))
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        spectrum_summary(np.ones(5))
