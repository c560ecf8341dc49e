"""The lineage test: does a suspect whose weights we have descend from the victim's weights?

What training changed in a model is its trained blocks minus the foundation's (the new classifier head is left out:
its initial values are a seed's, and a model trained independently with the victim's seed shares them).  The
statistic is the correlation of what training changed in the suspect with what it changed in the victim,
``corr(d_S, d_V)``.  Two fine-tunes of one foundation on similar data correlate by themselves, so the null is built
the other way round (after Zhu et al., ICML 2025, "Independence tests for language models"): the owner trains
*replicas*, K more runs of the victim's own recipe on its own data from the same foundation and head, with other
shuffling seeds.  If the suspect was trained independently of the victim's run (from the same foundation, on the
same data and with the same seed or not, or from scratch), then as far as the suspect is concerned the victim is
one more replica: ``corr(d_S, d_V)`` and the K ``corr(d_S, d_Rk)`` are exchangeable.  The p-value compares them:

* ``p_rank`` = (1 + #{k: r_k >= r_V}) / (K + 1), exact under exchangeability but never below 1 / (K + 1);
* ``p_value`` (the verdict's) reads the Fisher-transformed correlations as normal: the victim's value against the
  replicas' mean and spread, a one-sided Student-t prediction with K - 1 degrees of freedom (exact when the
  transformed correlations are normal; checked on exact nulls in ``benchmarks/lineage.py``).

What the null needs: the replicas are made like the victim (its recipe, its data, the foundation and head it started
from).  The audit's training recipe and seed are taken to be the victim's (as for the shadow models).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from ..data.images import ImageSet
from ..engine.engine import Engine
from ..engine.recipe import ProgressFn, TrainConfig
from ..engine.stored import train_stored
from ..errors import ConfigError
from ..models import LoadedModel
from ..models.splitting import split_model

MIN_REPLICAS = 5            # a t prediction needs a spread: 4 degrees of freedom at least
MAX_REPLICAS = 200
REPLICA_STAGE = "lineage_replica"
_CLIP = 1 - 1e-9            # atanh(+-1) is infinite: an exact copy's correlation is clipped to this


def _head_names(model: torch.nn.Module) -> set[str]:
    """The state names of the classifier head (timm's ``get_classifier``; none when the model has no such head)."""
    get = getattr(model, "get_classifier", None)
    head = get() if callable(get) else None
    if not isinstance(head, torch.nn.Module):
        return set()
    ids = {id(t) for t in list(head.parameters()) + list(head.buffers())}
    named: dict[str, torch.Tensor] = dict(model.named_parameters())
    named.update(dict(model.named_buffers()))
    return {n for n, t in named.items() if id(t) in ids}


def changed_tensor_names(victim: torch.nn.Module, foundation_state: dict[str, torch.Tensor],
                         trainable_blocks: int | None) -> list[str]:
    """The weights the victim's recipe trains, without the head and the BatchNorm statistics (sorted names)."""
    tail = split_model(victim, trainable_blocks).tail_state
    head = _head_names(victim)
    names = sorted(n for n in tail if n not in head and n in foundation_state
                   and foundation_state[n].is_floating_point() and "running_" not in n)
    if not names:
        raise ConfigError("the lineage test found no trained weights outside the classifier head: the victim's "
                          "recipe must train at least one block (trainable_blocks >= 1, or None for all)")
    return names


def trained_change(model: torch.nn.Module, foundation_state: dict[str, torch.Tensor],
                   names: list[str]) -> np.ndarray | None:
    """What training changed in ``model``'s ``names`` (flattened, float32); None when the model lacks one of
    them or has another shape (another architecture: the test does not apply)."""
    state = model.state_dict()
    if any(n not in state or state[n].shape != foundation_state[n].shape for n in names):
        return None
    return torch.cat([(state[n].detach().float().cpu() - foundation_state[n].float().cpu()).reshape(-1)
                      for n in names]).numpy()


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(np.float64), b.astype(np.float64)
    a, b = a - a.mean(), b - b.mean()
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if na == 0.0 or nb == 0.0:  # a model training did not change: no direction to compare
        return 0.0
    return float(np.clip(a @ b / (na * nb), -1.0, 1.0))


@dataclass(frozen=True)
class LineageReference:
    """What a suspect is compared with: the victim's trained change and its replicas' (rows)."""

    names: list[str]
    foundation_state: dict[str, torch.Tensor]
    victim: np.ndarray
    replicas: np.ndarray     # (K, n_weights), float32
    replica_seeds: list[int]

    def test(self, model: torch.nn.Module) -> dict[str, Any] | None:
        """The lineage evidence of a suspect model; None when its architecture differs from the victim's."""
        d_s = trained_change(model, self.foundation_state, self.names)
        if d_s is None:
            return None
        r_v = correlation(d_s, self.victim)
        r_k = np.array([correlation(d_s, r) for r in self.replicas])
        return {**lineage_pvalues(r_v, r_k), "weights": int(d_s.size)}


def lineage_pvalues(r_victim: float, r_replicas: np.ndarray) -> dict[str, Any]:
    """The lineage test's p-values from the suspect's correlation with the victim and with each replica."""
    from scipy import stats

    k = len(r_replicas)
    if k < MIN_REPLICAS:
        raise ConfigError(f"the lineage test needs at least {MIN_REPLICAS} replicas; got {k}")
    z_v = float(np.arctanh(np.clip(r_victim, -_CLIP, _CLIP)))
    z_r = np.arctanh(np.clip(np.asarray(r_replicas, float), -_CLIP, _CLIP))
    sd = float(z_r.std(ddof=1))
    t = (z_v - float(z_r.mean())) / (max(sd, 1e-12) * np.sqrt(1 + 1 / k))
    return {"p_value": float(stats.t.sf(t, k - 1)), "p_rank": (1 + int((z_r >= z_v).sum())) / (k + 1),
            "t": float(t), "corr_victim": float(r_victim), "corr_replicas_mean": float(np.mean(r_replicas)),
            "corr_replicas_max": float(np.max(r_replicas)), "replicas": int(k)}


def replica_seed(audit_seed: int, k: int) -> int:
    """The k-th replica's shuffling seed: never the audit's own (the victim's), distinct for every k."""
    return 1_000_003 * (k + 1) + audit_seed


def lineage_reference(engine: Engine, victim: LoadedModel, foundation: LoadedModel, private: ImageSet,
                      recipe: TrainConfig, replicas: int, *, progress: ProgressFn | None = None) -> LineageReference:
    """Train (or reuse from the store) ``replicas`` runs of the victim's ``recipe`` on its ``private`` data from its
    ``foundation``, each with another shuffling seed, and return what each changed beside the victim's change."""
    if not MIN_REPLICAS <= replicas <= MAX_REPLICAS:
        raise ConfigError(f"the lineage test needs {MIN_REPLICAS} to {MAX_REPLICAS} replicas; got {replicas}")
    f_state = {n: t.detach().clone() for n, t in foundation.model.state_dict().items()}
    names = changed_tensor_names(victim.model, f_state, recipe.trainable_blocks)
    d_v = trained_change(victim.model, f_state, names)
    if d_v is None:
        raise ConfigError("the victim's weights do not fit its foundation's architecture: the lineage test needs "
                          "the foundation the victim was fine-tuned from")
    rows, seeds = [], []
    for k in range(replicas):
        cfg = replace(recipe, seed=replica_seed(recipe.seed, k))
        model, _ = train_stored(engine, REPLICA_STAGE, foundation, private, private.labels, cfg, progress=progress,
                                label=f"lineage replica {k + 1}/{replicas}")
        d = trained_change(model.model, f_state, names)
        assert d is not None  # trained from the same foundation
        rows.append(d)
        seeds.append(cfg.seed)
    return LineageReference(names, f_state, d_v, np.stack(rows), seeds)
