"""Foundations: a pre-trained backbone with a fresh, seeded head of the audit's class count."""
from __future__ import annotations

import copy
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from ..errors import CorruptWeightsError, ModelSourceError
from .loaded import LoadedModel, data_config_for, fingerprint_state_dict
from .timm_models import create_timm_model
from .weights import read_weights


def as_foundation(loaded: LoadedModel, num_classes: int, *, seed: int = 0) -> LoadedModel:
    """The same backbone with a fresh, seeded ``num_classes`` head (timm's reset_classifier)."""
    model: Any = copy.deepcopy(loaded.model)  # a timm classifier, duck-typed
    if not hasattr(model, "reset_classifier"):
        raise ModelSourceError(f"{loaded.source}: cannot attach a {num_classes}-class head (not a timm classifier)")
    with torch.random.fork_rng(devices=[]):  # seeded head, caller's RNG untouched
        torch.manual_seed(seed)
        model.reset_classifier(num_classes)
    model.num_classes = num_classes
    model.eval()
    return replace(loaded, model=model, num_classes=num_classes,
                   fingerprint=fingerprint_state_dict(model.state_dict()),
                   extra={"pretrained_classes": loaded.num_classes, **loaded.extra,
                          "head": f"new {num_classes}-class head, seed {seed}"})


def foundation_from_weights(path: Path, num_classes: int, *, arch: str | None, input_size: int | None = None,
                            seed: int = 0) -> LoadedModel:
    """A weights file loaded into ``arch`` without its classifier weights (whatever their class count)."""
    if not arch:
        raise ModelSourceError(f"{path.name}: a foundation weights file needs its timm architecture (--arch)")
    state = read_weights(path)
    model: Any = create_timm_model(arch, num_classes, source=str(path))
    head = model.get_classifier()
    head_names = {n for n, m in model.named_modules() if m is head}
    state = {k: v for k, v in state.items() if k.rsplit(".", 1)[0] not in head_names}
    try:  # strict=False still raises on tensors of the wrong shape
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as e:
        why = " ".join(str(e).splitlines()[:2])[:300]
        raise CorruptWeightsError(f"{path}: the weights do not fit {arch!r} ({why}); check the architecture "
                                  "name") from e
    missing = [k for k in missing if k.rsplit(".", 1)[0] not in head_names]
    if missing or unexpected:
        raise CorruptWeightsError(f"{path}: the weights do not fit {arch!r} (missing {missing[:3]}, unexpected "
                                  f"{unexpected[:3]}); check the architecture name")
    loaded = LoadedModel(model.eval(), arch, num_classes, str(path), "", data_config_for(model, input_size))
    return as_foundation(loaded, num_classes, seed=seed)
