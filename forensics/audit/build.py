"""Opening an audit: :func:`open_audit` loads the sources of an :class:`~forensics.audit.spec.AuditSpec` and
:func:`build_audit` runs stages 1 and 2 (loss order, shadow models, meta-classifier, membership design) and builds
the query set, each stage reused from the artifact store when it exists.  The CLI, the dashboard and a re-run from
a JSON audit record all open audits here, so they reach the same numbers.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from ..data.images import ImageSet, pixel_hashes, shared_rows
from ..engine.engine import Engine
from ..errors import ClassCountMismatchError, ConfigError, DatasetTooSmallError, DataSourceError
from ..method.meta import fit_meta_classifiers
from ..method.queries import build_query_set
from ..method.shadows import (
    LossOrder,
    MembershipDesign,
    Shadows,
    loss_order,
    select_ds,
    train_benign_shadow,
    train_poisoned_shadow,
    train_reference_pairs,
    train_reference_shadow,
)
from ..models import LoadedModel
from ..protocols.registry import get_protocol, list_protocols
from ..runtime.progress import Progress, StagePlan, emit
from ..runtime.store import ArtifactStore
from .config import AuditConfig
from .opened import Audit
from .sources import load_data, makes_training, open_models, victim_title
from .spec import AuditSpec
from .verify import lineage_of


def open_audit(spec: AuditSpec, store: ArtifactStore | None = None, progress: Progress | None = None,
               engine: Engine | None = None) -> Audit:
    """Load the sources of ``spec`` and build (or reuse from the store) stages 1 and 2."""
    store = store or ArtifactStore()
    engine = engine or Engine(store, device=spec.device, cache_blocks=spec.config.train.trainable_blocks)
    engine.progress = progress
    emit(progress, "data", "start", title="Loading the data")
    private = load_data(spec.data, quick=spec.quick)
    heldout = load_data(spec.heldout, quick=spec.quick, classes=private.classes) if spec.heldout else None
    if spec.num_classes is not None and spec.num_classes != private.num_classes:
        raise ConfigError(f"num_classes={spec.num_classes} but the private data has {private.num_classes} class "
                          "folders")
    emit(progress, "data", "done", f"{len(private)} private, {0 if heldout is None else len(heldout)} held-out images")
    emit(progress, "victim", "start", title=victim_title(spec))
    victim, foundation = open_models(spec, engine, private, progress)
    emit(progress, "victim", "done", f"{victim.arch}, {victim.num_classes} classes")
    return build_audit(spec, victim, foundation, private, heldout, engine, progress)


def audit_plan(spec: AuditSpec) -> list[tuple[str, str]]:
    """The stages :func:`open_audit` goes through, in order, with their titles."""
    plan = [("data", "Loading the data"), ("victim", victim_title(spec)),
            ("loss_order", "Loss order of the victim"), ("poisoned_shadow", "Poisoned shadow"),
            ("benign_shadow", "Benign shadow")]
    if spec.heldout:
        pairs = spec.config.reference_pairs
        plan.append(("reference_shadow", f"Membership references: {2 * pairs} on halves of your data" if pairs
                     else "Membership reference shadow"))
    plan.append(("meta_classifier", "Output differences and meta-classifier"))
    if spec.config.lineage_replicas:
        plan.append(("lineage_replicas", f"Lineage test: {spec.config.lineage_replicas} re-runs of your recipe"))
    return plan


# what reading a data set once costs, against one epoch of training on it (a forward pass, no backward)
PASS = 0.3


def audit_stage_plan(spec: AuditSpec, more: Sequence[tuple[str, str]] = (), more_costs: dict[str, float] | None = None
                     ) -> StagePlan:
    """:func:`audit_plan` as a :class:`StagePlan` with each stage's expected cost, in epochs over the private data
    (a progress view weighs the stages by it; ``more``: the caller's own stages after the audit's)."""
    cfg = spec.config
    epochs = cfg.train.epochs
    refs = 2 * cfg.reference_pairs if cfg.reference_pairs else 1
    trains_victim = makes_training(spec.victim, spec)
    costs = {"data": 0.05, "victim": float(epochs) if trains_victim else 0.1, "loss_order": PASS,
             "poisoned_shadow": float(cfg.poison_train.epochs), "benign_shadow": epochs * (1.0 - cfg.lam),
             "reference_shadow": refs * epochs * 0.5, "meta_classifier": 2 * PASS,
             "lineage_replicas": float(cfg.lineage_replicas * epochs), **(more_costs or {})}
    return StagePlan([*audit_plan(spec), *more], costs=costs,
                     parts={"reference_shadow": refs, "lineage_replicas": max(cfg.lineage_replicas, 1)})


def check_inputs(victim: LoadedModel, foundation: LoadedModel, private: ImageSet, heldout: ImageSet | None,
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


def _stored_pixel_hashes(store: ArtifactStore, images: ImageSet) -> np.ndarray:
    """:func:`pixel_hashes`, computed once per image set (decoding a folder of images takes a while) and stored."""
    def compute(tmp):
        np.save(tmp / "hashes.npy", pixel_hashes(images))

    path = store.get_or_compute("pixel_hashes", {"hash": "sha256-rgb"}, {"images": images.fingerprint}, compute)
    return np.load(path / "hashes.npy")


def check_heldout_unseen(store: ArtifactStore, private: ImageSet, heldout: ImageSet) -> None:
    """The held-out data must share no image with the private data: a control the victim trained on is a member, and
    a test against such controls measures nothing (the same pixels under another name or in another format count).
    Checked when an audit is built and when the dashboard loads the data (the hashes are stored, computed once)."""
    rows = shared_rows(_stored_pixel_hashes(store, private), _stored_pixel_hashes(store, heldout))
    if len(rows):
        ids = ", ".join(repr(str(i)) for i in private.ids[rows[:5]]) + (", ..." if len(rows) > 5 else "")
        raise DataSourceError(
            f"the held-out data shares {len(rows)} of its images with the private data (private images {ids}): "
            "held-out images must be ones the victim never trained on. Give held-out data from the same collection "
            "that is not in the private data (remove the shared images from one of the two)")


def build_audit(spec: AuditSpec, victim: LoadedModel, foundation: LoadedModel, private: ImageSet,
                heldout: ImageSet | None, engine: Engine, progress: Progress | None = None) -> Audit:
    """Run stages 1 and 2 (each reused from the store when it exists) and build the query set."""
    config = spec.config
    check_inputs(victim, foundation, private, heldout, config)
    if heldout is not None:
        check_heldout_unseen(engine.store, private, heldout)
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

    poisoned, h_p, success = train_poisoned_shadow(engine, victim, private, ds_rows, config.seeded_poison_train,
                                                   config.trigger, config.target_class, progress)
    benign, h_b = train_benign_shadow(engine, foundation, private, loss, config.lam, config.seeded_train, progress)
    references: tuple[LoadedModel, ...] = ()
    reference, h_r, design = None, None, MembershipDesign.empty()
    if heldout is not None and config.reference_pairs:
        pairs = train_reference_pairs(engine, foundation, private, heldout, config.reference_pairs,
                                      config.seeded_train, rng, progress)
        references, design = pairs.models, pairs.design
        reference, h_r = references[0], pairs.histories[0]  # the curves show the first reference
    elif heldout is not None:
        reference, h_r, design = train_reference_shadow(engine, foundation, private, heldout, config.member_fraction,
                                                        config.seeded_train, rng, progress)

    emit(progress, "meta_classifier", "start")
    meta = fit_meta_classifiers(engine, victim, poisoned, benign, private.subset(ds_rows, "D_s"), config.seeded_meta,
                                config.meta_train_fraction, config.meta_val_fraction, rng)
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
                      {"poisoned_shadow": h_p, "benign_shadow": h_b, "reference_shadow": h_r}, references)
    audit = Audit(spec=replace(spec), engine=engine, victim=victim, foundation=foundation, private=private,
                  heldout=heldout, loss_order=LossOrder(loss, ds_rows), shadows=shadows, membership=design,
                  meta=meta, queries=queries)
    if config.lineage_replicas:
        emit(progress, "lineage_replicas", "start")
        lineage_of(audit, progress)
        emit(progress, "lineage_replicas", "done", f"{config.lineage_replicas} replicas of the victim's training run")
    return audit
