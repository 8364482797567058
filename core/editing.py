"""Editing with a trained diffusion model: SDEdit and inpainting, on any eps model and any data shape (2D points
or MNIST images).

SDEdit (Meng et al. 2022, "SDEdit: guided image synthesis and editing with stochastic differential
equations"): noise the input to t_0 with q(x_{t_0} | x_0), then run any sampler from t_0 down to clean data.
Small t_0 keeps the input (faithful); large t_0 forgets it (realistic). t_0 counts paper steps 0..T: t_0 = 0
returns the input, t_0 = T starts from (almost) pure noise.

Inpainting (Lugmayr et al. 2022, "RePaint", Algorithm 1): an ancestral (DDPM) chain where, at every step, the
known region is replaced by a fresh q_sample of the input at that step's noise level, so the model only ever
fills in the unknown region around it. RePaint's resampling: after every ``jump_length`` steps down the chain
goes back up ``jump_length`` steps by the forward process (x_t ~ q(x_t | x_{t_prev})) and down again,
``resamplings`` times in all, which gives the unknown region time to agree with the known one.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from core.diffusion import EpsModel, q_sample
from core.guidance import classifier_free_guidance
from core.samplers import DEFAULT_STEPS, Trajectory, ddpm_step, discrete_timesteps, randn_like, sample
from core.schedules import Schedule


def _check_input(x: Any) -> None:
    if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.dim() < 2:
        raise ValueError("x must be a floating-point tensor of shape (N, ...), e.g. (N, 2) points or (N, 1, 28, 28)")
    if not torch.isfinite(x).all():
        raise ValueError("x has non-finite values (NaN or infinity)")


def sdedit_steps(t0: int, full_steps: int, T: int) -> int:
    """The steps of an SDEdit run from paper step t0 that keep the step size of a full run of ``full_steps``:
    full_steps * t0 / T rounded up, at least 1, at most t0 (0 for t0 = 0: no step)."""
    return 0 if t0 == 0 else max(1, min(t0, math.ceil(full_steps * t0 / T)))


def sdedit(eps_model: EpsModel, schedule: Schedule, x: torch.Tensor, t0: int, method: str = "ddim",
           steps: int | None = None, generator: torch.Generator | None = None, *,
           callback: Callable[[dict], Any] | None = None, **options: Any) -> Trajectory:
    """SDEdit: x_{t_0} = sqrt(alpha_bar) x + sqrt(1 - alpha_bar) eps at paper step t0 (0..T), then ``method``
    from there (``core.samplers.sample`` with ``t_start = t0 - 1``; guidance by ``y=``, ``guidance_scale=``).

    steps: visited timesteps (default: ``sdedit_steps`` of the method's default, the step size of a full run).
    DDPM and DDIM run the "linspace" grid unless ``spacing`` is given, so the first step is at t0 itself; from
    t0 = T they run the samplers' default "leading" grid, which skips the last timestep (on the cosine schedule
    alpha_bar_{T-1} ~ 1e-9, and a step from there multiplies any error in eps by ~1e3). Returns the Trajectory
    (``.xs[-1]`` is the edit); t0 = 0 returns the input unchanged (no step, ``.xs`` holds the input alone).
    """
    _check_input(x)
    T = schedule.T
    if isinstance(t0, bool) or not isinstance(t0, int) or not 0 <= t0 <= T:
        raise ValueError(f"t0 must be an integer paper step in [0, T={T}]; got {t0!r}")
    if t0 == 0:  # no step: the path is the input alone
        return Trajectory(x.unsqueeze(0), x.new_empty((0, *x.shape)), torch.zeros(0, dtype=torch.float64), 0, method)
    if steps is None:
        steps = sdedit_steps(t0, DEFAULT_STEPS.get(method) or T, T)
    if method in ("ddpm", "ddim") and t0 < T:
        options.setdefault("spacing", "linspace")
    t_start = t0 - 1  # paper step t0 is timestep index t0 - 1
    noise = randn_like(x, generator)
    x_t0 = q_sample(schedule, x, torch.full((x.shape[0],), t_start, device=x.device), noise)
    return sample(eps_model, schedule, x_t0, method, steps, generator, callback, t_start=t_start, **options)


def repaint_path(steps: int, jump_length: int = 10, resamplings: int = 1) -> list[int]:
    """The positions RePaint visits on a grid of ``steps`` timesteps (0 = the noisiest, ``steps`` = clean data):
    down one at a time; after every ``jump_length`` steps, back up ``jump_length`` and down again, until each
    such stretch has been run ``resamplings`` times (Lugmayr et al. 2022, sec. 4.2). resamplings = 1 is the
    plain chain."""
    if isinstance(jump_length, bool) or not isinstance(jump_length, int) or jump_length < 1:
        raise ValueError(f"jump_length must be a positive integer; got {jump_length!r}")
    if isinstance(resamplings, bool) or not isinstance(resamplings, int) or resamplings < 1:
        raise ValueError(f"resamplings must be a positive integer; got {resamplings!r}")
    left = {p: resamplings - 1 for p in range(jump_length, steps, jump_length)}  # never from clean data
    pos, path = 0, [0]
    while pos < steps:
        pos += 1
        path.append(pos)
        if left.get(pos, 0) > 0:
            left[pos] -= 1
            for _ in range(jump_length):
                pos -= 1
                path.append(pos)
    return path


def inpaint(eps_model: EpsModel, schedule: Schedule, x: torch.Tensor, known_mask: torch.Tensor,
            steps: int | None = None, generator: torch.Generator | None = None, *, jump_length: int = 10,
            resamplings: int = 1, variance: str = "beta_tilde", y: torch.Tensor | int | None = None,
            guidance_scale: float = 1.0, x_T: torch.Tensor | None = None,
            callback: Callable[[dict], Any] | None = None) -> torch.Tensor:
    """Fill in where ``known_mask`` is 0, keeping x where it is 1 (broadcastable to x), by DDPM on ``steps``
    timesteps of the "leading" grid (default T; fewer run the respaced chain) with the known region replaced at
    every step by
    q_sample(x, t) (RePaint). ``resamplings`` > 1 adds RePaint's time travel (``repaint_path``). The known
    region of the result is x exactly. x_T: the starting noise (default: drawn from ``generator``).
    callback(dict) after every move with i, moves, t (the timestep reached, -1 = clean), x.
    """
    _check_input(x)
    mask = torch.as_tensor(known_mask, dtype=x.dtype, device=x.device)
    try:
        mask = torch.broadcast_to(mask, x.shape)
    except RuntimeError:
        raise ValueError(f"known_mask of shape {tuple(mask.shape)} does not broadcast to x {tuple(x.shape)}") from None
    if not torch.all((mask == 0) | (mask == 1)):
        raise ValueError("known_mask must hold only 0 (to fill in) and 1 (known)")
    T = schedule.T
    steps = T if steps is None else steps
    ts = discrete_timesteps(T, steps, "leading") + [-1]  # grid position p is timestep ts[p]; ts[steps] = clean
    labels = None
    if y is not None:
        labels = torch.as_tensor(y, device=x.device).long().expand(x.shape[0])
    eps_fn = classifier_free_guidance(eps_model, labels, float(guidance_scale))

    def known_at(t: int) -> torch.Tensor:
        if t < 0:
            return x
        return q_sample(schedule, x, torch.full((x.shape[0],), t, device=x.device), randn_like(x, generator))

    state = randn_like(x, generator) if x_T is None else x_T.to(x)
    state = mask * known_at(ts[0]) + (1 - mask) * state
    path = repaint_path(steps, jump_length, resamplings)
    with torch.no_grad():
        for i, (here, there) in enumerate(zip(path[:-1], path[1:], strict=True)):
            t, t_next = ts[here], ts[there]
            if there > here:  # down: one ancestral step of the (respaced) chain, then the known region again
                eps = eps_fn(state, torch.full((x.shape[0],), t, dtype=x.dtype, device=x.device))
                noise = randn_like(x, generator) if t_next >= 0 else None
                state = ddpm_step(schedule, state, eps, t, noise, variance, t_next)
                state = mask * known_at(t_next) + (1 - mask) * state
            else:  # up, to the noisier t_next: q(x_{t_next} | x_t) = N(sqrt(r) x_t, (1 - r) I), r = ab_next / ab_t
                ratio = float(schedule.alpha_bar_at(t_next) / schedule.alpha_bar_at(t))
                state = math.sqrt(ratio) * state + math.sqrt(1.0 - ratio) * randn_like(x, generator)
            if callback is not None:
                callback({"i": i, "moves": len(path) - 1, "t": t_next, "x": state})
    return mask * x + (1 - mask) * state
