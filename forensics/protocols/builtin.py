"""The audit's own verdict protocols, registered in :mod:`.registry`:

* ``membership`` (default) - the suspect's loss (or 0/1 error with labels only) on the victim's training samples
  against unseen samples of the same collection, a difficulty-stratified weighted rank test
  (:func:`forensics.method.stats.stratified_rank_test`);
* ``holmes`` - the meta-classifier's P(stolen) on held-out D_s rows, one-sample t-test;
* ``paper`` - the reference release's protocol, reproduced for comparison;
* ``lineage`` - for a suspect whose weights we have: does what training changed in it correlate with what it
  changed in the victim more than with what it changed in replicas of the victim (:mod:`forensics.method.lineage`);
* ``combined`` - one verdict from ``membership`` and ``lineage`` (where the suspect's weights are there), Bonferroni:
  p = min(1, k * the smallest of the k components' p-values), valid whatever their dependence.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..errors import ConfigError
from ..method.meta import BENIGN, STOLEN, output_difference
from ..method.metrics import accuracy, per_sample_loss
from ..method.stats import difficulty_strata, heldout_meta_test, paper_protocol, stratified_rank_test, stratum_weights
from .registry import DEFAULT_PROTOCOL, AuditView, Evidence, VerdictProtocol, heldout_of, register_protocol

MIN_PER_STRATUM = 30


def effective_strata(requested: int, n_members: int, n_controls: int) -> int:
    """Fewer strata when data are scarce: every stratum keeps about 30+ members and controls, so the
    normal approximation of the rank test holds."""
    return int(max(1, min(requested, min(n_members, n_controls) // MIN_PER_STRATUM)))


# a per-sample score of logit answers (lower = fits better): (audit, answers, their query positions, labels) -> scores
ScoreFn = Callable[[AuditView, np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def loss_score(audit: AuditView, out: np.ndarray, positions: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The default protocol's score of logit answers: each sample's cross-entropy."""
    return per_sample_loss(out[positions], labels)


def membership_test(audit: AuditView, out: np.ndarray, label_only: bool, score: ScoreFn = loss_score
                    ) -> tuple[Evidence, dict[str, list]]:
    """The membership protocol's test with any per-sample ``score`` of logit answers (labels: the 0/1 error): what
    the default protocol runs with the loss, and what a candidate statistic runs so that its exact-null check goes
    through the same design (:mod:`.nullcheck`)."""
    cfg, design = audit.config, audit.membership
    pm = audit.queries.positions(0, design.member_rows)
    pc = audit.queries.positions(1, design.control_rows)
    y_m, y_c = audit.private.labels[design.member_rows], heldout_of(audit).labels[design.control_rows]
    if label_only:
        s_m, s_c = (out[pm] != y_m).astype(float), (out[pc] != y_c).astype(float)
    else:
        s_m, s_c = score(audit, out, pm, y_m), score(audit, out, pc, y_c)
    both = np.r_[design.reference_loss_members, design.reference_loss_controls]
    n_strata = effective_strata(cfg.strata, len(pm), len(pc))
    strata = difficulty_strata(both, n_strata)
    r = stratified_rank_test(s_m, s_c, strata[:len(pm)], strata[len(pm):],
                             stratum_weights(n_strata, cfg.stratum_weighting))
    name = "error" if label_only else ("loss" if score is loss_score else getattr(score, "__name__", "custom"))
    evidence = {"p_value": r.p_value, "z": r.z, "score": name, "n_strata": n_strata,
                "member_accuracy": accuracy(out[pm], y_m), "control_accuracy": accuracy(out[pc], y_c),
                "members": int(len(pm)), "controls": int(len(pc)), "strata": r.strata}
    return evidence, {"member_score": s_m.tolist(), "control_score": s_c.tolist()}


def _membership(audit: AuditView, out: np.ndarray, label_only: bool,
                extra: np.ndarray | None = None) -> tuple[Evidence, dict[str, list]]:
    return membership_test(audit, out, label_only)


def _ds_differences(audit: AuditView, out: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(positions of D_s in the query set, O_s = suspect - poisoned, O_b = benign - poisoned)."""
    pos = audit.queries.positions(0, audit.loss_order.ds_rows)
    logits = audit.meta.logits_ds
    return (pos, output_difference(out[pos], logits["poisoned"]),
            output_difference(logits["benign"], logits["poisoned"]))


def _holmes(audit: AuditView, out: np.ndarray, label_only: bool,
            extra: np.ndarray | None = None) -> tuple[Evidence, dict[str, list]]:
    pos, o_s, o_b = _ds_differences(audit, out)
    clf = audit.meta.classifier
    ver = audit.meta.split["verify"]
    p_s = clf.predict_proba(o_s[ver])
    p_b = clf.predict_proba(o_b[ver])
    evidence = {"p_value": heldout_meta_test(p_s[:, STOLEN]),
                "delta_p": float(np.mean(p_s[:, STOLEN] - p_b[:, STOLEN])),
                "mean_p_stolen": float(p_s[:, STOLEN].mean()), "m": int(len(ver)), "queries": int(len(pos))}
    return evidence, {"ds_p_stolen": clf.predict_proba(o_s)[:, STOLEN].tolist(), "ds_logits": out[pos].tolist()}


def _paper(audit: AuditView, out: np.ndarray, label_only: bool,
           extra: np.ndarray | None = None) -> tuple[Evidence, dict[str, list]]:
    cfg = audit.config
    pos, o_s, _ = _ds_differences(audit, out)
    pp = audit.meta.paper_classifier.predict_proba(o_s, refit_scaler=True)
    p_paper, _ = paper_protocol(pp[:, STOLEN], np.random.default_rng(cfg.seed), draws=cfg.paper_draws, m=cfg.paper_m)
    return {"p_value": p_paper, "delta_p": float(np.mean(pp[:, STOLEN] - pp[:, BENIGN])),
            "m": int(min(cfg.paper_m, len(pos))), "draws": cfg.paper_draws, "queries": int(len(pos))}, {}


MEMBERSHIP = register_protocol(VerdictProtocol(
    DEFAULT_PROTOCOL, "Membership test (default, calibrated)",
    "does the suspect fit the victim's training samples better than unseen samples of the same collection, "
    "among samples of equal difficulty? (stratified weighted rank test)",
    _membership, needs_heldout=True, needs_logits=False, calibrated=True, delta_p_from="holmes", budget_on="both",
    samples=lambda evidence: int(evidence["members"] + evidence["controls"])))


HOLMES = register_protocol(VerdictProtocol(
    "holmes", "Holmes meta-classifier (held-out rows)",
    "the meta-classifier's P(stolen) on D_s rows it never trained on, one-sample t-test against 0.5",
    _holmes, needs_heldout=False, needs_logits=True, calibrated=False, needs_ds=True))


PAPER = register_protocol(VerdictProtocol(
    "paper", "Paper protocol (reference release)",
    "the reference release: per-suspect scaler, 40 overlapping draws of m = 100, harmonic mean of Welch p-values",
    _paper, needs_heldout=False, needs_logits=True, calibrated=False, needs_ds=True))


def _not_from_answers(audit: AuditView, out: np.ndarray, label_only: bool,
                      extra: np.ndarray | None = None) -> tuple[Evidence, dict[str, list]]:
    raise ConfigError("this protocol does not run on answers alone (see VerdictProtocol.needs_weights / combines)")


LINEAGE = register_protocol(VerdictProtocol(
    "lineage", "Lineage test (the suspect's weights)",
    "does what training changed in the suspect's weights correlate with what it changed in yours more than with "
    "what it changed in replicas of your training run? (Student-t prediction over the replicas)",
    _not_from_answers, needs_heldout=False, needs_logits=False, calibrated=True, needs_weights=True,
    samples=lambda evidence: int(evidence["replicas"])))

#: the components of the combined verdict, in the order the verdict card shows them
COMBINED_COMPONENTS = ("membership", "lineage")


def combine_evidence(evidence: dict[str, Evidence], components: tuple[str, ...] = COMBINED_COMPONENTS) -> Evidence:
    """Bonferroni over the components that ran: min(1, k * min p).  Which ran depends on what the suspect is
    (a model of the victim's architecture, or answers), never on its p-values, so the combination stays valid."""
    ran = {name: float(evidence[name]["p_value"]) for name in components if name in evidence}
    if not ran:
        raise ConfigError(f"none of {components} ran, so there is nothing to combine")
    carried = min(ran, key=lambda name: ran[name])
    out: Evidence = {"p_value": min(1.0, len(ran) * ran[carried]), "method": "bonferroni", "components": ran,
                     "carried_by": carried}
    if "membership" in evidence:
        out["samples"] = int(evidence["membership"]["members"] + evidence["membership"]["controls"])
    return out


COMBINED = register_protocol(VerdictProtocol(
    "combined", "Membership and lineage combined (Bonferroni)",
    "the membership test on the answers and, for a suspect whose weights we have, the lineage test; p = the number "
    "of tests that ran times the smallest p-value (at most 1)",
    _not_from_answers, needs_heldout=True, needs_logits=False, calibrated=True, delta_p_from="holmes",
    combines=COMBINED_COMPONENTS, samples=lambda evidence: int(evidence.get("samples", 0))))
