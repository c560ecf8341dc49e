"""Holmes forensics dashboard: `streamlit run app.py`.  This script only routes."""
from pathlib import Path

import streamlit as st

from dashboard.nav import pages
from dashboard.state import apply_finished_job, remember
from dashboard.widgets import sidebar_status

ASSETS = Path(__file__).resolve().parent / "assets"

st.set_page_config(page_title="Holmes forensics", page_icon=str(ASSETS / "icon.png"), layout="wide")
st.logo(str(ASSETS / "logo.png"), size="large", icon_image=str(ASSETS / "icon.png"))

current = st.navigation(list(pages().values()))
apply_finished_job()
sidebar_status()
try:
    current.run()
finally:  # also after st.rerun / st.stop: the case outlives the session (?audit=<id>, saved in the store)
    remember()
