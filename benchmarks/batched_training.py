"""Does training queued 2D jobs as one vectorised model pay on this CPU? (issue: a class trains at once)

    python benchmarks/batched_training.py [--steps 200] [--threads 1] [--models 1,4,10,30]

Times training steps of the default 2D recipe's MLP (core.train_2d.DEFAULT_MLP, batch 512, AdamW) one model at a
time against M models stacked with torch.func (stack_module_state + functional_call + vmap), each model with its
own data, noise and loss, in the worker's setting (one torch thread). It prints seconds per model-step: the
batch wins only if that falls well below the one-model figure.
"""

from __future__ import annotations

import argparse
import copy
import time

import torch
from torch.func import functional_call, stack_module_state, vmap

from core.checkpoints import hardware_description
from core.data.toy2d import sample_toy
from core.models.mlp import MLPConfig, MLPDenoiser
from core.train_2d import DEFAULT_2D_TRAIN, DEFAULT_MLP


def one_model(steps: int, batch: int, cfg: MLPConfig) -> float:
    torch.manual_seed(0)
    net = MLPDenoiser(cfg)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, fused=True)
    g = torch.Generator().manual_seed(0)
    t0 = time.perf_counter()
    for _ in range(steps):
        x = sample_toy("eight_gaussians", batch, g)
        t = torch.randint(0, cfg.T, (batch,), generator=g).float()
        loss = (net(x, t) - torch.randn(batch, 2, generator=g)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
    return (time.perf_counter() - t0) / steps


def stacked(models: int, steps: int, batch: int, cfg: MLPConfig) -> float:
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
        scale = (1.0 / (norms + 1e-6)).clamp(max=1.0)  # per-model gradient clipping at 1
        for p in params.values():
            p.grad.mul_(scale.reshape(-1, *([1] * (p.dim() - 1))))
        opt.step()
    return (time.perf_counter() - t0) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--models", default="1,4,10,30")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cfg = MLPConfig(**DEFAULT_MLP)
    batch = DEFAULT_2D_TRAIN.batch_size
    print(f"# {hardware_description()}; {args.threads} torch thread(s); MLP {DEFAULT_MLP}, batch {batch}, "
          f"{args.steps} steps per row")
    stacked(2, 5, batch, cfg)  # warm-up
    single = min(one_model(args.steps, batch, cfg) for _ in range(2))
    print(f"{'models':>6} {'ms / step':>10} {'ms / model-step':>16} {'vs one at a time':>17}")
    print(f"{'1 alone':>6} {1000 * single:10.2f} {1000 * single:16.2f} {1.0:17.2f}")
    for m in (int(v) for v in args.models.split(",")):
        s = min(stacked(m, args.steps, batch, cfg) for _ in range(2))
        print(f"{m:>6} {1000 * s:10.2f} {1000 * s / m:16.2f} {single * m / s:17.2f}", flush=True)


if __name__ == "__main__":
    main()
