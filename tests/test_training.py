"""forensics.engine through the engine: resume after a kill, seeds, targets, partial fine-tuning."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import (
    CFG,
    Killed,
    assert_same_state,
    kill_when_epoch_starts,
    make_loaded,
    states_differ,
    toy_images,
)

from forensics.engine.engine import Engine
from forensics.engine.recipe import TrainConfig
from forensics.errors import ConfigError
from forensics.models import fingerprint_state_dict
from forensics.models.splitting import split_model
from forensics.runtime.store import ArtifactStore

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("trainable_blocks", [1, None], ids=["cached_tail", "full"])
def test_resume_after_kill_is_bit_identical(tmp_path, trainable_blocks):
    images = toy_images()
    cfg = TrainConfig(epochs=3, batch_size=16, lr=5e-3, trainable_blocks=trainable_blocks, seed=0)
    start = make_loaded()
    engine = Engine(ArtifactStore(tmp_path / "store"), device="cpu")

    # the checkpoint folders do not exist yet: train must create them
    full = start.clone()
    h_full = engine.train(full, images, images.labels, cfg, checkpoint_dir=tmp_path / "ckpt" / "uninterrupted")
    assert h_full.resumed_from_epoch == 0 and [e["epoch"] for e in h_full.epochs] == [1, 2, 3]

    killed = start.clone()
    ckpt_dir = tmp_path / "ckpt" / "killed"
    with pytest.raises(Killed):
        engine.train(killed, images, images.labels, cfg, checkpoint_dir=ckpt_dir,
                     progress=kill_when_epoch_starts(2))
    saved = torch.load(ckpt_dir / "checkpoint.pt", map_location="cpu", weights_only=True)
    assert saved["epoch"] == 1

    # a fresh process: a fresh copy of the start model, a fresh engine on the same store
    resumed = start.clone()
    seen_epochs = []
    engine2 = Engine(ArtifactStore(tmp_path / "store"), device="cpu")
    h = engine2.train(resumed, images, images.labels, cfg, checkpoint_dir=ckpt_dir,
                      progress=lambda p: seen_epochs.append(p.epoch))
    assert h.resumed_from_epoch == 1
    assert min(seen_epochs) == 2  # epoch 1 was not trained again
    assert_same_state(resumed.model, full.model)
    assert resumed.fingerprint == full.fingerprint
    assert h.epochs == h_full.epochs  # losses of epoch 1 come from the checkpoint, the rest re-computed
    assert states_differ(resumed.model, start.model)

    # a re-run after completion restores the final weights without training
    again = start.clone()
    h3 = engine2.train(again, images, images.labels, cfg, checkpoint_dir=ckpt_dir,
                       progress=kill_when_epoch_starts(1))
    assert h3.resumed_from_epoch == 3
    assert_same_state(again.model, full.model)


def test_checkpoint_of_another_config_is_not_resumed(tmp_path):
    images = toy_images(60)
    start = make_loaded()
    engine = Engine(ArtifactStore(tmp_path / "store"), device="cpu")
    with pytest.raises(Killed):
        engine.train(start.clone(), images, images.labels, CFG, checkpoint_dir=tmp_path / "ck",
                     progress=kill_when_epoch_starts(2))
    other = TrainConfig(epochs=3, batch_size=16, lr=1e-3, seed=0)
    m = start.clone()
    h = engine.train(m, images, images.labels, other, checkpoint_dir=tmp_path / "ck")
    assert h.resumed_from_epoch == 0 and len(h.epochs) == 3
    ref = start.clone()
    engine.train(ref, images, images.labels, other)
    assert_same_state(m.model, ref.model)


@pytest.mark.parametrize("trainable_blocks", [1, None], ids=["cached_tail", "full"])
def test_same_seed_is_bit_identical_other_seed_differs(tmp_path, trainable_blocks):
    images = toy_images(60)
    start = make_loaded()
    engine = Engine(ArtifactStore(tmp_path), device="cpu")
    runs = {}
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        m = start.clone()
        cfg = TrainConfig(epochs=2, batch_size=16, lr=5e-3, trainable_blocks=trainable_blocks, seed=seed)
        engine.train(m, images, images.labels, cfg)
        runs[name] = m
    assert_same_state(runs["a"].model, runs["b"].model)
    assert runs["a"].fingerprint == runs["b"].fingerprint
    assert states_differ(runs["a"].model, runs["c"].model)
    assert runs["a"].fingerprint != runs["c"].fingerprint


def _kl(teacher: np.ndarray, student: np.ndarray, t: float) -> float:
    """Mean KL(softmax(teacher / t) || softmax(student / t)) * t^2, as the engine's distillation loss."""
    lt = torch.log_softmax(torch.as_tensor(teacher, dtype=torch.float64) / t, 1)
    ls = torch.log_softmax(torch.as_tensor(student, dtype=torch.float64) / t, 1)
    return float((lt.exp() * (lt - ls)).sum(1).mean()) * t * t


def test_distillation_on_teacher_logits_reduces_kl(tmp_path):
    images = toy_images(90)
    rng = np.random.default_rng(1)
    teacher = (np.eye(3)[images.labels] * 5.0 + rng.normal(0, 0.5, (len(images), 3))).astype(np.float64)
    student = make_loaded(seed=2)
    engine = Engine(ArtifactStore(tmp_path), device="cpu")
    kl_before = _kl(teacher, engine.logits(student, images), 2.0)
    cfg = TrainConfig(epochs=12, batch_size=16, lr=5e-3, temperature=2.0, trainable_blocks=1)
    h = engine.train(student, images, teacher, cfg)
    losses = [e["loss"] for e in h.epochs]
    assert all(np.isfinite(losses)) and all(v >= 0 for v in losses)
    assert losses[-1] < 0.5 * losses[0], losses
    # in eval mode too: the student's outputs moved towards the teacher's
    out = engine.logits(student, images)
    assert _kl(teacher, out, 2.0) < 0.25 * kl_before
    assert (out.argmax(1) == teacher.argmax(1)).mean() > 0.9, _kl(teacher, out, 2.0) / kl_before


def test_class_index_targets_reduce_cross_entropy(tmp_path):
    images = toy_images(90)
    model = make_loaded(seed=1)
    engine = Engine(ArtifactStore(tmp_path), device="cpu")
    h = engine.train(model, images, images.labels, TrainConfig(epochs=4, batch_size=16, lr=5e-3, trainable_blocks=None))
    losses = [e["loss"] for e in h.epochs]
    assert losses[-1] < 0.5 * losses[0], losses
    assert h.epochs[-1]["accuracy"] > 0.9


def test_train_rejects_bad_targets(tmp_path):
    images = toy_images(30)
    engine = Engine(ArtifactStore(tmp_path), device="cpu")
    with pytest.raises(ConfigError, match="targets"):
        engine.train(make_loaded(), images, images.labels[:-1], CFG)
    with pytest.raises(ConfigError, match="at least 2"):
        one = images.subset([0])
        engine.train(make_loaded(), one, one.labels, CFG)




# --------------------------------------------------------------------------------------------
# partial fine-tuning


def test_partial_training_touches_only_the_tail(tmp_path):
    images = toy_images(60)
    start = make_loaded()
    split = split_model(start.model, 1)
    tail_names = set(split.tail_state)
    prefix_names = set(start.model.state_dict()) - tail_names
    assert prefix_names and tail_names
    engine = Engine(ArtifactStore(tmp_path), device="cpu")

    m = start.clone()
    tail_params = {id(p) for p in split_model(m.model, 1).trainable_parameters()}
    grad_sets = []
    engine.train(m, images, images.labels, TrainConfig(epochs=2, batch_size=16, lr=5e-3, trainable_blocks=1),
                 progress=lambda p: grad_sets.append({id(q) for q in m.model.parameters() if q.requires_grad}))
    assert grad_sets and all(s == tail_params for s in grad_sets[:-1])  # the last call comes after training
    before, after = start.model.state_dict(), m.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in prefix_names)  # weights and BN statistics
    assert any(not torch.equal(before[k], after[k]) for k in tail_names)
    assert all(p.requires_grad for p in m.model.parameters())  # restored afterwards
    assert not m.model.training and m.fingerprint == fingerprint_state_dict(m.model.state_dict())

    f = start.clone()
    engine.train(f, images, images.labels, TrainConfig(epochs=2, batch_size=16, lr=5e-3, trainable_blocks=None))
    after_full = f.model.state_dict()
    assert any(not torch.equal(before[k], after_full[k]) for k in prefix_names if k.endswith("weight"))


def test_partial_training_of_an_unsupported_architecture_says_what_to_do(tmp_path):
    images = toy_images(12)
    engine = Engine(ArtifactStore(tmp_path), device="cpu", cache_blocks=1)
    with pytest.raises(ConfigError, match="trainable_blocks=None"):
        engine.train(make_loaded("test_resnet"), images, images.labels,
                     TrainConfig(epochs=1, batch_size=8, trainable_blocks=1))


def test_train_stored_says_whether_it_reused(tmp_path):
    """A reused run reports done at once; the flag comes from this call's store entry, not from a
    store-wide log another session could append to."""
    from forensics.engine.stored import train_stored

    images = toy_images(30)
    store = ArtifactStore(tmp_path)
    engine = Engine(store, device="cpu")
    cfg = TrainConfig(epochs=1, batch_size=16, lr=5e-3)
    events = []
    first, _ = train_stored(engine, "stage", make_loaded(), images, images.labels, cfg, progress=events.append)
    assert events and not any(np.isnan(e.loss) for e in events)
    store.stats.hits["stage"] += 5  # what another session's reuse of this stage would leave behind
    other = make_loaded(seed=9)
    events.clear()
    train_stored(engine, "stage", other, images, images.labels, cfg, progress=events.append)
    assert not any(np.isnan(e.loss) for e in events)  # trained, although the store counted hits of "stage"
    events.clear()
    again, _ = train_stored(engine, "stage", make_loaded(), images, images.labels, cfg, progress=events.append)
    assert len(events) == 1 and events[0].done and np.isnan(events[0].loss)
    assert again.fingerprint == first.fingerprint


@pytest.mark.parametrize("augment", [False, True])
def test_loader_workers_give_the_same_weights(tmp_path, augment):
    """Images decoded by DataLoader workers (the default on a GPU) train the weights of the in-process path, with
    augmentation too (views are drawn per seed, epoch and row, and the loader does not draw from torch's RNG)."""
    images = toy_images(60)
    start = make_loaded("test_efficientnet", seed=1)
    cfg = TrainConfig(epochs=2, batch_size=16, lr=5e-3, trainable_blocks=None, seed=2, augment=augment)
    runs = []
    for workers in (0, 2):
        m = start.clone()
        Engine(ArtifactStore(tmp_path / str(workers)), device="cpu", num_workers=workers).train(
            m, images, images.labels, cfg)
        runs.append(m)
    assert_same_state(runs[0].model, runs[1].model)
