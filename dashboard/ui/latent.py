"""Helpers of the Latent diffusion page (dashboard/views/latent.py): the round trip through the autoencoders, the
2-D latent plane and a reverse path through it, latent sampling decoded step by step, the cost table of
benchmarks/results/latent.json, and the "Train it yourself" job (dashboard/jobs/latent.py) turned into the session's
model. Cached computations take model names or a session token (never a model object) and return plain arrays.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
import torch
from safetensors.torch import load as load_safetensors

from core import checkpoints
from core.checkpoints import Pretrained
from core.samplers import sample
from dashboard.jobs import latent as job_recipe
from dashboard.jobs.runner import CANCELLED, DONE, Job
from dashboard.ui import background, plots, sampling
from dashboard.ui.digits import CLASSIFIER, grid_labels, reading, test_digits
from dashboard.ui.loaders import ROOT, ResultsProblem, finite_number, pretrained, results_json

AE, AE2D = "autoencoder-mnist", "autoencoder2d-mnist"
LDM, LDM2D = "ldm-mnist", "ldm2d-mnist"
PIXEL = "ddpm-mnist"
AUTOENCODERS: tuple[str, ...] = (AE, AE2D)
AUTOENCODER_LABELS = {AE: "4 × 7 × 7 latent (autoencoder-mnist)", AE2D: "2-number latent (autoencoder2d-mnist)"}
N_ROUND_TRIP = 10  # held-out digits in the round-trip row
ERROR_WHITE = 0.5  # the error row: |x - D(E(x))| drawn white from this much up (a quarter of [-1, 1])
DIGITS: tuple[str, ...] = ("each", "any", *(str(d) for d in range(10)))
DIGIT_LABELS = {"each": "0–9 (one of each)", "any": "any (unconditional)"}
N_GRID, COLS = 20, 10  # digits of the live latent grid (two rows of ten)
N_FRAMES = 10  # states of the strip "x_t decoded at each step"
N_GIF = 25  # ... and of its GIF
# Steps per sampler for the latent UNet, guided (two network passes per step): the defaults keep a control change
# under a second on a 2-core CPU.
STEP_RANGES = {
    "ddpm": sampling.StepRange(10, 1000, 100, 10),
    "ddim": sampling.StepRange(2, 250, 25),
    "euler_maruyama": sampling.StepRange(10, 1000, 100, 10),
    "predictor_corrector": sampling.StepRange(5, 500, 50, 5),
    "ode_euler": sampling.StepRange(5, 500, 50, 5),
    "ode_heun": sampling.StepRange(2, 250, 15),
    "dpm_solver_2m": sampling.StepRange(2, 100, 10),
}
PATH_STEPS = 50  # DDIM steps of the 2-D latent's reverse paths
N_CLOUD = 200  # samples of the chosen digit drawn as the end points of their paths
PATH_FRAMES = 8  # decoded states along the highlighted path
MAP_N = 12  # the decoder's map of the plane: MAP_N x MAP_N decoded points
DIGIT_COLORS = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f",
                "#bab0ac")  # Tableau 10, one per digit
LATENT_COLORSCALE = "RdBu_r"  # a diverging scale around 0: blue negative, red positive
BENCH_JSON = ROOT / "benchmarks" / "results" / "latent.json"  # read at call time: tests point it away
BENCH_COMMAND = "python benchmarks/latent.py --json benchmarks/results/latent.json"
MODEL_LABELS = {PIXEL: "pixels (ddpm-mnist)", LDM: "latent (ldm-mnist)",
                LDM2D: "2-D latent (ldm2d-mnist)"}  # the cost table's rows; others by their name


# --- the data and the judge ----------------------------------------------------------------------------------------


def classifier_accuracy(models: dict[str, Any]) -> float | None:
    """classifier-mnist's test accuracy as pretrained/manifest.json records it (None if it does not)."""
    entry = models.get(CLASSIFIER)
    metrics = entry.get("metrics") if isinstance(entry, dict) else None
    acc = metrics.get("test_accuracy") if isinstance(metrics, dict) else None
    return float(acc) if isinstance(acc, (int, float)) and not isinstance(acc, bool) else None


def marks(pred: np.ndarray | None, want: np.ndarray | None) -> tuple[list[str] | None, list[str] | None]:
    """Captions "7 ✓" / "7 ✗" and their colours for the classifier's readings against the wanted digits (plain
    readings when nothing was wanted; None without the classifier)."""
    if pred is None:
        return None, None
    if want is None:
        return [str(int(d)) for d in pred], None
    good = np.asarray(pred) == np.asarray(want)
    return ([f"{int(d)} ✓" if g else f"{int(d)} ✗" for d, g in zip(pred, good, strict=True)],
            [plots.CAPTION_COLOR if g else plots.WRONG_COLOR for g in good])


# --- 1. the round trip -------------------------------------------------------------------------------------------


@st.cache_data(max_entries=32, show_spinner=False)
def round_trip(name: str, start: int, judged: bool = True) -> dict[str, Any]:
    """N_ROUND_TRIP held-out digits from #start through the autoencoder ``name``: the digits, their reconstructions
    and absolute error (uint8), the MSE of each (pixels in [-1, 1]), the classifier's reading of each
    reconstruction, and the scaled latents z = s * E(x) (float32, (n, *latent_shape))."""
    ae = pretrained(name).model
    data = test_digits()
    x, labels = data.images[start:start + N_ROUND_TRIP], data.labels[start:start + N_ROUND_TRIP]
    with torch.no_grad():
        z = ae.encode(x)
        recon = ae.decode(z)
    err = (recon - x).abs().clamp(max=ERROR_WHITE) / ERROR_WHITE  # white at ERROR_WHITE and above
    pred, conf = reading(recon, judged)
    return {"images": plots.to_uint8(x.numpy()), "recon": plots.to_uint8(recon.numpy()),
            "error": np.round(err[:, 0].numpy() * 255).astype(np.uint8),
            "mse": (recon - x).pow(2).flatten(1).mean(1).numpy(), "labels": labels.numpy(), "pred": pred,
            "conf": conf, "z": z.numpy().astype(np.float32)}


def evaluation(models: dict[str, Any], name: str) -> dict[str, Any] | None:
    """The autoencoder's evaluation on the held-out digits as pretrained/manifest.json records it
    (core.evaluate.evaluate_autoencoder: n, reconstruction_mse, reconstruction_accuracy, latent_std), or None."""
    entry = models.get(name)
    metrics = entry.get("metrics") if isinstance(entry, dict) else None
    if not isinstance(metrics, dict):
        return None
    out = {k: metrics.get(k) for k in ("n", "reconstruction_mse", "reconstruction_accuracy", "latent_std")}
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in out.values()):
        return None
    return out


def evaluate_command(name: str) -> str:
    return f"python -m core evaluate {name} --update-manifest"


def latent_figure(z: np.ndarray, captions: list[str] | None = None, width_px: int = 760) -> go.Figure:
    """Spatial latents (n, C, h, w) as one heatmap: a column of C channels per digit, white gaps, a diverging colour
    scale centred on 0 (the same for every digit and channel), the channel named at the left of each row."""
    z = np.asarray(z, dtype=np.float32)
    n, c, h, w = z.shape
    gap = 1
    grid = np.full((c * (h + gap) - gap, n * (w + gap) - gap), np.nan, dtype=np.float32)
    for i in range(n):
        for k in range(c):
            grid[k * (h + gap):k * (h + gap) + h, i * (w + gap):i * (w + gap) + w] = z[i, k]
    lim = float(np.nanmax(np.abs(grid))) or 1.0
    left, top = 80, 24 if captions else 4
    scale = (width_px - left - 80) / grid.shape[1]
    height = int(grid.shape[0] * scale + top + 8)
    heat = dict(type="heatmap", z=grid, zmin=-lim, zmax=lim, zmid=0.0, colorscale=LATENT_COLORSCALE, hoverongaps=False,
                colorbar=dict(title=dict(text="z", side="right"), thickness=12, len=0.9),
                hovertemplate="z = %{z:.2f}<extra></extra>")
    axes = dict(showticklabels=False, showgrid=False, zeroline=False, ticks="", fixedrange=True, constrain="domain")
    annotations = [dict(text=f"channel {k + 1}", x=0.0, y=k * (h + gap) + h / 2 - 0.5, xref="paper", yref="y",
                        xanchor="right", yanchor="middle", xshift=-6, showarrow=False, font=dict(size=12))
                   for k in range(c)]
    annotations += [dict(text=text, x=i * (w + gap) + w / 2 - 0.5, y=1.0, xref="x", yref="paper", xanchor="center",
                         yanchor="bottom", showarrow=False, font=dict(size=11))
                    for i, text in enumerate(captions or [])]
    layout = dict(height=height, margin=dict(l=left, r=4, t=top, b=4), plot_bgcolor="#ffffff",
                  xaxis=dict(axes, range=[-0.5, grid.shape[1] - 0.5]),
                  yaxis=dict(axes, range=[grid.shape[0] - 0.5, -0.5], scaleanchor="x", scaleratio=1),
                  annotations=annotations)
    return go.Figure(dict(data=[heat], layout=layout))


# --- 2. the 2-D latent --------------------------------------------------------------------------------------------


@st.cache_data(max_entries=2, show_spinner=False)
def plane_points() -> dict[str, np.ndarray]:
    """Every held-out digit encoded by the 2-D autoencoder: points (n, 2) (scaled latents) and labels."""
    ae = pretrained(AE2D).model
    data = test_digits()
    with torch.no_grad():
        z = torch.cat([ae.encode(data.images[i:i + 500]) for i in range(0, len(data), 500)])
    return {"points": z.numpy().astype(np.float32), "labels": data.labels.numpy()}


def plane_lim(points: np.ndarray) -> float:
    """Half the side of the square the plane is drawn on: the data and N(0, I) noise both inside."""
    return float(max(3.5, np.ceil(2 * np.quantile(np.abs(points), 0.995)) / 2 + 0.5))


@st.cache_data(max_entries=32, show_spinner=False)
def plane_paths(digit: int, w: float, seed: int, judged: bool = True) -> dict[str, Any]:
    """ldm2d-mnist's reverse DDIM paths (PATH_STEPS steps) for ``digit``, guided at w, from N_CLOUD noises z_T: the
    first path (K+1, 2), every path's end point (N_CLOUD, 2), PATH_FRAMES states of the first path decoded by the
    2-D autoencoder (uint8) with their timesteps and indices, and the classifier's reading of the decoded ends."""
    p = pretrained(LDM2D)
    z_T = torch.randn(N_CLOUD, *p.config["latent_shape"], generator=torch.Generator().manual_seed(seed))
    y = torch.full((N_CLOUD,), int(digit))
    first: list[torch.Tensor] = []

    def record(info: dict) -> None:
        first.append(info["x"][:1].clone())

    traj = sample(p.model, p.schedule, z_T, method="ddim", steps=PATH_STEPS, y=y, guidance_scale=w,
                  callback=record, keep_trajectory=False)
    path = torch.cat([*first, traj.x0[:1]])  # the state at each visited t (the callback's x), then z_0
    idx = traj.frame_indices(PATH_FRAMES)
    with torch.no_grad():
        frames = p.autoencoder.decode(path[idx])
        ends = p.autoencoder.decode(traj.x0)
    pred, _ = reading(ends, judged)
    return {"path": path.numpy(), "ends": traj.x0.numpy(), "frame_idx": idx, "frame_t": traj.state_timesteps()[idx],
            "frames": plots.to_uint8(frames.numpy()), "pred": pred,
            "read_as_digit": None if pred is None else int((pred == digit).sum())}


@st.cache_data(max_entries=2, show_spinner=False)
def decoder_map(lim: float, n: int = MAP_N) -> np.ndarray:
    """What the 2-D decoder draws at each point of an n x n grid over [-lim, lim]^2 (rows from the top, y = +lim,
    so the image reads like the plot): uint8 (n * n, 28, 28)."""
    ae = pretrained(AE2D).model
    xs = np.linspace(-lim, lim, n, dtype=np.float32)
    grid = np.stack(np.meshgrid(xs, xs[::-1]), axis=-1).reshape(-1, 2)
    with torch.no_grad():
        return plots.to_uint8(ae.decode(torch.from_numpy(grid)).numpy())


def plane_figure(points: np.ndarray, labels: np.ndarray, lim: float, paths: dict[str, Any] | None,
                 digit: int | None, height: int = 520) -> go.Figure:
    """The held-out digits in the 2-D latent, coloured by digit; over them the end points of the model's paths for
    ``digit`` (black) and the first path from its noise (orange), numbered where its states are decoded below."""
    traces: list[dict] = []
    for d in range(10):
        p = points[labels == d]
        traces.append(dict(type="scatter", x=p[:, 0], y=p[:, 1], mode="markers", name=str(d), legendgroup="digits",
                           marker=dict(size=4, color=DIGIT_COLORS[d], opacity=0.75, line_width=0),
                           hovertemplate=f"a {d}<br>z = (%{{x:.2f}}, %{{y:.2f}})<extra></extra>"))
    if paths is not None:
        ends = paths["ends"]
        traces.append(dict(type="scatter", x=ends[:, 0], y=ends[:, 1], mode="markers",
                           name=f"z₀ of {len(ends)} samples of {digit}",
                           marker=dict(size=5, color="#111827", symbol="x-thin", line=dict(width=1.2, color="#111827")),
                           hoverinfo="skip"))
        path = paths["path"]
        traces.append(dict(type="scatter", x=path[:, 0], y=path[:, 1], mode="lines", name="the path of z_t",
                           line=dict(color=plots.PATH_COLOR, width=3), hoverinfo="skip"))
        at = path[paths["frame_idx"]]
        traces.append(dict(type="scatter", x=at[:, 0], y=at[:, 1], mode="markers+text", name="decoded below",
                           text=[str(k + 1) for k in range(len(at))], textposition="top right",
                           textfont=dict(size=12, color="#9a3412"),
                           marker=dict(size=9, color=plots.PATH_COLOR, line=dict(width=1.5, color="white")),
                           hovertemplate="state %{text}: z = (%{x:.2f}, %{y:.2f})<extra></extra>"))
    axis = dict(range=[-lim, lim], zeroline=False, constrain="domain", title=None)
    layout = dict(height=height, margin=dict(l=30, r=10, t=10, b=30), xaxis=dict(axis, title="z₁"),
                  yaxis=dict(axis, title="z₂", scaleanchor="x", scaleratio=1), plot_bgcolor="#ffffff",
                  legend=dict(orientation="v", x=1.02, y=1.0, itemsizing="constant", title=dict(text="digit")))
    return go.Figure(dict(data=traces, layout=layout))


# --- 3. sampling in the latent -----------------------------------------------------------------------------------


RUN_KEY = "latent.run"  # st.session_state: the last LatentRun adopted from a finished job
NOTICE_KEY = "latent.notice"  # st.session_state: (level, text) about the last job that left no model
JOB = "latent"  # the page's job in the runner (dashboard.ui.background)


def model_tokens() -> list[str]:
    """The models section 3 samples: the pretrained one, and the session's own once trained."""
    run = st.session_state.get(RUN_KEY)
    return [LDM] + ([run.token] if run is not None and run.model is not None else [])


def token_label(token: str) -> str:
    if token == LDM:
        return "pretrained: ldm-mnist"
    run = st.session_state.get(RUN_KEY)
    return f"yours: {run.label}" if run is not None and run.token == token else token


def resolve(token: str) -> Pretrained:
    """A latent model by token: the pretrained ldm-mnist or this session's trained one (KeyError if gone)."""
    if token == LDM:
        return pretrained(LDM)
    run = st.session_state.get(RUN_KEY)
    if run is None or run.token != token or run.model is None:
        raise KeyError(f"no model {token!r} in this session")
    return run.model


@st.cache_data(max_entries=32, show_spinner=False)
def generate(token: str, digit: str, w: float, method: str, steps: int, seed: int, judged: bool = True) -> dict:
    """N_GRID digits sampled in the latent (z_T ~ N(0, I) of the model's latent shape, from the seed) and decoded;
    for the first digit, every state z_t and prediction z0_hat(z_t) of the run decoded (at most N_GIF of them)."""
    p = resolve(token)
    y = grid_labels(digit, N_GRID)
    z_T = torch.randn(N_GRID, *p.config["latent_shape"], generator=torch.Generator().manual_seed(seed))
    zs, z0s = [], []

    def record(info: dict) -> None:
        zs.append(info["x"][:1].clone())
        z0s.append(info["x0_pred"][:1].clone())

    t0 = time.perf_counter()
    traj = sample(p.model, p.schedule, z_T, method=method, steps=steps, callback=record,
                  generator=torch.Generator().manual_seed(seed + 1), y=y,
                  guidance_scale=w if y is not None else 1.0, keep_trajectory=False)
    z0 = torch.nan_to_num(traj.x0, nan=0.0)
    with torch.no_grad():
        images = p.autoencoder.decode(z0)
    seconds = time.perf_counter() - t0
    diverged = int((~torch.isfinite(traj.x0).flatten(1).all(1) | (traj.x0.flatten(1).abs().amax(1) > 20)).sum())
    pred, _ = reading(images, judged)
    idx = traj.frame_indices(N_GIF)
    states = torch.cat([*zs, z0[:1]])  # the state at each visited t (the callback's x), then z_0
    preds = torch.cat([*z0s, z0[:1]])  # the sample is its own prediction
    with torch.no_grad():
        dec_x = p.autoencoder.decode(torch.nan_to_num(states[idx]).clamp(-50, 50))
        dec_x0 = p.autoencoder.decode(torch.nan_to_num(preds[idx]).clamp(-50, 50))
    return {"images": plots.to_uint8(images.numpy()), "labels": None if y is None else y.numpy(), "pred": pred,
            "seconds": seconds, "nfe": int(traj.nfe), "steps": len(traj.timesteps), "diverged": diverged,
            "frame_idx": idx, "frame_t": traj.state_timesteps()[idx], "frames_x": plots.to_uint8(dec_x.numpy()),
            "frames_x0": plots.to_uint8(dec_x0.numpy()), "latent_first": z0[0].numpy()}


def strip_indices(n_states: int, k: int = N_FRAMES) -> np.ndarray:
    """k of the n_states frames of a run (the GIF's), evenly spread, first and last included."""
    return np.unique(np.round(np.linspace(0, n_states - 1, min(k, n_states))).astype(int))


# --- 4. the cost argument ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cost:
    table: pd.DataFrame  # one row per model: ddpm-mnist, ldm-mnist, then any other the file has
    machine: str
    n: int
    guidance_scale: float
    sampler: str
    fid_floor: float  # FID-MNIST of real digits against real digits (same n)
    seconds_ratio: float  # latent / pixel seconds per 100 digits


def cost(path: Path | None = None) -> Cost:
    """benchmarks/results/latent.json as a table; raises ResultsProblem naming the file and the command that
    writes it."""
    path = BENCH_JSON if path is None else path
    raw, fix = results_json(path, BENCH_COMMAND, "about ten minutes on a 2-core CPU")
    rows = raw.get("rows")
    if not isinstance(rows, list) or not rows or not all(isinstance(r, dict) for r in rows):
        raise ResultsProblem(f"**{path.name}** has no rows: {fix} again.")
    try:
        by_model = {str(r["model"]): r for r in rows}
        if not {PIXEL, LDM} <= set(by_model):
            raise ResultsProblem(f"rows: expected one for {PIXEL} and one for {LDM}")
        ordered = [by_model[PIXEL], by_model[LDM]] + [r for m, r in by_model.items() if m not in (PIXEL, LDM)]
        table = pd.DataFrame({
            "model": [MODEL_LABELS.get(str(r["model"]), str(r["model"])) for r in ordered],
            "parameters": [int(finite_number(r["parameters"], "parameters")) for r in ordered],
            "denoiser_parameters": [int(finite_number(r["denoiser_parameters"], "denoiser_parameters"))
                                    for r in ordered],
            "train_seconds": [finite_number(r["train_seconds"], "train_seconds") for r in ordered],
            "train_hardware": [short_hardware(str(r["train_hardware"])) for r in ordered],
            "seconds_per_100": [finite_number(r["seconds_per_100"], "seconds_per_100") for r in ordered],
            "accuracy": [finite_number(r["accuracy"], "accuracy") for r in ordered],
            "fid_mnist": [finite_number(r["fid_mnist"], "fid_mnist") for r in ordered],
        })
        if all("unconditional_classes_covered" in r for r in ordered):  # the benchmark adds it; optional here
            table["unconditional"] = [f"{int(finite_number(r['unconditional_classes_covered'], 'coverage'))}/10"
                                      for r in ordered]
        out = Cost(table=table, machine=str(raw.get("machine") or "this machine"),
                   n=int(finite_number(raw["n"], "n")), guidance_scale=finite_number(raw["guidance_scale"],
                                                                                    "guidance_scale"),
                   sampler=str(raw.get("sampler") or "?"),
                   fid_floor=finite_number(raw["fid_mnist_data_vs_data"], "fid_mnist_data_vs_data"),
                   seconds_ratio=finite_number(raw["seconds_ratio"], "seconds_ratio"))
    except (KeyError, TypeError, ResultsProblem) as err:
        raise ResultsProblem(f"**{path.name}** is damaged ({err}): {fix} again.") from None
    return out


def short_hardware(text: str) -> str:
    """'Intel(R) Xeon(R) Processor, 1 threads, torch 2.13.0+cpu' -> 'CPU, 1 thread'; '..., NVIDIA H200' -> 'GPU
    (NVIDIA H200)'; two stages on different machines ('A + B'): both, joined by ' + '."""
    shorts = []
    for part in text.split(" + "):
        fields = [f.strip() for f in part.split(",")]
        gpu = [f for f in fields if f.startswith(("NVIDIA", "AMD Instinct", "Tesla"))]
        threads = next((f.split()[0] for f in fields if f.endswith(("threads", "thread"))), None)
        short = (f"GPU ({gpu[0]})" if gpu else f"CPU, {threads} thread{'' if threads == '1' else 's'}" if threads
                 else part.strip() or "?")
        if short not in shorts:
            shorts.append(short)
    return " + ".join(shorts)


def cost_sentence(c: Cost) -> str:
    """One sentence with the ratio measured: seconds per 100 digits of the latent and the pixel model."""
    pixel, latent = c.table["seconds_per_100"].iloc[0], c.table["seconds_per_100"].iloc[1]
    ratio = c.seconds_ratio
    faster = (f" ({1 / ratio:.1f}× faster)" if 0 < ratio < 1 else f" ({ratio:.1f}× slower)" if ratio > 1 else "")
    return (f"Measured in one run ({short_hardware(c.machine)}): 100 guided digits ({c.sampler}, "
            f"w = {c.guidance_scale:g}) take **{latent:.2f} s** in the latent against **{pixel:.2f} s** in pixels, "
            f"a ratio of **{ratio:.2f}**{faster}, decoder included.")


# --- 5. train it yourself -----------------------------------------------------------------------------------------

SECONDS_PER_STEP = {"autoencoder": 0.27, "latent": 0.14}  # one default step in a worker (one thread; measured)
SETUP_S = 6.0  # loading the digits, the scale factor, encoding them, the final samples (measured 5 s)


@dataclass
class LatentSnapshot:
    stage: str  # "autoencoder": reconstructions of digits 0-9; "latent": samples of digits 0-9
    step: int
    images: np.ndarray  # (10, 28, 28) uint8


@dataclass
class LatentRun:
    """What the page keeps in st.session_state (RUN_KEY) of the last finished job."""

    label: str
    settings: dict[str, Any]
    message: str
    stopped: bool | str
    seconds: float
    stages: dict[str, dict[str, Any] | None]
    snapshots: list[LatentSnapshot]
    autoencoder: Pretrained | None
    model: Pretrained | None  # the latent model, its autoencoder attached (None: stopped during the autoencoder)
    files: dict[str, tuple[bytes, bytes]] = field(default_factory=dict, repr=False)
    samples: np.ndarray | None = None  # (n, 28, 28) uint8, samples_per_digit of each digit
    sample_labels: np.ndarray | None = None
    pred: np.ndarray | None = None  # the classifier's reading of the samples
    reconstruction_mse: float | None = None
    reconstruction_n: int = 0  # held-out digits behind reconstruction_mse
    diverged: bool = False
    token: str = field(default_factory=lambda: f"session:{uuid.uuid4().hex[:8]}")


def expected_seconds(autoencoder_steps: int, latent_steps: int) -> float:
    """A first guess at the job's running time on one worker core."""
    return (autoencoder_steps * SECONDS_PER_STEP["autoencoder"] + latent_steps * SECONDS_PER_STEP["latent"]
            + SETUP_S)


def _load(part: dict[str, Any]) -> Pretrained:
    config = part["config"]
    model, schedule = checkpoints.build_model(config)
    model.load_state_dict(load_safetensors(part["weights"]))
    model.eval().requires_grad_(False)
    return Pretrained(model=model, schedule=schedule, config=config)


def run_from_result(result: dict[str, Any], label: str, settings: dict[str, Any],
                    snapshots: list[dict[str, Any]], judged: bool = True) -> LatentRun:
    """The page's LatentRun from the plain-data result of a train_latent job (dashboard/jobs/latent.py): the
    autoencoder and the latent model rebuilt from their safetensors bytes (the latent model with its autoencoder
    attached, as load_pretrained gives it), the checkpoint files for download, the classifier's reading."""
    ae = _load(result["autoencoder"]) if result.get("autoencoder") else None
    model = None
    files: dict[str, tuple[bytes, bytes]] = {}
    if ae is not None:
        files["autoencoder"] = checkpoints.checkpoint_bytes(ae.model, ae.config)
    if ae is not None and result.get("latent"):
        model = _load(result["latent"])
        model.autoencoder = ae.model
        files["latent"] = checkpoints.checkpoint_bytes(model.model, model.config)
    samples = result.get("samples")
    pred = None
    if samples is not None and judged:
        pred, _ = reading(torch.from_numpy(samples.astype(np.float32) / 127.5 - 1.0)[:, None], judged)
    return LatentRun(label=label, settings=settings, message=result.get("message", ""),
                     stopped=result.get("stopped", False), seconds=float(result.get("seconds", 0.0)),
                     stages=result.get("stages", {}),
                     snapshots=[LatentSnapshot(s["stage"], s["step"], s["images"]) for s in snapshots],
                     autoencoder=ae, model=model, files=files, samples=samples,
                     sample_labels=result.get("sample_labels"), pred=pred,
                     reconstruction_mse=result.get("reconstruction_mse"),
                     reconstruction_n=int(result.get("reconstruction_n", 0)), diverged=bool(result.get("diverged")))


def run_from_job(job: Job, judged: bool = True) -> LatentRun | tuple[str, str]:
    """A finished job as the page's LatentRun, or (level, message) when it left no model."""
    result = job.result or {}
    if job.status != DONE or not result.get("autoencoder"):
        reason = job.message if job.status != DONE else result.get("message", job.message)
        return ("info" if job.status == CANCELLED else "warning"), f"No model: {reason}."
    return run_from_result(result, job.label, job.spec.get("settings", {}), job.snapshots, judged)


def adopt_run(judged: bool = True) -> LatentRun | None:
    """Collect this session's finished job (once) into st.session_state and return the session's last run."""
    job = background.collect(JOB)
    if job is not None:
        made = run_from_job(job, judged)
        if isinstance(made, LatentRun):
            st.session_state[RUN_KEY] = made
            st.session_state.pop(NOTICE_KEY, None)
        else:
            st.session_state[NOTICE_KEY] = made
    return st.session_state.get(RUN_KEY)


@st.cache_data(max_entries=16, show_spinner=False)
def pretrained_samples(seed: int, per_digit: int, w: float, steps: int, judged: bool = True) -> dict[str, Any]:
    """ldm-mnist's digits from the noise the job's final samples start from (dashboard.jobs.latent.final_noise),
    DDIM, guided: the pretrained model beside the one trained here."""
    p = pretrained(LDM)
    labels = job_recipe.sample_labels(per_digit)
    z_T = job_recipe.final_noise(seed, len(labels), tuple(p.config["latent_shape"]))
    with torch.no_grad():
        z = sample(p.model, p.schedule, z_T, method="ddim", steps=steps, y=labels, guidance_scale=w,
                   keep_trajectory=False).x0
        images = p.autoencoder.decode(z)
    pred, _ = reading(images, judged)
    return {"images": plots.to_uint8(images.numpy()), "labels": labels.numpy(), "pred": pred}


def stage_losses(job: Job) -> tuple[list[float], list[float]]:
    """The running job's losses so far: the autoencoder's and the latent model's."""
    offset = job.progress.get("latent_offset") or 0
    if not offset:
        return list(job.losses), []
    return list(job.losses[:offset]), list(job.losses[offset:])


LOSS_COLORS = {"loss": "#c7d2fe", "moving average": "#4f46e5"}
LOSS_TITLES = {"autoencoder": "autoencoder loss (log scale)", "latent": "L_LDM (log scale)"}


def loss_chart(losses: list[float], stage: str, height: int = 260):
    """Block means of a stage's loss and its moving average, log scale."""
    frame = plots.smoothed_frame(losses, span=max(5, min(100, len(losses) // 5)), names=("loss", "moving average"),
                                 y="loss")
    return plots.line_chart(frame, "step", "loss", "series", x_title="training step", y_title=LOSS_TITLES[stage],
                            log_y=True, colors=LOSS_COLORS, height=height)
