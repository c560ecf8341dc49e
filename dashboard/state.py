"""This browser session's case, the shared artifact store, and the background audit job.

A case outlives the browser session: its id is in the address bar (``?audit=<id>``), it is saved in the
artifact store (:mod:`forensics.cases.casefile`) whenever it changes, and a server-wide registry keeps the live
case and its running job, so a reload (F5) or a dropped connection finds the audit - running or done -
where it was.
"""
from __future__ import annotations

import hashlib
import json
import logging
import threading
from typing import Any

import streamlit as st

from forensics.cases import casefile
from forensics.cases.case import Case
from forensics.cases.joblog import load_job_log, save_job_log
from forensics.errors import ForensicsError
from forensics.runtime.jobs import Job, get_job, start_job
from forensics.runtime.store import ArtifactStore

from .auth import current_user
from .nav import PARAM, go

log = logging.getLogger("forensics.app")


@st.cache_resource
def get_store() -> ArtifactStore:
    """One artifact store per server process (safe across sessions: atomic entries, file locks)."""
    return ArtifactStore()


_LOCK = threading.Lock()
MAX_LIVE = 12  # cases kept in memory (each holds its audit's models); the others reopen from the store


@st.cache_resource
def _live() -> dict[str, dict[str, Any]]:
    """Server-wide: case id -> {"case": the live Case, "job": its latest job id, "saved": signature of the last save,
    "applied": the job whose result the case is, "frozen": True while the saved record must not be overwritten}."""
    return {}


def _entry(case: Case) -> dict[str, Any]:
    """The registry's entry for ``case`` (created if new), most recently used; the oldest idle ones are dropped."""
    live = _live()
    with _LOCK:  # sessions run in threads of one server
        entry = live.setdefault(case.id, {"case": case, "job": None, "saved": None})
        live[case.id] = live.pop(case.id)  # most recently used last
        for old in [k for k in live if k != case.id][:max(0, len(live) - MAX_LIVE)]:
            job = get_job(live[old].get("job"))
            if job is None or not job.running:
                live.pop(old)
        return entry


def current_case() -> Case:
    """This session's case: on a session's first run, the one the address bar names (``?audit=``), else empty."""
    if "case" not in st.session_state:
        st.session_state.case = Case(owner=current_user())
        wanted = st.query_params.get(PARAM)
        if wanted:
            try:
                _restore(wanted)
            except ForensicsError as e:
                st.session_state.case = Case(owner=current_user())
                st.session_state.restore_error = str(e)
                st.query_params.pop(PARAM, None)
    return st.session_state.case


def _restore(case_id: str) -> None:
    """Make ``case_id`` this session's case: the live one (a running build keeps showing), else from the store."""
    with _LOCK:
        live = _live().get(case_id)
    if live is not None and live["case"].owner != current_user():  # another user's audit reads as a missing one
        live = None
        casefile.load_record(get_store(), case_id, owner=current_user())
    if live is not None:
        job = get_job(live.get("job"))
        gone = live.get("job") is not None and job is None  # its job was dropped: the store has the result
        if not gone:
            st.session_state.case = live["case"]
            if job is not None and (job.running or live.get("applied") != job.id):  # running, or done unseen
                st.session_state.job_id = job.id
            return
    rec = casefile.load_record(get_store(), case_id, owner=current_user())
    open_record(rec, case_id=case_id)


def open_case(case_id: str) -> None:
    """Make the saved case ``case_id`` this session's case (Recent audits on 1 · Load); on an error the current
    case stays."""
    before = {k: st.session_state.get(k) for k in ("case", "job_id", "job_applied")}
    try:
        set_case(Case(owner=current_user()))
        _restore(case_id)
    except ForensicsError:
        for k, v in before.items():
            if v is None:
                st.session_state.pop(k, None)
            else:
                st.session_state[k] = v
        raise


def open_record(rec: dict[str, Any], *, case_id: str | None = None) -> None:
    """Make a saved case or an audit record this session's case; its verdicts come back through a background job
    that opens the audit from the store (seconds when the store holds it).  Until they are back (and if that fails)
    the saved record is not overwritten."""
    case = casefile.case_from_record(rec, case_id=case_id)
    if case_id is None:
        case.id = Case().id  # a record opened from a file is a new case (its original may still be in the list)
        case.owner = current_user()  # ... and the user's who opened it
    set_case(case)
    if casefile.has_verdicts(rec):
        _entry(case).update(case=case, frozen=True)
        start_case_job(casefile.reopen, rec, get_store(), name="reopen", case_id=case.id)


def set_case(new: Case) -> None:
    """Replace this session's case; nothing of the previous audit (job, query set) carries over.  The previous
    case stays in the store (Recent audits on 1 · Load)."""
    if new.owner is None:
        new.owner = current_user()
    st.session_state.case = new
    for key in ("job_id", "queries_zip", "job_applied", "stress_job_id", "api_job_id"):
        st.session_state.pop(key, None)


def start_case_job(fn, *args: Any, name: str = "audit", **kwargs: Any) -> Job:
    """Start a background job for this session's case and remember it (a reload finds it)."""
    job = start_job(name, fn, *args, **kwargs)
    st.session_state.job_id = job.id
    _entry(current_case())["job"] = job.id
    return job


def start_build(run: Case, *, then_verdict: bool = False) -> Job:
    """Build the audit ``run`` (a copy of this session's case, with the settings to build) in the background.  With
    ``then_verdict`` the dashboard opens 4 · Verdict when it is done (one click from the demo to its verdict)."""
    st.session_state.pop("queries_zip", None)
    store = get_store()
    job = start_case_job(casefile.run_case, run, store, on_end=lambda j: save_job_log(store, run.id, j))
    _entry(current_case())["then_verdict"] = job.id if then_verdict else None  # a reload meanwhile keeps it
    return job


def start_side_job(kind: str, name: str, fn, *args: Any, **kwargs: Any) -> Job:
    """Start a job of this case beside its build (``kind``: "stress", "api"); a reload (or another tab on the audit)
    finds it with :func:`side_job`."""
    job = start_job(name, fn, *args, **kwargs)
    st.session_state[f"{kind}_job_id"] = job.id
    _entry(current_case())[kind] = job.id
    return job


def side_job(kind: str) -> Job | None:
    """This case's latest job of ``kind``: this session's, else the one the server-wide registry keeps for the case
    (after a reload, which starts a new session)."""
    job_id = st.session_state.get(f"{kind}_job_id")
    if job_id is None:
        with _LOCK:
            entry = _live().get(current_case().id)
        job_id = entry.get(kind) if entry else None
        if job_id is not None:
            st.session_state[f"{kind}_job_id"] = job_id
    return get_job(job_id)


def start_stress(fn, *args: Any) -> Job:
    """Start this case's stress test in the background."""
    return start_side_job("stress", "stress test", fn, *args)


def stress_job() -> Job | None:
    return side_job("stress")


def _signature(case: Case) -> str:
    blob = json.dumps([case.spec.to_dict() if case.spec else None, [s.to_dict() for s in case.suspects],
                       sorted((n, v.p_value, v.protocol, v.alpha) for n, v in case.verdicts.items()), case.info,
                       case.errors, case.audit is not None, case.power], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def remember() -> None:
    """Keep this session's case: in the server-wide registry, in the store (when it changed) and in the address
    bar.  The entry script calls it after every page run."""
    case = st.session_state.get("case")
    if case is None or case.spec is None:
        return
    if case.owner is None:  # a case made on a page (Case(spec=...)) belongs to the signed-in user
        case.owner = current_user()
    entry = _entry(case)
    if entry["case"] is not case and entry.get("applied") and entry["applied"] != st.session_state.get("job_applied"):
        # another tab on this audit took a newer result: show that one, never save the older one over it
        st.session_state.case, st.session_state.job_applied = entry["case"], entry["applied"]
        return
    entry["case"] = case
    if st.session_state.get("job_id"):
        entry["job"] = st.session_state.job_id
    sig = _signature(case)
    if not entry.get("frozen") and entry.get("saved") != sig:
        try:
            casefile.save_case(get_store(), case)
            entry["saved"] = sig
        except (OSError, ForensicsError):
            log.exception("could not save the case %s", case.id)
    pin_address()


def pin_address() -> None:
    """Put this session's audit in the address the browser shows, on every run: the server's copy of the query
    string can say ``?audit=<id>`` while the browser's address lost it (a page switch from Streamlit's own links,
    an update sent around a rerun), so it is sent whether or not the server thinks it changed."""
    case = st.session_state.get("case")
    if case is not None and case.spec is not None:
        st.query_params[PARAM] = case.id


def case_running(case_id: str) -> str | None:
    """"building, 37% done" while the saved case ``case_id`` has a build (or reopening) running on this server."""
    with _LOCK:
        entry = _live().get(case_id)
    job = get_job(entry.get("job")) if entry else None
    if job is None or not job.running:
        return None
    return f"{'reopening' if job.name == 'reopen' else 'building'}, {min(job.fraction_done(), 0.99):.0%} done"


def current_job() -> Job | None:
    return get_job(st.session_state.get("job_id"))


def apply_finished_job() -> None:
    """Take a finished background audit's result as this session's case, once (the entry script calls
    this before every page runs, so every page sees the result).  What was typed about the case meanwhile
    (name, auditor, note) is kept."""
    current = current_case()  # a reload restores the case (and its job) first
    job = current_job()
    if job is not None and job.status == "done" and st.session_state.get("job_applied") != job.id:
        result = job.result
        if current.id == result.id:
            result.info = {**result.info, **current.info}
        st.session_state.case = result
        st.session_state.job_applied = job.id
        _entry(result).update(case=result, job=job.id, applied=job.id, frozen=False)
        entry = _entry(result)
        if entry.get("then_verdict") == job.id:  # one click from the demo to its verdict
            entry["then_verdict"] = None
            pin_address()
            go("verdict")


def build_log(job: Job | None) -> Job | None:
    """The log of this case's last build to show: its build job in memory, else the one kept with the audit (after a
    server restart, when the job in memory only reopened the audit); that reopening job where none was kept."""
    if job is not None and job.name != "reopen":
        return job
    return load_job_log(get_store(), current_case().id) or job


def job_running() -> bool:
    job = current_job()
    return job is not None and job.running
