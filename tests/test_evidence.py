"""The evidence layer: trivial baselines, the one fold x seed runner, the one claims rule, the report tables."""

import numpy as np
import pandas as pd
import pytest
from conftest import make_dataset
from scipy import stats
from sklearn.metrics import f1_score, roc_auc_score

from aulib.eval import baselines as B
from aulib.eval.claims import Claim, interval, judge, verdict, verdict_counts
from aulib.eval.crossval import COLUMNS, Variant, run_folds, scores, tidy
from aulib.eval.metrics import auc_per_au, per_au_table
from aulib.experiments.report import check_results, claims_markdown, scores_markdown, write_tables

# ------------------------------------------------------------------------------------------------ baselines
Y = np.array([[1, 0, 1], [0, 0, 1], [1, 1, 1], [0, 0, 0], [1, 0, 9], [0, 1, 1]])
V = Y != 9


def test_always_present_f1_is_2p_over_1_plus_p_and_matches_sklearn():
    t = per_au_table(Y, B.always_present(*Y.shape), V)
    for k in range(3):
        yk = Y[V[:, k], k]
        p = yk.mean()
        assert t.f1[k] == pytest.approx(2 * p / (1 + p))
        assert t.f1[k] == pytest.approx(f1_score(yk, np.ones_like(yk)))
    assert (t.auc == 0.5).all()


def test_prior_uses_training_rates_and_has_auc_one_half():
    train = np.array([[1, 0, 1], [1, 0, 1], [1, 1, 0], [0, 9, 1]])
    rates = B.training_rates(train, train != 9)
    np.testing.assert_allclose(rates, [0.75, 1 / 3, 0.75])
    p = B.prior(train, train != 9, len(Y))
    assert p.shape == Y.shape and (p == rates).all()
    t = per_au_table(Y, p, V)
    assert (t.auc == 0.5).all()
    # threshold 0.5: AU 0 and AU 2 predicted present everywhere, AU 1 never
    assert t.f1[0] == pytest.approx(f1_score(Y[:, 0], np.ones(6)))
    assert t.f1[1] == 0.0


def test_auc_matches_sklearn_and_skips_unknown_labels():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, (40, 4))
    y[:5, 1] = 9
    p = rng.uniform(size=y.shape)
    a = auc_per_au(y, p, y != 9)
    for k in range(4):
        keep = y[:, k] != 9
        assert a[k] == pytest.approx(roc_auc_score(y[keep, k], p[keep, k]))
    y[:, 3] = 1  # one class only: undefined
    assert np.isnan(auc_per_au(y, p, y != 9)[3])


# ------------------------------------------------------------------------------------------------ runner
def test_run_folds_adds_baselines_on_the_same_test_frames():
    ds = make_dataset(n_subjects=6, seqs=1, frames=6, aus=(1, 2, 4))
    labels, valid = ds.au_matrix()

    def half(train_rows, test_rows, fold, seed):  # test on the first half of the test rows only
        keep = test_rows[: len(test_rows) // 2]
        return {"probs": labels[keep].astype(float), "labels": labels[keep], "valid": valid[keep]}

    r = run_folds(ds, [Variant("half", half), Variant("half again", half, role="ablation")], k=3, seeds=(0, 1),
                  experiment="e", progress=False)
    assert list(r.columns[: len(COLUMNS)]) == COLUMNS
    assert set(r.role) == {"method", "ablation", "baseline"}
    ap = r[r.variant == "always present"]
    assert len(ap) == 3 * 2 * 3  # once per (fold, seed, AU), not once per variant
    m = r[r.variant == "half"].set_index(["fold", "seed", "au"])
    a = ap.set_index(["fold", "seed", "au"])
    assert (a.n_valid == m.n_valid).all() and (a.n_pos == m.n_pos).all()  # the variant's own test frames
    assert (r.loc[r.variant == "prior", "auc"].dropna() == 0.5).all()
    s = scores(r)
    assert s.role.iloc[0] == "baseline"
    with pytest.raises(ValueError, match="role"):
        Variant("x", half, role="main")
    with pytest.raises(ValueError, match="baseline"):
        run_folds(ds, half, baselines=("untrained encoder",), progress=False)


def test_tidy_drops_repeated_baselines_from_two_calls():
    ds = make_dataset(n_subjects=3, seqs=1, frames=4)
    labels, _ = ds.au_matrix()
    a = run_folds(ds, lambda tr, te, f, s: labels[te], variant="a", experiment="e", progress=False)
    b = run_folds(ds, lambda tr, te, f, s: labels[te], variant="b", experiment="e", progress=False)
    t = tidy([a, b])
    assert (t.variant == "always present").sum() == (a.variant == "always present").sum()
    assert set(t.variant) == {"a", "b", "always present", "prior"}


# ------------------------------------------------------------------------------------------------ claims
def results_from(units: dict[str, list[float]], auc: dict[str, float] | None = None, n_aus: int = 2) -> pd.DataFrame:
    """A results table whose mean-over-AU F1 per unit is given per variant (each AU gets the same value)."""
    rows = []
    for variant, f1s in units.items():
        for i, f in enumerate(f1s):
            for k in range(n_aus):
                rows.append({"experiment": "e", "variant": variant, "role": "baseline" if variant == "always present"
                             else "method", "dataset": "d", "fold": i % 3 + 1, "seed": i // 3, "au": f"AU{k}",
                             "f1": f, "auc": (auc or {}).get(variant, 0.8), "balanced_accuracy": 0.7,
                             "n_pos": 5, "n_valid": 10})
    return pd.DataFrame(rows)


AP = [0.30] * 6


@pytest.mark.parametrize("a,b,expected", [
    ([0.60, 0.62, 0.61, 0.63, 0.60, 0.62], [0.50, 0.51, 0.52, 0.50, 0.49, 0.51], "holds"),
    ([0.50, 0.51, 0.52, 0.50, 0.49, 0.51], [0.60, 0.62, 0.61, 0.63, 0.60, 0.62], "opposite"),
    ([0.60, 0.50, 0.62, 0.49, 0.61, 0.50], [0.55, 0.56, 0.54, 0.55, 0.56, 0.55], "not resolved"),
])
def test_each_verdict_on_hand_made_units(a, b, expected):
    c = judge(results_from({"A": a, "B": b, "always present": AP}), [Claim("a beats b", "A", "B", 0.02)])
    assert c.verdict.item() == expected
    d = np.subtract(a, b)
    lo, hi = stats.t.interval(0.95, len(d) - 1, loc=d.mean(), scale=d.std(ddof=1) / np.sqrt(len(d)))
    assert c["diff"].item() == pytest.approx(d.mean())
    assert (c.ci_low.item(), c.ci_high.item()) == pytest.approx((lo, hi))
    assert c.n_units.item() == 6 and c.interval.item() == "t"


def test_the_papers_direction_flips_the_verdict():
    a, b = [0.5] * 3 + [0.52] * 3, [0.6] * 3 + [0.61] * 3
    res = results_from({"A": a, "B": b, "always present": AP})
    up, down = judge(res, [Claim("up", "A", "B", +0.01), Claim("down", "A", "B", -0.01)]).verdict
    assert (up, down) == ("opposite", "holds")


@pytest.mark.parametrize("a,expected", [
    ([0.551, 0.549, 0.552, 0.548, 0.550, 0.551], "holds"),         # diff ~0, interval inside +-0.01
    ([0.600, 0.610, 0.590, 0.605, 0.600, 0.595], "opposite"),      # +0.05: a difference the claim says is not there
    ([0.500, 0.490, 0.505, 0.495, 0.500, 0.502], "opposite"),      # -0.05: the same, below
    ([0.560, 0.540, 0.575, 0.530, 0.565, 0.545], "not resolved"),  # interval overlaps the band's edge
    ([0.558, 0.560, 0.559, 0.561, 0.558, 0.560], "not resolved"),  # excludes 0 yet overlaps the edge: not opposite
])
def test_an_equivalence_claim_is_judged_against_its_band_not_against_zero(a, expected):
    b = [0.55] * 6
    res = results_from({"A": a, "B": b, "always present": AP})
    c = judge(res, [Claim("a is about b", "A", "B", 0.0, margin=0.01)])
    assert c.verdict.item() == expected
    lo, hi = c.ci_low.item(), c.ci_high.item()
    assert verdict(lo, hi, margin=0.01) == expected and verdict(lo, hi, margin=1.0) == "holds"
    # the same units read as "a beats b" (no margin): a clear +0.05 holds, which is what the equivalence
    # claim must not report
    if expected == "opposite" and lo > 0:
        assert judge(res, [Claim("a beats b", "A", "B", 0.0)]).verdict.item() == "holds"
    with pytest.raises(ValueError, match="margin"):
        verdict(lo, hi, margin=-0.01)


def test_no_evidence_when_a_side_does_not_beat_always_present_or_ranks_at_chance():
    a, b = [0.60, 0.62, 0.61, 0.63, 0.60, 0.62], [0.29] * 6
    res = results_from({"A": a, "B": b, "always present": AP})
    assert judge(res, [Claim("c", "A", "B")]).verdict.item() == "no evidence"
    b = [0.50, 0.51, 0.52, 0.50, 0.49, 0.51]
    res = results_from({"A": a, "B": b, "always present": AP}, auc={"B": 0.55})
    assert judge(res, [Claim("c", "A", "B")]).verdict.item() == "no evidence"
    res = results_from({"A": a, "B": b, "always present": AP}, auc={"B": 0.65})
    assert judge(res, [Claim("c", "A", "B")]).verdict.item() == "holds"


def test_a_baseline_side_is_exempt_from_the_detection_gate_but_the_method_side_is_not():
    # "pretrained beats the untrained encoder": random weights need not detect; the pretrained side must
    a, b = [0.60, 0.62, 0.61, 0.63, 0.60, 0.62], [0.20, 0.22, 0.21, 0.20, 0.19, 0.21]
    res = results_from({"A": a, "untrained encoder": b, "always present": AP}, auc={"untrained encoder": 0.52})
    res.loc[res.variant == "untrained encoder", "role"] = "baseline"
    assert judge(res, [Claim("c", "A", "untrained encoder")]).verdict.item() == "holds"
    res.loc[res.variant == "untrained encoder", "role"] = "method"  # the same numbers as a method: gated
    assert judge(res, [Claim("c", "A", "untrained encoder")]).verdict.item() == "no evidence"
    res = results_from({"A": [0.25] * 6, "untrained encoder": b, "always present": AP})
    res.loc[res.variant == "untrained encoder", "role"] = "baseline"
    assert judge(res, [Claim("c", "A", "untrained encoder")]).verdict.item() == "no evidence"


def test_few_units_use_the_t_interval_and_one_unit_resolves_nothing():
    # hand-worked: mean 1/30, sd 0.015275, t_{0.975, 2} = 4.302653 -> half-width 0.037947
    lo, hi, how = interval([0.02, 0.05, 0.03])
    assert how == "t"
    assert lo == pytest.approx(1 / 30 - 0.037947, abs=1e-5) and hi == pytest.approx(1 / 30 + 0.037947, abs=1e-5)
    assert verdict(lo, hi) == "not resolved"  # three small gains of one sign are not yet evidence
    lo, hi, how = interval([0.10, 0.11, 0.12])
    assert verdict(lo, hi) == "holds"
    assert interval([0.1])[2] == "none" and verdict(*interval([0.1])[:2]) == "not resolved"
    res = results_from({"A": [0.6], "B": [0.5], "always present": [0.3]})
    assert judge(res, [Claim("c", "A", "B")]).verdict.item() == "not resolved"


@pytest.mark.parametrize("n", [2, 3, 4, 6])
def test_intervals_keep_their_level(n):
    """Where a and b do not differ, a 95 % interval excludes 0 about 5 % of the time, whatever the number of
    units (the percentile bootstrap this rule once used on 2-4 units did so 25 % of the time on 3)."""
    rng = np.random.default_rng(0)
    draws = 2000
    wrong = sum(verdict(*interval(rng.normal(0.0, 0.02, n))[:2]) != "not resolved" for _ in range(draws))
    assert wrong / draws == pytest.approx(0.05, abs=0.015)


def test_claims_pair_units_and_name_missing_variants():
    res = results_from({"A": [0.6] * 6, "B": [0.5] * 3, "always present": AP})  # B only has the 3 units of seed 0
    c = judge(res, [Claim("c", "A", "B")])
    assert c.n_units.item() == 3 and c["diff"].item() == pytest.approx(0.1)
    with pytest.raises(KeyError, match="'Z'"):
        judge(res, [Claim("c", "A", "Z")])
    assert verdict_counts(c) == {"holds": 1, "opposite": 0, "not resolved": 0, "no evidence": 0}


# ------------------------------------------------------------------------------------------------ report
def test_write_tables_checks_the_schema(tmp_path):
    res = results_from({"A": [0.6] * 6, "B": [0.5] * 6, "always present": AP})
    claims = judge(res, [Claim("c", "A", "B", 0.01)])
    paths = write_tables(tmp_path, res, claims)
    assert [p.name for p in paths] == ["results.csv", "claims.csv"]
    back = pd.read_csv(paths[1])
    assert list(back.columns[:10]) == ["claim", "a", "b", "metric", "paper_diff", "diff", "ci_low", "ci_high",
                                       "n_units", "verdict"]
    assert "holds" in claims_markdown(claims) and "always present 30.0" in scores_markdown(res)
    assert "= +10.0 F1 points" in claims_markdown(claims)
    named = claims_markdown(claims.assign(metric="balanced_batch_accuracy"))
    assert "+10.0 balanced-batch accuracy points" in named and "BALANCED" not in named
    rate = claims_markdown(claims.assign(metric="switches_per_100_frames"))  # a count per 100 frames, not in [0, 1]
    assert "= +0.1 switches per 100 frames (95% interval" in rate
    assert "+10.0 dependency-F1 points" in claims_markdown(claims.assign(metric="dependency_f1"))
    with pytest.raises(ValueError, match="outside"):
        check_results(res.assign(f1=res.f1 * 100))
    with pytest.raises(ValueError, match="always present"):
        check_results(res[res.variant != "always present"])
    with pytest.raises(ValueError, match="baseline variant"):
        check_results(res.assign(variant=res.variant.replace("always present", "all ones")))


def test_summary_reads_every_report_folder(tmp_path):
    from aulib.experiments.report import reports_summary, summary_markdown

    res = results_from({"A": [0.6] * 6, "B": [0.5] * 6, "always present": AP})
    res.loc[res.variant == "B", "role"] = "reference"
    write_tables(tmp_path / "01_x", res, judge(res, [Claim("c", "A", "B", 0.01)]))
    s = reports_summary(tmp_path)
    assert s[["report", "method", "reference"]].values.tolist() == [["01_x", "A", "B"]]
    assert s.f1.item() == pytest.approx(0.6) and s.always_present_f1.item() == pytest.approx(0.3)
    assert s.holds.item() == 1
    md = summary_markdown(tmp_path)
    assert "| 01_x | e | d | A | 60.0 | 0.80 | 30.0 | n/a | B: 50.0 |" in md
    assert "| 01_x | 1 | 1 | 0 | 0 | 0 |" in md


def test_an_interval_touching_zero_resolves_nothing():
    assert verdict(0.0, 0.1) == "not resolved" and verdict(-0.1, 0.0) == "not resolved"
    assert verdict(0.001, 0.1) == "holds" and verdict(-0.1, -0.001) == "opposite"


def test_prior_is_the_training_folds_rate_not_the_test_folds():
    from aulib.data.folds import fold_split

    ds = make_dataset(n_subjects=6, seqs=1, frames=10, aus=(1,))
    train_rows, test_rows = fold_split(ds, 1, k=3)
    au = np.zeros(len(ds), np.int8)
    au[train_rows[: int(0.9 * len(train_rows))]] = 1  # training rate 0.9
    au[test_rows[: int(0.3 * len(test_rows))]] = 1  # test rate 0.3
    ds.frames["AU1"] = au
    r = run_folds(ds, lambda tr, te, f, s: np.zeros((len(te), 1)), folds=[1], progress=False)
    prior_f1 = r.loc[r.variant == "prior", "f1"].item()
    assert prior_f1 == pytest.approx(2 * 0.3 / 1.3, abs=0.02)  # "present" everywhere, as the training rate says
