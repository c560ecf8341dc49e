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
    summarize,
    time_left,
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
    assert overall_fraction(views) == (1 + 0.5 + 0) / 3


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


def train(label, step, total, done=False, t=None):
    return TrainProgress(label, 1, 1, step, total, 0.5, 0.5, done)


def test_the_share_done_weighs_stages_by_their_expected_cost():
    plan = StagePlan([("load", "Load"), ("train", "Train")], costs={"load": 1.0, "train": 9.0})
    events = [(0.0, plan), (0.0, StageProgress("load", "start")), (1.0, StageProgress("load", "done")),
              (1.0, StageProgress("train", "start")), (2.0, train("m", 5, 10))]
    s = summarize(events, now=2.0)
    assert s.fraction == (1.0 + 9.0 * 0.5) / 10.0  # not (1 + 0.5) / 2: loading a file is not half the run
    assert overall_fraction(s.views) == s.fraction


def test_a_stage_of_several_trainings_counts_them_and_never_goes_back():
    plan = StagePlan([("refs", "References")], parts={"refs": 4})
    events = [(0.0, plan), (0.0, StageProgress("refs", "start"))]
    seen = []
    t = 0.0
    for m in "abcd":
        for step in (5, 10):
            t += 1.0
            events.append((t, train(m, step, 10, done=step == 10)))
            seen.append(summarize(events, now=t).fraction)
        t += 0.1
        events.append((t, WorkProgress("features", 1, 1)))  # a pass between trainings does not reset the share
        seen.append(summarize(events, now=t).fraction)
    assert seen == sorted(seen), seen  # monotone, although each training starts again at step 0
    assert seen[0] == 0.125 and seen[1] == 0.25 and seen[-1] == 0.99  # a running stage is never shown as done
    events.append((t + 1, StageProgress("refs", "done")))
    assert summarize(events, now=t + 1).fraction == 1.0


def test_a_stage_the_plan_did_not_name_never_shows_the_share_going_back():
    events = [(0.0, StagePlan([("a", "A")])), (0.0, StageProgress("a", "start")), (1.0, StageProgress("a", "done")),
              (2.0, StageProgress("extra", "start"))]
    assert summarize(events, now=2.0).fraction == summarize(events[:3], now=1.0).fraction


def test_the_time_left_follows_the_recent_speed():
    # 40 % in the first 200 s, then the machine gets busy: 10 % in the next 200 s
    history = [(float(t), 0.002 * t) for t in range(0, 201, 10)]
    history += [(200.0 + t, 0.4 + 0.0005 * t) for t in range(10, 201, 10)]
    left = time_left(history, now=400.0, started=0.0)
    assert left is not None and abs(left - 0.5 / 0.0005) < 1.0  # 1,000 s at today's speed, not 600 s at the average
    assert time_left([(0.0, 0.0), (5.0, 0.01)], now=5.0, started=0.0) is None  # 1 % in 5 s: no measure yet
    assert time_left([(0.0, 0.3), (50.0, 1.0)], now=50.0, started=0.0) == 0.0
