"""The dashboard's pages, registered once: ``app.py`` routes them with ``st.navigation`` and pages
switch with ``st.switch_page(page("load"))`` (page objects, not path strings)."""
from __future__ import annotations

import streamlit as st

_PAGES: dict[str, st.Page] = {}


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
        })
    return _PAGES


def page(name: str) -> st.Page:
    return pages()[name]
