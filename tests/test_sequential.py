"""The sequential membership test (forensics.method.sequential): valid under optional stopping (exact nulls, 2,000
runs), what a fixed-sample test recomputed after every batch would do instead, and the queries it saves."""
from __future__ import annotations

import numpy as np
import pytest

from forensics.method import sequential as seq
from forensics.method.stats import difficulty_strata, stratified_rank_test, stratum_weights

ALPHA = 0.01


def _population(rng: np.random.Generator, n: int, effect: float = 0.0):
    """A pool of 2n samples of varying difficulty split at random into members and controls; a suspect's loss
    follows the difficulty, and members' loss is lowered by ``effect`` (0: H0 true by construction)."""
    ref = rng.gamma(1.0, 1.0, 2 * n)
    perm = rng.permutation(2 * n)
    m, c = perm[:n], perm[n:]
    loss = ref * rng.lognormal(0.0, 0.5, 2 * n)
    loss[m] = loss[m] * np.exp(-effect)
    return ref[m], ref[c], loss[m], loss[c]


def _gains(ref_m, ref_c, s_m, s_c, seed):
    plan = seq.plan_pairs(ref_m, ref_c, seed)
    return plan, seq.pair_gains(s_m[plan.member], s_c[plan.control])


def test_exact_null_with_optional_stopping_keeps_false_accusations_below_alpha():
    """H0 true by construction (members and controls a random split of one pool), the rule read after every batch
    of 5 pairs and stopped at the first crossing, 2,000 runs: P(evidence) <= alpha."""
    rng = np.random.default_rng(0)
    runs, accused, scores_accused = 2000, 0, 0
    for r in range(runs):
        ref_m, ref_c, s_m, s_c = _population(rng, 300)
        _, g = _gains(ref_m, ref_c, s_m, s_c, r)
        accused += seq.simulate(g, ALPHA, batch=5).decision == "evidence"
        _, g01 = _gains(ref_m, ref_c, (s_m > 1).astype(float), (s_c > 1).astype(float), r)
        scores_accused += seq.simulate(g01, ALPHA, batch=5).decision == "evidence"
    # the binomial 99.9 % upper bound for alpha = 0.01 and 2,000 runs is 0.0173: a rate above that is not chance
    assert accused / runs <= 0.0173, accused
    assert scores_accused / runs <= 0.0173, scores_accused
    assert accused > 0 or scores_accused >= 0  # the runs happened (a count, not a timing)


def test_a_fixed_sample_test_recomputed_after_every_batch_is_not_valid():
    """The contrast that makes the check above meaningful: the calibrated fixed-sample rank test, recomputed after
    every batch and stopped at the first p < alpha, accuses innocents several times more often than alpha."""
    rng = np.random.default_rng(1)
    runs, accused = 300, 0
    for r in range(runs):
        ref_m, ref_c, s_m, s_c = _population(rng, 300)
        plan = seq.plan_pairs(ref_m, ref_c, r)
        strata = difficulty_strata(np.r_[ref_m, ref_c], 5)
        sm, sc = strata[:len(ref_m)][plan.member], strata[len(ref_m):][plan.control]
        for n in range(20, len(plan) + 1, 20):
            res = stratified_rank_test(s_m[plan.member][:n], s_c[plan.control][:n], sm[:n], sc[:n],
                                       stratum_weights(5, "flat"))
            if res.p_value < ALPHA:
                accused += 1
                break
    assert accused / runs > 2.5 * ALPHA, accused


def test_the_vectorised_rule_decides_like_the_live_one():
    rng = np.random.default_rng(2)
    for r in range(40):
        g = np.clip(rng.normal(0.04 * (r % 4), 0.6, 500), -1, 1)
        expected = np.full(500, 0.4)
        batch = 1 + r % 9
        sim = seq.simulate(g, ALPHA, expected, batch=batch)
        live = seq.SequentialTest(ALPHA, expected)
        asked = 0
        for start in range(0, len(g), batch):
            asked = min(len(g), start + batch)
            live.update(g[start:asked])
            if live.decision:
                break
        assert sim.decision == live.decision
        assert sim.queries == 2 * asked
        assert sim.p_value == pytest.approx(live.p_value, rel=1e-9)
        assert live.trace[-1] == (live.pairs, live.p_value)


def test_a_clear_effect_is_decided_in_few_queries_and_an_innocent_stops_for_futility():
    rng = np.random.default_rng(3)

    def victim_signal(plan, ref_m, ref_c):
        # the "victim": members' loss far below controls', whose per-bin gains the futility rule compares with
        v_m, v_c = ref_m * np.exp(-3.0), ref_c
        return seq.bin_means(seq.pair_gains(v_m[plan.member], v_c[plan.control]), plan.bin)

    ref_m, ref_c, s_m, s_c = _population(rng, 600, effect=1.0)
    plan, g = _gains(ref_m, ref_c, s_m, s_c, 0)
    theft = seq.simulate(g, ALPHA, victim_signal(plan, ref_m, ref_c))
    assert theft.decision == "evidence" and theft.queries <= 200 and theft.p_value <= ALPHA
    ref_m, ref_c, s_m, s_c = _population(rng, 600)
    plan, g = _gains(ref_m, ref_c, s_m, s_c, 1)
    # the futility rule: here a theft is taken to carry at least 30 % of the victim's signal
    assert seq.simulate(g, ALPHA, victim_signal(plan, ref_m, ref_c)).decision is None  # the default share: 10 %
    innocent = seq.simulate(g, ALPHA, victim_signal(plan, ref_m, ref_c), futility_share=0.3)
    assert innocent.decision == "futility" and innocent.queries < 2 * len(plan) and innocent.p_value > ALPHA
    assert seq.simulate(g, ALPHA).decision is None  # without the victim's signal there is no futility stop


def test_the_plan_pairs_equal_difficulty_hardest_first_and_reads_nothing_else():
    rng = np.random.default_rng(4)
    ref_m, ref_c = rng.gamma(1.0, 1.0, 500), rng.gamma(1.0, 1.0, 420)
    plan = seq.plan_pairs(ref_m, ref_c, 7)
    again = seq.plan_pairs(ref_m, ref_c, 7)
    assert np.array_equal(plan.member, again.member) and np.array_equal(plan.control, again.control)
    assert len(set(plan.member)) == len(plan) and len(set(plan.control)) == len(plan)  # each sample once
    assert np.all(np.diff(plan.bin) <= 0)  # hardest bin first
    assert len(plan) >= 0.8 * 420
    # the two of a pair are of the same difficulty bin
    both = difficulty_strata(np.r_[ref_m, ref_c], int(plan.bin.max()) + 1)
    assert np.array_equal(both[:500][plan.member], both[500:][plan.control])
    # the p-value is a probability, the wealth never negative, for any gains in [-1, 1]
    g = np.r_[np.ones(5), -np.ones(5)]
    t = seq.SequentialTest(ALPHA).update(g)
    assert 0 < t.p_value <= 1 and t.wealth > 0
