"""forensics.report and forensics.plots on the reduced demo: one record, rendered to JSON and offline HTML."""
from __future__ import annotations

import json

import pytest

from forensics.report import audit_figures, build_report, render_html
from forensics.verify import format_p

pytestmark = pytest.mark.slow


def test_record_and_html(quick_demo):
    a = quick_demo.audit
    rows = [(r.suspect.name, r.kind, r.verdict) for r in quick_demo.suspects]
    rows.append(("<script>alert(1)</script>", None, quick_demo.suspects[0].verdict))
    record = build_report(a, rows, sources={r.suspect.name: {"source": r.suspect.source} for r in quick_demo.suspects})
    assert json.loads(json.dumps(record)) == record  # plain JSON
    assert record["spec"]["victim"] == "demo:victim" and record["spec"]["quick"] is True
    assert record["audit"]["queries_fingerprint"] == a.queries.fingerprint
    assert record["versions"]["holmes-forensics"] == record["versions"]["forensics"]
    first = record["suspects"][0]
    assert first["source"] == "demo:direct_copy"
    assert len(first["per_sample"]["member_score"]) == first["evidence"]["membership"]["members"]
    figures = audit_figures(a, [v for _, _, v in rows])
    assert len(figures) == 7 and all(f.layout.title.text for f in figures)
    html = render_html(record, figures)
    import re
    assert html.count("plotly.js v") == 1  # plotly inlined once ...
    assert not re.search(r"<script[^>]+src=", html) and "<link" not in html  # ... and nothing fetched: opens offline
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    for _, _, v in rows[:-1]:
        assert format_p(v.p_value) in html
