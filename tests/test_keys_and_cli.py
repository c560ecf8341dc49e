"""Cache keys that must not collide, untrusted config.json arguments, and CLI option handling."""
from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from forensics.audit import effective_strata
from forensics.cli import build_parser, spec_from_args
from forensics.data import ImageSet
from forensics.engine import Engine
from forensics.errors import ForensicsError, ModelSourceError
from forensics.models import LoadedModel, data_config_for, fingerprint_state_dict, load_local_dir
from forensics.store import ArtifactStore


def _loaded(model, arch="test_efficientnet"):
    return LoadedModel(model, arch, 3, "test", fingerprint_state_dict(model.state_dict()),
                       data_config_for(model, input_size=32))


def test_logits_key_includes_architecture_and_preprocessing(tmp_path, tiny_model):
    rng = np.random.default_rng(0)
    images = ImageSet("x", rng.integers(0, 3, 8), np.arange(8).astype(str), ["a", "b", "c"],
                      images=rng.integers(0, 255, (8, 28, 28), dtype=np.uint8))
    store = ArtifactStore(tmp_path)
    eng = Engine(store, cache_blocks=None)
    m = _loaded(tiny_model(3))
    a = eng.logits(m, images)
    eng.logits(replace(m, arch="another_arch_name"), images)        # same weights, other architecture
    bigger = replace(m, data_config={**m.data_config, "input_size": (3, 48, 48)})
    b = eng.logits(bigger, images)                                   # same weights, other preprocessing
    assert store.stats.computed.count("logits") == 3
    assert not np.allclose(a, b)


def test_config_json_arguments_are_sanitised(tmp_path, tiny_model, save_hf):
    folder = save_hf(tiny_model(3))
    cfg = json.loads((folder / "config.json").read_text())
    cfg["model_args"] = {**cfg.get("model_args", {}), "pretrained": True, "checkpoint_path": "/etc/passwd"}
    (folder / "config.json").write_text(json.dumps(cfg))
    assert load_local_dir(folder).num_classes == 3  # the arguments that would load other weights are dropped
    cfg["model_args"] = {"no_such_argument": 1}
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelSourceError, match="cannot build"):
        load_local_dir(folder)
    cfg["architecture"] = "hf-hub:someone/else"
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelSourceError, match="not a timm architecture"):
        load_local_dir(folder)
    (folder / "config.json").write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(ModelSourceError):
        load_local_dir(folder)


def test_effective_strata_keep_thirty_per_stratum():
    assert effective_strata(10, 1500, 2000) == 10
    assert effective_strata(10, 300, 100) == 3
    assert effective_strata(10, 10, 10) == 1


def test_cli_record_keeps_overrides_and_rejects_bad_values(tmp_path):
    from forensics.spec import AuditSpec

    rec = tmp_path / "audit.json"
    spec = AuditSpec.demo(3, quick=True)
    spec.device = "cuda"
    rec.write_text(json.dumps({"spec": spec.to_dict(), "suspects": []}))
    p = build_parser()
    s = spec_from_args(p.parse_args(["verify", "--record", str(rec), "--device", "cpu", "--alpha", "0.05",
                                     "--logits", "x.npy"]))
    assert s.device == "cpu" and s.config.alpha == 0.05 and s.config.seed == 3 and s.quick
    s = spec_from_args(p.parse_args(["audit", "--victim", "v.safetensors", "--foundation", "f", "--data", "d",
                                     "--trainable-blocks", "all", "--lr", "0.01"]))
    assert s.config.train.trainable_blocks is None and s.config.poison_train.trainable_blocks is None
    assert s.config.poison_train.lr == 0.01
    with pytest.raises(ForensicsError, match="trainable-blocks"):
        spec_from_args(p.parse_args(["audit", "--victim", "v", "--foundation", "f", "--data", "d",
                                     "--trainable-blocks", "abc"]))
    with pytest.raises(ForensicsError, match="--arch needs --victim"):
        spec_from_args(p.parse_args(["audit", "--arch", "resnet18"]))
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ForensicsError, match="not a readable audit record"):
        spec_from_args(p.parse_args(["verify", "--record", str(tmp_path / "bad.json"), "--logits", "x"]))
