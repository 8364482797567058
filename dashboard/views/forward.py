"""Forward process: a 2D toy dispersing into noise, animated, with the exact density q(x_t) of the mixture toys
and the paths of a few particles through the chain."""

import math
from functools import partial

import numpy as np
import streamlit as st
import torch

from core.analytic import GaussianMixture, toy_mixture
from core.diffusion import forward_chain, q_sample
from dashboard.ui import exports, plots
from dashboard.ui.fmt import fmt_num, toy_label
from dashboard.ui.header import page_header
from dashboard.ui.loaders import TOYS, build_schedule, is_mixture, toy_points
from dashboard.ui.terminal_snr import terminal_noise_warning
from dashboard.ui.widgets import UrlWidgets

N_FRAMES = 25
N_PATHS = 10
MAX_PATH_STEPS = 100  # recorded points per path over the whole chain
TRAIL = 0.25  # each path shows the last quarter of the chain: the whole walk would be a tangle by t = T
GRID = 70

page_header(
    "Forward process",
    r"q(x_t\mid x_{t-1})=\mathcal N\!\big(x_t;\ \sqrt{1-\beta_t}\,x_{t-1},\ \beta_t I\big)\quad\Longrightarrow\quad "
    r"q(x_t\mid x_0)=\mathcal N\!\big(x_t;\ \sqrt{\bar\alpha_t}\,x_0,\ (1-\bar\alpha_t) I\big)",
    "Each step shrinks every point a little towards the origin and adds a little Gaussian noise; after $T$ "
    "steps nothing of the data is left and the cloud is $\\mathcal N(0, I)$. Because every step is Gaussian, "
    "$t$ steps at once have the closed form on the right, so for a mixture of Gaussians the density of "
    "$x_t$ is exact at every $t$: $q(x_t)=\\sum_k w_k\\,\\mathcal N(\\sqrt{\\bar\\alpha_t}\\,\\mu_k,\\ "
    "(\\bar\\alpha_t\\sigma^2+1-\\bar\\alpha_t)I)$, drawn as contours. Single particles wander like random "
    "walks (orange), yet the cloud as a whole flows smoothly.",
    "choose *twenty five gaussians* with the linear schedule and press Play: the grid blurs away by the "
    "middle of the chain. Switch to cosine and it survives much longer. Set T = 50 and the last frame is not "
    "N(0, I): its contours stay square, where those of N(0, I) are circles.",
    code=[forward_chain, q_sample, GaussianMixture.log_prob],
)

ui = UrlWidgets("forward")
c = st.columns([3, 2, 3, 3, 2])
with c[0]:
    toy = ui.selectbox("Data", "toy", TOYS, "eight_gaussians", format_func=toy_label)
with c[1]:
    name = ui.selectbox("Schedule", "schedule", ("linear", "cosine", "sigmoid", "quadratic"), "linear")
with c[2]:
    T = ui.slider("Steps T", "T", 10, 1000, 1000, step=10)
with c[3]:
    n = ui.slider("Points", "n", 200, 2000, 1000, step=100)
with c[4]:
    seed = ui.number("Seed", "seed", 0, 9999, 0)


@st.cache_data(max_entries=16, show_spinner="Running the forward chain...")
def forward_frames(toy: str, name: str, T: int, n: int, seed: int) -> dict[str, np.ndarray | None]:
    """The chain x_0 -> x_T for n points: the cloud at N_FRAMES steps, N_PATHS particle paths, exact densities."""
    s = build_schedule(name, T)
    frame_ts = np.unique(np.round(np.linspace(0, T, N_FRAMES)).astype(int))
    keep = np.union1d(frame_ts, np.round(np.linspace(0, T, min(T, MAX_PATH_STEPS) + 1)).astype(int))
    x0 = torch.from_numpy(toy_points(toy, n, seed))
    states = forward_chain(s, x0, keep.tolist(), generator=torch.Generator().manual_seed(seed + 1)).numpy()
    density = None
    if is_mixture(toy):
        gm = toy_mixture(toy)
        _, _, pts = plots.density_grid(plots.LIM, GRID)
        pts = torch.from_numpy(pts)
        density = np.stack([
            gm.log_prob(pts, None if t == 0 else t - 1, s).exp().reshape(GRID, GRID).numpy() for t in frame_ts])
    alpha_bars = np.concatenate([[1.0], s.alpha_bars.numpy()])[frame_ts]
    return dict(frame_ts=frame_ts, keep=keep, clouds=states[np.searchsorted(keep, frame_ts)],
                paths=states[:, :N_PATHS], density=density, alpha_bars=alpha_bars)


try:
    s = build_schedule(name, T)
except ValueError as err:  # every preset is valid; kept so a future preset can never crash the page
    st.error(str(err), icon=":material/error:")
    st.stop()
data = forward_frames(toy, name, T, n, seed)
frames = []
for k, (t, ab) in enumerate(zip(data["frame_ts"], data["alpha_bars"], strict=True)):
    upto = (data["keep"] <= t) & (data["keep"] >= t - TRAIL * T)
    frames.append(plots.Frame(
        label=f"t = {t}   ᾱ_t = {fmt_num(float(ab))}",
        points=data["clouds"][k],
        density=None if data["density"] is None else data["density"][k],
        paths=[data["paths"][upto, j] for j in range(data["paths"].shape[1])],
    ))
xs, ys, _ = plots.density_grid(plots.LIM, GRID)
fig = plots.animated_scatter(frames, grid=(xs, ys) if data["density"] is not None else None)


def forward_gif(frames: list[plots.Frame], frame_ts: np.ndarray, settings: dict) -> bytes:
    """The animation as a GIF: the cloud and the particles' paths at each frame, on the chart's fixed axes."""
    images = [exports.scatter_frame(f.points, plots.LIM, color=plots.POINT_COLOR, paths=f.paths) for f in frames]
    return exports.animation_gif(images, 180, settings, [f"t = {t} of {T}" for t in frame_ts])


settings = {"toy": toy, "schedule": name, "T": T, "n": n, "seed": seed}
left, right = st.columns([3, 1], gap="medium")
with left:
    plots.show(fig, key="forward_animation")
    d = st.columns([3, 2, 2], vertical_alignment="bottom")
    export_t = d[0].select_slider("Points at step t, for the CSV", [int(t) for t in data["frame_ts"]],
                                  value=int(data["frame_ts"][len(data["frame_ts"]) // 2]), key=f"forward.export_t.{T}")
    k_export = int(np.searchsorted(data["frame_ts"], export_t))
    with d[1]:
        exports.download_button(f"x_t at t = {export_t} (CSV)",
                                partial(exports.points_csv, data["clouds"][k_export], {**settings, "t": export_t}),
                                exports.file_name("forward", "points", {**settings, "t": export_t}, "csv"),
                                key="forward.download.csv")
    with d[2]:
        exports.download_button("Animation (GIF)", partial(forward_gif, frames, data["frame_ts"], settings),
                                exports.file_name("forward", "animation", settings, "gif"), key="forward.download.gif")
with right:
    ab_T = float(s.alpha_bars[-1])
    st.metric("ᾱ_T", fmt_num(ab_T), help="the data's share of x_T's variance; pure noise needs ≈ 0")
    st.metric("signal left in x_T: √ᾱ_T", f"{100 * math.sqrt(ab_T):.1f}%")
    st.markdown(f"**Blue:** {n} points following the chain. **Orange:** {N_PATHS} particles and their paths "
                "over the last quarter of the chain.")
    if data["density"] is not None:
        st.markdown("**Teal lines:** the exact density q(x_t) at 10, 30, 50, 70 and 90% of its peak.")
    else:
        st.caption("This toy has no closed-form density; the exact contours are drawn for the Gaussian-mixture "
                   "toys (eight gaussians, twenty five gaussians).")
    st.caption(f"{len(frames)} frames from t = 0 to t = T; press ▶ or drag the slider.")
terminal_noise_warning(s, f"{name}, T = {T}")
