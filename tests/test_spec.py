"""forensics.audit.spec and forensics.audit.config as plain data: AuditSpec / AuditConfig to a dict and back (nested
recipes and trigger included), no demo defaults, the demo's spec, specs of earlier records, the audit's plan and
victim title, and read_record's refusals."""
from __future__ import annotations

import json
import re
from dataclasses import replace

import pytest

from forensics.audit.build import audit_plan, audit_stage_plan
from forensics.audit.config import AuditConfig
from forensics.audit.sources import victim_title
from forensics.audit.spec import AuditSpec
from forensics.data.transforms import Trigger
from forensics.demo import demo_spec
from forensics.demo.assets import VICTIM_TRAIN
from forensics.engine.recipe import TrainConfig
from forensics.errors import ConfigError
from forensics.method.meta import MetaConfig
from forensics.report.record import read_record

SOURCES = {"victim": "hf-hub:acme/vit-small@v1", "foundation": "hf-hub:timm/vit_small_patch16_224",
           "data": "/data/private"}


def full_spec() -> AuditSpec:
    """A spec with every field away from its default."""
    config = AuditConfig(gamma=0.2, lam=0.6, target_class=2, trigger=Trigger(size=0.25, value=0.5, position="top-left"),
                         train=TrainConfig(epochs=2, lr=3e-3, trainable_blocks=None, augment=True, label_smoothing=0.1),
                         poison_train=TrainConfig(epochs=1, batch_size=16, trainable_blocks=3),
                         meta=MetaConfig(epochs=20, lr=0.01, eval_every=5), meta_train_fraction=0.6,
                         meta_val_fraction=0.1, member_fraction=0.4, strata=5, stratum_weighting="flat",
                         protocol="holmes", alpha=0.05, paper_draws=10, paper_m=50, seed=7)
    return AuditSpec(**SOURCES, heldout="/data/heldout", victim_revision="abc", foundation_revision="def",
                     arch="vit_small_patch16_224", num_classes=3, input_size=32, quick=True, device="cpu",
                     config=config)


def test_spec_round_trips_through_json():
    spec = full_spec()
    d = json.loads(json.dumps(spec.to_dict()))  # plain JSON, no custom encoder needed
    assert d["config"]["trigger"] == {"size": 0.25, "value": 0.5, "position": "top-left"}
    assert d["config"]["train"]["epochs"] == 2 and d["config"]["train"]["augment"] is True
    assert d["config"]["meta"]["eval_every"] == 5 and d["config"]["seed"] == 7
    back = AuditSpec.from_dict(d)
    assert back == spec
    assert isinstance(back.config, AuditConfig) and isinstance(back.config.trigger, Trigger)
    assert isinstance(back.config.train, TrainConfig) and isinstance(back.config.meta, MetaConfig)
    assert back.config.train.augment and not back.config.poison_train.augment
    assert back.config.seeded_train.seed == back.config.seeded_meta.seed == 7

    budget = AuditSpec(**SOURCES, config=AuditConfig(query_budget=60))
    assert AuditSpec.from_dict(json.loads(json.dumps(budget.to_dict()))) == budget
    assert AuditSpec.from_dict(AuditSpec(**SOURCES).to_dict()) == AuditSpec(**SOURCES)


def test_from_dict_does_not_change_its_argument():
    d = full_spec().to_dict()
    before = json.dumps(d, sort_keys=True)
    AuditSpec.from_dict(d)
    assert json.dumps(d, sort_keys=True) == before


def test_spec_has_no_demo_defaults():
    with pytest.raises(TypeError, match=r"missing 3 required positional arguments: 'victim', 'foundation', and 'data'"):
        AuditSpec()
    with pytest.raises(TypeError, match=r"missing 1 required positional argument: 'data'"):
        AuditSpec(victim="local-dir:/m", foundation="local-dir:/f")
    spec = AuditSpec(**SOURCES)
    assert spec.heldout is None and not spec.quick and spec.device == "auto" and spec.config == AuditConfig()


def test_demo_spec_is_the_demo_sources_and_the_seed():
    spec = demo_spec(5, quick=True)
    assert (spec.victim, spec.foundation, spec.data, spec.heldout) == (
        "demo:victim", "demo:foundation", "demo:private", "demo:heldout")
    assert spec.quick and spec.config.seed == 5 and spec.config.protocol == "membership"
    assert spec.config.train == replace(VICTIM_TRAIN, epochs=3)  # the reduced demo's epochs
    assert spec.config.poison_train.epochs == 2
    assert spec.config.seeded_train.seed == spec.config.seeded_poison_train.seed == spec.config.seeded_meta.seed == 5
    full = demo_spec(5)
    assert not full.quick and full.config.train == VICTIM_TRAIN and full.config.poison_train.epochs == 3
    assert demo_spec(6, quick=True).config == replace(spec.config, seed=6)
    assert demo_spec(0, protocol="holmes").config.protocol == "holmes"
    assert AuditSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec


def test_a_spec_of_an_earlier_version_still_reads():
    spec = full_spec()
    old = spec.to_dict()
    for part in ("train", "poison_train", "meta"):  # earlier records stored the audit's seed in every recipe
        assert old["config"][part]["seed"] == 0
        old["config"][part]["seed"] = 7
    back = AuditSpec.from_dict(old)
    assert back == spec
    assert back.config.train.seed == back.config.poison_train.seed == back.config.meta.seed == 0
    assert back.config.seeded_poison_train.seed == 7
    old["config"]["train"]["seed"] = 8  # another seed than the audit's is not an earlier version's record
    with pytest.raises(ConfigError, match=r"AuditConfig\.train\.seed is 8 but the audit's seed is 7"):
        AuditSpec.from_dict(old)


def test_audit_plan_has_the_reference_stage_only_with_heldout_data():
    without = AuditSpec(**SOURCES)
    stages = [name for name, _ in audit_plan(without)]
    assert stages == ["data", "victim", "loss_order", "poisoned_shadow", "benign_shadow", "meta_classifier"]
    with_heldout = [name for name, _ in audit_plan(replace(without, heldout="/data/heldout"))]
    assert with_heldout == ["data", "victim", "loss_order", "poisoned_shadow", "benign_shadow", "reference_shadow",
                            "meta_classifier"]
    assert "reference_shadow" not in dict(audit_plan(replace(without, heldout="")))
    assert dict(audit_plan(demo_spec(0, quick=True)))["reference_shadow"] == "Membership reference shadow"


def test_victim_title_differs_for_the_demo():
    demo = victim_title(demo_spec(0, quick=True))
    assert demo == "Training the demo victim (first run only)"
    for victim in ("hf-hub:acme/vit-small@v1", "local-dir:/models/victim", "/models/victim.safetensors"):
        assert victim_title(AuditSpec(victim, SOURCES["foundation"], SOURCES["data"])) == (
            "Loading the victim and its foundation")
    assert dict(audit_plan(demo_spec(0, quick=True)))["victim"] == demo
    assert dict(audit_plan(AuditSpec(**SOURCES)))["victim"] != demo
    # the full demo's victim comes with the package (forensics.demo.shipped), unless shipping is off
    assert victim_title(demo_spec(0)) == "Loading the demo victim (its weights come with the package)"
    assert audit_stage_plan(demo_spec(0)).costs["victim"] < 1 < audit_stage_plan(demo_spec(0, quick=True)).costs[
        "victim"]


def test_the_demo_trains_its_victim_when_shipping_is_off(monkeypatch):
    monkeypatch.setenv("FORENSICS_DEMO_SHIPPED", "0")
    assert victim_title(demo_spec(0)) == "Training the demo victim (first run only)"
    assert audit_stage_plan(demo_spec(0)).costs["victim"] == demo_spec(0).config.train.epochs


def test_read_record_reads_a_record():
    rec = {"spec": full_spec().to_dict(), "suspects": []}
    assert read_record(json.dumps(rec).encode()) == rec
    assert AuditSpec.from_dict(read_record(json.dumps(rec).encode())["spec"]) == full_spec()


def test_read_record_refuses_what_is_not_a_record(tmp_path):
    def path_of(name: str, text: str):
        p = tmp_path / name
        p.write_text(text)
        return p, re.escape(str(p))

    p, shown = path_of("notes.txt", "not json at all")
    with pytest.raises(ConfigError, match=shown + r" is not JSON \(.*\); give the audit\.json"):
        read_record(p)
    for i, text in enumerate(('{"suspects": []}', "[1, 2]", '"spec"')):
        p, shown = path_of(f"other{i}.json", text)
        with pytest.raises(ConfigError, match=shown + r" is not a Holmes forensics audit record \(no 'spec'\)"):
            read_record(p)
    p, shown = path_of("listless.json", json.dumps({"spec": full_spec().to_dict(), "suspects": "none"}))
    with pytest.raises(ConfigError, match=shown + r": its 'suspects' is not a list"):
        read_record(p)
    p, shown = path_of("old.json", json.dumps({"spec": {"victim": "hf-hub:a/b"}}))
    with pytest.raises(ConfigError, match=shown + r": its audit settings cannot be read \(KeyError: 'config'\)"):
        read_record(p)
    bad = full_spec().to_dict()
    bad["config"]["gamma"] = 0.9
    p, shown = path_of("bad.json", json.dumps({"spec": bad}))
    with pytest.raises(ConfigError, match=shown + r": its audit settings cannot be read \(ConfigError: The 'gamma'"):
        read_record(p)
    unknown = full_spec().to_dict()
    unknown["config"]["train"]["momentum"] = 0.9
    p, shown = path_of("unknown.json", json.dumps({"spec": unknown}))
    with pytest.raises(ConfigError, match=shown + r": its audit settings cannot be read \(TypeError: .*momentum"):
        read_record(p)
    missing = tmp_path / "missing.json"
    with pytest.raises(ConfigError, match=r"cannot read the audit record " + re.escape(str(missing)) + r" \(No such"):
        read_record(missing)
    with pytest.raises(ConfigError, match=r"^upload\.json is not JSON"):
        read_record(b"\xff\xfe", "upload.json")
    with pytest.raises(ConfigError, match=r"^the record is not a Holmes forensics audit record"):
        read_record(b"{}")
