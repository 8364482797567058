"""Improved DDPM (Nichol & Dhariwal 2021): the learned reverse variance Sigma_theta between its bounds beta_t and
beta_tilde_t (fig. 1), the variational bound term by term under fixed and learned variances (fig. 2), the
likelihoods in nats per dimension, and ancestral sampling in 10 to 100 respaced steps, fixed against learned, from
the same noise. The curves and numbers come from benchmarks/results/improved_ddpm.json; the samples are drawn live
from the shipped iddpm-<toy> models."""

from functools import partial

import numpy as np
import streamlit as st

from core.diffusion import learned_variance, loss_hybrid, vlb_terms
from core.samplers import ddpm_step
from dashboard.ui import exports, plots
from dashboard.ui import improved_ddpm as iddpm
from dashboard.ui.fmt import toy_label
from dashboard.ui.header import page_header
from dashboard.ui.loaders import broken_model_notice, is_mixture, pretrained_problem, toy_points
from dashboard.ui.widgets import UrlWidgets

LIM = 3.0  # every toy's samples lie within +-3 (standardised units)
N_OVERLAY = 800  # grey data points under each panel
COMPARE = ("beta_tilde", "beta", "both")  # the fixed variance(s) drawn against the learned one
COMPARE_LABELS = {"beta_tilde": "fixed β̃_t", "beta": "fixed β_t", "both": "both fixed variances"}

page_header(
    "Improved DDPM",
    [r"\Sigma_\theta(x_t,t)=\exp\big(v\,\log\beta_t+(1-v)\log\tilde\beta_t\big),\qquad"
     r"\tilde\beta_t=\frac{1-\bar\alpha_{t-1}}{1-\bar\alpha_t}\,\beta_t\qquad\text{(eq. 15)}",
     r"L_\text{hybrid}=L_\text{simple}+\lambda\,L_\text{vlb},\quad \lambda=0.001,\qquad "
     r"L_\text{vlb}=L_0+\sum_{t=2}^{T}L_{t-1}+L_T",
     r"L_{t-1}=D_\text{KL}\big(q(x_{t-1}\mid x_t,x_0)\,\big\|\,p_\theta(x_{t-1}\mid x_t)\big),\qquad "
     r"L_0=-\log p_\theta(x_0\mid x_1)"],
    "Ho et al. fixed the variance of each reverse step to $\\beta_t$ or $\\tilde\\beta_t$, its upper and lower "
    "bounds, and found the samples equally good either way. Nichol & Dhariwal (2021) saw why: the two agree "
    "everywhere except in the last few steps near $t=0$, and there the bound's terms are the largest, so for the "
    "**likelihood** the choice matters. They let the network output $v$ as well and interpolate between the bounds "
    "in the log domain (eq. 15). $L_\\text{simple}$ does not depend on $\\Sigma_\\theta$, so they add a small "
    "$\\lambda L_\\text{vlb}$ with the mean's gradient stopped: the bound trains the variance, $L_\\text{simple}$ "
    "the mean. A learned variance also pays when **sampling in few steps**: on a respaced chain of K steps the "
    "$\\beta$'s are recomputed from $\\bar\\alpha$ at the kept steps, the two bounds move apart, and "
    "$\\Sigma_\\theta$ interpolates between the new ones. Below: the variance over $t$, the bound term by term, "
    "the likelihoods, and samples of the shipped `iddpm-<toy>` models (trained with $L_\\text{hybrid}$) under "
    "each variance.",
    "choose *swiss roll*, set the samples to \"Learned against: both fixed variances\" and look at the 10-step "
    "column: fixed β_t adds too much noise and blurs the roll into a disc, fixed β̃_t too little and pulls it onto a "
    "thin inner curve, losing the outer arm; the learned Σ_θ stays closest to the data (the lowest SW of the "
    "column). By 100 steps the three agree. Then read the likelihood table: the learned variance's bound is the "
    "tightest, and far below fixed β̃_t's.",
    code=[learned_variance, loss_hybrid, vlb_terms, ddpm_step],
)

ui = UrlWidgets("improved_ddpm")
c = st.columns([3, 7])
with c[0]:
    toy = ui.selectbox("Toy data", "toy", iddpm.TOYS, iddpm.DEFAULT_TOY, format_func=toy_label)
name = iddpm.model_name(toy)
with c[1]:
    st.caption(f"**{name}**: a 2D MLP trained on *{toy_label(toy)}* with L_hybrid (learned Σ_θ), cosine schedule, "
               "T = 1000. The same network serves every variance below: fixed β_t, fixed β̃_t or its own Σ_θ.")

model_problem = pretrained_problem(name)
if model_problem:
    broken_model_notice(name, model_problem, "The page shows the benchmark's curves and numbers without live samples.")
try:
    res = iddpm.load_results(toy)
    results_problem = None
except iddpm.ResultsProblem as err:
    res, results_problem = None, str(err)


def results_notice(what: str) -> None:
    st.warning(f"No {what} to show: {results_problem}", icon=":material/description:")


# --- 1. the learned variance ---------------------------------------------------------------------------------

st.subheader("The learned variance between its two bounds")
st.markdown("Left: the reverse variance of each step on a log scale. $\\beta_t$ and $\\tilde\\beta_t$ are the "
            "upper and lower bounds for it ($\\beta_t$ is the right one when the data are $\\mathcal N(0, I)$, "
            "$\\tilde\\beta_t$ when they are a single point); the learned $\\Sigma_\\theta(x_t,t)$ is averaged "
            "over noised data, the band holding 80% of the points. Right: the same divided by $\\beta_t$, as in "
            "the paper's fig. 1. The bounds meet except in the first few dozen of the 1000 steps, so there the "
            "variance cannot matter (on the left the lines lie on top of each other); near $t=0$ they differ by up "
            "to a factor two, and that is where the network's choice counts.")
if res is None:
    results_notice("variances")
else:
    left, right = st.columns(2)
    left.altair_chart(iddpm.sigma_chart(res), width="stretch")
    right.altair_chart(iddpm.ratio_chart(res), width="stretch")
    st.caption(f"Step t = 1 … {int(res.t[-1]) + 1} on log axes ({len(res.t)} steps, dense near 0). At t = 1 the "
               "lower bound β̃₁ is 0; as in the paper's code, β̃₂ stands in for it. Σ_θ is measured on "
               f"1000 points of *{toy_label(toy)}* noised to x_t.")

# --- 2. the bound term by term --------------------------------------------------------------------------------

st.subheader("The bound, term by term")
st.markdown("Each term $L_{t-1}$ of the variational bound is the KL divergence between the true posterior "
            "$q(x_{t-1}\\mid x_t,x_0)$ and the model's step, in nats per dimension, averaged over the data "
            "(the paper's fig. 2). The mean $\\mu_\\theta$ is the same network's in each line; only the variance "
            "differs. The first few terms are orders of magnitude larger than the rest, and there a variance that "
            "is too small (fixed β̃_t) costs the most; far from t = 0 the three lines coincide.")
if res is None:
    results_notice("bound terms")
else:
    st.altair_chart(iddpm.terms_chart(res), width="stretch")
    dec = iddpm.decoder_terms(res)
    st.caption("Steps t = 2 … T: the KL terms L_{t−1}. "
               + ("The first term, the decoder's L₀ = −log p_θ(x₀ | x₁), is the −log of a density (negative here, "
                  "so off the log axis): " + ", ".join(f"{iddpm.VARIANCE_LABELS[v]} {dec[v]:.3f}"
                                                      for v in iddpm.VARIANCES)
                  + " nats/dim. " if dec else "")
               + (f"Each term is one draw of x_t for each of {res.n} data points." if res.n else ""))

# --- 3. likelihoods ---------------------------------------------------------------------------------------------

st.subheader("Negative log-likelihood")
st.markdown("The bound $L_\\text{vlb}$ summed over all 1000 steps is an upper bound on $-\\log p_\\theta(x_0)$ "
            "of the stochastic chain, in nats per dimension on fresh data (lower is better). The probability-flow "
            "ODE of the same network has an exact likelihood (change of variables along the ODE)"
            + (", and on a Gaussian mixture the true density is known, the floor for any model." if is_mixture(toy)
               else "."))
if res is None:
    results_notice("likelihoods")
else:
    st.dataframe(iddpm.nll_table(res), hide_index=True, width="stretch", column_config={
        "nats / dim": st.column_config.NumberColumn(format="%.4f"),
        "± s.e.": st.column_config.TextColumn(help="Standard error over the data points (the bounds)."),
        "minus PF-ODE": st.column_config.NumberColumn(
            format="%+.4f", help="How far above the ODE's exact value: a bound's slack, roughly.")})
    st.markdown(iddpm.nll_sentence(res))
    st.caption(f"On {res.n or '?'} points of *{toy_label(toy)}* (seed {res.seed if res.seed is not None else '?'}); "
               "the PF-ODE value on a subset of them. Computed by `benchmarks/improved_ddpm.py`"
               + (f" in {res.seconds:.0f} s" if res.seconds else "")
               + (f" ({res.hardware})" if res.hardware else "") + ".")

# --- 4. ancestral sampling in few steps -------------------------------------------------------------------------

st.subheader("Ancestral sampling in few steps")
st.markdown("Ancestral (DDPM) sampling on a respaced chain of 10, 25, 50 and 100 of the 1000 steps (the paper's "
            "sec. 4), every panel from the **same** noise $x_T$ and the same noise along the chain, so the panels "
            "differ only in the variance and the number of steps. With few steps the kept steps are far apart, "
            "their $\\beta$ and $\\tilde\\beta$ differ at every step, and a fixed choice is wrong by a lot: "
            "$\\tilde\\beta$ adds too little noise, $\\beta$ too much. The learned $\\Sigma_\\theta$ adapts.")
c = st.columns([2, 3, 5])
with c[0]:
    seed = ui.number("Seed", "seed", 0, 9999, 0, help="The noise x_T (and the chain's noise) of every panel.")
with c[1]:
    compare = ui.selectbox("Learned against", "compare", COMPARE, "beta_tilde",
                           format_func=COMPARE_LABELS.__getitem__,
                           help="Which fixed variance the rows above the learned one use.")
variances = [*(("beta", "beta_tilde") if compare == "both" else (compare,)), "learned"]
if model_problem:
    st.info(f"No live samples: **{name}** cannot be loaded (see above).", icon=":material/broken_image:")
else:
    data = toy_points(toy, N_OVERLAY, seed + 5)
    for v in variances:
        panels, drawn = [], {}
        for k in iddpm.STEPS:
            x = drawn[k] = iddpm.ancestral(toy, v, k, iddpm.LIVE_N, int(seed))
            ratio = f" · SW {res.ancestral[v][k]:.2f}×" if res is not None else ""
            panels.append(plots.Panel(f"{iddpm.VARIANCE_LABELS[v]} · {k} steps{ratio}",
                                      np.clip(x, -2 * LIM, 2 * LIM), iddpm.VARIANCE_COLORS[v], overlay=data))
        plots.show(plots.scatter_panels(panels, LIM, height=300, marker_size=2.5, overlay_name="data"),
                   key=f"iddpm_samples_{v}")
        for col, k in zip(st.columns(len(iddpm.STEPS)), iddpm.STEPS, strict=True):  # under each panel
            settings = {"model": name, "variance": v, "sampler": "ddpm", "steps": k, "n": iddpm.LIVE_N, "seed": seed}
            with col:
                exports.download_button(f"{k} steps (CSV)", partial(exports.points_csv, drawn[k], settings),
                                        exports.file_name("improved_ddpm", v, {**settings, "variance": None}, "csv"),
                                        key=f"improved_ddpm.download.{v}.{k}")
    st.caption(f"{iddpm.LIVE_N} samples per panel (seed {seed}); grey: data. SW: the benchmark's sliced Wasserstein "
               "distance to fresh data divided by that between two draws of the data (1 = as good as the data), "
               + (f"over {res.ancestral_runs}, not these panels: differences of a tenth or two are noise."
                  if res is not None else "not available (see above)."))
if res is None:
    results_notice("sample-quality numbers")
else:
    st.dataframe(iddpm.quality_table(res), width="stretch",
                 column_config={f"{k} steps": st.column_config.NumberColumn(format="%.2f×") for k in iddpm.STEPS})

# --- 5. MNIST ---------------------------------------------------------------------------------------------------

st.subheader("On MNIST: bits per dimension")
st.markdown("The same comparison on images: **iddpm-mnist** (the class-conditional UNet trained with "
            "$L_\\text{hybrid}$ on this CPU) beside **ddpm-mnist** ($L_\\text{simple}$, fixed variances). The bound "
            "in bits per dimension sums all 1000 terms with the discretised decoder and the prior, on held-out "
            "digits; the samples come from the respaced ancestral chain in few steps, judged by FID-MNIST (lower is "
            "better) and by the classifier's accuracy on the digit asked for.")
try:
    mnist_rows, mnist_settings = iddpm.mnist_table()
except iddpm.ResultsProblem as err:
    st.warning(f"The MNIST comparison is not available: {err}", icon=":material/description:")
else:
    st.dataframe(mnist_rows, width="stretch", hide_index=True, column_config={
        "bits_per_dim": st.column_config.NumberColumn("bits / dim", format="%.3f"),
        "bits_per_dim_se": st.column_config.NumberColumn("s.e.", format="%.3f"),
        "fid_mnist": st.column_config.NumberColumn(f"FID-MNIST, {mnist_settings['steps']} steps", format="%.1f"),
        "accuracy": st.column_config.NumberColumn("accuracy", format="%.3f")})
    st.caption(f"Bits/dim on {mnist_settings['n_bpd']} held-out digits; {mnist_settings['n']} samples per row, ten "
               f"of each digit; {mnist_settings['hardware']}. Written by `{iddpm.MNIST_COMMAND}`.")
    mnist_terms = iddpm.mnist_terms()
    if mnist_terms is None:
        st.info(f"The bound per step is not in this results file: `{iddpm.MNIST_COMMAND}` keeps it.",
                icon=":material/description:")
    else:
        st.markdown("**The bound, step by step.** The same terms summed above, averaged over the digits: as on the "
                    "toys, the fixed variances pay most in the first steps near $t = 0$, where β_t and β̃_t are "
                    "furthest apart.")
        st.altair_chart(iddpm.mnist_terms_chart(mnist_terms), width="stretch", key="iddpm_mnist_terms")
        last_step = iddpm.mnist_last_step_note()
        if last_step:
            st.caption(last_step)

st.markdown("**Few-step samples.** The ten digits of **iddpm-mnist** on a respaced ancestral chain, one row per "
            "variance, every row from the same noise: with few steps fixed β_t leaves the digits noisy and fixed "
            "β̃_t smooths them; with enough steps the three agree.")
m = st.columns([3, 2, 5])
with m[0]:
    mnist_steps = ui.select_slider("Ancestral steps", "mnist_steps", iddpm.STEPS, 25,
                                   help="The respaced chain's length (of the 1000 training steps).")
with m[1]:
    mnist_seed = ui.number("Digits' seed", "mnist_seed", 0, 9999, 0, help="The noise of every row.")
mnist_problem = pretrained_problem(iddpm.MNIST_MODEL)
if mnist_problem:
    broken_model_notice(iddpm.MNIST_MODEL, mnist_problem, "The table above stays; the samples need the model.")
else:
    with st.spinner(f"Sampling iddpm-mnist in {mnist_steps} steps..."):
        rows = [iddpm.mnist_ancestral(v, int(mnist_steps), int(mnist_seed)) for v in iddpm.VARIANCES]
    plots.show(plots.image_grid(np.concatenate(rows), 10, row_titles=[iddpm.VARIANCE_LABELS[v]
                                                                      for v in iddpm.VARIANCES],
                                col_titles=[str(d) for d in range(10)], width_px=900, left_px=110),
               key="iddpm_mnist_samples")
    st.caption(f"iddpm-mnist, {mnist_steps} ancestral steps, guidance scale 1, seed {mnist_seed}. The table's FID is "
               "over 1,000 such digits; a row of ten shows the kind of error, not its size.")
