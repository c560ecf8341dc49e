"""The one artifact store.

Every stage's result lives in ``ROOT/<stage>/<key>/`` where ``key`` is a hash of the stage's
config and of the fingerprints of its inputs.  Results are written into a temporary folder and
renamed into place (atomic on one file system), under a per-key file lock so that two processes
(two dashboard sessions, a CLI run beside a dashboard) never write the same entry twice or read a
half-written one.  A re-run with the same inputs finds the entry and computes nothing.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock

from ..errors import ArtifactError
from . import settings

META_FILE = "meta.json"


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=_json_default)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def artifact_key(stage: str, config: Mapping[str, Any], inputs: Mapping[str, str]) -> str:
    """Hash of (stage, config, input fingerprints): equal inputs give an equal key."""
    blob = canonical_json({"stage": stage, "config": config, "inputs": inputs})
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def fingerprint_array(array: np.ndarray) -> str:
    """A short content hash of an array (dtype, shape and bytes) for cache keys."""
    t = np.ascontiguousarray(array)
    return hashlib.sha256(str(t.dtype).encode() + str(t.shape).encode() + t.tobytes()).hexdigest()[:16]


@dataclass
class StoreStats:
    """How many entries of each stage this store object reused (``hits``) or computed.

    Counters, not logs: a long-lived store (the dashboard's) does not grow with every request.  To
    know whether one particular call reused its entry, use :meth:`ArtifactStore.fetch`."""

    hits: Counter[str] = field(default_factory=Counter)
    computed: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True)
class Entry:
    """A store entry: its folder, and whether this call computed it (False: reused)."""

    path: Path
    computed: bool


class ArtifactStore:
    """A folder of stage results keyed by config and input fingerprints."""

    def __init__(self, root: str | os.PathLike | None = None) -> None:
        self.root = Path(root) if root is not None else settings.current().store
        self.root.mkdir(parents=True, exist_ok=True)
        self.stats = StoreStats()

    def __repr__(self) -> str:
        return f"ArtifactStore({str(self.root)!r})"

    def path(self, stage: str, key: str) -> Path:
        return self.root / stage / key

    def has(self, stage: str, key: str) -> bool:
        return (self.path(stage, key) / META_FILE).is_file()

    def lock(self, stage: str, key: str) -> FileLock:
        lock_dir = self.root / ".locks"
        lock_dir.mkdir(parents=True, exist_ok=True)
        return FileLock(str(lock_dir / f"{stage}-{key}.lock"))

    def work_dir(self, stage: str, key: str) -> Path:
        """A persistent scratch folder for a stage that is being computed (checkpoints to resume)."""
        d = self.root / ".work" / stage / key
        d.mkdir(parents=True, exist_ok=True)
        return d

    def get_or_compute(
        self,
        stage: str,
        config: Mapping[str, Any],
        inputs: Mapping[str, str],
        compute: Callable[[Path], Mapping[str, Any] | None],
    ) -> Path:
        """Return the folder of the entry, computing it with ``compute(tmp_dir)`` if absent.

        ``compute`` writes its files into ``tmp_dir`` and may return extra metadata.  The folder
        appears under its key only when ``compute`` returned without error.
        """
        return self.fetch(stage, config, inputs, compute).path

    def fetch(
        self,
        stage: str,
        config: Mapping[str, Any],
        inputs: Mapping[str, str],
        compute: Callable[[Path], Mapping[str, Any] | None],
    ) -> Entry:
        """:meth:`get_or_compute`, also saying whether this call computed the entry."""
        key = artifact_key(stage, config, inputs)
        final = self.path(stage, key)
        if self.has(stage, key):
            self.stats.hits[stage] += 1
            return Entry(final, False)
        with self.lock(stage, key):
            if self.has(stage, key):  # another process finished it while we waited
                self.stats.hits[stage] += 1
                return Entry(final, False)
            final.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{key}-", dir=final.parent))
            try:
                extra = compute(tmp) or {}
                meta = {
                    "stage": stage,
                    "key": key,
                    "config": config,
                    "inputs": dict(inputs),
                    "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                    **extra,
                }
                write_json(tmp / META_FILE, meta)
                if final.exists():  # a stale, incomplete entry without meta.json
                    shutil.rmtree(final)
                os.replace(tmp, final)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            shutil.rmtree(self.root / ".work" / stage / key, ignore_errors=True)
            self.stats.computed[stage] += 1
            return Entry(final, True)

    def meta(self, stage: str, key: str) -> dict:
        return read_json(self.path(stage, key) / META_FILE)


def write_json(path: Path, obj: Any) -> None:
    """Write JSON atomically (temp file + rename)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{threading.get_ident()}")  # threads of one process too
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=_json_default))
    os.replace(tmp, path)


def read_json(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ArtifactError(f"cannot read {path}: {e}; delete that store entry and re-run") from e


def write_arrays(path: Path, **arrays: np.ndarray) -> None:
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}.npz")
    np.savez(tmp, **arrays)  # type: ignore[arg-type]  # numpy's stub: a key could be its allow_pickle
    os.replace(tmp, path)


def read_arrays(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError) as e:
        raise ArtifactError(f"cannot read {path}: {e}; delete that store entry and re-run") from e
