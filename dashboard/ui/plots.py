"""Plot builders shared by the pages: equal-axis 2D scatter panels, an animated 2D view with play/pause and a
t slider (Plotly frames), exact-density contours on a grid, long-form Altair line charts, and greyscale digit
mosaics (static or two panels animated together) for the MNIST page, and light loss curves.

Builders return figures (no Streamlit calls) so tests can inspect them; ``show`` renders a Plotly figure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import altair as alt
import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

# One colour per schedule everywhere (Altair charts, Plotly panels, metrics).
SCHEDULE_COLORS: dict[str, str] = {
    "linear": "#4f46e5", "cosine": "#059669", "sigmoid": "#d97706", "quadratic": "#0891b2",
    "custom": "#db2777",
}
POINT_COLOR = "#4f46e5"
DATA_COLOR = "#9ca3af"  # overlays: the clean data, N(0, I) references
NOISE_COLOR = "#6b7280"
PATH_COLOR = "#f97316"
LIM = 4.0  # standardised units: data and N(0, I) both fit in [-4, 4]^2

PLOTLY_CONFIG = {"displaylogo": False, "scrollZoom": False,
                 "modeBarButtonsToRemove": ["select2d", "lasso2d", "autoScale2d"]}


def show(fig: go.Figure, key: str | None = None) -> None:
    """st.plotly_chart with the lab's config (full width, no logo, no lasso)."""
    st.plotly_chart(fig, config=PLOTLY_CONFIG, key=key, width="stretch")


def _f32(a: np.ndarray) -> np.ndarray:
    return np.asarray(a, dtype=np.float32)


def _axes(i: int, lim: float, domain: tuple[float, float] = (0.0, 1.0), ticks: bool = True) -> dict:
    """Layout entries of subplot i (1-based): fixed range [-lim, lim] and a square data aspect."""
    sx = "" if i == 1 else str(i)
    common = dict(range=[-lim, lim], constrain="domain", zeroline=False, showticklabels=ticks, showgrid=True)
    return {f"xaxis{sx}": dict(common, domain=list(domain), anchor=f"y{sx}"),
            f"yaxis{sx}": dict(common, scaleanchor=f"x{sx}", scaleratio=1, anchor=f"x{sx}")}


def equal_axes(fig: go.Figure, lim: float = LIM, n_axes: int = 1, ticks: bool = True) -> go.Figure:
    """Square data aspect and fixed ranges [-lim, lim] on every subplot (so animations never rescale)."""
    layout: dict = {}
    for i in range(1, n_axes + 1):
        axes = _axes(i, lim, ticks=ticks)
        for ax in axes.values():
            ax.pop("domain", None)
            ax.pop("anchor", None)
        layout.update(axes)
    fig.update_layout(layout)
    return fig


def scatter_dict(points: np.ndarray, color: str = POINT_COLOR, size: float = 3, name: str = "x_t",
                 opacity: float = 0.6, showlegend: bool = False) -> dict:
    """A 2D point cloud (n, 2) as a plain Plotly trace dict (cheap: validated once, with the figure)."""
    p = _f32(points).reshape(-1, 2)
    return dict(type="scatter", x=p[:, 0], y=p[:, 1], mode="markers", name=name, showlegend=showlegend,
                marker=dict(size=size, color=color, opacity=opacity, line_width=0), hoverinfo="skip")


def scatter_trace(points: np.ndarray, color: str = POINT_COLOR, size: float = 3, name: str = "x_t",
                  opacity: float = 0.6, showlegend: bool = False) -> go.Scatter:
    """A 2D point cloud (n, 2) as a Plotly marker trace."""
    return go.Scatter(scatter_dict(points, color, size, name, opacity, showlegend))


@dataclass
class Panel:
    """One subplot of ``scatter_panels``: a title, its points, and optional grey overlay (e.g. the data)."""

    title: str
    points: np.ndarray | None
    color: str = POINT_COLOR
    overlay: np.ndarray | None = None
    note: str | None = None  # shown in the middle of an empty panel (e.g. "invalid schedule")
    density: np.ndarray | None = None  # (ny, nx) on the grid given to scatter_panels: drawn as contours


def scatter_panels(panels: Sequence[Panel], lim: float = LIM, height: int = 300, marker_size: float = 3,
                   overlay_name: str = "data x₀", grid: tuple[np.ndarray, np.ndarray] | None = None) -> go.Figure:
    """Side-by-side scatter plots in one row, equal axes, the same fixed range in every panel.

    grid: (xs, ys) of density_grid, for panels that carry a ``density`` (contours over the points).
    The layout is built in one pass (not make_subplots): Plotly validates each update, and a slider
    rerun should stay well under a second.
    """
    n = max(1, len(panels))
    gap = 0.025
    width = (1 - gap * (n - 1)) / n
    has_overlay = any(p.overlay is not None for p in panels)
    layout: dict = dict(height=height, margin=dict(l=5, r=5, t=40, b=30 if has_overlay else 5), annotations=[],
                        legend=dict(orientation="h", yanchor="top", y=-0.01, x=0))
    traces: list[dict] = []
    legend_done = False
    for i, p in enumerate(panels, start=1):
        lo = (i - 1) * (width + gap)
        layout.update(_axes(i, lim, (lo, lo + width), ticks=False))
        sx = "" if i == 1 else str(i)
        on = dict(xaxis=f"x{sx}", yaxis=f"y{sx}")
        if grid is not None and p.density is not None:
            traces.append(dict(contour_dict(grid[0], grid[1], p.density), **on))
        if p.overlay is not None:
            traces.append(dict(scatter_dict(p.overlay, DATA_COLOR, marker_size, overlay_name, 0.35,
                                            showlegend=not legend_done), **on))
            legend_done = True
        if p.points is not None:
            traces.append(dict(scatter_dict(p.points, p.color, marker_size, p.title, 0.6), **on))
        layout["annotations"].append(dict(text=p.title, x=lo + width / 2, y=1.0, xref="paper", yref="paper",
                                          xanchor="center", yanchor="bottom", showarrow=False,
                                          font=dict(size=12)))
        if p.note:
            layout["annotations"].append(dict(x=0, y=0, xref=f"x{sx}", yref=f"y{sx}", text=p.note,
                                              showarrow=False, font=dict(color="#b91c1c", size=12)))
    return go.Figure(data=traces, layout=layout)


# --- exact densities on a grid -----------------------------------------------------------------------------


def density_grid(lim: float = LIM, n: int = 60) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Grid axes xs, ys (n,) and its points (n*n, 2) in row-major order (z.reshape(n, n)[iy, ix])."""
    xs = np.linspace(-lim, lim, n)
    gx, gy = np.meshgrid(xs, xs)
    return xs, xs.copy(), np.stack([gx.ravel(), gy.ravel()], axis=1)


def contour_dict(xs: np.ndarray, ys: np.ndarray, z: np.ndarray, name: str = "exact density",
                 color: str = "#0f766e") -> dict:
    """Contour lines of a density relative to its peak, at 10%, 30%, 50%, 70%, 90% (a plain trace dict).

    z is sent as 0..255 bytes (a quarter of float32): lines at 10% steps need no more precision, and an
    animation carries one grid per frame.
    """
    z = np.asarray(z, dtype=np.float64)
    z = z / z.max() if z.size and np.isfinite(z).all() and z.max() > 0 else np.zeros_like(z)
    z8 = np.round(z * 255).astype(np.uint8)
    return dict(type="contour", x=_f32(xs), y=_f32(ys), z=z8, name=name, showscale=False, hoverinfo="skip",
                contours=dict(coloring="lines", start=0.1 * 255, end=0.9 * 255, size=0.2 * 255),
                colorscale=[[0, color], [1, color]], line=dict(width=1.2, smoothing=1.3), opacity=0.9)


def contour_trace(xs: np.ndarray, ys: np.ndarray, z: np.ndarray, name: str = "exact density",
                  color: str = "#0f766e") -> go.Contour:
    """``contour_dict`` as a go.Contour."""
    return go.Contour(contour_dict(xs, ys, z, name, color))


# --- animation -------------------------------------------------------------------------------------------


@dataclass
class Frame:
    """One animation frame: its label, the cloud, optional density z on the grid, optional particle paths."""

    label: str
    points: np.ndarray
    density: np.ndarray | None = None  # (ny, nx) on the grid given to animated_scatter
    paths: list[np.ndarray] = field(default_factory=list)  # each (k, 2): a particle's positions so far


def _paths_dicts(paths: list[np.ndarray]) -> list[dict]:
    """All paths as one line trace (NaN-separated) plus one marker trace for their heads."""
    if paths:
        line = np.concatenate([np.vstack([_f32(p), [[np.nan, np.nan]]]) for p in paths])
        heads = np.stack([_f32(p)[-1] for p in paths])
    else:
        line = heads = np.empty((0, 2), np.float32)
    return [
        dict(type="scatter", x=line[:, 0], y=line[:, 1], mode="lines", name="particle paths", hoverinfo="skip",
             line=dict(color=PATH_COLOR, width=1), opacity=0.75, connectgaps=False),
        dict(type="scatter", x=heads[:, 0], y=heads[:, 1], mode="markers", name="particles", hoverinfo="skip",
             marker=dict(color=PATH_COLOR, size=7, line=dict(color="white", width=1))),
    ]


def animated_scatter(frames: Sequence[Frame], grid: tuple[np.ndarray, np.ndarray] | None = None,
                     lim: float = LIM, height: int = 560, frame_ms: int = 180, marker_size: float = 3,
                     slider_prefix: str = "") -> go.Figure:
    """A 2D animation with Play / Pause buttons and a slider over the frames; fixed equal axes.

    Every frame has the same traces in the same order: [contour], cloud, paths, path heads. Traces are
    plain dicts validated once by go.Figure (building go.Frame objects costs several times more).
    """
    with_density = grid is not None and all(f.density is not None for f in frames)

    def traces(f: Frame) -> list[dict]:
        out = [contour_dict(grid[0], grid[1], f.density)] if with_density else []
        out.append(scatter_dict(f.points, POINT_COLOR, marker_size, "x_t", 0.55))
        out.extend(_paths_dicts(f.paths))
        return out

    play = dict(frame=dict(duration=frame_ms, redraw=True), transition=dict(duration=0), fromcurrent=True,
                mode="immediate")
    pause = dict(frame=dict(duration=0, redraw=False), transition=dict(duration=0), mode="immediate")
    layout = dict(
        height=height, margin=dict(l=10, r=10, t=44, b=80), showlegend=False,
        # buttons above the plot, the slider below it: neither overlaps the other at any width
        updatemenus=[dict(type="buttons", direction="left", x=0.0, y=1.0, xanchor="left", yanchor="bottom",
                          pad=dict(b=8, r=8), showactive=False,
                          buttons=[dict(label="▶ Play", method="animate", args=[None, play]),
                                   dict(label="❚❚ Pause", method="animate", args=[[None], pause])])],
        sliders=[dict(active=0, x=0.0, len=1.0, y=0, yanchor="top", pad=dict(t=40, b=0),
                      currentvalue=dict(prefix=slider_prefix, font=dict(size=14, color="#111827"),
                                        xanchor="left", offset=8),
                      font=dict(color="rgba(0,0,0,0)"), ticklen=3,  # 25 tick labels would overlap
                      steps=[dict(label=f.label, method="animate",
                                  args=[[f.label], dict(frame=dict(duration=0, redraw=True), mode="immediate",
                                                        transition=dict(duration=0))])
                             for f in frames])],
        **_axes(1, lim),
    )
    return go.Figure(dict(data=traces(frames[0]), layout=layout,
                          frames=[dict(data=traces(f), name=f.label) for f in frames]))


# --- Altair line charts -----------------------------------------------------------------------------------


def line_chart(df: pd.DataFrame, x: str, y: str, color: str, *, x_title: str, y_title: str,
               log_y: bool = False, colors: dict[str, str] | None = None, height: int = 260,
               title: str | None = None) -> alt.Chart:
    """Long-form lines (one per ``color`` value) with tooltips; consistent colours via ``colors``."""
    colors = colors or SCHEDULE_COLORS
    domain = [c for c in colors if c in set(df[color])] if len(df) else list(colors)
    enc_color = alt.Color(f"{color}:N", scale=alt.Scale(domain=domain, range=[colors[c] for c in domain]),
                          legend=alt.Legend(orient="top", title=None))
    y_scale = alt.Scale(type="log") if log_y else alt.Scale(zero=False)
    chart = alt.Chart(df, height=height, title=title or alt.Undefined).mark_line(strokeWidth=2).encode(
        x=alt.X(f"{x}:Q", title=x_title),
        y=alt.Y(f"{y}:Q", title=y_title, scale=y_scale),
        color=enc_color,
        tooltip=[alt.Tooltip(f"{color}:N"), alt.Tooltip(f"{x}:Q"), alt.Tooltip(f"{y}:Q", format=".4g")],
    )
    return chart.interactive(bind_y=False)


def downsample(values: Sequence[float], max_points: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """(steps, mean values) of consecutive blocks, at most ``max_points`` of them: a light live chart."""
    v = np.asarray(values, dtype=np.float64)
    if len(v) <= max_points:
        return np.arange(1, len(v) + 1), v
    size = int(np.ceil(len(v) / max_points))
    n = len(v) // size * size
    blocks = v[:n].reshape(-1, size).mean(axis=1)
    steps = np.arange(size, n + 1, size)
    return steps, blocks


def smoothed_frame(values: Sequence[float], span: int, names: tuple[str, str] = ("per step", "moving average"),
                   y: str = "value") -> pd.DataFrame:
    """A per-step series (a loss) in block means and its exponential moving average over ``span`` steps, long
    form (step, ``y``, series) for ``line_chart``; ``names``: the two series."""
    x, v = downsample(values)
    xs, vs = downsample(list(pd.Series(values).ewm(span=span).mean().to_numpy()))
    return pd.concat([pd.DataFrame({"step": x, y: v, "series": names[0]}),
                      pd.DataFrame({"step": xs, y: vs, "series": names[1]})], ignore_index=True)


# --- image grids (MNIST) -------------------------------------------------------------------------------------
# Digits are drawn as one greyscale heatmap per panel: a mosaic of 28x28 tiles on white gaps, sent as uint8
# (a 10x10 grid is ~80 kB), square pixels, no smoothing, no hover. Captions are annotations in pixel units.

IMAGE_GAP = 2  # white pixels between tiles
CAPTION_PX = 9  # pixel rows under each tile kept free for its caption
WRONG_COLOR = "#dc2626"
CAPTION_COLOR = "#374151"


def to_uint8(images: np.ndarray) -> np.ndarray:
    """Images in [-1, 1] (any leading shape, ..., H, W; a channel axis of 1 is dropped) -> uint8 0..255.
    Values outside [-1, 1] (noisy x_t) are clipped; uint8 input is taken as already converted."""
    x = np.asarray(images)
    if x.ndim >= 3 and x.shape[-3] == 1:
        x = x[..., 0, :, :]
    if x.dtype == np.uint8:
        return x
    x = x.astype(np.float32)
    return np.round((np.clip(x, -1.0, 1.0) + 1.0) * 127.5).astype(np.uint8)


@dataclass(frozen=True)
class Mosaic:
    """Where the tiles of a mosaic lie: ``rows`` x ``cols`` tiles of h x w pixels, a tile's top-left corner at
    (c * dx, r * dy) in pixel units (y downwards)."""

    rows: int
    cols: int
    h: int
    w: int
    gap: int
    caption: int

    @property
    def dx(self) -> int:
        return self.w + self.gap

    @property
    def dy(self) -> int:
        return self.h + self.gap + self.caption

    @property
    def width(self) -> int:
        return self.cols * self.dx - self.gap

    @property
    def height(self) -> int:
        return self.rows * self.dy - self.gap


def mosaic(images: np.ndarray, cols: int, gap: int = IMAGE_GAP, caption: int = 0,
           rows: int | None = None) -> tuple[np.ndarray, Mosaic]:
    """Tile uint8 images (n, h, w) row by row into one (H, W) uint8 array on white; missing tiles stay white."""
    images = np.asarray(images)
    n, h, w = images.shape
    cols = max(1, min(cols, n)) if rows is None else max(1, cols)
    rows = rows or -(-n // cols)
    m = Mosaic(rows, cols, h, w, gap, caption)
    out = np.full((m.height, m.width), 255, dtype=np.uint8)
    for i in range(min(n, rows * cols)):
        r, c = divmod(i, cols)
        out[r * m.dy:r * m.dy + h, c * m.dx:c * m.dx + w] = images[i]
    return out, m


def image_dict(z: np.ndarray, axis: str = "", name: str = "") -> dict:
    """A uint8 greyscale image (H, W) as a plain heatmap trace dict (0 black, 255 white)."""
    return dict(type="heatmap", z=np.asarray(z, dtype=np.uint8), zmin=0, zmax=255, showscale=False, name=name,
                colorscale=[[0.0, "#000000"], [1.0, "#ffffff"]], hoverinfo="skip", xaxis=f"x{axis}",
                yaxis=f"y{axis}")


def _image_axes(i: int, m: Mosaic, domain: tuple[float, float] = (0.0, 1.0)) -> dict:
    """Pixel axes of panel i (1-based): x right, y down, square pixels, no ticks or grid."""
    sx = "" if i == 1 else str(i)
    common = dict(showticklabels=False, showgrid=False, zeroline=False, ticks="", constrain="domain", fixedrange=True)
    return {f"xaxis{sx}": dict(common, range=[-0.5, m.width - 0.5], domain=list(domain), anchor=f"y{sx}"),
            f"yaxis{sx}": dict(common, range=[m.height - 0.5, -0.5], scaleanchor=f"x{sx}", scaleratio=1,
                               anchor=f"x{sx}")}


def image_grid(images: np.ndarray, cols: int, captions: Sequence[str] | None = None,
               caption_colors: Sequence[str] | None = None, col_titles: Sequence[str] | None = None,
               row_titles: Sequence[str] | None = None, width_px: int = 1000, left_px: int = 0,
               max_height: int = 900, rows: int | None = None) -> go.Figure:
    """Digits (n, [1,] h, w) in [-1, 1] (or uint8 from ``to_uint8``) as one mosaic, ``cols`` per row, with
    optional captions under each tile, titles above each column and to the left of each row.

    width_px: the width the chart is expected to get on the page; the height is set from it so the square
    pixels fill the width (a narrower page leaves some white below, never cuts a digit off).
    """
    z, m = mosaic(to_uint8(images), cols, caption=CAPTION_PX if captions is not None else 0, rows=rows)
    top = 26 if col_titles else 4
    left = left_px or (96 if row_titles else 4)
    scale = (width_px - left - 4) / m.width
    height = int(min(max_height, max(80, m.height * scale + top + 4)))
    annotations: list[dict] = []
    for i, text in enumerate(captions or []):
        r, c = divmod(i, m.cols)
        color = caption_colors[i] if caption_colors is not None else CAPTION_COLOR
        annotations.append(dict(text=text, x=c * m.dx + m.w / 2, y=r * m.dy + m.h + m.caption / 2 + 0.5,
                                xref="x", yref="y", showarrow=False, font=dict(size=11, color=color),
                                xanchor="center", yanchor="middle"))
    for c, text in enumerate(col_titles or []):
        annotations.append(dict(text=text, x=c * m.dx + m.w / 2, y=1.0, xref="x", yref="paper", showarrow=False,
                                xanchor="center", yanchor="bottom", font=dict(size=12, color="#111827")))
    for r, text in enumerate(row_titles or []):
        annotations.append(dict(text=text, x=0.0, y=r * m.dy + m.h / 2, xref="paper", yref="y", showarrow=False,
                                xanchor="right", yanchor="middle", xshift=-6, align="right",
                                font=dict(size=12, color="#111827")))
    layout = dict(_image_axes(1, m), height=height, margin=dict(l=left, r=4, t=top, b=4, pad=0), showlegend=False,
                  annotations=annotations, plot_bgcolor="#ffffff")
    return go.Figure(dict(data=[image_dict(z, name="digits")], layout=layout))


def pair_animation_controls(labels: Sequence[str], titles: tuple[str, str], gap: float,
                            frame_ms: int) -> dict:
    """Layout pieces shared by the two-panel animations: the panels' titles, Play / Pause and a frame slider
    whose steps are named by ``labels`` (the frames' names)."""
    play = dict(frame=dict(duration=frame_ms, redraw=True), transition=dict(duration=0), fromcurrent=True,
                mode="immediate")
    pause = dict(frame=dict(duration=0, redraw=False), transition=dict(duration=0), mode="immediate")
    still = dict(frame=dict(duration=0, redraw=True), mode="immediate", transition=dict(duration=0))
    return dict(
        annotations=[dict(text=text, x=x, y=1.0, xref="paper", yref="paper", xanchor="center", yanchor="bottom",
                          showarrow=False, font=dict(size=13))
                     for text, x in ((titles[0], 0.25 - gap / 4), (titles[1], 0.75 + gap / 4))],
        updatemenus=[dict(type="buttons", direction="left", x=0.0, y=0, xanchor="left", yanchor="top",
                          pad=dict(t=62, r=8), showactive=False,
                          buttons=[dict(label="▶ Play", method="animate", args=[None, play]),
                                   dict(label="❚❚ Pause", method="animate", args=[[None], pause])])],
        sliders=[dict(active=0, x=0.16, len=0.84, y=0, yanchor="top", pad=dict(t=40, b=0),
                      currentvalue=dict(prefix="", font=dict(size=14, color="#111827"), xanchor="left", offset=8),
                      font=dict(color="rgba(0,0,0,0)"), ticklen=3,
                      steps=[dict(label=lab, method="animate", args=[[lab], still]) for lab in labels])],
    )


def animated_image_pair(left: np.ndarray, right: np.ndarray, labels: Sequence[str], titles: tuple[str, str],
                        cols: int, width_px: int = 1000, frame_ms: int = 200) -> go.Figure:
    """Two mosaics animated together, e.g. x_t (left) and the x0 prediction (right); Play / Pause and a slider.

    left, right: (frames, n, [1,] h, w) in [-1, 1] or uint8 (``to_uint8``); labels: one per frame (the slider's
    text). Traces 0 and 1 are the two images; every frame replaces both.
    """
    lz = [mosaic(to_uint8(f), cols)[0] for f in left]
    rz = [mosaic(to_uint8(f), cols)[0] for f in right]
    _, m = mosaic(to_uint8(left[0]), cols)
    gap = 0.04
    scale = (width_px * (0.5 - gap / 2) - 10) / m.width
    height = int(m.height * scale + 30 + 100)
    layout: dict = {}
    layout.update(_image_axes(1, m, (0.0, 0.5 - gap / 2)))
    layout.update(_image_axes(2, m, (0.5 + gap / 2, 1.0)))
    layout.update(height=height, margin=dict(l=10, r=10, t=30, b=100, pad=0), showlegend=False,
                  plot_bgcolor="#ffffff", **pair_animation_controls(labels, titles, gap, frame_ms))
    frames = [dict(data=[image_dict(a), image_dict(b, "2")], traces=[0, 1], name=lab)
              for a, b, lab in zip(lz, rz, labels, strict=True)]
    return go.Figure(dict(data=[image_dict(lz[0], name="x_t"), image_dict(rz[0], "2", name="x̂₀")],
                          frames=frames, layout=layout))
