"""forensics.runtime.settings: every environment variable is read in one module, checked, at call time."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from helpers import ROOT

from forensics.errors import ConfigError
from forensics.runtime import settings


def test_defaults_and_values(tmp_path, monkeypatch):
    for name in settings.VARIABLES:
        monkeypatch.delenv(name, raising=False)
    s = settings.current()
    assert s.store == Path.home() / ".cache" / "holmes-forensics" and not s.demo_quick and s.max_upload_mb == 200
    monkeypatch.setenv(settings.STORE, str(tmp_path))
    monkeypatch.setenv(settings.DEMO_QUICK, "1")
    monkeypatch.setenv(settings.MAX_UPLOAD_MB, "5")
    s = settings.current()
    assert s.store == tmp_path and s.demo_quick and s.max_upload_mb == 5


@pytest.mark.parametrize("name,value", [(settings.MAX_UPLOAD_MB, "lots"), (settings.MAX_UPLOAD_MB, "0"),
                                        (settings.DEMO_QUICK, "yes")])
def test_bad_values_name_the_variable(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=name):
        settings.current()


def test_no_other_module_reads_the_environment():
    readers = []
    for path in [*ROOT.glob("forensics/**/*.py"), *ROOT.glob("dashboard/*.py"), *ROOT.glob("pages/*.py"),
                 ROOT / "app.py"]:
        if path.name != "settings.py" and re.search(r"os\.environ|os\.getenv", path.read_text()):
            readers.append(str(path.relative_to(ROOT)))
    assert readers == []


def test_readme_lists_every_variable():
    readme = (ROOT / "README.md").read_text()
    assert all(f"`{name}" in readme for name in settings.VARIABLES)
