"""Helpers of the Improved DDPM page (dashboard/views/improved_ddpm.py), Nichol & Dhariwal 2021: the benchmark's
file benchmarks/results/improved_ddpm.json (the learned variance over t, the bound's terms, the likelihoods and
few-step ancestral quality of the iddpm-<toy> models), read and checked, its charts and tables, and live ancestral
samples under each variance, cached on hashable arguments (never on a model object). Nothing here trains.
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

from core.evaluate import sample_images
from core.samplers import sample
from core.schedules import BETA_MAX
from dashboard.ui.fmt import toy_label
from dashboard.ui.loaders import ROOT, gaussian_noise, manifest_models, pretrained, read_json

RESULTS_JSON = ROOT / "benchmarks" / "results" / "improved_ddpm.json"  # read at call time: tests point it elsewhere
BENCHMARK_COMMAND = "python benchmarks/improved_ddpm.py --json benchmarks/results/improved_ddpm.json"
TOYS: tuple[str, ...] = ("eight_gaussians", "two_moons", "swiss_roll")  # the shipped iddpm-<toy> models
DEFAULT_TOY = "eight_gaussians"
VARIANCES: tuple[str, ...] = ("beta", "beta_tilde", "learned")
STEPS: tuple[int, ...] = (10, 25, 50, 100)  # the ancestral chains of the benchmark and of the live panels
# Points per live panel, read at call time (tests lower it): a new seed runs 2 x 185 network calls on them, under a
# second on one core; the benchmark's numbers are on its own n.
LIVE_N = 600
VARIANCE_LABELS: dict[str, str] = {"beta": "fixed β_t", "beta_tilde": "fixed β̃_t", "learned": "learned Σ_θ"}
VARIANCE_COLORS: dict[str, str] = {"beta": "#d97706", "beta_tilde": "#0891b2", "learned": "#4f46e5"}
# The rows of the likelihood table: the JSON's key and what it is.
NLL_ROWS: tuple[tuple[str, str], ...] = (
    ("bound_beta", "bound L_vlb, fixed σ² = β_t"),
    ("bound_beta_tilde", "bound L_vlb, fixed σ² = β̃_t"),
    ("bound_learned", "bound L_vlb, learned Σ_θ (L_hybrid)"),
    ("pf_ode", "exact −log p_θ, probability-flow ODE"),
    ("true", "true density of the mixture"),
)


def model_name(toy: str) -> str:
    """The shipped Improved-DDPM model of a toy (trained with L_hybrid, learned variance)."""
    return f"iddpm-{toy}"


# --- the benchmark's file ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ToyResults:
    """One toy's entry of improved_ddpm.json, checked. ``t``: timestep indices 0..T-1 (index t is the paper's
    step t + 1); ``sigma``, ``terms``: series over ``t`` (variances; the bound's mean term L_{t-1} in nats per
    dimension, index 0 the decoder's); ``nll``: nats per dimension; ``ancestral``: variance -> steps -> SW / floor."""

    t: np.ndarray
    sigma: dict[str, np.ndarray]
    terms: dict[str, np.ndarray]
    nll: dict[str, float]
    ancestral: dict[str, dict[int, float]]
    n: int | None
    seed: int | None
    hardware: str
    seconds: float | None
    ancestral_runs: str = ""  # how the ancestral ratios were measured ("the mean of 3 runs of 5,000 samples")


class ResultsProblem(ValueError):
    """improved_ddpm.json is missing, unreadable, or lacks a well-formed entry for the toy; the message says
    which and how to write it again."""


def _finite_list(raw: Any, k: int | None, where: str) -> np.ndarray:
    ok = isinstance(raw, list) and (k is None or len(raw) == k) and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in raw)
    if not ok or not raw:
        raise ResultsProblem(f"{where}: expected {k if k is not None else 'a list of'} finite numbers")
    return np.asarray(raw, dtype=np.float64)


def _finite(raw: Any, where: str) -> float:
    if isinstance(raw, bool) or not isinstance(raw, (int, float)) or not math.isfinite(raw):
        raise ResultsProblem(f"{where}: expected a finite number")
    return float(raw)


def parse_toy(raw: dict[str, Any], toy: str) -> ToyResults:
    """The checked entry of ``toy`` from the file's object; ResultsProblem names the first field that is wrong."""
    models = raw.get("models")
    if not isinstance(models, dict) or not isinstance(models.get(toy), dict):
        raise ResultsProblem(f"it has no results for {toy_label(toy)}")
    row = models[toy]
    t = _finite_list(row.get("t"), None, "t")
    if len(t) < 2 or (t < 0).any() or (t != np.round(t)).any() or (np.diff(t) <= 0).any():
        raise ResultsProblem("t: expected increasing timestep indices")
    k = len(t)

    def series(name: str, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
        block = row.get(name)
        if not isinstance(block, dict):
            raise ResultsProblem(f"{name}: missing")
        return {key: _finite_list(block.get(key), k, f"{name}.{key}") for key in keys}

    sigma = series("sigma", ("learned", "learned_q10", "learned_q90", "beta", "beta_tilde"))
    terms = series("terms", VARIANCES)
    nll_raw = row.get("nll")
    if not isinstance(nll_raw, dict):
        raise ResultsProblem("nll: missing")
    nll = {key: _finite(nll_raw.get(key), f"nll.{key}")
           for key in ("bound_beta", "bound_beta_tilde", "bound_learned", "pf_ode")}
    for key in ("bound_beta_se", "bound_beta_tilde_se", "bound_learned_se", "true"):
        if key in nll_raw:
            nll[key] = _finite(nll_raw[key], f"nll.{key}")
    anc_raw = row.get("ancestral")
    if not isinstance(anc_raw, dict):
        raise ResultsProblem("ancestral: missing")
    ancestral: dict[str, dict[int, float]] = {}
    for v in VARIANCES:
        cells = anc_raw.get(v)
        if not isinstance(cells, dict):
            raise ResultsProblem(f"ancestral.{v}: missing")
        ancestral[v] = {k_: _finite(cells.get(str(k_)), f"ancestral.{v}.{k_}") for k_ in STEPS}
    n, seed = raw.get("n"), raw.get("seed")
    seconds = row.get("seconds")
    n_samples, seeds = raw.get("n_samples"), raw.get("seeds")
    runs = (f"the mean of {seeds} runs of {n_samples:,} samples" if isinstance(n_samples, int) and
            isinstance(seeds, int) else f"{n} samples of seed {seed}")
    return ToyResults(t.astype(int), sigma, terms, nll, ancestral,
                      n if isinstance(n, int) and not isinstance(n, bool) else None,
                      seed if isinstance(seed, int) and not isinstance(seed, bool) else None,
                      str(raw.get("hardware", "")),
                      float(seconds) if isinstance(seconds, (int, float)) and not isinstance(seconds, bool) else None,
                      runs)


def load_results(toy: str, path: Path | None = None) -> ToyResults:
    """The benchmark's results for ``toy`` (from RESULTS_JSON, re-read when the file changes). Raises
    ResultsProblem, whose message names the file, what is wrong and the command that writes it."""
    path = RESULTS_JSON if path is None else path
    try:
        shown = path.resolve().relative_to(ROOT).as_posix()
    except ValueError:
        shown = str(path)
    fix = f"`{BENCHMARK_COMMAND}` writes it (a few minutes on a 2-core CPU)"
    if not path.is_file():
        raise ResultsProblem(f"**{shown}** is missing: {fix}.")
    raw = read_json(path)
    if raw is None:
        raise ResultsProblem(f"**{shown}** is not a readable JSON object: {fix} again.")
    try:
        return parse_toy(raw, toy)
    except ResultsProblem as err:
        raise ResultsProblem(f"**{shown}** is damaged ({err}): {fix} again.") from None


# --- charts and tables of the file -----------------------------------------------------------------------------


def _color(domain: list[str]) -> alt.Color:
    labels = [VARIANCE_LABELS[v] for v in domain]
    return alt.Color("series:N", scale=alt.Scale(domain=labels, range=[VARIANCE_COLORS[v] for v in domain]),
                     legend=alt.Legend(orient="top", title=None), sort=labels)


def sigma_frame(res: ToyResults) -> pd.DataFrame:
    """Long form (step, series, value, lo, hi) of the variances over the paper's step t = index + 1; lo and hi
    (the learned one's 10% and 90% quantiles over points) on its rows only."""
    step = res.t + 1
    rows = [pd.DataFrame({"step": step, "series": VARIANCE_LABELS[v], "value": res.sigma[v],
                          "lo": res.sigma["learned_q10"] if v == "learned" else np.nan,
                          "hi": res.sigma["learned_q90"] if v == "learned" else np.nan})
            for v in VARIANCES]
    df = pd.concat(rows, ignore_index=True)
    return df[df["value"] > 0].reset_index(drop=True)  # a log axis: nothing at or below 0


def _log_x() -> alt.X:
    return alt.X("step:Q", title="step t (log scale)", scale=alt.Scale(type="log"))


def sigma_chart(res: ToyResults, height: int = 320) -> alt.LayerChart:
    """Beta_t, beta_tilde_t and the learned Sigma_theta (with its 10-90% band over the points x_t) against the
    step, both axes logarithmic."""
    return _band_chart(sigma_frame(res), "reverse variance σ²_t (log scale)", alt.Scale(type="log"), "σ²", ".4g",
                       height)


def _band_chart(df: pd.DataFrame, y_title: str, y_scale: alt.Scale, y_label: str, fmt: str,
                height: int) -> alt.LayerChart:
    """Lines of (step, series, value) with the learned series' 10-90% band (lo, hi) under them, log x."""
    base = alt.Chart(df, height=height)
    band = base.transform_filter(alt.datum.series == VARIANCE_LABELS["learned"]).mark_area(
        opacity=0.25, color=VARIANCE_COLORS["learned"]).encode(x=_log_x(), y=alt.Y("lo:Q", scale=y_scale), y2="hi:Q")
    lines = base.mark_line(strokeWidth=2).encode(
        x=_log_x(), y=alt.Y("value:Q", title=y_title, scale=y_scale),
        color=_color(list(VARIANCES)),
        tooltip=[alt.Tooltip("series:N"), alt.Tooltip("step:Q", title="t"),
                 alt.Tooltip("value:Q", title=y_label, format=fmt),
                 alt.Tooltip("lo:Q", title="learned, 10%", format=fmt),
                 alt.Tooltip("hi:Q", title="learned, 90%", format=fmt)])
    return (band + lines).interactive(bind_y=False)


def ratio_frame(res: ToyResults) -> pd.DataFrame:
    """Long form (step, series, value, lo, hi) of the variances divided by beta_t: 1 (the upper bound), beta_tilde_t /
    beta_t (the lower bound, the paper's fig. 1) and the learned Sigma_theta / beta_t with its 10-90% band."""
    step, beta = res.t + 1, res.sigma["beta"]
    return pd.concat([
        pd.DataFrame({"step": step, "series": VARIANCE_LABELS["beta"], "value": 1.0, "lo": np.nan, "hi": np.nan}),
        pd.DataFrame({"step": step, "series": VARIANCE_LABELS["beta_tilde"], "value": res.sigma["beta_tilde"] / beta,
                      "lo": np.nan, "hi": np.nan}),
        pd.DataFrame({"step": step, "series": VARIANCE_LABELS["learned"], "value": res.sigma["learned"] / beta,
                      "lo": res.sigma["learned_q10"] / beta, "hi": res.sigma["learned_q90"] / beta}),
    ], ignore_index=True)


def ratio_chart(res: ToyResults, height: int = 320) -> alt.LayerChart:
    """The variances divided by beta_t against the step (log x): where between its bounds Sigma_theta lies."""
    return _band_chart(ratio_frame(res), "σ²_t / β_t", alt.Scale(zero=False), "σ² / β", ".4f", height)


def terms_frame(res: ToyResults) -> pd.DataFrame:
    """Long form (step, series, value) of the bound's mean terms in nats per dimension over the paper's step
    t = index + 1: the KL terms L_{t-1} (step t >= 2). The decoder term at step 1 is a density's -log and can be
    negative, so it is left to ``decoder_terms``; non-positive values are dropped (a log axis)."""
    keep = res.t >= 1
    df = pd.concat([pd.DataFrame({"step": res.t[keep] + 1, "series": VARIANCE_LABELS[v],
                                  "value": res.terms[v][keep]}) for v in VARIANCES], ignore_index=True)
    return df[df["value"] > 0].reset_index(drop=True)


def decoder_terms(res: ToyResults) -> dict[str, float] | None:
    """L_0 = -log p(x_0 | x_1) per variance (nats per dimension), when the file's grid has t = 0."""
    if res.t[0] != 0:
        return None
    return {v: float(res.terms[v][0]) for v in VARIANCES}


def terms_chart(res: ToyResults, height: int = 320) -> alt.Chart:
    """Paper fig. 2 for one toy: the bound's term L_{t-1} per step under each variance, both axes logarithmic."""
    df = terms_frame(res)
    return alt.Chart(df, height=height).mark_line(strokeWidth=2, point=alt.OverlayMarkDef(size=14)).encode(
        x=alt.X("step:Q", title="step t (log scale)", scale=alt.Scale(type="log")),
        y=alt.Y("value:Q", title="L_{t−1}, nats per dimension (log scale)", scale=alt.Scale(type="log")),
        color=_color(list(VARIANCES)),
        tooltip=[alt.Tooltip("series:N"), alt.Tooltip("step:Q", title="t"),
                 alt.Tooltip("value:Q", title="L_{t−1}", format=".4g")],
    ).interactive(bind_y=False)


def nll_table(res: ToyResults) -> pd.DataFrame:
    """The likelihoods in nats per dimension (lower is better): the three bounds with their standard errors (as
    text, "—" where the file has none), the PF-ODE's exact value and, on a mixture, the true density's; with each
    one's distance above the PF-ODE's."""
    rows = []
    for key, label in NLL_ROWS:
        if key not in res.nll:
            continue
        value = res.nll[key]
        se = res.nll.get(f"{key}_se")
        rows.append({"estimate": label, "nats / dim": value, "± s.e.": "—" if se is None else f"{se:.4f}",
                     "minus PF-ODE": value - res.nll["pf_ode"]})
    return pd.DataFrame(rows)


def nll_sentence(res: ToyResults) -> str:
    """What the table says, in numbers: the learned variance's gain over each fixed one, the bound's distance to
    the PF-ODE value and (mixtures) the model's to the true density."""
    nll = res.nll
    learned = nll["bound_learned"]
    lowest = min(("bound_beta", "bound_beta_tilde", "bound_learned"), key=nll.__getitem__)

    def gap(a: float, b: float) -> str:
        return f"{abs(a - b):.3f} nats/dim {'lower' if a < b else 'higher'}"

    names = {"bound_beta": "fixed β_t", "bound_beta_tilde": "fixed β̃_t"}
    text = (f"The learned variance's bound is {gap(learned, nll['bound_beta_tilde'])} than fixed β̃_t's and "
            f"{gap(learned, nll['bound_beta'])} than fixed β_t's"
            + ("; it is the tightest of the three." if lowest == "bound_learned" else
               f"; here {names[lowest]} gives the tightest bound.")
            + f" It lies {gap(learned, nll['pf_ode']).replace('lower', 'below').replace('higher', 'above')} "
              "the exact likelihood of the same network read as an ODE (a closely related but not identical "
              "model: the bound is of the stochastic chain).")
    if "true" in nll:
        text += (f" The true density scores {nll['true']:.3f}, the best any model can do on these points: the ODE "
                 f"is {abs(nll['pf_ode'] - nll['true']):.3f} nats/dim "
                 f"{'above' if nll['pf_ode'] >= nll['true'] else 'below'} it.")
    return text


def quality_table(res: ToyResults) -> pd.DataFrame:
    """The benchmark's SW / floor of ancestral sampling: one row per variance, one column per step count."""
    return pd.DataFrame({f"{k} steps": [res.ancestral[v][k] for v in VARIANCES] for k in STEPS},
                        index=pd.Index([VARIANCE_LABELS[v] for v in VARIANCES], name="variance"))


# --- live ancestral samples -------------------------------------------------------------------------------------


@st.cache_data(max_entries=96, show_spinner=False)
def ancestral(toy: str, variance: str, steps: int, n: int, seed: int) -> np.ndarray:
    """n ancestral samples (n, 2) of iddpm-<toy> with ``steps`` respaced steps under ``variance`` (sec. 4 of the
    paper), from x_T ~ N(0, I) of ``seed`` and the chain's noise from ``seed + 1``: the same draws for every
    variance and step count, so the panels differ by the variance and the steps alone."""
    if variance not in VARIANCES:
        raise ValueError(f"unknown variance {variance!r}; expected one of: {', '.join(VARIANCES)}")
    p = pretrained(model_name(toy))
    x_T = torch.from_numpy(gaussian_noise(n, seed))
    traj = sample(p.model, p.schedule, x_T, method="ddpm", steps=int(steps), variance=variance,
                  keep_trajectory=False, generator=torch.Generator().manual_seed(int(seed) + 1))
    return traj.x0.float().numpy()


# --- MNIST: bits per dimension and few-step samples (benchmarks/improved_ddpm_mnist.py) -------------------------

MNIST_JSON = ROOT / "benchmarks" / "results" / "improved_ddpm_mnist.json"  # read at call time: tests point it away
MNIST_COMMAND = "python benchmarks/improved_ddpm_mnist.py --json benchmarks/results/improved_ddpm_mnist.json"
MNIST_COLUMNS = ("bits_per_dim", "bits_per_dim_se", "fid_mnist", "accuracy")


def mnist_table(path: Path | None = None) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The MNIST rows (model, variance, bits/dim, its s.e., FID-MNIST and accuracy of few-step samples) and the
    file's settings. Raises ResultsProblem naming the file and the command that writes it."""
    path = MNIST_JSON if path is None else path
    fix = f"`{MNIST_COMMAND}` writes it (about ten minutes on a 2-core CPU)"
    raw = read_json(path) if path.is_file() else None
    rows = raw.get("rows") if isinstance(raw, dict) else None
    if not isinstance(rows, list) or not rows:
        raise ResultsProblem(f"**{path.name}** is missing or damaged: {fix}.")
    try:
        table = pd.DataFrame({
            "model": [str(r["model"]) for r in rows],
            "variance": [VARIANCE_LABELS[r["variance"]] for r in rows],
            **{k: [_finite(r[k], k) for r in rows] for k in MNIST_COLUMNS}})
    except (KeyError, TypeError, ResultsProblem) as err:
        raise ResultsProblem(f"**{path.name}** is damaged ({err}): {fix} again.") from None
    settings = {k: raw.get(k) for k in ("n_bpd", "n", "steps", "hardware", "data")}
    return table, settings


MNIST_MODEL = "iddpm-mnist"


def mnist_terms(path: Path | None = None) -> pd.DataFrame | None:
    """Long form (step, series, value) of the MNIST rows' mean bound term per step in bits per dimension: the KL
    terms L_{t-1} (t >= 2; positive, for a log axis). None when the file's rows have no ``terms`` (a file written
    before the benchmark kept them). Raises ResultsProblem for a damaged file, like ``mnist_table``."""
    path = MNIST_JSON if path is None else path
    mnist_table(path)  # the file's rows are well-formed
    rows = read_json(path)["rows"]
    if not all(isinstance(r.get("terms"), dict) for r in rows):
        return None
    frames = []
    fix = f"`{MNIST_COMMAND}` writes it again"
    for r in rows:
        try:
            t = _finite_list(r["terms"].get("t"), None, "terms.t")
            value = _finite_list(r["terms"].get("bits_per_dim"), len(t), "terms.bits_per_dim")
        except ResultsProblem as err:
            raise ResultsProblem(f"**{path.name}** is damaged ({err}): {fix}.") from None
        keep = (t >= 2) & (value > 0)
        frames.append(pd.DataFrame({"step": t[keep].astype(int), "value": value[keep],
                                    "series": f"{r['model']} · {VARIANCE_LABELS[r['variance']]}"}))
    return pd.concat(frames, ignore_index=True)


def mnist_last_step_note(path: Path | None = None) -> str | None:
    """What the bound's last term says, from the MNIST rows' terms: at t = T the cosine schedule's beta_T is clipped
    at BETA_MAX, so the reverse mean multiplies the error of eps-hat by beta_T / sqrt(alpha_T) (~32) and beta_T ~
    beta-tilde_T: L_{T-1} is the network's error on pure noise, the same under every variance. Each model's value,
    its share of the gap between the two models' best bounds, and how each was trained (the manifest). None when
    the file has no terms or its rows end at different steps."""
    path = MNIST_JSON if path is None else path
    if mnist_terms(path) is None:  # also checks the file
        return None
    rows = read_json(path)["rows"]
    last = pd.DataFrame({"model": [str(r["model"]) for r in rows], "t": [r["terms"]["t"][-1] for r in rows],
                         "value": [float(r["terms"]["bits_per_dim"][-1]) for r in rows],
                         "bound": [float(r["bits_per_dim"]) for r in rows]})
    if last["t"].nunique() != 1:
        return None
    by_model = last.groupby("model", sort=False).agg(lo=("value", "min"), hi=("value", "max"), best=("bound", "min"))
    values = ", ".join(f"**{m}** {r.lo:.2f}" + (f"–{r.hi:.2f}" if r.hi - r.lo >= 0.005 else "")
                       for m, r in by_model.iterrows())
    note = (f"The last point, t = {int(last['t'].iloc[0])}, stands apart: there β_T is clipped at {BETA_MAX}, so the "
            f"reverse mean multiplies the error of ε̂ by β_T/√α_T ≈ {BETA_MAX / math.sqrt(1 - BETA_MAX):.0f}, and "
            f"β_T and β̃_T agree, so every variance pays the same: {values} bits/dim, the network's error on pure "
            "noise, which no Σ between β̃_T and β_T can lower.")
    if len(by_model) == 2:
        (a, ra), (b, rb) = sorted(by_model.iterrows(), key=lambda item: item[1].best)
        if rb.best > ra.best and rb.lo > ra.hi:
            share = (rb.lo - ra.hi) / (rb.best - ra.best)
            note += (f" It is {share:.0%} of the gap between {b}'s best bound ({rb.best:.2f}) and {a}'s "
                     f"({ra.best:.2f}); compare the variances within one model.")
    records = {m: manifest_models().get(m) for m in by_model.index}
    trained = [f"{m} {rec['steps']:,} steps in {rec['seconds'] / 60:.0f} min ({rec.get('hardware', 'unrecorded')})"
               for m, rec in records.items() if isinstance(rec, dict) and isinstance(rec.get("steps"), int)
               and isinstance(rec.get("seconds"), (int, float))]
    if trained:
        note += " Trained: " + "; ".join(trained) + "."
    return note


def mnist_terms_chart(df: pd.DataFrame, height: int = 320) -> alt.Chart:
    """The paper's fig. 2 on MNIST: each row's bound term L_{t-1} per step, bits per dimension, both axes log."""
    return alt.Chart(df, height=height).mark_line(strokeWidth=2).encode(
        x=alt.X("step:Q", title="step t (log scale)", scale=alt.Scale(type="log")),
        y=alt.Y("value:Q", title="L_{t−1}, bits/dim (log)", scale=alt.Scale(type="log")),
        color=alt.Color("series:N", title=None, legend=alt.Legend(orient="bottom", columns=3)),
        strokeDash=alt.StrokeDash("series:N", legend=None),
        tooltip=[alt.Tooltip("series:N"), alt.Tooltip("step:Q", title="t"),
                 alt.Tooltip("value:Q", title="L_{t−1} (bits/dim)", format=".4g")],
    ).interactive(bind_y=False)


@st.cache_data(max_entries=48, show_spinner=False)
def mnist_ancestral(variance: str, steps: int, seed: int) -> np.ndarray:
    """The digits 0-9 of iddpm-mnist by ancestral sampling on a respaced chain of ``steps`` steps under
    ``variance`` (guidance scale 1), from the noise of ``seed``: the same draws for every variance, so the rows
    differ by the variance alone. (10, 28, 28) in [-1, 1]."""
    if variance not in VARIANCES:
        raise ValueError(f"unknown variance {variance!r}; expected one of: {', '.join(VARIANCES)}")
    x = sample_images(pretrained(MNIST_MODEL), 10, label=torch.arange(10), seed=int(seed), method="ddpm",
                      steps=int(steps), variance=variance)
    return x[:, 0].numpy()
