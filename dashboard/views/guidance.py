"""Guidance: classifier guidance (Dhariwal & Nichol 2021) beside classifier-free guidance (Ho & Salimans 2022) on
the labelled 2D toys, where every guided quantity of the Gaussian mixtures has a closed form. Four samplers from the
same x_T (the conditional network, CFG, and classifier guidance by the exact q(y | x_t) or the shipped noisy
classifier), the guidance field grad log p(y | x_t) exact and learned, a sweep over the scale judged against the
exact p(x | y), and the MNIST benchmark's accuracy and FID (benchmarks/results/guidance_mnist.json)."""

from functools import partial

import numpy as np
import streamlit as st

from core.analytic import GaussianMixture
from core.data.toy2d import NUM_CLASSES
from core.guidance import classifier_free_guidance, classifier_guidance, classifier_log_prob
from dashboard.ui import exports, plots, score_field
from dashboard.ui import guidance as gd
from dashboard.ui.fmt import fmt_num, toy_label
from dashboard.ui.header import page_header
from dashboard.ui.loaders import ResultsProblem, broken_model_notice, is_mixture, pretrained_problem
from dashboard.ui.widgets import UrlWidgets

LIM = 2.5  # every toy lies within +-2.3 (standardised units); guidance pushes some samples beyond
N_OVERLAY = 800  # faint draws of p(x | y) behind each panel
ARROW_COLOR = "#f97316"  # on the blue map of p(y | x_t)

page_header(
    "Guidance",
    [r"\hat\epsilon(x_t)=\epsilon_\theta(x_t,\varnothing)-w\,\sqrt{1-\bar\alpha_t}\;\nabla_{x_t}\log p_\phi(y\mid x_t)"
     r"\qquad\text{(classifier guidance; Dhariwal \& Nichol 2021, Algorithm 2)}",
     r"\tilde\epsilon(x_t)=\epsilon_\theta(x_t,\varnothing)+w\,\big(\epsilon_\theta(x_t,y)-\epsilon_\theta(x_t,"
     r"\varnothing)\big)\qquad\text{(classifier-free; Ho \& Salimans 2022, eq. 6, with their } w+1\text{ as }w)",
     r"\nabla_{x_t}\log p(x_t)+w\,\nabla_{x_t}\log p(y\mid x_t)\;=\;\nabla_{x_t}\log p(x_t\mid y)\ \text{ at } w=1,"
     r"\qquad p_w(x\mid y)\propto p(y\mid x)^{w}\,p(x)"],
    "Both kinds of guidance move the score of $p(x_t)$ along a class direction, $\\nabla\\log p(y\\mid x_t)$ "
    "(the network predicts $\\epsilon=-\\sqrt{1-\\bar\\alpha_t}\\,\\nabla\\log p(x_t)$, hence the factor). "
    "*Classifier guidance* takes it from a separate classifier trained on noised points $x_t$ at every $t$; "
    "*classifier-free guidance* trains one network with and without the label and uses the difference of its two "
    "predictions, the score of an implicit classifier. At $w=1$ both aim at the conditional $p(x\\mid y)$ exactly "
    "(Bayes' rule); above 1 they buy purity by leaving it, sharpening towards $p(y\\mid x)^w p(x)$ (roughly: the "
    "noised versions of that density are not what a guided sampler follows). On a Gaussian mixture a point's label "
    "is its component, so $q(y\\mid x_t)$ and $p(x\\mid y)$ are closed forms: classifier guidance can run on the "
    "exact classifier, and every sample is judged against the exact answer. Here one class-conditional network "
    "`ddpm-cond-<toy>` (trained with a null label 10% of the time) serves all four samplers; classifier guidance "
    "uses its unconditional (null-label) pass.",
    "on *eight gaussians* set w to 0: all four panels are the unconditional model, spread over all eight modes "
    "(fidelity about 1/8), drawn from the same x_T, so the same points. At w = 1 the conditional model, CFG and "
    "the exact classifier land on mode y with SW close to the floor. Then raise w to 8: fidelity stays at 1 but SW "
    "grows tenfold and more: the clouds are pushed outwards, away from the other modes, and squeezed into a thin "
    "radial streak, not a sharper copy of the mode (the sweep below shows it at every scale). At w = 1 compare (d) "
    "with (c): the noisy classifier's field is close to the exact one where the data are, weaker away from them.",
    code=[classifier_guidance, classifier_log_prob, classifier_free_guidance, GaussianMixture.class_log_posterior],
)

ui = UrlWidgets("guidance")
c = st.columns([3, 3, 3, 2])
with c[0]:
    toy = ui.selectbox("Toy data", "toy", gd.TOYS, gd.DEFAULT_TOY, format_func=toy_label)
k = NUM_CLASSES[toy]
with c[1]:
    y = ui.slider("Class y", "y", 0, k - 1, 0, help=f"{toy_label(toy)} has {k} classes: "
                  + ("its mixture components." if is_mixture(toy) else "parts of the shape (core.data.toy2d)."))
with c[2]:
    w = ui.slider("Guidance scale w", "w", 0.0, 8.0, 3.0, step=0.5,
                  help="0: unconditional; 1: the conditional p(x | y); above 1: guided beyond it.")
with c[3]:
    seed = ui.number("Seed", "seed", 0, 9999, 0, help="The noise x_T of every panel (the same in each).")
mixture = is_mixture(toy)
problems = {name: pretrained_problem(name) for name in (gd.model_name(toy), gd.classifier_name(toy))}
for name, problem in problems.items():
    if problem:
        broken_model_notice(name, problem, "The page shows what it can without it.")
reasons = gd.available(toy)

# --- 1. four samplers from one x_T ------------------------------------------------------------------------------

st.subheader("Four ways to reach class y, from the same x_T")
st.markdown("Each panel runs DDIM (50 steps, deterministic) from the **same** noise $x_T$, so the panels differ by "
            "the guidance alone. (a) the conditional network $\\epsilon_\\theta(x_t, y)$ alone; (b) classifier-free "
            "guidance at scale $w$; (c) classifier guidance of the network's unconditional pass by the exact "
            "$\\nabla\\log q(y\\mid x_t)$ of the mixture; (d) the same by the shipped noisy classifier "
            "$p_\\phi(y\\mid x_t)$. Grey behind each panel: fresh draws of the target $p(x\\mid y)$.")
if reasons["conditional"]:
    st.info(f"No samples: **{gd.model_name(toy)}** cannot be loaded (see above).", icon=":material/broken_image:")
else:
    overlay = gd.reference(toy, y, N_OVERLAY, seed + 2)
    panels, drawn = [], {}
    for letter, method in zip("abcd", gd.METHODS, strict=True):
        label = f"{letter}. {gd.METHOD_LABELS[method]}" + (" (w = 1)" if method == "conditional" else f", w = {w:g}")
        if reasons[method]:
            panels.append(plots.Panel(label, None, overlay=overlay, note=reasons[method].replace(" for ", "<br>for ")))
            continue
        r = gd.guided(toy, method, y, 1.0 if method == "conditional" else w, gd.N_PANEL, seed)
        drawn[method] = r.points
        panels.append(plots.Panel(f"{label}<br>fidelity {r.fidelity:.2f} · SW {r.sw_ratio:.1f}× floor",
                                  np.clip(r.points, -2 * LIM, 2 * LIM), gd.METHOD_COLORS[method], overlay=overlay))
    fig = plots.scatter_panels(panels, LIM, height=370, marker_size=2.5, overlay_name="p(x | y)")
    plots.show(fig.update_layout(margin=dict(t=56)), key="guidance_panels")
    for col, method in zip(st.columns(len(gd.METHODS)), gd.METHODS, strict=True):  # under each panel
        if method in drawn:
            settings = {"model": gd.model_name(toy), "y": y, "w": 1.0 if method == "conditional" else w,
                        "sampler": f"ddim-{gd.STEPS}", "n": gd.N_PANEL, "seed": seed}
            with col:
                exports.download_button("Samples (CSV)", partial(exports.points_csv, drawn[method],
                                                                 {"guidance": method, **settings}),
                                        exports.file_name("guidance", method, settings, "csv"),
                                        key=f"guidance.download.{method}")
    st.caption(f"{gd.N_PANEL} samples per panel (seed {seed}), class y = {y} of {toy_label(toy)}. Fidelity: the share "
               "of samples whose class is y, by "
               + ("the exact posterior of the mixture" if mixture else
                  "the label of the nearest of 20,000 labelled data points (no exact posterior here)")
               + ". SW: the sliced Wasserstein distance to as many fresh draws of p(x | y), divided by that between "
               "two draws of p(x | y) (the floor: 1× is as close as the data themselves).")
    if not mixture:
        st.caption(f"Panel c: the classes of {toy_label(toy)} are parts of a shape, not Gaussian components, so "
                   "q(y | x_t) has no closed form here; the noisy classifier (d) is the only classifier.")

# --- 2. the guidance field ---------------------------------------------------------------------------------------

st.subheader("The guidance field ∇ log p(y | x_t) at t")
st.markdown("The direction classifier guidance adds to the score, on a grid, over the class probability it is the "
            "gradient of. Far from $t=0$ the classes overlap, $p(y\\mid x_t)$ changes slowly and the field is a gentle "
            "pull towards class y from everywhere; as $t\\to 0$ the classes separate, $p(y\\mid x_t)$ becomes a step "
            "from 0 to 1, and the field grows large on the class boundaries and vanishes inside each class.")
sched = gd.field_schedule(toy)
if sched is None:
    st.info("No field: neither model of this toy can be loaded (see above).", icon=":material/broken_image:")
else:
    t = ui.slider("Timestep t of the field", "t", 0, sched.T - 1, 300,
                  help="0: the data; T − 1: pure noise. The samplers above visit 50 of these steps.")
    xs, pts = score_field.grid(gd.FIELD_N, gd.FIELD_LIM)
    hx, _ = score_field.grid(gd.HEAT_N, gd.FIELD_LIM)
    kinds = {"exact": (f"exact ∇ log q(y = {y} | x_t), t = {t}", None if mixture else "no closed form for q(y | x_t)"),
             "learned": (f"learned ∇ log p_φ(y = {y} | x_t), t = {t}",
                         problems[gd.classifier_name(toy)] and f"{gd.classifier_name(toy)} cannot be loaded")}
    fields = {kind: gd.guidance_field(toy, kind, y, t, gd.FIELD_N) for kind, (_, missing) in kinds.items()
              if not missing}
    norms = np.concatenate([np.linalg.norm(f, axis=1) for f in fields.values()]) if fields else np.ones(1)
    scale = float(np.quantile(norms, 0.9)) or 1.0  # one scale for both panels: 90% of the arrows below full length
    field_panels = []
    for kind, (title, missing) in kinds.items():
        if missing:
            field_panels.append(score_field.Panel(title, note=missing.replace(" for ", "<br>for ")))
            continue
        heat = score_field.heatmap_trace(hx, gd.class_probability(toy, kind, y, t, gd.HEAT_N), "p(y | x_t)", "Blues",
                                         0.0, 1.0, "p(y | x_t)")
        if kind == "exact" and "learned" in fields:
            heat.update(showscale=False)  # one colour bar, beside the last panel
        field_panels.append(score_field.Panel(title, [heat, score_field.arrows_trace(
            pts, fields[kind], xs[1] - xs[0], scale, ARROW_COLOR, "∇ log p(y | x_t)")]))
    plots.show(score_field.panels_figure(field_panels, gd.FIELD_LIM, height=420), key="guidance_field")
    sigma = float((1.0 - sched.alpha_bars[t]).sqrt())
    st.caption(f"Arrows on a {gd.FIELD_N}×{gd.FIELD_N} grid, one length scale for both panels: an arrow of 0.9 grid "
               f"cells means |∇| ≥ {fmt_num(scale)} (the largest here: {fmt_num(float(norms.max()))}). Blue: the "
               f"probability of class y at x_t. The field grows as t → 0; in ε it is multiplied by "
               f"√(1 − ᾱ_t) = {sigma:.3f} at this t (and by w), so the step it adds to ε stays bounded.")

# --- 3. the scale sweep ------------------------------------------------------------------------------------------

st.subheader("A scale sweep")
st.markdown("Fidelity and distance to $p(x\\mid y)$ at each guidance scale, for each kind of guidance, from one "
            "$x_T$ per scale. At $w=0$ every method is the unconditional model (fidelity about $1/K$); at $w=1$ "
            "the distance should be near its floor; above 1 the fidelity rises (or stays at 1) while the samples leave "
            "$p(x\\mid y)$: the trade both papers report on ImageNet as Inception score against FID, measured here "
            "against the exact answer.")
swept = tuple(m for m in gd.SWEPT if not reasons[m])
try:
    frame = gd.sweep(toy, y, swept) if swept else None
except ResultsProblem as err:
    frame = None
    st.info(f"No sweep to show: {err}", icon=":material/description:")
if not swept:
    st.info(f"No sweep: **{gd.model_name(toy)}** cannot be loaded (see above).", icon=":material/broken_image:")
elif frame is not None:
    left, right = st.columns(2)
    left.altair_chart(gd.sweep_chart(frame, "fidelity", w), width="stretch")
    right.altair_chart(gd.sweep_chart(frame, "sw_ratio", w), width="stretch")
    st.caption(f"Measured by `{gd.SWEEP_COMMAND}`: 500 samples per scale and method for class {y}, DDIM-50, all "
               f"{len(gd.SCALES)} scales of a method sampled as one batch with a scale per row (seconds per class, so "
               "the page reads the file; the panels above are sampled live). Dashed: the scale of the panels above; "
               "grey: the floor (SW between two draws of p(x | y)). Near the floor, differences of a few tenths are "
               "noise at this size." + ("" if mixture else " No exact classifier for this toy: its line is missing."))

# --- 4. MNIST ------------------------------------------------------------------------------------------------------

st.subheader("On MNIST")
st.markdown("The same two kinds of guidance on digits, measured by the benchmark (nothing is sampled here): the "
            "class-conditional UNet with classifier-free guidance, and its unconditional pass guided by a noisy "
            "classifier. Accuracy is the share of samples that a separate classifier reads as the digit asked for; "
            "FID-MNIST (lower is better) compares their features with real digits', so it rises once guidance "
            "trades diversity for purity.")
try:
    mnist, settings = gd.mnist_results()
except ResultsProblem as err:
    st.info(f"No MNIST results to show: {err}", icon=":material/description:")
else:
    left, right = st.columns(2)
    left.altair_chart(gd.mnist_chart(mnist, "accuracy", "accuracy on the digit asked for"), width="stretch")
    right.altair_chart(gd.mnist_chart(mnist, "fid", "FID-MNIST (lower is better)"), width="stretch")
    st.dataframe(mnist.assign(guidance=mnist["guidance"].map(gd.MNIST_GUIDANCE)), hide_index=True, width="stretch",
                 column_config={"scale": st.column_config.NumberColumn("scale w", format="%g"),
                                "accuracy": st.column_config.NumberColumn(format="%.3f"),
                                "fid": st.column_config.NumberColumn("FID-MNIST", format="%.1f"),
                                "seconds": st.column_config.NumberColumn(format="%.0f")})
    models = settings["models"]
    st.caption(f"{settings['n'] or '?'} samples per row, ten of each digit, {settings['method'] or '?'} in "
               f"{settings['steps'] or '?'} steps, the same noise in every row (FID at this n is biased upwards, "
               "equally for every row)"
               + ("; models: " + ", ".join(f"{key} {value}" for key, value in models.items())
                  if isinstance(models, dict) and models else "")
               + (f"; {settings['hardware']}" if settings["hardware"] else "")
               + f". Written by `{gd.MNIST_COMMAND}`.")
