"""An API audit end to end: the reduced demo's victim and an innocent model served behind a loopback HTTP API, audited
with ``holmes-forensics query`` (the sequential test): decided in few queries, resumable without asking anything
twice, its verdict replayed from the journal by ``reverify``."""
from __future__ import annotations

import json

import numpy as np
import pytest
from api_server import LoopbackApi, audit_model

from forensics.api.audit import api_audit, replay
from forensics.api.client import Budget, Endpoint
from forensics.cli.main import main
from forensics.protocols.sequential import sequential_design
from forensics.report.record import build_report

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def record(quick_demo, tmp_path_factory):
    path = tmp_path_factory.mktemp("api") / "audit.json"
    path.write_text(json.dumps(build_report(quick_demo.audit, [])))
    return path


def _suspect_logits(quick_demo, name: str) -> np.ndarray:
    a = quick_demo.audit
    s = next(s for s in quick_demo.suspects if s.suspect.name == name)
    return a.engine.logits(a.load_suspect(s.suspect.source), a.queries.images)


def test_the_victim_behind_an_api_is_decided_in_few_queries_and_resumes_without_asking_twice(quick_demo, record,
                                                                                           tmp_path, capsys,
                                                                                           monkeypatch):
    a = quick_demo.audit
    victim = a.engine.logits(a.victim, a.queries.images)
    design = sequential_design(a)
    key = "sk-holmes-test-0123456789"
    monkeypatch.setenv("THEIR_KEY", key)
    with LoopbackApi(list(a.private.classes), model=audit_model(a, victim), jitter_s=0.01, api_key=key) as api:
        api.fault("429", requests=(3,)).fault("500", requests=(5,)).fault("drop", requests=(8,))
        journal = tmp_path / "victim.jsonl"
        args = ["query", "--record", str(record), "--endpoint", api.url("/probabilities"), "--name", "their API",
                "--journal", str(journal), "--store", str(a.engine.store.root), "--batch", "5", "--retries", "3",
                "--json", str(tmp_path / "out.json"), "--html", str(tmp_path / "out.html"),
                "--api-key-env", "THEIR_KEY"]
        # a budget of 6 queries stops it first: every paid answer is kept
        assert main([*args, "--max-queries", "6"]) == 0
        out = capsys.readouterr().out
        assert "budget is spent" in out
        assert sum(api.asked.values()) - 3 == 6  # three faults, then six paid answers
        assert len(journal.read_text().splitlines()) == 1 + 6
        # the same command with a larger budget resumes: nothing is asked twice, and the evidence decides early
        assert main([*args, "--max-queries", "200"]) == 0
        out = capsys.readouterr().out
        assert "evidence of derivation" in out
        assert all(len(payloads) <= 1 for payloads in api.delivered.values())  # each image answered once
        assert sum(api.asked.values()) == sum(len(p) for p in api.delivered.values()) + 3  # + the three faults
    for written in ("out.json", "out.html", "victim.jsonl"):  # the key was sent, and is written nowhere
        assert key not in (tmp_path / written).read_text(), written
    assert "sequential test" in (tmp_path / "out.html").read_text()
    rec = json.loads((tmp_path / "out.json").read_text())
    (s,) = rec["suspects"]
    ev = s["evidence"]["sequential"]
    assert s["verdict"] == "stolen" and s["protocol"] == "sequential" and ev["decision"] == "evidence"
    assert ev["queries"] <= 60 and ev["queries"] < len(design.positions) / 4
    assert s["p_value"] <= a.config.alpha and ev["stopped"] == "evidence"
    assert ev["decided_at"] <= ev["queries"] <= ev["decided_at"] + 2 * 5  # the round in which it decided
    assert len(ev["answers_raw"]) == ev["queries"] and all('"probabilities"' in x["raw"] for x in ev["answers_raw"])
    # the record's answers let anyone replay the verdict without the API
    again = replay(a, journal, name="their API")
    assert again.verdict.p_value == s["p_value"] and again.stopped == "evidence"
    # reverify reads the journal, asks nothing, and reproduces the p-value
    assert main(["reverify", str(tmp_path / "out.json"), "--store", str(a.engine.store.root)]) == 0
    assert "all p-values reproduced" in capsys.readouterr().out


def test_an_innocent_behind_a_label_only_api_is_not_accused(quick_demo, tmp_path):
    a = quick_demo.audit
    innocent = _suspect_logits(quick_demo, "innocent (same recipe)")
    with LoopbackApi(list(a.private.classes), model=audit_model(a, innocent)) as api:
        result = api_audit(a, Endpoint(api.url("/label"), fmt="label", backoff_s=0.01), tmp_path / "j.jsonl",
                           name="innocent", budget=Budget(400, None), batch_pairs=10)
        assert max(api.asked.values()) == 1
    assert result.label_only and not result.verdict.stolen
    assert result.stopped in ("futility", "budget", "plan")
    assert result.verdict.p_value > a.config.alpha
    assert result.paid <= 400


def test_the_sequential_protocol_on_exact_nulls_of_the_demo_audit(quick_demo):
    """The registered protocol, through the code path of a verdict, on 2,000 exact nulls of the reduced demo (its
    held-out pool split at random into pseudo-members and pseudo-controls), the victim's own answers as logits and
    as labels, each stopped at its first crossing: P(p <= alpha) <= alpha (99.9 % binomial bound)."""
    from forensics.protocols import exact_null_pvalues

    a = quick_demo.audit
    victim = a.engine.logits(a.victim, a.queries.images)
    p = exact_null_pvalues(a, [victim, victim.argmax(1)], protocol="sequential", draws=1000, seed=5)
    assert p.shape == (2, 1000)
    assert np.mean(p <= a.config.alpha) <= 0.0173
    assert np.mean(p <= 0.05) <= 0.0655  # and at 0.05 (its 99.9 % bound for 2,000 runs)
