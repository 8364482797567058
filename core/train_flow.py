"""The 2D flow-matching recipes: the diffusion recipe's MLP (core.train_2d.DEFAULT_MLP) as a velocity field,
trained with conditional flow matching on a toy or a point cloud (Lipman et al. 2023), and one round of reflow
on the pairs a trained flow makes (Liu et al. 2023), through the one training loop (core.training.train).

    result, config = train_flow_2d("two_moons", DEFAULT_2D_TRAIN)
    x_0, x_1 = reflow_pairs(result.ema_model, torch.randn(50_000, 2))
    result2, config2 = train_reflow_2d(result.ema_model, config, (x_0, x_1), DEFAULT_2D_TRAIN)
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from core.data.toy2d import sample_toy
from core.flow import VelocityField, loss_flow_matching
from core.models.mlp import MLPConfig, MLPDenoiser
from core.train_2d import DEFAULT_MLP
from core.training import TrainConfig, TrainResult, loss_curve, train

PATH = "linear (CondOT): x_t = t x_1 + (1 - t) x_0, t = 0 noise, t = 1 data"
REFLOW_PAIRS = 50_000  # pairs of (noise, where the teacher's ODE takes it) for one round of reflow
REFLOW_SOLVER = {"method": "heun", "steps": 100}  # how the pairs are made (NFE 200: close to the exact ODE)


def _config(family: str, model_cfg: MLPConfig, cfg: TrainConfig, result: TrainResult, objective: str,
            **extra: Any) -> dict[str, Any]:
    return {
        "family": family,
        "model": {"type": "mlp", "parameterization": "velocity", **model_cfg.to_dict()},
        "schedule": None,
        "path": PATH,
        "objective": objective,
        **extra,
        "training": {**cfg.to_dict(), "steps_done": result.steps, "seconds": round(result.seconds, 2),
                     "stop_reason": result.stop_reason,
                     "final_loss": sum(result.losses[-100:]) / max(1, len(result.losses[-100:])),
                     "loss_curve": loss_curve(result.losses)},
    }


def train_flow_2d(data: str | torch.Tensor, cfg: TrainConfig, mlp: dict[str, Any] | None = None,
                  callback: Callable[[dict[str, Any]], bool | None] | None = None
                  ) -> tuple[TrainResult, dict[str, Any]]:
    """Conditional flow matching (Lipman et al. 2023, eq. 23 on the linear path) on a toy name or an (n, 2)
    point cloud, with the same MLP, optimiser and steps as the 2D diffusion recipe."""
    if isinstance(data, str):
        def next_batch(step: int, g: torch.Generator) -> torch.Tensor:
            return sample_toy(data, cfg.batch_size, g)
    else:
        points = data.float()

        def next_batch(step: int, g: torch.Generator) -> torch.Tensor:
            return points[torch.randint(0, points.shape[0], (cfg.batch_size,), generator=g)]

    model_cfg = MLPConfig(**{**DEFAULT_MLP, **(mlp or {}), "num_classes": 0})
    torch.manual_seed(cfg.seed)  # parameter initialisation
    model = VelocityField(MLPDenoiser(model_cfg))

    def loss_fn(m: nn.Module, x_1: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        return loss_flow_matching(m, x_1.to(cfg.device), generator=g)

    result = train(model, loss_fn, next_batch, cfg, callback=callback)
    return result, _config("flow", model_cfg, cfg, result, "conditional flow matching, E || v(x_t, t) - (x_1 - "
                           "x_0) ||^2 (Lipman et al. 2023, eq. 23)")


def train_reflow_2d(teacher: nn.Module, teacher_config: dict[str, Any], pairs: tuple[torch.Tensor, torch.Tensor],
                    cfg: TrainConfig, teacher_name: str | None = None,
                    callback: Callable[[dict[str, Any]], bool | None] | None = None
                    ) -> tuple[TrainResult, dict[str, Any]]:
    """One round of reflow (Liu et al. 2023, Algorithm 1): flow matching on the teacher's coupling (x_0, x_1)
    instead of independent noise, starting from the teacher's weights; the new flow's paths are straighter."""
    x_0, x_1 = (p.float() for p in pairs)

    def next_batch(step: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.randint(0, x_0.shape[0], (cfg.batch_size,), generator=g)
        return x_0[idx], x_1[idx]

    model = copy.deepcopy(teacher).train().requires_grad_(True)

    def loss_fn(m: nn.Module, batch: tuple[torch.Tensor, torch.Tensor], g: torch.Generator) -> torch.Tensor:
        z_0, z_1 = batch
        return loss_flow_matching(m, z_1.to(cfg.device), generator=g, x_0=z_0.to(cfg.device))

    result = train(model, loss_fn, next_batch, cfg, callback=callback)
    model_cfg = model.net.config
    reflow = {"teacher": teacher_name, "pairs": int(x_0.shape[0]), "solver": REFLOW_SOLVER}
    config = _config("reflow", model_cfg, cfg, result, "reflow: flow matching on the teacher's (x_0, x_1) pairs "
                     "(Liu et al. 2023, eq. 6)", reflow=reflow)
    config["data"] = teacher_config.get("data")
    return result, config
