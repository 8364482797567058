"""Importance sampling of the timestep for the L_vlb objective (Nichol & Dhariwal 2021, sec. 3.3, eq. 18).

L_vlb = T E_t[L_t] is an average of terms of very different sizes (the first few dwarf the rest), so drawing t
uniformly gives a noisy gradient. Drawing t with p_t proportional to sqrt(E[L_t^2]), estimated from the last
``history`` values of each term, and weighting each term by 1 / (T p_t) keeps the estimate unbiased and cuts its
variance. Until every t has a full history, t is uniform.

    sampler = LossSecondMomentSampler(T=1000)
    t, weight = sampler.sample(512, generator)      # weight = 1 / (T p_t)
    sampler.update(t, l_t.detach())                 # the terms just computed
"""

from __future__ import annotations

import numpy as np
import torch


class LossSecondMomentSampler:
    """p_t proportional to the root mean square of the last ``history`` values of L_t, mixed with a small uniform
    share ``uniform`` (as in the paper's code) so that no t is starved; uniform until each t has its history."""

    def __init__(self, T: int, history: int = 10, uniform: float = 0.001):
        if T < 1 or history < 1 or not 0.0 <= uniform <= 1.0:
            raise ValueError(f"need T >= 1, history >= 1 and uniform in [0, 1]; got {T}, {history}, {uniform}")
        self.T, self.history, self.uniform = T, history, uniform
        self.terms = np.zeros((T, history))  # a ring buffer per t
        self.counts = np.zeros(T, dtype=np.int64)

    @property
    def warm(self) -> bool:
        """Whether every t has a full history (before that, t is drawn uniformly)."""
        return bool((self.counts >= self.history).all())

    def probabilities(self) -> torch.Tensor:
        """p_t (T,), summing to 1."""
        if not self.warm:
            return torch.full((self.T,), 1.0 / self.T, dtype=torch.float64)
        p = torch.from_numpy(np.sqrt((self.terms ** 2).mean(1)))
        p = p / p.sum()
        return p * (1.0 - self.uniform) + self.uniform / self.T

    def sample(self, n: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """n timesteps t ~ p and their weights 1 / (T p_t) (float32)."""
        p = self.probabilities()
        t = torch.multinomial(p, n, replacement=True, generator=generator)
        return t, (1.0 / (self.T * p[t])).float()

    def update(self, t: torch.Tensor, terms: torch.Tensor) -> None:
        """Record the terms L_t just computed at timesteps t (the oldest of each t's history is dropped)."""
        for ti, value in zip(t.tolist(), terms.detach().double().cpu().tolist(), strict=True):
            self.terms[ti, self.counts[ti] % self.history] = value
            self.counts[ti] += 1
