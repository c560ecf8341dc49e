"""forensics.zoo.weight_edits: pruning, quantisation, re-initialisation, weight noise and averaging do what they say,
and nothing else."""
from __future__ import annotations

import pytest
import torch
from helpers import make_loaded

from forensics.errors import ConfigError
from forensics.models.splitting import split_model
from forensics.zoo.weight_edits import (
    apply_masks,
    average_weights,
    fake_quantize,
    magnitude_masks,
    perturb_weights,
    reinit_tail,
    sparsity,
)


def test_global_magnitude_pruning():
    model = make_loaded().model
    before = {k: v.clone() for k, v in model.state_dict().items()}
    masks = magnitude_masks(model, 0.6)
    apply_masks(model, masks)
    assert sparsity(model) == pytest.approx(0.6, abs=0.01)
    kept = torch.cat([(before[n].abs() * m).reshape(-1) for n, m in masks.items()])
    dropped = torch.cat([(before[n].abs() * ~m).reshape(-1) for n, m in masks.items()])
    assert dropped.max() <= kept[kept > 0].min()  # the smallest magnitudes went, over the whole model
    after = model.state_dict()
    assert all(torch.equal(after[k], before[k]) for k in before if k not in masks)  # BN, biases untouched
    with pytest.raises(ConfigError, match="amount"):
        magnitude_masks(model, 1.0)


@pytest.mark.parametrize("bits", [8, 4])
def test_quantisation_keeps_few_levels_per_channel(bits):
    model = make_loaded().model
    w0 = model.classifier.weight.detach().clone()
    fake_quantize(model, bits)
    w = model.classifier.weight.detach()
    for row, row0 in zip(w, w0, strict=True):
        assert len(torch.unique(row)) <= 2 ** bits - 1
        assert (row - row0).abs().max() <= row0.abs().max() / (2 ** (bits - 1) - 1) / 2 + 1e-7
    with pytest.raises(ConfigError, match="bits"):
        fake_quantize(model, 1)


def test_reinit_tail_is_seeded_and_touches_only_the_tail():
    a, b = make_loaded().model, make_loaded().model
    before = {k: v.clone() for k, v in a.state_dict().items()}
    names = reinit_tail(a, 1, seed=5)
    reinit_tail(b, 1, seed=5)
    assert names == set(split_model(a, 1).tail_state)
    after = a.state_dict()
    assert all(torch.equal(after[k], before[k]) for k in before if k not in names)
    assert any(not torch.equal(after[k], before[k]) for k in names if k.endswith("weight"))
    assert all(torch.equal(v, b.state_dict()[k]) for k, v in after.items())  # the same seed, the same weights


def test_weight_noise_is_seeded_and_scaled_to_each_tensor():
    a, b, orig = make_loaded().model, make_loaded().model, make_loaded().model
    perturb_weights(a, 0.5, seed=3)
    perturb_weights(b, 0.5, seed=3)
    assert all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())
    for name, m in orig.named_modules():
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)) and m.weight.numel() >= 200:
            noise = (a.get_submodule(name).weight - m.weight).detach()
            assert float(noise.std() / m.weight.detach().std()) == pytest.approx(0.5, rel=0.25)
            if m.bias is not None:                                       # biases are left alone
                assert torch.equal(a.get_submodule(name).bias, m.bias)
    perturb_weights(b, 0.5, seed=4)
    assert any(not torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())
    with pytest.raises(ConfigError, match="sigma"):
        perturb_weights(a, 0.0, seed=0)


def test_average_weights_mixes_floats_and_refuses_other_architectures():
    a, b = make_loaded(seed=0).model, make_loaded(seed=1).model
    sa, sb = {k: v.clone() for k, v in a.state_dict().items()}, b.state_dict()
    average_weights(a, b, 0.25)
    for k, v in a.state_dict().items():
        if v.is_floating_point():
            torch.testing.assert_close(v, 0.25 * sa[k] + 0.75 * sb[k])
        else:
            assert torch.equal(v, sa[k])                                  # BatchNorm's batch counts are kept
    with pytest.raises(ConfigError, match="same architecture"):
        average_weights(a, make_loaded(num_classes=5).model, 0.5)
    with pytest.raises(ConfigError, match="weight"):
        average_weights(a, b, 1.0)
