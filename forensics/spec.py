"""What to audit: :class:`AuditSpec` (sources and settings, serialisable) and :func:`open_audit`.

The CLI, the dashboard and a re-run from a JSON audit record all open audits through
:func:`open_audit`, so they reach the same numbers.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from . import demo_assets
from .audit import Audit, build_audit
from .config import AuditConfig
from .engine import Engine
from .errors import ConfigError
from .progress import Progress, emit
from .protocols import DEFAULT_PROTOCOL
from .sources import is_demo, load_data, open_models
from .store import ArtifactStore


@dataclass
class AuditSpec:
    """Sources and settings of one audit.

    ``victim``, ``foundation``: model sources (:mod:`forensics.sources`); ``data``: the victim's private
    training data, ``heldout``: unseen data of the same collection (folders with one subfolder per class);
    ``config``: the method's settings.  ``demo:`` sources refer to the embedded offline demo."""

    victim: str = "demo:victim"
    foundation: str = "demo:foundation"
    data: str = "demo:private"
    heldout: str | None = "demo:heldout"
    victim_revision: str | None = None
    foundation_revision: str | None = None
    arch: str | None = None
    num_classes: int | None = None
    input_size: int | None = None
    quick: bool = False
    device: str = "auto"
    config: AuditConfig = field(default_factory=AuditConfig)

    @classmethod
    def demo(cls, seed: int = 0, *, quick: bool = False, protocol: str = DEFAULT_PROTOCOL) -> "AuditSpec":
        """The embedded offline demo (``quick``: the reduced data and epochs of the tests)."""
        return cls(quick=quick, config=demo_assets.demo_audit_config(seed, quick=quick, protocol=protocol))

    @property
    def is_demo(self) -> bool:
        return is_demo(self.victim)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["config"] = self.config.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "AuditSpec":
        d = dict(d)
        d["config"] = AuditConfig.from_dict(d["config"])
        return cls(**d)


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


def victim_title(spec: AuditSpec) -> str:
    return "Training the demo victim (first run only)" if spec.is_demo else "Loading the victim and its foundation"


def audit_plan(spec: AuditSpec) -> list[tuple[str, str]]:
    """The stages :func:`open_audit` goes through, in order, with their titles."""
    plan = [("data", "Loading the data"), ("victim", victim_title(spec)),
            ("loss_order", "Loss order of the victim"), ("poisoned_shadow", "Poisoned shadow"),
            ("benign_shadow", "Benign shadow")]
    if spec.heldout:
        plan.append(("reference_shadow", "Membership reference shadow"))
    return plan + [("meta_classifier", "Output differences and meta-classifier")]
