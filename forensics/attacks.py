"""The stealing-attack zoo and innocent recipes, all trained by the one engine.

Each entry is a function ``fn(victim, foundation, data, engine, cfg, progress=None) -> LoadedModel``
registered with :func:`register`; ``data`` is the thief's auxiliary data (or, for innocent models,
their own data).  :func:`list_attacks` lists them, :func:`run_attack` runs one by name.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Literal, Protocol, get_args

import numpy as np

from .data import ImageSet
from .errors import ConfigError
from .models import LoadedModel
from .training import ProgressFn, TrainConfig, train_stored

if TYPE_CHECKING:
    from .engine import Engine

Kind = Literal["stolen", "innocent"]
KINDS: tuple[str, ...] = get_args(Kind)


class AttackFn(Protocol):
    """What an attack is: the victim (or, for innocent models, only the foundation) and data in, a model out."""

    def __call__(self, victim: LoadedModel, foundation: LoadedModel, data: ImageSet, engine: "Engine",
                 cfg: TrainConfig, progress: ProgressFn | None = None) -> LoadedModel: ...


@dataclass(frozen=True)
class Attack:
    name: str
    kind: Kind          # "stolen" (derived from the victim) or "innocent" (a hard negative)
    description: str
    fn: AttackFn


_ATTACKS: dict[str, Attack] = {}


def register(name: str, kind: Kind, description: str) -> Callable[[AttackFn], AttackFn]:
    """Decorator: add ``fn`` to the zoo under ``name``."""
    if kind not in KINDS:
        raise ConfigError(f"attack {name!r}: kind must be one of {KINDS}, not {kind!r}")

    def deco(fn: AttackFn) -> AttackFn:
        if name in _ATTACKS:
            raise ConfigError(f"an attack named {name!r} is already registered ({_ATTACKS[name].fn.__module__}."
                              f"{_ATTACKS[name].fn.__name__}); choose another name")
        _ATTACKS[name] = Attack(name, kind, description, fn)
        return fn
    return deco


def list_attacks(kind: Kind | None = None) -> list[Attack]:
    """Every registered attack (of one kind, if given), in registration order."""
    if kind is not None and kind not in KINDS:
        raise ConfigError(f"kind must be one of {KINDS}, not {kind!r}")
    return [a for a in _ATTACKS.values() if kind is None or a.kind == kind]


def get_attack(name: str) -> Attack:
    if name not in _ATTACKS:
        raise ConfigError(f"unknown attack {name!r}; choose one of {sorted(_ATTACKS)}")
    return _ATTACKS[name]


def run_attack(name: str, victim: LoadedModel, foundation: LoadedModel, data: ImageSet | None, engine: "Engine",
               cfg: TrainConfig, progress: ProgressFn | None = None, **kw: Any) -> LoadedModel:
    return get_attack(name).fn(victim, foundation, data, engine, cfg, progress=progress, **kw)


@register("direct_copy", "stolen", "the victim's weights, unchanged")
def direct_copy(victim: LoadedModel, foundation: LoadedModel, data: ImageSet, engine: "Engine", cfg: TrainConfig,
                progress: ProgressFn | None = None) -> LoadedModel:
    return victim.clone()


@register("fine_tune", "stolen", "the victim fine-tuned on the thief's auxiliary data")
def fine_tune(victim: LoadedModel, foundation: LoadedModel, data: ImageSet, engine: "Engine", cfg: TrainConfig,
              progress: ProgressFn | None = None) -> LoadedModel:
    model, _ = train_stored(engine, "attack_fine_tune", victim, data, data.labels, cfg, progress=progress,
                            label="fine-tuned copy")
    return model


@register("distill", "stolen", "a student of the foundation trained on the victim's logits over auxiliary data")
def distill(victim: LoadedModel, foundation: LoadedModel, data: ImageSet, engine: "Engine", cfg: TrainConfig,
            progress: ProgressFn | None = None) -> LoadedModel:
    teacher = engine.logits(victim, data)
    model, _ = train_stored(engine, "attack_distill", foundation, data, teacher, cfg, progress=progress,
                            label="distilled copy")
    return model


@register("label_extraction", "stolen",
          "a student of the foundation trained on the victim's top-1 answers over auxiliary data")
def label_extraction(victim: LoadedModel, foundation: LoadedModel, data: ImageSet, engine: "Engine",
                     cfg: TrainConfig, progress: ProgressFn | None = None) -> LoadedModel:
    labels = engine.logits(victim, data).argmax(1).astype(np.int64)
    model, _ = train_stored(engine, "attack_label_extraction", foundation, data, labels, cfg, progress=progress,
                            label="label-query extraction")
    return model


@register("innocent", "innocent", "fine-tuned from the same foundation on data disjoint from the victim's")
def innocent(victim: LoadedModel, foundation: LoadedModel, data: ImageSet, engine: "Engine", cfg: TrainConfig,
             progress: ProgressFn | None = None) -> LoadedModel:
    model, _ = train_stored(engine, "innocent", foundation, data, data.labels, cfg, progress=progress,
                            label="innocent model")
    return model
