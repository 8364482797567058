"""Schedules against the papers' definitions (Ho et al. 2020; Nichol & Dhariwal 2021; Chen 2023)."""

import math

import numpy as np
import pytest
import torch

from core.schedules import SCHEDULE_NAMES, make_schedule


def test_linear_matches_ho_et_al():
    s = make_schedule("linear", T=1000)
    expected = np.linspace(1e-4, 0.02, 1000)
    assert s.betas.dtype == torch.float64 and s.betas.shape == (1000,)
    np.testing.assert_allclose(s.betas.numpy(), expected, atol=1e-6, rtol=0)
    np.testing.assert_allclose(s.alpha_bars.numpy(), np.cumprod(1 - expected), atol=1e-6, rtol=0)


def test_cosine_matches_nichol_dhariwal():
    T, s_off = 1000, 0.008
    s = make_schedule("cosine", T=T)
    f = lambda t: math.cos((t / T + s_off) / (1 + s_off) * math.pi / 2) ** 2  # noqa: E731
    expected = np.array([min(1 - f(t + 1) / f(t), 0.999) for t in range(T)])
    np.testing.assert_allclose(s.betas.numpy(), expected, atol=1e-6, rtol=0)
    assert s.betas.max() <= 0.999
    np.testing.assert_allclose(s.alpha_bars.numpy(), np.cumprod(1 - expected), atol=1e-6, rtol=0)
    # away from the clip, alpha_bar_t = f(t)/f(0) exactly
    np.testing.assert_allclose(s.alpha_bars[:900].numpy(), [f(t + 1) / f(0) for t in range(900)], atol=1e-6)


def test_sigmoid_matches_chen_2023():
    T = 500
    s = make_schedule("sigmoid", T=T)
    sig = lambda z: 1 / (1 + math.exp(-z))  # noqa: E731
    ab = lambda t: (-sig(t * 6 - 3) + sig(3)) / (sig(3) - sig(-3))  # noqa: E731
    np.testing.assert_allclose(s.alpha_bars[:450].numpy(), [ab((t + 1) / T) for t in range(450)], atol=1e-6)


@pytest.mark.parametrize("name", [n for n in SCHEDULE_NAMES if n != "custom"])
def test_derived_quantities(name):
    s = make_schedule(name, T=200)
    b = s.betas
    assert torch.all((b > 0) & (b < 1))
    torch.testing.assert_close(s.alpha_bars, torch.cumprod(1 - b, 0))
    torch.testing.assert_close(s.snr, s.alpha_bars / (1 - s.alpha_bars))
    torch.testing.assert_close(s.log_snr, torch.log(s.snr))
    ab_prev = torch.cat([torch.ones(1, dtype=torch.float64), s.alpha_bars[:-1]])
    torch.testing.assert_close(s.posterior_variance, (1 - ab_prev) / (1 - s.alpha_bars) * b)
    assert torch.all(s.log_snr[1:] < s.log_snr[:-1])  # monotone: the forward process only adds noise


def test_alpha_bar_at_is_exact_on_integers_and_monotone_between():
    s = make_schedule("cosine", T=100)
    t = torch.arange(100, dtype=torch.float64)
    torch.testing.assert_close(s.alpha_bar_at(t), s.alpha_bars)
    assert float(s.alpha_bar_at(-1.0)) == 1.0
    fine = torch.linspace(-1, 99, 2001, dtype=torch.float64)
    ab = s.alpha_bar_at(fine)
    assert torch.all(ab[1:] <= ab[:-1])
    with pytest.raises(ValueError, match=r"\[-1, 99\]"):
        s.alpha_bar_at(torch.tensor([100.5]))


def test_continuous_sde_integrates_back_to_discrete_alpha_bar():
    """alpha_bar_k = exp(-int_{-1}^{k} beta(t) dt): the VP-SDE view is the same process."""
    s = make_schedule("linear", T=1000)
    t = torch.linspace(-1, 999, 200_001, dtype=torch.float64)
    beta = s.beta_at(t[1:])  # right-continuous steps: evaluate at interval ends
    integral = torch.cumsum(beta * (t[1] - t[0]), 0)
    for k in (0, 10, 500, 999):
        idx = int(round((k + 1) / float(t[1] - t[0]))) - 1
        assert math.isclose(math.exp(-float(integral[idx])), float(s.alpha_bars[k]), rel_tol=1e-3)
    # and for small betas, beta(t) ~ beta_t (the familiar beta_min..beta_max line)
    np.testing.assert_allclose(s.beta_at(torch.arange(1000.0)).numpy(), s.betas.numpy(), rtol=0.011)
    x = torch.ones(3, 2)
    torch.testing.assert_close(s.sde_drift(x, torch.full((3,), 500.0)), -0.5 * float(s.beta_at(500.0)) * x)


def test_terminal_snr_tells_whether_noise_is_reached():
    assert make_schedule("linear", T=1000).terminal_snr < 1e-4
    assert make_schedule("linear", T=50).terminal_snr > 0.5  # tiny-diffusion's default: alpha_bar_T ~ 0.6


def test_custom_and_roundtrip():
    s = make_schedule("custom", betas=[0.1, 0.2, 0.3])
    assert s.T == 3
    torch.testing.assert_close(s.alpha_bars, torch.tensor([0.9, 0.72, 0.504], dtype=torch.float64))
    for name in ("linear", "cosine", "sigmoid", "quadratic"):
        a = make_schedule(name, T=64)
        b = make_schedule(**a.to_config())
        torch.testing.assert_close(a.betas, b.betas)
    torch.testing.assert_close(make_schedule(**s.to_config()).betas, s.betas)


@pytest.mark.parametrize("kwargs, message", [
    ({"name": "cosin"}, r"unknown schedule 'cosin'; expected one of: linear, cosine"),
    ({"name": "linear", "T": 1}, r"T must be an integer in \[2,"),
    ({"name": "linear", "T": 10.5}, r"T must be an integer"),
    ({"name": "linear", "beta_end": 1.5}, r"must lie in \(0, 1\)"),
    ({"name": "linear", "bogus": 1}, r"unexpected parameters for 'linear'"),
    ({"name": "custom", "betas": [0.1, 1.0]}, r"open interval \(0, 1\); beta\[1\] = 1"),
    ({"name": "custom", "betas": [0.1, -0.2, 0.3]}, r"beta\[1\] = -0.2"),
    ({"name": "custom", "betas": [0.5]}, r"T >= 2"),
    ({"name": "custom", "betas": [0.1, float("nan")]}, r"finite"),
    ({"name": "custom"}, r"needs betas="),
    ({"name": "cosine", "s": -0.1}, r"cosine offset s"),
    ({"name": "sigmoid", "start": 3, "end": -3}, r"start < end"),
])
def test_invalid_input_messages(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_schedule(**kwargs)
