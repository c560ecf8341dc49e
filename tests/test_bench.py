"""forensics.zoo (bench, summary, stress) and the `bench` / `stress` commands: summaries, budgets, outputs, the
thief's data."""
from __future__ import annotations

import json

import numpy as np
import pytest

from forensics.audit.verdict import Verdict
from forensics.cli.main import main
from forensics.errors import ConfigError, DataSourceError
from forensics.zoo.bench import BenchResult, budget_view
from forensics.zoo.entries import ZooEntry, ZooResult, get_zoo_entry
from forensics.zoo.stress import check_disjoint, stress_rows
from forensics.zoo.summary import markdown, summarize


def _result(name, group, attack, p_membership, p_fp, agreement=0.9, seed=0, accuracy=0.85, survives=None):
    ev = {"membership": {"p_value": p_membership, "members": 50, "controls": 50},
          "fingerprint": {"p_value": p_fp, "m": 100}}
    v = Verdict(name, "membership", p_membership, None, p_membership < 0.01, 0.01, 100, seed, ev)
    entry = ZooEntry(name, name, group, attack)
    survives = survives or ("nothing" if entry.kind == "innocent" else "weights")
    return ZooResult(entry, seed, v, agreement, accuracy, 1.0, survives, 0.9, {"attack": 1.0})


def _bench():
    rs = [_result("copy", "copy", "direct_copy", 1e-20, 1e-9),
          _result("ft", "fine-tune", "fine_tune", 1e-4, 0.3),
          # agreement below an innocent's does not drop a useful theft
          _result("ft2", "fine-tune", "fine_tune", 0.2, 0.02, agreement=0.6),
          _result("failed", "fine-tune", "fine_tune", 1e-5, 0.5, accuracy=0.5),  # not useful: reported, not counted
          _result("retrain", "partial re-training", "retrain_tail", 0.004, 0.3, survives="nothing"),  # a control
          _result("inn1", "innocent", "innocent", 0.5, 0.004),
          _result("inn2", "innocent", "innocent", 0.03, 0.6)]
    curves = [{"membership": {100: 1e-3}}, {"membership": {100: 0.5}}, {"membership": {100: 0.6}}, {}, {}, {}, {}]
    return BenchResult(rs, curves, {"membership": 100 + 100, "fingerprint": 100}, {"attack": 6.0})


def test_summary_counts_derived_useful_thefts_and_keeps_controls_apart():
    s = summarize(_bench())
    groups = {g["group"]: g for g in s["groups"]}
    assert "partial re-training" not in groups               # nothing of the victim survives: never a missed theft
    ft = groups["fine-tune"]
    assert (ft["suspects"], ft["useful"], ft["survives"]) == (3, 2, ["weights"])
    m = ft["protocols"]["membership"]
    assert m["tpr_0.01"] == 0.5 and m["tpr_0.001"] == 0.5 and m["median_p"] == pytest.approx((1e-4 + 0.2) / 2)
    # AUC: 1e-4 beats both innocents; 0.2 beats 0.5 only -> (2 + 1) / 4
    assert m["auc"] == pytest.approx(0.75)
    assert s["innocents"]["membership"] == {"n": 2, "min_p": 0.03, "fpr_0.01": 0.0, "fpr_0.001": 0.0,
                                            "fpr_0.05": 0.5}
    assert s["innocents"]["fingerprint"]["fpr_0.01"] == 0.5
    assert s["controls"]["membership"] == {"n": 1, "min_p": 0.004, "flagged_0.01": 1.0, "flagged_0.001": 0.0,
                                           "flagged_0.05": 1.0}
    assert [f["name"] for f in s["failed_thefts"]] == ["failed"]
    assert s["overall"]["membership"]["tpr_0.01"] == pytest.approx(2 / 3)
    assert s["overall"]["membership"]["tpr_0.001"] == pytest.approx(2 / 3)
    # budget curve: the copy reaches p < 0.01 with 100 queries, the fine-tunes do not even at full budget
    assert s["queries_to_detect"]["membership"] == {"copy": 100, "fine-tune": None}
    md = markdown(_bench(), s)
    assert "| fine-tune | weights | 2/3 | 0.80 | 0.75 / 0.50 / 0.50 /" in md and "FPR at 0.001" in md
    assert "| controls: nothing of the victim survives (n = 1) | 1.00 / 0.00 / 1.00 / 0.004 |" in md
    assert "- failed (seed 0): test accuracy 0.50 (victim 0.90)" in md


def test_stress_rows_say_how_often_each_attack_is_flagged_and_in_what_role():
    rows = {r["name"]: r for r in stress_rows(_bench(), "membership", 0.01)}
    assert rows["copy"]["flagged"] == 1 and rows["ft2"]["flagged"] == 0
    assert {k: rows[k]["role"] for k in ("copy", "ft2", "failed", "retrain", "inn1")} == {
        "copy": "theft", "ft2": "theft", "failed": "failed theft", "retrain": "control", "inn1": "innocent"}


@pytest.mark.slow
def test_budget_view_subsamples_members_and_controls_and_stays_valid(quick_demo):
    audit = quick_demo.audit
    view = budget_view(audit, 200)
    d = view.membership
    assert len(d.member_rows) == len(d.control_rows) == 100
    assert set(d.member_rows) <= set(audit.membership.member_rows)
    assert budget_view(audit, 200).membership.member_rows.tolist() == d.member_rows.tolist()  # seeded
    copy = audit.engine.logits(audit.victim, audit.queries.images)
    assert view.verify(copy).evidence["membership"]["members"] == 100
    # exact null: a suspect that never saw the members - the reference shadow - is not flagged at any budget
    ref = audit.engine.logits(audit.shadows.reference, audit.queries.images)
    for b in (100, 200, 400):
        assert budget_view(audit, b).verify(ref).p_value > 0.01


@pytest.mark.slow
def test_bench_small_writes_json_markdown_and_figures(quick_demo, store_root, tmp_path, capsys):
    out = tmp_path / "bench"
    assert main(["bench", "--small", "--store", str(store_root), "--out", str(out), "--quiet"]) == 0
    data = json.loads((out / "bench.json").read_text())
    assert len(data["suspects"]) == 6 and data["meta"]["seeds"] == [0]
    names = {s["name"] for s in data["suspects"]}
    assert "direct copy" in names and "innocent, other seed" in names
    summary = data["summary"]
    assert {"membership", "fingerprint", "akh", "dataset_inference"} <= set(summary["innocents"])
    assert summary["innocents"]["membership"]["fpr_0.01"] == 0.0
    copy = next(g for g in summary["groups"] if g["group"] == "copy")
    assert copy["protocols"]["membership"]["tpr_0.01"] == 1.0
    assert summary["full_queries"]["dataset_inference"] > summary["full_queries"]["membership"]
    assert set(summary["times"]) >= {"audits", "attack", "answers", "verify", "budget curve", "total"}
    md = (out / "bench.md").read_text()
    assert md.startswith("# Benchmark") and "| copy | weights | 1/1 | 1.00 |" in md
    html = (out / "bench.html").read_text()
    assert "plotly" in html and "ROC" in html and "Query budget" in html
    assert "wrote" in capsys.readouterr().out


@pytest.mark.slow
def test_stress_test_of_an_audit_record(quick_demo, store_root, tmp_path, capsys):
    from forensics.report.record import build_report

    record = tmp_path / "audit.json"
    record.write_text(json.dumps(build_report(quick_demo.audit, [])))
    assert json.loads(record.read_text())["spec"]["quick"]
    code = main(["stress", "--record", str(record), "--store", str(store_root), "--thief-data", "demo:aux",
                 "--innocent-data", "demo:innocent", "--attacks", "direct-copy", "innocent, other seed",
                 "--seeds", "0",
                 "--out", str(tmp_path / "stress"), "--quiet"])
    out = capsys.readouterr().out
    assert code == 0
    assert "would this audit" in out and "direct copy" in out
    line = next(x for x in out.splitlines() if x.startswith("direct copy"))
    assert "1 of 1" in line
    # the audit's own data as the thief's is refused
    assert main(["stress", "--record", str(record), "--store", str(store_root), "--thief-data", "demo:heldout",
                 "--innocent-data", "demo:innocent", "--attacks", "direct copy", "--quiet"]) == 2
    # the stress test needs a record
    assert main(["stress", "--store", str(store_root), "--quiet"]) == 2


def test_check_disjoint_refuses_the_audits_own_images():
    from types import SimpleNamespace

    from helpers import toy_images

    imgs = toy_images(40)
    audit = SimpleNamespace(private=imgs, heldout=None,
                            membership=SimpleNamespace(member_rows=np.arange(10), control_rows=np.arange(0)))
    check_disjoint(audit, imgs.subset(np.arange(10, 40)), "thief's data")
    with pytest.raises(DataSourceError, match="shares 1 images"):
        check_disjoint(audit, imgs.subset(np.arange(9, 20)), "thief's data")


@pytest.mark.slow
def test_budget_views_thin_out_what_each_protocol_asks(quick_demo):
    from forensics.protocols.baselines import victim_mistakes
    from forensics.zoo.bench import budget_curve, budget_protocols
    from forensics.zoo.entries import ZooResult

    audit = quick_demo.audit
    assert {p.name: p.budget_on for p in budget_protocols()} == {
        "membership": "both", "fingerprint": "controls", "akh": "mistakes", "sequential": "both"}
    controls = budget_view(audit, 150, "controls").membership
    assert len(controls.control_rows) == 150 and len(controls.member_rows) == len(audit.membership.member_rows)
    mistakes = budget_view(audit, 20, "mistakes").membership
    wrong = set(audit.membership.control_rows[victim_mistakes(audit)])
    assert len(mistakes.control_rows) == 20 and set(mistakes.control_rows) <= wrong
    answers = audit.engine.logits(audit.victim, audit.queries.images)
    r = ZooResult(get_zoo_entry("direct-copy"), 0, audit.verify(answers, baselines=True), 1.0, 0.9, 0.0, "weights",
                  0.9, answers=answers)
    curve = budget_curve(audit, r, (20, 100, 5000))
    # the sequential test decides a copy in fewer queries than most budgets: it has a point only below that
    assert {"membership", "fingerprint", "akh"} <= set(curve) <= {"membership", "fingerprint", "akh", "sequential"}
    assert 5000 not in curve["membership"] and curve["membership"][100] < 0.01  # a copy: caught with 100 queries
    m = len(victim_mistakes(audit))
    assert set(curve["akh"]) == {b for b in (20, 100, 5000) if b < m} and 0 < curve["akh"][20] <= 1
    with pytest.raises(ConfigError, match="budget target"):
        budget_view(audit, 10, "everything")


def test_ray_workers_verify_with_the_bench_design(monkeypatch):
    """``bench --ray --lineage-replicas K --reference-pairs P``: every worker opens the audit with the same K and P as
    the bench (its replicas and references then come from the shared store), not the default design."""
    import forensics.demo.zoo as demo_zoo
    import forensics.runtime.fanout as fanout
    from forensics.runtime.fanout import Outcome

    calls = []

    def fake_map(fn, items, args_of, **kw):
        for it in items:
            fn(*args_of(it))
            yield Outcome(0, it)

    from types import SimpleNamespace

    result = SimpleNamespace(times={"attack": 1.0}, verdict=SimpleNamespace(evidence={"membership": {"p_value": 0.5}}))

    def fake_contexts(seeds, store, **kw):
        calls.append(kw)
        return {}, {seeds[0]: None}

    monkeypatch.setattr(fanout, "ray_map", fake_map)
    monkeypatch.setattr(demo_zoo, "demo_contexts", fake_contexts)
    monkeypatch.setattr(demo_zoo, "verify_entry", lambda *a, **k: result)
    monkeypatch.setattr(demo_zoo, "_CONTEXTS", {})
    errors = demo_zoo.fan_out_zoo([get_zoo_entry("direct-copy")], [0], quick=True, store_root="/nowhere",
                                  baselines=False, address=None, victim="lite1", lineage_replicas=9, reference_pairs=2)
    assert errors == []
    assert calls == [{"quick": True, "victim": "lite1", "lineage_replicas": 9, "reference_pairs": 2}]
