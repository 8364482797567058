"""Seconds to train a 2D DDPM per toy with the default recipe, and the quality it reaches.

    python benchmarks/train2d.py [--toys eight_gaussians,rings] [--steps 3000] [--threads 2] [--json out.json]

Quality: 50 DDIM steps, n = 5000 samples, sliced Wasserstein relative to the data-vs-data floor
(target: ratio <= 2 and every mode covered); time: the whole training loop, measured in this run.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from core.checkpoints import Pretrained, hardware_description
from core.data.toy2d import TOY_NAMES
from core.evaluate import evaluate_2d
from core.schedules import make_schedule
from core.train_2d import DEFAULT_2D_TRAIN, DEFAULT_MLP, train_ddpm_2d


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--toys", default=",".join(TOY_NAMES))
    parser.add_argument("--steps", type=int, default=DEFAULT_2D_TRAIN.steps)
    parser.add_argument("--schedule", default="cosine")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="also write the rows to this file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    schedule = make_schedule(args.schedule, T=1000)
    cfg = DEFAULT_2D_TRAIN.__class__(**{**DEFAULT_2D_TRAIN.to_dict(), "steps": args.steps, "seed": args.seed})
    print(f"# {hardware_description()}; recipe: MLP {DEFAULT_MLP}, {cfg.steps} steps x batch {cfg.batch_size}, "
          f"{args.schedule} schedule, T=1000")
    header = f"{'toy':<22} {'train s':>8} {'ms/step':>8} {'SW':>8} {'floor':>8} {'ratio':>6} {'modes':>7}"
    print(header)
    print("-" * len(header))
    rows = []
    for toy in args.toys.split(","):
        t0 = time.perf_counter()
        result, config = train_ddpm_2d(toy, schedule, cfg)
        seconds = time.perf_counter() - t0
        config["data"] = {"kind": "toy", "name": toy}
        p = Pretrained(model=result.ema_model, schedule=schedule, config=config)
        m = evaluate_2d(p, n=5000, seed=args.seed)
        modes = f"{m['modes_covered']}/{m['modes']}" if "modes" in m else "-"
        print(f"{toy:<22} {seconds:8.1f} {1000 * seconds / result.steps:8.2f} {m['sliced_wasserstein']:8.4f} "
              f"{m['sliced_wasserstein_floor']:8.4f} {m['sw_ratio']:6.2f} {modes:>7}", flush=True)
        rows.append({"toy": toy, "train_seconds": round(seconds, 2), **m})
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"hardware": hardware_description(), "threads": args.threads, "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
