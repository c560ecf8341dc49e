"""Fan-out with Ray on a local Ray (2 CPUs): a scan's verdicts equal the in-process ones, failures are rows, a re-run
reuses what is done; the bench builds its zoo on Ray workers; two processes racing on one store entry write it once."""
from __future__ import annotations

import json
import os
import shutil
import sys
import time

import numpy as np
import pytest

ray = pytest.importorskip("ray", reason="the Ray fan-out needs Ray: pip install -e '.[scale]'")

from forensics.cli.main import main  # noqa: E402
from forensics.report.record import build_report  # noqa: E402
from forensics.runtime.fanout import ray_map  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    # the helpers below travel by value: the workers cannot import this test module
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield
    ray.shutdown()


def _suspect_list(audit, tmp_path):
    """Two demo suspects, the victim's answers, two fp16 re-saves (new weights: their outputs are computed by the
    workers, not read from the store), and two that cannot load."""
    from safetensors.torch import save_file

    answers = tmp_path / "api.npy"
    np.save(answers, audit.engine.logits(audit.victim, audit.queries.images))
    (tmp_path / "broken.safetensors").write_bytes(b"not weights")
    copies = []
    for key in ("direct_copy", "innocent"):
        state = audit.load_suspect(f"demo:{key}").model.state_dict()
        copies.append(tmp_path / f"reupload-{key}.safetensors")
        save_file({k: v.half().float().contiguous() for k, v in state.items()}, str(copies[-1]))
    suspects = tmp_path / "suspects.txt"
    suspects.write_text(f"demo:direct_copy\ndemo:innocent\n{answers}\n{copies[0]}\n{copies[1]}\n"
                        f"local-dir:{tmp_path / 'nowhere'}\n{tmp_path / 'broken.safetensors'}\n")
    return suspects, answers, copies


def _cached(root):
    return {p for stage in ("logits", "activations") if (root / stage).is_dir() for p in (root / stage).iterdir()}


def test_a_scan_on_ray_gives_the_in_process_verdicts(local_ray, quick_demo, store_root, tmp_path, capsys):
    audit = quick_demo.audit
    record = tmp_path / "audit.json"
    record.write_text(json.dumps(build_report(audit, [])))
    suspects, answers, copies = _suspect_list(audit, tmp_path)
    before = _cached(store_root)
    out = tmp_path / "scan.jsonl"
    rc = main(["scan", "--record", str(record), "--suspects", str(suspects), "--out", str(out), "--store",
               str(store_root), "--quiet", "--ray", "auto", "--workers", "2"])
    assert rc == 2  # two could not be loaded
    rows = {r["suspect"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert len(rows) == 7
    assert _cached(store_root) - before  # the workers computed the re-saves' outputs ...
    for p in _cached(store_root) - before:  # ... which are removed, so that this process computes them again
        shutil.rmtree(p)
    for source in ("demo:direct_copy", "demo:innocent", str(answers), *map(str, copies)):
        assert rows[source]["status"] == "verified"
        assert rows[source]["p_value"] == audit.verify(source, name=source).p_value  # bit for bit
    assert rows["demo:direct_copy"]["verdict"] == rows[str(copies[0])]["verdict"] == "stolen"
    assert rows["demo:innocent"]["verdict"] == rows[str(copies[1])]["verdict"] == "not stolen"
    assert "no such folder" in rows[f"local-dir:{tmp_path / 'nowhere'}"]["error"]
    assert rows[str(tmp_path / "broken.safetensors")]["status"] == "failed"
    # the same list in process gives the same rows; a re-run on Ray reuses the verified ones
    in_process = tmp_path / "in-process.jsonl"
    main(["scan", "--record", str(record), "--suspects", str(suspects), "--out", str(in_process), "--store",
          str(store_root), "--quiet"])
    local = {r["suspect"]: r for r in map(json.loads, in_process.read_text().splitlines())}
    assert {s: (r["status"], r["p_value"], r["verdict"]) for s, r in local.items()} == \
        {s: (r["status"], r["p_value"], r["verdict"]) for s, r in rows.items()}
    capsys.readouterr()
    main(["scan", "--record", str(record), "--suspects", str(suspects), "--out", str(out), "--store", str(store_root),
          "--quiet", "--ray", "auto"])
    assert "0 verified, 5 reused" in capsys.readouterr().out


def test_a_worker_that_would_compute_another_audit_refuses(quick_demo, store_root):
    from forensics.cases.scan import verify_in_worker
    from forensics.errors import ConfigError

    audit = quick_demo.audit
    with pytest.raises(ConfigError, match="computes in fp32 on cpu, but the audit was built in bf16"):
        verify_in_worker(audit.spec.to_dict(), str(store_root), "demo:innocent", audit.queries.fingerprint, "bf16")
    with pytest.raises(ConfigError, match="not the record's"):
        verify_in_worker(audit.spec.to_dict(), str(store_root), "demo:innocent", "another query set", "fp32")


def _variable(name: str) -> str | None:
    return os.environ.get(name)


def test_workers_get_this_process_settings(local_ray, monkeypatch):
    monkeypatch.setenv("FORENSICS_CPU_THREADS", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    got = {o.item: o.value for o in ray_map(_variable, ["FORENSICS_CPU_THREADS", "HF_HUB_OFFLINE"],
                                            lambda name: (name,), address=None)}
    assert got == {"FORENSICS_CPU_THREADS": "1", "HF_HUB_OFFLINE": "1"}


def test_scan_options_are_checked_before_any_work(tmp_path):
    from forensics.cli.main import build_parser
    from forensics.cli.scan import cmd_scan
    from forensics.errors import ConfigError

    args = ["scan", "--record", str(tmp_path / "missing.json"), "--suspects", str(tmp_path / "missing.txt")]
    with pytest.raises(ConfigError, match="needs --ray"):
        cmd_scan(build_parser().parse_args([*args, "--workers", "2"]))
    with pytest.raises(ConfigError, match="give at least 1"):
        cmd_scan(build_parser().parse_args([*args, "--workers", "0", "--ray", "local"]))


def test_the_bench_builds_its_zoo_on_ray_workers(local_ray, quick_demo, store_root, tmp_path, capsys):
    entries = ["direct-copy", "innocent-other-seed"]
    args = ["bench", "--small", "--no-baselines", "--store", str(store_root), "--attacks", *entries]
    assert main([*args, "--out", str(tmp_path / "ray"), "--ray", "auto", "--workers", "2"]) == 0
    printed = capsys.readouterr().out
    assert printed.count("on a Ray worker") == 2 and "FAILED" not in printed
    assert main([*args, "--out", str(tmp_path / "here"), "--quiet"]) == 0
    p = {k: {s["name"]: s["p_values"] for s in json.loads((tmp_path / k / "bench.json").read_text())["suspects"]}
         for k in ("ray", "here")}
    assert p["ray"] == p["here"]
    assert p["ray"]["direct copy"]["membership"] < 0.01 < p["ray"]["innocent, other seed"]["membership"]


def _race(root: str, meeting: str) -> dict:
    """One process's attempt at the entry both want; both go the moment the second one arrives."""
    from pathlib import Path

    from forensics.runtime.store import ArtifactStore

    (Path(meeting) / str(os.getpid())).touch()
    while len(list(Path(meeting).iterdir())) < 2:
        time.sleep(0.01)
    store = ArtifactStore(root)

    def compute(tmp):
        time.sleep(1.0)  # long enough for the other process to arrive while this one writes
        (tmp / "who.txt").write_text(str(os.getpid()))

    entry = store.fetch("race", {"x": 1}, {"in": "same"}, compute)
    return {"pid": os.getpid(), "computed": entry.computed, "path": str(entry.path),
            "who": (entry.path / "who.txt").read_text()}


def test_two_processes_racing_on_one_entry_write_it_once(local_ray, tmp_path):
    root, meeting = tmp_path / "store", tmp_path / "meeting"
    meeting.mkdir()
    results = []
    for o in ray_map(_race, [0, 1], lambda _: (str(root), str(meeting)), address=None, workers=2):
        assert o.error is None, o.error
        results.append(o.value)
    assert len({r["pid"] for r in results}) == 2  # two processes
    assert sorted(r["computed"] for r in results) == [False, True]  # one computed, the other read it
    assert len({r["path"] for r in results}) == 1 and len({r["who"] for r in results}) == 1
    entries = list((root / "race").iterdir())
    assert len(entries) == 1 and not [p for p in entries if p.name.startswith(".tmp")]
