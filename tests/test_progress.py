"""forensics.runtime.progress: what a viewer makes of a run's events (stages, fractions, time left)."""
from __future__ import annotations

from forensics.engine.recipe import TrainProgress
from forensics.runtime.progress import (
    StagePlan,
    StageProgress,
    WorkProgress,
    format_seconds,
    overall_fraction,
    stage_views,
)


def test_planned_stages_show_from_the_first_event_and_the_running_one_has_a_time_left():
    events = [(0.0, StagePlan([("data", "Loading the data"), ("victim", "Training the victim"), ("x", "Last")])),
              (0.0, StageProgress("data", "start")), (1.0, StageProgress("data", "done", "600 images")),
              (1.0, StageProgress("victim", "start")),
              (3.0, TrainProgress("victim", 1, 2, 10, 40, 0.9, 0.5)),
              (5.0, TrainProgress("victim", 1, 2, 20, 40, 0.8, 0.6))]
    views = stage_views(events, now=5.0)
    assert [(v.key, v.status) for v in views] == [("data", "done"), ("victim", "running"), ("x", "pending")]
    running = views[1]
    assert running.fraction == 0.5 and "epoch 1/2" in running.work
    assert running.eta == 4.0  # 4 s for the first half, as much again for the second
    assert stage_views(events, now=6.5)[1].eta == 2.5  # it counts down between events
    assert overall_fraction(views) == (1 + 0.5 * 0.99 + 0) / 3


def test_a_label_seen_again_in_a_stage_starts_a_new_estimate():
    events = [(0.0, StageProgress("cards", "start")),
              (1.0, WorkProgress("outputs on 100 images", 1, 2)), (2.0, WorkProgress("outputs on 100 images", 2, 2)),
              (10.0, WorkProgress("outputs on 100 images", 1, 4))]  # a second model, same label
    v = stage_views(events, now=10.0)[0]
    assert v.fraction == 0.25 and v.eta == 24.0  # from 2 s (the previous event), not from the first pass


def test_a_suspect_that_failed_is_not_shown_as_done_and_counts_as_finished():
    events = [(0.0, StagePlan([("suspect:a", "Suspect a"), ("suspect:b", "Suspect b")])),
              (0.0, StageProgress("suspect:a", "start")), (1.0, StageProgress("suspect:a", "failed", "no such file")),
              (1.0, StageProgress("suspect:b", "start")), (2.0, StageProgress("suspect:b", "done", "p = 0.3"))]
    views = stage_views(events, now=2.0)
    assert [v.status for v in views] == ["failed", "done"] and views[0].detail == "no such file"
    assert overall_fraction(views) == 1.0


def test_reused_training_is_said_so_and_seconds_read_well():
    events = [(0.0, StageProgress("benign_shadow", "start")),
              (0.1, TrainProgress("benign shadow", 3, 3, 1, 1, float("nan"), float("nan"), True))]
    v = stage_views(events, now=0.1)[0]
    assert v.work == "benign shadow: reused from the store" and v.fraction == 1.0 and v.eta == 0.0
    assert [format_seconds(s) for s in (None, 4.4, 75, 3725)] == ["estimating…", "4 s", "1 min 15 s", "1 h 02 min"]
