"""Plot builders shared by the pages: equal-axis 2D scatter panels, an animated 2D view with play/pause and a
t slider (Plotly frames), exact-density contours on a grid, and long-form Altair line charts.

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
