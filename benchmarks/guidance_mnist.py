"""Classifier guidance beside classifier-free guidance on MNIST: accuracy on the asked digit and FID-MNIST
against the guidance scale, same n, same sampler, same noise (Dhariwal & Nichol 2021; Ho & Salimans 2022).

    python benchmarks/guidance_mnist.py [--n 500] [--steps 25] [--json benchmarks/results/guidance_mnist.json]

Classifier guidance runs ddpm-mnist's unconditional path (the null label) guided by noisy-classifier-mnist;
classifier-free guidance mixes the same network's conditional and unconditional passes. Both are judged by
classifier-mnist, which neither sees: its accuracy on the asked digit (ten of each class) and the Fréchet
distance of its features to the first n held-out digits (FID-MNIST; at small n it is biased upwards, equally
for every row). Scale 0 is the unguided model for both.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from core.checkpoints import hardware_description, load_pretrained
from core.data.mnist import load_mnist
from core.evaluate import classify, sample_images
from core.metrics import frechet_distance

CLASSIFIER_SCALES = (0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0)
FREE_SCALES = (1.0, 2.0, 3.0, 5.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    model, noisy = load_pretrained("ddpm-mnist"), load_pretrained("noisy-classifier-mnist")
    judge = load_pretrained("classifier-mnist").model.eval()
    if noisy.schedule.to_config() != model.schedule.to_config():
        raise SystemExit("noisy-classifier-mnist was trained on another schedule than ddpm-mnist")
    test = load_mnist("test")
    _, test_feat = classify(judge, test.images[:args.n])
    wanted = torch.arange(args.n) % 10
    rows = []
    runs = [("classifier", w) for w in CLASSIFIER_SCALES] + [("classifier-free", w) for w in FREE_SCALES]
    for kind, w in runs:
        t0 = time.perf_counter()
        x = sample_images(model, args.n, label=wanted, guidance_scale=w, seed=args.seed, steps=args.steps,
                          batch=250, noisy_classifier=noisy.model if kind == "classifier" else None)
        seconds = time.perf_counter() - t0
        pred, feat = classify(judge, x)
        rows.append({"guidance": kind if w else "none", "scale": w,
                     "accuracy": round(float((pred == wanted).float().mean()), 4),
                     "fid": round(frechet_distance(feat, test_feat), 2), "seconds": round(seconds, 1)})
        r = rows[-1]
        print(f"{r['guidance']:>16} {w:5.1f}  accuracy {r['accuracy']:.3f}  FID-MNIST {r['fid']:7.2f}  "
              f"{r['seconds']:6.1f} s", flush=True)
    result = {"n": args.n, "method": "ddim", "steps": args.steps, "seed": args.seed, "rows": rows,
              "models": {"diffusion": "ddpm-mnist", "classifier": "noisy-classifier-mnist",
                         "judge": "classifier-mnist"},
              "hardware": hardware_description(), "command": "python benchmarks/guidance_mnist.py"}
    print("\n| guidance | scale | accuracy | FID-MNIST | seconds |\n|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['guidance']} | {r['scale']:g} | {r['accuracy']:.3f} | {r['fid']:.2f} | {r['seconds']:.0f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
