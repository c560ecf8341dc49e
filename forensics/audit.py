"""An opened audit: the evidence built from an :class:`~forensics.spec.AuditSpec` (stages 1 and 2), and
verification of suspects against it (stage 3).

    audit = open_audit(spec)                       # forensics.spec: loads the sources, builds or reuses
    verdict = audit.verify("hf-hub:someone/model") # a model source, a LoadedModel, an answers file or array

Every stage's result is kept in the artifact store, so opening the same audit again is instant.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .answers import read_outputs
from .config import AuditConfig
from .data import ImageSet
from .engine import Engine
from .errors import ClassCountMismatchError, ConfigError, DatasetTooSmallError
from .meta import MetaEvidence, fit_meta_classifiers
from .models import LoadedModel
from .progress import Progress, emit
from .protocols import get_protocol, list_protocols
from .queries import QuerySet, build_query_set
from .shadows import (
    LossOrder,
    MembershipDesign,
    Shadows,
    loss_order,
    select_ds,
    train_benign_shadow,
    train_poisoned_shadow,
    train_reference_shadow,
)
from .sources import is_answers_file, load_suspect
from .verify import Verdict, verify_model, verify_outputs

if TYPE_CHECKING:
    from .spec import AuditSpec

__all__ = ["Audit", "build_audit"]


@dataclass
class Audit:
    """Everything stages 1 and 2 produced from a spec, the query set a suspect must answer, and the
    engine that runs suspects.  Built by :func:`forensics.open_audit`; verify suspects with :meth:`verify`.
    ``spec`` is a snapshot taken when the audit was built: changing the caller's spec later changes nothing."""

    spec: "AuditSpec"
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
        """Verify one suspect and return its :class:`~forensics.verify.Verdict`.

        ``suspect`` is a model source (``hf-hub:ORG/NAME[@REV]``, ``local-dir:PATH``, a weights file,
        ``demo:<suspect>``), a :class:`~forensics.models.LoadedModel`, a black-box suspect's answers file
        (``.csv`` / ``.npy``, rows in the order of the query set), or its answers as an array: logits
        (N, K) or labels (N,).  ``baselines`` adds the evidence of the peer baselines (forensics.baselines;
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
        """A suspect model from a source string (see :mod:`forensics.sources`), checked against the victim."""
        return load_suspect(self, source, revision=revision, progress=progress)

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


def _check_inputs(victim: LoadedModel, foundation: LoadedModel, private: ImageSet, heldout: ImageSet | None,
                  config: AuditConfig) -> None:
    k = victim.num_classes
    if not 0 <= config.target_class < k:
        raise ConfigError(f"target_class must be a class index in [0, {k - 1}]. Got {config.target_class} instead.")
    if foundation.num_classes != k:
        raise ClassCountMismatchError(f"the foundation was loaded with {foundation.num_classes} classes, the "
                                      f"victim has {k}; load the foundation with num_classes={k}",
                                      expected=k, found=foundation.num_classes)
    if heldout is not None and heldout.classes != private.classes:
        raise ConfigError(f"the held-out data's classes {heldout.classes} differ from the private data's "
                          f"{private.classes}; both must come from the same collection")
    n = len(private)
    n_s = int(round(config.gamma * n))

    def verify_rows(m: int) -> int:  # what the meta-classifier keeps to verify on, as fit_meta_classifiers splits
        return m - int(round(config.meta_train_fraction * m)) - int(round(config.meta_val_fraction * m))

    need = next((m for m in range(30, 100_000) if verify_rows(m) >= 10), None)
    if need is None:
        raise ConfigError(f"meta_train_fraction={config.meta_train_fraction} and meta_val_fraction="
                          f"{config.meta_val_fraction} leave almost nothing to verify the meta-classifier on; keep "
                          "their sum at 0.9 or below")
    if n_s < need:  # said now, not after the shadows have trained
        raise DatasetTooSmallError(
            f"gamma={config.gamma} of {n} private samples gives {n_s} samples in D_s; at least {need} are needed "
            f"(to train, validate and verify the meta-classifier on at least 10): use at least "
            f"{math.ceil(need / config.gamma)} samples or a larger gamma")
    if get_protocol(config.protocol).needs_heldout and heldout is None:
        without = [p.name for p in list_protocols() if not p.needs_heldout]
        raise ConfigError(f"the {config.protocol!r} protocol needs held-out data from the same collection that the "
                          f"victim never saw; give heldout, or choose one of the protocols {without}")
    if heldout is not None and len(heldout) < 100:
        raise DatasetTooSmallError(f"the held-out set has {len(heldout)} samples; give at least 100 (1,000+ "
                                   "for a powerful membership test)")


def build_audit(spec: "AuditSpec", victim: LoadedModel, foundation: LoadedModel, private: ImageSet,
                heldout: ImageSet | None, engine: Engine, progress: Progress | None = None) -> Audit:
    """Run stages 1 and 2 (each reused from the store when it exists) and build the query set."""
    config = spec.config
    _check_inputs(victim, foundation, private, heldout, config)
    rng = np.random.default_rng(config.seed)  # draws, in order: members (with held-out data), meta split

    emit(progress, "loss_order", "start", f"victim loss on {len(private)} private samples")
    loss = loss_order(engine, victim, private)
    ds_rows = select_ds(loss, private.labels, config.gamma, config.target_class)
    if len(ds_rows) < 30:
        raise DatasetTooSmallError("fewer than 30 private samples lie outside the target class; lower "
                                   "gamma's denominator by adding data, or choose another target_class")
    rank = np.empty(len(loss), int)
    rank[np.argsort(loss, kind="stable")] = np.arange(len(loss))
    skipped = int(round(config.lam * len(private)))  # what the benign shadow leaves out (train_benign_shadow)
    if rank[ds_rows].max() >= skipped:
        need = (rank[ds_rows].max() + 1) / len(private)
        raise ConfigError(f"lambda = {config.lam:g} is too small for gamma = {config.gamma:g}: the benign shadow would "
                          f"train on {int((rank[ds_rows] >= skipped).sum())} of the {len(ds_rows)} D_s samples it must "
                          f"never see; raise lambda to at least {np.ceil(need * 100) / 100:g} or lower gamma")
    emit(progress, "loss_order", "done", f"D_s = {len(ds_rows)} lowest-loss samples")

    poisoned, h_p, success = train_poisoned_shadow(engine, victim, private, ds_rows, config, progress)
    benign, h_b = train_benign_shadow(engine, foundation, private, loss, config, progress)
    reference, h_r, design = None, None, MembershipDesign.empty()
    if heldout is not None:
        reference, h_r, design = train_reference_shadow(engine, foundation, private, heldout, config, rng, progress)

    emit(progress, "meta_classifier", "start")
    meta = fit_meta_classifiers(engine, victim, poisoned, benign, private.subset(ds_rows, "D_s"), config, rng)
    emit(progress, "meta_classifier", "done", f"validation accuracy {meta.classifier.val_accuracy_:.2f}")

    if config.query_budget is not None:  # a smaller query set: members and controls only, drawn at random
        if heldout is None:
            raise ConfigError("a query budget needs held-out data (it keeps members and controls of the membership "
                              "test); give heldout, or no budget")
        design = design.subsample(config.query_budget, np.random.default_rng([config.seed, config.query_budget]))
        query_rows = design.member_rows
    else:
        query_rows = np.union1d(ds_rows, design.member_rows)
    queries = build_query_set(private, heldout, query_rows, design.control_rows, config.seed + 1)
    shadows = Shadows(poisoned, benign, reference, success,
                      {"poisoned_shadow": h_p, "benign_shadow": h_b, "reference_shadow": h_r})
    return Audit(spec=replace(spec), engine=engine, victim=victim, foundation=foundation, private=private,
                 heldout=heldout, loss_order=LossOrder(loss, ds_rows), shadows=shadows, membership=design,
                 meta=meta, queries=queries)
