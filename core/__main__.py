"""Command line: train, sample and evaluate models.

    python -m core train --data eight_gaussians --out pretrained/ddpm-eight_gaussians
    python -m core sample ddpm-eight_gaussians --n 1000 --method ddim --steps 50 --out samples.csv
    python -m core evaluate ddpm-eight_gaussians --update-manifest
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from core.checkpoints import (PRETRAINED_DIR, CheckpointError, git_revision, hardware_description,
                              load_checkpoint, load_pretrained, save_checkpoint, update_manifest)
from core.data.toy2d import TOY_NAMES, PointCloudError, load_points, standardise
from core.samplers import METHODS
from core.schedules import SCHEDULE_NAMES, make_schedule
from core.training import DEFAULT_2D_TRAIN, DEFAULT_MLP, TrainConfig, train_ddpm_2d


def _load(model: str):
    """A pretrained name (``ddpm-eight_gaussians``) or a checkpoint path stem."""
    path = Path(model)
    if path.with_suffix(".json").is_file() or path.suffix in (".json", ".safetensors"):
        return load_checkpoint(path)
    return load_pretrained(model)


def cmd_train(args: argparse.Namespace) -> int:
    schedule = make_schedule(args.schedule, T=args.T)
    cfg = TrainConfig(steps=args.steps, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                      time_budget_s=args.time_budget, device=args.device)
    if args.data in TOY_NAMES:
        data, data_info = args.data, {"kind": "toy", "name": args.data, "source": "core.data.toy2d (generated)"}
    elif Path(args.data).is_file():
        points = load_points(Path(args.data))
        x, mean, scale = standardise(points)
        data = torch.from_numpy(x)
        data_info = {"kind": "points", "source": str(args.data), "n": len(x),
                     "mean": mean.tolist(), "scale": float(scale)}
    else:
        raise ValueError(f"--data {args.data!r} is neither a toy ({', '.join(TOY_NAMES)}) nor an existing CSV file")
    mlp = {"width": args.width, "depth": args.depth}
    print(f"training a 2D DDPM on {args.data}: {args.schedule} schedule, T={args.T}, MLP {mlp}, "
          f"{cfg.steps} steps of batch {cfg.batch_size}, device {cfg.device}", file=sys.stderr)
    bar = tqdm(total=cfg.steps, unit="step", file=sys.stderr)

    def progress(info: dict) -> None:
        bar.update(1)
        if info["step"] % 50 == 0:
            bar.set_postfix(loss=f"{info['loss']:.4f}")

    result, config = train_ddpm_2d(data, schedule, cfg, mlp=mlp, conditional=args.conditional, callback=progress)
    bar.close()
    print(result.message, file=sys.stderr)
    config["data"] = data_info
    out = Path(args.out)
    weights, _ = save_checkpoint(out, result.ema_model, config)
    print(f"wrote {weights} and {out.with_suffix('.json')}", file=sys.stderr)
    if args.record or out.resolve().parent == PRETRAINED_DIR:
        update_manifest(out.name, {
            "command": "python -m core " + " ".join(shlex.quote(a) for a in args.argv),
            "data": data_info["source"],
            "seconds": round(result.seconds, 2),
            "steps": result.steps,
            "hardware": hardware_description(),
            "git_revision": git_revision(),
            "created": time.strftime("%Y-%m-%d"),
        }, directory=out.resolve().parent)
    return 0 if result.stop_reason != "nonfinite" else 1


def cmd_sample(args: argparse.Namespace) -> int:
    from core.evaluate import sample_2d

    p = _load(args.model)
    options = {}
    if args.eta is not None:
        options["eta"] = args.eta
    if args.label is not None:
        options.update(y=torch.full((args.n,), args.label, dtype=torch.long), guidance_scale=args.guidance)
    t0 = time.perf_counter()
    x = sample_2d(p, args.n, seed=args.seed, method=args.method, steps=args.steps, **options)
    print(f"{args.n} samples with {args.method}-{args.steps} in {time.perf_counter() - t0:.2f} s", file=sys.stderr)
    np.savetxt(args.out, x.numpy(), delimiter=",", header="x,y", comments="", fmt="%.6f")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from core.evaluate import evaluate_2d

    p = _load(args.model)
    metrics = evaluate_2d(p, n=args.n, seed=args.seed, method=args.method, steps=args.steps)
    width = max(map(len, metrics))
    for k, v in metrics.items():
        print(f"{k:<{width}}  {v}")
    if args.update_manifest:
        update_manifest(p.name, {"metrics": metrics})
        print(f"recorded in {PRETRAINED_DIR / 'manifest.json'}", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m core", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a 2D DDPM on a toy or a CSV of points")
    t.add_argument("--data", required=True, help=f"a toy ({', '.join(TOY_NAMES)}) or a CSV file of x,y points")
    t.add_argument("--schedule", default="cosine", choices=[n for n in SCHEDULE_NAMES if n != "custom"])
    t.add_argument("--T", type=int, default=1000)
    t.add_argument("--width", type=int, default=DEFAULT_MLP["width"])
    t.add_argument("--depth", type=int, default=DEFAULT_MLP["depth"])
    t.add_argument("--steps", type=int, default=DEFAULT_2D_TRAIN.steps)
    t.add_argument("--batch-size", type=int, default=DEFAULT_2D_TRAIN.batch_size)
    t.add_argument("--lr", type=float, default=DEFAULT_2D_TRAIN.lr)
    t.add_argument("--time-budget", type=float, default=None, help="stop after this many seconds")
    t.add_argument("--conditional", action="store_true", help="learn labels too (classifier-free guidance)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--device", default="cpu")
    t.add_argument("--out", required=True, help="checkpoint path stem, e.g. pretrained/ddpm-eight_gaussians")
    t.add_argument("--record", action="store_true", help="record in the manifest beside --out "
                   "(always done when --out is in pretrained/)")
    t.set_defaults(func=cmd_train)

    s = sub.add_parser("sample", help="draw samples from a checkpoint into a CSV")
    s.add_argument("model", help="pretrained name (e.g. ddpm-eight_gaussians) or checkpoint path")
    s.add_argument("--n", type=int, default=1000)
    s.add_argument("--method", default="ddim", choices=METHODS)
    s.add_argument("--steps", type=int, default=None, help="default: the method's own (e.g. ddim 50, ddpm 1000)")
    s.add_argument("--eta", type=float, default=None, help="DDIM eta (0 = deterministic)")
    s.add_argument("--label", type=int, default=None, help="class label, for conditional models")
    s.add_argument("--guidance", type=float, default=1.0, help="classifier-free guidance scale w")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", default="samples.csv")
    s.set_defaults(func=cmd_sample)

    e = sub.add_parser("evaluate", help="sample quality against fresh data and its floor")
    e.add_argument("model")
    e.add_argument("--n", type=int, default=5000)
    e.add_argument("--method", default="ddim", choices=METHODS)
    e.add_argument("--steps", type=int, default=50)
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--update-manifest", action="store_true", help="write the metrics into pretrained/manifest.json")
    e.set_defaults(func=cmd_evaluate)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    args.argv = argv
    try:
        return args.func(args)
    except (ValueError, PointCloudError, CheckpointError) as e:  # user errors: a message, not a traceback
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
