"""Training through the artifact store: :func:`train_stored` trains a copy of a model once, keyed by the recipe
and the fingerprints of what it starts from and learns on; a re-run reuses it, an interrupted run resumes from
its last epoch checkpoint, and under torchrun rank 0 writes the entry the other workers then read."""
from __future__ import annotations

from collections.abc import Callable
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


def train_stored(engine: Engine, stage: str, start: LoadedModel, images: ImageSet, targets: np.ndarray,
                 cfg: TrainConfig, *, trigger: Trigger | None = None, triggered: np.ndarray | None = None,
                 extra: dict[str, Any] | None = None, progress: ProgressFn | None = None,
                 label: str | None = None) -> tuple[LoadedModel, dict[str, Any]]:
    """Train a copy of ``start`` through the artifact store: reused when the same run exists,
    resumed from its last epoch checkpoint after an interruption.  Returns (model, history)."""
    config = {"train": cfg.to_dict(), "trigger": None if trigger is None else trigger.to_dict(),
              "data_config": jsonable_config(start.data_config), "precision": engine.precision, **(extra or {})}
    inputs = {"start": start.key, "images": images.fingerprint, "targets": fingerprint_array(targets)}
    if triggered is not None:
        inputs["triggered"] = fingerprint_array(np.asarray(triggered, bool))
    group = distributed.world()
    if group.size > 1 and any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in start.model.modules()):
        # BatchNorm statistics are per worker: another model than one process trains, under another key
        config["workers"] = group.size
    key = artifact_key(stage, config, inputs)

    def train():
        model = start.clone()
        hist = engine.train(model, images, targets, cfg, trigger=trigger, triggered=triggered,
                            checkpoint_dir=engine.store.work_dir(stage, key), progress=progress,
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
