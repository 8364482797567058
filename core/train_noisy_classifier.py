"""Training noisy classifiers p_phi(y | x_t, t) for classifier guidance (Dhariwal & Nichol 2021, sec. 4.1):
cross-entropy on x_t = q_sample(x_0, t, eps) with t uniform over the schedule's timesteps, through the one
training loop (core.training.train). The schedule must be the one of the diffusion model the classifier
will guide: t means the same noise level only on the same schedule.

- ``train_noisy_classifier_2d``: an MLP on fresh draws of a labelled 2D toy (labels: sample_toy_with_labels).
- ``train_noisy_classifier_mnist``: a small conv net on digits shifted by up to 2 pixels.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from core.data.mnist import MNIST
from core.data.toy2d import NUM_CLASSES, sample_toy_with_labels
from core.diffusion import q_sample
from core.models.noisy_classifier import NoisyClassifier, NoisyClassifierConfig
from core.schedules import Schedule
from core.train_mnist import random_shift
from core.training import TrainConfig, TrainResult, loss_curve, train

DEFAULT_NOISY_2D_TRAIN = TrainConfig(steps=10000, batch_size=512, lr=2e-3, warmup_steps=100, ema_decay=0.995)
DEFAULT_NOISY_MNIST_TRAIN = TrainConfig(steps=4000, batch_size=128, lr=2e-3, warmup_steps=200, weight_decay=1e-4,
                                        ema_decay=0.999)
MNIST_NOISY_CLASSIFIER = NoisyClassifierConfig(kind="conv", num_classes=10, width=32, depth=1)
REPORT_TIMESTEPS = (0, 100, 250, 500, 750, 999)  # held-out accuracy is reported at these t
OBJECTIVE = "cross-entropy of p(y | x_t, t) on q_sample(x_0, t), t ~ U{0..T-1} (Dhariwal & Nichol 2021 sec. 4.1)"


def _noisy_loss(schedule: Schedule, augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None):
    def loss_fn(net: nn.Module, batch, g: torch.Generator) -> torch.Tensor:
        x0, y = batch
        if augment is not None:
            x0 = augment(x0, g)
        t = torch.randint(0, schedule.T, (x0.shape[0],), generator=g, device=x0.device)
        noise = torch.randn(x0.shape, generator=g, device=x0.device)
        return F.cross_entropy(net(q_sample(schedule, x0, t, noise), t).float(), y)

    return loss_fn


def _record(config: NoisyClassifierConfig, schedule: Schedule, cfg: TrainConfig, result: TrainResult,
            data: dict[str, Any]) -> dict[str, Any]:
    tail = result.losses[-100:]
    return {
        "family": "noisy_classifier",
        "model": {"type": "noisy_classifier", **config.to_dict()},
        "schedule": schedule.to_config(),
        "objective": OBJECTIVE,
        "training": {**cfg.to_dict(), "steps_done": result.steps, "seconds": round(result.seconds, 2),
                     "stop_reason": result.stop_reason, "final_loss": sum(tail) / max(1, len(tail)),
                     "loss_curve": loss_curve(result.losses)},
        "data": data,
    }


def train_noisy_classifier_2d(toy: str, schedule: Schedule, cfg: TrainConfig = DEFAULT_NOISY_2D_TRAIN,
                              width: int = 128, depth: int = 3,
                              callback: Callable[[dict[str, Any]], bool | None] | None = None
                              ) -> tuple[TrainResult, dict[str, Any]]:
    """A noisy MLP classifier of a labelled toy's classes; returns the result and the checkpoint config."""
    if toy not in NUM_CLASSES:
        raise ValueError(f"unknown toy {toy!r}; expected one of: {', '.join(NUM_CLASSES)}")
    config = NoisyClassifierConfig(kind="mlp", num_classes=NUM_CLASSES[toy], dim=2, width=width, depth=depth,
                                   T=schedule.T)
    torch.manual_seed(cfg.seed)
    model = NoisyClassifier(config)

    def next_batch(step: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = sample_toy_with_labels(toy, cfg.batch_size, g)
        return x.to(cfg.device), y.to(cfg.device)

    result = train(model, _noisy_loss(schedule, None), next_batch, cfg, callback=callback)
    return result, _record(config, schedule, cfg, result, {"kind": "toy", "name": toy})


def train_noisy_classifier_mnist(data: MNIST, schedule: Schedule, cfg: TrainConfig = DEFAULT_NOISY_MNIST_TRAIN,
                                 config: NoisyClassifierConfig = MNIST_NOISY_CLASSIFIER,
                                 callback: Callable[[dict[str, Any]], bool | None] | None = None
                                 ) -> tuple[TrainResult, dict[str, Any]]:
    """A noisy conv classifier of digits (random shifts of up to 2 pixels as augmentation)."""
    config = NoisyClassifierConfig(**{**config.to_dict(), "T": schedule.T})
    device = torch.device(cfg.device)
    images, labels = data.images.to(device), data.labels.to(device)
    torch.manual_seed(cfg.seed)
    model = NoisyClassifier(config)

    def next_batch(step: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.randint(0, len(labels), (cfg.batch_size,), generator=g, device=device)
        return images[idx], labels[idx]

    result = train(model, _noisy_loss(schedule, random_shift), next_batch, cfg, callback=callback)
    return result, _record(config, schedule, cfg, result, {"kind": "mnist", "source": data.source, "n": len(data)})


@torch.no_grad()
def accuracy_by_t(classifier: nn.Module, schedule: Schedule, x0: torch.Tensor, labels: torch.Tensor,
                  timesteps: Sequence[int] = REPORT_TIMESTEPS, seed: int = 0, batch: int = 1000) -> dict[int, float]:
    """Held-out accuracy of a noisy classifier on q_sample(x0, t) at each of ``timesteps`` (one noise draw)."""
    classifier.eval()
    g = torch.Generator(device=x0.device).manual_seed(seed)
    out = {}
    for t in timesteps:
        correct = 0
        for i in range(0, len(labels), batch):
            xb = x0[i:i + batch]
            tt = torch.full((xb.shape[0],), int(t), device=x0.device)
            x_t = q_sample(schedule, xb, tt, torch.randn(xb.shape, generator=g, device=x0.device))
            correct += int((classifier(x_t, tt).argmax(1) == labels[i:i + batch]).sum())
        out[int(t)] = correct / len(labels)
    return out
