"""Exact noised marginals of isotropic Gaussian mixtures: the "oracle" denoiser (and the oracle flow velocity).

If x_0 ~ sum_k w_k N(mu_k, s^2 I), then q(x_t) = sum_k w_k N(sqrt(ab) mu_k, (ab s^2 + 1 - ab) I) with
ab = alpha_bar_t, so its log-density, score and optimal eps are closed forms at any (fractional) t. A mixture
toy's label is its component, so the class posterior q(y | x_t) (Bayes' rule over the noised components) and
the conditional q(x_t | y) (one Gaussian) are closed forms too: the exact answers guidance is measured against.
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
        tt = _per_row(t, x)
        return score_to_eps(s, x, tt.to(x.device), self.score(x, tt, s))

    @property
    def num_classes(self) -> int:
        """K: a mixture toy's label is its component."""
        return int(self.weights.shape[0])

    @property
    def null_class(self) -> int:
        """The label that means "no label" (index K), as a class-conditional network's null class."""
        return self.num_classes

    def class_log_posterior(self, x: torch.Tensor, t=None, s: Schedule | None = None) -> torch.Tensor:
        """log q(y | x_t) (N, K) by Bayes' rule: log w_y + log N(x; sqrt(ab) mu_y, var I) - log q(x_t).
        Differentiable in x (its gradient is the guidance direction of Dhariwal & Nichol 2021)."""
        x64 = x.to(torch.float64)
        log_comp, _, _ = self._log_components(x64, self._params_at(x, t, s))
        return torch.log_softmax(log_comp, dim=1).to(x.dtype)

    def class_posterior(self, x: torch.Tensor, t=None, s: Schedule | None = None) -> torch.Tensor:
        """q(y | x_t) (N, K): the probabilities each noised point came from each component; rows sum to 1."""
        return self.class_log_posterior(x, t, s).exp()

    def log_p_y(self, y: torch.Tensor | int, s: Schedule):
        """The exact noisy classifier ``log_p_y(x, t) -> (N,)`` = log q(y | x_t), for core.guidance."""

        def log_p(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            labels = _labels(y, x, self.num_classes)
            return self.class_log_posterior(x, t, s).gather(1, labels[:, None]).squeeze(1)

        return log_p

    def class_log_posterior_grad(self, x: torch.Tensor, y: torch.Tensor | int, t=None,
                                 s: Schedule | None = None) -> torch.Tensor:
        """grad_x log q(y | x_t) = grad log q(x_t | y) - grad log q(x_t) in closed form (no autograd)."""
        return self.conditional_score(x, y, t, s) - self.score(x, t, s)

    def conditional_score(self, x: torch.Tensor, y: torch.Tensor | int, t=None, s: Schedule | None = None
                          ) -> torch.Tensor:
        """grad_x log q(x_t | y) = -(x - sqrt(ab) mu_y) / var: component y noised is one Gaussian."""
        x64 = x.to(torch.float64).cpu()
        labels = _labels(y, x64, self.num_classes)
        ab = self._params_at(x64, t, s)
        var = ab * self.std ** 2 + (1.0 - ab)
        return (-(x64 - ab.sqrt() * self.means[labels]) / var).to(device=x.device, dtype=x.dtype)

    def conditional_eps(self, x: torch.Tensor, t, s: Schedule, y: torch.Tensor | int) -> torch.Tensor:
        """The optimal eps of the class-conditional data: E[eps | x_t, y] = -sqrt(1 - ab) grad log q(x_t | y)."""
        tt = _per_row(t, x)
        return score_to_eps(s, x, tt.to(x.device), self.conditional_score(x, y, tt, s))

    def component(self, y: int) -> GaussianMixture:
        """p(x | y): component y alone, as a mixture of one (to sample it or take its density)."""
        if not 0 <= int(y) < self.num_classes:
            raise ValueError(f"class {y} out of range: this mixture has {self.num_classes} components")
        return GaussianMixture(self.means[int(y):int(y) + 1], self.std, torch.ones(1, dtype=torch.float64))

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
        """A denoiser ``eps_model(x, t, y=None)`` with the exact eps, for running any sampler: the marginal's
        without labels, component y's for rows with a label y, the marginal's for rows with the null label K
        (so classifier-free guidance runs on the exact answer)."""
        return _ExactEpsModel(self, s)


class _ExactEpsModel:
    """eps(x, t, y=None) of a GaussianMixture, with ``null_class`` like a class-conditional network."""

    def __init__(self, gm: GaussianMixture, s: Schedule):
        self.gm, self.s, self.null_class = gm, s, gm.null_class

    def __call__(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        eps = self.gm.eps(x, t, self.s)
        if y is None:
            return eps
        y = torch.as_tensor(y, device=x.device).long().expand(x.shape[0])
        known = y != self.null_class
        if known.any():
            tt = _per_row(t, x)
            eps[known] = self.gm.conditional_eps(x[known], tt[known], self.s, y[known])
        return eps


def _per_row(t, x: torch.Tensor) -> torch.Tensor:
    tt = torch.as_tensor(t, dtype=torch.float64)
    return tt.expand(x.shape[0]) if tt.dim() == 0 else tt


def _labels(y: torch.Tensor | int, x: torch.Tensor, k: int) -> torch.Tensor:
    labels = torch.as_tensor(y, dtype=torch.long).cpu().reshape(-1).expand(x.shape[0])
    if labels.numel() and (labels.min() < 0 or labels.max() >= k):
        raise ValueError(f"class labels must lie in [0, {k}); got {labels.min().item()}..{labels.max().item()}")
    return labels


def toy_mixture(name: str) -> GaussianMixture:
    """The exact Gaussian mixture behind a mixture toy (see core.data.toy2d.MIXTURE_TOYS)."""
    spec = mixture_spec(name)
    return GaussianMixture(
        means=torch.as_tensor(np.asarray(spec.means), dtype=torch.float64),
        std=float(spec.std),
        weights=torch.as_tensor(np.asarray(spec.weights), dtype=torch.float64),
    )
