"""Recipes for the baselines, through the one training loop (core.training.train): a GAN and a VAE on a
2D toy or on MNIST, with the same data, budget options and checkpoint format as the diffusion recipes.

    result, config = train_baseline("gan", "eight_gaussians", TrainConfig(steps=3000))
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from core.data.mnist import MNIST
from core.models.gan import GAN, GANConfig
from core.models.vae import VAE, VAEConfig
from core.training import TrainConfig, TrainResult, loss_curve, train

FAMILIES = ("gan", "vae")
# 2D: MLPs of the same size class as the diffusion MLP; MNIST: a DCGAN and a conv VAE
MODEL_DEFAULTS: dict[tuple[str, str], dict[str, Any]] = {
    ("gan", "2d"): {"kind": "mlp", "latent_dim": 2, "width": 128, "depth": 3},
    ("gan", "mnist"): {"kind": "dcgan", "latent_dim": 32, "width": 128},
    ("vae", "2d"): {"kind": "mlp", "latent_dim": 2, "width": 128, "depth": 3},
    ("vae", "mnist"): {"kind": "conv", "latent_dim": 16, "width": 64},
}
TRAIN_DEFAULTS: dict[tuple[str, str], TrainConfig] = {
    ("gan", "2d"): TrainConfig(steps=3000, batch_size=256, lr=1e-3, betas=(0.5, 0.999), warmup_steps=50,
                               ema_decay=0.99),
    ("gan", "mnist"): TrainConfig(steps=6000, batch_size=128, lr=2e-4, betas=(0.5, 0.999), warmup_steps=50,
                                  min_lr_ratio=1.0, ema_decay=0.999),
    ("vae", "2d"): TrainConfig(steps=3000, batch_size=256, lr=2e-3, warmup_steps=50, ema_decay=0.99),
    ("vae", "mnist"): TrainConfig(steps=6000, batch_size=128, lr=1e-3, warmup_steps=100, ema_decay=0.999),
}


def train_baseline(family: str, data: str | MNIST, cfg: TrainConfig | None = None,
                   model_options: dict[str, Any] | None = None,
                   callback: Callable[[dict[str, Any]], bool | None] | None = None
                   ) -> tuple[TrainResult, dict[str, Any]]:
    """Train a GAN or VAE on a toy name or on MNIST; returns the result and the checkpoint config.

    The model's own ``loss(x, generator)`` is the objective: the GAN's non-saturating two-player loss
    (core.models.gan) or the VAE's negative beta-ELBO per dimension (core.models.vae).
    """
    from core.data.toy2d import TOY_NAMES, sample_toy

    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; expected one of: {', '.join(FAMILIES)}")
    domain = "mnist" if isinstance(data, MNIST) else "2d"
    if domain == "2d" and data not in TOY_NAMES:
        raise ValueError(f"unknown toy {data!r}; expected one of: {', '.join(TOY_NAMES)}")
    cfg = cfg or TRAIN_DEFAULTS[family, domain]
    options = {**MODEL_DEFAULTS[family, domain], **(model_options or {})}
    device = torch.device(cfg.device)
    torch.manual_seed(cfg.seed)
    model: nn.Module = GAN(GANConfig(**options)) if family == "gan" else VAE(VAEConfig(**options))

    if domain == "mnist":
        images = data.images.to(device)

        def next_batch(step: int, g: torch.Generator) -> torch.Tensor:
            return images[torch.randint(0, len(images), (cfg.batch_size,), generator=g, device=device)]
    else:
        def next_batch(step: int, g: torch.Generator) -> torch.Tensor:
            return sample_toy(data, cfg.batch_size, g).to(device)

    player_losses: list[tuple[float, float]] = []  # GAN: (L_D, L_G) per step

    def loss_fn(m: nn.Module, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        loss = m.loss(x, generator=g)
        if family == "gan":
            player_losses.append(model.last_losses)
        return loss

    result = train(model, loss_fn, next_batch, cfg, callback=callback)
    tail = result.losses[-100:]
    curves = {"loss_curve": loss_curve(result.losses)}
    if family == "gan":
        curves |= {"loss_d_curve": loss_curve([d for d, _ in player_losses[:result.steps]]),
                   "loss_g_curve": loss_curve([g for _, g in player_losses[:result.steps]])}
    config = {
        "family": family,
        "model": {"type": family, **model.config.to_dict()},
        "schedule": None,
        "objective": ("non-saturating GAN loss (Goodfellow et al. 2014)" if family == "gan"
                      else f"negative beta-ELBO, beta = {model.config.beta:g} (Kingma & Welling 2014)"),
        "training": {**cfg.to_dict(), "steps_done": result.steps, "seconds": round(result.seconds, 2),
                     "stop_reason": result.stop_reason, "final_loss": sum(tail) / max(1, len(tail)), **curves},
        "data": ({"kind": "mnist", "source": data.source, "n": len(data)} if domain == "mnist"
                 else {"kind": "toy", "name": data, "source": "core.data.toy2d (generated)"}),
    }
    return result, config
