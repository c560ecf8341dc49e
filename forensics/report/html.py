"""The HTML report: one self-contained page (plotly.js inlined once, opens offline) with the case, the executive
summary, the verdict table, the supporting evidence (dP, the paper protocol) in its own section so no reader takes it
for the verdict, the audit setup, the figures with their takeaways and the JSON record; its print CSS lays it out on
A4 for :mod:`.pdf`."""
from __future__ import annotations

import hashlib
import html
import json
import re
from collections.abc import Sequence
from typing import Any

from ..audit.opened import Audit
from ..audit.verdict import Verdict, format_p
from .pdf import CSP
from .record import REPORT_DIGEST_LABEL, record_digest
from .summary import compared, executive_summary, record_alpha, recorded_reading, when_text


def audit_figures(audit: Audit, verdicts: Sequence[Verdict]) -> list:
    """The report's figures, in the order of :data:`~forensics.report.style.FIGURE_NAMES` (plotly loads here)."""
    from .figures import (
        loss_order_figure,
        meta_scores_figure,
        output_difference_figure,
        projection_figure,
        training_curves_figure,
    )
    from .verdict_figures import membership_figure, pvalue_figure

    return [pvalue_figure(verdicts, audit.config.alpha), membership_figure(verdicts), loss_order_figure(audit),
            output_difference_figure(audit, verdicts), projection_figure(audit, verdicts),
            meta_scores_figure(audit, verdicts), training_curves_figure(audit.shadows.histories)]


def audit_takeaways(audit: Audit, verdicts: Sequence[Verdict]) -> list[str]:
    """The one-sentence takeaway of each of :func:`audit_figures`, in the same order."""
    from .style import FIGURE_NAMES
    from .takeaways import takeaway

    return [takeaway(name, audit, verdicts) for name in FIGURE_NAMES]


CSS = """
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;max-width:980px;margin:2em auto;
 padding:0 1em;color:#1d2733;line-height:1.45;font-size:15px;font-variant-ligatures:no-common-ligatures}
h1{font-size:1.7em;margin:0 0 .1em}h2{font-size:1.25em;margin:1.6em 0 .5em;border-bottom:2px solid #dde3ea;
 padding-bottom:.2em}
.kicker{color:#5b6b7c;text-transform:uppercase;letter-spacing:.06em;font-size:.8em;margin:0}
.meta{color:#5b6b7c;margin:.2em 0 1em}
.summary{border:1px solid #c9d6e3;border-left:6px solid #1f5fa8;background:#f4f8fc;border-radius:6px;
 padding:.8em 1.1em;margin:1em 0}
.summary .headline{font-size:1.2em;font-weight:600;margin:.1em 0 .5em}
.summary ul{margin:.3em 0 .6em;padding-left:1.3em}.summary li{margin:.15em 0}
.summary p{margin:.4em 0}.summary li .failed{font-weight:400}
.note{white-space:pre-wrap;border-top:1px solid #c9d6e3;padding-top:.5em}
.stolen{color:#b3261e;font-weight:600}.clear{color:#1b6e3a;font-weight:600}.failed{color:#8a5a00;font-weight:600}
table{border-collapse:collapse;width:100%;table-layout:fixed;margin:.5em 0}
td,th{border-bottom:1px solid #dde3ea;padding:6px 8px;text-align:left;vertical-align:top;
 overflow-wrap:anywhere;word-break:break-word}
th{background:#f1f4f7;font-weight:600;font-size:.9em}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}td.num{white-space:nowrap}
th{overflow-wrap:normal;word-break:normal;hyphens:auto}
.badge{display:inline-block;color:#fff;padding:1px 8px;border-radius:8px;font-size:.9em;line-height:1.35}
table.verdicts td.num{padding-left:14px}
.badge.stolen{background:#b3261e}.badge.clear{background:#1b6e3a}.badge.failed{background:#8a5a00}
.supporting{border:1px dashed #b6c2cf;border-radius:6px;padding:.2em 1em .6em;background:#fbfbfc;margin-top:1.6em}
.supporting h2{border:0;margin-top:.6em}
.small,small{color:#5b6b7c;font-size:.85em}
code{font-size:.85em;overflow-wrap:anywhere;word-break:break-all}
.fig{margin:1.2em 0;break-inside:avoid;page-break-inside:avoid;max-width:100%;overflow:hidden}
pre{white-space:pre-wrap;word-break:break-all;font-size:11px;max-height:40em;overflow:auto;background:#f6f8fa;
 padding:.6em}
.print-only{display:none}
.evidence{font-size:.85em;color:#33414f;margin:.6em 0 1em;border:1px solid #dde3ea;border-radius:6px;padding:.2em .6em}
.evidence table{margin:.2em 0}.evidence td{border:0;padding:2px 6px}.evidence td:first-child{width:26%;color:#5b6b7c}
.evidence code{word-break:break-all}
@page{size:A4;margin:14mm 12mm 16mm 12mm}
@media print{
 body{max-width:none;margin:0;padding:0;font-size:10.5pt}
 h2{break-after:avoid;page-break-after:avoid}
 .summary,.supporting,tr,.fig{break-inside:avoid;page-break-inside:avoid}
 .summary,.badge,th{-webkit-print-color-adjust:exact;print-color-adjust:exact}
 .fig{zoom:.78}
 .modebar-container,.modebar{display:none!important}
 details{display:none}.print-only{display:block}
 pre{max-height:none;overflow:visible}
}
"""


ZERO_DIGEST = "0" * 64
_DIGEST_RE = re.compile(re.escape(REPORT_DIGEST_LABEL) + r"([0-9a-f]{64})")


def report_digest(text: str) -> tuple[str | None, str]:
    """``(stated, computed)``: the SHA-256 an HTML report states for itself on its first page, and the one of its
    text with that value written as 64 zeros (what it was computed over).  Equal when the report is unchanged;
    ``stated`` is None for a text that states none."""
    found = _DIGEST_RE.search(text)
    blank = text if found is None else text[:found.start(1)] + ZERO_DIGEST + text[found.end(1):]
    return (found.group(1) if found else None), hashlib.sha256(blank.encode("utf-8")).hexdigest()


def _version(report: dict[str, Any]) -> str:
    from .._version import __version__

    v = str((report.get("versions") or {}).get("forensics") or __version__)
    return re.sub(r"[^\w.+-]", "", v)[:40] or "?"


def _evidence(report: dict[str, Any]) -> str:
    """The first page's identifiers for filing: the software version, the record's and this report's SHA-256, and
    the victim's fingerprint in full (the suspects' are in the setup table)."""
    v = (report.get("audit") or {}).get("victim") or {}
    rows = [("Software", f"Holmes forensics {esc(_version(report))}"),
            ("Audit record SHA-256", f"<code>{record_digest(report)}</code> "
                                     "<span class='small'>(of audit.json's canonical JSON: "
                                     "<code>holmes-forensics digest audit.json</code>)</span>"),
            ("This report's SHA-256", f"<code>{REPORT_DIGEST_LABEL}{ZERO_DIGEST}</code> "
                                      "<span class='small'>(of the HTML report with this value as zeros: "
                                      "<code>holmes-forensics digest report.html</code>; a PDF states the HTML it "
                                      "was printed from)</span>"),
            ("Victim fingerprint", f"<code>{esc(v.get('fingerprint') or '-')}</code> "
                                   "<span class='small'>(SHA-256 of its weights)</span>")]
    body = "".join(f"<tr><td>{k}</td><td>{val}</td></tr>" for k, val in rows)
    return f"<div class='evidence' id='identifiers'><table>{body}</table></div>"


def _page_css(report: dict[str, Any]) -> str:
    """Page numbers and the record's short hash in every printed page's margin (Chromium's @page margin boxes)."""
    foot = f"Holmes forensics {_version(report)} · record {record_digest(report)[:16]}"
    font = "font-family:system-ui,'DejaVu Sans',sans-serif;font-size:8pt;color:#5b6b7c"
    return ("@page{@bottom-left{content:\"" + foot + "\";" + font + "}"
            "@bottom-right{content:\"page \" counter(page) \" of \" counter(pages);" + font + "}}")


def esc(x: Any) -> str:
    return html.escape("" if x is None else str(x))


def _cls(stolen: bool | None) -> str:
    return "failed" if stolen is None else "stolen" if stolen else "clear"


def _badge(stolen: bool | None) -> str:
    if stolen is None:
        return "<span class='badge failed'>not verified</span>"
    return ("<span class='badge stolen'>evidence of derivation</span>" if stolen
            else "<span class='badge clear'>no evidence</span>")


def _header(report: dict[str, Any]) -> str:
    case = report.get("case") or {}
    name = case.get("case_name")
    parts = []
    when = when_text(report.get("created"))
    if when:
        parts.append(f"Audited on {esc(when)}")
    if case.get("auditor"):
        parts.append(("by " if parts else "Audited by ") + esc(case["auditor"]))
    meta = f"<p class='meta'>{' '.join(parts)}</p>" if parts else ""
    if name:
        return f"<p class='kicker'>Holmes forensics &mdash; ownership audit</p><h1>{esc(name)}</h1>{meta}"
    return f"<h1>Holmes forensics &mdash; ownership audit</h1>{meta}"


def _summary_html(summ: dict[str, Any]) -> str:
    items = "".join(
        f"<li><b>{esc(i['name'])}</b>: <span class='{_cls(i['stolen'])}'>{esc(i['text'])}</span></li>"
        for i in summ["items"])
    note = f"<p class='note'><b>Auditor's note.</b> {esc(summ['note'])}</p>" if summ.get("note") else ""
    return (f"<section class='summary' id='executive-summary'><p class='kicker'>Executive summary</p>"
            f"<p class='headline'>{esc(summ['headline'])}</p>{f'<ul>{items}</ul>' if items else ''}"
            f"<p>{esc(summ['meaning'])}</p>{note}</section>")


def _verdict_table(report: dict[str, Any]) -> str:
    alpha = record_alpha(report)
    rows = []
    for s in report.get("suspects") or []:
        r = recorded_reading(s, alpha)
        rows.append(f"<tr><td><b>{esc(s['name'])}</b></td><td>{_badge(r.stolen)}</td>"
                    f"<td class='num'>{format_p(r.p_value)}</td><td>{esc(compared(s))}</td></tr>")
    for name, why in (report.get("errors") or {}).items():
        rows.append(f"<tr><td><b>{esc(name)}</b></td><td>{_badge(None)}</td><td class='num'>-</td>"
                    f"<td>{esc(why)}</td></tr>")
    if not rows:
        return "<p>No suspect has been verified.</p>"
    return ("<table class='verdicts'><colgroup><col style='width:24%'><col style='width:29%'><col style='width:13%'>"
            "<col style='width:34%'></colgroup><thead><tr><th>suspect</th><th>verdict</th><th class='num'>p-value</th>"
            f"<th>what was compared</th></tr></thead><tbody>{''.join(rows)}</tbody></table>")


def _supporting(report: dict[str, Any]) -> str:
    suspects = report.get("suspects") or []
    if not suspects:
        return ""
    rows = []
    for s in suspects:
        ev = s.get("evidence") or {}
        delta_p = ev.get("holmes", {}).get("delta_p", s.get("delta_p"))
        dp = "-" if delta_p is None else f"{delta_p:+.3f}"
        paper = ev.get("paper", {}).get("p_value")
        rows.append(f"<tr><td>{esc(s['name'])}</td><td class='num'>{dp}</td>"
                    f"<td class='num'>{format_p(paper)}</td></tr>")
    return f"""<section class='supporting' id='supporting-evidence'>
<h2>Supporting evidence (not the verdict)</h2>
<p><b>dP</b> is the Holmes meta-classifier's score difference: its mean P(stolen) for the suspect minus that for the
benign shadow model, on the victim's special samples D_s. The <b>paper protocol</b> is the reference release's test,
reproduced for comparison; its p-values are not calibrated. Innocent models fine-tuned from the same foundation can
have a dP as high as a copy's, so neither number decides the verdict above.</p>
<table class='support'><colgroup><col style='width:46%'><col style='width:30%'><col style='width:24%'></colgroup>
<thead><tr><th>suspect</th><th class='num'>dP (Holmes score difference)</th><th class='num'>paper protocol p</th>
</tr></thead><tbody>{''.join(rows)}</tbody></table></section>"""


def _setup(report: dict[str, Any]) -> str:
    a = report["audit"]
    cfg = a.get("config", {})
    v = a.get("victim", {})
    rows = []
    for s in report.get("suspects") or []:
        where = s.get("source") or ""
        if s.get("revision"):
            where += f" @ {s['revision']}"
        rows.append(f"<tr><td>{esc(s['name'])}</td><td><code>{esc(where)}</code></td>"
                    f"<td>{esc(s.get('kind') or 'unknown')}</td>"
                    f"<td><code>{esc(s.get('fingerprint') or ('black-box answers' if s.get('answers') else '-'))}"
                    f"</code></td><td>{'labels' if s.get('label_only') else 'logits'}</td></tr>")
    table = ("<table class='ids'><colgroup><col style='width:21%'><col style='width:21%'><col style='width:13%'>"
             "<col style='width:33%'><col style='width:12%'></colgroup><thead><tr><th>suspect</th><th>source</th>"
             "<th>known kind</th><th>weights fingerprint (SHA-256)</th><th>answers</th></tr></thead>"
             f"<tbody>{''.join(rows)}</tbody></table>") if rows else ""
    fingerprint = esc(v.get('fingerprint'))
    return f"""<h2>Audit setup</h2>
<p>Victim <code>{esc(v.get('source'))}</code> ({esc(v.get('arch'))}, fingerprint <code>{fingerprint}</code>);
protocol <b>{esc(cfg.get('protocol'))}</b>, alpha {esc(cfg.get('alpha'))}, seed {esc(cfg.get('seed'))}.
D_s: {esc(a.get('d_s_size'))} samples; membership test: {esc(a.get('members'))} training samples (members) and
{esc(a.get('controls'))} unseen samples (controls). "Known kind" is the ground truth where it is known (the demo's
suspects), never an input to the verdict.</p>{table}"""


def _figure_html(fig: Any, first: bool, takeaway: str = "") -> str:
    """One figure (its own title and subtitle) with its takeaway, kept whole on a printed page."""
    plot = fig.to_html(full_html=False, include_plotlyjs=first, config={"displaylogo": False, "responsive": True})
    said = f"<p class='takeaway'><b>Takeaway:</b> {esc(takeaway)}</p>" if takeaway else ""
    return f"<div class='fig'>{said}{plot}</div>"


def render_html(report: dict[str, Any], figures: Sequence[Any] = (), takeaways: Sequence[str] = ()) -> str:
    """A self-contained HTML page (plotly.js inlined once, no external assets) summarising the audit: the case, an
    executive summary, the verdict table, the supporting evidence (dP, paper protocol), the audit setup, the figures
    and the JSON record.  Its print CSS lays it out on A4 (what :func:`render_pdf` prints)."""
    said = list(takeaways) + [""] * max(0, len(figures) - len(takeaways))
    plots_html = "".join(_figure_html(f, i == 0, said[i]) for i, f in enumerate(figures))
    summ = executive_summary(report)
    name = (report.get("case") or {}).get("case_name")
    title = f"{name} - Holmes forensics audit" if name else "Holmes forensics audit"
    text = f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CSP}"><title>{esc(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>{CSS}{_page_css(report)}</style></head><body>
{_header(report)}
{_summary_html(summ)}
{_evidence(report)}
<h2>Verdict</h2>
{_verdict_table(report)}
{_supporting(report)}
{_setup(report)}
{'<h2>Figures</h2>' + plots_html if plots_html else ''}
<h2>How to read this report</h2>
<p>{esc(summ['meaning'])} A large p-value is not proof of innocence. Anyone with the same
models and data can re-run every verification from the JSON audit record (<code>holmes-forensics reverify</code>):
on the same kind of CPU with the same thread count, or the same GPU and precision (the record's
<code>audit.runtime</code>), the p-values come out the same bit for bit; elsewhere up to floating-point
differences.</p>
<p class="print-only small">The full JSON audit record (fingerprints, configs, per-sample scores) is in the HTML
report and in audit.json.</p>
<details><summary>Audit record (JSON)</summary><pre>{html.escape(json.dumps(report, indent=1)[:200000])}</pre></details>
</body></html>"""
    digest = report_digest(text)[1]
    return text.replace(REPORT_DIGEST_LABEL + ZERO_DIGEST, REPORT_DIGEST_LABEL + digest, 1)
