"""The registry of verdict protocols, and what a protocol sees of an opened audit.

A protocol turns a suspect's answers to the audit's query set into evidence with a p-value.  It is a
:class:`VerdictProtocol`: a name, a ``run`` function, and what it needs (held-out data; logits, or labels are
enough; D_s among the queries) and whether its p-value is calibrated.  The packages that own protocols register
them with :func:`register_protocol` (:mod:`.builtin` the audit's own, :mod:`.baselines` the peer methods); the
CLI's choices, the configuration's checks and the dashboard's labels all come from :func:`list_protocols` and
:func:`get_protocol`.

This module is a leaf of the protocols package: a protocol reads an opened audit through :class:`AuditView`,
which names only what the layers below provide (the query set, the membership design, the meta-classifier's
evidence, the engine), so the audit package above can import protocols without protocols importing it.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from ..data.images import ImageSet
from ..engine.engine import Engine
from ..engine.recipe import TrainConfig
from ..errors import ConfigError
from ..method.meta import MetaEvidence
from ..method.queries import QuerySet
from ..method.shadows import LossOrder, MembershipDesign, Shadows
from ..models import LoadedModel

#: the protocol an audit's verdict uses unless its configuration says otherwise (registered by :mod:`.builtin`)
DEFAULT_PROTOCOL = "membership"

# evidence: the protocol's numbers (``p_value`` always); per_sample: lists kept in the audit record
Evidence = dict[str, Any]


class ProtocolSettings(Protocol):
    """The audit settings a protocol and the verification read (:class:`forensics.AuditConfig` has them)."""

    @property
    def protocol(self) -> str: ...
    @property
    def alpha(self) -> float: ...
    @property
    def seed(self) -> int: ...
    @property
    def strata(self) -> int: ...
    @property
    def stratum_weighting(self) -> str: ...
    @property
    def paper_draws(self) -> int: ...
    @property
    def paper_m(self) -> int: ...
    @property
    def lineage_replicas(self) -> int: ...
    @property
    def seeded_train(self) -> TrainConfig: ...


class AuditView(Protocol):
    """What a protocol, a baseline and the verification read of an opened audit (:class:`forensics.Audit` is one).

    ``memo`` holds what a baseline derives once per audit (the victim's and the references' labels)."""

    engine: Engine
    victim: LoadedModel
    foundation: LoadedModel
    private: ImageSet
    heldout: ImageSet | None
    loss_order: LossOrder
    shadows: Shadows
    membership: MembershipDesign
    meta: MetaEvidence
    queries: QuerySet
    memo: dict[str, Any]

    @property
    def config(self) -> ProtocolSettings: ...
    @property
    def num_classes(self) -> int: ...


def heldout_of(audit: AuditView) -> ImageSet:
    """The audit's held-out data, for a protocol that declared ``needs_heldout`` (and so never runs without it)."""
    if audit.heldout is None:
        raise ConfigError("this protocol needs held-out data from the same collection, and the audit has none; "
                          "give heldout, or choose a protocol that runs without it")
    return audit.heldout


# run(audit, answers to the query set, labels only?, answers to the protocol's extra queries or None)
RunFn = Callable[[AuditView, np.ndarray, bool, "np.ndarray | None"], tuple[Evidence, dict[str, list]]]


def _m_samples(evidence: Evidence) -> int:
    return int(evidence["m"])


@dataclass(frozen=True)
class VerdictProtocol:
    """A registered verdict protocol (or peer baseline) and what it needs to run."""

    name: str
    title: str                  # what the dashboard and reports call it
    description: str
    run: RunFn
    needs_heldout: bool         # needs the held-out data (the membership controls)
    needs_logits: bool          # False: labels-only answers are enough
    calibrated: bool            # the p-value is valid under H0 (measured: see the README)
    delta_p_from: str = ""      # the protocol whose dP is reported beside this one ("" = its own)
    samples: Callable[[Evidence], int] = _m_samples  # how many samples the test used
    needs_ds: bool = False      # needs D_s among the queries (the Holmes protocols)
    baseline: bool = False      # a peer method for the benchmark, never an audit's verdict
    # queries of its own beyond the audit's query set (built from the audit, deterministic), or None
    extra_queries: Callable[[AuditView], ImageSet] | None = None
    # which queries a smaller budget thins out (forensics.zoo.bench.budget_view): "both" members and controls,
    # "controls", "mistakes" (the controls the victim gets wrong), or "" (its queries are fixed)
    budget_on: str = ""
    needs_weights: bool = False  # reads the suspect's weights, not its answers (``run`` is never called on answers)
    combines: tuple[str, ...] = ()  # combines these protocols' p-values (``run`` is never called on answers)

    def unavailable(self, *, has_heldout: bool, label_only: bool, has_ds: bool = True,
                    has_weights: bool = False) -> str | None:
        """Why this protocol cannot run on an audit / an answer type, or None."""
        if self.needs_weights and not has_weights:
            return (f"the {self.name!r} protocol needs the suspect's weights in the victim's architecture (a model, "
                    "not its answers) and the audit's lineage replicas (lineage_replicas)")
        if self.needs_logits and label_only:
            return f"the {self.name!r} protocol needs logits, not labels"
        if self.needs_heldout and not has_heldout:
            return f"the {self.name!r} protocol needs held-out data, and the audit has none"
        if self.needs_ds and not has_ds:
            return f"the {self.name!r} protocol needs D_s among the queries; a query budget leaves it out"
        return None

    def query_count(self, evidence: Evidence) -> int:
        """Black-box queries the test used: ``queries`` when its evidence records them, none for a test of the
        weights (its samples are the replicas, not questions to the suspect), else its samples."""
        if "queries" in evidence:
            return int(evidence["queries"])
        return 0 if self.needs_weights else self.samples(evidence)


_PROTOCOLS: dict[str, VerdictProtocol] = {}


def register_protocol(protocol: VerdictProtocol) -> VerdictProtocol:
    """Add ``protocol`` to the registry (a name may be registered once)."""
    if protocol.name in _PROTOCOLS:
        raise ConfigError(f"a protocol named {protocol.name!r} is already registered")
    _PROTOCOLS[protocol.name] = protocol
    return protocol


def list_protocols(*, baselines: bool = False) -> list[VerdictProtocol]:
    """Every registered verdict protocol, the default first (and the peer baselines with ``baselines=True``)."""
    return [p for p in _PROTOCOLS.values() if baselines or not p.baseline]


def protocol_names() -> tuple[str, ...]:
    """The protocols an audit's verdict may use."""
    return tuple(p.name for p in list_protocols())


def get_protocol(name: str) -> VerdictProtocol:
    """The protocol registered as ``name``; a :class:`~forensics.errors.ConfigError` naming the choices if none."""
    if name not in _PROTOCOLS:
        raise ConfigError(f"unknown protocol {name!r}; choose one of {protocol_names()}")
    return _PROTOCOLS[name]
