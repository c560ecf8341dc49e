"""The training recipe and what a training run reports: plain data, the leaf of the engine package.

* :class:`TrainConfig` - how to fine-tune (epochs, learning rate, depth, augmentation, distillation temperature);
* :class:`TrainProgress` - what a progress callback receives after each step;
* :class:`TrainHistory` - per-epoch loss and accuracy of a finished run.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import ConfigError

#: bounds a recipe from a record or a form may not pass (a record is another party's file: its epochs could ask a
#: server for a year of training)
MAX_EPOCHS = 1_000
MAX_BATCH = 65_536


@dataclass(frozen=True)
class TrainConfig:
    """How to fine-tune.  ``trainable_blocks=None`` trains every weight (full fine-tuning).

    ``augment``: random resized crops (60-100 % of the area) and horizontal flips, drawn per sample and epoch
    from the seed; the frozen prefix then runs on every batch (no cached activations)."""

    epochs: int = 6
    lr: float = 1e-3
    weight_decay: float = 0.01
    batch_size: int = 64
    warmup_fraction: float = 0.1
    trainable_blocks: int | None = 1
    temperature: float = 4.0
    label_smoothing: float = 0.0
    seed: int = 0
    augment: bool = False

    def __post_init__(self) -> None:
        checks = [
            ("epochs", 1 <= self.epochs <= MAX_EPOCHS, f"an integer in [1, {MAX_EPOCHS}]"),
            ("lr", 0 < self.lr < 1, "in (0, 1)"),
            ("weight_decay", 0 <= self.weight_decay < 10, "in [0, 10)"),
            ("batch_size", 2 <= self.batch_size <= MAX_BATCH, f"an integer in [2, {MAX_BATCH}]"),
            ("warmup_fraction", 0 <= self.warmup_fraction < 1, "in [0, 1)"),
            ("trainable_blocks", self.trainable_blocks is None or self.trainable_blocks >= 0, "None or >= 0"),
            ("temperature", 0 < self.temperature <= 1000, "in (0, 1000]"),
            ("label_smoothing", 0 <= self.label_smoothing < 1, "in [0, 1)"),
        ]
        for name, ok, rule in checks:
            if not ok:
                raise ConfigError(f"The {name!r} parameter of TrainConfig must be {rule}. "
                                  f"Got {getattr(self, name)!r} instead.")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if not self.augment:  # the cache keys of runs without augmentation stay what they were
            d.pop("augment")
        return d


@dataclass
class TrainProgress:
    """What a progress callback receives after each optimisation step (``done`` at the end, also
    when the run was reused from the store: then ``loss`` and ``accuracy`` are NaN)."""

    label: str
    epoch: int
    epochs: int
    step: int
    total_steps: int
    loss: float
    accuracy: float
    done: bool = False
    shipped: bool = False  # the run's weights came with the package (:func:`~.stored.register_shipped`), not trained


@dataclass
class TrainHistory:
    epochs: list[dict[str, float]] = field(default_factory=list)
    resumed_from_epoch: int = 0
    seconds: float = 0.0
    workers: int = 1  # torchrun workers that trained it (data parallel); 1 in one process
    shipped: bool = False  # its weights came with the package: ``seconds`` is the training time where they were made

    def to_dict(self) -> dict[str, Any]:
        d = {"epochs": self.epochs, "resumed_from_epoch": self.resumed_from_epoch, "seconds": self.seconds,
             "workers": self.workers}
        return {**d, "shipped": True} if self.shipped else d


ProgressFn = Callable[[TrainProgress], None]


CHECKPOINT = "checkpoint.pt"
