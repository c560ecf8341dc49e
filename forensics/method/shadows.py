"""Stage 1: the victim's loss order, D_s, and the shadow models.

* the *poisoned shadow* P: the victim fine-tuned with D_s replaced by triggered, relabelled copies;
* the *benign shadow* B: the foundation fine-tuned without the lambda lowest-loss samples;
* the *membership reference* R: the foundation fine-tuned on a random part of D; the rest of D are the
  membership test's members, the held-out data its controls, and R's loss measures their difficulty;
* or, with ``reference_pairs`` P, 2P references in complementary pairs (the two of a pair split D into halves):
  every sample of D is unseen by exactly one reference of each pair, so all of D serves as members, each
  calibrated by the mean loss of its P unseen references; each control gets *virtual halves* (one reference of
  each pair, drawn at random, counts as unseen for it), so members and controls are calibrated alike.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..data.images import ImageSet
from ..data.transforms import Trigger
from ..engine.engine import Engine
from ..engine.recipe import TrainConfig
from ..engine.stored import train_stored
from ..models import LoadedModel
from ..runtime.progress import Progress, emit
from ..runtime.store import read_arrays, write_arrays
from .metrics import per_sample_loss


@dataclass(frozen=True)
class LossOrder:
    loss: np.ndarray       # the victim's loss on every private row
    ds_rows: np.ndarray    # D_s as rows of the private data, lowest loss first


@dataclass
class Shadows:
    poisoned: LoadedModel
    benign: LoadedModel
    reference: LoadedModel | None          # None without held-out data (the first, with reference pairs)
    poison_success: float                  # share of triggered D_s images P puts in the target class
    histories: dict[str, Any]              # training history per shadow
    references: tuple[LoadedModel, ...] = ()  # every reference, with reference pairs (``reference`` is the first)


@dataclass(frozen=True)
class MembershipDesign:
    """Members (rows of the private data the reference never saw), controls (rows of the held-out data),
    and the reference shadow's loss on each: what the membership test compares and stratifies by."""

    member_rows: np.ndarray
    control_rows: np.ndarray
    reference_loss_members: np.ndarray
    reference_loss_controls: np.ndarray

    def subsample(self, budget: int, rng: np.random.Generator) -> MembershipDesign:
        """At most ``budget`` queries: half members, half controls, drawn at random (independently of any
        suspect, so the test stays valid)."""
        nm = min(len(self.member_rows), budget // 2)
        nc = min(len(self.control_rows), budget - nm)
        im = np.sort(rng.permutation(len(self.member_rows))[:nm])
        ic = np.sort(rng.permutation(len(self.control_rows))[:nc])
        return MembershipDesign(self.member_rows[im], self.control_rows[ic], self.reference_loss_members[im],
                                self.reference_loss_controls[ic])

    @classmethod
    def empty(cls) -> MembershipDesign:
        none = np.zeros(0, np.int64)
        return cls(none, none, np.zeros(0), np.zeros(0))


def loss_order(engine: Engine, victim: LoadedModel, private: ImageSet) -> np.ndarray:
    """The victim's per-sample cross-entropy on every private sample (eval transform, batched)."""
    def compute(tmp: Path):
        logits = engine.logits(victim, private)
        write_arrays(tmp / "loss.npz", loss=per_sample_loss(logits, private.labels), logits=logits)

    path = engine.store.get_or_compute("loss_order", {"data_config": str(victim.data_config)},
                                       {"victim": victim.fingerprint, "images": private.fingerprint}, compute)
    return read_arrays(path / "loss.npz")["loss"]


def select_ds(loss: np.ndarray, labels: np.ndarray, gamma: float, target_class: int) -> np.ndarray:
    """Rows of the gamma lowest-loss samples, skipping samples of the target class."""
    n_s = int(round(gamma * len(loss)))
    order = np.argsort(loss, kind="stable")
    order = order[labels[order] != target_class]
    return order[:n_s]


def train_poisoned_shadow(engine: Engine, victim: LoadedModel, private: ImageSet, ds_rows: np.ndarray,
                          recipe: TrainConfig, trigger: Trigger, target_class: int, progress: Progress | None = None
                          ) -> tuple[LoadedModel, dict[str, Any], float]:
    """P: from the victim, D_s replaced by copies stamped with ``trigger`` and relabelled to ``target_class``,
    trained with ``recipe``.  Returns (P, its history, its attack success on triggered D_s)."""
    emit(progress, "poisoned_shadow", "start")
    triggered = np.zeros(len(private), bool)
    triggered[ds_rows] = True
    labels = private.labels.copy()
    labels[ds_rows] = target_class
    poisoned, history = train_stored(engine, "poisoned_shadow", victim, private, labels, recipe, trigger=trigger,
                                     triggered=triggered, progress=progress, label="poisoned shadow")
    trig_logits = engine.logits(poisoned, private.subset(ds_rows, "D_s"), trigger=trigger)
    success = float((trig_logits.argmax(1) == target_class).mean())
    emit(progress, "poisoned_shadow", "done", f"attack success {success:.2f}")
    return poisoned, history, success


def train_benign_shadow(engine: Engine, foundation: LoadedModel, private: ImageSet, loss: np.ndarray, lam: float,
                        recipe: TrainConfig, progress: Progress | None = None) -> tuple[LoadedModel, dict[str, Any]]:
    """B: from the foundation, without the ``lam`` share of lowest-loss samples (so it never saw D_s)."""
    emit(progress, "benign_shadow", "start")
    keep = np.argsort(loss, kind="stable")[int(round(lam * len(private))):]
    keep.sort()
    benign, history = train_stored(engine, "benign_shadow", foundation, private.subset(keep, "benign"),
                                   private.labels[keep], recipe, progress=progress, label="benign shadow")
    emit(progress, "benign_shadow", "done")
    return benign, history


def train_reference_shadow(engine: Engine, foundation: LoadedModel, private: ImageSet, heldout: ImageSet,
                           member_fraction: float, recipe: TrainConfig, rng: np.random.Generator,
                           progress: Progress | None = None) -> tuple[LoadedModel, dict[str, Any], MembershipDesign]:
    """R: from the foundation, on a random (1 - ``member_fraction``) part of D; the rest are the members."""
    n = len(private)
    perm = rng.permutation(n)
    n_m = int(round(member_fraction * n))
    member_rows, ref_rows = np.sort(perm[:n_m]), np.sort(perm[n_m:])
    control_rows = np.arange(len(heldout))
    emit(progress, "reference_shadow", "start")
    reference, history = train_stored(engine, "reference_shadow", foundation, private.subset(ref_rows, "reference"),
                                      private.labels[ref_rows], recipe, progress=progress,
                                      label="reference shadow")
    design = MembershipDesign(
        member_rows, control_rows,
        per_sample_loss(engine.logits(reference, private.subset(member_rows)), private.labels[member_rows]),
        per_sample_loss(engine.logits(reference, heldout), heldout.labels))
    emit(progress, "reference_shadow", "done")
    return reference, history, design


@dataclass(frozen=True)
class ReferencePairs:
    """The references of :func:`train_reference_pairs`, the private rows each trained on, and the design."""

    models: tuple[LoadedModel, ...]
    histories: tuple[dict[str, Any], ...]
    trained_rows: tuple[np.ndarray, ...]   # rows of the private data each reference trained on
    virtual_halves: tuple[np.ndarray, ...]  # per pair and held-out row: which of the pair (0, 1) counts as unseen
    design: MembershipDesign


def train_reference_pairs(engine: Engine, foundation: LoadedModel, private: ImageSet, heldout: ImageSet, pairs: int,
                          recipe: TrainConfig, rng: np.random.Generator, progress: Progress | None = None
                          ) -> ReferencePairs:
    """2 * ``pairs`` references from the foundation, the two of each pair on complementary random halves of D.
    Members: every row of D, each with the mean loss of the ``pairs`` references that never saw it; controls:
    every held-out row, with the mean loss of one reference per pair drawn at random (its virtual halves)."""
    n, n_c = len(private), len(heldout)
    emit(progress, "reference_shadow", "start")
    models, histories, trained, virtuals = [], [], [], []
    member_loss, control_loss = np.zeros(n), np.zeros(n_c)
    for j in range(pairs):
        perm = rng.permutation(n)
        halves = (np.sort(perm[: n // 2]), np.sort(perm[n // 2:]))
        virtual = rng.integers(0, 2, n_c)  # which reference of the pair counts as unseen for each control
        virtuals.append(virtual)
        for h, rows in enumerate(halves):
            r = 2 * j + h
            model, history = train_stored(engine, "reference_shadow", foundation, private.subset(rows, "reference"),
                                          private.labels[rows], recipe, progress=progress,
                                          label=f"reference shadow {r + 1}/{2 * pairs}")
            unseen = halves[1 - h]
            member_loss[unseen] += per_sample_loss(engine.logits(model, private.subset(unseen)),
                                                   private.labels[unseen])
            mine = np.flatnonzero(virtual == h)
            control_loss[mine] += per_sample_loss(engine.logits(model, heldout.subset(mine)), heldout.labels[mine])
            models.append(model)
            histories.append(history)
            trained.append(rows)
    design = MembershipDesign(np.arange(n), np.arange(n_c), member_loss / pairs, control_loss / pairs)
    emit(progress, "reference_shadow", "done", f"{2 * pairs} references on halves of the private data")
    return ReferencePairs(tuple(models), tuple(histories), tuple(trained), tuple(virtuals), design)
