"""Langevin dynamics on the noised marginal q(x_t) of a denoiser (Song & Ermon 2019), at one noise level or
annealed down to it: the sampler behind score-based generative modelling, before the reverse SDE.

    x, paths = langevin_dynamics(eps_model, schedule, x, t=50, steps=200, eta=0.1, annealed=True)
"""

from __future__ import annotations

import math

import numpy as np
import torch

from core.diffusion import EpsModel, eps_to_score
from core.schedules import Schedule


def langevin_levels(s: Schedule, t: int, steps: int, annealed: bool, levels: int = 10) -> list[tuple[int, int]]:
    """(timestep, number of steps) pairs: all steps at t, or annealed from T-1 down to t over `levels` levels."""
    if not annealed or steps == 0 or t >= s.T - 1:
        return [(t, steps)]
    k = max(1, min(levels, steps))
    ts = np.unique(np.round(np.linspace(s.T - 1, t, k)).astype(int))[::-1]
    counts = np.diff(np.round(np.linspace(0, steps, len(ts) + 1)).astype(int))
    return [(int(a), int(c)) for a, c in zip(ts, counts, strict=True) if c > 0]


def langevin_dynamics(eps_model: EpsModel, s: Schedule, x: torch.Tensor, t: int, steps: int, eta: float,
                      generator: torch.Generator | None = None, annealed: bool = False, keep: int = 10
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """Unadjusted Langevin dynamics on q(x_t): x <- x + (delta / 2) s(x, t) + sqrt(delta) z, z ~ N(0, I).

    The step is delta = eta (1 - alpha_bar_t), the noise variance at that level (Song & Ermon 2019, Algorithm 1:
    alpha_i proportional to sigma_i^2). ``annealed`` runs the same total number of steps over levels from
    t = T-1 down to t (their annealed Langevin dynamics); otherwise every step is at t. Returns the final
    points (n, 2) and the paths of the first ``keep`` particles (steps + 1, keep, 2).
    """
    x = x.clone().float()
    paths = [x[:keep].clone()]
    with torch.no_grad():
        for level, count in langevin_levels(s, t, steps, annealed):
            tt = torch.full((len(x),), float(level))
            delta = eta * (1.0 - float(s.alpha_bars[level]))  # Song & Ermon: step proportional to sigma_t^2
            for _ in range(count):
                score = eps_to_score(s, x, tt, eps_model(x, tt).float())
                z = torch.randn(x.shape, generator=generator)
                x = x + 0.5 * delta * score + math.sqrt(delta) * z
                paths.append(x[:keep].clone())
    return x, torch.stack(paths)
