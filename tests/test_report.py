"""forensics.report: one record, rendered to JSON, offline HTML and a PDF printed by Chromium, with the audit's
figures."""
from __future__ import annotations

import datetime
import io
import json
import os
import re
import unicodedata

import pytest

from forensics.audit.verdict import format_p
from forensics.errors import ForensicsError
from forensics.report.html import audit_figures, render_html
from forensics.report.pdf import PdfRenderError, find_browser, render_pdf
from forensics.report.record import build_report, record_digest
from forensics.report.summary import executive_summary

HEADLINE_DEMO = "2 of 6 suspects show evidence of derivation from your model at alpha = 0.01."


def need_pdf_tools():
    """Chromium (to print) and pypdf (to read the PDF back): skipped without them, except on CI."""
    try:
        import pypdf
        find_browser()
    except (ImportError, PdfRenderError) as e:
        if os.environ.get("CI"):
            pytest.fail(f"the PDF report needs chromium and pypdf; scripts/setup.sh --dev installs both ({e})",
                        pytrace=False)
        pytest.skip(f"no PDF printing here: {e}")
    return pypdf


def pdf_text(pypdf, data: bytes) -> tuple[list[str], str]:
    """(each page's text, all text with whitespace collapsed and ligatures unfolded)."""
    pages = [p.extract_text() for p in pypdf.PdfReader(io.BytesIO(data)).pages]
    return pages, unicodedata.normalize("NFKC", " ".join(" ".join(p.split()) for p in pages))


def suspect(name: str, p: float, dp: float | None, paper: float, kind: str | None = None) -> dict:
    """A suspect entry as the audit record holds it (chosen protocol: membership, alpha 0.01)."""
    return {"name": name, "kind": kind, "source": f"demo:{name}", "suspect": name, "protocol": "membership",
            "p_value": p, "delta_p": dp, "verdict": "stolen" if p < 0.01 else "not stolen", "alpha": 0.01, "m": 700,
            "seed": 0, "label_only": False, "fingerprint": "f" * 64,
            "evidence": {"membership": {"p_value": p, "score": "loss", "members": 300, "controls": 400},
                         "paper": {"p_value": paper, "m": 60, "draws": 40}}}


def record(case: dict | None = None, errors: dict | None = None) -> dict:
    """A small audit record, as build_report writes it (no audit needed)."""
    return {"format": "holmes-forensics audit record v1", "created": "2026-03-04T15:30:00+01:00", "case": case or {},
            "audit": {"config": {"alpha": 0.01, "protocol": "membership", "seed": 0},
                      "victim": {"source": "demo:victim", "arch": "tf_efficientnet_lite0", "fingerprint": "a" * 64},
                      "d_s_size": 60, "members": 300, "controls": 400},
            "suspects": [suspect("a-thief-with-a-very-long-name-" + "x" * 60, 2e-171, 0.12, 0.04, "stolen"),
                         suspect("innocent twin", 0.41, 0.31, 0.9, "innocent")],
            "errors": errors or {}}


def sections(html: str) -> tuple[str, str, str]:
    """(the executive summary, the verdict table, the supporting evidence) of a rendered report."""
    summary = html[html.index("id='executive-summary'"):html.index("</section>")]
    table = html[html.index("<table class='verdicts'"):]
    table = table[:table.index("</table>")]
    support = html[html.index("id='supporting-evidence'"):]
    return summary, table, support[:support.index("</section>")]


def test_html_opens_with_the_case_and_an_executive_summary():
    html = render_html(record(case={"case_name": "Acme <v2> vs. listing #4411", "auditor": "J. Q. Auditor",
                                    "note": "Downloaded on 3 March.\nQueried by legal."},
                              errors={"broken upload": "labels must be integers in [0, 9]"}))
    summary, table, support = sections(html)
    assert "<h1>Acme &lt;v2&gt; vs. listing #4411</h1>" in html and "<title>Acme &lt;v2&gt;" in html
    assert "Audited on 04 March 2026, 15:30 (UTC+01:00) by J. Q. Auditor" in html
    # the executive summary comes first: the headline, one plain line per suspect, the meaning, the note
    assert html.index("id='executive-summary'") < html.index("<table class='verdicts'") < \
        html.index("id='supporting-evidence'")
    assert "1 of 2 suspects shows evidence of derivation from your model at alpha = 0.01; 1 could not be " \
           "verified." in summary
    assert "evidence of derivation (p = 2.0e-171)" in summary and "no evidence of derivation (p = 0.410)" in summary
    assert "could not be verified (labels must be integers in [0, 9])" in summary
    assert "Downloaded on 3 March.\nQueried by legal." in summary
    assert "wrongly flagged at most 1% of the time" in summary
    # the verdict table: p in scientific notation, what was compared; no dP
    assert "2.0e-171" in table and "loss on 300 training vs 400 unseen samples" in table
    assert "dP" not in table and "+0.120" not in table and "broken upload" in table
    # dP and the paper protocol's p only under "supporting evidence", with why they do not decide
    assert "Supporting evidence (not the verdict)" in support and "+0.120" in support and "+0.310" in support
    assert "Innocent models fine-tuned from the same foundation can have a dP as high" in " ".join(support.split())
    assert html.count("+0.310") == 1
    # long names and fingerprints wrap instead of widening the page; the record closes the page
    assert "table-layout:fixed" in html and "overflow-wrap:anywhere" in html and "@page{size:A4" in html
    assert html.rindex("<details>") > html.rindex("<h2>")


def test_html_without_case_details():
    html = render_html(record())
    assert "<h1>Holmes forensics &mdash; ownership audit</h1>" in html
    assert "<p class='meta'>Audited on 04 March 2026, 15:30 (UTC+01:00)</p>" in html
    assert "Auditor's note" not in html and "kicker'>Holmes" not in html
    s = executive_summary(record())
    assert s["headline"] == "1 of 2 suspects shows evidence of derivation from your model at alpha = 0.01."
    assert [i["stolen"] for i in s["items"]] == [True, False] and s["note"] is None
    one = record()
    one["suspects"] = one["suspects"][1:]
    assert executive_summary(one)["headline"] == \
        "The suspect shows no evidence of derivation from your model at alpha = 0.01."


def test_missing_browser_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("FORENSICS_CHROMIUM", str(tmp_path / "no-such-chromium"))
    with pytest.raises(ForensicsError, match=r"FORENSICS_CHROMIUM=.*not an executable.*apt-get install chromium"):
        render_pdf("<p>x</p>")
    monkeypatch.delenv("FORENSICS_CHROMIUM")
    monkeypatch.setenv("PATH", str(tmp_path))  # no chromium, chromium-browser or google-chrome on it
    with pytest.raises(PdfRenderError) as e:
        render_pdf("<p>x</p>")
    msg = str(e.value)
    assert "install chromium: sudo apt-get install chromium" in msg and "FORENSICS_CHROMIUM" in msg
    assert "the HTML report has the same content" in msg


def test_failing_browser_reports_its_stderr(tmp_path, monkeypatch):
    fake = tmp_path / "fake-chromium"
    fake.write_text("#!/bin/sh\necho 'cannot open display: something broke' >&2\nexit 3\n")
    fake.chmod(0o755)
    monkeypatch.setenv("FORENSICS_CHROMIUM", str(fake))
    with pytest.raises(PdfRenderError, match=r"exit status 3(.|\n)*something broke"):
        render_pdf("<p>x</p>")


def test_pdf_of_a_small_report():
    """A real engine prints the report to A4; the plotly figure is drawn (its axis title is text in the PDF)."""
    pypdf = need_pdf_tools()
    import plotly.graph_objects as go

    fig = go.Figure(go.Bar(x=["a", "b"], y=[1, 2]), layout={"title": "A tiny figure",
                                                            "xaxis_title": "an axis plotly drew"})
    rec = record(case={"case_name": "Case 7", "auditor": "Ann"})
    data = render_pdf(render_html(rec, [fig]))
    assert data.startswith(b"%PDF")
    reader = pypdf.PdfReader(io.BytesIO(data))
    box = reader.pages[0].mediabox
    assert abs(float(box.width) - 595) < 2 and abs(float(box.height) - 842) < 2  # A4
    _, text = pdf_text(pypdf, data)
    assert executive_summary(rec)["headline"] in text
    assert "Case 7" in text and "by Ann" in text and "Supporting evidence (not the verdict)" in text
    assert "innocent twin" in text and "a-thief-with-a-very-long-name-" in text
    assert "an axis plotly drew" in text
    # for filing: the first page names the software, the record's and the report's SHA-256 and the victim's full
    # fingerprint; every page is numbered
    pages, _ = pdf_text(pypdf, data)
    first = unicodedata.normalize("NFKC", " ".join(pages[0].split())).replace(" ", "")
    assert "HolmesForensics".lower() in first.lower() and record_digest(rec) in first and "a" * 64 in first
    assert re.search(r"report-sha256:[0-9a-f]{64}", first) and "0" * 64 not in first
    for i, page in enumerate(pages, 1):
        assert f"page {i} of {len(pages)}" in " ".join(page.split()), (i, page[-200:])


def test_the_report_states_its_own_and_its_records_sha256_and_the_cli_checks_them(tmp_path, capsys):
    from forensics.cli.main import main
    from forensics.report.html import report_digest

    rec = record(case={"case_name": "Case 8"})
    html = render_html(rec)
    stated, computed = report_digest(html)
    assert stated == computed and stated in html and record_digest(rec) in html
    assert render_html(rec) == html  # the same record, the same report, the same digest
    assert record_digest(json.loads(json.dumps(rec, indent=1))) == record_digest(rec)  # of the content, not layout
    (tmp_path / "audit.json").write_text(json.dumps(rec, indent=3))
    (tmp_path / "report.html").write_text(html)
    assert main(["digest", str(tmp_path / "audit.json")]) == 0
    assert record_digest(rec) in capsys.readouterr().out
    assert main(["digest", str(tmp_path / "report.html")]) == 0
    assert "unchanged since it was written" in capsys.readouterr().out
    (tmp_path / "report.html").write_text(html.replace("innocent twin", "innocent twins"))  # an edit after the fact
    assert main(["digest", str(tmp_path / "report.html")]) == 1
    assert "changed after it was written" in capsys.readouterr().err
    (tmp_path / "other.html").write_text("<html>no digest</html>")
    assert main(["digest", str(tmp_path / "other.html")]) == 2
    assert "states no SHA-256" in capsys.readouterr().err
    changed = dict(rec, errors={"x": "y"})
    assert record_digest(changed) != record_digest(rec)


def test_figure_subtitles_are_wrapped_between_words_never_cut():
    from forensics.report.style import SUBTITLE_CHARS, wrap_subtitle

    text = ("Each dot is one <b>suspect</b>; <span style='color:#b3261e'>warm colours</span> mean evidence of "
            "derivation at alpha and cool ones none, so that the two groups read apart<br>Shown: the pair")
    out = wrap_subtitle(text)
    lines = out.split("<br>")
    assert len(lines) == 3 and lines[-1] == "Shown: the pair"
    assert all(len(re.sub(r"<[^>]*>", "", line)) <= SUBTITLE_CHARS for line in lines)
    assert re.sub(r"<br>", " ", out) == re.sub(r"<br>", " ", text)  # the same words, tags whole, only breaks added


@pytest.mark.slow
def test_record_and_html(quick_demo):
    a = quick_demo.audit
    rows = [(r.suspect.name, r.kind, r.verdict) for r in quick_demo.suspects]
    rows.append(("<script>alert(1)</script>", None, quick_demo.suspects[0].verdict))
    record = build_report(a, rows, sources={r.suspect.name: {"source": r.suspect.source} for r in quick_demo.suspects})
    assert json.loads(json.dumps(record)) == record  # plain JSON
    assert record["spec"]["victim"] == "demo:victim" and record["spec"]["quick"] is True
    assert record["audit"]["queries_fingerprint"] == a.queries.fingerprint
    assert record["versions"]["holmes-forensics"] == record["versions"]["forensics"]
    assert record["case"] == {} and record["errors"] == {}
    assert datetime.datetime.fromisoformat(record["created"]).tzinfo is not None  # date, time and time zone
    first = record["suspects"][0]
    assert first["source"] == "demo:direct_copy"
    assert len(first["per_sample"]["member_score"]) == first["evidence"]["membership"]["members"]
    figures = audit_figures(a, [v for _, _, v in rows])
    assert len(figures) == 7 and all(f.layout.title.text for f in figures)
    html = render_html(record, figures)
    assert html.count("plotly.js v") == 1  # plotly inlined once ...
    assert not re.search(r"<script[^>]+src=", html) and "<link" not in html  # ... and nothing fetched: opens offline
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    summary, table, support = sections(html)
    assert "3 of 7 suspects show evidence of derivation from your model at alpha = 0.01." in summary
    for _, _, v in rows[:-1]:
        assert format_p(v.p_value) in table
        assert f"{v.delta_p:+.3f}" in support and f"{v.delta_p:+.3f}" not in table


@pytest.mark.slow
def test_demo_report_as_pdf(quick_demo):
    pypdf = need_pdf_tools()
    a = quick_demo.audit
    rows = [(r.suspect.name, r.kind, r.verdict) for r in quick_demo.suspects]
    rec = build_report(a, rows, info={"case_name": "Demo case", "auditor": "CI", "note": "  "})
    assert rec["case"] == {"case_name": "Demo case", "auditor": "CI"}  # a blank note is no note
    figures = audit_figures(a, [v for _, _, v in rows])
    data = render_pdf(render_html(rec, figures))
    pages, text = pdf_text(pypdf, data)
    assert len(pages) > 2  # the summary and tables, then the figures
    assert HEADLINE_DEMO in text and "Supporting evidence (not the verdict)" in text
    assert HEADLINE_DEMO in unicodedata.normalize("NFKC", " ".join(pages[0].split()))  # on the first page
    for name, _, _ in rows:
        assert name in text
    axes = [f.layout.xaxis.title.text or f.layout.yaxis.title.text for f in figures]
    assert sum(map(bool, axes)) >= 4
    for axis in filter(None, axes):  # every figure drawn: its axis title is text that plotly put in the page
        assert unicodedata.normalize("NFKC", axis) in text
