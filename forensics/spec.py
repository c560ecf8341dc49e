"""What an audit is made of (sources + settings), serialisable, and how to open it.

An :class:`AuditSpec` names the victim, its foundation, the private and held-out data and the
settings.  :func:`open_audit` loads everything and runs (or reuses from the store) stages 1-2;
:func:`load_suspect` resolves a suspect source.  The CLI, the dashboard and a re-run from a JSON
audit record all go through these two functions, so they reach the same numbers.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from .audit import Audit, AuditConfig, Progress, prepare_audit
from .data import ImageSet, load_image_folder
from .engine import Engine
from .errors import ConfigError, ModelSourceError
from .models import LoadedModel, load_foundation, load_model
from .store import ArtifactStore

DEMO_PREFIX = "demo:"


@dataclass
class AuditSpec:
    """Sources and settings of one audit.  ``demo:`` sources refer to the embedded demo."""

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
    def demo(cls, seed: int = 0, *, quick: bool = False, protocol: str = "membership") -> "AuditSpec":
        from .demo import demo_audit_config
        return cls(quick=quick, config=demo_audit_config(seed, quick=quick, protocol=protocol))

    @property
    def is_demo(self) -> bool:
        return self.victim.startswith(DEMO_PREFIX)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["config"] = self.config.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "AuditSpec":
        d = dict(d)
        d["config"] = AuditConfig.from_dict(d["config"])
        return cls(**d)


@dataclass
class AuditSession:
    spec: AuditSpec
    audit: Audit
    engine: Engine
    data: dict[str, ImageSet]


def _load_data(source: str, spec: AuditSpec, classes: list[str] | None = None) -> ImageSet:
    if source.startswith(DEMO_PREFIX):
        from .demo import demo_data
        split = source[len(DEMO_PREFIX):]
        data = demo_data(spec.quick)
        if split not in data:
            raise ConfigError(f"unknown demo split {split!r}; choose one of {sorted(data)}")
        return data[split]
    return load_image_folder(source, classes=classes)


def open_audit(spec: AuditSpec, store: ArtifactStore | None = None, progress: Progress | None = None,
               engine: Engine | None = None) -> AuditSession:
    """Load the sources of ``spec`` and run (or reuse) stages 1 and 2."""
    store = store or ArtifactStore()
    engine = engine or Engine(store, device=spec.device, cache_blocks=spec.config.train.trainable_blocks)
    private = _load_data(spec.data, spec)
    heldout = _load_data(spec.heldout, spec, classes=private.classes) if spec.heldout else None
    k = private.num_classes
    if spec.num_classes is not None and spec.num_classes != k:
        raise ConfigError(f"num_classes={spec.num_classes} but the private data has {k} class folders")
    if spec.is_demo:
        from .demo import demo_foundation, demo_victim
        foundation = demo_foundation(spec)
        victim = demo_victim(spec, engine, foundation, private, progress)
    else:
        victim = load_model(spec.victim, arch=spec.arch, num_classes=k, revision=spec.victim_revision,
                            input_size=spec.input_size)
        foundation = load_foundation(spec.foundation, k, arch=spec.arch or victim.arch,
                                     revision=spec.foundation_revision, input_size=spec.input_size,
                                     seed=spec.config.seed)
        foundation.data_config = dict(victim.data_config)
        if foundation.arch != victim.arch:
            raise ModelSourceError(f"the foundation is a {foundation.arch} but the victim a {victim.arch}; give the "
                                   "foundation the victim was fine-tuned from")
    audit = prepare_audit(victim, foundation, private, heldout, spec.config, engine, progress)
    extra = {"private": private, **({"heldout": heldout} if heldout is not None else {})}
    return AuditSession(spec, audit, engine, extra)


def load_suspect(session: AuditSession, source: str, *, revision: str | None = None,
                 progress: Progress | None = None) -> LoadedModel:
    """A suspect model from any model source, or a demo suspect (``demo:fine_tune`` ...)."""
    if source.startswith(DEMO_PREFIX):
        from .demo import demo_suspect
        return demo_suspect(session, source[len(DEMO_PREFIX):], progress)
    a = session.audit
    m = load_model(source, arch=session.spec.arch or a.victim.arch, num_classes=a.num_classes, revision=revision,
                   input_size=session.spec.input_size)
    if session.spec.input_size:
        m.data_config = dict(a.victim.data_config)
    return m
