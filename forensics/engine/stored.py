"""Training through the artifact store: :func:`train_stored` trains a copy of a model once, keyed by the recipe
and the fingerprints of what it starts from and learns on; a re-run reuses it, an interrupted run resumes from
its last epoch checkpoint, and under torchrun rank 0 writes the entry the other workers then read.

A package may ship runs it trained once (the embedded demo ships its victim and its suspects, so that a first demo
trains only the audit's own shadow models): :func:`register_shipped` adds a provider that, asked for a stage and the
exact artifact key of a run, returns the tensors that differ from the start model and the fingerprint the result
must have.  A shipped run is used only when the key matches (same start, data, targets, recipe and precision) and
the rebuilt weights have that fingerprint; otherwise the run trains as usual."""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data.images import ImageSet
from ..data.transforms import Trigger
from ..errors import ArtifactError
from ..models import LoadedModel, jsonable_config, load_saved, save_model
from ..runtime import distributed
from ..runtime.store import Entry, artifact_key, fingerprint_array, read_json, write_json
from .engine import Engine
from .recipe import ProgressFn, TrainConfig, TrainHistory, TrainProgress

log = logging.getLogger(__name__)


@dataclass
class ShippedRun:
    """A training run a package ships: the tensors of the trained model that differ from its start model's, the
    trained model's fingerprint, and the run's history (``TrainHistory.to_dict()``)."""

    state: dict[str, torch.Tensor]
    fingerprint: str
    history: dict[str, Any] = field(default_factory=dict)


#: (stage, artifact key) -> the shipped run, or None; asked in order before a run trains
ShippedProvider = Callable[[str, str], "ShippedRun | None"]
_SHIPPED: list[ShippedProvider] = []


def register_shipped(provider: ShippedProvider) -> None:
    """Add a provider of shipped runs (see the module's docstring); registering the same one again does nothing."""
    if provider not in _SHIPPED:
        _SHIPPED.append(provider)


def shipped_model(stage: str, key: str, start: LoadedModel) -> tuple[LoadedModel, TrainHistory] | None:
    """The run ``stage``/``key`` rebuilt from a shipped run on a copy of ``start``, or None when no provider has it
    or its weights do not rebuild to the recorded fingerprint (then the run is trained)."""
    for provider in _SHIPPED:
        run = provider(stage, key)
        if run is None:
            continue
        model = start.clone()
        own = model.model.state_dict()
        if any(n not in own or own[n].shape != t.shape or own[n].dtype != t.dtype for n, t in run.state.items()):
            log.warning("the shipped %s run %s does not fit its start model; training it instead", stage, key)
            continue
        with torch.no_grad():
            for n, t in run.state.items():
                own[n].copy_(t)
        model.refresh_fingerprint()
        if model.fingerprint != run.fingerprint:
            log.warning("the shipped %s run %s rebuilds to another fingerprint; training it instead", stage, key)
            continue
        h = run.history
        return model, TrainHistory(epochs=list(h.get("epochs", [])), seconds=float(h.get("seconds", 0.0)),
                                   workers=int(h.get("workers", 1)), shipped=True)
    return None


def train_stored(engine: Engine, stage: str, start: LoadedModel, images: ImageSet,
                 targets: np.ndarray | Callable[[], np.ndarray], cfg: TrainConfig, *, trigger: Trigger | None = None,
                 triggered: np.ndarray | None = None,
                 extra: dict[str, Any] | None = None, progress: ProgressFn | None = None,
                 label: str | None = None, targets_key: str | None = None) -> tuple[LoadedModel, dict[str, Any]]:
    """Train a copy of ``start`` through the artifact store: reused when the same run exists,
    resumed from its last epoch checkpoint after an interruption.  Returns (model, history).

    ``targets_key``: what identifies targets computed here (a model's logits: :meth:`Engine.logits_key`), keyed
    instead of their bytes, which change in the last bits with the CPU kind; ``targets`` may then be a function that
    computes them, called only when the run trains (not when it is in the store or shipped)."""
    if callable(targets) and targets_key is None:
        raise ValueError("targets given as a function need a targets_key")
    config = {"train": cfg.to_dict(), "trigger": None if trigger is None else trigger.to_dict(),
              "data_config": jsonable_config(start.data_config), "precision": engine.precision, **(extra or {})}
    inputs = {"start": start.key, "images": images.fingerprint,
              "targets": targets_key or fingerprint_array(np.asarray(targets))}
    if triggered is not None:
        inputs["triggered"] = fingerprint_array(np.asarray(triggered, bool))
    group = distributed.world()
    if group.size > 1 and any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in start.model.modules()):
        # BatchNorm statistics are per worker: another model than one process trains, under another key
        config["workers"] = group.size
    key = artifact_key(stage, config, inputs)

    def train():
        if (shipped := shipped_model(stage, key, start)) is not None:
            model, hist = shipped
            if progress is not None:
                last = hist.epochs[-1] if hist.epochs else {}
                progress(TrainProgress(label or stage, cfg.epochs, cfg.epochs, 1, 1, float(last.get("loss", "nan")),
                                       float(last.get("accuracy", "nan")), True, shipped=True))
            return model, hist
        model = start.clone()
        hist = engine.train(model, images, targets() if callable(targets) else targets, cfg, trigger=trigger,
                            triggered=triggered, checkpoint_dir=engine.store.work_dir(stage, key), progress=progress,
                            label=label or stage)
        return model, hist

    def save(trained: Callable[[], tuple[LoadedModel, TrainHistory]]):
        def compute(tmp: Path):
            model, hist = trained()
            save_model(model, tmp, info={"stage": stage, "start": start.fingerprint})
            write_json(tmp / "history.json", hist.to_dict())
            return {"fingerprint": model.fingerprint}
        return engine.store.fetch(stage, config, inputs, compute)

    if group.size == 1:
        entry = save(train)
    else:
        # torchrun: all workers train together (outside the entry's lock: they meet in every step), rank 0 writes
        # the entry, the others read it; rank 0 decides whether it exists, so that all take the same path
        exists = distributed.broadcast(engine.store.has(stage, key))
        if not exists:
            trained = train()
            if group.main:
                save(lambda: trained)
        distributed.barrier()
        entry = Entry(engine.store.path(stage, key), not exists)
        if not engine.store.has(stage, key):
            raise ArtifactError(f"the {stage} entry {key} is not in the store after training: every torchrun worker "
                                f"must see the same store folder ({engine.store.root}); on several machines use a "
                                "network file system mounted at the same path")
    loaded = load_saved(entry.path, source=f"store:{stage}/{key}")
    if progress is not None and not entry.computed:  # say it is done, so a progress view does not wait
        progress(TrainProgress(label or stage, cfg.epochs, cfg.epochs, 1, 1, float("nan"), float("nan"), True))
    loaded.data_config = dict(start.data_config)
    return loaded, read_json(entry.path / "history.json")
