"""Scan many suspects against one audit: one verdict per line, streamed, resumable, one failure never stops the rest.

``holmes-forensics scan --record audit.json --suspects FILE [--out scan.jsonl]`` reads the suspects (one source per
line: ``hf-hub:ORG/NAME[@REV]``, ``local-dir:PATH``, a weights file, ``demo:<suspect>``, or a black-box answers file
``.csv`` / ``.npy``; blank lines and ``#`` comments skipped), opens the audit of the record (from the artifact store)
and verifies each suspect in turn, appending one JSON line per suspect to the output as soon as it is known.  A line
already in the output for the same audit (its query-set fingerprint) and suspect is not recomputed, so a scan that
was interrupted, or that is re-run with more suspects, continues where it stopped.  A suspect that cannot be loaded
or verified gets a line that says why.  (Fanning the suspects out over several machines is issue 10's Ray part.)
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from .audit import Audit
from .errors import ConfigError, ForensicsError


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


def read_suspect_list(path: str | Path) -> list[str]:
    """Suspect sources, one per line (blank lines and ``#`` comments skipped; duplicates kept once)."""
    p = Path(path)
    try:
        lines = p.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read the suspect list {str(p)!r} ({e}); give a text file with one source per "
                          "line") from e
    out: list[str] = []
    for line in lines:
        s = line.strip()
        if s and not s.startswith("#") and s not in out:
            out.append(s)
    if not out:
        raise ConfigError(f"{p.name} lists no suspects; put one source per line (hf-hub:ORG/NAME, local-dir:PATH, a "
                          "weights file or an answers file)")
    return out


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


def scan(audit: Audit, suspects: list[str], out: str | Path, *,
         on_row: Callable[[ScanRow, int, int], None] | None = None) -> Iterator[ScanRow]:
    """Verify ``suspects`` against ``audit``, appending a JSON line per suspect to ``out``; yields each row."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    qfp = audit.queries.fingerprint
    done = done_rows(out, qfp)
    for i, source in enumerate(suspects):
        t = time.perf_counter()
        if source in done:
            r = done[source]
            row = ScanRow(source, "reused", r.get("p_value"), r.get("verdict"), r.get("protocol"), r.get("alpha"),
                          r.get("fingerprint"), queries_fingerprint=qfp)
        else:
            try:
                v = audit.verify(source, name=source)
                row = ScanRow(source, "verified", v.p_value, v.verdict, v.protocol, v.alpha, v.fingerprint,
                              queries_fingerprint=qfp)
            except ForensicsError as e:
                row = ScanRow(source, "failed", error=str(e), queries_fingerprint=qfp)
            except Exception as e:  # noqa: BLE001 - one broken suspect must not stop the scan
                row = ScanRow(source, "failed", error=f"unexpected error: {type(e).__name__}: {e}",
                              queries_fingerprint=qfp)
            row.seconds = round(time.perf_counter() - t, 3)
            with out.open("a") as f:  # one line, appended as soon as it is known
                f.write(json.dumps(row.to_dict()) + "\n")
        if on_row is not None:
            on_row(row, i + 1, len(suspects))
        yield row
