"""Background jobs: run a long computation (training shadows, verifying suspects) in a thread,
collect its progress events, and let any number of viewers poll it.  Nothing here knows a UI.

A job's function receives a ``progress`` callback as keyword argument.  Events are kept in order;
a viewer reads :attr:`Job.events` or the latest state per training label.  Errors become a
recorded failure (``status == "failed"``, ``error`` = one readable line) instead of killing the
process, and what the stages already stored stays in the artifact store for the next run.
"""
from __future__ import annotations

import itertools
import logging
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import ForensicsError

log = logging.getLogger(__name__)
_ids = itertools.count(1)
_jobs: dict[str, Job] = {}
_lock = threading.Lock()
MAX_FINISHED = 16


@dataclass
class Job:
    name: str
    id: str = field(default_factory=lambda: f"job-{next(_ids)}")
    status: str = "pending"            # pending, running, done, failed
    result: Any = None
    error: str | None = None
    detail: str | None = None          # traceback of an unexpected error (for logs, not for users)
    started: float = 0.0
    finished: float = 0.0
    events: list[Any] = field(default_factory=list)
    times: list[float] = field(default_factory=list)   # when each event arrived (time.time())
    _thread: threading.Thread | None = field(default=None, repr=False)
    _events_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _high: float = field(default=0.0, repr=False)      # the largest share done any viewer was shown

    def progress(self, event: Any) -> None:
        with self._events_lock:
            self.events.append(event)
            self.times.append(time.time())

    def snapshot(self) -> list[Any]:
        with self._events_lock:
            return list(self.events)

    def timed_snapshot(self) -> list[tuple[float, Any]]:
        """``(arrival time, event)`` pairs (for progress views with time estimates)."""
        with self._events_lock:
            return list(zip(self.times, self.events, strict=True))

    def stages(self) -> list:
        """The job's progress as :class:`~forensics.runtime.progress.StageView` objects, one per stage."""
        return self.summary().views

    def summary(self):
        """Stages, share done and seconds left (:func:`~forensics.runtime.progress.summarize`): what every view of
        this job shows.  The share done never goes back, for any viewer, and is 1 once the job is done."""
        from .progress import summarize

        s = summarize(self.timed_snapshot(), self.finished or time.time(), started=self.started or None)
        with self._events_lock:
            self._high = s.fraction = 1.0 if self.status == "done" else max(self._high, s.fraction)
        if self.status == "done":
            s.eta = 0.0
        return s

    def latest_curve(self, max_points: int = 300) -> tuple[str, Any] | None:
        """(label, array of (step, running loss)) of the training in progress, thinned to ``max_points``;
        None when no training is running."""
        import numpy as np

        pts: dict[str, list[tuple[int, float]]] = {}
        last = None
        for ev in self.snapshot():
            if hasattr(ev, "total_steps"):  # a TrainProgress
                if ev.done:
                    pts.pop(ev.label, None)
                    last = None if last == ev.label else last
                else:
                    pts.setdefault(ev.label, []).append((ev.step, ev.loss))
                    last = ev.label
        if last is None or not pts.get(last):
            return None
        arr = np.asarray(pts[last], dtype=float)
        if len(arr) > max_points:
            arr = arr[np.linspace(0, len(arr) - 1, max_points).round().astype(int)]
        return last, arr

    def curves(self, max_points: int = 300) -> dict[str, Any]:
        """Every training of the job so far: label -> array of (step, running loss), thinned to ``max_points``
        (a label trained again is another run, "label (2)"; a training reused from the store has no curve)."""
        import math

        import numpy as np

        runs: dict[str, list[tuple[int, float]]] = {}
        current: dict[str, str] = {}  # label -> the name of its run now ("label", then "label (2)", ...)
        for ev in self.snapshot():
            if hasattr(ev, "total_steps") and not ev.done and not math.isnan(ev.loss):
                name = current.setdefault(ev.label, ev.label)
                if runs.get(name) and ev.step < runs[name][-1][0]:  # the same label trains again: a new run
                    n = 2
                    while f"{ev.label} ({n})" in runs:
                        n += 1
                    name = current[ev.label] = f"{ev.label} ({n})"
                runs.setdefault(name, []).append((ev.step, ev.loss))
        out = {}
        for label, pts in runs.items():
            arr = np.asarray(pts, dtype=float)
            if len(arr) > max_points:
                arr = arr[np.linspace(0, len(arr) - 1, max_points).round().astype(int)]
            out[label] = arr
        return out

    def fraction_done(self) -> float:
        return self.summary().fraction

    @property
    def running(self) -> bool:
        return self.status in ("pending", "running")

    @property
    def seconds(self) -> float:
        end = self.finished or time.time()
        return end - self.started if self.started else 0.0

    def wait(self, timeout: float | None = None) -> Job:
        if self._thread is not None:
            self._thread.join(timeout)
        return self


def start_job(name: str, fn: Callable[..., Any], *args: Any, on_end: Callable[[Job], None] | None = None,
              **kwargs: Any) -> Job:
    """Run ``fn(*args, progress=job.progress, **kwargs)`` in a daemon thread; ``on_end(job)`` once it has ended (done
    or failed), e.g. to keep its log (an error there is logged, the job's own outcome stands)."""
    job = Job(name)

    def run() -> None:
        job.status, job.started = "running", time.time()
        try:
            job.result = fn(*args, progress=job.progress, **kwargs)
            job.status = "done"
        except ForensicsError as e:
            job.error, job.status = str(e), "failed"
        except Exception as e:  # noqa: BLE001 - recorded, never raised into a viewer
            job.error = f"unexpected error: {type(e).__name__}: {e}"
            job.detail = traceback.format_exc()
            job.status = "failed"
        finally:
            job.finished = time.time()
            if on_end is not None:
                try:
                    on_end(job)
                except Exception:  # what the job computed is kept; only its log may be lost
                    log.exception("keeping the log of job %s failed", job.id)

    job._thread = threading.Thread(target=run, name=f"forensics-{job.id}", daemon=True)
    with _lock:
        _jobs[job.id] = job
        finished = [j for j in _jobs.values() if not j.running]
        for old in finished[:-MAX_FINISHED]:  # finished jobs hold whole cases (models included): keep the last few
            _jobs.pop(old.id, None)
    job._thread.start()
    return job


def get_job(job_id: str | None) -> Job | None:
    with _lock:
        return _jobs.get(job_id) if job_id else None
