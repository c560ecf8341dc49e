"""Small widgets the pages share: empty states, error messages, the sidebar, model cards."""
from __future__ import annotations

import html
import logging
import time

import streamlit as st

from forensics.errors import ForensicsError
from forensics.jobs import Job
from forensics.progress import format_seconds, overall_fraction

from .nav import page
from .state import current_case, current_job, get_store

log = logging.getLogger("forensics.app")


JOB_TITLES = {"audit": "Building the audit", "reopen": "Reopening the audit"}


SPINNER = ("<style>@keyframes hf-spin{to{transform:rotate(360deg)}}.hf-spin{display:inline-block;width:.9em;"
           "height:.9em;border:.15em solid #c9d3de;border-top-color:#1f4e79;border-radius:50%;"
           "animation:hf-spin .8s linear infinite;vertical-align:-.1em;margin-right:.45em}</style>"
           "<span class='hf-spin' role='progressbar' aria-label='running'></span>")


def job_progress(job: Job, *, expanded: bool = True) -> None:
    """A running (or finished) job as a list of stages: a check mark when done, a bar with the time left for the
    running one, an empty circle for those to come.  The header turns while the job runs (an animated spinner,
    never a check mark before the end)."""
    views = job.stages()
    title = JOB_TITLES.get(job.name, job.name)
    with st.container(border=True):
        if job.running:
            frac = overall_fraction(views)  # the views already read, not the events again
            st.markdown(f"{SPINNER}<b>{title}</b>: running, {frac:.0%} done, {job.seconds:.0f} s so far",
                        unsafe_allow_html=True)
            st.progress(frac)
        elif job.status == "done":
            st.markdown(f":green[:material/check_circle:] **{title}**: done in {job.seconds:.0f} s")
        else:
            st.markdown(f":red[:material/error:] **{title}**: stopped after {job.seconds:.0f} s")
        if not expanded:
            return
        if not views:
            st.markdown(f"{SPINNER}Starting…", unsafe_allow_html=True)
        for v in views:
            if v.status == "done":
                st.markdown(f":green[:material/check_circle:] {v.title} :gray[— {v.detail or 'done'} "
                            f"({v.elapsed(0):.0f} s)]")
            elif v.status == "failed":
                st.markdown(f":red[:material/cancel:] {v.title} :red[— {v.detail or 'failed'}]")
            elif v.status == "running" and job.running:
                st.markdown(f"{SPINNER}<b>{html.escape(v.title)}</b>", unsafe_allow_html=True)  # user names
                left = "estimating the time left" if v.eta is None else f"about {format_seconds(v.eta)} left"
                st.progress(v.fraction or 0.0,
                            text=f"{v.work or 'working'} · {v.elapsed(time.time()):.0f} s so far · {left}")
            elif v.status == "running":  # the job stopped in this stage
                st.markdown(f":red[:material/cancel:] {v.title} :gray[— stopped here]")
            else:
                st.markdown(f":gray[:material/radio_button_unchecked: {v.title}]")


def need_audit(what: str) -> bool:
    """Show a helpful empty state (and return False) when the audit has not run yet."""
    c = current_case()
    job = current_job()
    if c.audit is not None:
        if job is not None and job.running:
            st.caption(f":material/hourglass_top: {JOB_TITLES.get(job.name, 'A build')} is running "
                       f"({job.fraction_done():.0%} done): these are the previous results until it finishes.")
        return True
    if job is not None and job.running:
        running_note(job, what)
        return False
    if c.spec is None:
        st.info(f"Nothing to show yet: {what} appear once an audit has run. Start on **1 · Load** "
                "(one click loads the offline demo).", icon=":material/info:")
        if st.button("Go to 1 · Load", type="primary"):
            st.switch_page(page("load"))
    else:
        st.info(f"The audit is set up but has not run yet: {what} appear once the shadow models are built.",
                icon=":material/info:")
        if st.button("Go to 2 · Shadow models", type="primary"):
            st.switch_page(page("shadows"))
    return False


def running_note(job: Job, what: str) -> None:
    """What a page says while the audit job runs: how far it is, and where to watch it."""
    st.info(f"{JOB_TITLES.get(job.name, 'The audit')}: **running, {job.fraction_done():.0%} done** "
            f"({job.seconds:.0f} s so far). {what.capitalize()} appear when it finishes; "
            "**2 · Shadow models** shows each stage.", icon=":material/hourglass_top:")
    if st.button("Watch it on 2 · Shadow models", type="primary"):
        st.switch_page(page("shadows"))


def show_error(e: Exception, names: dict[str, str] | None = None) -> None:
    """A readable message for the user; the stack trace only goes to the server log.  ``names`` maps paths in the
    store (uploads) to the user's own file names, so a message never shows the server's internals."""
    text = str(e)
    for path, name in sorted((names or {}).items(), key=lambda kv: -len(kv[0])):
        text = text.replace(path, name)
    if isinstance(e, ForensicsError):
        st.error(text, icon=":material/error:")
    else:
        log.exception("unexpected error in the dashboard")
        st.error(f"Something went wrong ({type(e).__name__}: {text}). Nothing already computed is lost; "
                 "please retry, and report the problem if it persists.", icon=":material/error:")


def sidebar_status() -> None:
    c = current_case()
    with st.sidebar:
        st.caption("AUDIT")
        if c.spec is None:
            st.write("No victim loaded.")
        else:
            shown = (c.cards.get("victim") or {}).get("source", "")
            st.write(f"**Victim** `{shown if shown.startswith('uploaded ') else c.spec.victim}`")
            st.write(f"**Suspects** {len(c.suspects)}")
            job = current_job()
            if job is not None and job.running:
                st.write(f"**{JOB_TITLES.get(job.name, 'Audit')}:** running, {job.fraction_done():.0%} done")
            elif c.audit is not None:
                n_stolen = sum(v.stolen for v in c.verdicts.values())
                st.write(f"**Verdicts** {n_stolen} of {len(c.verdicts)} flagged (p < alpha)")
            else:
                st.write("Shadow models: not built yet")
        st.caption(f"Artifact store: `{get_store().root}`")


def model_card(title: str, card: dict) -> None:
    with st.container(border=True):
        st.markdown(f"**{title}**")
        if "answers" in card:
            st.caption(f"black-box answers `{card['answers']}`" + (" (labels only)" if card.get("label_only") else ""))
            return
        if "arch" not in card:  # reopened from a record that kept no card: what the record says
            st.caption(f"source `{card.get('source', '?')}`")
            if card.get("fingerprint"):
                st.caption(f"fingerprint `{card['fingerprint'][:16]}…`")
            return
        st.caption("architecture" + (f" · {card['library']}, {card['format']}" if card.get("library") else ""))
        st.markdown(f"`{card['arch']}`")  # on its own line: long timm names are not broken mid-word
        c1, c2, c3 = st.columns(3)
        c1.caption("parameters")
        c1.markdown(f"{card['num_params'] / 1e6:.2f} M")
        c2.caption("classes")
        c2.markdown(str(card["num_classes"]))
        acc = card.get("accuracy")
        c3.caption("accuracy", help=f"on the {card['accuracy_on']}" if card.get("accuracy_on") else
                   "measured when the audit runs, for the models that classify your classes (not the foundation, "
                   "whose head is new)")
        c3.markdown("n/a" if acc is None else f"{acc:.3f}")
        if card.get("split"):
            st.caption(f"fine-tuning split: {card['split']}")
        st.caption("fingerprint (SHA-256 of the weights)")
        st.code(card["fingerprint"][:24] + "…", language=None, wrap_lines=True)
        src = card["source"] + (f" @ {card['revision'][:12]}" if card.get("revision") else "")
        st.caption("source")
        st.code(src, language=None, wrap_lines=True)
