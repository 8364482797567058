"""Score field: the learned score (or eps) at a chosen noise level beside the exact score of the mixture toys,
where they differ, Langevin dynamics on the field, and the model's exact likelihood (PF-ODE) beside the ELBO."""

import math
import time
from functools import partial

import numpy as np
import pandas as pd
import streamlit as st
import torch

from core.analytic import GaussianMixture, toy_mixture
from core.diffusion import eps_to_score, q_sample
from core.langevin import langevin_dynamics, langevin_levels
from core.likelihood import compare_with_elbo, ode_log_likelihood_with_stats
from core.metrics import sliced_wasserstein
from dashboard.ui import exports, plots, score_field
from dashboard.ui.fmt import fmt_num
from dashboard.ui.header import page_header, show_code
from dashboard.ui.loaders import gaussian_noise, is_mixture, toy_points
from dashboard.ui.models import model_picker, resolve
from dashboard.ui.widgets import UrlWidgets

LIM = score_field.FIELD_LIM
HEAT_N = 48  # heat-map cells per side
CONTOUR_N = 60
N_OVERLAY = 600  # noised data drawn under the arrows
N_LOSS = 4000  # x_t samples for the loss at t
FLOW_STEPS = 14
LL_BATCH = 64  # data points for the ELBO vs ODE numbers
LL_RTOL = 1e-4  # PF-ODE tolerance for the map (the numbers use the engine's 1e-5)
LL_CHUNK_POINTS = 250  # the map's ODE runs on this many grid points (whole rows) at a time, each chunk adapting its
# own steps: a small grid is one solve, a stiff corner of a large one slows only its chunk

page_header(
    "Score field",
    [r"s_\theta(x_t,t)=-\frac{\epsilon_\theta(x_t,t)}{\sqrt{1-\bar\alpha_t}}\;\approx\;\nabla_{x_t}\log q(x_t),"
     r"\qquad \nabla_{x}\log q(x_t)=-\sum_k r_k(x)\,"
     r"\frac{x-\sqrt{\bar\alpha_t}\,\mu_k}{\bar\alpha_t\sigma^2+1-\bar\alpha_t}"],
    "A network trained to predict the noise has learned a *score*: rescaled, its prediction $-\\epsilon_\\theta/"
    "\\sqrt{1-\\bar\\alpha_t}$ points from $x_t$ towards likelier data at noise level $t$ (Song et al. 2021). For "
    "the Gaussian-mixture toys the score of $q(x_t)$ is a closed form (right, with $r_k$ the posterior weight of "
    "component $k$), so the learned field can be checked arrow by arrow; the heat map shows where the two "
    "disagree, which is mostly far from the data, where training never sees a sample. Following the score with "
    "a little noise (Langevin dynamics) draws samples of $q(x_t)$, and integrating it as an ODE gives the "
    "model's exact likelihood.",
    "with *eight gaussians*, drag t from 1000 down to 1: a single sink at the origin splits into eight basins. "
    "Then choose *twenty five gaussians* at t = 10 and run Langevin without annealing: particles drawn from "
    "N(0, I) fall into the nearest basin, so the central modes get far more of them than the corners, and the "
    "distance to q(x_t) stays well above the floor. Switch annealing on: the same number of steps spreads them "
    "much more evenly, and the distance comes close to the floor.",
    code=[eps_to_score, GaussianMixture.score],
)

ui = UrlWidgets("score_field")
c = st.columns([4, 4, 2, 2, 2, 2])
with c[0]:
    choice = model_picker(ui, exact_toggle=False)
s = choice.schedule
T = s.T
mixture = choice.toy is not None and is_mixture(choice.toy)
with c[1]:
    t = ui.slider("Noise level t", "t", 1, T, max(1, T // 10), step=1,
                  help="the paper's step t = 1..T; t = T is pure noise")
with c[2]:
    show = ui.selectbox("Show", "show", ("score", "eps"), "score",
                        format_func=lambda v: {"score": "score s", "eps": "noise ε"}[v])
with c[3]:
    view = ui.selectbox("Draw as", "view", ("arrows", "flow"), "arrows",
                        format_func=lambda v: {"arrows": "arrows", "flow": "flow lines"}[v])
with c[4]:
    n = ui.slider("Arrows per side", "n", 10, 30, 20, step=1)
with c[5]:
    seed = ui.number("Seed", "seed", 0, 9999, 0)

ti = t - 1  # the engine's index
ab = float(s.alpha_bars[ti])


# --- cached computations (keyed on the model token; the model is resolved inside) -------------------------------


@st.cache_data(max_entries=128, show_spinner=False)
def field_on_grid(token: str, exact: bool, ti: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """eps and score of the model (exact: of the mixture) on the n x n grid at index ti."""
    m = resolve(token, exact)
    return score_field.eps_and_score(m.eps_model, m.schedule, score_field.grid(n, LIM)[1], ti)


@st.cache_data(max_entries=64, show_spinner=False)
def flows(token: str, exact: bool, ti: int, n: int) -> np.ndarray:
    """Uphill paths of log q(x_t) along the model's score from an n/2 x n/2 grid of seeds."""
    m = resolve(token, exact)
    k = max(4, n // 2)
    spacing = 2 * LIM / k
    seeds = score_field.grid(k, LIM - spacing / 2)[1]
    return score_field.flow_lines(lambda x: score_field.eps_and_score(m.eps_model, m.schedule, x, ti)[1], seeds,
                                  FLOW_STEPS, 1.6 * spacing / FLOW_STEPS)


@st.cache_data(max_entries=64, show_spinner=False)
def clean_data(token: str, n: int, seed: int) -> np.ndarray:
    """n points of the data the model was trained on (a toy, or the user's standardised points)."""
    m = resolve(token)
    if m.toy is not None:
        return toy_points(m.toy, n, seed)
    pts = m.data.numpy().astype(np.float32)
    idx = torch.randint(0, len(pts), (n,), generator=torch.Generator().manual_seed(seed)).numpy()
    return pts[idx]


@st.cache_data(max_entries=64, show_spinner=False)
def noised(token: str, ti: int, n: int, seed: int) -> np.ndarray:
    """n draws of q(x_t): x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps."""
    m = resolve(token)
    x0 = torch.from_numpy(clean_data(token, n, seed))
    return q_sample(m.schedule, x0, torch.full((n,), ti), torch.from_numpy(gaussian_noise(n, seed + 1))).numpy()


@st.cache_data(max_entries=64, show_spinner=False)
def density(toy: str, token: str, ti: int) -> np.ndarray:
    """The exact q(x_t) of a mixture toy on the contour grid."""
    pts = torch.from_numpy(score_field.grid(CONTOUR_N, LIM)[1]).double()
    return toy_mixture(toy).log_prob(pts, ti, resolve(token).schedule).exp().reshape(CONTOUR_N, CONTOUR_N).numpy()


@st.cache_data(max_entries=64, show_spinner=False)
def loss_at_t(token: str, ti: int, seed: int) -> dict[str, float]:
    """L_simple at this t for the model and (mixtures) for the exact eps, on the same x_0 and noise."""
    m = resolve(token)
    x0 = torch.from_numpy(clean_data(token, N_LOSS, seed + 2))
    noise = torch.from_numpy(gaussian_noise(N_LOSS, seed + 3))
    tt = torch.full((N_LOSS,), float(ti))
    x_t = q_sample(m.schedule, x0, tt, noise)
    with torch.no_grad():
        eps = m.eps_model(x_t, tt).float()
    out = {"learned": float((eps - noise).pow(2).sum(1).mean())}
    if m.toy is not None and is_mixture(m.toy):
        exact = resolve(token, exact=True).eps_model(x_t, tt).float()
        out["exact"] = float((exact - noise).pow(2).sum(1).mean())
        out["gap"] = float((eps - exact).pow(2).sum(1).mean())
    return out


# --- the field ------------------------------------------------------------------------------------------------

k = 0 if show == "eps" else 1
learned = field_on_grid(choice.token, False, ti, n)[k]
exact = field_on_grid(choice.token, True, ti, n)[k] if mixture else None
xs, pts = score_field.grid(n, LIM)
cell = xs[1] - xs[0]
both = learned if exact is None else np.concatenate([learned, exact])
scale = float(np.quantile(np.linalg.norm(both, axis=1), 0.6)) or 1.0  # one scale for both panels
overlay = noised(choice.token, ti, N_OVERLAY, seed)
label = "ε" if show == "eps" else "s"
cx = score_field.grid(CONTOUR_N, LIM)[0]


def field_traces(token: str, exact_field: bool, vectors: np.ndarray, color: str) -> list:
    out: list = [score_field.points_trace(overlay, name="x_t ~ q(x_t)")]
    if exact_field:
        out.insert(0, plots.contour_trace(cx, cx, density(choice.toy, token, ti)))
    if view == "arrows":
        out.append(score_field.arrows_trace(pts, vectors, cell, scale, color, "field"))
    else:
        paths = flows(token, exact_field, ti, n)
        out.append(score_field.paths_trace(paths, color, "flow lines", width=1.2, opacity=0.9))
        out.append(score_field.points_trace(paths[-1], color, "ends", 4, 0.9))
    return out


panels = [score_field.Panel(f"learned {label}_θ(x_t, t)",
                            field_traces(choice.token, False, learned, score_field.LEARNED_COLOR))]
if mixture:
    panels.append(score_field.Panel(f"exact {label}(x_t, t) of the mixture",
                                    field_traces(choice.token, True, exact, score_field.EXACT_COLOR)))
    hx, _ = score_field.grid(HEAT_N, LIM)
    diff = np.linalg.norm(field_on_grid(choice.token, False, ti, HEAT_N)[k]
                          - field_on_grid(choice.token, True, ti, HEAT_N)[k], axis=1)
    z = np.log10(np.maximum(diff, 1e-6)).reshape(HEAT_N, HEAT_N)
    zmin, zmax = (float(v) for v in np.quantile(z, [0.02, 0.98]))
    zmax = max(zmax, zmin + 0.5)
    tv, tt_ = score_field.log10_ticks(zmin, zmax)
    panels.append(score_field.Panel(f"|{label}_θ − {label}| (log scale)", [
        score_field.heatmap_trace(hx, z, "error", "Plasma", zmin, zmax, "", tv, tt_),
        plots.contour_trace(cx, cx, density(choice.toy, choice.token, ti), color="#e5e7eb"),
    ]))
plots.show(score_field.panels_figure(panels, LIM, height=400 if mixture else 480), key="score_field")

losses = loss_at_t(choice.token, ti, seed)
m = st.columns(4 if mixture else 3)
m[0].metric("ᾱ_t", fmt_num(ab), help="the data's share of x_t's variance")
m[1].metric("noise level √(1 − ᾱ_t)", fmt_num(math.sqrt(1 - ab)),
            help="score = −ε / √(1 − ᾱ_t): at small t the score is large even where ε is small")
m[2].metric("training loss at t", f"{losses['learned']:.4f}",
            help=f"E‖ε_θ(x_t, t) − ε‖² over {N_LOSS} draws of x_0 and ε (L_simple at this t alone)")
if mixture:
    m[3].metric("exact ε's loss (the floor)", f"{losses['exact']:.4f}",
                delta=f"gap {losses['gap']:.4f} = E‖ε_θ − ε*‖²", delta_color="off", delta_arrow="off",
                help="No model can go below the exact eps's loss at this t; the gap is the learning error, "
                     "averaged where the data actually is.")
what = ("Arrows show the direction and relative size of the field; their lengths are capped at 0.9 grid cells and "
        "share one scale across panels." if view == "arrows" else
        f"Lines show uphill paths of log q(x_t): {FLOW_STEPS} fixed-length steps along the score from a grid of "
        "seeds, ending in a dot.")
st.caption(f"{what} Grey: draws of q(x_t). " + (
    "Teal lines: the exact density q(x_t) at 10-90% of its peak; the heat map is log₁₀ of the error's size at each "
    "point (light contours: q(x_t))." if mixture else
    "The exact score is known only for the mixture toys (eight and twenty five gaussians)."))

# --- Langevin dynamics ---------------------------------------------------------------------------------------------

st.subheader("Langevin dynamics on the field")
st.latex(r"x_{k+1}=x_k+\frac{\delta}{2}\,s_\theta(x_k,t)+\sqrt{\delta}\,z_k,\qquad z_k\sim\mathcal N(0,I),\quad "
         r"\delta=\eta\,(1-\bar\alpha_t)")
st.markdown("With a small enough step, this chain's stationary distribution is $q(x_t)$ itself: the score pulls "
            "particles uphill and the noise keeps them spread. At low noise the basins of the modes are separated "
            "by valleys the particles cannot cross, so the mass each mode receives depends on where particles "
            "start; *annealing* (Song & Ermon 2019) starts at t = T and lowers the noise level as it goes.")
lc = st.columns([2, 2, 2, 2])
with lc[0]:
    n_particles = ui.slider("Particles", "ln", 100, 1000, 500, step=100)
with lc[1]:
    l_steps = ui.slider("Langevin steps", "lsteps", 0, 300, 50, step=10)
with lc[2]:
    eta = ui.slider("Step size η", "eta", 0.01, 1.0, 0.5, step=0.01)
with lc[3]:
    annealed = ui.toggle("Anneal from t = T", "anneal", False,
                         help="spread the same steps over 10 noise levels from T down to t")


@st.cache_data(max_entries=64, show_spinner="Running Langevin dynamics...")
def langevin_run(token: str, exact: bool, ti: int, n: int, steps: int, eta: float, annealed: bool,
                 seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Final particles (n, 2) and 10 particle paths, from N(0, I) (the same draw for every field)."""
    m = resolve(token, exact)
    x = torch.from_numpy(gaussian_noise(n, seed + 4))
    final, paths = langevin_dynamics(m.eps_model, m.schedule, x, ti, steps, eta,
                                     generator=torch.Generator().manual_seed(seed + 5), annealed=annealed)
    if annealed:  # the early, high-noise levels take huge steps: draw the paths over the last three levels
        levels = langevin_levels(m.schedule, ti, steps, annealed)
        paths = paths[len(paths) - 1 - sum(c for _, c in levels[-3:]):]
    stride = max(1, len(paths) // 100)
    return final.numpy(), paths[::stride].numpy()


@st.cache_data(max_entries=64, show_spinner=False)
def sw_to_q(points: np.ndarray, token: str, ti: int, seed: int) -> tuple[float, float]:
    """Sliced Wasserstein of the particles to fresh draws of q(x_t), and the floor (two draws of q(x_t))."""
    n = len(points)
    ref = noised(token, ti, n, seed + 100)
    g = torch.Generator().manual_seed(0)
    sw = sliced_wasserstein(points, ref, n_projections=128, generator=g)
    floor = sliced_wasserstein(noised(token, ti, n, seed + 200), ref, n_projections=128,
                               generator=torch.Generator().manual_seed(0))
    return sw, floor


runs = [("learned", False, score_field.LEARNED_COLOR)] + ([("exact", True, score_field.EXACT_COLOR)] if mixture else [])
l_panels, l_metrics, l_finals = [], [], {}
q_overlay = noised(choice.token, ti, n_particles, seed + 100)
for name, is_exact, color in runs:
    final, paths = langevin_run(choice.token, is_exact, ti, n_particles, l_steps, eta, annealed, seed)
    l_finals[name] = final
    finite = np.isfinite(final).all(axis=1)
    sw, floor = sw_to_q(final[finite], choice.token, ti, seed) if finite.sum() > 1 else (math.inf, math.nan)
    l_metrics.append((name, sw, floor, int((~finite).sum())))
    l_panels.append(score_field.Panel(f"Langevin on the {name} score · SW to q(x_t) = {fmt_num(sw)}", [
        score_field.points_trace(q_overlay, name="q(x_t)"),
        score_field.points_trace(np.clip(final[finite], -LIM * 2, LIM * 2), color, "particles", 3.5, 0.7),
        score_field.paths_trace(np.clip(np.nan_to_num(paths), -LIM * 2, LIM * 2), plots.PATH_COLOR, "paths"),
    ]))
plots.show(score_field.panels_figure(l_panels, LIM, height=440), key="langevin")
l_settings = {"model": choice.token, "t": t, "n": n_particles, "steps": l_steps, "eta": eta, "annealed": annealed,
              "seed": seed}
for col, (name, final) in zip(st.columns(len(l_finals)), l_finals.items(), strict=True):  # under each panel
    with col:
        exports.download_button(f"Langevin on the {name} score (CSV)",
                                partial(exports.points_csv, final, {**l_settings, "score": name}),
                                exports.file_name("score_field", f"langevin-{name}", l_settings, "csv"),
                                key=f"score_field.download.{name}")
floor = l_metrics[0][2]
st.caption(f"{n_particles} particles from N(0, I), {l_steps} steps"
           + (" over 10 levels from t = T down to t" if annealed else f" at t = {t}")
           + ". Grey: fresh draws of q(x_t); orange: 10 particle paths"
           + (" over the last three levels" if annealed else "") + ". SW is the sliced Wasserstein distance "
           f"to them; two independent draws of q(x_t) of this size are {fmt_num(floor)} apart (the floor).")
if any(bad for *_, bad in l_metrics):
    st.warning("Some particles diverged: lower the step size η.", icon=":material/warning:")
show_code(langevin_dynamics, label="Show the code: Langevin dynamics")

# --- likelihood ---------------------------------------------------------------------------------------------------

st.subheader("Likelihood: the probability-flow ODE, the true density and the ELBO")
st.latex(r"\log p_\theta(x_0)=\log p_T(x_T)+\int_0^T \nabla\!\cdot\tilde f_\theta(x_t,t)\,dt,\qquad "
         r"\tilde f_\theta(x_t,t)=f(x_t,t)-\tfrac12 g(t)^2 s_\theta(x_t,t)")
st.latex(r"\log p_\theta(x_0)\;\ge\;-L_T-\sum_{t=2}^{T}L_{t-1}-L_0\qquad(\text{the ELBO, Ho et al. eq. 5})")
st.markdown("The same score defines a deterministic flow, the probability-flow ODE, which carries each data point "
            "to noise; the change of variables along it gives the model's exact log-density (Song et al. 2021, "
            "sec. 4.3). The ELBO of Ho et al. (eq. 5) is only a lower bound, even for the exact score: the gap is "
            "the price of the discrete Gaussian reverse steps.")
kc = st.columns([3, 5])
with kc[0]:
    ll_n = ui.slider("Likelihood grid (points per side)", "lln", 10, 30, 25, step=1)
with kc[1]:
    st.write("")
    rows_needed = 2 if mixture else 1
    most = score_field.LL_MAP_BUDGET_S + rows_needed * score_field.LL_NUMBERS_BUDGET_S
    compute = ui.toggle(f"Compute the likelihood ({ll_n}×{ll_n} grid and {LL_BATCH} data points; at most {most:.0f} s "
                        "the first time, then cached; switch off to stop)", "ll", False)


def _bar(text: str):
    bar = st.progress(0.0, text=text)
    return bar, lambda frac, phase: bar.progress(min(frac, 1.0), text=f"{text} ({phase}: {100 * frac:.0f}%; "
                                                                      "switch the toggle off to stop)")


@st.cache_data(max_entries=16, show_spinner=False)
def likelihood_map(token: str, n: int) -> tuple[np.ndarray, float]:
    """log p_theta on the n x n grid through the PF-ODE (nats) and the seconds it took. Solved in chunks of whole
    rows (about LL_CHUNK_POINTS points) until score_field.LL_MAP_BUDGET_S; rows not reached are NaN. A progress bar
    runs meanwhile."""
    m = resolve(token)
    bar, progress = _bar(f"PF-ODE log-likelihood of the learned model on the {n}×{n} grid")
    x = torch.from_numpy(score_field.grid(n, LIM)[1])
    out = np.full(n * n, np.nan)
    t0 = time.perf_counter()
    chunk = max(1, LL_CHUNK_POINTS // n)  # rows per solve
    starts = range(0, n, chunk)
    for i, r0 in enumerate(starts):
        rows = slice(r0 * n, min(r0 + chunk, n) * n)
        model = score_field.ProgressEps(m.eps_model, m.schedule.T,
                                        lambda f, ph, i=i: progress((i + f) / len(starts), ph),
                                        deadline=t0 + score_field.LL_MAP_BUDGET_S)
        try:
            out[rows] = ode_log_likelihood_with_stats(model, m.schedule, x[rows], rtol=LL_RTOL,
                                                      atol=LL_RTOL).log_prob.numpy()
        except score_field.BudgetExceeded:
            break
    bar.empty()
    return out.reshape(n, n), time.perf_counter() - t0


@st.cache_data(max_entries=32, show_spinner=False)
def likelihood_numbers(token: str, exact: bool, n: int, seed: int) -> dict[str, float]:
    """ELBO and PF-ODE log-likelihood per dimension, averaged over n data points (compare_with_elbo), and the
    seconds taken; NaN numbers when score_field.LL_NUMBERS_BUDGET_S ran out first."""
    m = resolve(token, exact)
    who = "the exact score" if exact else "the learned model"
    bar, progress = _bar(f"ELBO and PF-ODE log-likelihood of {who} on {n} data points")
    x0 = torch.from_numpy(clean_data(token, n, seed + 6))
    t0 = time.perf_counter()
    model = score_field.ProgressEps(m.eps_model, m.schedule.T, progress, phases=("ode", "elbo"),
                                    deadline=t0 + score_field.LL_NUMBERS_BUDGET_S)
    try:
        r = compare_with_elbo(model, m.schedule, x0, generator=torch.Generator().manual_seed(seed + 7))
    except score_field.BudgetExceeded as stop:
        bar.empty()
        return {"elbo": math.nan, "ode": math.nan, "nfe": None, "seconds": time.perf_counter() - t0,
                "done": stop.done}
    bar.empty()
    return {"elbo": float(r.elbo_per_dim.mean()), "ode": float(r.ode_per_dim.mean()), "nfe": r.ode_nfe,
            "seconds": time.perf_counter() - t0, "done": 1.0}


if compute:
    gx, gpts = score_field.grid(ll_n, LIM)
    model_ll, map_seconds = likelihood_map(choice.token, ll_n)
    rows_done = int(np.isfinite(model_ll).all(axis=1).sum())
    lo_clip = 14.0  # nats below the peak: the colour scale's range
    if mixture:
        true_ll = toy_mixture(choice.toy).log_prob(torch.from_numpy(gpts).double()).numpy().reshape(ll_n, ll_n)
        top = float(max(true_ll.max(), np.nanmax(model_ll, initial=-np.inf)))
        diff = np.where(true_ll > top - lo_clip, model_ll - true_ll, np.nan)
        lo, top_clip = top - lo_clip, top
        ll_panels = [
            score_field.Panel("learned log p_θ(x_0) (PF-ODE)", [score_field.heatmap_trace(
                gx, np.maximum(model_ll, lo), "log p", "Viridis", lo, top_clip).update(showscale=False)]),
            score_field.Panel("true log q(x_0)", [score_field.heatmap_trace(
                gx, np.maximum(true_ll, lo), "log q", "Viridis", lo, top_clip, "nats")]),
            score_field.Panel("log p_θ − log q (nats)", [score_field.heatmap_trace(
                gx, np.clip(diff, -3, 3), "difference", "RdBu", -3, 3, "nats", zmid=0.0)]),
        ]
    else:
        top = float(np.nanmax(model_ll, initial=0.0))
        lo = top - lo_clip
        ll_panels = [score_field.Panel("learned log p_θ(x_0) (PF-ODE)", [
            score_field.heatmap_trace(gx, np.maximum(model_ll, lo), "log p", "Viridis", lo, top, "nats"),
            score_field.points_trace(clean_data(choice.token, 500, seed), "#f9fafb", "data", 2.5, 0.6)])]
    plots.show(score_field.panels_figure(ll_panels, LIM, height=360), key="likelihood_map")
    st.caption(f"{ll_n}×{ll_n} grid on [−{LIM:g}, {LIM:g}]², ODE tolerance {LL_RTOL:g}; colours cover "
               f"{lo_clip:g} nats below the peak" + ("; the difference is blank where q is below that range"
                                                      if mixture else "") + f". Computed in {map_seconds:.1f} s.")
    if rows_done < ll_n:
        st.warning(f"The map stopped at its {score_field.LL_MAP_BUDGET_S:g} s budget with {rows_done} of {ll_n} rows "
                   "done (blank above them): this model's probability-flow ODE needs many small steps (a model "
                   "that memorised a few points has a stiff flow), or the server is busy. A smaller grid finishes "
                   "sooner.",
                   icon=":material/timer:")

    rows = [("learned ε_θ", likelihood_numbers(choice.token, False, LL_BATCH, seed))]
    if mixture:
        rows.append(("exact score (oracle)", likelihood_numbers(choice.token, True, LL_BATCH, seed)))
    table = pd.DataFrame({
        "model": [r[0] for r in rows],
        "ELBO (nats/dim)": [r[1]["elbo"] for r in rows],
        "PF-ODE log-likelihood (nats/dim)": [r[1]["ode"] for r in rows],
        "ODE evaluations": [r[1]["nfe"] for r in rows],
        "seconds": [round(r[1]["seconds"], 1) for r in rows],
    })
    for name, r in rows:
        if r["nfe"] is None:
            st.warning(f"{name}: not done within its {score_field.LL_NUMBERS_BUDGET_S:g} s budget "
                       f"({100 * r['done']:.0f}% of the ODE and the ELBO's T network calls); its cells are empty.",
                       icon=":material/timer:")
    st.dataframe(table, hide_index=True, column_config={c: st.column_config.NumberColumn(format="%.4f")
                                                        for c in table.columns[1:3]})
    note = ""
    if mixture:
        x0 = torch.from_numpy(clean_data(choice.token, LL_BATCH, seed + 6)).double()
        true_mean = float(toy_mixture(choice.toy).log_prob(x0).mean()) / 2
        note = f" The true log q(x_0) of the same points is **{true_mean:.4f} nats/dim**."
    st.markdown(f"Averages over the same {LL_BATCH} data points (one draw of the noise per ELBO term; "
                f"ODE tolerance 1e-5).{note} Per dimension, so a 2D density counts half.")
else:
    st.caption("Off by default: the ODE needs a few hundred network evaluations with gradients; the results are "
               "cached per model and grid, so switching it on again later is instant.")
show_code(compare_with_elbo, ode_log_likelihood_with_stats, label="Show the code: likelihood")
