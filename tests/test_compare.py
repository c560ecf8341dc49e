"""forensics.cases.compare: two audit records side by side."""
from __future__ import annotations

from dataclasses import replace

from forensics.cases.compare import settings_rows, suspect_rows
from forensics.demo import demo_spec


def record(spec, suspects):
    return {"spec": spec.to_dict(), "suspects": suspects}


def test_settings_that_differ_and_verdicts_side_by_side():
    a = demo_spec(0, quick=True)
    b = replace(a, config=replace(a.config, gamma=0.2, train=replace(a.config.train, epochs=5)))
    ra = record(a, [{"name": "x", "p_value": 1e-9, "verdict": "stolen"}, {"name": "y", "p_value": 0.4,
                                                                            "verdict": "not stolen"}])
    rb = record(b, [{"name": "x", "p_value": 0.03, "verdict": "not stolen"}, {"name": "z", "p_value": 0.5,
                                                                              "verdict": "not stolen"}])
    diff = {r["setting"]: (r["A"], r["B"]) for r in settings_rows(ra, rb)}
    assert diff == {"gamma": ("0.1", "0.2"), "train.epochs": ("3", "5")}
    assert len(settings_rows(ra, ra)) == 0 and len(settings_rows(ra, ra, all_rows=True)) > 20
    rows = {r["suspect"]: r for r in suspect_rows(ra, rb)}
    assert list(rows) == ["x", "y", "z"]
    assert rows["x"]["verdict (A)"] == "evidence of derivation" and rows["x"]["verdict (B)"] == "no evidence"
    assert rows["x"]["same verdict"] == "no" and rows["y"]["verdict (B)"] == "not verified"
    assert rows["x"]["p (A)"] == "1.0e-09" and rows["z"]["p (A)"] == "-"
