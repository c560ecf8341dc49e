"""Step 4: the p-value verdict per suspect, in plain language."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard.nav import page
from dashboard.state import current_case
from dashboard.widgets import need_audit
from forensics.plots import pvalue_figure
from forensics.protocols import get_protocol, list_protocols
from forensics.verify import format_p

st.title("Verdict")
if not need_audit("the verdicts"):
    st.stop()
case = current_case()
a = case.audit
c1, c2 = st.columns(2)
alpha = c1.select_slider("Significance level alpha", [0.001, 0.005, 0.01, 0.05, 0.1], value=a.config.alpha,
                         help="the accepted chance of accusing an innocent model")
available = [p.name for p in list_protocols() if any(p.name in v.evidence for v in case.verdicts.values())]
protocol = c2.selectbox("Protocol", available,
                        index=available.index(a.config.protocol) if a.config.protocol in available else 0,
                        format_func=lambda name: get_protocol(name).title)
if not get_protocol(protocol).calibrated:
    st.warning("This protocol's p-values are **not calibrated**: in our measurements it accused innocent models "
               "fine-tuned from the same foundation. Use it for comparison only.", icon=":material/warning:")

rows, shown = [], []
for s, v in case.ordered_verdicts():
    r = v.under(protocol, alpha)
    if r is None:
        continue
    shown.append((s, v, r))
    rows.append({"suspect": s.name, "kind (known in the demo)": s.kind or "unknown", "p-value": format_p(r.p_value),
                 "dP": None if r.delta_p is None else round(r.delta_p, 3), "verdict": r.verdict,
                 "m (samples)": r.m, "fingerprint": (v.fingerprint or "black-box")[:12]})

cols = st.columns(min(3, max(1, len(shown))))
for i, (s, v, r) in enumerate(shown):
    with cols[i % len(cols)].container(border=True):
        st.markdown(f"**{s.name}**")
        if r.stolen:
            st.badge("stolen", icon=":material/gpp_maybe:", color="red")
        else:
            st.badge("no evidence of theft", icon=":material/verified_user:", color="green")
        m1, m2 = st.columns(2)
        m1.metric("p-value", format_p(r.p_value))
        m2.metric("dP", "-" if r.delta_p is None else f"{r.delta_p:+.3f}",
                  help="Holmes score difference (supporting evidence)")
        if protocol == "membership":
            e = v.evidence["membership"]
            st.caption(f"accuracy on members {e['member_accuracy']:.3f} vs controls {e['control_accuracy']:.3f}; "
                       f"z = {e['z']:.2f}; {'labels only' if v.label_only else 'logits'}")
for name, err in case.errors.items():
    st.warning(f"**{name}** could not be verified: {err}", icon=":material/warning:")

st.subheader("All suspects", anchor=False)
st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
if shown:
    st.plotly_chart(pvalue_figure([v for _, v, _ in shown], alpha, protocol), width="stretch")

design = a.membership
with st.container(border=True):
    st.markdown(f"""
**What the test means.** For each suspect we ask: *does it fit the victim's private training samples better than
unseen samples from the same collection, among samples of equal difficulty?* A model that never learned from the
victim (or its data) cannot tell those samples apart, so for an innocent model the p-value is uniformly distributed:
it falls below alpha = {alpha} only {alpha:.1%} of the time.

**"Stolen"** (p < alpha) is strong statistical evidence that the suspect was derived from the victim, or trained on
its private data. **"No evidence of theft"** (p ≥ alpha) is not a proof of innocence: a thief who changed the model
a lot (for example, distilled it into another architecture through other data) can weaken the signal.

**dP** is the Holmes meta-classifier's score difference between the suspect and the benign shadow; it supports the
verdict but does not decide it. Audit settings: protocol `{a.config.protocol}`, seed {a.config.seed},
{len(design.member_rows)} members, {len(design.control_rows)} controls, {a.config.strata} difficulty strata.
""")
st.page_link(page("report"), label="Next: 5 · Report", icon=":material/arrow_forward:")
