"""Every environment variable Holmes forensics reads, in one place.

Nothing else in the package (nor the dashboard) looks at ``os.environ``.  The variables are read
when :func:`current` is called, not at import time, so a test or a launcher can set them before the
work starts.  ``HF_HUB_OFFLINE`` is read by ``huggingface_hub`` itself (see the README).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError

STORE = "FORENSICS_STORE"
DEMO_QUICK = "FORENSICS_DEMO_QUICK"
DEMO_SHIPPED = "FORENSICS_DEMO_SHIPPED"
MAX_UPLOAD_MB = "FORENSICS_MAX_UPLOAD_MB"
MAX_UNPACKED_MB = "FORENSICS_MAX_UNPACKED_MB"
DATA_ROOT = "FORENSICS_DATA_ROOT"
USERS_FILE = "FORENSICS_USERS_FILE"
CPU_THREADS = "FORENSICS_CPU_THREADS"
CHROMIUM = "FORENSICS_CHROMIUM"
DIST_TIMEOUT = "FORENSICS_DIST_TIMEOUT_MIN"
API_PRIVATE = "FORENSICS_API_PRIVATE"
DEFAULT_CPU_THREADS = 2
#: what torchrun sets for each worker (read by :func:`launcher`; torch.distributed reads them itself too)
LAUNCHER = ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "TORCHELASTIC_RESTART_COUNT")
#: what Ray workers get from the process that starts them (the same store, threads, offline mode, Hub cache)
SHARED_PREFIXES = ("FORENSICS_", "HF_", "HUGGINGFACE_", "TRANSFORMERS_", "TIMM_")

#: name -> what it means (the README's configuration table says the same)
VARIABLES = {
    STORE: "the artifact store folder (default ~/.cache/holmes-forensics)",
    DEMO_QUICK: "1: the dashboard's demo uses the reduced data and epochs (what the tests use)",
    DEMO_SHIPPED: "0: the full demo trains its victim and simulated suspects itself instead of using the weights "
                  "shipped with the package (same models, minutes longer on a CPU)",
    MAX_UPLOAD_MB: "the dashboard's upload limit in MB (default 200)",
    MAX_UNPACKED_MB: "the most an uploaded zip may unpack to, in MB (default 2048)",
    DATA_ROOT: "a folder every server path an audit reads must lie under (unset: any path; see SECURITY.md)",
    USERS_FILE: "a shared dashboard's users (holmes-forensics add-user): it asks each to sign in and shows them "
                "only their own audits (unset: no login, one user)",
    CPU_THREADS: f"torch threads for work on the CPU (default {DEFAULT_CPU_THREADS}: the same results on every "
                 "machine; 'auto' = torch's own choice, faster on many cores but machine-dependent)",
    CHROMIUM: "the Chromium/Chrome binary that prints the PDF report (default: chromium, chromium-browser or "
              "google-chrome on the PATH)",
    DIST_TIMEOUT: "under torchrun: minutes a worker waits for the others before it gives up (default 60)",
    API_PRIVATE: "1: a shared dashboard's API audits may ask endpoints on private networks and this machine (default: "
                 "only public addresses once FORENSICS_USERS_FILE is set)",
}


@dataclass(frozen=True)
class Settings:
    """The environment's settings, validated."""

    store: Path
    demo_quick: bool
    max_upload_mb: int
    cpu_threads: int | None = DEFAULT_CPU_THREADS   # None: torch's own choice
    chromium: str | None = None                     # the browser for PDF reports; None: search the PATH
    demo_shipped: bool = True                       # the full demo's shipped victim and suspects are used
    max_unpacked_mb: int = 2048                     # the most an uploaded zip unpacks to
    data_root: Path | None = None                   # every server path must lie under it (None: any path)
    users_file: Path | None = None                  # a shared dashboard's users (None: no login)
    api_private: bool = False                       # a shared dashboard may ask private-network endpoints


def default_store_root() -> Path:
    return Path.home() / ".cache" / "holmes-forensics"


def current() -> Settings:
    """Read and check the variables now; a bad value is a :class:`ConfigError` that names it."""
    env = os.environ
    store = Path(env[STORE]).expanduser() if env.get(STORE) else default_store_root()
    quick = env.get(DEMO_QUICK, "").strip()
    if quick not in ("", "0", "1"):
        raise ConfigError(f"{DEMO_QUICK}={quick!r}: set it to 1 (reduced demo) or 0, or unset it")
    shipped = env.get(DEMO_SHIPPED, "").strip()
    if shipped not in ("", "0", "1"):
        raise ConfigError(f"{DEMO_SHIPPED}={shipped!r}: set it to 0 (the demo trains every model itself) or 1, or "
                          "unset it")
    mb = _megabytes(env, MAX_UPLOAD_MB, 200)
    unpacked = _megabytes(env, MAX_UNPACKED_MB, 2048)
    root = Path(env[DATA_ROOT]).expanduser() if env.get(DATA_ROOT, "").strip() else None
    if root is not None and not root.is_dir():
        raise ConfigError(f"{DATA_ROOT}={env[DATA_ROOT]!r} is not a folder; set it to the folder audits may read")
    users = Path(env[USERS_FILE]).expanduser() if env.get(USERS_FILE, "").strip() else None
    if users is not None and not users.is_file():
        raise ConfigError(f"{USERS_FILE}={env[USERS_FILE]!r} is not a file; create it with holmes-forensics add-user")
    private = env.get(API_PRIVATE, "").strip()
    if private not in ("", "0", "1"):
        raise ConfigError(f"{API_PRIVATE}={private!r}: set it to 1 (private endpoints allowed) or 0, or unset it")
    raw = env.get(CPU_THREADS, "").strip().lower() or str(DEFAULT_CPU_THREADS)
    threads: int | None = None
    if raw != "auto":
        try:
            threads = int(raw)
        except ValueError:
            threads = 0
        if threads < 1:
            raise ConfigError(f"{CPU_THREADS}={raw!r}: give a whole number of threads >= 1, or 'auto'")
    return Settings(store=store, demo_quick=quick == "1", max_upload_mb=mb, cpu_threads=threads,
                    chromium=env.get(CHROMIUM, "").strip() or None, demo_shipped=shipped != "0",
                    max_unpacked_mb=unpacked, data_root=root, users_file=users, api_private=private == "1")


def _megabytes(env: os._Environ | dict[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip() or str(default)
    try:
        mb = int(raw)
    except ValueError:
        mb = 0
    if mb < 1:
        raise ConfigError(f"{name}={raw!r}: give a whole number of megabytes >= 1, or unset it (default {default})")
    return mb


def launcher() -> dict[str, str]:
    """torchrun's variables of this worker (empty outside torchrun)."""
    return {k: os.environ[k] for k in LAUNCHER if k in os.environ}


def dist_timeout_minutes() -> float:
    raw = os.environ.get(DIST_TIMEOUT, "").strip() or "60"
    try:
        minutes = float(raw)
    except ValueError:
        minutes = 0.0
    if minutes <= 0:
        raise ConfigError(f"{DIST_TIMEOUT}={raw!r}: give the minutes a torchrun worker waits for the others (> 0)")
    return minutes


def shared_environment() -> dict[str, str]:
    """The variables a Ray worker must share with the process that started it (:data:`SHARED_PREFIXES`)."""
    return {k: v for k, v in os.environ.items() if k.startswith(SHARED_PREFIXES)}


def adopt_environment(env: dict[str, str]) -> None:
    """In a Ray worker: take the starting process's variables (:func:`shared_environment`) before the work."""
    os.environ.update(env)


def child_environment(**overrides: str) -> dict[str, str]:
    """The environment for a child process (a browser printing a PDF), with ``overrides``."""
    return {**os.environ, **overrides}


def secret_variable(name: str) -> str:
    """A variable the user named to hold a secret (an API's key: ``holmes-forensics query --api-key-env VAR``), ""
    where it is not set; never logged, never stored."""
    return os.environ.get(name, "")
