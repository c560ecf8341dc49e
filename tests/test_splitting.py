"""forensics.models.splitting: prefix + tail equal the whole model, and timm's group matcher decides the tail."""
from __future__ import annotations

import pytest
import torch
from helpers import INPUT, make_loaded

from forensics.errors import ConfigError
from forensics.models.splitting import split_model


def _partition(model, split):
    """Prefix and tail state names partition the model's state; the tail modules hold exactly the tail."""
    names = set(model.state_dict())
    assert split.tail_state <= names and split.tail_state
    tail_params = {id(p) for p in split.trainable_parameters()}
    named = dict(model.named_parameters())
    assert tail_params == {id(named[n]) for n in split.tail_state if n in named}
    module_state = {f"{n}.{k}" for n, mod in model.named_modules() for m in split.tail_modules if mod is m
                    for k in mod.state_dict()}
    assert module_state == set(split.tail_state)


@pytest.mark.parametrize("trainable_blocks", [1, 2, 5, 99])
def test_efficientnet_tail_of_prefix_equals_forward(trainable_blocks):
    model = make_loaded().model.eval()
    x = torch.randn(4, 3, INPUT, INPUT, generator=torch.Generator().manual_seed(0))
    split = split_model(model, trainable_blocks)
    assert split.family == "convnet"
    assert split.k == max(0, len(model.blocks) - trainable_blocks)
    with torch.no_grad():
        torch.testing.assert_close(split.tail(split.prefix(x)), model(x), rtol=1e-5, atol=1e-5)
    _partition(model, split)
    # the last trainable_blocks stages and the head, nothing before them
    first_tail = split.k
    for name in model.state_dict():
        if name.startswith("blocks."):
            assert (name in split.tail_state) == (int(name.split(".")[1]) >= first_tail), name
        elif name.startswith(("conv_stem", "bn1")):
            assert name not in split.tail_state
        elif name.startswith("classifier"):
            assert name in split.tail_state


def test_zero_trainable_blocks_trains_what_follows_the_blocks():
    """No trainable block: the layers after the last block train with the head (EfficientNet's
    conv_head/bn2, a ViT's final norm), although timm's group matcher puts them in the last block's group."""
    model = make_loaded("tf_efficientnet_lite0").model
    split = split_model(model, 0)
    assert {n.split(".")[0] for n in split.tail_state} == {"conv_head", "bn2", "classifier"}
    vit = make_loaded("test_vit", img_size=INPUT).model
    split = split_model(vit, 0)
    assert {n.split(".")[0] for n in split.tail_state} == {"norm", "head"}
    _partition(vit, split)


def test_full_split_is_the_whole_model():
    model = make_loaded().model
    split = split_model(model, None)
    x = torch.randn(2, 3, INPUT, INPUT)
    assert split.family == "full" and split.prefix(x) is x and split.tail_modules == [model]
    assert split.tail_state == set(model.state_dict())


def test_vit_tail_of_prefix_equals_forward():
    loaded = make_loaded("test_vit", img_size=INPUT)
    model = loaded.model.eval()
    x = torch.randn(3, 3, INPUT, INPUT, generator=torch.Generator().manual_seed(0))
    for tb in (1, 3, len(model.blocks) - 1):
        split = split_model(model, tb)
        assert split.family == "vit" and split.k == len(model.blocks) - tb
        with torch.no_grad():
            torch.testing.assert_close(split.tail(split.prefix(x)), model(x), rtol=1e-5, atol=1e-5)
        _partition(model, split)
        # position embedding and class token stay frozen (they belong to timm's stem group)
        assert "pos_embed" not in split.tail_state and "cls_token" not in split.tail_state
    with pytest.raises(ConfigError, match="trainable_blocks"):
        split_model(model, len(model.blocks))


def test_mobilenet_split():
    loaded = make_loaded("mobilenetv3_small_050")
    model = loaded.model.eval()
    x = torch.randn(2, 3, INPUT, INPUT, generator=torch.Generator().manual_seed(0))
    split = split_model(model, 2)
    with torch.no_grad():
        torch.testing.assert_close(split.tail(split.prefix(x)), model(x), rtol=1e-5, atol=1e-5)
    _partition(model, split)
    assert "conv_head.weight" in split.tail_state


def test_unsupported_architecture():
    with pytest.raises(ConfigError, match="trainable_blocks=None"):
        split_model(make_loaded("test_resnet").model, 1)
