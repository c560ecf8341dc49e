"""forensics.runtime.store: computed once, reused, atomic, locked across threads and processes."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import ROOT

from forensics.runtime.store import ArtifactStore, artifact_key, fingerprint_array


def _writer(log: Path, value: str, sleep: float = 0.0):
    def compute(tmp: Path):
        with open(log, "a") as f:
            f.write(f"{value}\n")
        time.sleep(sleep)
        (tmp / "value.txt").write_text(value)
        return {"value": value}
    return compute


def test_get_or_compute_computes_once_and_reuses(tmp_path):
    store = ArtifactStore(tmp_path / "store")
    log = tmp_path / "log.txt"
    p1 = store.get_or_compute("stage", {"a": 1}, {"x": "f1"}, _writer(log, "one"))
    p2 = store.get_or_compute("stage", {"a": 1}, {"x": "f1"}, _writer(log, "two"))
    assert p1 == p2 and (p1 / "value.txt").read_text() == "one"
    assert log.read_text() == "one\n"
    assert store.stats.computed == {"stage": 1} and store.stats.hits == {"stage": 1}
    key = artifact_key("stage", {"a": 1}, {"x": "f1"})
    assert p1 == store.path("stage", key) and store.has("stage", key)
    meta = store.meta("stage", key)
    assert meta["value"] == "one" and meta["inputs"] == {"x": "f1"} and meta["config"] == {"a": 1}
    # another store object on the same root (another session) finds it too
    other = ArtifactStore(tmp_path / "store")
    assert other.get_or_compute("stage", {"a": 1}, {"x": "f1"}, _writer(log, "three")) == p1
    assert other.stats.hits == {"stage": 1} and not other.stats.computed
    assert log.read_text() == "one\n"


def test_failed_compute_leaves_no_entry_and_no_temp_folder(tmp_path):
    store = ArtifactStore(tmp_path / "store")
    log = tmp_path / "log.txt"

    def boom(tmp: Path):
        (tmp / "partial.npy").write_bytes(b"half")
        raise RuntimeError("compute failed")

    with pytest.raises(RuntimeError, match="compute failed"):
        store.get_or_compute("stage", {}, {"x": "f"}, boom)
    key = artifact_key("stage", {}, {"x": "f"})
    assert not store.has("stage", key) and not store.path("stage", key).exists()
    assert list((tmp_path / "store" / "stage").iterdir()) == []  # no .tmp-* left behind
    assert not store.stats.computed and not store.stats.hits

    path = store.get_or_compute("stage", {}, {"x": "f"}, _writer(log, "ok"))
    assert (path / "value.txt").read_text() == "ok" and store.stats.computed == {"stage": 1}
    assert sorted(p.name for p in (tmp_path / "store" / "stage").iterdir()) == [key]


def test_interrupt_during_compute_also_cleans_up(tmp_path):
    store = ArtifactStore(tmp_path)

    def interrupted(tmp: Path):
        (tmp / "x").write_text("x")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        store.get_or_compute("stage", {}, {}, interrupted)
    assert list((tmp_path / "stage").iterdir()) == []


def test_two_threads_compute_once(tmp_path):
    log = tmp_path / "log.txt"
    barrier = threading.Barrier(2)
    stores = [ArtifactStore(tmp_path / "store") for _ in range(2)]
    paths, errors = [None, None], []

    def run(i):
        try:
            barrier.wait()
            paths[i] = stores[i].get_or_compute("stage", {"c": 1}, {"x": "f"}, _writer(log, f"t{i}", sleep=0.3))
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    assert len(log.read_text().splitlines()) == 1
    assert paths[0] == paths[1] and (paths[0] / "value.txt").read_text() == log.read_text().strip()
    assert [dict(s.stats.computed + s.stats.hits) for s in stores] == [{"stage": 1}, {"stage": 1}]
    assert sum(s.stats.computed["stage"] for s in stores) == 1


_PROCESS_SCRIPT = r"""
import sys, time
from pathlib import Path
from forensics.runtime.store import ArtifactStore
root, log, start_at, name = sys.argv[1], Path(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
store = ArtifactStore(root)
def compute(tmp):
    with open(log, "a") as f:
        f.write(name + "\n")
    time.sleep(0.5)
    (tmp / "value.txt").write_text(name)
time.sleep(max(0.0, start_at - time.time()))
path = store.get_or_compute("stage", {"c": 2}, {"x": "f"}, compute)
print("computed" if store.stats.computed else "hit", (path / "value.txt").read_text())
"""


@pytest.mark.slow  # starts Python processes
def test_two_processes_compute_once(tmp_path):
    log = tmp_path / "log.txt"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    start_at = time.time() + 2.0  # both are past their imports by then
    procs = [subprocess.Popen([sys.executable, "-c", _PROCESS_SCRIPT, str(tmp_path / "store"), str(log),
                               str(start_at), f"p{i}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=env, cwd=ROOT) for i in range(2)]
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        outs.append(out.split())
    lines = log.read_text().splitlines()
    assert len(lines) == 1
    assert sorted(o[0] for o in outs) == ["computed", "hit"]
    assert {o[1] for o in outs} == {lines[0]}  # the waiting process read the finished entry


def test_artifact_key_changes_with_config_and_inputs():
    base = artifact_key("logits", {"size": 32, "trigger": None}, {"model": "m1", "images": "i1"})
    assert base == artifact_key("logits", {"trigger": None, "size": 32}, {"images": "i1", "model": "m1"})
    assert base != artifact_key("logits", {"size": 64, "trigger": None}, {"model": "m1", "images": "i1"})
    assert base != artifact_key("logits", {"size": 32, "trigger": {"size": 0.1}}, {"model": "m1", "images": "i1"})
    assert base != artifact_key("logits", {"size": 32, "trigger": None}, {"model": "m2", "images": "i1"})
    assert base != artifact_key("logits", {"size": 32, "trigger": None}, {"model": "m1", "images": "i2"})
    assert base != artifact_key("activations", {"size": 32, "trigger": None}, {"model": "m1", "images": "i1"})


def test_fetch_says_whether_this_call_computed(tmp_path):
    store = ArtifactStore(tmp_path)
    log = tmp_path / "log.txt"
    first = store.fetch("stage", {"a": 1}, {}, _writer(log, "one"))
    second = store.fetch("stage", {"a": 1}, {}, _writer(log, "two"))
    assert first.computed and not second.computed and first.path == second.path


def test_stats_are_bounded_counters(tmp_path):
    store = ArtifactStore(tmp_path)
    for _ in range(1000):
        store.get_or_compute("stage", {"a": 1}, {}, _writer(tmp_path / "log.txt", "x"))
    assert store.stats.hits == {"stage": 999} and store.stats.computed == {"stage": 1}


def test_fingerprint_array_sees_dtype_shape_and_values():
    a = np.arange(6, dtype=np.int64)
    assert fingerprint_array(a) == fingerprint_array(a.copy())
    assert fingerprint_array(a) != fingerprint_array(a.astype(np.int32))
    assert fingerprint_array(a) != fingerprint_array(a.reshape(2, 3))
    b = a.copy()
    b[3] += 1
    assert fingerprint_array(a) != fingerprint_array(b)


def test_default_root_comes_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("FORENSICS_STORE", str(tmp_path / "from-env"))
    assert ArtifactStore().root == tmp_path / "from-env" and (tmp_path / "from-env").is_dir()
