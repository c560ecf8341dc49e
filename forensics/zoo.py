"""The attack zoo: concrete suspects (an attack, its recipe, the data it trains on, what its API answers)
made from an opened audit's victim, with their fidelity, verified by every protocol.

A :class:`ZooEntry` is data; :func:`build_suspect` turns it into a model for one seed, and :func:`run_zoo`
builds and verifies a list of entries over several seeds.  :data:`DEMO_ZOO` is the zoo of the offline demo:
weight-derived thefts (fine-tuning at several strengths, with augmentation, label smoothing or the
victim's own labels; pruning with and without fine-tuning; int8 / int4 weights; a re-trained tail; a
combination), output-derived thefts (distillation at three temperatures and label-query extraction, into the
victim's foundation, into another pretrained foundation, and from scratch into a ResNet-18; data-free distillation
on synthetic low-frequency images, :func:`forensics.data.synthetic_images`), black-box
answers (top-1, top-3, rounded probabilities, temperature) and innocent models (the same foundation with a
spread of recipes and data, another foundation, from scratch, and a student of an innocent teacher).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from . import demo_assets
from .answers import ANSWER_FORMATS, format_answers
from .attacks import Kind, fidelity, get_attack, run_attack
from .audit import Audit
from .baselines import extra_answers
from .data import ImageSet
from .errors import ConfigError
from .models import LoadedModel, fresh_model
from .progress import Progress
from .protocols import list_protocols
from .sources import load_foundation
from .training import TrainConfig
from .verify import Verdict, verify_outputs

OTHER_FOUNDATION = "other-foundation"   # student: another pretrained foundation (ZooContext.other_foundation)
SCRATCH = "scratch:"                    # student: "scratch:<timm arch>", trained from random weights


@dataclass(frozen=True)
class ZooEntry:
    """One kind of suspect."""

    name: str                                         # unique in a zoo
    group: str                                        # the attack type the benchmark reports by
    attack: str                                       # a registered attack (forensics.attacks)
    data: str = "aux"                                 # a key of the zoo's data (the thief's, an innocent's)
    train: dict[str, Any] = field(default_factory=dict)    # changes to the victim's training recipe
    params: dict[str, Any] = field(default_factory=dict)   # the attack's own settings
    student: str | None = None                        # None (the victim's foundation), OTHER_FOUNDATION, SCRATCH+arch
    answers: str = "logits"                           # what its API returns (forensics.answers.ANSWER_FORMATS)
    seed_offset: int = 0

    @property
    def kind(self) -> Kind:
        return get_attack(self.attack).kind

    def check(self, data_keys: set[str]) -> None:
        get_attack(self.attack)
        if self.data not in data_keys:
            raise ConfigError(f"zoo entry {self.name!r}: unknown data {self.data!r}; choose one of {sorted(data_keys)}")
        if self.answers not in ANSWER_FORMATS:
            raise ConfigError(f"zoo entry {self.name!r}: unknown answer format {self.answers!r}")
        if self.student not in (None, OTHER_FOUNDATION) and not str(self.student).startswith(SCRATCH):
            raise ConfigError(f"zoo entry {self.name!r}: student must be None, {OTHER_FOUNDATION!r} or "
                              f"'{SCRATCH}<timm architecture>', not {self.student!r}")
        TrainConfig(**{k: v for k, v in self.train.items()})  # validated at the door


@dataclass
class ZooContext:
    """What suspects are made from: the opened audit, the data by name, the base recipe, another foundation."""

    audit: Audit
    data: dict[str, ImageSet]
    recipe: TrainConfig                 # the victim's recipe; entries change parts of it
    other_foundation: str               # a model source (forensics.sources), e.g. demo:lite1 or hf-hub:...
    test: ImageSet                      # labelled data for fidelity (never the audit's members or controls)
    max_epochs: int | None = None       # the reduced zoo of the tests caps every recipe


def _student(entry: ZooEntry, ctx: ZooContext, seed: int) -> LoadedModel | None:
    victim = ctx.audit.victim
    size = victim.data_config["input_size"][-1]
    if entry.student == OTHER_FOUNDATION:
        return load_foundation(ctx.other_foundation, victim.num_classes, input_size=size, seed=seed)
    if entry.student:
        return fresh_model(entry.student[len(SCRATCH):], victim.num_classes, seed=seed, input_size=size)
    return None


def entry_recipe(entry: ZooEntry, ctx: ZooContext, seed: int) -> TrainConfig:
    cfg = replace(ctx.recipe, **entry.train, seed=seed + entry.seed_offset)
    if ctx.max_epochs is not None and cfg.epochs > ctx.max_epochs:
        cfg = replace(cfg, epochs=ctx.max_epochs)
    return cfg


def build_suspect(entry: ZooEntry, ctx: ZooContext, seed: int, progress: Progress | None = None) -> LoadedModel:
    """The entry's suspect for one seed (every training through the store: a re-run is instant)."""
    entry.check(set(ctx.data))
    a = ctx.audit
    params = dict(entry.params)
    if "teacher_data" in params:
        params["teacher_data"] = ctx.data[params["teacher_data"]]
    student = _student(entry, ctx, seed)
    if student is not None:
        params["student"] = student
    model = run_attack(entry.attack, a.victim, a.foundation, ctx.data[entry.data], a.engine,
                       entry_recipe(entry, ctx, seed), progress=progress, **params)
    model.source = f"zoo:{entry.name}#seed{seed}"
    return model


@dataclass
class ZooResult:
    entry: ZooEntry
    seed: int
    verdict: Verdict
    agreement: float              # top-1 agreement with the victim on the test data (fidelity)
    test_accuracy: float
    seconds: float                # to build (or reuse) and verify
    times: dict[str, float] = field(default_factory=dict)       # seconds per stage: attack, answers, verify
    answers: np.ndarray | None = field(default=None, repr=False)  # what its API answered on the query set

    def to_dict(self) -> dict[str, Any]:
        v = self.verdict
        return {"name": self.entry.name, "group": self.entry.group, "kind": self.entry.kind, "seed": self.seed,
                "attack": self.entry.attack, "answers": self.entry.answers, "agreement": self.agreement,
                "test_accuracy": self.test_accuracy, "seconds": self.seconds, "times": self.times,
                "p_values": {p: e["p_value"] for p, e in v.evidence.items()}, "verdict": v.verdict}


def verify_entry(entry: ZooEntry, ctx: ZooContext, seed: int, *, baselines: bool = False,
                 progress: Progress | None = None) -> ZooResult:
    """Build (or reuse) one entry's suspect, answer the queries through its API format, verify by every protocol
    (and every baseline, on the same answers, with ``baselines``)."""
    a = ctx.audit
    t0 = time.perf_counter()
    model = build_suspect(entry, ctx, seed, progress)
    t1 = time.perf_counter()
    answers = format_answers(a.engine.logits(model, a.queries.images), entry.answers)
    extra = None
    if baselines:
        extra = {k: format_answers(v, entry.answers)
                 for k, v in extra_answers(a, model, list_protocols(baselines=True)).items()}
    t2 = time.perf_counter()
    verdict = verify_outputs(a, answers, f"{entry.name} (seed {seed})", baselines=baselines, extra=extra)
    verdict.fingerprint = model.fingerprint
    fid = fidelity(a.engine, a.victim, model, ctx.test)
    t3 = time.perf_counter()
    return ZooResult(entry, seed, verdict, fid["agreement"], fid["test_accuracy"], t3 - t0,
                     {"attack": t1 - t0, "answers": t2 - t1, "verify": t3 - t2}, answers)


def run_zoo(ctx: ZooContext, entries: list[ZooEntry] | tuple[ZooEntry, ...], seeds: list[int],
            progress: Progress | None = None, on_result: Any = None, *, baselines: bool = False) -> list[ZooResult]:
    """Build and verify every entry for every seed; ``on_result(result)`` is called as each finishes."""
    names = [e.name for e in entries]
    if len(set(names)) != len(names):
        raise ConfigError("zoo entries need unique names")
    results = []
    for seed in seeds:
        for entry in entries:
            r = verify_entry(entry, ctx, seed, baselines=baselines, progress=progress)
            results.append(r)
            if on_result is not None:
                on_result(r)
    return results


def _z(name: str, group: str, attack: str, **kw: Any) -> ZooEntry:
    return ZooEntry(name, group, attack, **kw)


DEMO_ZOO: tuple[ZooEntry, ...] = (
    # weight-derived
    _z("direct copy", "copy", "direct_copy"),
    _z("fine-tune, 1 epoch lr 1e-4", "fine-tune", "fine_tune", train={"epochs": 1, "lr": 1e-4}),
    _z("fine-tune, 3 epochs lr 1e-3", "fine-tune", "fine_tune", train={"epochs": 3}),
    _z("fine-tune, 10 epochs lr 3e-3, 2 blocks", "fine-tune", "fine_tune",
       train={"epochs": 10, "lr": 3e-3, "trainable_blocks": 2}),
    _z("fine-tune with augmentation", "fine-tune", "fine_tune", train={"epochs": 3, "augment": True}),
    _z("fine-tune with label smoothing 0.1", "fine-tune", "fine_tune", train={"epochs": 3, "label_smoothing": 0.1}),
    _z("fine-tune on the victim's labels", "fine-tune", "fine_tune", train={"epochs": 3},
       params={"pseudo_labels": True}),
    _z("prune 20 %", "pruning", "prune", params={"amount": 0.2}),
    _z("prune 40 % + fine-tune (all layers)", "pruning", "prune", train={"epochs": 3, "trainable_blocks": None},
       params={"amount": 0.4, "fine_tune": True}),
    _z("int8 weights", "quantisation", "quantize", params={"bits": 8}),
    _z("int4 weights", "quantisation", "quantize", params={"bits": 4}),
    _z("re-trained last stage + head", "partial re-training", "retrain_tail", params={"blocks": 1}),
    _z("prune 30 % + fine-tune + int8", "combination", "prune", train={"epochs": 3},
       params={"amount": 0.3, "fine_tune": True, "quantize_bits": 8}),
    # output-derived, into the victim's foundation
    _z("distill, T = 1", "distillation", "distill", train={"temperature": 1.0}),
    _z("distill, T = 4", "distillation", "distill", train={"temperature": 4.0}),
    _z("distill, T = 10", "distillation", "distill", train={"temperature": 10.0}),
    _z("label-query extraction", "label extraction", "label_extraction"),
    # output-derived, into another backbone
    _z("distill into another foundation (Lite1)", "distillation, other foundation", "distill",
       student=OTHER_FOUNDATION),
    _z("label extraction into another foundation (Lite1)", "label extraction, other foundation", "label_extraction",
       student=OTHER_FOUNDATION),
    _z("distill from scratch into ResNet-18", "distillation, from scratch", "distill", student=SCRATCH + "resnet18",
       train={"epochs": 15, "lr": 2e-3, "trainable_blocks": None}),
    # data-free: the thief has no data and queries the victim with synthetic images
    _z("data-free distillation (synthetic low-frequency queries), T = 4", "data-free distillation", "distill",
       data="synthetic", train={"temperature": 4.0}),
    # black-box: what the suspect's API returns
    _z("fine-tune, API top-1", "black-box API", "fine_tune", train={"epochs": 3}, answers="top1"),
    _z("fine-tune, API top-3", "black-box API", "fine_tune", train={"epochs": 3}, answers="top3"),
    _z("fine-tune, API probabilities 2 decimals", "black-box API", "fine_tune", train={"epochs": 3},
       answers="probs2"),
    _z("distill T = 4, API temperature 3", "black-box API", "distill", answers="temperature3"),
    _z("label-query extraction, API top-1", "black-box API", "label_extraction", answers="top1"),
    # innocent models: never see the victim
    _z("innocent, victim's recipe", "innocent", "innocent", data="innocent", seed_offset=100),
    _z("innocent, other seed", "innocent", "innocent", data="innocent", seed_offset=300),
    _z("innocent, 2 blocks", "innocent", "innocent", data="innocent", train={"trainable_blocks": 2}, seed_offset=400),
    _z("innocent, half the data", "innocent", "innocent", data="innocent/2", seed_offset=500),
    _z("innocent, label smoothing 0.1", "innocent", "innocent", data="innocent", train={"label_smoothing": 0.1},
       seed_offset=600),
    _z("innocent, 6,000 images", "innocent", "innocent", data="innocent+aux", seed_offset=700),
    _z("innocent, 12 epochs lr 3e-3", "innocent", "innocent", data="innocent", train={"epochs": 12, "lr": 3e-3},
       seed_offset=800),
    _z("innocent, augmentation", "innocent", "innocent", data="innocent", train={"augment": True}, seed_offset=900),
    _z("innocent, on the thief's data, 10 epochs lr 2e-3", "innocent", "innocent", data="aux",
       train={"epochs": 10, "lr": 2e-3}, seed_offset=200),
    _z("innocent, another foundation (Lite1)", "innocent", "innocent", data="innocent", student=OTHER_FOUNDATION,
       seed_offset=1000),
    _z("innocent, from scratch (ResNet-18)", "innocent", "innocent", data="innocent", student=SCRATCH + "resnet18",
       train={"epochs": 15, "lr": 2e-3, "trainable_blocks": None}, seed_offset=1100),
    _z("innocent, student of an innocent teacher", "innocent", "innocent_distilled", data="aux",
       params={"teacher_data": "innocent"}, seed_offset=1200),
)


def demo_zoo_context(audit: Audit, *, quick: bool = False) -> ZooContext:
    """The demo's zoo context: its data splits, the victim's recipe, EfficientNet-Lite1 as the other foundation,
    and the demo's test split for fidelity."""
    return ZooContext(audit, demo_assets.zoo_data(quick), demo_assets.VICTIM_TRAIN, demo_assets.OTHER_FOUNDATION,
                      demo_assets.demo_split("test", quick), max_epochs=3 if quick else None)


def summary_rows(results: list[ZooResult]) -> list[dict[str, Any]]:
    """One row per entry over its seeds: median p per protocol, and how many seeds each catches at 0.01."""
    rows: dict[str, dict[str, Any]] = {}
    for r in results:
        row = rows.setdefault(r.entry.name, {"name": r.entry.name, "group": r.entry.group, "kind": r.entry.kind,
                                             "answers": r.entry.answers, "agreement": [], "p": {}})
        row["agreement"].append(r.agreement)
        for p, e in r.verdict.evidence.items():
            row["p"].setdefault(p, []).append(e["p_value"])
    out = []
    for row in rows.values():
        out.append({**{k: row[k] for k in ("name", "group", "kind", "answers")},
                    "agreement": float(np.mean(row["agreement"])),
                    **{f"{p}_median_p": float(np.median(v)) for p, v in row["p"].items()},
                    **{f"{p}_below_0.01": f"{sum(x < 0.01 for x in v)}/{len(v)}" for p, v in row["p"].items()}})
    return out
