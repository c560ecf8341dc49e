"""Step 4: the p-value verdict per suspect, in plain language."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from forensics.plots import pvalue_figure
from pages.common import fmt_p, need_audit, workspace

PROTOCOLS = {"membership": "Membership test (default, calibrated)", "holmes": "Holmes meta-classifier (held-out rows)",
             "paper": "Paper protocol (reference release)"}

st.title("Verdict")
if not need_audit("the verdicts"):
    st.stop()
ws = workspace()
a = ws.session.audit
c1, c2 = st.columns(2)
alpha = c1.select_slider("Significance level alpha", [0.001, 0.005, 0.01, 0.05, 0.1], value=a.config.alpha,
                         help="the accepted chance of accusing an innocent model")
available = [p for p in PROTOCOLS if any(p in v.evidence for v in ws.verdicts.values())]
protocol = c2.selectbox("Protocol", available, index=available.index(a.config.protocol) if a.config.protocol in available else 0,
                        format_func=PROTOCOLS.get)
if protocol != "membership":
    st.warning("This protocol's p-values are **not calibrated**: in our measurements it accused innocent models "
               "fine-tuned from the same foundation. Use it for comparison only.", icon=":material/warning:")

rows, shown = [], []
for s, v in ws.ordered_verdicts():
    e = v.evidence.get(protocol)
    if e is None:
        continue
    p = e["p_value"]
    dp = v.evidence.get("holmes", {}).get("delta_p") if protocol == "membership" else e.get("delta_p")
    stolen = p < alpha
    shown.append((s, v, p, dp, stolen))
    rows.append({"suspect": s.name, "kind (known in the demo)": s.kind or "unknown", "p-value": fmt_p(p),
                 "dP": None if dp is None else round(dp, 3), "verdict": "stolen" if stolen else "not stolen",
                 "m (samples)": e.get("m", e.get("members", 0) + e.get("controls", 0)),
                 "fingerprint": (v.fingerprint or "black-box")[:12]})

cols = st.columns(min(3, max(1, len(shown))))
for i, (s, v, p, dp, stolen) in enumerate(shown):
    with cols[i % len(cols)].container(border=True):
        st.markdown(f"**{s.name}**")
        if stolen:
            st.badge("stolen", icon=":material/gpp_maybe:", color="red")
        else:
            st.badge("no evidence of theft", icon=":material/verified_user:", color="green")
        m1, m2 = st.columns(2)
        m1.metric("p-value", fmt_p(p))
        m2.metric("dP", "-" if dp is None else f"{dp:+.3f}", help="Holmes score difference (supporting evidence)")
        if protocol == "membership":
            e = v.evidence["membership"]
            st.caption(f"accuracy on members {e['member_accuracy']:.3f} vs controls {e['control_accuracy']:.3f}; "
                       f"z = {e['z']:.2f}; {'labels only' if v.label_only else 'logits'}")
for name, err in ws.errors.items():
    st.warning(f"**{name}** could not be verified: {err}", icon=":material/warning:")

st.subheader("All suspects", anchor=False)
st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
if shown:
    st.plotly_chart(pvalue_figure([v for _, v, _, _, _ in shown], alpha), width="stretch")

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
{len(a.member_rows)} members, {len(a.control_rows)} controls, {a.config.strata} difficulty strata.
""")
st.page_link("pages/report.py", label="Next: 5 · Report", icon=":material/arrow_forward:")
