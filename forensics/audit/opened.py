"""An opened audit: :class:`Audit`, the evidence built from an :class:`~forensics.audit.spec.AuditSpec` (stages 1
and 2), and verification of suspects against it (stage 3).

    audit = open_audit(spec)                       # forensics.audit.build: loads the sources, builds or reuses
    verdict = audit.verify("hf-hub:someone/model") # a model source, a LoadedModel, an answers file or array

Every stage's result is kept in the artifact store, so opening the same audit again is instant.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..data.images import ImageSet
from ..engine.engine import Engine
from ..method.meta import MetaEvidence
from ..method.queries import QuerySet
from ..method.shadows import (
    LossOrder,
    MembershipDesign,
    Shadows,
)
from ..models import LoadedModel
from ..runtime.progress import Progress
from .answers import read_outputs
from .config import AuditConfig
from .sources import is_answers_file, load_suspect
from .spec import AuditSpec
from .verdict import Verdict
from .verify import verify_model, verify_outputs


@dataclass
class Audit:
    """Everything stages 1 and 2 produced from a spec, the query set a suspect must answer, and the
    engine that runs suspects.  Built by :func:`forensics.open_audit`; verify suspects with :meth:`verify`.
    ``spec`` is a snapshot taken when the audit was built: changing the caller's spec later changes nothing."""

    spec: AuditSpec
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
    memo: dict[str, Any] = field(default_factory=dict, repr=False)  # what the baselines derive once per audit

    @property
    def config(self) -> AuditConfig:
        """The method's settings (the spec's)."""
        return self.spec.config

    @property
    def num_classes(self) -> int:
        return self.victim.num_classes

    # -- stage 3 -----------------------------------------------------------------------------
    def verify(self, suspect: str | Path | LoadedModel | np.ndarray, *, name: str | None = None,
               revision: str | None = None, protocol: str | None = None,
               progress: Progress | None = None, baselines: bool = False) -> Verdict:
        """Verify one suspect and return its :class:`~forensics.audit.verdict.Verdict`.

        ``suspect`` is a model source (``hf-hub:ORG/NAME[@REV]``, ``local-dir:PATH``, a weights file,
        ``demo:<suspect>``), a :class:`~forensics.models.LoadedModel`, a black-box suspect's answers file
        (``.csv`` / ``.npy``, rows in the order of the query set), or its answers as an array: logits
        (N, K) or labels (N,).  ``baselines`` adds the evidence of the peer baselines (forensics.protocols.baselines;
        from answers, only those that need no queries of their own)."""
        if isinstance(suspect, LoadedModel):
            return verify_model(self, suspect, name=name, protocol=protocol, baselines=baselines)
        if isinstance(suspect, np.ndarray):
            return verify_outputs(self, suspect, name or "answers", protocol=protocol, baselines=baselines)
        if is_answers_file(suspect):
            path = Path(suspect)
            out = read_outputs(path, len(self.queries), self.num_classes)
            return verify_outputs(self, out, name or path.name, protocol=protocol, baselines=baselines)
        model = self.load_suspect(str(suspect), revision=revision, progress=progress)
        return verify_model(self, model, name=name, protocol=protocol, baselines=baselines)

    def load_suspect(self, source: str, *, revision: str | None = None,
                     progress: Progress | None = None) -> LoadedModel:
        """A suspect model from a source string (see :mod:`forensics.audit.sources`), checked against the victim."""
        return load_suspect(source, self.spec, victim=self.victim, foundation=self.foundation, engine=self.engine,
                            classes=self.private.classes, revision=revision, progress=progress)

    def summary(self) -> dict[str, Any]:
        """What the audit record says about the audit (fingerprints, data, settings, shadow quality)."""
        s, design = self.shadows, self.membership
        return {
            "config": self.config.to_dict(),
            "victim": self.victim.card(),
            "foundation": self.foundation.card(),
            "poisoned_shadow": s.poisoned.card(),
            "benign_shadow": s.benign.card(),
            "reference_shadow": None if s.reference is None else s.reference.card(),
            **({"reference_shadows": [m.card() for m in s.references]} if s.references else {}),
            "private": self.private.summary(),
            "heldout": None if self.heldout is None else self.heldout.summary(),
            "d_s_size": int(len(self.loss_order.ds_rows)),
            "d_s_ids": self.private.ids[self.loss_order.ds_rows].tolist(),
            "poison_success": s.poison_success,
            "meta_val_accuracy": self.meta.classifier.val_accuracy_,
            "meta_train_accuracy": self.meta.classifier.train_accuracy_,
            "members": int(len(design.member_rows)),
            "controls": int(len(design.control_rows)),
            "queries": int(len(self.queries)),
            "queries_fingerprint": self.queries.fingerprint,
            "histories": s.histories,
            # what decides bit-for-bit reproducibility beside the seeds (see the README)
            "runtime": {"device": self.engine.device.type, "precision": self.engine.precision,
                        "cpu_threads": self.engine.cpu_threads},
        }
