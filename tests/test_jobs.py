"""forensics.runtime.jobs: background work whose progress any viewer can poll; failures are recorded, not raised."""
from __future__ import annotations

from forensics.errors import ConfigError
from forensics.runtime.jobs import MAX_FINISHED, get_job, start_job


def test_a_job_runs_reports_progress_and_keeps_its_result():
    def work(n, progress):
        for i in range(n):
            progress(i)
        return n * 2

    job = start_job("work", work, 3).wait(10)
    assert job.status == "done" and job.result == 6 and job.snapshot() == [0, 1, 2] and not job.running
    assert get_job(job.id) is job and get_job(None) is None


def test_failures_are_recorded_in_one_readable_line():
    def bad_input(progress):
        raise ConfigError("gamma must be in (0, 0.5); got 2")

    def bug(progress):
        raise KeyError("oops")

    a = start_job("a", bad_input).wait(10)
    b = start_job("b", bug).wait(10)
    assert (a.status, a.error, a.detail) == ("failed", "gamma must be in (0, 0.5); got 2", None)
    assert b.status == "failed" and b.error.startswith("unexpected error: KeyError") and "Traceback" in b.detail


def test_finished_jobs_are_bounded():
    jobs = [start_job(f"j{i}", lambda progress: None).wait(10) for i in range(MAX_FINISHED + 5)]
    start_job("one more", lambda progress: None).wait(10)
    assert get_job(jobs[0].id) is None and get_job(jobs[-1].id) is jobs[-1]


def test_every_training_of_a_job_keeps_its_curve_after_the_job_ends():
    from forensics.engine.recipe import TrainProgress

    def work(progress):
        for label, losses in (("poisoned shadow", [2.0, 1.0, 0.5]), ("benign shadow", [3.0, 2.0]),
                              ("poisoned shadow", [1.5, 0.7])):  # the same label again: another run
            for step, loss in enumerate(losses, 1):
                progress(TrainProgress(label, 1, 1, step, len(losses), loss, 0.5))
            progress(TrainProgress(label, 1, 1, len(losses), len(losses), loss, 0.5, True))
        progress(TrainProgress("reused", 1, 1, 1, 1, float("nan"), float("nan"), True))  # from the store: no curve
        return None

    job = start_job("curves", work).wait(10)
    curves = job.curves()
    assert sorted(curves) == ["benign shadow", "poisoned shadow", "poisoned shadow (2)"]
    assert curves["poisoned shadow"][:, 1].tolist() == [2.0, 1.0, 0.5]
    assert curves["poisoned shadow (2)"].tolist() == [[1.0, 1.5], [2.0, 0.7]]
    assert curves["benign shadow"][:, 1].tolist() == [3.0, 2.0]


def test_a_builds_log_is_kept_with_its_audit_and_read_back_after_a_restart(tmp_path):
    """The log of a build (its stages, and the curve of every model it trained, thinned) is written when the job ends
    and read back as a finished job with the same stages and curves: a server restart loses neither.  A log file is
    read as hostile: another type, an unknown event, a wrong field type or an oversized file is no log."""
    import json

    import numpy as np

    from forensics.cases import casefile, joblog
    from forensics.engine.recipe import TrainProgress
    from forensics.runtime.progress import StagePlan, StageProgress, WorkProgress
    from forensics.runtime.store import ArtifactStore

    store, case_id = ArtifactStore(tmp_path), "0123456789ab"

    def build(progress):
        progress(StagePlan([("victim", "Victim"), ("shadow", "Poisoned <b>shadow</b>")], costs={"shadow": 3.0}))
        for stage, label, steps in (("victim", "victim", 1), ("shadow", "poisoned shadow", 1000)):
            progress(StageProgress(stage, "start"))
            for step in range(1, steps + 1):
                progress(WorkProgress("batches", step, steps))
                progress(TrainProgress(label, 1, 1, step, steps, 2.0 / step if steps > 1 else float("nan"), 0.5))
            progress(TrainProgress(label, 1, 1, steps, steps, float("nan"), float("nan"), True))
            progress(StageProgress(stage, "done", f"{label} ready"))

    job = start_job("audit", build, on_end=lambda j: joblog.save_job_log(store, case_id, j)).wait(10)
    path = casefile.log_path(store, case_id)
    assert path.is_file() and path.stat().st_size < 100_000  # 1,000 steps kept as at most 300 points
    back = joblog.load_job_log(store, case_id)
    assert back is not None and back.status == "done" and not back.running
    assert back.seconds == job.seconds
    assert [(v.key, v.status, v.detail) for v in back.stages()] == [(v.key, v.status, v.detail) for v in job.stages()]
    assert [v.title for v in back.stages()] == ["Victim", "Poisoned <b>shadow</b>"]  # text kept as text
    curve, full = back.curves()["poisoned shadow"], job.curves(max_points=10_000)["poisoned shadow"]
    assert 250 <= len(curve) <= 301 and curve[-1].tolist() == [1000.0, 0.002] and curve[0].tolist() == [1.0, 2.0]
    np.testing.assert_array_equal(curve[:, 1], full[curve[:, 0].astype(int) - 1, 1])  # points of the real curve
    assert "victim" not in back.curves()  # a run with no loss has no curve, as before the restart

    good = json.loads(path.read_text())
    for bad in ({**good, "format": "other/1"}, {**good, "status": "running"},
                {**good, "events": [{"t": 1.0, "type": "Exploit", "cmd": "rm -rf /"}]},
                {**good, "events": [{"t": 1.0, "type": "TrainProgress", "label": "x", "step": "1"}]},
                {**good, "events": [{"t": 1.0, "type": "StageProgress", "stage": ["a"], "status": "done"}]},
                {**good, "events": [{"type": "StageProgress", "stage": "a", "status": "done"}]}):
        path.write_text(json.dumps(bad))
        assert joblog.load_job_log(store, case_id) is None
    path.write_text(json.dumps({**good, "name": "[a link](https://example.org)"}))
    assert joblog.load_job_log(store, case_id).name == "audit"  # a job's name is one of ours, never the file's
    path.write_text(json.dumps(good) + " " * joblog.MAX_BYTES)
    assert joblog.load_job_log(store, case_id) is None
    path.write_text(json.dumps(good))
    assert casefile.forget_case(store, case_id) is False and not path.exists()  # forgetting the audit drops its log
