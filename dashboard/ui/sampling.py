"""Sampling helpers shared by the Reverse process and Samplers pages: cached sampler runs keyed on hashable
inputs (the model token, method, steps, seed ...), sample quality relative to the data floor, the two-panel
x_t / x0-prediction animation, per-sampler panels, and the quality-vs-NFE chart (benchmark JSON or on demand).

Cached functions take the model *token* and resolve the model inside (``dashboard.ui.models.resolve``), so no
model object is ever hashed.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import altair as alt
import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
import torch

from core.data.toy2d import sample_toy
from core.metrics import data_floor, sliced_wasserstein
from core.samplers import METHODS, sample, steps_for_nfe
from dashboard.ui import exports, plots
from dashboard.ui.loaders import ROOT, gaussian_noise
from dashboard.ui.models import ModelChoice, resolve
from dashboard.ui.widgets import UrlWidgets

BENCHMARK_JSON = ROOT / "benchmarks" / "results" / "samplers.json"

METHOD_LABELS: dict[str, str] = {
    "ddpm": "DDPM",
    "ddim": "DDIM",
    "euler_maruyama": "Reverse SDE · Euler–Maruyama",
    "predictor_corrector": "Predictor–corrector",
    "ode_euler": "PF-ODE · Euler",
    "ode_heun": "PF-ODE · Heun",
    "dpm_solver_2m": "DPM-Solver++(2M)",
}
METHOD_PAPERS: dict[str, str] = {
    "ddpm": "Ho et al. 2020, Algorithm 2",
    "ddim": "Song, Meng & Ermon 2021, eq. 12",
    "euler_maruyama": "Song et al. 2021, reverse SDE eq. 6",
    "predictor_corrector": "Song et al. 2021, Algorithms 4-5",
    "ode_euler": "Song et al. 2021, probability-flow ODE eq. 13",
    "ode_heun": "Karras et al. 2022, Algorithm 1",
    "dpm_solver_2m": "Lu et al. 2022, DPM-Solver++ Algorithm 2",
}
# One colour per sampler on every chart and panel.
METHOD_COLORS: dict[str, str] = {
    "ddpm": "#4f46e5", "ddim": "#0891b2", "euler_maruyama": "#dc2626", "predictor_corrector": "#d97706",
    "ode_euler": "#059669", "ode_heun": "#65a30d", "dpm_solver_2m": "#db2777",
}
# The flow-matching series the quality charts draw beside the samplers (dashboard.ui.flow runs them): fm-<toy> with
# each fixed-step solver (Lipman et al. 2023) and fm-reflow-<toy> with Euler (Liu et al. 2023).
FLOW_LABELS: dict[str, str] = {
    "flow_euler": "Flow matching · Euler",
    "flow_midpoint": "Flow matching · midpoint",
    "flow_heun": "Flow matching · Heun",
    "reflow_euler": "Rectified flow (reflow) · Euler",
}
FLOW_COLORS: dict[str, str] = {
    "flow_euler": "#7c3aed", "flow_midpoint": "#92400e", "flow_heun": "#1f2937", "reflow_euler": "#c026d3",
}
SERIES_LABELS: dict[str, str] = {**METHOD_LABELS, **FLOW_LABELS}
SERIES_COLORS: dict[str, str] = {**METHOD_COLORS, **FLOW_COLORS}
SDE_LABELS = {"vp": "VP (variance preserving)", "ve": "VE (variance exploding)"}
STOCHASTIC = ("ddpm", "euler_maruyama", "predictor_corrector")  # and ddim with eta > 0
CONTINUOUS = ("euler_maruyama", "predictor_corrector", "ode_euler", "ode_heun")  # take sde="vp" | "ve"
DISCRETE = ("ddpm", "ddim")  # take spacing


@dataclass(frozen=True)
class StepRange:
    """A steps slider: its bounds, the page's default and the slider step (every value costs NFE per step)."""

    lo: int
    hi: int
    default: int
    step: int = 1


# Steps sliders of the Reverse page. The maxima reach at least the engine's DEFAULT_STEPS (where every method is
# within 2x of the data floor with the exact score); the defaults keep a first run to about a second of network calls
# on 1000 points of a 2-core CPU.
STEP_RANGES: dict[str, StepRange] = {
    "ddpm": StepRange(10, 1000, 100, 10),
    "ddim": StepRange(1, 200, 50),
    "euler_maruyama": StepRange(10, 500, 200, 10),
    "predictor_corrector": StepRange(5, 250, 100, 5),
    "ode_euler": StepRange(5, 250, 100, 5),
    "ode_heun": StepRange(2, 100, 25),
    "dpm_solver_2m": StepRange(1, 50, 20),
}
NFE_BUDGETS = (5, 10, 20, 50, 100, 250)  # per sampler; the chart below goes further
ON_DEMAND_NFE = (5, 10, 20, 50)
ON_DEMAND_N = 1000
SW_REPEATS = 3  # reference draws (and projection seeds) per sliced-Wasserstein value
N_PROJECTIONS = 128  # in 2D, 128 random directions already cover the half-circle finely; half the cost of 256
FLOOR_REPEATS = 6  # data-vs-data pairs behind the floor (cached): at 1000 points one pair varies by +-30%
N_OVERLAY = 1000  # data points drawn under the samples


def method_label(method: str) -> str:
    """A selectbox format_func: method -> label (a label maps to itself, so AppTest can select by label)."""
    return METHOD_LABELS.get(method, method)


def labeller(labels: dict[str, str]):
    """format_func over ``labels`` that leaves unknown strings (already labels) unchanged."""
    return lambda v: labels.get(v, v)


def nice_t(t: float) -> str:
    """A paper timestep for display: 999 or 948.5 (continuous solvers visit fractional t)."""
    return f"{t:.0f}" if abs(t - round(t)) < 0.05 else f"{t:.1f}"


def split_token(choice: ModelChoice) -> tuple[str, bool]:
    """(the model's own token, exact flag) of a model_picker choice; exact tokens read ``exact:<toy>|<token>``."""
    if choice.token.startswith("exact:"):
        return choice.token.split("|", 1)[1], True
    return choice.token, False


def method_options(method: str, eta: float = 0.0, spacing: str = "leading", variance: str = "beta_tilde",
                   sde: str = "vp") -> tuple[tuple[str, Any], ...]:
    """The page's sampler options that ``method`` accepts, as a hashable tuple for the caches."""
    if method == "ddpm":
        return (("spacing", spacing), ("variance", variance))
    if method == "ddim":
        return (("eta", float(eta)), ("spacing", spacing))
    if method in CONTINUOUS:
        return (("sde", sde),)
    return ()


def step_range(method: str, T: int) -> StepRange:
    """STEP_RANGES[method] clipped to the model's T (a model trained with few steps has fewer to visit)."""
    r = STEP_RANGES[method]
    hi = min(r.hi, T)
    lo = min(r.lo, hi)
    return StepRange(lo, hi, min(max(r.default, lo), hi), r.step if hi - lo >= r.step else 1)


class SamplingWidgets(UrlWidgets):
    """UrlWidgets plus the steps slider of a sampler."""

    def steps(self, method: str, T: int, label: str = "Steps") -> int:
        """The steps slider of ``method`` (each method remembers its own value, URL name ``steps_<method>``)."""
        r = step_range(method, T)
        if r.hi <= r.lo:  # a model with T = 1: nothing to choose
            st.caption(f"{label}: {r.hi} (the model has T = {T})")
            return r.hi
        return self.slider(label, f"steps_{method}", r.lo, r.hi, r.default, step=r.step,
                           help="Timesteps the sampler visits; each costs one network evaluation "
                                "(Heun: two, predictor-corrector: two with its Langevin corrector).")


# --- the data a model should reproduce, and the distance to it --------------------------------------------------


@st.cache_data(max_entries=32, show_spinner=False)
def data_reference(token: str, n: int) -> dict[str, Any]:
    """SW_REPEATS fresh data draws of n points and the data-vs-data SW floor at n, for the model's data.

    A toy draws from its generator; a user's point cloud is resampled with replacement (its floor is then
    two resamples of the same points). Fixed seeds: every sampler, seed and page shares the same reference.
    """
    choice = resolve(token)
    if choice.toy is None and choice.data is None:  # a model that does not say what it was trained on
        return {"refs": [], "floor": float("nan"), "overlay": np.empty((0, 2), np.float32)}
    g = torch.Generator().manual_seed(10_000)
    if choice.toy is not None:
        toy = choice.toy

        def draw(m: int, gen: torch.Generator | None) -> torch.Tensor:
            return sample_toy(toy, m, gen)
    else:
        pts = torch.as_tensor(choice.data, dtype=torch.float32)

        def draw(m: int, gen: torch.Generator | None) -> torch.Tensor:
            return pts[torch.randint(0, pts.shape[0], (m,), generator=gen)]

    refs = [draw(n, g).numpy() for _ in range(SW_REPEATS)]
    g_floor = torch.Generator().manual_seed(20_000)
    floor = data_floor(draw, n, partial(sliced_wasserstein, n_projections=N_PROJECTIONS, generator=g_floor),
                       repeats=FLOOR_REPEATS, generator=g_floor)
    overlay = refs[0] if choice.toy is not None else pts.numpy()
    if len(overlay) > N_OVERLAY:  # a random subset: a user's file may be ordered (by class, along a curve)
        overlay = overlay[np.random.default_rng(0).permutation(len(overlay))[:N_OVERLAY]]
    return {"refs": refs, "floor": float(floor), "overlay": np.asarray(overlay, dtype=np.float32)}


def sw_to_data(x0: np.ndarray | torch.Tensor, ref: dict[str, Any]) -> float:
    """Sliced Wasserstein of samples to the reference draws (mean over draws; projection seed r for draw r);
    inf when a sampler diverged (non-finite samples)."""
    x = torch.as_tensor(np.asarray(x0), dtype=torch.float64)
    if not ref["refs"]:
        return float("nan")
    if not torch.isfinite(x).all():
        return float("inf")
    vals = [sliced_wasserstein(x, r, n_projections=N_PROJECTIONS, generator=torch.Generator().manual_seed(i))
            for i, r in enumerate(ref["refs"])]
    return float(np.mean(vals))


# --- one sampler run, cached --------------------------------------------------------------------------------


@st.cache_data(max_entries=48, show_spinner=False)
def run_sampler(token: str, exact: bool, method: str, steps: int, n: int, seed: int,
                options: tuple[tuple[str, Any], ...] = (), n_frames: int = 25, n_paths: int = 8,
                path_points: int = 100) -> dict[str, Any]:
    """sample() from x_T = N(0, I) drawn from ``seed`` (the same x_T for every method), subsampled for display.

    Returns frames (the state x_t and the x0 prediction at up to ``n_frames`` steps, first x_T, last the
    sample), the paths of the first ``n_paths`` particles at up to ``path_points`` states, the paper
    timestep of each frame (T..1, 0 for the sample), nfe, wall seconds of the sample() call, and SW / floor.
    """
    choice = resolve(token, exact)
    s = choice.schedule
    x_T = torch.from_numpy(gaussian_noise(n, seed))
    g = torch.Generator().manual_seed(seed + 1)
    t0 = time.perf_counter()
    traj = sample(choice.eps_model, s, x_T, method=method, steps=int(steps), generator=g, **dict(options))
    seconds = time.perf_counter() - t0
    K = len(traj.timesteps)
    idx = traj.frame_indices(n_frames)
    xs = traj.xs.float()
    x0_preds = torch.cat([traj.x0_preds.float(), xs[-1:]])  # the sample is its own "prediction"
    t_paper = traj.state_timesteps()  # T..1, then 0 for the sample
    alpha_bar = traj.state_alpha_bars(s)
    path_idx = traj.frame_indices(path_points + 1)
    x0 = xs[-1].numpy()
    ref = data_reference(token, n)
    sw = sw_to_data(x0, ref)
    return {
        "method": method, "steps": K, "nfe": int(traj.nfe), "seconds": seconds,
        "frame_idx": idx, "frame_t": t_paper[idx], "frame_alpha_bar": alpha_bar[idx],
        "xs": xs[torch.as_tensor(idx)].numpy(), "x0_preds": x0_preds[torch.as_tensor(idx)].numpy(),
        "path_idx": path_idx, "paths": xs[torch.as_tensor(path_idx), :n_paths].numpy(),
        "x0": x0, "sw": sw, "floor": ref["floor"], "ratio": _ratio(sw, ref["floor"]),
        "outside": int((~np.isfinite(x0).all(1) | (np.abs(x0) > plots.LIM).any(1)).sum()),
    }


def frame_paths(run: dict[str, Any], frame: int) -> list[np.ndarray]:
    """The particles' paths from x_T up to frame ``frame`` (each (k, 2))."""
    upto = run["path_idx"] <= run["frame_idx"][frame]
    return [run["paths"][upto, j] for j in range(run["paths"].shape[1])]


def frame_label(run: dict[str, Any], k: int) -> str:
    t, last = float(run["frame_t"][k]), k == len(run["frame_idx"]) - 1
    if last:
        return f"t = 0: the sample ({run['steps']} steps)"
    return f"t = {nice_t(t)}   step {int(run['frame_idx'][k])}/{run['steps']}   ᾱ_t = {run['frame_alpha_bar'][k]:.3g}"


def _ratio(sw: float, floor: float) -> float:
    """SW / floor; nan when there is no usable floor (no data, or a cloud of identical points)."""
    return sw / floor if floor > 0 else float("nan")


def fmt_ratio(r: float) -> str:
    """SW / floor for display: 1.23×, "diverged" (non-finite samples) or "n/a" (no data to compare with)."""
    if math.isnan(r):
        return "n/a"
    return "diverged" if math.isinf(r) else f"{r:.2f}×"


# --- figures ------------------------------------------------------------------------------------------------


def _panel_axes(i: int, domain: tuple[float, float], lim: float) -> dict:
    sx = "" if i == 1 else str(i)
    # no grid (with hidden ticks only one axis would draw one): a light frame around each square instead
    common = dict(range=[-lim, lim], constrain="domain", zeroline=False, showticklabels=False, showgrid=False,
                  showline=True, mirror=True, linecolor="#d1d5db", linewidth=1)
    return {f"xaxis{sx}": dict(common, domain=list(domain), anchor=f"y{sx}"),
            f"yaxis{sx}": dict(common, scaleanchor=f"x{sx}", scaleratio=1, anchor=f"x{sx}")}


def _markers(points: np.ndarray, color: str, axis: str = "", size: float = 3, opacity: float = 0.55,
             name: str = "", outline: bool = False) -> dict:
    """A marker trace as a plain dict: Plotly builds a figure from dicts ~10x faster than from go.Scatter
    objects, which matters for 25 frames x 5 traces on every new run."""
    p = np.asarray(points, np.float32).reshape(-1, 2)
    marker = dict(size=size, color=color, opacity=opacity, line=dict(width=1, color="white") if outline else
                  dict(width=0))
    return dict(type="scatter", x=p[:, 0], y=p[:, 1], mode="markers", name=name, marker=marker, hoverinfo="skip",
                showlegend=False, xaxis=f"x{axis}", yaxis=f"y{axis}")


def _paths_and_heads(paths: list[np.ndarray], axis: str = "") -> list[dict]:
    """All particle paths as one NaN-separated line trace, and their current positions as markers."""
    if paths:
        line = np.concatenate([np.vstack([np.asarray(p, np.float32), [[np.nan, np.nan]]]) for p in paths])
        heads = np.stack([np.asarray(p, np.float32)[-1] for p in paths])
    else:
        line = heads = np.empty((0, 2), np.float32)
    return [dict(type="scatter", x=line[:, 0], y=line[:, 1], mode="lines", name="particle paths", hoverinfo="skip",
                 line=dict(color=plots.PATH_COLOR, width=1), opacity=0.7, showlegend=False, connectgaps=False,
                 xaxis=f"x{axis}", yaxis=f"y{axis}"),
            _heads(heads, axis)]


def _heads(heads: np.ndarray, axis: str = "") -> dict:
    return _markers(heads, plots.PATH_COLOR, axis, size=7, opacity=1.0, name="particles", outline=True)


X0_COLOR = "#059669"


def reverse_animation(run: dict[str, Any], overlay: np.ndarray, lim: float = plots.LIM, height: int = 560,
                      frame_ms: int = 200) -> go.Figure:
    """Two panels animated together: x_t with the particles' paths (left) and the network's x0 prediction
    with the same particles' predictions (right), over a grey data overlay; Play / Pause and a step slider.

    Traces: 0, 1 the static overlays; 2-4 x_t, paths, heads (left); 5, 6 x0 prediction, heads (right).
    Frames update traces 2-6 only.
    """
    n_paths = run["paths"].shape[1]

    def dynamic(k: int) -> list[dict]:
        return [_markers(run["xs"][k], plots.POINT_COLOR, name="x_t"),
                *_paths_and_heads(frame_paths(run, k)),
                _markers(run["x0_preds"][k], X0_COLOR, "2", name="x̂₀"),
                _heads(run["x0_preds"][k][:n_paths], "2")]

    static = [_markers(overlay, plots.DATA_COLOR, axis, opacity=0.35, name="data") for axis in ("", "2")]
    labels = [frame_label(run, k) for k in range(len(run["frame_idx"]))]
    frames = [dict(data=dynamic(k), traces=[2, 3, 4, 5, 6], name=labels[k]) for k in range(len(labels))]
    gap = 0.04
    layout: dict = {}
    layout.update(_panel_axes(1, (0.0, 0.5 - gap / 2), lim))
    layout.update(_panel_axes(2, (0.5 + gap / 2, 1.0), lim))
    layout.update(height=height, margin=dict(l=10, r=10, t=30, b=90, pad=0), showlegend=False,
                  **plots.pair_animation_controls(labels, ("x_t: where the sampler is",
                                                           "x̂₀(x_t): where the model says it is going"),
                                                  gap, frame_ms))
    return go.Figure(dict(data=static + dynamic(0), frames=frames, layout=layout))


def export_settings(choice: ModelChoice, method: str, steps: int, n: int, seed: int,
                    options: tuple[tuple[str, Any], ...] = ()) -> dict[str, Any]:
    """What made a run, for an export's file name and metadata: the model (``exact-<toy>`` for the exact score),
    the sampler, its steps and options, the points and the seed."""
    token, exact = split_token(choice)
    return {"model": f"exact-{choice.toy}" if exact else token, "sampler": method, "steps": int(steps),
            **dict(options), "n": int(n), "seed": int(seed)}


def reverse_gif(run: dict[str, Any], overlay: np.ndarray, settings: dict[str, Any], lim: float = plots.LIM,
                frame_ms: int = 200) -> bytes:
    """``reverse_animation`` as a GIF (exports.animation_gif): x_t with the particles' paths beside the x0
    prediction, over the grey data, at every stored frame."""
    n_paths = run["paths"].shape[1]
    frames = []
    for k in range(len(run["frame_idx"])):
        paths = frame_paths(run, k)
        x_t = exports.titled(exports.scatter_frame(run["xs"][k], lim, color=plots.POINT_COLOR, overlay=overlay,
                                                   paths=paths), "x_t")
        x0 = exports.titled(exports.scatter_frame(run["x0_preds"][k], lim, color=X0_COLOR, overlay=overlay,
                                                  paths=list(run["x0_preds"][k][:n_paths, None])),
                            "predicted x0")
        frames.append(exports.side_by_side(x_t, x0))
    labels = [f"t = 0: the sample ({run['steps']} steps)" if k == len(run["frame_idx"]) - 1 else
              f"t = {nice_t(float(run['frame_t'][k]))}   step {int(run['frame_idx'][k])} of {run['steps']}"
              for k in range(len(run["frame_idx"]))]
    return exports.animation_gif(frames, frame_ms, settings, labels)


@st.cache_resource(max_entries=16, show_spinner=False)
def animation_figure(token: str, exact: bool, method: str, steps: int, n: int, seed: int,
                     options: tuple[tuple[str, Any], ...] = ()) -> go.Figure:
    """reverse_animation of run_sampler(...) over the data overlay, built once per input (building the 25
    Plotly frames takes longer than the page's other work; the figure is never mutated afterwards)."""
    run = run_sampler(token, exact, method, steps, n, seed, options)
    return reverse_animation(run, data_reference(token, n)["overlay"])


def sampler_panel(points: np.ndarray | None, overlay: np.ndarray | None, color: str,
                  paths: list[np.ndarray] | None = None, lim: float = plots.LIM, height: int = 240) -> go.Figure:
    """One square panel: grey data, the cloud in the sampler's colour, orange particle paths on top."""
    traces: list[dict] = []
    if overlay is not None:
        traces.append(_markers(overlay, plots.DATA_COLOR, opacity=0.35, name="data"))
    if points is not None:
        traces.append(_markers(points, color, opacity=0.6, name="samples"))
    if paths is not None:
        traces.extend(_paths_and_heads(paths))
    axes = _panel_axes(1, (0.0, 1.0), lim)
    for ax in axes.values():  # one panel: no explicit domain, or Plotly widens the x range instead of the domain
        ax.pop("domain", None)
        ax.pop("anchor", None)
    layout = dict(axes, height=height, margin=dict(l=4, r=4, t=4, b=4, pad=0), showlegend=False)
    return go.Figure(dict(data=traces, layout=layout))


# --- quality vs NFE ------------------------------------------------------------------------------------------


@st.cache_data(max_entries=8, show_spinner=False)
def _read_benchmark(path: str, mtime: float) -> dict[str, Any] | None:
    try:
        raw = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    if not isinstance(raw, dict) or not isinstance(raw.get("rows"), list):
        return None
    keep = ("toy", "model", "method", "nfe", "ratio", "seconds")
    rows = [{k: r.get(k) for k in keep} for r in raw["rows"] if isinstance(r, dict)]
    df = pd.DataFrame(rows, columns=list(keep))
    df = df[df["method"].isin(METHODS) & df["model"].isin(("learned", "exact"))]
    for c in ("nfe", "ratio", "seconds"):
        df[c] = pd.to_numeric(df[c], errors="coerce")
    settings = raw.get("settings") if isinstance(raw.get("settings"), dict) else {}
    return {"rows": df.reset_index(drop=True), "n": settings.get("n"), "hardware": raw.get("hardware"),
            "threads": raw.get("threads"), "created": raw.get("created")}


def benchmark_rows(toy: str | None, path: Path | None = None) -> tuple[pd.DataFrame, dict[str, Any]] | None:
    """Rows of benchmarks/results/samplers.json for the pretrained model of ``toy`` (None: no file, no rows)."""
    path = Path(path or BENCHMARK_JSON)
    if toy is None or not path.is_file():
        return None
    bench = _read_benchmark(str(path), path.stat().st_mtime)
    if bench is None:
        return None
    df = bench["rows"]
    df = df[(df["toy"] == toy) & np.isfinite(df["ratio"]) & (df["ratio"] > 0) & (df["nfe"] > 0)]
    if df.empty:
        return None
    return df.drop(columns="toy").reset_index(drop=True), bench


@st.cache_data(max_entries=1024, show_spinner=False)
def quality_cell(token: str, exact: bool, method: str, nfe: int, n: int, seed: int,
                 options: tuple[tuple[str, Any], ...]) -> dict[str, Any] | None:
    """One point of the quality-vs-NFE chart: ``method`` at an NFE budget, keep_trajectory=False, timed."""
    choice = resolve(token, exact)
    steps = steps_for_nfe(method, nfe, choice.schedule.T)
    if steps is None:
        return None
    x_T = torch.from_numpy(gaussian_noise(n, seed))
    t0 = time.perf_counter()
    traj = sample(choice.eps_model, choice.schedule, x_T, method=method, steps=steps,
                  generator=torch.Generator().manual_seed(seed + 1), keep_trajectory=False, **dict(options))
    seconds = time.perf_counter() - t0
    ref = data_reference(token, n)
    sw = sw_to_data(traj.x0.numpy(), ref)
    return {"model": "exact" if exact else "learned", "method": method, "nfe": int(traj.nfe),
            "ratio": r if math.isfinite(r := _ratio(sw, ref["floor"])) else None, "seconds": seconds}


def on_demand_grid(token: str, kinds: Sequence[bool], n: int, seed: int,
                   options: dict[str, tuple[tuple[str, Any], ...]], progress=None) -> pd.DataFrame:
    """Every method at every ON_DEMAND_NFE budget for each kind (False: learned, True: exact score)."""
    cells = [(exact, m, k) for exact in kinds for m in METHODS for k in ON_DEMAND_NFE]
    rows = []
    for i, (exact, m, k) in enumerate(cells):
        if progress is not None:
            progress.progress(i / len(cells), text=f"{'exact' if exact else 'learned'} · {METHOD_LABELS[m]} · "
                                                   f"NFE {k}  ({i + 1}/{len(cells)})")
        r = quality_cell(token, exact, m, k, n, seed, options[m])
        if r is not None:
            rows.append(r)
    if progress is not None:
        progress.progress(1.0, text=f"{len(rows)} runs done")
    return pd.DataFrame(rows, columns=["model", "method", "nfe", "ratio", "seconds"])


def quality_chart(df: pd.DataFrame, x: str = "nfe", height: int = 300) -> alt.LayerChart:
    """SW / floor against NFE (or wall seconds), log-log; one colour per method (a sampler of METHODS or a flow
    series of FLOW_LABELS), learned solid, exact dashed; a dotted rule at the data floor (ratio 1)."""
    df = df.copy()
    df = df[np.isfinite(pd.to_numeric(df["ratio"], errors="coerce")) & (df[x] > 0)]
    df["sampler"] = df["method"].map(SERIES_LABELS)
    methods = [m for m in SERIES_LABELS if m in set(df["method"])]
    domain = [SERIES_LABELS[m] for m in methods]
    x_title = "network evaluations (NFE, log scale)" if x == "nfe" else "wall time of sample() (s, log scale)"
    kinds = [k for k in ("learned", "exact") if k in set(df["model"])] or ["learned"]
    height = max(height, 32 * len(methods) + 20)  # room for every legend entry (with the flow lines, up to 11)
    lines = alt.Chart(df, height=height).mark_line(point=True, strokeWidth=2).encode(
        x=alt.X(f"{x}:Q", title=x_title, scale=alt.Scale(type="log", nice=False, padding=8)),
        y=alt.Y("ratio:Q", title="sliced Wasserstein / data floor (log)", scale=alt.Scale(type="log", nice=False,
                                                                                          padding=8)),
        color=alt.Color("sampler:N", scale=alt.Scale(domain=domain, range=[SERIES_COLORS[m] for m in methods]),
                        legend=alt.Legend(orient="right", title="sampler", labelLimit=260)),
        strokeDash=alt.StrokeDash("model:N", scale=alt.Scale(domain=kinds, range=[[1, 0] if k == "learned"
                                                                                  else [6, 4] for k in kinds]),
                                  legend=None),  # said in words beside the chart: stroke legends draw no dash
        detail="model:N",
        tooltip=[alt.Tooltip("sampler:N"), alt.Tooltip("model:N", title="score"), alt.Tooltip("nfe:Q", title="NFE"),
                 alt.Tooltip("ratio:Q", title="SW / floor", format=".3g"),
                 alt.Tooltip("seconds:Q", title="wall s", format=".3g")],
    )
    floor = alt.Chart(pd.DataFrame({"ratio": [1.0]})).mark_rule(color="#6b7280", strokeDash=[2, 3]).encode(
        y=alt.Y("ratio:Q"))
    return alt.layer(lines, floor).interactive(bind_y=False)
