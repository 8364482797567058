"""Improved DDPM (Nichol & Dhariwal 2021): learned variances, the hybrid loss, and the bound in bits per dim."""

from __future__ import annotations

import math

import pytest
import torch
from safetensors.torch import load
from scipy import integrate, stats

from core.checkpoints import build_model, checkpoint_bytes
from core.data.toy2d import sample_toy
from core.diffusion import (
    VPredictionDenoiser,
    bits_per_dim,
    discretized_gaussian_log_likelihood,
    elbo_per_dim,
    learned_variance,
    loss_hybrid,
    model_variance,
    vlb_terms,
)
from core.models.mlp import MLPConfig, MLPDenoiser
from core.samplers import SAMPLERS, sample
from core.schedules import make_schedule
from core.train_2d import train_ddpm_2d
from core.training import TrainConfig

S = make_schedule("cosine", 100)


def learned_mlp(num_classes: int = 0, seed: int = 0) -> VPredictionDenoiser:
    torch.manual_seed(seed)
    net = MLPDenoiser(MLPConfig(width=32, depth=1, t_embed_dim=16, x_embed_dim=4, T=S.T, learn_sigma=True,
                                num_classes=num_classes))
    torch.nn.init.normal_(net.out[-1].weight, std=0.3)  # not the zero init: v must vary
    return VPredictionDenoiser(net, S)


def test_frac_one_is_beta_and_frac_zero_is_beta_tilde():
    t = torch.tensor([0, 1, 10, 50, 99])
    x = torch.zeros(5, 2)
    ones = torch.ones(5, 2)
    torch.testing.assert_close(learned_variance(S, t, ones, x), S.betas[t].float().unsqueeze(1).expand(5, 2))
    beta_tilde = model_variance(S, "beta_tilde")[t].float().unsqueeze(1).expand(5, 2)
    torch.testing.assert_close(learned_variance(S, t, -ones, x), beta_tilde)
    assert learned_variance(S, t, -ones, x)[0, 0] > 0  # t = 1: beta_tilde_2, not 0
    mid = learned_variance(S, t, torch.zeros(5, 2), x)  # frac = 1/2: the geometric mean
    torch.testing.assert_close(mid, (S.betas[t].float().unsqueeze(1) * beta_tilde).sqrt())


def test_the_model_with_learned_variance_is_still_an_eps_model():
    m = learned_mlp()
    x, t = torch.randn(7, 2), torch.full((7,), 30.0)
    eps, v = m.eps_and_v(x, t)
    assert eps.shape == v.shape == (7, 2) and m.learn_sigma
    torch.testing.assert_close(m(x, t), eps)
    plain = VPredictionDenoiser(MLPDenoiser(MLPConfig(width=8, T=S.T)), S)
    assert not plain.learn_sigma and plain.eps_and_v(x, t)[1] is None


def test_in_the_hybrid_loss_the_bound_reaches_only_the_variance():
    """L_vlb's mean uses a stopped eps: the gradient of L_hybrid on the eps output is L_simple's alone."""
    x0 = torch.randn(64, 2)

    class Outputs(torch.nn.Module):  # eps and v as leaves, so their gradients can be read
        learn_sigma = True

        def __init__(self):
            super().__init__()
            g = torch.Generator().manual_seed(1)
            self.eps = torch.nn.Parameter(torch.randn(64, 2, generator=g))
            self.v = torch.nn.Parameter(torch.randn(64, 2, generator=g) * 0.3)

        def eps_and_v(self, x, t, y=None):
            return self.eps + 0 * x, self.v

    grads = {}
    for lam in (0.0, 0.001):
        out = Outputs()
        loss_hybrid(out, S, x0, generator=torch.Generator().manual_seed(3), lam=lam).backward()
        grads[lam] = (out.eps.grad.clone(), None if out.v.grad is None else out.v.grad.clone())
    torch.testing.assert_close(grads[0.001][0], grads[0.0][0], rtol=0, atol=0)
    assert grads[0.0][1] is None or grads[0.0][1].abs().max() == 0
    assert grads[0.001][1].abs().max() > 0


def test_hybrid_loss_refuses_a_model_without_learned_variance():
    plain = VPredictionDenoiser(MLPDenoiser(MLPConfig(width=8, T=S.T)), S)
    with pytest.raises(ValueError, match="learn_sigma"):
        loss_hybrid(plain, S, torch.randn(4, 2))


def test_bits_per_dim_of_the_true_posterior_is_prior_plus_decoder():
    """An oracle that knows each row's x_0 predicts the exact eps, so p(x_{t-1} | x_t) with beta_tilde is the
    true posterior: every KL term vanishes and the bound is the prior and the decoder terms alone."""
    g = torch.Generator().manual_seed(0)
    x0 = torch.randint(0, 256, (6, 1, 4, 4), generator=g).float() / 127.5 - 1.0
    ab = S.alpha_bars.float()

    def oracle(x_t, t):
        a = ab[t.long()].reshape(-1, 1, 1, 1)
        return (x_t - a.sqrt() * x0) / (1 - a).sqrt()

    terms = vlb_terms(oracle, S, x0, variance="beta_tilde", decoder="discretized", generator=g)
    assert terms["kl"].abs().max() < 1e-4
    d = x0[0].numel()
    expected = (terms["prior"] + terms["decoder"]) / (d * math.log(2))
    bpd = bits_per_dim(oracle, S, x0, variance="beta_tilde", generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(bpd, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("x", [-1.0, -0.5, 0.0, 0.3, 1.0])
def test_the_discretised_decoder_integrates_the_gaussian_over_each_bin(x):
    mean, std = 0.1, 0.05
    half = 1.0 / 255
    lo = -math.inf if x <= -1 + 1e-3 else x - half
    hi = math.inf if x >= 1 - 1e-3 else x + half
    pdf = stats.norm(mean, std).pdf
    if math.isinf(lo) or math.isinf(hi):
        mass = integrate.quad(pdf, lo, hi, epsabs=1e-14)[0]
    else:
        mass = integrate.quad(pdf, lo, hi, epsabs=1e-14, points=[mean])[0]
    got = discretized_gaussian_log_likelihood(torch.tensor([x], dtype=torch.float64),
                                              torch.tensor([mean], dtype=torch.float64),
                                              torch.tensor([std**2], dtype=torch.float64))
    assert got.item() == pytest.approx(math.log(max(mass, 1e-12)), rel=1e-6, abs=1e-9)


def test_learned_variance_sampling_runs_the_respaced_chain():
    m = learned_mlp()
    x_T = torch.randn(50, 2, generator=torch.Generator().manual_seed(0))
    for steps in (10, 25, S.T):
        traj = sample(m, S, x_T, method="ddpm", steps=steps, variance="learned",
                      generator=torch.Generator().manual_seed(1))
        assert traj.nfe == steps and torch.isfinite(traj.x0).all()
    fixed = sample(m, S, x_T, method="ddpm", steps=10, variance="beta", generator=torch.Generator().manual_seed(1))
    learned = sample(m, S, x_T, method="ddpm", steps=10, variance="learned",
                     generator=torch.Generator().manual_seed(1))
    assert not torch.allclose(fixed.x0, learned.x0)  # the variance is the model's, not beta


def test_learned_variance_under_guidance_reads_the_conditional_pass():
    m = learned_mlp(num_classes=3)
    x_T = torch.randn(20, 2, generator=torch.Generator().manual_seed(0))
    seen = []
    original = m.eps_and_v

    def spy(x, t, y=None):
        out = original(x, t, y)
        seen.append(y)
        return out

    m.eps_and_v = spy
    traj = sample(m, S, x_T, method="ddpm", steps=5, variance="learned", y=1, guidance_scale=3.0,
                  generator=torch.Generator().manual_seed(1))
    assert torch.isfinite(traj.x0).all() and traj.nfe == 5
    assert all(y.shape == (40,) and (y[:20] == 1).all() and (y[20:] == 3).all() for y in seen)


def test_learned_variance_needs_a_model_that_learns_it():
    plain = VPredictionDenoiser(MLPDenoiser(MLPConfig(width=8, T=S.T)), S)
    with pytest.raises(ValueError, match="learns its variance"):
        sample(plain, S, torch.randn(4, 2), method="ddpm", steps=5, variance="learned")
    with pytest.raises(ValueError, match="learn_sigma"):
        vlb_terms(plain, S, torch.randn(4, 2), variance="learned")
    assert "ddpm" in SAMPLERS


def test_a_learned_variance_checkpoint_round_trips():
    result, config = train_ddpm_2d("two_moons", S, TrainConfig(steps=20, batch_size=128, warmup_steps=2),
                                   mlp={"width": 16, "depth": 1}, learn_sigma=True)
    assert config["model"]["learn_sigma"] is True and "L_hybrid" in config["objective"]
    weights, _ = checkpoint_bytes(result.ema_model, config)
    model, schedule = build_model(config)
    model.load_state_dict(load(weights))
    x, t = torch.randn(5, 2), torch.full((5,), 10.0)
    for a, b in zip(model.eps_and_v(x, t), result.ema_model.eps_and_v(x, t), strict=True):
        torch.testing.assert_close(a, b)


def test_hybrid_training_lowers_the_bound_with_learned_variance():
    """A short hybrid run: its own Sigma_theta already bounds the data better than beta_tilde."""
    result, _ = train_ddpm_2d("eight_gaussians", S, TrainConfig(steps=400, batch_size=256), learn_sigma=True)
    data = sample_toy("eight_gaussians", 1000, torch.Generator().manual_seed(2))
    learned = elbo_per_dim(result.ema_model, S, data, variance="learned", generator=torch.Generator().manual_seed(0))
    fixed = elbo_per_dim(result.ema_model, S, data, variance="beta_tilde", generator=torch.Generator().manual_seed(0))
    assert learned.mean() > fixed.mean() + 0.1


def test_the_importance_sampler_is_uniform_until_warm_then_follows_the_terms_rms():
    from core.importance import LossSecondMomentSampler

    sampler = LossSecondMomentSampler(T=4, history=3, uniform=0.0)
    torch.testing.assert_close(sampler.probabilities(), torch.full((4,), 0.25, dtype=torch.float64))
    for _ in range(3):
        sampler.update(torch.tensor([0, 1, 2, 3]), torch.tensor([1.0, 2.0, 3.0, 4.0]))
    assert sampler.warm
    torch.testing.assert_close(sampler.probabilities(), torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=torch.float64))
    sampler.update(torch.tensor([3, 3, 3]), torch.tensor([0.0, 0.0, 0.0]))  # a full ring: the old values are gone
    assert sampler.probabilities()[3] == 0.0
    t, w = sampler.sample(20_000, torch.Generator().manual_seed(0))
    assert set(t.tolist()) <= {0, 1, 2}
    f = torch.tensor([1.0, 2.0, 3.0, 0.0])  # terms proportional to p: the weighted estimate is exact and unbiased
    assert (w * f[t]).mean().item() == pytest.approx(f.mean().item(), rel=1e-5)
    with pytest.raises(ValueError, match="history"):
        LossSecondMomentSampler(T=10, history=0)


def test_importance_sampling_keeps_the_estimate_unbiased_and_lowers_its_variance():
    from core.importance import LossSecondMomentSampler

    terms = torch.linspace(0, 1, 100).pow(8) * 50 + 0.01  # a few large terms, as the bound's first steps
    sampler = LossSecondMomentSampler(T=100, history=2)
    for _ in range(2):
        sampler.update(torch.arange(100), terms)
    g = torch.Generator().manual_seed(1)
    uniform = torch.stack([terms[torch.randint(0, 100, (64,), generator=g)].mean() for _ in range(2000)])
    weighted = []
    for _ in range(2000):
        t, w = sampler.sample(64, g)
        weighted.append((w * terms[t]).mean())
    weighted = torch.stack(weighted)
    assert weighted.mean().item() == pytest.approx(terms.mean().item(), rel=0.02)
    assert weighted.std() < 0.2 * uniform.std()


def test_the_vlb_objective_trains_the_mean_as_well_and_feeds_its_sampler():
    from core.diffusion import loss_vlb
    from core.importance import LossSecondMomentSampler

    m = learned_mlp()
    x0 = torch.randn(128, 2, generator=torch.Generator().manual_seed(0))
    sampler = LossSecondMomentSampler(S.T)
    loss = loss_vlb(m, S, x0, generator=torch.Generator().manual_seed(1), sampler=sampler)
    loss.backward()
    assert torch.isfinite(loss) and sampler.counts.sum() == 128
    first = m.net.blocks[0].fc1.weight.grad  # below the output: reached through the mean and the variance
    assert first is not None and first.abs().max() > 0
    result, config = train_ddpm_2d("two_moons", S, TrainConfig(steps=30, batch_size=128, warmup_steps=2),
                                   mlp={"width": 16, "depth": 1}, learn_sigma=True, objective="vlb")
    assert all(math.isfinite(v) for v in result.losses) and "L_vlb alone" in config["objective"]
    with pytest.raises(ValueError, match="unknown objective"):
        train_ddpm_2d("two_moons", S, TrainConfig(steps=2), learn_sigma=True, objective="kl")
