"""The 2D diffusion recipe (CLI, dashboard, benchmarks): an MLP eps-model trained with L_simple on a toy or on
a point cloud, through the one training loop (core.training.train).

    result, config = train_ddpm_2d("swiss_roll", make_schedule("cosine", 1000), DEFAULT_2D_TRAIN)
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import torch
from torch import nn

from core.data.toy2d import NUM_CLASSES, sample_toy, sample_toy_with_labels
from core.diffusion import OBJECTIVE_HYBRID, VPredictionDenoiser, loss_hybrid, loss_simple, loss_vlb
from core.importance import LossSecondMomentSampler
from core.models.mlp import MLPConfig, MLPDenoiser
from core.schedules import Schedule
from core.training import TrainConfig, TrainResult, loss_curve, train

DEFAULT_MLP = {"width": 96, "depth": 2, "t_embed_dim": 32, "x_embed_dim": 16}
DEFAULT_2D_TRAIN = TrainConfig(steps=1600, batch_size=512, lr=3e-3)
OBJECTIVES = ("hybrid", "vlb")  # with learn_sigma (without it: L_simple)
OBJECTIVE_VLB = "L_vlb alone, t importance-sampled by its terms' history (Nichol & Dhariwal 2021 sec. 3.3)"


def train_ddpm_2d(data: str | torch.Tensor, schedule: Schedule, cfg: TrainConfig = DEFAULT_2D_TRAIN,
                  mlp: dict[str, Any] | None = None, labels: torch.Tensor | None = None,
                  conditional: bool = False, p_uncond: float = 0.1, learn_sigma: bool = False,
                  objective: str = "hybrid", callback: Callable[[dict[str, Any]], bool | None] | None = None
                  ) -> tuple[TrainResult, dict[str, Any]]:
    """Train a 2D eps-model with L_simple (Ho et al. 2020, Algorithm 1) on a toy name or a point cloud.

    The MLP's output is parameterised as v and exposed as eps (see VPredictionDenoiser). With
    ``conditional`` the labels are dropped to the null class with probability ``p_uncond``, so one
    network learns both eps(x, t, y) and eps(x, t) for classifier-free guidance (Ho & Salimans 2022).
    With ``learn_sigma`` the network also learns its reverse variances (Nichol & Dhariwal 2021), with ``objective``
    "hybrid" (core.diffusion.loss_hybrid) or "vlb" (L_vlb alone with importance-sampled t, core.diffusion.loss_vlb).
    Returns the training result and the checkpoint config (without data provenance).
    """
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown objective {objective!r}; expected one of: {', '.join(OBJECTIVES)}")
    next_batch, num_classes = batch_sampler(data, cfg.batch_size, labels, conditional)
    model_cfg = MLPConfig(**{**DEFAULT_MLP, **(mlp or {}), "num_classes": num_classes, "T": schedule.T,
                             "learn_sigma": learn_sigma})
    if not learn_sigma:
        loss = loss_simple
    elif objective == "hybrid":
        loss = loss_hybrid
    else:
        loss = partial(loss_vlb, sampler=LossSecondMomentSampler(schedule.T))
    torch.manual_seed(cfg.seed)  # parameter initialisation
    model = VPredictionDenoiser(MLPDenoiser(model_cfg), schedule)
    null = model_cfg.num_classes

    def loss_fn(m: nn.Module, batch, g: torch.Generator) -> torch.Tensor:
        x0, y = batch
        x0 = x0.to(cfg.device)
        if y is not None:
            drop = torch.rand(y.shape, generator=g) < p_uncond
            y = torch.where(drop, torch.full_like(y, null), y).to(cfg.device)
        return loss(m, schedule, x0, y=y, generator=g)

    result = train(model, loss_fn, next_batch, cfg, callback=callback)
    config = ddpm_2d_config(model_cfg, schedule, cfg, result, p_uncond if conditional else None)
    if learn_sigma and objective == "vlb":
        config["objective"] = OBJECTIVE_VLB
    return result, config


def batch_sampler(data: str | torch.Tensor, batch_size: int, labels: torch.Tensor | None = None,
                  conditional: bool = False) -> tuple[Callable[[int, torch.Generator], tuple], int]:
    """``next_batch(step, g) -> (x0, y or None)`` drawing from a toy or a point cloud, and the number of classes."""
    if isinstance(data, str):
        if conditional:
            return (lambda step, g: sample_toy_with_labels(data, batch_size, g)), NUM_CLASSES[data]
        return (lambda step, g: (sample_toy(data, batch_size, g), None)), 0
    points = data.float()
    if conditional and labels is None:
        raise ValueError("a conditional model needs labels for the points")

    def next_batch(step: int, g: torch.Generator) -> tuple:
        idx = torch.randint(0, points.shape[0], (batch_size,), generator=g)
        return points[idx], (labels[idx] if conditional else None)

    return next_batch, (int(labels.max()) + 1 if conditional else 0)


def ddpm_2d_config(model_cfg: MLPConfig, schedule: Schedule, cfg: TrainConfig, result: TrainResult,
                   p_uncond: float | None = None) -> dict[str, Any]:
    """The checkpoint config of a 2D eps-model trained with L_simple (without data provenance)."""
    return {
        "family": "ddpm",
        "model": {"type": "mlp", "parameterization": "v", **model_cfg.to_dict()},
        "schedule": schedule.to_config(),
        "objective": (OBJECTIVE_HYBRID if model_cfg.learn_sigma else
                      "L_simple (eps-prediction loss, Ho et al. 2020 eq. 14)"),
        "p_uncond": p_uncond,
        "training": {**cfg.to_dict(), "steps_done": result.steps, "seconds": round(result.seconds, 2),
                     "stop_reason": result.stop_reason,
                     "final_loss": sum(result.losses[-100:]) / max(1, len(result.losses[-100:])),
                     "loss_curve": loss_curve(result.losses)},
    }
