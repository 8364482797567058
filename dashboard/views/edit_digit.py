"""Edit a digit: SDEdit (Meng et al. 2022) and RePaint inpainting (Lugmayr et al. 2022) with ddpm-mnist. Draw a
digit (or take a real test digit, or erase part of one), noise it to t0 and denoise it back: the input the model
receives, the edit along its steps, the edit at every t0 (faithfulness against realism, with the benchmark's
200-digit table), and a masked part filled in by plain replacement beside RePaint's resampling. The page never
trains."""

import hashlib

import numpy as np
import streamlit as st

from core.data.sketch import sketch_to_digit
from core.editing import inpaint, repaint_path, sdedit
from dashboard.ui import digits, plots
from dashboard.ui import edit_digit as ed
from dashboard.ui.header import page_header
from dashboard.ui.loaders import ResultsProblem, broken_model_notice, pretrained, pretrained_problem
from dashboard.ui.widgets import UrlWidgets

FILLED_KEY = "edit_digit.filled"  # session_state: the inpainting results asked for by "Fill in", newest last
KEEP_FILLED = 8

page_header(
    "Edit a digit",
    [r"x_{t_0}=\sqrt{\bar\alpha_{t_0}}\,x+\sqrt{1-\bar\alpha_{t_0}}\;\epsilon,\ \ \epsilon\sim\mathcal N(0,I),"
     r"\quad\text{then a sampler from } x_{t_0} \text{ to } x_0\qquad\text{(SDEdit; Meng et al. 2022)}",
     r"x_{t-1}=m\odot x^{\text{known}}_{t-1}+(1-m)\odot x^{\text{unknown}}_{t-1},\quad x^{\text{known}}_{t-1}\sim "
     r"q(x_{t-1}\mid x),\ \ x^{\text{unknown}}_{t-1}\sim p_\theta(x_{t-1}\mid x_t)\qquad\text{(RePaint, eq. 8)}"],
    "A trained diffusion model can edit as well as generate. **SDEdit** takes a rough input $x$ (a sketch, a "
    "damaged digit), adds noise up to step $t_0$ exactly as the forward process would, and lets the model denoise "
    "from there. The noise *forgets* detail: at $\\sqrt{\\bar\\alpha_{t_0}}$ near 1 (small $t_0$) the model only "
    "polishes the input, at $t_0=T$ nothing of it is left and the result is a fresh sample. In between lies the "
    "trade the paper names *faithfulness against realism*. **Inpainting** keeps a known part of the image and lets "
    "the model fill the rest: at every step the known region is replaced by the input noised to that step "
    "(RePaint), so the model sees a consistent picture around the hole; RePaint's *resampling* goes back up a few "
    "steps and down again, giving the filled part time to agree with the kept one. The model is `ddpm-mnist`, a "
    "class-conditional UNet; guiding towards a digit uses its classifier-free guidance.",
    "draw a rough, wobbly 7 and look at the strip over t0: at t0 = 100 the edit is your drawing, cleaned; at 250-400 "
    "it is a neat 7 in your pen's place; at 750 the classifier is sure of a digit but it may no longer be yours. "
    "Then set \"Guide towards\" to 1 at t0 = 500 and watch the 7 turn into a 1. In the inpainting, mask the lower "
    "half of a 4 or a 9: plain replacement often draws a bottom that does not meet the top; RePaint joins them.",
    code=[sdedit, inpaint, repaint_path, sketch_to_digit],
)

ui = UrlWidgets("edit_digit")
model_problem, judge_problem = pretrained_problem(ed.MODEL), pretrained_problem(digits.CLASSIFIER)
judged = judge_problem is None
if judge_problem:
    broken_model_notice(digits.CLASSIFIER, judge_problem, "The edits are shown without the classifier's reading.")
T = pretrained(ed.MODEL).schedule.T if model_problem is None else 1000


def choose_input() -> np.ndarray | None:
    """The input widgets and the canvas; the (28, 28) input in [-1, 1], or None while there is none (an info says
    what to do). Captions go above the canvas: its toolbar shows over what is just above it."""
    c = st.columns([3, 2])
    with c[0]:
        source = ui.selectbox("Input", "source", ed.SOURCES, "draw", format_func=ed.SOURCE_LABELS.get)
    if source == "draw":
        st.caption("Draw with the mouse, white on black; the canvas's toolbar (on hover) undoes a stroke or clears "
                   "the canvas (the bin).")
        drawn = ed.canvas("freedraw", "edit_digit.canvas")
        if drawn is not None:
            try:
                return sketch_to_digit(drawn)[0].numpy()
            except ValueError:
                pass  # an empty canvas: everything cleared
        st.info("**Draw a digit** on the black canvas above (the edit appears when you let go of the mouse), or "
                "choose a real test digit as the input.", icon=":material/draw:")
        return None
    with c[1]:
        index = ui.number("Test digit #", "index", 0, len(digits.test_digits()) - 1, 0,
                          help="Which of the MNIST test digits (the model never saw them in training).")
    x, label = ed.test_digit(index)
    if source == "erase":
        st.caption(f"Test digit #{index}, a {label}: drag rectangles over it to erase those parts (to black).")
        erased = ed.erase_mask(ed.canvas("rect", f"edit_digit.erase_{index}", ed.enlarged(x)))
        x = np.where(erased, -1.0, x).astype(np.float32)
        if erased.any():
            st.caption(f"{int(erased.sum())} of 784 pixels erased.")
    else:
        st.caption(f"Test digit #{index}, a {label}.")
    return x


left, right = st.columns([1, 2], gap="large")
with left:
    x = choose_input()
with right:
    c = st.columns(4)
    with c[0]:
        t0 = ui.slider("t0: how much is forgotten", "t0", 0, T, T // 4, step=10,
                       help="The paper step the input is noised to before the model denoises it. 0 returns the "
                            "input; T starts from (almost) pure noise, forgetting it entirely.")
    with c[1]:
        guide = ui.selectbox("Guide towards", "guide", ed.GUIDES, "none", format_func=ed.guide_label,
                             help="Classifier-free guidance towards a digit (none: the unconditional model).")
    with c[2]:
        w = ui.slider("Guidance scale w", "w", 0.0, 8.0, 3.0, step=0.5, disabled=guide == "none",
                      help="0: unconditional; 1: the conditional model p(x | y); above 1: guided beyond it.")
    with c[3]:
        seed = ui.number("Seed", "seed", 0, 9999, 0, help="The noise added at t0 (and RePaint's noise).")
    full_steps = ui.slider("DDIM steps of a full run (t0 = T)", "steps", 10, 200, 50, step=10,
                           help="An edit from t0 runs this many × t0 / T steps (at least 1): the step size of a "
                                "full run, whatever t0.")
    edit_area = st.container()

if model_problem:
    broken_model_notice(ed.MODEL, model_problem, "The edits need it; the benchmark's table below does not.")


def show_edit(x: np.ndarray) -> None:
    """The input the model receives beside the edit, large, with the classifier's readings; the edit along its
    steps."""
    with st.spinner("Editing..."):
        run = ed.edit(x, int(t0), guide, float(w), int(seed), int(full_steps), judged)
    with edit_area:
        captions = [ed.reading_text(run["input_pred"], run["input_conf"]), ed.reading_text(run["pred"], run["conf"])]
        plots.show(plots.image_grid(np.stack([plots.to_uint8(x), plots.to_uint8(run["edit"])]), 2,
                                    captions if judged else None,
                                    col_titles=["the input x (28 × 28)", f"the edit from t0 = {t0}"], width_px=560),
                   key="edit_digit_pair")
        m = st.columns(3)
        if run["pred"] is not None:
            m[0].metric("The classifier reads", run["pred"], f"{run['conf']:.0%} sure", delta_color="off",
                        delta_arrow="off", help="The project's classifier (classifier-mnist) on the edit, and its "
                                                "probability for that digit (realism).")
        m[1].metric("L2 to the input", f"{np.linalg.norm(run['edit'] - x):.2f}",
                    help="‖edit − x‖ over the 784 pixels in [−1, 1]: 0 is the input itself (faithfulness).")
        m[2].metric("DDIM steps", run["steps"], f"{run['seconds'] * 1000:.0f} ms", delta_color="off",
                    delta_arrow="off", help="Steps of this edit (guided: two network passes each) and the sdedit() "
                                            "call's wall time when it ran (cached afterwards).")

    st.subheader("The edit along the steps")
    k = len(run["frame_t"])
    titles = [f"t = {t}" for t in run["frame_t"]]
    titles[-1] = "t = 0: the edit" if run["steps"] else "t0 = 0: x itself"
    plots.show(plots.image_grid(np.concatenate([run["frames_x"], run["frames_x0"]]), k, col_titles=titles,
                                row_titles=["x_t", "x̂₀(x_t)"], rows=2, width_px=130 * k + 100),
               key="edit_digit_steps")
    st.caption(f"{k} of the {run['steps'] + 1} states of the run: top, the state x_t (clipped to [−1, 1] for "
               "display); bottom, the model's guess of the finished digit from it. The first column is the input "
               "noised to t0: what the model starts from. DDIM is deterministic, so the seed only sets that noise.")


def show_strip(x: np.ndarray, bench: tuple | None) -> None:
    """The edit from every t0 of the strip, its distance to the input and the classifier's confidence; the
    benchmark's table over t0 below it."""
    st.subheader("Faithfulness against realism")
    st.markdown("The same input and noise, edited from each $t_0$. Faithfulness: the L2 distance of the edit to "
                "the input (lower is closer); realism: how sure the classifier is of the digit it reads. Small "
                "$t_0$ keeps the input, flaws included; large $t_0$ gives a digit the classifier is sure of, but "
                "not necessarily the one drawn (Meng et al. 2022, fig. 3).")
    with st.spinner(f"Editing from {len(ed.T0_STRIP)} values of t0..."):
        sw = ed.t0_strip(x, guide, float(w), int(seed), int(full_steps), judged)
    reads = ed.readings(sw["pred"], sw["conf"], len(sw["t0"]))
    caps = [f"L2 {d:.1f}" + (f"<br>{r}" if r else "") for d, r in zip(sw["l2"], reads, strict=True)]
    cols = st.columns([3, 2], gap="medium")
    with cols[0]:
        plots.show(plots.image_grid(sw["images"], len(sw["t0"]), caps, col_titles=[f"t0 = {t}" for t in sw["t0"]],
                                    width_px=760), key="edit_digit_strip")
    with cols[1]:
        st.altair_chart(ed.tradeoff_chart(sw["t0"], sw["l2"], sw["conf"], int(t0)), width="stretch")
    st.caption("Under each edit: its L2 distance to the input, then the classifier's reading and confidence. "
               f"DDIM, {full_steps} × t0 / T steps, seed {seed}, "
               + ("unguided" if guide == "none" else f"guided towards {guide} (w = {w:g})")
               + f"; {sw['seconds']:.1f} s for the strip when it ran (cached afterwards). Dashed rule: the t0 above.")
    show_benchmark(bench)


def show_benchmark(bench: tuple | None) -> None:
    """The benchmark's SDEdit table with a one-line summary (nothing without the file: the page says how to make
    it)."""
    if bench is None:
        return
    sd, _, settings = bench
    st.markdown(f"**Measured on {settings['n'] or '?'} rough digits** (`benchmarks/editing.py`, unguided DDIM):")
    table = sd.assign(input=sd["input"].map(ed.ROUGH_LABELS))
    st.dataframe(table, hide_index=True, width="stretch", height=min(38 + 35 * len(table), 420),
                 column_config={"input": "rough input", "t0": st.column_config.NumberColumn("t0", format="%d"),
                                "accuracy": st.column_config.NumberColumn("read correctly", format="%.3f"),
                                "confidence": st.column_config.NumberColumn(format="%.3f"),
                                "l2_to_input": st.column_config.NumberColumn("L2 to input", format="%.2f"),
                                "l2_to_clean": st.column_config.NumberColumn("L2 to clean", format="%.2f")})
    st.markdown(ed.bench_summary(sd))
    st.caption("Held-out test digits made rough three ways (speckle: Gaussian noise of std 0.6; blocky: 4× "
               "average-pooled; thick: strokes dilated 3 × 3), edited from each t0. Read correctly: the share the "
               "classifier reads as the true digit; confidence: its mean top probability; L2 to clean: the distance "
               "to the digit before it was made rough. t0 = 0 is the rough input itself."
               + (f" {settings['hardware']}." if settings["hardware"] else "")
               + f" Written by `{ed.BENCH_COMMAND}`.")


def show_inpainting(x: np.ndarray, bench: tuple | None) -> None:
    """A masked part of x filled in N_FILL times, plain replacement beside RePaint's resampling (behind a button: a
    few seconds), and the benchmark's inpainting rows."""
    st.subheader("Inpainting: fill in a masked part")
    st.markdown("The known part is kept exactly; DDPM fills in the rest (grey), the known region replaced at every "
                "step by the input noised to that step. Top row: that plain replacement; bottom row: RePaint, which "
                f"after every {ed.JUMP} steps jumps back up by the forward process and comes down again, until each "
                "stretch has run $r$ times, so the fill can come to agree with the known part. The same starting "
                "noise in both rows.")
    c = st.columns([2, 2, 3], vertical_alignment="bottom")
    with c[0]:
        mask = ui.selectbox("Mask", "mask", ed.MASKS, "lower", format_func=ed.MASK_LABELS.get)
    with c[1]:
        r = ui.slider("RePaint resamplings r", "r", 2, 6, 3,
                      help=f"How often each stretch of {ed.JUMP} steps is run (r = 1 would be plain replacement).")
    moves, nfe = ed.repaint_cost(ed.INPAINT_STEPS, ed.JUMP, r)
    key = (hashlib.md5(x.tobytes()).hexdigest(), mask, guide, float(w), int(seed), int(r), ed.INPAINT_STEPS)
    store: dict = st.session_state.setdefault(FILLED_KEY, {})
    with c[2]:
        clicked = st.button("Fill in", type="primary", icon=":material/format_paint:", key="edit_digit.fill",
                            disabled=key in store)
    st.caption(f"{ed.N_FILL} fills (seed {seed}), DDPM on {ed.INPAINT_STEPS} steps: {ed.INPAINT_STEPS} network passes "
               f"per digit plain, {nfe} with r = {r} ({moves} moves, up and down)"
               + ("" if guide == "none" else ", each pass guided (twice the cost)")
               + "; a few seconds on a 2-core CPU.")
    if clicked and key not in store:
        with st.spinner(f"Filling in {ed.N_FILL} × 2 digits..."):
            store[key] = ed.fill(x, mask, guide, float(w), int(seed), int(r), judged)
        while len(store) > KEEP_FILLED:
            store.pop(next(iter(store)))
        st.rerun()  # draw the page again with the fills and the button marked as done
    known = ed.known_mask(mask)
    shown = np.where(known > 0, x, 0.0)  # the part to fill in as mid-grey
    if key not in store:
        plots.show(plots.image_grid(np.stack([plots.to_uint8(x), plots.to_uint8(shown)]), 2,
                                    col_titles=["the input", "the known part"], width_px=300), key="edit_digit_mask")
        st.caption("Press **Fill in** to run both kinds of inpainting on this input and mask.")
    else:
        res = store[key]
        images = np.concatenate([[shown], res["plain"]["images"], [shown], res["repaint"]["images"]])
        caps = [c for kind in ("plain", "repaint")
                for c in ["known part", *ed.readings(res[kind]["pred"], res[kind]["conf"], ed.N_FILL)]]
        plots.show(plots.image_grid(images, ed.N_FILL + 1, caps, rows=2,
                                    col_titles=["", *(f"fill {i + 1}" for i in range(ed.N_FILL))],
                                    row_titles=["plain (r = 1)", f"RePaint (r = {r})"], width_px=820),
                   key="edit_digit_fill")
        change = max(res[k]["known_change"] for k in ("plain", "repaint"))
        st.caption(("The known region is kept exactly in every fill (largest change of a known pixel: 0). "
                    if change == 0 else f"A known pixel changed (largest change: {change:.3g}). ")
                   + f"{ed.MASK_LABELS[mask].capitalize()} masked"
                   + ("" if guide == "none" else f", guided towards {guide} (w = {w:g})")
                   + f"; plain {res['plain']['seconds']:.1f} s, RePaint {res['repaint']['seconds']:.1f} s for "
                     f"{ed.N_FILL} digits when it ran.")
    if bench is not None and len(bench[1]):
        _, fills, settings = bench
        masked = settings.get("masked_input_accuracy")
        st.dataframe(fills, hide_index=True, width="stretch",
                     column_config={"jump_length": "jump length",
                                    "accuracy": st.column_config.NumberColumn("read correctly", format="%.3f"),
                                    "known_kept_exactly": "known half kept exactly",
                                    "seconds": st.column_config.NumberColumn(format="%.0f")})
        st.caption(f"The benchmark: the lower half of {settings['n'] or '?'} test digits filled in, unguided"
                   + (f"; the half digit alone is read correctly {masked:.1%} of the time"
                      if isinstance(masked, (int, float)) else "") + ".")


try:
    benchmark = ed.bench_results()
except ResultsProblem as err:
    benchmark = None
    bench_problem = str(err)
else:
    bench_problem = None
if x is not None and model_problem is None:
    show_edit(x)
    show_strip(x, benchmark)
    if bench_problem:
        st.info(f"No benchmark table: {bench_problem}", icon=":material/description:")
    show_inpainting(x, benchmark)
else:
    st.subheader("The benchmark: rough digits edited from each t0")
    if bench_problem:
        st.info(f"No benchmark table: {bench_problem}", icon=":material/description:")
    show_benchmark(benchmark)
