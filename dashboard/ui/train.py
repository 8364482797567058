"""Helpers of the Train page: the training job it hands to the job runner (dashboard/jobs/recipes.py, train_2d),
what the page keeps of a finished run, and the checkpoint as downloadable bytes.

A run's life: the page builds ``job_spec(...)`` and starts it (dashboard.ui.background); a worker process trains,
reporting losses and snapshots; when it ends, ``trained_run(job)`` turns the job's plain-data result into the
session's model (dashboard.ui.models.adopt_trained_model registers it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from safetensors.torch import load as load_safetensors

from core import checkpoints
from core.data.toy2d import sample_toy
from core.schedules import Schedule
from core.train_2d import DEFAULT_2D_TRAIN
from core.training import TrainConfig
from dashboard.jobs.runner import DONE, Job

JOB = "train"  # the Train page's job (dashboard.ui.background)
RUN_KEY = "train.run"  # st.session_state: the last adopted TrainedRun (dashboard.ui.models.adopt_trained_model)
COUNT_KEY = "train.count"  # st.session_state: runs adopted so far (numbers the labels)
NOTICE_KEY = "train.notice"  # st.session_state: (level, text) about the last job that left no model
MAX_SESSION_MODELS = 5  # older models trained in this session are dropped beyond this
MAX_JSON_POINTS = 10_000  # a downloaded config keeps the user's points up to this many (about 300 KB of JSON)
N_SAMPLES = 2000  # final samples and quality metrics, computed by the job
SNAPSHOT_N = 500
SECONDS_PER_STEP = 0.009  # one default-recipe step in a worker (one torch thread, 2-core CPU, measured 8-10 ms)


@dataclass
class Snapshot:
    step: int
    points: np.ndarray  # (n, 2) DDIM samples of the EMA model at this step


@dataclass
class TrainedRun:
    """What the Train page keeps in st.session_state (RUN_KEY) about the last run. ``token`` names the model
    in the session-model registry of dashboard.ui.models once the run has been adopted."""

    label: str
    settings: dict[str, Any]
    losses: list[float]
    snapshots: list[Snapshot]
    message: str
    stop_reason: str
    steps: int
    seconds: float
    data_points: np.ndarray  # the training data (a toy draw, or the user's standardised points) for overlays
    toy: str | None
    files: tuple[bytes, bytes] = field(default=(b"", b""), repr=False)
    token: str = ""
    samples: np.ndarray | None = None  # N_SAMPLES DDIM-50 samples (the job draws them)
    quality: dict[str, Any] | None = None  # core.evaluate.evaluate_2d on a toy (the job measures it)


def job_spec(data: str | np.ndarray, data_config: dict[str, Any], schedule: Schedule, cfg: TrainConfig,
             mlp: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
    """The train_2d job (dashboard.jobs.recipes.train_2d) for these settings; ``settings`` come back in the result
    so the page can say what was trained."""
    return {"data": data, "data_config": data_config, "schedule": schedule.to_config(), "train": cfg.to_dict(),
            "mlp": mlp, "snapshot_every": max(100, round(cfg.steps / 10, -2)), "snapshot_n": SNAPSHOT_N,
            "seed": cfg.seed, "final_n": N_SAMPLES, "steps": cfg.steps, "settings": settings}


def expected_seconds(steps: int) -> float:
    """A first guess at a job's running time (the runner refines it from the jobs it has seen)."""
    return steps * SECONDS_PER_STEP + 3.0


def overlay_points(spec: dict[str, Any], n: int) -> np.ndarray:
    """n points of the training data (the toy, or a subset of the user's points), for the plots' grey overlay."""
    seed = int(spec["seed"])
    if isinstance(spec["data"], str):
        return sample_toy(spec["data"], n, generator=torch.Generator().manual_seed(seed)).numpy()
    points = np.asarray(spec["data"], dtype=np.float32)
    idx = torch.randperm(len(points), generator=torch.Generator().manual_seed(seed))[:n].numpy()
    return points[idx]


def trained_run(job: Job) -> tuple[TrainedRun, checkpoints.Pretrained] | tuple[str, str]:
    """The finished job as (the page's run, the model), or (level, message) when it left no model."""
    result = job.result or {}
    if job.status != DONE or "weights" not in result:
        reason = job.message if job.status != DONE else result.get("message", job.message)
        return ("warning" if job.status != "cancelled" else "info"), f"No model: {reason}"
    spec, settings = job.spec, job.spec["settings"]
    config = result["config"]
    model, schedule = checkpoints.build_model(config)
    model.load_state_dict(load_safetensors(result["weights"]))
    model.eval().requires_grad_(False)
    label = job.label + f", {result['steps_done']:,} steps" + (" (stopped early)" if result["stop_reason"] != "steps"
                                                              else "")
    run = TrainedRun(
        label=label, settings=settings, losses=list(job.losses), message=result["message"],
        snapshots=[Snapshot(s["step"], s["points"]) for s in job.snapshots], stop_reason=result["stop_reason"],
        steps=result["steps_done"], seconds=result["train_seconds"], data_points=overlay_points(spec, N_SAMPLES),
        toy=spec["data"] if isinstance(spec["data"], str) else None,
        files=checkpoint_bytes(model, config), samples=result["samples"], quality=result.get("quality"))
    return run, checkpoints.Pretrained(model=model, schedule=schedule, config=config)


def default_config(steps: int, budget_s: float, seed: int) -> TrainConfig:
    """The default 2D recipe (core.train_2d.DEFAULT_2D_TRAIN) with the page's steps, budget and seed."""
    d = DEFAULT_2D_TRAIN
    return TrainConfig(steps=steps, batch_size=d.batch_size, lr=d.lr, time_budget_s=float(budget_s), seed=seed)


def checkpoint_bytes(model: torch.nn.Module, config: dict[str, Any]) -> tuple[bytes, bytes]:
    """core.checkpoints.checkpoint_bytes for a download: safetensors weights and the JSON config, as bytes.

    The user's points are dropped from the JSON when there are more than MAX_JSON_POINTS of them (the
    weights do not need them; ``data.points_omitted`` says how many there were)."""
    cfg = json.loads(json.dumps(config))  # a deep copy of plain JSON types: the caller's config is untouched
    data = cfg.get("data", {})
    if len(data.get("points", ())) > MAX_JSON_POINTS:
        data["points_omitted"] = len(data.pop("points"))
    return checkpoints.checkpoint_bytes(model, cfg)
