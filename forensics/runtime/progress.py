"""Progress events of the pipeline, and what a viewer makes of them.

Events: :class:`StagePlan` (the stages a run will go through, sent first), :class:`StageProgress`
(a stage starts or ends), :class:`WorkProgress` (batches of work inside a stage: features, logits)
and the training loop's :class:`forensics.engine.recipe.TrainProgress` (steps inside a stage).
:func:`stage_views` turns a timed list of events into one :class:`StageView` per stage, with a
fraction done and an estimated time left, for any UI (the dashboard's build page, the other pages'
"running, N % done").  :func:`summarize` adds the whole run's share done, weighted by each stage's expected cost
(:class:`StagePlan` ``costs``) and never going back, and a time left measured from the run's recent speed: the
one source of the numbers every view shows.
"""
from __future__ import annotations

import bisect
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
    """The stages a run will go through, in order: ``(key, title)`` pairs.  ``costs``: each stage's expected cost
    in any one unit (e.g. training epochs over the data; a stage not named costs :data:`DEFAULT_COST`), so that the
    share done weighs a long training more than loading a file.  ``parts``: how many trainings a stage runs one after
    the other (a stage's share then counts the trainings finished, instead of restarting at 0 with each)."""

    stages: list[tuple[str, str]] = field(default_factory=list)
    costs: dict[str, float] = field(default_factory=dict)
    parts: dict[str, int] = field(default_factory=dict)


DEFAULT_COST = 1.0


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
    cost: float = DEFAULT_COST         # expected cost (StagePlan.costs)
    parts: int = 1                     # trainings it runs (StagePlan.parts)
    share: float = 0.0                 # of the whole stage done: never goes back while the stage runs
    trained: int = 0                   # trainings finished in this stage

    def elapsed(self, now: float) -> float:
        if self.started is None:
            return 0.0
        return (self.ended or now) - self.started


@dataclass
class Summary:
    """What a run's events say as a whole: one view per stage, the share done (weighted by the stages' expected
    costs) and the seconds left (None while there is no measure yet)."""

    views: list[StageView]
    fraction: float
    eta: float | None


SPEED_WINDOW = 120.0   # seconds of recent progress the time left is measured on
MIN_MEASURE = 0.02     # share done (and seconds, x 500) before a time left is given


def stage_views(events: Sequence[tuple[float, Any]], now: float) -> list[StageView]:
    """One view per stage (planned ones first, in plan order), from ``(time, event)`` pairs."""
    return summarize(events, now).views


def summarize(events: Sequence[tuple[float, Any]], now: float, *, started: float | None = None) -> Summary:
    """Stages, share done and time left from ``(time, event)`` pairs (``started``: when the run began, else the
    first event's time).  The share is the cost-weighted mean of the stages' shares; the time left divides what is
    left by the speed of the last :data:`SPEED_WINDOW` seconds, so it follows a machine that gets busier."""
    views: dict[str, StageView] = {}
    current: StageView | None = None
    work_start: dict[str, float] = {}
    last_done: dict[str, int] = {}
    eta_at: dict[str, float] = {}
    trained: dict[str, set[str]] = {}
    last_t = 0.0
    plan_costs: dict[str, float] = {}
    plan_parts: dict[str, int] = {}
    history: list[tuple[float, float]] = []   # (time, share done) after each event that moved it

    def share_of(v: StageView) -> float:
        if v.status in ("done", "failed"):
            return 1.0
        if v.status != "running":
            return 0.0
        if v.parts > 1:
            running = 0.0 if current is not v or v.fraction is None or v.fraction >= 1 else v.fraction
            return min((v.trained + running) / v.parts, 0.99)
        return min(max(v.share, v.fraction or 0.0), 0.99)

    def total() -> float:
        weight = sum(v.cost for v in views.values())
        return sum(v.cost * v.share for v in views.values()) / weight if weight > 0 else 0.0

    for t, ev in events:
        touched: StageView | None = None
        if isinstance(ev, StagePlan):
            plan_costs.update(ev.costs)
            plan_parts.update(ev.parts)
            for key, title in ev.stages:
                v = views.setdefault(key, StageView(key, title))
                v.cost, v.parts = max(plan_costs.get(key, DEFAULT_COST), 0.0), max(plan_parts.get(key, 1), 1)
        elif isinstance(ev, StageProgress):
            found = views.get(ev.stage)
            if found is not None:
                v = found
            else:
                v = views[ev.stage] = StageView(ev.stage, ev.title or ev.stage.replace("_", " "),
                                                cost=plan_costs.get(ev.stage, DEFAULT_COST),
                                                parts=max(plan_parts.get(ev.stage, 1), 1))
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
            touched = v
        elif current is not None and (isinstance(ev, WorkProgress) or hasattr(ev, "total_steps")):
            # a TrainProgress (forensics.engine, a higher layer) has total_steps
            finished = not isinstance(ev, WorkProgress) and ev.done
            if isinstance(ev, WorkProgress):
                label, done, total_ = ev.label, ev.done, ev.total
                current.work = f"{ev.label} ({done}/{total_})"
            else:
                label, done, total_ = f"train:{ev.label}", ev.step, ev.total_steps
                current.work = (f"{ev.label}: " + ("weights shipped with the package" if getattr(ev, "shipped", False)
                                                   else "reused from the store" if math.isnan(ev.loss) else "trained")
                                if finished else f"{ev.label}: epoch {ev.epoch}/{ev.epochs}, loss {ev.loss:.3f}")
                if finished:
                    trained.setdefault(current.key, set()).add(ev.label)
                    current.trained = len(trained[current.key])
            key = f"{current.key}/{label}"
            if key not in work_start or done < last_done.get(key, 0):  # new work, or the same label again
                work_start[key] = max(last_t, t if current.started is None else current.started)  # after the last event
            last_done[key] = done
            start = work_start[key]
            frac = 1.0 if finished else min(done / max(total_, 1), 1.0)
            if current.parts == 1 or not isinstance(ev, WorkProgress):  # a training stage's share counts trainings
                current.fraction = frac
            spent = t - start
            current.eta = 0.0 if frac >= 1 else (spent * (1 - frac) / frac if frac > 0 and spent > 0 else None)
            eta_at[current.key] = t
            touched = current
        if touched is not None:
            touched.share = max(touched.share, share_of(touched)) if touched.status == "running" else \
                share_of(touched)
            f = total()
            if not history or f > history[-1][1]:
                history.append((t, f))
            elif f < history[-1][1]:  # a stage the plan did not name: never shown as going back
                history.append((t, history[-1][1]))
        last_t = t
    for v in views.values():  # the estimate counts down between events
        if v.status == "running" and v.eta is not None and v.key in eta_at:
            v.eta = max(v.eta - (now - eta_at[v.key]), 0.0)
    fraction = history[-1][1] if history else 0.0
    begin = started if started is not None else (events[0][0] if events else now)
    return Summary(list(views.values()), fraction, time_left(history, now, begin))


def time_left(history: Sequence[tuple[float, float]], now: float, started: float) -> float | None:
    """Seconds left at the speed of the last :data:`SPEED_WINDOW` seconds (of the whole run while it is younger),
    from ``(time, share done)`` points; None before there is a measure (too little done, too little time)."""
    if not history:
        return None
    f = history[-1][1]
    if f >= 1.0:
        return 0.0
    elapsed = now - started
    if f < MIN_MEASURE or elapsed < MIN_MEASURE * 500:
        return None
    since = max(started, now - max(SPEED_WINDOW, 0.25 * elapsed))
    i = bisect.bisect_right([t for t, _ in history], since) - 1
    f0 = history[i][1] if i >= 0 else 0.0
    t0 = since
    speed = (f - f0) / max(now - t0, 1e-9)
    if speed <= 0:  # nothing moved in the window (one long step): the whole run's speed
        speed = f / max(elapsed, 1e-9)
    return (1.0 - f) / speed


def overall_fraction(views: Sequence[StageView]) -> float:
    """Share of the stages done, each weighted by its expected cost (a running stage counts its share so far)."""
    weight = sum(v.cost for v in views)
    if weight <= 0:
        return 0.0
    return sum(v.cost * (1.0 if v.status in ("done", "failed") else v.share if v.status == "running" else 0.0)
               for v in views) / weight


def format_seconds(s: float | None) -> str:
    if s is None:
        return "estimating…"
    s = int(round(s))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"
