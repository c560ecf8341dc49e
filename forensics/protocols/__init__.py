"""Verdict protocols: the registry (:mod:`.registry`), the audit's own protocols (:mod:`.builtin`: ``membership``,
the default and calibrated; ``holmes``; ``paper``) and the peer baselines the benchmark compares against
(:mod:`.baselines`: ``fingerprint``, ``akh``, ``dataset_inference``), and ``sequential`` (:mod:`.sequential`: the
membership test asked pair by pair with an anytime-valid p-value, for suspects behind a paid API).  Importing the
package registers them all.
:mod:`.nullcheck` checks a protocol's validity on exact nulls through the same ``run`` that gives a verdict.

Register a new protocol with :func:`register_protocol`; the CLI, the configuration's checks and the dashboard pick
it up from :func:`list_protocols`.  The statistics libraries (scipy, scikit-learn) load when a test first runs, not
when the protocols are registered.
"""
from . import baselines, builtin, sequential
from .nullcheck import exact_null_pvalues, null_view, rejection_rates
from .registry import (
    DEFAULT_PROTOCOL,
    AuditView,
    Evidence,
    ProtocolSettings,
    VerdictProtocol,
    get_protocol,
    list_protocols,
    protocol_names,
    register_protocol,
)

__all__ = ["DEFAULT_PROTOCOL", "AuditView", "Evidence", "ProtocolSettings", "VerdictProtocol", "baselines", "builtin",
           "exact_null_pvalues", "get_protocol", "list_protocols", "null_view", "protocol_names",
           "register_protocol", "rejection_rates", "sequential"]
