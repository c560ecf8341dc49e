"""The package as a newcomer meets it: installed metadata, the console script, the public API, and the
layers of the core (each module imports only from the layers below it; the core never imports Streamlit)."""
from __future__ import annotations

import argparse
import ast
import importlib
import importlib.metadata as md
import inspect
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT

import forensics

# the core's layers, lowest first: a module imports only from its own package or the layers below it
LAYERS = [
    {"_version", "errors"},
    {"runtime"},
    {"data"},
    {"models"},
    {"engine"},
    {"method"},
    {"protocols"},
    {"audit"},
    {"api"},
    {"zoo"},
    {"demo"},
    {"report"},
    {"cases"},
    {"cli", "__main__", "__init__"},
]
PACKAGES = {"runtime", "data", "models", "engine", "method", "protocols", "audit", "api", "zoo", "demo", "report",
            "cases", "cli"}


def _layer(module: str) -> int:
    top = module.split(".")[0]
    return next(i for i, layer in enumerate(LAYERS) if top in layer)


def _modules() -> dict[str, Path]:
    return {".".join(p.relative_to(ROOT / "forensics").with_suffix("").parts): p
            for p in sorted((ROOT / "forensics").rglob("*.py"))}


def _imports(path: Path) -> set[str]:
    """Every forensics module ``path`` imports, wherever the import stands: at the top, inside a function, or under
    ``if TYPE_CHECKING:`` (a circle hidden there is still a circle).  ``from .pkg import mod`` counts as ``pkg.mod``."""
    modules = set(_modules())
    tree = ast.parse(path.read_text())
    parts = path.relative_to(ROOT / "forensics").with_suffix("").parts
    package = list(parts[:-1])
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            elif (node.module or "").startswith("forensics"):
                target = node.module[len("forensics."):] if node.module != "forensics" else ""
            else:
                continue
            for a in node.names:
                sub = f"{target}.{a.name}" if target else a.name
                found.add(sub if sub in modules or f"{sub}.__init__" in modules else target)
        elif isinstance(node, ast.Import):
            found.update(a.name[len("forensics."):] for a in node.names if a.name.startswith("forensics."))
    return {m for m in found if m}


def test_every_core_module_has_a_layer_and_imports_downwards():
    violations = []
    for module, path in _modules().items():
        own = _layer(module)
        for target in _imports(path):
            if _layer(target) > own:
                violations.append(f"{module} imports {target}")
    assert violations == []


def test_no_import_circles_and_no_type_checking_blocks():
    """Module by module (a package's ``__init__`` included), the imports form no circle; no import is hidden under
    ``TYPE_CHECKING``."""
    graph = {m: {t if t in _modules() else f"{t}.__init__" for t in _imports(p)} - {m} for m, p in _modules().items()}
    hidden = [m for m, p in _modules().items() if "TYPE_CHECKING" in p.read_text()]
    assert hidden == []
    state: dict[str, int] = {}
    circles = []

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for t in sorted(graph.get(m, ())):
            if t.endswith(".__init__") and m.startswith(t[:-len("__init__")]):
                continue  # a module of a package and the package's own __init__, which re-exports it
            if state.get(t) == 1:
                circles.append(" -> ".join([*path[path.index(t):], t]) if t in path else f"{m} -> {t}")
            elif t in graph and not state.get(t):
                visit(t, [*path, t])
        state[m] = 2

    for m in graph:
        if not state.get(m):
            visit(m, [m])
    assert circles == []


def test_every_subpackage_declares_its_api_and_no_module_is_a_large_room():
    for name in PACKAGES:
        pkg = importlib.import_module(f"forensics.{name}")
        assert pkg.__doc__ and isinstance(pkg.__all__, list) and pkg.__all__, name
        assert all(hasattr(pkg, n) for n in pkg.__all__), name
    assert {p.name for p in (ROOT / "forensics").iterdir() if p.suffix == ".py"} == {
        "__init__.py", "__main__.py", "_version.py", "errors.py"}  # everything else lives in a subpackage
    sizes = {m: len(p.read_text().splitlines()) for m, p in _modules().items()}
    assert {m: n for m, n in sizes.items() if n > 360} == {}


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


# forensics.__all__ before the core was split into subpackages: every name is still there
FORMER_API = {
    "__version__", "AuditSpec", "AuditConfig", "TrainConfig", "MetaConfig", "Trigger", "open_audit", "Audit", "Verdict",
    "Reading", "format_p", "LoadedModel", "ArtifactStore", "StageProgress", "TrainProgress", "Case", "Suspect",
    "run_demo", "DemoResult", "list_protocols", "Protocol", "list_attacks", "Attack", "ForensicsError", "ConfigError",
    "ModelSourceError", "UnsafeCheckpointError", "CorruptWeightsError", "ClassCountMismatchError",
    "HubModelNotFoundError", "DataSourceError", "DatasetTooSmallError", "LogitsFileError", "ArtifactError"}
FORMER_COMMANDS = ["demo", "audit", "export-queries", "verify", "bench", "stress", "scan", "reverify", "digest",
                   "add-user", "query"]


def test_public_api():
    assert set(forensics.__all__) == FORMER_API | {"demo_spec", "VerdictProtocol"}
    assert forensics.Protocol is forensics.VerdictProtocol  # the former name of the protocol class
    assert forensics.demo_spec(2).config.seed == 2
    for name in forensics.__all__:
        assert hasattr(forensics, name), name
    # typed: every public function and method of the API states its parameters' and result's types
    for fn in (forensics.open_audit, forensics.Audit.verify, forensics.run_demo, forensics.Case.run):
        hints = inspect.get_annotations(fn)
        params = [p for p in inspect.signature(fn).parameters if p != "self"]
        assert "return" in hints and all(p in hints for p in params), fn.__qualname__
    for cls in (forensics.ForensicsError, forensics.ConfigError):
        assert issubclass(cls, Exception)


def test_the_command_line_keeps_its_commands():
    from forensics.cli.main import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert list(sub.choices) == FORMER_COMMANDS


def test_importing_the_package_loads_no_optional_library():
    """``import forensics`` loads torch and the package; the heavy libraries load where they are first used."""
    code = ("import sys, forensics; heavy = ['scipy.stats', 'sklearn', 'pandas', 'pyarrow', 'plotly', 'timm', "
            "'transformers', 'datasets', 'ray', 'streamlit', 'PIL']; print([m for m in heavy if m in sys.modules])")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stdout + r.stderr


@pytest.mark.parametrize("folder", ["pages"])
def test_pages_folder_holds_only_pages(folder):
    files = sorted(p.name for p in (ROOT / folder).iterdir() if not p.name.startswith((".", "__pycache__")))
    assert files == ["api.py", "features.py", "load.py", "report.py", "shadows.py", "stress.py", "verdict.py"]


@pytest.mark.lint
def test_ruff_is_clean():
    """The lint settings of pyproject.toml hold on every Python file of the project."""
    r = subprocess.run([sys.executable, "-m", "ruff", "check", "forensics", "dashboard", "pages", "tests", "benchmarks",
                        "scripts", "app.py"], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.lint
def test_types():
    """mypy finds no error in the core (its settings: pyproject.toml's [tool.mypy])."""
    r = subprocess.run([sys.executable, "-m", "mypy"], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
