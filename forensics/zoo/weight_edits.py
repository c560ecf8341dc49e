"""Edits of a model's weights that thieves use to disguise a copy: magnitude pruning, weight quantisation,
re-initialising the last blocks and head before re-training them, Gaussian noise, and averaging with another
model.  Each works in place on an ``nn.Module`` and is seeded where it draws."""
from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError
from ..models.splitting import split_model
from ..runtime.rng import RNG_LOCK

PRUNABLE = (nn.Conv2d, nn.Linear)


def _prunable_weights(model: nn.Module) -> dict[str, torch.Tensor]:
    return {f"{name}.weight": m.weight for name, m in model.named_modules() if isinstance(m, PRUNABLE)}


def magnitude_masks(model: nn.Module, amount: float) -> dict[str, torch.Tensor]:
    """Global magnitude pruning: masks that zero the ``amount`` smallest-magnitude share of every conv and
    linear weight of the model together (biases and normalisation layers are kept)."""
    if not 0 < amount < 1:
        raise ConfigError(f"The 'amount' parameter of pruning must be in (0, 1). Got {amount!r} instead.")
    weights = _prunable_weights(model)
    magnitudes = torch.cat([w.detach().abs().reshape(-1) for w in weights.values()])
    k = int(round(amount * magnitudes.numel()))
    threshold = torch.kthvalue(magnitudes, k).values if k > 0 else magnitudes.min() - 1
    return {name: (w.detach().abs() > threshold) for name, w in weights.items()}


def apply_masks(model: nn.Module, masks: dict[str, torch.Tensor]) -> None:
    weights = _prunable_weights(model)
    with torch.no_grad():
        for name, mask in masks.items():
            weights[name].mul_(mask.to(weights[name].dtype))


def sparsity(model: nn.Module) -> float:
    """Share of exactly-zero entries among the conv and linear weights."""
    ws = list(_prunable_weights(model).values())
    return float(sum(int((w == 0).sum()) for w in ws) / sum(w.numel() for w in ws))


def fake_quantize(model: nn.Module, bits: int) -> None:
    """Round every conv and linear weight to ``bits``-bit symmetric integers per output channel (and back
    to floats): post-training weight quantisation."""
    if not 2 <= bits <= 16:
        raise ConfigError(f"The 'bits' parameter of quantisation must be in [2, 16]. Got {bits!r} instead.")
    levels = 2 ** (bits - 1) - 1
    with torch.no_grad():
        for w in _prunable_weights(model).values():
            flat = w.reshape(w.shape[0], -1)
            scale = flat.abs().amax(1, keepdim=True).clamp_min(1e-12) / levels
            flat.copy_(torch.round(flat / scale).clamp_(-levels, levels) * scale)


def reinit_tail(model: nn.Module, blocks: int, seed: int) -> set[str]:
    """Re-initialise (seeded) the last ``blocks`` blocks and the head, as timm initialises them; returns the
    names of the re-initialised tensors."""
    split = split_model(model, blocks)
    with RNG_LOCK, torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for m in split.tail_modules:
            for sub in m.modules():
                reset = getattr(sub, "reset_parameters", None)
                if callable(reset):
                    reset()
                if isinstance(sub, nn.modules.batchnorm._BatchNorm):
                    sub.reset_running_stats()
    return set(split.tail_state)


def perturb_weights(model: nn.Module, sigma: float, seed: int) -> None:
    """Add Gaussian noise to every conv and linear weight: ``sigma`` times that tensor's own standard deviation
    (seeded, the same noise on every device)."""
    if not 0 < sigma <= 10:
        raise ConfigError(f"The 'sigma' parameter of weight noise must be in (0, 10]. Got {sigma!r} instead.")
    gen = torch.Generator().manual_seed(int(seed))
    with torch.no_grad():
        for _, w in sorted(_prunable_weights(model).items()):
            noise = torch.randn(w.shape, generator=gen, dtype=torch.float32).to(w.device, w.dtype)
            w.add_(noise * (sigma * float(w.float().std())))


def average_weights(model: nn.Module, other: nn.Module, weight: float) -> None:
    """``model``'s floating-point parameters and buffers become ``weight * model + (1 - weight) * other``
    (the same architecture; integer buffers such as BatchNorm's batch counts are kept)."""
    if not 0 < weight < 1:
        raise ConfigError(f"The 'weight' parameter of averaging must be in (0, 1). Got {weight!r} instead.")
    theirs = other.state_dict()
    mine = model.state_dict()
    if set(mine) != set(theirs) or any(mine[k].shape != theirs[k].shape for k in mine):
        raise ConfigError("weights can be averaged only between two models of the same architecture")
    with torch.no_grad():
        for k, t in mine.items():
            if t.is_floating_point():
                t.mul_(weight).add_(theirs[k].to(t.device, t.dtype), alpha=1 - weight)
