"""The package as a newcomer meets it: installed metadata, the console script, the public API, and the
layers of the core (each module imports only from the layers below it; the core never imports Streamlit)."""
from __future__ import annotations

import ast
import importlib.metadata as md
import inspect
import shutil
import subprocess
import sys

import pytest
from helpers import ROOT

import forensics

# lower layers first; a module may import from its own layer or the ones before it
LAYERS = [
    {"_version", "errors", "settings", "rng", "progress", "metrics", "distributed"},
    {"store", "data", "stats", "datasources"},
    {"models"},
    {"splitting"},
    {"training"},
    {"engine"},
    {"meta", "attacks", "weight_edits", "queries", "answers"},
    {"protocols", "baselines"},
    {"config"},
    {"shadows", "demo_assets"},
    {"sources"},
    {"verify", "audit"},
    {"spec"},
    {"case", "casefile", "demo", "plots", "report", "jobs", "zoo", "bench", "scan", "fanout"},
    {"cli", "__main__", "__init__"},
]


def _layer(module: str) -> int:
    top = module.split(".")[0]
    return next(i for i, layer in enumerate(LAYERS) if top in layer)


def _runtime_imports(path) -> set[str]:
    """forensics modules imported at run time (``if TYPE_CHECKING:`` blocks excluded)."""
    tree = ast.parse(path.read_text())
    skip = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
            and getattr(node.test, "id", getattr(node.test, "attr", "")) == "TYPE_CHECKING" for n in ast.walk(node)}
    package = path.relative_to(ROOT / "forensics").with_suffix("").parts
    found = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.ImportFrom) and node.level:
            base = list(package[:len(package) - node.level])
            target = ".".join(base + ([node.module] if node.module else []))
            names = [target] if node.module else [a.name for a in node.names]
            found.update(n for n in names if n)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("forensics."):
            found.add(node.module[len("forensics."):])
        elif isinstance(node, ast.Import):
            found.update(a.name[len("forensics."):] for a in node.names if a.name.startswith("forensics."))
    return found


def test_every_core_module_has_a_layer_and_imports_downwards():
    violations = []
    for path in sorted((ROOT / "forensics").rglob("*.py")):
        module = ".".join(path.relative_to(ROOT / "forensics").with_suffix("").parts)
        if module.startswith("models."):
            continue  # inside the models package: checked as one layer
        own = _layer(module)
        for target in _runtime_imports(path):
            if not target.startswith("models") and _layer(target) > own:
                violations.append(f"{module} imports {target}")
    assert violations == []


def test_the_core_knows_nothing_of_streamlit():
    users = [str(p.relative_to(ROOT)) for p in (ROOT / "forensics").rglob("*.py") if "streamlit" in p.read_text()]
    assert users == []


@pytest.mark.slow  # starts Python processes
def test_installed_metadata_and_console_script():
    assert md.version("holmes-forensics") == forensics.__version__
    assert md.metadata("holmes-forensics")["Name"] == "holmes-forensics"
    entry = [e for e in md.entry_points(group="console_scripts") if e.name == "holmes-forensics"]
    assert [e.value for e in entry] == ["forensics.cli:main"]
    script = shutil.which("holmes-forensics") or str(ROOT / ".venv" / "bin" / "holmes-forensics")
    r = subprocess.run([script, "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "demo" in r.stdout and r.stdout.startswith("usage: holmes-forensics")
    r = subprocess.run([sys.executable, "-m", "forensics", "--help"], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0 and r.stdout.startswith("usage: python -m forensics")


def test_public_api():
    assert set(forensics.__all__) >= {"AuditSpec", "AuditConfig", "open_audit", "Audit", "Verdict", "Case",
                                      "ForensicsError", "ConfigError", "run_demo", "list_protocols", "list_attacks"}
    for name in forensics.__all__:
        assert hasattr(forensics, name), name
    # typed: every public function and method of the API states its parameters' and result's types
    for fn in (forensics.open_audit, forensics.Audit.verify, forensics.run_demo, forensics.Case.run):
        hints = inspect.get_annotations(fn)
        params = [p for p in inspect.signature(fn).parameters if p != "self"]
        assert "return" in hints and all(p in hints for p in params), fn.__qualname__
    for cls in (forensics.ForensicsError, forensics.ConfigError):
        assert issubclass(cls, Exception)


@pytest.mark.parametrize("folder", ["pages"])
def test_pages_folder_holds_only_pages(folder):
    files = sorted(p.name for p in (ROOT / folder).iterdir() if not p.name.startswith((".", "__pycache__")))
    assert files == ["features.py", "load.py", "report.py", "shadows.py", "stress.py", "verdict.py"]


def test_ruff_is_clean():
    """The lint settings of pyproject.toml hold on every Python file of the project."""
    r = subprocess.run([sys.executable, "-m", "ruff", "check", "forensics", "dashboard", "pages", "tests", "benchmarks",
                        "scripts", "app.py"], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
