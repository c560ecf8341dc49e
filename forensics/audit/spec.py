"""What to audit: :class:`AuditSpec`, plain data (the sources of the victim, its foundation and the data, and the
method's settings), serialisable into the JSON audit record and back.

    spec = AuditSpec(victim="hf-hub:my-org/my-vit@v1.0", foundation="hf-hub:timm/vit_base_patch16_224.augreg_in21k",
                     data="/data/private", heldout="/data/heldout")
    audit = open_audit(spec)          # forensics.audit.build

The embedded demo's spec is :func:`forensics.demo.demo_spec`.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from .config import AuditConfig


@dataclass
class AuditSpec:
    """Sources and settings of one audit.

    ``victim``, ``foundation``: model sources (:mod:`forensics.audit.sources`); ``data``: the victim's private
    training data, ``heldout``: unseen data of the same collection (any data source); ``config``: the method's
    settings.  ``quick`` asks a scheme that makes its own data and models (the demo) for its reduced version."""

    victim: str
    foundation: str
    data: str
    heldout: str | None = None
    victim_revision: str | None = None
    foundation_revision: str | None = None
    arch: str | None = None
    num_classes: int | None = None
    input_size: int | None = None
    quick: bool = False
    device: str = "auto"
    config: AuditConfig = field(default_factory=AuditConfig)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["config"] = self.config.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AuditSpec:
        d = dict(d)
        d["config"] = AuditConfig.from_dict(d["config"])
        return cls(**d)
