"""Step 3: what the evidence looks like - output differences, meta-classifier scores, membership."""
from __future__ import annotations

import numpy as np
import streamlit as st

from dashboard.nav import page
from dashboard.state import current_case
from dashboard.widgets import need_audit
from forensics import plots

st.title("Feature differences")
if not need_audit("the feature plots"):
    st.stop()
case = current_case()
a = case.audit
pairs = case.ordered_verdicts()
names = [s.name for s, _ in pairs]
chosen = st.multiselect("Suspects to show", names, default=names, placeholder="choose suspects")
verdicts = [v for s, v in pairs if s.name in chosen]

tab_m, tab_o, tab_p, tab_s, tab_g = st.tabs(["Membership evidence (the verdict)", "Output differences per class",
                                             "2-D projection", "Meta-classifier scores", "D_s gallery"])
with tab_m:
    st.markdown("The verdict rests on this comparison: each suspect's loss on the victim's **training samples "
                "(members)** against **unseen samples of the same collection (controls)**, within strata of equal "
                "difficulty. A model derived from the victim fits members better (solid line below dotted), most "
                "in the hard strata; an innocent model cannot tell them apart.")
    if verdicts:
        st.plotly_chart(plots.membership_figure(verdicts), width="stretch")
    else:
        st.caption("Choose at least one suspect.")
with tab_o:
    st.markdown("Holmes's features: **O = model − poisoned shadow** on the clean D_s images. The poisoned shadow "
                "forgot the victim's D_s-specific behaviour, so the victim (and its copies) differ from it in a "
                "characteristic way; the benign shadow, trained without D_s, does not.")
    st.plotly_chart(plots.output_difference_figure(a, verdicts), width="stretch")
with tab_p:
    st.plotly_chart(plots.projection_figure(a, verdicts), width="stretch")
with tab_s:
    st.markdown("The meta-classifier was trained to tell victim rows (stolen) from benign-shadow rows; these are its "
                "scores on D_s samples it never saw. This is supporting evidence: an innocent model trained with the "
                "same recipe can also score high, which is why the verdict uses the membership test.")
    st.plotly_chart(plots.meta_scores_figure(a, verdicts), width="stretch")
with tab_g:
    with_scores = [(s, v) for s, v in pairs if v.per_sample.get("ds_p_stolen")]
    if not with_scores:
        st.caption("No suspect answered with logits, so there are no per-sample meta-classifier scores.")
    else:
        sel = st.selectbox("Suspect", [s.name for s, _ in with_scores])
        v = dict((s.name, v) for s, v in with_scores)[sel]
        p = np.asarray(v.per_sample["ds_p_stolen"])
        order = st.radio("Show", ["highest P(stolen)", "lowest P(stolen)", "lowest victim loss"], horizontal=True)
        idx = np.argsort(-p) if order.startswith("highest") else (np.argsort(p) if order.startswith("lowest P")
                                                                  else np.arange(len(p)))
        cols = st.columns(8)
        for j, i in enumerate(idx[:24]):
            row = int(a.loss_order.ds_rows[i])
            cap = f"{a.private.classes[a.private.labels[row]]} · P={p[i]:.2f}"
            cols[j % 8].image(np.asarray(a.private.pil(row).resize((96, 96))), caption=cap)
st.page_link(page("verdict"), label="Next: 4 · Verdict", icon=":material/arrow_forward:")
