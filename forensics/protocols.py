"""The verdict protocols, as a registry.

A protocol turns a suspect's outputs on the audit's query set into evidence with a p-value.  Each
declares what it needs (held-out data; logits, or labels are enough) and whether its p-value is
calibrated; the CLI's choices, the configuration's validation and the dashboard's labels all come
from here.  Register a new one with :func:`register_protocol`.

* ``membership`` (default) - the suspect's loss (or 0/1 error with labels only) on the victim's
  training samples against unseen samples of the same collection, a difficulty-stratified weighted
  rank test (:func:`forensics.stats.stratified_rank_test`);
* ``holmes`` - the meta-classifier's P(stolen) on held-out D_s rows, one-sample t-test;
* ``paper`` - the reference release's protocol, reproduced for comparison.

Peer methods (Dataset Inference, a label-agreement fingerprint, AKH) are registered here too, as
*baselines* (:mod:`forensics.baselines`): the benchmark runs them on the same suspects; an audit's verdict
never rests on them.  A protocol that needs answers to queries of its own (beyond the audit's query set)
declares them with ``extra_queries``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from .data import ImageSet
from .errors import ConfigError
from .meta import BENIGN, STOLEN, output_difference
from .metrics import accuracy, per_sample_loss
from .stats import difficulty_strata, heldout_meta_test, paper_protocol, stratified_rank_test, stratum_weights

if TYPE_CHECKING:
    from .audit import Audit

# evidence: the protocol's numbers (``p_value`` always); per_sample: lists kept in the audit record
Evidence = dict[str, Any]
# run(audit, answers to the query set, labels only?, answers to the protocol's extra queries or None)
RunFn = Callable[["Audit", np.ndarray, bool, "np.ndarray | None"], tuple[Evidence, dict[str, list]]]


@dataclass(frozen=True)
class Protocol:
    name: str
    title: str                  # what the dashboard and reports call it
    description: str
    run: RunFn
    needs_heldout: bool         # needs the held-out data (the membership controls)
    needs_logits: bool          # False: labels-only answers are enough
    calibrated: bool            # the p-value is valid under H0 (measured: see the README)
    delta_p_from: str = ""      # the protocol whose dP is reported beside this one ("" = its own)
    samples: Callable[[Evidence], int] = lambda evidence: int(evidence["m"])  # how many samples the test used
    needs_ds: bool = False      # needs D_s among the queries (the Holmes protocols)
    baseline: bool = False      # a peer method for the benchmark, never an audit's verdict
    # queries of its own beyond the audit's query set (built from the audit, deterministic), or None
    extra_queries: Callable[["Audit"], ImageSet] | None = None
    # which queries a smaller budget thins out (forensics.bench.budget_view): "both" members and controls,
    # "controls", "mistakes" (the controls the victim gets wrong), or "" (its queries are fixed)
    budget_on: str = ""

    def unavailable(self, *, has_heldout: bool, label_only: bool, has_ds: bool = True) -> str | None:
        """Why this protocol cannot run on an audit / an answer type, or None."""
        if self.needs_logits and label_only:
            return f"the {self.name!r} protocol needs logits, not labels"
        if self.needs_heldout and not has_heldout:
            return f"the {self.name!r} protocol needs held-out data, and the audit has none"
        if self.needs_ds and not has_ds:
            return f"the {self.name!r} protocol needs D_s among the queries; a query budget leaves it out"
        return None

    def query_count(self, evidence: Evidence) -> int:
        """Black-box queries the test used: ``queries`` when its evidence records them, else its samples."""
        return int(evidence["queries"]) if "queries" in evidence else self.samples(evidence)


_PROTOCOLS: dict[str, Protocol] = {}


def register_protocol(protocol: Protocol) -> Protocol:
    if protocol.name in _PROTOCOLS:
        raise ConfigError(f"a protocol named {protocol.name!r} is already registered")
    _PROTOCOLS[protocol.name] = protocol
    return protocol


def list_protocols(*, baselines: bool = False) -> list[Protocol]:
    """Every registered verdict protocol, the default first (and the peer baselines with ``baselines=True``)."""
    return [p for p in _PROTOCOLS.values() if baselines or not p.baseline]


def protocol_names() -> tuple[str, ...]:
    """The protocols an audit's verdict may use."""
    return tuple(p.name for p in list_protocols())


def get_protocol(name: str) -> Protocol:
    if name not in _PROTOCOLS:
        raise ConfigError(f"unknown protocol {name!r}; choose one of {protocol_names()}")
    return _PROTOCOLS[name]


MIN_PER_STRATUM = 30


def effective_strata(requested: int, n_members: int, n_controls: int) -> int:
    """Fewer strata when data are scarce: every stratum keeps about 30+ members and controls, so the
    normal approximation of the rank test holds."""
    return int(max(1, min(requested, min(n_members, n_controls) // MIN_PER_STRATUM)))


def _membership(audit: "Audit", out: np.ndarray, label_only: bool,
                extra: np.ndarray | None = None) -> tuple[Evidence, dict[str, list]]:
    cfg, design = audit.config, audit.membership
    pm = audit.queries.positions(0, design.member_rows)
    pc = audit.queries.positions(1, design.control_rows)
    y_m, y_c = audit.private.labels[design.member_rows], audit.heldout.labels[design.control_rows]
    if label_only:
        s_m, s_c = (out[pm] != y_m).astype(float), (out[pc] != y_c).astype(float)
    else:
        s_m, s_c = per_sample_loss(out[pm], y_m), per_sample_loss(out[pc], y_c)
    both = np.r_[design.reference_loss_members, design.reference_loss_controls]
    n_strata = effective_strata(cfg.strata, len(pm), len(pc))
    strata = difficulty_strata(both, n_strata)
    r = stratified_rank_test(s_m, s_c, strata[:len(pm)], strata[len(pm):],
                             stratum_weights(n_strata, cfg.stratum_weighting))
    evidence = {"p_value": r.p_value, "z": r.z, "score": "error" if label_only else "loss", "n_strata": n_strata,
                "member_accuracy": accuracy(out[pm], y_m), "control_accuracy": accuracy(out[pc], y_c),
                "members": int(len(pm)), "controls": int(len(pc)), "strata": r.strata}
    return evidence, {"member_score": s_m.tolist(), "control_score": s_c.tolist()}


def _ds_differences(audit: "Audit", out: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(positions of D_s in the query set, O_s = suspect - poisoned, O_b = benign - poisoned)."""
    pos = audit.queries.positions(0, audit.loss_order.ds_rows)
    logits = audit.meta.logits_ds
    return (pos, output_difference(out[pos], logits["poisoned"]),
            output_difference(logits["benign"], logits["poisoned"]))


def _holmes(audit: "Audit", out: np.ndarray, label_only: bool,
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


def _paper(audit: "Audit", out: np.ndarray, label_only: bool,
           extra: np.ndarray | None = None) -> tuple[Evidence, dict[str, list]]:
    cfg = audit.config
    pos, o_s, _ = _ds_differences(audit, out)
    pp = audit.meta.paper_classifier.predict_proba(o_s, refit_scaler=True)
    p_paper, _ = paper_protocol(pp[:, STOLEN], np.random.default_rng(cfg.seed), draws=cfg.paper_draws, m=cfg.paper_m)
    return {"p_value": p_paper, "delta_p": float(np.mean(pp[:, STOLEN] - pp[:, BENIGN])),
            "m": int(min(cfg.paper_m, len(pos))), "draws": cfg.paper_draws, "queries": int(len(pos))}, {}


MEMBERSHIP = register_protocol(Protocol(
    "membership", "Membership test (default, calibrated)",
    "does the suspect fit the victim's training samples better than unseen samples of the same collection, "
    "among samples of equal difficulty? (stratified weighted rank test)",
    _membership, needs_heldout=True, needs_logits=False, calibrated=True, delta_p_from="holmes", budget_on="both",
    samples=lambda evidence: int(evidence["members"] + evidence["controls"])))
HOLMES = register_protocol(Protocol(
    "holmes", "Holmes meta-classifier (held-out rows)",
    "the meta-classifier's P(stolen) on D_s rows it never trained on, one-sample t-test against 0.5",
    _holmes, needs_heldout=False, needs_logits=True, calibrated=False, needs_ds=True))
PAPER = register_protocol(Protocol(
    "paper", "Paper protocol (reference release)",
    "the reference release: per-suspect scaler, 40 overlapping draws of m = 100, harmonic mean of Welch p-values",
    _paper, needs_heldout=False, needs_logits=True, calibrated=False, needs_ds=True))
DEFAULT_PROTOCOL = MEMBERSHIP.name
