"""Diffusion Lab: the Streamlit router. Run with ``streamlit run dashboard/app.py``."""

from pathlib import Path

import streamlit as st

HERE = Path(__file__).resolve().parent

st.set_page_config(page_title="Diffusion Lab", page_icon=":material/blur_on:", layout="wide")

pages = [
    st.Page(HERE / "home.py", title="Home", icon=":material/home:", default=True),
]
st.navigation(pages).run()
