"""Exact noised marginals of isotropic Gaussian mixtures: the "oracle" denoiser (and the oracle flow velocity).

If x_0 ~ sum_k w_k N(mu_k, s^2 I), then q(x_t) = sum_k w_k N(sqrt(ab) mu_k, (ab s^2 + 1 - ab) I) with
ab = alpha_bar_t, so its log-density, score and optimal eps are closed forms at any (fractional) t.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from core.data.toy2d import mixture_spec
from core.diffusion import score_to_eps
from core.schedules import Schedule


@dataclass(frozen=True, eq=False)
class GaussianMixture:
    """sum_k weights_k N(means_k, std^2 I) in d dimensions (float64 internally)."""

    means: torch.Tensor  # (K, d)
    std: float
    weights: torch.Tensor  # (K,)

    def _params_at(self, x: torch.Tensor, t, s: Schedule | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-point alpha_bar (N, 1); t = None (or s = None) means the data distribution itself."""
        n = x.shape[0]
        if s is None or t is None:
            return torch.ones(n, 1, dtype=torch.float64)
        t = torch.as_tensor(t, dtype=torch.float64).cpu()
        if t.dim() == 0:
            t = t.expand(n)
        return s.alpha_bar_at(t).reshape(n, 1)

    def _log_components(self, x64: torch.Tensor, ab: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        d = x64.shape[1]
        var = ab * self.std ** 2 + (1.0 - ab)  # (N, 1)
        centers = ab.sqrt().unsqueeze(-1) * self.means.unsqueeze(0)  # (N, K, d)
        diff = x64.unsqueeze(1) - centers
        log_norm = -0.5 * d * torch.log(2 * math.pi * var)  # (N, 1)
        log_comp = torch.log(self.weights).unsqueeze(0) + log_norm - 0.5 * diff.pow(2).sum(-1) / var
        return log_comp, diff, var

    def log_prob(self, x: torch.Tensor, t=None, s: Schedule | None = None) -> torch.Tensor:
        """log q(x_t) at points x (N, d); t scalar or (N,) in [-1, T-1]. Differentiable in x."""
        x64 = x.to(torch.float64)
        log_comp, _, _ = self._log_components(x64, self._params_at(x, t, s))
        return torch.logsumexp(log_comp, dim=1).to(x.dtype)

    def score(self, x: torch.Tensor, t=None, s: Schedule | None = None) -> torch.Tensor:
        """grad_x log q(x_t) = -sum_k r_k(x) (x - sqrt(ab) mu_k) / var, r_k the responsibilities."""
        x64 = x.to(torch.float64).cpu()  # no detach: the likelihood ODE differentiates the oracle
        log_comp, diff, var = self._log_components(x64, self._params_at(x64, t, s))
        r = torch.softmax(log_comp, dim=1).unsqueeze(-1)
        return (-(r * diff).sum(1) / var).to(device=x.device, dtype=x.dtype)

    def eps(self, x: torch.Tensor, t, s: Schedule) -> torch.Tensor:
        """The optimal eps prediction E[eps | x_t] = -sqrt(1 - alpha_bar_t) grad log q(x_t)."""
        tt = torch.as_tensor(t, dtype=torch.float64)
        if tt.dim() == 0:
            tt = tt.expand(x.shape[0])
        return score_to_eps(s, x, tt.to(x.device), self.score(x, tt, s))

    def velocity(self, x: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
        """The exact flow-matching velocity E[x_1 - x_0 | x_t = x] on the linear path x_t = t x_1 + (1 - t) x_0
        (x_1 this mixture, x_0 ~ N(0, I); core.flow). Per component x_t ~ N(t mu_k, v_t I), v_t = t^2 s^2 +
        (1 - t)^2, and the Gaussian regression gives E[x_1 - x_0 | x_t, k] = mu_k + (t s^2 - (1 - t)) / v_t
        (x_t - t mu_k); the components are weighted by their posterior r_k(x_t)."""
        x64 = x.to(torch.float64).cpu()
        n, d = x64.shape
        t64 = torch.as_tensor(t, dtype=torch.float64).reshape(-1).expand(n).reshape(n, 1)
        if torch.any(t64 < 0) or torch.any(t64 > 1):
            raise ValueError("flow times must lie in [0, 1]")
        var = t64 ** 2 * self.std ** 2 + (1.0 - t64) ** 2  # (N, 1)
        diff = x64.unsqueeze(1) - t64.unsqueeze(-1) * self.means.unsqueeze(0)  # (N, K, d)
        log_r = torch.log(self.weights).unsqueeze(0) - 0.5 * diff.pow(2).sum(-1) / var
        r = torch.softmax(log_r, dim=1).unsqueeze(-1)  # the shared normaliser cancels
        gain = ((t64 * self.std ** 2 - (1.0 - t64)) / var).unsqueeze(-1)  # (N, 1, 1)
        v = (r * (self.means.unsqueeze(0) + gain * diff)).sum(1)
        return v.to(device=x.device, dtype=x.dtype)

    def as_velocity_model(self):
        """A velocity model ``v(x, t)`` with the exact velocity, for running any flow solver."""

        def velocity_model(x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
            return self.velocity(x, t)

        return velocity_model

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n draws from the data distribution (float32)."""
        k = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        z = torch.randn(n, self.means.shape[1], generator=generator, dtype=torch.float64)
        return (self.means[k] + self.std * z).float()

    def as_eps_model(self, s: Schedule):
        """A denoiser ``eps_model(x, t, y=None)`` with the exact eps, for running any sampler."""

        def eps_model(x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
            return self.eps(x, t, s)

        return eps_model


def toy_mixture(name: str) -> GaussianMixture:
    """The exact Gaussian mixture behind a mixture toy (see core.data.toy2d.MIXTURE_TOYS)."""
    spec = mixture_spec(name)
    return GaussianMixture(
        means=torch.as_tensor(np.asarray(spec.means), dtype=torch.float64),
        std=float(spec.std),
        weights=torch.as_tensor(np.asarray(spec.weights), dtype=torch.float64),
    )
