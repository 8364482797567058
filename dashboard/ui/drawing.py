"""The Train page's drawing source: a canvas (streamlit-drawable-canvas) over light axes in data units, whose strokes
and clicks become a point cloud (core.data.drawing), validated and standardised like an uploaded CSV
(core.data.toy2d.load_points, standardise).

``drawing_source(ui, seed)`` shows the pen controls, the canvas and a preview, and returns the points to train on.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import streamlit as st
from PIL import Image, ImageDraw, ImageFont

from core.data.drawing import (
    clip_strokes,
    fabric_dots,
    points_along_strokes,
    strokes_from_fabric,
    to_data_units,
    to_pixels,
)
from core.data.toy2d import MIN_POINTS, PointCloudError, load_points, standardise
from dashboard.ui import plots
from dashboard.ui.widgets import UrlWidgets

CANVAS_PX = 400  # a square canvas of CANVAS_PX x CANVAS_PX pixels...
LIM = plots.LIM  # ...showing [-LIM, LIM]^2 in data units: the range of the page's sample plots
AXES = ((-LIM, LIM), (-LIM, LIM))
INK = plots.POINT_COLOR
STROKE_PX, DOT_PX = 3, 3  # the pen's width; the radius of a click's dot
TOOLS = {"freedraw": "strokes (points spread along them)", "point": "clicks (one point each)"}
URL_PARAM = "drawing"  # ?drawing=x,y;x,y;...: the drawing's points before jitter, in data units
URL_MAX_POINTS = 200  # a larger drawing is kept in the session only (a link of 200 points is about 3 KB)
URL_DECIMALS = 2
KEPT_KEY = "train.drawing_kept"  # st.session_state: the canvas's Fabric.js JSON, kept across page visits
INITIAL_KEY = "train.drawing_initial"  # the initial_drawing of the canvas on screen: constant while it is mounted
GEN_KEY = "train.drawing_gen"  # "Start over" counts up: a new canvas key is an empty canvas
GRID, AXIS, LABEL = "#e5e7eb", "#9ca3af", "#6b7280"


@dataclass
class Drawing:
    """What the Train page trains on when the data is drawn: the standardised points, as from a CSV."""

    points: np.ndarray  # (n, 2) float32, mean 0 and unit spread (core.data.toy2d.standardise)
    mean: list[float]  # of the drawn points in data units
    scale: float
    source: str  # for the run's label and the checkpoint's data provenance


@st.cache_data(max_entries=4, show_spinner=False)
def axes_png(size: int, lim: float) -> bytes:
    """The canvas's background: light grid lines every data unit, the axes through 0 and their tick labels, placed
    with core.data.drawing.to_pixels (the map the drawing is read back with)."""
    img = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=11)
    ticks = np.arange(-math.floor(lim), math.floor(lim) + 1, dtype=np.float64)
    px = to_pixels(np.stack([ticks, ticks], axis=1), (size, size), (-lim, lim), (-lim, lim))
    zero_x, zero_y = to_pixels(np.zeros((1, 2)), (size, size), (-lim, lim), (-lim, lim))[0]
    for v, (x, y) in zip(ticks, px, strict=True):
        color = AXIS if v == 0 else GRID
        draw.line([(x, 0), (x, size)], fill=color)
        draw.line([(0, y), (size, y)], fill=color)
        if v != 0 and abs(v) < lim:
            draw.text((x + 2, zero_y + 2), f"{v:g}", fill=LABEL, font=font)
            draw.text((zero_x + 3, y - 13), f"{v:g}", fill=LABEL, font=font)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def draw_canvas(tool: str, key: str, initial: dict[str, Any] | None) -> dict[str, Any] | None:
    """The canvas (streamlit-drawable-canvas's st_canvas) over the axes: what is drawn on it, as Fabric.js JSON.

    Its toolbar (undo, redo, edit, reset) is part of the component. AppTest cannot draw on a component: the page
    tests replace this function with one that returns a recorded drawing."""
    from streamlit_drawable_canvas import st_canvas  # it registers its component at import: needs a running app

    return st_canvas(fill_color=INK, stroke_width=STROKE_PX, stroke_color=INK,
                     background_image=axes_png(CANVAS_PX, LIM), height=CANVAS_PX, width=CANVAS_PX,
                     drawing_mode=tool, initial_drawing=initial, point_display_radius=DOT_PX, key=key).json_data


def url_text(points: np.ndarray) -> str:
    """The ?drawing= value of (n, 2) points: "x,y;x,y;..." rounded to URL_DECIMALS."""
    return ";".join(f"{x:.{URL_DECIMALS}f},{y:.{URL_DECIMALS}f}" for x, y in np.round(points, URL_DECIMALS) + 0.0)


def url_points(text: str) -> np.ndarray:
    """The points (n, 2) of a ?drawing= value; raises ValueError saying what is wrong with it."""
    pairs = text.split(";")
    if len(pairs) > URL_MAX_POINTS:
        raise ValueError(f"it has {len(pairs):,} points; a link holds at most {URL_MAX_POINTS}")
    try:
        points = np.array([[float(v) for v in pair.split(",")] for pair in pairs])
    except ValueError:
        raise ValueError("expected x,y pairs of numbers separated by ';'") from None
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError("expected x,y pairs of numbers separated by ';'")
    if not np.isfinite(points).all():
        raise ValueError("expected x,y pairs of finite numbers")
    if (np.abs(points) > LIM).any():
        raise ValueError(f"a point lies outside the axes [-{LIM:g}, {LIM:g}]")
    return points


def _initial_drawing() -> dict[str, Any] | None:
    """What a newly mounted canvas starts with: the drawing kept in this session (strokes and all), else the
    link's points as dots (as the click tool draws them), else nothing."""
    kept = st.session_state.get(KEPT_KEY)
    if kept is not None:
        return kept
    raw = st.query_params.get(URL_PARAM)
    if not raw:
        return None
    try:
        points = url_points(raw)
    except ValueError as err:
        st.warning(f"The drawing in the link is ignored: {err}.", icon=":material/link_off:")
        return None
    return fabric_dots(to_pixels(points, (CANVAS_PX, CANVAS_PX), *AXES), DOT_PX, STROKE_PX, INK)


def csv_bytes(points: np.ndarray) -> bytes:
    """The drawn points as a CSV that core.data.toy2d.load_points reads back (a header row, one x,y per line)."""
    buf = io.StringIO()
    np.savetxt(buf, points, fmt="%.6f", delimiter=",", header="x,y", comments="")
    return buf.getvalue().encode("utf-8")


def _keep_in_url(base: np.ndarray | None) -> str:
    """Write the drawing into the link when it is small enough, else take it out; say where it is kept."""
    if base is not None and 0 < len(base) <= URL_MAX_POINTS:
        text = url_text(base)
        if st.query_params.get(URL_PARAM) != text:
            st.query_params[URL_PARAM] = text
        return (f"The drawing ({len(base)} points, {URL_DECIMALS} decimals, before jitter) is kept in this page's "
                "link: copy the link to share it (it opens as dots).")
    if URL_PARAM in st.query_params:
        del st.query_params[URL_PARAM]
    if base is None or not len(base):
        return ""
    return (f"The drawing ({len(base):,} points) is kept in this browser tab only: a link holds at most "
            f"{URL_MAX_POINTS} points. Download the CSV to keep it.")


def _canvas_panel(tool: str) -> dict[str, Any] | None:
    """The canvas, what to know about its toolbar, and a Start over button; what is drawn (Fabric.js JSON).

    The canvas's initial_drawing must stay the same while it is on screen (a new one reloads it and clears its
    undo history), so it is chosen once per mounted canvas, and the drawing is kept for the next mount."""
    state = st.session_state
    gen = state.get(GEN_KEY, 0)
    key = f"train.canvas.{gen}"
    if key not in state:  # a new canvas: the first visit, back from another page, or after Start over
        state[INITIAL_KEY] = _initial_drawing()
    st.markdown("**Draw here** (data units, the sample plots' axes):")
    json_data = draw_canvas(tool, key, state[INITIAL_KEY])
    state[KEPT_KEY] = json_data
    st.caption("**Undo, redo, clear**: the canvas's own toolbar, over its top-right corner while the mouse is on "
               "the canvas (its bin goes back to how the canvas started). **Start over** empties it.")
    if st.button("Start over", key="train.drawing_clear", icon=":material/restart_alt:",
                 help="an empty canvas; the drawing is forgotten in this tab and in the link"):
        state.pop(KEPT_KEY, None)
        state[GEN_KEY] = gen + 1
        _keep_in_url(None)
        st.rerun()
    return json_data


def drawing_source(ui: UrlWidgets, seed: int) -> Drawing | None:
    """The pen controls, the canvas and a preview of the points; the points to train on, or None (with a message
    saying why) while the drawing cannot be used. The jitter is drawn from ``seed``, so a link reproduces it."""
    c = st.columns(3)
    with c[0]:
        tool = ui.selectbox("Pen", "tool", tuple(TOOLS), "freedraw", format_func=TOOLS.get)
    with c[1]:
        density = ui.slider("Points per unit length", "density", 2, 50, 10,
                            help="along each stroke, in the axes' data units; a click is always one point")
    with c[2]:
        jitter = ui.slider("Jitter (std, data units)", "jitter", 0.0, 0.5, 0.05, step=0.01,
                           help="Gaussian noise added to every point, so a stroke becomes a band of data")
    left, right = st.columns(2)
    with left:
        json_data = _canvas_panel(tool)
    base = final = None
    try:
        strokes = to_data_units(strokes_from_fabric(json_data), (CANVAS_PX, CANVAS_PX), *AXES)
        inside = clip_strokes(strokes, *AXES)
        base = points_along_strokes(inside, 1 / density, 0.0)
        final = points_along_strokes(inside, 1 / density, jitter, np.random.default_rng(seed))
    except PointCloudError as err:
        problem = str(err)
    else:
        problem = ""
    with right:
        title = f"your drawing: {len(final):,} points" if final is not None and len(final) else "your drawing"
        plots.show(plots.scatter_panels([plots.Panel(title, final, color=INK)], height=CANVAS_PX + 40),
                   key="train.drawing_preview")
        if final is not None and len(final):
            st.download_button("Drawing (.csv)", csv_bytes(final), file_name="drawing.csv", mime="text/csv",
                               icon=":material/download:", on_click="ignore", key="train.dl_drawing")
        where = _keep_in_url(base)
        if where:
            st.caption(where)
    if problem:
        st.error(f"Cannot use this drawing: {problem}.", icon=":material/error:")
        return None
    if not strokes:
        st.info(f"Draw on the canvas (strokes, or clicks with the *clicks* pen; at least {MIN_POINTS} points), or "
                "pick a toy in *Data*.", icon=":material/draw:")
        return None
    if any((np.abs(s) > LIM).any() for s in strokes):
        st.caption("Strokes are cut at the edge of the axes: what lies outside them is not used.")
    if not len(final):
        st.info("Everything drawn lies outside the axes: draw inside them.", icon=":material/draw:")
        return None
    try:
        points, mean, scale = standardise(load_points(final))
    except PointCloudError as err:
        hint = f" (a click is one point; a stroke gives {density} per unit of length)" if len(final) < MIN_POINTS \
            else ""
        st.error(f"Cannot use this drawing: {err}{hint}.", icon=":material/error:")
        return None
    st.success(f"{len(points):,} points from your drawing, standardised to mean 0 and unit spread for training "
               f"(mean ({mean[0]:.3g}, {mean[1]:.3g}), scale {scale:.3g}; jitter {jitter:g}, seed {seed}).",
               icon=":material/check:")
    return Drawing(points, mean.tolist(), scale,
                   f"a drawing ({len(points):,} points, {density} per unit length, jitter {jitter:g}, seed {seed})")
