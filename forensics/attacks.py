"""The stealing-attack zoo and innocent recipes, all trained by the one engine.

Each entry takes (victim, foundation, data, engine, config) and returns a suspect model.  ``data`` is
the thief's auxiliary data (or, for innocent models, their own data).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from .data import ImageSet
from .engine import Engine, ProgressFn, TrainConfig, train_stored
from .models import LoadedModel

AttackFn = Callable[..., LoadedModel]
ATTACKS: dict[str, "Attack"] = {}


@dataclass(frozen=True)
class Attack:
    name: str
    kind: str          # "stolen" or "innocent"
    description: str
    fn: AttackFn


def register(name: str, kind: str, description: str):
    def deco(fn: AttackFn) -> AttackFn:
        ATTACKS[name] = Attack(name, kind, description, fn)
        return fn
    return deco


def run_attack(name: str, victim: LoadedModel, foundation: LoadedModel, data: ImageSet | None, engine: Engine,
               cfg: TrainConfig, progress: ProgressFn | None = None, **kw: Any) -> LoadedModel:
    if name not in ATTACKS:
        from .errors import ConfigError
        raise ConfigError(f"unknown attack {name!r}; choose one of {sorted(ATTACKS)}")
    return ATTACKS[name].fn(victim, foundation, data, engine, cfg, progress=progress, **kw)


@register("direct_copy", "stolen", "the victim's weights, unchanged")
def direct_copy(victim, foundation, data, engine, cfg, progress=None):
    return victim.clone()


@register("fine_tune", "stolen", "the victim fine-tuned on the thief's auxiliary data")
def fine_tune(victim, foundation, data, engine, cfg, progress=None):
    model, _ = train_stored(engine, "attack_fine_tune", victim, data, data.labels, cfg, progress=progress,
                            label="fine-tuned copy")
    return model


@register("distill", "stolen", "a student of the foundation trained on the victim's logits over auxiliary data")
def distill(victim, foundation, data, engine, cfg, progress=None):
    teacher = engine.logits(victim, data)
    model, _ = train_stored(engine, "attack_distill", foundation, data, teacher, cfg, progress=progress,
                            label="distilled copy")
    return model


@register("label_extraction", "stolen",
          "a student of the foundation trained on the victim's top-1 answers over auxiliary data")
def label_extraction(victim, foundation, data, engine, cfg, progress=None):
    labels = engine.logits(victim, data).argmax(1).astype(np.int64)
    model, _ = train_stored(engine, "attack_label_extraction", foundation, data, labels, cfg, progress=progress,
                            label="label-query extraction")
    return model


@register("innocent", "innocent", "fine-tuned from the same foundation on data disjoint from the victim's")
def innocent(victim, foundation, data, engine, cfg, progress=None):
    model, _ = train_stored(engine, "innocent", foundation, data, data.labels, cfg, progress=progress,
                            label="innocent model")
    return model
