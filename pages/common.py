"""UI helpers shared by the pages (not a page itself): session state, the store, small widgets."""
from __future__ import annotations

import logging

import streamlit as st

from forensics.errors import ForensicsError
from forensics.store import ArtifactStore
from forensics.workspace import Workspace

log = logging.getLogger("forensics.app")


@st.cache_resource
def get_store() -> ArtifactStore:
    """One artifact store per server process (safe across sessions: atomic entries, file locks)."""
    return ArtifactStore()


def workspace() -> Workspace:
    """This session's workspace; a finished background audit's result is applied here, on any page."""
    if "ws" not in st.session_state:
        st.session_state.ws = Workspace()
    from forensics.jobs import get_job

    job = get_job(st.session_state.get("job_id"))
    if job is not None and job.status == "done" and st.session_state.get("job_applied") != job.id:
        st.session_state.ws = job.result
        st.session_state.job_applied = job.id
    return st.session_state.ws


def set_workspace(ws: Workspace) -> None:
    st.session_state.ws = ws
    for key in ("job_id", "queries_zip"):  # nothing of the previous audit may leak into this one
        st.session_state.pop(key, None)


def job_running() -> bool:
    from forensics.jobs import get_job

    job = get_job(st.session_state.get("job_id"))
    return job is not None and job.running


def ready() -> bool:
    """True when the audit has run in this session."""
    return workspace().session is not None


def need_audit(what: str) -> bool:
    """Show a helpful empty state (and return False) when the audit has not run yet."""
    ws = workspace()
    if ws.session is not None:
        return True
    if ws.spec is None:
        st.info(f"Nothing to show yet: {what} appear once an audit has run. Start on **1 · Load** "
                "(one click loads the offline demo).", icon=":material/info:")
        if st.button("Go to 1 · Load", type="primary"):
            st.switch_page("pages/load.py")
    else:
        st.info(f"The audit is set up but has not run yet: {what} appear once the shadow models are built.",
                icon=":material/info:")
        if st.button("Go to 2 · Shadow models", type="primary"):
            st.switch_page("pages/shadows.py")
    return False


def show_error(e: Exception) -> None:
    """A readable message for the user; the stack trace only goes to the server log."""
    if isinstance(e, ForensicsError):
        st.error(str(e), icon=":material/error:")
    else:
        log.exception("unexpected error in the dashboard")
        st.error(f"Something went wrong ({type(e).__name__}: {e}). Nothing already computed is lost; "
                 "please retry, and report the problem if it persists.", icon=":material/error:")


def fmt_p(p: float | None) -> str:
    if p is None:
        return "-"
    return f"{p:.1e}" if p < 1e-3 else f"{p:.3f}"


def sidebar_status() -> None:
    ws = workspace()
    with st.sidebar:
        st.caption("AUDIT")
        if ws.spec is None:
            st.write("No victim loaded.")
        else:
            st.write(f"**Victim** `{ws.spec.victim}`")
            st.write(f"**Suspects** {len(ws.suspects)}")
            if ws.session is not None:
                n_stolen = sum(v.p_value < ws.spec.config.alpha for v in ws.verdicts.values())
                st.write(f"**Verdicts** {n_stolen} stolen of {len(ws.verdicts)}")
            else:
                st.write("Shadow models: not built yet")
        st.caption(f"Artifact store: `{get_store().root}`")


def model_card(title: str, card: dict) -> None:
    with st.container(border=True):
        st.markdown(f"**{title}**")
        if "answers" in card:
            st.caption(f"black-box answers `{card['answers']}`" + (" (labels only)" if card.get("label_only") else ""))
            return
        c1, c2 = st.columns(2)
        c1.caption("architecture")
        c1.write(f"`{card['arch']}`")
        c2.caption("parameters")
        c2.write(f"{card['num_params'] / 1e6:.2f} M")
        c1.caption("classes")
        c1.write(str(card["num_classes"]))
        c2.caption(f"accuracy ({card.get('accuracy_on', 'n/a')})")
        c2.write("-" if card.get("accuracy") is None else f"{card['accuracy']:.3f}")
        st.caption("fingerprint (SHA-256 of the weights)")
        st.code(card["fingerprint"][:32] + "…", language=None)
        src = card["source"] + (f" @ {card['revision'][:12]}" if card.get("revision") else "")
        st.caption(f"source `{src}`")
