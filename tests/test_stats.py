"""forensics.method.stats: the stratified rank test (calibrated, powerful), strata, the paper's protocol."""
from __future__ import annotations

import numpy as np
import pytest

from forensics.method.stats import difficulty_strata, paper_protocol, stratified_rank_test, stratum_weights
from forensics.protocols.builtin import effective_strata


def _simulate(rng: np.random.Generator, shift: float = 0.0, n: int = 200, n_strata: int = 4, ties: bool = False):
    cov_m, cov_c = rng.normal(size=n), rng.normal(size=n)
    if ties:  # 0/1 scores whose rate depends on the covariate
        sm = (rng.random(n) < 1 / (1 + np.exp(-cov_m))).astype(float)
        sc = (rng.random(n) < 1 / (1 + np.exp(-cov_c))).astype(float)
    else:
        sm = cov_m + rng.normal(size=n) - shift
        sc = cov_c + rng.normal(size=n)
    strata = difficulty_strata(np.concatenate([cov_m, cov_c]), n_strata)
    return sm, sc, strata[:n], strata[n:]


@pytest.mark.parametrize("weighting", [None, "flat", "quadratic"])
@pytest.mark.parametrize("ties", [False, True], ids=["continuous", "ties"])
def test_rank_test_is_calibrated_under_the_null(weighting, ties):
    """The rank test alone, on small strata (its normal approximation with ties); the verdict's protocol at alpha
    0.01 and 0.001 over 2,000 exact-null draws of the default design: tests/test_nullcheck.py."""
    weights = None if weighting is None else stratum_weights(4, weighting)
    pvals = []
    for seed in range(300):
        sm, sc, gm, gc = _simulate(np.random.default_rng(seed), ties=ties)
        r = stratified_rank_test(sm, sc, gm, gc, weights=weights)
        assert np.isfinite(r.z) and 0.0 <= r.p_value <= 1.0
        pvals.append(r.p_value)
    pvals = np.array(pvals)
    assert 0.02 <= (pvals < 0.05).mean() <= 0.09
    assert 0.05 <= (pvals < 0.1).mean() <= 0.16
    assert 0.4 <= np.median(pvals) <= 0.6


@pytest.mark.parametrize("weighting", [None, "quadratic"])
def test_rank_test_detects_a_real_shift(weighting):
    weights = None if weighting is None else stratum_weights(4, weighting)
    for seed in range(20):
        sm, sc, gm, gc = _simulate(np.random.default_rng(1000 + seed), shift=0.8)
        r = stratified_rank_test(sm, sc, gm, gc, weights=weights)
        assert r.p_value < 1e-3 and r.z > 3
        # one-sided: members with *higher* losses are no evidence
        assert stratified_rank_test(sc, sm, gc, gm, weights=weights).p_value > 0.5


def test_rank_test_strata_and_degenerate_cases():
    sm, sc, gm, gc = _simulate(np.random.default_rng(0), n=100)
    r = stratified_rank_test(sm, sc, gm, gc)
    assert [row["stratum"] for row in r.strata] == [0, 1, 2, 3]
    assert sum(row["members"] for row in r.strata) == 100 and sum(row["controls"] for row in r.strata) == 100
    assert all(0 <= row["auc"] <= 1 for row in r.strata)
    same = np.zeros(50)
    r = stratified_rank_test(same, same, np.zeros(50, int), np.zeros(50, int))  # all tied: no information
    assert (r.z, r.p_value) == (0.0, 1.0)
    with pytest.raises(ValueError, match="NaN"):
        stratified_rank_test(np.array([np.nan, 1.0]), np.ones(2), np.zeros(2, int), np.zeros(2, int))
    with pytest.raises(ValueError, match="weighting"):
        stratum_weights(4, "cubic")
    np.testing.assert_array_equal(stratum_weights(3), [1.0, 4.0, 9.0])


def test_difficulty_strata_are_quantiles():
    x = np.random.default_rng(0).normal(size=1000)
    s = difficulty_strata(x, 4)
    assert np.bincount(s).tolist() == [250, 250, 250, 250]
    assert x[s == 0].max() < x[s == 3].min()


def test_paper_protocol_is_reproducible():
    p = np.random.default_rng(0).uniform(0.3, 0.9, 500)
    a = paper_protocol(p, np.random.default_rng(7))
    b = paper_protocol(p, np.random.default_rng(7))
    c = paper_protocol(p, np.random.default_rng(8))
    assert a == b
    assert a[1] != c[1]
    assert len(a[1]) == 40 and 0 < a[0] <= 1




def test_effective_strata_keep_thirty_per_stratum():
    assert effective_strata(10, 1500, 2000) == 10
    assert effective_strata(10, 300, 100) == 3
    assert effective_strata(10, 10, 10) == 1
