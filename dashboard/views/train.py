"""Train: a 2D diffusion model trained live on a toy or on the user's own points (a CSV, or drawn on a canvas), with a
progress bar, a live loss curve, sample snapshots, a stop button; the result is usable on every other page and
downloadable."""

from functools import partial

import numpy as np
import streamlit as st

from core.data.toy2d import PointCloudError, load_points, standardise
from core.evaluate import evaluate_2d
from core.train_2d import DEFAULT_2D_TRAIN, DEFAULT_MLP, train_ddpm_2d
from core.training import train
from dashboard.jobs import recipes
from dashboard.jobs.runner import ACTIVE, RUNNING
from dashboard.ui import background, drawing, exports, plots, sitemap
from dashboard.ui import train as live
from dashboard.ui.fmt import fmt_num, toy_label
from dashboard.ui.header import page_header, show_code
from dashboard.ui.loaders import TOYS, build_schedule
from dashboard.ui.models import adopt_trained_model, last_trained_run, session_capacity_notice, session_models
from dashboard.ui.terminal_snr import terminal_noise_warning
from dashboard.ui.widgets import UrlWidgets

N_SAMPLES, SNAPSHOT_N = live.N_SAMPLES, live.SNAPSHOT_N  # final samples and metrics; points per snapshot
SCHEDULES = ("cosine", "linear", "sigmoid", "quadratic")
POINTS = "points"  # the Data option for the user's own point cloud
DRAW = "draw"  # the Data option for points drawn on a canvas (dashboard/ui/drawing.py)
DATA_LABELS = {POINTS: "your own points (CSV)", DRAW: "draw your own points"}  # the Data options beyond the toys
RUN_LABELS = {POINTS: "your points", DRAW: "your drawing"}

page_header(
    "Train a model",
    r"L_\text{simple}(\theta)=\mathbb E_{t\sim\mathcal U\{1..T\},\,x_0,\,\epsilon\sim\mathcal N(0,I)}"
    r"\Big\|\epsilon-\epsilon_\theta\big(\sqrt{\bar\alpha_t}\,x_0+\sqrt{1-\bar\alpha_t}\,\epsilon,\ t\big)\Big\|^2",
    "Training is Algorithm 1 of Ho et al. (2020) repeated a few thousand times: draw a batch of data, a random "
    "step $t$ and fresh noise $\\epsilon$, noise the data in one jump, and nudge the network to predict the noise. "
    "The loss never goes to zero (the noise cannot be read exactly from a noised point), so watch the samples, not "
    "only the curve: every few hundred steps a quick 20-step DDIM run shows what the model has learned so far. "
    "The finished model joins the *Model* list on every page in this browser tab.",
    "train *eight gaussians* with 300 steps, then with 3000: the early model puts a blurry ring where the modes "
    "should be. Then set T = 50 with the linear schedule (a warning appears): the loss looks just as good, yet the "
    "samples never separate, because sampling starts from N(0, I) while q(x_T) is not noise.",
    code=[train_ddpm_2d, train],
)

adopt_trained_model()  # first, the model of a job that has just finished
ui = UrlWidgets("train")
c = st.columns([3, 2, 4, 2])
with c[0]:
    data_name = ui.selectbox("Data", "data", (*TOYS, POINTS, DRAW), "eight_gaussians",
                             format_func=lambda v: DATA_LABELS.get(v) or toy_label(v))
with c[1]:
    schedule_name = ui.selectbox("Schedule", "schedule", SCHEDULES, "cosine")
with c[2]:
    T = ui.slider("Diffusion steps T", "T", 10, 1000, 1000, step=10)
with c[3]:
    seed = ui.number("Seed", "seed", 0, 9999, 0)
c = st.columns(3)
with c[0]:
    width = ui.slider("Network width", "width", 16, 256, DEFAULT_MLP["width"], step=16,
                      help=f"hidden units of the MLP's {DEFAULT_MLP['depth']} residual blocks")
with c[1]:
    steps = ui.slider("Training steps", "steps", 100, 6000, DEFAULT_2D_TRAIN.steps, step=100,
                      help=f"batches of {DEFAULT_2D_TRAIN.batch_size} points, learning rate {DEFAULT_2D_TRAIN.lr:g}")
with c[2]:
    budget = ui.slider("Time budget (s)", "budget", 10, 300, 120, step=10, help="training stops after this long")

schedule = build_schedule(schedule_name, T)
terminal_noise_warning(schedule, f"{schedule_name}, T = {T}")


@st.cache_data(max_entries=8, show_spinner=False)
def parse_points(raw: bytes) -> tuple[np.ndarray, list[float], float]:
    """core.data.toy2d.load_points + standardise; raises PointCloudError with the reason. Bytes, never a str:
    a one-line string would be read as a file path on the server."""
    x, mean, scale = standardise(load_points(raw))
    return x, mean.tolist(), scale


points = None  # (n, 2) standardised user points, when valid
source = ""
# Widget state is dropped when the student visits another page; the points are kept in these keys instead, so
# they are still here on the way back (an upload: its bytes, at most server.maxUploadSize = 5 MB per tab).
PASTE_KEPT, UPLOAD_KEPT = "train.paste_kept", "train.upload_kept"
if data_name == POINTS:
    state = st.session_state
    if "train.paste" not in state and PASTE_KEPT in state:
        state["train.paste"] = state[PASTE_KEPT]
    revisit = "train.upload" not in state  # the uploader is empty after a page visit, not because it was cleared
    up, paste = st.columns(2)
    with up:
        uploaded = st.file_uploader("Upload a CSV of x, y points", type=["csv", "txt", "tsv"], key="train.upload",
                                    help="one point per line; an optional header row; separated by comma, "
                                         "semicolon, tab or spaces; at most 100,000 points")
        if uploaded is not None:
            state[UPLOAD_KEPT] = (uploaded.name, uploaded.getvalue())
        elif not revisit:  # the student removed the file
            state.pop(UPLOAD_KEPT, None)
        kept = state.get(UPLOAD_KEPT)
        if uploaded is None and kept is not None:
            st.caption(f"Using **{kept[0]}**, uploaded earlier in this tab.")
            if st.button("Forget this file", key="train.forget_upload", icon=":material/close:"):
                state.pop(UPLOAD_KEPT, None)
                st.rerun()
    with paste:
        pasted = st.text_area("... or paste points, one x, y per line", key="train.paste", height=120,
                              placeholder="x,y\n0.12,-1.5\n0.80,0.33\n...")
        state[PASTE_KEPT] = pasted
    raw = None
    if kept is not None:
        raw, source = kept[1], f"uploaded file {kept[0]}"
        if pasted and pasted.strip():
            st.caption("The uploaded file is used; remove it to train on the pasted points.")
    elif pasted and pasted.strip():
        raw, source = pasted.encode("utf-8"), "pasted points"
    if raw is None:
        st.info("Upload a CSV file or paste at least 10 points to train on your own data.", icon=":material/upload:")
    else:
        try:
            points, mean, scale = parse_points(raw)
        except PointCloudError as err:
            st.error(f"Cannot use these points: {err}", icon=":material/error:")
        else:
            st.success(f"{len(points):,} points from {source}, standardised to mean 0 and unit spread "
                       f"(mean ({mean[0]:.6g}, {mean[1]:.6g}), scale {scale:.3g}).", icon=":material/check:")
elif data_name == DRAW:
    drawn = drawing.drawing_source(ui, seed)
    if drawn is not None:
        points, mean, scale, source = drawn.points, drawn.mean, drawn.scale, drawn.source
session_capacity_notice()  # dashboard.ui.models: the Model lists are full, and which model the next one replaces

ready = data_name not in DATA_LABELS or points is not None
active = background.current(live.JOB)
busy = active is not None and active.status in ACTIVE
go = st.button("Train", type="primary", icon=":material/play_arrow:", key="train.go", disabled=not ready or busy,
               help="queues a training job on the server (one per browser tab); it runs in a worker process while "
                    "you browse, and its model joins every Model list in this tab")


LOSS_COLORS = {"loss": "#c7d2fe", "moving average": "#4f46e5"}


def loss_chart(losses: list[float], height: int = 300):
    """Block means of the loss and a moving average (the curve to read)."""
    frame = plots.smoothed_frame(losses, span=100, names=("loss", "moving average"), y="loss")
    return plots.line_chart(frame, "step", "loss", "series", x_title="training step",
                            y_title="L_simple (log scale)", log_y=True, colors=LOSS_COLORS, height=height)


if go and ready and not busy:
    cfg = live.default_config(steps, budget, seed)
    mlp = {**DEFAULT_MLP, "width": width}
    if data_name in DATA_LABELS:  # the user's own points, uploaded or drawn
        data = points
        data_config = {"kind": "points", "source": source, "n": len(points), "mean": mean, "scale": scale,
                       "points": np.round(points, 5).tolist()}
    else:
        data, data_config = data_name, {"kind": "toy", "name": data_name, "source": "core.data.toy2d (generated)"}
    settings = dict(data=data_name, schedule=schedule_name, T=T, width=width, steps=steps, seed=seed, source=source)
    label = f"{RUN_LABELS.get(data_name) or toy_label(data_name)}, {schedule_name} T={T}"
    spec = live.job_spec(data, data_config, schedule, cfg, mlp, settings)
    if background.start(live.JOB, "train_2d", spec, label=label, expected_s=live.expected_seconds(steps)):
        st.rerun()  # redraw with the Train button disabled and the job's panel


def live_view(job) -> None:
    """The running job's loss so far and its latest snapshot (redrawn every second by the follow fragment)."""
    if job.status != RUNNING or not job.losses:
        return
    left, right = st.columns(2)
    left.altair_chart(loss_chart(job.losses), width="stretch", key="train.live_loss")
    if job.snapshots:
        snap = job.snapshots[-1]
        overlay = live.overlay_points(job.spec, live.SNAPSHOT_N)
        fig = plots.scatter_panels([plots.Panel(f"DDIM-20 samples at step {snap['step']:,}", snap["points"],
                                                overlay=overlay)], height=300)
        with right:
            plots.show(fig, key="train.live_snap")


background.follow(live.JOB, live_view, stop_label="Stop training")


# --- the last run -------------------------------------------------------------------------------------------------


run = last_trained_run()  # collected at the top of the page, before the Train button was drawn
notice = st.session_state.pop(live.NOTICE_KEY, None)
if notice is not None:
    (st.warning if notice[0] == "warning" else st.info)(notice[1], icon=":material/info:")
if run is None:
    st.caption("No model trained yet in this session. Press **Train**: the default recipe (cosine schedule, "
               f"T = 1000, an MLP of width {DEFAULT_MLP['width']}, {DEFAULT_2D_TRAIN.steps:,} steps) takes about "
               "20-30 s on a 2-core laptop CPU.")
else:
    st.subheader("Your model")
    status = f"**{run.label}**: {run.message} in {run.seconds:.1f} s."
    if run.stop_reason in ("steps", "callback", "time"):
        (st.success if run.stop_reason == "steps" else st.info)(status, icon=":material/check:")
    else:
        st.warning(status, icon=":material/warning:")
    now = dict(data=data_name, schedule=schedule_name, T=T, width=width, steps=steps, seed=seed)
    if {k: run.settings[k] for k in now} != now:
        st.caption("The controls above have changed since this model was trained; press **Train** to train with "
                   "them. This model stays available until then.")
    left, right = st.columns(2)
    with left:
        st.markdown("**Loss** (log scale): per step in light blue, its moving average in dark blue")
        st.altair_chart(loss_chart(run.losses), width="stretch", key="train.loss")
    samples = run.samples
    with right:
        st.markdown(f"**{N_SAMPLES:,} samples** (DDIM, 50 steps) over the training data (grey)")
        plots.show(plots.scatter_panels([plots.Panel("samples", samples, overlay=run.data_points)], height=360),
                   key="train.samples")
    shots = run.snapshots
    if len(shots) > 6:
        shots = [shots[i] for i in np.unique(np.round(np.linspace(0, len(shots) - 1, 6)).astype(int))]
    st.markdown("**As it learned**: DDIM-20 samples from the same noise at each snapshot")
    plots.show(plots.scatter_panels([plots.Panel(f"step {s.step:,}", s.points, overlay=run.data_points[:SNAPSHOT_N])
                                     for s in shots], height=260, marker_size=2.5), key="train.snapshots")
    if run.toy is not None and run.quality is not None:
        q = run.quality
        m = st.columns(4)
        m[0].metric("sliced Wasserstein to data", fmt_num(q["sliced_wasserstein"]),
                    help=f"between {q['n']:,} DDIM-50 samples and {q['n']:,} fresh data points")
        m[1].metric("data-vs-data floor", fmt_num(q["sliced_wasserstein_floor"]),
                    help="the same distance between two independent draws of the data: as low as it can get")
        m[2].metric("ratio to the floor", f"{q['sw_ratio']:.2f}",
                    help="1 is indistinguishable from data at this sample size; the shipped models score 1.1-1.6")
        if "modes" in q:
            m[3].metric("modes covered", f"{q['modes_covered']} of {q['modes']}",
                        delta=f"{100 * q['off_mode_fraction']:.1f}% of samples off every mode", delta_color="off",
                        delta_arrow="off")
        else:
            m[3].metric("sampling time", f"{q['sample_seconds']:.2f} s", help=f"{q['n']:,} samples, {q['sampler']}")
    else:
        st.caption("Quality metrics need fresh draws of the data, so they are shown for the toys only; compare "
                   "the samples with your points above.")

    stem = f"ddpm-{run.toy or 'points'}-{run.token.split(':')[-1]}"
    d = st.columns([2, 2, 2, 4], vertical_alignment="center")
    d[0].download_button("Weights (.safetensors)", run.files[0], file_name=f"{stem}.safetensors",
                         mime="application/octet-stream", icon=":material/download:", on_click="ignore",
                         key="train.dl_weights")
    d[1].download_button("Config (.json)", run.files[1], file_name=f"{stem}.json", mime="application/json",
                         icon=":material/download:", on_click="ignore", key="train.dl_config")
    sample_settings = {"model": stem, "sampler": "ddim", "steps": 50, "n": len(samples)}
    with d[2]:
        exports.download_button("Samples (.csv)", partial(exports.points_csv, samples, sample_settings),
                                exports.file_name("train", "samples", sample_settings, "csv"), key="train.dl_samples")
    d[3].caption(f"Keep both files side by side; `core.checkpoints.load_checkpoint('{stem}')` rebuilds the model, "
                 f"and `python -m core sample {stem} --n 1000` samples it.")
    pages = [p for p in sitemap.existing_pages() if p.file in ("score_field.py", "reverse.py", "samplers.py")]
    if pages:
        st.markdown("**Use it on another page** (it is preselected there; also in every *Model* list in this tab):")
        links = st.columns(len(pages))
        for col, p in zip(links, pages, strict=True):
            col.page_link(p.path, label=p.title, icon=p.icon, query_params={"model": run.token})
    others = [m.label for tok, m in session_models().items() if tok != run.token]
    if others:
        st.caption("Also trained in this session: " + "; ".join(others))

show_code(recipes.train_2d, evaluate_2d, label="Show the code: the training job and the quality check")
