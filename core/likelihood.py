"""Exact log-likelihood of a diffusion model through the probability-flow ODE, next to the ELBO.

ll = ode_log_likelihood(eps_model, schedule, x0)   # (N,) log p(x0) in nats (Song et al. 2021, sec. 4.3, app. D.2)
r = compare_with_elbo(eps_model, schedule, x0)     # both bounds side by side, in nats per dimension

The instantaneous change of variables (Chen et al. 2018) along the PF-ODE, written in the variance-
exploding coordinates of core.samplers (x_ve = x / sqrt(alpha_bar), sigma = sqrt((1 - alpha_bar) / alpha_bar)):

    dx_ve / dsigma = eps(x, t),    d log p(x_ve) / dsigma = -div_{x_ve} eps = -sqrt(alpha_bar) div_x eps,

so log p_0(x_0) = log p_T(x_T) + (D / 2) log alpha_bar_T + int_0^{sigma_T} sqrt(alpha_bar) div_x eps dsigma,
with the prior p_T = N(0, I) on x_T = sqrt(alpha_bar_T) x_ve(sigma_T). In sigma the right-hand side has no
1 / sqrt(1 - alpha_bar) singularity at clean data (eps -> 0 there), so the integral starts at t = -1, the
data distribution itself, and an adaptive Runge-Kutta solver (scipy's RK45, rtol = atol = 1e-5 as Song
et al.) takes it to t = T - 1. The divergence is exact (D backward passes; right for 2D points) or
Hutchinson's estimate z^T (d eps / dx) z with one Rademacher z per example held fixed over the solve
(Grathwohl et al. 2019, FFJORD), for images.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy.integrate import solve_ivp

from core.diffusion import EpsModel, elbo_per_dim
from core.samplers import timestep_at_log_alpha_bar
from core.schedules import Schedule

DIVERGENCES = ("exact", "hutchinson")


@dataclass
class ODELikelihood:
    """Result of ``ode_log_likelihood_with_stats``: log p(x0) (N,) in nats, the prior term and the NFE."""

    log_prob: torch.Tensor  # (N,) float64, nats (summed over dimensions)
    prior_log_prob: torch.Tensor  # (N,) log p_T(x_T) + (D/2) log alpha_bar_T, the end of the flow
    nfe: int  # network evaluations (each with its divergence)


def _divergence(eps_model: EpsModel, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None,
                kind: str, z: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """eps(x, t) and div_x eps per example (N,): exact by one backward pass per dimension, or Hutchinson."""
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        eps = eps_model(x, t, y) if y is not None else eps_model(x, t)
        if not eps.requires_grad:
            raise ValueError("the eps model's output does not depend differentiably on x; the likelihood "
                             "needs autograd through the model (do not detach its input)")
        if kind == "hutchinson":
            (grad,) = torch.autograd.grad((eps * z).sum(), x)
            div = (grad * z).flatten(1).sum(1)
        else:
            eps_flat = eps.flatten(1)
            d = eps_flat.shape[1]
            div = torch.zeros(x.shape[0], dtype=eps.dtype, device=x.device)
            for i in range(d):
                (grad,) = torch.autograd.grad(eps_flat[:, i].sum(), x, retain_graph=i < d - 1)
                div = div + grad.flatten(1)[:, i]
    return eps.detach(), div.detach()


def ode_log_likelihood_with_stats(eps_model: EpsModel, schedule: Schedule, x0: torch.Tensor,
                                  y: torch.Tensor | None = None, divergence: str = "exact",
                                  rtol: float = 1e-5, atol: float = 1e-5, t_min: float = -1.0,
                                  generator: torch.Generator | None = None) -> ODELikelihood:
    """log p(x0) under the model's probability-flow ODE (see the module docstring), with the solver's NFE.

    x0: (N, ...) points or images; y: optional (N,) labels (a conditional likelihood).
    divergence: "exact" or "hutchinson" (then ``generator`` draws the Rademacher probes).
    t_min: where the flow starts; -1 (default) is the data itself, 0 the first noised marginal (the
    "epsilon" of Song et al.): the model is called at fractional t in [t_min, T-1].
    """
    s = schedule
    if divergence not in DIVERGENCES:
        raise ValueError(f"unknown divergence {divergence!r}; expected one of: {', '.join(DIVERGENCES)}")
    if not isinstance(x0, torch.Tensor) or not x0.is_floating_point() or x0.dim() < 2:
        raise ValueError("x0 must be a floating-point tensor of shape (N, ...), e.g. (N, 2) points")
    if not -1.0 <= t_min < s.T - 1:
        raise ValueError(f"t_min must lie in [-1, {s.T - 1}); got {t_min!r}")
    if not (rtol > 0 and atol > 0):
        raise ValueError(f"rtol and atol must be > 0; got {rtol!r}, {atol!r}")
    n, shape, dtype, device = x0.shape[0], x0.shape, x0.dtype, x0.device
    dim = x0[0].numel()
    z = None
    if divergence == "hutchinson":
        gen_device = generator.device if generator is not None else torch.device("cpu")
        z = torch.randint(0, 2, shape, generator=generator, device=gen_device).to(device=device, dtype=dtype)
        z = 2.0 * z - 1.0
    sigma_of = lambda t: math.sqrt(math.exp(-float(s.log_alpha_bar_at(t))) - 1.0)  # noqa: E731
    sigma_min, sigma_max = sigma_of(t_min), sigma_of(s.T - 1)
    log_ab_T = float(s.log_alpha_bar_at(s.T - 1))
    nfe = 0

    def rhs(sigma: float, state: np.ndarray) -> np.ndarray:
        nonlocal nfe
        log_ab = -math.log1p(sigma * sigma)
        t = min(max(timestep_at_log_alpha_bar(s, max(log_ab, log_ab_T)), t_min), s.T - 1.0)
        sqrt_ab = math.exp(0.5 * log_ab)
        x_ve = torch.from_numpy(state[: n * dim]).reshape(shape).to(device=device, dtype=dtype)
        t_vec = torch.full((n,), t, dtype=dtype, device=device)
        eps, div = _divergence(eps_model, sqrt_ab * x_ve, t_vec, y, divergence, z)
        nfe += 1
        # dx_ve/dsigma = eps; d(accumulated log-det)/dsigma = div_{x_ve} eps = sqrt(alpha_bar) div_x eps
        return np.concatenate([eps.double().cpu().numpy().ravel(), sqrt_ab * div.double().cpu().numpy()])

    state0 = np.concatenate([x0.detach().double().cpu().numpy().ravel(), np.zeros(n)])
    sol = solve_ivp(rhs, (sigma_min, sigma_max), state0, method="RK45", rtol=rtol, atol=atol)
    if not sol.success:
        raise RuntimeError(f"the probability-flow ODE solver failed: {sol.message}")
    end = sol.y[:, -1]
    x_T = torch.from_numpy(end[: n * dim]).reshape(n, dim) * math.exp(0.5 * log_ab_T)
    prior = -0.5 * (x_T.pow(2).sum(1) + dim * math.log(2 * math.pi)) + 0.5 * dim * log_ab_T
    log_prob = prior + torch.from_numpy(end[n * dim:])
    return ODELikelihood(log_prob=log_prob, prior_log_prob=prior, nfe=nfe)


def ode_log_likelihood(eps_model: EpsModel, schedule: Schedule, x0: torch.Tensor,
                       y: torch.Tensor | None = None, divergence: str = "exact", rtol: float = 1e-5,
                       atol: float = 1e-5, t_min: float = -1.0,
                       generator: torch.Generator | None = None) -> torch.Tensor:
    """log p(x0) (N,) in nats (float64) through the probability-flow ODE (Song et al. 2021, eq. 39)."""
    return ode_log_likelihood_with_stats(eps_model, schedule, x0, y, divergence, rtol, atol, t_min,
                                         generator).log_prob


@dataclass
class LikelihoodComparison:
    """The exact PF-ODE log-likelihood beside the variational bound, both in nats per dimension (N,)."""

    ode_per_dim: torch.Tensor
    elbo_per_dim: torch.Tensor
    ode_nfe: int


def compare_with_elbo(eps_model: EpsModel, schedule: Schedule, x0: torch.Tensor, y: torch.Tensor | None = None,
                      divergence: str = "exact", variance: str = "beta_tilde", decoder: str = "gaussian",
                      generator: torch.Generator | None = None) -> LikelihoodComparison:
    """PF-ODE log p(x0) and core.diffusion.elbo_per_dim (Ho et al. 2020, eq. 5) for the same points.

    For a perfect model the ELBO sits below log p by the gap of the bound; it costs T network calls.
    Both are densities with the default Gaussian decoder. decoder="discretized" (images in [-1, 1]) bounds
    the probability of 256-level bins instead; to set it beside the ODE density, add log(2 / 255) (the
    log bin width) per dimension to the latter (no dequantization noise is used here).
    """
    ode = ode_log_likelihood_with_stats(eps_model, schedule, x0, y, divergence, generator=generator)
    elbo = elbo_per_dim(eps_model, schedule, x0, y=y, variance=variance, decoder=decoder, generator=generator)
    dim = x0[0].numel()
    return LikelihoodComparison(ode_per_dim=ode.log_prob / dim, elbo_per_dim=elbo.detach().double().cpu(),
                                ode_nfe=ode.nfe)
