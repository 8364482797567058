"""Helpers of the Score field page (dashboard/views/score_field.py): a denoiser's field on a grid drawn as
arrows or flow lines, progress reporting for the likelihood computations, and a multi-panel Plotly layout with
equal axes (arrows, heat maps with colour bars). Builders return figures; nothing here calls st.*. (Langevin
dynamics on the field is the engine's: core.langevin.)
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.colors import get_colorscale

from core.diffusion import EpsModel, eps_to_score
from core.schedules import Schedule

FIELD_LIM = 3.0  # standardised units: q(x_t) has almost all its mass in [-3, 3]^2 at every t
LEARNED_COLOR = "#4f46e5"
EXACT_COLOR = "#059669"
DATA_COLOR = "#9ca3af"
PATH_COLOR = "#f97316"
# The Score field page's likelihood is bounded in time, whatever the model: a model that memorised a few points has
# a stiff probability-flow ODE, where the adaptive solver takes many small steps. The map stops at its budget (rows
# not reached stay blank), each table row at its own. A shipped 2D model needs 1-3 s of each on an idle laptop core;
# the budgets leave room for a busy server.
LL_MAP_BUDGET_S = 20.0
LL_NUMBERS_BUDGET_S = 10.0


# --- the field on a grid ------------------------------------------------------------------------------------


def grid(n: int, lim: float = FIELD_LIM) -> tuple[np.ndarray, np.ndarray]:
    """Axis (n,) and the n x n grid points (n*n, 2) float32, row-major: point iy * n + ix is (xs[ix], xs[iy])."""
    xs = np.linspace(-lim, lim, n)
    gx, gy = np.meshgrid(xs, xs)
    return xs, np.stack([gx.ravel(), gy.ravel()], axis=1).astype(np.float32)


def eps_and_score(eps_model: EpsModel, s: Schedule, x: np.ndarray, t: int) -> tuple[np.ndarray, np.ndarray]:
    """eps(x, t) and the score -eps / sqrt(1 - alpha_bar_t) at points x (n, 2); t is the index 0..T-1."""
    xt = torch.from_numpy(np.asarray(x, dtype=np.float32))
    tt = torch.full((len(xt),), float(t))
    with torch.no_grad():
        eps = eps_model(xt, tt).float()
    return eps.numpy(), eps_to_score(s, xt, tt, eps).numpy()


def flow_lines(direction: Callable[[np.ndarray], np.ndarray], seeds: np.ndarray, steps: int,
               step_length: float) -> np.ndarray:
    """Integrate dx/du = v(x) / |v(x)| from each seed (fixed step length): (steps + 1, m, 2) positions.

    Along the score these are the uphill paths of log q(x_t): they end on the modes the field points to.
    """
    x = np.asarray(seeds, dtype=np.float32).copy()
    out = [x.copy()]
    for _ in range(steps):
        v = direction(x)
        norm = np.linalg.norm(v, axis=1, keepdims=True)
        x = x + step_length * np.where(norm > 0, v / np.maximum(norm, 1e-12), 0.0)
        out.append(x.copy())
    return np.stack(out).astype(np.float32)


# --- progress of long engine calls -------------------------------------------------------------------------


class BudgetExceeded(Exception):
    """Raised by ProgressEps once its deadline has passed: the engine call stops there; ``done`` is how far it got
    (0 to 1), so a page can say so instead of running on."""

    def __init__(self, done: float):
        super().__init__(f"stopped at {100 * done:.0f}%")
        self.done = done


class ProgressEps:
    """Wraps an eps model to report how far an engine call has got, from the timesteps it is called at.

    The PF-ODE likelihood calls the model (with gradients) at t rising from -1 to T-1; the ELBO then calls it
    (without) at t = 0 .. T-1. ``on_progress(fraction, phase)`` runs at most every ``every_s`` seconds.
    ``phases``: which of "ode", "elbo" the call will go through, in order (each gets an equal share of the bar).
    ``deadline`` (a time.perf_counter() value): past it, the next model call raises BudgetExceeded.
    """

    def __init__(self, eps_model: EpsModel, T: int, on_progress: Callable[[float, str], None] | None,
                 phases: Sequence[str] = ("ode",), every_s: float = 0.2, deadline: float | None = None):
        self.eps_model, self.T, self.on_progress = eps_model, T, on_progress
        self.phases, self.every_s, self.deadline = tuple(phases), every_s, deadline
        self.last = 0.0
        self.done = 0.0

    def __call__(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if self.deadline is not None and time.perf_counter() > self.deadline:
            raise BudgetExceeded(self.done)
        eps = self.eps_model(x, t) if y is None else self.eps_model(x, t, y)
        if self.on_progress is not None:
            phase = "ode" if torch.is_grad_enabled() else "elbo"
            i = self.phases.index(phase) if phase in self.phases else 0
            tv = float(torch.as_tensor(t).reshape(-1)[0])
            frac = (i + min(max((tv + 1) / self.T, 0.0), 1.0)) / len(self.phases)
            self.done = max(self.done, frac)
            now = time.perf_counter()
            if now - self.last >= self.every_s:
                self.last = now
                self.on_progress(self.done, phase)
        return eps


# --- plots ---------------------------------------------------------------------------------------------------


def arrows_trace(origins: np.ndarray, vectors: np.ndarray, cell: float, scale: float, color: str,
                 name: str) -> go.Scatter:
    """A quiver as one NaN-separated line trace: each arrow is at most 0.9 grid cells long, proportional to
    |v| / scale (so the same scale makes two fields comparable), with a head of 30% of its length."""
    o = np.asarray(origins, dtype=np.float64)
    v = np.asarray(vectors, dtype=np.float64)
    norm = np.linalg.norm(v, axis=1)
    length = 0.9 * cell * np.clip(norm / max(scale, 1e-12), 0.0, 1.0)
    keep = length > 1e-3 * cell
    o, v, norm, length = o[keep], v[keep], norm[keep], length[keep]
    u = v / norm[:, None]
    tip = o + u * length[:, None]
    head = 0.3 * length[:, None]
    c, sn = math.cos(math.radians(150)), math.sin(math.radians(150))
    left = tip + head * np.stack([c * u[:, 0] - sn * u[:, 1], sn * u[:, 0] + c * u[:, 1]], axis=1)
    right = tip + head * np.stack([c * u[:, 0] + sn * u[:, 1], -sn * u[:, 0] + c * u[:, 1]], axis=1)
    nan = np.full_like(o, np.nan)
    seg = np.stack([o, tip, nan, left, tip, right, nan], axis=1).reshape(-1, 2).astype(np.float32)
    return go.Scatter(x=seg[:, 0], y=seg[:, 1], mode="lines", name=name, hoverinfo="skip", showlegend=False,
                      line=dict(color=color, width=1.3), connectgaps=False)


def paths_trace(paths: np.ndarray, color: str, name: str, width: float = 1.0, opacity: float = 0.8) -> go.Scatter:
    """Paths (K, m, 2) as one NaN-separated line trace."""
    p = np.asarray(paths, dtype=np.float32)
    nan = np.full((1, p.shape[1], 2), np.nan, dtype=np.float32)
    seg = np.concatenate([p, nan]).transpose(1, 0, 2).reshape(-1, 2)
    return go.Scatter(x=seg[:, 0], y=seg[:, 1], mode="lines", name=name, hoverinfo="skip", showlegend=False,
                      line=dict(color=color, width=width), opacity=opacity, connectgaps=False)


def points_trace(points: np.ndarray, color: str = DATA_COLOR, name: str = "x_t", size: float = 3,
                 opacity: float = 0.45) -> go.Scatter:
    p = np.asarray(points, dtype=np.float32)
    return go.Scatter(x=p[:, 0], y=p[:, 1], mode="markers", name=name, hoverinfo="skip", showlegend=False,
                      marker=dict(size=size, color=color, opacity=opacity, line_width=0))


def heatmap_trace(xs: np.ndarray, z: np.ndarray, name: str, colorscale: str = "Viridis",
                  zmin: float | None = None, zmax: float | None = None, colorbar_title: str = "",
                  tickvals: Sequence[float] | None = None, ticktext: Sequence[str] | None = None,
                  zmid: float | None = None) -> go.Heatmap:
    """z (n, n) on the square grid xs x xs (row-major as ``grid``); NaN cells are left blank."""
    colorbar = dict(title=dict(text=colorbar_title, side="right"), thickness=10, len=0.85)
    if tickvals is not None:
        colorbar.update(tickvals=list(tickvals), ticktext=list(ticktext or tickvals))
    return go.Heatmap(x=np.asarray(xs, np.float32), y=np.asarray(xs, np.float32), z=np.asarray(z, np.float32),
                      name=name, colorscale=get_colorscale(colorscale), zmin=zmin, zmax=zmax, zmid=zmid,
                      colorbar=colorbar,
                      hovertemplate="x=%{x:.2f}, y=%{y:.2f}: %{z:.3g}<extra></extra>")


def log10_ticks(lo: float, hi: float) -> tuple[list[float], list[str]]:
    """Colour-bar ticks for a log10 heat map: integer powers of ten between lo and hi, labelled 10^k."""
    ks = list(range(math.ceil(lo), math.floor(hi) + 1)) or [round((lo + hi) / 2)]
    return [float(k) for k in ks], [f"1e{k}" if k not in (0, 1, -1) else {0: "1", 1: "10", -1: "0.1"}[k] for k in ks]


@dataclass
class Panel:
    """One square subplot: a title and its traces (heat maps get a colour bar beside the panel)."""

    title: str
    traces: list[go.BaseTraceType] = field(default_factory=list)
    note: str | None = None  # shown in the middle of an otherwise empty panel


def panels_figure(panels: Sequence[Panel], lim: float = FIELD_LIM, height: int = 380) -> go.Figure:
    """Panels side by side in one row, equal axes, the same fixed range [-lim, lim] in each."""
    n = max(1, len(panels))
    has_bar = [any(isinstance(tr, go.Heatmap) and tr.showscale is not False for tr in p.traces) for p in panels]
    bar_room = 0.05  # paper width kept free right of a panel with a colour bar
    gap = 0.03
    width = (1 - gap * (n - 1) - bar_room * sum(has_bar)) / n
    layout: dict = dict(height=height, margin=dict(l=5, r=5, t=32, b=5), showlegend=False, annotations=[],
                        plot_bgcolor="white")
    traces: list[go.BaseTraceType] = []
    lo = 0.0
    for i, (p, bar) in enumerate(zip(panels, has_bar, strict=True), start=1):
        sx = "" if i == 1 else str(i)
        axis = dict(range=[-lim, lim], constrain="domain", zeroline=False, showgrid=False,
                    showticklabels=i == 1, ticks="outside" if i == 1 else "", mirror=True, showline=True,
                    linecolor="#d1d5db")
        layout[f"xaxis{sx}"] = dict(axis, domain=[lo, lo + width], anchor=f"y{sx}")
        layout[f"yaxis{sx}"] = dict(axis, scaleanchor=f"x{sx}", scaleratio=1, anchor=f"x{sx}")
        for tr in p.traces:
            tr = tr.update(xaxis=f"x{sx}", yaxis=f"y{sx}")
            if isinstance(tr, go.Heatmap):
                tr.colorbar.x = min(lo + width + 0.005, 1.0)
                tr.colorbar.xanchor = "left"
            traces.append(tr)
        layout["annotations"].append(dict(text=p.title, x=lo + width / 2, y=1.0, xref="paper", yref="paper",
                                          xanchor="center", yanchor="bottom", showarrow=False, font=dict(size=13)))
        if p.note:
            layout["annotations"].append(dict(x=0, y=0, xref=f"x{sx}", yref=f"y{sx}", text=p.note, showarrow=False,
                                              font=dict(color="#6b7280", size=12)))
        lo += width + gap + (bar_room if bar else 0.0)
    return go.Figure(data=traces, layout=layout)
