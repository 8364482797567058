"""Helpers of the Flow matching page (dashboard/views/flow.py), and the flow lines of the Samplers page's
quality-vs-NFE chart: the shipped flows of a toy, cached runs of their solvers (keyed on the toy, never on a
model object), the exact marginal velocity of the mixture toys, DDIM drawn on the flow's coordinates, the
straightness of a path (Liu et al. 2023) and the quality-vs-NFE cells, measured as the Samplers page measures its
samplers (sliced Wasserstein to fresh data over the data floor, dashboard.ui.sampling).

The flows are fm-<toy> (conditional flow matching, Lipman et al. 2023) and, for a few toys, fm-reflow-<toy> (one
round of reflow, Liu et al. 2023). Nothing here trains.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st
import torch

from core import checkpoints
from core.analytic import toy_mixture
from core.flow import (
    VelocityModel,
    nfe_for,
    on_flow_axes,
    path_sample,
    path_straightness,
    sample_flow,
    straightness,
)
from core.flow import steps_for_nfe as flow_steps_for_nfe
from core.samplers import sample
from dashboard.ui import sampling, score_field
from dashboard.ui.loaders import gaussian_noise, is_mixture, pretrained, pretrained_problem, toy_points

# A series of the quality charts: (which shipped flow, solver). Labels and colours live with the Samplers page's
# (dashboard.ui.sampling.FLOW_LABELS), so both charts draw a series alike.
FLOW_SERIES: dict[str, tuple[str, str]] = {
    "flow_euler": ("fm", "euler"),
    "flow_midpoint": ("fm", "midpoint"),
    "flow_heun": ("fm", "heun"),
    "reflow_euler": ("fm-reflow", "euler"),
}
DEFAULT_TOY = "eight_gaussians"  # the pages' default: its charts are computed on the first visit (the warm-up's)
QUALITY_NFE = (1, 2, 5, 10, 20, 50, 100)  # the Flow matching page's chart
QUALITY_N = 2000
QUALITY_SEED = 0
COLUMNS = ("model", "method", "nfe", "ratio", "seconds")  # a quality chart's rows (dashboard.ui.sampling)
# The diffusion lines of the Flow matching page: DDIM with trailing spacing (its first step is at T - 1, so one
# step is a fair comparison: leading spacing starts one step at t = 0, where the noise is taken for data).
DDIM_OPTIONS: tuple[tuple[str, Any], ...] = (("eta", 0.0), ("spacing", "trailing"))
DIFFUSION_SERIES: dict[str, tuple[tuple[str, Any], ...]] = {"ddim": DDIM_OPTIONS, "dpm_solver_2m": ()}
# The flow lines on the Samplers page's benchmark chart (those up to its largest NFE), on the benchmark's n points:
# at n = 5000, about 5 s of network calls per toy on one core.
SAMPLERS_FLOW_NFE = (5, 10, 20, 50)
SAMPLERS_FLOW_SEED = 0
MAX_FLOW_N = 10_000  # a benchmark of more points gets no flow lines computed here
STRAIGHTNESS_STEPS = 100  # straightness is a property of the ODE: measured once per toy, whatever the page's seed
STRAIGHTNESS_N = 500
STRAIGHTNESS_SEED = 0


def fm_name(toy: str) -> str:
    """The shipped flow-matching model of a toy."""
    return f"fm-{toy}"


def reflow_name(toy: str) -> str:
    """The shipped rectified flow (one round of reflow) of a toy, where there is one."""
    return f"fm-reflow-{toy}"


def reflow_toys() -> list[str]:
    """The toys with a shipped fm-reflow-<toy> (both files present)."""
    names = checkpoints.pretrained_names(checkpoints.PRETRAINED_DIR)
    return [n.removeprefix("fm-reflow-") for n in names if n.startswith("fm-reflow-")]


def has_reflow(toy: str) -> bool:
    """Whether fm-reflow-<toy> is shipped and loads."""
    return toy in reflow_toys() and pretrained_problem(reflow_name(toy)) is None


def velocity_model(toy: str, kind: str) -> VelocityModel:
    """kind "fm", "reflow" (the shipped networks) or "exact" (the mixture's marginal velocity, core.analytic)."""
    if kind == "exact":
        if not is_mixture(toy):
            raise ValueError(f"the exact velocity is known only for the Gaussian-mixture toys; got {toy!r}")
        return toy_mixture(toy).as_velocity_model()
    if kind not in ("fm", "reflow"):
        raise ValueError(f"unknown flow {kind!r}; expected fm, reflow or exact")
    return pretrained(fm_name(toy) if kind == "fm" else reflow_name(toy)).model


# --- the path's pieces on a grid and along paths -------------------------------------------------------------


@st.cache_data(max_entries=64, show_spinner=False)
def pair_paths(toy: str, m: int, seed: int, steps: int = 100) -> dict[str, np.ndarray | None]:
    """m noises x_0 and m independent data points x_1 (the pairs the loss regresses on, each joined by a straight
    conditional path), and the marginal flow's paths from the same x_0: learned (fm-<toy>) and, on a mixture toy,
    exact, each (steps + 1, m, 2) by Heun's rule."""
    x_0 = torch.from_numpy(gaussian_noise(m, seed + 11))
    x_1 = toy_points(toy, m, seed + 12)
    out: dict[str, np.ndarray | None] = {"x0": x_0.numpy(), "x1": x_1, "exact": None}
    for kind in ("fm", "exact") if is_mixture(toy) else ("fm",):
        traj = sample_flow(velocity_model(toy, kind), x_0, steps=steps // 2, method="heun")
        out["learned" if kind == "fm" else "exact"] = traj.xs.float().numpy()
    return out


@st.cache_data(max_entries=128, show_spinner=False)
def velocity_on_grid(toy: str, kind: str, t: float, n: int, lim: float) -> np.ndarray:
    """v(x, t) (n * n, 2) of the learned ("fm") or the exact flow on the n x n grid of [-lim, lim]^2 (row-major,
    as dashboard.ui.score_field.grid)."""
    x = torch.from_numpy(score_field.grid(n, lim)[1])
    with torch.no_grad():
        v = velocity_model(toy, kind)(x, torch.full((len(x),), float(t)))
    return v.float().numpy()


@st.cache_data(max_entries=64, show_spinner=False)
def x_t_draws(toy: str, t: float, n: int, seed: int) -> np.ndarray:
    """n draws of the path's marginal p_t: x_t = t x_1 + (1 - t) x_0, x_1 data and x_0 ~ N(0, I)."""
    x_0 = torch.from_numpy(gaussian_noise(n, seed + 21))
    x_1 = torch.from_numpy(toy_points(toy, n, seed + 22))
    return path_sample(x_0, x_1, torch.full((n,), float(t))).numpy()


@st.cache_data(max_entries=64, show_spinner=False)
def loss_at_t(toy: str, t: float, n: int, seed: int) -> dict[str, float]:
    """The conditional flow-matching loss at this t alone, E || v(x_t, t) - (x_1 - x_0) ||^2, for fm-<toy> and
    (mixtures) the exact velocity, on the same pairs; with "gap" = E || v_theta - v ||^2 and "rms" its root, where
    x_t lies."""
    x_0 = torch.from_numpy(gaussian_noise(n, seed + 31))
    x_1 = torch.from_numpy(toy_points(toy, n, seed + 32))
    tt = torch.full((n,), float(t))
    x_t, target = path_sample(x_0, x_1, tt), x_1 - x_0
    with torch.no_grad():
        v = velocity_model(toy, "fm")(x_t, tt).float()
    out = {"learned": float((v - target).pow(2).sum(1).mean())}
    if is_mixture(toy):
        exact = velocity_model(toy, "exact")(x_t, tt).float()
        out["exact"] = float((exact - target).pow(2).sum(1).mean())
        out["gap"] = float((v - exact).pow(2).sum(1).mean())
        out["rms"] = math.sqrt(out["gap"])
    return out


@st.cache_data(max_entries=16, show_spinner=False)
def end_velocity_error(toy: str, n: int, seed: int) -> float:
    """RMS of v_theta(x_1, 1) - x_1 over n data points: at t = 1 the point is the data itself and its noise averages
    to 0, so the exact velocity of any data set is v(x, 1) = x there (off the data, nothing is learned)."""
    x_1 = torch.from_numpy(toy_points(toy, n, seed + 33))
    with torch.no_grad():
        v = velocity_model(toy, "fm")(x_1, torch.ones(n)).float()
    return float((v - x_1).pow(2).sum(1).mean().sqrt())


# --- trajectories from the same noise ------------------------------------------------------------------------


@st.cache_data(max_entries=64, show_spinner=False)
def trajectory(toy: str, kind: str, steps: int, n: int, seed: int, n_paths: int = 12) -> dict[str, Any]:
    """One run from the noise of ``seed`` (the same x_0 for every kind): kind "fm" or "reflow" with ``steps``
    Euler steps, or "ddim" (ddpm-<toy>, trailing spacing, ``steps`` steps) drawn on the flow's coordinates.

    Returns the samples, the paths of the first ``n_paths`` particles (K + 1, n_paths, 2), the flow time of each
    state, nfe and SW / floor.
    """
    x_0 = torch.from_numpy(gaussian_noise(n, seed))
    if kind == "ddim":
        p = pretrained(f"ddpm-{toy}")
        traj = sample(p.model, p.schedule, x_0, method="ddim", steps=int(steps), **dict(DDIM_OPTIONS))
        times, states = on_flow_axes(traj, p.schedule)
        states = states.float()
    else:
        traj = sample_flow(velocity_model(toy, kind), x_0, steps=int(steps), method="euler")
        times, states = np.linspace(0.0, 1.0, int(steps) + 1), traj.xs
    x = states[-1].numpy()
    ref = sampling.data_reference(fm_name(toy), n)
    sw = sampling.sw_to_data(x, ref)
    return {"x": x, "paths": states[:, :n_paths].numpy(), "times": np.asarray(times), "nfe": int(traj.nfe),
            "ratio": sw / ref["floor"] if ref["floor"] > 0 else float("nan")}


@st.cache_data(max_entries=32, show_spinner=False)
def straightness_of(toy: str, kind: str, seed: int = STRAIGHTNESS_SEED, steps: int = STRAIGHTNESS_STEPS,
                    n: int = STRAIGHTNESS_N) -> float:
    """Straightness of the ODE's paths from n noises (Liu et al. 2023; 0 = straight): core.flow.straightness for
    "fm", "reflow" and "exact"; for "ddim" the same measure on DDIM's path drawn on the flow's axes
    (``core.flow.path_straightness``), ``steps`` steps each."""
    x_0 = torch.from_numpy(gaussian_noise(n, seed + 41))
    if kind == "ddim":
        p = pretrained(f"ddpm-{toy}")
        traj = sample(p.model, p.schedule, x_0, method="ddim", steps=steps, **dict(DDIM_OPTIONS))
        return path_straightness(*on_flow_axes(traj, p.schedule))
    return straightness(velocity_model(toy, kind), x_0, steps=steps)


# --- quality against NFE -----------------------------------------------------------------------------------------


@st.cache_data(max_entries=2048, show_spinner=False)
def flow_quality_cell(toy: str, series: str, nfe: int, n: int, seed: int, exact: bool = False
                      ) -> dict[str, Any] | None:
    """One point of a quality chart: a flow series (FLOW_SERIES) on a budget of ``nfe`` evaluations from the
    noise of ``seed`` (the diffusion samplers' x_T of the same seed), measured like dashboard.ui.sampling's
    quality_cell. ``exact``: the mixture's exact velocity with the same solver (None for reflow or a toy that is
    not a mixture); None too when the budget is below one step of the solver."""
    kind, method = FLOW_SERIES[series]
    if exact and (kind != "fm" or not is_mixture(toy)):
        return None
    model = velocity_model(toy, "exact" if exact else "fm" if kind == "fm" else "reflow")
    steps = flow_steps_for_nfe(method, nfe)
    if nfe_for(method, steps) > nfe:  # a two-evaluation solver on a budget of one
        return None
    x_0 = torch.from_numpy(gaussian_noise(n, seed))
    t0 = time.perf_counter()
    x = sample_flow(model, x_0, steps=steps, method=method, keep_trajectory=False).xs[-1]
    seconds = time.perf_counter() - t0
    ref = sampling.data_reference(fm_name(toy), n)
    ratio = sampling.sw_to_data(x.float().numpy(), ref) / ref["floor"] if ref["floor"] > 0 else float("nan")
    return {"model": "exact" if exact else "learned", "method": series, "nfe": nfe_for(method, steps),
            "ratio": ratio if math.isfinite(ratio) else None, "seconds": seconds, "budget": nfe}


def flow_toy_of(token: str, toy: str | None) -> str | None:
    """The toy whose fm-<toy> draws flow lines beside the Samplers page's chart: the page's model must be the
    pretrained ddpm-<toy>, and fm-<toy> must load; otherwise None."""
    if toy is None or token != f"ddpm-{toy}" or pretrained_problem(fm_name(toy)) is not None:
        return None
    return toy


def benchmark_n(meta: dict[str, Any]) -> int | None:
    """The points per run of a benchmark (the samplers JSON's settings.n), if it is one the flow lines can match."""
    n = meta.get("n")
    return int(n) if isinstance(n, int) and not isinstance(n, bool) and 2 <= n <= MAX_FLOW_N else None


def flow_series_of(toy: str) -> list[str]:
    """The flow series a toy has: fm-<toy>'s three solvers, and reflow when fm-reflow-<toy> is shipped."""
    return [s for s in FLOW_SERIES if s != "reflow_euler" or has_reflow(toy)]


def flow_rows(toy: str, nfes: Sequence[int], n: int, seed: int, kinds: Sequence[bool] = (False,),
              progress=None, start: float = 0.0, share: float = 1.0) -> pd.DataFrame:
    """The flow lines of a quality chart: every flow series of the toy at every budget, for each kind (False:
    learned, True: the exact velocity, mixtures only). ``progress``: an st.progress bar, advanced over
    [start, start + share]."""
    cells = [(exact, s, k) for exact in kinds for s in flow_series_of(toy) for k in nfes
             if not exact or (s != "reflow_euler" and is_mixture(toy))]
    rows = []
    for i, (exact, s, k) in enumerate(cells):
        if progress is not None:
            progress.progress(min(1.0, start + share * i / len(cells)),
                              text=f"{'exact' if exact else 'learned'} · {sampling.FLOW_LABELS[s]} · NFE {k}  "
                                   f"({i + 1}/{len(cells)})")
        r = flow_quality_cell(toy, s, int(k), int(n), int(seed), exact)
        if r is not None:
            rows.append(r)
    return pd.DataFrame(rows, columns=[*COLUMNS, "budget"])


def quality_grid(toy: str, progress=None, n: int | None = None, seed: int | None = None,
                 nfes: Sequence[int] | None = None, diffusion: bool = True) -> pd.DataFrame:
    """The Flow matching page's chart: the flow series and (``diffusion``) DDIM / DPM-Solver++(2M) of ddpm-<toy>
    at every budget (diffusion cells through dashboard.ui.sampling.quality_cell, the Samplers page's). n, seed,
    nfes default to QUALITY_N, QUALITY_SEED and QUALITY_NFE (read at call time)."""
    n = QUALITY_N if n is None else n
    seed = QUALITY_SEED if seed is None else seed
    nfes = QUALITY_NFE if nfes is None else nfes
    cells = [(m, k) for m in DIFFUSION_SERIES for k in nfes] if diffusion else []
    share = len(flow_series_of(toy)) / (len(flow_series_of(toy)) + (len(DIFFUSION_SERIES) if diffusion else 0))
    flows = flow_rows(toy, nfes, n, seed, progress=progress, share=share)
    rows = []
    for i, (m, k) in enumerate(cells):
        if progress is not None:
            progress.progress(min(1.0, share + (1 - share) * i / len(cells)),
                              text=f"{sampling.METHOD_LABELS[m]} · NFE {k}  ({i + 1}/{len(cells)})")
        r = sampling.quality_cell(f"ddpm-{toy}", False, m, int(k), int(n), int(seed), DIFFUSION_SERIES[m])
        if r is not None:
            rows.append({**r, "budget": int(k)})
    if progress is not None:
        progress.progress(1.0, text="done")
    return pd.concat([flows, pd.DataFrame(rows, columns=flows.columns)], ignore_index=True) if rows else flows


def budget_table(df: pd.DataFrame) -> pd.DataFrame:
    """A quality grid as a table: one row per series (its label), one column per NFE budget, SW / floor as text
    ("—" where the solver cannot run on that budget, "diverged" where its samples are not finite)."""
    labels = [sampling.SERIES_LABELS[m] for m in sampling.SERIES_LABELS if m in set(df["method"])]
    budgets = sorted(set(int(b) for b in df["budget"]))
    cells = {(sampling.SERIES_LABELS[r.method], int(r.budget)): r.ratio for r in df.itertuples()}

    def text(key: tuple[str, int]) -> str:
        if key not in cells:
            return "—"
        v = cells[key]
        return "diverged" if v is None or not math.isfinite(v) else f"{v:.2f}×"

    return pd.DataFrame({f"NFE {b}": [text((lab, b)) for lab in labels] for b in budgets},
                        index=pd.Index(labels, name="series"))
