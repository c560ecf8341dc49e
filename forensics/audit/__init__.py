"""An audit: what to audit and how (:class:`AuditSpec`, :class:`AuditConfig`), where its sources come from, the opened
audit with its evidence (:class:`Audit`), and a suspect's :class:`Verdict`.

* :mod:`.config` - :class:`AuditConfig`, the method's settings;
* :mod:`.spec` - :class:`AuditSpec`, plain data: the sources and the settings;
* :mod:`.sources` - source strings and the registry of source schemes (``hf-hub:``, ``local-dir:``, ...);
* :mod:`.answers` - a black-box suspect's answers and the query set it is sent;
* :mod:`.verdict` - :class:`Verdict` and :class:`Reading`, and how they are put in words;
* :mod:`.verify` - stage 3: every protocol on a suspect's answers;
* :mod:`.opened` - :class:`Audit`;
* :mod:`.build` - :func:`open_audit` and :func:`build_audit` (stages 1 and 2).
"""
from .build import audit_plan, build_audit, open_audit
from .config import AuditConfig
from .opened import Audit
from .sources import (
    SourceScheme,
    get_source_scheme,
    list_source_schemes,
    load_data,
    load_foundation,
    load_model,
    parse_model_source,
    register_source_scheme,
)
from .spec import AuditSpec
from .verdict import Reading, Verdict, format_p, headline

__all__ = ["Audit", "AuditConfig", "AuditSpec", "Reading", "SourceScheme", "Verdict", "audit_plan", "build_audit",
           "format_p", "get_source_scheme", "headline", "list_source_schemes", "load_data", "load_foundation",
           "load_model", "open_audit", "parse_model_source", "register_source_scheme"]
