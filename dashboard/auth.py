"""Signing in to a shared dashboard (``FORENSICS_USERS_FILE``): a name and a password checked against the operator's
users file (:mod:`forensics.runtime.access`).  On your own machine (no users file) there is no login and
:func:`current_user` is None."""
from __future__ import annotations

import time

import streamlit as st

from forensics.runtime import access
from forensics.runtime.safe_text import markdown_text

USER = "user"  # the session's signed-in user


def current_user() -> str | None:
    """The signed-in user of a shared dashboard; None on your own machine (or before signing in)."""
    return st.session_state.get(USER) if access.shared() else None


def require_user() -> str | None:
    """On a shared dashboard: the signed-in user, or a sign-in form (and nothing else of the app) until there is one.
    On your own machine: None, at once."""
    if not access.shared():
        return None
    if st.session_state.get(USER):
        with st.sidebar:
            st.caption(f"Signed in as **{markdown_text(st.session_state[USER])}**")
            if st.button("Sign out", key="sign_out"):
                st.session_state.clear()
                st.rerun()
        return st.session_state[USER]
    _, middle, _ = st.columns([1, 2, 1])  # a narrow form in the middle, not a page-wide one
    with middle:
        st.title("Holmes forensics")
        st.write("This dashboard is shared: sign in with the name and password the operator gave you. You will see "
                 "only the audits you create.")
        with st.form("sign_in"):
            name = st.text_input("Name", key="sign_in_name")
            password = st.text_input("Password", type="password", key="sign_in_password")
            go = st.form_submit_button("Sign in", type="primary")
        if go:
            if access.check_password(name, password):
                st.session_state.clear()  # nothing of a previous session carries over
                st.session_state[USER] = name.strip()
                st.rerun()
            time.sleep(1.0)  # slows guessing
            st.error("Wrong name or password.")
    st.stop()
    return None
