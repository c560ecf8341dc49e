"""Validity of the default verdict on the code path that gives it: the registered ``membership`` protocol
(``get_protocol("membership").run``), run on exact nulls (H0 true by construction), bounds its false-positive
rate at alpha 0.01 and 0.001, for logit and label-only answers (forensics.protocols.nullcheck)."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from forensics.audit.config import AuditConfig
from forensics.errors import ConfigError
from forensics.method.shadows import MembershipDesign
from forensics.protocols import get_protocol
from forensics.protocols.nullcheck import binomial_upper, exact_null_pvalues, null_view, rejection_rates

N_PRIVATE, N_MEMBERS, N_CONTROLS, CLASSES = 3000, 1500, 2000, 10   # the demo's design (member_fraction 0.5)
DRAWS = 2000


class _Positions:
    """Queries: the private rows first, then the held-out rows."""

    def positions(self, source: int, rows: np.ndarray) -> np.ndarray:
        return np.asarray(rows) + (N_PRIVATE if source == 1 else 0)


def synthetic_audit(rng: np.random.Generator) -> SimpleNamespace:
    """An audit with the default configuration and the demo's numbers of members and controls; reference losses
    skewed as a real reference model's are."""
    design = MembershipDesign(np.sort(rng.permutation(N_PRIVATE)[:N_MEMBERS]), np.arange(N_CONTROLS),
                              rng.gamma(0.5, 1.0, N_MEMBERS), rng.gamma(0.5, 1.0, N_CONTROLS))
    return SimpleNamespace(config=AuditConfig(), membership=design, queries=_Positions(), num_classes=CLASSES,
                           private=SimpleNamespace(labels=rng.integers(0, CLASSES, N_PRIVATE)),
                           heldout=SimpleNamespace(labels=rng.integers(0, CLASSES, N_CONTROLS)), memo={})


def null_answers(rng: np.random.Generator, audit: SimpleNamespace) -> np.ndarray:
    """A suspect that never saw a member: every sample's logits drawn the same way from its label and its
    difficulty (the reference loss), so members and controls are exchangeable."""
    d = audit.membership
    y = np.r_[audit.private.labels, audit.heldout.labels]
    difficulty = np.zeros(len(y))
    difficulty[d.member_rows] = d.reference_loss_members
    difficulty[N_PRIVATE + d.control_rows] = d.reference_loss_controls
    out = rng.normal(0.0, 1.0, (len(y), CLASSES))
    out[np.arange(len(y)), y] += 3.0 - 1.5 * difficulty + rng.normal(0.0, 1.0, len(y))
    return out


@pytest.mark.parametrize("label_only", [False, True], ids=["logits", "labels"])
def test_the_default_protocol_keeps_alpha_over_2000_exact_null_draws(label_only):
    protocol, rng = get_protocol("membership"), np.random.default_rng(2026)
    pvals = []
    for draw in range(DRAWS):
        if draw % 100 == 0:
            audit = synthetic_audit(rng)
        out = null_answers(rng, audit)
        evidence, _ = protocol.run(audit, out.argmax(1) if label_only else out, label_only, None)
        assert evidence["n_strata"] == AuditConfig().strata    # the default design: ten strata, quadratic weights
        pvals.append(evidence["p_value"])
    rates = rejection_rates(np.array(pvals), (0.05, 0.01, 0.001))
    assert rates[0.01] <= 0.017 and rates[0.001] <= 0.004 and rates[0.05] <= binomial_upper(0.05, DRAWS)
    # ... and the p-values are not merely conservative: uniform in the bulk
    assert 0.45 <= float(np.mean(np.array(pvals) < 0.5)) <= 0.55


def test_the_same_check_finds_a_theft():
    """The check is not blind: a suspect that fits members better (it saw them) is rejected nearly always."""
    protocol, rng = get_protocol("membership"), np.random.default_rng(7)
    audit = synthetic_audit(rng)
    pvals = []
    for _ in range(50):
        out = null_answers(rng, audit)
        out[audit.membership.member_rows, audit.private.labels[audit.membership.member_rows]] += 0.5
        pvals.append(protocol.run(audit, out, False, None)[0]["p_value"])
    assert np.mean(np.array(pvals) < 0.01) >= 0.9


def test_null_view_splits_the_heldout_pool_in_the_audits_proportions():
    rng = np.random.default_rng(3)
    audit = synthetic_audit(rng)
    view = null_view(audit, rng)
    d = view.membership
    assert len(d.member_rows) == round(N_MEMBERS / (N_MEMBERS + N_CONTROLS) * N_CONTROLS)
    assert len(d.member_rows) + len(d.control_rows) == N_CONTROLS
    assert not set(d.member_rows) & set(d.control_rows)
    assert view.private is audit.heldout                           # pseudo-members are held-out rows ...
    np.testing.assert_array_equal(view.queries.positions(0, d.member_rows), N_PRIVATE + d.member_rows)  # ... asked
    np.testing.assert_array_equal(d.reference_loss_members, audit.membership.reference_loss_controls[d.member_rows])
    assert view.config is audit.config and view.num_classes == CLASSES


def test_exact_null_pvalues_runs_the_registered_protocol_on_every_answer_and_draw():
    rng = np.random.default_rng(5)
    audit = synthetic_audit(rng)
    answers = [null_answers(rng, audit), null_answers(rng, audit).argmax(1)]
    p = exact_null_pvalues(audit, answers, draws=40, seed=1)
    assert p.shape == (2, 40) and np.all((p >= 0) & (p <= 1))
    np.testing.assert_array_equal(p, exact_null_pvalues(audit, answers, draws=40, seed=1))   # seeded
    # even the answers of a model that saw every private row are null here: no pseudo-member is a private row
    fitted = answers[0].copy()
    fitted[:N_PRIVATE, :] = 0.0
    fitted[np.arange(N_PRIVATE), audit.private.labels] = 20.0
    assert np.mean(exact_null_pvalues(audit, [fitted], draws=200, seed=2) < 0.05) <= 0.1


def test_protocols_without_a_membership_design_have_no_exact_null_here():
    audit = synthetic_audit(np.random.default_rng(0))
    with pytest.raises(ConfigError, match="no exact null"):
        exact_null_pvalues(audit, [np.zeros((N_PRIVATE + N_CONTROLS, CLASSES))], protocol="holmes", draws=1)


@pytest.mark.slow
def test_exact_null_on_the_quick_demos_real_answers(quick_demo):
    """The real audit: its strata and reference losses, the victim's and each suspect's real answers (logits and
    labels), every one under an exact null; the reference shadow never trained on a member or a control."""
    audit = quick_demo.audit
    eng = audit.engine
    answers = [eng.logits(audit.victim, audit.queries.images)]
    answers += [eng.logits(audit.load_suspect(r.suspect.source), audit.queries.images) for r in quick_demo.suspects]
    answers += [a.argmax(1) for a in answers]
    p = exact_null_pvalues(audit, answers, draws=150, seed=0)
    assert p.size == 14 * 150
    assert rejection_rates(p)[0.01] <= binomial_upper(0.01, p.size // 14)
    # the reference shadow trained on the private rows that are not members, never on a member or a control
    d = audit.membership
    stage, key = audit.shadows.reference.source.removeprefix("store:").split("/")
    trained_on = np.setdiff1d(np.arange(len(audit.private)), d.member_rows)
    assert eng.store.meta(stage, key)["inputs"]["images"] == audit.private.subset(trained_on).fingerprint
    assert audit.heldout is not None and len(d.control_rows) == len(audit.heldout)
