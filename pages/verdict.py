"""Step 4: the p-value verdict per suspect, in plain language."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard.auth import current_user
from dashboard.nav import link, routed
from dashboard.state import current_case, get_store
from dashboard.widgets import md_text, need_audit, show_error
from forensics.audit.verdict import describe_comparison, format_p, headline
from forensics.cases import casefile
from forensics.cases.compare import settings_rows, suspect_rows
from forensics.errors import ForensicsError
from forensics.protocols.registry import get_protocol, list_protocols
from forensics.report.checks import FAIL, NOT_MEASURED, PASS, WARN, audit_checks
from forensics.report.summary import meaning
from forensics.report.verdict_figures import pvalue_figure

routed()
st.title("Verdict")
if not need_audit("the verdicts"):
    st.stop()
case = current_case()
a = case.audit
c1, c2 = st.columns(2)
alpha = c1.select_slider("Significance level alpha", [0.001, 0.005, 0.01, 0.05, 0.1], value=a.config.alpha,
                         help="the accepted chance of accusing an innocent model")
available = [p.name for p in list_protocols() if any(p.name in v.evidence for v in case.verdicts.values())]
asked = st.session_state.pop("verdict_protocol", None)  # 7 · API audit opens this page on its protocol
first = asked if asked in available else a.config.protocol
protocol = c2.selectbox("Protocol", available, index=available.index(first) if first in available else 0,
                        format_func=lambda name: get_protocol(name).title)
if not get_protocol(protocol).calibrated:
    st.warning("This protocol's p-values are **not calibrated**: in our measurements it accused innocent models "
               "fine-tuned from the same foundation. Use it for comparison only.", icon=":material/warning:")

shown = [(s, v, r) for s, v in case.ordered_verdicts() if (r := v.under(protocol, alpha)) is not None]
with st.container(border=True):
    st.markdown(f"### {headline([r for _, _, r in shown], alpha, failed=len(case.errors))}")
    st.caption(meaning(protocol, alpha))
elsewhere = [v.suspect for _, v in case.ordered_verdicts() if protocol not in v.evidence]
if elsewhere:
    st.info(f"Not shown under this protocol: {md_text(', '.join(elsewhere))}, audited through an API with the "
            "sequential test (it asks only the queries the evidence needs). Choose the protocol **Sequential "
            "membership test** to see every suspect together.", icon=":material/api:")
waiting = [s.name for s in case.suspects if s.name not in case.verdicts and s.name not in case.errors]
if waiting:
    st.info(f"{len(waiting)} suspect{'s' if len(waiting) > 1 else ''} added since the last build "
            f"{'have' if len(waiting) > 1 else 'has'} no verdict yet: {md_text(', '.join(waiting))}. Build again on "
            "**2 · Shadow models**: the shadow models are reused from the store, so it takes seconds.",
            icon=":material/pending:")

MARKS = {PASS: ":green[:material/check_circle:]", WARN: ":orange[:material/warning:]",
         FAIL: ":red[:material/cancel:]", NOT_MEASURED: ":gray[:material/radio_button_unchecked:]"}
checks = audit_checks(a, protocol, case.power)
counts = {k: sum(c.status == k for c in checks) for k in MARKS}
summary = ", ".join(f"{n} {k}" for k, n in counts.items() if n)
with st.expander(f"Checks of this audit: {summary}", expanded=counts[WARN] + counts[FAIL] + counts[NOT_MEASURED] > 0):
    for c in checks:
        st.markdown(f"{MARKS[c.status]} **{c.name}** — {md_text(c.detail)}")
    if case.power is None:
        link("stress", label="Measure the detection power: 6 · Stress test", icon=":material/science:")


def cards(items) -> None:
    cols = st.columns(min(3, max(1, len(items))))
    for i, (s, v, r) in enumerate(items):
        with cols[i % len(cols)].container(border=True):
            st.markdown(f"**{md_text(s.name)}**")
            if r.stolen:
                st.badge("evidence of derivation", icon=":material/gpp_maybe:", color="red")
            else:
                st.badge("no evidence of derivation", icon=":material/verified_user:", color="green")
            st.metric("p-value", format_p(r.p_value), help="the chance of evidence at least this strong if the "
                      "suspect had never learned from your model; below alpha: evidence of derivation")
            st.caption(describe_comparison(v.evidence[protocol], protocol, alpha))


# many suspects (a scan): the flagged ones as cards, the others in the table, their cards folded away
MANY = 9
many = len(shown) > MANY
unflagged = [x for x in shown if not x[2].stolen] if many else []
cards([x for x in shown if x[2].stolen] if many else shown)
for name, err in case.errors.items():
    st.warning(f"**{md_text(name)}** could not be verified: {md_text(err)}", icon=":material/warning:")

st.subheader("All suspects", anchor=False)
victim_fp = a.victim.fingerprint
known = any(s.kind for s, _, _ in shown)  # the demo's ground truth; a user's own suspects have none
rows = [{"suspect": s.name, **({"known kind (demo)": s.kind or "-"} if known else {}), "p-value": format_p(r.p_value),
         "verdict": "evidence of derivation" if r.stolen else "no evidence", "samples compared": r.m,
         "answers": "labels only" if v.label_only else "logits",
         "weights": "the victim's own" if v.fingerprint == victim_fp else "other" if v.fingerprint else "black-box",
         "fingerprint (SHA-256)": v.fingerprint or "black-box"} for s, v, r in shown]
st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch",
             column_config={"weights": st.column_config.TextColumn(
                 help="whether the suspect's weights are byte for byte the victim's (the same fingerprint)")})
if unflagged:
    with st.expander(f"Cards of the {len(unflagged)} suspects without evidence of derivation"):
        cards(unflagged)
if shown:
    kinds = {s.name: s.kind for s, _, _ in shown}
    st.plotly_chart(pvalue_figure([v for _, v, _ in shown], alpha, protocol, kinds=kinds), width="stretch")

with st.expander("Supporting evidence (not the verdict): Holmes's dP and the paper's protocol"):
    st.markdown("**dP** is the Holmes meta-classifier's score difference between a suspect and the benign shadow, "
                "and **paper p** the original paper's test on it. Both are shown for comparison with the paper: "
                "innocent models fine-tuned from the same foundation can have a higher dP than thefts, so neither "
                "decides the verdict.")
    sup = [{"suspect": s.name, "dP": None if r.delta_p is None else round(r.delta_p, 3),
            "paper protocol p": format_p(paper.p_value) if (paper := v.under("paper", alpha)) else "-"}
           for s, v, r in shown]
    st.dataframe(pd.DataFrame(sup), hide_index=True, width="stretch")

design = a.membership
with st.container(border=True):
    if protocol == "membership":
        st.markdown(f"""
**What the test means.** For each suspect we ask: *does it fit the victim's private training samples better than
unseen samples from the same collection, among samples of equal difficulty?* A model that never learned from the
victim (or its data) cannot tell those samples apart, so for an innocent model the p-value is uniformly distributed:
it falls below alpha = {alpha} only {alpha:.1%} of the time.

**Evidence of derivation** (p < alpha) is strong statistical evidence that the suspect was derived from the victim, or
trained on its private data. **No evidence of derivation** (p ≥ alpha) is not a proof of innocence: a thief who
changed the model a lot (for example, distilled it into another architecture through other data) can weaken the
signal.

Audit settings: protocol `{protocol}`, seed {a.config.seed}, {len(design.member_rows)} members,
{len(design.control_rows)} controls, {a.config.strata} difficulty strata.
""")
    else:
        st.markdown(f"**What this protocol means.** {meaning(protocol, alpha)} No evidence is not a proof of "
                    f"innocence. Audit settings: protocol `{protocol}`, seed {a.config.seed}.")
with st.expander("Compare with another audit (settings, verdicts, p-values)"):
    others = [r for r in casefile.recent_cases(get_store(), 30, owner=current_user()) if r.id != case.id and r.verdicts]
    if not others:
        st.caption("No other audit with verdicts in this artifact store yet (a re-run with other settings is one).")
    else:
        other = st.selectbox("Audit B (A is this one)", others, format_func=lambda r: f"{r.title} · audit {r.id} · "
                             f"{r.status} · saved {r.updated.replace('T', ' ')[:16]}")
        try:
            mine, theirs = casefile.case_record(case), casefile.load_record(get_store(), other.id, owner=current_user())
            diff = settings_rows(mine, theirs)
            st.markdown("**Settings that differ**" if diff else "**Same settings** (victim, data and configuration)")
            if diff:
                st.dataframe(pd.DataFrame(diff), hide_index=True, width="stretch")
            st.markdown("**Verdicts side by side** (each audit at its own alpha)")
            st.dataframe(pd.DataFrame(suspect_rows(mine, theirs)), hide_index=True, width="stretch")
        except ForensicsError as e:
            show_error(e)
link("report", label="Next: 5 · Report", icon=":material/arrow_forward:")
