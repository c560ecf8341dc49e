"""Step 5: the case details, the executive summary, and the downloads: HTML report, PDF report, JSON audit record."""
from __future__ import annotations

import hashlib
import json

import streamlit as st

from dashboard.nav import routed
from dashboard.state import current_case
from dashboard.widgets import md_text, need_audit, show_error
from forensics.audit.verdict import format_p
from forensics.cases.casefile import case_report
from forensics.report.html import audit_figures, audit_takeaways, render_html
from forensics.report.pdf import render_pdf
from forensics.report.record import record_digest
from forensics.report.summary import executive_summary

routed()
st.title("Report")
if not need_audit("the report downloads"):
    st.stop()
case = current_case()


def info_input(field: str, widget, label: str, **kwargs) -> None:
    """A text input kept in the case's info (so it goes into the record and the report)."""
    key = f"report_{field}_{id(case)}"
    if key not in st.session_state:  # back on the page, or another case: start from what the case holds
        st.session_state[key] = case.info.get(field, "")
    value = widget(label, key=key, **kwargs).strip()
    if value:
        case.info[field] = value
    else:
        case.info.pop(field, None)


with st.container(border=True):
    st.markdown("**About this case** (optional, printed at the top of the report)")
    c1, c2 = st.columns(2)
    with c1:
        info_input("case_name", st.text_input, "Case name", placeholder="e.g. Acme Vision v2 vs. listing #4411")
    with c2:
        info_input("auditor", st.text_input, "Auditor", placeholder="who ran this audit")
    info_input("note", st.text_area, "Note", height=80,
               placeholder="e.g. where the suspects came from, when they were downloaded or queried")

record = case_report(case)
created = record.pop("created")
# the same audit and case details keep one creation time in this session (and so one HTML and PDF)
digest = hashlib.sha256(json.dumps(record, sort_keys=True, default=str).encode()).hexdigest()
record["created"] = st.session_state.setdefault("report_created", {}).setdefault(digest, created)


@st.cache_data(show_spinner="Rendering the report…", max_entries=8)
def render(digest: str, created: str, _record: dict) -> tuple[str, str]:
    verdicts = [v for _, v in case.ordered_verdicts()]
    return json.dumps(_record, indent=1), render_html(_record, audit_figures(case.audit, verdicts),
                                                      audit_takeaways(case.audit, verdicts))


record_json, html = render(digest, record["created"], record)

summary = executive_summary(record)
with st.container(border=True):
    st.caption("EXECUTIVE SUMMARY")
    st.markdown(f"#### {md_text(summary['headline'])}")
    st.markdown("\n".join(f"- **{md_text(i['name'])}**: {md_text(i['text'])}" for i in summary["items"]))

c1, c2, c3 = st.columns(3)
with c1.container(border=True):
    st.markdown("**HTML report** — summary, verdicts, supporting evidence, plots and the full record in one file "
                "that opens offline.")
    st.download_button("Download report.html", html, file_name="holmes-audit-report.html", mime="text/html",
                       type="primary", icon=":material/download:")
with c2.container(border=True):
    st.markdown("**PDF report** — the same report on A4 pages, for readers who do not open HTML files.")
    key = (digest, record["created"])
    held = st.session_state.get("report_pdf")
    pdf = held[1] if held is not None and held[0] == key else None
    if pdf is None and st.button("Prepare the PDF", icon=":material/picture_as_pdf:"):
        with st.spinner("Printing the report to PDF…"):
            try:
                pdf = render_pdf(html)
                st.session_state.report_pdf = (key, pdf)
            except Exception as e:  # noqa: BLE001 - shown to the user; the HTML report still works
                show_error(e)
    if pdf is not None:
        st.download_button("Download report.pdf", pdf, file_name="holmes-audit-report.pdf", mime="application/pdf",
                           icon=":material/download:")
with c3.container(border=True):
    st.markdown("**JSON audit record** — model fingerprints and Hub revisions, data fingerprints, configs, seeds, "
                "library versions, per-sample scores and p-values.")
    st.download_button("Download audit.json", record_json, file_name="holmes-audit.json", mime="application/json",
                       icon=":material/download:")
st.markdown("Anyone with the same models and data can re-run every verification from the record; on the same kind "
            "of CPU with the same thread count (or the same GPU and precision: the record's `audit.runtime`) the "
            "p-values come out the same bit for bit:")
st.code("holmes-forensics reverify holmes-audit.json", language="bash")
st.markdown("For filing: the report's first page names the software version, the victim's full fingerprint, the "
            f"SHA-256 of the record's content (`{record_digest(record)[:16]}…`) and the report's own SHA-256; each "
            "page is numbered. Anyone can check them:")
st.code("holmes-forensics digest holmes-audit.json      # the record's SHA-256, as the report states it\n"
        "holmes-forensics digest holmes-audit-report.html  # the report unchanged since it was written?",
        language="bash")
with st.expander("Preview the record"):
    st.json({k: record[k] for k in ("case", "spec", "versions")}, expanded=False)
    st.dataframe([{"name": s["name"], "source": s.get("source"), "verdict": s["verdict"],
                   "p-value": format_p(s["p_value"]), "protocol": s["protocol"], "m": s["m"], "seed": s["seed"]}
                  for s in record["suspects"]], hide_index=True, width="stretch",
                 column_config={"p-value": st.column_config.TextColumn(help="scientific notation below 0.001"),
                                "m": st.column_config.NumberColumn(help="samples the test used")})
