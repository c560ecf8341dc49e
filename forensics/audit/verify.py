"""Stage 3: verifying a suspect, from a model (white-box) or its answers on the query set (black-box).

Every registered protocol that can run on the answers (:mod:`forensics.protocols`) adds its evidence; the
audit's chosen protocol decides the :class:`~forensics.audit.verdict.Verdict`, and ``Verdict.under`` reads it
under any other protocol or alpha, so no caller re-derives p-values, dP or sample counts.  The functions read
the audit through :class:`~forensics.protocols.registry.AuditView`.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..engine.recipe import ProgressFn
from ..errors import ClassCountMismatchError, ConfigError, LogitsFileError
from ..method.lineage import LineageReference, lineage_reference
from ..models import LoadedModel
from ..protocols.baselines import extra_answers
from ..protocols.builtin import combine_evidence
from ..protocols.registry import AuditView, get_protocol, list_protocols
from .answers import check_outputs
from .verdict import Verdict, reading_of


def has_ds(audit: AuditView) -> bool:
    """Whether D_s is among the audit's queries (a query budget leaves it out)."""
    ds_rows = audit.loss_order.ds_rows
    return len(ds_rows) > 0 and audit.queries.has_rows(0, ds_rows)


def verify_outputs(audit: AuditView, outputs: np.ndarray, name: str, protocol: str | None = None, *,
                   baselines: bool = False, extra: dict[str, np.ndarray] | None = None,
                   weights_evidence: dict[str, dict[str, Any]] | None = None) -> Verdict:
    """Verify a suspect from its outputs on ``audit.queries``: logits (N, K) or labels (N,).

    With ``baselines``, the peer baselines (:mod:`forensics.protocols.baselines`) add their evidence too; one that needs
    queries of its own runs only when ``extra`` holds the suspect's answers to them (by protocol name).
    ``weights_evidence``: what the protocols that read a model's weights found (:func:`verify_model` gives it);
    protocols that combine others run last."""
    cfg = audit.config
    protocol = protocol or cfg.protocol
    chosen = get_protocol(protocol)
    out = check_outputs(outputs, len(audit.queries), audit.num_classes)
    label_only = out.ndim == 1
    has_heldout, ds = audit.heldout is not None, has_ds(audit)
    weights_evidence = weights_evidence or {}
    why = chosen.unavailable(has_heldout=has_heldout, label_only=label_only, has_ds=ds,
                             has_weights=protocol in weights_evidence)
    if why:
        raise ConfigError(f"protocol {protocol!r} cannot run here: {why}")
    evidence: dict[str, dict[str, Any]] = {}
    per_sample: dict[str, list] = {}
    extra = extra or {}
    for p in list_protocols(baselines=baselines):
        if p.needs_weights or p.combines:
            continue
        if p.unavailable(has_heldout=has_heldout, label_only=label_only, has_ds=ds) is not None:
            continue
        if p.extra_queries is not None and p.name not in extra:
            continue
        more = None
        if p.extra_queries is not None:
            more = check_outputs(extra[p.name], len(p.extra_queries(audit)), audit.num_classes)
            if more.ndim == 1 and not label_only:
                raise LogitsFileError(f"answers to the {p.name!r} queries are labels but the query set's are logits")
        evidence[p.name], samples = p.run(audit, out, label_only, more)
        per_sample.update(samples)
    evidence.update(weights_evidence)
    for p in list_protocols():  # where chosen, or with more than answers to combine (records stay as they were)
        if p.combines and (p.name == protocol or weights_evidence) and any(c in evidence for c in p.combines):
            evidence[p.name] = combine_evidence(evidence, p.combines)
    r = reading_of(evidence, protocol, cfg.alpha)
    if r is None:  # cannot happen: the chosen protocol was available
        raise ConfigError(f"protocol {protocol!r} produced no evidence")
    return Verdict(name, protocol, r.p_value, r.delta_p, r.stolen, cfg.alpha, r.m, cfg.seed, evidence,
                   label_only=label_only, per_sample=per_sample)


def query_outputs(audit: AuditView, suspect: LoadedModel) -> np.ndarray:
    """A model suspect's logits on the query set (white-box / local evaluation)."""
    if suspect.num_classes != audit.num_classes:
        raise ClassCountMismatchError(
            f"suspect {suspect.source} has {suspect.num_classes} classes, the victim {audit.num_classes}; a "
            "suspect must classify the victim's classes", expected=audit.num_classes, found=suspect.num_classes)
    return audit.engine.logits(suspect, audit.queries.images)


def lineage_of(audit: AuditView, progress: ProgressFn | None = None) -> LineageReference | None:
    """The audit's lineage reference (its replicas trained, or read from the store, once per opened audit); None
    when the audit asks for no replicas."""
    k = audit.config.lineage_replicas
    if not k:
        return None
    if "lineage" not in audit.memo:
        audit.memo["lineage"] = lineage_reference(audit.engine, audit.victim, audit.foundation, audit.private,
                                                  audit.config.seeded_train, k, progress=progress)
    return audit.memo["lineage"]


def weights_evidence(audit: AuditView, suspect: LoadedModel) -> dict[str, dict[str, Any]]:
    """What the protocols that read a suspect's weights find (the lineage test, where the audit has replicas and the
    suspect has the victim's architecture), by protocol name."""
    reference = lineage_of(audit)
    lineage = None if reference is None else reference.test(suspect.model)
    return {} if lineage is None else {"lineage": lineage}


def verify_model(audit: AuditView, suspect: LoadedModel, name: str | None = None, protocol: str | None = None,
                 *, baselines: bool = False) -> Verdict:
    extra = extra_answers(audit, suspect, list_protocols(baselines=True)) if baselines else None
    v = verify_outputs(audit, query_outputs(audit, suspect), name or suspect.source, protocol=protocol,
                       baselines=baselines, extra=extra, weights_evidence=weights_evidence(audit, suspect))
    v.fingerprint = suspect.fingerprint
    return v
