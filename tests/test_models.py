"""forensics.models (safe weights reading, timm folders and files, the Hub, fingerprints, foundations),
loaded through the source strings of forensics.audit.sources."""
from __future__ import annotations

import json
import os
import time

import pytest
import torch
from safetensors.torch import save_file

from forensics.audit.sources import load_foundation, load_model
from forensics.errors import (
    ClassCountMismatchError,
    CorruptWeightsError,
    ForensicsError,
    HubModelNotFoundError,
    LogitsFileError,
    ModelSourceError,
    UnsafeCheckpointError,
)
from forensics.models import LoadedModel, fingerprint_state_dict, load_local_dir, read_weights

TINY_ARCH = "test_efficientnet"  # the same tiny architecture as conftest.make_tiny


def _x(seed: int = 1) -> torch.Tensor:
    return torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(seed))


def assert_same_model(loaded: LoadedModel, original: torch.nn.Module) -> None:
    assert loaded.fingerprint == fingerprint_state_dict(original.state_dict())
    assert loaded.fingerprint == fingerprint_state_dict(loaded.model.state_dict())
    assert not loaded.model.training
    with torch.no_grad():
        x = _x()
        torch.testing.assert_close(loaded.model(x), original(x), rtol=0, atol=1e-6)


def _truncate(path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


# --------------------------------------------------------------------------------------------
# Hugging Face Hub, offline from a local cache


def test_hub_offline_from_cache_records_commit_and_weights(offline_hub, tiny_model, save_hf):
    original = tiny_model(3, seed=11)
    commit = offline_hub.add("acme/tiny-net", save_hf(original))

    loaded = load_model("hf-hub:acme/tiny-net", num_classes=3)

    assert isinstance(loaded, LoadedModel)
    assert loaded.revision == commit and len(commit) == 40
    assert loaded.source == "hf-hub:acme/tiny-net"
    assert loaded.arch == TINY_ARCH and loaded.num_classes == 3
    assert loaded.extra["requested_revision"] == "main"
    assert loaded.card()["revision"] == commit
    assert_same_model(loaded, original)


def test_hub_offline_pinned_commit_picks_that_snapshot(offline_hub, tiny_model, save_hf):
    old, new = tiny_model(3, seed=1), tiny_model(3, seed=2)
    c_old = offline_hub.add("acme/tiny-net", save_hf(old), ref=None)
    c_new = offline_hub.add("acme/tiny-net", save_hf(new))  # refs/main -> c_new

    pinned = load_model(f"hf-hub:acme/tiny-net@{c_old}", num_classes=3)
    assert pinned.revision == c_old
    assert pinned.extra["requested_revision"] == c_old
    assert_same_model(pinned, old)

    also_pinned = load_model("hf-hub:acme/tiny-net", revision=c_old, num_classes=3)
    assert also_pinned.fingerprint == pinned.fingerprint

    head = load_model("hf-hub:acme/tiny-net", num_classes=3)
    assert head.revision == c_new
    assert_same_model(head, new)
    assert head.fingerprint != pinned.fingerprint


def test_hub_offline_unknown_repo_raises_quickly(offline_hub):
    t0 = time.monotonic()
    with pytest.raises(HubModelNotFoundError) as ei:
        load_model("hf-hub:acme/no-such-model", num_classes=3)
    assert time.monotonic() - t0 < 10, "offline lookup must not wait on the network"
    err = ei.value
    assert err.repo_id == "acme/no-such-model"
    assert err.revision is None
    assert "HF_HUB_OFFLINE" in str(err)
    assert isinstance(err, LookupError) and isinstance(err, ModelSourceError)


def test_hub_offline_unknown_commit_of_cached_repo(offline_hub, tiny_model, save_hf):
    offline_hub.add("acme/tiny-net", save_hf(tiny_model(3)))
    missing = "f" * 40
    with pytest.raises(HubModelNotFoundError) as ei:
        load_model(f"hf-hub:acme/tiny-net@{missing}", num_classes=3)
    assert ei.value.repo_id == "acme/tiny-net"
    assert ei.value.revision == missing
    assert "HF_HUB_OFFLINE" in str(ei.value)


def test_hub_class_count_mismatch(offline_hub, tiny_model, save_hf):
    offline_hub.add("acme/tiny-net", save_hf(tiny_model(3)))
    with pytest.raises(ClassCountMismatchError) as ei:
        load_model("hf-hub:acme/tiny-net", num_classes=5)
    assert (ei.value.expected, ei.value.found) == (5, 3)


@pytest.mark.parametrize("bad", ["hf-hub:no-slash", "hf-hub:a/b/c", "hf-hub:", "hf-hub:acme/bad name"])
def test_hub_malformed_id(bad):
    with pytest.raises(ModelSourceError) as ei:
        load_model(bad)
    assert not isinstance(ei.value, HubModelNotFoundError)


# --------------------------------------------------------------------------------------------
# local folders


def test_local_dir_prefix_and_plain_directory(tiny_model, save_hf):
    original = tiny_model(3, seed=5)
    folder = save_hf(original)

    via_prefix = load_model(f"local-dir:{folder}", num_classes=3)
    assert via_prefix.source == f"local-dir:{folder}"
    assert via_prefix.revision is None
    assert_same_model(via_prefix, original)

    plain = load_model(str(folder))  # the class count comes from config.json
    assert plain.num_classes == 3
    assert plain.source == f"local-dir:{folder}"
    assert plain.fingerprint == via_prefix.fingerprint


def test_local_dir_input_size_override(tiny_model, save_hf):
    folder = save_hf(tiny_model(3))
    assert load_model(f"local-dir:{folder}", input_size=64).data_config["input_size"] == (3, 64, 64)
    assert load_model(f"local-dir:{folder}").data_config["input_size"] == (3, 160, 160)  # timm's default


def test_local_dir_preprocessing_from_timm_pretrained_cfg(tiny_model, save_hf):
    """A Hub/timm folder's pretrained_cfg (its tag) sets the preprocessing, not the architecture's default."""
    import json

    folder = save_hf(tiny_model(3))
    cfg = json.loads((folder / "config.json").read_text())
    cfg["pretrained_cfg"].update(input_size=[3, 96, 96], mean=[0.5, 0.5, 0.5], std=[0.25, 0.25, 0.25],
                                 interpolation="bilinear", crop_pct=1.0)
    (folder / "config.json").write_text(json.dumps(cfg))

    d = load_model(f"local-dir:{folder}").data_config
    assert d["input_size"] == (3, 96, 96)
    assert d["mean"] == (0.5, 0.5, 0.5) and d["std"] == (0.25, 0.25, 0.25)
    assert d["interpolation"] == "bilinear" and d["crop_pct"] == 1.0

    d = load_model(f"local-dir:{folder}", input_size=64).data_config
    assert d["input_size"] == (3, 64, 64)  # the explicit size wins, the rest still comes from the folder
    assert d["mean"] == (0.5, 0.5, 0.5)


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


def test_local_dir_with_pytorch_model_bin(tiny_model, save_hf):
    original = tiny_model(3, seed=6)
    folder = save_hf(original)
    (folder / "model.safetensors").unlink()
    torch.save(original.state_dict(), folder / "pytorch_model.bin")
    assert_same_model(load_model(f"local-dir:{folder}", num_classes=3), original)


def test_local_dir_class_count_mismatch(tiny_model, save_hf):
    folder = save_hf(tiny_model(3))
    with pytest.raises(ClassCountMismatchError) as ei:
        load_model(f"local-dir:{folder}", num_classes=5)
    assert (ei.value.expected, ei.value.found) == (5, 3)


def test_local_dir_problems(tmp_path, tiny_model, save_hf):
    with pytest.raises(ModelSourceError, match="no such folder"):
        load_model(f"local-dir:{tmp_path / 'nowhere'}")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelSourceError, match=r"config\.json"):
        load_model(f"local-dir:{empty}")

    folder = save_hf(tiny_model(3))
    (folder / "model.safetensors").unlink()
    with pytest.raises(ModelSourceError, match=r"model\.safetensors"):
        load_model(f"local-dir:{folder}")

    folder = save_hf(tiny_model(3))
    (folder / "config.json").write_text("{not json")
    with pytest.raises(CorruptWeightsError):
        load_model(f"local-dir:{folder}")

    folder = save_hf(tiny_model(3))
    _truncate(folder / "model.safetensors")
    with pytest.raises(CorruptWeightsError):
        load_model(f"local-dir:{folder}")


def test_local_dir_unsafe_pytorch_model_bin(tmp_path, tiny_model, save_hf):
    marker = tmp_path / "pwned"
    folder = save_hf(tiny_model(3))
    (folder / "model.safetensors").unlink()
    torch.save({"w": torch.zeros(1), "evil": _Evil(marker)}, folder / "pytorch_model.bin")
    with pytest.raises(UnsafeCheckpointError):
        load_model(f"local-dir:{folder}")
    assert not marker.exists()


# --------------------------------------------------------------------------------------------
# weights files


class _Evil:
    """Unpickling this runs a shell command."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"echo pwned > {self.marker}",))


class _Plain:
    """An ordinary object: harmless, but still code that weights_only must refuse."""

    def __init__(self):
        self.x = 1


def test_safetensors_file_with_arch(tmp_path, tiny_model):
    original = tiny_model(3, seed=7)
    path = tmp_path / "victim.safetensors"
    save_file(original.state_dict(), str(path))

    loaded = load_model(str(path), arch=TINY_ARCH, num_classes=3)
    assert loaded.source == str(path)
    assert loaded.arch == TINY_ARCH and loaded.num_classes == 3
    assert_same_model(loaded, original)


@pytest.mark.parametrize("suffix", [".pth", ".pt", ".bin"])
def test_pth_plain_state_dict(tmp_path, tiny_model, suffix):
    original = tiny_model(3, seed=8)
    path = tmp_path / f"victim{suffix}"
    torch.save(original.state_dict(), path)
    assert_same_model(load_model(str(path), arch=TINY_ARCH, num_classes=3), original)


def test_pth_wrapped_state_dict_and_module_prefix(tmp_path, tiny_model):
    original = tiny_model(3, seed=9)
    path = tmp_path / "ckpt.pth"
    wrapped = {"state_dict": {f"module.{k}": v for k, v in original.state_dict().items()}}
    torch.save(wrapped, path)
    assert set(read_weights(path)) == set(original.state_dict())
    assert_same_model(load_model(str(path), arch=TINY_ARCH, num_classes=3), original)


def test_pth_with_code_is_refused_and_not_run(tmp_path):
    marker = tmp_path / "marker"
    path = tmp_path / "evil.pth"
    torch.save({"w": torch.zeros(1), "evil": _Evil(marker)}, path)
    with pytest.raises(UnsafeCheckpointError) as ei:
        load_model(str(path), arch=TINY_ARCH, num_classes=3)
    assert "evil.pth" in str(ei.value)
    assert not marker.exists(), "the pickled payload ran"

    path2 = tmp_path / "object.pth"
    torch.save({"w": torch.zeros(1), "obj": _Plain()}, path2)
    with pytest.raises(UnsafeCheckpointError):
        read_weights(path2)


def test_pth_with_non_tensor_values(tmp_path):
    path = tmp_path / "mixed.pth"
    torch.save({"w": torch.zeros(1), "epoch": 3}, path)
    with pytest.raises(CorruptWeightsError):
        read_weights(path)


def test_truncated_safetensors(tmp_path, tiny_model):
    path = tmp_path / "cut.safetensors"
    save_file(tiny_model(3).state_dict(), str(path))
    _truncate(path)
    with pytest.raises(CorruptWeightsError):
        load_model(str(path), arch=TINY_ARCH, num_classes=3)


def test_truncated_pth(tmp_path, tiny_model):
    path = tmp_path / "cut.pth"
    torch.save(tiny_model(3).state_dict(), path)
    _truncate(path)
    with pytest.raises(CorruptWeightsError):
        load_model(str(path), arch=TINY_ARCH, num_classes=3)


def test_garbage_pth(tmp_path):
    path = tmp_path / "garbage.pth"
    path.write_bytes(b"this is not a checkpoint at all" * 10)  # the pickle reader fails with IndexError
    with pytest.raises(CorruptWeightsError):
        read_weights(path)
    path.write_bytes(b"")
    with pytest.raises(CorruptWeightsError):
        read_weights(path)
    torch.save([torch.zeros(1)], path)  # plain tensors, but not a state dict
    with pytest.raises(CorruptWeightsError):
        read_weights(path)


def test_weights_file_needs_arch_and_num_classes(tmp_path, tiny_model):
    path = tmp_path / "victim.safetensors"
    save_file(tiny_model(3).state_dict(), str(path))
    with pytest.raises(ModelSourceError, match="architecture"):
        load_model(str(path), num_classes=3)
    with pytest.raises(ModelSourceError):
        load_model(str(path), arch=TINY_ARCH)


def test_weights_file_missing_and_unknown_sources(tmp_path):
    with pytest.raises(ModelSourceError, match="does not exist"):
        load_model(str(tmp_path / "nope.safetensors"), arch=TINY_ARCH, num_classes=3)
    with pytest.raises(ModelSourceError):
        read_weights(tmp_path / "nope.pth")
    (tmp_path / "w.onnx").write_bytes(b"x")
    with pytest.raises(ModelSourceError):
        read_weights(tmp_path / "w.onnx")
    for src in ("", "   ", str(tmp_path / "w.onnx")):
        with pytest.raises(ModelSourceError):
            load_model(src)


def test_weights_file_class_count_mismatch(tmp_path, tiny_model):
    path = tmp_path / "victim.safetensors"
    save_file(tiny_model(3).state_dict(), str(path))
    with pytest.raises(ClassCountMismatchError) as ei:
        load_model(str(path), arch=TINY_ARCH, num_classes=5)
    assert (ei.value.expected, ei.value.found) == (5, 3)


def test_weights_file_wrong_or_unknown_arch(tmp_path, tiny_model):
    path = tmp_path / "victim.safetensors"
    save_file(tiny_model(3).state_dict(), str(path))
    with pytest.raises(CorruptWeightsError):
        load_model(str(path), arch="test_resnet", num_classes=3)
    with pytest.raises(ModelSourceError, match="unknown timm architecture"):
        load_model(str(path), arch="no_such_arch_xyz", num_classes=3)


def test_weights_file_missing_tensor(tmp_path, tiny_model):
    state = tiny_model(3).state_dict()
    state.pop(next(k for k in state if k.startswith("conv_stem")))
    path = tmp_path / "partial.safetensors"
    save_file(state, str(path))
    with pytest.raises(CorruptWeightsError):
        load_model(str(path), arch=TINY_ARCH, num_classes=3)


# --------------------------------------------------------------------------------------------
# fingerprints


def test_fingerprint_stable_and_sensitive(tiny_model):
    model = tiny_model(3, seed=3)
    state = model.state_dict()
    fp = fingerprint_state_dict(state)
    assert fp == fingerprint_state_dict(state)
    assert fp == fingerprint_state_dict(tiny_model(3, seed=3).state_dict())
    assert len(fp) == 64 and int(fp, 16) >= 0

    changed = {k: v.clone() for k, v in state.items()}
    w = changed["classifier.weight"]
    w[0, 0] = torch.nextafter(w[0, 0], torch.tensor(float("inf")))  # one ulp
    assert fingerprint_state_dict(changed) != fp
    assert fingerprint_state_dict(state) == fp, "the fingerprint must not depend on the clone"

    # same bytes under another name, dtype or shape is another model
    renamed = dict(state)
    renamed["extra.weight"] = renamed.pop("classifier.weight")
    assert fingerprint_state_dict(renamed) != fp
    assert fingerprint_state_dict({**state, "classifier.bias": state["classifier.bias"].double()}) != fp
    assert fingerprint_state_dict({**state, "classifier.weight": state["classifier.weight"].reshape(-1)}) != fp


def test_fingerprint_handles_non_contiguous_and_empty():
    t = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    assert fingerprint_state_dict({"a": t.t()}) == fingerprint_state_dict({"a": t.t().contiguous()})
    assert fingerprint_state_dict({"a": torch.zeros(0)}) != fingerprint_state_dict({"a": torch.zeros(0, 1)})


def test_refresh_fingerprint_and_clone(tiny_model, save_hf):
    loaded = load_model(f"local-dir:{save_hf(tiny_model(3))}")
    twin = loaded.clone()
    with torch.no_grad():
        twin.model.get_classifier().bias.add_(1e-3)
    assert twin.refresh_fingerprint().fingerprint != loaded.fingerprint
    assert loaded.refresh_fingerprint().fingerprint == fingerprint_state_dict(loaded.model.state_dict())


# --------------------------------------------------------------------------------------------
# foundations: a pre-trained backbone with a fresh head


def _body(state):
    return {k: v for k, v in state.items() if not k.startswith("classifier.")}


def test_load_foundation_from_local_dir(tiny_model, save_hf):
    pretrained = tiny_model(10, seed=21)
    folder = save_hf(pretrained)

    f = load_foundation(f"local-dir:{folder}", 3, seed=0)
    assert f.num_classes == 3
    assert f.model.get_classifier().out_features == 3
    with torch.no_grad():
        assert f.model(_x()).shape == (2, 3)
    body, ref = _body(f.model.state_dict()), _body(pretrained.state_dict())
    assert body.keys() == ref.keys()
    assert all(torch.equal(body[k], ref[k]) for k in ref)
    assert f.fingerprint == fingerprint_state_dict(f.model.state_dict())
    assert "head" in f.extra

    same = load_foundation(f"local-dir:{folder}", 3, seed=0)
    other = load_foundation(f"local-dir:{folder}", 3, seed=1)
    assert same.fingerprint == f.fingerprint
    assert other.fingerprint != f.fingerprint


def test_load_foundation_from_weights_file_drops_old_head(tmp_path, tiny_model):
    pretrained = tiny_model(10, seed=22)
    path = tmp_path / "foundation.safetensors"
    save_file(pretrained.state_dict(), str(path))

    with pytest.raises(ModelSourceError):
        load_foundation(str(path), 4)  # no arch

    f = load_foundation(str(path), 4, arch=TINY_ARCH, seed=3)
    assert f.num_classes == 4 and f.model.get_classifier().out_features == 4
    body, ref = _body(f.model.state_dict()), _body(pretrained.state_dict())
    assert all(torch.equal(body[k], ref[k]) for k in ref)
    assert load_foundation(str(path), 4, arch=TINY_ARCH, seed=3).fingerprint == f.fingerprint

    with pytest.raises(CorruptWeightsError):
        load_foundation(str(path), 4, arch="test_resnet")
    with pytest.raises(ModelSourceError, match="unknown timm architecture"):
        load_foundation(str(path), 4, arch="no_such_arch_xyz")


def test_load_foundation_from_hub(offline_hub, tiny_model, save_hf):
    pretrained = tiny_model(10, seed=23)
    commit = offline_hub.add("acme/foundation", save_hf(pretrained))
    f = load_foundation("hf-hub:acme/foundation", 3, seed=0)
    assert f.num_classes == 3 and f.revision == commit
    body, ref = _body(f.model.state_dict()), _body(pretrained.state_dict())
    assert all(torch.equal(body[k], ref[k]) for k in ref)


def test_every_error_is_a_forensics_error():
    for cls in (ClassCountMismatchError, CorruptWeightsError, HubModelNotFoundError, LogitsFileError,
                ModelSourceError, UnsafeCheckpointError):
        assert issubclass(cls, ForensicsError) and issubclass(cls, ValueError)


def test_architecture_arguments_travel_with_a_trained_copy(tmp_path, save_hf):
    """A ViT built with img_size=32 (timm's save_for_hf records it in model_args) trains through the store, and the
    store's copy is built with the same arguments again (it was built at the default 224 px: pos_embed mismatch)."""
    import timm
    from helpers import toy_images

    from forensics.engine.engine import Engine
    from forensics.engine.recipe import TrainConfig
    from forensics.engine.stored import train_stored
    from forensics.models import save_model
    from forensics.runtime.store import ArtifactStore

    torch.manual_seed(0)
    folder = tmp_path / "vit32"
    folder.mkdir()
    model = timm.create_model("test_vit", pretrained=False, num_classes=3, img_size=32)
    timm.models.save_for_hf(model, str(folder), model_args={"img_size": 32}, safe_serialization=True)
    start = load_local_dir(folder)
    images = toy_images(40)
    trained, _ = train_stored(Engine(ArtifactStore(tmp_path / "store"), device="cpu"), "benign_shadow", start,
                              images, images.labels, TrainConfig(epochs=1, batch_size=16, trainable_blocks=None))
    assert trained.model.pos_embed.shape == start.model.pos_embed.shape
    save_model(trained, tmp_path / "again")
    assert json.loads((tmp_path / "again" / "config.json").read_text())["model_args"]["img_size"] in (32, [32, 32])
    assert load_local_dir(tmp_path / "again").fingerprint == trained.fingerprint


def test_a_stored_model_reads_its_weights_on_first_use_and_checks_them(tmp_path):
    """What the artifact store returns: its fingerprint, architecture, classes and preprocessing at once, the network
    when first used (the weights it reads must be the recorded ones), and lazy clones."""
    from helpers import make_loaded

    from forensics.models import load_saved, save_model
    from forensics.models.loaded import StoredModel

    original = make_loaded(num_classes=4, seed=3)
    save_model(original, tmp_path / "entry", info={"stage": "test"})
    eager = load_local_dir(tmp_path / "entry", source="store:test/x")
    lazy = load_saved(tmp_path / "entry", source="store:test/x")
    assert isinstance(lazy, StoredModel) and not lazy.loaded
    assert (lazy.fingerprint, lazy.arch, lazy.num_classes) == (original.fingerprint, "test_efficientnet", 4)
    assert lazy.key == eager.key and lazy.data_config == eager.data_config
    copy = lazy.clone()
    assert isinstance(copy, StoredModel) and not copy.loaded and not lazy.loaded and copy.key == lazy.key
    state = lazy.model.state_dict()  # first use: read, and checked against the recorded fingerprint
    assert lazy.loaded and fingerprint_state_dict(state) == original.fingerprint
    assert copy.model is not lazy.model and fingerprint_state_dict(copy.model.state_dict()) == original.fingerprint
    # weights that are not the recorded ones are refused when read, with what to do
    other = make_loaded(num_classes=4, seed=4)
    save_model(other, tmp_path / "tampered")
    cfg = json.loads((tmp_path / "tampered" / "config.json").read_text())
    cfg["forensics"]["fingerprint"] = original.fingerprint
    (tmp_path / "tampered" / "config.json").write_text(json.dumps(cfg))
    tampered = load_saved(tmp_path / "tampered", source="store:test/y")
    with pytest.raises(CorruptWeightsError, match=r"not the ones recorded .* delete that store entry and re-run"):
        _ = tampered.model
    # a folder this package did not write (no recorded fingerprint) is read at once
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "config.json").write_text(json.dumps({k: v for k, v in cfg.items() if k != "forensics"}))
    save_file({k: v.contiguous() for k, v in other.model.state_dict().items()}, str(plain / "model.safetensors"))
    assert not isinstance(load_saved(plain, source="store:test/z"), StoredModel)
