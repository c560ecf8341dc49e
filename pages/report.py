"""Step 5: download the self-contained HTML report and the JSON audit record."""
from __future__ import annotations

import json

import streamlit as st

from dashboard.state import current_case
from dashboard.widgets import need_audit
from forensics.report import audit_figures, case_report, render_html

st.title("Report")
if not need_audit("the report downloads"):
    st.stop()
case = current_case()


@st.cache_data(show_spinner="Rendering the report…",
               hash_funcs={dict: lambda d: json.dumps(d, sort_keys=True, default=str)})
def render(record: dict) -> tuple[str, str]:
    verdicts = [v for _, v in case.ordered_verdicts()]
    return json.dumps(record, indent=1), render_html(record, audit_figures(case.audit, verdicts))


record = case_report(case)
record.pop("created", None)
record_json, html = render(record)
c1, c2 = st.columns(2)
with c1.container(border=True):
    st.markdown("**HTML report** — verdicts, plots and the full record in one file that opens offline.")
    st.download_button("Download report.html", html, file_name="holmes-audit-report.html", mime="text/html",
                       type="primary", icon=":material/download:")
with c2.container(border=True):
    st.markdown("**JSON audit record** — model fingerprints and Hub revisions, data fingerprints, configs, seeds, "
                "library versions, per-sample scores and p-values.")
    st.download_button("Download audit.json", record_json, file_name="holmes-audit.json", mime="application/json",
                       icon=":material/download:")
st.markdown("Anyone with the same models and data can re-run every verification from the record and must get the "
            "same p-values:")
st.code("holmes-forensics reverify holmes-audit.json", language="bash")
with st.expander("Preview the record"):
    st.json({k: record[k] for k in ("spec", "versions")}, expanded=False)
    st.dataframe([{k: s[k] for k in ("name", "source", "p_value", "verdict", "protocol", "m", "seed")}
                  for s in record["suspects"]], hide_index=True)
