"""Helpers of the Guidance page (dashboard/views/guidance.py): classifier guidance (Dhariwal & Nichol 2021) beside
classifier-free guidance (Ho & Salimans 2022) on the labelled 2D toys, judged against the exact class-conditional
p(x | y) (core.guidance_eval): guided samples from one x_T, the guidance field grad log p(y | x_t) on a grid, a sweep
over scales (each method's scales as one batch), and the MNIST benchmark's file read and checked. Cached on hashable
arguments (never on a model object); nothing here trains.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st
import torch

from core.analytic import toy_mixture
from core.diffusion import EpsModel
from core.guidance import RowwiseGuidance, classifier_guidance, classifier_log_prob
from core.guidance_eval import conditional_draws, conditional_floor, conditional_sw, fidelity
from core.samplers import sample
from core.schedules import Schedule
from dashboard.ui import score_field
from dashboard.ui.loaders import (
    ROOT,
    ResultsProblem,
    finite_number,
    gaussian_noise,
    is_mixture,
    pretrained,
    pretrained_problem,
    results_json,
)

TOYS: tuple[str, ...] = ("eight_gaussians", "twenty_five_gaussians", "two_moons", "swiss_roll")  # ddpm-cond-<toy>
DEFAULT_TOY = "eight_gaussians"
# The four samplers of the page: the conditional network alone (w = 1), classifier-free guidance, and classifier
# guidance of the same network's unconditional (null-label) pass, by the exact q(y | x_t) or the noisy classifier.
METHODS: tuple[str, ...] = ("conditional", "cfg", "cg_exact", "cg_learned")
SWEPT: tuple[str, ...] = ("cfg", "cg_exact", "cg_learned")  # the conditional model is the sweeps' point w = 1
METHOD_LABELS: dict[str, str] = {"conditional": "conditional model", "cfg": "classifier-free",
                                 "cg_exact": "exact classifier", "cg_learned": "noisy classifier"}
METHOD_COLORS: dict[str, str] = {"conditional": "#0891b2", "cfg": "#4f46e5", "cg_exact": "#059669",
                                 "cg_learned": "#d97706"}
SCALES: tuple[float, ...] = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0)  # the sweep's guidance scales
STEPS = 50  # DDIM steps of every sample on the page
# Points per panel, read at call time (tests lower it): a new scale runs three DDIM chains of N_PANEL points.
N_PANEL = 300
SWEEP_JSON = ROOT / "benchmarks" / "results" / "guidance_2d.json"  # read at call time: tests point it away
SWEEP_COMMAND = "python benchmarks/guidance_2d.py --n --json benchmarks/results/guidance_2d.json"
FIELD_LIM = score_field.FIELD_LIM
FIELD_N = 21  # arrows per side
HEAT_N = 50  # cells per side of the class-probability map under them


def model_name(toy: str) -> str:
    """The shipped class-conditional denoiser of a toy (trained with a null label, p_uncond = 0.1)."""
    return f"ddpm-cond-{toy}"


def classifier_name(toy: str) -> str:
    """The shipped noisy classifier p_phi(y | x_t, t) of a toy (on ddpm-cond-<toy>'s cosine schedule)."""
    return f"noisy-classifier-{toy}"


def available(toy: str) -> dict[str, str | None]:
    """Each method's reason it cannot run on ``toy`` (None: it can): a model that does not load, or no closed form."""
    denoiser = pretrained_problem(model_name(toy))
    classifier = pretrained_problem(classifier_name(toy))
    denoiser_msg = denoiser and f"{model_name(toy)} cannot be loaded"
    return {"conditional": denoiser_msg, "cfg": denoiser_msg,
            "cg_exact": denoiser_msg or (None if is_mixture(toy) else "no closed form for q(y | x_t)"),
            "cg_learned": denoiser_msg or (classifier and f"{classifier_name(toy)} cannot be loaded")}


def guided_eps(toy: str, method: str, y: int, scale: float | torch.Tensor) -> tuple[EpsModel, dict[str, Any]]:
    """The eps model of ``method`` at guidance ``scale`` (one number, or one per row (N,) for a sweep) and the
    keywords ``sample`` needs with it. Classifier guidance (Dhariwal & Nichol 2021, Algorithm 2) guides the
    network's unconditional pass (y = None: its null label); classifier-free guidance (Ho & Salimans 2022, eq. 6)
    mixes its conditional and unconditional passes."""
    p = pretrained(model_name(toy))
    if method == "conditional":
        return p.model, {"y": y}
    if method == "cfg":
        if isinstance(scale, torch.Tensor):  # one scale per row: both passes in one network call
            return RowwiseGuidance(p.model, scale), {"y": y}
        return p.model, {"y": y, "guidance_scale": float(scale)}
    if method == "cg_exact":
        log_p_y = toy_mixture(toy).log_p_y(y, p.schedule)
    elif method == "cg_learned":
        log_p_y = classifier_log_prob(pretrained(classifier_name(toy)).model, y)
    else:
        raise ValueError(f"unknown method {method!r}; expected one of: {', '.join(METHODS)}")
    return classifier_guidance(p.model, log_p_y, p.schedule, None, scale), {}


@st.cache_data(max_entries=64, show_spinner=False)
def floor(toy: str, y: int, n: int, seed: int) -> float:
    """The data-vs-data floor of the sliced Wasserstein distance to p(x | y) at n points."""
    return conditional_floor(toy, int(y), int(n), int(seed))


def judge(toy: str, x: torch.Tensor, y: int, seed: int) -> tuple[float, float]:
    """Fidelity (the share of the points in class y) and the sliced Wasserstein distance to p(x | y) divided by
    its floor (1: as close as a fresh draw of p(x | y)); non-finite points are misses and left out of the SW."""
    finite = torch.isfinite(x).all(1)
    sw = conditional_sw(toy, x[finite], y, seed) if int(finite.sum()) >= 2 else math.inf
    return fidelity(toy, x, y), sw / floor(toy, y, x.shape[0], seed)


@dataclass(frozen=True)
class Guided:
    """Samples of one method at one scale, with their fidelity and SW / floor."""

    points: np.ndarray  # (n, 2)
    fidelity: float
    sw_ratio: float


@st.cache_data(max_entries=128, show_spinner=False)
def guided(toy: str, method: str, y: int, w: float, n: int, seed: int) -> Guided:
    """n DDIM samples (STEPS steps) of ``method`` at scale w (the conditional model ignores it) from x_T ~ N(0, I)
    of ``seed``: the same x_T for every method and scale, so the panels differ by the guidance alone."""
    p = pretrained(model_name(toy))
    eps_model, kwargs = guided_eps(toy, method, int(y), float(w))
    x_T = torch.from_numpy(gaussian_noise(n, seed))
    x = sample(eps_model, p.schedule, x_T, "ddim", STEPS, keep_trajectory=False, **kwargs).x0.float()
    return Guided(x.numpy(), *judge(toy, x, int(y), int(seed)))


def sweep(toy: str, y: int, methods: tuple[str, ...], path: Path | None = None) -> pd.DataFrame:
    """Fidelity and SW / floor of ``methods`` at each of SCALES for class y of ``toy``, as benchmarks/guidance_2d.py
    measured them (n = 500 per scale, DDIM-50, all scales of a method as one batch; a sweep per class takes seconds,
    too long for a control change, so the page reads it). Raises ResultsProblem naming the file and its command."""
    path = SWEEP_JSON if path is None else path
    raw, fix = results_json(path, SWEEP_COMMAND, "about 3 minutes on a 2-core CPU")
    try:
        rows = [r for r in raw["sweep"] if r["toy"] == toy and r["y"] == int(y) and r["method"] in methods]
        frame = pd.DataFrame({"method": [METHOD_LABELS[r["method"]] for r in rows],
                              **{k: [finite_number(r[k], k) for r in rows] for k in ("scale", "fidelity")},
                              # inf (every sample diverged) is written as Infinity: drawn as a gap
                              "sw_ratio": [np.nan if r["sw_ratio"] == math.inf else
                                           finite_number(r["sw_ratio"], "sw_ratio") for r in rows]})
    except (KeyError, TypeError, ResultsProblem) as err:
        raise ResultsProblem(f"**{path.name}** is damaged ({err}): {fix} again.") from None
    if frame.empty:
        raise ResultsProblem(f"**{path.name}** has no sweep of class {y} of {toy}: {fix} again.")
    return frame


@st.cache_data(max_entries=32, show_spinner=False)
def reference(toy: str, y: int, n: int, seed: int) -> np.ndarray:
    """n draws (n, 2) of p(x | y): the exact component of a mixture, labelled data of class y otherwise."""
    return conditional_draws(toy, int(y), int(n), torch.Generator().manual_seed(int(seed))).numpy()


# --- the guidance field -----------------------------------------------------------------------------------------


def field_schedule(toy: str) -> Schedule | None:
    """The schedule of the field: the noisy classifier's (ddpm-cond-<toy>'s, the same cosine schedule, if the
    classifier does not load); None when neither loads."""
    for name in (classifier_name(toy), model_name(toy)):
        if pretrained_problem(name) is None:
            return pretrained(name).schedule
    return None


def _log_p_y(toy: str, kind: str, y: int):
    if kind == "exact":
        return toy_mixture(toy).log_p_y(y, field_schedule(toy))
    if kind == "learned":
        return classifier_log_prob(pretrained(classifier_name(toy)).model, y)
    raise ValueError(f"unknown kind {kind!r}; expected 'exact' or 'learned'")


@st.cache_data(max_entries=64, show_spinner=False)
def guidance_field(toy: str, kind: str, y: int, t: int, n: int) -> np.ndarray:
    """grad_x log p(y | x_t) (n*n, 2) at the points of score_field.grid(n, FIELD_LIM): the exact q(y | x_t) of a
    mixture (kind "exact"; autograd gives its closed form, GaussianMixture.class_log_posterior_grad) or the noisy
    classifier p_phi (kind "learned"), at timestep t."""
    _, pts = score_field.grid(n, FIELD_LIM)
    x = torch.from_numpy(pts).requires_grad_(True)
    tt = torch.full((len(pts),), float(t))
    (grad,) = torch.autograd.grad(_log_p_y(toy, kind, int(y))(x, tt).sum(), x)
    return grad.float().numpy()


@st.cache_data(max_entries=64, show_spinner=False)
def class_probability(toy: str, kind: str, y: int, t: int, n: int) -> np.ndarray:
    """q(y | x_t) or p_phi(y | x_t) (n, n) on score_field.grid(n, FIELD_LIM) (row-major: [iy, ix])."""
    _, pts = score_field.grid(n, FIELD_LIM)
    with torch.no_grad():
        log_p = _log_p_y(toy, kind, int(y))(torch.from_numpy(pts), torch.full((len(pts),), float(t)))
    return log_p.exp().float().numpy().reshape(n, n)


# --- the sweep's charts -------------------------------------------------------------------------------------------


def _color(labels: list[str]) -> alt.Color:
    keys = [k for k in METHODS if METHOD_LABELS[k] in labels]
    return alt.Color("method:N", legend=alt.Legend(orient="top", title=None),
                     scale=alt.Scale(domain=[METHOD_LABELS[k] for k in keys],
                                     range=[METHOD_COLORS[k] for k in keys]))


def sweep_chart(df: pd.DataFrame, column: str, w: float, height: int = 300) -> alt.LayerChart:
    """One score of the sweep (``fidelity`` or ``sw_ratio``) against the scale, a line per method, a dashed rule
    at the page's scale w and, for SW / floor (log axis), a grey rule at 1: the floor."""
    ratio = column == "sw_ratio"
    title = "SW to p(x | y) / floor (log scale)" if ratio else "fidelity: share of samples in class y"
    y_scale = alt.Scale(type="log") if ratio else alt.Scale(domain=[0, 1])
    lines = alt.Chart(df, height=height).mark_line(strokeWidth=2, point=alt.OverlayMarkDef(size=30)).encode(
        x=alt.X("scale:Q", title="guidance scale w"), y=alt.Y(f"{column}:Q", title=title, scale=y_scale),
        color=_color(list(df["method"].unique())),
        tooltip=[alt.Tooltip("method:N"), alt.Tooltip("scale:Q", title="w"),
                 alt.Tooltip("fidelity:Q", format=".3f"), alt.Tooltip("sw_ratio:Q", title="SW / floor", format=".2f")])
    layers = [lines, alt.Chart(pd.DataFrame({"scale": [w]})).mark_rule(strokeDash=[4, 3], color="#111827")
              .encode(x="scale:Q")]
    if ratio:
        layers.append(alt.Chart(pd.DataFrame({"floor": [1.0]})).mark_rule(color="#9ca3af").encode(y="floor:Q"))
    return alt.layer(*layers)


# --- MNIST: the benchmark's file (benchmarks/guidance_mnist.py) ---------------------------------------------------

MNIST_JSON = ROOT / "benchmarks" / "results" / "guidance_mnist.json"  # read at call time: tests point it away
MNIST_COMMAND = "python benchmarks/guidance_mnist.py --json benchmarks/results/guidance_mnist.json"
# The file's kinds of guidance, in the table's order: "none" is its row at scale 0, the unguided model of both.
MNIST_GUIDANCE: dict[str, str] = {"none": "unguided (w = 0)", "classifier-free": METHOD_LABELS["cfg"],
                                  "classifier": METHOD_LABELS["cg_learned"]}
MNIST_COLORS: dict[str, str] = {"classifier-free": METHOD_COLORS["cfg"], "classifier": METHOD_COLORS["cg_learned"]}


def mnist_results(path: Path | None = None) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The rows (guidance, scale, accuracy, fid, seconds) in the order of MNIST_GUIDANCE, then by scale, and the
    file's settings (n, method, steps, models, hardware). Raises ResultsProblem naming the file and the command that
    writes it."""
    path = MNIST_JSON if path is None else path
    raw, fix = results_json(path, MNIST_COMMAND, "a few minutes on a 2-core CPU")
    rows = raw.get("rows")
    if not isinstance(rows, list) or not rows:
        raise ResultsProblem(f"**{path.name}** has no rows: {fix} again.")
    try:
        if any(r["guidance"] not in MNIST_GUIDANCE for r in rows):
            raise ResultsProblem(f"guidance: expected one of {', '.join(MNIST_GUIDANCE)}")
        table = pd.DataFrame({"guidance": [r["guidance"] for r in rows],
                              **{k: [finite_number(r[k], k) for r in rows]
                                 for k in ("scale", "accuracy", "fid", "seconds")}})
    except (KeyError, TypeError, ResultsProblem) as err:
        raise ResultsProblem(f"**{path.name}** is damaged ({err}): {fix} again.") from None
    order = table["guidance"].map(list(MNIST_GUIDANCE).index)
    settings = {k: raw.get(k) for k in ("n", "method", "steps", "models", "hardware")}
    return table.assign(order=order).sort_values(["order", "scale"]).drop(columns="order").reset_index(drop=True), \
        settings


def mnist_chart(df: pd.DataFrame, column: str, title: str, height: int = 260) -> alt.Chart:
    """One MNIST score (``accuracy`` or ``fid``) against the guidance scale (symlog: the classifier's scales reach
    far beyond classifier-free ones), a line per kind of guidance; the unguided row (scale 0) starts both lines."""
    unguided = df[df["guidance"] == "none"]
    lines = pd.concat([unguided.assign(guidance=k) for k in MNIST_COLORS] + [df[df["guidance"] != "none"]],
                      ignore_index=True)
    keys = [k for k in MNIST_COLORS if k in set(lines["guidance"])]
    lines["guidance"] = lines["guidance"].map(MNIST_GUIDANCE)
    ticks = sorted({0.0, 1.0, *lines["scale"]})
    return alt.Chart(lines, height=height).mark_line(strokeWidth=2, point=alt.OverlayMarkDef(size=30)).encode(
        x=alt.X("scale:Q", title="guidance scale w (symmetric log scale)", scale=alt.Scale(type="symlog"),
                axis=alt.Axis(values=ticks)),
        y=alt.Y(f"{column}:Q", title=title, scale=alt.Scale(zero=False)),
        color=alt.Color("guidance:N", legend=alt.Legend(orient="top", title=None),
                        scale=alt.Scale(domain=[MNIST_GUIDANCE[k] for k in keys],
                                        range=[MNIST_COLORS[k] for k in keys])),
        tooltip=[alt.Tooltip("guidance:N"), alt.Tooltip("scale:Q", title="w"),
                 alt.Tooltip(f"{column}:Q", format=".3f")])
