"""forensics.audit.config: AuditConfig's validation, its one seed, and records of earlier versions."""
from __future__ import annotations

from dataclasses import replace

import pytest

from forensics.audit.config import AuditConfig
from forensics.engine.recipe import TrainConfig
from forensics.errors import ConfigError
from forensics.method.meta import MetaConfig
from forensics.protocols.registry import protocol_names


def test_config_validation_messages():
    with pytest.raises(ConfigError, match="'gamma' parameter of AuditConfig must be in"):
        AuditConfig(gamma=1.5)
    with pytest.raises(ConfigError, match="'epochs' parameter of TrainConfig"):
        TrainConfig(epochs=0)
    with pytest.raises(ConfigError, match="protocol"):
        AuditConfig(protocol="magic")
    for name in protocol_names():  # every registered protocol is a valid choice (with lineage replicas if it needs)
        assert AuditConfig(protocol=name, lineage_replicas=9).protocol == name
    for name in ("lineage", "combined"):
        with pytest.raises(ConfigError, match="needs replicas of the victim's training run: set lineage_replicas"):
            AuditConfig(protocol=name)
    with pytest.raises(ConfigError, match=r"'lineage_replicas' parameter of AuditConfig must be 0 \(no lineage test\) "
                                          r"or in \[5, 200\]"):
        AuditConfig(lineage_replicas=3)
    assert "lineage_replicas" not in AuditConfig().to_dict()  # records without the test read as before
    assert AuditConfig.from_dict(AuditConfig(lineage_replicas=7).to_dict()).lineage_replicas == 7


def test_reference_pairs_are_bounded_and_kept_out_of_records_without_them():
    assert "reference_pairs" not in AuditConfig().to_dict()
    assert AuditConfig.from_dict(AuditConfig(reference_pairs=4).to_dict()).reference_pairs == 4
    for bad in (-1, 17):
        with pytest.raises(ConfigError, match=r"'reference_pairs' parameter of AuditConfig must be 0 \(one "
                                              r"reference shadow\) or in \[1, 16\]"):
            AuditConfig(reference_pairs=bad)


def test_the_audit_seed_seeds_every_part():
    cfg = AuditConfig(seed=3, train=TrainConfig(epochs=2))
    assert cfg.seeded_train.seed == 3 and cfg.seeded_poison_train.seed == 3 and cfg.seeded_meta.seed == 3
    assert cfg.seeded_train.epochs == 2
    moved = replace(cfg, seed=5)  # a new seed reaches every part
    assert moved.seeded_train.seed == moved.seeded_poison_train.seed == moved.seeded_meta.seed == 5


def test_a_conflicting_nested_seed_is_an_error_not_silently_replaced():
    with pytest.raises(ConfigError, match=r"AuditConfig.train.seed is 7 but the audit's seed is 3"):
        AuditConfig(seed=3, train=TrainConfig(seed=7))
    with pytest.raises(ConfigError, match=r"meta\.seed"):
        AuditConfig(seed=0, meta=MetaConfig(seed=1))
    # the same value is no conflict: it is kept as the audit's seed
    assert AuditConfig(seed=3, poison_train=TrainConfig(seed=3)).seeded_poison_train.seed == 3


def test_round_trip_and_records_of_earlier_versions():
    cfg = AuditConfig(seed=4, gamma=0.2)
    assert AuditConfig.from_dict(cfg.to_dict()) == cfg
    old = cfg.to_dict()
    for part in ("train", "poison_train", "meta"):  # earlier records stored the audit's seed in every part
        old[part]["seed"] = 4
    assert AuditConfig.from_dict(old) == cfg
