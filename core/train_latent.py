"""The latent diffusion recipes (Rombach et al. 2022), both through the one training loop (core.training.train):

- ``train_autoencoder``: the first stage, a KL-regularised autoencoder (core.models.autoencoder) trained on
  reconstruction plus a small KL weight; afterwards its scale factor is set to 1 / std(z) over the training set.
- ``train_ldm``: diffusion on the frozen autoencoder's latents: every training digit is encoded once, each batch
  draws z ~ q(z | x) (scaled), and the denoiser learns L_simple on z with label dropout for classifier-free
  guidance: a class-conditional UNet for the spatial latent, the 2D MLP for a vector latent.

    result, config = train_autoencoder(load_mnist("train"))
    result, config = train_ldm(load_mnist("train"), result.ema_model, "autoencoder-mnist", make_schedule("cosine"))
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from core.data.mnist import MNIST
from core.diffusion import VPredictionDenoiser, loss_simple
from core.models.autoencoder import Autoencoder, AutoencoderConfig, autoencoder_loss
from core.models.mlp import MLPConfig, MLPDenoiser
from core.models.unet import UNet, UNetConfig
from core.schedules import Schedule
from core.train_mnist import P_UNCOND, training_record
from core.training import TrainConfig, TrainResult, train

DEFAULT_AUTOENCODER_TRAIN = TrainConfig(steps=400, batch_size=128, lr=2e-3, warmup_steps=50, ema_decay=0.99)
DEFAULT_LDM_TRAIN = TrainConfig(steps=2000, batch_size=128, lr=2e-3, warmup_steps=100, ema_decay=0.999)
DEFAULT_LDM2D_TRAIN = TrainConfig(steps=3000, batch_size=512, lr=3e-3, warmup_steps=100, ema_decay=0.995)
KL_WEIGHT = 1e-4  # per-example KL against the summed squared error: the latent stays near N(0, I), digits sharp
KL_WEIGHT_2D = 1e-2  # two numbers cannot hold a digit's detail anyway: a stronger pull keeps the plane compact
# 7 x 7 -> 4 x 4 and back, attention at 4 x 4: the pixel model's widths (ddpm-mnist: 32 and 64 channels) on 16
# times fewer positions than its 14 x 14 patches, so 100 guided digits sample in about a third of its time
LATENT_UNET = UNetConfig(in_channels=4, image_size=7, patch_size=1, base_channels=32, channel_mults=(1, 2),
                         dropout=0.0)
LATENT_MLP = {"width": 256, "depth": 3, "t_embed_dim": 32, "x_embed_dim": 16}
ENCODE_BATCH = 500


@torch.no_grad()
def latent_moments(autoencoder: Autoencoder, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(mu, sigma) of q(z | x) for every image, unscaled, in batches."""
    autoencoder.eval()
    mus, sigmas = [], []
    for i in range(0, len(images), ENCODE_BATCH):
        mu, logvar = autoencoder.posterior(images[i:i + ENCODE_BATCH])
        mus.append(mu)
        sigmas.append((0.5 * logvar).exp())
    return torch.cat(mus), torch.cat(sigmas)


def scale_factor(autoencoder: Autoencoder, images: torch.Tensor, generator: torch.Generator) -> float:
    """1 / std of z ~ q(z | x) over ``images`` (all latent dimensions pooled): the paper's rescaling, so the
    diffusion model sees latents of unit variance (Rombach et al. 2022, sec. 4.3.2 and app. G)."""
    mu, sigma = latent_moments(autoencoder, images)
    z = mu + sigma * torch.randn(mu.shape, generator=generator, device=mu.device)
    return 1.0 / float(z.double().std())


def train_autoencoder(data: MNIST, cfg: TrainConfig = DEFAULT_AUTOENCODER_TRAIN,
                      config: AutoencoderConfig | None = None, kl_weight: float | None = None,
                      callback: Callable[[dict[str, Any]], bool | None] | None = None,
                      state_path: str | Path | None = None, save_every: int = 0
                      ) -> tuple[TrainResult, dict[str, Any]]:
    """Train the first stage on ``data``; both returned models carry the measured scale factor in their config.
    Returns the result and the checkpoint config."""
    config = config or AutoencoderConfig()
    if kl_weight is None:
        kl_weight = KL_WEIGHT_2D if config.latent_dim else KL_WEIGHT
    device = torch.device(cfg.device)
    images = data.images.to(device)
    torch.manual_seed(cfg.seed)
    model = Autoencoder(config)

    def next_batch(step: int, g: torch.Generator) -> torch.Tensor:
        return images[torch.randint(0, len(images), (cfg.batch_size,), generator=g, device=device)]

    def loss_fn(net: nn.Module, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        return autoencoder_loss(net, x, kl_weight, g)[0]

    result = train(model, loss_fn, next_batch, cfg, callback=callback, state_path=state_path, save_every=save_every)
    factor = scale_factor(result.ema_model, images, torch.Generator(device=device).manual_seed(cfg.seed))
    config = dataclasses.replace(config, scale_factor=factor)
    result.model.config = result.ema_model.config = config
    record = {
        "family": "autoencoder",
        "model": {"type": "autoencoder", **config.to_dict()},
        "schedule": None,
        "objective": ("summed squared reconstruction error + kl_weight x KL(q(z|x) || N(0, I)) "
                      "(Rombach et al. 2022, KL-regularised first stage)"),
        "kl_weight": kl_weight,
        "latent_shape": list(config.latent_shape),
        "training": training_record(cfg, result),
        "data": {"kind": "mnist", "source": data.source, "n": len(data)},
    }
    return result, record


def train_ldm(data: MNIST, autoencoder: Autoencoder, autoencoder_name: str, schedule: Schedule,
              cfg: TrainConfig = DEFAULT_LDM_TRAIN, unet: UNetConfig | None = None,
              mlp: dict[str, Any] | None = None, p_uncond: float = P_UNCOND,
              callback: Callable[[dict[str, Any]], bool | None] | None = None,
              state_path: str | Path | None = None, save_every: int = 0) -> tuple[TrainResult, dict[str, Any]]:
    """Train a class-conditional eps-model on the latents of a frozen ``autoencoder`` (named by the checkpoint
    name it is saved under, so the latent checkpoint can find it): a UNet (``unet``, default LATENT_UNET) on a
    spatial latent, an MLP (``mlp``, default LATENT_MLP; v-parameterised as on the 2D pages) on a vector one.
    Returns the result and the checkpoint config."""
    device = torch.device(cfg.device)
    autoencoder = autoencoder.to(device).eval().requires_grad_(False)
    shape = autoencoder.latent_shape
    mu, sigma = latent_moments(autoencoder, data.images.to(device))
    factor = autoencoder.config.scale_factor
    labels = data.labels.to(device)
    torch.manual_seed(cfg.seed)
    if len(shape) == 1:
        net_cfg = MLPConfig(**{**LATENT_MLP, **(mlp or {}), "dim": shape[0], "num_classes": 10, "T": schedule.T})
        model: nn.Module = VPredictionDenoiser(MLPDenoiser(net_cfg), schedule)
        model_record = {"type": "mlp", "parameterization": "v", **net_cfg.to_dict()}
    else:
        net_cfg = dataclasses.replace(unet or LATENT_UNET, in_channels=shape[0], image_size=shape[1], T=schedule.T,
                                      num_classes=10)
        model = UNet(net_cfg)
        model_record = {"type": "unet", **net_cfg.to_dict(), "gradient_checkpointing": False}
    null = model.null_class

    def next_batch(step: int, g: torch.Generator):
        n = cfg.batch_size
        idx = torch.randint(0, len(labels), (n,), generator=g, device=device)
        z = factor * (mu[idx] + sigma[idx] * torch.randn((n, *shape), generator=g, device=device))
        drop = torch.rand((n,), generator=g, device=device) < p_uncond
        return z, torch.where(drop, torch.full_like(labels[idx], null), labels[idx])

    def loss_fn(net: nn.Module, batch, g: torch.Generator) -> torch.Tensor:
        z, y = batch
        return loss_simple(net, schedule, z, y=y, generator=g)

    result = train(model, loss_fn, next_batch, cfg, callback=callback, state_path=state_path, save_every=save_every)
    config = {
        "family": "ldm",
        "model": model_record,
        "schedule": schedule.to_config(),
        "objective": ("L_simple on the autoencoder's scaled latents z ~ q(z | x) (Rombach et al. 2022, eq. 2) with "
                      "label dropout for CFG"),
        "p_uncond": p_uncond,
        "autoencoder": {"name": autoencoder_name, "scale_factor": factor},
        "latent_shape": list(shape),
        "training": training_record(cfg, result),
        "data": {"kind": "mnist", "source": data.source, "n": len(data)},
    }
    return result, config
