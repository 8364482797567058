"""What a job of each kind does in a worker process, with the engine alone (no Streamlit).

A recipe is ``recipe(spec, report, should_stop) -> result``: ``spec`` and ``result`` are plain data (numbers,
lists, numpy arrays, safetensors bytes), ``report(kind, payload)`` sends "progress" and "snapshot" messages to
the page that follows the job, and ``should_stop()`` is polled at every training step: False, "stop" (the Stop
button: keep the weights so far) or "cancel" (a closed tab: nobody waits for the result).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from core.checkpoints import Pretrained, checkpoint_bytes
from core.evaluate import evaluate_2d, sample_2d
from core.schedules import Schedule, make_schedule
from core.train_2d import ddpm_2d_config, train_ddpm_2d
from core.training import TrainConfig, TrainResult
from dashboard.jobs.latent import train_latent
from dashboard.jobs.race import race
from dashboard.jobs.snapshot import Report, ShouldStop, snapshot

PROGRESS_EVERY_S = 0.25  # progress messages at most this often (the page polls once a second)


def train_2d(spec: dict[str, Any], report: Report, should_stop: ShouldStop,
             take_forks: Callable[[], list[str]] | None = None) -> dict[str, Any]:
    """core.train_2d.train_ddpm_2d on a toy or the user's points, with progress, snapshots and a stop; then the
    final samples (DDIM-50) and, for a toy, its quality (core.evaluate.evaluate_2d), so the server computes
    nothing.

    spec: data (a toy name or an (n, 2) float32 array of standardised points), schedule (Schedule.to_config()),
    train (TrainConfig fields), mlp, snapshot_every, snapshot_n, seed, final_n, data_config (the checkpoint's
    "data" provenance). ``take_forks()`` (a shared run, see dashboard.jobs.runner) names the jobs that stopped
    while others follow this run: each gets a "forked" report with the model so far, as if it had stopped here.
    """
    schedule = make_schedule(**spec["schedule"])
    cfg = TrainConfig(**spec["train"])
    data = spec["data"] if isinstance(spec["data"], str) else torch.from_numpy(np.asarray(spec["data"], np.float32))
    snapshot_every, seed = int(spec["snapshot_every"]), int(spec["seed"])
    x_T = torch.randn(int(spec["snapshot_n"]), 2, generator=torch.Generator().manual_seed(seed + 12345))
    state = {"last": 0.0, "sent": 0, "snapshot_at": 0}
    losses: list[float] = []

    def callback(info: dict[str, Any]) -> bool:
        losses.append(info["loss"])
        step = info["step"]
        if step % snapshot_every == 0 or step == info["steps"]:
            report("snapshot", {"step": step, "points": snapshot(info["ema_model"], schedule, x_T)})
            state["snapshot_at"] = step
        now = time.perf_counter()
        if now - state["last"] >= PROGRESS_EVERY_S or step == info["steps"]:
            state["last"] = now
            report("progress", {"step": step, "steps": info["steps"], "loss": info["loss"],
                                "seconds": info["seconds"], "new_losses": losses[state["sent"]:]})
            state["sent"] = len(losses)
        request = should_stop()
        for job in take_forks() if take_forks is not None else ():
            so_far = TrainResult(model=info["model"], ema_model=info["ema_model"], steps=step,
                                 seconds=info["seconds"], stop_reason="callback", losses=list(losses),
                                 message=f"stopped by request after {step} steps")
            config = ddpm_2d_config(info["model"].net.config, schedule, cfg, so_far)
            report("forked", {"job": job, **trained_model(so_far, config, spec, schedule)})
        return bool(request)

    result, config = train_ddpm_2d(data, schedule, cfg, mlp=spec.get("mlp"), callback=callback)
    report("progress", {"step": result.steps, "steps": cfg.steps, "seconds": result.seconds,
                        "new_losses": losses[state["sent"]:]})
    if not result.steps or should_stop() == "cancel":  # no model, or nobody waits for it (a closed tab)
        return {"steps_done": result.steps, "train_seconds": result.seconds, "stop_reason": result.stop_reason,
                "message": result.message, "losses": losses}
    if state["snapshot_at"] != result.steps:
        report("snapshot", {"step": result.steps, "points": snapshot(result.ema_model, schedule, x_T)})
    report("progress", {"step": result.steps, "steps": cfg.steps, "seconds": result.seconds,
                        "phase": f"Trained; now sampling {int(spec['final_n']):,} points and measuring them"})
    return trained_model(result, config, spec, schedule)


def trained_model(result: TrainResult, config: dict[str, Any], spec: dict[str, Any],
                  schedule: Schedule) -> dict[str, Any]:
    """A train_2d job's result from its training: the EMA weights and config, ``final_n`` DDIM-50 samples and, for a
    toy, their quality; a model whose samples are not finite is said to have diverged."""
    out: dict[str, Any] = {"steps_done": result.steps, "train_seconds": result.seconds,
                           "stop_reason": result.stop_reason, "message": result.message,
                           "losses": list(result.losses)}
    config["data"] = spec["data_config"]
    model = result.ema_model.eval().requires_grad_(False)
    p = Pretrained(model=model, schedule=schedule, config=config)
    out["weights"], _ = checkpoint_bytes(model, config)
    out["config"] = config
    n, steps, seed = int(spec["final_n"]), min(50, schedule.T), int(spec["seed"])
    t0 = time.perf_counter()
    samples = sample_2d(p, n, seed=seed, steps=steps)
    sample_seconds = time.perf_counter() - t0
    out["samples"] = samples.numpy()
    if not np.isfinite(out["samples"]).all():
        out["diverged"] = True
        out["message"] += "; but its samples are not finite: training diverged (try a lower learning rate)"
    elif spec["data_config"].get("kind") == "toy":
        quality = evaluate_2d(p, n=n, seed=seed, steps=steps, repeats=2, samples=samples,
                              kernel_distances=False)  # the page shows the sliced Wasserstein and modes
        out["quality"] = {**quality, "sample_seconds": round(sample_seconds, 3)}
    return out


def warm_up() -> None:
    """A few steps of a tiny 2D model, so a fresh worker's first job does not pay for the process's first
    optimizer steps and kernels (seconds on a busy machine) inside its time budget."""
    schedule = make_schedule("cosine", 100)
    train_ddpm_2d("eight_gaussians", schedule, TrainConfig(steps=3, batch_size=64, warmup_steps=1),
                  mlp={"width": 16, "depth": 1, "t_embed_dim": 16, "x_embed_dim": 4})


RECIPES: dict[str, Callable[..., dict[str, Any]]] = {
    "train_2d": train_2d,
    "race": race,
    "train_latent": train_latent,
}
SHAREABLE = frozenset({"train_2d"})  # kinds whose identical jobs may follow one run (they take ``take_forks``)
