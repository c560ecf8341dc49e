"""forensics.sources: every source string is resolved in one place."""
from __future__ import annotations

import pytest

from forensics.errors import ConfigError, ModelSourceError
from forensics.sources import (
    ModelSource,
    check_suspect,
    data_classes,
    is_answers_file,
    is_demo,
    known_kind,
    load_data,
    load_foundation,
    load_model,
    parse_model_source,
)
from forensics.spec import AuditSpec


def test_parse_model_source_kinds(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    assert parse_model_source("hf-hub:org/name") == ModelSource("hub", "org/name", None)
    assert parse_model_source(" hf-hub:org/name@v1.0 ") == ModelSource("hub", "org/name", "v1.0")
    assert parse_model_source("hf-hub:org/name@v1.0", revision="abc").revision == "abc"  # the argument wins
    assert parse_model_source(f"local-dir:{folder}") == ModelSource("local-dir", str(folder))
    assert parse_model_source(str(folder)).kind == "local-dir"  # a plain folder
    assert parse_model_source(str(tmp_path / "w.safetensors")) == ModelSource("file", str(tmp_path / "w.safetensors"))
    assert parse_model_source("demo:fine_tune") == ModelSource("demo", "fine_tune")
    assert str(parse_model_source("hf-hub:org/name@v1")) == "hf-hub:org/name@v1"
    for bad in ("", "   ", str(tmp_path / "notes.txt")):
        with pytest.raises(ModelSourceError):
            parse_model_source(bad)


def test_answers_files_are_not_model_sources(tmp_path):
    assert is_answers_file("answers.csv") and is_answers_file(tmp_path / "a.NPY")
    assert not is_answers_file("model.safetensors") and not is_answers_file("hf-hub:org/a.csv")
    assert is_demo("demo:victim") and not is_demo("hf-hub:org/name") and not is_demo(None)


def test_demo_sources_resolve_here_and_unknown_ones_say_what_exists():
    f = load_model("demo:foundation", num_classes=10, input_size=64)
    assert f.arch == "tf_efficientnet_lite0" and f.num_classes == 10 and f.source == "demo:foundation"
    assert load_foundation("demo:foundation", 4, input_size=64).num_classes == 4
    with pytest.raises(ModelSourceError, match="trained by an audit"):
        load_model("demo:fine_tune")
    with pytest.raises(ModelSourceError, match="demo:foundation"):
        load_foundation("demo:victim", 10)
    assert known_kind("demo:fine_tune") == "stolen" and known_kind("demo:innocent") == "innocent"
    assert known_kind("hf-hub:org/name") is None and known_kind("demo:nothing") is None


def test_demo_data_splits():
    private = load_data("demo:private", quick=True)
    assert len(private) == 600 and private.num_classes == 10
    assert data_classes("demo:heldout", quick=True) == private.classes
    with pytest.raises(ConfigError, match="unknown demo split"):
        load_data("demo:nothing")


def test_check_suspect(tmp_path, tiny_model, save_hf):
    spec = AuditSpec.demo(0, quick=True)
    assert check_suspect(spec, "demo:distill") is None  # the audit trains it
    with pytest.raises(ConfigError, match="unknown demo suspect"):
        check_suspect(spec, "demo:nothing")
    folder = save_hf(tiny_model(10))
    card = check_suspect(spec, f"local-dir:{folder}")
    assert card["num_classes"] == 10 and card["arch"] == "test_efficientnet"
