"""forensics.zoo.weight_edits: pruning, quantisation and re-initialisation do what they say, and nothing else."""
from __future__ import annotations

import pytest
import torch
from helpers import make_loaded

from forensics.errors import ConfigError
from forensics.models.splitting import split_model
from forensics.zoo.weight_edits import apply_masks, fake_quantize, magnitude_masks, reinit_tail, sparsity


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
