"""Flow matching beside diffusion on the shipped 2D models: sample quality against network evaluations (NFE),
and how straight each flow's paths are.

    python benchmarks/flow.py [--toys eight_gaussians,two_moons,checkerboard] [--nfe 2,5,10,20,50] [--n 5000]

Quality: sliced Wasserstein to fresh data divided by the data-vs-data floor (1 = as good as a second draw of the
data), n samples from one seed. Rows: fm-<toy> with Euler, midpoint and Heun (2 NFE per step), fm-reflow-<toy>
with Euler (when shipped), and ddpm-<toy> with DDIM and DPM-Solver++(2M) at the same budget. Straightness
(Liu et al. 2023; 0 = straight paths, which one Euler step integrates exactly) on 2,000 noises, Euler-100.
"""

from __future__ import annotations

import argparse
import json

import torch

from core.checkpoints import hardware_description, load_pretrained, pretrained_names
from core.evaluate import quality_at_nfe
from core.flow import straightness

ROWS = (("fm", "euler"), ("fm", "midpoint"), ("fm", "heun"), ("fm-reflow", "euler"), ("ddpm", "ddim"),
        ("ddpm", "dpm_solver_2m"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--toys", default="eight_gaussians,two_moons,checkerboard")
    parser.add_argument("--nfe", default="2,5,10,20,50")
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="also write the rows to this file")
    args = parser.parse_args()
    budgets = [int(b) for b in args.nfe.split(",")]
    names = set(pretrained_names())
    print(f"# {hardware_description()}; n = {args.n}, seed {args.seed}; cells: SW / floor at that NFE")
    rows = []
    for toy in args.toys.split(","):
        probe = torch.randn(2000, 2, generator=torch.Generator().manual_seed(1))
        header = f"{toy:<34} {'straight':>8} " + " ".join(f"{'NFE ' + str(b):>7}" for b in budgets)
        print("\n" + header + "\n" + "-" * len(header))
        for prefix, method in ROWS:
            name = f"{prefix}-{toy}"
            if name not in names:
                continue
            p = load_pretrained(name)
            s = f"{straightness(p.model, probe):.4f}" if prefix != "ddpm" else "-"
            cells = []
            for b in budgets:
                q = quality_at_nfe(p, method, b, n=args.n, seed=args.seed)
                cells.append(q)
                rows.append({"toy": toy, "model": name, "method": method, "nfe": b,
                             **({"sw_ratio": q["sw_ratio"], "steps": q["steps"], "nfe_used": q["nfe"]} if q else {})})
            print(f"{name + ' ' + method:<34} {s:>8} "
                  + " ".join(f"{q['sw_ratio']:>7.2f}" if q else f"{'-':>7}" for q in cells))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
