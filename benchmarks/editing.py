"""SDEdit and inpainting on MNIST with ddpm-mnist, unguided: faithfulness against realism over t0, and RePaint's
resampling against plain replacement (Meng et al. 2022; Lugmayr et al. 2022).

    python benchmarks/editing.py [--n 200] [--json benchmarks/results/editing.json]

SDEdit: the first n held-out digits made rough three ways (speckle: Gaussian noise of std 0.6 added and clipped;
blocky: 4x average-pooled and upsampled; thick: strokes dilated by a 3x3 max filter), edited from each t0 (paper
steps) with DDIM (the default steps scaled by t0 / T). Realism: the project's classifier (classifier-mnist) reads the
edit as the true digit, and its mean confidence; faithfulness: the mean L2 distance to the rough input, and to
the clean digit. Inpainting: the lower half of each digit masked, filled by DDPM on the leading grid, plain
replacement and with RePaint's time travel; the known half is checked to be kept exactly.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F

from core.checkpoints import hardware_description, load_pretrained
from core.data.mnist import load_mnist
from core.editing import inpaint, sdedit
from core.evaluate import classify

T0S = (0, 50, 100, 250, 400, 500, 750, 1000)
INPAINTING = ((50, 5, 1), (50, 5, 3), (25, 5, 4))  # (steps, jump_length, resamplings)


def roughen(x: torch.Tensor, how: str, generator: torch.Generator) -> torch.Tensor:
    """The three rough versions of digits in [-1, 1]."""
    if how == "speckle":
        return (x + 0.6 * torch.randn(x.shape, generator=generator)).clamp(-1, 1)
    if how == "blocky":
        return F.interpolate(F.avg_pool2d(x, 4), size=x.shape[-1], mode="nearest")
    return F.max_pool2d(x, 3, stride=1, padding=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    model, judge = load_pretrained("ddpm-mnist"), load_pretrained("classifier-mnist").model.eval()
    test = load_mnist("test")
    x0, labels = test.images[:args.n], test.labels[:args.n]

    def scores(x: torch.Tensor) -> dict[str, float]:
        with torch.no_grad():
            conf = float(torch.softmax(judge(x), 1).max(1).values.mean())
        return {"accuracy": round(float((classify(judge, x)[0] == labels).float().mean()), 4),
                "confidence": round(conf, 4)}

    out = {"n": args.n, "model": "ddpm-mnist", "judge": "classifier-mnist", "sdedit": [], "inpainting": [],
           "hardware": hardware_description(), "command": "python benchmarks/editing.py"}
    print("| rough input | t0 | accuracy | confidence | L2 to input | L2 to clean | seconds |")
    print("|---|---|---|---|---|---|---|")
    for how in ("speckle", "blocky", "thick"):
        rough = roughen(x0, how, torch.Generator().manual_seed(args.seed))
        for t0 in T0S:
            t1 = time.perf_counter()
            edit = sdedit(model.model, model.schedule, rough, t0, generator=torch.Generator().manual_seed(args.seed + 1)
                          ).xs[-1].clamp(-1, 1)
            row = {"input": how, "t0": t0, **scores(edit), "seconds": round(time.perf_counter() - t1, 1),
                   "l2_to_input": round(float((edit - rough).flatten(1).norm(dim=1).mean()), 3),
                   "l2_to_clean": round(float((edit - x0).flatten(1).norm(dim=1).mean()), 3)}
            out["sdedit"].append(row)
            print(f"| {how} | {t0} | {row['accuracy']:.3f} | {row['confidence']:.3f} | {row['l2_to_input']:.2f} | "
                  f"{row['l2_to_clean']:.2f} | {row['seconds']:.0f} |", flush=True)
    mask = torch.ones(1, 1, 28, 28)
    mask[..., 14:, :] = 0
    masked = {"accuracy": scores(x0 * mask - (1 - mask))["accuracy"]}  # the lower half blank (background)
    print(f"\ninpainting the lower half (masked input read correctly: {masked['accuracy']:.3f})")
    print("| steps | jump length | resamplings | accuracy | known half kept | seconds |\n|---|---|---|---|---|---|")
    out["masked_input_accuracy"] = masked["accuracy"]
    for steps, jump, r in INPAINTING:
        t1 = time.perf_counter()
        filled = inpaint(model.model, model.schedule, x0, mask, steps=steps, jump_length=jump, resamplings=r,
                         generator=torch.Generator().manual_seed(args.seed + 2))
        row = {"steps": steps, "jump_length": jump, "resamplings": r, **scores(filled.clamp(-1, 1)),
               "known_kept_exactly": bool(torch.equal(filled[..., :14, :], x0[..., :14, :])),
               "seconds": round(time.perf_counter() - t1, 1)}
        out["inpainting"].append(row)
        print(f"| {steps} | {jump} | {r} | {row['accuracy']:.3f} | {row['known_kept_exactly']} | "
              f"{row['seconds']:.0f} |", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
