"""Improved DDPM on MNIST: bits per dimension of held-out digits and few-step ancestral sampling, learned variances
(iddpm-mnist, L_hybrid) beside fixed ones (iddpm-mnist and ddpm-mnist, L_simple) (Nichol & Dhariwal 2021).

    python benchmarks/improved_ddpm_mnist.py [--n-bpd 100] [--n 1000] [--steps 25] \
        [--json benchmarks/results/improved_ddpm_mnist.json]

Bits/dim: the full bound over all T steps with the discretised decoder and the prior (core.diffusion.vlb_terms, the
terms that core.diffusion.bits_per_dim sums) on the first --n-bpd digits of the held-out split, unconditional (the
null label); each row also keeps the mean term per step on a log-spaced grid of steps (the paper's fig. 2).
Samples: --n digits, ten of each class, by ancestral sampling on a respaced chain of --steps steps under each
variance (guidance scale 1), judged by FID-MNIST against the held-out digits (the features of classifier-mnist) and
by its accuracy on the asked digit.
"""

from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np
import torch

from core.checkpoints import hardware_description, load_pretrained
from core.data.mnist import load_mnist
from core.diffusion import vlb_terms
from core.evaluate import classify, sample_images
from core.metrics import frechet_distance

TERM_STEPS = 60  # log-spaced paper steps t at which each row keeps its mean term L_{t-1} (t = 1: the decoder L_0)
ROWS = (("ddpm-mnist", "beta"), ("ddpm-mnist", "beta_tilde"), ("iddpm-mnist", "beta"),
        ("iddpm-mnist", "beta_tilde"), ("iddpm-mnist", "learned"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-bpd", type=int, default=100)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    test = load_mnist("test")
    judge = load_pretrained("classifier-mnist").model
    _, test_feat = classify(judge, test.images)
    x = test.images[:args.n_bpd]
    wanted = torch.arange(args.n) % 10
    print(f"# {hardware_description()}; bits/dim on {len(x)} held-out digits ({test.source}); {args.n} samples "
          f"per row, ddpm-{args.steps} respaced, FID-MNIST against {len(test_feat)} held-out digits")
    print(f"{'model':<12} {'variance':<10} {'bits/dim':>9} {'± s.e.':>7} {'s':>6} {'FID':>8} {'accuracy':>9} {'s':>6}")
    rows, models = [], {}
    for name, variance in ROWS:
        p = models.setdefault(name, load_pretrained(name))
        t0 = time.perf_counter()
        with torch.no_grad():
            terms = vlb_terms(p.model, p.schedule, x, variance=variance, decoder="discretized",
                              generator=torch.Generator().manual_seed(args.seed))
        per_step = torch.cat([terms["decoder"][:, None], terms["kl"]], dim=1) / (x[0].numel() * math.log(2.0))
        bpd = per_step.sum(1) + terms["prior"] / (x[0].numel() * math.log(2.0))  # = core.diffusion.bits_per_dim
        bpd_s = time.perf_counter() - t0
        steps_kept = np.unique(np.geomspace(1, p.schedule.T, TERM_STEPS).round().astype(int))
        t0 = time.perf_counter()
        images = sample_images(p, args.n, label=wanted, seed=args.seed, method="ddpm", steps=args.steps,
                               variance=variance)
        sample_s = time.perf_counter() - t0
        pred, feat = classify(judge, images)
        row = {"model": name, "variance": variance, "bits_per_dim": round(float(bpd.mean()), 4),
               "bits_per_dim_se": round(float(bpd.std() / len(bpd) ** 0.5), 4), "bpd_seconds": round(bpd_s, 1),
               "fid_mnist": round(frechet_distance(feat, test_feat), 3),
               "accuracy": round(float((pred == wanted).float().mean()), 4), "sample_seconds": round(sample_s, 1),
               "terms": {"t": steps_kept.tolist(),
                         "bits_per_dim": [float(f"{v:.5g}") for v in per_step.mean(0)[steps_kept - 1].tolist()]}}
        rows.append(row)
        print(f"{name:<12} {variance:<10} {row['bits_per_dim']:9.4f} {row['bits_per_dim_se']:7.4f} {bpd_s:6.1f} "
              f"{row['fid_mnist']:8.2f} {row['accuracy']:9.4f} {sample_s:6.1f}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"hardware": hardware_description(), "n_bpd": len(x), "n": args.n, "steps": args.steps,
                       "seed": args.seed, "data": test.source, "rows": rows}, f, indent=1)
        print(f"# wrote {args.json}")


if __name__ == "__main__":
    main()
