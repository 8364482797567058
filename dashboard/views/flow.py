"""Flow matching: the straight conditional paths the loss regresses on beside the curved marginal flow it learns
(Lipman et al. 2023), the learned velocity field beside the exact one of the mixture toys, trajectories of flow
matching, rectified flow (reflow, Liu et al. 2023) and diffusion's probability-flow ODE (DDIM) from the same noise
with their straightness, and sample quality against network evaluations for all of them."""

from functools import partial

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from core.analytic import GaussianMixture
from core.data.toy2d import MIXTURE_TOYS
from core.flow import loss_flow_matching, sample_flow, straightness
from dashboard.ui import exports, flow, plots, sampling, score_field
from dashboard.ui.fmt import fmt_num, toy_label
from dashboard.ui.header import page_header
from dashboard.ui.loaders import TOYS, broken_model_notice, is_mixture, pretrained_problem, toy_points
from dashboard.ui.widgets import UrlWidgets

DEFAULT_TOY = flow.DEFAULT_TOY
LIM = 3.5  # noise and every toy lie within +-3.5 (standardised units)
FIELD_LIM = score_field.FIELD_LIM
FIELD_N = 21  # arrows per side
HEAT_N = 40  # error heat-map cells per side
N_OVERLAY = 600  # grey points under the panels
N_LOSS = 4000  # pairs for the loss at t
N_CLOUD = 1000  # samples of each trajectory panel
N_PATHS = 12
EXACT_NOTE = ("The exact velocity is known in closed form for the Gaussian mixtures only "
              f"({', '.join(toy_label(t) for t in MIXTURE_TOYS)}).")

page_header(
    "Flow matching",
    [r"x_t=t\,x_1+(1-t)\,x_0,\quad x_0\sim\mathcal N(0,I),\ x_1\sim p_\text{data}\qquad"
     r"\mathcal L_\text{CFM}=\mathbb E_{t,x_0,x_1}\big\|v_\theta(x_t,t)-(x_1-x_0)\big\|^2",
     r"v(x,t)=\mathbb E\big[x_1-x_0\,\big|\,x_t=x\big],\qquad \frac{\mathrm dx}{\mathrm dt}=v_\theta(x,t)"
     r"\ \text{ from } t=0 \text{ (noise) to } t=1 \text{ (data)}"],
    "Flow matching (Lipman et al. 2023) skips the noising chain: it joins each noise sample $x_0$ to a data point "
    "$x_1$ by a straight line and trains a network $v_\\theta$ to regress the line's constant velocity $x_1-x_0$ "
    "at random points of it. Since many lines pass through one point, the best it can do is their average, the "
    "*marginal* velocity $v(x,t)$; following that field as an ODE carries $\\mathcal N(0,I)$ onto the data. The "
    "marginal paths bend, so a solver needs several steps; *reflow* (Liu et al. 2023, rectified flow) retrains on "
    "the pairs (noise, where the flow took it), whose paths are nearly straight, so one Euler step goes most of "
    "the way. Diffusion's probability-flow ODE, drawn on the same coordinates, is another such flow: DDIM is Euler "
    "on it.",
    "with *eight gaussians*, set the steps of the trajectories to 1: flow matching's single Euler step lands every "
    "point near the centre (the average of the modes, which is where the velocity at t = 0 points), while the "
    "rectified flow already draws the eight modes. Then drag the velocity field's t from 0 to 0.8: at t = 0 all "
    "arrows point to the centre, by t = 0.8 each points into its nearest mode.",
    code=[loss_flow_matching, sample_flow, straightness, GaussianMixture.velocity],
)

ui = UrlWidgets("flow")
c = st.columns([3, 2, 5])
with c[0]:
    toy = ui.selectbox("Toy data", "toy", TOYS, DEFAULT_TOY, format_func=toy_label)
with c[1]:
    seed = ui.number("Seed", "seed", 0, 9999, 0, help="The noise x_0 of every panel (the same in each).")
mixture = is_mixture(toy)
reflow_toys = flow.reflow_toys()
with c[2]:
    st.caption(f"**fm-{toy}**: conditional flow matching on *{toy_label(toy)}*; "
               + (f"**fm-reflow-{toy}**: one round of reflow on its pairs; " if toy in reflow_toys else "")
               + f"**ddpm-{toy}**: the diffusion model of the other pages. "
               + ("The exact marginal velocity of this mixture is known too." if mixture else EXACT_NOTE))

if problem := pretrained_problem(flow.fm_name(toy)):
    broken_model_notice(flow.fm_name(toy), problem, "This page needs it: choose another toy.")
    st.stop()
reflow_problem = pretrained_problem(flow.reflow_name(toy)) if toy in reflow_toys else None
if reflow_problem:
    broken_model_notice(flow.reflow_name(toy), reflow_problem, "The page shows flow matching and DDIM without it.")
has_reflow = toy in reflow_toys and reflow_problem is None
ddpm_problem = pretrained_problem(f"ddpm-{toy}")
if ddpm_problem:
    broken_model_notice(f"ddpm-{toy}", ddpm_problem, "The page shows the flows without the diffusion comparison.")
reflow_missing = ("No rectified flow is shipped for this toy; "
                  + (f"there is one for {', '.join(toy_label(t) for t in reflow_toys)}." if reflow_toys else
                     "none is shipped at all (python -m core train --family reflow --teacher fm-<toy> makes one)."))
data_overlay = toy_points(toy, N_OVERLAY, seed + 5)


def endpoints(points: np.ndarray, color: str, name: str, size: float = 6) -> go.Scatter:
    """Larger, opaque markers: where paths start or end."""
    return score_field.points_trace(points, color, name, size, 0.95)


# --- 1. conditional and marginal paths ---------------------------------------------------------------------------

st.subheader("Straight conditional paths, curved marginal paths")
st.markdown("Left: random pairs $(x_0, x_1)$ joined by their conditional paths $x_t=t\\,x_1+(1-t)\\,x_0$, the "
            "straight lines whose velocity $x_1-x_0$ the loss regresses on; they cross freely. Through one point "
            "$x$ at time $t$ pass many such lines, and the network can only learn their average, the marginal "
            "velocity $v(x,t)=\\mathbb E[x_1-x_0\\mid x_t=x]$. Following it from the **same** $x_0$'s (middle"
            + (", and the exact marginal flow of the mixture on the right" if mixture else "")
            + ") gives paths that bend towards the data and never cross: an ODE's paths cannot, since one point "
            "has one velocity. Where a path ends is decided by its start alone, not by a partner $x_1$.")
n_pairs = ui.slider("Pairs", "pairs", 4, 40, 12, step=1, help="How many noises x_0 (and random data partners x_1).")
pp = flow.pair_paths(toy, n_pairs, seed)
x0, x1 = pp["x0"], pp["x1"]
panels = [score_field.Panel("conditional paths: (x₀, x₁) joined by straight lines", [
    score_field.points_trace(data_overlay, name="data"),
    score_field.paths_trace(np.stack([x0, x1]), plots.PATH_COLOR, "conditional paths", 1.3, 0.9),
    endpoints(x0, "#111827", "x₀ (noise)", 5), endpoints(x1, plots.PATH_COLOR, "x₁ (data)")])]
for key, title, color in (("learned", f"learned marginal flow v_θ (fm-{toy})", score_field.LEARNED_COLOR),
                          ("exact", "exact marginal flow of the mixture", score_field.EXACT_COLOR)):
    if pp[key] is None:
        continue
    panels.append(score_field.Panel(title, [
        score_field.points_trace(data_overlay, name="data"),
        score_field.paths_trace(pp[key], color, "marginal paths", 1.3, 0.9),
        endpoints(x0, "#111827", "x₀ (noise)", 5), endpoints(pp[key][-1], color, "x₁ = where the flow ends")]))
plots.show(score_field.panels_figure(panels, LIM, height=400), key="flow_paths")
st.caption(f"Black: the {n_pairs} noises x₀; grey: the data. The marginal paths are Heun's rule, 50 steps on [0, 1]. "
           + ("" if mixture else EXACT_NOTE))

# --- 2. the velocity field -----------------------------------------------------------------------------------

st.subheader("The velocity field at time t")
st.latex(r"v(x,t)=\sum_k r_k(x,t)\Big[\mu_k+\frac{t\,s^2-(1-t)}{t^2s^2+(1-t)^2}\,\big(x-t\,\mu_k\big)\Big]")
st.markdown("The field the network learned, as arrows, over draws of $x_t$ (grey). For a mixture of "
            r"$\mathcal N(\mu_k, s^2 I)$ the marginal velocity is the closed form above, with $r_k(x,t)$ the "
            "posterior weight of component $k$ given $x_t=x$. At $t=0$, $x_t$ is pure noise "
            "and tells nothing about its partner, so the best guess of $x_1-x_0$ is *the data's mean minus x*: every "
            "arrow points to the centre. As $t$ grows, $x_t$ says more and more which mode it came from, and the "
            "arrows turn towards that mode (by $t\\approx 0.8$ they point into the nearest one); at $t=1$, $x_t$ is "
            "the data point itself, its noise averages to 0, and $v(x,1)=x$. "
            + ("On the mixtures the exact field is a closed form (above), so the learned one can be checked arrow by "
               "arrow." if mixture else EXACT_NOTE))
t = ui.slider("Flow time t", "t", 0.0, 1.0, 0.5, step=0.05, help="0: the noise; 1: the data.")
learned = flow.velocity_on_grid(toy, "fm", t, FIELD_N, FIELD_LIM)
exact = flow.velocity_on_grid(toy, "exact", t, FIELD_N, FIELD_LIM) if mixture else None
xs, pts = score_field.grid(FIELD_N, FIELD_LIM)
both = learned if exact is None else np.concatenate([learned, exact])
scale = float(np.quantile(np.linalg.norm(both, axis=1), 0.6)) or 1.0  # one scale for both panels
x_t = flow.x_t_draws(toy, t, N_OVERLAY, seed)
field_panels = [score_field.Panel(f"learned v_θ(x, t = {t:g})", [
    score_field.points_trace(x_t, name="x_t"),
    score_field.arrows_trace(pts, learned, xs[1] - xs[0], scale, score_field.LEARNED_COLOR, "v_θ")])]
grid_rms = None
if mixture:
    field_panels.append(score_field.Panel(f"exact v(x, t = {t:g}) of the mixture", [
        score_field.points_trace(x_t, name="x_t"),
        score_field.arrows_trace(pts, exact, xs[1] - xs[0], scale, score_field.EXACT_COLOR, "v")]))
    hx, _ = score_field.grid(HEAT_N, FIELD_LIM)
    diff = np.linalg.norm(flow.velocity_on_grid(toy, "fm", t, HEAT_N, FIELD_LIM)
                          - flow.velocity_on_grid(toy, "exact", t, HEAT_N, FIELD_LIM), axis=1)
    grid_rms = float(np.sqrt(np.mean(diff ** 2)))
    z = np.log10(np.maximum(diff, 1e-6)).reshape(HEAT_N, HEAT_N)
    zmin, zmax = (float(v) for v in np.quantile(z, [0.02, 0.98]))
    zmax = max(zmax, zmin + 0.5)
    tv, tt = score_field.log10_ticks(zmin, zmax)
    field_panels.append(score_field.Panel("|v_θ − v| (log scale)", [
        score_field.heatmap_trace(hx, z, "error", "Plasma", zmin, zmax, "", tv, tt),
        score_field.points_trace(x_t[:300], "#e5e7eb", "x_t", 2.5, 0.5)]))
plots.show(score_field.panels_figure(field_panels, FIELD_LIM, height=400 if mixture else 480), key="flow_field")
losses = flow.loss_at_t(toy, t, N_LOSS, seed)
m = st.columns(4 if mixture else 2)
m[0].metric("flow-matching loss at t", f"{losses['learned']:.4f}",
            help=f"E‖v_θ(x_t, t) − (x₁ − x₀)‖² over {N_LOSS} pairs at this t alone. It never reaches 0: the "
                 "straight velocities through a point differ, and their spread is the loss's floor.")
if mixture:
    m[1].metric("exact velocity's loss (the floor)", f"{losses['exact']:.4f}",
                help="No model can go below the exact marginal velocity's loss at this t.")
    m[2].metric("RMS error where x_t lies", fmt_num(losses["rms"]),
                help=f"√E‖v_θ(x_t, t) − v(x_t, t)‖² over the same {N_LOSS} draws of x_t: the learning error where "
                     "training saw data.")
    m[3].metric("RMS error on the grid", fmt_num(grid_rms),
                help=f"Over the {HEAT_N}×{HEAT_N} grid of the heat map: larger, since far from the data (the corners) "
                     "training never saw a sample.")
else:
    m[1].metric("RMS of v_θ(x₁, 1) − x₁ on the data", fmt_num(flow.end_velocity_error(toy, N_LOSS, seed)),
                help=f"Over {N_LOSS} data points, whose typical size is about 1.4: at t = 1 the point is the data "
                     "itself and its noise averages to 0, so the exact velocity of any data set is v(x, 1) = x on "
                     "the data. A check of the learned field where no closed form exists.")
st.caption("Arrows share one scale across panels, capped at 0.9 grid cells. Grey: draws of x_t = t x₁ + (1 − t) x₀."
           + (" The heat map is log₁₀ of the error's size at each point (light dots: x_t)." if mixture else ""))

# --- 3. trajectories -------------------------------------------------------------------------------------------

st.subheader("Trajectories from the same noise")
st.latex(r"S=\int_0^1\mathbb E\,\big\|(X_1-X_0)-v(X_t,t)\big\|^2\,\mathrm dt\qquad"
         r"\text{(straightness, Liu et al. 2023: 0 when every path is a straight line)}")
st.markdown("Three ODEs from the same noise, each integrated with the same number of steps: flow matching with "
            "Euler, the rectified flow with Euler, and DDIM (η = 0) of the diffusion model, drawn on the flow's "
            "coordinates (a VP state $\\sqrt{\\bar\\alpha}\\,x_1+\\sqrt{1-\\bar\\alpha}\\,x_0$ divided by "
            "$\\sqrt{\\bar\\alpha}+\\sqrt{1-\\bar\\alpha}$ is the path's point at "
            "$t=\\sqrt{\\bar\\alpha}/(\\sqrt{\\bar\\alpha}+\\sqrt{1-\\bar\\alpha})$; DDIM is Euler on that flow). "
            "The straighter the paths, the fewer steps a solver needs: a straight path is integrated exactly by one "
            "Euler step. Flow matching's and DDIM's paths are about equally curved: with Gaussian noise, both follow "
            "the same marginal flow $\\mathbb E[x_1-x_0\\mid x_t]$ (only the time grid and the network differ). "
            "Reflow changes the pairing of noise and data itself, and with it the paths.")
steps = ui.slider("Steps", "steps", 1, 50, 3, step=1,
                  help="Euler steps of each flow, DDIM steps of the diffusion model (trailing spacing): one network "
                       "evaluation each.")
kinds = [("fm", f"flow matching · Euler (fm-{toy})", score_field.LEARNED_COLOR)]
if has_reflow:
    kinds.append(("reflow", f"rectified flow · Euler (fm-reflow-{toy})", sampling.FLOW_COLORS["reflow_euler"]))
if not ddpm_problem:
    kinds.append(("ddim", f"DDIM on the flow's axes (ddpm-{toy})", sampling.METHOD_COLORS["ddim"]))
traj_panels, rows, ddim_start, samples = [], [], None, {}
for kind, title, color in kinds:
    run = flow.trajectory(toy, kind, steps, N_CLOUD, seed, N_PATHS)
    samples[kind] = run["x"]
    s = flow.straightness_of(toy, kind)
    if kind == "ddim":
        ddim_start = float(run["times"][0])
    rows.append({"ODE": title, "straightness S": s, "NFE": run["nfe"], "SW / data floor": run["ratio"]})
    traj_panels.append(score_field.Panel(f"{title.split(' (')[0]} · S = {fmt_num(s)}", [
        score_field.points_trace(data_overlay, name="data"),
        score_field.points_trace(np.clip(run["x"], -2 * LIM, 2 * LIM), color, "samples", 3, 0.6),
        score_field.paths_trace(np.clip(run["paths"], -2 * LIM, 2 * LIM), plots.PATH_COLOR, "paths", 1.2, 0.9),
        endpoints(run["paths"][-1], plots.PATH_COLOR, "ends")]))
if not has_reflow:
    traj_panels.insert(1, score_field.Panel("rectified flow", note=reflow_missing.replace("; ", ";<br>")))
plots.show(score_field.panels_figure(traj_panels, LIM, height=400), key="flow_trajectories")
panel_kinds = [kind for kind, *_ in kinds]
if not has_reflow:
    panel_kinds.insert(1, None)
model_of = {"fm": flow.fm_name(toy), "reflow": flow.reflow_name(toy), "ddim": f"ddpm-{toy}"}
for col, kind in zip(st.columns(len(panel_kinds)), panel_kinds, strict=True):  # under each panel
    if kind is not None:
        with col:
            settings = {"model": model_of[kind], "solver": "ddim" if kind == "ddim" else "euler", "steps": steps,
                        "n": N_CLOUD, "seed": seed}
            exports.download_button("Samples (CSV)", partial(exports.points_csv, samples[kind], settings),
                                    exports.file_name("flow", kind, settings, "csv"), key=f"flow.download.{kind}")
table = pd.DataFrame(rows)
st.dataframe(table, hide_index=True, width="stretch", column_config={
    "straightness S": st.column_config.NumberColumn(format="%.4g"),
    "SW / data floor": st.column_config.NumberColumn(format="%.2f×")})
st.caption(f"{N_CLOUD} samples per panel from the same x₀ (seed {seed}); orange: the paths of {N_PATHS} of them. "
           f"S is measured on {flow.STRAIGHTNESS_N} other noises with {flow.STRAIGHTNESS_STEPS} steps (a property of "
           "the ODE, not of the steps above)" + (f"; for DDIM on its path drawn on the flow's axes, which starts at "
                                             f"t = {fmt_num(ddim_start)} (the flow time of its first timestep, "
                                             "T − 1) and ends at 1" if ddim_start is not None else "")
           + ". SW / data floor: sliced Wasserstein distance to fresh data "
           "divided by that of two draws of the data (1 = as good as the data itself). "
           + ("" if has_reflow else reflow_missing))

# --- 4. quality against NFE ------------------------------------------------------------------------------------

st.subheader("Quality against network evaluations")
st.markdown("Each line is one ODE and solver, at budgets of 1 to 100 network evaluations (NFE); lower is better "
            "and the dotted line is the data floor. Midpoint and Heun spend two evaluations per step, so at the same "
            "NFE they take half the steps, which pays once the steps are small enough for their second order to "
            "count. "
            + ("The rectified flow's line is nearly flat: its paths are straight, so more steps add little. "
               if has_reflow else "")
            + f"DDIM and DPM-Solver++(2M) integrate the probability-flow ODE of ddpm-{toy} on the same budgets. All "
            "the lines level off at the models' own error, which no solver removes.")
store = st.session_state.setdefault("flow.quality", {})
if toy == DEFAULT_TOY or toy in store:
    bar = st.progress(0.0, text="Measuring...")
    df = store[toy] if toy in store else flow.quality_grid(toy, bar, diffusion=not ddpm_problem)
    bar.empty()
else:
    df = None
    b1, b2 = st.columns([2, 3], vertical_alignment="center")
    with b1:
        clicked = st.button(f"Compute for {toy_label(toy)} now", icon=":material/play_arrow:", key="flow.compute")
    with b2:
        st.caption(f"Runs every solver at NFE {', '.join(map(str, flow.QUALITY_NFE))} on {flow.QUALITY_N} points "
                   "(about 10-20 s on a 2-core CPU; cached for everyone afterwards). The default toy is measured "
                   "when the server starts.")
    if clicked:
        bar = st.progress(0.0, text="Starting...")
        store[toy] = flow.quality_grid(toy, bar, diffusion=not ddpm_problem)
        st.rerun()
if df is not None:
    st.altair_chart(sampling.quality_chart(df, "nfe"), width="stretch")
    st.dataframe(flow.budget_table(df), width="stretch")
    st.caption(f"SW / data floor on {flow.QUALITY_N} samples from one seed ({flow.QUALITY_SEED}). The chart places "
               "each run at the evaluations it used: a two-evaluation solver at an odd budget uses one less, and "
               "cannot run on a budget of 1 (—). DDIM uses trailing spacing, so its first step starts at pure noise. "
               + ("" if has_reflow else reflow_missing))
