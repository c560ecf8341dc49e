"""forensics.zoo.attacks: the registry of the attack zoo."""
from __future__ import annotations

import pytest

from forensics.errors import ConfigError
from forensics.zoo.attacks import KINDS, get_attack, list_attacks, register_attack, run_attack


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
