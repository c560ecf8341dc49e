"""Fan-out with Ray on a local Ray (2 CPUs): a scan's verdicts equal the in-process ones, failures are rows, a re-run
reuses what is done; the bench builds its zoo on Ray workers; two processes racing on one store entry write it once."""
from __future__ import annotations

import json
import os
import sys
import time

import numpy as np
import pytest
import ray

from forensics.cli import main
from forensics.fanout import ray_map
from forensics.report import build_report

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    # the helpers below travel by value: the workers cannot import this test module
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield
    ray.shutdown()


def _suspect_list(audit, tmp_path):
    answers = tmp_path / "api.npy"
    np.save(answers, audit.engine.logits(audit.victim, audit.queries.images))
    (tmp_path / "broken.safetensors").write_bytes(b"not weights")
    suspects = tmp_path / "suspects.txt"
    suspects.write_text(f"demo:direct_copy\ndemo:innocent\n{answers}\nlocal-dir:{tmp_path / 'nowhere'}\n"
                        f"{tmp_path / 'broken.safetensors'}\n")
    return suspects, answers


def test_a_scan_on_ray_gives_the_in_process_verdicts(local_ray, quick_demo, store_root, tmp_path, capsys):
    audit = quick_demo.audit
    record = tmp_path / "audit.json"
    record.write_text(json.dumps(build_report(audit, [])))
    suspects, answers = _suspect_list(audit, tmp_path)
    out = tmp_path / "scan.jsonl"
    rc = main(["scan", "--record", str(record), "--suspects", str(suspects), "--out", str(out), "--store",
               str(store_root), "--quiet", "--ray", "auto", "--workers", "2"])
    assert rc == 2  # two could not be loaded
    rows = {r["suspect"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert len(rows) == 5
    for source in ("demo:direct_copy", "demo:innocent", str(answers)):
        assert rows[source]["status"] == "verified"
        assert rows[source]["p_value"] == audit.verify(source, name=source).p_value  # bit for bit
    assert rows["demo:direct_copy"]["verdict"] == "stolen" and rows["demo:innocent"]["verdict"] == "not stolen"
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
    assert "0 verified, 3 reused" in capsys.readouterr().out


def test_the_bench_builds_its_zoo_on_ray_workers(local_ray, quick_demo, store_root, tmp_path, capsys):
    entries = ["direct copy", "innocent, other seed"]
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

    from forensics.store import ArtifactStore

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
