"""Forward process, posterior, conversions and the variational bound against closed forms."""

import math

import pytest
import torch

from core.analytic import GaussianMixture
from core.diffusion import (
    elbo_per_dim,
    eps_to_score,
    eps_to_x0,
    gaussian_kl,
    loss_simple,
    q_posterior,
    q_sample,
    score_to_eps,
    v_to_eps,
    vlb_terms,
    x0_to_eps,
)
from core.schedules import make_schedule


@pytest.mark.parametrize("t", [0, 250, 999])
def test_q_sample_mean_and_variance(t):
    s = make_schedule("cosine", T=1000)
    g = torch.Generator().manual_seed(0)
    n = 200_000
    x0 = torch.tensor([[1.5, -0.7]]).expand(n, 2)
    xt = q_sample(s, x0, torch.full((n,), t), torch.randn(n, 2, generator=g, dtype=torch.float64).float())
    ab = float(s.alpha_bars[t])
    se = math.sqrt((1 - ab) / n)
    torch.testing.assert_close(xt.mean(0).double(), math.sqrt(ab) * x0[0].double(), atol=5 * se + 1e-6, rtol=0)
    torch.testing.assert_close(xt.var(0).double(), torch.full((2,), 1 - ab, dtype=torch.float64),
                               atol=5 * (1 - ab) * math.sqrt(2 / n) + 1e-7, rtol=0)


def test_posterior_is_bayes_rule():
    """q(x_{t-1}|x_t,x_0) ∝ q(x_t|x_{t-1}) q(x_{t-1}|x_0): multiply the two Gaussians by hand."""
    s = make_schedule("linear", T=1000)
    x0 = torch.tensor([[0.3, -1.2], [2.0, 0.5]], dtype=torch.float64)
    xt = torch.tensor([[1.0, 0.1], [-0.4, 0.9]], dtype=torch.float64)
    for t in (1, 37, 500, 999):
        beta, ab_prev = float(s.betas[t]), float(s.alpha_bars[t - 1])
        prec = (1 - beta) / beta + 1 / (1 - ab_prev)
        mean = (math.sqrt(1 - beta) * xt / beta + math.sqrt(ab_prev) * x0 / (1 - ab_prev)) / prec
        m, v = q_posterior(s, x0, xt, torch.full((2,), t))
        torch.testing.assert_close(m, mean)
        torch.testing.assert_close(v, torch.full_like(xt, 1 / prec))
    # at the paper's t = 1 the posterior collapses onto x_0
    m, v = q_posterior(s, x0, xt, torch.zeros(2, dtype=torch.long))
    torch.testing.assert_close(m, x0)
    assert torch.all(v == 0)


def test_conversions_round_trip():
    s = make_schedule("cosine", T=1000)
    g = torch.Generator().manual_seed(1)
    x0, eps = torch.randn(64, 2, generator=g), torch.randn(64, 2, generator=g)
    t = torch.randint(0, 1000, (64,), generator=g)
    xt = q_sample(s, x0, t, eps)
    torch.testing.assert_close(eps_to_x0(s, xt, t, eps), x0, atol=1e-3, rtol=1e-3)
    torch.testing.assert_close(x0_to_eps(s, xt, t, x0), eps, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(score_to_eps(s, xt, t, eps_to_score(s, xt, t, eps)), eps)
    ab = s.alpha_bars[t].float().unsqueeze(1)
    v = ab.sqrt() * eps - (1 - ab).sqrt() * x0  # Salimans & Ho 2022
    torch.testing.assert_close(v_to_eps(s, xt, t.float(), v), eps, atol=1e-4, rtol=1e-4)


def test_fractional_timesteps_use_the_continuous_view():
    s = make_schedule("linear", T=1000)
    x0 = torch.ones(2, 2)
    noise = torch.zeros(2, 2)
    out = q_sample(s, x0, torch.tensor([10.5, 10.5]), noise)
    expected = float(s.alpha_bar_at(10.5)) ** 0.5
    torch.testing.assert_close(out, torch.full((2, 2), expected))
    assert float(s.alpha_bars[11]) < float(s.alpha_bar_at(10.5)) < float(s.alpha_bars[10])


def test_gaussian_kl_closed_form():
    kl = gaussian_kl(torch.tensor(0.0), torch.tensor(1.0), torch.tensor(1.0), torch.tensor(4.0))
    assert math.isclose(float(kl), 0.5 * (math.log(4) + 2 / 4 - 1), rel_tol=1e-6)


def test_loss_simple_of_the_exact_model_beats_a_wrong_one():
    s = make_schedule("linear", T=1000)
    gm = GaussianMixture(torch.tensor([[1.0, 0.0], [-1.0, 0.0]], dtype=torch.float64), 0.3,
                         torch.tensor([0.5, 0.5], dtype=torch.float64))
    x0 = gm.sample(20_000, torch.Generator().manual_seed(0))
    exact = loss_simple(gm.as_eps_model(s), s, x0, generator=torch.Generator().manual_seed(1))
    zero = loss_simple(lambda x, t: torch.zeros_like(x), s, x0, generator=torch.Generator().manual_seed(1))
    assert float(exact) < 0.5 * float(zero)


def _gap_and_se(sd: float, variance: str, n: int = 512) -> tuple[float, float]:
    """Mean of (log p(x_0) - ELBO) in nats/dim over x_0 ~ N(0, sd^2 I), with its standard error."""
    s = make_schedule("linear", T=1000)
    gm = GaussianMixture(torch.zeros(1, 2, dtype=torch.float64), sd, torch.ones(1, dtype=torch.float64))
    x0 = gm.sample(n, torch.Generator().manual_seed(0)).double()
    elbo = elbo_per_dim(gm.as_eps_model(s), s, x0, variance=variance, generator=torch.Generator().manual_seed(2))
    gap = gm.log_prob(x0) / 2 - elbo
    return float(gap.mean()), float(gap.std() / math.sqrt(n))


def test_elbo_equals_log_likelihood_when_the_reverse_kernel_is_exact():
    """For x_0 ~ N(0, I) the true reverse kernel is N(sqrt(alpha_t) x_t, beta_t I) (Ho et al. sec. 3.2),
    so with sigma_t^2 = beta_t and the exact eps the bound is tight up to Monte Carlo noise."""
    gap, se = _gap_and_se(1.0, "beta")
    assert abs(gap) < 4 * se + 0.01


def test_elbo_is_below_the_exact_log_likelihood():
    gap, se = _gap_and_se(0.5, "beta_tilde")
    assert gap > 4 * se  # beta_tilde is the wrong reverse variance for this data: a real, visible gap


def test_vlb_terms_by_hand():
    s = make_schedule("linear", T=1000)
    x0 = torch.randn(64, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    terms = vlb_terms(lambda x, t: torch.zeros_like(x), s, x0, generator=torch.Generator().manual_seed(1))
    assert terms["kl"].shape == (64, 999) and torch.all(terms["kl"] >= -1e-9)
    # prior term: KL(N(sqrt(ab_T) x0, 1-ab_T) || N(0, 1)) by hand
    ab = float(s.alpha_bars[-1])
    by_hand = 0.5 * (-math.log(1 - ab) + (1 - ab) + ab * x0.pow(2) - 1).sum(1)
    torch.testing.assert_close(terms["prior"], by_hand)


def test_vlb_rejects_unknown_options():
    s = make_schedule("linear", T=10)
    with pytest.raises(ValueError, match="unknown decoder"):
        vlb_terms(lambda x, t: x, s, torch.zeros(2, 2), decoder="bernoulli")
    with pytest.raises(ValueError, match="unknown variance"):
        vlb_terms(lambda x, t: x, s, torch.zeros(2, 2), variance="fixed")
    with pytest.raises(ValueError, match="learns its variance"):
        vlb_terms(lambda x, t: x, s, torch.zeros(2, 2), variance="learned")
