"""Improved DDPM on the shipped 2D models: the learned variance, the bound's terms and the likelihood, and
ancestral sampling in few steps (Nichol & Dhariwal 2021, figs. 1, 2 and 8, table of NLLs).

    python benchmarks/improved_ddpm.py [--toys eight_gaussians,two_moons,swiss_roll] [--n 2000] \
        [--json benchmarks/results/improved_ddpm.json]

For each iddpm-<toy> (trained with L_hybrid, learned Sigma_theta): Sigma_theta over t on noised data beside
beta_t and beta_tilde_t; the mean bound term L_{t-1} per t with fixed beta, fixed beta_tilde and the learned
variance; negative log-likelihoods in nats per dimension (the three bounds, the model's exact PF-ODE value on a
subset, and on a mixture the true value); and ancestral sampling with 10, 25, 50 and 100 respaced steps under
each variance, scored by sliced Wasserstein to fresh data over the data-vs-data floor (the mean over --seeds runs,
each with its own noise and data draw: one run's ratio moves by 0.2 at n = 2,000). The Improved DDPM page
draws this file.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from core.analytic import toy_mixture
from core.checkpoints import hardware_description, load_pretrained
from core.data.toy2d import MIXTURE_TOYS, sample_toy
from core.diffusion import learned_variance, model_variance, q_sample, vlb_terms
from core.likelihood import ode_log_likelihood
from core.metrics import data_floor, sliced_wasserstein
from core.samplers import sample

VARIANCES = ("beta", "beta_tilde", "learned")
STEPS = (10, 25, 50, 100)


def t_grid(T: int, k: int = 80) -> list[int]:
    """k timesteps, dense near t = 0 where the variances differ."""
    return sorted({int(v) for v in np.round(np.geomspace(1, T, k)) - 1})


def sigma_curve(p, x0: torch.Tensor, ts: list[int]) -> dict[str, list[float]]:
    """Sigma_theta(x_t, t) over noised data (mean over points and dimensions, with its 10-90% band)."""
    s, g = p.schedule, torch.Generator().manual_seed(5)
    mean, lo, hi = [], [], []
    with torch.no_grad():
        for t in ts:
            tt = torch.full((x0.shape[0],), t)
            x_t = q_sample(s, x0, tt, torch.randn(x0.shape, generator=g))
            _, v = p.model.eps_and_v(x_t, tt.float())
            var = learned_variance(s, tt, v, x_t).mean(1)
            mean.append(float(var.mean()))
            lo.append(float(var.quantile(0.1)))
            hi.append(float(var.quantile(0.9)))
    return {"learned": mean, "learned_q10": lo, "learned_q90": hi,
            "beta": [float(s.betas[t]) for t in ts],
            "beta_tilde": [float(model_variance(s, "beta_tilde")[t]) for t in ts]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--toys", default="eight_gaussians,two_moons,swiss_roll")
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--n-ode", type=int, default=200, help="points for the PF-ODE likelihood (slow)")
    parser.add_argument("--n-samples", type=int, default=5000, help="ancestral samples per run")
    parser.add_argument("--seeds", type=int, default=3, help="ancestral runs (noise and data draws) averaged")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    out: dict = {"hardware": hardware_description(), "n": args.n, "n_samples": args.n_samples, "seeds": args.seeds,
                 "seed": args.seed, "models": {}}
    print(f"# {out['hardware']}; n = {args.n}; NLL in nats per dimension; samples: SW / floor")
    for toy in args.toys.split(","):
        t0 = time.perf_counter()
        p = load_pretrained(f"iddpm-{toy}")
        s = p.schedule
        x0 = sample_toy(toy, args.n, torch.Generator().manual_seed(20_000 + args.seed))
        ts = t_grid(s.T)
        row: dict = {"t": ts, "sigma": sigma_curve(p, x0[:1000], ts), "terms": {}, "nll": {}, "ancestral": {}}
        for v in VARIANCES:
            terms = vlb_terms(p.model, s, x0, variance=v, generator=torch.Generator().manual_seed(args.seed))
            per_t = torch.cat([terms["decoder"].unsqueeze(1), terms["kl"]], dim=1).mean(0) / x0.shape[1]
            row["terms"][v] = [float(per_t[t]) for t in ts]
            bound = (terms["prior"] + terms["kl"].sum(1) + terms["decoder"]) / x0.shape[1]
            row["nll"][f"bound_{v}"] = round(float(bound.mean()), 4)
            row["nll"][f"bound_{v}_se"] = round(float(bound.std() / len(bound) ** 0.5), 4)
        row["nll"]["pf_ode"] = round(float(-ode_log_likelihood(p.model, s, x0[:args.n_ode]).mean()) / 2, 4)
        if toy in MIXTURE_TOYS:
            row["nll"]["true"] = round(float(-toy_mixture(toy).log_prob(x0).double().mean()) / 2, 4)
        n_s = args.n_samples
        g = torch.Generator().manual_seed(10_000 + args.seed)
        floor = data_floor(lambda m, gen, toy=toy: sample_toy(toy, m, gen), n_s, repeats=4, generator=g)
        refs = [sample_toy(toy, n_s, g) for _ in range(args.seeds)]
        for v in VARIANCES:
            row["ancestral"][v] = {}
            for steps in STEPS:
                sws = []
                for k in range(args.seeds):  # a fresh x_T and a fresh data draw each: the ratio's noise averages out
                    x_T = torch.randn(n_s, 2, generator=torch.Generator().manual_seed(args.seed + k))
                    x = sample(p.model, s, x_T, method="ddpm", steps=steps, variance=v, keep_trajectory=False,
                               generator=torch.Generator().manual_seed(args.seed + 100 + k)).x0
                    sws.append(sliced_wasserstein(x, refs[k], generator=torch.Generator().manual_seed(k)))
                row["ancestral"][v][str(steps)] = round(float(np.mean(sws)) / floor, 3)
        row["seconds"] = round(time.perf_counter() - t0, 1)
        out["models"][toy] = row
        nll = row["nll"]
        print(f"{toy}: NLL bound beta {nll['bound_beta']:.4f}, beta_tilde {nll['bound_beta_tilde']:.4f}, learned "
              f"{nll['bound_learned']:.4f}, PF-ODE {nll['pf_ode']:.4f}" +
              (f", true {nll['true']:.4f}" if "true" in nll else "") + f" ({row['seconds']} s)")
        for v in VARIANCES:
            cells = "  ".join(f"{k:>3}: {r:5.2f}" for k, r in row["ancestral"][v].items())
            print(f"  ancestral, {v:<10}  {cells}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
        print(f"# wrote {args.json}")


if __name__ == "__main__":
    main()
