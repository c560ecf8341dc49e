"""Progress events of the pipeline, and what a viewer makes of them.

Events: :class:`StagePlan` (the stages a run will go through, sent first), :class:`StageProgress`
(a stage starts or ends), :class:`WorkProgress` (batches of work inside a stage: features, logits)
and the training loop's :class:`forensics.engine.recipe.TrainProgress` (steps inside a stage).
:func:`stage_views` turns a timed list of events into one :class:`StageView` per stage, with a
fraction done and an estimated time left, for any UI (the dashboard's build page, the other pages'
"running, N % done").
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

Progress = Callable[[Any], None]


@dataclass
class StageProgress:
    """A pipeline stage starts (``status='start'``) or ends (``'done'``, or ``'failed'`` when the run goes on
    without it, e.g. a suspect that could not be verified)."""

    stage: str
    status: str
    detail: str = ""
    title: str = ""


@dataclass
class StagePlan:
    """The stages a run will go through, in order: ``(key, title)`` pairs."""

    stages: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class WorkProgress:
    """``done`` of ``total`` units (batches) of one piece of work inside the current stage."""

    label: str
    done: int
    total: int


def emit(progress: Progress | None, stage: str, status: str, detail: str = "", title: str = "") -> None:
    if progress is not None:
        progress(StageProgress(stage, status, detail, title))


def work(progress: Progress | None, label: str, done: int, total: int) -> None:
    if progress is not None:
        progress(WorkProgress(label, done, total))


@dataclass
class StageView:
    key: str
    title: str
    status: str = "pending"            # pending, running, done, failed
    detail: str = ""
    started: float | None = None
    ended: float | None = None
    work: str = ""                     # what the stage is doing now, e.g. "training epoch 2/3"
    fraction: float | None = None      # of the current piece of work; None: no measure yet
    eta: float | None = None           # seconds left in the current piece of work

    def elapsed(self, now: float) -> float:
        if self.started is None:
            return 0.0
        return (self.ended or now) - self.started


def stage_views(events: Sequence[tuple[float, Any]], now: float) -> list[StageView]:
    """One view per stage (planned ones first, in plan order), from ``(time, event)`` pairs."""
    views: dict[str, StageView] = {}
    current: StageView | None = None
    work_start: dict[str, float] = {}
    last_done: dict[str, int] = {}
    eta_at: dict[str, float] = {}
    last_t = 0.0
    for t, ev in events:
        if isinstance(ev, StagePlan):
            for key, title in ev.stages:
                views.setdefault(key, StageView(key, title))
        elif isinstance(ev, StageProgress):
            v = views.setdefault(ev.stage, StageView(ev.stage, ev.title or ev.stage.replace("_", " ")))
            if ev.title:
                v.title = ev.title
            if ev.status == "start":
                v.status, v.started, v.ended, v.detail = "running", t, None, ev.detail or v.detail
                v.work, v.fraction, v.eta = "", None, None
                current = v
            else:  # done, or failed (a suspect that could not be verified)
                v.status = "failed" if ev.status == "failed" else "done"
                v.ended, v.detail = t, ev.detail or v.detail
                v.started = v.started if v.started is not None else t
                v.fraction, v.eta = 1.0, 0.0
                current = None if current is v else current
        elif current is not None and (isinstance(ev, WorkProgress) or hasattr(ev, "total_steps")):
            # a TrainProgress (forensics.engine, a higher layer) has total_steps
            finished = not isinstance(ev, WorkProgress) and ev.done
            if isinstance(ev, WorkProgress):
                label, done, total = ev.label, ev.done, ev.total
                current.work = f"{ev.label} ({done}/{total})"
            else:
                label, done, total = f"train:{ev.label}", ev.step, ev.total_steps
                current.work = (f"{ev.label}: " + ("reused from the store" if math.isnan(ev.loss) else "trained")
                                if finished else f"{ev.label}: epoch {ev.epoch}/{ev.epochs}, loss {ev.loss:.3f}")
            key = f"{current.key}/{label}"
            if key not in work_start or done < last_done.get(key, 0):  # new work, or the same label again
                work_start[key] = max(last_t, t if current.started is None else current.started)  # after the last event
            last_done[key] = done
            start = work_start[key]
            frac = 1.0 if finished else min(done / max(total, 1), 1.0)
            current.fraction = frac
            spent = t - start
            current.eta = 0.0 if frac >= 1 else (spent * (1 - frac) / frac if frac > 0 and spent > 0 else None)
            eta_at[current.key] = t
        last_t = t
    for v in views.values():  # the estimate counts down between events
        if v.status == "running" and v.eta is not None and v.key in eta_at:
            v.eta = max(v.eta - (now - eta_at[v.key]), 0.0)
    return list(views.values())


def overall_fraction(views: Sequence[StageView]) -> float:
    """Share of the planned stages done (a running stage counts its current fraction)."""
    if not views:
        return 0.0
    parts = [1.0 if v.status in ("done", "failed") else (v.fraction or 0.0) * 0.99 if v.status == "running" else 0.0
             for v in views]
    return sum(parts) / len(parts)


def format_seconds(s: float | None) -> str:
    if s is None:
        return "estimating…"
    s = int(round(s))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"
