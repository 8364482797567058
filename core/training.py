"""The one training loop: AdamW, warmup + cosine learning rate, EMA weights, gradient clipping,
a step and a time budget, a per-step callback, and a guard that stops on NaN/inf keeping good weights.
The same loop does mixed precision (bf16 autocast; fp16 autocast + GradScaler on CUDA), data-parallel
training across processes (DDP, when started by ``torchrun``) and resumable training-state checkpoints.

    result = train(model, loss_fn, next_batch, TrainConfig(steps=4000), callback=print_progress)
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import distributed as dist
from torch import nn

PRECISIONS = ("fp32", "bf16", "fp16")


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 4000
    batch_size: int = 1024
    lr: float = 3e-3
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)  # Adam's (beta1, beta2); GANs use (0.5, 0.999)
    warmup_steps: int = 100
    min_lr_ratio: float = 0.05  # cosine decay ends at lr * min_lr_ratio
    ema_decay: float = 0.995
    grad_clip: float = 1.0
    time_budget_s: float | None = None
    seed: int = 0
    device: str = "cpu"
    precision: str = "fp32"  # "fp32" | "bf16" (autocast) | "fp16" (autocast + GradScaler, CUDA only)

    def __post_init__(self) -> None:
        checks = [
            (isinstance(self.steps, int) and self.steps >= 1, f"steps must be a positive integer; got {self.steps!r}"),
            (isinstance(self.batch_size, int) and self.batch_size >= 1,
             f"batch_size must be a positive integer; got {self.batch_size!r}"),
            (self.lr > 0 and math.isfinite(self.lr), f"lr must be a positive number; got {self.lr!r}"),
            (0 <= self.ema_decay < 1, f"ema_decay must lie in [0, 1); got {self.ema_decay!r}"),
            (self.grad_clip > 0, f"grad_clip must be positive; got {self.grad_clip!r}"),
            (self.time_budget_s is None or self.time_budget_s > 0,
             f"time_budget_s must be positive; got {self.time_budget_s!r}"),
            (self.precision in PRECISIONS, f"precision must be one of {', '.join(PRECISIONS)}; got {self.precision!r}"),
            (self.precision != "fp16" or str(self.device).startswith("cuda"),
             "precision fp16 needs a CUDA device (on a CPU use bf16)"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TrainResult:
    model: nn.Module  # the raw weights after the last good step
    ema_model: nn.Module  # the exponential moving average: use this one for sampling
    losses: list[float] = field(default_factory=list)
    steps: int = 0
    seconds: float = 0.0
    stop_reason: str = "steps"  # "steps" | "time" | "callback" | "nonfinite"
    message: str = ""


class EMA:
    """Exponential moving average of parameters, with the usual warmup min(decay, (1+n)/(10+n))."""

    def __init__(self, model: nn.Module, decay: float):
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.decay = decay
        self.updates = 0
        self._params = list(self.model.parameters())  # walking the module tree every step costs ~10% of a 2D step
        self._buffers = list(self.model.buffers())
        self._source: tuple[nn.Module, list[torch.Tensor], list[torch.Tensor]] | None = None

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        if self._source is None or self._source[0] is not model:  # the parameters themselves: no_grad is on
            self._source = (model, list(model.parameters()), list(model.buffers()))
        _, params, buffers = self._source
        torch._foreach_lerp_(self._params, params, 1.0 - d)
        for b_ema, b in zip(self._buffers, buffers, strict=True):
            b_ema.copy_(b)


def loss_curve(losses: list[float], points: int = 200) -> list[float]:
    """The loss history averaged in ``points`` equal windows: small enough for a checkpoint's JSON."""
    if not losses:
        return []
    width = max(1, math.ceil(len(losses) / points))
    return [round(sum(chunk) / len(chunk), 5) for chunk in (losses[i:i + width] for i in range(0, len(losses), width))]


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warmup, then cosine decay to lr * min_lr_ratio at the last step."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))


LossFn = Callable[[nn.Module, Any, torch.Generator], torch.Tensor]
BatchFn = Callable[[int, torch.Generator], Any]


def world() -> tuple[int, int]:
    """(rank, world size) of this process: (0, 1) unless torch.distributed is initialised."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _autocast(cfg: TrainConfig, device: torch.device):
    if cfg.precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16 if cfg.precision == "bf16" else torch.float16)


def _mean_over_ranks(value: torch.Tensor) -> float:
    """The loss averaged over all ranks: the loss of the whole (global) batch, as one process would report."""
    value = value.float().clone()
    dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return value.item() / world()[1]


def _any_rank(flag: bool, device: torch.device) -> bool:
    """True on every rank when ``flag`` is True on any: all ranks stop at the same step."""
    if world()[1] == 1:
        return flag
    t = torch.tensor([float(flag)], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def train(model: nn.Module, loss_fn: LossFn, next_batch: BatchFn, cfg: TrainConfig,
          callback: Callable[[dict[str, Any]], bool | None] | None = None,
          state_path: str | Path | None = None, save_every: int = 0) -> TrainResult:
    """Minimise ``loss_fn(model, next_batch(step, g), g)`` for ``cfg.steps`` steps or ``cfg.time_budget_s``.

    ``callback(info)`` runs after every step with ``step, steps, loss, lr, seconds, model`` (the weights being
    trained) and ``ema_model``; returning True
    stops training (a cancel button). A non-finite loss or gradient stops training before the bad
    update is applied, so both returned models hold the last good weights.

    With ``state_path``, the full training state (weights, EMA, optimiser, loss scaler, random
    generators, losses) is written there every ``save_every`` steps and at the end, and a run that finds
    a state there resumes from it. Under ``torchrun`` (torch.distributed initialised) the model is wrapped
    in DistributedDataParallel: each rank's ``next_batch`` gives its share of the batch, gradients are
    averaged, and only rank 0 runs the callback and writes the state.
    """
    from core.checkpoints import load_training_state, save_training_state, training_state_exists

    device = torch.device(cfg.device)
    rank, world_size = world()
    model = model.to(device).train()
    g = torch.Generator(device=device).manual_seed(cfg.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=cfg.betas,
                            fused=device.type in ("cpu", "cuda"))
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.precision == "fp16")
    ema = EMA(model, cfg.ema_decay)
    result = TrainResult(model=model, ema_model=ema.model)
    first_step, seconds_before = 0, 0.0
    if state_path is not None and training_state_exists(state_path):
        saved = load_training_state(state_path, model, ema, opt, scaler, g, device)
        first_step, seconds_before, result.losses = saved["step"], saved["seconds"], saved["losses"]
        result.steps = first_step
    net = model
    if world_size > 1:
        from torch.nn.parallel import DistributedDataParallel
        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    def save() -> None:
        if state_path is not None and rank == 0:
            save_training_state(state_path, model, ema, opt, scaler, g, step=result.steps,
                                seconds=seconds_before + result.seconds, losses=result.losses)

    params = list(model.parameters())
    start = time.perf_counter()
    for step in range(first_step, cfg.steps):
        lr = lr_at(step, cfg)
        for group in opt.param_groups:
            group["lr"] = lr
        with _autocast(cfg, device):
            loss = loss_fn(net, next_batch(step, g), g)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
        grad_norm = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        loss_value = _mean_over_ranks(loss.detach()) if world_size > 1 else loss.item()
        finite = math.isfinite(loss_value) and bool(torch.isfinite(grad_norm))
        if cfg.precision == "fp16" and not bool(torch.isfinite(grad_norm)):
            scaler.update()  # an fp16 overflow: GradScaler skips the step and lowers the scale
            continue
        if _any_rank(not finite, device):
            what = "loss" if not math.isfinite(loss_value) else "gradient norm"
            result.stop_reason = "nonfinite"
            result.message = (f"training stopped at step {step}: the {what} became non-finite "
                              f"(try a lower learning rate); kept the weights from step {step - 1}")
            break
        scaler.step(opt)
        scaler.update()
        ema.update(model)
        result.losses.append(loss_value)
        result.steps = step + 1
        result.seconds = time.perf_counter() - start
        info = {"step": step + 1, "steps": cfg.steps, "loss": loss_value, "lr": lr,
                "seconds": seconds_before + result.seconds, "model": model, "ema_model": ema.model}
        if save_every and (step + 1) % save_every == 0:
            save()
        stop = rank == 0 and callback is not None and bool(callback(info))
        out_of_time = cfg.time_budget_s is not None and result.seconds >= cfg.time_budget_s
        if _any_rank(stop or out_of_time, device):
            result.stop_reason = "time" if out_of_time and not stop else "callback"
            result.message = (f"time budget of {cfg.time_budget_s:g} s reached after {step + 1} steps"
                              if result.stop_reason == "time" else f"stopped by request after {step + 1} steps")
            break
    else:
        result.message = f"finished {cfg.steps} steps" + (f" (resumed at step {first_step})" if first_step else "")
    result.seconds = time.perf_counter() - start
    if result.steps > first_step:
        save()
    result.seconds += seconds_before
    model.eval()
    return result
