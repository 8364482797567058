"""The MNIST recipes, both through the one training loop (core.training.train):

- ``train_ddpm_mnist``: a class-conditional UNet with L_simple (Ho et al. 2020, Algorithm 1) and label
  dropout, so one network learns eps(x, t, y) and eps(x, t) for classifier-free guidance (Ho & Salimans 2022).
- ``train_classifier``: the CNN that judges generated digits (core.models.classifier).

Batches are drawn for the whole (global) batch from one seeded generator and each data-parallel rank takes
its slice, so 2 processes with batch B/2 each compute exactly the update of 1 process with batch B.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from core.data.mnist import MNIST
from core.diffusion import OBJECTIVE_HYBRID, loss_hybrid, q_sample
from core.models.classifier import ClassifierConfig, MNISTClassifier
from core.models.unet import UNet, UNetConfig
from core.schedules import Schedule
from core.training import TrainConfig, TrainResult, loss_curve, train, world

DEFAULT_MNIST_TRAIN = TrainConfig(steps=20000, batch_size=128, lr=1e-3, warmup_steps=500, ema_decay=0.999)
DEFAULT_CLASSIFIER_TRAIN = TrainConfig(steps=1500, batch_size=128, lr=2e-3, warmup_steps=100,
                                       weight_decay=1e-4, ema_decay=0.99)
P_UNCOND = 0.1  # label dropout probability (Ho & Salimans 2022 use 0.1-0.2)


def rank_slice(n: int) -> slice:
    """This process's share of a global batch of n (DDP under torchrun; everything for one process)."""
    rank, world_size = world()
    if n % world_size:
        raise ValueError(f"batch size {n} must be divisible by the number of processes ({world_size})")
    per = n // world_size
    return slice(rank * per, (rank + 1) * per)


def train_ddpm_mnist(data: MNIST, schedule: Schedule, cfg: TrainConfig = DEFAULT_MNIST_TRAIN,
                     unet: UNetConfig | None = None, p_uncond: float = P_UNCOND,
                     callback: Callable[[dict[str, Any]], bool | None] | None = None,
                     state_path: str | Path | None = None, save_every: int = 0
                     ) -> tuple[TrainResult, dict[str, Any]]:
    """Train a class-conditional eps-model on ``data``; returns the result and the checkpoint config."""
    unet = unet or UNetConfig(T=schedule.T)
    device = torch.device(cfg.device)
    images, labels = data.images.to(device), data.labels.to(device)
    torch.manual_seed(cfg.seed)  # parameter initialisation: the same on every rank
    model = UNet(unet)
    mine = rank_slice(cfg.batch_size)

    def next_batch(step: int, g: torch.Generator):
        n = cfg.batch_size
        idx = torch.randint(0, len(labels), (n,), generator=g, device=device)
        t = torch.randint(0, schedule.T, (n,), generator=g, device=device)
        noise = torch.randn((n, *images.shape[1:]), generator=g, device=device)
        drop = torch.rand((n,), generator=g, device=device) < p_uncond
        y = torch.where(drop, torch.full_like(labels[idx], unet.num_classes), labels[idx])
        return images[idx][mine], y[mine], t[mine], noise[mine]

    def loss_fn(net: nn.Module, batch, g: torch.Generator) -> torch.Tensor:
        x0, y, t, noise = batch
        if unet.learn_sigma:  # L_hybrid (Nichol & Dhariwal 2021); one process: DDP wraps only forward
            return loss_hybrid(net, schedule, x0, y, t=t, noise=noise, decoder="discretized")
        x_t = q_sample(schedule, x0, t, noise)
        return (net(x_t, t.float(), y).float() - noise).pow(2).mean()

    result = train(model, loss_fn, next_batch, cfg, callback=callback, state_path=state_path, save_every=save_every)
    config = {
        "family": "ddpm",
        # checkpointing only matters in training: the shipped model samples without it
        "model": {"type": "unet", **unet.to_dict(), "gradient_checkpointing": False},
        "schedule": schedule.to_config(),
        "objective": ((OBJECTIVE_HYBRID if unet.learn_sigma else
                       "L_simple (eps-prediction loss, Ho et al. 2020 eq. 14)") + " with label dropout for CFG"),
        "p_uncond": p_uncond,
        "training": training_record(cfg, result),
        "data": {"kind": "mnist", "source": data.source, "n": len(data)},
    }
    return result, config


def random_shift(x: torch.Tensor, g: torch.Generator, max_shift: int = 2) -> torch.Tensor:
    """Random translations by up to ``max_shift`` pixels (the classic MNIST augmentation), background-filled."""
    n, size = x.shape[0], x.shape[-1]
    padded = F.pad(x[:, 0], (max_shift,) * 4, value=-1.0)  # (n, size + 2m, size + 2m)
    dx, dy = torch.randint(0, 2 * max_shift + 1, (2, n), generator=g, device=x.device).unbind(0)
    offsets = torch.arange(size, device=x.device)
    rows, cols = dy[:, None] + offsets, dx[:, None] + offsets  # (n, size) each: the window kept per image
    picked = padded[torch.arange(n, device=x.device)[:, None, None], rows[:, :, None], cols[:, None, :]]
    return picked[:, None]


def train_classifier(data: MNIST, cfg: TrainConfig = DEFAULT_CLASSIFIER_TRAIN,
                     config: ClassifierConfig | None = None,
                     callback: Callable[[dict[str, Any]], bool | None] | None = None
                     ) -> tuple[TrainResult, dict[str, Any]]:
    """Cross-entropy on randomly shifted digits; returns the result and the checkpoint config."""
    config = config or ClassifierConfig()
    device = torch.device(cfg.device)
    images, labels = data.images.to(device), data.labels.to(device)
    torch.manual_seed(cfg.seed)
    model = MNISTClassifier(config)
    mine = rank_slice(cfg.batch_size)

    def next_batch(step: int, g: torch.Generator):
        idx = torch.randint(0, len(labels), (cfg.batch_size,), generator=g, device=device)
        return random_shift(images[idx], g)[mine], labels[idx][mine]

    def loss_fn(net: nn.Module, batch, g: torch.Generator) -> torch.Tensor:
        x, y = batch
        return F.cross_entropy(net(x).float(), y)

    result = train(model, loss_fn, next_batch, cfg, callback=callback)
    record = {
        "family": "classifier",
        "model": {"type": "classifier", **config.to_dict()},
        "schedule": None,
        "objective": "cross-entropy on digits shifted by up to 2 pixels",
        "training": training_record(cfg, result),
        "data": {"kind": "mnist", "source": data.source, "n": len(data)},
    }
    return result, record


@torch.no_grad()
def accuracy(classifier: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch: int = 1000) -> float:
    classifier.eval()
    correct = sum(int((classifier(images[i:i + batch]).argmax(1) == labels[i:i + batch]).sum())
                  for i in range(0, len(labels), batch))
    return correct / len(labels)


def training_record(cfg: TrainConfig, result: TrainResult) -> dict[str, Any]:
    tail = result.losses[-100:]
    return {**cfg.to_dict(), "steps_done": result.steps, "seconds": round(result.seconds, 2),
            "stop_reason": result.stop_reason, "processes": world()[1],
            "final_loss": sum(tail) / max(1, len(tail)), "loss_curve": loss_curve(result.losses)}
