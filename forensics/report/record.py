"""The JSON audit record: written by :func:`build_report` (fingerprints, revisions, data, configs, seeds, library
versions, per-sample scores, p-values) and read back, checked, by :func:`read_record`; the one place that knows
its format (:data:`RECORD_FORMAT`).  The HTML and PDF reports (:mod:`.html`, :mod:`.pdf`) render the same
record."""
from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import platform
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..audit.opened import Audit
from ..audit.spec import AuditSpec
from ..audit.verdict import Verdict
from ..errors import ConfigError
from ..runtime import access, settings
from ..runtime.access import allowed_path

# what the auditor may type about the case (Case.info), in the order the report shows them
CASE_FIELDS = ("case_name", "auditor", "note")


def library_versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for pkg in ("holmes-forensics", "torch", "torchvision", "timm", "numpy", "scipy", "scikit-learn",
                "huggingface-hub", "safetensors", "pandas"):
        with contextlib.suppress(md.PackageNotFoundError):
            out[pkg] = md.version(pkg)
    from .._version import __version__
    out["forensics"] = __version__
    return out


RECORD_FORMAT = "holmes-forensics audit record v1"


def now_iso() -> str:
    """The local date and time, ISO 8601 with the UTC offset (what the record's ``created`` holds)."""
    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")


def case_info(info: dict[str, Any] | None) -> dict[str, str]:
    """The case name, auditor and note that were given (stripped; empty ones left out)."""
    info = info or {}
    return {k: str(info[k]).strip() for k in CASE_FIELDS if info.get(k) and str(info[k]).strip()}


def build_report(audit: Audit, verdicts: Sequence[tuple[str, str | None, Verdict]], *,
                 extra: dict[str, Any] | None = None,
                 sources: dict[str, dict[str, Any]] | None = None,
                 info: dict[str, str] | None = None,
                 errors: dict[str, str] | None = None, created: str | None = None) -> dict[str, Any]:
    """The JSON audit record: fingerprints, revisions, data, configs, seeds, versions, per-sample
    scores and p-values.  Its ``spec`` says how to rebuild the audit (sources and data locations) and
    ``sources`` how to find each suspect again (model source or stored answers file), which is what
    ``holmes-forensics reverify`` needs.  ``case`` holds what the auditor typed (``info``: case name, auditor,
    note; only those given), ``errors`` the suspects that could not be verified and why."""
    sources = sources or {}
    return store_names({
        "format": RECORD_FORMAT,
        "created": created or now_iso(),
        "case": case_info(info),
        "spec": audit.spec.to_dict(),
        "audit": audit.summary(),
        "suspects": [{"name": name, "kind": kind, **sources.get(name, {}), **v.to_dict(per_sample=True)}
                     for name, kind, v in verdicts],
        "errors": dict(errors or {}),
        "versions": library_versions(),
        **(extra or {}),
    }, audit.engine.store.root)


#: how a record names a file kept in the artifact store (an upload): relative to the store, never its absolute path
#: (which says where the server keeps it, and whose home folder it is in)
STORE = "store:"


#: how a record names a file under a shared server's data root (FORENSICS_DATA_ROOT): relative to it
DATA_ROOT = "data-root:"


def _roots(root: Path) -> list[tuple[str, str]]:
    """(path prefix, name prefix) pairs: the store, and a shared server's data root (resolved and as given)."""
    pairs = [(str(Path(root).resolve()) + "/", STORE), (str(Path(root)) + "/", STORE)]
    data = access.data_root()
    if data is not None:
        pairs += [(str(data) + "/", DATA_ROOT), (str(settings.current().data_root) + "/", DATA_ROOT)]
    return pairs


def store_names(obj: Any, root: Path) -> Any:
    """``obj`` (a record or part of it) with every string that is a path inside the store ``root`` written
    ``store:<path relative to the store>``, and on a shared server one under its data root
    ``data-root:<relative path>``: a record never says where the server keeps files, nor whose home folder they are
    in."""
    pairs = _roots(root)

    def name(v: str) -> str:
        for p, tag in pairs:
            if v.startswith(p):
                return tag + v[len(p):]
            if ":" in v and v.split(":", 1)[1].startswith(p):  # a source with a scheme: local-dir:/store/...
                scheme, rest = v.split(":", 1)
                return f"{scheme}:{tag}{rest[len(p):]}"
        return v

    return _map_strings(obj, name)


def store_paths(obj: Any, root: Path) -> Any:
    """The inverse of :func:`store_names` for the store at ``root`` (and this server's data root):
    ``store:<relative path>`` back to a path in it (a relative path that climbs out with ``..`` or is absolute stays
    as written, and is then not found)."""
    data = access.data_root()
    bases = {STORE: Path(root), **({DATA_ROOT: data} if data is not None else {})}

    def path(tag: str, rel: str) -> str | None:
        p = Path(rel)
        return None if p.is_absolute() or ".." in p.parts else str(bases[tag] / p)

    def back(v: str) -> str:
        for tag in bases:
            if v.startswith(tag) and (p := path(tag, v[len(tag):])) is not None:
                return p
            scheme, sep, rest = v.partition(":")
            if sep and rest.startswith(tag) and (p := path(tag, rest[len(tag):])) is not None:
                return f"{scheme}:{p}"
        return v

    return _map_strings(obj, back)


def _map_strings(obj: Any, fn: Callable[[str], str]) -> Any:
    """``obj`` (JSON-like: dicts, lists, scalars) with ``fn`` applied to every string value (keys stay)."""
    if isinstance(obj, str):
        return fn(obj)
    if isinstance(obj, dict):
        return {k: _map_strings(x, fn) for k, x in obj.items()}
    if isinstance(obj, list):
        return [_map_strings(x, fn) for x in obj]
    return obj


def record_digest(rec: dict[str, Any]) -> str:
    """SHA-256 of the record's content, whatever its layout: of its canonical JSON (keys sorted, no spaces, ASCII).
    The report prints it on its first page; ``holmes-forensics digest audit.json`` recomputes it."""
    blob = json.dumps(rec, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str, allow_nan=True)
    return hashlib.sha256(blob.encode("ascii")).hexdigest()


# what the HTML report writes before its own SHA-256 (see forensics.report.html.report_digest)
REPORT_DIGEST_LABEL = "report-sha256:"


def read_record(source: str | Path | bytes, name: str | None = None, *, store: Path | None = None) -> dict[str, Any]:
    """A JSON audit record from a file (``source`` a path) or its bytes, checked: its audit spec must be readable.
    ``name`` is what errors call it (default: the path; for bytes, "the record"), so a message names the user's own
    file; a :class:`~forensics.errors.ConfigError` that says what to give instead when it is not a record.
    ``store``: the artifact store its ``store:`` names (uploads) are read from."""
    if isinstance(source, (str, Path)):
        name = name or str(source)
        try:
            data: bytes | str = allowed_path(source, "audit record").read_bytes()
        except OSError as e:
            raise ConfigError(f"cannot read the audit record {name} ({e.strerror or e}); give the audit.json the "
                              "dashboard or the CLI wrote") from e
    else:
        data, name = source, name or "the record"
    try:
        rec = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise ConfigError(f"{name} is not JSON ({e}); give the audit.json the dashboard or the CLI wrote") from e
    if isinstance(rec, dict) and store is not None:
        rec = store_paths(rec, store)
    if not isinstance(rec, dict) or "spec" not in rec:
        raise ConfigError(f"{name} is not a Holmes forensics audit record (no 'spec'); give the audit.json the "
                          "dashboard (5 · Report) or the CLI (--json) wrote")
    if not isinstance(rec.get("suspects", []), list):
        raise ConfigError(f"{name}: its 'suspects' is not a list; give the audit.json the dashboard (5 · Report) or "
                          "the CLI (--json) wrote, unedited")
    try:
        AuditSpec.from_dict(rec["spec"])
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise ConfigError(f"{name}: its audit settings cannot be read ({type(e).__name__}: {e})") from e
    return rec
