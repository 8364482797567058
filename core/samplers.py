"""Samplers: the papers' step functions and one ``sample()`` over every method, on any eps model.

traj = sample(eps_model, schedule, x_T, method="ddim", steps=50, generator=torch.Generator().manual_seed(0))
traj.xs[-1] is the sample; traj.xs / traj.x0_preds hold the path, one entry per step (for the dashboard).

Every method visits ``steps`` timesteps t_0 > t_1 > ... > t_{K-1} (where the network is evaluated) and
makes K transitions; the last one always lands on clean data (t_prev = -1, alpha_bar = 1) by returning the
model's x0 prediction at t_{K-1} (the usual "denoise at the end"; for DDPM/DDIM it is their own update
with alpha_bar_prev = 1, which is exactly that prediction). Time grids:

- ddpm, ddim: integer timesteps with ``spacing`` "leading" (default), "linspace" or "trailing" (Lin et
  al. 2024, Table 2). With the exact score, leading was best or tied per step on the linear and cosine
  schedules (4 to 100 DDIM steps; trailing's last jump from T/K - 1 to clean data blurs sharp modes).
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

Classifier-free guidance (Ho & Salimans 2022): ``y=labels, guidance_scale=w`` uses
eps = eps_uncond + w (eps_cond - eps_uncond). If the model has ``null_class``, the conditional and
unconditional passes run as one batched call of 2N points; otherwise the unconditional pass calls
``eps_model(x, t)`` without labels. ``nfe`` counts evaluations of the (guided) denoiser, as papers do.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from core.diffusion import EpsModel, eps_to_score, eps_to_x0
from core.schedules import Schedule

METHODS = ("ddpm", "ddim", "euler_maruyama", "predictor_corrector", "ode_euler", "ode_heun", "dpm_solver_2m")
SPACINGS = ("linspace", "leading", "trailing")
SDES = ("vp", "ve")
VARIANCES = ("beta", "beta_tilde")

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

_COMMON_OPTIONS = {"y", "guidance_scale", "keep_trajectory"}
_METHOD_OPTIONS: dict[str, dict[str, Any]] = {
    "ddpm": {"variance": "beta_tilde", "spacing": "leading"},
    "ddim": {"eta": 0.0, "spacing": "leading"},
    "euler_maruyama": {"sde": "vp"},
    "predictor_corrector": {"sde": "vp", "snr": DEFAULT_SNR, "corrector_steps": 1},
    "ode_euler": {"sde": "vp"},
    "ode_heun": {"sde": "vp"},
    "dpm_solver_2m": {},
}


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
              t_prev: int | torch.Tensor | None = None) -> torch.Tensor:
    """One ancestral step x_t -> x_{t_prev} (Ho et al. 2020, Algorithm 2, line 4):

    x_{t-1} = 1 / sqrt(alpha_t) (x_t - beta_t / sqrt(1 - alpha_bar_t) eps) + sigma_t z,
    sigma_t^2 = beta_t ("beta") or beta_tilde_t = (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) beta_t ("beta_tilde").

    t_prev defaults to t - 1; a coarser t_prev uses the respaced chain's alpha_t = alpha_bar_t / alpha_bar_prev
    (Nichol & Dhariwal 2021). z = 0 on the step into t_prev = -1 (paper step 1). t, t_prev: ints or (N,).
    """
    if variance not in VARIANCES:
        raise ValueError(f"unknown variance {variance!r}; expected one of: {', '.join(VARIANCES)}")
    if t_prev is None:
        t_prev = t - 1
    ab_t, ab_prev = _alpha_bar(s, t, x_t), _alpha_bar(s, t_prev, x_t)
    alpha_t = ab_t / ab_prev
    beta_t = 1.0 - alpha_t
    mean = (x_t - beta_t / _sqrt(1.0 - ab_t) * eps) / _sqrt(alpha_t)
    if variance == "beta":
        var = beta_t
    else:
        var = (1.0 - ab_prev) / (1.0 - ab_t) * beta_t
    sigma = _sqrt(var) * _noise_mask(t_prev, x_t)
    if noise is None:
        if isinstance(sigma, float) and sigma == 0.0:
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
    return _ddim_update(x0_pred, eps, ab_prev, sigma, noise)


def _ddim_update(x0_pred: torch.Tensor, eps: torch.Tensor, ab_prev: float | torch.Tensor,
                 sigma: float | torch.Tensor, noise: torch.Tensor | None) -> torch.Tensor:
    # eq. (12): "predicted x0" + "direction pointing to x_t" + random noise
    x_prev = _sqrt(ab_prev) * x0_pred + _sqrt(1.0 - ab_prev - sigma ** 2) * eps
    if isinstance(sigma, float) and sigma == 0.0:
        return x_prev
    if noise is None:
        raise ValueError("ddim_step needs noise (a standard normal tensor like x_t) when eta > 0")
    return x_prev + sigma * noise


def _as_t(t: int | float | torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A timestep argument as the (N,) float tensor core.diffusion and the models expect."""
    t = torch.as_tensor(t, device=x.device)
    if t.dim() == 0:
        t = t.expand(x.shape[0])
    return t.to(x.dtype) if x.dtype.is_floating_point else t.float()


# --- time grids ---------------------------------------------------------------------------------------


def discrete_timesteps(T: int, steps: int, spacing: str = "leading") -> list[int]:
    """Integer timesteps (decreasing) for DDPM/DDIM with ``steps`` <= T (Lin et al. 2024, Table 2, 0-based):

    - "linspace": round(linspace(T-1, 0, steps)): both the noisiest and the cleanest step;
    - "leading":  arange(steps) * (T // steps): ends at 0 but starts below T-1 (e.g. 980 for 50 of 1000);
    - "trailing": round(T - arange(steps) * T / steps) - 1: starts at T-1, ends at T/steps - 1.
    """
    _check_steps(steps, T)
    if spacing == "linspace":
        ts = np.round(np.linspace(T - 1, 0, steps))
    elif spacing == "leading":
        ts = (np.arange(steps) * (T // steps))[::-1]
    elif spacing == "trailing":
        ts = np.round(T - np.arange(steps) * (T / steps)) - 1
    else:
        raise ValueError(f"unknown spacing {spacing!r}; expected one of: {', '.join(SPACINGS)}")
    return [int(v) for v in ts]


def continuous_timesteps(s: Schedule, steps: int, grid: str = "uniform") -> list[float]:
    """Fractional timesteps from the start t_max down to 0: "uniform" in t, or "logsnr" (uniform in lambda,
    Lu et al. 2022).

    Both grids start where the half log-SNR lambda reaches LAMBDA_MIN (-5.1, the clip of Lu et al.'s
    reference code, NoiseScheduleVP), or at T-1 if the schedule never gets that noisy. The cosine schedule's
    last steps (alpha_bar_T ~ 1e-9) are pure noise where the SDE's beta(t) explodes: an Euler step across
    them diverges, and a log-SNR grid would spend a third of its steps there. x_T ~ N(0, I) is taken as
    the state at the clipped start, off by sqrt(alpha_bar) ~ 6e-3 of signal.
    """
    _check_steps(steps, s.T)
    clipped = _lambda(s, s.T - 1.0) < LAMBDA_MIN
    t_max = timestep_at_log_alpha_bar(s, -math.log1p(math.exp(-2.0 * LAMBDA_MIN))) if clipped else float(s.T - 1)
    if grid == "uniform":
        return [float(v) for v in np.linspace(t_max, 0, steps)]
    if grid == "logsnr":
        lam_hi, lam_lo = _lambda(s, 0.0), max(_lambda(s, s.T - 1.0), LAMBDA_MIN)
        lams = np.linspace(lam_lo, lam_hi, steps)
        ts = [timestep_at_log_alpha_bar(s, -math.log1p(math.exp(-2.0 * lam))) for lam in lams]
        if lam_lo != LAMBDA_MIN:
            ts[0] = float(s.T - 1)  # exact ends, free of round-off
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


# --- the sampling driver --------------------------------------------------------------------------------


def _randn(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Standard normal noise like x, drawn from ``generator`` (on the generator's device, then moved)."""
    if generator is None:
        return torch.randn_like(x)
    if generator.device == x.device or (generator.device.type == x.device.type == "cpu"):
        return torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return torch.randn(x.shape, generator=generator, device=generator.device, dtype=x.dtype).to(x.device)


EpsFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # eps(x, t) with labels and guidance bound


def _guided_eps(eps_model: EpsModel, y: torch.Tensor | None, w: float) -> EpsFn:
    """eps(x, t) with classifier-free guidance eps_u + w (eps_c - eps_u) (Ho & Salimans 2022, eq. 6)."""
    if y is None:
        return lambda x, t: eps_model(x, t)
    if w == 1.0:
        return lambda x, t: eps_model(x, t, y)
    null = getattr(eps_model, "null_class", None)
    if w == 0.0:
        if null is None:
            return lambda x, t: eps_model(x, t)
        y_null = torch.full_like(y, int(null))
        return lambda x, t: eps_model(x, t, y_null)
    if null is not None:
        y_both = torch.cat([y, torch.full_like(y, int(null))])

        def eps_fn(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            eps_c, eps_u = eps_model(torch.cat([x, x]), torch.cat([t, t]), y_both).chunk(2)
            return eps_u + w * (eps_c - eps_u)
    else:

        def eps_fn(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            eps_c, eps_u = eps_model(x, t, y), eps_model(x, t)
            return eps_u + w * (eps_c - eps_u)

    return eps_fn


class _Recorder:
    """Keeps the trajectory (preallocated, one copy per step) and calls the per-step callback."""

    def __init__(self, x_T: torch.Tensor, timesteps: list[float], keep: bool,
                 callback: Callable[[dict], Any] | None, method: str):
        self.keep, self.callback, self.method = keep, callback, method
        self.timesteps = timesteps
        k = len(timesteps)
        if keep:
            self.xs = x_T.new_empty((k + 1, *x_T.shape))
            self.x0_preds = x_T.new_empty((k, *x_T.shape))
            self.xs[0] = x_T
        else:
            self.x_T = x_T
        self.nfe = 0
        self.last_x0: torch.Tensor | None = None

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


def sample(eps_model: EpsModel, schedule: Schedule, x_T: torch.Tensor, method: str = "ddim",
           steps: int | None = None, generator: torch.Generator | None = None,
           callback: Callable[[dict], Any] | None = None, *, y: torch.Tensor | int | None = None,
           guidance_scale: float = 1.0, keep_trajectory: bool = True, **options: Any) -> Trajectory:
    """Run ``method`` from x_T (N, ...) down to clean data and return the ``Trajectory``.

    method: one of METHODS. steps: visited timesteps (default ``DEFAULT_STEPS[method]``, at most T).
    Options per method (defaults first): ddpm ``variance`` ("beta_tilde" | "beta"), ``spacing``
    ("leading" | "linspace" | "trailing"); ddim ``eta`` (0.0, in [0, 1]), ``spacing``; euler_maruyama /
    ode_euler / ode_heun ``sde`` ("vp" | "ve"); predictor_corrector ``sde``, ``snr`` (0.16, the Langevin
    signal-to-noise r), ``corrector_steps`` (1); dpm_solver_2m none. For every method: ``y`` labels (N,)
    or one int, ``guidance_scale`` w (1.0), ``keep_trajectory`` (True; False keeps only x_T and x_0, for
    image batches: the full path costs 2 K copies of x_T). Unknown options raise ValueError.
    callback(dict) runs after every step with i, t, t_next, x (the state at t), x_next, x0_pred, eps, nfe,
    steps and method.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of: {', '.join(METHODS)}")
    s = schedule
    if steps is None:
        steps = DEFAULT_STEPS[method] or s.T
        steps = min(steps, s.T)
    _check_steps(steps, s.T)
    steps = int(steps)
    opts = _check_options(method, options)
    if not isinstance(x_T, torch.Tensor) or not x_T.is_floating_point() or x_T.dim() < 2:
        raise ValueError("x_T must be a floating-point tensor of shape (N, ...), e.g. (N, 2) points")
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
        if y.shape != (x_T.shape[0],):
            raise ValueError(f"y must be one label or (N,) = ({x_T.shape[0]},) labels; got shape {tuple(y.shape)}")
        y = y.long()
    eps_fn = _guided_eps(eps_model, y, guidance_scale)

    if method in ("ddpm", "ddim"):
        timesteps: list[float] = discrete_timesteps(s.T, steps, opts["spacing"])
    elif method == "dpm_solver_2m":
        timesteps = continuous_timesteps(s, steps, "logsnr")
    else:
        timesteps = continuous_timesteps(s, steps, "uniform")
    rec = _Recorder(x_T, timesteps, keep_trajectory, callback, method)
    with torch.no_grad():
        run = _RUNNERS[method]
        x = run(eps_fn, s, x_T, timesteps, rec, generator, opts)
    return rec.result(x)


def _model_t(t: float, x: torch.Tensor) -> torch.Tensor:
    """The (N,) timestep tensor the model sees (all points share t)."""
    return torch.full((x.shape[0],), t, dtype=x.dtype, device=x.device)


def _shared_t(t: float) -> torch.Tensor:
    """t as a one-element tensor for core.diffusion's conversions: their alpha_bar then broadcasts over the
    batch, so each conversion costs O(1) schedule work instead of a gather over N points."""
    return torch.tensor([float(t)], dtype=torch.float64)


def _run_discrete(eps_fn, s: Schedule, x: torch.Tensor, ts: list[int], rec: _Recorder,
                  generator: torch.Generator | None, opts: dict[str, Any], method: str) -> torch.Tensor:
    """DDPM (Algorithm 2, respaced when steps < T) and DDIM (eq. 12) over integer timesteps."""
    ts_prev = [*ts[1:], -1]
    for i, (t, t_prev) in enumerate(zip(ts, ts_prev)):
        eps = eps_fn(x, _model_t(t, x))
        rec.nfe += 1
        x0_pred = eps_to_x0(s, x, _shared_t(t), eps)
        if method == "ddim":
            # coefficients as Python floats: all points share t; sigma is 0 at t_prev = -1 anyway
            ab_t, ab_prev = float(s.alpha_bar_at(t)), float(s.alpha_bar_at(t_prev))
            sigma = 0.0 if t_prev < 0 else ddim_sigma(ab_t, ab_prev, opts["eta"])
            noise = _randn(x, generator) if sigma > 0 else None
            x_next = _ddim_update(x0_pred, eps, ab_prev, sigma, noise)
        else:
            # Algorithm 2, line 4 (respaced when t_prev < t - 1); no noise on the final step
            noise = _randn(x, generator) if t_prev >= 0 else None
            x_next = ddpm_step(s, x, eps, t, noise, opts["variance"], t_prev)
        rec.record(i, x, x_next, x0_pred, eps)
        x = x_next
    return x


def _ddpm(eps_fn, s, x, ts, rec, generator, opts):
    return _run_discrete(eps_fn, s, x, ts, rec, generator, opts, "ddpm")


def _ddim(eps_fn, s, x, ts, rec, generator, opts):
    return _run_discrete(eps_fn, s, x, ts, rec, generator, opts, "ddim")


class _Views:
    """Per-timestep scalars of the VP and VE views, as Python floats (all points share t)."""

    def __init__(self, s: Schedule, t: float):
        self.t = t
        self.ab = float(s.alpha_bar_at(t))
        self.beta = float(s.beta_at(t))  # VP-SDE rate per timestep, Schedule.beta_at
        self.tau = -float(s.log_alpha_bar_at(t))  # the VP-SDE's own clock: tau = int_{-1}^t beta = -log alpha_bar
        self.sqrt_ab = math.sqrt(self.ab)
        self.sigma_ve = math.sqrt((1.0 - self.ab) / self.ab)  # SMLD noise level of x / sqrt(alpha_bar)


def _eval(eps_fn, s: Schedule, x: torch.Tensor, t: float, rec: _Recorder):
    """eps and x0 prediction of the model at (x, t), and t for further conversions."""
    eps = eps_fn(x, _model_t(t, x))
    rec.nfe += 1
    t_c = _shared_t(t)
    return eps, eps_to_x0(s, x, t_c, eps), t_c


def _langevin(eps_fn, s: Schedule, x: torch.Tensor, v: _Views, rec: _Recorder, generator, snr: float,
              n: int, sde: str) -> torch.Tensor:
    """Langevin corrector (Song et al. 2021, Algorithm 5 (VP) / 4 (VE)): x += e g + sqrt(2 e) z with
    e = 2 alpha (r ||z|| / ||g||)^2; the norms are per-example norms averaged over the batch, as in
    their code (so the step size is shared by the batch). Runs in VE coordinates for sde="ve"."""
    alpha = math.exp(-v.beta) if sde == "vp" else 1.0  # 1 - beta_t at integer t
    for _ in range(n):
        eps, _, t_c = _eval(eps_fn, s, x, v.t, rec)
        score = eps_to_score(s, x, t_c, eps)
        if sde == "ve":
            score = score * v.sqrt_ab  # d/dx_ve = sqrt(alpha_bar) d/dx: score_ve = -eps / sigma
        z = _randn(x, generator)
        g_norm = score.flatten(1).norm(dim=1).mean()
        z_norm = z.flatten(1).norm(dim=1).mean()
        step = 2.0 * alpha * (snr * z_norm / g_norm.clamp(min=1e-12)) ** 2
        if sde == "vp":
            x = x + step * score + (2.0 * step).sqrt() * z
        else:
            x_ve = x / v.sqrt_ab + step * score + (2.0 * step).sqrt() * z
            x = x_ve * v.sqrt_ab
    return x


def _run_continuous(eps_fn, s: Schedule, x: torch.Tensor, ts: list[float], rec: _Recorder, generator,
                    opts: dict[str, Any], method: str) -> torch.Tensor:
    """Reverse SDE (Euler-Maruyama), predictor-corrector and PF-ODE (Euler, Heun) on a uniform t grid."""
    sde = opts["sde"]
    views = [_Views(s, t) for t in ts]
    for i, v in enumerate(views):
        x_in = x
        if method == "predictor_corrector" and opts["corrector_steps"] > 0:
            x = _langevin(eps_fn, s, x, v, rec, generator, opts["snr"], opts["corrector_steps"], sde)
        eps, x0_pred, t_c = _eval(eps_fn, s, x, v.t, rec)
        if i == len(views) - 1:
            rec.record(i, x_in, x0_pred, x0_pred, eps)  # land on clean data: the x0 prediction at t = 0
            return x0_pred
        w = views[i + 1]
        d_tau = v.tau - w.tau  # > 0: int beta dt over the step, integrating backwards in time
        if method in ("euler_maruyama", "predictor_corrector"):
            z = _randn(x, generator)
            if sde == "vp":
                # reverse VP-SDE dx = [-beta/2 x - beta score] dt + sqrt(beta) dw (Song et al. 2021, eqs. 6, 11),
                # Euler-Maruyama in tau, where beta dt = d tau (exact for the piecewise-constant beta(t))
                score = eps_to_score(s, x, t_c, eps)
                x_next = x + d_tau * (0.5 * x + score) + math.sqrt(d_tau) * z
            else:
                # reverse VE-SDE dx_ve = -d[sigma^2] score_ve + sqrt(d[sigma^2]) dw: Euler-Maruyama in sigma^2
                d_var = v.sigma_ve ** 2 - w.sigma_ve ** 2
                x_ve = x / v.sqrt_ab + (d_var / v.sigma_ve) * (-eps) + math.sqrt(d_var) * z
                x_next = x_ve * w.sqrt_ab
        elif sde == "vp":
            # PF-ODE dx/dt = -beta(t)/2 (x + score) (Song et al. 2021, eq. 13), i.e. dx/dtau = -(x + score)/2
            d1 = 0.5 * (x + eps_to_score(s, x, t_c, eps))
            x_next = x + d_tau * d1
            if method == "ode_heun":  # Heun's 2nd order (Karras et al. 2022, Algorithm 1), in tau
                eps2, _, t_c2 = _eval(eps_fn, s, x_next, w.t, rec)
                d2 = 0.5 * (x_next + eps_to_score(s, x_next, t_c2, eps2))
                x_next = x + d_tau * 0.5 * (d1 + d2)
        else:
            # VE PF-ODE dx_ve / dsigma = eps: Euler in sigma is DDIM (eta = 0)
            d_sigma = w.sigma_ve - v.sigma_ve  # < 0
            x_ve = x / v.sqrt_ab
            x_ve_next = x_ve + d_sigma * eps
            if method == "ode_heun":
                eps2, _, _ = _eval(eps_fn, s, x_ve_next * w.sqrt_ab, w.t, rec)
                x_ve_next = x_ve + d_sigma * 0.5 * (eps + eps2)
            x_next = x_ve_next * w.sqrt_ab
        rec.record(i, x_in, x_next, x0_pred, eps)
        x = x_next
    return x


def _dpm_solver_2m(eps_fn, s: Schedule, x: torch.Tensor, ts: list[float], rec: _Recorder, generator, opts):
    """DPM-Solver++(2M) with data prediction (Lu et al. 2022, "DPM-Solver++", Algorithm 2), log-SNR grid.

    The first step is first order (it has no history) and so is the last: the step into alpha_bar = 1
    (lambda = +inf) reduces to x0_pred, the usual lower-order final step.
    """
    ab = [float(s.alpha_bar_at(t)) for t in ts]
    alpha = [math.sqrt(a) for a in ab]
    sigma = [math.sqrt(1.0 - a) for a in ab]
    lam = [math.log(a_) - math.log(s_) for a_, s_ in zip(alpha, sigma)]
    x0_prev = None
    for i, t in enumerate(ts):
        eps, x0_pred, _ = _eval(eps_fn, s, x, t, rec)
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


_RUNNERS = {
    "ddpm": _ddpm,
    "ddim": _ddim,
    "euler_maruyama": lambda *a: _run_continuous(*a, "euler_maruyama"),
    "predictor_corrector": lambda *a: _run_continuous(*a, "predictor_corrector"),
    "ode_euler": lambda *a: _run_continuous(*a, "ode_euler"),
    "ode_heun": lambda *a: _run_continuous(*a, "ode_heun"),
    "dpm_solver_2m": _dpm_solver_2m,
}
