"""Live training for the Train page: core.train_2d.train_ddpm_2d with a throttled progress callback, quick sample
snapshots while it learns, a stop that keeps the partial model (dashboard.ui.background), and the checkpoint as
downloadable bytes. The race of the baselines page draws its diffusion snapshots with ``snapshot`` too.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from core import checkpoints
from core.samplers import sample
from core.schedules import Schedule
from core.train_2d import train_ddpm_2d
from core.training import TrainConfig, TrainResult
from dashboard.ui import background

JOB = "train"  # the background job of the Train page (dashboard.ui.background)
MAILBOX_KEY = background.mailbox_key(JOB)  # st.session_state: {"active": ..., "done": (TrainedRun, Pretrained)}
RUN_KEY = "train.run"  # st.session_state: the last adopted TrainedRun (dashboard.ui.models.adopt_trained_model)
COUNT_KEY = "train.count"  # st.session_state: runs adopted so far (numbers the labels)
MAX_SESSION_MODELS = 5  # older models trained in this session are dropped beyond this
MAX_JSON_POINTS = 10_000  # a downloaded config keeps the user's points up to this many (about 300 KB of JSON)


@dataclass
class Snapshot:
    step: int
    points: np.ndarray  # (n, 2) DDIM samples of the EMA model at this step


@dataclass
class LiveTraining:
    result: TrainResult
    config: dict[str, Any]
    losses: list[float]
    snapshots: list[Snapshot]
    interrupt: BaseException | None = None  # Streamlit's rerun/stop request caught during training: re-raise it


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


def snapshot(model: torch.nn.Module, schedule: Schedule, x_T: torch.Tensor, steps: int = 20) -> np.ndarray:
    """A quick DDIM sample (Song et al. 2021) from fixed noise x_T, so successive snapshots are comparable."""
    was_training = model.training
    model.eval()
    try:
        x = sample(model, schedule, x_T, method="ddim", steps=min(steps, schedule.T), keep_trajectory=False).xs[-1]
    finally:
        model.train(was_training)
    return x.numpy()


def train_live(data: str | torch.Tensor, schedule: Schedule, cfg: TrainConfig, mlp: dict[str, Any],
               on_update: Callable[[dict[str, Any], list[float], list[Snapshot]], None],
               snapshot_every: int = 300, snapshot_n: int = 500, seed: int = 0,
               min_interval_s: float = 0.3) -> LiveTraining:
    """Run ``train_ddpm_2d`` and call ``on_update(info, losses, snapshots)`` at most every ``min_interval_s``
    seconds and at every snapshot (every ``snapshot_every`` steps and at the end). A Streamlit rerun or stop
    raised by ``on_update`` ends training early; it is returned in ``interrupt`` for the caller to re-raise."""
    x_T = torch.randn(snapshot_n, 2, generator=torch.Generator().manual_seed(seed + 12345))
    losses: list[float] = []
    snapshots: list[Snapshot] = []
    last = {"update": 0.0}
    interrupt = background.Interrupt()

    def callback(info: dict[str, Any]) -> bool:
        losses.append(info["loss"])
        step = info["step"]
        snap = step % snapshot_every == 0 or step == info["steps"]
        if snap:
            snapshots.append(Snapshot(step, snapshot(info["ema_model"], schedule, x_T)))
        now = time.perf_counter()
        if snap or now - last["update"] >= min_interval_s:
            last["update"] = now
            return interrupt.guard(on_update, info, losses, snapshots)  # a click: stop, keep what was trained
        return False

    result, config = train_ddpm_2d(data, schedule, cfg, mlp=mlp, callback=callback)
    if result.steps and (not snapshots or snapshots[-1].step != result.steps):
        snapshots.append(Snapshot(result.steps, snapshot(result.ema_model, schedule, x_T)))
    return LiveTraining(result, config, losses, snapshots, interrupt.request)


def checkpoint_bytes(model: torch.nn.Module, config: dict[str, Any]) -> tuple[bytes, bytes]:
    """core.checkpoints.checkpoint_bytes for a download: safetensors weights and the JSON config, as bytes.

    The user's points are dropped from the JSON when there are more than MAX_JSON_POINTS of them (the
    weights do not need them; ``data.points_omitted`` says how many there were)."""
    cfg = json.loads(json.dumps(config))  # a deep copy of plain JSON types: the caller's config is untouched
    data = cfg.get("data", {})
    if len(data.get("points", ())) > MAX_JSON_POINTS:
        data["points_omitted"] = len(data.pop("points"))
    return checkpoints.checkpoint_bytes(model, cfg)
