"""The embedded offline demo: a real ImageNet EfficientNet-Lite0 fine-tuned on Fashion-MNIST.

Builds (first run) or reuses (later runs, from the artifact store) the victim, both shadows, the
membership reference, the meta-classifier, and a zoo of suspects, then verifies each suspect.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from .attacks import ATTACKS, run_attack
from .audit import Audit, AuditConfig, Progress, Verdict, prepare_audit, verify_model
from .data import ImageSet, load_demo_data
from .engine import Engine, TrainConfig, accuracy, train_stored
from .models import load_demo_foundation
from .store import ArtifactStore

DEMO_INPUT_SIZE = 64
VICTIM_TRAIN = TrainConfig(epochs=6, lr=1e-3, trainable_blocks=1, batch_size=64)


@dataclass(frozen=True)
class DemoSuspect:
    name: str
    attack: str
    data: str            # demo split the attack trains on
    train: TrainConfig
    seed_offset: int = 0


DEMO_SUSPECTS = (
    DemoSuspect("direct copy", "direct_copy", "aux", VICTIM_TRAIN),
    DemoSuspect("fine-tuned copy", "fine_tune", "aux", replace(VICTIM_TRAIN, epochs=3)),
    DemoSuspect("distilled copy", "distill", "aux", VICTIM_TRAIN),
    DemoSuspect("label-query extraction", "label_extraction", "aux", VICTIM_TRAIN),
    DemoSuspect("innocent (same recipe)", "innocent", "innocent", VICTIM_TRAIN, seed_offset=100),
    DemoSuspect("innocent (longer, on aux data)", "innocent", "aux", replace(VICTIM_TRAIN, epochs=10, lr=2e-3),
                seed_offset=200),
)


@dataclass
class DemoResult:
    seed: int
    victim_test_accuracy: float
    audit: Audit
    suspects: list[tuple[str, str, Verdict, float]] = field(default_factory=list)  # name, kind, verdict, test acc

    def to_dict(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "victim": {"test_accuracy": self.victim_test_accuracy, "fingerprint": self.audit.victim.fingerprint},
            "audit": {"poison_success": self.audit.poison_success, "meta_val_accuracy": self.audit.meta.val_accuracy_,
                      "d_s_size": int(len(self.audit.ds_rows)), "protocol": self.audit.config.protocol},
            "suspects": [{"name": n, "kind": k, "p_value": v.p_value, "delta_p": v.delta_p, "verdict": v.verdict,
                          "test_accuracy": acc, "protocol": v.protocol, "m": v.m, "seed": v.seed,
                          "paper_p_value": v.evidence.get("paper", {}).get("p_value"),
                          "paper_verdict": _paper_verdict(v),
                          "holmes_p_value": v.evidence.get("holmes", {}).get("p_value"),
                          "evidence": {p: {k2: e[k2] for k2 in e if k2 != "strata"} for p, e in v.evidence.items()}}
                         for n, k, v, acc in self.suspects],
        }


def _paper_verdict(v: Verdict) -> str | None:
    p = v.evidence.get("paper", {}).get("p_value")
    return None if p is None else ("stolen" if p < v.alpha else "not stolen")


def demo_data(quick: bool = False) -> dict[str, ImageSet]:
    data = load_demo_data()
    if quick:  # a reduced demo for tests: fewer samples per split
        sizes = {"private": 600, "heldout": 400, "aux": 400, "innocent": 400, "test": 300}
        data = {k: v.subset(np.arange(sizes[k]), k) for k, v in data.items()}
    return data


def run_demo(seed: int = 0, *, store: ArtifactStore | None = None, engine: Engine | None = None,
             quick: bool = False, progress: Progress | None = None,
             suspects: tuple[DemoSuspect, ...] = DEMO_SUSPECTS, protocol: str = "membership") -> DemoResult:
    """Build or reuse every demo model and verify every demo suspect."""
    store = store or ArtifactStore()
    engine = engine or Engine(store, cache_blocks=VICTIM_TRAIN.trainable_blocks)
    data = demo_data(quick)
    train = replace(VICTIM_TRAIN, epochs=3) if quick else VICTIM_TRAIN
    foundation = load_demo_foundation(10, input_size=DEMO_INPUT_SIZE, seed=seed)
    victim, _ = train_stored(engine, "demo_victim", foundation, data["private"], data["private"].labels,
                             replace(train, seed=seed), progress=progress, label="victim")
    victim.source = "demo:victim"
    config = AuditConfig(seed=seed, train=train, protocol=protocol,
                         poison_train=replace(train, epochs=2 if quick else 3))
    audit = prepare_audit(victim, foundation, data["private"], data["heldout"], config, engine, progress)
    test = data["test"]
    result = DemoResult(seed, accuracy(engine.logits(victim, test), test.labels), audit)
    for s in suspects:
        cfg = replace(s.train, seed=seed + s.seed_offset, epochs=min(s.train.epochs, 3) if quick else s.train.epochs)
        model = run_attack(s.attack, victim, foundation, data[s.data], engine, cfg, progress=progress)
        model.source = f"demo:{s.attack}"
        verdict = verify_model(audit, engine, model, name=s.name)
        result.suspects.append((s.name, ATTACKS[s.attack].kind, verdict,
                                accuracy(engine.logits(model, test), test.labels)))
    return result
