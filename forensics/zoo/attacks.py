"""The stealing attacks and innocent recipes, all trained by the one engine.

Each is a function ``fn(victim, foundation, data, engine, cfg, progress=None, **params) -> LoadedModel``
registered with :func:`register_attack`; ``data`` is the thief's data (or, for innocent models, their own data),
``cfg`` the training recipe, ``params`` the attack's own settings (pruning amount, quantisation bits, a
student model...).  :func:`list_attacks` lists them, :func:`run_attack` runs one by name; concrete suspects
(attack + recipe + data + answer format) are listed in :mod:`forensics.zoo.entries`.

Each attack says what of the victim survives in its model (:data:`SURVIVES`): its ``weights``, its ``outputs``
(the model learned from its answers), or ``nothing`` (innocent models, and a theft that re-trains exactly what the
victim trained): the benchmark counts a "nothing" entry as a negative-like control, never as a missed theft.
:func:`fidelity` measures a suspect's agreement with the victim and its test accuracy (a theft counts when it is
useful: accuracy >= 90 % of the victim's).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ..audit.verdict import KINDS, Kind
from ..data.images import ImageSet
from ..engine.engine import Engine
from ..engine.recipe import ProgressFn, TrainConfig
from ..engine.stored import train_stored
from ..errors import ConfigError
from ..models import LoadedModel
from .weight_edits import apply_masks, average_weights, fake_quantize, magnitude_masks, perturb_weights, reinit_tail

#: what of the victim survives in a suspect: its weights, its outputs (the suspect learned from its answers), nothing
SURVIVES = ("weights", "outputs", "nothing")
# an attack whose answer depends on its settings: (the entry's params, the victim's recipe) -> one of SURVIVES
SurvivesFn = Callable[[dict[str, Any], TrainConfig], str]

# What an attack is: ``fn(victim, foundation, data, engine, cfg, progress=None, **params) -> LoadedModel`` - the
# victim (or, for innocent models, only the foundation) and data in, a model out; ``params`` are keyword-only
AttackFn = Callable[..., LoadedModel]


@dataclass(frozen=True)
class Attack:
    name: str
    kind: Kind          # "stolen" (derived from the victim) or "innocent" (a hard negative)
    description: str
    fn: AttackFn
    survives: str | SurvivesFn = "weights"   # what of the victim survives (SURVIVES), or how to tell from settings

    def what_survives(self, params: dict[str, Any], victim_recipe: TrainConfig) -> str:
        """What of the victim survives in this attack's model, given the entry's settings and the victim's recipe."""
        out = self.survives(params, victim_recipe) if callable(self.survives) else self.survives
        if out not in SURVIVES:
            raise ConfigError(f"attack {self.name!r}: what survives must be one of {SURVIVES}, not {out!r}")
        return out


_ATTACKS: dict[str, Attack] = {}


def register_attack(name: str, kind: Kind, description: str, survives: str | SurvivesFn | None = None
                    ) -> Callable[[AttackFn], AttackFn]:
    """Decorator: add ``fn`` to the zoo under ``name``; ``survives``: what of the victim survives in its models
    (:data:`SURVIVES`; innocent attacks: always "nothing"; thefts: "weights" unless said)."""
    if kind not in KINDS:
        raise ConfigError(f"attack {name!r}: kind must be one of {KINDS}, not {kind!r}")
    if survives is None:
        survives = "nothing" if kind == "innocent" else "weights"
    if kind == "innocent" and survives != "nothing":
        raise ConfigError(f"attack {name!r}: nothing of the victim survives in an innocent model")
    if isinstance(survives, str) and survives not in SURVIVES:
        raise ConfigError(f"attack {name!r}: survives must be one of {SURVIVES} or a function, not {survives!r}")

    def deco(fn: AttackFn) -> AttackFn:
        if name in _ATTACKS:
            raise ConfigError(f"an attack named {name!r} is already registered ({_ATTACKS[name].fn.__module__}."
                              f"{_ATTACKS[name].fn.__name__}); choose another name")
        _ATTACKS[name] = Attack(name, kind, description, fn, survives)
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


def run_attack(name: str, victim: LoadedModel, foundation: LoadedModel, data: ImageSet, engine: Engine,
               cfg: TrainConfig, progress: ProgressFn | None = None, **kw: Any) -> LoadedModel:
    return get_attack(name).fn(victim, foundation, data, engine, cfg, progress=progress, **kw)


def _victim_labels(victim: LoadedModel, data: ImageSet, engine: Engine) -> np.ndarray:
    return engine.logits(victim, data).argmax(1).astype(np.int64)


def noisy_labels(labels: np.ndarray, share: float, num_classes: int, seed: int) -> np.ndarray:
    """``labels`` with a ``share`` of them (chosen at random, seeded) replaced by another class drawn at random."""
    if not 0 <= share < 1:
        raise ConfigError(f"The 'label_noise' parameter must be in [0, 1). Got {share!r} instead.")
    rng = np.random.default_rng([seed, 31])
    out = np.asarray(labels, np.int64).copy()
    rows = rng.permutation(len(out))[:int(round(share * len(out)))]
    out[rows] = (out[rows] + rng.integers(1, num_classes, len(rows))) % num_classes
    return out


# --------------------------------------------------------------------------------------------
# weight-derived thefts


@register_attack("direct_copy", "stolen", "the victim's weights, unchanged")
def direct_copy(victim: LoadedModel, foundation: LoadedModel, data: ImageSet, engine: Engine, cfg: TrainConfig,
                progress: ProgressFn | None = None) -> LoadedModel:
    return victim.clone()


def _fine_tuned(engine: Engine, model: LoadedModel, data: ImageSet, cfg: TrainConfig, progress: ProgressFn | None,
                label: str, targets: np.ndarray | None = None) -> LoadedModel:
    """``model`` (the victim or an edited copy) fine-tuned on the thief's data (its labels unless ``targets``)."""
    tuned, _ = train_stored(engine, "attack_fine_tune", model, data, data.labels if targets is None else targets, cfg,
                            progress=progress, label=label)
    return tuned


@register_attack("fine_tune", "stolen", "the victim fine-tuned on the thief's data: with its true labels, or with the "
                                 "victim's own answers (pseudo_labels=True), a share of them replaced by random "
                                 "classes (label_noise); strength, augmentation, label smoothing and weight decay "
                                 "come from the training recipe")
def fine_tune(victim: LoadedModel, foundation: LoadedModel, data: ImageSet, engine: Engine, cfg: TrainConfig,
              progress: ProgressFn | None = None, *, pseudo_labels: bool = False,
              label_noise: float = 0.0) -> LoadedModel:
    targets = _victim_labels(victim, data, engine) if pseudo_labels else data.labels
    if label_noise:
        targets = noisy_labels(targets, label_noise, victim.num_classes, cfg.seed)
    return _fine_tuned(engine, victim, data, cfg, progress, "fine-tuned copy", targets)


@register_attack("prune", "stolen", "global magnitude pruning of the victim's conv and linear weights (amount), "
                             "optionally fine-tuned on the thief's data with the pruned weights kept at zero, "
                             "optionally quantised afterwards (quantize_bits)")
def prune(victim: LoadedModel, foundation: LoadedModel, data: ImageSet, engine: Engine, cfg: TrainConfig,
          progress: ProgressFn | None = None, *, amount: float = 0.5, fine_tune: bool = False,
          quantize_bits: int | None = None) -> LoadedModel:
    model = victim.clone()
    masks = magnitude_masks(model.model, amount)
    apply_masks(model.model, masks)
    model.refresh_fingerprint()
    if fine_tune:
        model, _ = train_stored(engine, "attack_prune_fine_tune", model, data, data.labels, cfg, progress=progress,
                                label="pruned and fine-tuned copy")
        apply_masks(model.model, masks)  # fine-tuning moved pruned weights: prune them again
    if quantize_bits:
        fake_quantize(model.model, quantize_bits)
    return model.refresh_fingerprint()


@register_attack("quantize", "stolen", "the victim's conv and linear weights rounded to `bits`-bit integers per output "
                                "channel (post-training weight quantisation)")
def quantize(victim: LoadedModel, foundation: LoadedModel, data: ImageSet, engine: Engine, cfg: TrainConfig,
             progress: ProgressFn | None = None, *, bits: int = 8) -> LoadedModel:
    model = victim.clone()
    fake_quantize(model.model, bits)
    return model.refresh_fingerprint()


def _retrain_tail_survives(params: dict[str, Any], victim_recipe: TrainConfig) -> str:
    """Nothing of the victim survives when the re-trained tail covers everything the victim trained."""
    trained = victim_recipe.trainable_blocks
    return "nothing" if trained is not None and int(params.get("blocks", 1)) >= trained else "weights"


@register_attack("retrain_tail", "stolen", "the victim's last `blocks` blocks and head re-initialised and "
                                           "re-trained on the thief's labelled data; everything before them is the "
                                           "victim's", survives=_retrain_tail_survives)
def retrain_tail(victim: LoadedModel, foundation: LoadedModel, data: ImageSet, engine: Engine, cfg: TrainConfig,
                 progress: ProgressFn | None = None, *, blocks: int = 1) -> LoadedModel:
    start = victim.clone()
    reinit_tail(start.model, blocks, seed=cfg.seed)
    start.refresh_fingerprint()
    model, _ = train_stored(engine, "attack_retrain_tail", start, data, data.labels,
                            replace(cfg, trainable_blocks=blocks), progress=progress, label="re-trained tail")
    return model


@register_attack("weight_noise", "stolen", "Gaussian noise added to every conv and linear weight of the victim "
                                    "(`sigma` times each tensor's own standard deviation, seeded), optionally "
                                    "fine-tuned on the thief's data afterwards (fine_tune=True)")
def weight_noise(victim: LoadedModel, foundation: LoadedModel, data: ImageSet, engine: Engine, cfg: TrainConfig,
                 progress: ProgressFn | None = None, *, sigma: float = 0.1, fine_tune: bool = False) -> LoadedModel:
    model = victim.clone()
    perturb_weights(model.model, sigma, seed=cfg.seed)
    model.refresh_fingerprint()
    return _fine_tuned(engine, model, data, cfg, progress, "noised and fine-tuned copy") if fine_tune else model


@register_attack("weight_average", "stolen", "the victim's weights averaged with an innocent model's (the foundation "
                                      "trained on the thief's data with the recipe): `weight` of the victim, the "
                                      "rest of the innocent model (a model soup)")
def weight_average(victim: LoadedModel, foundation: LoadedModel, data: ImageSet, engine: Engine, cfg: TrainConfig,
                   progress: ProgressFn | None = None, *, weight: float = 0.5) -> LoadedModel:
    other, _ = train_stored(engine, "innocent", foundation, data, data.labels, cfg, progress=progress,
                            label="innocent model to average with")
    model = victim.clone()
    average_weights(model.model, other.model, weight)
    return model.refresh_fingerprint()


@register_attack("norm_recalibration", "stolen", "the victim with every BatchNorm layer's running statistics "
                                          "re-estimated on the thief's data, optionally fine-tuned afterwards")
def norm_recalibration(victim: LoadedModel, foundation: LoadedModel, data: ImageSet, engine: Engine, cfg: TrainConfig,
                       progress: ProgressFn | None = None, *, fine_tune: bool = False) -> LoadedModel:
    model = victim.clone()
    if not engine.recalibrate_norm(model, data):
        raise ConfigError("the victim has no BatchNorm layers: recalibrating normalisation statistics changes nothing; "
                          "leave this attack out")
    return _fine_tuned(engine, model, data, cfg, progress, "recalibrated and fine-tuned copy") if fine_tune else model


# --------------------------------------------------------------------------------------------
# output-derived thefts: the thief only queries the victim


@register_attack("distill", "stolen", "a student (the foundation, another pretrained model, or a model trained from "
                               "scratch) trained on the victim's logits over the thief's data (temperature from "
                               "the recipe)", survives="outputs")
def distill(victim: LoadedModel, foundation: LoadedModel, data: ImageSet, engine: Engine, cfg: TrainConfig,
            progress: ProgressFn | None = None, *, student: LoadedModel | None = None) -> LoadedModel:
    model, _ = train_stored(engine, "attack_distill", student or foundation, data, lambda: engine.logits(victim, data),
                            cfg, progress=progress, label="distilled copy", targets_key=engine.logits_key(victim, data))
    return model


@register_attack("label_extraction", "stolen",
          "a student (the foundation, another pretrained model, or a model trained from scratch) trained on the "
          "victim's top-1 answers over the thief's data", survives="outputs")
def label_extraction(victim: LoadedModel, foundation: LoadedModel, data: ImageSet, engine: Engine,
                     cfg: TrainConfig, progress: ProgressFn | None = None, *,
                     student: LoadedModel | None = None) -> LoadedModel:
    model, _ = train_stored(engine, "attack_label_extraction", student or foundation, data,
                            lambda: _victim_labels(victim, data, engine), cfg, progress=progress,
                            label="label-query extraction", targets_key=f"top-1 of {engine.logits_key(victim, data)}")
    return model


# --------------------------------------------------------------------------------------------
# innocent models (hard negatives): they never see the victim


@register_attack("innocent", "innocent", "trained on data disjoint from the victim's: from the same foundation, "
                                         "another pretrained model or from scratch (student)")
def innocent(victim: LoadedModel, foundation: LoadedModel, data: ImageSet, engine: Engine, cfg: TrainConfig,
             progress: ProgressFn | None = None, *, student: LoadedModel | None = None) -> LoadedModel:
    model, _ = train_stored(engine, "innocent", student or foundation, data, data.labels, cfg, progress=progress,
                            label="innocent model")
    return model


@register_attack("innocent_distilled", "innocent", "a student distilled from an innocent teacher (the foundation "
                                            "fine-tuned on teacher_data) over the data it is given")
def innocent_distilled(victim: LoadedModel, foundation: LoadedModel, data: ImageSet, engine: Engine,
                       cfg: TrainConfig, progress: ProgressFn | None = None, *, teacher_data: ImageSet,
                       student: LoadedModel | None = None) -> LoadedModel:
    teacher, _ = train_stored(engine, "innocent", foundation, teacher_data, teacher_data.labels, cfg,
                              progress=progress, label="innocent teacher")
    model, _ = train_stored(engine, "innocent_distilled", student or foundation, data, engine.logits(teacher, data),
                            cfg, progress=progress, label="student of an innocent teacher")
    return model


def fidelity(engine: Engine, victim: LoadedModel, suspect: LoadedModel, test: ImageSet) -> dict[str, float]:
    """How faithful a suspect is: its top-1 agreement with the victim and its accuracy on labelled test data.
    A theft that failed (low agreement) is no hard positive for a detector."""
    v, s = engine.logits(victim, test).argmax(1), engine.logits(suspect, test).argmax(1)
    return {"agreement": float((v == s).mean()), "test_accuracy": float((s == test.labels).mean())}
