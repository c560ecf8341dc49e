"""The dashboard's pages, registered once, and every way between them.

``app.py`` routes the pages with ``st.navigation`` and draws the menu itself (:func:`menu`): its links, like
every "next" link and page switch here, carry the audit in the address (``?audit=<id>``), so a reload, a
bookmark or a link opened in a new tab finds the audit.  Streamlit's own sidebar menu drops the query string.
"""
from __future__ import annotations

import streamlit as st

_PAGES: dict[str, st.Page] = {}
PARAM = "audit"


def pages() -> dict[str, st.Page]:
    """Every page, in menu order.  Built on first use, inside a script run (st.Page resolves its path
    against the running app's folder)."""
    if not _PAGES:
        _PAGES.update({
            "load": st.Page("pages/load.py", title="1 · Load", icon=":material/upload_file:", default=True),
            "shadows": st.Page("pages/shadows.py", title="2 · Shadow models", icon=":material/model_training:"),
            "features": st.Page("pages/features.py", title="3 · Feature differences",
                                icon=":material/scatter_plot:"),
            "verdict": st.Page("pages/verdict.py", title="4 · Verdict", icon=":material/gavel:"),
            "report": st.Page("pages/report.py", title="5 · Report", icon=":material/description:"),
            "stress": st.Page("pages/stress.py", title="6 · Stress test", icon=":material/science:"),
            "api": st.Page("pages/api.py", title="7 · API audit", icon=":material/api:"),
        })
    return _PAGES


def page(name: str) -> st.Page:
    return pages()[name]


def address() -> dict[str, str]:
    """The query string every link and switch carries: this session's audit, once a victim is loaded."""
    case = st.session_state.get("case")
    return {PARAM: case.id} if case is not None and case.spec is not None else {}


def go(name: str) -> None:
    """Switch to page ``name``, the audit kept in the address."""
    st.switch_page(page(name), query_params=address())


def link(name: str, label: str | None = None, icon: str | None = None) -> None:
    """A link to page ``name`` (its own title and icon unless given), the audit kept in the address."""
    p = page(name)
    st.page_link(p, label=label or p.title, icon=icon or p.icon, query_params=address())


def menu() -> None:
    """The sidebar's page menu (``st.navigation`` runs with its own menu hidden)."""
    with st.sidebar:
        for name in pages():
            link(name)


def routed() -> None:
    """Make sure the page runs under ``app.py``'s router.  A page's address opened first after a server start
    (a bookmark of ``/report?audit=...``) is run by Streamlit without ``app.py`` while it still takes the
    ``pages/`` folder for an old-style multipage app; the page would show without the menu and never see a
    finished build.  Here that run is turned into a run of ``app.py`` on the same page."""
    from streamlit.runtime.pages_manager import PagesManager  # Streamlit's own flag for folder-based apps

    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False  # app.py's st.navigation would set the same on its first run
        st.rerun()
