"""The exact noised marginals of the mixture toys: score = grad log q, densities integrate to one."""

import math

import pytest
import torch

from core.analytic import toy_mixture
from core.data.toy2d import MIXTURE_TOYS, sample_toy
from core.diffusion import q_sample
from core.schedules import make_schedule

TIMES = [None, 0.0, 37.5, 200.0, 999.0]  # None: the data distribution itself


@pytest.mark.parametrize("name", MIXTURE_TOYS)
@pytest.mark.parametrize("t", TIMES)
def test_score_is_the_gradient_of_log_prob(name, t):
    s = make_schedule("linear", T=1000)
    gm = toy_mixture(name)
    x = (torch.randn(256, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 1.3).requires_grad_()
    logp = gm.log_prob(x, t, s if t is not None else None)
    (grad,) = torch.autograd.grad(logp.sum(), x)
    torch.testing.assert_close(gm.score(x, t, s if t is not None else None), grad, atol=1e-8, rtol=1e-6)


@pytest.mark.parametrize("name", MIXTURE_TOYS)
@pytest.mark.parametrize("t", TIMES)
def test_density_integrates_to_one(name, t):
    s = make_schedule("cosine", T=1000)
    gm = toy_mixture(name)
    h = 0.01 if t is None or t < 100 else 0.04  # the grid must resolve std 0.08 modes
    axis = torch.arange(-6, 6, h, dtype=torch.float64) + h / 2
    xx, yy = torch.meshgrid(axis, axis, indexing="xy")
    pts = torch.stack([xx.flatten(), yy.flatten()], 1)
    mass = sum(float(gm.log_prob(chunk, t, s if t is not None else None).exp().sum()) for chunk in pts.split(200_000))
    assert math.isclose(mass * h * h, 1.0, abs_tol=2e-3)


def test_noised_marginal_matches_noised_samples():
    """Push data through q(x_t|x_0) and compare the histogram mean log-density with the closed form."""
    s = make_schedule("linear", T=1000)
    gm = toy_mixture("eight_gaussians")
    g = torch.Generator().manual_seed(3)
    x0 = sample_toy("eight_gaussians", 100_000, g)
    t = 150
    xt = q_sample(s, x0, torch.full((100_000,), t), torch.randn(100_000, 2, generator=g))
    # E_q[log q(x_t)] is the negative entropy; a wrong variance or centre would lower it measurably
    right = gm.log_prob(xt.double(), t, s).mean()
    wrong = gm.log_prob(xt.double(), t + 100, s).mean()
    assert float(right) > float(wrong) + 0.05
    # second moments of q(x_t): E|x_t|^2 = ab (R^2 + 2 sd^2) + 2 (1 - ab), R^2 + 2 sd^2 = 2 here
    assert math.isclose(float(xt.pow(2).sum(1).mean()), 2.0, rel_tol=0.02)


def test_eps_and_oracle_model():
    s = make_schedule("linear", T=1000)
    gm = toy_mixture("twenty_five_gaussians")
    x = torch.randn(100, 2, generator=torch.Generator().manual_seed(1))
    t = torch.full((100,), 300.0)
    eps = gm.eps(x, t, s)
    ab = float(s.alpha_bars[300])
    torch.testing.assert_close(eps, -math.sqrt(1 - ab) * gm.score(x, t, s))
    torch.testing.assert_close(gm.as_eps_model(s)(x, t), eps)
    # the oracle eps is E[eps | x_t]: it beats the true noise's own conditional residual on average
    g = torch.Generator().manual_seed(5)
    x0 = gm.sample(50_000, g)
    noise = torch.randn(50_000, 2, generator=g)
    xt = q_sample(s, x0, torch.full((50_000,), 300), noise)
    oracle = gm.eps(xt, torch.full((50_000,), 300.0), s)
    base = ((oracle - noise) ** 2).mean()
    assert float(((oracle * 1.05 - noise) ** 2).mean()) > float(base)
    assert float(((oracle + 0.05 - noise) ** 2).mean()) > float(base)


def test_sample_follows_the_spec():
    gm = toy_mixture("eight_gaussians")
    x = gm.sample(100_000, torch.Generator().manual_seed(0)).double()
    torch.testing.assert_close(x.var(0), torch.ones(2, dtype=torch.float64), atol=0.02, rtol=0)


def test_unknown_mixture_is_a_clear_error():
    with pytest.raises(ValueError, match="eight_gaussians"):
        toy_mixture("swiss_roll")
