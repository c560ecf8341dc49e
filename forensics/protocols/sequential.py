"""The ``sequential`` protocol: the membership test asked pair by pair, stopping as soon as the verdict is decided,
with an anytime-valid p-value (:mod:`forensics.method.sequential`).

For a suspect whose answers to the whole query set are known (a model, an answers file) it reports what a live API
audit would have paid: the queries asked until the decision, in the audit's ask order.  A live API audit
(:mod:`forensics.api.audit`) reads the same :func:`sequential_design` and asks exactly those queries.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..method import sequential as seq
from .registry import AuditView, Evidence, VerdictProtocol, heldout_of, register_protocol


@dataclass(frozen=True)
class SequentialDesign:
    """What a sequential audit asks, in order, and what it compares against."""

    plan: seq.PairPlan
    member_pos: np.ndarray     # query positions of the plan's members, in ask order
    control_pos: np.ndarray    # and of their controls
    member_y: np.ndarray       # their labels
    control_y: np.ndarray
    victim_expected: dict[str, np.ndarray]  # per pair, the victim's own gain: "scores" (logits) and "labels"

    def __len__(self) -> int:
        return len(self.plan)

    @property
    def positions(self) -> np.ndarray:
        """Every query position in ask order: member, control, member, control, ..."""
        return np.stack([self.member_pos, self.control_pos], 1).ravel()

    def gains(self, member_answers: np.ndarray, control_answers: np.ndarray, start: int = 0) -> np.ndarray:
        """The gain of each pair from the suspect's answers to its member and its control (rows in plan order,
        from pair ``start``)."""
        n = len(member_answers)
        s_m = seq.sample_scores(member_answers, self.member_y[start:start + n])
        s_c = seq.sample_scores(control_answers, self.control_y[start:start + n])
        return seq.pair_gains(s_m, s_c)

    def expected(self, label_only: bool) -> np.ndarray:
        return self.victim_expected["labels" if label_only else "scores"]


def sequential_design(audit: AuditView) -> SequentialDesign:
    """The audit's sequential design (computed once per audit: the victim's answers are read from the engine)."""
    key = "sequential_design"
    if key not in audit.memo:
        d = audit.membership
        plan = seq.plan_pairs(d.reference_loss_members, d.reference_loss_controls, audit.config.seed)
        member_rows, control_rows = d.member_rows[plan.member], d.control_rows[plan.control]
        pm = audit.queries.positions(0, member_rows)
        pc = audit.queries.positions(1, control_rows)
        y_m, y_c = audit.private.labels[member_rows], heldout_of(audit).labels[control_rows]
        victim = _victim_logits(audit)
        expected = {}
        for name, answers in (("scores", victim), ("labels", victim.argmax(1))):
            s_m, s_c = seq.sample_scores(answers[pm], y_m), seq.sample_scores(answers[pc], y_c)
            g = seq.pair_gains(s_m, s_c)
            expected[name] = seq.bin_means(g, plan.bin)
        audit.memo[key] = SequentialDesign(plan, pm, pc, y_m, y_c, expected)
    return audit.memo[key]


def _victim_logits(audit: AuditView) -> np.ndarray:
    if "victim_logits" not in audit.memo:
        audit.memo["victim_logits"] = audit.engine.logits(audit.victim, audit.queries.images)
    return audit.memo["victim_logits"]


def _sequential(audit: AuditView, out: np.ndarray, label_only: bool,
                extra: np.ndarray | None = None) -> tuple[Evidence, dict[str, list]]:
    design = sequential_design(audit)
    gains = design.gains(out[design.member_pos], out[design.control_pos])
    run = seq.simulate(gains, audit.config.alpha, design.expected(label_only))
    evidence: Evidence = {"p_value": run.p_value, "queries": run.queries, "decision": run.decision,
                          "pairs_available": len(design), "score": "error" if label_only else "loss"}
    return evidence, {}


def sequential_evidence(test: seq.SequentialTest, design: SequentialDesign, label_only: bool,
                        asked: int) -> dict[str, Any]:
    """A live sequential test's state as a verdict's evidence (the same keys as the protocol's): ``asked`` queries
    were answered (the whole round in which the decision came), the decision came after ``decided_at``."""
    return {"p_value": test.p_value, "queries": asked, "decided_at": 2 * test.pairs, "decision": test.decision,
            "pairs_available": len(design), "score": "error" if label_only else "loss", "wealth": test.best,
            "futility_share": test.futility_share if test.expected is not None else 0.0}


SEQUENTIAL = register_protocol(VerdictProtocol(
    "sequential", "Sequential membership test (anytime-valid, fewest queries)",
    "the membership test asked as member-control pairs of equal difficulty, hardest first, stopping once the evidence "
    "decides (testing by betting: the p-value stays valid whenever the audit stops)",
    _sequential, needs_heldout=True, needs_logits=False, calibrated=True, delta_p_from="holmes", budget_on="both",
    samples=lambda evidence: int(evidence["queries"])))
