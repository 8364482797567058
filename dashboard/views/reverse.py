"""Reverse process: a trained network (or the exact score) turning N(0, I) back into data with any sampler and
step count, animated, with particle paths and the network's x0 prediction beside x_t at every step."""

from functools import partial

import streamlit as st

from core.samplers import METHODS, SAMPLERS, ddim_step, ddpm_step, langevin_corrector, sample
from dashboard.ui import exports, plots, sampling
from dashboard.ui.header import page_header, show_code
from dashboard.ui.models import model_picker
from dashboard.ui.terminal_snr import terminal_noise_warning

page_header(
    "Reverse process",
    [r"x_{t-1}=\frac{1}{\sqrt{\alpha_t}}\Big(x_t-\frac{\beta_t}{\sqrt{1-\bar\alpha_t}}\,\epsilon_\theta(x_t,t)\Big)"
     r"+\sigma_t z,\quad z\sim\mathcal N(0,I)",
     r"\hat x_0(x_t)=\frac{x_t-\sqrt{1-\bar\alpha_t}\,\epsilon_\theta(x_t,t)}{\sqrt{\bar\alpha_t}}"],
    "Sampling starts from pure noise $x_T\\sim\\mathcal N(0, I)$ and applies the learned reverse step again and "
    "again (above: DDPM, Ho et al. 2020, Algorithm 2; the other samplers take the same network's "
    "$\\epsilon_\\theta$ and move differently). At every step the noise estimate also says where the point is "
    "heading: the prediction $\\hat x_0$ of the clean point (right panel). While $t$ is large it is little "
    "more than the average of the data, and it sharpens onto the data as the noise is removed.",
    "press ▶ Play with DDPM: on the right the predictions start as one blob at the centre of the data, spread "
    "into a ring and settle on the eight modes while x_t on the left is still a noisy cloud. Then pick "
    "*PF-ODE · Heun*: the orange paths turn from random walks into short smooth curves, and 25 steps still land "
    "on the data.",
)
code_slot = st.container()  # "show the code" for the chosen sampler, right under the header

ui = sampling.SamplingWidgets("reverse")
c = st.columns([4, 3, 3, 2, 2])
with c[0]:
    choice = model_picker(ui)
with c[1]:
    method = ui.selectbox("Sampler", "method", METHODS, "ddpm", format_func=sampling.method_label)
with c[2]:
    steps = ui.steps(method, choice.schedule.T)
with c[3]:
    n = ui.slider("Points", "n", 200, 2000, 1000, step=100)
with c[4]:
    seed = ui.number("Seed", "seed", 0, 9999, 0, help="x_T and the sampler's noise both come from the seed.")

o = st.columns([3, 3, 3, 4])
eta, spacing, variance, sde = 0.0, "leading", "beta_tilde", "vp"
if method == "ddim":
    with o[0]:
        eta = ui.slider("DDIM η", "eta", 0.0, 1.0, 0.0, step=0.05,
                        help="η = 0: deterministic DDIM (Song et al. 2021, eq. 12); η = 1: as noisy as DDPM.")
if method in sampling.DISCRETE:
    with o[1]:
        spacing = ui.selectbox("Timestep spacing", "spacing", ("leading", "linspace", "trailing"), "leading",
                               help="Which of the T timesteps the sampler visits when steps < T (Lin et al. 2024).")
if method == "ddpm":
    with o[0]:
        variance = ui.selectbox("Variance σ_t²", "variance", ("beta_tilde", "beta"), "beta_tilde",
                                format_func=sampling.labeller({"beta_tilde": "β̃_t (posterior)", "beta": "β_t"}),
                                help="Ho et al. 2020 found both work equally well for sampling.")
if method in sampling.CONTINUOUS:
    with o[0]:
        sde = ui.selectbox("SDE", "sde", ("vp", "ve"), "vp",
                           format_func=sampling.labeller(sampling.SDE_LABELS),
                           help="The same network read as the VP SDE of DDPM or as the VE SDE of SMLD "
                                "(x / √ᾱ_t); paths are drawn in the model's units either way.")
with o[3]:
    st.caption(f"**{sampling.METHOD_LABELS[method]}**: {sampling.METHOD_PAPERS[method]}. "
               + ("Stochastic: fresh noise at every step." if method in sampling.STOCHASTIC or eta > 0
                  else "Deterministic: x_T alone decides the sample."))

step_code = {"ddpm": [ddpm_step], "ddim": [ddim_step], "predictor_corrector": [langevin_corrector]}
with code_slot:  # the front door, the step the sampler repeats, and the sampler's loop
    show_code(sample, *step_code.get(method, []), SAMPLERS[method])

token, exact = sampling.split_token(choice)
options = sampling.method_options(method, eta=eta, spacing=spacing, variance=variance, sde=sde)
with st.spinner(f"Sampling {n} points with {sampling.METHOD_LABELS[method]}, {steps} steps..."):
    run = sampling.run_sampler(token, exact, method, steps, n, seed, options)

m = st.columns([2, 2, 2, 5], gap="medium")
m[0].metric("NFE", run["nfe"], help="Network function evaluations: calls of ε_θ. Heun evaluates twice per step "
            "(not on the last), predictor-corrector twice.")
m[1].metric("Wall time", f"{run['seconds']:.2f} s", help="The sample() call on this server, when it ran (results "
            "are cached, so a revisit is instant).")
m[2].metric("SW / data floor", sampling.fmt_ratio(run["ratio"]),
            help=f"Sliced Wasserstein distance (SW) of the {n} samples to fresh data, divided by SW between two "
                 f"independent data draws of the same size ({run['floor']:.3f}): about 1 means as close as {n} "
                 "points can tell.")
with m[3]:
    data_word = "the data" if choice.toy is not None else "your points"
    st.markdown(f"**Grey:** {data_word}. **Blue:** the {n} points x_t. **Green:** the predicted x̂₀ of each. "
                f"**Orange:** {run['paths'].shape[1]} particles, their paths and their x̂₀.")
    st.caption(f"{choice.label} · {choice.schedule.name} schedule, T = {choice.schedule.T} · "
               f"{len(run['frame_idx'])} of {run['steps'] + 1} states shown; press ▶ or drag the slider.")
plots.show(sampling.animation_figure(token, exact, method, steps, n, seed, options), key="reverse_animation")
settings = sampling.export_settings(choice, method, steps, n, seed, options)
with st.container(horizontal=True):  # one row of small buttons under the animation
    exports.download_button("Samples (CSV)", partial(exports.points_csv, run["x0"], settings),
                            exports.file_name("reverse", "samples", settings, "csv"), key="reverse.download.csv")
    exports.download_button("Animation (GIF)", partial(sampling.reverse_gif, run,
                                                       sampling.data_reference(token, n)["overlay"], settings),
                            exports.file_name("reverse", "animation", settings, "gif"), key="reverse.download.gif")
if exact:
    st.caption("Exact score: ε is the true E[ε | x_t] of the mixture, so x̂₀ is the exact posterior mean "
               "E[x₀ | x_t]; what remains is the sampler's discretisation error.")
if run["outside"]:
    st.warning(f"{run['outside']} of {n} samples ended outside the plotted square [-4, 4]² (or diverged): "
               "too few steps for this sampler. Raise the steps.", icon=":material/warning:")
terminal_noise_warning(choice.schedule, choice.label)
