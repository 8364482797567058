"""Flow matching beside diffusion (Lipman et al. 2023; Liu et al. 2023, rectified flow).

The path is the linear ("optimal transport", CondOT in the ``flow_matching`` library) one, with t = 0 the noise
x_0 ~ N(0, I) and t = 1 the data x_1:

    x_t = t x_1 + (1 - t) x_0,        target velocity u_t = x_1 - x_0.

Conditional flow matching regresses v_theta(x_t, t) on u_t; its minimiser is the marginal velocity
v(x, t) = E[x_1 - x_0 | x_t = x], whose ODE dx/dt = v carries N(0, I) to the data. A velocity model is
``model(x, t) -> v`` with t in [0, 1] (``VelocityField`` wraps the project's time-conditioned networks).

Diffusion on the same coordinates: a VP state x = sqrt(ab) x_1 + sqrt(1 - ab) x_0 divided by
sqrt(ab) + sqrt(1 - ab) is a point of this path at t = sqrt(ab) / (sqrt(ab) + sqrt(1 - ab)), and there the
velocity is v = (x_t - eps) / t (the x_1 prediction minus the eps prediction). With it a diffusion model's
probability-flow ODE is drawn on the flow's axes, and DDIM is exactly Euler on this reparameterised flow
(its x_0 and eps predictions are kept across a step, which is what an Euler step of the linear path does).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from core.samplers import Trajectory
from core.schedules import Schedule

VelocityModel = Callable[..., torch.Tensor]  # model(x, t) -> v, t (N,) in [0, 1]

FLOW_METHODS = ("euler", "midpoint", "heun")
NFE_PER_STEP = {"euler": 1, "midpoint": 2, "heun": 2}


class VelocityField(nn.Module):
    """v_theta(x, t) for t in [0, 1] from a time-conditioned network that reads timesteps in [0, T) (the 2D MLP):
    the network sees t * T, so the same architecture learns eps for diffusion and v for the flow."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor, t: torch.Tensor | float, y: torch.Tensor | None = None) -> torch.Tensor:
        t = torch.as_tensor(t, device=x.device, dtype=x.dtype)
        if t.dim() == 0:
            t = t.expand(x.shape[0])
        return self.net(x, t * self.net.config.T, y)


# --- the path and its loss -------------------------------------------------------------------------------------


def path_sample(x_0: torch.Tensor, x_1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """x_t = t x_1 + (1 - t) x_0 for (N,) times t (Lipman et al. 2023, eq. 20 with sigma_min = 0)."""
    t = t.reshape(-1, *([1] * (x_1.dim() - 1)))
    return t * x_1 + (1.0 - t) * x_0


def loss_flow_matching(model: VelocityModel, x_1: torch.Tensor, generator: torch.Generator | None = None,
                       x_0: torch.Tensor | None = None) -> torch.Tensor:
    """Conditional flow matching, E_{t ~ U[0, 1], x_0, x_1} || v_theta(x_t, t) - (x_1 - x_0) ||^2.

    ``x_0`` None draws independent noise (flow matching); given, it is the coupled noise of each x_1 (reflow,
    Liu et al. 2023, eq. 6: the pairs are the previous flow's (start, end)).
    """
    if x_0 is None:
        x_0 = torch.randn(x_1.shape, generator=generator, dtype=x_1.dtype).to(x_1.device)
    t = torch.rand(x_1.shape[0], generator=generator, dtype=x_1.dtype).to(x_1.device)
    v = model(path_sample(x_0, x_1, t), t)
    return (v - (x_1 - x_0)).pow(2).mean()


# --- solvers ----------------------------------------------------------------------------------------------------


def _v(model: VelocityModel, x: torch.Tensor, t: float) -> torch.Tensor:
    return model(x, torch.full((x.shape[0],), t, dtype=x.dtype, device=x.device))


def euler_step(model: VelocityModel, x: torch.Tensor, t: float, t_next: float) -> tuple[torch.Tensor, torch.Tensor]:
    """x + h v(x, t), h = t_next - t. Returns (x_next, v at the start)."""
    v = _v(model, x, t)
    return x + (t_next - t) * v, v


def midpoint_step(model: VelocityModel, x: torch.Tensor, t: float, t_next: float
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """The explicit midpoint rule (second order): x + h v(x + h/2 v(x, t), t + h/2)."""
    h = t_next - t
    v = _v(model, x, t)
    return x + h * _v(model, x + 0.5 * h * v, t + 0.5 * h), v


def heun_step(model: VelocityModel, x: torch.Tensor, t: float, t_next: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Heun's rule (the explicit trapezoid, second order): x + h/2 (v(x, t) + v(x + h v(x, t), t_next))."""
    h = t_next - t
    v = _v(model, x, t)
    return x + 0.5 * h * (v + _v(model, x + h * v, t_next)), v


STEPS = {"euler": euler_step, "midpoint": midpoint_step, "heun": heun_step}


def nfe_for(method: str, steps: int) -> int:
    """Network evaluations of ``steps`` steps of a flow solver."""
    return NFE_PER_STEP[method] * steps


def steps_for_nfe(method: str, nfe: int) -> int:
    """The most steps of ``method`` that fit in ``nfe`` evaluations (at least one)."""
    return max(1, nfe // NFE_PER_STEP[method])


def sample_flow(model: VelocityModel, x_0: torch.Tensor, steps: int = 20, method: str = "euler",
                times: torch.Tensor | np.ndarray | None = None, callback: Callable[[dict], Any] | None = None,
                keep_trajectory: bool = True) -> Trajectory:
    """Integrate dx/dt = v(x, t) from the noise x_0 at t = 0 to t = 1 with a fixed-step solver.

    ``times``: an increasing grid from its start to 1 (default ``steps`` uniform steps on [0, 1]). The result is
    the diffusion samplers' ``Trajectory``: xs (K+1, N, ...) the states, x0_preds (K, ...) the data predictions
    x_t + (1 - t) v at each step's start (the analogue of the x_0 prediction), timesteps (K,) the flow times t
    where each step starts (increasing: flow time runs towards the data). ``callback`` gets the samplers' keys
    (i, t, t_next, x, x_next, x0_pred, eps = the noise prediction x_t - t v, nfe, steps, method).
    """
    if method not in STEPS:
        raise ValueError(f"unknown flow solver {method!r}; expected one of: {', '.join(FLOW_METHODS)}")
    if times is None:
        if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
            raise ValueError(f"steps must be a positive integer; got {steps!r}")
        grid = np.linspace(0.0, 1.0, steps + 1)
    else:
        grid = np.asarray(times, dtype=np.float64)
        if grid.ndim != 1 or len(grid) < 2 or not np.all(np.diff(grid) > 0) or grid[0] < 0 or grid[-1] != 1.0:
            raise ValueError("times must be an increasing grid in [0, 1] that ends at 1")
    if not isinstance(x_0, torch.Tensor) or not x_0.is_floating_point() or x_0.dim() < 2:
        raise ValueError("x_0 must be a floating-point tensor of shape (N, ...), e.g. (N, 2) noise")
    step = STEPS[method]
    k = len(grid) - 1
    xs = [x_0] if keep_trajectory else None
    x1_preds: list[torch.Tensor] = []
    x, nfe = x_0, 0
    with torch.no_grad():
        for i in range(k):
            t, t_next = float(grid[i]), float(grid[i + 1])
            x_next, v = step(model, x, t, t_next)
            nfe += NFE_PER_STEP[method]
            x1_pred = x + (1.0 - t) * v
            if keep_trajectory:
                xs.append(x_next)
                x1_preds.append(x1_pred)
            else:
                x1_preds = [x1_pred]
            if callback is not None:
                callback({"i": i, "t": t, "t_next": t_next, "x": x, "x_next": x_next, "x0_pred": x1_pred,
                          "eps": x - t * v, "nfe": nfe, "steps": k, "method": method})
            x = x_next
    states = torch.stack(xs) if keep_trajectory else torch.stack([x_0, x])
    return Trajectory(states, torch.stack(x1_preds), torch.as_tensor(grid[:-1], dtype=torch.float64), nfe,
                      f"flow-{method}")


# --- rectified flow: reflow and straightness (Liu et al. 2023) -----------------------------------------------------


def reflow_pairs(model: VelocityModel, x_0: torch.Tensor, steps: int = 100, method: str = "heun"
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """(x_0, x_1): noises and where the flow's ODE takes them, the coupling the next rectified flow learns
    (Liu et al. 2023, Algorithm 1: "reflow")."""
    return x_0, sample_flow(model, x_0, steps=steps, method=method, keep_trajectory=False).xs[-1]


def path_straightness(times: np.ndarray | torch.Tensor, states: torch.Tensor) -> float:
    """Liu et al. 2023's straightness of sampled paths (K+1, N, d) on an increasing time grid (K+1,): the time
    average of E || dx/dt - (x_end - x_start) / (t_end - t_start) ||^2 with dx/dt each segment's slope; 0 for
    straight paths. Any path drawn on the flow's axes can be measured, e.g. DDIM's (``on_flow_axes``)."""
    t = torch.as_tensor(np.asarray(times), dtype=torch.float64)
    x = torch.as_tensor(states, dtype=torch.float64)
    if t.dim() != 1 or len(t) < 2 or x.shape[0] != len(t) or not bool(torch.all(t[1:] > t[:-1])):
        raise ValueError("times must be an increasing grid with one time per state")
    dt = t[1:] - t[:-1]
    span = float(t[-1] - t[0])
    slopes = (x[1:] - x[:-1]) / dt.reshape(-1, *([1] * (x.dim() - 1)))
    per_step = (slopes - (x[-1] - x[0]) / span).pow(2).sum(-1).mean(-1)  # (K,)
    return float((per_step * dt).sum() / span)


def straightness(model: VelocityModel, x_0: torch.Tensor, steps: int = 100) -> float:
    """S = int_0^1 E || (X_1 - X_0) - v(X_t, t) ||^2 dt along the flow's own ODE paths (Liu et al. 2023, sec. 2.3):
    0 for straight paths, which one Euler step integrates exactly. Estimated with ``steps`` Euler steps (whose
    segment slopes are the velocities v(X_t, t))."""
    traj = sample_flow(model, x_0, steps=steps, method="euler")
    return path_straightness(np.linspace(0.0, 1.0, steps + 1), traj.xs)


# --- diffusion on the flow's coordinates -----------------------------------------------------------------------


def flow_time(alpha_bar: torch.Tensor | float) -> torch.Tensor:
    """The path time of a VP marginal: t = sqrt(ab) / (sqrt(ab) + sqrt(1 - ab)) (same signal-to-noise ratio)."""
    ab = torch.as_tensor(alpha_bar, dtype=torch.float64)
    a, s = ab.sqrt(), (1.0 - ab).clamp(min=0.0).sqrt()
    return a / (a + s)


def alpha_bar_of_flow_time(t: torch.Tensor | float) -> torch.Tensor:
    """The inverse of ``flow_time``: ab = t^2 / (t^2 + (1 - t)^2)."""
    t = torch.as_tensor(t, dtype=torch.float64)
    return t ** 2 / (t ** 2 + (1.0 - t) ** 2)


def vp_to_flow(x: torch.Tensor, alpha_bar: torch.Tensor | float) -> torch.Tensor:
    """A VP state sqrt(ab) x_1 + sqrt(1 - ab) x_0 as the path's point t x_1 + (1 - t) x_0 (divide by the sum)."""
    ab = torch.as_tensor(alpha_bar, dtype=torch.float64)
    scale = ab.sqrt() + (1.0 - ab).clamp(min=0.0).sqrt()
    return x / scale.to(x.dtype).reshape(-1, *([1] * (x.dim() - 1))) if scale.dim() else x / float(scale)


def velocity_from_eps(x_t: torch.Tensor, t: torch.Tensor | float, eps: torch.Tensor) -> torch.Tensor:
    """v = E[x_1 - x_0 | x_t] from the noise prediction eps = E[x_0 | x_t] on the path: (x_t - eps) / t."""
    t = torch.as_tensor(t, dtype=x_t.dtype, device=x_t.device)
    if t.dim():
        t = t.reshape(-1, *([1] * (x_t.dim() - 1)))
    return (x_t - eps) / t


def timestep_of_alpha_bar(schedule: Schedule, alpha_bar: torch.Tensor) -> torch.Tensor:
    """The fractional timestep in [-1, T-1] where ``schedule.alpha_bar_at`` equals alpha_bar (its inverse: log
    alpha_bar is interpolated linearly between integer timesteps, and decreases)."""
    grid_t = torch.arange(-1, schedule.T, dtype=torch.float64)
    grid = schedule.log_alpha_bar_at(grid_t).numpy()
    log_ab = torch.as_tensor(alpha_bar, dtype=torch.float64).clamp(min=1e-300).log().numpy()
    return torch.from_numpy(np.interp(-log_ab, -grid, grid_t.numpy()))


def diffusion_velocity(eps_model: Callable[..., torch.Tensor], schedule: Schedule) -> VelocityModel:
    """A VP diffusion model as a velocity model on the flow's path, valid for t in [flow_time(ab_{T-1}), 1):
    x_t maps to the VP state x_t (sqrt(ab) + sqrt(1 - ab)) at the timestep of the same alpha_bar, and
    v = (x_t - eps) / t. Euler on it from the flow times of DDIM's timesteps is DDIM."""

    def velocity(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        t = torch.as_tensor(t, dtype=torch.float64).reshape(-1).expand(x.shape[0])
        ab = alpha_bar_of_flow_time(t)
        scale = (ab.sqrt() + (1.0 - ab).sqrt()).to(x.dtype).reshape(-1, *([1] * (x.dim() - 1)))
        eps = eps_model(x * scale, timestep_of_alpha_bar(schedule, ab).to(x.dtype))
        return velocity_from_eps(x, t.to(x.dtype), eps)

    return velocity


def ddim_flow_times(schedule: Schedule, timesteps: torch.Tensor | np.ndarray) -> np.ndarray:
    """The flow grid of a DDIM run: the flow times of its (decreasing) timesteps, then 1 (the clean data)."""
    ab = schedule.alpha_bar_at(torch.as_tensor(np.asarray(timesteps), dtype=torch.float64))
    return np.concatenate([flow_time(ab).numpy(), [1.0]])


def on_flow_axes(traj: Trajectory, schedule: Schedule) -> tuple[np.ndarray, torch.Tensor]:
    """A diffusion trajectory drawn on the flow's coordinates: (flow time of each state (K+1,), states / scale)."""
    ab = torch.as_tensor(traj.state_alpha_bars(schedule))
    return flow_time(ab).numpy(), torch.stack([vp_to_flow(x, float(a)) for x, a in zip(traj.xs, ab, strict=True)])


def is_flow(config: dict[str, Any]) -> bool:
    """Whether a checkpoint config is a flow (a velocity model sampled with ``sample_flow``)."""
    return config.get("family") in ("flow", "reflow")
