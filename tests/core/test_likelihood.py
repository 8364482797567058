"""Tests for core.likelihood: the PF-ODE log-likelihood against closed-form densities, and the ELBO below it.

Run: PYTHONPATH=. python -m pytest tests/core/test_likelihood.py -q
"""

from __future__ import annotations

import math

import pytest
import torch

from core.analytic import GaussianMixture, toy_mixture
from core.likelihood import compare_with_elbo, ode_log_likelihood, ode_log_likelihood_with_stats
from core.schedules import make_schedule


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize(("toy", "schedule"), [("eight_gaussians", "linear"), ("twenty_five_gaussians", "cosine")])
def test_ode_likelihood_of_the_exact_score_is_the_analytic_log_density(toy: str, schedule: str) -> None:
    s = make_schedule(schedule, T=1000)
    gm = toy_mixture(toy)
    x = gm.sample(300, _gen(0))
    result = ode_log_likelihood_with_stats(gm.as_eps_model(s), s, x)
    exact = gm.log_prob(x).double()
    assert abs(float(result.log_prob.mean() - exact.mean())) < 0.02 * abs(float(exact.mean()))
    assert float((result.log_prob - exact).abs().mean()) < 0.01  # per point too, in nats
    assert 50 < result.nfe < 1000


def test_a_model_predicting_zero_noise_has_the_gaussian_prior_likelihood() -> None:
    """eps = 0 means no flow in VE coordinates: x_0 = x_T / sqrt(alpha_bar_T), so p(x_0) = N(0, I / alpha_bar_T)."""
    from core.models.mlp import MLPConfig, MLPDenoiser

    s = make_schedule("linear", T=1000)
    model = MLPDenoiser(MLPConfig())  # its output layer starts at zero: eps = 0 exactly, yet differentiable
    x = torch.randn(50, 2, generator=_gen(0))
    var = 1.0 / float(s.alpha_bars[-1])
    expected = -0.5 * x.double().pow(2).sum(1) / var - math.log(2 * math.pi * var)
    torch.testing.assert_close(ode_log_likelihood(model, s, x), expected, rtol=1e-6, atol=1e-6)


def test_hutchinson_is_exact_for_an_isotropic_gaussian_on_images() -> None:
    """Data N(0, std^2 I) in 16 dims shaped (N, 1, 4, 4): d eps / dx is a multiple of I, so z^T J z = tr J."""
    s = make_schedule("cosine", T=200)
    d, std = 16, 0.5
    gm = GaussianMixture(torch.zeros(1, d, dtype=torch.float64), std, torch.ones(1, dtype=torch.float64))
    eps_model = lambda x, t, y=None: gm.eps(x.flatten(1), t, s).reshape(x.shape)  # noqa: E731
    x = (std * torch.randn(20, 1, 4, 4, generator=_gen(0))).double()
    expected = -0.5 * x.flatten(1).pow(2).sum(1) / std**2 - 0.5 * d * math.log(2 * math.pi * std**2)
    got = ode_log_likelihood(eps_model, s, x, divergence="hutchinson", generator=_gen(1))
    torch.testing.assert_close(got, expected, rtol=2e-3, atol=2e-3)


def test_hutchinson_is_unbiased_on_a_mixture() -> None:
    s = make_schedule("linear", T=1000)
    gm = toy_mixture("eight_gaussians")
    x = gm.sample(300, _gen(2))
    exact = ode_log_likelihood(gm.as_eps_model(s), s, x)
    estimate = ode_log_likelihood(gm.as_eps_model(s), s, x, divergence="hutchinson", generator=_gen(3))
    diff = estimate - exact
    assert abs(float(diff.mean())) < 4 * float(diff.std()) / math.sqrt(len(diff))


def test_elbo_is_below_the_exact_log_likelihood() -> None:
    s = make_schedule("linear", T=1000)
    gm = toy_mixture("eight_gaussians")
    x = gm.sample(64, _gen(0))
    r = compare_with_elbo(gm.as_eps_model(s), s, x, generator=_gen(1))
    exact_per_dim = gm.log_prob(x).double() / 2
    assert abs(float(r.ode_per_dim.mean() - exact_per_dim.mean())) < 0.02 * abs(float(exact_per_dim.mean()))
    assert float(r.elbo_per_dim.mean()) < float(r.ode_per_dim.mean())
    assert r.ode_per_dim.shape == r.elbo_per_dim.shape == (64,)


def test_likelihood_rejects_bad_arguments() -> None:
    s = make_schedule("linear", T=100)
    x = torch.randn(4, 2)
    with pytest.raises(ValueError, match="unknown divergence 'trace'"):
        ode_log_likelihood(lambda x, t, y=None: x, s, x, divergence="trace")
    with pytest.raises(ValueError, match="differentiabl"):
        ode_log_likelihood(lambda x, t, y=None: torch.zeros_like(x), s, x)
    with pytest.raises(ValueError, match="t_min"):
        ode_log_likelihood(lambda x, t, y=None: x, s, x, t_min=-2.0)
