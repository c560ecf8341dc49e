"""Exact-null checks of a verdict protocol on the code path that gives the verdict.

H0 is made true by construction: the audit's held-out pool (data no model in the dispute ever trained on) is split
at random into pseudo-members and pseudo-controls, in the proportions of the audit's real members and controls, and
the registered protocol runs on that split exactly as it runs on a suspect (:func:`null_view` hands it an audit
whose "private" rows are the pseudo-members; strata, weights, label-only and logit answers as configured).  Given
any model's answers, the split is a random partition, so pseudo-members and pseudo-controls are exchangeable and
the share of p-values below alpha estimates the protocol's false-positive rate under H0.

    pvals = exact_null_pvalues(audit, [victim_answers, suspect_answers], draws=2000, seed=0)
    rates = rejection_rates(pvals)      # {0.01: ..., 0.001: ...}

Only protocols that read the membership design (``budget_on == "both"``) can be checked this way; the Holmes
protocols read D_s, which has no such null, and are marked uncalibrated.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import numpy as np

from ..errors import ConfigError
from ..method.shadows import MembershipDesign
from .registry import DEFAULT_PROTOCOL, AuditView, ProtocolSettings, get_protocol, heldout_of

ALPHAS = (0.01, 0.001)


class _PseudoMemberQueries:
    """The audit's query set as the null view reads it: a pseudo-member (source 0) is a held-out row too."""

    def __init__(self, queries: Any):
        self._queries = queries

    def positions(self, source: int, rows: np.ndarray) -> np.ndarray:
        return cast(np.ndarray, self._queries.positions(1, rows))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._queries, name)


class _NullView:
    """An opened audit with its membership design replaced by a random split of the held-out pool."""

    def __init__(self, audit: AuditView, design: MembershipDesign, config: ProtocolSettings | None = None):
        self._audit = audit
        self.config = config or audit.config
        self.private = heldout_of(audit)
        self.membership = design
        self.queries = _PseudoMemberQueries(audit.queries)
        self.memo: dict[str, Any] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._audit, name)


def null_view(audit: AuditView, rng: np.random.Generator, config: ProtocolSettings | None = None) -> AuditView:
    """The audit under an exact null: the held-out rows it queries split at random into pseudo-members and
    pseudo-controls, in the ratio of its real members to controls, each with its reference loss (``config``: other
    settings than the audit's, e.g. another stratum weighting)."""
    d = audit.membership
    pool, ref = d.control_rows, d.reference_loss_controls
    if len(pool) < 4:
        raise ConfigError("an exact-null check needs the audit's held-out controls (at least 4); this audit has "
                          f"{len(pool)}")
    share = len(d.member_rows) / max(1, len(d.member_rows) + len(d.control_rows))
    n_m = int(np.clip(round(share * len(pool)), 2, len(pool) - 2))
    perm = rng.permutation(len(pool))
    a, b = np.sort(perm[:n_m]), np.sort(perm[n_m:])
    return cast(AuditView, _NullView(audit, MembershipDesign(pool[a], pool[b], ref[a], ref[b]), config))


def exact_null_pvalues(audit: AuditView, answers: Sequence[np.ndarray], *, protocol: str = DEFAULT_PROTOCOL,
                       draws: int = 1000, seed: int = 0, config: ProtocolSettings | None = None) -> np.ndarray:
    """p-values of the registered ``protocol`` on ``draws`` random null splits for each answer array (logits
    (N, C), or labels (N,) for label-only answers), shape (len(answers), draws); ``config``: settings other than
    the audit's."""
    proto = get_protocol(protocol)
    if proto.budget_on != "both":
        raise ConfigError(f"the {protocol!r} protocol does not read the membership design, so it has no exact null "
                          "by splitting the held-out pool")
    rng = np.random.default_rng([seed, 9_001])
    out = np.empty((len(answers), draws))
    for j in range(draws):
        view = null_view(audit, rng, config)
        for i, ans in enumerate(answers):
            out[i, j] = proto.run(view, ans, np.asarray(ans).ndim == 1, None)[0]["p_value"]
    return out


def rejection_rates(pvalues: np.ndarray, alphas: Sequence[float] = ALPHAS) -> dict[float, float]:
    """Share of p-values below each alpha (the false-positive rate under the null)."""
    p = np.asarray(pvalues).ravel()
    return {a: float(np.mean(p < a)) for a in alphas}


def binomial_upper(rate: float, n: int, z: float = 3.0) -> float:
    """A loose upper bound for an observed rejection rate under a true rate ``rate`` (``z`` binomial sds): what a
    check of n independent draws may see by chance."""
    return float(rate + z * np.sqrt(rate * (1 - rate) / n))
