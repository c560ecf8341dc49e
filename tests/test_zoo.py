"""forensics.zoo: the demo's zoo is well-formed, and its suspects build and verify on the reduced demo."""
from __future__ import annotations

import pytest

from forensics.answers import ANSWER_FORMATS
from forensics.attacks import list_attacks
from forensics.errors import ConfigError
from forensics.zoo import DEMO_ZOO, ZooEntry, demo_zoo_context, run_zoo, summary_rows


def test_demo_zoo_is_well_formed():
    names = [e.name for e in DEMO_ZOO]
    assert len(names) == len(set(names))
    for e in DEMO_ZOO:
        e.check({"aux", "innocent", "innocent/2", "innocent+aux", "synthetic"})
    innocents = [e for e in DEMO_ZOO if e.kind == "innocent"]
    assert len(innocents) * 3 >= 20  # three seeds give at least 20 innocent models
    assert {e.attack for e in DEMO_ZOO} == {a.name for a in list_attacks()}  # every registered attack is used
    assert {e.answers for e in DEMO_ZOO} == set(ANSWER_FORMATS)
    groups = {e.group for e in DEMO_ZOO}
    assert {"fine-tune", "pruning", "quantisation", "partial re-training", "combination", "distillation",
            "label extraction", "distillation, other foundation", "distillation, from scratch",
            "data-free distillation", "black-box API"} <= groups
    assert {e.student for e in innocents} >= {None, "other-foundation", "scratch:resnet18"}


def test_bad_entries_are_refused():
    keys = {"aux"}
    with pytest.raises(ConfigError, match="unknown attack"):
        ZooEntry("x", "g", "teleport").check(keys)
    with pytest.raises(ConfigError, match="unknown data"):
        ZooEntry("x", "g", "fine_tune", data="secret").check(keys)
    with pytest.raises(ConfigError, match="answer format"):
        ZooEntry("x", "g", "fine_tune", answers="morse").check(keys)
    with pytest.raises(ConfigError, match="student"):
        ZooEntry("x", "g", "distill", student="resnet18").check(keys)
    with pytest.raises(ConfigError, match="lr"):
        ZooEntry("x", "g", "fine_tune", train={"lr": 5.0}).check(keys)


@pytest.mark.slow
def test_zoo_suspects_build_and_verify_on_the_reduced_demo(quick_demo):
    picked = [e for e in DEMO_ZOO if e.name in {"direct copy", "int8 weights", "prune 20 %", "fine-tune, API top-1",
                                                "innocent, another foundation (Lite1)",
                                                "innocent, student of an innocent teacher"}]
    ctx = demo_zoo_context(quick_demo.audit, quick=True)
    seen = []
    results = run_zoo(ctx, picked, [0], on_result=seen.append)
    assert len(results) == len(seen) == len(picked)
    by = {r.entry.name: r for r in results}
    assert by["direct copy"].agreement == 1.0 and by["direct copy"].verdict.verdict == "stolen"
    assert by["int8 weights"].agreement > 0.95 and by["int8 weights"].verdict.p_value < 1e-6
    assert by["fine-tune, API top-1"].verdict.label_only
    for name in ("innocent, another foundation (Lite1)", "innocent, student of an innocent teacher"):
        assert by[name].verdict.verdict == "not stolen" and by[name].entry.kind == "innocent"
    rows = summary_rows(results)
    assert [r["name"] for r in rows] == [e.name for e in picked]
    assert rows[0]["membership_below_0.01"] == "1/1"
    # a second run reuses every model from the store
    again = run_zoo(ctx, picked, [0])
    assert [r.verdict.p_value for r in again] == [r.verdict.p_value for r in results]
