"""Helpers of the Diffusion vs GAN vs VAE page (dashboard/views/baselines.py): which pretrained models each data
set has, their recorded metrics as one table, the sampling benchmark, parameter counts, interpolation paths, the
GAN discriminator's D(x) as a heat map behind its samples (as GAN Lab draws it), and the live race: the three
families trained one after another with the same time budget, with snapshots from fixed noise as they learn (the
GAN's with its discriminator's map at that moment), the GAN's two players' losses apart, and a stop that keeps
what was trained.

The race trains in a worker process of the job runner (the recipe dashboard.jobs.race.race, started and followed by
dashboard.ui.background); here are what the page keeps of a finished race (Race, FamilyRun, RaceSnapshot), built
from the job's plain-data result with the models rebuilt from their safetensors weights.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
import torch
from safetensors.torch import load as load_safetensors

from core.checkpoints import Pretrained, build_model, pretrained_names
from core.data.toy2d import MIXTURE_TOYS, mixture_spec
from core.metrics import mode_coverage
from dashboard.jobs.race import D_MAP_N, RACE_FAMILIES, RACE_LABELS, RACE_LIM, SNAPSHOT_N  # noqa: F401
from dashboard.jobs.runner import CANCELLED, DONE, Job
from dashboard.ui import background, plots
from dashboard.ui.loaders import ROOT, read_json

BASELINE_TOYS: tuple[str, ...] = ("eight_gaussians", "twenty_five_gaussians", "swiss_roll", "two_moons")
DATASETS: tuple[str, ...] = (*BASELINE_TOYS, "mnist")
KINDS: tuple[str, ...] = ("ddpm", "gan", "gan-r1", "vae")  # checkpoint prefixes: <kind>-<data set>
KIND_LABELS = {"ddpm": "Diffusion (DDPM)", "gan": "GAN", "gan-r1": "GAN + R1", "vae": "VAE"}
KIND_COLORS = {"ddpm": "#4f46e5", "gan": "#dc2626", "gan-r1": "#d97706", "vae": "#0891b2"}
DDIM_STEPS = 50  # the sampler of the recorded metrics and of the benchmark for the diffusion models
ONE_PASS = {"gan": "one generator pass", "gan-r1": "one generator pass", "vae": "one decoder pass"}
BENCHMARK_JSON = ROOT / "benchmarks" / "results" / "baselines.json"


@dataclass(frozen=True)
class Entry:
    """One pretrained model of the comparison: its kind (ddpm, gan, gan-r1, vae) and checkpoint name."""

    kind: str
    name: str

    @property
    def label(self) -> str:
        return KIND_LABELS[self.kind]

    @property
    def color(self) -> str:
        return KIND_COLORS[self.kind]

    @property
    def diffusion(self) -> bool:
        return self.kind == "ddpm"

    @property
    def sampler(self) -> str:
        return f"DDIM-{DDIM_STEPS}" if self.diffusion else ONE_PASS[self.kind]

    @property
    def nfe(self) -> int:
        """Network evaluations per sample (unconditional sampling)."""
        return DDIM_STEPS if self.diffusion else 1


def entries(dataset: str, available: Sequence[str] | None = None) -> tuple[list[Entry], list[str]]:
    """(the models of ``dataset`` present in pretrained/, the names still missing), in KINDS order. gan-r1 is
    optional: it exists for the mixtures and MNIST only."""
    have = set(pretrained_names() if available is None else available)
    found, missing = [], []
    for kind in KINDS:
        name = f"{kind}-{dataset}"
        if name in have:
            found.append(Entry(kind, name))
        elif kind != "gan-r1" or dataset in (*MIXTURE_TOYS, "mnist"):
            missing.append(name)
    return found, missing


# --- recorded numbers -------------------------------------------------------------------------------------------


def benchmark() -> tuple[dict[str, dict], dict]:
    """Rows of benchmarks/results/baselines.json by (model, sampler) and its header (hardware, date, threads)."""
    raw = read_json(BENCHMARK_JSON)
    if not raw or not isinstance(raw.get("rows"), list):
        return {}, {}
    rows = {(r.get("model"), r.get("sampler")): r for r in raw["rows"] if isinstance(r, dict)}
    return rows, {k: v for k, v in raw.items() if k != "rows"}


def bench_row(rows: dict, e: Entry, guidance: float | None = None) -> dict | None:
    """The benchmark row of an entry's sampler: one pass for GAN/VAE, DDIM-50 for diffusion (MNIST: unconditional,
    or guided with ``guidance`` w; w = 1 costs the same passes as unconditional sampling)."""
    if not e.diffusion:
        return rows.get((e.name, ONE_PASS[e.kind]))
    if not e.name.endswith("mnist"):
        return rows.get((e.name, "ddim-50"))
    if guidance is None or guidance == 1.0:
        return rows.get((e.name, "ddim-50, unconditional"))
    return rows.get((e.name, f"ddim-50, guided w = {guidance:g}"))


GUIDED_ROWS = (1.0, 3.0)  # the MNIST diffusion model's recorded guidance scales shown as rows of their own


def short_hardware(text: str | None) -> str:
    """'AMD EPYC, 1 threads, torch 2.13.0+cpu' -> 'CPU, 1 thread'; '..., NVIDIA H200' -> 'GPU (NVIDIA H200)'."""
    if not text:
        return "?"
    parts = [p.strip() for p in text.split(",")]
    gpu = [p for p in parts if p.startswith(("NVIDIA", "AMD Instinct", "Tesla"))]
    if gpu:
        return f"GPU ({gpu[0]})"
    threads = next((p.split()[0] for p in parts if p.endswith("threads")), "?")
    return f"CPU, {threads} thread{'' if threads == '1' else 's'}"


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None


def metrics_table(dataset: str, rows: Sequence[tuple[Entry, dict, tuple[int, int]]],
                  bench: dict[tuple[str, str], dict]) -> pd.DataFrame:
    """One row per model (MNIST diffusion: also one per guidance scale in GUIDED_ROWS): the metrics of its manifest
    record exactly as ``python -m core evaluate`` wrote them, the sampler and NFE, sampling seconds per 1,000
    samples (the benchmark file), training time and hardware (the manifest), parameter counts.
    rows: (entry, manifest record, parameter_counts)."""
    out = []
    for e, meta, (used, total) in rows:
        m = meta.get("metrics") if isinstance(meta.get("metrics"), dict) else {}
        variants: list[tuple[str, int, float | None]] = [  # (sampler, NFE, guidance scale or None)
            ((m.get("sampler") or e.sampler.lower()) if e.diffusion else e.sampler, e.nfe, None)]
        if dataset == "mnist" and e.diffusion:
            variants[0] = (f"{variants[0][0]}, unconditional", e.nfe, None)
            recorded = {g.get("guidance_scale") for g in m.get("guided") or [] if isinstance(g, dict)}
            variants += [(f"{m.get('sampler', 'ddim-50')}, " + ("class-conditional, w = 1" if w == 1.0 else
                                                                  f"guided, w = {w:g}"),
                          e.nfe * (1 if w == 1.0 else 2), w) for w in GUIDED_ROWS if w in recorded]
        for sampler, nfe, w in variants:
            b = bench_row(bench, e, w)
            row: dict[str, Any] = {"model": e.name, "family": e.label, "sampler": sampler, "NFE / sample": nfe}
            if dataset == "mnist":
                hist = m.get("unconditional_class_histogram")
                covered = m.get("unconditional_classes_covered")
                g = next((g for g in m.get("guided") or [] if isinstance(g, dict) and g.get("guidance_scale") == w),
                         {})
                row |= {"FID-MNIST": _num(m.get("fid_mnist_unconditional") if w is None else g.get("fid_mnist")),
                        "FID-MNIST real vs real": _num(m.get("fid_mnist_data_vs_data")),
                        "classes covered": f"{covered}/10" if covered is not None and w is None else None,
                        "class histogram": list(hist) if isinstance(hist, list) and w is None else None,
                        "accuracy on the requested digit": _num(g.get("accuracy"))}
            else:
                modes = m.get("modes")
                row |= {"sliced Wasserstein": _num(m.get("sliced_wasserstein")),
                        "SW floor": _num(m.get("sliced_wasserstein_floor")),
                        "SW / floor": _num(m.get("sw_ratio")),
                        "MMD (RBF)": _num(m.get("mmd_rbf")),
                        "energy distance": _num(m.get("energy_distance"))}
                if dataset in MIXTURE_TOYS:
                    row |= {"modes covered": f"{m['modes_covered']}/{modes}" if modes is not None else None,
                            "off-mode fraction": _num(m.get("off_mode_fraction"))}
            row |= {"n": m.get("n"),
                    "s / 1,000 samples": _num(b.get("seconds_per_1000")) if b else None,
                    "training s": _num(meta.get("seconds")),
                    "trained on": short_hardware(meta.get("hardware")),
                    "parameters (sampling)": used, "parameters (trained)": total}
            out.append(row)
    return pd.DataFrame(out)


# --- curves --------------------------------------------------------------------------------------------------------

CURVE_SERIES = {"loss_curve": "loss", "loss_d_curve": "L_D", "loss_g_curve": "L_G"}
CURVE_COLORS = {"loss": "#4f46e5", "L_D": "#0891b2", "L_G": "#dc2626",
                "moving average": "#4f46e5", "per step": "#c7d2fe"}


def curves_frame(config: dict, gan_players: bool = True) -> pd.DataFrame | None:
    """The recorded training curves of a checkpoint config (window means, <= 200 points each) as a long frame
    (step, value, series); None when the checkpoint predates recorded curves. GAN: the two players' losses."""
    tr = config.get("training") if isinstance(config.get("training"), dict) else {}
    keys = ["loss_d_curve", "loss_g_curve"] if gan_players and tr.get("loss_d_curve") else ["loss_curve"]
    frames = []
    for k in keys:
        v = tr.get(k)
        if not isinstance(v, list) or not v:
            continue
        steps = int(tr.get("steps_done") or len(v))
        width = max(1, math.ceil(steps / len(v))) if len(v) < steps else 1
        x = np.minimum(np.arange(1, len(v) + 1) * width, steps)
        frames.append(pd.DataFrame({"step": x, "value": np.asarray(v, dtype=float), "series": CURVE_SERIES[k]}))
    return pd.concat(frames, ignore_index=True) if frames else None


CURVE_POINTS = 200  # core.training.loss_curve's windows: the recorded GAN curves have this many points


def race_losses_frame(losses: list[float], players: dict[str, list[float]] | None = None) -> pd.DataFrame:
    """The race's loss chart, live and after training: with ``players`` (the GAN's per-step L_D and L_G), each
    player's loss in at most CURVE_POINTS window means, as the recorded curves of the checkpoints (curves_frame);
    otherwise the one loss (block means) with its moving average."""
    if not players or not all(players.values()):
        return plots.smoothed_frame(losses, span=50)
    frames = []
    for name, values in players.items():
        x, v = plots.downsample(values, CURVE_POINTS)
        frames.append(pd.DataFrame({"step": x, "value": v, "series": name}))
    return pd.concat(frames, ignore_index=True)


# --- mode coverage ---------------------------------------------------------------------------------------------------


def coverage(points: np.ndarray, toy: str):
    """core.metrics.mode_coverage against the toy's exact mixture (3 std radius, as evaluate_2d)."""
    spec = mixture_spec(toy)
    return mode_coverage(torch.as_tensor(points), spec.means, spec.std)


def coverage_frame(samples: dict[str, np.ndarray], toy: str) -> pd.DataFrame:
    """Share of each family's samples on each mode of a mixture, and off every mode: long form."""
    rows = []
    for label, x in samples.items():
        cov = coverage(x, toy)
        n = len(x)
        for k, c in enumerate(cov.counts):
            rows.append({"family": label, "mode": f"{k + 1}", "share": c / n})
        rows.append({"family": label, "mode": "off", "share": cov.off_mode_fraction})
    return pd.DataFrame(rows)


# --- interpolation --------------------------------------------------------------------------------------------------


def path_traces(paths: np.ndarray, axis: int, colors: Sequence[str]) -> list[dict]:
    """Interpolation paths (pairs, points, 2) as Plotly line traces with marked ends, on subplot ``axis``."""
    sx = "" if axis == 1 else str(axis)
    out = []
    for i, p in enumerate(np.asarray(paths, dtype=np.float32)):
        c = colors[i % len(colors)]
        out.append(dict(type="scatter", x=p[:, 0], y=p[:, 1], mode="lines+markers", xaxis=f"x{sx}", yaxis=f"y{sx}",
                        line=dict(color=c, width=1.5), marker=dict(size=3.5, color=c), hoverinfo="skip",
                        showlegend=False, name=f"path {i + 1}"))
        out.append(dict(type="scatter", x=p[[0, -1], 0], y=p[[0, -1], 1], mode="markers", xaxis=f"x{sx}",
                        yaxis=f"y{sx}", marker=dict(size=[9, 9], color=c, symbol=["circle", "x"],
                                                    line=dict(color="white", width=1)),
                        hoverinfo="skip", showlegend=False, name=f"ends {i + 1}"))
    return out


def add_traces(fig: go.Figure, traces: list[dict]) -> go.Figure:
    fig.add_traces([go.Scatter(t) for t in traces])
    return fig


# --- the GAN discriminator's map ---------------------------------------------------------------------------------

# diverging around D = 1/2, purple (fake) - white (undecided) - green (real), GAN Lab's colours; faint, under the points
D_MAP_COLORSCALE = [[0.0, "#762a83"], [0.25, "#c2a5cf"], [0.5, "#f7f7f7"], [0.75, "#a6dba0"], [1.0, "#1b7837"]]
D_MAP_OPACITY = 0.5
D_MAP_CAPTION = ("Background of the GAN panels: the discriminator's D(x) = sigmoid(logit) at every point, green where "
                 "it calls x real (D → 1), purple where it calls x fake (D → 0), white where it cannot tell (D = ½, "
                 "the equilibrium); the generator moves its points towards green. GAN Lab (Kahng et al. 2018) draws "
                 "the same.")


def d_map_dict(d_map: np.ndarray, lim: float, axis: int = 1) -> dict:
    """A discriminator map (n, n) as a faint Plotly heatmap trace (a plain dict) on subplot ``axis`` (1-based),
    colours fixed to D in [0, 1] so that white is always D = 1/2."""
    sx = "" if axis == 1 else str(axis)
    xs = np.linspace(-lim, lim, d_map.shape[1], dtype=np.float32)
    ys = np.linspace(-lim, lim, d_map.shape[0], dtype=np.float32)
    return dict(type="heatmap", x=xs, y=ys, z=np.asarray(d_map, dtype=np.float32), zmin=0.0, zmax=1.0,
                colorscale=D_MAP_COLORSCALE, opacity=D_MAP_OPACITY, zsmooth="best", showscale=False,
                name="D(x)", hovertemplate="D(x) = %{z:.2f}<extra></extra>", xaxis=f"x{sx}", yaxis=f"y{sx}")


def with_d_maps(fig: go.Figure, maps: dict[int, np.ndarray | None], lim: float) -> go.Figure:
    """``fig`` with a discriminator map under every other trace of the subplots given (1-based: map)."""
    heat = [go.Heatmap(d_map_dict(m, lim, axis)) for axis, m in maps.items() if m is not None]
    if heat:
        fig.add_traces(heat)
        fig.data = fig.data[-len(heat):] + fig.data[:-len(heat)]  # drawn first: below the data and the samples
    return fig


# --- the race ------------------------------------------------------------------------------------------------------

R1_GAMMA = 1.0  # the GAN's R1 weight when the page's toggle is on: that of the shipped gan-r1 models
RACE_KEY = "baselines.race"  # st.session_state: the last adopted Race
NOTICE_KEY = "baselines.race_notice"  # st.session_state: (level, text) about the last race job that left no race
JOB = "baselines"  # the race as a job of the runner (dashboard.ui.background)
KIND = "race"  # its recipe: dashboard.jobs.race.race


@dataclass
class RaceSnapshot:
    step: int
    seconds: float
    points: np.ndarray  # (n, 2): the EMA model's samples from the race's fixed noise
    d_map: np.ndarray | None = None  # GAN: D(x) of the weights being trained at that step (discriminator_map)


@dataclass
class FamilyRun:
    family: str
    losses: list[float]
    snapshots: list[RaceSnapshot]
    steps: int
    steps_planned: int
    seconds: float
    stop_reason: str  # "steps" | "time" | "callback" | "nonfinite"
    message: str
    model: Pretrained | None  # the EMA model with its config (None when not a single step was taken)
    metrics: dict | None = None  # evaluate_2d of the raced model (the race job measures it)
    players: dict[str, list[float]] = field(default_factory=dict)  # GAN: per-step {"L_D": [...], "L_G": [...]}

    @property
    def label(self) -> str:
        return RACE_LABELS[self.family]


@dataclass
class Race:
    toy: str
    budget_s: float
    seed: int
    r1_gamma: float
    runs: dict[str, FamilyRun] = field(default_factory=dict)
    stopped: bool = False  # Stop ended it (the families after the stopped one did not train)
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])


def family_model(run: dict[str, Any], toy: str) -> Pretrained | None:
    """A race family's EMA model from its plain-data run (safetensors weights and JSON config), or None."""
    if not run.get("weights"):
        return None
    config = json.loads(run["config_json"])
    model, schedule = build_model(config)
    model.load_state_dict(load_safetensors(run["weights"]))
    model.eval().requires_grad_(False)
    return Pretrained(model=model, schedule=schedule, config=config, name=f"race-{run['family']}-{toy}")


def race_from_result(result: dict[str, Any], race_id: str | None = None) -> Race:
    """The page's Race from the plain-data result of a race job (dashboard.jobs.race.race)."""
    race = Race(toy=result["toy"], budget_s=float(result["budget_s"]), seed=int(result["seed"]),
                r1_gamma=float(result["r1_gamma"]), stopped=bool(result.get("stopped")))
    if race_id:
        race.id = race_id
    for family, r in result["runs"].items():
        snaps = [RaceSnapshot(s["step"], s["seconds"], s["points"], s.get("d_map")) for s in r["snapshots"]]
        race.runs[family] = FamilyRun(family, list(r["losses"]), snaps, r["steps"], r["steps_planned"], r["seconds"],
                                      r["stop_reason"], r["message"], family_model(r, race.toy),
                                      metrics=r.get("metrics"),
                                      players={k: list(v) for k, v in r.get("players", {}).items()})
    return race


def race_from_job(job: Job) -> Race | tuple[str, str]:
    """A finished race job as the page's Race, or (level, message) when it left none (failed, or removed from the
    queue before it started)."""
    if job.status == DONE and job.result and job.result.get("runs"):
        return race_from_result(job.result, job.id)
    if job.status == DONE:
        return "info", f"The race left nothing to show: {job.message}."
    return ("info" if job.status == CANCELLED else "warning"), f"No race: {job.message}."


def adopt_race() -> Race | None:
    """Collect this session's finished race job (dashboard.ui.background.collect) into st.session_state (RACE_KEY),
    and return the session's last race."""
    job = background.collect(JOB)
    if job is not None:
        made = race_from_job(job)
        if isinstance(made, Race):
            st.session_state[RACE_KEY] = made
            st.session_state.pop(NOTICE_KEY, None)
        else:
            st.session_state[NOTICE_KEY] = made
    return st.session_state.get(RACE_KEY)
