"""forensics.zoo.attacks: the registry of the attack zoo, what of the victim survives in each, noisy labels."""
from __future__ import annotations

import numpy as np
import pytest

from forensics.engine.recipe import TrainConfig
from forensics.errors import ConfigError
from forensics.zoo.attacks import KINDS, get_attack, list_attacks, noisy_labels, register_attack, run_attack
from forensics.zoo.entries import ZooEntry


def test_listing_and_kinds():
    names = [a.name for a in list_attacks()]
    assert set(names) >= {"direct_copy", "fine_tune", "prune", "quantize", "retrain_tail", "distill",
                          "label_extraction", "innocent", "innocent_distilled"}
    assert {a.kind for a in list_attacks()} <= set(KINDS)
    assert [a.name for a in list_attacks("innocent")] == ["innocent", "innocent_distilled"]
    assert all(a.kind == "stolen" for a in list_attacks("stolen"))
    with pytest.raises(ConfigError, match="kind"):
        list_attacks("guilty")


def test_duplicate_names_and_bad_kinds_are_refused():
    with pytest.raises(ConfigError, match="already registered"):
        register_attack("fine_tune", "stolen", "again")(lambda *a, **k: None)
    with pytest.raises(ConfigError, match="kind"):
        register_attack("new_attack", "maybe", "")  # type: ignore[arg-type]
    assert "new_attack" not in [a.name for a in list_attacks()]


def test_unknown_attack():
    with pytest.raises(ConfigError, match="unknown attack 'nope'"):
        get_attack("nope")
    with pytest.raises(ConfigError, match="choose one of"):
        run_attack("nope", None, None, None, None, None)


def test_each_attack_says_what_of_the_victim_survives():
    recipe = TrainConfig(trainable_blocks=1)
    survives = {a.name: a.what_survives({}, recipe) for a in list_attacks()}
    assert {k: survives[k] for k in ("direct_copy", "fine_tune", "prune", "quantize", "weight_noise", "weight_average",
                                     "norm_recalibration", "distill", "label_extraction", "innocent",
                                     "innocent_distilled")} == {
        "direct_copy": "weights", "fine_tune": "weights", "prune": "weights", "quantize": "weights",
        "weight_noise": "weights", "weight_average": "weights", "norm_recalibration": "weights",
        "distill": "outputs", "label_extraction": "outputs", "innocent": "nothing", "innocent_distilled": "nothing"}
    tail = get_attack("retrain_tail")
    # re-training exactly what the victim trained leaves nothing of it; re-training less leaves its other blocks
    assert tail.what_survives({"blocks": 1}, recipe) == "nothing"
    assert tail.what_survives({"blocks": 1}, TrainConfig(trainable_blocks=2)) == "weights"
    assert tail.what_survives({"blocks": 2}, TrainConfig(trainable_blocks=None)) == "weights"   # a full fine-tune
    with pytest.raises(ConfigError, match="nothing of the victim survives in an innocent"):
        register_attack("innocent_copy", "innocent", "", survives="weights")
    with pytest.raises(ConfigError, match="survives must be one of"):
        register_attack("odd_attack", "stolen", "", survives="soul")
    with pytest.raises(ConfigError, match="nothing of the victim survives in an innocent"):
        ZooEntry("x", "x", "g", "innocent", survives="outputs").check()


def test_noisy_labels_replace_exactly_the_share_asked_with_other_classes():
    labels = np.arange(200) % 10
    noisy = noisy_labels(labels, 0.3, 10, seed=4)
    changed = noisy != labels
    assert changed.sum() == 60 and noisy.min() >= 0 and noisy.max() <= 9
    np.testing.assert_array_equal(noisy, noisy_labels(labels, 0.3, 10, seed=4))
    assert not np.array_equal(noisy, noisy_labels(labels, 0.3, 10, seed=5))
    np.testing.assert_array_equal(noisy_labels(labels, 0.0, 10, seed=4), labels)
    with pytest.raises(ConfigError, match="label_noise"):
        noisy_labels(labels, 1.0, 10, seed=0)
