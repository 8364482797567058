"""Live training for the Train page: core.training.train_ddpm_2d with a throttled progress callback, quick sample
snapshots while it learns, a stop that keeps the partial model, and the checkpoint as downloadable bytes.

How stopping works (Streamlit 1.67, runner.fastReruns on, the default): a click during a script run (the Stop
button, any other widget, a page link) makes Streamlit stop the running script, by raising StopException at
its next yield point (any st.* call, st.session_state included), and start a new run at once, in another
thread. During training the only st.* calls are in our progress callback, so ``train_live`` catches the
exception there and returns True: the engine stops cleanly and returns the weights so far. The stopped run
then puts the model into a plain dict kept in session state (``mailbox``, fetched before training), with no
further st.* call, and re-raises the exception; the new run waits for that in ``adopt_finished_run`` and
registers the model, so the page it draws already shows it. (With fastReruns off, the same click arrives as
RerunException instead, handled the same way.)
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import streamlit as st
import torch
from safetensors.torch import save as safetensors_bytes
from streamlit.runtime.scriptrunner import RerunException, StopException

from core.checkpoints import FORMAT_VERSION
from core.samplers import sample
from core.schedules import Schedule
from core.training import TrainConfig, TrainResult, train_ddpm_2d

ACTIVE_KEY = "train.active"  # st.session_state: since when a training run has been storing or training
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
    state: dict[str, Any] = {"last": 0.0, "interrupt": None}

    def callback(info: dict[str, Any]) -> bool:
        losses.append(info["loss"])
        step = info["step"]
        snap = step % snapshot_every == 0 or step == info["steps"]
        if snap:
            snapshots.append(Snapshot(step, snapshot(info["ema_model"], schedule, x_T)))
        now = time.perf_counter()
        if snap or now - state["last"] >= min_interval_s:
            state["last"] = now
            try:
                on_update(info, losses, snapshots)
            except (RerunException, StopException) as request:  # a click: stop here, keep what was trained
                state["interrupt"] = request
                return True
        return False

    result, config = train_ddpm_2d(data, schedule, cfg, mlp=mlp, callback=callback)
    if result.steps and (not snapshots or snapshots[-1].step != result.steps):
        snapshots.append(Snapshot(result.steps, snapshot(result.ema_model, schedule, x_T)))
    return LiveTraining(result, config, losses, snapshots, state["interrupt"])


def checkpoint_bytes(model: torch.nn.Module, config: dict[str, Any]) -> tuple[bytes, bytes]:
    """The two files of core.checkpoints.save_checkpoint, as bytes: safetensors weights and the JSON config.

    The user's points are dropped from the JSON when there are more than MAX_JSON_POINTS of them (the
    weights do not need them; ``data.points_omitted`` says how many there were)."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    weights = safetensors_bytes(tensors, metadata={"format_version": str(FORMAT_VERSION)})
    cfg = json.loads(json.dumps(config))  # a deep copy of plain JSON types
    data = cfg.get("data", {})
    if len(data.get("points", ())) > MAX_JSON_POINTS:
        data["points_omitted"] = len(data.pop("points"))
    text = json.dumps({"format_version": FORMAT_VERSION, **cfg}, indent=2) + "\n"
    return weights, text.encode()


def downsample(values: list[float], max_points: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """(steps, mean values) of consecutive blocks, at most ``max_points`` of them: a light live chart."""
    v = np.asarray(values, dtype=np.float64)
    if len(v) <= max_points:
        return np.arange(1, len(v) + 1), v
    size = int(np.ceil(len(v) / max_points))
    n = len(v) // size * size
    blocks = v[:n].reshape(-1, size).mean(axis=1)
    steps = np.arange(size, n + 1, size)
    return steps, blocks


@dataclass
class TrainedRun:
    """What the Train page keeps in st.session_state (RUN_KEY) about the last run. ``token`` names the model
    in the session-model registry of dashboard.components.models once the run has been adopted."""

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


# --- handing a run over between script runs ---------------------------------------------------------------------
#
# A run stopped by a click may not touch st.session_state any more (every access is a yield point that raises
# StopException again). So it writes into a plain dict that lives in session state, the *mailbox*, fetched
# before training starts; whichever script run comes next (the one the click started) adopts what it finds.

RUN_KEY = "train.run"  # st.session_state: the last adopted TrainedRun
MAILBOX_KEY = "train.mailbox"  # st.session_state: {"active": start time or None, "done": (TrainedRun, Pretrained)}
COUNT_KEY = "train.count"  # st.session_state: runs adopted so far (numbers the labels)
MAX_SESSION_MODELS = 5  # older models trained in this session are dropped beyond this


def mailbox() -> dict[str, Any]:
    """The session's mailbox dict (the same object on every run of this session)."""
    return st.session_state.setdefault(MAILBOX_KEY, {"active": None, "done": None})


@contextmanager
def training_in_progress(box: dict[str, Any]) -> Iterator[None]:
    """Mark the mailbox as busy while training and storing the result (plain dict writes only)."""
    box["active"] = time.time()
    try:
        yield
    finally:
        box["active"] = None


def adopt_finished_run(timeout_s: float = 15.0) -> TrainedRun | None:
    """Register the model of a finished or stopped run (if the mailbox holds one) and return the last run.

    If a run of this session is still training or storing (a click has just interrupted it and started this
    run), wait for it first: at most ``timeout_s``, since it stops at its next progress update."""
    from dashboard.components.models import register_session_model, session_models

    box = mailbox()
    if box.get("active"):
        start = time.time()
        with st.spinner("Stopping the training and keeping the model trained so far..."):
            while box.get("active") and time.time() - start < timeout_s:
                time.sleep(0.05)
    done, box["done"] = box.get("done"), None
    if done is not None:
        run, pretrained = done
        number = st.session_state.get(COUNT_KEY, 0) + 1
        st.session_state[COUNT_KEY] = number
        run.label = f"#{number} {run.label}"
        pretrained.name = f"session-{number}"
        run.token = register_session_model(run.label, pretrained, run.losses)
        registry = session_models()
        for old in list(registry)[:-MAX_SESSION_MODELS]:
            del registry[old]
        st.session_state[RUN_KEY] = run
    run = st.session_state.get(RUN_KEY)
    return run if run is not None and run.token in session_models() else None
