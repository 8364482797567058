"""Latent diffusion's cost argument, measured (Rombach et al. 2022): the pixel model ddpm-mnist beside ldm-mnist
(a UNet on the 4 x 7 x 7 latents of autoencoder-mnist) and ldm2d-mnist (an MLP on a 2-D latent), on the same CPU
in the same run.

    python benchmarks/latent.py [--n 1000] [--repeats 3] [--json benchmarks/results/latent.json]

Per model: the parameters used to sample (the denoiser, plus the decoder for a latent model), the training time and
hardware its manifest records (autoencoder plus latent model for a latent one), the seconds for 100 guided digits
(DDIM-50, classifier-free guidance 3, the median of --repeats runs, the models taking turns so they share the
machine's state), and on n guided digits (n/10 of each) the share classifier-mnist reads as the asked digit and
FID-MNIST against the first n held-out digits, beside the FID-MNIST of n training digits (real against real).
Unconditional samples: how many of the 10 digits appear among n. And the seconds of one training step (batch 128)
of each denoiser on this machine, times the steps its recipe ran: the pixel model was trained on a GPU, and this is
what retraining it here would cost.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time

import torch

from core.checkpoints import Pretrained, hardware_description, load_pretrained, read_manifest
from core.data.mnist import load_mnist
from core.diffusion import loss_simple
from core.evaluate import classify, sample_images
from core.metrics import class_histogram, frechet_distance

MODELS = ("ddpm-mnist", "ldm-mnist", "ldm2d-mnist")
SCALE, STEPS = 3.0, 50


def parameters(p: Pretrained) -> tuple[int, int]:
    """(parameters used to sample: denoiser + decoder, the denoiser's alone)."""
    denoiser = sum(q.numel() for q in p.model.parameters())
    if p.autoencoder is None:
        return denoiser, denoiser
    ae = p.autoencoder
    decoder = sum(q.numel() for m in (ae.decoder, ae.from_latent) for q in m.parameters())
    return denoiser + decoder, denoiser


def training_cost(name: str, p: Pretrained) -> tuple[float, str]:
    """Seconds and hardware from the manifest: the autoencoder's and the latent model's together."""
    models = read_manifest()["models"]
    names = [name] + ([p.config["autoencoder"]["name"]] if p.autoencoder is not None else [])
    return round(sum(models[n]["seconds"] for n in names), 1), " + ".join(dict.fromkeys(models[n]["hardware"]
                                                                                       for n in names))


def train_step_seconds(p: Pretrained, batch: int = 128, steps: int = 5) -> float:
    """CPU seconds per training step (forward, backward, AdamW) of a copy of the denoiser on a batch of its inputs,
    the median of ``steps`` after one warm-up step: what retraining it here costs per step."""
    model = copy.deepcopy(p.model).train().requires_grad_(True)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    shape = tuple(p.config.get("latent_shape", (1, 28, 28)))
    g = torch.Generator().manual_seed(0)
    times = []
    for i in range(steps + 1):
        x0, y = torch.randn(batch, *shape, generator=g), torch.randint(0, 10, (batch,), generator=g)
        t0 = time.perf_counter()
        loss = loss_simple(model, p.schedule, x0, y=y, generator=g)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    models = {name: load_pretrained(name) for name in MODELS}
    judge = load_pretrained("classifier-mnist").model.eval()
    test, train = load_mnist("test"), load_mnist("train")
    n = min(args.n, len(test))
    _, test_feat = classify(judge, test.images[:n])
    _, train_feat = classify(judge, train.images[:n])
    digits = torch.arange(100) % 10
    timings: dict[str, list[float]] = {name: [] for name in MODELS}
    for r in range(args.repeats):  # the models take turns
        for name, p in models.items():
            t0 = time.perf_counter()
            sample_images(p, 100, label=digits, guidance_scale=SCALE, seed=args.seed + r, steps=STEPS)
            timings[name].append(time.perf_counter() - t0)
    rows = []
    wanted = torch.arange(n) % 10
    for name, p in models.items():
        x = sample_images(p, n, label=wanted, guidance_scale=SCALE, seed=args.seed, steps=STEPS)
        pred, feat = classify(judge, x)
        free = sample_images(p, n, seed=args.seed + 1, steps=STEPS)
        hist = class_histogram(classify(judge, free)[0])
        total, denoiser = parameters(p)
        seconds, hardware = training_cost(name, p)
        step_s = train_step_seconds(p)
        steps_done = read_manifest()["models"][name]["steps"]
        rows.append({"model": name, "latent_shape": p.config.get("latent_shape", [1, 28, 28]), "parameters": total,
                     "denoiser_parameters": denoiser, "train_seconds": seconds, "train_hardware": hardware,
                     "train_step_seconds_here": round(step_s, 4), "train_steps": steps_done,
                     "denoiser_train_seconds_here": round(step_s * steps_done, 1),
                     "seconds_per_100": round(statistics.median(timings[name]), 3),
                     "accuracy": round(float((pred == wanted).float().mean()), 4),
                     "fid_mnist": round(frechet_distance(feat, test_feat), 2),
                     "unconditional_classes_covered": sum(c > 0 for c in hist), "unconditional_histogram": hist})
        r = rows[-1]
        print(f"{name:>12}  {r['parameters']:>9,} params  trained {r['train_seconds']:7.1f} s  "
              f"{r['train_step_seconds_here']:.3f} s / training step here  "
              f"{r['seconds_per_100']:6.2f} s / 100  accuracy {r['accuracy']:.3f}  FID-MNIST {r['fid_mnist']:7.2f}  "
              f"unconditional {r['unconditional_classes_covered']}/10", flush=True)
    pixel = rows[0]["seconds_per_100"]
    result = {"n": n, "guidance_scale": SCALE, "sampler": f"ddim-{STEPS}", "seed": args.seed,
              "repeats": args.repeats, "fid_mnist_data_vs_data": round(frechet_distance(train_feat, test_feat), 2),
              "seconds_ratio": round(rows[1]["seconds_per_100"] / pixel, 3), "rows": rows,
              "machine": hardware_description(), "command": "python benchmarks/latent.py"}
    print(f"\nFID-MNIST real vs real (n = {n}): {result['fid_mnist_data_vs_data']:.2f}; ldm-mnist samples in "
          f"{result['seconds_ratio']:.2f} x the pixel model's time\n")
    print("| model | parameters | training s (recorded) | s / training step here (x its steps) | s / 100 digits | "
          "accuracy | FID-MNIST | unconditional digits |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['parameters']:,} | {r['train_seconds']:.0f} ({r['train_hardware']}) | "
              f"{r['train_step_seconds_here']:.3f} (x {r['train_steps']:,} = {r['denoiser_train_seconds_here']:.0f}) | "
              f"{r['seconds_per_100']:.2f} | {r['accuracy']:.3f} | {r['fid_mnist']:.1f} | "
              f"{r['unconditional_classes_covered']}/10 |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
