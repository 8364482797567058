"""Diffusion Lab: the Streamlit router. Run with ``streamlit run dashboard/app.py``.

Every page is a script in dashboard/views/, listed below under its sidebar section; what several pages share
lives in dashboard/ui/ (dashboard/__init__.py has the map).
"""

import sys
from pathlib import Path

import streamlit as st

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `core` and `dashboard` importable without `pip install -e .`
    sys.path.insert(0, str(ROOT))

from dashboard.ui import background, sitemap, warmup  # noqa: E402

st.set_page_config(page_title="Diffusion Lab", page_icon=":material/blur_on:", layout="wide")

pages = {
    "Start": [
        st.Page("views/home.py", title="Home", icon=":material/home:", default=True),
    ],
    "Forward process": [
        st.Page("views/schedules.py", title="Noise schedules", icon=":material/show_chart:"),
        st.Page("views/forward.py", title="Forward process", icon=":material/grain:"),
    ],
    "Reverse process": [
        st.Page("views/reverse.py", title="Reverse process", icon=":material/replay:"),
        st.Page("views/score_field.py", title="Score field", icon=":material/explore:"),
    ],
    "Sampling and training": [
        st.Page("views/samplers.py", title="Samplers", icon=":material/compare_arrows:"),
        st.Page("views/flow.py", title="Flow matching", icon=":material/air:"),
        st.Page("views/improved_ddpm.py", title="Improved DDPM", icon=":material/tune:"),
        st.Page("views/guidance.py", title="Guidance", icon=":material/my_location:"),
        st.Page("views/train.py", title="Train", icon=":material/model_training:"),
    ],
    "Images": [
        st.Page("views/mnist.py", title="MNIST", icon=":material/draw:"),
        st.Page("views/latent.py", title="Latent diffusion", icon=":material/compress:"),
        st.Page("views/text_to_image.py", title="Text to image", icon=":material/text_fields:"),
        st.Page("views/edit_digit.py", title="Edit a digit", icon=":material/auto_fix_high:"),
        st.Page("views/baselines.py", title="Diffusion vs GAN vs VAE", icon=":material/balance:"),
    ],
}
current = st.navigation(sitemap.declare(pages))  # Home's map and Train's links read the same list
background.runner()  # the job runner's workers start with the server, not at the first Train
warmup.warm_up(tuple(p.url_path for section in pages.values() for p in section))
with st.sidebar:
    st.caption("Each page keeps its settings in the address bar: copy the link to share the exact view, "
               "seed included.")
    jobs = background.runner().counts()
    st.caption(f"Training on this server: {jobs['running']} running, {jobs['queued']} waiting, "
               f"{jobs['workers']} workers.")
current.run()
