"""Hypothesis tests behind the verdicts.

* :func:`stratified_rank_test` - the default ``membership`` protocol: does the suspect fit the
  victim's training samples (members) better than unseen samples of the same collection
  (controls), among samples of equal difficulty?  A van Elteren test (the stratified Wilcoxon
  rank-sum test, tie-corrected), one-sided.  Under H0 (the suspect never learned from the victim's
  private samples) members and controls are exchangeable within each stratum, so the p-value is
  valid (asymptotically normal; every stratum holds a hundred or more samples in practice).
* :func:`paper_protocol` - the reference release's test, reproduced faithfully for comparison.
* :func:`heldout_meta_test` - the Holmes meta-classifier's score on held-out D_s rows.

scipy.stats loads when a test first runs (it costs a third of a second), not when the package is imported.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class RankTestResult:
    z: float
    p_value: float
    strata: list[dict[str, float]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"z": self.z, "p_value": self.p_value, "strata": self.strata}


def difficulty_strata(reference_loss: np.ndarray, n_strata: int) -> np.ndarray:
    """Stratum index (0 = easiest) of each sample from quantiles of a reference model's loss."""
    x = np.asarray(reference_loss, np.float64)
    edges = np.quantile(x, np.linspace(0, 1, n_strata + 1)[1:-1])
    return np.searchsorted(edges, x, side="right")


def stratum_weights(n_strata: int, weighting: str = "quadratic") -> np.ndarray:
    """Fixed weights of the strata, easiest first: ``flat`` (van Elteren) or ``quadratic``
    ((k+1)^2: a model memorises hard samples, so the signal lives in the hard strata).  They
    depend only on the stratum index, never on a suspect's answers, so the test stays valid."""
    k = np.arange(1, n_strata + 1, dtype=np.float64)
    if weighting == "flat":
        return np.ones(n_strata)
    if weighting == "quadratic":
        return k ** 2
    raise ValueError(f"unknown stratum weighting {weighting!r}; use 'flat' or 'quadratic'")


def stratified_rank_test(member_scores: np.ndarray, control_scores: np.ndarray,
                         member_strata: np.ndarray, control_strata: np.ndarray,
                         weights: np.ndarray | None = None) -> RankTestResult:
    """One-sided weighted van Elteren test that members have *lower* scores (losses) than controls.

    Per stratum k: W_k = rank sum of members (rank 1 = highest loss), centred by its permutation
    mean and scaled by 1/(N_k + 1); the weighted sum over strata, divided by its permutation
    standard deviation (tie-corrected), is z; p = P(N(0,1) >= z)."""
    from scipy import stats as st

    member_scores = np.asarray(member_scores, np.float64)
    control_scores = np.asarray(control_scores, np.float64)
    if np.isnan(member_scores).any() or np.isnan(control_scores).any():
        raise ValueError("scores contain NaN")
    t_sum, v_sum, rows = 0.0, 0.0, []
    for k in np.union1d(np.unique(member_strata), np.unique(control_strata)):
        m = member_scores[member_strata == k]
        c = control_scores[control_strata == k]
        n1, n2 = len(m), len(c)
        if n1 == 0 or n2 == 0:
            continue
        n = n1 + n2
        ranks = st.rankdata(-np.concatenate([m, c]))  # high rank = low loss
        w = ranks[:n1].sum()
        _, counts = np.unique(np.concatenate([m, c]), return_counts=True)
        ties = float(((counts ** 3) - counts).sum())
        var = n1 * n2 / 12.0 * ((n + 1) - ties / (n * (n - 1)))
        wk = 1.0 if weights is None else float(weights[int(k)])
        t_sum += wk * (w - n1 * (n + 1) / 2.0) / (n + 1)
        v_sum += wk ** 2 * var / (n + 1) ** 2
        rows.append({"stratum": int(k), "weight": wk, "members": n1, "controls": n2,
                     "member_mean": float(m.mean()), "control_mean": float(c.mean()),
                     "auc": float((w - n1 * (n1 + 1) / 2.0) / (n1 * n2))})
    if v_sum <= 0:
        return RankTestResult(0.0, 1.0, rows)
    z = t_sum / np.sqrt(v_sum)
    return RankTestResult(float(z), float(st.norm.sf(z)), rows)


def paper_protocol(p_stolen: np.ndarray, rng: np.random.Generator, *, draws: int = 40,
                   m: int = 100) -> tuple[float, list[float]]:
    """The release's test: ``draws`` subsamples of ``m`` rows, one-sided Welch t-test of
    P_stolen against 1 - P_stolen each time, harmonic mean of the p-values.  Not a calibrated
    p-value (the two groups are the same samples; the draws overlap); kept for comparison."""
    from scipy import stats as st

    p = np.asarray(p_stolen, np.float64)
    size = min(m, len(p))
    pvals = []
    for _ in range(draws):
        idx = rng.choice(len(p), size=size, replace=False)
        r = st.ttest_ind(p[idx], 1 - p[idx], equal_var=False, alternative="greater")
        pv = float(r.pvalue)
        pvals.append(1.0 if np.isnan(pv) else max(pv, 1e-300))
    return float(st.hmean(pvals)), pvals


def heldout_meta_test(p_stolen: np.ndarray) -> float:
    """One-sided one-sample t-test that the mean P_stolen on held-out rows exceeds 0.5."""
    from scipy import stats as st

    p = np.asarray(p_stolen, np.float64)
    if len(p) < 2 or np.allclose(p, p[0]):
        return 1.0  # no spread, no evidence: a t-test is undefined
    return float(st.ttest_1samp(p, 0.5, alternative="greater").pvalue)
