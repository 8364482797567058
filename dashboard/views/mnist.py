"""MNIST: a class-conditional DDPM on handwritten digits with classifier-free guidance. A grid of samples (digit,
guidance scale, sampler, steps, seed), the denoising animated (x_t beside the x0 prediction), a guidance sweep from
the same noise (fidelity against diversity), the forward process on a real digit under four schedules, and the
model's evaluation and speed/memory benchmarks from their JSON files. The page never trains."""

import math
import time
from functools import partial

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st
import torch

from core.diffusion import forward_chain
from core.evaluate import evaluate_mnist
from core.guidance import RowwiseGuidance, classifier_free_guidance
from core.models.unet import UNet
from core.samplers import METHODS, sample
from dashboard.ui import exports, plots, sampling
from dashboard.ui.digits import CLASSIFIER, grid_labels, probabilities, test_digits
from dashboard.ui.header import page_header
from dashboard.ui.loaders import (
    ROOT,
    broken_model_notice,
    build_schedule,
    manifest_models,
    pretrained,
    pretrained_problem,
    read_json,
)
from dashboard.ui.widgets import UrlWidgets

MODEL = "ddpm-mnist"
DIGITS = ("each", "any", *(str(d) for d in range(10)))
DIGIT_LABELS = {"each": "0–9 (one of each)", "any": "any (unconditional)"}
COLS = 10  # digits per row of the grid
N_ANIM = 4  # digits in the animation (the first ones of the grid, from the same run)
N_FRAMES = 25
# Steps per sampler on this model (guided, so every step costs two network passes per digit): the defaults are
# about the fewest steps that give clean digits.
STEP_RANGES = {
    "ddpm": sampling.StepRange(10, 1000, 50, 10),
    "ddim": sampling.StepRange(2, 250, 15),
    "euler_maruyama": sampling.StepRange(10, 1000, 100, 10),
    "predictor_corrector": sampling.StepRange(5, 500, 50, 5),
    "ode_euler": sampling.StepRange(5, 500, 50, 5),
    "ode_heun": sampling.StepRange(2, 250, 25),
    "dpm_solver_2m": sampling.StepRange(2, 100, 10),
}
SWEEP_W = (0.0, 1.0, 2.0, 3.0, 5.0, 8.0)
SWEEP_ROWS, SWEEP_STEPS = 4, 10
SWEEP_COLORS = ["#059669", "#d97706"]  # fidelity, diversity
SCHEDULES = ("linear", "cosine", "sigmoid", "quadratic")
FORWARD_T = (0, 50, 100, 200, 300, 400, 500, 700, 1000)
MS_PER_DIGIT_STEP = 2.5  # guided network pass per digit on a 2-core CPU (both halves), for the spinner's estimate
BENCHMARKS = {"CPU": ROOT / "benchmarks" / "results" / "mnist_cpu.json",
              "GPU": ROOT / "benchmarks" / "results" / "mnist_cuda.json"}

page_header(
    "MNIST",
    [r"\tilde\epsilon_\theta(x_t,t,y)=\epsilon_\theta(x_t,t,\varnothing)+w\,\big(\epsilon_\theta(x_t,t,y)"
     r"-\epsilon_\theta(x_t,t,\varnothing)\big)",
     r"\hat x_0(x_t)=\frac{x_t-\sqrt{1-\bar\alpha_t}\,\tilde\epsilon_\theta(x_t,t,y)}{\sqrt{\bar\alpha_t}}"],
    "The same ε-prediction as on the 2D pages, now by a small UNet on 28×28 images that is also told the digit "
    "$y$; in training the label was replaced by the empty label $\\varnothing$ one time in ten, so one network "
    "gives both the conditional and the unconditional noise estimate. Classifier-free guidance (Ho & Salimans "
    "2022) steps from the unconditional estimate towards the conditional one and past it: $w = 0$ draws any "
    "digit, $w = 1$ draws from $p(x\\mid y)$, and $w > 1$ trades variety for digits a classifier is surer of.",
    "set the digit to *8* and the guidance scale to 0: only one of the 20 digits is an eight (the others' captions "
    "turn red), since w = 0 ignores the label. At w = 1 nearly all are, at w = 2 all of them. In the sweep below, "
    "read each row from left to right: the same noise becomes whatever digit it suggests at w = 0, the requested "
    "digit from w ≈ 2 on, and bolder strokes by w = 8, while the rows grow alike (the chart: fidelity up, "
    "diversity down).",
    code=[classifier_free_guidance, sample, UNet.forward, forward_chain, evaluate_mnist],
)

ui = UrlWidgets("mnist")
c = st.columns([3, 3, 3, 3, 2, 2])
with c[0]:
    digit = ui.selectbox("Digit", "digit", DIGITS, "each", format_func=lambda d: DIGIT_LABELS.get(d, d),
                         help="The label y the network is given; 'any' samples without one (y = ∅).")
with c[1]:
    w = ui.slider("Guidance scale w", "w", 0.0, 10.0, 3.0, step=0.5, disabled=digit == "any",
                  help="0: unconditional, 1: conditional, > 1: guided (two network passes per step).")
with c[2]:
    method = ui.selectbox("Sampler", "method", METHODS, "ddim", format_func=sampling.method_label)
with c[3]:
    r = STEP_RANGES[method]
    steps = ui.slider("Steps", f"steps_{method}", r.lo, r.hi, r.default, step=r.step,
                      help="Timesteps the sampler visits (Heun and predictor-corrector evaluate twice per step).")
with c[4]:
    n = ui.slider("Digits", "n", 10, 100, 20, step=10)
with c[5]:
    seed = ui.number("Seed", "seed", 0, 9999, 0, help="x_T and the sampler's noise both come from the seed.")


@st.cache_data(max_entries=16, show_spinner=False)
def generate(digit: str, w: float, method: str, steps: int, n: int, seed: int, judged: bool = True) -> dict:
    """n digits from x_T ~ N(0, I) (seed) with ``method``; the first N_ANIM digits' x_t and x0 prediction at up to
    N_FRAMES steps of the same run (recorded by the callback, so the other digits keep no trajectory). ``judged``:
    whether the classifier reads them (False while its file cannot be loaded: "pred" is None)."""
    p = pretrained(MODEL)
    y = grid_labels(digit, n)
    x_T = torch.randn(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed))
    xs, x0s = [], []

    def record(info: dict) -> None:
        xs.append(info["x"][:N_ANIM].clone())
        x0s.append(info["x0_pred"][:N_ANIM].clone())

    t0 = time.perf_counter()
    traj = sample(p.model, p.schedule, x_T, method=method, steps=steps, callback=record,
                  generator=torch.Generator().manual_seed(seed + 1), y=y,
                  guidance_scale=w if y is not None else 1.0, keep_trajectory=False)
    seconds = time.perf_counter() - t0
    x0 = traj.x0
    diverged = int((~torch.isfinite(x0).flatten(1).all(1) | (x0.flatten(1).abs().amax(1) > 3)).sum())
    images = torch.nan_to_num(x0, nan=0.0).clamp(-1, 1)
    pred, _ = probabilities(images, judged)
    idx = traj.frame_indices(N_FRAMES)
    anim_x = torch.stack([*xs, images[:N_ANIM]])[idx]
    anim_x0 = torch.stack([*x0s, images[:N_ANIM]])[idx]  # the sample is its own "prediction"
    return {"images": plots.to_uint8(images), "labels": None if y is None else y.numpy(), "pred": pred,
            "seconds": seconds, "nfe": int(traj.nfe), "steps": len(traj.timesteps), "diverged": diverged,
            "frame_idx": idx, "frame_t": traj.state_timesteps()[idx],
            "frame_alpha_bar": traj.state_alpha_bars(p.schedule)[idx],
            "anim_x": plots.to_uint8(anim_x.numpy()), "anim_x0": plots.to_uint8(anim_x0.numpy())}


@st.cache_data(max_entries=16, show_spinner=False)
def guidance_sweep(label: int, seed: int, judged: bool = True) -> dict:
    """SWEEP_ROWS noises x_T, each sampled at every w of SWEEP_W (DDIM, SWEEP_STEPS steps, deterministic): the
    same noise across a row. Fidelity: the classifier's mean probability of ``label`` (None unless ``judged``);
    diversity: the mean RMS pixel distance between the samples of one w."""
    p = pretrained(MODEL)
    x_T = torch.randn(SWEEP_ROWS, 1, 28, 28, generator=torch.Generator().manual_seed(seed + 2))
    k = len(SWEEP_W)
    x_T = x_T.repeat_interleave(k, 0)  # row-major: noise r at every w
    w = torch.tensor(SWEEP_W, dtype=torch.float32).repeat(SWEEP_ROWS)
    y = torch.full((len(w),), int(label))
    traj = sample(RowwiseGuidance(p.model, w), p.schedule, x_T, method="ddim", steps=SWEEP_STEPS, y=y,
                  keep_trajectory=False)
    images = torch.nan_to_num(traj.x0, nan=0.0).clamp(-1, 1)
    pred, probs = probabilities(images, judged)
    fidelity = None if probs is None else probs[:, label].reshape(SWEEP_ROWS, k).mean(0)
    x = images.reshape(SWEEP_ROWS, k, -1).transpose(0, 1)  # (w, rows, pixels)
    pairs = [(i, j) for i in range(SWEEP_ROWS) for j in range(i + 1, SWEEP_ROWS)]
    diversity = [float(np.mean([((x[c, i] - x[c, j]) ** 2).mean().sqrt().item() for i, j in pairs]))
                 for c in range(k)]
    return {"images": plots.to_uint8(images), "pred": pred, "fidelity": fidelity, "diversity": np.array(diversity)}


@st.cache_data(max_entries=32, show_spinner=False)
def forward_rows(digit: str, seed: int) -> dict:
    """One real test digit (of the chosen class; which one by the seed) through the forward chain of every schedule,
    with the same noise z_1 .. z_T in every row, kept at FORWARD_T."""
    data = test_digits()
    labels = data.labels.numpy()
    pool = np.flatnonzero(labels == int(digit)) if digit.isdigit() else np.arange(len(labels))
    i = int(pool[seed % len(pool)])
    x0 = data.images[i].reshape(1, -1)
    rows, alpha_bars = [], []
    for name in SCHEDULES:
        s = build_schedule(name, 1000)
        states = forward_chain(s, x0, FORWARD_T, generator=torch.Generator().manual_seed(seed + 3))
        rows.append(plots.to_uint8(states[:, 0].reshape(-1, 28, 28).numpy()))
        alpha_bars.append(np.concatenate([[1.0], s.alpha_bars.numpy()])[list(FORWARD_T)])
    return {"images": np.stack(rows), "alpha_bar": np.stack(alpha_bars), "index": i, "label": int(labels[i]),
            "source": data.source}


def manifest_entry() -> dict:
    """The manifest record of ddpm-mnist (read when the file changes: ``evaluate`` may add metrics at any time)."""
    entry = manifest_models().get(MODEL)
    return entry if isinstance(entry, dict) else {}


def fmt_seconds(s: float) -> str:
    return f"{s:.2f} s" if s < 10 else f"{s:.0f} s"


def denoising_gif(run: dict, settings: dict) -> bytes:
    """The denoising animation as a GIF: x_t of the first N_ANIM digits beside their x0 prediction, each frame."""
    frames = [exports.side_by_side(exports.titled(exports.digits_image(x, N_ANIM, 4), "x_t"),
                                   exports.titled(exports.digits_image(x0, N_ANIM, 4), "predicted x0"), gap=16)
              for x, x0 in zip(run["anim_x"], run["anim_x0"], strict=True)]
    last = len(run["frame_idx"]) - 1
    labels = [f"t = 0: the sample ({run['steps']} steps)" if k == last else
              f"t = {sampling.nice_t(float(run['frame_t'][k]))}   step {int(run['frame_idx'][k])} of {run['steps']}"
              for k in range(last + 1)]
    return exports.animation_gif(frames, 200, settings, labels)


# --- the grid -------------------------------------------------------------------------------------------------------

# A damaged shipped file costs only the sections that need it: the forward process, the evaluation and the
# benchmarks below need neither the model nor the classifier.
model_problem, judge_problem = pretrained_problem(MODEL), pretrained_problem(CLASSIFIER)
judged = judge_problem is None
if judge_problem:
    broken_model_notice(CLASSIFIER, judge_problem, "The digits below are drawn without the classifier's reading.")


def sample_sections() -> None:
    """The grid, the animation and the guidance sweep: everything that samples the model."""
    labels_now = grid_labels(digit, n)
    guided = labels_now is not None and w not in (0.0, 1.0)
    nfe_est = steps * (2 if method in ("ode_heun", "predictor_corrector") else 1)
    estimate = n * nfe_est * MS_PER_DIGIT_STEP * (1 if guided else 0.5) / 1000
    with st.spinner(f"Sampling {n} digits with {sampling.METHOD_LABELS[method]}, {steps} steps"
                    + (f" (about {fmt_seconds(estimate)} on a 2-core CPU)..." if estimate > 2 else "...")):
        run = generate(digit, float(w), method, int(steps), int(n), int(seed), judged)

    left, right = st.columns([4, 1], gap="medium")
    with left:
        if run["pred"] is None:
            captions, colors = None, None
        elif run["labels"] is None:
            captions, colors = [str(d) for d in run["pred"]], None
        else:
            ok_ = run["pred"] == run["labels"]
            captions = [f"{d} ✓" if good else f"{d} ✗" for d, good in zip(run["pred"], ok_, strict=True)]
            colors = [plots.CAPTION_COLOR if good else plots.WRONG_COLOR for good in ok_]
        plots.show(plots.image_grid(run["images"], COLS, captions, colors, width_px=1000), key="mnist_grid")
        settings = {"model": MODEL, "digit": int(digit) if digit.isdigit() else digit,
                    "w": None if labels_now is None else float(w), "sampler": method, "steps": int(steps), "n": int(n),
                    "seed": int(seed)}
        exports.download_button("Digits (PNG)", partial(exports.digits_png, run["images"], COLS, settings=settings),
                                exports.file_name("mnist", "digits", settings, "png"), key="mnist.download.grid")
    with right:
        st.metric("NFE", run["nfe"], help="Evaluations of the guided denoiser; with guidance each is one batch of "
                  "2 × digits (conditional and unconditional).")
        st.metric("Wall time", fmt_seconds(run["seconds"]), help="The sample() call on this server, when it ran "
                  "(results are cached, so a revisit is instant).")
        if run["pred"] is not None and run["labels"] is not None:
            agree = int((run["pred"] == run["labels"]).sum())
            st.metric("Classifier agrees", f"{agree}/{n}", help="Digits the project's classifier reads as the "
                      "requested one (test accuracy on real digits: about 98%).")
        elif run["pred"] is not None:
            st.metric("Digits present", f"{len(set(run['pred'].tolist()))}/10", help="Distinct classes the classifier "
                      "finds among the unconditional samples.")
    read = "✓ the requested digit, ✗ another" if run["labels"] is not None else "no digit was requested"
    p = pretrained(MODEL)
    st.caption((f"Under each digit: what the project's classifier reads ({read}). " if judged else "")
               + f"{sampling.METHOD_LABELS[method]} ({sampling.METHOD_PAPERS[method]}), {run['steps']} steps"
               + (f", guidance w = {w:g}" if labels_now is not None else ", unconditional (y = ∅)")
               + f". Model: {MODEL}, {p.schedule.name} schedule, T = {p.schedule.T}; "
               f"trained on {p.config.get('data', {}).get('source', 'MNIST')}.")
    if run["diverged"]:
        why = "too few steps for this sampler on this model: raise the steps."
        st.warning(f"{run['diverged']} of {n} samples diverged (pixel values far outside [−1, 1]): {why}",
                   icon=":material/warning:")

    # --- the denoising, animated --------------------------------------------------------------------------------------

    st.subheader("Denoising, step by step")
    labels_anim = [sampling.frame_label(run, k) for k in range(len(run["frame_idx"]))]
    fig = plots.animated_image_pair(run["anim_x"], run["anim_x0"], labels_anim,
                                    ("x_t: where the sampler is", "x̂₀(x_t): the model's guess of the finished digit"),
                                    cols=N_ANIM)
    plots.show(fig, key="mnist_animation")
    exports.download_button("Animation (GIF)", partial(denoising_gif, run, settings),
                            exports.file_name("mnist", "denoising", settings, "gif"), key="mnist.download.gif")
    st.caption(f"The first {N_ANIM} digits of the grid, from the same run: {len(labels_anim)} of {run['steps'] + 1} "
               "states; press ▶ or drag the slider. x_t is drawn clipped to [−1, 1]. The guess x̂₀ is a blurred, "
               "noisy digit while t is large and is sharp long before x_t is clean.")

    # --- guidance sweep ---------------------------------------------------------------------------------------------

    st.subheader("Guidance sweep: fidelity against diversity")
    sweep_label = int(digit) if digit.isdigit() else seed % 10
    with st.spinner("Sampling the guidance sweep..."):
        sw = guidance_sweep(sweep_label, int(seed), judged)
    cols = st.columns([3, 1], gap="medium")
    with cols[0]:
        titles = [f"w = {v:g}" + (" (∅)" if v == 0 else " (p(x|y))" if v == 1 else "") for v in SWEEP_W]
        good = None if sw["pred"] is None else sw["pred"] == sweep_label
        plots.show(plots.image_grid(sw["images"], len(SWEEP_W),
                                    None if good is None else
                                    [f"{d} ✓" if g else f"{d} ✗" for d, g in zip(sw["pred"], good, strict=True)],
                                    None if good is None else
                                    [plots.CAPTION_COLOR if g else plots.WRONG_COLOR for g in good], col_titles=titles,
                                    width_px=560), key="mnist_sweep")
        sweep_settings = {"model": MODEL, "digit": sweep_label, "w": ",".join(f"{v:g}" for v in SWEEP_W),
                          "sampler": "ddim", "steps": SWEEP_STEPS, "seed": int(seed)}
        exports.download_button("Sweep (PNG)",
                                partial(exports.digits_png, sw["images"], len(SWEEP_W), settings=sweep_settings),
                                exports.file_name("mnist", "sweep", {**sweep_settings, "w": None}, "png"),
                                key="mnist.download.sweep")
    with cols[1]:
        k = len(SWEEP_W)
        curves = {"fidelity": sw["fidelity"], "diversity": sw["diversity"]}
        curves = {q: v for q, v in curves.items() if v is not None}  # no fidelity without the classifier
        df = pd.DataFrame({"w": list(SWEEP_W) * len(curves), "quantity": [q for q in curves for _ in range(k)],
                           "value": np.concatenate(list(curves.values()))})
        chart = alt.Chart(df, height=300).mark_line(point=True, strokeWidth=2).encode(
            x=alt.X("w:Q", title="guidance scale w"),
            y=alt.Y("value:Q", title=None, scale=alt.Scale(domain=[0, 1])),
            color=alt.Color("quantity:N", scale=alt.Scale(domain=["fidelity", "diversity"], range=SWEEP_COLORS),
                            legend=alt.Legend(orient="top", title=None)),
            tooltip=[alt.Tooltip("quantity:N"), alt.Tooltip("w:Q"), alt.Tooltip("value:Q", format=".3f")])
        st.altair_chart(chart, width="stretch")
    st.caption(f"Digit {sweep_label}" + ("" if digit.isdigit() else " (the seed's last digit: pick a digit above to "
                                                                      "choose it)")
               + f"; each row one noise x_T, the same in every column; DDIM, {SWEEP_STEPS} steps (fixed, to keep the "
               "row fast). Chart, fidelity: the classifier's mean probability of the digit over the "
               f"{SWEEP_ROWS} rows; diversity: the mean RMS distance between two samples of a column, in pixel units "
               "of [−1, 1]. All columns run as one batch, each row with its own w.")


if model_problem is None:
    sample_sections()
else:
    broken_model_notice(MODEL, model_problem, "The samples, the denoising and the guidance sweep need it; the "
                                              "forward process, the evaluation and the benchmarks below do not.")

# --- the forward process on a real digit -----------------------------------------------------------------------

st.subheader("The forward process on a real digit")
fwd = forward_rows(digit, int(seed))
k = len(FORWARD_T)
caps = [f"√ᾱ {math.sqrt(a):.2f}" for a in fwd["alpha_bar"].ravel()]
model_schedule = pretrained(MODEL).schedule.name if model_problem is None else None
rows = [f"{name}" + (" (the model's)" if name == model_schedule else "") for name in SCHEDULES]
plots.show(plots.image_grid(fwd["images"].reshape(-1, 28, 28), k, caps, col_titles=[f"t = {t}" for t in FORWARD_T],
                            row_titles=rows, width_px=1000, left_px=130), key="mnist_forward")
fwd_settings = {"digit": fwd["label"], "test_index": fwd["index"], "seed": int(seed), "T": 1000,
                "schedules": ",".join(SCHEDULES), "t": ",".join(map(str, FORWARD_T))}
exports.download_button("Forward process (PNG)", partial(exports.digits_png, fwd["images"].reshape(-1, 28, 28), k,
                                                         settings=fwd_settings),
                        exports.file_name("mnist", "forward", {**fwd_settings, "schedules": None, "t": None}, "png"),
                        key="mnist.download.forward")
st.caption(f"Test digit #{fwd['index']} (a {fwd['label']}), run through q(x_t | x_{{t−1}}) of each schedule with T = "
           "1000 and the same noise in every row; under each image the share of the signal left, √ᾱ_t. The linear "
           "schedule has removed most of the digit by t = 400 (√ᾱ ≈ 0.4), the cosine one still shows it clearly "
           "at t = 500 (√ᾱ ≈ 0.7): it spends fewer steps on almost-pure noise (Nichol & Dhariwal 2021).")
st.caption(f"**Data:** {fwd['source']}.")

# --- evaluation and benchmarks ------------------------------------------------------------------------------------

st.subheader("Evaluation")
entry = manifest_entry()
metrics = entry.get("metrics") if isinstance(entry.get("metrics"), dict) else None
if metrics is None or not isinstance(metrics.get("guided"), list):
    st.info("No evaluation of ddpm-mnist in pretrained/manifest.json yet: run "
            "`python -m core evaluate ddpm-mnist --update-manifest` (classifier accuracy and FID-MNIST per guidance "
            "scale, a few minutes on a CPU).", icon=":material/info:")
else:
    guided_rows = [g for g in metrics["guided"] if isinstance(g, dict)]
    table = pd.DataFrame({
        "guidance w": [g.get("guidance_scale") for g in guided_rows],
        "accuracy (classifier = requested digit)": [g.get("accuracy") for g in guided_rows],
        "FID-MNIST ↓": [g.get("fid_mnist") for g in guided_rows],
        "sampling time (s)": [g.get("seconds") for g in guided_rows],
    })
    e = st.columns([3, 2], gap="medium")
    with e[0]:
        st.dataframe(table, hide_index=True, width="stretch")
    with e[1]:
        m = st.columns(2)
        m[0].metric("FID-MNIST, real vs real", metrics.get("fid_mnist_data_vs_data", "n/a"),
                    help="Two disjoint sets of real digits of the same size: the floor a perfect model would reach.")
        m[1].metric("FID-MNIST, unconditional", metrics.get("fid_mnist_unconditional", "n/a"))
        m[0].metric("Classes covered (w = 0)", f"{metrics.get('unconditional_classes_covered', 'n/a')}/10")
        acc = metrics.get("classifier_test_accuracy")
        m[1].metric("Classifier test accuracy", f"{acc:.1%}" if isinstance(acc, (int, float)) else "n/a")
        hist = metrics.get("unconditional_class_histogram")
        if isinstance(hist, list) and len(hist) == 10:
            st.caption("Unconditional samples per class (0–9): " + " · ".join(str(h) for h in hist))
    st.caption(f"{metrics.get('n', '?')} samples per guidance scale ({metrics.get('sampler', '?')}), judged by the "
               "project's classifier; FID-MNIST is the Fréchet distance in its 128-d features against real test "
               "digits; sampling time is the evaluation's own wall time for those samples. From "
               "`python -m core evaluate ddpm-mnist --update-manifest`.")
if entry.get("command"):
    st.caption(f"Training: `{entry['command']}`, {entry.get('steps', '?')} steps in {entry.get('seconds', '?')} s "
               f"on {entry.get('hardware', 'unrecorded hardware')}.")

st.subheader("Speed and memory")
found = {kind: b for kind, path in BENCHMARKS.items() if (b := read_json(path))}
if not found:
    st.info("No benchmark results yet: run `python benchmarks/mnist.py` (writes benchmarks/results/mnist_cpu.json "
            "or mnist_cuda.json).", icon=":material/info:")
for col, (kind, bench) in zip(st.columns(max(1, len(found)), gap="medium"), found.items(), strict=False):
    with col:
        st.markdown(f"**{kind}** · {bench.get('hardware', 'unknown hardware')}")
        samp = [r for r in bench.get("sampling", []) if isinstance(r, dict)]
        if samp:
            st.dataframe(pd.DataFrame({
                "sampler": [sampling.METHOD_LABELS.get(r.get("method"), r.get("method")) for r in samp],
                "steps": [r.get("steps") for r in samp],
                "digits": [r.get("digits") for r in samp],
                "seconds": [r.get("seconds") for r in samp]}), hide_index=True, width="stretch")
        train = [r for r in bench.get("training", []) if isinstance(r, dict)]
        if train:
            st.dataframe(pd.DataFrame({
                "precision": [r.get("precision") for r in train],
                "checkpointing": ["yes" if r.get("checkpointing") else "no" for r in train],
                "ms / step": [r.get("ms_per_step") for r in train],
                "activations (MB)": [r.get("activation_mb") for r in train],
                "peak (MB)": [r.get("peak_mb") for r in train]}), hide_index=True, width="stretch")
st.caption("Sampling: 100 guided digits (w = 3) per row. Training: one step at the batch size shown in the JSON; "
           "activations are the bytes the forward pass keeps for backward, peak the CUDA allocator's maximum "
           "(GPU only). From `python benchmarks/mnist.py`.")
