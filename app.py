"""Holmes forensics dashboard: `streamlit run app.py`.  This script only routes."""
from pathlib import Path

import streamlit as st

from dashboard.auth import require_user
from dashboard.nav import menu, pages
from dashboard.state import apply_finished_job, pin_address, remember
from dashboard.widgets import sidebar_status

ASSETS = Path(__file__).resolve().parent / "assets"

st.set_page_config(page_title="Holmes forensics", page_icon=str(ASSETS / "icon.png"), layout="wide")
st.logo(str(ASSETS / "logo.png"), size="large", icon_image=str(ASSETS / "icon.png"))

require_user()  # a shared dashboard (FORENSICS_USERS_FILE): nothing below runs before the user signed in
current = st.navigation(list(pages().values()), position="hidden")  # the menu below keeps ?audit= in its links
apply_finished_job()
pin_address()
menu()
sidebar_status()
try:
    current.run()
finally:  # also after st.rerun / st.stop: the case outlives the session (?audit=<id>, saved in the store)
    remember()
