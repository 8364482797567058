"""The 2D diffusion recipe (CLI, dashboard, benchmarks): an MLP eps-model trained with L_simple on a toy or on
a point cloud, through the one training loop (core.training.train).

    result, config = train_ddpm_2d("swiss_roll", make_schedule("cosine", 1000), DEFAULT_2D_TRAIN)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from core.data.toy2d import NUM_CLASSES, sample_toy, sample_toy_with_labels
from core.diffusion import VPredictionDenoiser, loss_simple
from core.models.mlp import MLPConfig, MLPDenoiser
from core.schedules import Schedule
from core.training import TrainConfig, TrainResult, loss_curve, train

DEFAULT_MLP = {"width": 96, "depth": 2, "t_embed_dim": 32, "x_embed_dim": 16}
DEFAULT_2D_TRAIN = TrainConfig(steps=1600, batch_size=512, lr=3e-3)


def train_ddpm_2d(data: str | torch.Tensor, schedule: Schedule, cfg: TrainConfig = DEFAULT_2D_TRAIN,
                  mlp: dict[str, Any] | None = None, labels: torch.Tensor | None = None,
                  conditional: bool = False, p_uncond: float = 0.1,
                  callback: Callable[[dict[str, Any]], bool | None] | None = None
                  ) -> tuple[TrainResult, dict[str, Any]]:
    """Train a 2D eps-model with L_simple (Ho et al. 2020, Algorithm 1) on a toy name or a point cloud.

    The MLP's output is parameterised as v and exposed as eps (see VPredictionDenoiser). With
    ``conditional`` the labels are dropped to the null class with probability ``p_uncond``, so one
    network learns both eps(x, t, y) and eps(x, t) for classifier-free guidance (Ho & Salimans 2022).
    Returns the training result and the checkpoint config (without data provenance).
    """
    if isinstance(data, str):
        num_classes = NUM_CLASSES[data] if conditional else 0
        if conditional:
            def next_batch(step: int, g: torch.Generator):
                return sample_toy_with_labels(data, cfg.batch_size, g)
        else:
            def next_batch(step: int, g: torch.Generator):
                return sample_toy(data, cfg.batch_size, g), None
    else:
        points = data.float()
        if conditional and labels is None:
            raise ValueError("a conditional model needs labels for the points")
        num_classes = int(labels.max()) + 1 if conditional else 0

        def next_batch(step: int, g: torch.Generator):
            idx = torch.randint(0, points.shape[0], (cfg.batch_size,), generator=g)
            return points[idx], (labels[idx] if conditional else None)

    model_cfg = MLPConfig(**{**DEFAULT_MLP, **(mlp or {}), "num_classes": num_classes, "T": schedule.T})
    torch.manual_seed(cfg.seed)  # parameter initialisation
    model = VPredictionDenoiser(MLPDenoiser(model_cfg), schedule)
    null = model_cfg.num_classes

    def loss_fn(m: nn.Module, batch, g: torch.Generator) -> torch.Tensor:
        x0, y = batch
        x0 = x0.to(cfg.device)
        if y is not None:
            drop = torch.rand(y.shape, generator=g) < p_uncond
            y = torch.where(drop, torch.full_like(y, null), y).to(cfg.device)
        return loss_simple(m, schedule, x0, y=y, generator=g)

    result = train(model, loss_fn, next_batch, cfg, callback=callback)
    config = {
        "family": "ddpm",
        "model": {"type": "mlp", "parameterization": "v", **model_cfg.to_dict()},
        "schedule": schedule.to_config(),
        "objective": "L_simple (eps-prediction loss, Ho et al. 2020 eq. 14)",
        "p_uncond": p_uncond if conditional else None,
        "training": {**cfg.to_dict(), "steps_done": result.steps, "seconds": round(result.seconds, 2),
                     "stop_reason": result.stop_reason,
                     "final_loss": sum(result.losses[-100:]) / max(1, len(result.losses[-100:])),
                     "loss_curve": loss_curve(result.losses)},
    }
    return result, config
