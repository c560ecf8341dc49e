"""Holmes forensics dashboard: `streamlit run app.py`.  This script only routes."""
from pathlib import Path

import streamlit as st

from pages.common import sidebar_status

ASSETS = Path(__file__).resolve().parent / "assets"

st.set_page_config(page_title="Holmes forensics", page_icon=str(ASSETS / "icon.png"), layout="wide")
st.logo(str(ASSETS / "logo.png"), size="large", icon_image=str(ASSETS / "icon.png"))

pages = [
    st.Page("pages/load.py", title="1 · Load", icon=":material/upload_file:", default=True),
    st.Page("pages/shadows.py", title="2 · Shadow models", icon=":material/model_training:"),
    st.Page("pages/features.py", title="3 · Feature differences", icon=":material/scatter_plot:"),
    st.Page("pages/verdict.py", title="4 · Verdict", icon=":material/gavel:"),
    st.Page("pages/report.py", title="5 · Report", icon=":material/description:"),
]
page = st.navigation(pages)
sidebar_status()
page.run()
