"""The embedded offline demo: a real ImageNet EfficientNet-Lite0 fine-tuned on Fashion-MNIST.

Builds (first run) or reuses (later runs, from the artifact store) the victim, both shadows, the
membership reference, the meta-classifier, and a zoo of suspects, then verifies each suspect.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from .attacks import ATTACKS, run_attack
from .audit import AuditConfig, Progress, Verdict, verify_model
from .data import ImageSet, load_demo_data
from .engine import Engine, TrainConfig, accuracy, train_stored
from .errors import ConfigError
from .models import LoadedModel, load_demo_foundation
from .store import ArtifactStore

DEMO_INPUT_SIZE = 64
VICTIM_TRAIN = TrainConfig(epochs=6, lr=1e-3, trainable_blocks=1, batch_size=64)
QUICK_SIZES = {"private": 600, "heldout": 400, "aux": 400, "innocent": 400, "test": 300}


@dataclass(frozen=True)
class DemoSuspect:
    key: str
    name: str
    attack: str
    data: str            # the demo split it trains on
    train: TrainConfig
    seed_offset: int = 0


DEMO_SUSPECTS = (
    DemoSuspect("direct_copy", "direct copy", "direct_copy", "aux", VICTIM_TRAIN),
    DemoSuspect("fine_tune", "fine-tuned copy", "fine_tune", "aux", replace(VICTIM_TRAIN, epochs=3)),
    DemoSuspect("distill", "distilled copy", "distill", "aux", VICTIM_TRAIN),
    DemoSuspect("label_extraction", "label-query extraction", "label_extraction", "aux", VICTIM_TRAIN),
    DemoSuspect("innocent", "innocent (same recipe)", "innocent", "innocent", VICTIM_TRAIN, seed_offset=100),
    DemoSuspect("innocent_long", "innocent (longer, on aux data)", "innocent", "aux",
                replace(VICTIM_TRAIN, epochs=10, lr=2e-3), seed_offset=200),
)
SUSPECTS_BY_KEY = {s.key: s for s in DEMO_SUSPECTS}


def demo_data(quick: bool = False) -> dict[str, ImageSet]:
    data = load_demo_data()
    if quick:  # the reduced demo of the tests
        data = {k: v.subset(np.arange(QUICK_SIZES[k]), k) for k, v in data.items()}
    return data


def demo_train(quick: bool) -> TrainConfig:
    return replace(VICTIM_TRAIN, epochs=3) if quick else VICTIM_TRAIN


def demo_audit_config(seed: int = 0, *, quick: bool = False, protocol: str = "membership") -> AuditConfig:
    train = demo_train(quick)
    return AuditConfig(seed=seed, train=train, protocol=protocol, poison_train=replace(train, epochs=2 if quick else 3))


def demo_foundation(spec) -> LoadedModel:
    return load_demo_foundation(10, input_size=DEMO_INPUT_SIZE, seed=spec.config.seed)


def demo_victim(spec, engine: Engine, foundation: LoadedModel, private: ImageSet,
                progress: Progress | None = None) -> LoadedModel:
    victim, _ = train_stored(engine, "demo_victim", foundation, private, private.labels,
                             replace(demo_train(spec.quick), seed=spec.config.seed), progress=progress, label="victim")
    victim.source = "demo:victim"
    return victim


def demo_suspect(session, key: str, progress: Progress | None = None) -> LoadedModel:
    if key not in SUSPECTS_BY_KEY:
        raise ConfigError(f"unknown demo suspect {key!r}; choose one of {sorted(SUSPECTS_BY_KEY)}")
    s = SUSPECTS_BY_KEY[key]
    spec, a = session.spec, session.audit
    data = demo_data(spec.quick)
    cfg = replace(s.train, seed=spec.config.seed + s.seed_offset,
                  epochs=min(s.train.epochs, 3) if spec.quick else s.train.epochs)
    model = run_attack(s.attack, a.victim, a.foundation, data[s.data], session.engine, cfg, progress=progress)
    model.source = f"demo:{key}"
    return model


@dataclass
class DemoResult:
    seed: int
    victim_test_accuracy: float
    session: Any
    suspects: list[tuple[DemoSuspect, str, Verdict, float]] = field(default_factory=list)

    @property
    def audit(self):
        return self.session.audit

    def to_dict(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "victim": {"test_accuracy": self.victim_test_accuracy, "fingerprint": self.audit.victim.fingerprint},
            "audit": {"poison_success": self.audit.poison_success, "meta_val_accuracy": self.audit.meta.val_accuracy_,
                      "d_s_size": int(len(self.audit.ds_rows)), "protocol": self.audit.config.protocol},
            "suspects": [{"name": s.name, "source": f"demo:{s.key}", "kind": kind, "p_value": v.p_value,
                          "delta_p": v.delta_p, "verdict": v.verdict, "test_accuracy": acc, "protocol": v.protocol,
                          "m": v.m, "seed": v.seed,
                          "paper_p_value": v.evidence.get("paper", {}).get("p_value"),
                          "paper_verdict": paper_verdict(v),
                          "evidence": {p: {k2: e[k2] for k2 in e if k2 != "strata"} for p, e in v.evidence.items()}}
                         for s, kind, v, acc in self.suspects],
        }


def paper_verdict(v: Verdict) -> str | None:
    p = v.evidence.get("paper", {}).get("p_value")
    return None if p is None else ("stolen" if p < v.alpha else "not stolen")


def run_demo(seed: int = 0, *, store: ArtifactStore | None = None, quick: bool = False,
             progress: Progress | None = None, suspects: tuple[DemoSuspect, ...] = DEMO_SUSPECTS,
             protocol: str = "membership", device: str = "auto") -> DemoResult:
    """Build or reuse every demo model and verify every demo suspect."""
    from .spec import AuditSpec, load_suspect, open_audit

    spec = AuditSpec.demo(seed, quick=quick, protocol=protocol)
    spec.device = device
    session = open_audit(spec, store, progress)
    test = demo_data(quick)["test"]
    eng = session.engine
    result = DemoResult(seed, accuracy(eng.logits(session.audit.victim, test), test.labels), session)
    for s in suspects:
        model = load_suspect(session, f"demo:{s.key}", progress=progress)
        verdict = verify_model(session.audit, eng, model, name=s.name)
        result.suspects.append((s, ATTACKS[s.attack].kind, verdict, accuracy(eng.logits(model, test), test.labels)))
    return result
