"""forensics.report.checks: the pass/fail list beside the verdict, and the stress test's power kept with a case."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from forensics.cases.case import Case
from forensics.cases.casefile import case_from_record, case_record
from forensics.demo import demo_spec
from forensics.report.checks import NOT_MEASURED, PASS, WARN, audit_checks, power_summary


def fake_audit(members=300, controls=400, success=0.95, build="q1"):
    return SimpleNamespace(membership=SimpleNamespace(member_rows=np.arange(members), control_rows=np.arange(controls)),
                           shadows=SimpleNamespace(poison_success=success), queries=SimpleNamespace(fingerprint=build))


ROWS = [{"id": "direct-copy", "name": "direct copy", "group": "copy", "kind": "stolen", "role": "theft", "flagged": 3,
         "runs": 3, "median_p": 1e-30},
        {"id": "distill-t4", "name": "distill, T = 4", "group": "distillation", "kind": "stolen", "role": "theft",
         "flagged": 1, "runs": 3, "median_p": 0.2},
        {"id": "innocent-other-seed", "name": "innocent, other seed", "group": "innocent", "kind": "innocent",
         "role": "innocent", "flagged": 0, "runs": 3, "median_p": 0.4}]


def by_name(checks):
    return {c.name: c for c in checks}


def test_without_a_stress_test_the_power_is_not_measured_and_says_where_to_measure_it():
    checks = by_name(audit_checks(fake_audit(), "membership"))
    assert checks["Detection power for this victim"].status == NOT_MEASURED
    assert "6 · Stress test" in checks["Detection power for this victim"].detail
    assert checks["Calibrated test"].status == PASS and checks["Samples compared"].status == PASS
    assert by_name(audit_checks(fake_audit(), "paper"))["Calibrated test"].status == WARN
    assert by_name(audit_checks(fake_audit(members=40), "membership"))["Samples compared"].status == WARN
    assert by_name(audit_checks(fake_audit(success=0.3), "membership"))["Poisoned shadow"].status == WARN


def test_the_stress_tests_power_names_what_a_no_evidence_does_not_rule_out():
    power = power_summary(ROWS, "membership", 0.01, build="q1")
    checks = by_name(audit_checks(fake_audit(), "membership", power))
    c = checks["Detection power for this victim"]
    assert c.status == WARN and "1 of 2 kinds" in c.detail and "distill, T = 4" in c.detail
    assert checks["Simulated innocent models"].status == PASS
    assert "Stress test of this build" not in checks
    assert by_name(audit_checks(fake_audit(build="q2"), "membership", power))["Stress test of this build"].status \
        == WARN  # measured on another build of the audit


def test_the_power_travels_with_the_case_record_and_a_hostile_one_is_cut_to_its_shape():
    case = Case(spec=demo_spec(0, quick=True), power=power_summary(ROWS, "membership", 0.01, build="q1"))
    back = case_from_record(case_record(case))
    assert back.power == case.power
    rec = case_record(case)
    rec["power"] = {"alpha": 0.01, "rows": [{"name": "<img src=x>" * 100, "role": "theft", "flagged": "2", "runs": 3,
                                             "median_p": "0.5", "extra": object.__name__},
                                            {"name": "no role"}, "not a row"] + [ROWS[0]] * 1000}
    power = case_from_record(rec).power
    assert len(power["rows"]) == 500 - 2 and len(power["rows"][0]["name"]) == 200  # bounded, broken rows dropped
    assert power["rows"][0]["flagged"] == 2 and "extra" not in power["rows"][0]
    rec["power"] = {"alpha": "high", "rows": []}
    assert case_from_record(rec).power is None
