"""Samplers: the papers' step functions, one public ``sample_<name>`` per method (``SAMPLERS``), and the
front door ``sample()`` over all of them, on any eps model.

traj = sample(eps_model, schedule, x_T, method="ddim", steps=50, generator=torch.Generator().manual_seed(0))
traj.xs[-1] is the sample; traj.xs / traj.x0_preds hold the path, one entry per step (for the dashboard).

Every method visits ``steps`` timesteps t_0 > t_1 > ... > t_{K-1} (where the network is evaluated) and
makes K transitions; the last one always lands on clean data (t_prev = -1, alpha_bar = 1) by returning the
model's x0 prediction at t_{K-1} (the usual "denoise at the end"; for DDPM/DDIM it is their own update
with alpha_bar_prev = 1, which is exactly that prediction). Time grids:

- ddpm, ddim: integer timesteps with ``spacing`` "leading" (default), "linspace" or "trailing" (Lin et
  al. 2024, Table 2), or "quadratic" (Song et al. 2021, DDIM app. D.2). With the exact score, leading was
  best or tied per step on the linear and cosine schedules among the first three (4 to 100 DDIM steps;
  trailing's last jump from T/K - 1 to clean data blurs sharp modes); quadratic, denser near t = 0, keeps the
  width of a narrow mode better (one eight_gaussians component, DDIM-50: SW 1.2x its floor against
  leading's 1.9x at n = 1,000, benchmarks/guidance_2d.py).
  Fewer DDPM steps than T run the respaced chain (Nichol & Dhariwal 2021, sec. 4): Algorithm 2 with
  alpha_t replaced by alpha_bar_t / alpha_bar_prev.
- euler_maruyama, predictor_corrector, ode_euler, ode_heun: fractional timesteps uniform in t from T-1
  down to 0 (Song et al. 2021 use a uniform grid in their time s = (t + 1) / T). The VP solvers step in
  tau = -log alpha_bar = int beta dt, the VP-SDE's own clock, so the step uses the exact integral of the
  piecewise-constant beta(t) of ``Schedule.beta_at`` (sampling beta at one end of a coarse step makes
  the result jump whenever the grid crosses an integer).
- dpm_solver_2m: uniform in log-SNR lambda = log(alpha / sigma) between t = T-1 and t = 0 (Lu et al.
  2022, sec. 3.3 / their "logSNR" skip type).

VP and VE (option ``sde`` for the four continuous solvers): "vp" (default) integrates the variance-
preserving SDE / probability-flow ODE in the schedule's units (``Schedule.beta_at``); "ve" runs
the *same* eps model as the variance-exploding SDE of x_ve = x / sqrt(alpha_bar) with
sigma = sqrt((1 - alpha_bar) / alpha_bar) (SMLD, Song & Ermon 2019; Song et al. 2021, sec. 3.4), where
x_ve = x_0 + sigma * eps, score_ve = -eps / sigma, and the PF-ODE is dx_ve / dsigma = eps. Its
Euler-Maruyama steps in the variance sigma^2 (the VE-SDE is Brownian motion in that time), its ODE
solvers step in sigma (so ve ode_euler on DDIM's timesteps *is* DDIM, Song et al. 2021 sec. 4.3 /
Karras et al. 2022). States in ``Trajectory.xs`` are always stored in the model's (VP) units,
x = sqrt(alpha_bar) x_ve, so VP and VE paths can be drawn on the same axes.

Classifier-free guidance (Ho & Salimans 2022, ``core.guidance.classifier_free_guidance``): ``y=labels,
guidance_scale=w`` uses eps = eps_uncond + w (eps_cond - eps_uncond). If the model has ``null_class``, the
conditional and unconditional passes run as one batched call of 2N points; otherwise the unconditional pass
calls ``eps_model(x, t)`` without labels. ``nfe`` counts evaluations of the (guided) denoiser, as papers do.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from core.diffusion import EpsFn, EpsModel, eps_to_score, eps_to_x0
from core.guidance import classifier_free_guidance
from core.models.shapes import check_input_shape
from core.schedules import Schedule

SPACINGS = ("linspace", "leading", "trailing", "quadratic")
SDES = ("vp", "ve")
VARIANCES = ("beta", "beta_tilde", "learned")  # "learned": the model's Sigma_theta (Nichol & Dhariwal)

# Defaults measured with the exact (oracle) score on eight_gaussians, linear and cosine T = 1000: at these
# step counts every method (VP and VE) is within 2x of the data-vs-data sliced-Wasserstein floor at 4,000
# and 10,000 points, with the per-mode spread within 10% of the data's (tests/core/test_samplers.py).
# None means "all T steps".
DEFAULT_STEPS: dict[str, int | None] = {
    "ddpm": None,
    "ddim": 50,
    "euler_maruyama": 500,
    "predictor_corrector": 250,
    "ode_euler": 250,
    "ode_heun": 50,
    "dpm_solver_2m": 20,
}
LAMBDA_MIN = -5.1  # lower clip of the half log-SNR grid (Lu et al. 2022, reference implementation)
DEFAULT_SNR = 0.16  # Langevin corrector signal-to-noise ratio r (Song et al. 2021, Algorithm 5; their CIFAR-10 value)


@dataclass
class Trajectory:
    """The result of ``sample()``.

    xs: (K+1, N, ...) states from x_T to x_0 (with keep_trajectory=False only (2, N, ...): x_T and x_0).
    x0_preds: (K, N, ...) the model's x_0 prediction at each visited timestep (keep_trajectory=False: the last).
    timesteps: (K,) float64 timesteps visited (where the network was evaluated), decreasing towards 0.
    nfe: evaluations of the denoiser (guided pairs count once).
    """

    xs: torch.Tensor
    x0_preds: torch.Tensor
    timesteps: torch.Tensor
    nfe: int
    method: str = ""

    @property
    def x0(self) -> torch.Tensor:
        """The final sample (N, ...)."""
        return self.xs[-1]

    def frame_indices(self, max_frames: int) -> np.ndarray:
        """At most ``max_frames`` indices into the K+1 states, evenly spread, first (x_T) and last (x_0) included:
        the frames of an animation."""
        k = len(self.timesteps)
        return np.unique(np.round(np.linspace(0, k, min(k, max_frames - 1) + 1)).astype(int))

    def state_timesteps(self) -> np.ndarray:
        """The paper's timestep of each state (K+1,): index t = 0..T-1 is step t + 1, and the sample is step 0."""
        return np.concatenate([self.timesteps.numpy() + 1.0, [0.0]])

    def state_alpha_bars(self, schedule: Schedule) -> np.ndarray:
        """alpha_bar of each state (K+1,): at each visited timestep, then 1 for the sample."""
        return np.concatenate([schedule.alpha_bar_at(self.timesteps).numpy(), [1.0]])


# --- the step functions, as the papers write them ----------------------------------------------------


def _alpha_bar(s: Schedule, t: int | float | torch.Tensor, x: torch.Tensor) -> float | torch.Tensor:
    """alpha_bar at t as a Python float (scalar t) or a tensor broadcasting against x (per-point t)."""
    if isinstance(t, torch.Tensor) and t.dim() > 0:
        ab = s.alpha_bar_at(t.detach().cpu().double())
        return ab.to(device=x.device, dtype=x.dtype).reshape(-1, *([1] * (x.dim() - 1)))
    return float(s.alpha_bar_at(float(t)))


def _sqrt(v: float | torch.Tensor) -> float | torch.Tensor:
    """sqrt that clamps rounding-level negatives to 0 (1 - a - b can be -1e-17 when it should be 0)."""
    if isinstance(v, torch.Tensor):
        return v.clamp(min=0.0).sqrt()
    return math.sqrt(max(v, 0.0))


def _noise_mask(t_prev: int | float | torch.Tensor, x: torch.Tensor) -> float | torch.Tensor:
    """1 where noise is added, 0 on the final step into clean data (Algorithm 2: z = 0 if t = 1)."""
    if isinstance(t_prev, torch.Tensor) and t_prev.dim() > 0:
        return (t_prev >= 0).to(device=x.device, dtype=x.dtype).reshape(-1, *([1] * (x.dim() - 1)))
    return 1.0 if float(t_prev) >= 0 else 0.0


def ddpm_step(s: Schedule, x_t: torch.Tensor, eps: torch.Tensor, t: int | torch.Tensor,
              noise: torch.Tensor | None, variance: str = "beta_tilde",
              t_prev: int | torch.Tensor | None = None, v: torch.Tensor | None = None) -> torch.Tensor:
    """One ancestral step x_t -> x_{t_prev} (Ho et al. 2020, Algorithm 2, line 4):

    x_{t-1} = 1 / sqrt(alpha_t) (x_t - beta_t / sqrt(1 - alpha_bar_t) eps) + sigma_t z,
    sigma_t^2 = beta_t ("beta"), beta_tilde_t = (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) beta_t ("beta_tilde"),
    or "learned": exp(frac log beta_t + (1 - frac) log beta_tilde_t), frac = (v + 1) / 2, with the model's v
    (Nichol & Dhariwal 2021, eq. 15).

    t_prev defaults to t - 1; a coarser t_prev uses the respaced chain's alpha_t = alpha_bar_t / alpha_bar_prev
    and its beta_t and beta_tilde_t (Nichol & Dhariwal 2021, sec. 4). z = 0 on the step into t_prev = -1 (paper
    step 1). t, t_prev: ints or (N,).
    """
    if variance not in VARIANCES:
        raise ValueError(f"unknown variance {variance!r}; expected one of: {', '.join(VARIANCES)}")
    if variance == "learned" and v is None:
        raise ValueError("ddpm_step with variance 'learned' needs the model's v")
    if t_prev is None:
        t_prev = t - 1
    ab_t, ab_prev = _alpha_bar(s, t, x_t), _alpha_bar(s, t_prev, x_t)
    alpha_t = ab_t / ab_prev
    beta_t = 1.0 - alpha_t
    mean = (x_t - beta_t / _sqrt(1.0 - ab_t) * eps) / _sqrt(alpha_t)
    beta_tilde = (1.0 - ab_prev) / (1.0 - ab_t) * beta_t
    if variance == "beta":
        var = beta_t
    elif variance == "beta_tilde":
        var = beta_tilde
    else:  # on the step into clean data beta_tilde is 0 and no noise is added: any finite log will do
        log_beta_tilde = torch.log(torch.as_tensor(beta_tilde, dtype=x_t.dtype, device=x_t.device).clamp(min=1e-20))
        log_beta = torch.log(torch.as_tensor(beta_t, dtype=x_t.dtype, device=x_t.device))
        frac = (v + 1.0) / 2.0
        var = torch.exp(frac * log_beta + (1.0 - frac) * log_beta_tilde)
    mask = _noise_mask(t_prev, x_t)
    sigma = _sqrt(var) * mask
    if noise is None:
        if isinstance(mask, float) and mask == 0.0:
            return mean
        raise ValueError("ddpm_step needs noise (a standard normal tensor like x_t) unless t_prev = -1")
    return mean + sigma * noise


def ddim_sigma(ab_t: float | torch.Tensor, ab_prev: float | torch.Tensor, eta: float) -> float | torch.Tensor:
    """sigma_t(eta) = eta sqrt((1 - alpha_bar_prev) / (1 - alpha_bar_t)) sqrt(1 - alpha_bar_t / alpha_bar_prev)
    (Song et al. 2021, eq. 16); eta = 1 is DDPM's beta_tilde, eta = 0 the deterministic DDIM."""
    return eta * _sqrt((1.0 - ab_prev) / (1.0 - ab_t) * (1.0 - ab_t / ab_prev))


def ddim_step(s: Schedule, x_t: torch.Tensor, eps: torch.Tensor, t: int | float | torch.Tensor,
              t_prev: int | float | torch.Tensor, eta: float = 0.0,
              noise: torch.Tensor | None = None) -> torch.Tensor:
    """One generalised step x_t -> x_{t_prev} (Song et al. 2021, "Denoising Diffusion Implicit Models", eq. 12):

    x_prev = sqrt(alpha_bar_prev) x0_pred + sqrt(1 - alpha_bar_prev - sigma^2) eps + sigma z,
    x0_pred = (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t), sigma from ``ddim_sigma``.

    t_prev = -1 means alpha_bar_prev = 1 (the step lands on x0_pred). t, t_prev: numbers or (N,) tensors.
    """
    if not 0.0 <= eta <= 1.0:
        raise ValueError(f"eta must lie in [0, 1]; got {eta!r}")
    ab_t, ab_prev = _alpha_bar(s, t, x_t), _alpha_bar(s, t_prev, x_t)
    x0_pred = eps_to_x0(s, x_t, _as_t(t, x_t), eps)
    sigma = ddim_sigma(ab_t, ab_prev, eta)
    # eq. (12): "predicted x0" + "direction pointing to x_t" + random noise
    x_prev = _sqrt(ab_prev) * x0_pred + _sqrt(1.0 - ab_prev - sigma ** 2) * eps
    if isinstance(sigma, float) and sigma == 0.0:
        return x_prev
    if noise is None:
        raise ValueError("ddim_step needs noise (a standard normal tensor like x_t) when eta > 0")
    return x_prev + sigma * noise


def _as_t(t: int | float | torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A timestep argument as core.diffusion's conversions take it: a per-point (N,) tensor stays as it is; one
    number becomes a one-element float64 tensor, so alpha_bar broadcasts over the batch (O(1) schedule work
    instead of a gather over N points)."""
    if isinstance(t, torch.Tensor) and t.dim() > 0:
        return t.to(x.dtype) if x.dtype.is_floating_point else t.float()
    return torch.tensor([float(t)], dtype=torch.float64)


# --- time grids ---------------------------------------------------------------------------------------


def discrete_timesteps(T: int, steps: int, spacing: str = "leading", t_start: int | None = None) -> list[int]:
    """Integer timesteps (decreasing) for DDPM/DDIM with ``steps`` <= T (Lin et al. 2024, Table 2, 0-based):

    - "linspace": round(linspace(T-1, 0, steps)): both the noisiest and the cleanest step;
    - "leading":  arange(steps) * (T // steps): ends at 0 but starts below T-1 (e.g. 980 for 50 of 1000);
    - "trailing": round(T - arange(steps) * T / steps) - 1: starts at T-1, ends at T/steps - 1;
    - "quadratic": round((i / (steps-1))^2 (T-1)), each at least one above the last: denser near t = 0 (Song et
      al. 2021, DDIM, app. D.2: tau_i = floor(c i^2)), where narrow modes need small steps.

    ``t_start`` < T - 1: the same grid over the first t_start + 1 timesteps (a run that starts from x_{t_start},
    as SDEdit does; "linspace" and "trailing" then begin exactly at t_start).
    """
    if t_start is not None:
        T = _check_start(t_start, T) + 1
    _check_steps(steps, T)
    if spacing == "linspace":
        ts = np.round(np.linspace(T - 1, 0, steps))
    elif spacing == "leading":
        ts = (np.arange(steps) * (T // steps))[::-1]
    elif spacing == "trailing":
        ts = np.round(T - np.arange(steps) * (T / steps)) - 1
    elif spacing == "quadratic":
        ts = np.round(np.linspace(0.0, 1.0, steps) ** 2 * (T - 1)) if steps > 1 else np.array([T - 1.0])
        for i in range(1, steps):  # distinct: near 0 the squares are closer than one timestep
            ts[i] = max(ts[i], ts[i - 1] + 1)
        ts = ts[::-1]
    else:
        raise ValueError(f"unknown spacing {spacing!r}; expected one of: {', '.join(SPACINGS)}")
    return [int(v) for v in ts]


def continuous_timesteps(s: Schedule, steps: int, grid: str = "uniform", t_start: float | None = None
                         ) -> list[float]:
    """Fractional timesteps from the start t_max down to 0: "uniform" in t, or "logsnr" (uniform in lambda,
    Lu et al. 2022). ``t_start``: start there instead (below the clip, a run from x_{t_start}).

    Both grids start where the half log-SNR lambda reaches LAMBDA_MIN (-5.1, the clip of Lu et al.'s
    reference code, NoiseScheduleVP), or at T-1 if the schedule never gets that noisy. The cosine schedule's
    last steps (alpha_bar_T ~ 1e-9) are pure noise where the SDE's beta(t) explodes: an Euler step across
    them diverges, and a log-SNR grid would spend a third of its steps there. x_T ~ N(0, I) is taken as
    the state at the clipped start, off by sqrt(alpha_bar) ~ 6e-3 of signal.
    """
    top = float(s.T - 1 if t_start is None else _check_start(t_start, s.T))
    _check_steps(steps, int(top) + 1)
    clipped = _lambda(s, top) < LAMBDA_MIN
    t_max = timestep_at_log_alpha_bar(s, -math.log1p(math.exp(-2.0 * LAMBDA_MIN))) if clipped else top
    if grid == "uniform":
        return [float(v) for v in np.linspace(t_max, 0, steps)]
    if grid == "logsnr":
        lam_hi, lam_lo = _lambda(s, 0.0), max(_lambda(s, top), LAMBDA_MIN)
        lams = np.linspace(lam_lo, lam_hi, steps)
        ts = [timestep_at_log_alpha_bar(s, -math.log1p(math.exp(-2.0 * lam))) for lam in lams]
        if lam_lo != LAMBDA_MIN:
            ts[0] = top  # exact ends, free of round-off
        if steps > 1:
            ts[-1] = 0.0
        return ts
    raise ValueError(f"unknown grid {grid!r}; expected one of: uniform, logsnr")


def _lambda(s: Schedule, t: float) -> float:
    """Half log-SNR lambda_t = log(alpha_t / sigma_t), alpha_t = sqrt(alpha_bar_t) (Lu et al. 2022)."""
    la = float(s.log_alpha_bar_at(t))
    return 0.5 * (la - math.log(-math.expm1(la)))


def timestep_at_log_alpha_bar(s: Schedule, log_alpha_bar: float) -> float:
    """The fractional t in [-1, T-1] with s.log_alpha_bar_at(t) = log_alpha_bar (exact inverse: log alpha_bar
    is piecewise linear in t between integers)."""
    grid = np.concatenate([[0.0], s.alpha_bars.log().numpy()])  # t = -1, 0, ..., T-1; decreasing
    if not grid[-1] <= log_alpha_bar <= 0.0:
        raise ValueError(f"log alpha_bar {log_alpha_bar:g} is outside the schedule's range [{grid[-1]:g}, 0]")
    u = int(np.searchsorted(-grid, -log_alpha_bar, side="left"))  # first grid index with grid[u] <= target
    if u == 0:
        return -1.0
    lo, hi = grid[u - 1], grid[u]
    frac = (lo - log_alpha_bar) / (lo - hi)
    return float(u - 2 + frac)  # grid index u is timestep u - 1


def _check_steps(steps: Any, T: int) -> None:
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or not 1 <= steps <= T:
        raise ValueError(f"steps must be an integer in [1, T={T}]; got {steps!r}")


def _check_start(t_start: Any, T: int) -> int:
    if isinstance(t_start, bool) or not isinstance(t_start, (int, np.integer)) or not 0 <= t_start <= T - 1:
        raise ValueError(f"t_start must be an integer timestep in [0, T-1={T - 1}]; got {t_start!r}")
    return int(t_start)


# --- what every sampler reports to -----------------------------------------------------------------------


def randn_like(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Standard normal noise like x, drawn from ``generator`` (on the generator's device, then moved)."""
    if generator is None:
        return torch.randn_like(x)
    if generator.device == x.device or (generator.device.type == x.device.type == "cpu"):
        return torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return torch.randn(x.shape, generator=generator, device=generator.device, dtype=x.dtype).to(x.device)


class VarianceTap:
    """An eps model that keeps the variance output v of its first call since ``v`` was reset: the learned
    variance (Nichol & Dhariwal 2021) rides along with the eps that guidance mixes, at no extra evaluation. Under
    classifier-free guidance the first call (or the first N rows of the batched one) is the conditional pass."""

    def __init__(self, model: EpsModel):
        self.model = model
        self.null_class = getattr(model, "null_class", None)
        self.v: torch.Tensor | None = None

    def __call__(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        eps, v = self.model.eps_and_v(x, t, y)
        if self.v is None:
            self.v = v
        return eps


class Recorder:
    """The network and the record of one sampling run: every sampler calls ``predict`` for eps and the x_0
    prediction (counting network evaluations) and ``record`` after each transition (keeping the path, calling
    the per-step callback). ``start(timesteps)`` opens the record once the sampler has chosen its time grid."""

    def __init__(self, eps_fn: EpsFn, x_T: torch.Tensor, keep: bool, callback: Callable[[dict], Any] | None,
                 method: str, tap: VarianceTap | None = None, t_start: int | None = None):
        self.eps_fn, self.x_T, self.keep, self.callback, self.method = eps_fn, x_T, keep, callback, method
        self.tap = tap
        self.t_start = t_start  # the timestep of x_T when the run starts below T - 1 (None: at the top)
        self.timesteps: list[float] = []
        self.nfe = 0
        self.last_x0: torch.Tensor | None = None

    def variance_v(self, x: torch.Tensor) -> torch.Tensor:
        """The learned variance's v from the last ``predict`` (of its conditional pass, under guidance)."""
        if self.tap is None or self.tap.v is None:
            raise ValueError("variance 'learned' needs a model that learns its variance (learn_sigma)")
        return self.tap.v[: x.shape[0]]

    def start(self, timesteps: list[float]) -> list[float]:
        """Preallocate the path for these timesteps (one copy per step) and return them."""
        self.timesteps = list(timesteps)
        if self.keep:
            k = len(self.timesteps)
            self.xs = self.x_T.new_empty((k + 1, *self.x_T.shape))
            self.x0_preds = self.x_T.new_empty((k, *self.x_T.shape))
            self.xs[0] = self.x_T
        return self.timesteps

    def predict(self, s: Schedule, x: torch.Tensor, t: float) -> tuple[torch.Tensor, torch.Tensor]:
        """(eps, x0_pred) of the (guided) network at (x, t), all points at the same t; one NFE."""
        if self.tap is not None:
            self.tap.v = None
        eps = self.eps_fn(x, torch.full((x.shape[0],), t, dtype=x.dtype, device=x.device))
        self.nfe += 1
        return eps, eps_to_x0(s, x, _as_t(t, x), eps)

    def record(self, i: int, x: torch.Tensor, x_next: torch.Tensor, x0_pred: torch.Tensor,
               eps: torch.Tensor) -> None:
        if self.keep:
            self.xs[i + 1] = x_next
            self.x0_preds[i] = x0_pred
        self.last_x0 = x0_pred
        if self.callback is not None:
            ts = self.timesteps
            self.callback({
                "i": i, "t": ts[i], "t_next": ts[i + 1] if i + 1 < len(ts) else -1.0,
                "x": x, "x_next": x_next, "x0_pred": x0_pred, "eps": eps,
                "nfe": self.nfe, "steps": len(ts), "method": self.method,
            })

    def result(self, x_final: torch.Tensor) -> Trajectory:
        ts = torch.tensor(self.timesteps, dtype=torch.float64)
        if self.keep:
            return Trajectory(self.xs, self.x0_preds, ts, self.nfe, self.method)
        return Trajectory(torch.stack([self.x_T, x_final]), self.last_x0.unsqueeze(0), ts, self.nfe, self.method)


# --- the samplers: one signature, sample_<name>(eps_fn, schedule, x_T, steps, rec, generator, **options) ---------
#
# Each runs ``steps`` network evaluations' worth of its own time grid from x_T to clean data, calling
# rec.predict for the network and rec.record after every transition, and returns the final state.


def sample_ddpm(eps_fn: EpsFn, s: Schedule, x: torch.Tensor, steps: int, rec: Recorder,
                generator: torch.Generator | None = None, *, variance: str = "beta_tilde",
                spacing: str = "leading") -> torch.Tensor:
    """Ancestral sampling (Ho et al. 2020, Algorithm 2), on the respaced chain when steps < T (Nichol & Dhariwal
    2021, sec. 4): x_{t_prev} = ddpm_step(x_t, eps_theta(x_t, t)), with no noise on the final step."""
    ts = rec.start(discrete_timesteps(s.T, steps, spacing, rec.t_start))
    for i, (t, t_prev) in enumerate(zip(ts, [*ts[1:], -1], strict=True)):
        eps, x0_pred = rec.predict(s, x, t)
        noise = randn_like(x, generator) if t_prev >= 0 else None
        v = rec.variance_v(x) if variance == "learned" else None
        x_next = ddpm_step(s, x, eps, t, noise, variance, t_prev, v)
        rec.record(i, x, x_next, x0_pred, eps)
        x = x_next
    return x


def sample_ddim(eps_fn: EpsFn, s: Schedule, x: torch.Tensor, steps: int, rec: Recorder,
                generator: torch.Generator | None = None, *, eta: float = 0.0,
                spacing: str = "leading") -> torch.Tensor:
    """DDIM (Song et al. 2021, eq. 12) over ``steps`` of the T timesteps: x_{t_prev} = ddim_step(x_t, eps_theta,
    eta); eta = 0 is deterministic. The last step (t_prev = -1) lands on the x_0 prediction."""
    ts = rec.start(discrete_timesteps(s.T, steps, spacing, rec.t_start))
    for i, (t, t_prev) in enumerate(zip(ts, [*ts[1:], -1], strict=True)):
        eps, x0_pred = rec.predict(s, x, t)
        sigma = ddim_sigma(float(s.alpha_bar_at(t)), float(s.alpha_bar_at(t_prev)), eta)  # 0 at t_prev = -1
        noise = randn_like(x, generator) if sigma > 0 else None
        x_next = ddim_step(s, x, eps, t, t_prev, eta, noise)
        rec.record(i, x, x_next, x0_pred, eps)
        x = x_next
    return x


@dataclass(frozen=True)
class NoiseLevel:
    """One timestep t of the continuous solvers in both views (Python floats: all points share t).

    VP: alpha_bar, beta(t) (Schedule.beta_at) and the VP-SDE's own clock tau = int beta dt = -log alpha_bar.
    VE: the SMLD noise level sigma = sqrt((1 - alpha_bar) / alpha_bar) of x_ve = x / sqrt(alpha_bar).
    """

    t: float
    alpha_bar: float
    beta: float
    tau: float
    sqrt_alpha_bar: float
    sigma_ve: float

    @classmethod
    def at(cls, s: Schedule, t: float) -> NoiseLevel:
        ab = float(s.alpha_bar_at(t))
        return cls(t, ab, float(s.beta_at(t)), -float(s.log_alpha_bar_at(t)), math.sqrt(ab),
                   math.sqrt((1.0 - ab) / ab))


def reverse_sde_step_vp(s: Schedule, x: torch.Tensor, eps: torch.Tensor, now: NoiseLevel, nxt: NoiseLevel,
                        z: torch.Tensor) -> torch.Tensor:
    """Reverse VP-SDE dx = [-beta/2 x - beta score] dt + sqrt(beta) dw (Song et al. 2021, eqs. 6, 11), one
    Euler-Maruyama step in tau, where beta dt = d tau (exact for the piecewise-constant beta(t))."""
    d_tau = now.tau - nxt.tau  # > 0: integrating backwards in time
    score = eps_to_score(s, x, _as_t(now.t, x), eps)
    return x + d_tau * (0.5 * x + score) + math.sqrt(d_tau) * z


def reverse_sde_step_ve(s: Schedule, x: torch.Tensor, eps: torch.Tensor, now: NoiseLevel, nxt: NoiseLevel,
                        z: torch.Tensor) -> torch.Tensor:
    """Reverse VE-SDE dx_ve = -d[sigma^2] score_ve + sqrt(d[sigma^2]) dw (Song et al. 2021, eq. 9), one
    Euler-Maruyama step in the variance sigma^2, with score_ve = -eps / sigma; x in the model's (VP) units."""
    d_var = now.sigma_ve ** 2 - nxt.sigma_ve ** 2
    x_ve = x / now.sqrt_alpha_bar + (d_var / now.sigma_ve) * (-eps) + math.sqrt(d_var) * z
    return x_ve * nxt.sqrt_alpha_bar


def langevin_corrector(rec: Recorder, s: Schedule, x: torch.Tensor, level: NoiseLevel,
                       generator: torch.Generator | None, snr: float, n: int, sde: str) -> torch.Tensor:
    """Langevin corrector (Song et al. 2021, Algorithm 5 (VP) / 4 (VE)): x += e g + sqrt(2 e) z with
    e = 2 alpha (r ||z|| / ||g||)^2; the norms are per-example norms averaged over the batch, as in
    their code (so the step size is shared by the batch). Runs in VE coordinates for sde="ve"."""
    alpha = math.exp(-level.beta) if sde == "vp" else 1.0  # 1 - beta_t at integer t
    for _ in range(n):
        eps, _ = rec.predict(s, x, level.t)
        score = eps_to_score(s, x, _as_t(level.t, x), eps)
        if sde == "ve":
            score = score * level.sqrt_alpha_bar  # d/dx_ve = sqrt(alpha_bar) d/dx: score_ve = -eps / sigma
        z = randn_like(x, generator)
        g_norm = score.flatten(1).norm(dim=1).mean()
        z_norm = z.flatten(1).norm(dim=1).mean()
        step = 2.0 * alpha * (snr * z_norm / g_norm.clamp(min=1e-12)) ** 2
        if sde == "vp":
            x = x + step * score + (2.0 * step).sqrt() * z
        else:
            x_ve = x / level.sqrt_alpha_bar + step * score + (2.0 * step).sqrt() * z
            x = x_ve * level.sqrt_alpha_bar
    return x


REVERSE_SDE_STEPS = {"vp": reverse_sde_step_vp, "ve": reverse_sde_step_ve}


def sample_predictor_corrector(eps_fn: EpsFn, s: Schedule, x: torch.Tensor, steps: int, rec: Recorder,
                               generator: torch.Generator | None = None, *, sde: str = "vp",
                               snr: float = DEFAULT_SNR, corrector_steps: int = 1) -> torch.Tensor:
    """Predictor-corrector sampling (Song et al. 2021, Algorithms 2 / 3) on a uniform t grid: at every level,
    ``corrector_steps`` Langevin corrections, then one reverse-SDE Euler-Maruyama step (the predictor); the last
    level lands on the x_0 prediction at t = 0."""
    predictor = REVERSE_SDE_STEPS[sde]
    levels = [NoiseLevel.at(s, t) for t in rec.start(continuous_timesteps(s, steps, "uniform", rec.t_start))]
    for i, now in enumerate(levels):
        x_in = x
        if corrector_steps > 0:
            x = langevin_corrector(rec, s, x, now, generator, snr, corrector_steps, sde)
        eps, x0_pred = rec.predict(s, x, now.t)
        x_next = x0_pred if i == len(levels) - 1 else predictor(s, x, eps, now, levels[i + 1], randn_like(x, generator))
        rec.record(i, x_in, x_next, x0_pred, eps)
        x = x_next
    return x


def sample_euler_maruyama(eps_fn: EpsFn, s: Schedule, x: torch.Tensor, steps: int, rec: Recorder,
                          generator: torch.Generator | None = None, *, sde: str = "vp") -> torch.Tensor:
    """The reverse SDE by Euler-Maruyama (Song et al. 2021, eq. 6; "reverse diffusion" predictor) on a uniform
    t grid: the predictor-corrector sampler with no corrector step."""
    return sample_predictor_corrector(eps_fn, s, x, steps, rec, generator, sde=sde, corrector_steps=0)


def pf_ode_velocity_vp(s: Schedule, x: torch.Tensor, eps: torch.Tensor, t: float) -> torch.Tensor:
    """The VP probability-flow ODE dx/dt = -beta(t)/2 (x + score) (Song et al. 2021, eq. 13) in tau:
    dx / d(-tau) = (x + score) / 2."""
    return 0.5 * (x + eps_to_score(s, x, _as_t(t, x), eps))


def pf_ode_step_vp(rec: Recorder, s: Schedule, x: torch.Tensor, eps: torch.Tensor, now: NoiseLevel,
                   nxt: NoiseLevel, heun: bool) -> torch.Tensor:
    """One Euler (or Heun, Karras et al. 2022, Algorithm 1) step of the VP PF-ODE in tau."""
    d_tau = now.tau - nxt.tau
    d1 = pf_ode_velocity_vp(s, x, eps, now.t)
    x_next = x + d_tau * d1
    if heun:  # 2nd order: average the slope at both ends
        eps2, _ = rec.predict(s, x_next, nxt.t)
        x_next = x + d_tau * 0.5 * (d1 + pf_ode_velocity_vp(s, x_next, eps2, nxt.t))
    return x_next


def pf_ode_step_ve(rec: Recorder, s: Schedule, x: torch.Tensor, eps: torch.Tensor, now: NoiseLevel,
                   nxt: NoiseLevel, heun: bool) -> torch.Tensor:
    """One Euler (or Heun) step of the VE PF-ODE dx_ve / dsigma = eps in sigma (Euler is DDIM, eta = 0:
    Song et al. 2021, sec. 4.3); x in the model's (VP) units."""
    d_sigma = nxt.sigma_ve - now.sigma_ve  # < 0
    x_ve = x / now.sqrt_alpha_bar
    x_ve_next = x_ve + d_sigma * eps
    if heun:
        eps2, _ = rec.predict(s, x_ve_next * nxt.sqrt_alpha_bar, nxt.t)
        x_ve_next = x_ve + d_sigma * 0.5 * (eps + eps2)
    return x_ve_next * nxt.sqrt_alpha_bar


PF_ODE_STEPS = {"vp": pf_ode_step_vp, "ve": pf_ode_step_ve}


def _pf_ode(eps_fn: EpsFn, s: Schedule, x: torch.Tensor, steps: int, rec: Recorder, sde: str,
            heun: bool) -> torch.Tensor:
    """The probability-flow ODE on a uniform t grid down to t = 0, where the last step lands on x0_pred."""
    step = PF_ODE_STEPS[sde]
    levels = [NoiseLevel.at(s, t) for t in rec.start(continuous_timesteps(s, steps, "uniform", rec.t_start))]
    for i, now in enumerate(levels):
        eps, x0_pred = rec.predict(s, x, now.t)
        x_next = x0_pred if i == len(levels) - 1 else step(rec, s, x, eps, now, levels[i + 1], heun)
        rec.record(i, x, x_next, x0_pred, eps)
        x = x_next
    return x


def sample_ode_euler(eps_fn: EpsFn, s: Schedule, x: torch.Tensor, steps: int, rec: Recorder,
                     generator: torch.Generator | None = None, *, sde: str = "vp") -> torch.Tensor:
    """The probability-flow ODE (Song et al. 2021, eq. 13) by Euler's method; deterministic."""
    return _pf_ode(eps_fn, s, x, steps, rec, sde, heun=False)


def sample_ode_heun(eps_fn: EpsFn, s: Schedule, x: torch.Tensor, steps: int, rec: Recorder,
                    generator: torch.Generator | None = None, *, sde: str = "vp") -> torch.Tensor:
    """The probability-flow ODE by Heun's 2nd-order method (Karras et al. 2022, Algorithm 1): 2K - 1 NFE."""
    return _pf_ode(eps_fn, s, x, steps, rec, sde, heun=True)


def sample_dpm_solver_2m(eps_fn: EpsFn, s: Schedule, x: torch.Tensor, steps: int, rec: Recorder,
                         generator: torch.Generator | None = None) -> torch.Tensor:
    """DPM-Solver++(2M) with data prediction (Lu et al. 2022, "DPM-Solver++", Algorithm 2), log-SNR grid.

    The first step is first order (it has no history) and so is the last: the step into alpha_bar = 1
    (lambda = +inf) reduces to x0_pred, the usual lower-order final step.
    """
    ts = rec.start(continuous_timesteps(s, steps, "logsnr", rec.t_start))
    ab = [float(s.alpha_bar_at(t)) for t in ts]
    alpha = [math.sqrt(a) for a in ab]
    sigma = [math.sqrt(1.0 - a) for a in ab]
    lam = [math.log(a_) - math.log(s_) for a_, s_ in zip(alpha, sigma, strict=True)]
    x0_prev = None
    for i, t in enumerate(ts):
        eps, x0_pred = rec.predict(s, x, t)
        if i == len(ts) - 1:
            rec.record(i, x, x0_pred, x0_pred, eps)
            return x0_pred
        h = lam[i + 1] - lam[i]
        if x0_prev is None:
            d = x0_pred  # first order: DDIM in the data-prediction form
        else:
            r = (lam[i] - lam[i - 1]) / h
            d = (1.0 + 0.5 / r) * x0_pred - (0.5 / r) * x0_prev
        x_next = (sigma[i + 1] / sigma[i]) * x - (alpha[i + 1] * math.expm1(-h)) * d
        rec.record(i, x, x_next, x0_pred, eps)
        x0_prev, x = x0_pred, x_next
    return x


SamplerFn = Callable[..., torch.Tensor]  # sample_<name>(eps_fn, schedule, x_T, steps, rec, generator, **options)

# name -> sampler. Adding one: write sample_<name> with the signature above, list it here and in DEFAULT_STEPS.
SAMPLERS: dict[str, SamplerFn] = {
    "ddpm": sample_ddpm,
    "ddim": sample_ddim,
    "euler_maruyama": sample_euler_maruyama,
    "predictor_corrector": sample_predictor_corrector,
    "ode_euler": sample_ode_euler,
    "ode_heun": sample_ode_heun,
    "dpm_solver_2m": sample_dpm_solver_2m,
}
METHODS = tuple(SAMPLERS)


# --- the front door ---------------------------------------------------------------------------------------------


def _option_defaults(method: str) -> dict[str, Any]:
    """The keyword-only options of SAMPLERS[method] with their defaults (its signature is the documentation)."""
    params = inspect.signature(SAMPLERS[method]).parameters.values()
    return {p.name: p.default for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY}


_COMMON_OPTIONS = {"y", "guidance_scale", "keep_trajectory", "t_start"}
_METHOD_OPTIONS: dict[str, dict[str, Any]] = {m: _option_defaults(m) for m in SAMPLERS}


def _check_options(method: str, options: dict[str, Any]) -> dict[str, Any]:
    allowed = _METHOD_OPTIONS[method]
    unknown = set(options) - set(allowed)
    if unknown:
        valid = sorted(set(allowed) | _COMMON_OPTIONS)
        raise ValueError(f"unexpected options for {method!r}: {sorted(unknown)}; expected some of: {valid}")
    opts = {**allowed, **options}
    if "spacing" in opts and opts["spacing"] not in SPACINGS:
        raise ValueError(f"unknown spacing {opts['spacing']!r}; expected one of: {', '.join(SPACINGS)}")
    if "variance" in opts and opts["variance"] not in VARIANCES:
        raise ValueError(f"unknown variance {opts['variance']!r}; expected one of: {', '.join(VARIANCES)}")
    if "sde" in opts and opts["sde"] not in SDES:
        raise ValueError(f"unknown sde {opts['sde']!r}; expected one of: {', '.join(SDES)}")
    if "eta" in opts:
        opts["eta"] = float(opts["eta"])
        if not 0.0 <= opts["eta"] <= 1.0:
            raise ValueError(f"eta must lie in [0, 1]; got {opts['eta']!r}")
    if "snr" in opts:
        opts["snr"] = float(opts["snr"])
        if not (math.isfinite(opts["snr"]) and opts["snr"] >= 0):
            raise ValueError(f"snr must be a number >= 0; got {opts['snr']!r}")
    if "corrector_steps" in opts:
        c = opts["corrector_steps"]
        if isinstance(c, bool) or not isinstance(c, int) or c < 0:
            raise ValueError(f"corrector_steps must be an integer >= 0; got {c!r}")
    return opts


def steps_for_nfe(method: str, nfe: int, T: int, corrector_steps: int = 1) -> int | None:
    """Steps K whose cost is at most ``nfe`` network evaluations, or None when the pair makes no sense.

    ode_heun costs 2K - 1 (no correction on the final step into clean data), predictor_corrector
    K (1 + corrector_steps), every other method K. None: K > T, Heun with K < 2, PC with K < 2.
    """
    if method not in SAMPLERS:
        raise ValueError(f"unknown method {method!r}; expected one of: {', '.join(METHODS)}")
    if method == "ode_heun":
        k, k_min = (nfe + 1) // 2, 2
    elif method == "predictor_corrector":
        k, k_min = nfe // (1 + corrector_steps), 2
    else:
        k, k_min = nfe, 1
    return k if k_min <= k <= T else None


def sample(eps_model: EpsModel, schedule: Schedule, x_T: torch.Tensor, method: str = "ddim",
           steps: int | None = None, generator: torch.Generator | None = None,
           callback: Callable[[dict], Any] | None = None, *, y: torch.Tensor | int | None = None,
           guidance_scale: float = 1.0, keep_trajectory: bool = True, t_start: int | None = None,
           **options: Any) -> Trajectory:
    """Run ``method`` from x_T (N, ...) down to clean data and return the ``Trajectory``.

    method: one of METHODS (SAMPLERS[method] does the work). steps: visited timesteps (default
    ``DEFAULT_STEPS[method]``, at most T). Options per method (defaults first): ddpm ``variance``
    ("beta_tilde" | "beta" | "learned", the model's own, Nichol & Dhariwal 2021), ``spacing`` ("leading" |
    "linspace" | "trailing"); ddim ``eta`` (0.0, in [0, 1]),
    ``spacing``; euler_maruyama / ode_euler / ode_heun ``sde`` ("vp" | "ve"); predictor_corrector ``sde``,
    ``snr`` (0.16, the Langevin signal-to-noise r), ``corrector_steps`` (1); dpm_solver_2m none. For every
    method: ``y`` labels (N,) or one int, ``guidance_scale`` w (1.0, classifier-free guidance), ``keep_trajectory``
    (True; False keeps only x_T and x_0, for image batches: the full path costs 2 K copies of x_T), ``t_start``
    (None: x_T is pure noise at t = T - 1; an integer timestep: x_T is the state x_{t_start}, and every method
    runs its own grid from there down, with ``steps`` <= t_start + 1: SDEdit, core.editing). Unknown
    options raise ValueError. callback(dict) runs after every step with i, t, t_next, x (the state at t),
    x_next, x0_pred, eps, nfe, steps and method.
    """
    if method not in SAMPLERS:
        raise ValueError(f"unknown method {method!r}; expected one of: {', '.join(METHODS)}")
    s = schedule
    top = s.T if t_start is None else _check_start(t_start, s.T) + 1  # timesteps the run can visit
    if steps is None:
        steps = DEFAULT_STEPS[method] or s.T
        steps = min(steps, top)
    _check_steps(steps, top)
    steps = int(steps)
    opts = _check_options(method, options)
    if not isinstance(x_T, torch.Tensor) or not x_T.is_floating_point() or x_T.dim() < 2:
        raise ValueError("x_T must be a floating-point tensor of shape (N, ...), e.g. (N, 2) points")
    if getattr(eps_model, "input_shape", None) is not None:  # a latent model given an image, or the reverse
        check_input_shape(eps_model.input_shape, tuple(x_T.shape))
    guidance_scale = float(guidance_scale)
    if not math.isfinite(guidance_scale):
        raise ValueError(f"guidance_scale must be finite; got {guidance_scale!r}")
    if y is None and guidance_scale != 1.0:
        raise ValueError("guidance_scale needs class labels y= (classifier-free guidance mixes the conditional "
                         "and unconditional predictions)")
    if y is not None:
        y = torch.as_tensor(y, device=x_T.device)
        if y.dim() == 0:
            y = y.expand(x_T.shape[0])
        if y.shape[:1] != (x_T.shape[0],) or y.dim() > 2:
            raise ValueError(f"y must be one label, (N,) = ({x_T.shape[0]},) labels or (N, L) prompt tokens "
                             f"(core.data.captions.tokenize); got shape {tuple(y.shape)}")
        y = y.long()
    tap = None
    if opts.get("variance") == "learned":
        if not getattr(eps_model, "learn_sigma", False):
            raise ValueError("variance 'learned' needs a model that learns its variance (trained with learn_sigma, "
                             "e.g. the iddpm- models)")
        tap = eps_model = VarianceTap(eps_model)
    eps_fn = classifier_free_guidance(eps_model, y, guidance_scale)
    rec = Recorder(eps_fn, x_T, keep_trajectory, callback, method, tap, t_start)
    with torch.no_grad():
        x = SAMPLERS[method](eps_fn, s, x_T, steps, rec, generator, **opts)
    return rec.result(x)
