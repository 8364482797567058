"""Noise schedules: beta_t, alpha_bar_t, log-SNR and the posterior variance of four schedules side by side,
the terminal-SNR check, and what each schedule does to the same 2D cloud."""

import math

import numpy as np
import pandas as pd
import streamlit as st
import torch

from core.analytic import toy_mixture
from core.diffusion import q_sample
from core.metrics import sliced_wasserstein
from core.schedules import Schedule, make_schedule
from dashboard.ui import plots
from dashboard.ui.fmt import fmt_num, toy_label
from dashboard.ui.header import page_header
from dashboard.ui.loaders import (
    TOYS,
    build_schedule,
    gaussian_noise,
    is_mixture,
    schedule_bytes,
    schedule_from_bytes,
    toy_points,
)
from dashboard.ui.terminal_snr import terminal_noise_warning
from dashboard.ui.widgets import UrlWidgets

N_POINTS = 1000  # plotted per panel
N_SW = 4000  # for the distance to N(0, I): its sampling noise is about half that of 1000 points
MAX_CURVE_POINTS = 250  # per curve: the charts stay light at T = 1000
GRID_N = 60
GRID = plots.density_grid(plots.LIM, GRID_N)

page_header(
    "Noise schedules",
    r"\bar\alpha_t=\prod_{s=1}^{t}(1-\beta_s),\qquad \mathrm{SNR}(t)=\frac{\bar\alpha_t}{1-\bar\alpha_t},"
    r"\qquad \tilde\beta_t=\frac{1-\bar\alpha_{t-1}}{1-\bar\alpha_t}\,\beta_t",
    "A schedule is the list of per-step noise variances $\\beta_1,\\dots,\\beta_T$; everything else follows "
    "from it. $\\bar\\alpha_t$ is the share of the data's variance that survives to step $t$, the log-SNR is "
    "the same on a log scale, and $\\tilde\\beta_t$ is the variance of the exact reverse step "
    "$q(x_{t-1}\\mid x_t, x_0)$. Sampling starts from $\\mathcal N(0, I)$, so it only works if "
    "$\\bar\\alpha_T\\approx 0$.",
    "set T = 50 with the linear schedule (tiny-diffusion's default): ᾱ_T jumps to about 0.6, a warning "
    "appears, and at the bottom x_T is a ring with a dip in the middle, where N(0, I) has its peak "
    "(exact KL about 0.03 nats, against ≈ 0 for cosine).",
    code=[make_schedule, Schedule.__post_init__, q_sample],
)


def parse_beta_knots(text: str, T: int) -> np.ndarray:
    """Custom betas typed by a user: comma-separated values linearly interpolated over T steps.

    One value is a constant beta; two a linear ramp; T values are used as they are. Raises ValueError with a
    message for a human; the engine then checks the values themselves (each in (0, 1), finite).
    """
    fields = [f.strip() for f in text.replace(";", ",").split(",") if f.strip()]
    if not fields:
        raise ValueError("enter at least one beta, e.g. 0.005 or 0.0001, 0.02")
    knots = []
    for f in fields:
        try:
            knots.append(float(f))
        except ValueError:
            raise ValueError(f"cannot read {f[:20]!r} as a number") from None
    if len(knots) == 1:
        return np.full(T, knots[0])
    return np.interp(np.linspace(0, 1, T), np.linspace(0, 1, len(knots)), knots)


ui = UrlWidgets("schedules")
T = ui.slider("Number of steps T", "T", 10, 1000, 1000, step=10)


cols = st.columns(4, gap="medium")
specs: dict[str, dict] = {}
with cols[0]:
    st.markdown("**linear** · Ho et al. 2020")
    specs["linear"] = dict(beta_start=ui.slider("β_start", "lin_start", 1e-5, 1e-2, 1e-4, step=1e-5, format="%.5f"),
                           beta_end=ui.slider("β_end", "lin_end", 1e-3, 0.2, 0.02, step=1e-3, format="%.3f"))
with cols[1]:
    st.markdown("**cosine** · Nichol & Dhariwal 2021")
    specs["cosine"] = dict(s=ui.slider("offset s", "cos_s", 0.0, 0.2, 0.008, step=0.001, format="%.3f"))
with cols[2]:
    st.markdown("**sigmoid** · Chen 2023")
    specs["sigmoid"] = dict(start=ui.slider("start", "sig_start", -10.0, 5.0, -3.0, step=0.5),
                            end=ui.slider("end", "sig_end", -5.0, 10.0, 3.0, step=0.5),
                            tau=ui.slider("τ", "sig_tau", 0.1, 3.0, 1.0, step=0.1))
with cols[3]:
    st.markdown("**custom** · your own betas")
    knots = ui.text("β values (comma-separated)", "custom", "0.005", max_chars=2000,
                    help="One value: a constant β. Several: a piecewise-linear ramp through them over the T "
                         "steps (T values: used as they are). Each β must lie in (0, 1).")

schedules: dict[str, Schedule] = {}
for col, name in zip(st.columns(4, gap="medium"), ("linear", "cosine", "sigmoid", "custom"), strict=True):
    with col:
        try:
            if name == "custom":
                schedules[name] = build_schedule("custom", betas=parse_beta_knots(knots, T))
            else:
                schedules[name] = build_schedule(name, T, **specs[name])
        except ValueError as err:  # the engine's own message: nothing the user types crashes the page
            st.error(f"{name}: {err}", icon=":material/error:")
            continue
        ab_T = float(schedules[name].alpha_bars[-1])
        # From the engine's log SNR (sum of log(1 - beta)): with betas below 1e-16, alpha_bar_T rounds to 1 in
        # float64, yet SNR(T) is large and finite, never -inf
        log10_snr = float(schedules[name].log_snr[-1]) / math.log(10)
        log_snr = fmt_num(log10_snr) if math.isfinite(log10_snr) else ("+inf" if log10_snr > 0 else "-inf")
        st.metric(f"{name}: ᾱ_T", fmt_num(ab_T), delta=f"log₁₀ SNR(T) = {log_snr}", delta_color="off",
                  delta_arrow="off",
                  help="ᾱ_T is the data's share of x_T's variance; SNR(T) = ᾱ_T / (1 − ᾱ_T). "
                  "Pure noise needs ᾱ_T ≈ 0.")

for name, s in schedules.items():
    terminal_noise_warning(s, name)


@st.cache_data(max_entries=32, show_spinner=False)
def curves(label: str, betas: bytes) -> pd.DataFrame:
    """Long-form (t, schedule, quantity, value) for one schedule, at most MAX_CURVE_POINTS steps."""
    s = schedule_from_bytes(label, betas)
    idx = np.unique(np.round(np.linspace(0, s.T - 1, min(s.T, MAX_CURVE_POINTS))).astype(int))
    cols = {"beta": s.betas, "alpha_bar": s.alpha_bars, "log_snr": s.log_snr, "beta_tilde": s.posterior_variance}
    frames = [pd.DataFrame({"t": idx + 1, "schedule": label, "quantity": q, "value": v.numpy()[idx]})
              for q, v in cols.items()]
    df = pd.concat(frames, ignore_index=True)
    df = df[np.isfinite(df["value"])]
    log_scaled = df["quantity"].isin(["beta", "beta_tilde"])
    return df[~log_scaled | (df["value"] > 0)]  # log axes: beta_tilde_1 = 0 is not drawn


if schedules:
    df = pd.concat([curves(n, schedule_bytes(s)) for n, s in schedules.items()], ignore_index=True)
    charts = [("beta", "β_t (log scale)", True), ("alpha_bar", "ᾱ_t", False),
              ("log_snr", "log SNR(t) = log ᾱ_t/(1−ᾱ_t)", False),
              ("beta_tilde", "β̃_t posterior variance (log)", True)]
    for row in (charts[:2], charts[2:]):
        for col, (q, title, log_y) in zip(st.columns(2), row, strict=True):
            col.altair_chart(plots.line_chart(df[df["quantity"] == q], "t", "value", "schedule", x_title="step t",
                                              y_title=title, log_y=log_y), width="stretch")

st.subheader("The same data under each schedule")
c1, c2, c3 = st.columns([2, 3, 1])
with c1:
    toy = ui.selectbox("Data", "toy", TOYS, "eight_gaussians", format_func=toy_label)
with c2:
    t = ui.slider("Noise the data to step t", "t", 1, T, max(1, T // 2), step=1)
with c3:
    seed = ui.number("Seed", "seed", 0, 9999, 0)


@st.cache_data(max_entries=64, show_spinner=False)
def noised(toy: str, seed: int, label: str, betas: bytes, t: int) -> np.ndarray:
    """x_t = q_sample(x_0, t) for N_SW points, with the same x_0 and noise for every schedule."""
    s = schedule_from_bytes(label, betas)
    x0 = torch.from_numpy(toy_points(toy, N_SW, seed))
    noise = torch.from_numpy(gaussian_noise(N_SW, seed + 1))
    return q_sample(s, x0, torch.full((N_SW,), t - 1), noise).numpy()


@st.cache_data(max_entries=64, show_spinner=False)
def gap_to_noise(toy: str, seed: int, label: str, betas: bytes) -> float:
    """How far q(x_T) is from N(0, I). Mixture toys: the exact KL(q(x_T) || N(0, I)) in nats, a Monte Carlo
    average of log q(x_T) - log N(x_T) over the N_SW samples. Other toys: sliced Wasserstein to N(0, I)."""
    s = schedule_from_bytes(label, betas)
    x_T = torch.from_numpy(noised(toy, seed, label, betas, s.T)).double()
    if is_mixture(toy):
        log_q = toy_mixture(toy).log_prob(x_T, s.T - 1, s)
        log_n = -0.5 * x_T.pow(2).sum(1) - math.log(2 * math.pi)
        return float((log_q - log_n).mean())
    return sliced_wasserstein(x_T, gaussian_noise(N_SW, seed + 2), n_projections=128,
                              generator=torch.Generator().manual_seed(0))


@st.cache_data(max_entries=16, show_spinner=False)
def noise_floor(seed: int) -> float:
    """SW between two independent N(0, I) clouds of N_SW points: how small SW can get at this sample size."""
    return sliced_wasserstein(gaussian_noise(N_SW, seed + 3), gaussian_noise(N_SW, seed + 2),
                              n_projections=128, generator=torch.Generator().manual_seed(0))


@st.cache_data(max_entries=64, show_spinner=False)
def exact_density(toy: str, label: str, betas: bytes, t: int) -> np.ndarray | None:
    """The exact q(x_t) of a mixture toy on the plot grid (None for other toys)."""
    if not is_mixture(toy):
        return None
    s = schedule_from_bytes(label, betas)
    return toy_mixture(toy).log_prob(torch.from_numpy(GRID[2]), t - 1, s).exp().reshape(GRID_N, GRID_N).numpy()


def gap_label(value: float) -> str:
    if is_mixture(toy):
        return f"KL to N(0,I) = {fmt_num(value)}" if value >= 1e-4 else "KL to N(0,I) ≈ 0"
    return f"SW to N(0,I) = {value:.3f}"


x0 = toy_points(toy, N_SW, seed)[:N_POINTS]
row_t, row_T = [], []
for name in ("linear", "cosine", "sigmoid", "custom"):
    s = schedules.get(name)
    if s is None:
        row_t.append(plots.Panel(f"{name}: invalid", None, note="invalid schedule"))
        row_T.append(plots.Panel(f"{name}: invalid", None, note="invalid schedule"))
        continue
    betas = schedule_bytes(s)
    x_t = noised(toy, seed, name, betas, min(t, s.T))[:N_POINTS]
    x_T = noised(toy, seed, name, betas, s.T)[:N_POINTS]
    color = plots.SCHEDULE_COLORS[name]
    row_t.append(plots.Panel(f"{name}: ᾱ_t = {fmt_num(float(s.alpha_bars[min(t, s.T) - 1]))}", x_t, color))
    row_T.append(plots.Panel(f"{name}: {gap_label(gap_to_noise(toy, seed, name, betas))}", x_T, color,
                             density=exact_density(toy, name, betas, s.T)))
reference = gaussian_noise(N_SW, seed + 2)[:N_POINTS]
if is_mixture(toy):
    row_T.append(plots.Panel("N(0, I)", reference, plots.NOISE_COLOR,
                             density=np.exp(-0.5 * (GRID[2] ** 2).sum(1)).reshape(GRID_N, GRID_N)))
else:
    row_T.append(plots.Panel(f"N(0, I): floor {noise_floor(seed):.3f}", reference, plots.NOISE_COLOR))

st.markdown(f"**At step t = {t}** (grey: the clean data x₀). The same x₀ and the same noise ε go into "
            "every panel, so the differences come from ᾱ_t alone.")
plots.show(plots.scatter_panels([plots.Panel(p.title, p.points, p.color, x0, p.note) for p in row_t], height=290),
           key="noised_t")
if is_mixture(toy):
    st.markdown("**At t = T, beside N(0, I)**, where every sampler starts. For this mixture q(x_T) is known "
                "exactly: the teal lines are its density at 10, 30, 50, 70 and 90% of the peak, and KL is "
                f"KL(q(x_T) ‖ N(0, I)) in nats (a {N_SW}-sample average of the exact log-ratio). Any ring, "
                "dip or corner that N(0, I) lacks is data the forward process left behind.")
else:
    st.markdown("**At t = T, beside N(0, I)**, where every sampler starts. SW is the sliced Wasserstein distance "
                f"to a fresh N(0, I) cloud ({N_SW} points each); the last panel's *floor* is SW between two "
                "independent N(0, I) clouds, so a schedule that reaches noise scores about the floor.")
plots.show(plots.scatter_panels(row_T, height=260, grid=GRID[:2]), key="noised_T")
