"""Zoo entries: concrete suspects (an attack, its recipe, the data it trains on, what its API answers) made from an
opened audit's victim, with their fidelity, verified by every protocol.

A :class:`ZooEntry` is data with a slug ``id`` (what the CLI, the dashboard and the tables key it by) and a
``title`` (what they show); the zoo is a registry (:func:`register_zoo_entry`, :func:`get_zoo_entry`,
:func:`list_zoo_entries`) that :mod:`.standard` fills with the standard zoo.  :func:`build_suspect` turns an entry
into a model for one seed, :func:`verify_entry` builds and verifies it, :func:`run_zoo` does so for many.

Ground truth: a :class:`ZooResult` says what of the victim survives in its suspect (weights, outputs or nothing,
:func:`what_survives`) and whether it is useful (test accuracy >= :data:`USEFUL` of the victim's); it is a theft the
benchmark must catch (:attr:`ZooResult.counts_as_theft`) when it is derived from the victim and useful.  Agreement
with the victim is reported beside it, never used to drop a theft: innocents of the same data agree with a victim
about as much as many thefts do.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

import numpy as np

from ..audit.answers import ANSWER_FORMATS, format_answers
from ..audit.opened import Audit
from ..audit.sources import load_foundation
from ..audit.verdict import Kind, Verdict
from ..audit.verify import verify_outputs, weights_evidence
from ..data.images import ImageSet
from ..engine.recipe import TrainConfig
from ..errors import ConfigError
from ..method.metrics import accuracy
from ..models import LoadedModel, fresh_model
from ..protocols.baselines import extra_answers
from ..protocols.registry import list_protocols
from ..runtime.progress import Progress
from .attacks import SURVIVES, fidelity, get_attack, run_attack

OTHER_FOUNDATION = "other-foundation"   # student: another pretrained foundation (ZooContext.other_foundation)
SCRATCH = "scratch:"                    # student: "scratch:<timm arch>", trained from random weights
_SLUG = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
USEFUL = 0.9    # a theft counts when its test accuracy is at least this share of the victim's


# attacks that train a model (the others edit the victim's weights; with params["fine_tune"] they train too)
TRAINING_ATTACKS = frozenset({"fine_tune", "retrain_tail", "distill", "label_extraction", "innocent",
                              "innocent_distilled", "weight_average"})


@dataclass(frozen=True)
class ZooEntry:
    """One kind of suspect: ``id`` a slug (``fine-tune-light``), ``title`` what tables and pages show."""

    id: str                                           # unique in the zoo, lowercase words joined by '-'
    title: str                                        # unique too: "fine-tune, 1 epoch lr 1e-4"
    group: str                                        # the attack type the benchmark reports by
    attack: str                                       # a registered attack (forensics.zoo.attacks)
    data: str = "aux"                                 # a key of the zoo's data (the thief's, an innocent's)
    train: dict[str, Any] = field(default_factory=dict)    # changes to the victim's training recipe
    params: dict[str, Any] = field(default_factory=dict)   # the attack's own settings
    student: str | None = None                        # None (the victim's foundation), OTHER_FOUNDATION, SCRATCH+arch
    answers: str = "logits"                           # what its API returns (audit.answers.ANSWER_FORMATS)
    seed_offset: int = 0
    survives: str | None = None                       # what of the victim survives (None: as its attack says)

    @property
    def kind(self) -> Kind:
        return get_attack(self.attack).kind

    def expected_cost(self, recipe: TrainConfig) -> float:
        """Roughly what building and verifying this suspect costs, in epochs over the thief's data (a progress view
        weighs the entries by it): a pass over the queries, and the training if the attack trains."""
        trains = self.attack in TRAINING_ATTACKS or bool(self.params.get("fine_tune"))
        if not trains:
            return 0.3
        epochs = float(self.train.get("epochs", recipe.epochs))
        whole = (self.student is not None and self.student.startswith(SCRATCH)) or \
            ("trainable_blocks" in self.train and self.train["trainable_blocks"] is None)
        return 0.3 + epochs * (3.0 if whole else 1.0)

    def check(self, data_keys: set[str] | None = None) -> None:
        """Every field names something that exists (``data_keys``: the context's data, when known)."""
        if not _SLUG.match(self.id):
            raise ConfigError(f"zoo entry id {self.id!r} must be lowercase letters and digits joined by '-'")
        get_attack(self.attack)
        if data_keys is not None and self.data not in data_keys:
            raise ConfigError(f"zoo entry {self.id!r}: unknown data {self.data!r}; choose one of {sorted(data_keys)}")
        if self.survives is not None and self.survives not in SURVIVES:
            raise ConfigError(f"zoo entry {self.id!r}: survives must be one of {SURVIVES}, not {self.survives!r}")
        if self.kind == "innocent" and self.survives not in (None, "nothing"):
            raise ConfigError(f"zoo entry {self.id!r}: nothing of the victim survives in an innocent model")
        if self.answers not in ANSWER_FORMATS:
            raise ConfigError(f"zoo entry {self.id!r}: unknown answer format {self.answers!r}")
        if self.student not in (None, OTHER_FOUNDATION) and not str(self.student).startswith(SCRATCH):
            raise ConfigError(f"zoo entry {self.id!r}: student must be None, {OTHER_FOUNDATION!r} or "
                              f"'{SCRATCH}<timm architecture>', not {self.student!r}")
        TrainConfig(**{k: v for k, v in self.train.items()})  # validated at the door


_ZOO: dict[str, ZooEntry] = {}


def register_zoo_entry(entry: ZooEntry) -> ZooEntry:
    """Add ``entry`` to the zoo; its id and title must be new, and what it names must exist."""
    entry.check()
    for other in _ZOO.values():
        if entry.id == other.id or entry.title == other.title:
            raise ConfigError(f"a zoo entry {other.id!r} ({other.title!r}) is already registered; choose another id "
                              "and title")
    _ZOO[entry.id] = entry
    return entry


def list_zoo_entries(kind: Kind | None = None) -> list[ZooEntry]:
    """The registered zoo entries (of one kind: "stolen" or "innocent", if given), in registration order."""
    return [e for e in _ZOO.values() if kind is None or e.kind == kind]


def get_zoo_entry(key: str) -> ZooEntry:
    """A zoo entry by its id (or, as the tables show it, its title)."""
    found = _ZOO.get(key) or next((e for e in _ZOO.values() if e.title == key), None)
    if found is None:
        raise ConfigError(f"unknown zoo entry {key!r}; choose among: "
                          + "; ".join(f"{e.id} ({e.title})" for e in _ZOO.values()))
    return found


def select_zoo_entries(keys: list[str] | tuple[str, ...] | None) -> list[ZooEntry]:
    """Zoo entries by id or title (``None`` or ``["all"]``: the whole zoo); an unknown key is an error that lists
    the choices."""
    if not keys or list(keys) == ["all"]:
        return list_zoo_entries()
    return [get_zoo_entry(k) for k in keys]


def check_unique(entries: list[ZooEntry] | tuple[ZooEntry, ...]) -> None:
    ids = [e.id for e in entries]
    if len(set(ids)) != len(ids):
        raise ConfigError(f"zoo entries need unique ids; {sorted({i for i in ids if ids.count(i) > 1})} repeat")


@dataclass
class ZooContext:
    """What suspects are made from: the opened audit, the data by name, the base recipe, another foundation."""

    audit: Audit
    data: dict[str, ImageSet]
    recipe: TrainConfig                 # the victim's recipe; entries change parts of it
    other_foundation: str               # a model source (forensics.audit.sources), e.g. demo:lite1 or hf-hub:...
    test: ImageSet                      # labelled data for fidelity (never the audit's members or controls)
    max_epochs: int | None = None       # the reduced zoo of the tests caps every recipe

    @cached_property
    def victim_test_accuracy(self) -> float:
        """The victim's accuracy on the test data: what a useful theft must come close to."""
        return accuracy(self.audit.engine.logits(self.audit.victim, self.test), self.test.labels)


def what_survives(entry: ZooEntry, ctx: ZooContext) -> str:
    """What of the victim survives in the entry's suspect: its own say, or its attack's given the victim's recipe."""
    return entry.survives or get_attack(entry.attack).what_survives(entry.params, ctx.recipe)


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
    model.source = f"zoo:{entry.id}#seed{seed}"
    return model


@dataclass
class ZooResult:
    entry: ZooEntry
    seed: int
    verdict: Verdict
    agreement: float              # top-1 agreement with the victim on the test data (fidelity)
    test_accuracy: float
    seconds: float                # to build (or reuse) and verify
    survives: str                 # what of the victim survives in it: "weights", "outputs" or "nothing"
    victim_accuracy: float        # the victim's accuracy on the same test data
    times: dict[str, float] = field(default_factory=dict)       # seconds per stage: attack, answers, verify
    answers: np.ndarray | None = field(default=None, repr=False)  # what its API answered on the query set

    @property
    def useful(self) -> bool:
        """Test accuracy at least :data:`USEFUL` of the victim's: a theft a thief would deploy."""
        return self.test_accuracy >= USEFUL * self.victim_accuracy

    @property
    def counts_as_theft(self) -> bool:
        """Derived from the victim (its weights or its outputs survive) and useful: a theft a method must catch."""
        return self.entry.kind == "stolen" and self.survives != "nothing" and self.useful

    @property
    def role(self) -> str:
        """How the benchmark counts it: "theft", "innocent", "control" (a theft in which nothing of the victim
        survives: a negative-like control) or "failed theft" (derived, but not useful)."""
        if self.entry.kind == "innocent":
            return "innocent"
        if self.survives == "nothing":
            return "control"
        return "theft" if self.useful else "failed theft"

    def to_dict(self) -> dict[str, Any]:
        v, entry = self.verdict, self.entry
        return {"id": entry.id, "name": entry.title, "group": entry.group, "kind": entry.kind, "seed": self.seed,
                "attack": entry.attack, "answers": entry.answers, "survives": self.survives, "role": self.role,
                "agreement": self.agreement, "test_accuracy": self.test_accuracy,
                "victim_accuracy": self.victim_accuracy, "useful": self.useful, "seconds": self.seconds,
                "times": self.times, "p_values": {p: e["p_value"] for p, e in v.evidence.items()},
                "verdict": v.verdict}


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
    # a suspect published with its weights (full logits) gets the tests of weights too; one behind an API does not
    weights = weights_evidence(a, model) if entry.answers == "logits" else None
    verdict = verify_outputs(a, answers, f"{entry.title} (seed {seed})", baselines=baselines, extra=extra,
                             weights_evidence=weights)
    verdict.fingerprint = model.fingerprint
    fid = fidelity(a.engine, a.victim, model, ctx.test)
    t3 = time.perf_counter()
    return ZooResult(entry, seed, verdict, fid["agreement"], fid["test_accuracy"], t3 - t0, what_survives(entry, ctx),
                     ctx.victim_test_accuracy, {"attack": t1 - t0, "answers": t2 - t1, "verify": t3 - t2}, answers)


def run_zoo(ctx: ZooContext, entries: list[ZooEntry] | tuple[ZooEntry, ...], seeds: list[int],
            progress: Progress | None = None, on_result: Any = None, *, baselines: bool = False) -> list[ZooResult]:
    """Build and verify every entry for every seed; ``on_result(result)`` is called as each finishes."""
    check_unique(entries)
    results = []
    for seed in seeds:
        for entry in entries:
            r = verify_entry(entry, ctx, seed, baselines=baselines, progress=progress)
            results.append(r)
            if on_result is not None:
                on_result(r)
    return results


def summary_rows(results: list[ZooResult]) -> list[dict[str, Any]]:
    """One row per entry over its seeds: median p per protocol, and how many seeds each catches at 0.01."""
    rows: dict[str, dict[str, Any]] = {}
    for r in results:
        e = r.entry
        row = rows.setdefault(e.id, {"id": e.id, "name": e.title, "group": e.group, "kind": e.kind,
                                     "answers": e.answers, "survives": r.survives, "role": r.role, "agreement": [],
                                     "p": {}})
        row["agreement"].append(r.agreement)
        for p, evidence in r.verdict.evidence.items():
            row["p"].setdefault(p, []).append(evidence["p_value"])
    out = []
    for row in rows.values():
        out.append({**{k: row[k] for k in ("id", "name", "group", "kind", "answers", "survives", "role")},
                    "agreement": float(np.mean(row["agreement"])),
                    **{f"{p}_median_p": float(np.median(v)) for p, v in row["p"].items()},
                    **{f"{p}_below_0.01": f"{sum(x < 0.01 for x in v)}/{len(v)}" for p, v in row["p"].items()}})
    return out
