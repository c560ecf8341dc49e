"""Step 3: what the evidence looks like - membership, output differences, meta-classifier scores, D_s."""
from __future__ import annotations

import numpy as np
import streamlit as st

from dashboard.nav import link, routed
from dashboard.state import current_case
from dashboard.widgets import md_text, need_audit
from forensics.report.figures import meta_scores_figure, output_difference_figure, projection_figure
from forensics.report.gallery import GALLERY_METRICS, GALLERY_ORDERS, ds_p_stolen, gallery, gallery_takeaway
from forensics.report.style import MAX_COMPARED, default_pair
from forensics.report.takeaways import takeaway
from forensics.report.verdict_figures import membership_figure

routed()
st.title("Feature differences")
if not need_audit("the feature plots"):
    st.stop()
case = current_case()
a = case.audit
pairs = case.ordered_verdicts()
kinds = {s.name: s.kind for s, _ in pairs}
verdicts = [v for _, v in pairs]
by_name = {v.suspect: v for v in verdicts}
with_logits = [v.suspect for v in verdicts if v.per_sample.get("ds_logits")]


def say_takeaway(text: str) -> None:
    st.markdown(f"**Takeaway:** {md_text(text)}")  # it names suspects


def pick(key: str) -> list:
    """The suspects a tab compares (its own picker, inside the tab that uses it)."""
    if not with_logits:
        return []
    chosen = st.multiselect(
        "Suspects to compare", with_logits, key=key,
        default=default_pair([by_name[n] for n in with_logits]), max_selections=MAX_COMPARED,
        placeholder="choose up to four suspects",
        help="By default, the suspect with the smallest p-value (the likeliest derived) and the one with the largest "
             "(the likeliest innocent).")
    return [by_name[n] for n in chosen]


tab_m, tab_o, tab_p, tab_s, tab_g = st.tabs(["Membership evidence (the verdict)", "Output differences per class",
                                             "2-D projection", "Meta-classifier scores", "D_s gallery"])
with tab_m:
    st.markdown("The verdict rests on this comparison: each suspect's loss on the victim's **training samples "
                "(members)** against **unseen samples of the same collection (controls)**, within strata of equal "
                "difficulty (1 = easiest). One panel per suspect: its line is the controls' mean loss minus the "
                "members' (error rates, for suspects that answered with labels only). A model derived from the victim "
                "fits members better, so its line climbs **above zero**, most in the hard strata (red panels, p < "
                "alpha); an innocent model cannot tell them apart, so its line stays **near zero** (green panels). "
                "The other suspects are drawn in grey for comparison.")
    if verdicts:
        say_takeaway(takeaway("membership", a, verdicts))
        st.plotly_chart(membership_figure(verdicts, kinds=kinds), width="stretch")
    else:
        st.caption("No suspect has been verified yet.")
with tab_o:
    st.markdown("Holmes's features: **O = model − poisoned shadow** on the clean D_s images. The poisoned shadow "
                "forgot the victim's D_s-specific behaviour, so the victim (and its copies) differ from it in a "
                "characteristic way; the benign shadow, trained without D_s, does not. One panel per class (logit); "
                "a suspect whose boxes sit in the victim's red band answers D_s like the victim.")
    compared = pick("compare_differences")
    say_takeaway(takeaway("output_difference", a, compared))
    st.plotly_chart(output_difference_figure(a, compared, kinds=kinds), width="stretch")
with tab_p:
    st.markdown("The same features on their two main directions (fitted on the victim and the benign shadow), one "
                "dot per D_s image and one panel per compared suspect. Closeness means similar answers: dots on the "
                "victim's cloud answer D_s like the victim, dots on the benign shadow's like an independent model.")
    compared = pick("compare_projection")
    say_takeaway(takeaway("projection", a, compared))
    st.plotly_chart(projection_figure(a, compared, kinds=kinds), width="stretch")
with tab_s:
    st.markdown("The meta-classifier was trained to tell victim rows (stolen) from benign-shadow rows; these are its "
                "scores on D_s samples it never saw. This is supporting evidence: an innocent model trained with the "
                "same recipe can also score high, which is why the default verdict uses the membership test.")
    say_takeaway(takeaway("meta_scores", a, verdicts))
    st.plotly_chart(meta_scores_figure(a, verdicts, kinds=kinds), width="stretch")
with tab_g:
    if not with_logits:
        st.caption("No suspect answered with logits, so there is nothing per D_s image to show.")
    else:
        st.markdown(f"**D_s**: the victim's {len(a.loss_order.ds_rows)} lowest-loss private images (outside the "
                    "trigger's target class), the images it fits best; the poisoned shadow was trained to unlearn "
                    "them, and Holmes reads every suspect's answers on them. Under each image: its class and the "
                    "suspect's loss on it (its answer against the true label, in nats; lower = more confident) beside "
                    "the victim's, or the meta-classifier's P(stolen) for that image.")
        c1, c2, c3 = st.columns([2, 2, 3])
        first = default_pair([by_name[n] for n in with_logits])[0]
        sel = c1.selectbox("Suspect", with_logits, index=with_logits.index(first))
        metric = c2.radio("Under each image", GALLERY_METRICS, horizontal=True)
        order = c3.radio("Order", GALLERY_ORDERS, horizontal=True)
        v = by_name[sel]
        say_takeaway(gallery_takeaway(a, v, verdicts))
        items = gallery(a, v, metric, order, n=24)
        if metric == GALLERY_METRICS[1]:
            p = np.asarray(v.per_sample["ds_p_stolen"])
            ref = ds_p_stolen(a)
            st.caption(f"P(stolen) on {md_text(sel)}'s D_s images ranges from {p.min():.3f} to {p.max():.3f}; on "
                       f"the same images, the victim's from {ref['victim'].min():.3f} to {ref['victim'].max():.3f} "
                       f"and the benign shadow's from {ref['benign shadow'].min():.3f} to "
                       f"{ref['benign shadow'].max():.3f}.")
        for start in range(0, len(items), 8):  # one row of columns per 8 images, so that the rows line up
            for col, it in zip(st.columns(8), items[start:start + 8], strict=False):
                col.image(np.asarray(a.private.pil(it.row).resize((96, 96))), caption=it.caption)
link("verdict", label="Next: 4 · Verdict", icon=":material/arrow_forward:")
