"""Shared fixtures: tiny timm models, timm-style folders, and an offline fake Hugging Face cache."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
import torch

TINY_ARCH = "test_efficientnet"  # ~100k parameters, built in milliseconds


def pytest_collection_modifyitems(config, items):
    """``gpu`` tests run where torch sees a CUDA GPU, and are skipped (with the reason) elsewhere."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (none visible to torch here)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


def make_tiny(num_classes: int = 3, seed: int = 0, arch: str = TINY_ARCH) -> torch.nn.Module:
    """A tiny timm classifier with seeded (hence reproducible) random weights, in eval mode."""
    import timm

    torch.manual_seed(seed)
    model = timm.create_model(arch, pretrained=False, num_classes=num_classes)
    with torch.no_grad():  # non-trivial BatchNorm statistics, so they count in the outputs
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    return model.eval()


@pytest.fixture
def tiny_model():
    """Factory: ``tiny_model(num_classes=3, seed=0)``."""
    return make_tiny


@pytest.fixture
def save_hf(tmp_path):
    """Factory: write ``model`` with ``timm.models.save_for_hf`` into a fresh folder and return it."""
    import timm.models

    counter = iter(range(10_000))

    def _save(model: torch.nn.Module, name: str | None = None) -> Path:
        folder = tmp_path / (name or f"hf_{next(counter)}")
        folder.mkdir(parents=True)
        timm.models.save_for_hf(model, str(folder), safe_serialization=True)
        return folder

    return _save


class FakeHubCache:
    """An ``HF_HOME`` whose ``hub/`` cache holds repos laid out as huggingface_hub writes them:
    ``models--ORG--NAME/{blobs/<sha256>, snapshots/<commit>/<file> -> blob, refs/<branch>}``."""

    def __init__(self, home: Path):
        self.home = home
        self.hub = home / "hub"
        self.hub.mkdir(parents=True, exist_ok=True)

    def add(self, repo_id: str, source_folder: Path, *, commit: str | None = None, ref: str | None = "main") -> str:
        org, name = repo_id.split("/")
        repo = self.hub / f"models--{org}--{name}"
        commit = commit or hashlib.sha1(f"{repo_id}:{os.urandom(8).hex()}".encode()).hexdigest()
        snap = repo / "snapshots" / commit
        (repo / "blobs").mkdir(parents=True, exist_ok=True)
        snap.mkdir(parents=True, exist_ok=True)
        for f in sorted(Path(source_folder).iterdir()):
            data = f.read_bytes()
            blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
            blob.write_bytes(data)
            os.symlink(os.path.relpath(blob, snap), snap / f.name)
        if ref:
            (repo / "refs").mkdir(exist_ok=True)
            (repo / "refs" / ref).write_text(commit)  # the Hub writes the hash without a newline
        return commit


@pytest.fixture
def offline_hub(tmp_path, monkeypatch):
    """A fake, offline Hugging Face cache.  huggingface_hub reads HF_HOME / HF_HUB_OFFLINE when it is
    imported, so the module constants it consults at call time are patched as well as the environment."""
    from huggingface_hub import constants

    cache = FakeHubCache(tmp_path / "hf_home")
    monkeypatch.setenv("HF_HOME", str(cache.home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    monkeypatch.setattr(constants, "HF_HOME", str(cache.home))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache.hub))  # snapshot_download's default cache_dir
    monkeypatch.setattr(constants, "HUGGINGFACE_HUB_CACHE", str(cache.hub))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # read by constants.is_offline_mode() per request
    return cache


@pytest.fixture(scope="session")
def store_root(tmp_path_factory) -> Path:
    """One artifact store for every test that runs the reduced demo (built once, then reused)."""
    return tmp_path_factory.mktemp("store")


@pytest.fixture(scope="module")
def one_torch_thread():
    """One intra-op thread: tiny ops on a busy 2-core machine are ~100x slower with OpenMP spinning,
    and a fixed thread count keeps CPU results bit-reproducible within the module.  The engine pins its
    own count (FORENSICS_CPU_THREADS, default 2): set to 1 here too."""
    before, env_before = torch.get_num_threads(), os.environ.get("FORENSICS_CPU_THREADS")
    torch.set_num_threads(1)
    os.environ["FORENSICS_CPU_THREADS"] = "1"
    yield
    torch.set_num_threads(before)
    if env_before is None:
        os.environ.pop("FORENSICS_CPU_THREADS", None)
    else:
        os.environ["FORENSICS_CPU_THREADS"] = env_before


@pytest.fixture(scope="session")
def quick_demo(store_root):
    """The reduced demo (real EfficientNet-Lite0, real data), built once per test session."""
    from forensics import ArtifactStore, run_demo

    return run_demo(0, store=ArtifactStore(store_root), quick=True)


@pytest.fixture
def navigation_like_the_server(monkeypatch):
    """Run app.py (the router) on every rerun, as `streamlit run` does.

    A real server runs the entry script on every rerun once st.navigation has been called (it clears
    Streamlit's class-wide "pages directory" flag for the process).  AppTest resets that flag before each
    run, so with a folder named pages/ beside app.py it falls back to Streamlit's legacy multipage mode
    and runs a page script without the entry script.  Keep the flag as the server has it."""
    from streamlit.runtime.pages_manager import PagesManager

    init = PagesManager.__init__

    def init_like_the_server(self, *args, **kwargs):
        init(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    monkeypatch.setattr(PagesManager, "__init__", init_like_the_server)
