"""Small widgets the pages share: empty states, error messages, the sidebar, model cards."""
from __future__ import annotations

import logging
import time

import streamlit as st

from forensics.errors import ForensicsError
from forensics.runtime.jobs import Job, get_job
from forensics.runtime.progress import format_seconds
from forensics.runtime.safe_text import markdown_html_text, markdown_text

from .nav import go
from .state import current_case, current_job, get_store

log = logging.getLogger("forensics.app")


JOB_TITLES = {"audit": "Building the audit", "reopen": "Reopening the audit", "stress test": "Stress test"}


# a still ring with a dark quarter, not an animated one: on a 2-core machine a CSS spin keeps the browser repainting
# at 60 frames a second (measured: 13 % of a core in headless chromium, 9 % with steps(8); nothing when still), CPU the
# build it shows then lacks; the share and the time left change every 2 s anyway
SPINNER = ("<span style='display:inline-block;width:.9em;height:.9em;border:.15em solid #c9d3de;"
           "border-top-color:#1f4e79;border-right-color:#1f4e79;border-radius:50%;vertical-align:-.1em;"
           "margin-right:.45em;transform:rotate(-45deg)' role='progressbar' aria-label='running'></span>")


COMPACT_FROM = 7  # from this many suspects on, the progress view sums them up instead of a line each
SUSPECT = "suspect:"
ZOO = "zoo:"      # a stress test's simulated suspects (forensics.zoo.bench)


def _many(key: str) -> bool:
    return key.startswith((SUSPECT, ZOO))


def done_line(job: Job) -> str:
    """"running, 37 % done, 2 min 10 s left": the one way every view says how far a job is (Job.summary: weighted
    by the stages' expected costs, never going back, the time left at the recent speed)."""
    s = job.summary()
    return f"running, {shown_share(s.fraction)} done" + ("" if s.eta is None else f", {time_left(s.eta)}")


def shown_share(fraction: float) -> str:
    """A running job's share done as a whole percentage, never "100%" before it has ended."""
    return f"{min(fraction, 0.99):.0%}"


def time_left(eta: float) -> str:
    return "almost done" if eta < 1.5 else f"about {format_seconds(eta)} left"


def job_progress(job: Job, *, expanded: bool = True) -> None:
    """A running (or finished) job as a list of stages: a check mark when done, a bar with the time left for the
    running one, an empty circle for those to come.  The header turns while the job runs (an animated spinner,
    never a check mark before the end).  Many suspects are summed up: a count per state, the running one with its
    bar, each failed one with its reason, and one chip per suspect."""
    summary = job.summary()
    views = summary.views
    title = JOB_TITLES.get(job.name, job.name)
    with st.container(border=True):
        if job.running:
            left = "estimating the time left" if summary.eta is None else time_left(summary.eta)
            st.markdown(f"{SPINNER}<b>{title}</b>: running, {shown_share(summary.fraction)} done · {job.seconds:.0f} s "
                        f"so far · {left}", unsafe_allow_html=True)
            st.progress(min(summary.fraction, 0.99))
        elif job.status == "done":
            st.markdown(f":green[:material/check_circle:] **{title}**: done in {job.seconds:.0f} s")
        else:
            st.markdown(f":red[:material/error:] **{title}**: stopped after {job.seconds:.0f} s")
        if not expanded:
            return
        if not views:
            st.markdown(f"{SPINNER}Starting…", unsafe_allow_html=True)
        suspects = [v for v in views if _many(v.key)]
        compact = len(suspects) >= COMPACT_FROM
        for v in views:
            if not (compact and _many(v.key)):
                _stage_line(v, job)
        if compact:
            _suspects_summary(suspects, job)


def _stage_line(v, job: Job) -> None:
    if v.status == "done":
        st.markdown(f":green[:material/check_circle:] {md_text(v.title)} :gray[— {md_text(v.detail or 'done')} "
                    f"({v.elapsed(0):.0f} s)]")
    elif v.status == "failed":
        st.markdown(f":red[:material/cancel:] {md_text(v.title)} :red[— {md_text(v.detail or 'failed')}]")
    elif v.status == "running" and job.running:
        _running(v, markdown_html_text(v.title))  # user names
    elif v.status == "running":  # the job stopped in this stage
        st.markdown(f":red[:material/cancel:] {md_text(v.title)} :gray[— stopped here]")
    else:
        st.markdown(f":gray[:material/radio_button_unchecked: {md_text(v.title)}]")


def _running(v, title_html: str) -> None:
    st.markdown(f"{SPINNER}<b>{title_html}</b>", unsafe_allow_html=True)
    left = "estimating the time left" if v.eta is None else f"about {format_seconds(v.eta)} left"
    st.progress(v.fraction or 0.0,
                text=f"{md_text(v.work or 'working')} · {v.elapsed(time.time()):.0f} s so far · {left}")


CHIP = ("display:inline-block;margin:0 .35em .35em 0;padding:.1em .6em;border-radius:1em;font-size:.85em;"
        "white-space:nowrap;border:1px {b};background:{bg};color:{fg}")
# (border, background, text): a verified suspect is neither green nor red here - its verdict is on 4 · Verdict
CHIP_STYLES = {"done": ("solid #aab6c3", "#ffffff", "#1d2733"), "failed": ("solid #f1b5b5", "#fdf0f0", "#a11d1d"),
               "running": ("solid #1f4e79", "#eaf2fa", "#1f4e79"), "stopped": ("solid #f1b5b5", "#fdf0f0", "#a11d1d"),
               "pending": ("dashed #c3c9d1", "#f6f7f9", "#6b7480")}
CHIP_MARKS = {"done": "✓", "failed": "✗", "running": "●", "stopped": "✗", "pending": "○"}


def suspect_states(views, running: bool) -> list[tuple[str, str, str]]:
    """``(name, state, note)`` per suspect stage: state is done, failed, running, stopped (the job stopped while
    it ran) or pending; the note is its p-value or why it failed."""
    out = []
    for v in views:
        name = v.key[len(SUSPECT):] if v.key.startswith(SUSPECT) else v.title
        state = v.status if v.status != "running" or running else "stopped"
        note = v.detail.removeprefix("could not be verified: ") if state in ("done", "failed") else ""
        out.append((name, state, note))
    return out


def _suspects_summary(views, job: Job) -> None:
    states = suspect_states(views, job.running)
    count = {k: sum(state == k for _, state, _ in states) for k in CHIP_MARKS}
    parts = [f"{count['done']} verified"] + ([f"{count['failed']} could not be verified"] if count["failed"] else [])
    parts += [f"{count['running']} running"] if count["running"] else []
    parts += [f"{count['stopped']} stopped"] if count["stopped"] else []
    parts += [f"{count['pending']} " + ("waiting" if job.running else "not reached")] if count["pending"] else []
    what = "Simulated suspects" if views and views[0].key.startswith(ZOO) else "Suspects"
    st.markdown(f"**{what}** ({len(states)}) — " + ", ".join(parts))
    for v in views:
        if v.status == "running" and job.running:
            _running(v, markdown_html_text(v.title))
    chips = []
    for name, state, note in states:
        b, bg, fg = CHIP_STYLES[state]
        label = markdown_html_text(name) + (f" · {markdown_html_text(note)}" if state == "done" and note else "")
        tip = {"done": "verified", "failed": f"could not be verified: {note}", "running": "running now",
               "stopped": "the build stopped here",
               "pending": "waiting" if job.running else "not reached"}[state]
        chips.append(f"<span style='{CHIP.format(b=b, bg=bg, fg=fg)}' title='{markdown_html_text(tip)}'>"
                     f"{CHIP_MARKS[state]} {label}</span>")
    st.markdown("<div style='line-height:1.9'>" + "".join(chips) + "</div>", unsafe_allow_html=True)
    failed = [(n, note) for n, s, note in states if s == "failed"]
    if failed:
        st.markdown("".join(f"<div style='color:#a11d1d;margin-bottom:.25em'>✗ <b>{markdown_html_text(n)}</b> — could "
                            f"not be verified: {markdown_html_text(note)}</div>" for n, note in failed),
                    unsafe_allow_html=True)


def many_report(lines) -> None:
    """What "Add many suspects" did with each line of the list: added (as which name), already a suspect, or
    refused with the reason; a button forgets the report."""
    added = [o for o in lines if o.status == "added"]
    skipped = [o for o in lines if o.status == "skipped"]
    refused = [o for o in lines if o.status == "refused"]
    with st.container(border=True):
        head = f"**Add many suspects:** {len(added)} of {len(lines)} lines added"
        if added:
            st.success(head + ": " + ", ".join(f"**{md_text(o.name)}**" for o in added), icon=":material/check_circle:")
        else:
            st.markdown(head + ".")
        if skipped:
            st.info(f"{len(skipped)} already in the list, not added again: " +
                    ", ".join(f"{md_text(o.source)} (as **{md_text(o.name)}**)" for o in skipped),
                    icon=":material/info:")
        if refused:
            st.error(f"{len(refused)} refused — they are left in the box of **Add many suspects** to be fixed:\n\n" +
                     "\n".join(f"- {md_text(o.source)} — {md_text(o.reason)}" for o in refused),
                     icon=":material/error:")
        if st.button("Dismiss this report", key="many_report_dismiss", icon=":material/close:"):
            st.session_state.pop("many_report", None)
            st.rerun()


def need_audit(what: str) -> bool:
    """Show a helpful empty state (and return False) when the audit has not run yet."""
    c = current_case()
    job = current_job()
    if c.audit is not None:
        if job is not None and job.running:
            _previous_note(job.id)
        return True
    if job is not None and job.running:
        running_note(job, what)
        return False
    if c.spec is None:
        st.info(f"Nothing to show yet: {what} appear once an audit has run. Start on **1 · Load** "
                "(one click loads the offline demo).", icon=":material/info:")
        if st.button("Go to 1 · Load", type="primary"):
            go("load")
    else:
        st.info(f"The audit is set up but has not run yet: {what} appear once the shadow models are built.",
                icon=":material/info:")
        if st.button("Go to 2 · Shadow models", type="primary"):
            go("shadows")
    return False


def running_note(job: Job, what: str) -> None:
    """What a page says while the audit job runs: how far it is (counting live), and where to watch it."""
    _running_note(job.id, what)
    if st.button("Watch it on 2 · Shadow models", type="primary"):
        go("shadows")


LIVE_EVERY = 2.0  # seconds between two refreshes of a running job's numbers


def live_job(job_id: str) -> Job | None:
    """For a fragment that redraws a job every :data:`LIVE_EVERY` seconds: the job while it runs; once it has ended,
    a rerun of the whole app (the entry script applies a build's result, the page draws it); None when it is gone."""
    job = get_job(job_id)
    if job is not None and not job.running:
        st.rerun()
    return job


@st.fragment(run_every=LIVE_EVERY)
def _running_note(job_id: str, what: str) -> None:
    job = live_job(job_id)
    if job is None:
        return
    st.info(f"{JOB_TITLES.get(job.name, 'The audit')}: **{done_line(job)}** ({job.seconds:.0f} s so far). "
            f"{what.capitalize()} appear when it finishes; **2 · Shadow models** shows each stage.",
            icon=":material/hourglass_top:")


@st.fragment(run_every=LIVE_EVERY)
def _previous_note(job_id: str) -> None:
    job = live_job(job_id)
    if job is None:
        return
    st.caption(f":material/hourglass_top: {JOB_TITLES.get(job.name, 'A build')} is {done_line(job)}: these are "
               "the previous results until it finishes.")


def md_text(text: object) -> str:
    """``text`` shown literally in Streamlit markdown (names from a record or a file: no links, images, markup): the
    one rule of :func:`forensics.runtime.safe_text.markdown_text`."""
    return markdown_text(text)


def show_error(e: Exception, names: dict[str, str] | None = None) -> None:
    """A readable message for the user; the stack trace only goes to the server log.  ``names`` maps paths in the
    store (uploads) to the user's own file names, so a message never shows the server's internals."""
    text = str(e)
    for path, name in sorted((names or {}).items(), key=lambda kv: -len(kv[0])):
        text = text.replace(path, name)
    text = md_text(text)  # a message quotes names and file names: shown literally
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
            st.markdown(f"**Victim** {md_text(shown if shown.startswith('uploaded ') else c.spec.victim)}")
            st.write(f"**Suspects** {len(c.suspects)}")
            job = current_job()
            if job is not None and job.running:
                _sidebar_job(job.id)
            elif c.audit is not None:
                n_stolen = sum(v.stolen for v in c.verdicts.values())
                waiting = sum(s.name not in c.verdicts and s.name not in c.errors for s in c.suspects)
                st.write(f"**Verdicts** {n_stolen} of {len(c.verdicts)} flagged (p < alpha)"
                         + (f", {waiting} not verified yet" if waiting else ""))
            else:
                st.write("Shadow models: not built yet")
        st.caption(f"Artifact store: `{get_store().root}`")


@st.fragment(run_every=LIVE_EVERY)
def _sidebar_job(job_id: str) -> None:
    job = live_job(job_id)
    if job is None:
        return
    st.write(f"**{JOB_TITLES.get(job.name, 'Audit')}:** {done_line(job)}")


def _size(card: dict) -> str | None:
    size = card.get("input_size") or []
    return f"{size[-2]} × {size[-1]} px" if len(size) >= 2 else None


def model_card(title: str, card: dict, *, victim_fingerprint: str | None = None) -> None:
    """A model's card: architecture, parameters, classes, accuracy, input size and the full fingerprint; a suspect
    whose weights are the victim's (the same fingerprint) is marked."""
    with st.container(border=True):
        st.markdown(f"**{md_text(title)}**")
        same = bool(victim_fingerprint) and card.get("fingerprint") == victim_fingerprint
        if same:
            st.badge("the victim's own weights (same fingerprint)", icon=":material/content_copy:", color="red")
        if "answers" in card:
            st.caption(f"black-box answers {md_text(card['answers'])}")
            st.caption("read as: " + (card.get("reading") or ("labels only" if card.get("label_only") else "logits")))
            return
        if "arch" not in card:  # reopened from a record that kept no card: what the record says
            st.caption(f"source {md_text(card.get('source', '?'))}")
            if card.get("fingerprint"):
                st.caption("fingerprint (SHA-256 of the weights)")
                st.code(card["fingerprint"], language=None, wrap_lines=True)
            return
        st.caption("architecture" + (f" · {card['library']}, {card['format']}" if card.get("library") else ""))
        st.markdown(f"`{card['arch']}`")  # on its own line: long timm names are not broken mid-word
        c1, c2 = st.columns(2)
        c1.caption("parameters")
        c1.markdown(f"{card['num_params'] / 1e6:.2f} M")
        own = card.get("pretrained_classes") if title == "foundation" else None  # the checkpoint's own head
        c2.caption("classes", help=f"the checkpoint's own head; the audit gives it a new head of your "
                   f"{card['num_classes']} classes" if own else None)
        c2.markdown(f"{own:,}" if own else str(card["num_classes"]))
        c3, c4 = st.columns(2)
        acc = card.get("accuracy")
        c3.caption("accuracy", help=f"on the {card['accuracy_on']}" if card.get("accuracy_on") else
                   "measured when the audit runs, for the models that classify your classes (not the foundation, "
                   "whose head is new)")
        c3.markdown("n/a" if acc is None else f"{acc:.3f}")
        c4.caption("input size")
        c4.markdown(_size(card) or "n/a")
        if card.get("split"):
            st.caption(f"fine-tuning split: {card['split']}")
        st.caption("fingerprint (SHA-256 of the weights)")
        st.code(card["fingerprint"], language=None, wrap_lines=True)
        src = card["source"] + (f" @ {card['revision'][:12]}" if card.get("revision") else "")
        st.caption("source")
        st.code(src, language=None, wrap_lines=True)
