"""Noise schedules: betas and everything derived from them (Ho et al. 2020, Nichol & Dhariwal 2021).

Index ``t = 0..T-1`` is the paper's step ``t + 1``. ``alpha_bar_at`` and the VP-SDE view extend the
discrete schedule to fractional timesteps in [-1, T-1] (``t = -1`` is clean data, alpha_bar = 1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

SCHEDULE_NAMES = ("linear", "cosine", "sigmoid", "quadratic", "custom")
MAX_T = 100_000
BETA_MAX = 0.999  # Nichol & Dhariwal 2021 clip betas here so the last steps stay invertible


@dataclass(frozen=True, eq=False)
class Schedule:
    """A discrete variance-preserving noise schedule. All tensors are float64 of shape (T,)."""

    name: str
    betas: torch.Tensor
    params: dict[str, Any] = field(default_factory=dict)
    alphas: torch.Tensor = field(init=False)
    alpha_bars: torch.Tensor = field(init=False)
    alpha_bars_prev: torch.Tensor = field(init=False)  # alpha_bar_{t-1}, with alpha_bar_0 = 1
    posterior_variance: torch.Tensor = field(init=False)  # beta_tilde_t, Ho et al. eq. (7)
    posterior_mean_coef_x0: torch.Tensor = field(init=False)
    posterior_mean_coef_xt: torch.Tensor = field(init=False)

    def __post_init__(self) -> None:
        betas = _validate_betas(self.betas)
        alphas = 1.0 - betas
        alpha_bars = torch.cumprod(alphas, dim=0)
        alpha_bars_prev = torch.cat([torch.ones(1, dtype=torch.float64), alpha_bars[:-1]])
        one_minus = 1.0 - alpha_bars
        set_ = object.__setattr__
        set_(self, "betas", betas)
        set_(self, "alphas", alphas)
        set_(self, "alpha_bars", alpha_bars)
        set_(self, "alpha_bars_prev", alpha_bars_prev)
        # Ho et al. 2020 eq. (7): q(x_{t-1} | x_t, x_0) = N(coef_x0 x_0 + coef_xt x_t, beta_tilde_t I)
        set_(self, "posterior_variance", betas * (1.0 - alpha_bars_prev) / one_minus)
        set_(self, "posterior_mean_coef_x0", alpha_bars_prev.sqrt() * betas / one_minus)
        set_(self, "posterior_mean_coef_xt", alphas.sqrt() * (1.0 - alpha_bars_prev) / one_minus)
        # log alpha_bar on the grid t = -1, 0, ..., T-1 for the continuous view
        set_(self, "_log_alpha_bar_grid", torch.cat([torch.zeros(1, dtype=torch.float64), alpha_bars.log()]))

    @property
    def T(self) -> int:
        return self.betas.shape[0]

    @property
    def snr(self) -> torch.Tensor:
        """Signal-to-noise ratio alpha_bar / (1 - alpha_bar) (Kingma et al. 2021)."""
        return self.log_snr.exp()

    @property
    def log_snr(self) -> torch.Tensor:
        """log alpha_bar - log(1 - alpha_bar), from log alpha_bar = sum log(1 - beta_s) and 1 - alpha_bar =
        -expm1(log alpha_bar): exact even where 1 - beta rounds to 1 (beta = 1e-17 gives alpha_bar = 1.0 in
        float64, yet the SNR is large and finite, +32 nats at T = 1000, not infinite)."""
        log_ab = torch.cumsum(torch.log1p(-self.betas), 0)
        return log_ab - torch.log(-torch.expm1(log_ab))

    @property
    def terminal_snr(self) -> float:
        """SNR at the last step: the forward process reaches noise only when this is near 0."""
        return float(self.snr[-1])

    def alpha_bar_at(self, t: torch.Tensor | float) -> torch.Tensor:
        """alpha_bar at fractional timesteps t in [-1, T-1], interpolating log alpha_bar linearly.

        Exact at integer t (t = -1 gives 1), so the continuous view agrees with the discrete chain.
        """
        return self.log_alpha_bar_at(t).exp()

    def log_alpha_bar_at(self, t: torch.Tensor | float) -> torch.Tensor:
        t = torch.as_tensor(t, dtype=torch.float64)
        if torch.any(t < -1) or torch.any(t > self.T - 1):
            raise ValueError(f"timesteps must lie in [-1, {self.T - 1}]; got range "
                             f"[{float(t.min()):g}, {float(t.max()):g}]")
        grid = self._log_alpha_bar_grid.to(t.device)
        u = t + 1.0  # position on the grid, 0..T
        lo = u.floor().clamp(max=self.T - 1).long()
        frac = u - lo
        return grid[lo] * (1.0 - frac) + grid[lo + 1] * frac

    def beta_at(self, t: torch.Tensor | float) -> torch.Tensor:
        """Continuous VP-SDE rate beta(t) = -d log alpha_bar / dt, per timestep (Song et al. 2021, eq. 11).

        Piecewise constant: on (k-1, k] it is -log(1 - beta_k), so integrating it from -1 to k
        recovers alpha_bar_k exactly. Song et al.'s time s in [0, 1] is (t + 1) / T, with rate T * beta(t).
        """
        t = torch.as_tensor(t, dtype=torch.float64)
        if torch.any(t < -1) or torch.any(t > self.T - 1):
            raise ValueError(f"timesteps must lie in [-1, {self.T - 1}]")
        k = torch.ceil(t).clamp(0, self.T - 1).long()
        return -torch.log1p(-self.betas.to(t.device)[k])

    def sde_drift(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """f(x, t) = -beta(t) x / 2 of the VP-SDE dx = f dt + g dw."""
        return -0.5 * _bcast(self.beta_at(t), x) * x

    def sde_diffusion(self, t: torch.Tensor) -> torch.Tensor:
        """g(t) = sqrt(beta(t)) of the VP-SDE."""
        return self.beta_at(t).sqrt()

    def to_config(self) -> dict[str, Any]:
        """JSON-serialisable description; ``make_schedule(**cfg)`` rebuilds the same schedule."""
        cfg: dict[str, Any] = {"name": self.name, "T": self.T, **self.params}
        if self.name == "custom":
            cfg["betas"] = self.betas.tolist()
        return cfg


def _bcast(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return v.to(device=x.device, dtype=x.dtype).reshape(-1, *([1] * (x.dim() - 1)))


def _validate_betas(betas: Any) -> torch.Tensor:
    try:
        b = torch.as_tensor(betas, dtype=torch.float64).flatten().cpu()
    except (TypeError, ValueError, RuntimeError) as e:
        raise ValueError(f"betas must be a sequence of numbers: {e}") from None
    if b.numel() < 2:
        raise ValueError(f"a schedule needs T >= 2 steps; got {b.numel()}")
    if not torch.isfinite(b).all():
        raise ValueError("betas must be finite numbers")
    bad = (b <= 0) | (b >= 1)
    if bad.any():
        i = int(bad.nonzero()[0])
        raise ValueError(f"every beta must lie in the open interval (0, 1); beta[{i}] = {float(b[i]):g}")
    return b


def _alpha_bar_to_betas(alpha_bar_fn, T: int) -> torch.Tensor:
    """beta_t = 1 - alpha_bar(t) / alpha_bar(t-1), clipped at 0.999 (Nichol & Dhariwal 2021, eq. 17)."""
    t = torch.arange(T + 1, dtype=torch.float64) / T
    ab = alpha_bar_fn(t)
    return (1.0 - ab[1:] / ab[:-1]).clamp(min=1e-12, max=BETA_MAX)


def make_schedule(name: str, T: int = 1000, **params: Any) -> Schedule:
    """Build a schedule by name.

    - ``linear`` (Ho et al. 2020): betas = linspace(beta_start=1e-4, beta_end=0.02, T).
    - ``cosine`` (Nichol & Dhariwal 2021): alpha_bar(t) = cos^2(((t/T + s) / (1 + s)) pi / 2), s = 0.008.
    - ``sigmoid`` (Chen 2023, "On the importance of noise scheduling", Alg. 1): start=-3, end=3, tau=1.
    - ``quadratic`` (Ho et al.'s code, "quad"): betas = linspace(sqrt(beta_start), sqrt(beta_end), T)^2.
    - ``custom``: ``betas=`` any sequence in (0, 1); T is taken from its length.
    """
    if name not in SCHEDULE_NAMES:
        raise ValueError(f"unknown schedule {name!r}; expected one of: {', '.join(SCHEDULE_NAMES)}")
    if name == "custom":
        if "betas" not in params:
            raise ValueError("the custom schedule needs betas=[...] (values in (0, 1))")
        extra = set(params) - {"betas"}
        if extra:
            raise ValueError(f"unexpected parameters for 'custom': {sorted(extra)}")
        return Schedule("custom", _validate_betas(params["betas"]))
    if isinstance(T, bool) or not isinstance(T, int) or T < 2 or T > MAX_T:
        raise ValueError(f"T must be an integer in [2, {MAX_T}]; got {T!r}")
    allowed = {
        "linear": {"beta_start": 1e-4, "beta_end": 0.02},
        "quadratic": {"beta_start": 1e-4, "beta_end": 0.02},
        "cosine": {"s": 0.008},
        "sigmoid": {"start": -3.0, "end": 3.0, "tau": 1.0},
    }[name]
    unknown = set(params) - set(allowed)
    if unknown:
        raise ValueError(f"unexpected parameters for {name!r}: {sorted(unknown)}; "
                         f"expected some of: {sorted(allowed)}")
    p = {k: float(params.get(k, v)) for k, v in allowed.items()}
    if name in ("linear", "quadratic"):
        b0, b1 = p["beta_start"], p["beta_end"]
        if not (0 < b0 < 1 and 0 < b1 < 1):
            raise ValueError(f"beta_start and beta_end must lie in (0, 1); got {b0:g}, {b1:g}")
        if name == "linear":
            betas = torch.linspace(b0, b1, T, dtype=torch.float64)
        else:
            betas = torch.linspace(math.sqrt(b0), math.sqrt(b1), T, dtype=torch.float64) ** 2
    elif name == "cosine":
        s = p["s"]
        if not 0 <= s < 1:
            raise ValueError(f"cosine offset s must lie in [0, 1); got {s:g}")
        f = lambda t: torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2  # noqa: E731
        betas = _alpha_bar_to_betas(lambda t: f(t) / f(torch.zeros(1, dtype=torch.float64)), T)
    else:  # sigmoid
        start, end, tau = p["start"], p["end"], p["tau"]
        if not (start < end and tau > 0):
            raise ValueError(f"sigmoid needs start < end and tau > 0; got {start:g}, {end:g}, {tau:g}")
        v_start = torch.sigmoid(torch.tensor(start / tau, dtype=torch.float64))
        v_end = torch.sigmoid(torch.tensor(end / tau, dtype=torch.float64))

        def alpha_bar(t: torch.Tensor) -> torch.Tensor:
            out = (-torch.sigmoid((t * (end - start) + start) / tau) + v_end) / (v_end - v_start)
            return out.clamp(min=1e-12)

        betas = _alpha_bar_to_betas(alpha_bar, T)
    return Schedule(name, betas, p)
