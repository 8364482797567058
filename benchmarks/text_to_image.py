"""The miniature Stable Diffusion against its prompts: does ldm-text-mnist draw what the words say?

    python benchmarks/text_to_image.py [--n 1000] [--per-prompt 200] [--scale 3] [--json FILE]

- Digits: n samples for prompts naming a digit ("seven", "the digit 7", "a 7", ... cycling over the ten digits),
  the share classifier-mnist reads as that digit.
- Attributes: --per-prompt samples for each prompt of a pair, the digits cycling 0-9 ("a thick 3" against
  "a thin 3", ...), measured with the functions that made the training captions (core.data.captions):
  stroke mass (thick / thin: the ratio of the means), the shear (slanted right / left: the share with the asked
  sign), the bounding-box area (large / small: the ratio of the means).
- The CLIP's zero-shot reading of the held-out digits (recomputed).
All DDIM-50 with classifier-free guidance on the prompt (the empty prompt is the unconditional pass).
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from core.checkpoints import hardware_description, load_pretrained
from core.data.captions import NUMBER_NAMES, box_area, slant, stroke_mass, tokenize
from core.data.mnist import load_mnist
from core.evaluate import classify
from core.samplers import sample
from core.train_text import zero_shot_accuracy

DIGIT_FORMS = ("{word}", "the digit {d}", "a {word}", "{d}")
PAIRS = {"thickness": ("a thick {word}", "a thin {word}"), "slant": ("a {word} slanted right", "a {word} slanted left"),
         "size": ("a large {word}", "a small {word}")}


def draw(p, prompts: list[str], scale: float, steps: int, seed: int, batch: int = 250) -> torch.Tensor:
    """Decoded samples, one per prompt, in batches."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(0, len(prompts), batch):
        ids = tokenize(prompts[i:i + batch])[0]
        z_T = torch.randn(len(ids), *p.config["latent_shape"], generator=g)
        z = sample(p.model, p.schedule, z_T, method="ddim", steps=steps, y=ids, guidance_scale=scale, generator=g,
                   keep_trajectory=False).xs[-1]
        out.append(p.autoencoder.decode(z))
    return torch.cat(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--per-prompt", type=int, default=200)
    parser.add_argument("--scale", type=float, default=3.0)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    p, judge = load_pretrained("ldm-text-mnist"), load_pretrained("classifier-mnist").model.eval()
    t0 = time.perf_counter()
    digits = torch.arange(args.n) % 10
    prompts = [DIGIT_FORMS[(i // 10) % len(DIGIT_FORMS)].format(d=int(d), word=NUMBER_NAMES[d])
               for i, d in enumerate(digits.tolist())]
    x = draw(p, prompts, args.scale, args.steps, args.seed)
    read = classify(judge, x)[0]
    result = {"n": args.n, "guidance_scale": args.scale, "sampler": f"ddim-{args.steps}",
              "digit_accuracy": round(float((read == digits).float().mean()), 4),
              "digit_accuracy_by_form": {f: round(float((read == digits)[[(i // 10) % len(DIGIT_FORMS) == k
                                                                          for i in range(args.n)]].float().mean()), 4)
                                         for k, f in enumerate(DIGIT_FORMS)}}
    print(f"digit prompts: {result['digit_accuracy']:.3f} of {args.n} read as the asked digit "
          f"({time.perf_counter() - t0:.0f} s)", flush=True)
    wanted = torch.arange(args.per_prompt) % 10
    for name, (first, second) in PAIRS.items():
        xs = [draw(p, [form.format(word=NUMBER_NAMES[d]) for d in wanted.tolist()], args.scale, args.steps,
                   args.seed + 1) for form in (first, second)]
        reads = [float((classify(judge, x)[0] == wanted).float().mean()) for x in xs]
        if name == "thickness":
            a, b = (float(stroke_mass(x).mean()) for x in xs)
            row = {"measure": "stroke mass", "first": round(a, 2), "second": round(b, 2), "ratio": round(a / b, 3)}
        elif name == "size":
            a, b = (float(box_area(x).mean()) for x in xs)
            row = {"measure": "box area", "first": round(a, 2), "second": round(b, 2), "ratio": round(a / b, 3)}
        else:
            right, left = (slant(x) for x in xs)
            row = {"measure": "shear", "first": round(float(right.mean()), 4), "second": round(float(left.mean()), 4),
                   "right_share_positive": round(float((right > 0).float().mean()), 4),
                   "left_share_negative": round(float((left < 0).float().mean()), 4)}
        row |= {"prompts": [first, second], "digit_accuracy": [round(r, 4) for r in reads]}
        result[name] = row
        print(f"{name}: done ({time.perf_counter() - t0:.0f} s)", flush=True)
    test = load_mnist("test")
    result["clip_zero_shot_accuracy"] = round(zero_shot_accuracy(p.model.clip, test.images, test.labels), 4)
    result |= {"seconds": round(time.perf_counter() - t0, 1), "machine": hardware_description(),
               "command": "python benchmarks/text_to_image.py"}
    print(f"CLIP zero-shot on {len(test)} held-out digits: {result['clip_zero_shot_accuracy']:.3f}")
    print_table(result)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)


def print_table(result: dict) -> None:
    """The attribute pairs as a table: what each prompt's samples measure, the figure the issue asks of it, the
    share read as the asked digit."""
    print(f"\n{result['sampler']}, w = {result['guidance_scale']:g}, {result['digit_accuracy']:.1%} of "
          f"{result['n']} digit prompts read as asked")
    header = f"{'prompt pair':<52} {'measure':<12} {'first':>8} {'second':>8} {'figure':>22} {'read as digit':>14}"
    print(header)
    print("-" * len(header))
    for name in PAIRS:
        row = result[name]
        if name == "slant":
            figure = f"right>0 {row['right_share_positive']:.1%}, left<0 {row['left_share_negative']:.1%}"
        else:
            figure = f"ratio {row['ratio']:.2f}"
        pair = " vs ".join(f"'{q}'" for q in row["prompts"])
        reads = " / ".join(f"{r:.1%}" for r in row["digit_accuracy"])
        print(f"{pair:<52} {row['measure']:<12} {row['first']:>8.2f} {row['second']:>8.2f} {figure:>22} {reads:>14}")


if __name__ == "__main__":
    main()
