"""Several 2D diffusion trainings of one recipe run at once as one batched network (a class pressing Train).

Each job keeps everything it would have alone: its data, its seed (the same initial weights, and the same batches,
timesteps and noise, drawn from its own generator in the order ``core.train_2d.train_ddpm_2d`` draws them), its
loss, its gradient clipping, its AdamW moments, its EMA and its non-finite guard. Only the arithmetic is shared:
one forward and backward pass of ``core.models.mlp_batch.MLPBatch`` per step, so a job's weights match its solo
run up to floating-point rounding, while the per-operation overhead of a small network is paid once per batch.

    results = train_ddpm_2d_batch([BatchJob("two_moons", seed=0), BatchJob(points, seed=3)], schedule, cfg)
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import nn

from core.diffusion import VPredictionDenoiser
from core.models.mlp import MLPConfig, MLPDenoiser
from core.models.mlp_batch import MLPBatch
from core.schedules import Schedule
from core.train_2d import DEFAULT_2D_TRAIN, DEFAULT_MLP, batch_sampler, ddpm_2d_config
from core.training import EMA, TrainConfig, TrainResult, lr_at


@dataclass(frozen=True)
class BatchJob:
    """One training of the batch: a toy name or an (n, 2) point cloud, and its seed."""

    data: str | torch.Tensor
    seed: int


Callback = Callable[[int, dict[str, Any]], bool | str | None]
OnFinish = Callable[[int, TrainResult, dict[str, Any]], None]


def train_ddpm_2d_batch(jobs: Sequence[BatchJob], schedule: Schedule, cfg: TrainConfig = DEFAULT_2D_TRAIN,
                        mlp: dict[str, Any] | None = None, callback: Callback | None = None,
                        on_finish: OnFinish | None = None) -> list[tuple[TrainResult, dict[str, Any]]]:
    """Train one unconditional 2D eps-model per job with L_simple (Ho et al. 2020, Algorithm 1), all at once.

    ``cfg`` is shared except its seed (each job's own). ``callback(j, info)`` runs after every step of job j with
    ``step, steps, loss, lr, seconds`` and ``ema_model`` (a function returning j's EMA eps-model now); a true value
    stops job j, which leaves the batch with its weights so far. ``seconds`` is j's share of the running time
    (each step's wall time divided by the jobs it trained), and the time budget counts that share.
    ``on_finish(j, result, config)`` runs as soon as job j leaves (its steps done, stopped, out of time or
    non-finite), so a stopped job does not wait for the others. Returns (result, config) per job, as
    ``train_ddpm_2d`` would have.
    """
    if not jobs:
        raise ValueError("train_ddpm_2d_batch needs at least one job")
    if cfg.device != "cpu" or cfg.precision != "fp32":
        raise ValueError("batched 2D training runs in fp32 on the CPU")
    model_cfg = MLPConfig(**{**DEFAULT_MLP, **(mlp or {}), "num_classes": 0, "T": schedule.T})
    members = []
    for job in jobs:
        torch.manual_seed(job.seed)  # each job's initial weights, as alone
        members.append(MLPDenoiser(model_cfg))
    batch = MLPBatch(members).train()
    next_batches = [batch_sampler(job.data, cfg.batch_size)[0] for job in jobs]
    generators = [torch.Generator().manual_seed(job.seed) for job in jobs]
    params = list(batch.parameters())

    def adamw(ps: list[nn.Parameter]) -> torch.optim.Optimizer:
        return torch.optim.AdamW(ps, lr=cfg.lr, weight_decay=cfg.weight_decay, betas=cfg.betas, fused=True)

    opt = adamw(params)
    ema = EMA(batch, cfg.ema_decay)
    alpha_bars = schedule.alpha_bars.float()
    losses: list[list[float]] = [[] for _ in jobs]
    seconds = [0.0] * len(jobs)
    steps_done = [0] * len(jobs)
    out: list[tuple[TrainResult, dict[str, Any]] | None] = [None] * len(jobs)
    active = list(range(len(jobs)))  # the job of each row of the batch

    def leave(leaving: list[int], reason: str, message: Callable[[int], str]) -> None:
        """Finish these jobs and drop their rows from the batch (weights, EMA and AdamW state)."""
        nonlocal ema, opt, params
        rows = [active.index(j) for j in leaving]
        for row, j in zip(rows, leaving, strict=True):
            result = TrainResult(
                model=VPredictionDenoiser(batch.member(row), schedule).eval(),
                ema_model=VPredictionDenoiser(ema.model.member(row), schedule).eval().requires_grad_(False),
                losses=losses[j], steps=steps_done[j], seconds=seconds[j], stop_reason=reason,
                message=message(j))
            out[j] = (result, ddpm_2d_config(model_cfg, schedule, replace(cfg, seed=jobs[j].seed), result))
            if on_finish is not None:
                on_finish(j, *out[j])
        keep = [r for r in range(len(active)) if r not in rows]
        active[:] = [active[r] for r in keep]
        if keep and rows:
            ema, opt = _keep_rows(batch, ema, opt, adamw, keep)
            params = list(batch.parameters())

    for step in range(cfg.steps):
        if not active:
            break
        start = time.perf_counter()
        lr = lr_at(step, cfg)
        for group in opt.param_groups:
            group["lr"] = lr
        x0s, ts, noises = [], [], []
        for j in active:
            x0, _ = next_batches[j](step, generators[j])
            ts.append(torch.randint(0, schedule.T, (x0.shape[0],), generator=generators[j]))
            noises.append(torch.randn(x0.shape, generator=generators[j]))
            x0s.append(x0)
        x0, t, noise = torch.stack(x0s), torch.stack(ts), torch.stack(noises)
        ab = alpha_bars[t].unsqueeze(-1)
        x_t = ab.sqrt() * x0 + (1.0 - ab).sqrt() * noise  # q_sample, eq. 4
        eps = (1.0 - ab).sqrt() * x_t + ab.sqrt() * batch(x_t, t.float())  # v -> eps (VPredictionDenoiser)
        loss = (eps - noise).pow(2).mean(dim=(1, 2))  # each job's L_simple
        opt.zero_grad(set_to_none=True)
        loss.sum().backward()  # job j's loss depends on row j only: its gradient is its own
        grad_norm = torch.stack([p.grad.pow(2).flatten(1).sum(1) for p in params]).sum(0).sqrt()
        coef = (cfg.grad_clip / (grad_norm + 1e-6)).clamp(max=1.0)  # clip_grad_norm_, per job
        for p in params:
            p.grad.mul_(coef.view(-1, *([1] * (p.dim() - 1))))
        loss_values, norms = loss.detach().tolist(), grad_norm.tolist()
        bad = [r for r in range(len(active)) if not (math.isfinite(loss_values[r]) and math.isfinite(norms[r]))]
        if bad:
            leave([active[r] for r in bad], "nonfinite", lambda j, step=step: (
                f"training stopped at step {step}: the loss or gradient norm became non-finite "
                f"(try a lower learning rate); kept the weights from step {step - 1}"))
            loss_values = [v for r, v in enumerate(loss_values) if r not in bad]
            if not active:
                break
        opt.step()
        ema.update(batch)
        share = (time.perf_counter() - start) / len(active)
        for r, j in enumerate(active):
            losses[j].append(loss_values[r])
            steps_done[j] = step + 1
            seconds[j] += share
        stopped, out_of_time = [], []
        for r, j in enumerate(active):
            info = {"step": step + 1, "steps": cfg.steps, "loss": loss_values[r], "lr": lr, "seconds": seconds[j],
                    "ema_model": lambda r=r: VPredictionDenoiser(ema.model.member(r), schedule).eval()}
            if callback is not None and callback(j, info):
                stopped.append(j)
            elif cfg.time_budget_s is not None and seconds[j] >= cfg.time_budget_s and step + 1 < cfg.steps:
                out_of_time.append(j)
        leave(stopped, "callback", lambda j: f"stopped by request after {steps_done[j]} steps")
        leave(out_of_time, "time",
              lambda j: f"time budget of {cfg.time_budget_s:g} s reached after {steps_done[j]} steps")
    leave(list(active), "steps", lambda j: f"finished {cfg.steps} steps")
    return [o for o in out if o is not None]


@torch.no_grad()
def _keep_rows(batch: MLPBatch, ema: EMA, opt: torch.optim.Optimizer,
               make_optimizer: Callable[[list[nn.Parameter]], torch.optim.Optimizer], rows: list[int]
               ) -> tuple[EMA, torch.optim.Optimizer]:
    """Keep only these rows of the batch's weights, its EMA and its AdamW moments (the other jobs ended).

    The rows are new parameters (autograd remembers a parameter's shape), so the EMA and the optimiser are rebuilt
    around them, with their state sliced."""
    idx = torch.tensor(rows)
    state = opt.state_dict()
    for saved in state["state"].values():
        for key in ("exp_avg", "exp_avg_sq"):
            saved[key] = saved[key][idx]
    ema_rows = [p[idx].clone() for p in ema.model.parameters()]
    for k, p in enumerate(batch.weights):
        batch.weights[k] = nn.Parameter(p[idx].clone())
        if p.grad is not None:  # a step in progress (non-finite rows leave between backward and update)
            batch.weights[k].grad = p.grad[idx]
    new_opt = make_optimizer(list(batch.parameters()))
    new_opt.load_state_dict(state)
    new_ema = EMA(batch, ema.decay)
    new_ema.updates = ema.updates
    for p, row in zip(new_ema.model.parameters(), ema_rows, strict=True):
        p.copy_(row)
    return new_ema, new_opt
