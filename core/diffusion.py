"""The forward process, its posterior, the eps/x0/score conversions, and the losses (Ho et al. 2020).

Every timestep argument uses the schedule's index (0..T-1 is the paper's step 1..T). The conversions
between what a network predicts (eps) and what a sampler needs (x0, score) live here and only here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch

from core.schedules import Schedule

EpsModel = Callable[..., torch.Tensor]  # eps_model(x, t, y=None) -> eps, same shape as x
EpsFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # eps(x, t) with labels and guidance bound


def _at(values: torch.Tensor, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Gather schedule values at integer timesteps t and shape them to broadcast against x."""
    v = values.to(x.device)[t.to(x.device).long()]
    return v.to(x.dtype).reshape(-1, *([1] * (x.dim() - 1)))


def _alpha_bar(s: Schedule, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """alpha_bar_t shaped like x; fractional t goes through the continuous view."""
    t = torch.as_tensor(t, device=x.device)
    if t.dim() == 0:
        t = t.expand(x.shape[0])
    if t.is_floating_point() and not torch.equal(t, t.round()):
        ab = s.alpha_bar_at(t.detach().cpu().double())
        return ab.to(device=x.device, dtype=x.dtype).reshape(-1, *([1] * (x.dim() - 1)))
    return _at(s.alpha_bars, t, x)


def q_sample(s: Schedule, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps (Ho et al. 2020, eq. 4)."""
    ab = _alpha_bar(s, t, x0)
    return ab.sqrt() * x0 + (1.0 - ab).sqrt() * noise


def forward_chain(s: Schedule, x0: torch.Tensor, keep: Sequence[int],
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """Run q(x_t | x_{t-1}) = N(sqrt(1 - beta_t) x_{t-1}, beta_t I) step by step (Ho et al. 2020, eq. 2).

    keep: paper steps 0..T to record (0 is x_0). Returns (len(keep), N, d) float32. Its marginal at t is
    q(x_t | x_0) of eq. (4), i.e. ``q_sample``; the chain is what makes particle paths continuous.
    """
    keep_set = sorted(set(int(k) for k in keep))
    if keep_set and (keep_set[0] < 0 or keep_set[-1] > s.T):
        raise ValueError(f"keep must lie in [0, {s.T}]")
    x = x0.to(torch.float64)
    sqrt_alphas, sqrt_betas = s.alphas.sqrt(), s.betas.sqrt()
    out = {0: x} if 0 in keep_set else {}
    for t in range(1, (keep_set[-1] if keep_set else 0) + 1):  # paper step t is index t - 1
        noise = torch.randn(x.shape, generator=generator, dtype=torch.float64)
        x = sqrt_alphas[t - 1] * x + sqrt_betas[t - 1] * noise
        if t in keep_set:
            out[t] = x
    return torch.stack([out[int(k)] for k in keep]).to(torch.float32)


def q_mean_var(s: Schedule, x0: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and variance of q(x_t | x_0) = N(sqrt(alpha_bar_t) x_0, (1 - alpha_bar_t) I)."""
    ab = _alpha_bar(s, t, x0)
    return ab.sqrt() * x0, (1.0 - ab).expand_as(x0)


def q_posterior(s: Schedule, x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and variance of q(x_{t-1} | x_t, x_0) (Ho et al. 2020, eqs. 6-7); integer t >= 0."""
    mean = _at(s.posterior_mean_coef_x0, t, x_t) * x0 + _at(s.posterior_mean_coef_xt, t, x_t) * x_t
    var = _at(s.posterior_variance, t, x_t).expand_as(x_t)
    return mean, var


def eps_to_x0(s: Schedule, x_t: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """x0_hat = (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t) (Ho et al. 2020, eq. 15)."""
    ab = _alpha_bar(s, t, x_t)
    return (x_t - (1.0 - ab).sqrt() * eps) / ab.sqrt()


def x0_to_eps(s: Schedule, x_t: torch.Tensor, t: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
    """The inverse of eps_to_x0: eps = (x_t - sqrt(alpha_bar_t) x0) / sqrt(1 - alpha_bar_t)."""
    ab = _alpha_bar(s, t, x_t)
    return (x_t - ab.sqrt() * x0) / (1.0 - ab).sqrt()


def eps_to_score(s: Schedule, x_t: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """grad log q(x_t) = -eps / sqrt(1 - alpha_bar_t) (Song et al. 2021, denoising score matching)."""
    return -eps / (1.0 - _alpha_bar(s, t, x_t)).sqrt()


def score_to_eps(s: Schedule, x_t: torch.Tensor, t: torch.Tensor, score: torch.Tensor) -> torch.Tensor:
    """eps = -sqrt(1 - alpha_bar_t) * score: the inverse of eps_to_score."""
    return -score * (1.0 - _alpha_bar(s, t, x_t)).sqrt()


def loss_simple(eps_model: EpsModel, s: Schedule, x0: torch.Tensor, y: torch.Tensor | None = None,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """L_simple = E_{t, eps} || eps - eps_theta(x_t, t) ||^2 (Ho et al. 2020, eq. 14; Algorithm 1)."""
    n = x0.shape[0]
    t = torch.randint(0, s.T, (n,), generator=generator, device=x0.device)
    noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
    x_t = q_sample(s, x0, t, noise)
    eps = eps_model(x_t, t.to(x0.dtype), y) if y is not None else eps_model(x_t, t.to(x0.dtype))
    return (eps - noise).pow(2).mean()


# --- the variational bound ----------------------------------------------------------------------


def gaussian_kl(mean1: torch.Tensor, var1: torch.Tensor, mean2: torch.Tensor, var2: torch.Tensor
                ) -> torch.Tensor:
    """KL(N(mean1, var1) || N(mean2, var2)) elementwise, in nats."""
    return 0.5 * (torch.log(var2 / var1) + (var1 + (mean1 - mean2) ** 2) / var2 - 1.0)


def model_variance(s: Schedule, variance: str) -> torch.Tensor:
    """sigma_t^2 of p(x_{t-1} | x_t): "beta" (upper bound) or "beta_tilde" (lower bound), Ho et al. sec. 3.2.

    At t = 1 beta_tilde is 0, so both use beta_tilde_2 there, as Nichol & Dhariwal's code does.
    """
    if variance == "beta":
        v = s.betas.clone()
    elif variance == "beta_tilde":
        v = s.posterior_variance.clone()
    else:
        raise ValueError(f"unknown variance {variance!r}; expected one of: beta, beta_tilde")
    v[0] = s.posterior_variance[1]
    return v


def learned_variance(s: Schedule, t: torch.Tensor, v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Sigma_theta = exp(frac log beta_t + (1 - frac) log beta_tilde_t), frac = (v + 1) / 2 (Nichol & Dhariwal
    2021, eq. 15): frac = 1 is beta_t, frac = 0 is beta_tilde_t (at t = 1, where beta_tilde is 0, beta_tilde_2, as
    their code clips it). Integer t (N,); v shaped like x; returns a variance shaped like x."""
    log_beta = _at(torch.log(s.betas), t, x)
    log_beta_tilde = _at(torch.log(model_variance(s, "beta_tilde")), t, x)
    frac = (v + 1.0) / 2.0
    return torch.exp(frac * log_beta + (1.0 - frac) * log_beta_tilde)


OBJECTIVE_HYBRID = "L_hybrid = L_simple + 0.001 L_vlb, learned variances (Nichol & Dhariwal 2021 sec. 3.1)"


def loss_hybrid(eps_model: EpsModel, s: Schedule, x0: torch.Tensor, y: torch.Tensor | None = None,
                generator: torch.Generator | None = None, lam: float = 0.001, decoder: str = "gaussian",
                t: torch.Tensor | None = None, noise: torch.Tensor | None = None) -> torch.Tensor:
    """L_hybrid = L_simple + lambda L_vlb (Nichol & Dhariwal 2021, sec. 3.1), lambda = 0.001.

    One t per example: L_vlb = T E_t[L_t] with L_t the bound's term at t in bits per dimension (KL of the true
    posterior to N(mu_theta, Sigma_theta), or the decoder's -log p(x_0 | x_1) at t = 1), where mu_theta uses a
    stopped eps, so L_vlb trains only the variance output v and L_simple alone trains the mean. ``eps_model``
    needs ``eps_and_v`` (a network with learn_sigma). ``decoder``: "gaussian" (2D points) or "discretized"
    (images in [-1, 1]). ``t`` and ``noise``: drawn here from ``generator`` unless given.
    """
    if decoder not in ("gaussian", "discretized"):
        raise ValueError(f"unknown decoder {decoder!r}; expected one of: gaussian, discretized")
    n = x0.shape[0]
    if t is None:
        t = torch.randint(0, s.T, (n,), generator=generator, device=x0.device)
    if noise is None:
        noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
    x_t = q_sample(s, x0, t, noise)
    eps, v = eps_model.eps_and_v(x_t, t.to(x0.dtype), y)
    if v is None:
        raise ValueError("the hybrid loss needs a model that learns its variance (learn_sigma)")
    l_simple = (eps - noise).pow(2).mean()
    l_t = vlb_term(s, x0, x_t, t, eps.detach(), v, decoder)  # the stop-gradient of sec. 3.1
    return l_simple + lam * s.T * l_t.mean()


def loss_vlb(eps_model: EpsModel, s: Schedule, x0: torch.Tensor, y: torch.Tensor | None = None,
             generator: torch.Generator | None = None, sampler: Any = None, decoder: str = "gaussian"
             ) -> torch.Tensor:
    """L_vlb alone (Nichol & Dhariwal 2021, sec. 3.3): E_t[L_t] in bits per dimension, training the mean and the
    variance. With ``sampler`` (core.importance.LossSecondMomentSampler) t is drawn with p_t proportional to
    sqrt(E[L_t^2]) over its recent history and each term is weighted 1 / (T p_t), which keeps the estimate unbiased
    and lowers its variance; the sampler learns from every batch. Without it t is uniform."""
    if decoder not in ("gaussian", "discretized"):
        raise ValueError(f"unknown decoder {decoder!r}; expected one of: gaussian, discretized")
    n = x0.shape[0]
    if sampler is None:
        t, weight = torch.randint(0, s.T, (n,), generator=generator, device=x0.device), torch.ones(n)
    else:
        t, weight = sampler.sample(n, generator)
    noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
    x_t = q_sample(s, x0, t, noise)
    eps, v = eps_model.eps_and_v(x_t, t.to(x0.dtype), y)
    if v is None:
        raise ValueError("the L_vlb objective needs a model that learns its variance (learn_sigma)")
    l_t = vlb_term(s, x0, x_t, t, eps, v, decoder)
    if sampler is not None:
        sampler.update(t, l_t.detach())
    return (weight.to(l_t) * l_t).mean()


def vlb_term(s: Schedule, x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor, eps: torch.Tensor,
             v: torch.Tensor, decoder: str = "gaussian") -> torch.Tensor:
    """L_t of the bound per example, in bits per dimension, for p_theta(x_{t-1} | x_t) = N(mu_theta(eps),
    Sigma_theta(v)): KL(q(x_{t-1} | x_t, x_0) || p_theta) for t > 1, the decoder's -log p(x_0 | x_1) at t = 1."""
    mean = p_mean(s, x_t, t, eps)
    var = learned_variance(s, t, v, x_t)
    true_mean, true_var = q_posterior(s, x0, x_t, t)
    kl = gaussian_kl(true_mean, true_var.clamp(min=1e-20), mean, var)  # clamped: t = 1 takes the decoder below
    if decoder == "gaussian":
        nll = -torch.distributions.Normal(mean, var.sqrt()).log_prob(x0)
    else:
        nll = -discretized_gaussian_log_likelihood(x0, mean, var)
    first = (t == 0).reshape(-1, *([1] * (x0.dim() - 1)))
    return torch.where(first, nll, kl).flatten(1).mean(1) / math.log(2.0)


def p_mean(s: Schedule, x_t: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """mu_theta(x_t, t) = (x_t - beta_t / sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_t) (Ho et al. eq. 11)."""
    beta = _at(s.betas, t, x_t)
    return (x_t - beta / (1.0 - _at(s.alpha_bars, t, x_t)).sqrt() * eps) / (1.0 - beta).sqrt()


def discretized_gaussian_log_likelihood(x0: torch.Tensor, mean: torch.Tensor, var: torch.Tensor,
                                        bins: int = 256) -> torch.Tensor:
    """log p(x_0 | x_1) for data in [-1, 1] quantised to `bins` levels (Ho et al. 2020, eq. 13)."""
    half = 1.0 / (bins - 1)
    std = var.sqrt()
    normal = torch.distributions.Normal(mean, std)
    cdf_plus = torch.where(x0 > 1 - 1e-3, torch.ones_like(x0), normal.cdf(x0 + half))
    cdf_minus = torch.where(x0 < -1 + 1e-3, torch.zeros_like(x0), normal.cdf(x0 - half))
    return torch.log((cdf_plus - cdf_minus).clamp(min=1e-12))


def vlb_terms(eps_model: EpsModel, s: Schedule, x0: torch.Tensor, y: torch.Tensor | None = None,
              variance: str = "beta_tilde", decoder: str = "gaussian",
              generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """Every term of the bound -log p(x_0) <= L_T + sum_{t>1} L_{t-1} + L_0 (Ho et al. 2020, eq. 5).

    Returns per-example terms in nats (summed over dimensions): ``prior`` (N,) is L_T,
    ``kl`` (N, T-1) holds L_{t-1} for paper steps t = 2..T, ``decoder`` (N,) is L_0 = -log p(x_0|x_1).
    Each term uses one draw of x_t ~ q(x_t | x_0), so the sum is an unbiased estimate of the bound.
    ``decoder`` is "gaussian" (continuous data such as 2D points) or "discretized" (images in [-1, 1]).
    ``variance`` "beta" or "beta_tilde" (fixed, Ho et al.), or "learned": the model's own Sigma_theta
    (``learned_variance``; the model needs ``eps_and_v``).
    """
    if decoder not in ("gaussian", "discretized"):
        raise ValueError(f"unknown decoder {decoder!r}; expected one of: gaussian, discretized")
    learned = variance == "learned"
    if learned and not getattr(eps_model, "learn_sigma", False):
        raise ValueError("variance 'learned' needs a model that learns its variance (learn_sigma)")
    dims = tuple(range(1, x0.dim()))
    sigma2 = None if learned else model_variance(s, variance)
    kls = []
    decoder_nll = None
    with torch.no_grad():
        for i in range(s.T):
            t = torch.full((x0.shape[0],), i, device=x0.device, dtype=torch.long)
            noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
            x_t = q_sample(s, x0, t, noise)
            if learned:
                eps, v = eps_model.eps_and_v(x_t, t.to(x0.dtype), y)
                var = learned_variance(s, t, v, x_t)
            else:
                eps = eps_model(x_t, t.to(x0.dtype), y) if y is not None else eps_model(x_t, t.to(x0.dtype))
                var = _at(sigma2, t, x_t).expand_as(x_t)
            mean = p_mean(s, x_t, t, eps)
            if i == 0:
                if decoder == "gaussian":
                    nll = -torch.distributions.Normal(mean, var.sqrt()).log_prob(x0)
                else:
                    nll = -discretized_gaussian_log_likelihood(x0, mean, var)
                decoder_nll = nll.sum(dims)
            else:
                true_mean, true_var = q_posterior(s, x0, x_t, t)
                kls.append(gaussian_kl(true_mean, true_var, mean, var).sum(dims))
        ab_T = s.alpha_bars[-1].item()
        prior = gaussian_kl(math.sqrt(ab_T) * x0, torch.full_like(x0, 1 - ab_T),
                            torch.zeros_like(x0), torch.ones_like(x0)).sum(dims)
    return {"prior": prior, "kl": torch.stack(kls, dim=1), "decoder": decoder_nll}


def elbo_per_dim(eps_model: EpsModel, s: Schedule, x0: torch.Tensor, **kwargs) -> torch.Tensor:
    """The evidence lower bound on log p(x_0), in nats per dimension, per example (N,)."""
    terms = vlb_terms(eps_model, s, x0, **kwargs)
    bound = terms["prior"] + terms["kl"].sum(1) + terms["decoder"]
    return -bound / x0[0].numel()


def bits_per_dim(eps_model: EpsModel, s: Schedule, x0: torch.Tensor, variance: str = "beta_tilde",
                 y: torch.Tensor | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
    """The bound on -log2 p(x_0) per dimension for 8-bit images scaled to [-1, 1], per example (N,): all T terms,
    the discretised decoder (Ho et al. 2020, eq. 13) and the prior, divided by D ln 2 (the unit of Nichol &
    Dhariwal 2021, table 1)."""
    return -elbo_per_dim(eps_model, s, x0, y=y, variance=variance, decoder="discretized",
                         generator=generator) / math.log(2.0)


def v_to_eps(s: Schedule, x_t: torch.Tensor, t: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """eps = sqrt(1 - alpha_bar) x_t + sqrt(alpha_bar) v, for v = sqrt(ab) eps - sqrt(1 - ab) x_0
    (Salimans & Ho 2022, "Progressive distillation", sec. 4)."""
    ab = _alpha_bar(s, t, x_t)
    return (1.0 - ab).sqrt() * x_t + ab.sqrt() * v


class VPredictionDenoiser(torch.nn.Module):
    """Wraps a network that predicts v and exposes it as an eps model, eps_model(x, t, y=None).

    Why: at high noise the x_0 content of eps is scaled by sqrt(alpha_bar_t), so a network that
    outputs eps directly must be extremely precise there; predicting v keeps the target O(1)
    at every t (Salimans & Ho 2022), which lets a small 2D MLP train in seconds.
    """

    def __init__(self, net: torch.nn.Module, schedule: Schedule):
        super().__init__()
        self.net = net
        self.schedule = schedule

    @property
    def null_class(self) -> int | None:
        return getattr(self.net, "null_class", None)

    @property
    def input_shape(self) -> tuple[int, ...] | None:
        return getattr(self.net, "input_shape", None)

    @property
    def learn_sigma(self) -> bool:
        """Whether the network also outputs the variance interpolation v (Nichol & Dhariwal 2021, eq. 15)."""
        return bool(getattr(getattr(self.net, "config", None), "learn_sigma", False))

    def eps_and_v(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(eps, v): the noise prediction and, with ``learn_sigma``, the variance interpolation v of
        ``learned_variance`` (None without it). This v is not the v-prediction target the network's first
        output uses."""
        t = torch.as_tensor(t, device=x.device, dtype=x.dtype)
        if t.dim() == 0:
            t = t.expand(x.shape[0])
        out = self.net(x, t, y)
        pred, v = out.chunk(2, dim=1) if self.learn_sigma else (out, None)
        return v_to_eps(self.schedule, x, t, pred), v

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.eps_and_v(x, t, y)[0]
