"""forensics.zoo.entries: the standard zoo is well-formed, its registry keyed by slug ids, and its suspects build
and verify on the reduced demo."""
from __future__ import annotations

import pytest

from forensics.audit.answers import ANSWER_FORMATS
from forensics.demo.zoo import demo_zoo_context
from forensics.errors import ConfigError
from forensics.zoo.attacks import list_attacks
from forensics.zoo.entries import (
    ZooEntry,
    get_zoo_entry,
    list_zoo_entries,
    register_zoo_entry,
    run_zoo,
    select_zoo_entries,
    summary_rows,
)


def test_standard_zoo_is_well_formed():
    zoo = list_zoo_entries()
    assert len({e.id for e in zoo}) == len({e.title for e in zoo}) == len(zoo) == 47
    for e in zoo:
        e.check({"aux", "innocent", "innocent/2", "innocent+aux", "synthetic"})
    innocents = list_zoo_entries("innocent")
    assert len(innocents) * 3 >= 20  # three seeds give at least 20 innocent models
    assert {e.attack for e in zoo} == {a.name for a in list_attacks()}  # every registered attack is used
    assert {e.answers for e in zoo} == set(ANSWER_FORMATS)
    groups = {e.group for e in zoo}
    assert {"fine-tune", "pruning", "quantisation", "partial re-training", "combination", "distillation",
            "label extraction", "distillation, other foundation", "distillation, from scratch",
            "data-free distillation", "black-box API", "weight-space edit", "normalisation statistics",
            "noisy or regularised training"} <= groups
    assert {e.student for e in innocents} >= {None, "other-foundation", "scratch:resnet18"}


def test_entries_by_id_or_title_and_the_registry_refuses_repeats():
    assert get_zoo_entry("fine-tune-light") is get_zoo_entry("fine-tune, 1 epoch lr 1e-4")
    assert select_zoo_entries(None) == list_zoo_entries() == select_zoo_entries(["all"])
    assert [e.id for e in select_zoo_entries(["direct-copy", "int8 weights"])] == ["direct-copy", "int8"]
    with pytest.raises(ConfigError, match=r"unknown zoo entry 'teleport'; choose among: direct-copy \(direct copy\)"):
        select_zoo_entries(["teleport"])
    with pytest.raises(ConfigError, match="already registered"):
        register_zoo_entry(ZooEntry("direct-copy", "another copy", "copy", "direct_copy"))
    with pytest.raises(ConfigError, match="already registered"):
        register_zoo_entry(ZooEntry("copy-2", "direct copy", "copy", "direct_copy"))
    with pytest.raises(ConfigError, match="lowercase letters and digits joined by '-'"):
        register_zoo_entry(ZooEntry("Direct Copy", "a copy", "copy", "direct_copy"))
    assert len(list_zoo_entries()) == 47


def test_bad_entries_are_refused():
    keys = {"aux"}
    with pytest.raises(ConfigError, match="unknown attack"):
        ZooEntry("x", "x", "g", "teleport").check(keys)
    with pytest.raises(ConfigError, match="unknown data"):
        ZooEntry("x", "x", "g", "fine_tune", data="secret").check(keys)
    with pytest.raises(ConfigError, match="answer format"):
        ZooEntry("x", "x", "g", "fine_tune", answers="morse").check(keys)
    with pytest.raises(ConfigError, match="student"):
        ZooEntry("x", "x", "g", "distill", student="resnet18").check(keys)
    with pytest.raises(ConfigError, match="lr"):
        ZooEntry("x", "x", "g", "fine_tune", train={"lr": 5.0}).check(keys)


@pytest.mark.slow
def test_zoo_suspects_build_and_verify_on_the_reduced_demo(quick_demo):
    picked = select_zoo_entries(["direct-copy", "prune-20", "int8", "api-top1-fine-tune", "innocent-other-foundation",
                                 "innocent-student"])
    ctx = demo_zoo_context(quick_demo.audit, quick=True)
    seen = []
    results = run_zoo(ctx, picked, [0], on_result=seen.append)
    assert len(results) == len(seen) == len(picked)
    by = {r.entry.title: r for r in results}
    assert by["direct copy"].agreement == 1.0 and by["direct copy"].verdict.verdict == "stolen"
    assert by["int8 weights"].agreement > 0.95 and by["int8 weights"].verdict.p_value < 1e-6
    assert by["fine-tune, API top-1"].verdict.label_only
    for name in ("innocent, another pretrained foundation", "innocent, student of an innocent teacher"):
        assert by[name].verdict.verdict == "not stolen" and by[name].entry.kind == "innocent"
    rows = summary_rows(results)
    assert [r["name"] for r in rows] == [e.title for e in picked] and rows[0]["id"] == "direct-copy"
    assert rows[0]["membership_below_0.01"] == "1/1"
    # a second run reuses every model from the store
    again = run_zoo(ctx, picked, [0])
    assert [r.verdict.p_value for r in again] == [r.verdict.p_value for r in results]


@pytest.mark.slow
def test_new_families_and_ground_truth_on_the_reduced_demo(quick_demo):
    """Weight noise, averaging with an innocent model and re-estimated normalisation statistics build, keep the
    victim's weights and are judged by role; a re-trained tail of a victim that trained only its tail is a control
    (nothing of it survives)."""
    picked = select_zoo_entries(["weight-noise", "weight-average", "norm-recalibrated", "retrain-last-stage"])
    ctx = demo_zoo_context(quick_demo.audit, quick=True)
    by = {r.entry.id: r for r in run_zoo(ctx, picked, [0])}
    victim = quick_demo.audit.victim
    for key in ("weight-noise", "weight-average", "norm-recalibrated"):
        r = by[key]
        assert r.survives == "weights" and r.verdict.fingerprint != victim.fingerprint
        assert r.victim_accuracy == pytest.approx(ctx.victim_test_accuracy)
        assert r.role == ("theft" if r.useful else "failed theft")
    assert by["norm-recalibrated"].verdict.p_value < 0.01   # moved statistics, the victim's weights: caught
    control = by["retrain-last-stage"]
    assert control.survives == "nothing" and control.role == "control" and not control.counts_as_theft
    assert control.to_dict()["role"] == "control"


def test_the_second_demo_victim_has_its_own_foundation_size_and_recipe():
    """bench --victim lite1: EfficientNet-Lite1 at 72 px, another recipe; its zoo's other foundation is Lite0."""
    from types import SimpleNamespace

    from forensics.demo.assets import DEMO_VICTIMS, demo_spec

    spec = demo_spec(0, victim="lite1")
    assert spec.foundation == "demo:lite1" and spec.input_size == 72
    assert spec.config.train == DEMO_VICTIMS["lite1"].train and spec.config.train.label_smoothing == 0.1
    assert spec.config.train != demo_spec(0).config.train
    assert demo_spec(0).foundation == "demo:foundation" and demo_spec(0).input_size is None  # the demo unchanged
    assert demo_spec(0, quick=True, victim="lite1").config.train.epochs == 3
    ctx = demo_zoo_context(SimpleNamespace(spec=spec), quick=True)
    assert ctx.other_foundation == "demo:foundation" and ctx.recipe == DEMO_VICTIMS["lite1"].train
    assert demo_zoo_context(SimpleNamespace(spec=demo_spec(0)), quick=True).other_foundation == "demo:lite1"
    with pytest.raises(ConfigError, match="unknown demo victim 'lite9'; choose one of"):
        demo_spec(0, victim="lite9")
