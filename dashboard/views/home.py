"""Home: what diffusion is, the forward/reverse picture, and a map of the pages."""

from functools import partial

import numpy as np
import streamlit as st
import torch

from core.analytic import GaussianMixture, toy_mixture
from core.diffusion import q_sample
from core.samplers import sample
from dashboard.ui import exports, plots, sitemap
from dashboard.ui.header import page_header
from dashboard.ui.loaders import build_schedule, gaussian_noise, toy_points

TOY, N, SEED = "eight_gaussians", 800, 0
SHOW_T = (0, 100, 250, 500, 1000)  # paper steps; the schedule is cosine with T = 1000
GIF_SETTINGS = {"toy": TOY, "schedule": "cosine", "T": 1000, "n": N, "sampler": "ddpm-100", "score": "exact",
                "seed": SEED}

page_header(
    "Diffusion Lab",
    r"q(x_t\mid x_0)=\mathcal N\!\big(\sqrt{\bar\alpha_t}\,x_0,\ (1-\bar\alpha_t)I\big),\qquad "
    r"L_\text{simple}=\mathbb E_{t,x_0,\epsilon}\big\|\epsilon-\epsilon_\theta(\sqrt{\bar\alpha_t}\,x_0+"
    r"\sqrt{1-\bar\alpha_t}\,\epsilon,\ t)\big\|^2",
    "A diffusion model makes data by learning to undo a gradual corruption. The *forward process* adds a "
    "little Gaussian noise at each of $T$ steps, so that any data set ends as pure noise $\\mathcal N(0, I)$. "
    "A network $\\epsilon_\\theta(x_t, t)$ is trained to predict the noise inside a noised example, a plain "
    "regression. Predicting the noise is the same as knowing the *score* $\\nabla\\log q(x_t)$, the direction "
    "towards likelier data at every noise level. The *reverse process* starts from fresh noise and follows "
    "that prediction step by step until samples of the data appear.",
    "compare the two rows below: the bottom row is not the top row played backwards but a new run from fresh "
    "noise, guided by the exact score of the eight Gaussians, and it lands on the same eight modes.",
    code=[q_sample, GaussianMixture.eps],
)


@st.cache_data(max_entries=2, show_spinner="Drawing the picture...")
def forward_and_reverse() -> tuple[list[np.ndarray], list[np.ndarray]]:
    """q_sample at SHOW_T, and a DDPM run (100 steps) with the exact eps of the mixture, at the same t."""
    s = build_schedule("cosine", 1000)
    x0 = torch.from_numpy(toy_points(TOY, N, SEED))
    noise = torch.from_numpy(gaussian_noise(N, SEED + 1))
    fwd = [x0.numpy() if t == 0 else q_sample(s, x0, torch.full((N,), t - 1), noise).numpy() for t in SHOW_T]
    x_T = torch.from_numpy(gaussian_noise(N, SEED + 2))
    traj = sample(toy_mixture(TOY).as_eps_model(s), s, x_T, method="ddpm", steps=100,
                  generator=torch.Generator().manual_seed(SEED + 3))
    ts = traj.timesteps.numpy() + 1  # xs[i] is the state at paper step ts[i]; xs[-1] is x_0
    rev = [traj.xs[-1].numpy() if t == 0 else traj.xs[int(np.argmin(np.abs(ts - t)))].numpy() for t in SHOW_T]
    return fwd, rev


fwd, rev = forward_and_reverse()
st.markdown("**Forward** $q$: noise is added, step by step →")
plots.show(plots.scatter_panels([plots.Panel(f"t = {t}", x, plots.POINT_COLOR)
                                 for t, x in zip(SHOW_T, fwd, strict=True)], height=250), key="home_forward")
st.markdown("**Reverse** $p$: noise is removed, step by step (exact score, DDPM, 100 steps) →")
plots.show(plots.scatter_panels([plots.Panel(f"t = {t}", x, plots.SCHEDULE_COLORS["custom"])
                                 for t, x in list(zip(SHOW_T, rev, strict=True))[::-1]], height=250),
           key="home_reverse")
st.caption("Eight Gaussians in standardised units, cosine schedule, T = 1000, 800 points.")


def home_gif(fwd: list[np.ndarray], rev: list[np.ndarray]) -> bytes:
    """The two rows as one animation: forward t = 0 -> 1000, then the reverse run t = 1000 -> 0."""
    frames = [exports.scatter_frame(x, color=plots.POINT_COLOR) for x in fwd]
    frames += [exports.scatter_frame(x, color=plots.SCHEDULE_COLORS["custom"]) for x in rev[::-1]]
    labels = [f"forward q: t = {t}" for t in SHOW_T] + [f"reverse p: t = {t}" for t in SHOW_T[::-1]]
    return exports.animation_gif(frames, 700, GIF_SETTINGS, labels)


exports.download_button("Forward and reverse (GIF)", partial(home_gif, fwd, rev),
                        exports.file_name("home", "forward-reverse", GIF_SETTINGS, "gif"), key="home.download.gif")

st.subheader("The pages")
pages = [p for p in sitemap.existing_pages() if p.file != sitemap.HOME]
for section in dict.fromkeys(p.section for p in pages):
    st.markdown(f"**{section}**")
    for p in (p for p in pages if p.section == section):
        link, text = st.columns([1, 3], vertical_alignment="center")
        with link:
            st.page_link(p.path, label=p.title, icon=p.icon)
        text.markdown(p.teaches)
st.caption("The engine behind these pages is `core/`; `python -m core train --data eight_gaussians --out "
           "runs/my-model` trains the same models from the command line.")
