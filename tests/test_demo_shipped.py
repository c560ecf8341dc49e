"""Shipped runs: the engine uses a run a package ships only for its exact key and fingerprint; the full demo's
shipped victim and suspects are current (a change to the demo's data, recipes, attacks or cache keys that makes them
stale fails here: remake them with scripts/make_demo_weights.py)."""
from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from helpers import make_loaded, toy_images

from forensics.engine import stored
from forensics.engine.engine import Engine
from forensics.engine.recipe import TrainConfig
from forensics.engine.stored import ShippedRun, train_stored
from forensics.runtime.store import ArtifactStore, artifact_key

CFG = TrainConfig(epochs=1, batch_size=16, lr=5e-3)


@pytest.fixture
def providers(monkeypatch):
    """The registry of shipped-run providers, emptied for the test (the demo's stays out of the toy runs)."""
    registry: list = []
    monkeypatch.setattr(stored, "_SHIPPED", registry)
    return registry


def _trained_and_key(tmp_path):
    images = toy_images(30)
    engine = Engine(ArtifactStore(tmp_path / "made"), device="cpu")
    start = make_loaded()
    trained, history = train_stored(engine, "stage", start, images, images.labels, CFG)
    (path,) = (tmp_path / "made" / "stage").iterdir()
    return images, start, trained, history, path.name


def _diff(trained, start) -> dict[str, torch.Tensor]:
    base = start.model.state_dict()
    return {n: t.clone() for n, t in trained.model.state_dict().items() if not torch.equal(t, base[n])}


def test_a_shipped_run_replaces_training_only_for_its_key_and_fingerprint(tmp_path, providers, caplog):
    images, start, trained, history, key = _trained_and_key(tmp_path)
    diff = _diff(trained, start)
    assert 0 < len(diff) < len(start.model.state_dict())  # only what training changed is shipped
    asked = []

    def provider(stage, k):
        asked.append((stage, k))
        return ShippedRun(diff, trained.fingerprint, history) if k == key else None

    providers.append(provider)
    engine = Engine(ArtifactStore(tmp_path / "fresh"), device="cpu")
    events = []
    got, hist = train_stored(engine, "stage", start, images, images.labels, CFG, progress=events.append)
    assert got.fingerprint == trained.fingerprint and hist["shipped"] is True
    assert len(events) == 1 and events[0].done and events[0].shipped  # no training step ran
    assert events[0].loss == pytest.approx(history["epochs"][-1]["loss"])
    # another recipe is another key: it trains (the provider was asked, and said no)
    other = TrainConfig(epochs=1, batch_size=16, lr=4e-3)
    events.clear()
    got2, hist2 = train_stored(engine, "stage", start, images, images.labels, other, progress=events.append)
    assert "shipped" not in hist2 and len(events) > 1 and not events[0].shipped
    assert asked[-1][1] == artifact_key("stage", {"train": other.to_dict(), "trigger": None,
                                                  "data_config": got2.data_config, "precision": "fp32"},
                                        {"start": start.key, "images": images.fingerprint,
                                         "targets": stored.fingerprint_array(images.labels)}) != key
    # weights that do not rebuild to the recorded fingerprint are not used: the run trains, with a warning
    providers[:] = [lambda stage, k: ShippedRun({n: t + 1 for n, t in diff.items() if t.is_floating_point()},
                                                trained.fingerprint, history)]
    engine = Engine(ArtifactStore(tmp_path / "tampered"), device="cpu")
    with caplog.at_level(logging.WARNING, logger="forensics.engine.stored"):
        got3, hist3 = train_stored(engine, "stage", start, images, images.labels, CFG)
    assert "shipped" not in hist3 and got3.fingerprint == trained.fingerprint  # trained: the same seeded weights
    assert "rebuilds to another fingerprint" in caplog.text


def test_a_distilled_run_is_keyed_by_its_teachers_logits_not_their_last_bits(tmp_path, providers):
    """A teacher's logits differ in the last bits from one CPU kind to another (a shipped distilled run was once
    trained again on another machine for it): the run is keyed by what the logits are, so it is found anyway, and
    the teacher runs only when the student trains."""
    from forensics.zoo.attacks import distill

    images = toy_images(30)
    engine = Engine(ArtifactStore(tmp_path), device="cpu")
    teacher, student = make_loaded(seed=1), make_loaded(seed=2)
    first = distill(teacher, student, images, engine, CFG)
    (entry,) = (tmp_path / "attack_distill").iterdir()
    logits = engine.logits(teacher, images)
    (stored_logits,) = (tmp_path / "logits").iterdir()
    np.save(stored_logits / "logits.npy", np.nextafter(logits, np.inf))  # the same logits from another CPU
    other = Engine(ArtifactStore(tmp_path), device="cpu")
    again = distill(teacher, student, images, other, CFG)
    assert again.fingerprint == first.fingerprint and [p.name for p in (tmp_path / "attack_distill").iterdir()] == [
        entry.name]
    # a run found in the store (or shipped) does not ask the teacher at all
    assert other.store.stats.hits["logits"] == other.store.stats.computed["logits"] == 0
    assert engine.logits_key(teacher, images) == stored_logits.name  # the logits' own store key
    assert engine.logits_key(make_loaded(seed=3), images) != stored_logits.name


def test_shipping_can_be_turned_off(monkeypatch):
    from forensics.demo import shipped

    (entry,) = [e for e in shipped.manifest().values() if e["stage"] == "demo_victim"]
    assert shipped.provide("demo_victim", entry["key"]) is not None
    monkeypatch.setenv("FORENSICS_DEMO_SHIPPED", "0")
    assert shipped.provide("demo_victim", entry["key"]) is None
    monkeypatch.setenv("FORENSICS_DEMO_SHIPPED", "maybe")
    from forensics.errors import ConfigError
    with pytest.raises(ConfigError, match="FORENSICS_DEMO_SHIPPED='maybe'"):
        shipped.provide("demo_victim", entry["key"])


@pytest.mark.slow
def test_the_full_demo_victim_and_suspects_come_shipped(tmp_path):
    """The full demo's first run trains none of its victim's and suspects' runs: every one is shipped and current."""
    from forensics.demo import DEMO_SUSPECTS, demo_spec, shipped
    from forensics.demo.assets import demo_split, demo_suspect, demo_victim, stored_demo_foundation

    spec = demo_spec(0)
    assert shipped.covers(spec) and not shipped.covers(demo_spec(0, quick=True))
    engine = Engine(ArtifactStore(tmp_path), device="cpu")
    private = demo_split("private")
    foundation = stored_demo_foundation(engine.store, 10, seed=0)
    events = []
    victim = demo_victim(engine, foundation, private, seed=0, quick=False, progress=events.append)
    for s in DEMO_SUSPECTS:
        demo_suspect(s.key, victim, foundation, engine, seed=0, quick=False, progress=events.append)
    trained = [e for e in events if not e.shipped]
    assert not trained, f"trained instead of shipped (stale files? run scripts/make_demo_weights.py): {trained[:3]}"
    assert len(events) == len(shipped.manifest()) == 6  # the victim and five trained suspects (one is a copy)
    assert victim.fingerprint in {e["fingerprint"] for e in shipped.manifest().values()}
    assert np.isfinite([e.loss for e in events]).all()
