"""Guidance on the labelled 2D toys against the exact class-conditional p(x | y): the share of samples in the
asked class (fidelity) and the sliced Wasserstein distance to p(x | y) over its floor, per way of guiding.

    python benchmarks/guidance_2d.py [--toys eight_gaussians ...] [--n 500 1000 2000] \
        [--json benchmarks/results/guidance_2d.json]
    python benchmarks/guidance_2d.py --n --json benchmarks/results/guidance_2d.json   # the sweep only (minutes)

Rows, all DDIM-50 from the same x_T per class, on its default "leading" grid and on the "quadratic" one (denser
near t = 0, Song et al. 2021 app. D.2): the conditional model ddpm-cond-<toy> at w = 1; exact classifier
guidance at scale 1 on the same network's unconditional path (mixtures only); the learned noisy classifier
noisy-classifier-<toy> at scale 1 on that path; and the exact eps of p(x_t | y) itself (mixtures), which shows what
DDIM-50's discretisation alone costs. Then a scale sweep per class (n = 500 per scale, the leading grid; the
Guidance page draws it) for classifier-free guidance and both classifier guidances: fidelity rises with the scale
while the distance to p(x | y) grows.
"""

from __future__ import annotations

import argparse
import json
from functools import lru_cache

import torch

from core.analytic import toy_mixture
from core.checkpoints import hardware_description, load_pretrained
from core.data.toy2d import MIXTURE_TOYS, NUM_CLASSES
from core.guidance import RowwiseGuidance, classifier_guidance, classifier_log_prob
from core.guidance_eval import conditional_floor, conditional_sw, fidelity
from core.samplers import sample

SCALES = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0)  # the Guidance page's sweep
_load = lru_cache(maxsize=None)(load_pretrained)


def _ways(toy: str, y: int, scale: float) -> dict:
    """eps models (with the labels to pass) for each way of reaching class y."""
    p, c = _load(f"ddpm-cond-{toy}"), _load(f"noisy-classifier-{toy}")
    s = p.schedule
    ways = {"conditional (CFG w)": (p.model, {"y": y, "guidance_scale": scale}),
            "classifier, learned": (classifier_guidance(p.model, classifier_log_prob(c.model.eval(), y), s, None,
                                                        scale), {})}
    if toy in MIXTURE_TOYS:
        gm = toy_mixture(toy)
        ways["classifier, exact q(y|x_t)"] = (classifier_guidance(p.model, gm.log_p_y(y, s), s, None, scale), {})
        if scale == 1.0:
            ways["exact eps of p(x_t|y)"] = (gm.as_eps_model(s), {"y": y})
    return ways


def _measure(toy: str, y: int, n: int, scale: float, seed: int, spacing: str) -> dict[str, tuple[float, float]]:
    s = _load(f"ddpm-cond-{toy}").schedule
    x_T = torch.randn(n, 2, generator=torch.Generator().manual_seed(seed + y))
    out = {}
    for name, (model, kw) in _ways(toy, y, scale).items():
        x = sample(model, s, x_T, "ddim", 50, keep_trajectory=False, spacing=spacing, **kw).xs[-1]
        out[name] = (fidelity(toy, x, y), conditional_sw(toy, x, y, seed=100 + y))
    return out


def _sweep(toy: str, y: int, n: int, seed: int) -> list[dict]:
    """Fidelity and SW / floor at every scale of SCALES for classifier-free guidance and both classifier guidances,
    all scales of a method as one batch (one scale per row), from the same x_T at every scale."""
    p, c = _load(f"ddpm-cond-{toy}"), _load(f"noisy-classifier-{toy}")
    s = p.schedule
    w = torch.tensor(SCALES, dtype=torch.float32).repeat_interleave(n)
    x_T = torch.randn(n, 2, generator=torch.Generator().manual_seed(seed + 1000 + y)).repeat(len(SCALES), 1)
    methods = {"cfg": (RowwiseGuidance(p.model, w), {"y": y}),
               "cg_learned": (classifier_guidance(p.model, classifier_log_prob(c.model.eval(), y), s, None, w), {})}
    if toy in MIXTURE_TOYS:
        methods["cg_exact"] = (classifier_guidance(p.model, toy_mixture(toy).log_p_y(y, s), s, None, w), {})
    floor = conditional_floor(toy, y, n, seed=y)
    rows = []
    for method, (model, kw) in methods.items():
        x = sample(model, s, x_T, "ddim", 50, keep_trajectory=False, **kw).xs[-1]
        for scale, block in zip(SCALES, x.split(n), strict=True):
            finite = block[torch.isfinite(block).all(1)]
            ratio = conditional_sw(toy, finite, y, seed=100 + y) / floor if finite.shape[0] >= 2 else float("inf")
            rows.append({"toy": toy, "y": y, "method": method, "scale": scale,
                         "fidelity": round(fidelity(toy, block, y), 4), "sw_ratio": round(ratio, 3)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--toys", nargs="+", default=["eight_gaussians", "twenty_five_gaussians", "two_moons",
                                                      "swiss_roll"])
    parser.add_argument("--n", type=int, nargs="*", default=[500, 1000, 2000],
                        help="sample sizes of the scale-1 table (none: only the sweep, which the Guidance page reads)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    result = {"at_scale_1": [], "sweep": [], "hardware": hardware_description(),
              "command": "python benchmarks/guidance_2d.py"}
    print("| toy | n | DDIM grid | way | fidelity (mean, min over classes) | SW / floor (mean, max over classes) |")
    print("|---|---|---|---|---|---|")
    for toy in args.toys:
        classes = range(NUM_CLASSES[toy])
        for n, spacing in [(n, sp) for n in args.n for sp in ("leading", "quadratic")]:
            floors = {y: conditional_floor(toy, y, n, seed=y) for y in classes}
            per = {y: _measure(toy, y, n, 1.0, args.seed, spacing) for y in classes}
            for way in per[0]:
                fid = [per[y][way][0] for y in classes]
                ratio = [per[y][way][1] / floors[y] for y in classes]
                row = {"toy": toy, "n": n, "spacing": spacing, "way": way,
                       "fidelity_mean": round(sum(fid) / len(fid), 4), "fidelity_min": round(min(fid), 4),
                       "sw_ratio_mean": round(sum(ratio) / len(ratio), 3), "sw_ratio_max": round(max(ratio), 3)}
                result["at_scale_1"].append(row)
                print(f"| {toy} | {n} | {spacing} | {way} | {row['fidelity_mean']:.3f}, {row['fidelity_min']:.3f} | "
                      f"{row['sw_ratio_mean']:.2f}, {row['sw_ratio_max']:.2f} |", flush=True)
    print("\nscale sweep, n = 500 per class and scale, means over classes")
    print("| toy | method | scale | fidelity | SW / floor |\n|---|---|---|---|---|")
    for toy in args.toys:
        rows = [row for y in range(NUM_CLASSES[toy]) for row in _sweep(toy, y, 500, args.seed)]
        result["sweep"] += rows
        for method in dict.fromkeys(r["method"] for r in rows):
            for w in SCALES:
                mine = [r for r in rows if r["method"] == method and r["scale"] == w]
                fid = sum(r["fidelity"] for r in mine) / len(mine)
                ratio = sum(r["sw_ratio"] for r in mine) / len(mine)
                print(f"| {toy} | {method} | {w:g} | {fid:.3f} | {ratio:.2f} |", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
