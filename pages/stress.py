"""Step 6: the stress test - if someone stole my model this way, would this audit catch it?"""
from __future__ import annotations

import datetime

import pandas as pd
import streamlit as st

from dashboard.nav import routed
from dashboard.state import current_case, get_store, start_stress, stress_job
from dashboard.widgets import LIVE_EVERY, job_progress, live_job, md_text, need_audit, show_error
from forensics.audit.verdict import format_p
from forensics.demo import is_demo
from forensics.errors import ConfigError
from forensics.report.checks import power_summary
from forensics.zoo.bench import SMALL_ZOO, STRESS_ZOO
from forensics.zoo.entries import get_zoo_entry, list_zoo_entries, select_zoo_entries
from forensics.zoo.stress import ROLE_NOTES, load_stress_data, stress_figure, stress_rows, stress_test

routed()
st.title("Stress test")
st.markdown("**If someone stole your model this way, would this audit catch it?** The stress test simulates "
            "thefts of *your* victim (fine-tunes, pruning, distillation, answers through an API...) and innocent "
            "models of the same task, then verifies each with this audit. How often each simulated theft is flagged "
            "is the audit's detection power for that kind of theft: it tells you what a *no evidence* verdict rules "
            "out before you rely on it.")
if not need_audit("stress-test results"):
    st.stop()
case = current_case()
audit = case.audit
demo = is_demo(case.spec.data)
job = stress_job()  # this session's, or the one running for this audit before a reload
busy = job is not None and job.running

with st.form("stress"):
    c1, c2 = st.columns(2)
    thief_src = c1.text_input(
        "Thief's data", "demo:aux" if demo else "",
        help="images a thief would train on (a folder with one subfolder per class). Never the audit's private or "
             "held-out data: the stress test refuses images they share.")
    innocent_src = c2.text_input(
        "Innocent party's data", "demo:innocent" if demo else "",
        help="images of the same kind an honest party would train its own model on (a folder with one subfolder "
             "per class); they also measure each simulated model's fidelity")
    names = st.multiselect("Simulated suspects", [e.id for e in list_zoo_entries()], default=list(SMALL_ZOO),
                           format_func=lambda key: get_zoo_entry(key).title,
                           help="thefts and innocent models of the attack zoo; each is trained from your victim (or, "
                                "for innocents, from the foundation) through the same engine as the shadows")
    c1, c2 = st.columns([1, 3])
    runs = c1.number_input("runs per suspect (seeds)", 1, 5, 1,
                           help="more runs give a more precise detection rate, at the cost of more training")
    c2.caption(f"On a CPU most simulated models of the demo train in 5-60 s, a ResNet-18 from scratch in several "
               f"minutes; the standard set ({len(STRESS_ZOO)} suspects, with the hardest thefts) takes about an hour "
               "with 3 runs, the default pick a few minutes. Models already trained are reused from the artifact "
               "store.")
    run = st.form_submit_button("Run the stress test", type="primary", disabled=busy, icon=":material/science:")

if run and not busy:
    try:
        if not names:
            raise ConfigError("pick at least one simulated suspect")
        thief, innocent, _ = load_stress_data(audit, thief_src, innocent_src)
        job = start_stress(stress_test, audit, thief, innocent, select_zoo_entries(names), list(range(int(runs))))
        busy = True
    except Exception as e:  # noqa: BLE001
        show_error(e)


@st.fragment(run_every=LIVE_EVERY)
def live(job_id: str) -> None:
    j = live_job(job_id)
    if j is not None:
        job_progress(j)


if busy and job is not None:
    live(job.id)
    st.stop()
if job is None:
    st.info("Pick the simulated suspects and press **Run the stress test**.", icon=":material/info:")
    st.stop()
if job.status == "failed":
    st.error(f"The stress test stopped: {md_text(job.error)}. Models trained before the error are kept in the store.",
             icon=":material/error:")
    st.stop()

result = job.result
protocol, alpha = result.meta["protocol"], result.meta["alpha"]
rows = stress_rows(result, protocol, alpha)
if st.session_state.get("power_kept") != job.id:  # the power goes with the case: 4 · Verdict's checks read it
    case.power = power_summary(rows, protocol, alpha, build=audit.queries.fingerprint,
                               ran_at=datetime.datetime.now().astimezone().isoformat(timespec="seconds"))
    st.session_state.power_kept = job.id
thefts = [r for r in rows if r["role"] == "theft"]
caught = [r["name"] for r in thefts if r["flagged"] == r["runs"]]
missed = [r["name"] for r in thefts if r["flagged"] < r["runs"]]
false_alarms = [r for r in rows if r["kind"] == "innocent" and r["flagged"]]
head = (f"This audit flagged **{len(caught)} of {len(thefts)}** kinds of simulated theft in every run, and "
        f"**{len(false_alarms)}** of {sum(r['kind'] == 'innocent' for r in rows)} kinds of innocent model.")
apart = {role: sum(r["role"] == role for r in rows) for role in ("failed theft", "control")}
if any(apart.values()):
    head += " Not counted: " + " and ".join(
        f"{n} {'failed theft' if role == 'failed theft' else 'control'}{'s' if n != 1 else ''}"
        for role, n in apart.items() if n) + " (see the table)."
(st.success if not missed and not false_alarms else st.warning)(head, icon=":material/fact_check:")
if missed:
    st.markdown("*No evidence* from this audit does **not** rule out: " + "; ".join(f"*{m}*" for m in missed)
                + ".")
for why in result.meta.get("skipped", []):
    st.caption(f"Left out: {why}")
st.plotly_chart(stress_figure(result, protocol, alpha), width="stretch")
st.caption(f"Each dot is one simulated model's p-value under the audit's {protocol} test. Left of the dashed line "
           f"(alpha = {alpha}) the audit finds evidence of derivation; right of it, on the shaded side, no evidence "
           "(which is not a proof of innocence). Red dots (thefts) should sit left of it, green dots (innocents) "
           "right; pink (failed thefts) and grey (controls) are shown but not counted. P-values below 1e-20 are drawn "
           "at the left edge (hover for the value).")
table = pd.DataFrame([{
    "simulated suspect": r["name"], "kind": r["role"], "flagged": f"{r['flagged']} of {r['runs']}",
    "median p": format_p(r["median_p"]), "agreement": f"{r['agreement']:.0%}",
} for r in rows])
c1, c2 = st.columns([3, 2])
with c1:
    st.markdown("**Detection power per simulated suspect**")
    st.dataframe(table, hide_index=True, width="stretch")
    notes = [f"*{role}*: {why}" for role, why in ROLE_NOTES.items() if role in set(table["kind"])]
    if notes:
        st.caption("; ".join(notes) + ".")
with c2:
    st.markdown("**This audit's own verdicts**")
    if case.verdicts:
        st.dataframe(pd.DataFrame([{"suspect": e.name, "p": format_p(v.p_value),
                                    "verdict": "evidence" if v.stolen else "no evidence"}
                                   for e, v in case.ordered_verdicts()]), hide_index=True, width="stretch")
    else:
        st.caption("No suspects verified yet.")
st.caption(f"Stress test took {result.times.get('total', 0):.0f} s; artifact store `{get_store().root}`.")
