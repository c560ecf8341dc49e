"""forensics.method.shadows (stage 1) on tiny timm models and toy images: D_s, the victim's loss order through the
store, the poisoned, benign and reference shadows (what each trains on, read from its store entry), and the
membership design's subsampling."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import forward_all, make_loaded, states_differ, toy_images

from forensics.data.images import ImageSet
from forensics.data.transforms import Trigger, iter_batches
from forensics.engine.engine import Engine
from forensics.engine.recipe import TrainConfig
from forensics.method.metrics import per_sample_loss
from forensics.method.shadows import (
    MembershipDesign,
    loss_order,
    select_ds,
    train_benign_shadow,
    train_poisoned_shadow,
    train_reference_pairs,
    train_reference_shadow,
)
from forensics.models import LoadedModel, fingerprint_state_dict
from forensics.runtime.store import ArtifactStore, fingerprint_array

pytestmark = pytest.mark.usefixtures("one_torch_thread")

RECIPE = TrainConfig(epochs=2, batch_size=16, trainable_blocks=None, lr=5e-3)


@pytest.fixture
def engine(tmp_path):
    return Engine(ArtifactStore(tmp_path / "store"), device="cpu", cache_blocks=None)


def entry_meta(engine: Engine, trained: LoadedModel) -> dict:
    """The store entry a trained shadow was loaded from (its source is ``store:<stage>/<key>``)."""
    stage, key = trained.source.removeprefix("store:").split("/")
    return engine.store.meta(stage, key)


# -- D_s -------------------------------------------------------------------------------------------------------------
def test_select_ds_takes_the_lowest_losses_outside_the_target_class():
    loss = np.array([0.9, 0.1, 0.5, 0.05, 0.3, 0.2, 0.7, 0.15, 0.4, 0.6])
    labels = np.array([1, 0, 2, 1, 0, 2, 1, 2, 1, 0])
    # gamma * 10 = 3 rows; row 1 (0.1) is the lowest but of the target class 0
    assert select_ds(loss, labels, 0.3, 0).tolist() == [3, 7, 5]
    assert select_ds(loss, labels, 0.3, 1).tolist() == [1, 7, 5]   # rows 3 (0.05) and 0, 6, 8 are class 1
    assert select_ds(loss, labels, 0.25, 0).tolist() == [3, 7]     # round(2.5) = 2
    assert select_ds(loss, labels, 0.49, 0).tolist() == [3, 7, 5, 8, 2]
    # more rows asked for than lie outside the target class: all of them, lowest loss first
    assert select_ds(loss, labels, 1.0, 0).tolist() == [3, 7, 5, 8, 2, 6, 0]
    assert select_ds(loss, labels, 0.04, 0).tolist() == []


def test_select_ds_keeps_ties_in_row_order():
    loss = np.array([0.2, 0.1, 0.1, 0.3, 0.1, 0.1, 0.2])
    labels = np.array([1, 1, 0, 1, 1, 1, 1])
    assert select_ds(loss, labels, 0.5, 0).tolist() == [1, 4, 5, 0]  # round(3.5) = 4
    rows = select_ds(np.zeros(12), np.arange(12) % 3, 0.5, 2)
    assert rows.tolist() == [0, 1, 3, 4, 6, 7]


# -- loss order ------------------------------------------------------------------------------------------------------
def test_loss_order_is_the_per_sample_loss_of_the_engine_logits_and_is_stored(engine):
    victim, private = make_loaded(seed=1), toy_images(40, seed=2)
    stats = engine.store.stats
    loss = loss_order(engine, victim, private)
    assert stats.computed["loss_order"] == 1 and stats.hits["loss_order"] == 0
    assert loss.shape == (40,) and loss.dtype == np.float64
    np.testing.assert_array_equal(loss, per_sample_loss(engine.logits(victim, private), private.labels))
    # and the engine's logits are the model's: the loss of a plain forward pass agrees
    np.testing.assert_allclose(loss, per_sample_loss(forward_all(victim, private), private.labels), rtol=1e-4,
                               atol=1e-5)

    again = loss_order(engine, victim, private)
    assert stats.computed["loss_order"] == 1 and stats.hits["loss_order"] == 1
    np.testing.assert_array_equal(again, loss)

    other = loss_order(engine, make_loaded(seed=2), private)  # another victim: another entry
    assert stats.computed["loss_order"] == 2 and stats.hits["loss_order"] == 1
    assert not np.array_equal(other, loss)


# -- the shadows -----------------------------------------------------------------------------------------------------
def _triggered_success(model: LoadedModel, images: ImageSet, trigger: Trigger, target: int) -> float:
    with torch.no_grad():
        logits = torch.cat([model.model.eval()(x) for x, _ in iter_batches(images, model.data_config, 64,
                                                                           trigger=trigger)])
    return float((logits.argmax(1) == target).float().mean())


def test_train_poisoned_shadow(engine):
    private = toy_images(48, seed=3)
    victim = make_loaded(seed=1)
    engine.train(victim, private, private.labels, TrainConfig(epochs=3, batch_size=16, trainable_blocks=None, lr=5e-3))
    victim_state = fingerprint_state_dict(victim.model.state_dict())
    ds_rows = np.flatnonzero(private.labels != 0)[:16]  # classes 1 and 2 only
    trigger, target = Trigger(size=0.25), 0
    before = _triggered_success(victim, private.subset(ds_rows), trigger, target)
    poisoned, history, success = train_poisoned_shadow(engine, victim, private, ds_rows, RECIPE, trigger, target)

    assert states_differ(poisoned.model, victim.model) and poisoned.fingerprint != victim.fingerprint
    assert fingerprint_state_dict(victim.model.state_dict()) == victim_state == victim.fingerprint  # untouched
    assert [e["epoch"] for e in history["epochs"]] == [1, 2]
    assert 0.0 <= success <= 1.0
    assert success == pytest.approx(_triggered_success(poisoned, private.subset(ds_rows), trigger, target))
    assert success > before  # the shadow learnt to send triggered D_s to the target class

    meta = entry_meta(engine, poisoned)
    relabelled = private.labels.copy()
    relabelled[ds_rows] = target
    mask = np.zeros(len(private), bool)
    mask[ds_rows] = True
    assert meta["inputs"]["start"] == victim.key
    assert meta["inputs"]["images"] == private.fingerprint
    assert meta["inputs"]["targets"] == fingerprint_array(relabelled) != fingerprint_array(private.labels)
    assert meta["inputs"]["triggered"] == fingerprint_array(mask)
    assert meta["config"]["trigger"] == trigger.to_dict() and meta["config"]["train"] == RECIPE.to_dict()


def test_train_benign_shadow_never_trains_on_the_lowest_losses(engine):
    foundation, private = make_loaded(seed=0), toy_images(40, seed=4)
    loss = np.random.default_rng(5).permutation(40) / 40.0  # distinct losses, lowest first in argsort
    lam = 0.3
    benign, history = train_benign_shadow(engine, foundation, private, loss, lam, RECIPE)

    lowest = np.argsort(loss)[:12]  # round(0.3 * 40)
    kept = np.setdiff1d(np.arange(40), lowest)
    meta = entry_meta(engine, benign)
    assert meta["inputs"]["start"] == foundation.key
    assert meta["inputs"]["images"] == private.subset(kept).fingerprint
    assert meta["inputs"]["targets"] == fingerprint_array(private.labels[kept])
    assert "triggered" not in meta["inputs"]
    # a training set that kept one of the lowest-loss rows would have another fingerprint
    leaky = np.sort(np.r_[kept[1:], lowest[0]])
    assert private.subset(leaky).fingerprint != meta["inputs"]["images"]
    assert states_differ(benign.model, foundation.model)
    assert len(history["epochs"]) == RECIPE.epochs


def test_train_reference_shadow_and_its_membership_design(engine):
    foundation = make_loaded(seed=0)
    private, heldout = toy_images(40, seed=6, name="private"), toy_images(30, seed=7, name="heldout")
    reference, _, design = train_reference_shadow(engine, foundation, private, heldout, 0.4, RECIPE,
                                                  np.random.default_rng(11))
    members = design.member_rows
    assert len(members) == 16 and np.all(np.diff(members) > 0)  # round(0.4 * 40), sorted, distinct
    trained_on = np.setdiff1d(np.arange(40), members)
    meta = entry_meta(engine, reference)
    assert meta["inputs"]["start"] == foundation.key
    assert meta["inputs"]["images"] == private.subset(trained_on).fingerprint  # the rows that are not members
    assert meta["inputs"]["targets"] == fingerprint_array(private.labels[trained_on])
    assert np.array_equal(np.sort(np.r_[members, trained_on]), np.arange(40))

    assert design.control_rows.tolist() == list(range(30))  # every held-out row
    assert design.reference_loss_members.shape == (16,) and design.reference_loss_controls.shape == (30,)
    np.testing.assert_array_equal(design.reference_loss_controls,
                                  per_sample_loss(engine.logits(reference, heldout), heldout.labels))
    np.testing.assert_allclose(design.reference_loss_members,
                               per_sample_loss(forward_all(reference, private.subset(members)),
                                               private.labels[members]), rtol=1e-4, atol=1e-5)

    computed = engine.store.stats.computed["reference_shadow"]
    again, _, same = train_reference_shadow(engine, foundation, private, heldout, 0.4, RECIPE,
                                            np.random.default_rng(11))
    assert engine.store.stats.computed["reference_shadow"] == computed  # reused, not retrained
    assert again.fingerprint == reference.fingerprint
    for a, b in zip((same.member_rows, same.control_rows, same.reference_loss_members,
                     same.reference_loss_controls),
                    (design.member_rows, design.control_rows, design.reference_loss_members,
                     design.reference_loss_controls), strict=True):
        np.testing.assert_array_equal(a, b)

    _, _, other = train_reference_shadow(engine, foundation, private, heldout, 0.4, RECIPE,
                                         np.random.default_rng(12))
    assert len(other.member_rows) == 16 and not np.array_equal(other.member_rows, members)


def test_reference_pairs_calibrate_every_member_and_control_by_references_that_never_saw_it(engine):
    foundation = make_loaded(seed=0)
    private, heldout = toy_images(40, seed=6, name="private"), toy_images(30, seed=7, name="heldout")
    refs = train_reference_pairs(engine, foundation, private, heldout, 2, RECIPE, np.random.default_rng(11))
    design = refs.design
    assert len(refs.models) == 4 and len({m.fingerprint for m in refs.models}) == 4
    assert design.member_rows.tolist() == list(range(40)) and design.control_rows.tolist() == list(range(30))
    losses_p = [per_sample_loss(forward_all(m, private), private.labels) for m in refs.models]
    losses_h = [per_sample_loss(forward_all(m, heldout), heldout.labels) for m in refs.models]
    for j in range(2):  # each pair splits D into two halves: each row is in exactly one
        a, b = refs.trained_rows[2 * j], refs.trained_rows[2 * j + 1]
        assert len(a) == len(b) == 20 and not np.intersect1d(a, b).size
        assert np.array_equal(np.sort(np.r_[a, b]), np.arange(40))
        for r in (2 * j, 2 * j + 1):  # what the store says each trained on
            meta = entry_meta(engine, refs.models[r])
            assert meta["inputs"]["images"] == private.subset(refs.trained_rows[r]).fingerprint
            assert meta["inputs"]["start"] == foundation.key
    # a member's difficulty is the mean loss of the one reference per pair that never trained on it
    for i in range(40):
        unseen = [r for r in range(4) if i not in refs.trained_rows[r]]
        assert len(unseen) == 2 and unseen[0] in (0, 1) and unseen[1] in (2, 3)
        np.testing.assert_allclose(design.reference_loss_members[i], np.mean([losses_p[r][i] for r in unseen]),
                                   rtol=1e-4, atol=1e-5)
    # a control's is the mean of one reference per pair too (its virtual halves): no reference saw any control
    for i in range(30):
        means = {(a, b): (losses_h[a][i] + losses_h[b][i]) / 2 for a in (0, 1) for b in (2, 3)}
        assert min(abs(v - design.reference_loss_controls[i]) for v in means.values()) < 1e-4
    again = train_reference_pairs(engine, foundation, private, heldout, 2, RECIPE, np.random.default_rng(11))
    np.testing.assert_array_equal(again.design.reference_loss_controls, design.reference_loss_controls)
    assert [m.fingerprint for m in again.models] == [m.fingerprint for m in refs.models]  # reused from the store


# -- the membership design -------------------------------------------------------------------------------------------
def _design(n_members: int = 50, n_controls: int = 30) -> MembershipDesign:
    members = np.arange(n_members) * 2 + 100
    controls = np.arange(n_controls) * 3
    return MembershipDesign(members, controls, members / 1000.0, controls / 1000.0 + 0.5)


def _assert_consistent(sub: MembershipDesign, full: MembershipDesign) -> None:
    """The subsample's rows come from the full design, sorted, with the losses of the same rows."""
    assert np.all(np.isin(sub.member_rows, full.member_rows)) and np.all(np.diff(sub.member_rows) > 0)
    assert np.all(np.isin(sub.control_rows, full.control_rows)) and np.all(np.diff(sub.control_rows) > 0)
    np.testing.assert_array_equal(sub.reference_loss_members, sub.member_rows / 1000.0)
    np.testing.assert_array_equal(sub.reference_loss_controls, sub.control_rows / 1000.0 + 0.5)


def test_membership_design_subsample_sizes_and_consistency():
    full = _design()
    half = full.subsample(40, np.random.default_rng(0))
    assert (len(half.member_rows), len(half.control_rows)) == (20, 20)
    _assert_consistent(half, full)

    odd = full.subsample(41, np.random.default_rng(0))
    assert (len(odd.member_rows), len(odd.control_rows)) == (20, 21)
    # fewer members than half the budget: the controls take the rest; fewer controls: the members stay at half
    few_controls = _design(50, 10).subsample(60, np.random.default_rng(0))
    assert (len(few_controls.member_rows), len(few_controls.control_rows)) == (30, 10)
    few_members = _design(10, 30).subsample(60, np.random.default_rng(0))
    assert (len(few_members.member_rows), len(few_members.control_rows)) == (10, 30)
    everything = full.subsample(1_000, np.random.default_rng(0))
    np.testing.assert_array_equal(everything.member_rows, full.member_rows)
    np.testing.assert_array_equal(everything.control_rows, full.control_rows)


def test_membership_design_subsample_is_reproducible():
    full = _design()
    a = full.subsample(30, np.random.default_rng(4))
    b = full.subsample(30, np.random.default_rng(4))
    c = full.subsample(30, np.random.default_rng(5))
    for x, y in ((a.member_rows, b.member_rows), (a.control_rows, b.control_rows),
                 (a.reference_loss_members, b.reference_loss_members)):
        np.testing.assert_array_equal(x, y)
    assert not (np.array_equal(a.member_rows, c.member_rows) and np.array_equal(a.control_rows, c.control_rows))
    assert len(MembershipDesign.empty().subsample(60, np.random.default_rng(0)).member_rows) == 0
