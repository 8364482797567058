"""Seconds to draw 1,000 samples from each pretrained model of the three families, on one machine, one thread count.

    python benchmarks/baselines.py [--threads 1] [--repeats 5] [--json benchmarks/results/baselines.json]
        [--txt benchmarks/results/baselines.txt] [--datasets eight_gaussians,mnist] [--mnist-diffusion-repeats 3]

2D toys: the diffusion model with DDIM-50 (50 network evaluations, NFE) against one generator pass of the GAN,
the GAN with the R1 penalty and the VAE (NFE 1), 1,000 points each. MNIST: the diffusion UNet with DDIM-50,
unconditional (NFE 50) and with classifier-free guidance w = 3 (each step one batch of 2 x the digits: NFE 100),
timed on 100 digits and scaled x 10 (sampling cost is linear in the number of digits at this batch size), against
the GAN and VAE on 1,000 digits. Each time is the median of ``--repeats`` runs after one warm-up run; the
sampling call is the one `python -m core evaluate` uses (core.evaluate.sample_2d / sample_images).
The dashboard's "Diffusion vs GAN vs VAE" page reads the JSON file; it never times sampling on load.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

import torch

from core.checkpoints import git_revision, hardware_description, load_pretrained, pretrained_names
from core.evaluate import parameter_counts, sample_2d, sample_images

ROOT = Path(__file__).resolve().parent.parent
TOYS = ("eight_gaussians", "twenty_five_gaussians", "swiss_roll", "two_moons")  # the toys with GAN/VAE baselines
DATASETS = (*TOYS, "mnist")
PREFIXES = ("ddpm", "gan", "gan-r1", "vae")
N = 1000
MNIST_DDPM_N = 100  # digits timed for the diffusion model on MNIST (scaled to 1,000)
DDIM_STEPS = 50
GUIDANCE = 3.0
ONE_PASS = {"gan": "one generator pass", "gan-r1": "one generator pass", "vae": "one decoder pass"}


def cases(datasets: list[str]) -> list[dict[str, Any]]:
    """What to time: one case per (model, sampler) that exists in pretrained/."""
    have = set(pretrained_names())
    out = []
    for d in datasets:
        for prefix in PREFIXES:
            name = f"{prefix}-{d}"
            if name not in have:
                continue
            diffusion = prefix == "ddpm"
            if d == "mnist":
                if diffusion:
                    out.append(dict(model=name, dataset=d, family="ddpm", sampler="ddim-50, unconditional", nfe=50,
                                    measured_n=MNIST_DDPM_N, guidance=None))
                    out.append(dict(model=name, dataset=d, family="ddpm", sampler=f"ddim-50, guided w = {GUIDANCE:g}",
                                    nfe=2 * DDIM_STEPS, measured_n=MNIST_DDPM_N, guidance=GUIDANCE))
                else:
                    out.append(dict(model=name, dataset=d, family=prefix.split("-")[0], sampler=ONE_PASS[prefix],
                                    nfe=1, measured_n=N, guidance=None))
            else:
                out.append(dict(model=name, dataset=d, family=prefix.split("-")[0],
                                sampler="ddim-50" if diffusion else ONE_PASS[prefix],
                                nfe=DDIM_STEPS if diffusion else 1, measured_n=N, guidance=None))
    return out


def sampler_call(p, case: dict[str, Any], seed: int):
    n = case["measured_n"]
    if case["dataset"] != "mnist":
        return lambda: sample_2d(p, n, seed=seed, method="ddim", steps=DDIM_STEPS)
    if case["guidance"] is None:
        return lambda: sample_images(p, n, label=None, seed=seed, method="ddim", steps=DDIM_STEPS)
    labels = torch.arange(n) % 10
    return lambda: sample_images(p, n, label=labels, guidance_scale=case["guidance"], seed=seed, method="ddim",
                                 steps=DDIM_STEPS)


def time_case(case: dict[str, Any], repeats: int) -> dict[str, Any]:
    p = load_pretrained(case["model"])
    p.model.eval()
    times = []
    with torch.no_grad():
        sampler_call(p, case, seed=0)()  # warm-up: first-call allocations
        for r in range(repeats):
            fn = sampler_call(p, case, seed=1 + r)
            t0 = time.perf_counter()
            x = fn()
            times.append(time.perf_counter() - t0)
    assert torch.isfinite(x).all()
    seconds = statistics.median(times)
    scale = N / case["measured_n"]
    used, total = parameter_counts(p.model)
    return {**{k: v for k, v in case.items() if k != "guidance"}, "guidance_scale": case["guidance"],
            "scale": scale, "seconds_measured": round(seconds, 5), "seconds_per_1000": round(seconds * scale, 4),
            "ms_per_sample": round(1000 * seconds / case["measured_n"], 5), "repeats": repeats,
            "min_seconds_per_1000": round(min(times) * scale, 4), "max_seconds_per_1000": round(max(times) * scale, 4),
            "params_sampling": used, "params_total": total}


def table(result: dict[str, Any]) -> str:
    lines = [f"# baselines sampling benchmark, {result['created']}, git {result['git_revision']}; "
             f"{result['hardware']}; torch.set_num_threads({result['threads']})",
             f"# seconds to draw 1,000 samples: median of {result['repeats']} runs after a warm-up (min-max beside "
             f"it; MNIST diffusion: {result['mnist_diffusion_repeats']} runs); MNIST diffusion rows timed on "
             f"{MNIST_DDPM_N} digits and scaled x {N // MNIST_DDPM_N}",
             "# NFE: network evaluations per sample (DDIM-50 = 50; classifier-free guidance evaluates the "
             "conditional and unconditional branch: 100); GAN/VAE: one generator/decoder pass",
             "# params: used to sample / trained (GAN: generator / + discriminator; VAE: decoder / + encoder)",
             ""]
    header = (f"{'model':<28} {'sampler':<26} {'NFE':>4} {'n timed':>7} {'s / 1000':>9} {'min-max':>15} "
              f"{'vs fastest':>10} {'params used':>11} {'trained':>9}")
    lines += [header, "-" * len(header)]
    for d in result["datasets"]:
        rows = [r for r in result["rows"] if r["dataset"] == d]
        if not rows:
            continue
        fastest = min(r["seconds_per_1000"] for r in rows)
        for r in rows:
            spread = f"{r['min_seconds_per_1000']:.3f}-{r['max_seconds_per_1000']:.3f}"
            lines.append(f"{r['model']:<28} {r['sampler']:<26} {r['nfe']:>4} {r['measured_n']:>7} "
                         f"{r['seconds_per_1000']:>9.4f} {spread:>15} {r['seconds_per_1000'] / fastest:>9.0f}x "
                         f"{r['params_sampling']:>11,} {r['params_total']:>9,}")
        lines.append("")
    lines.append(f"# runtime: {result['seconds']:.0f} s")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--mnist-diffusion-repeats", type=int, default=3,
                        help="repeats of the MNIST diffusion rows (each run is tens of seconds on a CPU)")
    parser.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "baselines.json"))
    parser.add_argument("--txt", default=str(ROOT / "benchmarks" / "results" / "baselines.txt"))
    args = parser.parse_args(argv)
    datasets = [d.strip() for d in args.datasets.split(",") if d.strip()]
    bad = [d for d in datasets if d not in DATASETS]
    if bad:
        raise SystemExit(f"unknown datasets {bad}; expected some of: {', '.join(DATASETS)}")
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    rows = []
    for case in cases(datasets):
        slow = case["dataset"] == "mnist" and case["family"] == "ddpm"
        row = time_case(case, args.mnist_diffusion_repeats if slow else args.repeats)
        print(f"{row['model']:<28} {row['sampler']:<26} NFE {row['nfe']:>3}: {row['seconds_per_1000']:.4f} s / 1000",
              flush=True)
        rows.append(row)
    result = {"benchmark": "baselines", "created": str(date.today()), "git_revision": git_revision(),
              "hardware": hardware_description(), "threads": args.threads, "repeats": args.repeats,
              "mnist_diffusion_repeats": args.mnist_diffusion_repeats,
              "datasets": datasets, "n": N, "mnist_ddpm_measured_n": MNIST_DDPM_N, "ddim_steps": DDIM_STEPS,
              "rows": rows, "seconds": round(time.perf_counter() - started, 1)}
    text = table(result)
    print("\n" + text)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    if args.txt:
        Path(args.txt).write_text(text)
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
