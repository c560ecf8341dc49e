"""Holmes forensics: prove, with a p-value, that a suspect model was derived from your fine-tuned
vision model, without ever having watermarked or changed it.

    import forensics

    audit = forensics.open_audit(forensics.AuditSpec(
        victim="hf-hub:my-org/my-vit", foundation="hf-hub:timm/vit_base_patch16_224.augreg_in21k",
        data="/data/private", heldout="/data/heldout"))
    verdict = audit.verify("hf-hub:someone/suspicious-vit")   # or an answers file, or logits
    print(verdict.p_value, verdict.verdict)

The concepts: an :class:`AuditSpec` says what to audit (the victim, its foundation, the private and
held-out data) and carries an :class:`AuditConfig` (how: the method's settings).  :func:`open_audit`
builds the :class:`Audit` (the evidence: shadow models, meta-classifier, membership design, query set)
or reuses it from the :class:`ArtifactStore`; ``audit.verify`` gives a :class:`Verdict` per suspect.
A :class:`Case` is an audit with its list of suspects and their verdicts, as the dashboard and the
audit record hold it.  Every error is a :class:`ForensicsError`.  The embedded offline demo's spec is
:func:`demo_spec`.

The package is in layers, each a subpackage that imports only from the ones below it: ``runtime`` (settings,
the artifact store, progress, jobs, torchrun, Ray), ``data``, ``models``, ``engine`` (the one training loop and
the engine), ``method`` (statistics, query set, meta-classifier, shadows), ``protocols``, ``audit``, ``zoo``,
``demo``, ``report``, ``cases`` and ``cli``.  Importing :mod:`forensics` loads torch and these modules only;
scipy, scikit-learn, plotly, timm, transformers and the data libraries load where they are first used.
"""
from ._version import __version__
from .audit.build import open_audit
from .audit.config import AuditConfig
from .audit.opened import Audit
from .audit.spec import AuditSpec
from .audit.verdict import Reading, Verdict, format_p
from .cases.case import Case, Suspect
from .data.transforms import Trigger
from .demo.assets import demo_spec
from .demo.runner import DemoResult, run_demo
from .engine.recipe import TrainConfig, TrainProgress
from .errors import (
    ArtifactError,
    ClassCountMismatchError,
    ConfigError,
    CorruptWeightsError,
    DatasetTooSmallError,
    DataSourceError,
    ForensicsError,
    HubModelNotFoundError,
    LogitsFileError,
    ModelSourceError,
    UnsafeCheckpointError,
)
from .method.meta import MetaConfig
from .models import LoadedModel
from .protocols.registry import VerdictProtocol, list_protocols
from .runtime.progress import StageProgress
from .runtime.store import ArtifactStore
from .zoo.attacks import Attack, list_attacks

#: the former name of :class:`VerdictProtocol`, kept in the public API
Protocol = VerdictProtocol

__all__ = [  # noqa: RUF022 - grouped by what a user does with them
    "__version__",
    # what to audit, and how
    "AuditSpec", "AuditConfig", "TrainConfig", "MetaConfig", "Trigger",
    # opening an audit and verifying suspects
    "open_audit", "Audit", "Verdict", "Reading", "format_p", "LoadedModel", "ArtifactStore",
    "StageProgress", "TrainProgress",
    # a case (an audit's suspects and verdicts) and the demo
    "Case", "Suspect", "run_demo", "DemoResult", "demo_spec",
    # registries
    "list_protocols", "VerdictProtocol", "Protocol", "list_attacks", "Attack",
    # errors
    "ForensicsError", "ConfigError", "ModelSourceError", "UnsafeCheckpointError", "CorruptWeightsError",
    "ClassCountMismatchError", "HubModelNotFoundError", "DataSourceError", "DatasetTooSmallError",
    "LogitsFileError", "ArtifactError",
]
