"""Helpers of the Edit a digit page (dashboard/views/edit_digit.py): SDEdit (Meng et al. 2022) and RePaint inpainting
(Lugmayr et al. 2022) with ddpm-mnist on a drawn or real digit. The canvas, the input the model receives, the edit
along its steps, the edit at every t0 (faithfulness against realism), the inpainting fills, the classifier's reading
of each, and the benchmark's file (benchmarks/editing.py) read and checked. Cached on hashable arguments (the input
as a small array, never a model object); nothing here trains.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st
import torch
from PIL import Image

from core.editing import inpaint, repaint_path, sdedit, sdedit_steps
from dashboard.ui import plots
from dashboard.ui.digits import reading, test_digits
from dashboard.ui.loaders import ROOT, ResultsProblem, finite_number, pretrained, results_json

MODEL = "ddpm-mnist"
SOURCES: tuple[str, ...] = ("draw", "test", "erase")
SOURCE_LABELS = {"draw": "draw a digit", "test": "a real test digit", "erase": "erase part of one"}
GUIDES: tuple[str, ...] = ("none", *(str(d) for d in range(10)))
CANVAS_PX = 280  # ten canvas pixels per MNIST pixel
STROKE_PX = 20  # about two MNIST pixels once the drawing is scaled into its 20 x 20 box, as MNIST's strokes
N_FRAMES = 8  # states of the edit shown along its steps
T0_STRIP: tuple[int, ...] = (0, 100, 250, 400, 500, 750, 1000)  # the faithfulness-realism strip (read at call time)
MASKS: tuple[str, ...] = ("lower", "upper", "left", "right", "centre")
MASK_LABELS = {"lower": "lower half", "upper": "upper half", "left": "left half", "right": "right half",
               "centre": "centre box (14 × 14)"}
N_FILL = 4  # fills per inpainting row (one batch: four noises from the page's seed)
INPAINT_STEPS = 25  # DDPM steps of the leading grid (read at call time: tests lower it)
JUMP = 5  # RePaint's jump length, in those steps
BENCH_JSON = ROOT / "benchmarks" / "results" / "editing.json"  # read at call time: tests point it away
BENCH_COMMAND = "python benchmarks/editing.py --json benchmarks/results/editing.json"
ROUGH_LABELS = {"speckle": "speckled", "blocky": "blocky", "thick": "thick strokes"}
COLORS = {"L2 to the input": "#4f46e5", "classifier confidence": "#d97706"}


# --- the input ------------------------------------------------------------------------------------------------


def canvas(mode: str, key: str, background: Image.Image | None = None) -> np.ndarray | None:
    """The drawing canvas (streamlit-drawable-canvas): white freehand strokes on black (``mode`` "freedraw"), or
    black rectangles over a background image ("rect"). The RGBA image (H, W, 4) uint8 of what was drawn (without
    the background image), or None before the canvas has sent anything (and outside a browser)."""
    # Imported here: the package registers its component at import, which needs a running Streamlit (a server or
    # AppTest), so this module stays importable from plain tests.
    from streamlit_drawable_canvas import st_canvas

    result = st_canvas(stroke_width=STROKE_PX if mode == "freedraw" else 1, stroke_color="#ffffff" if mode ==
                       "freedraw" else "#000000", fill_color="#000000", background_color="#000000",
                       background_image=background, height=CANVAS_PX, width=CANVAS_PX, drawing_mode=mode,
                       return_image_data=True, key=key)
    return result.image_data


def test_digit(index: int) -> tuple[np.ndarray, int]:
    """Test digit ``index`` (28, 28) float32 in [-1, 1] and its label."""
    data = test_digits()
    return data.images[index, 0].numpy(), int(data.labels[index])


def enlarged(x: np.ndarray) -> Image.Image:
    """A digit (28, 28) in [-1, 1] as a CANVAS_PX square greyscale image, pixels as blocks (the canvas's
    background)."""
    return Image.fromarray(plots.to_uint8(x)).resize((CANVAS_PX, CANVAS_PX), Image.Resampling.NEAREST)


def erase_mask(drawn: np.ndarray | None) -> np.ndarray:
    """Where rectangles were drawn over the digit: (28, 28) bool, a pixel erased when at least half its area is
    covered (from the drawing's alpha, any canvas size)."""
    if drawn is None:
        return np.zeros((28, 28), dtype=bool)
    alpha = Image.fromarray(np.ascontiguousarray(np.asarray(drawn)[..., 3]))
    return np.asarray(alpha.resize((28, 28), Image.Resampling.BOX), dtype=np.float32) >= 127.5


def known_mask(name: str) -> np.ndarray:
    """The inpainting mask (28, 28) float32: 1 = known (kept), 0 = to fill in."""
    m = np.ones((28, 28), dtype=np.float32)
    region = {"lower": np.s_[14:, :], "upper": np.s_[:14, :], "left": np.s_[:, :14], "right": np.s_[:, 14:],
              "centre": np.s_[7:21, 7:21]}
    if name not in region:
        raise ValueError(f"unknown mask {name!r}; expected one of: {', '.join(MASKS)}")
    m[region[name]] = 0.0
    return m


# --- the model and its judge ------------------------------------------------------------------------------------


def reading_text(pred: int | None, conf: float | None) -> str:
    """A caption "reads 7 (98%)"; empty without the classifier's reading."""
    return "" if pred is None or conf is None else f"reads {pred} ({conf:.0%})"


def readings(pred: np.ndarray | None, conf: np.ndarray | None, n: int) -> list[str]:
    """``reading_text`` for each of n images (all empty without the classifier)."""
    if pred is None or conf is None:
        return [""] * n
    return [reading_text(int(p), float(c)) for p, c in zip(pred, conf, strict=True)]


def repaint_cost(steps: int, jump_length: int, resamplings: int) -> tuple[int, int]:
    """(moves, network passes per image) of RePaint on ``steps`` steps: every move down is one pass, a move up
    none (core.editing.repaint_path)."""
    path = repaint_path(steps, jump_length, resamplings)
    return len(path) - 1, sum(b > a for a, b in zip(path[:-1], path[1:], strict=True))


def guide_label(guide: str) -> str:
    return "none (unguided)" if guide == "none" else f"towards {guide}"


def _guidance(guide: str, w: float) -> dict[str, Any]:
    """The keyword arguments of classifier-free guidance towards a digit (none: the unconditional model)."""
    return {} if guide == "none" else {"y": int(guide), "guidance_scale": float(w)}


def _sdedit(x: np.ndarray, t0: int, guide: str, w: float, seed: int, full_steps: int, keep: bool):
    p = pretrained(MODEL)
    xt = torch.from_numpy(x).reshape(1, 1, 28, 28)
    steps = sdedit_steps(t0, full_steps, p.schedule.T) or None
    return sdedit(p.model, p.schedule, xt, t0, steps=steps, generator=torch.Generator().manual_seed(seed),
                  keep_trajectory=keep, **_guidance(guide, w))


@st.cache_data(max_entries=64, show_spinner=False)
def edit(x: np.ndarray, t0: int, guide: str, w: float, seed: int, full_steps: int, judged: bool = True) -> dict:
    """SDEdit of one digit x (28, 28) from paper step t0 with DDIM: the edit (28, 28) in [-1, 1] (clipped), the
    classifier's reading of it and of x, and N_FRAMES states x_t and predictions x0_hat(x_t) along the run."""
    t1 = time.perf_counter()
    traj = _sdedit(x, int(t0), guide, float(w), int(seed), int(full_steps), True)
    seconds = time.perf_counter() - t1
    final = traj.xs[-1].clamp(-1, 1)
    k = len(traj.timesteps)
    idx = traj.frame_indices(N_FRAMES)
    x0s = torch.cat([traj.x0_preds[:k], final.unsqueeze(0)])  # the edit is its own prediction
    pred, conf = reading(torch.cat([final, torch.from_numpy(x).reshape(1, 1, 28, 28)]), judged)
    return {"edit": final[0, 0].numpy(), "pred": None if pred is None else int(pred[0]),
            "conf": None if conf is None else float(conf[0]), "input_pred": None if pred is None else int(pred[1]),
            "input_conf": None if conf is None else float(conf[1]), "seconds": seconds, "nfe": int(traj.nfe),
            "steps": k, "frame_t": traj.state_timesteps()[idx].astype(int),
            "frames_x": plots.to_uint8(traj.xs[idx, 0].numpy()), "frames_x0": plots.to_uint8(x0s[idx, 0].numpy())}


@st.cache_data(max_entries=32, show_spinner=False)
def t0_strip(x: np.ndarray, guide: str, w: float, seed: int, full_steps: int, judged: bool = True) -> dict:
    """The edit of x from every t0 of T0_STRIP (the same seed, so the same noise at every t0): images (K, 28, 28),
    the L2 distance of each to x (faithfulness) and the classifier's reading and confidence (realism)."""
    t1 = time.perf_counter()
    t0s = tuple(T0_STRIP)
    edits = torch.cat([_sdedit(x, t0, guide, float(w), int(seed), int(full_steps), False).xs[-1].clamp(-1, 1)
                       for t0 in t0s])
    seconds = time.perf_counter() - t1
    pred, conf = reading(edits, judged)
    l2 = (edits - torch.from_numpy(x).reshape(1, 1, 28, 28)).flatten(1).norm(dim=1).numpy()
    return {"t0": np.array(t0s), "images": plots.to_uint8(edits.numpy()), "l2": l2, "pred": pred, "conf": conf,
            "seconds": seconds}


@st.cache_data(max_entries=16, show_spinner=False)
def fill(x: np.ndarray, mask: str, guide: str, w: float, seed: int, resamplings: int, judged: bool = True) -> dict:
    """Inpainting of x (28, 28) where ``known_mask(mask)`` is 0, N_FILL seeds, by DDPM on INPAINT_STEPS steps: plain
    replacement of the known region (r = 1) and RePaint's resampling (``resamplings``, jump JUMP), from the same
    starting noise. Fills (N_FILL, 28, 28) in [-1, 1] per kind, their readings, seconds and the largest change of a
    known pixel (0: kept exactly)."""
    p = pretrained(MODEL)
    xt = torch.from_numpy(x).reshape(1, 1, 28, 28).repeat(N_FILL, 1, 1, 1)
    m = torch.from_numpy(known_mask(mask))
    x_T = torch.randn(xt.shape, generator=torch.Generator().manual_seed(seed))
    out: dict[str, Any] = {}
    for kind, r in (("plain", 1), ("repaint", int(resamplings))):
        t1 = time.perf_counter()
        filled = inpaint(p.model, p.schedule, xt, m, steps=INPAINT_STEPS, jump_length=JUMP, resamplings=r,
                         generator=torch.Generator().manual_seed(seed + 1), x_T=x_T, **_guidance(guide, w))
        seconds = time.perf_counter() - t1
        pred, conf = reading(filled.clamp(-1, 1), judged)
        known = m.bool().expand_as(filled)
        out[kind] = {"images": filled.clamp(-1, 1)[:, 0].numpy(), "pred": pred, "conf": conf, "seconds": seconds,
                     "known_change": float((filled - xt)[known].abs().max())}
    return out


# --- charts ---------------------------------------------------------------------------------------------------------


def tradeoff_chart(t0s: np.ndarray, l2: np.ndarray, conf: np.ndarray | None, t0: int, height: int = 260) -> alt.Chart:
    """L2 distance to the input (faithfulness, left axis) and the classifier's confidence (realism, right axis,
    0..1) against t0, a dashed rule at the page's t0."""
    base = alt.Chart(pd.DataFrame({"t0": t0s, "L2 to the input": l2,
                                   "classifier confidence": conf if conf is not None else np.nan}), height=height)
    x = alt.X("t0:Q", title="t0 (paper steps)")
    layers = [base.mark_line(point=True, strokeWidth=2, color=COLORS["L2 to the input"]).encode(
        x=x, y=alt.Y("L2 to the input:Q", title="L2 to the input (faithfulness)",
                     axis=alt.Axis(titleColor=COLORS["L2 to the input"])),
        tooltip=["t0:Q", alt.Tooltip("L2 to the input:Q", format=".2f")])]
    if conf is not None:
        layers.append(base.mark_line(point=True, strokeWidth=2, strokeDash=[5, 3],
                                     color=COLORS["classifier confidence"]).encode(
            x=x, y=alt.Y("classifier confidence:Q", scale=alt.Scale(domain=[0, 1]),
                         title="confidence (realism)",
                         axis=alt.Axis(titleColor=COLORS["classifier confidence"])),
            tooltip=["t0:Q", alt.Tooltip("classifier confidence:Q", format=".3f")]))
    rule = alt.Chart(pd.DataFrame({"t0": [t0]})).mark_rule(strokeDash=[4, 3], color="#111827").encode(x="t0:Q")
    chart = alt.layer(*layers)
    if conf is not None:
        chart = chart.resolve_scale(y="independent")
    return alt.layer(chart, rule)


# --- the benchmark's file (benchmarks/editing.py) -------------------------------------------------------------------


def bench_results(path: Path | None = None) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """The benchmark's SDEdit rows (input, t0, accuracy, confidence, l2_to_input, l2_to_clean), its inpainting
    rows (steps, jump_length, resamplings, accuracy, known_kept_exactly, seconds; possibly none) and its settings
    (n, hardware, masked_input_accuracy). Raises ResultsProblem naming the file and the command that writes it."""
    path = BENCH_JSON if path is None else path
    raw, fix = results_json(path, BENCH_COMMAND, "about half an hour on a 2-core CPU")
    rows, fills = raw.get("sdedit"), raw.get("inpainting") or []
    if not isinstance(rows, list) or not rows or not isinstance(fills, list):
        raise ResultsProblem(f"**{path.name}** has no SDEdit rows: {fix} again.")
    try:
        if any(r["input"] not in ROUGH_LABELS for r in rows):
            raise ResultsProblem(f"input: expected one of {', '.join(ROUGH_LABELS)}")
        sd = pd.DataFrame({"input": [r["input"] for r in rows], "t0": [int(finite_number(r["t0"], "t0")) for r in rows],
                           **{k: [finite_number(r[k], k) for r in rows]
                              for k in ("accuracy", "confidence", "l2_to_input", "l2_to_clean")}})
        fl = pd.DataFrame({**{k: [int(finite_number(r[k], k)) for r in fills] for k in ("steps", "jump_length",
                                                                                   "resamplings")},
                           "accuracy": [finite_number(r["accuracy"], "accuracy") for r in fills],
                           "known_kept_exactly": [bool(r["known_kept_exactly"]) for r in fills],
                           "seconds": [finite_number(r["seconds"], "seconds") for r in fills]})
    except (KeyError, TypeError, ResultsProblem) as err:
        raise ResultsProblem(f"**{path.name}** is damaged ({err}): {fix} again.") from None
    settings = {k: raw.get(k) for k in ("n", "hardware", "masked_input_accuracy")}
    return sd, fl, settings


def bench_summary(sd: pd.DataFrame) -> str:
    """One sentence from the SDEdit rows: per rough input, the share read correctly as it is (t0 = 0, where the
    file has it) and after the best t0."""
    parts = []
    for how in ROUGH_LABELS:
        rows = sd[sd["input"] == how]
        if rows.empty:
            continue
        best = rows.loc[rows["accuracy"].idxmax()]
        start = rows[rows["t0"] == 0]["accuracy"]
        parts.append(f"{ROUGH_LABELS[how]} " + (f"{start.iloc[0]:.0%} → " if len(start) else "")
                     + f"{best['accuracy']:.0%} at t0 = {int(best['t0'])}")
    return ("Read correctly as they are (t0 = 0) and after the best edit: " + "; ".join(parts) + ". From t0 = T "
            "nothing of the input is left: the classifier is as sure as ever, of a digit that is mostly not the "
            "input's.")
