"""How models see images: timm's eval transform from a model's data config (images converted to RGB - grayscale
becomes 3 channels - and resized to the model's input size), seeded augmented views, batches in row order, and the
BadNets-style :class:`Trigger`, stamped on the resized tensor before normalisation so no crop can remove it."""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError
from .images import ImageSet


@dataclass(frozen=True)
class Trigger:
    """A BadNets-style square patch stamped after resizing, ``size`` a fraction of the side."""

    size: float = 0.125
    value: float = 1.0
    position: str = "bottom-right"

    def __post_init__(self) -> None:
        if not 0 < self.size <= 0.5:
            raise ConfigError(f"The 'size' parameter of Trigger must be in (0, 0.5]. Got {self.size} instead.")
        if not 0.0 <= self.value <= 1.0:
            raise ConfigError(f"The 'value' parameter of Trigger must be in [0, 1]. Got {self.value} instead.")
        if self.position not in ("bottom-right", "top-left", "bottom-left", "top-right"):
            raise ConfigError(f"unknown trigger position {self.position!r}; use bottom-right, top-left, "
                              "bottom-left or top-right")

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """Stamp the patch on (..., C, H, W) tensors with values in [0, 1]."""
        h, w = x.shape[-2:]
        s = max(1, int(round(self.size * min(h, w))))
        x = x.clone()
        rows = slice(h - s, h) if "bottom" in self.position else slice(0, s)
        cols = slice(w - s, w) if "right" in self.position else slice(0, s)
        x[..., rows, cols] = self.value
        return x

    def to_dict(self) -> dict[str, Any]:
        return {"size": self.size, "value": self.value, "position": self.position}


class EvalTransform:
    """timm's eval transform for a data config, split into (geometry -> [0,1] tensor) and normalise."""

    def __init__(self, data_config: dict[str, Any]):
        import timm.data
        from torchvision import transforms as T

        cfg = {k: data_config[k] for k in ("input_size", "interpolation", "mean", "std", "crop_pct", "crop_mode")
               if k in data_config}
        full = timm.data.create_transform(**cfg, is_training=False)
        steps = list(full.transforms)
        if not isinstance(steps[-1], T.Normalize):
            raise ConfigError("unexpected timm eval transform (no final Normalize)")
        self.geometry = T.Compose(steps[:-1])
        self.mean = torch.tensor(cfg["mean"]).view(3, 1, 1)
        self.std = torch.tensor(cfg["std"]).view(3, 1, 1)
        self.key = {k: list(v) if isinstance(v, tuple) else v for k, v in cfg.items()}

    def __call__(self, img, trigger: Trigger | None = None) -> torch.Tensor:
        x = self.geometry(img)
        if trigger is not None:
            x = trigger.apply(x)
        return (x - self.mean) / self.std


class TransformedImages(torch.utils.data.Dataset):
    """(tensor, row) pairs; rows listed in ``triggered`` get the trigger."""

    def __init__(self, images: ImageSet, transform: EvalTransform, trigger: Trigger | None = None,
                 triggered: np.ndarray | None = None):
        self.images, self.transform, self.trigger = images, transform, trigger
        self.triggered = np.zeros(len(images), bool) if triggered is None else np.asarray(triggered, bool)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        trig = self.trigger if self.triggered[i] else None
        return self.transform(self.images.pil(i), trig), i


class AugmentedImages(TransformedImages):
    """(tensor, row) pairs of random views: a resized crop of 60-100 % of the area (aspect 3/4-4/3) and a
    horizontal flip with probability 1/2, drawn from (seed, epoch, row), so a run is reproducible whatever
    the batch order.  Set :attr:`epoch` before each epoch.  The trigger, if any, is stamped after."""

    SCALE = (0.6, 1.0)
    RATIO = (3 / 4, 4 / 3)

    def __init__(self, images: ImageSet, transform: EvalTransform, seed: int, trigger: Trigger | None = None,
                 triggered: np.ndarray | None = None):
        super().__init__(images, transform, trigger, triggered)
        self.seed, self.epoch = seed, 0

    def __getitem__(self, i: int):
        import math

        from torchvision.transforms import functional as TF

        g = torch.Generator().manual_seed((self.seed * 1_000_003 + self.epoch) * 10_007 + int(i))
        x = self.transform.geometry(self.images.pil(i))
        h, w = x.shape[-2:]
        u = torch.rand(4, generator=g).tolist()
        area = h * w * (self.SCALE[0] + (self.SCALE[1] - self.SCALE[0]) * u[0])
        ratio = math.exp(math.log(self.RATIO[0]) + (math.log(self.RATIO[1]) - math.log(self.RATIO[0])) * u[1])
        ch = max(1, min(h, int(round(math.sqrt(area / ratio)))))
        cw = max(1, min(w, int(round(math.sqrt(area * ratio)))))
        top, left = int(u[2] * (h - ch + 1)), int(u[3] * (w - cw + 1))
        x = TF.resized_crop(x, min(top, h - ch), min(left, w - cw), ch, cw, [h, w], antialias=True)
        if torch.rand(1, generator=g).item() < 0.5:
            x = TF.hflip(x)
        if self.trigger is not None and self.triggered[i]:
            x = self.trigger.apply(x)
        return (x - self.transform.mean) / self.transform.std, i


def iter_batches(images: ImageSet, data_config: dict[str, Any], batch_size: int = 256, *,
                 trigger: Trigger | None = None, triggered: np.ndarray | None = None,
                 num_workers: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Batches of normalised eval-transformed images, in row order."""
    if trigger is not None and triggered is None:
        triggered = np.ones(len(images), bool)
    ds = TransformedImages(images, EvalTransform(data_config), trigger, triggered)
    loader = torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    yield from loader
