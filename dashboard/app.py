"""Diffusion Lab: the Streamlit router. Run with ``streamlit run dashboard/app.py``.

Pages are registered in ``dashboard/components/common.py`` (PAGES: file, title, icon, section); a page
appears in the sidebar as soon as its file exists in dashboard/.
"""

import sys
from pathlib import Path

import streamlit as st

HERE = Path(__file__).resolve().parent
if str(HERE.parent) not in sys.path:  # `core` and `dashboard` importable without `pip install -e .`
    sys.path.insert(0, str(HERE.parent))

from dashboard.components.common import existing_pages  # noqa: E402

st.set_page_config(page_title="Diffusion Lab", page_icon=":material/blur_on:", layout="wide")

sections: dict[str, list[st.Page]] = {}
for spec in existing_pages():
    page = st.Page(HERE / spec.file, title=spec.title, icon=spec.icon, default=spec.file == "home.py")
    sections.setdefault(spec.section, []).append(page)

current = st.navigation(sections)
with st.sidebar:
    st.caption("Each page keeps its settings in the address bar: copy the link to share the exact view, "
               "seed included.")
current.run()
