"""A loaded classifier, its fingerprint, and its preprocessing config."""
from __future__ import annotations

import copy
import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import nn

from ..errors import ModelSourceError


@dataclass
class LoadedModel:
    """A classifier and what we know about it."""

    model: nn.Module
    arch: str
    num_classes: int
    source: str
    fingerprint: str
    data_config: dict[str, Any]
    revision: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def num_params(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    @property
    def key(self) -> str:
        """What identifies the model's function in cache keys: its architecture and its weights."""
        return f"{self.arch}:{self.fingerprint}"

    def card(self) -> dict[str, Any]:
        """What a report or the dashboard shows about this model."""
        return {
            "source": self.source,
            "revision": self.revision,
            "arch": self.arch,
            "num_classes": self.num_classes,
            "num_params": self.num_params,
            "fingerprint": self.fingerprint,
            "input_size": list(self.data_config.get("input_size", [])),
            **{k: v for k, v in self.extra.items() if not k.startswith("_")},  # "_..." is for the code, not the card
        }

    def clone(self) -> LoadedModel:
        return replace(self, model=copy.deepcopy(self.model), extra=dict(self.extra))

    def refresh_fingerprint(self) -> LoadedModel:
        self.fingerprint = fingerprint_state_dict(self.model.state_dict())
        return self


class StoredModel(LoadedModel):
    """A :class:`LoadedModel` whose weights load on first use of :attr:`model`: what the artifact store returns, since
    most of an audit reopened from the store needs only a model's fingerprint (its outputs are stored too).  Its
    fingerprint, architecture, class count and preprocessing come from the entry's ``config.json``; ``load`` builds
    the network, and the weights it reads must have the recorded fingerprint."""

    def __init__(self, model: nn.Module | None, arch: str, num_classes: int, source: str, fingerprint: str,
                 data_config: dict[str, Any], revision: str | None = None, extra: dict[str, Any] | None = None, *,
                 load: Callable[[], nn.Module] | None = None):
        # the fields of LoadedModel, in its order (dataclasses.replace and clone() pass them all), and the loader
        if model is None and load is None:
            raise ValueError("a StoredModel needs its network or a loader")
        self._model: nn.Module | None = model
        self._load: Callable[[], nn.Module] | None = None if model is not None else load
        self._lock = threading.Lock()  # two dashboard sessions may share one opened audit
        self.arch, self.num_classes, self.source, self.fingerprint = arch, num_classes, source, fingerprint
        self.data_config, self.revision, self.extra = data_config, revision, dict(extra or {})

    @property
    def model(self) -> nn.Module:
        with self._lock:
            if self._model is None:
                if self._load is None:
                    raise ValueError("a StoredModel without a loader")
                self._model, self._load = self._load(), None
            return self._model

    @model.setter
    def model(self, value: nn.Module) -> None:
        self._model, self._load = value, None

    @property
    def loaded(self) -> bool:
        """Whether the weights have been read (for tests and diagnostics)."""
        return self._model is not None

    def clone(self) -> LoadedModel:
        """A copy that reads (and copies) the weights only when its network is first used."""
        if self._model is not None:
            return super().clone()
        return StoredModel(None, self.arch, self.num_classes, self.source, self.fingerprint, dict(self.data_config),
                           self.revision, dict(self.extra), load=lambda: copy.deepcopy(self.model))


def fingerprint_state_dict(state: dict[str, torch.Tensor]) -> str:
    """SHA-256 over (name, dtype, shape, bytes) of every tensor, in sorted name order."""
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous()
        h.update(name.encode())
        h.update(str(t.dtype).encode())
        h.update(str(tuple(t.shape)).encode())
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


#: the largest input side the engine runs (a model's config may ask for any size: 8,000 px inputs would need ~25 GB a
#: batch of 32); the largest timm / CLIP towers in use take 448-518 px
MAX_INPUT_SIDE = 1024


def check_input_size(size: Any) -> tuple[int, int, int]:
    """A preprocessing config's ``input_size`` as (channels, height, width), each side in [8, :data:`MAX_INPUT_SIDE`]
    px; anything else is a :class:`ModelSourceError` that says what to do."""
    try:
        c, h, w = (int(v) for v in size)
    except (TypeError, ValueError) as e:
        raise ModelSourceError(f"the model's preprocessing gives the input size {size!r}, not (channels, height, "
                               "width)") from e
    if not (8 <= h <= MAX_INPUT_SIDE and 8 <= w <= MAX_INPUT_SIDE and 1 <= c <= 4):
        raise ModelSourceError(f"the model asks for {h} x {w} px inputs with {c} channels; the engine runs 8 to "
                               f"{MAX_INPUT_SIDE} px a side and 1 to 4 channels: give the input size (--input-size) "
                               "or check the model's config")
    return c, h, w


def data_config_for(model: nn.Module, input_size: int | None = None) -> dict[str, Any]:
    """timm's preprocessing config for ``model``; ``input_size`` overrides the side length."""
    import timm.data

    cfg = dict(timm.data.resolve_model_data_config(model))
    if input_size is not None:
        cfg["input_size"] = (3, int(input_size), int(input_size))
    cfg["input_size"] = check_input_size(cfg["input_size"])
    cfg["mean"] = tuple(float(v) for v in cfg["mean"])
    cfg["std"] = tuple(float(v) for v in cfg["std"])
    cfg["crop_pct"] = float(cfg.get("crop_pct", 0.875))
    return cfg


def jsonable_config(data_config: dict[str, Any]) -> dict[str, Any]:
    """A data config with tuples as lists (for JSON and cache keys)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in data_config.items()}
