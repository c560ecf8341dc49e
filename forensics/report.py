"""The audit report: one data object, rendered to JSON (the audit record), self-contained HTML and PDF.

The HTML opens with the case (name, date, auditor), an executive summary (the headline sentence, one plain line per
suspect, what the verdict means, the auditor's note) and the verdict table; the Holmes dP and the paper protocol's
p-value follow in their own "supporting evidence" section, so no reader takes them for the verdict.  The PDF is the
same page printed by headless Chromium (:func:`render_pdf`).
"""
from __future__ import annotations

import datetime
import html
import json
import os
import platform
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Sequence

from . import settings
from .audit import Audit
from .errors import ForensicsError
from .protocols import get_protocol
from .verify import Reading, Verdict, format_p, headline

__all__ = ["build_report", "case_report", "render_html", "render_pdf", "audit_figures", "library_versions",
           "executive_summary", "find_browser", "PdfRenderError", "CASE_FIELDS"]

# what the auditor may type about the case (Case.info), in the order the report shows them
CASE_FIELDS = ("case_name", "auditor", "note")
BROWSERS = ("chromium", "chromium-browser", "google-chrome")


class PdfRenderError(ForensicsError, RuntimeError):
    """The PDF report could not be printed: no browser found, or the browser failed."""


def library_versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for pkg in ("holmes-forensics", "torch", "torchvision", "timm", "numpy", "scipy", "scikit-learn",
                "huggingface-hub", "safetensors", "pandas"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    from ._version import __version__
    out["forensics"] = __version__
    return out


RECORD_FORMAT = "holmes-forensics audit record v1"


def now_iso() -> str:
    """The local date and time, ISO 8601 with the UTC offset (what the record's ``created`` holds)."""
    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")


def case_info(info: dict[str, Any] | None) -> dict[str, str]:
    """The case name, auditor and note that were given (stripped; empty ones left out)."""
    info = info or {}
    return {k: str(info[k]).strip() for k in CASE_FIELDS if info.get(k) and str(info[k]).strip()}


def build_report(audit: Audit, verdicts: Sequence[tuple[str, str | None, Verdict]], *,
                 extra: dict[str, Any] | None = None,
                 sources: dict[str, dict[str, Any]] | None = None,
                 info: dict[str, str] | None = None,
                 errors: dict[str, str] | None = None, created: str | None = None) -> dict[str, Any]:
    """The JSON audit record: fingerprints, revisions, data, configs, seeds, versions, per-sample
    scores and p-values.  Its ``spec`` says how to rebuild the audit (sources and data locations) and
    ``sources`` how to find each suspect again (model source or stored answers file), which is what
    ``holmes-forensics reverify`` needs.  ``case`` holds what the auditor typed (``info``: case name, auditor,
    note; only those given), ``errors`` the suspects that could not be verified and why."""
    sources = sources or {}
    return {
        "format": RECORD_FORMAT,
        "created": created or now_iso(),
        "case": case_info(info),
        "spec": audit.spec.to_dict(),
        "audit": audit.summary(),
        "suspects": [{"name": name, "kind": kind, **sources.get(name, {}), **v.to_dict(per_sample=True)}
                     for name, kind, v in verdicts],
        "errors": dict(errors or {}),
        "versions": library_versions(),
        **(extra or {}),
    }


def case_report(case) -> dict[str, Any]:
    """The audit record of a :class:`~forensics.case.Case` that has run."""
    pairs = case.ordered_verdicts()
    return build_report(case.audit, [(s.name, s.kind, v) for s, v in pairs],
                        sources={s.name: {"source": s.source, "revision": s.revision, "answers": s.answers,
                                          "query_set": s.query_set, "upload": s.upload} for s, _ in pairs},
                        info=case.info, errors=case.errors, created=case.ran_at)


def audit_figures(audit: Audit, verdicts: Sequence[Verdict]) -> list:
    from . import plots

    figs = [plots.pvalue_figure(verdicts, audit.config.alpha), plots.membership_figure(verdicts),
            plots.loss_order_figure(audit), plots.output_difference_figure(audit, verdicts),
            plots.projection_figure(audit, verdicts), plots.meta_scores_figure(audit, verdicts),
            plots.training_curves_figure(audit.shadows.histories)]
    return figs


def audit_takeaways(audit: Audit, verdicts: Sequence[Verdict]) -> list[str]:
    """The one-sentence takeaway of each of :func:`audit_figures`, in the same order."""
    from . import plots

    return [plots.takeaway(name, audit, verdicts) for name in plots.FIGURE_NAMES]


# ----------------------------------------------------------------------------------------------------------------
# the executive summary


def _alpha(report: dict[str, Any]) -> float:
    s = report.get("suspects") or []
    return float(report.get("audit", {}).get("config", {}).get("alpha") or (s[0]["alpha"] if s else 0.01))


def _protocol(report: dict[str, Any]) -> str:
    s = report.get("suspects") or []
    return str(report.get("audit", {}).get("config", {}).get("protocol") or (s[0]["protocol"] if s else "membership"))


def _reading(s: dict[str, Any], alpha: float) -> Reading:
    """A recorded suspect's verdict under its chosen protocol at the audit's alpha (what it was decided on)."""
    return Reading(s["protocol"], float(s["p_value"]), s.get("delta_p"), int(s.get("m") or 0), alpha)


def _calibrated(protocol: str) -> bool:
    try:
        return get_protocol(protocol).calibrated
    except ForensicsError:  # a record from a build with other protocols
        return False


def meaning(protocol: str, alpha: float) -> str:
    """What a verdict means, in one or two sentences."""
    if protocol == "membership":
        what = ("fits your model's private training samples better than unseen samples of the same collection, "
                "beyond what chance allows")
    else:
        what = "scores beyond what chance allows on the audit's test"
    s = (f"Evidence of derivation (p < alpha = {alpha:g}) means the suspect {what}: statistical evidence that it "
         "was derived from your model or trained on its private data")
    if _calibrated(protocol):
        s += f"; an innocent model is wrongly flagged at most {alpha * 100:g}% of the time"
    else:
        s += (f" (the {protocol!r} protocol's p-values are not calibrated: it has accused innocent models, so read "
              "this verdict with care)")
    return s + (". No evidence of derivation is not proof of innocence: a copy that was changed a lot (for example "
                "distilled through other data) can weaken the signal.")


def executive_summary(report: dict[str, Any]) -> dict[str, Any]:
    """The report's opening in plain words: ``headline`` (one sentence), ``items`` (one per suspect, and one per
    suspect that could not be verified: ``name``, ``stolen`` True/False/None, ``text``), ``meaning`` and ``note``."""
    alpha = _alpha(report)
    suspects = report.get("suspects") or []
    errors = report.get("errors") or {}
    items = []
    for s in suspects:
        r = _reading(s, alpha)
        text = "evidence of derivation" if r.stolen else "no evidence of derivation"
        items.append({"name": s["name"], "stolen": r.stolen, "text": f"{text} (p = {format_p(r.p_value)})"})
    for name, why in errors.items():
        items.append({"name": name, "stolen": None, "text": f"could not be verified ({why})"})
    return {"headline": headline([_reading(s, alpha) for s in suspects], alpha, failed=len(errors)),
            "items": items, "meaning": meaning(_protocol(report), alpha),
            "note": (report.get("case") or {}).get("note")}


def compared(s: dict[str, Any]) -> str:
    """What the suspect's verdict compared, in words (e.g. "loss on 300 training vs 400 unseen samples")."""
    e = (s.get("evidence") or {}).get(s.get("protocol"), {})
    if s.get("protocol") == "membership" and "members" in e:
        score = "errors" if e.get("score") == "error" else "loss"
        return (f"{score} on {e['members']} training vs {e['controls']} unseen samples"
                + (" (labels only)" if s.get("label_only") else ""))
    if s.get("protocol") == "holmes" and "m" in e:
        return f"Holmes meta-classifier P(stolen) on {e['m']} held-out rows of D_s, against 0.5"
    if s.get("protocol") == "paper" and "m" in e:
        return f"paper protocol: {e.get('draws', '?')} draws of {e['m']} rows of D_s"
    return f"the {s.get('protocol')!r} protocol on {s.get('m')} samples"


def _when(created: str | None) -> str:
    if not created:
        return ""
    try:
        t = datetime.datetime.fromisoformat(created)
    except ValueError:
        try:  # records before ISO offsets: +0200
            t = datetime.datetime.strptime(created, "%Y-%m-%dT%H:%M:%S%z")
        except ValueError:
            return created
    if t.tzinfo is None:
        return t.strftime("%d %B %Y, %H:%M")
    off = t.strftime("%z")
    return t.strftime("%d %B %Y, %H:%M") + f" (UTC{off[:3]}:{off[3:]})"


# ----------------------------------------------------------------------------------------------------------------
# HTML

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
.badge{display:inline-block;color:#fff;padding:1px 8px;border-radius:8px;font-size:.9em;white-space:nowrap}
.badge.stolen{background:#b3261e}.badge.clear{background:#1b6e3a}.badge.failed{background:#8a5a00}
.supporting{border:1px dashed #b6c2cf;border-radius:6px;padding:.2em 1em .6em;background:#fbfbfc;margin-top:1.6em}
.supporting h2{border:0;margin-top:.6em}
.small,small{color:#5b6b7c;font-size:.85em}
code{font-size:.85em;overflow-wrap:anywhere;word-break:break-all}
.fig{margin:1.2em 0;break-inside:avoid;page-break-inside:avoid;max-width:100%;overflow:hidden}
pre{white-space:pre-wrap;word-break:break-all;font-size:11px;max-height:40em;overflow:auto;background:#f6f8fa;
 padding:.6em}
.print-only{display:none}
@page{size:A4;margin:14mm 12mm 14mm 12mm}
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


def _e(x: Any) -> str:
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
    when = _when(report.get("created"))
    if when:
        parts.append(f"Audited on {_e(when)}")
    if case.get("auditor"):
        parts.append(("by " if parts else "Audited by ") + _e(case["auditor"]))
    meta = f"<p class='meta'>{' '.join(parts)}</p>" if parts else ""
    if name:
        return f"<p class='kicker'>Holmes forensics &mdash; ownership audit</p><h1>{_e(name)}</h1>{meta}"
    return f"<h1>Holmes forensics &mdash; ownership audit</h1>{meta}"


def _summary_html(summ: dict[str, Any]) -> str:
    items = "".join(
        f"<li><b>{_e(i['name'])}</b>: <span class='{_cls(i['stolen'])}'>{_e(i['text'])}</span></li>"
        for i in summ["items"])
    note = f"<p class='note'><b>Auditor's note.</b> {_e(summ['note'])}</p>" if summ.get("note") else ""
    return (f"<section class='summary' id='executive-summary'><p class='kicker'>Executive summary</p>"
            f"<p class='headline'>{_e(summ['headline'])}</p>{f'<ul>{items}</ul>' if items else ''}"
            f"<p>{_e(summ['meaning'])}</p>{note}</section>")


def _verdict_table(report: dict[str, Any]) -> str:
    alpha = _alpha(report)
    rows = []
    for s in report.get("suspects") or []:
        r = _reading(s, alpha)
        rows.append(f"<tr><td><b>{_e(s['name'])}</b></td><td>{_badge(r.stolen)}</td>"
                    f"<td class='num'>{format_p(r.p_value)}</td><td>{_e(compared(s))}</td></tr>")
    for name, why in (report.get("errors") or {}).items():
        rows.append(f"<tr><td><b>{_e(name)}</b></td><td>{_badge(None)}</td><td class='num'>-</td>"
                    f"<td>{_e(why)}</td></tr>")
    if not rows:
        return "<p>No suspect has been verified.</p>"
    return ("<table class='verdicts'><colgroup><col style='width:28%'><col style='width:22%'><col style='width:14%'>"
            "<col style='width:36%'></colgroup><thead><tr><th>suspect</th><th>verdict</th><th class='num'>p-value</th>"
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
        rows.append(f"<tr><td>{_e(s['name'])}</td><td class='num'>{dp}</td><td class='num'>{format_p(paper)}</td></tr>")
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
        rows.append(f"<tr><td>{_e(s['name'])}</td><td><code>{_e(where)}</code></td>"
                    f"<td>{_e(s.get('kind') or 'unknown')}</td>"
                    f"<td><code>{_e(s.get('fingerprint') or ('black-box answers' if s.get('answers') else '-'))}</code>"
                    f"</td><td>{'labels' if s.get('label_only') else 'logits'}</td></tr>")
    table = ("<table class='ids'><colgroup><col style='width:21%'><col style='width:21%'><col style='width:13%'>"
             "<col style='width:33%'><col style='width:12%'></colgroup><thead><tr><th>suspect</th><th>source</th>"
             "<th>known kind</th><th>weights fingerprint (SHA-256)</th><th>answers</th></tr></thead>"
             f"<tbody>{''.join(rows)}</tbody></table>") if rows else ""
    return f"""<h2>Audit setup</h2>
<p>Victim <code>{_e(v.get('source'))}</code> ({_e(v.get('arch'))}, fingerprint <code>{_e(v.get('fingerprint'))}</code>);
protocol <b>{_e(cfg.get('protocol'))}</b>, alpha {_e(cfg.get('alpha'))}, seed {_e(cfg.get('seed'))}.
D_s: {_e(a.get('d_s_size'))} samples; membership test: {_e(a.get('members'))} training samples (members) and
{_e(a.get('controls'))} unseen samples (controls). "Known kind" is the ground truth where it is known (the demo's
suspects), never an input to the verdict.</p>{table}"""


def _figure_html(fig: Any, first: bool, takeaway: str = "") -> str:
    """One figure (its own title and subtitle) with its takeaway, kept whole on a printed page."""
    plot = fig.to_html(full_html=False, include_plotlyjs=first, config={"displaylogo": False, "responsive": True})
    said = f"<p class='takeaway'><b>Takeaway:</b> {_e(takeaway)}</p>" if takeaway else ""
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
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>{CSS}</style></head><body>
{_header(report)}
{_summary_html(summ)}
<h2>Verdict</h2>
{_verdict_table(report)}
{_supporting(report)}
{_setup(report)}
{'<h2>Figures</h2>' + plots_html if plots_html else ''}
<h2>How to read this report</h2>
<p>{_e(summ['meaning'])} A large p-value is not proof of innocence. Anyone with the same
models and data can re-run every verification from the JSON audit record (<code>holmes-forensics reverify</code>):
on the same kind of CPU with the same thread count, or the same GPU and precision (the record's
<code>audit.runtime</code>), the p-values come out the same bit for bit; elsewhere up to floating-point
differences.</p>
<p class="print-only small">The full JSON audit record (fingerprints, configs, per-sample scores) is in the HTML
report and in audit.json.</p>
<details><summary>Audit record (JSON)</summary><pre>{html.escape(json.dumps(report, indent=1)[:200000])}</pre></details>
</body></html>"""


# ----------------------------------------------------------------------------------------------------------------
# PDF

NO_BROWSER = ("install chromium: sudo apt-get install chromium, or set FORENSICS_CHROMIUM to a Chrome/Chromium "
              "binary; the HTML report has the same content")


def find_browser() -> str:
    """The Chromium/Chrome binary that prints the PDF: ``$FORENSICS_CHROMIUM``, else chromium, chromium-browser or
    google-chrome on the PATH; a :class:`PdfRenderError` that says what to do when there is none."""
    env = settings.current().chromium
    if env:
        found = shutil.which(env)
        if found is None:
            raise PdfRenderError(f"{settings.CHROMIUM}={env!r} is not an executable browser; {NO_BROWSER}")
        return found
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    raise PdfRenderError(f"no browser to print the PDF report with (looked for {', '.join(BROWSERS)}): {NO_BROWSER}")


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # the browser's own child processes too
    except (ProcessLookupError, PermissionError):
        proc.kill()
    proc.wait()


def render_pdf(html_text: str, *, timeout: float = 120.0, browser: str | None = None) -> bytes:
    """Print the HTML report to an A4 PDF with headless Chromium (the figures drawn by the inlined plotly.js).

    Raises :class:`PdfRenderError` when no browser is found (install chromium or set ``FORENSICS_CHROMIUM``), when
    it fails (its stderr's tail in the message) or when it takes longer than ``timeout`` seconds."""
    exe = browser or find_browser()
    with tempfile.TemporaryDirectory(prefix="holmes-pdf-") as tmp:
        page, out = Path(tmp) / "report.html", Path(tmp) / "report.pdf"
        page.write_text(html_text, encoding="utf-8")
        cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
               "--no-default-browser-check", "--disable-extensions", "--disable-background-networking",
               "--hide-scrollbars", "--mute-audio", f"--user-data-dir={Path(tmp) / 'profile'}",
               # plotly draws the figures for a 900 px wide window; the print CSS scales them (zoom .78) to A4 width
               "--window-size=900,1200", "--no-pdf-header-footer", "--run-all-compositor-stages-before-draw",
               "--virtual-time-budget=20000", f"--print-to-pdf={out}", page.as_uri()]
        try:
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp,
                                    start_new_session=True, env=settings.child_environment(HOME=tmp))
        except OSError as e:
            raise PdfRenderError(f"could not start {exe} ({e}); {NO_BROWSER}") from e
        try:
            _, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired as e:
            _kill(proc)
            raise PdfRenderError(f"{exe} did not print the PDF within {timeout:g} s; retry, or use the HTML "
                                 "report (same content)") from e
        tail = err.decode("utf-8", "replace").strip()[-1500:]
        if proc.returncode != 0 or not out.is_file() or out.stat().st_size == 0:
            raise PdfRenderError(f"{exe} could not print the PDF (exit status {proc.returncode}"
                                 f"{', no file written' if not out.is_file() else ''}); its last messages:\n{tail}")
        data = out.read_bytes()
    if not data.startswith(b"%PDF"):
        raise PdfRenderError(f"{exe} wrote something that is not a PDF; its last messages:\n{tail}")
    return data
