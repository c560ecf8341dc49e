"""The embedded offline demo, end to end: a real ImageNet EfficientNet-Lite0 fine-tuned on Fashion-MNIST.

Builds (first run) or reuses (later runs, from the artifact store) the victim, both shadows, the
membership reference, the meta-classifier, and six suspects, then verifies each suspect.  What the
demo is made of lives in :mod:`forensics.demo.assets`; this module only runs it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..audit.build import open_audit
from ..audit.opened import Audit
from ..audit.verdict import Kind, Verdict
from ..method.metrics import accuracy
from ..protocols.registry import DEFAULT_PROTOCOL
from ..runtime.progress import Progress
from ..runtime.store import ArtifactStore
from .assets import DEMO_SUSPECTS, DemoSuspect, demo_spec, demo_split


@dataclass
class DemoSuspectResult:
    suspect: DemoSuspect
    verdict: Verdict
    test_accuracy: float

    @property
    def kind(self) -> Kind:
        return self.suspect.kind


@dataclass
class DemoResult:
    seed: int
    victim_test_accuracy: float
    audit: Audit
    suspects: list[DemoSuspectResult] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        a = self.audit
        return {
            "seed": self.seed,
            "victim": {"test_accuracy": self.victim_test_accuracy, "fingerprint": a.victim.fingerprint},
            "audit": {"poison_success": a.shadows.poison_success, "meta_val_accuracy": a.meta.classifier.val_accuracy_,
                      "d_s_size": int(len(a.loss_order.ds_rows)), "protocol": a.config.protocol},
            "suspects": [_suspect_row(r) for r in self.suspects],
        }


def _suspect_row(r: DemoSuspectResult) -> dict[str, Any]:
    v, paper = r.verdict, r.verdict.under("paper")
    return {"name": r.suspect.name, "source": r.suspect.source, "kind": r.kind, "p_value": v.p_value,
            "delta_p": v.delta_p, "verdict": v.verdict, "test_accuracy": r.test_accuracy, "protocol": v.protocol,
            "m": v.m, "seed": v.seed,
            "paper_p_value": None if paper is None else paper.p_value,
            "paper_verdict": None if paper is None else paper.verdict,
            "evidence": {p: {k: e[k] for k in e if k != "strata"} for p, e in v.evidence.items()}}


def run_demo(seed: int = 0, *, store: ArtifactStore | None = None, quick: bool = False,
             progress: Progress | None = None, suspects: tuple[DemoSuspect, ...] = DEMO_SUSPECTS,
             protocol: str = DEFAULT_PROTOCOL, device: str = "auto") -> DemoResult:
    """Build or reuse every demo model and verify every demo suspect."""
    spec = demo_spec(seed, quick=quick, protocol=protocol)
    spec.device = device
    audit = open_audit(spec, store, progress)
    test = demo_split("test", quick)
    eng = audit.engine
    result = DemoResult(seed, accuracy(eng.logits(audit.victim, test), test.labels), audit)
    for s in suspects:
        model = audit.load_suspect(s.source, progress=progress)
        verdict = audit.verify(model, name=s.name)
        result.suspects.append(DemoSuspectResult(s, verdict, accuracy(eng.logits(model, test), test.labels)))
    return result
