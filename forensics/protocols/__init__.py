"""Verdict protocols: the registry (:mod:`.registry`), the audit's own protocols (:mod:`.builtin`: ``membership``,
the default and calibrated; ``holmes``; ``paper``) and the peer baselines the benchmark compares against
(:mod:`.baselines`: ``fingerprint``, ``akh``, ``dataset_inference``).  Importing the package registers them all.

Register a new protocol with :func:`register_protocol`; the CLI, the configuration's checks and the dashboard pick
it up from :func:`list_protocols`.  The statistics libraries (scipy, scikit-learn) load when a test first runs, not
when the protocols are registered.
"""
from . import baselines, builtin
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
           "get_protocol", "list_protocols", "protocol_names", "register_protocol"]
