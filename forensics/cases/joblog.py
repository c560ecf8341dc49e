"""A build's log kept with its audit: the stages it went through and the training curves of every model it trained,
written when the build ends (done or failed) and read back as a finished :class:`~forensics.runtime.jobs.Job`, so
the dashboard shows the same log and curves after the server restarted (a job lives in the server's memory only).

Saved as ``ROOT/case-logs/<audit id>.json``.  Read as hostile, like every file of the store: bounded size, only the
event types and fields listed here, each of its type; a log that does not read is no log (the audit is not harmed).
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from ..engine.recipe import TrainProgress
from ..runtime.jobs import Job
from ..runtime.progress import StagePlan, StageProgress
from ..runtime.store import ArtifactStore, write_json
from .casefile import log_path

FORMAT = "holmes-forensics-build-log/1"
#: points of each training's curve that are kept (the curves a dashboard draws are thinned to 300 anyway)
CURVE_POINTS = 300
MAX_BYTES = 8_000_000
MAX_EVENTS = 50_000
MAX_TEXT = 2_000
_TYPES: dict[str, type] = {"StagePlan": StagePlan, "StageProgress": StageProgress, "TrainProgress": TrainProgress}


def _kept(events: list[tuple[float, Any]]) -> list[tuple[float, Any]]:
    """The events a log keeps: every stage event, and of each training its first and last steps and those on a grid
    of at most :data:`CURVE_POINTS`, and its end (batch-level work progress is dropped)."""
    out = []
    for t, e in events:
        if isinstance(e, TrainProgress) and not e.done:
            every = max(1, math.ceil(e.total_steps / CURVE_POINTS))
            if e.step % every and e.step not in (1, e.total_steps):
                continue
        elif not isinstance(e, (StagePlan, StageProgress, TrainProgress)):
            continue
        out.append((t, e))
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None  # NaN (a run reused from the store has no loss): JSON has no NaN
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def job_log(job: Job) -> dict[str, Any]:
    """What :func:`save_job_log` writes of ``job``."""
    return {"format": FORMAT, "name": job.name, "status": job.status, "error": job.error, "started": job.started,
            "finished": job.finished,
            "events": [{"t": t, "type": type(e).__name__, **_plain(asdict(e))} for t, e in _kept(job.timed_snapshot())]}


def save_job_log(store: ArtifactStore, case_id: str, job: Job) -> Path:
    path = log_path(store, case_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, job_log(job))
    return path


def _text(v: Any) -> str:
    if not isinstance(v, str):
        raise ValueError("not a text")
    return v[:MAX_TEXT]


def _number(v: Any, kind: type) -> Any:
    if v is None and kind is float:
        return math.nan
    if isinstance(v, bool) or not isinstance(v, (int, float)) or (kind is int and not isinstance(v, int)):
        raise ValueError("not a number")
    return kind(v)


def _event(d: Any) -> tuple[float, Any]:
    if not isinstance(d, dict) or d.get("type") not in _TYPES:
        raise ValueError("not an event")
    cls = _TYPES[d["type"]]
    values: dict[str, Any] = {}
    for f in fields(cls):
        if f.name not in d:
            continue
        v, kind = d[f.name], str(f.type)
        if kind == "str":
            values[f.name] = _text(v)
        elif kind in ("int", "float"):
            values[f.name] = _number(v, int if kind == "int" else float)
        elif kind == "bool":
            values[f.name] = bool(v)
        elif f.name == "stages":
            values[f.name] = [(_text(k), _text(title)) for k, title in v]
        elif f.name in ("costs", "parts"):
            values[f.name] = {_text(k): _number(x, float if f.name == "costs" else int) for k, x in dict(v).items()}
        else:
            raise ValueError(f"unexpected field {f.name}")
    t = d.get("t")
    if t is None:
        raise ValueError("an event without its time")
    return _number(t, float), cls(**values)


def load_job_log(store: ArtifactStore, case_id: str) -> Job | None:
    """The saved log of audit ``case_id``'s last build as a finished job, or None (none saved, or not readable)."""
    try:
        path = log_path(store, case_id)
        if not path.is_file() or path.stat().st_size > MAX_BYTES:
            return None
        d = json.loads(path.read_text())
        if not isinstance(d, dict) or d.get("format") != FORMAT or not isinstance(d.get("events"), list) \
                or len(d["events"]) > MAX_EVENTS or d.get("status") not in ("done", "failed"):
            return None
        events = [_event(e) for e in d["events"]]
        job = Job("reopen" if d.get("name") == "reopen" else "audit", status=d["status"],
                  error=None if d.get("error") is None else _text(d["error"]),
                  started=_number(d.get("started"), float), finished=_number(d.get("finished"), float))
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None
    job.events = [e for _, e in events]
    job.times = [t for t, _ in events]
    return job
