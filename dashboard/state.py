"""This browser session's case, the shared artifact store, and the background audit job."""
from __future__ import annotations

import streamlit as st

from forensics.case import Case
from forensics.jobs import Job, get_job
from forensics.store import ArtifactStore


@st.cache_resource
def get_store() -> ArtifactStore:
    """One artifact store per server process (safe across sessions: atomic entries, file locks)."""
    return ArtifactStore()


def current_case() -> Case:
    """This session's case (created empty on first use).  Reading it changes nothing."""
    if "case" not in st.session_state:
        st.session_state.case = Case()
    return st.session_state.case


def set_case(new: Case) -> None:
    """Replace this session's case; nothing of the previous audit (job, query set) carries over."""
    st.session_state.case = new
    for key in ("job_id", "queries_zip"):
        st.session_state.pop(key, None)


def current_job() -> Job | None:
    return get_job(st.session_state.get("job_id"))


def apply_finished_job() -> None:
    """Take a finished background audit's result as this session's case, once (the entry script calls
    this before every page runs, so every page sees the result)."""
    job = current_job()
    if job is not None and job.status == "done" and st.session_state.get("job_applied") != job.id:
        st.session_state.case = job.result
        st.session_state.job_applied = job.id


def job_running() -> bool:
    job = current_job()
    return job is not None and job.running
