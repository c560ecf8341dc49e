"""Scan many suspects against one audit: one verdict per line, streamed, resumable, one failure never stops the rest.

``holmes-forensics scan --record audit.json --suspects FILE [--out scan.jsonl]`` reads the suspects (one source per
line: ``hf-hub:ORG/NAME[@REV]``, ``local-dir:PATH``, a weights file, ``demo:<suspect>``, or a black-box answers file
``.csv`` / ``.npy``; blank lines and ``#`` comments skipped), opens the audit of the record (from the artifact store)
and verifies each suspect in turn, appending one JSON line per suspect to the output as soon as it is known.  A line
already in the output for the same audit (its query-set fingerprint) and suspect is not recomputed, so a scan that
was interrupted, or that is re-run with more suspects, continues where it stopped.  A suspect that cannot be loaded
or verified gets a line that says why.  With ``--ray ADDRESS`` the suspects are Ray tasks (:func:`scan_ray`,
:mod:`forensics.runtime.fanout`), with the same rows.
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..audit.opened import Audit
from ..errors import ConfigError, ForensicsError
from ..runtime.access import allowed_path


@dataclass
class ScanRow:
    """The outcome for one suspect: ``status`` is ``verified``, ``reused`` (from an earlier run) or ``failed``."""

    suspect: str
    status: str
    p_value: float | None = None
    verdict: str | None = None
    protocol: str | None = None
    alpha: float | None = None
    fingerprint: str | None = None
    error: str | None = None
    seconds: float = 0.0
    queries_fingerprint: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_suspect_lines(text: str, name: str = "the suspect list") -> list[str]:
    """Suspect sources from the text of a list, one per line: blank lines and ``#`` comments skipped (a `` #``
    after a source starts a comment too), surrounding spaces dropped, duplicates kept once, in order.  ``name``
    says in the error which list it was (a file name, "the text box").  The CLI's ``scan`` and the dashboard's
    "Add many suspects" both read lists with it."""
    out: list[str] = []
    for line in text.splitlines():
        s = line.split(" #", 1)[0].split("\t#", 1)[0].strip()
        if s and not s.startswith("#") and s not in out:
            out.append(s)
    if not out:
        raise ConfigError(f"{name} lists no suspects; put one source per line (hf-hub:ORG/NAME, local-dir:PATH, a "
                          "weights file or an answers file)")
    return out


def read_suspect_list(path: str | Path) -> list[str]:
    """Suspect sources from a text file, one per line (the rules of :func:`parse_suspect_lines`)."""
    p = allowed_path(path, "list of suspects")
    try:
        text = p.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read the suspect list {str(p)!r} ({e}); give a text file with one source per "
                          "line") from e
    return parse_suspect_lines(text, p.name)


def done_rows(out: Path, queries_fingerprint: str) -> dict[str, dict[str, Any]]:
    """The suspects an earlier run already verified against the same query set (failed ones are tried again)."""
    done: dict[str, dict[str, Any]] = {}
    if not out.is_file():
        return done
    for line in out.read_text().splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue  # a line cut by an interruption
        if row.get("queries_fingerprint") == queries_fingerprint and row.get("status") in ("verified", "reused"):
            done[row["suspect"]] = row
    return done


def verify_row(audit: Audit, source: str) -> ScanRow:
    """One suspect's row: its verdict, or why it has none (one broken suspect never stops a scan)."""
    qfp = audit.queries.fingerprint
    t = time.perf_counter()
    try:
        v = audit.verify(source, name=source)
        row = ScanRow(source, "verified", v.p_value, v.verdict, v.protocol, v.alpha, v.fingerprint,
                      queries_fingerprint=qfp)
    except ForensicsError as e:
        row = ScanRow(source, "failed", error=str(e), queries_fingerprint=qfp)
    except Exception as e:  # noqa: BLE001 - one broken suspect must not stop the scan
        row = ScanRow(source, "failed", error=f"unexpected error: {type(e).__name__}: {e}", queries_fingerprint=qfp)
    row.seconds = round(time.perf_counter() - t, 3)
    return row


def _reused(source: str, r: dict[str, Any], qfp: str) -> ScanRow:
    return ScanRow(source, "reused", r.get("p_value"), r.get("verdict"), r.get("protocol"), r.get("alpha"),
                   r.get("fingerprint"), queries_fingerprint=qfp)


def _append(out: Path, row: ScanRow) -> None:
    with out.open("a") as f:  # one line, appended as soon as it is known
        f.write(json.dumps(row.to_dict()) + "\n")


def scan(audit: Audit, suspects: list[str], out: str | Path, *,
         on_row: Callable[[ScanRow, int, int], None] | None = None) -> Iterator[ScanRow]:
    """Verify ``suspects`` against ``audit`` in this process, appending a JSON line per suspect to ``out``; yields
    each row."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    qfp = audit.queries.fingerprint
    done = done_rows(out, qfp)
    for i, source in enumerate(suspects):
        if source in done:
            row = _reused(source, done[source], qfp)
        else:
            row = verify_row(audit, source)
            _append(out, row)
        if on_row is not None:
            on_row(row, i + 1, len(suspects))
        yield row


# -- the same on a Ray cluster -------------------------------------------------------------------------------------
_AUDITS: dict[str, Audit] = {}  # per worker process: the audit is opened once, then every suspect of it reuses it


def verify_in_worker(spec: dict[str, Any], store_root: str, source: str, queries_fingerprint: str,
                     precision: str) -> dict[str, Any]:
    """A Ray task: open the record's audit from the shared store (once per worker process) and verify one suspect.

    The worker must compute as the audit was built: another precision (a GPU worker, bf16, for an audit built on a
    CPU in fp32) would not find the audit's stages in the store and would train another audit; refused at once."""
    from ..audit.build import open_audit
    from ..audit.spec import AuditSpec
    from ..engine.engine import Engine
    from ..runtime.store import ArtifactStore, canonical_json

    key = canonical_json({"spec": spec, "store": store_root})
    if key not in _AUDITS:
        _AUDITS.clear()
        store = ArtifactStore(store_root)
        s = AuditSpec.from_dict(spec)
        engine = Engine(store, device=s.device, cache_blocks=s.config.train.trainable_blocks)
        if engine.precision != precision:
            raise ConfigError(f"this Ray worker computes in {engine.precision} on {engine.device.type}, but the audit "
                              f"was built in {precision}: its stages would not be found in the store; run the workers "
                              "on the kind of device the audit was built on (or build the audit there first)")
        audit = open_audit(s, store, engine=engine)
        if audit.queries.fingerprint != queries_fingerprint:
            raise ConfigError("the audit this Ray worker opened is not the record's (another query set): check that "
                              f"every node sees the same store at {store_root} and has the same package versions")
        _AUDITS[key] = audit
    audit = _AUDITS[key]
    kept = set(audit.engine._memory)
    try:
        return verify_row(audit, source).to_dict()
    finally:  # a long-lived worker keeps the audit's cached activations, not every suspect's
        for k in set(audit.engine._memory) - kept:
            del audit.engine._memory[k]


def scan_ray(spec: dict[str, Any], queries_fingerprint: str, suspects: list[str], out: str | Path, *,
             store_root: str | Path, address: str | None, precision: str, workers: int | None = None,
             on_row: Callable[[ScanRow, int, int], None] | None = None) -> Iterator[ScanRow]:
    """:func:`scan` with the suspects as Ray tasks (one GPU each where the cluster has GPUs), rows in the order they
    finish.  ``spec`` is the record's audit spec (``AuditSpec.to_dict()``); the workers open the audit from the store
    at ``store_root``, which they must all see at that path."""
    from ..runtime.fanout import ray_map

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    done = done_rows(out, queries_fingerprint)
    n, k = len(suspects), 0
    for source in suspects:
        if source in done:
            k += 1
            row = _reused(source, done[source], queries_fingerprint)
            if on_row is not None:
                on_row(row, k, n)
            yield row
    todo = [s for s in suspects if s not in done]
    for o in ray_map(verify_in_worker, todo, lambda s: (spec, str(store_root), s, queries_fingerprint, precision),
                     address=address, workers=workers):
        if o.error is None:
            row = ScanRow(**o.value)
        else:  # the task itself failed (its worker died twice, or the audit could not be opened there)
            row = ScanRow(o.item, "failed", error=f"the Ray task failed: {o.error}", seconds=round(o.seconds, 3),
                          queries_fingerprint=queries_fingerprint)
        _append(out, row)
        k += 1
        if on_row is not None:
            on_row(row, k, n)
        yield row
