"""Splitting a timm model into a frozen prefix and a trainable tail (partial fine-tuning).

Which weights belong to the last N blocks and the head comes from timm's own
``model.group_matcher(coarse=True)`` (the grouping timm uses for layer-wise learning rates); how the
forward pass splits between the two parts is registered per timm model class below.  For these
families the frozen prefix's activations can be computed once and cached (see :mod:`forensics.engine`).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

import torch
from torch import nn

from ..errors import ConfigError
from .hf_transformers import TransformersClassifier
from .loaded import fingerprint_state_dict

Forward = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class Split:
    """prefix(x) -> h, tail(h) -> logits.  ``tail_state`` names every tensor training may change
    (weights and BatchNorm statistics); ``tail_modules`` are switched to train mode while training."""

    k: int                     # blocks in the frozen prefix (-1: full fine-tuning)
    family: str                # "full", "convnet", "vit"
    prefix: Forward
    tail: Forward
    tail_modules: list[nn.Module]
    tail_state: frozenset[str] = field(default_factory=frozenset)

    def trainable_parameters(self) -> list[nn.Parameter]:
        params = [p for m in self.tail_modules for p in m.parameters()]
        return list({id(p): p for p in params}.values())

    def prefix_fingerprint(self, model: nn.Module) -> str:
        """Every weight outside the tail (a ViT's cls_token / pos_embed / norm_pre included)."""
        state = {k: v for k, v in model.state_dict().items() if k not in self.tail_state}
        return fingerprint_state_dict(state) + f":{self.family}:{self.k}"


def _state_groups(model: nn.Module) -> dict[str, int]:
    """timm's layer group of every state tensor (parameters and buffers), stem first, head last.

    timm groups parameters; a buffer (BatchNorm statistics) takes its module's group, and a buffer of
    a module without parameters the group of the tensor registered before it."""
    from timm.models import group_modules, group_parameters

    matcher = cast(Any, model).group_matcher(coarse=True)
    by_param = group_parameters(model, matcher, reverse=True)
    by_module = group_modules(model, matcher, reverse=True)
    groups, last = {}, 0
    for name in model.state_dict():
        owner = name.rsplit(".", 1)[0] if "." in name else ""
        last = groups[name] = by_param.get(name, by_module.get(owner, last))
    return groups


def _tail_state(model: nn.Module, k: int, n_blocks: int) -> frozenset[str]:
    """State names from block ``k`` on: its layer group and every later one (the head included).

    With no trainable block (``k == n_blocks``) the tail is what follows the last block: timm merges the
    layers after it (EfficientNet's conv_head/bn2, a ViT's final norm) into the last block's group, and
    they stay trainable with the head, as the forward split has them after the cached prefix."""
    group = _state_groups(model)
    last = min(k, n_blocks - 1)
    in_block = [g for n, g in group.items() if n.startswith(f"blocks.{last}.")]
    if not in_block:
        raise ConfigError(f"timm's group matcher of {type(model).__name__} does not list block {last}; use full "
                          "fine-tuning (trainable_blocks=None)")
    tail = {n for n, g in group.items() if g >= min(in_block)}
    if k == n_blocks:
        tail = {n for n in tail if not n.startswith(f"blocks.{last}.")}
    return frozenset(tail)


def _tail_modules(model: nn.Module, tail_state: frozenset[str]) -> list[nn.Module]:
    """The largest modules whose every tensor is in the tail, plus the stateless modules after them at
    the top level (pooling, dropout), in registration order."""
    chosen: list[str] = []
    for name, mod in model.named_modules():
        if not name or any(name.startswith(c + ".") for c in chosen):
            continue
        keys = [f"{name}.{k}" for k in mod.state_dict()]
        if keys and all(k in tail_state for k in keys):
            chosen.append(name)
    mods = [model.get_submodule(n) for n in chosen]
    seen_tail = False
    for name, child in model.named_children():
        if name in chosen:
            seen_tail = True
        elif seen_tail and not child.state_dict():
            mods.append(child)
    return mods


def _convnet(model: Any, k: int) -> tuple[Forward, Forward]:
    """timm EfficientNet / MobileNetV3: conv_stem, bn1, blocks, [conv_head, bn2], head."""
    blocks = model.blocks
    conv_head_in_features = type(model).__name__ == "EfficientNet"  # MobileNetV3's conv_head is in its head

    def prefix(x):
        return blocks[:k](model.bn1(model.conv_stem(x)))

    def tail(h):
        h = blocks[k:](h)
        if conv_head_in_features:
            h = model.bn2(model.conv_head(h))
        return model.forward_head(h)

    return prefix, tail


def _vit(model: Any, k: int) -> tuple[Forward, Forward]:
    """timm VisionTransformer: patch and position embeddings, blocks, norm, head."""
    if k == 0:
        raise ConfigError("for a ViT, trainable_blocks must be smaller than its depth (the patch and "
                          "position embeddings stay frozen), or None for full fine-tuning")
    blocks = model.blocks

    def prefix(x):
        return blocks[:k](model.norm_pre(model.patch_drop(model._pos_embed(model.patch_embed(x)))))

    def tail(h):
        return model.forward_head(model.norm(blocks[k:](h)))

    return prefix, tail


def _hf_layers(model: Any) -> tuple[Any, Any, Any]:
    """(inner model, its base model, its transformer layers) of a transformers ViT / DeiT classifier."""
    inner = model.model
    if inner.config.model_type not in ("vit", "deit"):
        raise ConfigError(f"partial fine-tuning of transformers models is supported for ViT and DeiT, not "
                          f"{inner.config.model_type!r}; set trainable_blocks=None (full fine-tuning)")
    base = getattr(inner, inner.base_model_prefix)
    layers = base.layers if hasattr(base, "layers") else base.encoder.layer  # transformers 5 / 4
    return inner, base, layers


def _hf_vit_split(model: nn.Module, trainable_blocks: int) -> Split:
    """A transformers ViT / DeiT: embeddings and the first layers frozen (cached), the last layers, the final norm
    and the classifier (on the CLS token) trained."""
    inner, base, layers = _hf_layers(model)
    n = len(layers)
    k = n - min(int(trainable_blocks), n)
    if k == 0:
        raise ConfigError("for a ViT, trainable_blocks must be smaller than its depth (the patch and position "
                          "embeddings stay frozen), or None for full fine-tuning")

    def run(h, chosen):
        for layer in chosen:
            out = layer(h)
            h = out[0] if isinstance(out, tuple) else out
        return h

    def prefix(x):
        return run(base.embeddings(x), layers[:k])

    def tail(h):
        return inner.classifier(base.layernorm(run(h, layers[k:]))[:, 0, :])

    tail_modules = [*layers[k:], base.layernorm, inner.classifier]
    ids = {id(t) for m in tail_modules for t in m.state_dict(keep_vars=True).values()}
    state = frozenset(name for name, t in model.state_dict(keep_vars=True).items() if id(t) in ids)
    return Split(k, "hf-vit", prefix, tail, tail_modules, state)


def _families() -> dict[type, tuple[str, Callable[[nn.Module, int], tuple[Forward, Forward]]]]:
    from timm.models.efficientnet import EfficientNet
    from timm.models.mobilenetv3 import MobileNetV3
    from timm.models.vision_transformer import VisionTransformer

    return {EfficientNet: ("convnet", _convnet), MobileNetV3: ("convnet", _convnet),
            VisionTransformer: ("vit", _vit)}


def split_model(model: nn.Module, trainable_blocks: int | None) -> Split:
    """Split ``model`` so that its last ``trainable_blocks`` blocks and the head are the tail (transformer layers of a
    transformers ViT / DeiT classifier count as blocks too).

    ``None`` means full fine-tuning (empty prefix).  Partial fine-tuning with cached activations is
    supported for timm's EfficientNet / MobileNetV3 families (``blocks`` are stages) and Vision
    Transformers (``blocks`` are transformer blocks); for other architectures use full fine-tuning.
    """
    if trainable_blocks is None:
        return Split(-1, "full", lambda x: x, model, [model], frozenset(model.state_dict()))
    if isinstance(model, TransformersClassifier):
        return _hf_vit_split(model, trainable_blocks)
    found = next((entry for cls, entry in _families().items() if isinstance(model, cls)), None)
    if found is None:
        raise ConfigError(f"partial fine-tuning is supported for timm EfficientNet, MobileNet and ViT models, not "
                          f"{type(model).__name__}; set trainable_blocks=None (full fine-tuning)")
    family, make = found
    n = len(cast(Any, model).blocks)
    k = n - min(int(trainable_blocks), n)
    prefix, tail = make(model, k)
    state = _tail_state(model, k, n)
    return Split(k, family, prefix, tail, _tail_modules(model, state), state)
