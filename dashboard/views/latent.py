"""Latent diffusion (Rombach et al. 2022) on MNIST: compress a digit with a KL-regularised autoencoder, diffuse in its
small latent, decode. The round trip (digits, reconstructions, the error, the latent's four channels); a 2-D latent
drawn as a plane, with a reverse path through it and the digits decoded along the way; latent sampling with ldm-mnist
(digit, guidance, sampler, steps, seed), every step decoded; the cost against the pixel model from
benchmarks/results/latent.json; and both stages trained live through the job runner. The page never trains on
load."""

from functools import partial

import numpy as np
import streamlit as st

from core.models.autoencoder import Autoencoder
from core.samplers import METHODS
from core.train_latent import train_ldm
from dashboard.jobs import latent as job_recipe
from dashboard.jobs.runner import ACTIVE, RUNNING
from dashboard.ui import background, digits, exports, plots, sampling
from dashboard.ui import latent as ul
from dashboard.ui.header import page_header, show_code
from dashboard.ui.loaders import (
    ResultsProblem,
    broken_model_notice,
    manifest_models,
    pretrained,
    pretrained_problem,
)
from dashboard.ui.widgets import UrlWidgets

page_header(
    "Latent diffusion",
    [r"\mathcal L_\text{AE}=\mathbb E_{x}\Big[\big\|x-D(z)\big\|^2+\lambda\,\mathrm{KL}\big(q(z\mid x)\,\|\,"
     r"\mathcal N(0,I)\big)\Big],\quad z\sim q(z\mid x)=\mathcal N\big(\mu(x),\sigma^2(x)\big),\ \ \lambda=10^{-4}"
     r"\qquad\text{(the first stage)}",
     r"z=s\cdot E(x),\qquad s=1/\operatorname{std}(z)\ \text{ over the training digits}\qquad\text{(the scale "
     r"factor)}",
     r"\mathcal L_\text{LDM}=\mathbb E_{E(x),\,y,\,\epsilon\sim\mathcal N(0,I),\,t}\Big\|\epsilon-\epsilon_\theta"
     r"\big(z_t,t,y\big)\Big\|^2,\quad z_t=\sqrt{\bar\alpha_t}\,z+\sqrt{1-\bar\alpha_t}\,\epsilon"
     r"\qquad\text{(Rombach et al. 2022, eq. 2)}",
     r"\hat x=D(z_0/s)\qquad\text{(decode the sample once, at the end)}"],
    "Most of a diffusion model's work goes into detail nobody sees. Latent diffusion splits the job: an "
    "**autoencoder**, trained once, compresses a 28 × 28 digit (784 numbers) to a latent $z$ of 4 × 7 × 7 = 196 "
    "numbers and decodes it back; a small KL term keeps $z$ close to $\\mathcal N(0, I)$ without blurring the "
    "digits, and the scale factor $s$ gives the latents unit variance, the scale the noise schedule expects. The "
    "**diffusion model** then learns the same $L_\\text{simple}$ as in pixels, on $z$: a UNet of the pixel model's "
    "widths on 7 × 7 positions instead of its 14 × 14 patches, with the same schedules, samplers and "
    "classifier-free guidance (null label 10). A sample is "
    "diffused in the latent and decoded once. Fewer positions mean cheaper steps: the whole model trains on a "
    "laptop CPU in minutes.",
    "in the round trip, switch to the *2-number latent*: the reconstructions turn into smooth, average digits, the "
    "error row lights up, and about a third of them are read as another digit (✗): two numbers hold the class at "
    "best, never the handwriting. In the plane, pick digit 1 and set the paths' guidance to 0: the black crosses "
    "spread over every cluster (about one in ten is a 1); at w = 1 nearly all land on the 1s. In the sampling "
    "section, read the two rows of the strip: the decoder draws strokes even from a noisy latent (*D(z_t)*), and "
    "the model's guess *D(ẑ₀)* has settled on the final digit within the first few steps: the rest of the run "
    "refines a latent whose digit is already decided. Then train your own below and set it beside the pretrained "
    "one.",
    code=[Autoencoder.encode, Autoencoder.decode, train_ldm],
)

problems = {name: pretrained_problem(name) for name in (ul.AE, ul.AE2D, ul.LDM, ul.LDM2D, digits.CLASSIFIER)}
judged = problems[digits.CLASSIFIER] is None
if not judged:
    broken_model_notice(digits.CLASSIFIER, problems[digits.CLASSIFIER],
                        "The digits are shown without the classifier's reading.")
run = ul.adopt_run(judged)  # first: a job that has just finished becomes the session's model
ui = UrlWidgets("latent")

# --- 1. the round trip -------------------------------------------------------------------------------------------

st.subheader("1. The round trip: encode, decode, compare")
c = st.columns([3, 2, 5], vertical_alignment="bottom")
with c[0]:
    ae_name = ui.selectbox("Autoencoder", "ae", ul.AUTOENCODERS, ul.AE, format_func=ul.AUTOENCODER_LABELS.get)
with c[1]:
    start = ui.number("Test digits from #", "start", 0, len(digits.test_digits()) - ul.N_ROUND_TRIP, 0,
                      help=f"The first of {ul.N_ROUND_TRIP} held-out digits (the autoencoder never saw them).")
if problems[ae_name]:
    broken_model_notice(ae_name, problems[ae_name], "The round trip needs it; the rest of the page does not.")
else:
    rt = ul.round_trip(ae_name, int(start), judged)
    models = manifest_models()
    ev, clf_acc = ul.evaluation(models, ae_name), ul.classifier_accuracy(models)
    shape = tuple(pretrained(ae_name).model.latent_shape)
    numbers = int(np.prod(shape))
    n_rt = len(rt["labels"])
    read_caps, read_colors = ul.marks(rt["pred"], rt["labels"])
    captions = ([f"a {int(d)}" for d in rt["labels"]] + (read_caps or [""] * n_rt)
                + [f"MSE {m:.3f}" for m in rt["mse"]])
    colors = [plots.CAPTION_COLOR] * n_rt + (read_colors or [plots.CAPTION_COLOR] * n_rt) + [plots.CAPTION_COLOR] * n_rt
    left, right = st.columns([4, 1], gap="medium")
    with left:
        tiles = np.concatenate([rt["images"], rt["recon"], rt["error"]])
        plots.show(plots.image_grid(tiles, n_rt, captions, colors, rows=3, left_px=130, width_px=1000,
                                    row_titles=["x (held out)", "D(E(x))", "|x − D(E(x))|"]), key="latent_round_trip")
        rt_settings = {"model": ae_name, "start": int(start), "n": n_rt}
        exports.download_button("Round trip (PNG)", partial(exports.digits_png, tiles, n_rt, settings=rt_settings),
                                exports.file_name("latent", "round_trip", rt_settings, "png"),
                                key="latent.download.round_trip")
    with right:
        st.metric("MSE, these digits", f"{float(np.mean(rt['mse'])):.4f}",
                  help="Mean squared error of the reconstructions, pixels in [−1, 1].")
        if ev is not None:
            st.metric(f"MSE, all {int(ev['n']):,} held out", f"{ev['reconstruction_mse']:.4f}")
            st.metric("Read correctly", f"{ev['reconstruction_accuracy']:.1%}",
                      help=f"How often the project's classifier reads the reconstruction of a held-out digit as its "
                           f"true digit, over all {int(ev['n']):,}" + (f" (on the original digits: {clf_acc:.1%})."
                                                                        if clf_acc else "."))
        st.metric("Numbers per digit", f"784 → {numbers}",
                  help=f"A latent of shape {' × '.join(map(str, shape))}: {784 / numbers:.0f} times fewer numbers "
                       "than pixels.")
    st.caption("Top: held-out digits; middle: their reconstructions D(E(x)) with what the project's classifier reads "
               "in them (✓ their true digit, ✗ another); bottom: the absolute error per pixel, black for none, white "
               f"from {ul.ERROR_WHITE:g} up (pixels run from −1 to 1). "
               + (f"On all {int(ev['n']):,} held-out digits (`{ul.evaluate_command(ae_name)}`, in "
                  f"pretrained/manifest.json): MSE and the share read correctly at the right; the scaled latents' std "
                  f"is {ev['latent_std']:.2f} (the scale factor aims at 1). " if ev is not None else
                  f"No evaluation of {ae_name} on all held-out digits in pretrained/manifest.json yet: "
                  f"`{ul.evaluate_command(ae_name)}` adds it. ")
               + f"Data: {digits.test_digits().source}.")
    if rt["z"].ndim == 4:
        st.markdown("**The latent z of each digit**, its four 7 × 7 channels (one column per digit, the same colour "
                    "scale for all; blue negative, red positive). The channels keep the digit's layout: the latent "
                    "is a small picture, which is why a UNet can denoise it.")
        lc = st.columns([3, 1])
        with lc[0]:
            plots.show(ul.latent_figure(rt["z"], [f"a {int(d)}" for d in rt["labels"]]), key="latent_channels")
    else:
        st.markdown("**The latent z of each digit** is two numbers: "
                    + ", ".join(f"a {int(d)}: ({z[0]:.2f}, {z[1]:.2f})" for d, z in zip(rt["labels"], rt["z"],
                                                                                          strict=True))
                    + ". Section 2 draws every held-out digit at its z.")

# --- 2. the 2-D latent ------------------------------------------------------------------------------------------

st.subheader("2. A latent you can see: two numbers per digit")
st.markdown("The second autoencoder squeezes each digit into **two** numbers, so its whole latent space is a plane. "
            "Each dot is a held-out digit at its $z = s\\cdot E(x)$, coloured by its class; similar digits land "
            "together. A latent diffusion model `ldm2d-mnist` (an MLP, as on the 2D pages) learned the density of "
            "these points; its reverse process starts from $z_T\\sim\\mathcal N(0, I)$ and walks to a cluster. In "
            "orange, one path of $z_t$ for the chosen digit (DDIM, 50 steps), numbered where its states are "
            "decoded below; black crosses: where 200 paths of that digit end.")
if problems[ul.AE2D]:
    broken_model_notice(ul.AE2D, problems[ul.AE2D], "The plane needs it; the rest of the page does not.")
else:
    c = st.columns([2, 3, 2])
    with c[0]:
        digit2d = ui.selectbox("Digit of the paths", "digit2d", [str(d) for d in range(10)], "1",
                               disabled=problems[ul.LDM2D] is not None)
    with c[1]:
        w2d = ui.slider("Guidance scale w (paths)", "w2d", 0.0, 8.0, 3.0, step=0.5,
                        disabled=problems[ul.LDM2D] is not None,
                        help="0: unconditional (any digit); 1: the conditional p(z | y); above 1: guided beyond it.")
    with c[2]:
        seed2d = ui.number("Seed (paths)", "seed2d", 0, 9999, 0, disabled=problems[ul.LDM2D] is not None)
    plane = ul.plane_points()
    lim = ul.plane_lim(plane["points"])
    paths = None
    if problems[ul.LDM2D]:
        broken_model_notice(ul.LDM2D, problems[ul.LDM2D], "The plane is drawn without the model's paths.")
    else:
        paths = ul.plane_paths(int(digit2d), float(w2d), int(seed2d), judged)
    left, right = st.columns([3, 2], gap="medium")
    with left:
        plots.show(ul.plane_figure(plane["points"], plane["labels"], lim, paths, int(digit2d)), key="latent_plane")
    with right:
        st.markdown(f"**What the decoder draws** at each point of the same square (top left: $z = (-{lim:g}, "
                    f"{lim:g})$):")
        grid = ul.decoder_map(lim)
        plots.show(plots.image_grid(grid, ul.MAP_N, width_px=470), key="latent_decoder_map")
    if paths is not None:
        k = len(paths["frame_idx"])
        titles = [f"{i + 1}: t = {int(t)}" for i, t in enumerate(paths["frame_t"])]
        titles[-1] = f"{k}: z₀"
        plots.show(plots.image_grid(paths["frames"], k, col_titles=titles, width_px=110 * k), key="latent_path_frames")
        read = paths["read_as_digit"]
        st.caption("The orange path's states decoded, D(z_t / s), from the noise z_T to the sample z_0. "
                   + (f"Of the {ul.N_CLOUD} samples of digit {digit2d} (w = {w2d:g}), the classifier reads {read} as a "
                      f"{digit2d}." if read is not None else ""))

# --- 3. sampling in the latent ------------------------------------------------------------------------------------

st.subheader("3. Sampling in the latent")
st.markdown("`ldm-mnist`, a class-conditional UNet on the 4 × 7 × 7 latents of `autoencoder-mnist`: draw "
            "$z_T\\sim\\mathcal N(0, I)$ of that shape, run any sampler with classifier-free guidance, decode once.")
if problems[ul.LDM]:
    broken_model_notice(ul.LDM, problems[ul.LDM], "Sampling needs it; the cost table and the training below do not.")
else:
    tokens = ul.model_tokens()
    c = st.columns([3, 3, 3, 3, 3, 2])
    with c[0]:
        token = ui.selectbox("Model", "model", tokens, ul.LDM, format_func=ul.token_label,
                             disabled=len(tokens) == 1, help="Train your own in section 5: it joins this list.")
    with c[1]:
        digit = ui.selectbox("Digit", "digit", ul.DIGITS, "each", format_func=lambda d: ul.DIGIT_LABELS.get(d, d),
                             help="The label y the network is given; 'any' samples without one (y = ∅).")
    with c[2]:
        w = ui.slider("Guidance scale w", "w", 0.0, 8.0, 3.0, step=0.5, disabled=digit == "any",
                      help="0: unconditional, 1: conditional, > 1: guided (two network passes per step).")
    with c[3]:
        method = ui.selectbox("Sampler", "method", METHODS, "ddim", format_func=sampling.method_label)
    with c[4]:
        r = ul.STEP_RANGES[method]
        steps = ui.slider("Steps", f"steps_{method}", r.lo, r.hi, r.default, step=r.step,
                          help="Timesteps the sampler visits (Heun and predictor-corrector evaluate twice per step).")
    with c[5]:
        seed = ui.number("Seed", "seed", 0, 9999, 0, help="z_T and the sampler's noise both come from the seed.")
    with st.spinner(f"Sampling {ul.N_GRID} digits in the latent..."):
        gen = ul.generate(token, digit, float(w), method, int(steps), int(seed), judged)
    left, right = st.columns([4, 1], gap="medium")
    caps, colors = ul.marks(gen["pred"], gen["labels"])
    settings = {"model": ul.LDM if token == ul.LDM else "yours", "digit": int(digit) if digit.isdigit() else digit,
                "w": None if digit == "any" else float(w), "sampler": method, "steps": int(steps), "n": ul.N_GRID,
                "seed": int(seed)}
    with left:
        plots.show(plots.image_grid(gen["images"], ul.COLS, caps, colors, width_px=1000), key="latent_grid")
    with right:
        st.metric("NFE", gen["nfe"], help="Evaluations of the guided denoiser on the 4 × 7 × 7 latents.")
        st.metric("Wall time", f"{gen['seconds']:.2f} s", help="Sampling and decoding on this server when it ran "
                                                                "(cached afterwards).")
        if gen["pred"] is not None and gen["labels"] is not None:
            st.metric("Classifier agrees", f"{int((gen['pred'] == gen['labels']).sum())}/{ul.N_GRID}")
        elif gen["pred"] is not None:
            st.metric("Digits present", f"{len(set(gen['pred'].tolist()))}/10")
    if gen["diverged"]:
        st.warning(f"{gen['diverged']} of {ul.N_GRID} latents diverged (far outside the latents' range): too few "
                   "steps for this sampler; raise the steps.", icon=":material/warning:")
    sel = ul.strip_indices(len(gen["frame_idx"]))
    k = len(sel)
    titles = [f"t = {sampling.nice_t(float(gen['frame_t'][i]))}" for i in sel]
    titles[-1] = "t = 0: the sample"
    strip = np.concatenate([gen["frames_x"][sel], gen["frames_x0"][sel]])
    plots.show(plots.image_grid(strip, k, col_titles=titles, row_titles=["D(z_t)", "D(ẑ₀(z_t))"], rows=2,
                                left_px=110, width_px=110 + 100 * k), key="latent_strip")
    st.caption(f"The first digit of the grid along its {gen['steps']} steps ({k} of {gen['steps'] + 1} states): top, "
               "the noisy latent z_t itself decoded; bottom, the model's guess of the clean latent ẑ₀(z_t) decoded. "
               "Sampling never leaves the latent: these decodes are for the eye only. "
               f"{sampling.METHOD_LABELS[method]} ({sampling.METHOD_PAPERS[method]})"
               + (f", guidance w = {w:g}." if digit != "any" else ", unconditional (y = ∅)."))
    d = st.columns(3)
    with d[0]:
        exports.download_button("Digits (PNG)", partial(exports.digits_png, gen["images"], ul.COLS, settings=settings),
                                exports.file_name("latent", "digits", settings, "png"), key="latent.download.grid")
    with d[1]:
        exports.download_button("Steps (PNG)", partial(exports.digits_png, strip, k, settings=settings),
                                exports.file_name("latent", "steps", settings, "png"), key="latent.download.strip")

    def steps_gif() -> bytes:
        frames = [exports.side_by_side(exports.titled(exports.digits_image(x[None], 1, 6), "D(z_t)"),
                                       exports.titled(exports.digits_image(x0[None], 1, 6), "D(z0 hat)"), gap=16)
                  for x, x0 in zip(gen["frames_x"], gen["frames_x0"], strict=True)]
        labels = [f"t = {sampling.nice_t(float(t))}" for t in gen["frame_t"]]
        labels[-1] = "t = 0: the sample"
        return exports.animation_gif(frames, 200, settings, labels)

    with d[2]:
        exports.download_button("Steps (GIF)", steps_gif, exports.file_name("latent", "steps", settings, "gif"),
                                key="latent.download.gif")

# --- 4. the cost --------------------------------------------------------------------------------------------------

st.subheader("4. What it costs: latent against pixel diffusion")
try:
    cost = ul.cost()
except ResultsProblem as err:
    st.info(f"No cost table yet: {err}", icon=":material/info:")
else:
    st.markdown(ul.cost_sentence(cost))
    st.dataframe(cost.table, hide_index=True, width="stretch", column_config={
        "model": "model",
        "parameters": st.column_config.NumberColumn("params to sample", format="localized",
                                                    help="Used to make a digit: the denoiser, plus the decoder for "
                                                         "a latent model."),
        "denoiser_parameters": st.column_config.NumberColumn("denoiser params", format="localized"),
        "train_seconds": st.column_config.NumberColumn("training s", format="%.0f"),
        "train_hardware": st.column_config.TextColumn("trained on", help="The manifest's hardware of each training "
                                                      "run (a latent model: its two stages)"),
        "seconds_per_100": st.column_config.NumberColumn("s / 100 digits", format="%.2f",
                                                         help=f"{cost.sampler}, guided at w = {cost.guidance_scale:g}, "
                                                              f"on {cost.machine}"),
        "accuracy": st.column_config.NumberColumn("read as asked", format="%.3f",
                                                  help="The share of guided digits the classifier reads as the digit "
                                                       "asked for."),
        "fid_mnist": st.column_config.NumberColumn("FID-MNIST ↓", format="%.2f"),
        "unconditional": st.column_config.TextColumn("w = 0", help="Digits the classifier finds among unconditional "
                                                     "samples (10/10: no digit forgotten)")})
    m = st.columns(3)
    m[0].metric("FID-MNIST, real vs real", f"{cost.fid_floor:.2f}",
                help=f"Two sets of {cost.n:,} real digits: the floor a perfect model would reach at this n.")
    m[1].metric("Sampling time, latent / pixel", f"{cost.seconds_ratio:.2f}",
                help="Seconds per 100 guided digits of ldm-mnist over ddpm-mnist's, measured in the same run.")
    st.caption(f"{cost.n:,} digits per model ({cost.sampler}, w = {cost.guidance_scale:g}), judged by the project's "
               "classifier; FID-MNIST is the Fréchet distance in its features against real digits. Sampling times "
               f"were measured in the same run on {cost.machine}; training times are the manifest's, on the "
               f"hardware named. Written by `{ul.BENCH_COMMAND}`.")

# --- 5. train it yourself -------------------------------------------------------------------------------------------

st.subheader("5. Train it yourself")
st.markdown("Both stages, from scratch, on this server's CPU: first the autoencoder (its reconstructions of ten "
            "held-out digits appear as it learns), then the latent model on its latents (its digits 0–9 from the "
            "same noise at each snapshot). The job runs in a worker process while you browse; several students' "
            "jobs queue. The finished model joins the *Model* list of section 3.")
c = st.columns([3, 3, 2, 3], vertical_alignment="bottom")
with c[0]:
    ae_steps = ui.slider("Autoencoder steps", "ae_steps", 50, 1000, job_recipe.AUTOENCODER_STEPS, step=50,
                         help="Batches of 128 digits (the shipped autoencoder-mnist: 400).")
with c[1]:
    latent_steps = ui.slider("Latent model steps", "latent_steps", 100, 3000, job_recipe.LATENT_STEPS, step=100,
                             help="Batches of 128 latents (the shipped ldm-mnist: 2,000).")
with c[2]:
    train_seed = ui.number("Seed (training)", "train_seed", 0, 9999, 0)
active = background.current(ul.JOB)
busy = active is not None and active.status in ACTIVE
expected = ul.expected_seconds(ae_steps, latent_steps)
with c[3]:
    go = st.button("Train", type="primary", icon=":material/play_arrow:", key="latent.go", disabled=busy,
                   help=f"Queues a training job on the server (one per browser tab); about {expected:.0f} s with "
                        "these steps on a free core.")

if go and not busy:
    settings_train = {"ae_steps": int(ae_steps), "latent_steps": int(latent_steps), "seed": int(train_seed)}
    spec = job_recipe.latent_spec(int(ae_steps), int(latent_steps), int(train_seed), settings=settings_train)
    if background.start(ul.JOB, job_recipe.KIND, spec, label=f"{ae_steps} + {latent_steps} steps, seed {train_seed}",
                        expected_s=expected):
        st.rerun()  # redraw with the button disabled and the job's panel


def live_view(job) -> None:
    """The running job's loss so far and its latest snapshot (redrawn every few seconds by the follow fragment)."""
    if job.status != RUNNING or not job.losses:
        return
    ae_losses, lat_losses = ul.stage_losses(job)
    stage, losses = ("latent", lat_losses) if lat_losses else ("autoencoder", ae_losses)
    left, right = st.columns([2, 3])
    with left:
        st.altair_chart(ul.loss_chart(losses, stage, height=240), width="stretch", key="latent.live_loss")
    shots = [s for s in job.snapshots if s["stage"] == stage]
    if shots:
        with right:
            what = "reconstructions of held-out digits" if stage == "autoencoder" else "DDIM-20 samples of 0–9"
            st.markdown(f"**{what}** at step {shots[-1]['step']:,}")
            plots.show(plots.image_grid(shots[-1]["images"], 10, width_px=640), key="latent.live_snap")


background.follow(ul.JOB, live_view, stop_label="Stop training")


def steps_of(name: str) -> str:
    """The training steps of a shipped model, as its manifest records them ("?" if it does not)."""
    entry = manifest_models().get(name)
    steps = entry.get("steps") if isinstance(entry, dict) else None
    return f"{steps:,}" if isinstance(steps, int) and not isinstance(steps, bool) else "?"


def show_run(run: ul.LatentRun, judged: bool, pretrained_ok: bool) -> None:
    """The session's trained model: how the job ended, its digits beside the pretrained model's from the same
    noise, what it learned along the way, the loss curves and the checkpoint files."""
    st.markdown(f"#### Your model: {run.label}")
    ae_stage, lat_stage = run.stages.get("autoencoder") or {}, run.stages.get("latent") or {}
    status = (f"Autoencoder: {ae_stage.get('steps', 0):,} steps in {ae_stage.get('seconds', 0):.0f} s"
              + (f"; latent model: {lat_stage.get('steps', 0):,} steps in {lat_stage.get('seconds', 0):.0f} s"
                 if lat_stage else "; no latent model (stopped during the autoencoder)")
              + f"; {run.seconds:.0f} s in all, loading, encoding and sampling included.")
    if run.diverged:
        st.warning(status + " Its samples are not finite: training diverged.", icon=":material/warning:")
    elif run.stopped:
        st.info(status + " Stopped early: the model is what it had learned by then.", icon=":material/pause:")
    else:
        st.success(status, icon=":material/check:")
    now = {"ae_steps": int(ae_steps), "latent_steps": int(latent_steps), "seed": int(train_seed)}
    if run.settings and {k: run.settings.get(k) for k in now} != now:
        st.caption("The controls above have changed since this model was trained; press **Train** to train with "
                   "them. This model stays until then.")
    if run.samples is not None:
        per_digit = len(run.samples) // 10
        cols = st.columns(2, gap="medium")
        with cols[0]:
            agree = "" if run.pred is None else (f": {int((run.pred == run.sample_labels).sum())}/{len(run.pred)} "
                                                 "read as requested")
            st.markdown(f"**Yours** ({lat_stage.get('steps', 0):,} latent steps){agree}")
            plots.show(plots.image_grid(run.samples, 10, *ul.marks(run.pred, run.sample_labels), width_px=560),
                       key="latent.yours")
        with cols[1]:
            if pretrained_ok:
                ref = ul.pretrained_samples(int(run.settings.get("seed", 0)), per_digit, 3.0, 25, judged)
                agree = "" if ref["pred"] is None else (f": {int((ref['pred'] == ref['labels']).sum())}/"
                                                        f"{len(ref['pred'])} read as requested")
                st.markdown(f"**Pretrained ldm-mnist** ({steps_of(ul.LDM)} latent steps){agree}")
                plots.show(plots.image_grid(ref["images"], 10, *ul.marks(ref["pred"], ref["labels"]), width_px=560),
                           key="latent.theirs")
            else:
                st.info("The pretrained ldm-mnist cannot be loaded (see above): nothing to compare with.",
                        icon=":material/broken_image:")
        st.caption(f"{per_digit} of each digit, DDIM-25 guided at w = 3, from the same latent noise for both models, "
                   "so the differences are the models'. Under each digit: the classifier's reading.")
    elif run.autoencoder is not None:
        st.caption("Without a latent model there is nothing to sample; the autoencoder's reconstructions are below.")
    for stage, what in (("autoencoder", "the autoencoder's reconstructions of ten held-out digits"),
                        ("latent", "the latent model's digits 0–9 (DDIM-20, w = 3, the same noise each time)")):
        shots = [s for s in run.snapshots if s.stage == stage]
        if not shots:
            continue
        left, right = st.columns([2, 3], gap="medium")
        with left:
            losses = (run.stages.get(stage) or {}).get("losses") or []
            if losses:
                st.altair_chart(ul.loss_chart(losses, stage, height=220), width="stretch", key=f"latent.loss.{stage}")
        with right:
            st.markdown(f"**As it learned**: {what}")
            plots.show(plots.image_grid(np.concatenate([s.images for s in shots]), 10, rows=len(shots),
                                        row_titles=[f"step {s.step:,}" for s in shots], left_px=90, width_px=640),
                       key=f"latent.snapshots.{stage}")
    if run.reconstruction_mse is not None:
        shipped = ul.evaluation(manifest_models(), ul.AE)
        st.caption(f"Your autoencoder's reconstruction MSE on {run.reconstruction_n:,} held-out digits: "
                   f"{run.reconstruction_mse:.4f}"
                   + (f" (the shipped autoencoder-mnist, {steps_of(ul.AE)} steps: {shipped['reconstruction_mse']:.4f} "
                      f"on {int(shipped['n']):,})." if shipped is not None else "."))
    d = st.columns(4)
    names = {"autoencoder": job_recipe.AUTOENCODER_NAME, "latent": "session-ldm"}
    for col, (part, (weights, config)) in zip(d, run.files.items(), strict=False):
        with col:
            st.download_button(f"{part.capitalize()} weights", weights, file_name=f"{names[part]}.safetensors",
                               mime="application/octet-stream", icon=":material/download:", on_click="ignore",
                               key=f"latent.dl_{part}_weights")
            st.download_button(f"{part.capitalize()} config", config, file_name=f"{names[part]}.json",
                               mime="application/json", icon=":material/download:", on_click="ignore",
                               key=f"latent.dl_{part}_config")
    if run.samples is not None:
        sample_settings = {"model": "yours", "seed": int(run.settings.get("seed", 0)), "w": 3.0, "sampler": "ddim",
                           "steps": 25}
        with d[3]:
            exports.download_button("Digits (PNG)", partial(exports.digits_png, run.samples, 10,
                                                            settings=sample_settings),
                                    exports.file_name("latent", "yours", sample_settings, "png"),
                                    key="latent.download.yours")
    if run.files:
        st.caption(f"Keep the four files in one folder: `core.checkpoints.load_checkpoint('session-ldm')` loads the "
                   f"latent model with its autoencoder (the config names it `{job_recipe.AUTOENCODER_NAME}`).")


notice = st.session_state.pop(ul.NOTICE_KEY, None)
if notice is not None:
    (st.warning if notice[0] == "warning" else st.info)(notice[1], icon=":material/info:")
if run is None and not busy:
    a, b = job_recipe.AUTOENCODER_STEPS, job_recipe.LATENT_STEPS
    st.caption(f"No model trained yet in this session. Press **Train**: with the defaults ({a} + {b} steps) it takes "
               f"about {ul.expected_seconds(a, b):.0f} s on one core of a 2-core laptop CPU.")
elif run is not None:
    show_run(run, judged, problems[ul.LDM] is None)

show_code(job_recipe.train_latent, label="Show the code: the training job")
