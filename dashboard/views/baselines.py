"""Diffusion vs GAN vs VAE: the three families on the same data with the same metrics. Samples side by side, the
recorded evaluation (python -m core evaluate) with sampling cost, NFE, training time and parameter counts, the
GAN's mode collapse on the mixtures, training curves, interpolation in latent space beside DDIM interpolation
between two x_T, and a live race that trains all three in the browser with the same time budget. Behind every 2D
GAN panel, the discriminator's D(x) as a faint heat map, as GAN Lab (Kahng et al. 2018) draws it."""

from functools import partial

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st
import torch

from core.data.mnist import load_mnist
from core.data.toy2d import MIXTURE_TOYS
from core.diffusion import loss_simple
from core.evaluate import evaluate_2d, evaluate_mnist, parameter_counts, sample_2d, sample_images
from core.interpolate import slerp
from core.models.gan import GAN, discriminator_map
from core.models.vae import VAE
from core.samplers import sample
from dashboard.jobs import race as race_job
from dashboard.jobs.runner import ACTIVE, RUNNING
from dashboard.ui import background, baselines, exports, plots
from dashboard.ui.digits import CLASSIFIER, probabilities
from dashboard.ui.fmt import toy_label
from dashboard.ui.header import page_header, show_code
from dashboard.ui.loaders import (
    TOYS,
    broken_model_notice,
    manifest_models,
    pretrained,
    pretrained_problem,
    toy_points,
)
from dashboard.ui.widgets import UrlWidgets

N_DIGITS = 20  # per family in the MNIST sample grids
N_PAIRS, N_PATH = 6, 33  # 2D interpolation: pairs of endpoints, points along each path
N_INTERP_DIGITS = 9  # MNIST interpolation: images per row
LIM = 2.5  # 2D plots: every baseline toy lies within +-2.2 (standardised units)
RACE_LIM = baselines.RACE_LIM  # the race may run on any toy (pinwheel reaches 2.9)
OFF_MODE_OK = 0.05  # a mixture verdict: more samples than this off every mode counts as blur
PAIR_COLORS = ["#f97316", "#16a34a", "#9333ea", "#0284c7", "#e11d48", "#ca8a04"]
ABOVE = "above"  # the race's toy option: the data set chosen at the top

page_header(
    "Diffusion vs GAN vs VAE",
    [r"\textbf{GAN:}\ \min_G\max_D\ \mathbb E_{x\sim p}\big[\log D(x)\big]+\mathbb E_{z\sim\mathcal N(0,I)}"
     r"\big[\log\big(1-D(G(z))\big)\big],\qquad L_G^{\text{non-sat}}=-\,\mathbb E_z\big[\log D(G(z))\big]",
     r"\textbf{VAE:}\ \log p_\theta(x)\ \ge\ \mathbb E_{q_\phi(z\mid x)}\big[\log p_\theta(x\mid z)\big]"
     r"-\mathrm{KL}\big(q_\phi(z\mid x)\,\big\|\,\mathcal N(0,I)\big)=\mathrm{ELBO}(x)",
     r"\textbf{Diffusion:}\ L_\text{simple}=\mathbb E_{t,x_0,\epsilon}\Big\|\epsilon-\epsilon_\theta"
     r"\big(\sqrt{\bar\alpha_t}\,x_0+\sqrt{1-\bar\alpha_t}\,\epsilon,\ t\big)\Big\|^2"],
    "Three ways to turn noise into data. A GAN's generator $G$ maps $z$ to a sample in one pass and learns only "
    "from a discriminator $D$ that it tries to fool; nothing in that game rewards covering *every* mode, so it may "
    "settle on a few (mode collapse), and the two players can chase each other instead of converging. A VAE's "
    "decoder also needs one pass, and maximising the ELBO makes it cover all the data, but a simple Gaussian "
    "$p_\\theta(x\\mid z)$ spreads its mass between modes (blur). Diffusion trains one network with a plain "
    "regression loss, which is stable and covers every mode, and pays at sampling time: DDIM-50 evaluates the "
    "network 50 times per sample (100 with classifier-free guidance), against 1 for the GAN and the VAE. The "
    "numbers below are the ones `python -m core evaluate` recorded for these very checkpoints.",
    "on *eight gaussians*, compare the GAN's panel with the GAN + R1 one: the plain GAN sits on one spot between "
    "two modes, the gradient penalty on the discriminator brings back all eight. Then read the VAE's *off-mode "
    "fraction* in the table: it covers every mode yet leaves about a third of its samples in the gaps. At the bottom, "
    "race the three for 15 s each and watch the GAN's snapshots jump around while the diffusion model's only "
    "sharpen.",
    code=[GAN.loss, VAE.elbo, loss_simple],
)

race = baselines.adopt_race()  # first: a race job that has just ended becomes the session's race

ui = UrlWidgets("baselines")
c = st.columns([3, 3, 2])
with c[0]:
    dataset = ui.selectbox("Data set", "data", baselines.DATASETS, "eight_gaussians",
                           format_func=lambda d: "MNIST digits" if d == "mnist" else toy_label(d),
                           help="The 2D toys with a pretrained GAN and VAE, and MNIST.")
mnist = dataset == "mnist"
with c[1]:
    if mnist:
        steps = ui.slider("Diffusion sampling steps (DDIM) on this page", "steps", 5, 50, 10, step=5,
                          help="For the digits drawn here; each step is one pass of the UNet per digit, so 50 "
                               "would take several seconds on a CPU. The table's numbers use DDIM-50.")
        n = N_DIGITS
    else:
        n = ui.slider("Samples per model", "n", 500, 5000, 2000, step=500,
                      help="Drawn here (DDIM-50 for the diffusion model); the table's numbers are the recorded "
                           "ones, on 5,000 samples.")
        steps = baselines.DDIM_STEPS
with c[2]:
    seed = ui.number("Seed", "seed", 0, 9999, 0, help="The noise of every model's samples and of the interpolation.")

found, missing = baselines.entries(dataset)
if missing:
    st.info(f"Not in `pretrained/` yet: {', '.join(f'`{m}`' for m in missing)}. They are trained by "
            "`python -m core train --family gan|vae --data ...` and evaluated by `python -m core evaluate <name> "
            "--update-manifest`; the page shows them as soon as they are there.", icon=":material/hourglass:")
# A damaged shipped file takes out its own model only: the comparison goes on with the others.
broken = {e.name: problem for e in found if (problem := pretrained_problem(e.name))}
for name, problem in broken.items():
    broken_model_notice(name, problem, "The comparison below goes on without it.")
found = [e for e in found if e.name not in broken]
judge_problem = pretrained_problem(CLASSIFIER) if mnist else None
if judge_problem:
    broken_model_notice(CLASSIFIER, judge_problem, "The digits below are drawn without the classifier's reading.")
if not found:
    st.stop()


# --- samples ------------------------------------------------------------------------------------------------------


@st.cache_data(max_entries=24, show_spinner=False)
def samples_2d(name: str, n: int, seed: int) -> np.ndarray:
    """n samples of a 2D checkpoint: DDIM-50 for diffusion, one generator/decoder pass for GAN and VAE (the call
    `python -m core evaluate` makes: core.evaluate.sample_2d)."""
    return sample_2d(pretrained(name), n, seed=seed, method="ddim", steps=baselines.DDIM_STEPS).numpy()


@st.cache_data(max_entries=16, show_spinner=False)
def d_map_2d(name: str) -> np.ndarray:
    """The pretrained GAN's D(x) on the grid of the samples' square (core.models.gan.discriminator_map)."""
    return discriminator_map(pretrained(name).model.discriminator, LIM, baselines.D_MAP_N)


@st.cache_data(max_entries=16, show_spinner=False)
def digits(name: str, n: int, seed: int, steps: int, judged: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """n unconditional digits (uint8) and the project classifier's reading of each (core.evaluate); None for the
    readings when the classifier cannot be loaded (``judged`` False)."""
    x = sample_images(pretrained(name), n, label=None, seed=seed, method="ddim", steps=steps or None)
    pred, _ = probabilities(x, judged)
    return plots.to_uint8(x.numpy()), pred


@st.cache_data(max_entries=2, show_spinner=False)
def real_digits(n: int) -> tuple[np.ndarray, np.ndarray, str]:
    data = load_mnist("test")
    return plots.to_uint8(data.images[:n].numpy()), data.labels[:n].numpy(), data.source


manifest = manifest_models()
diffusion_of = {e.name: e.diffusion for e in found}
st.subheader("Samples")
if mnist:
    real, real_labels, source = real_digits(N_DIGITS)
    grids = {"data": (real, real_labels)}
    with st.spinner(f"Sampling {N_DIGITS} digits per model (the diffusion model with DDIM-{steps})..."):
        for e in found:
            grids[e.name] = digits(e.name, N_DIGITS, seed, steps if e.diffusion else 0, judge_problem is None)
    titled = [("data", "**Real digits** (test split)")] + [
        (e.name, f"**{e.label}** · " + (f"DDIM-{steps}, {steps} NFE" if e.diffusion else f"{e.sampler}, 1 NFE"))
        for e in found]
    for row in range(0, len(titled), 2):
        cols = st.columns(2, gap="medium")
        for col, (key, title) in zip(cols, titled[row:row + 2], strict=False):
            with col:
                st.markdown(title)
                images, pred = grids[key]
                plots.show(plots.image_grid(images, 10, None if pred is None else [str(d) for d in pred],
                                            width_px=470),
                           key=f"baselines.digits.{key}")
                settings = ({"data": "mnist-test", "n": N_DIGITS} if key == "data" else
                            {"model": key, "sampler": f"ddim-{steps}" if diffusion_of[key] else "one-pass",
                             "n": N_DIGITS, "seed": seed})
                exports.download_button("Digits (PNG)", partial(exports.digits_png, images, 10, settings=settings),
                                        exports.file_name("baselines", "digits", settings, "png"),
                                        key=f"baselines.download.{key}")
    st.caption("Captions: the digit the project's classifier reads (for real digits, the true label). "
               f"Unconditional samples: no digit was asked for. **Data:** {source}.")
else:
    data_overlay = toy_points(dataset, n, seed + 1)
    samples = {e.name: samples_2d(e.name, n, seed) for e in found}
    panels = [plots.Panel("data (fresh draw)", data_overlay, color="#374151")]
    for e in found:
        title = f"{e.label} · {e.sampler}"
        if dataset in MIXTURE_TOYS:
            cov = baselines.coverage(samples[e.name], dataset)
            title = f"{e.label} · {cov.covered}/{cov.n_modes} modes"
        panels.append(plots.Panel(title, samples[e.name], color=e.color, overlay=data_overlay[:1000]))
    fig = plots.scatter_panels(panels, lim=LIM, height=330, marker_size=2.5)
    gan_maps = {i: d_map_2d(e.name) for i, e in enumerate(found, start=2) if e.kind.startswith("gan")}
    plots.show(baselines.with_d_maps(fig, gan_maps, LIM), key="baselines.samples")
    shown = {"data": data_overlay, **samples}
    for col, name in zip(st.columns(len(shown)), shown, strict=True):  # under each panel
        settings = ({"data": dataset, "n": n, "seed": seed + 1} if name == "data" else
                    {"model": name, "sampler": f"ddim-{baselines.DDIM_STEPS}" if diffusion_of[name] else "one-pass",
                     "n": n, "seed": seed})
        with col:
            exports.download_button("Data (CSV)" if name == "data" else "Samples (CSV)",
                                    partial(exports.points_csv, shown[name], settings),
                                    exports.file_name("baselines", "data" if name == "data" else "samples", settings,
                                                      "csv"), key=f"baselines.download.{name}")
    outside = {e.label: float((np.abs(samples[e.name]) > LIM).any(axis=1).mean()) for e in found}
    outside_text = "; ".join(f"{k}: {v:.1%}" for k, v in outside.items() if v >= 0.005)
    st.caption(f"{n:,} samples per model from seed {seed}: the diffusion model with DDIM-{baselines.DDIM_STEPS} "
               f"({baselines.DDIM_STEPS} network evaluations per sample), the GAN and VAE with one pass each. Grey: "
               "1,000 points of fresh data."
               + (" Mode counts: samples within 3 σ of a component's mean, a mode counting as covered with at least "
                  "a fifth of its fair share (core.metrics.mode_coverage)." if dataset in MIXTURE_TOYS else "")
               + (f" Samples outside the plotted square: {outside_text}." if outside_text else "")
               + (" " + baselines.D_MAP_CAPTION.replace("the GAN panels", "the GAN panels (the checkpoint's "
                                                       "discriminator)") if gan_maps else ""))

# --- the table ------------------------------------------------------------------------------------------------------

st.subheader("The numbers")
bench_rows, bench_meta = baselines.benchmark()
rows = [(e, manifest.get(e.name, {}), parameter_counts(pretrained(e.name).model)) for e in found]
table = baselines.metrics_table(dataset, rows, bench_rows)
fmt = {"sliced Wasserstein": "%.4f", "SW floor": "%.4f", "SW / floor": "%.2f", "MMD (RBF)": "%.4f",
       "energy distance": "%.4f", "FID-MNIST": "%.1f", "FID-MNIST real vs real": "%.1f", "training s": "%.0f",
       "s / 1,000 samples": "%.3g"}
config = {k: st.column_config.NumberColumn(k, format=f) for k, f in fmt.items() if k in table}
config |= {"off-mode fraction": st.column_config.NumberColumn("off-mode fraction", format="percent"),
           "accuracy on the requested digit": st.column_config.NumberColumn(format="percent"),
           "class histogram": st.column_config.BarChartColumn("class histogram (0-9)", y_min=0),
           "parameters (sampling)": st.column_config.NumberColumn(format="localized"),
           "parameters (trained)": st.column_config.NumberColumn(format="localized"),
           "NFE / sample": st.column_config.NumberColumn(help="network evaluations per sample")}
COST = ["NFE / sample", "s / 1,000 samples", "training s", "trained on", "parameters (sampling)",
        "parameters (trained)"]
quality_cols = [k for k in table.columns if k not in COST and k != "family"]
st.markdown("**Sample quality**")
st.dataframe(table[quality_cols], hide_index=True, column_config=config, key="baselines.quality")
st.markdown("**Cost**")
st.dataframe(table[["model", "sampler", *COST]], hide_index=True, column_config=config, key="baselines.cost")
unevaluated = [e.name for e, meta, _ in rows if not isinstance(meta.get("metrics"), dict)]
if unevaluated:
    st.warning(f"No recorded evaluation for {', '.join(f'`{u}`' for u in unevaluated)} yet: its metric cells are "
               f"empty. `python -m core evaluate {unevaluated[0]} --update-manifest` records them.",
               icon=":material/pending:")
ns = sorted({m for m in table["n"].dropna()}) if "n" in table else []
n_text = " / ".join(f"{int(v):,}" for v in ns) or "?"
if mnist:
    acc = next((manifest.get(e.name, {}).get("metrics", {}).get("classifier_test_accuracy") for e in found
                if isinstance(manifest.get(e.name, {}).get("metrics"), dict)), None)
    st.caption(
        f"Metrics as recorded by `python -m core evaluate <model> --update-manifest` (pretrained/manifest.json): "
        f"n = {n_text} samples per row, all with DDIM-50 for the diffusion model and one pass for the GAN and VAE. "
        "The diffusion model is class-conditional, so it has three rows: unconditional (the label dropped, as the "
        "GAN and VAE sample), asked for each digit in turn (w = 1), and with classifier-free guidance w = 3 (two "
        "network passes per step: NFE 100). FID-MNIST: Fréchet distance in the features of the project's "
        "classifier (lower is better; two disjoint sets of real digits score the *real vs real* column). Class "
        "histogram: the classifier's reading of the unconditional samples, 0 to 9 (flat: every digit). Accuracy: "
        "the share of digits read as the one asked for; the GAN and VAE are unconditional, nothing to ask for. "
        "Sampling time: the w = 1 row runs the same passes as the unconditional one and shows its time. "
        + (f"The classifier reads real test digits with {acc:.1%} accuracy. " if isinstance(acc, float) else ""))
else:
    st.caption(
        f"Metrics as recorded by `python -m core evaluate <model> --update-manifest` (pretrained/manifest.json): "
        f"n = {n_text} samples per model, against fresh data; the diffusion model with DDIM-50 (η = 0), the GAN and "
        "VAE with one pass. Sliced Wasserstein beside its data-vs-data floor (the same distance between two draws "
        "of the data: a perfect model scores about the floor, so SW / floor ≈ 1); MMD with an RBF kernel (an "
        "unbiased estimate, which can dip just below 0) and the energy distance: 0 for identical distributions."
        + (" Off-mode fraction: samples farther than 3 σ from every mode." if dataset in MIXTURE_TOYS else ""))
hw = bench_meta.get("hardware")
st.caption(
    ("**Sampling time per 1,000 samples**: `benchmarks/results/baselines.json` "
     f"({bench_meta.get('created', 'undated')}, git {bench_meta.get('git_revision', '?')}; {hw}); every model "
     "timed on that one machine, median of several runs"
     + ("; the MNIST diffusion model on 100 digits, scaled × 10" if mnist else "") + ". "
     if hw else "**Sampling time**: no `benchmarks/results/baselines.json` yet (`python benchmarks/baselines.py` "
                "writes it). ")
    + "**Training time**: as recorded in the manifest, on the hardware of the *trained on* column (the MNIST "
      "models on a GPU, the 2D ones on one CPU thread). **Parameters**: *sampling* counts what runs at sampling "
      "time (the GAN's generator, the VAE's decoder, the whole denoiser); *trained* adds the GAN's discriminator "
      "and the VAE's encoder.")

# --- mode collapse ----------------------------------------------------------------------------------------------


def share_chart(df: pd.DataFrame, x_title: str, fair: float, height: int = 260) -> alt.Chart:
    order = [e.label for e in found]
    colors = alt.Scale(domain=order, range=[e.color for e in found])
    bars = alt.Chart(df).mark_bar().encode(
        x=alt.X("mode:N", title=x_title, sort=None, axis=alt.Axis(labelAngle=0)),
        xOffset=alt.XOffset("family:N", sort=order),
        y=alt.Y("share:Q", title="share of samples", axis=alt.Axis(format="%")),
        color=alt.Color("family:N", scale=colors, sort=order, legend=alt.Legend(orient="top", title=None)),
        tooltip=["family:N", "mode:N", alt.Tooltip("share:Q", format=".1%")])
    rule = alt.Chart(pd.DataFrame({"share": [fair]})).mark_rule(strokeDash=[4, 4], color="#6b7280").encode(y="share:Q")
    return (bars + rule).properties(height=height)


st.subheader("Mode collapse" if not mnist else "Every digit, or a few?")
if mnist:
    uncond_note = ""
    ddpm_m = next((manifest.get(e.name, {}).get("metrics") for e in found if e.diffusion), None)
    if isinstance(ddpm_m, dict):
        fid_u = ddpm_m.get("fid_mnist_unconditional")
        fid_1 = next((g.get("fid_mnist") for g in ddpm_m.get("guided") or [] if g.get("guidance_scale") == 1.0), None)
        if isinstance(fid_u, (int, float)) and isinstance(fid_1, (int, float)) and fid_1 < fid_u:
            uncond_note = (f" The diffusion model's unconditional samples are its weakest (FID-MNIST {fid_u:.0f}): it "
                           "was trained with the label dropped only one time in ten. Asked for a digit (w = 1) it "
                           f"scores {fid_1:.0f}.")
    hist_rows = []
    for e in found:
        m = manifest.get(e.name, {}).get("metrics")
        h = m.get("unconditional_class_histogram") if isinstance(m, dict) else None
        if isinstance(h, list) and sum(h):
            hist_rows += [{"family": e.label, "mode": str(d), "share": c / sum(h)} for d, c in enumerate(h)]
    if hist_rows:
        st.altair_chart(share_chart(pd.DataFrame(hist_rows), "digit the classifier reads", 0.1),
                        width="stretch", key="baselines.classes")
        st.caption("The recorded class histograms of the unconditional samples (the table's column), as shares; "
                   "dashed: 10% each, as in the data. A collapsed generator would pile onto a few digits; these GANs "
                   "do not, on MNIST their failure is quality: compare the FID-MNIST column." + uncond_note)
elif dataset in MIXTURE_TOYS:
    df = baselines.coverage_frame({e.label: samples[e.name] for e in found}, dataset)
    k = len(df["mode"].unique()) - 1
    st.altair_chart(share_chart(df, "mixture component (off: farther than 3 σ from every mean)", 1 / k),
                    width="stretch", key="baselines.modes")
    st.caption(f"Share of the {n:,} samples above on each of the {k} components; dashed: the fair share 1/{k}.")
    for e in found:
        m = manifest.get(e.name, {}).get("metrics")
        if not isinstance(m, dict) or "modes" not in m:
            continue
        covered, modes, off = m["modes_covered"], m["modes"], m["off_mode_fraction"]
        rec = f"{covered} of {modes} modes, {off:.1%} of samples off every mode (recorded, n = {m['n']:,})"
        gan = e.kind.startswith("gan")
        if gan and covered < modes:
            st.error(f"**{e.label}: mode collapse.** {rec}. The generator found a few outputs the discriminator "
                     "accepts and stopped there; nothing in the GAN loss pays for the modes it misses."
                     + (" The R1 penalty did not fix it on this data set." if e.kind == "gan-r1" else
                        " Compare the GAN + R1 verdict below." if any(f.kind == "gan-r1" for f in found) else ""),
                     icon=":material/error:")
        elif covered < modes:
            st.warning(f"**{e.label}: misses modes.** {rec}.", icon=":material/warning:")
        elif off > OFF_MODE_OK:
            why = {"gan-r1": "The R1 gradient penalty (Mescheder et al. 2018) keeps the discriminator smooth around "
                             "real data, so the generator is pulled towards every mode, but its continuous map from "
                             "z still smears samples across the gaps between them.",
                   "gan": "Its continuous map from z smears samples across the gaps between modes.",
                   "vae": "Its decoder maps the continuous latent space onto separate blobs, so it must pass "
                          "through the gaps, and the ELBO prefers a little mass everywhere to a missed mode.",
                   "ddpm": ""}[e.kind]
            st.warning(f"**{e.label}: every mode, but blurred between them.** {rec}. {why}",
                       icon=":material/blur_on:")
        else:
            st.success(f"**{e.label}: every mode.** {rec}."
                       + (" This plain GAN happened to cover them; the race below shows runs where it does not."
                          if e.kind == "gan" else ""), icon=":material/check:")
else:
    ratios = "; ".join(f"{e.label} {rec_m['sw_ratio']:.1f}×" for e in found
                       if isinstance(rec_m := manifest.get(e.name, {}).get("metrics"), dict) and "sw_ratio" in rec_m)
    st.caption(f"*{toy_label(dataset)}* is not a mixture of separate modes, so there is no mode count; a collapse "
               "shows in the samples above (a GAN squeezing the data into a streak) and in the sliced Wasserstein "
               f"ratio to the floor{f' ({ratios})' if ratios else ''}. Choose *eight gaussians* or *twenty five "
               "gaussians* to count modes.")

# --- training curves ---------------------------------------------------------------------------------------------

st.subheader("Training curves")
curve_cols = st.columns(len(found))
Y_TITLES = {"ddpm": "L_simple (log scale)", "gan": "loss (nats)", "gan-r1": "loss (nats, D with R1)",
            "vae": "−ELBO per dimension"}
for col, e in zip(curve_cols, found, strict=True):
    p = pretrained(e.name)
    meta = manifest.get(e.name, {})
    with col:
        st.markdown(f"**{e.label}**")
        frame = baselines.curves_frame(p.config)
        tr = p.config.get("training", {})
        if frame is None:
            st.caption(f"No curve recorded: `{e.name}` was trained before checkpoints kept their loss curve "
                       f"({tr.get('steps_done', meta.get('steps', '?'))} steps). The race below draws one live.")
            continue
        st.altair_chart(plots.line_chart(frame, "step", "value", "series", x_title="training step",
                                         y_title=Y_TITLES[e.kind], log_y=e.diffusion, colors=baselines.CURVE_COLORS,
                                         height=220), width="stretch", key=f"baselines.curve.{e.kind}")
        hardware = baselines.short_hardware(meta.get("hardware"))
        st.caption(f"{tr.get('steps_done', '?'):,} steps of batch {tr.get('batch_size', '?')}; "
                   f"{meta.get('seconds', tr.get('seconds', '?'))} s on {hardware}")
st.caption("Diffusion minimises one regression loss, which falls smoothly. A GAN's two losses measure a game, "
           "not progress: they hover around log 4 ≈ 1.39 (L_D, the discriminator) and log 2 ≈ 0.69 (L_G, the "
           "generator) when neither player wins, whatever the samples look like. The VAE's −ELBO falls like any "
           "likelihood bound.")

# --- interpolation -----------------------------------------------------------------------------------------------


@st.cache_data(max_entries=8, show_spinner=False)
def interpolate_2d(names: tuple[str, ...], seed: int) -> dict[str, np.ndarray]:
    """The same N_PAIRS pairs of N(0, I) draws in 2D, slerped, mapped by each model: G(z), the VAE decoder's mean,
    DDIM-50 from x_T (deterministic, η = 0). (pairs, N_PATH, 2) per model."""
    g = torch.Generator().manual_seed(seed + 777)
    a, b = torch.randn(N_PAIRS, 2, generator=g), torch.randn(N_PAIRS, 2, generator=g)
    z = slerp(a, b, np.linspace(0, 1, N_PATH)).transpose(0, 1).reshape(-1, 2)  # pair-major
    out = {}
    for name in names:
        p = pretrained(name)
        with torch.no_grad():
            if p.schedule is None:
                x = p.model.decode(z)
            else:
                x = sample(p.model, p.schedule, z, method="ddim", steps=baselines.DDIM_STEPS,
                           keep_trajectory=False).xs[-1]
        out[name] = x.reshape(N_PAIRS, N_PATH, 2).numpy()
    return out


@st.cache_data(max_entries=8, show_spinner=False)
def interpolate_mnist(names: tuple[str, ...], seed: int, steps: int) -> np.ndarray:
    """Per model, N_INTERP_DIGITS images along a slerp between two draws of its own latent: z for the GAN and
    the VAE's decoder mean, x_T (784 numbers) for DDIM with ``steps`` steps, unconditional. uint8 (models * k)."""
    ts = np.linspace(0, 1, N_INTERP_DIGITS)
    rows = []
    for name in names:
        p = pretrained(name)
        g = torch.Generator().manual_seed(seed + 777)
        shape = (1, 1, 28, 28) if p.schedule is not None else (1, p.model.latent_dim)
        z = slerp(torch.randn(shape, generator=g), torch.randn(shape, generator=g), ts)[:, 0]
        with torch.no_grad():
            if p.schedule is None:
                x = p.model.decode(z)
            else:
                x = sample(p.model, p.schedule, z, method="ddim", steps=steps, keep_trajectory=False).xs[-1]
        rows.append(plots.to_uint8(x.clamp(-1, 1).numpy()))
    return np.concatenate(rows)


st.subheader("Interpolation: latent space against x_T")
order = [e for e in found if not e.diffusion] + [e for e in found if e.diffusion]
if mnist:
    images = interpolate_mnist(tuple(e.name for e in order), seed, steps)
    titles = [f"DDIM-{steps}: x_T" if e.diffusion else f"{e.label}: z" for e in order]
    plots.show(plots.image_grid(images, N_INTERP_DIGITS, row_titles=titles,
                                col_titles=[f"{t:.2f}" for t in np.linspace(0, 1, N_INTERP_DIGITS)],
                                width_px=1000, left_px=130), key="baselines.interp")
    st.caption(f"Each row: a spherical interpolation (slerp) between two Gaussian draws, through the GAN's "
               f"generator, the VAE's decoder (its mean image), or DDIM-{steps} from two x_T of 28 × 28 numbers "
               "(deterministic, η = 0; Song et al. 2021 §5.3). Column: the interpolation weight.")
else:
    paths = interpolate_2d(tuple(e.name for e in order), seed)
    overlay = toy_points(dataset, 1000, seed + 1)
    labels = {e.name: (f"DDIM-{baselines.DDIM_STEPS}: x_T → x₀" if e.diffusion
                       else f"{e.label}: z → {'G(z)' if e.kind.startswith('gan') else 'decoder mean'}")
              for e in order}
    fig = plots.scatter_panels([plots.Panel(labels[e.name], None, overlay=overlay) for e in order],
                               lim=LIM, height=330, marker_size=2.5)
    for i, e in enumerate(order, start=1):
        baselines.add_traces(fig, baselines.path_traces(paths[e.name], i, PAIR_COLORS))
    plots.show(fig, key="baselines.interp")
    st.caption(f"The same {N_PAIRS} pairs of 2D Gaussian draws in every panel (circle: start, cross: end), each "
               f"joined by a slerp of {N_PATH} points and mapped by the model: the GAN's generator and the VAE's "
               "decoder map their latent z, DDIM-50 (deterministic, η = 0) maps x_T, which plays the same role. A "
               "GAN path jumps where its generator folds, a VAE path runs through the gaps between modes, the DDIM "
               "path stays on the data and switches mode abruptly.")

# --- the race ------------------------------------------------------------------------------------------------------

st.subheader("Race: train all three here, with the same time budget")
st.markdown("Each family trains its own default recipe on the same toy with the same seed for at most the same "
            "number of seconds, one after another in a training process of this server (the page stays usable "
            "meanwhile; several students' races queue). Snapshots draw the models' samples from the same noise every "
            "time (x_T through DDIM-20, z through the generator or decoder), after the first step and at each sixth "
            "of the budget, like GAN Lab. **Stop** ends the family in training, keeps what it learned, and skips the "
            "rest.")
rc = st.columns([3, 3, 3, 2], vertical_alignment="bottom")
with rc[0]:
    race_choice = ui.selectbox("Toy", "race_toy", (ABOVE, *TOYS), ABOVE,
                               format_func=lambda v: ("the data set above" + (" (eight gaussians for MNIST)"
                                                                              if mnist else ""))
                               if v == ABOVE else toy_label(v))
race_toy = race_choice if race_choice != ABOVE else ("eight_gaussians" if mnist else dataset)
with rc[1]:
    budget = ui.slider("Time budget per family (s)", "budget", 1, 120, 15,
                       help="Each family stops at this many seconds or at the end of its recipe, whichever comes "
                            "first; the whole race takes about three times this.")
with rc[2]:
    r1 = ui.toggle("R1 penalty on the GAN", "r1", False,
                   help=f"γ = {baselines.R1_GAMMA:g}, as the shipped gan-r1 models")
with rc[3]:
    racing = background.current(baselines.JOB)
    busy = racing is not None and racing.status in ACTIVE
    go_race = st.button("Race", type="primary", icon=":material/sports_score:", key="baselines.race_go",
                        disabled=busy, help="Queues the race on the server (one job per browser tab); it trains in "
                                            "a worker process while you browse")


def snapshot_panel(family: str, snap: baselines.RaceSnapshot, overlay: np.ndarray, title: str | None = None):
    return plots.Panel(title or f"{snap.seconds:.1f} s · step {snap.step:,}", snap.points,
                       color=baselines.KIND_COLORS[family], overlay=overlay)


def snapshots_figure(family: str, snaps: list[baselines.RaceSnapshot], overlay: np.ndarray, titles: list[str | None],
                     height: int, marker_size: float):
    """Snapshots side by side; the GAN's over its discriminator's map at each snapshot's step."""
    fig = plots.scatter_panels([snapshot_panel(family, s, overlay, t) for s, t in zip(snaps, titles, strict=True)],
                               lim=RACE_LIM, height=height, marker_size=marker_size)
    return baselines.with_d_maps(fig, {i: getattr(s, "d_map", None) for i, s in enumerate(snaps, start=1)}, RACE_LIM)


RACE_LOSS_TITLES = {**Y_TITLES, "gan": "L_D and L_G (nats)"}
RACE_D_MAP_CAPTION = baselines.D_MAP_CAPTION.replace(
    "Background of the GAN panels", "Behind the GAN's snapshots") + (
    " Each map is the discriminator being trained at that step (its raw weights), the points the generator's "
    "moving average: watch the map chase the points.")


@st.cache_data(max_entries=4, show_spinner=False)
def race_overlay(toy: str, seed: int) -> np.ndarray:
    return toy_points(toy, baselines.SNAPSHOT_N, seed + 1)


if go_race and not busy:
    st.session_state.pop(baselines.NOTICE_KEY, None)
    r1_gamma = baselines.R1_GAMMA if r1 else 0.0
    if background.start(baselines.JOB, baselines.KIND, race_job.race_spec(race_toy, budget, seed, r1_gamma),
                        label=f"race on {toy_label(race_toy)}, {budget} s per family", expected_s=3.0 * budget):
        st.rerun()  # redraw with the button disabled and the race's panel


def race_live(job) -> None:
    """The race in training (redrawn every second by the follow fragment): per family its progress, its latest
    snapshot (the GAN's over its discriminator's map) and its loss so far (the GAN: L_D and L_G apart)."""
    if job.status != RUNNING or not job.progress.get("runs"):
        return
    spec, p = job.spec, job.progress
    overlay = race_overlay(spec["toy"], spec["seed"])
    budget_s = float(spec["budget_s"])
    latest = {s["family"]: s for s in job.snapshots}
    st.markdown(f"Training on *{toy_label(spec['toy'])}*: **Stop** ends the family in training, keeps what it "
                "learned, and skips the rest.")
    for col, fam in zip(st.columns(len(spec["families"])), spec["families"], strict=True):
        with col:
            st.markdown(f"**{baselines.RACE_LABELS[fam]}**")
            r = p["runs"].get(fam)
            if r is None:
                st.progress(0.0, text="waiting")
                continue
            frac = 1.0 if r["done"] else min(1.0, max(r["step"] / max(1, r["steps"]), r["seconds"] / budget_s))
            loss_text = (f"L_D {r['L_D']:.3f} · L_G {r['L_G']:.3f}" if "L_D" in r
                         else f"loss {r['loss']:.3f}" if r["loss"] is not None else "starting")
            st.progress(frac, text=f"step {r['step']:,} · {r['seconds']:.1f} of {budget_s:g} s · {loss_text}"
                                   + (" · done" if r["done"] else ""))
            if fam in latest:
                s = latest[fam]
                snap = baselines.RaceSnapshot(s["step"], s["seconds"], s["points"], s.get("d_map"))
                plots.show(snapshots_figure(fam, [snap], overlay, [None], height=300, marker_size=2.5),
                           key=f"baselines.live_snap.{fam}")
            losses = job.losses[r["offset"]:r["offset"] + r["step"]]
            players = p.get("players") if fam == "gan" else None
            if losses:
                chart = plots.line_chart(baselines.race_losses_frame(losses, players), "step", "value", "series",
                                         x_title="step", y_title=RACE_LOSS_TITLES[fam] if players else "loss",
                                         colors=baselines.CURVE_COLORS, height=180)
                st.altair_chart(chart, width="stretch", key=f"baselines.live_loss.{fam}")
            if fam == "gan":
                st.caption("Background: D(x), green real, purple fake, white undecided (½).")


background.follow(baselines.JOB, race_live, stop_label="Stop the race")
notice = st.session_state.get(baselines.NOTICE_KEY)
if notice is not None:
    (st.warning if notice[0] == "warning" else st.info)(notice[1], icon=":material/info:")

if race is None:
    st.caption("No race yet in this session. Press **Race**: with the default 15 s per family it takes under a "
               "minute.")
else:
    st.markdown(f"**Last race**: *{toy_label(race.toy)}*, at most {race.budget_s:g} s per family, seed {race.seed}"
                + (f", GAN with R1 (γ = {race.r1_gamma:g})" if race.r1_gamma else ", plain GAN")
                + (". **Stopped**: the families after the stopped one did not train." if race.stopped
                   else "."))
    now = (race_toy, float(budget), int(seed), baselines.R1_GAMMA if r1 else 0.0)
    if now != (race.toy, race.budget_s, race.seed, race.r1_gamma):
        st.caption("The race controls have changed since; press **Race** to run with them.")
    overlay = race_overlay(race.toy, race.seed)
    for fam in baselines.RACE_FAMILIES:
        run = race.runs.get(fam)
        if run is None:
            st.markdown(f"**{baselines.RACE_LABELS[fam]}**: not trained (the race was stopped before it).")
            continue
        st.markdown(f"**{run.label}**: {run.message or 'no step'}, {run.seconds:.1f} s "
                    f"({run.steps / max(run.seconds, 1e-9):,.0f} steps/s; recipe: {run.steps_planned:,} steps)")
        if run.snapshots:
            titles = ["start" if i == 0 else None for i in range(len(run.snapshots))]
            plots.show(snapshots_figure(fam, run.snapshots, overlay, titles, height=210, marker_size=2),
                       key=f"baselines.race_snaps.{fam}")
            if any(getattr(s, "d_map", None) is not None for s in run.snapshots):
                st.caption(RACE_D_MAP_CAPTION)
    done = [r for r in race.runs.values() if r.model is not None]
    if done:
        lc = st.columns(len(done))
        for col, r in zip(lc, done, strict=True):
            with col:
                players = getattr(r, "players", None)  # a race kept from before the players were recorded: none
                frame = (baselines.curves_frame(r.model.config) if r.family == "gan" and not players else None)
                frame = frame if frame is not None else baselines.race_losses_frame(r.losses, players)
                st.altair_chart(plots.line_chart(frame, "step", "value", "series", x_title="training step",
                                                 y_title=RACE_LOSS_TITLES[r.family], log_y=r.family == "ddpm",
                                                 colors=baselines.CURVE_COLORS, height=200, title=r.label),
                                width="stretch", key=f"baselines.race_loss.{r.family}")
        res = []
        for r in done:
            m = r.metrics or {"sw_ratio": None, "mmd_rbf": None}
            row = {"family": r.label, "steps": r.steps, "seconds": round(r.seconds, 1), "SW / floor": m["sw_ratio"],
                   "MMD (RBF)": m["mmd_rbf"]}
            if "modes" in m:
                row |= {"modes covered": f"{m['modes_covered']}/{m['modes']}",
                        "off-mode fraction": m["off_mode_fraction"]}
            res.append(row)
        st.dataframe(pd.DataFrame(res), hide_index=True, key="baselines.race_table",
                     column_config={"off-mode fraction": st.column_config.NumberColumn(format="percent"),
                                    "SW / floor": st.column_config.NumberColumn(format="%.2f"),
                                    "MMD (RBF)": st.column_config.NumberColumn(format="%.4f")})
        st.caption("core.evaluate.evaluate_2d on 2,000 samples of each raced model (DDIM-50 for the diffusion model) "
                   "against fresh data: the same metrics as the table above, on fewer samples.")

show_code(race_job.train_family, slerp, evaluate_2d, evaluate_mnist,
          label="Show the code: the race, the interpolation, the evaluation")
