"""Does training queued 2D jobs as one batched model pay on this CPU? (issue 11: a class trains at once)

    python benchmarks/batched_training.py [--steps 300] [--threads 1] [--models 1,2,3,4,6,8]

Times the default 2D recipe (core.train_2d.DEFAULT_2D_TRAIN: the MLP of DEFAULT_MLP, batch 512, AdamW, clipping,
EMA) in the worker's setting (one torch thread): one job alone (core.train_2d.train_ddpm_2d) against M jobs
trained together by core.train_2d_batch.train_ddpm_2d_batch (batched matmuls, core.models.mlp_batch), and against
the same M models stacked with torch.func (stack_module_state + functional_call + vmap). Each job has its own
data, seed and loss. It prints milliseconds per job-step and the gain over one job at a time
(results/batched_training.txt); the job runner would batch only if the gain were well above 1, and on this CPU
it is not.
"""

from __future__ import annotations

import argparse
import copy
import time
from dataclasses import replace

import torch
from torch.func import functional_call, stack_module_state, vmap

from core.checkpoints import hardware_description
from core.data.toy2d import TOY_NAMES, sample_toy
from core.models.mlp import MLPConfig, MLPDenoiser
from core.schedules import make_schedule
from core.train_2d import DEFAULT_2D_TRAIN, DEFAULT_MLP, train_ddpm_2d
from core.train_2d_batch import BatchJob, train_ddpm_2d_batch


def alone(steps: int) -> float:
    """Seconds per step of one default-recipe job."""
    cfg = replace(DEFAULT_2D_TRAIN, steps=steps)
    t0 = time.perf_counter()
    train_ddpm_2d("eight_gaussians", make_schedule("cosine", 1000), cfg)
    return (time.perf_counter() - t0) / steps


def batched(models: int, steps: int) -> float:
    """Seconds per step of ``models`` jobs (different toys and seeds) trained as one MLPBatch."""
    cfg = replace(DEFAULT_2D_TRAIN, steps=steps)
    jobs = [BatchJob(TOY_NAMES[m % len(TOY_NAMES)], seed=m) for m in range(models)]
    t0 = time.perf_counter()
    train_ddpm_2d_batch(jobs, make_schedule("cosine", 1000), cfg)
    return (time.perf_counter() - t0) / steps


def vmapped(models: int, steps: int) -> float:
    """Seconds per step of the same models through torch.func's vmap (forward, backward, per-model clip, AdamW)."""
    cfg, batch = MLPConfig(**DEFAULT_MLP), DEFAULT_2D_TRAIN.batch_size
    nets = []
    for m in range(models):
        torch.manual_seed(m)
        nets.append(MLPDenoiser(cfg))
    params, buffers = stack_module_state(nets)
    base = copy.deepcopy(nets[0]).to("meta")

    def f(p, b, x, t):
        return functional_call(base, (p, b), (x, t))

    opt = torch.optim.AdamW(list(params.values()), lr=1e-3, fused=True)
    gens = [torch.Generator().manual_seed(m) for m in range(models)]
    t0 = time.perf_counter()
    for _ in range(steps):
        x = torch.stack([sample_toy("eight_gaussians", batch, g) for g in gens])
        t = torch.stack([torch.randint(0, cfg.T, (batch,), generator=g).float() for g in gens])
        noise = torch.stack([torch.randn(batch, 2, generator=g) for g in gens])
        loss = (vmap(f)(params, buffers, x, t) - noise).pow(2).mean(dim=(1, 2)).sum()
        opt.zero_grad()
        loss.backward()
        norms = torch.stack([p.grad.flatten(1).pow(2).sum(1) for p in params.values()]).sum(0).sqrt()
        scale = (1.0 / (norms + 1e-6)).clamp(max=1.0)
        for p in params.values():
            p.grad.mul_(scale.reshape(-1, *([1] * (p.dim() - 1))))
        opt.step()
    return (time.perf_counter() - t0) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--models", default="1,2,3,4,6,8")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"# {hardware_description()}; {args.threads} torch thread(s); MLP {DEFAULT_MLP}, batch "
          f"{DEFAULT_2D_TRAIN.batch_size}, {args.steps} steps per row, best of 2")
    batched(2, 5)  # warm-up
    print(f"{'jobs':>5} {'alone ms/step':>14} {'batched ms/job-step':>20} {'gain':>6} {'vmap ms/job-step':>17} "
          f"{'gain':>6}")
    for m in (int(v) for v in args.models.split(",")):
        # alone is re-measured beside every row: this machine's speed drifts by 20% from minute to minute
        single = min(alone(args.steps) for _ in range(2))
        b = min(batched(m, args.steps) for _ in range(2))
        v = min(vmapped(m, args.steps) for _ in range(2))
        print(f"{m:>5} {1000 * single:14.2f} {1000 * b / m:20.2f} {single * m / b:6.2f} {1000 * v / m:17.2f} "
              f"{single * m / v:6.2f}", flush=True)

if __name__ == "__main__":
    main()
