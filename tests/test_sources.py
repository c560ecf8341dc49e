"""forensics.audit.sources: every source string is resolved in one place, through the registry of source schemes
(the demo's ``demo:`` registered by the demo package)."""
from __future__ import annotations

import pytest

from forensics.audit.sources import (
    ModelSource,
    SourceScheme,
    check_suspect,
    data_classes,
    get_source_scheme,
    is_answers_file,
    known_kind,
    list_source_schemes,
    load_data,
    load_foundation,
    load_model,
    parse_model_source,
    register_source_scheme,
)
from forensics.demo import demo_spec, is_demo
from forensics.demo.scheme import DemoScheme
from forensics.errors import ConfigError, DataSourceError, ModelSourceError


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


def test_schemes_are_registered_by_their_owners_and_a_new_one_resolves(monkeypatch):
    from helpers import make_loaded

    from forensics.audit import sources

    monkeypatch.setattr(sources, "_SCHEMES", dict(sources._SCHEMES))  # this test's scheme goes with it

    assert [s.kind for s in list_source_schemes()][:3] == ["hub", "local-dir", "demo"]
    assert isinstance(get_source_scheme("demo"), DemoScheme)  # registered by forensics.demo when it is imported
    with pytest.raises(ConfigError, match="already registered"):
        register_source_scheme(DemoScheme())
    with pytest.raises(ConfigError, match="unknown source scheme 'ftp'"):
        get_source_scheme("ftp")

    class Registry(SourceScheme):  # an organisation's own model registry, say
        prefix, kind = "registry-test:", "registry-test"

        def model(self, src, *, arch, num_classes, input_size, seed):
            m = make_loaded(seed=int(src.target), num_classes=num_classes or 10)
            m.source = str(src)
            return m

    register_source_scheme(Registry())
    m = load_model("registry-test:3", num_classes=4)
    assert m.source == "registry-test:3" and m.num_classes == 4
    assert load_foundation("registry-test:3", 6).num_classes == 6  # the default foundation: a fresh head
    assert not is_answers_file("registry-test:a.csv")
    with pytest.raises(ModelSourceError, match=r"or demo:\.\.\., registry-test:\.\.\."):
        parse_model_source("what is this")
    with pytest.raises(DataSourceError, match="registry-test:3 is not a data source"):
        load_data("registry-test:3")


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
    spec = demo_spec(0, quick=True)
    assert check_suspect(spec, "demo:distill") is None  # the audit trains it
    with pytest.raises(ConfigError, match="unknown demo suspect"):
        check_suspect(spec, "demo:nothing")
    folder = save_hf(tiny_model(10))
    card = check_suspect(spec, f"local-dir:{folder}")
    assert card["num_classes"] == 10 and card["arch"] == "test_efficientnet"
