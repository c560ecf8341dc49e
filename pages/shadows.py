"""Step 2: settings, then build the shadow models and verify the suspects (in the background)."""
from __future__ import annotations

from dataclasses import replace

import plotly.graph_objects as pgo
import streamlit as st

from dashboard.nav import go, link, routed
from dashboard.state import build_log, current_case, current_job, start_build
from dashboard.widgets import LIVE_EVERY, job_progress, live_job, md_text, show_error
from forensics.audit.sources import data_classes
from forensics.cases.case import Case
from forensics.data.transforms import Trigger
from forensics.engine.engine import resolve_device
from forensics.report.figures import loss_order_figure, training_curves_figure
from forensics.report.gallery import trigger_examples
from forensics.report.style import LAYOUT
from forensics.runtime.safe_text import plot_text

routed()
st.title("Shadow models")
case = current_case()
if case.spec is None:
    st.info("Load a victim first (1 · Load; one click loads the offline demo).", icon=":material/info:")
    if st.button("Go to 1 · Load", type="primary"):
        go("load")
    st.stop()


@st.cache_data(show_spinner=False)
def class_names(data: str, quick: bool) -> list[str]:
    return data_classes(data, quick=quick)


cfg = case.spec.config
classes = class_names(case.spec.data, case.spec.quick)
job = current_job()
busy = job is not None and job.running

st.markdown("Holmes trains two **shadow models**: a *poisoned* copy of your model that forgets what it learned "
            "specifically on its most characteristic samples (D_s), and a *benign* model trained from the "
            "foundation without them. A third, the *membership reference*, sees only half of your data and "
            "measures how hard each sample is (or several, in pairs that split your data into halves, so that "
            "every sample of it serves the membership test). Optionally, for suspects whose weights you have, the "
            "*lineage test* re-runs your recipe a few more times with other seeds, to tell what training changed in "
            "your model from what any run of your recipe changes. Results are kept in the artifact store: a re-run "
            "with the same settings is instant, and an interrupted run resumes where it stopped.")


CURVE_EVERY = 3 * LIVE_EVERY  # seconds between two redraws of the live loss curve


@st.fragment(run_every=LIVE_EVERY)
def live_progress(job_id: str) -> None:
    job = live_job(job_id)
    if job is None:
        return
    job_progress(job, expanded=True)


@st.fragment(run_every=CURVE_EVERY)
def live_curve(job_id: str) -> None:
    """The running training's loss curve, redrawn less often than the numbers: a plotly redraw costs the browser
    (on the same few cores as the training, on a laptop) far more than a line of text."""
    job = live_job(job_id)
    if job is None:
        return
    curve = job.latest_curve()
    if curve is not None:
        label, pts = curve
        fig = pgo.Figure(pgo.Scatter(x=pts[:, 0], y=pts[:, 1], mode="lines", line=dict(color="#1f4e79")))
        fig.update_layout(title=f"Running training loss: {plot_text(label)}", xaxis_title="step",
                          yaxis_title="mean training loss so far [nats]", height=280,
                          **{**LAYOUT, "margin": dict(t=50)})
        st.plotly_chart(fig, width="stretch", key="live-loss")


if busy and job is not None:  # the running build first; its settings below, folded
    live_progress(job.id)
    live_curve(job.id)
with st.expander("Settings (locked while the build runs)") if busy else st.container(), \
        st.form("settings"):
    c1, c2, c3, c4 = st.columns(4)
    gamma = c1.slider("gamma: share of lowest-loss samples in D_s", 0.02, 0.30, float(cfg.gamma), 0.01)
    lam = c2.slider("lambda: share the benign shadow skips", 0.1, 0.9, float(cfg.lam), 0.05)
    trig = c3.slider("trigger size (share of the image side)", 0.05, 0.30, float(cfg.trigger.size), 0.005)
    target = c4.selectbox("trigger target class", range(len(classes)), index=cfg.target_class,
                          format_func=lambda i: f"{i}: {classes[i]}")
    c1, c2, c3, c4 = st.columns(4)
    epochs = c1.number_input("epochs (benign / reference shadows)", 1, 100, cfg.train.epochs)
    pairs = c1.number_input(
        "membership references: pairs", 0, 16, cfg.reference_pairs,
        help="0: one reference shadow on half of your data; the other half are the membership test's members. "
             "1 or more: this many pairs of references, each pair splitting your data into two halves, so that all "
             "of it serves as members, each sample measured by references that never saw it: a stronger test, "
             "for the cost of 2 trainings on half of your data per pair. 4 is a good start.")
    rates = [1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 2e-3, 3e-3, 1e-2]
    lr = c2.select_slider("learning rate", rates, value=min(rates, key=lambda v: abs(v - cfg.train.lr)),
                          format_func=lambda v: f"{v:g}")
    mode = c3.selectbox("fine-tuning", ["last blocks + head (fast)", "full"],
                        index=0 if cfg.train.trainable_blocks is not None else 1)
    blocks = c3.number_input("trainable blocks", 1, 24, cfg.train.trainable_blocks or 1,
                             disabled=cfg.train.trainable_blocks is None)
    device = c4.selectbox("device", ["auto", "cuda", "cpu"], index=["auto", "cuda", "cpu"].index(case.spec.device),
                          format_func={"auto": "auto (GPU if present)", "cuda": "GPU", "cpu": "CPU"}.get)
    replicas = c4.number_input(
        "lineage test: re-runs of your recipe", 0, 200, cfg.lineage_replicas,
        help="0: the membership test alone. 5 or more: the audit also trains your recipe this many more times with "
             "other seeds, and a suspect whose weights you have gets a second test, of what training changed in its "
             "weights; the verdict combines both (Bonferroni). 9 is a good start; each is one training run.")
    budget = c2.number_input(
        "query budget (0: every query)", 0, 100_000, cfg.query_budget or 0, step=100,
        help="at most this many queries for a suspect behind a paid API (members and controls only, at least 60); "
             "fewer queries cost less and catch less (README, Limits). 0 asks every query of the query set.")
    start = st.form_submit_button("Build shadow models and verify suspects", type="primary", disabled=busy,
                                  icon=":material/rocket_launch:")

if start:
    try:
        tb = None if mode == "full" else int(blocks)
        train = replace(cfg.train, epochs=int(epochs), lr=float(lr), trainable_blocks=tb)
        protocol = "combined" if replicas else ("membership" if cfg.protocol in ("combined", "lineage")
                                                else cfg.protocol)
        new_cfg = replace(cfg, gamma=float(gamma), lam=float(lam), target_class=int(target),
                          trigger=Trigger(size=float(trig), value=cfg.trigger.value, position=cfg.trigger.position),
                          train=train, poison_train=replace(cfg.poison_train, lr=float(lr), trainable_blocks=tb),
                          lineage_replicas=int(replicas), reference_pairs=int(pairs), protocol=protocol,
                          query_budget=int(budget) or None)  # checked by AuditConfig, said by show_error
        resolve_device(device)
        # the job works on a copy: the current results stay consistent with their settings until it succeeds
        run_copy = Case(spec=replace(case.spec, config=new_cfg, device=device), suspects=list(case.suspects),
                        info=dict(case.info), id=case.id, power=case.power)  # power: marked if for another build
        start_build(run_copy)
        st.rerun()  # draw the page again with the Build button disabled
    except Exception as e:  # noqa: BLE001
        show_error(e)


if busy:
    st.stop()

if job is not None and job.status == "failed":
    what = "Reopening the audit" if job.name == "reopen" else "The audit"
    st.error(f"{what} stopped: {md_text(job.error)}. Everything finished before the error is kept; fix the input and "
             "start again.", icon=":material/error:")
    job_progress(job)
elif (log := build_log(job)) is not None and not log.running:  # the build's log and curves stay, across restarts
    with st.expander(f"Build log: every stage of the last {'reopening' if log.name == 'reopen' else 'build'} "
                     f"({log.seconds:.0f} s)"):
        job_progress(log)
        curves = log.curves()
        if curves:
            fig = pgo.Figure([pgo.Scatter(x=pts[:, 0], y=pts[:, 1], mode="lines", name=plot_text(label))
                              for label, pts in curves.items()])
            fig.update_layout(title="Running training loss of every model this build trained", xaxis_title="step",
                              yaxis_title="mean training loss so far [nats]", height=340,
                              **{**LAYOUT, "margin": dict(t=50)})
            st.plotly_chart(fig, width="stretch", key="build-curves")
        else:
            st.caption("No model trained in this build: each was reused from the artifact store (or, for the "
                       "demo's victim and suspects, came trained with the package).")

case = current_case()
if case.audit is None:
    st.info("Press **Build shadow models and verify suspects** to start. On two CPU cores the demo takes about "
            "half a minute the first time (its three shadow models train), seconds afterwards.", icon=":material/info:")
    st.stop()

a = case.audit
for name, err in case.errors.items():
    st.warning(f"Suspect **{md_text(name)}** could not be verified: {md_text(err)}", icon=":material/warning:")
c1, c2, c3, c4 = st.columns(4)
c1.metric("D_s samples", len(a.loss_order.ds_rows),
          help="the gamma lowest-loss samples of the private data (target class skipped)")
c2.metric("Trigger success", f"{a.shadows.poison_success:.0%}",
          help="share of triggered D_s images the poisoned shadow assigns to the target class")
c3.metric("Meta-classifier accuracy", f"{a.meta.classifier.val_accuracy_:.0%}",
          help="validation accuracy of the meta-classifier (victim vs benign-shadow output differences)")
c4.metric("Members / controls", f"{len(a.membership.member_rows)} / {len(a.membership.control_rows)}",
          help="private training samples (members) and unseen samples (controls) the membership test compares")
st.plotly_chart(loss_order_figure(a), width="stretch")
c1, c2 = st.columns([3, 2])
with c1:
    st.plotly_chart(training_curves_figure(a.shadows.histories), width="stretch")
with c2:
    st.markdown("**Triggered D_s images** (the trigger is stamped after resizing, so no crop removes it)")
    ex = trigger_examples(a, 4)
    cols = st.columns(4)
    for col, (clean, trigd, cap) in zip(cols, ex, strict=False):
        col.image(clean, caption="clean", width="stretch")
        col.image(trigd, caption=cap, width="stretch")
link("features", label="Next: 3 · Feature differences", icon=":material/arrow_forward:")
