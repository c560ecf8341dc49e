"""Every environment variable Holmes forensics reads, in one place.

Nothing else in the package (nor the dashboard) looks at ``os.environ``.  The variables are read
when :func:`current` is called, not at import time, so a test or a launcher can set them before the
work starts.  ``HF_HUB_OFFLINE`` is read by ``huggingface_hub`` itself (see the README).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError

STORE = "FORENSICS_STORE"
DEMO_QUICK = "FORENSICS_DEMO_QUICK"
MAX_UPLOAD_MB = "FORENSICS_MAX_UPLOAD_MB"
CPU_THREADS = "FORENSICS_CPU_THREADS"
CHROMIUM = "FORENSICS_CHROMIUM"
DEFAULT_CPU_THREADS = 2

#: name -> what it means (the README's configuration table says the same)
VARIABLES = {
    STORE: "the artifact store folder (default ~/.cache/holmes-forensics)",
    DEMO_QUICK: "1: the dashboard's demo uses the reduced data and epochs (what the tests use)",
    MAX_UPLOAD_MB: "the dashboard's upload limit in MB (default 200)",
    CPU_THREADS: f"torch threads for work on the CPU (default {DEFAULT_CPU_THREADS}: the same results on every "
                 "machine; 'auto' = torch's own choice, faster on many cores but machine-dependent)",
    CHROMIUM: "the Chromium/Chrome binary that prints the PDF report (default: chromium, chromium-browser or "
              "google-chrome on the PATH)",
}


@dataclass(frozen=True)
class Settings:
    """The environment's settings, validated."""

    store: Path
    demo_quick: bool
    max_upload_mb: int
    cpu_threads: int | None = DEFAULT_CPU_THREADS   # None: torch's own choice
    chromium: str | None = None                     # the browser for PDF reports; None: search the PATH


def default_store_root() -> Path:
    return Path.home() / ".cache" / "holmes-forensics"


def current() -> Settings:
    """Read and check the variables now; a bad value is a :class:`ConfigError` that names it."""
    env = os.environ
    store = Path(env[STORE]).expanduser() if env.get(STORE) else default_store_root()
    quick = env.get(DEMO_QUICK, "").strip()
    if quick not in ("", "0", "1"):
        raise ConfigError(f"{DEMO_QUICK}={quick!r}: set it to 1 (reduced demo) or 0, or unset it")
    raw = env.get(MAX_UPLOAD_MB, "").strip() or "200"
    try:
        mb = int(raw)
    except ValueError:
        mb = 0
    if mb < 1:
        raise ConfigError(f"{MAX_UPLOAD_MB}={raw!r}: give the upload limit as a whole number of megabytes >= 1, "
                          "or unset it (default 200)")
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
                    chromium=env.get(CHROMIUM, "").strip() or None)


def child_environment(**overrides: str) -> dict[str, str]:
    """The environment for a child process (a browser printing a PDF), with ``overrides``."""
    return {**os.environ, **overrides}
