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
