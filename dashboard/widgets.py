"""Small widgets the pages share: empty states, error messages, the sidebar, model cards."""
from __future__ import annotations

import logging

import streamlit as st

from forensics.errors import ForensicsError

from .nav import page
from .state import current_case, get_store

log = logging.getLogger("forensics.app")


def need_audit(what: str) -> bool:
    """Show a helpful empty state (and return False) when the audit has not run yet."""
    c = current_case()
    if c.audit is not None:
        return True
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


def show_error(e: Exception) -> None:
    """A readable message for the user; the stack trace only goes to the server log."""
    if isinstance(e, ForensicsError):
        st.error(str(e), icon=":material/error:")
    else:
        log.exception("unexpected error in the dashboard")
        st.error(f"Something went wrong ({type(e).__name__}: {e}). Nothing already computed is lost; "
                 "please retry, and report the problem if it persists.", icon=":material/error:")


def sidebar_status() -> None:
    c = current_case()
    with st.sidebar:
        st.caption("AUDIT")
        if c.spec is None:
            st.write("No victim loaded.")
        else:
            st.write(f"**Victim** `{c.spec.victim}`")
            st.write(f"**Suspects** {len(c.suspects)}")
            if c.audit is not None:
                n_stolen = sum(v.stolen for v in c.verdicts.values())
                st.write(f"**Verdicts** {n_stolen} stolen of {len(c.verdicts)}")
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
