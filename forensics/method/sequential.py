"""Sequential membership testing with anytime-valid p-values: ask a paid API as few queries as the evidence needs.

The fixed-sample membership test (:func:`forensics.method.stats.stratified_rank_test`) is valid only when it is
computed once, on a sample size fixed in advance; recomputing it after every batch and stopping at the first
p < alpha accuses innocents far more often than alpha.  This module tests the same hypothesis by *betting*
(Shafer & Vovk; Waudby-Smith & Ramdas, "Estimating means of bounded random variables by betting", JRSS-B 2024):

* **Pairs.** Members and controls of the audit's design are binned by the reference shadow's loss (a model that saw
  neither: the bins treat both alike), and matched at random within their bin.  Under H0 (the suspect never learned
  from the victim or its private data) a member and a control of the same bin are exchangeable, so once the two
  answers are in, which one was the member is a fair coin: the sign of ``X = s(control) - s(member)`` (``s`` the
  suspect's loss, or its 0/1 error with labels only) is symmetric given its size, whatever the suspect is.
* **Order.** Pairs are asked hardest bin first (the signal of memorisation lives in the hard samples), member and
  control together, so the two are exchangeable at every step.  The order uses the reference loss only, never an
  answer of the suspect or the victim.
* **Wealth.** A bettor starts with 1 and stakes a predictable fraction ``lambda_t`` in [0, 1) of its wealth on each
  pair: ``K_t = prod (1 + lambda_i * g_i)``, with ``g_i = sign(X_i)`` (a sign test: no loss scale to choose).
  Under H0 ``E[g_i | past] = 0``, so ``K_t`` is a nonnegative martingale and, by Ville's inequality,
  ``P(sup_t K_t >= 1/alpha) <= alpha``: the p-value ``min(1, 1 / max_{s <= t} K_s)`` is valid at every t, whenever
  and for whatever reason the audit stops (evidence, budget, a crash, the owner's impatience).  The stake is a
  mixture over a grid of fixed fractions (:data:`LAMBDAS`), itself a martingale: no tuning, and no slow start.
* **Futility.** The audit also stops early for an innocent-looking suspect: a second bettor wagers *against* the
  suspect carrying at least :data:`FUTILITY_SHARE` of the victim's own membership signal (the victim's answers give
  that signal per bin, known before a single paid query); once that wealth reaches 1/beta, the audit stops with
  "no evidence of derivation".  Stopping for futility only ever ends an audit without an accusation, so it cannot
  raise the false-positive rate.

:func:`simulate` runs the rule on answers known in advance (the benchmark and the exact-null check);
:class:`SequentialTest` is the live state an API audit updates pair by pair.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .metrics import per_sample_loss
from .stats import difficulty_strata

#: fixed betting fractions mixed with equal prior weight (the mixture of martingales is a martingale)
LAMBDAS = np.array([0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9])
#: bins of the reference loss: about this many members and controls per bin
PER_BIN = 40
#: the share of the victim's own per-bin membership signal that a theft is taken to carry at least (futility)
FUTILITY_SHARE = 0.1
#: the chance of stopping for futility although the suspect carries that share (the futility rule's beta)
FUTILITY_BETA = 0.01


@dataclass(frozen=True)
class PairPlan:
    """The order of a sequential audit: pairs (member, control) of the same difficulty bin, hardest first.

    ``member`` / ``control``: indices into the design's members and controls; ``bin``: each pair's bin (higher =
    harder); the query positions are the design's positions at those indices."""

    member: np.ndarray
    control: np.ndarray
    bin: np.ndarray

    def __len__(self) -> int:
        return int(len(self.member))


def plan_pairs(reference_loss_members: np.ndarray, reference_loss_controls: np.ndarray, seed: int,
               per_bin: int = PER_BIN) -> PairPlan:
    """Match members with controls at random within bins of the reference loss (quantiles of members and
    controls pooled, about ``per_bin`` of each per bin), hardest bin first; within a bin, a random order.
    Only the reference loss and the seed decide it, so under H0 each pair's orientation is a fair coin."""
    ref_m = np.asarray(reference_loss_members, np.float64)
    ref_c = np.asarray(reference_loss_controls, np.float64)
    n_bins = int(max(1, min(len(ref_m), len(ref_c)) // max(1, per_bin)))
    both = difficulty_strata(np.r_[ref_m, ref_c], n_bins)
    b_m, b_c = both[:len(ref_m)], both[len(ref_m):]
    rng = np.random.default_rng([seed, 20])
    members, controls, bins = [], [], []
    for k in range(n_bins - 1, -1, -1):
        im = rng.permutation(np.flatnonzero(b_m == k))
        ic = rng.permutation(np.flatnonzero(b_c == k))
        n = min(len(im), len(ic))
        members.append(im[:n])
        controls.append(ic[:n])
        bins.append(np.full(n, k, np.int64))
    return PairPlan(np.concatenate(members).astype(np.int64), np.concatenate(controls).astype(np.int64),
                    np.concatenate(bins))


def sample_scores(answers: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Each answered sample's score, lower = fits better: the loss of logits (or log-probabilities), the 0/1 error
    of labels."""
    answers = np.asarray(answers)
    labels = np.asarray(labels, np.int64)
    if answers.ndim == 1:
        return (answers.astype(np.int64) != labels).astype(np.float64)
    return per_sample_loss(answers.astype(np.float64), labels)


def pair_gains(score_members: np.ndarray, score_controls: np.ndarray) -> np.ndarray:
    """The gain of each pair, in {-1, 0, 1}: the sign of ``control - member`` (+1: the member fits better).  A sign
    test: it reads neither the size of a loss nor its scale, so a temperature, rounding or top-k truncation of an
    API's scores changes nothing, and under H0 its conditional mean is 0."""
    return np.sign(np.asarray(score_controls, np.float64) - np.asarray(score_members, np.float64))


@dataclass
class SequentialTest:
    """The anytime-valid test of one suspect, updated pair by pair.

    ``alpha``: the level at which "evidence of derivation" is declared; ``expected``: per pair, the victim's own
    gain on that pair's bin (for the futility rule; None: no futility stop)."""

    alpha: float
    expected: np.ndarray | None = None
    futility_share: float = FUTILITY_SHARE
    futility_beta: float = FUTILITY_BETA
    log_wealth: np.ndarray = field(default_factory=lambda: np.zeros(len(LAMBDAS)))
    log_doubt: np.ndarray = field(default_factory=lambda: np.zeros(len(LAMBDAS)))
    pairs: int = 0
    best: float = 1.0              # the largest wealth so far (the p-value is 1 / best)
    doubt: float = 1.0             # the futility bettor's wealth
    decision: str | None = None    # "evidence", "futility" or None (undecided)
    trace: list[tuple[int, float]] = field(default_factory=list)  # (pairs, p-value) after each update

    @property
    def wealth(self) -> float:
        return float(np.mean(np.exp(self.log_wealth)))

    @property
    def p_value(self) -> float:
        """Anytime-valid: P(this ever falls to alpha or below | H0) <= alpha."""
        return float(min(1.0, 1.0 / self.best))

    def update(self, gains: np.ndarray) -> SequentialTest:
        """Bet on the next pairs (their gains in ask order); stops reading at a decision."""
        for g in np.asarray(gains, np.float64):
            if self.decision is not None:
                break
            self.log_wealth += np.log1p(LAMBDAS * g)
            self.best = max(self.best, self.wealth)
            if self.expected is not None and self.pairs < len(self.expected):
                # bet that the mean gain is below share * the victim's: a supermartingale when it is at least that
                target = self.futility_share * float(self.expected[self.pairs])
                if target > 0:
                    self.log_doubt += np.log1p(LAMBDAS / (1.0 + target) * (target - g))
                    self.doubt = float(np.mean(np.exp(self.log_doubt)))
            self.pairs += 1
            if self.best >= 1.0 / self.alpha:
                self.decision = "evidence"
            elif self.doubt >= 1.0 / self.futility_beta:
                self.decision = "futility"
        self.trace.append((self.pairs, self.p_value))
        return self

    def to_dict(self) -> dict[str, Any]:
        return {"pairs": self.pairs, "queries": 2 * self.pairs, "p_value": self.p_value, "wealth": self.best,
                "decision": self.decision, "alpha": self.alpha, "futility_share": self.futility_share,
                "futility_beta": self.futility_beta, "trace": [[n, p] for n, p in self.trace]}


@dataclass(frozen=True)
class SimulatedRun:
    queries: int            # queries asked until the decision (or the whole plan)
    decision: str | None
    p_value: float


def bin_means(gains: np.ndarray, bins: np.ndarray) -> np.ndarray:
    """Per pair, the mean gain over its bin: with the victim's own answers, the signal a model that *is* the victim
    shows in that bin (what the futility rule compares a suspect with)."""
    gains = np.asarray(gains, np.float64)
    out = np.zeros(len(gains))
    for k in np.unique(bins):
        sel = bins == k
        out[sel] = gains[sel].mean()
    return out


def _mixture(log_factors: np.ndarray) -> np.ndarray:
    """Wealth of the mixture after each step, from per-step log factors (steps, lambdas)."""
    c = np.cumsum(log_factors, axis=0)
    top = c.max(1, keepdims=True)
    return np.exp(top[:, 0]) * np.mean(np.exp(c - top), axis=1)


def simulate(gains: np.ndarray, alpha: float, expected: np.ndarray | None = None, batch: int = 1,
             budget_pairs: int | None = None, futility_share: float = FUTILITY_SHARE,
             futility_beta: float = FUTILITY_BETA) -> SimulatedRun:
    """The sequential rule on gains known in advance (in ask order), read ``batch`` pairs at a time (a real API
    audit sends a batch, then decides): the queries it would have paid for, and how it ended.  The same decisions as
    :class:`SequentialTest` fed the same batches, vectorised (the exact-null check runs it thousands of times)."""
    g = np.asarray(gains, np.float64)
    n = len(g) if budget_pairs is None else min(len(g), budget_pairs)
    g = g[:n]
    if n == 0:
        return SimulatedRun(0, None, 1.0)
    best = np.maximum.accumulate(np.maximum(_mixture(np.log1p(np.outer(g, LAMBDAS))), 1.0))
    hit = best >= 1.0 / alpha
    if expected is not None:
        target = np.clip(futility_share * np.asarray(expected, np.float64)[:n], 0.0, None)  # 0: no bet on that pair
        factor = np.log1p(np.outer((target - g) / (1.0 + target), LAMBDAS) * (target[:, None] > 0))
        doubt = _mixture(factor)
        stop = hit | (doubt >= 1.0 / futility_beta)
    else:
        stop = hit
    first = int(np.argmax(stop)) if stop.any() else None
    if first is None:
        return SimulatedRun(2 * n, None, float(min(1.0, 1.0 / best[-1])))
    asked = min(n, (first // batch + 1) * batch)
    return SimulatedRun(2 * asked, "evidence" if hit[first] else "futility", float(min(1.0, 1.0 / best[first])))
