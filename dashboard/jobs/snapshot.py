"""What every job recipe shares: the two callables a worker hands it (``report`` for progress and snapshots,
``should_stop`` polled at every step) and the snapshot, what a model samples so far from the same noise every
time (the Train page and the race draw these while a job runs)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from core.samplers import sample
from core.schedules import Schedule

Report = Callable[[str, Any], None]  # report(kind, payload): "progress" or "snapshot" messages to the page
ShouldStop = Callable[[], bool | str]  # False, "stop" (keep the weights so far) or "cancel" (nobody waits)

def snapshot(model: torch.nn.Module, schedule: Schedule, x_T: torch.Tensor, steps: int = 20) -> np.ndarray:
    """A quick DDIM sample (Song et al. 2021) from fixed noise x_T, so successive snapshots are comparable."""
    was_training = model.training
    model.eval()
    try:
        x = sample(model, schedule, x_T, method="ddim", steps=min(steps, schedule.T), keep_trajectory=False).xs[-1]
    finally:
        model.train(was_training)
    return x.numpy()
