import numpy as np
import pandas as pd
import pytest

from aulib.data.stats import REFERENCE, cooccurrence, correlation, inverse_rate_weights, positive_rates

# Hand-worked label set: 5 frames, 3 AUs; frame 4's AU2 is unknown.
Y = np.array([[1, 1, 0], [1, 0, 0], [0, 1, 1], [1, 1, 1], [0, 0, 0]])
V = np.ones_like(Y, bool)
V[4, 1] = False


def test_rates_exclude_unknown():
    np.testing.assert_allclose(positive_rates(Y, V), [3 / 5, 3 / 4, 2 / 5])


def test_cooccurrence_by_hand():
    m = cooccurrence(Y, V)
    # P(AU2 | AU1): AU1 positive in frames 0,1,3 (AU2 known in all three), AU2 positive in 0,3 -> 2/3
    assert m[0, 1] == pytest.approx(2 / 3)
    # P(AU1 | AU2): AU2 positive in 0,2,3 -> AU1 in 0,3 -> 2/3 ; P(AU3 | AU2) = 2/3 ; P(AU2 | AU3) = 1
    assert m[1, 0] == pytest.approx(2 / 3) and m[1, 2] == pytest.approx(2 / 3) and m[2, 1] == 1
    np.testing.assert_allclose(np.diag(m), 1)


def test_correlation_matches_pandas_pairwise():
    df = pd.DataFrame(np.where(V, Y, np.nan).astype(float))
    np.testing.assert_allclose(correlation(Y, V), df.corr(method="pearson").to_numpy())


def test_inverse_rate_weights_eq1():
    w = inverse_rate_weights(Y, V)
    inv = np.array([5 / 3, 4 / 3, 5 / 2])
    np.testing.assert_allclose(w, inv / inv.sum())
    assert w.sum() == pytest.approx(1)
    with pytest.raises(ValueError, match="no positive"):
        inverse_rate_weights(np.zeros((3, 2)), None)


def test_reference_tables_are_consistent():
    for ref in REFERENCE.values():
        k = len(ref.aus)
        assert ref.rates.shape == (k,) and ref.cooccurrence.shape == (k, k)
        np.testing.assert_allclose(np.diag(ref.cooccurrence), 1)
        # Bayes: P(j|i) r_i = P(i|j) r_j, up to the table's 2-digit rounding.
        joint = ref.cooccurrence * ref.rates[:, None]
        np.testing.assert_allclose(joint, joint.T, atol=0.012)
