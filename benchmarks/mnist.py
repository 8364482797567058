"""MNIST speed and memory: sampling time for 100 digits per sampler and step count, and the training step's
time and memory with and without gradient checkpointing and mixed precision, in one run.

    python benchmarks/mnist.py [--device cpu|cuda] [--threads 2] [--part all|sampling|training]
        [--samplers ddim:50,ddim:20,dpm_solver_2m:20] [--batch 128] [--json out.json]

Sampling uses the pretrained ddpm-mnist (an untrained UNet of the same shape when it is missing: the time
is the same, the digits are noise), 100 digits (10 of each) with classifier-free guidance w = 3, which costs
two network evaluations per step in one batch of 200. Training memory is measured two ways: "activations",
the bytes the forward pass saves for backward (counted with torch.autograd.graph.saved_tensors_hooks, any
device), and on CUDA the allocator's peak (torch.cuda.max_memory_allocated).
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

from core.checkpoints import git_revision, hardware_description, load_pretrained
from core.diffusion import q_sample
from core.models.unet import UNet, UNetConfig
from core.samplers import sample
from core.schedules import make_schedule

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_SAMPLERS = "ddim:50,ddim:20,ddim:10,dpm_solver_2m:20,dpm_solver_2m:10,ddpm:100"
SAMPLING_TARGET_S = 15.0  # the acceptance: 100 guided digits, DDIM-50, on the 2-core CPU
GUIDANCE = 3.0


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _model(device: torch.device):
    try:
        p = load_pretrained("ddpm-mnist")
        return p.model.to(device), p.schedule, "ddpm-mnist"
    except ValueError:  # not shipped (CheckpointError is a ValueError too)
        schedule = make_schedule("cosine", T=1000)
        return UNet(UNetConfig()).eval().to(device), schedule, "untrained UNet (ddpm-mnist missing)"


def bench_sampling(device: torch.device, samplers: list[tuple[str, int]], repeats: int) -> list[dict[str, Any]]:
    model, schedule, name = _model(device)
    y = (torch.arange(100) % 10).to(device)
    rows = []
    for method, steps in samplers:
        times = []
        for r in range(repeats + 1):  # the first run warms up
            g = torch.Generator(device=device).manual_seed(r)
            x_T = torch.randn(100, 1, 28, 28, generator=g, device=device)
            _sync(device)
            t0 = time.perf_counter()
            sample(model, schedule, x_T, method=method, steps=steps, generator=g, y=y, guidance_scale=GUIDANCE,
                   keep_trajectory=False)
            _sync(device)
            if r:
                times.append(time.perf_counter() - t0)
        rows.append({"model": name, "method": method, "steps": steps, "nfe": steps, "digits": 100,
                     "guidance_scale": GUIDANCE, "seconds": round(statistics.median(times), 3)})
        print(f"  sampled 100 digits with {method}-{steps}: {rows[-1]['seconds']:.2f} s", file=sys.stderr)
    return rows


def _train_step(model: UNet, schedule, x0, y, precision: str, device: torch.device) -> tuple[float, int]:
    """One forward + backward; returns (seconds, bytes saved for backward)."""
    saved = 0

    def pack(t: torch.Tensor) -> torch.Tensor:
        nonlocal saved
        saved += t.numel() * t.element_size()
        return t

    t = torch.randint(0, schedule.T, (x0.shape[0],), device=device)
    noise = torch.randn_like(x0)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    _sync(device)
    t0 = time.perf_counter()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            loss = (model(q_sample(schedule, x0, t, noise), t.float(), y).float() - noise).pow(2).mean()
    loss.backward()
    model.zero_grad(set_to_none=True)
    _sync(device)
    return time.perf_counter() - t0, saved


def bench_training(device: torch.device, batch: int, steps: int) -> list[dict[str, Any]]:
    schedule = make_schedule("cosine", T=1000)
    precisions = ["fp32", "bf16"] + (["fp16"] if device.type == "cuda" else [])
    g = torch.Generator().manual_seed(0)
    x0 = (torch.rand(batch, 1, 28, 28, generator=g) * 2 - 1).to(device)
    y = torch.randint(0, 10, (batch,), generator=g).to(device)
    rows = []
    for precision in precisions:
        for ckpt in (False, True):
            torch.manual_seed(0)
            model = UNet(UNetConfig(gradient_checkpointing=ckpt)).to(device).train()
            if device.type == "cuda":
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats(device)
            times, saved = [], 0
            for i in range(steps + 2):
                dt, saved = _train_step(model, schedule, x0, y, precision, device)
                if i >= 2:
                    times.append(dt)
            peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
            rows.append({"precision": precision, "checkpointing": ckpt, "batch": batch,
                         "ms_per_step": round(1000 * statistics.median(times), 1),
                         "activation_mb": round(saved / 2**20, 1),
                         "peak_mb": None if peak is None else round(peak, 1)})
            print(f"  train step {precision} checkpointing={ckpt}: {rows[-1]['ms_per_step']} ms, "
                  f"{rows[-1]['activation_mb']} MB saved for backward", file=sys.stderr)
    return rows


def table(result: dict[str, Any]) -> str:
    lines = [f"# {result['hardware']}; {result['date']}; git {result['git_revision']}"]
    if result.get("sampling"):
        lines += ["", f"sampling: 100 digits, guidance w = {GUIDANCE:g} (one batch of 200 per step)",
                  f"{'sampler':<20}{'steps':>6}{'seconds':>9}  target", "-" * 45]
        for r in result["sampling"]:
            target = ""
            if r["method"] == "ddim" and r["steps"] == 50 and result["device"] == "cpu":
                target = f"<= {SAMPLING_TARGET_S:g} s {'PASS' if r['seconds'] <= SAMPLING_TARGET_S else 'FAIL'}"
            lines.append(f"{r['method']:<20}{r['steps']:>6}{r['seconds']:>9.2f}  {target}")
        lines.append(f"model: {result['sampling'][0]['model']}")
    if result.get("training"):
        rows = result["training"]
        lines += ["", f"training step: batch {rows[0]['batch']}, forward + backward (median)",
                  f"{'precision':<10}{'checkpointing':>14}{'ms/step':>9}{'activations MB':>16}{'peak MB':>9}",
                  "-" * 58]
        for r in rows:
            peak = "-" if r["peak_mb"] is None else f"{r['peak_mb']:.1f}"
            lines.append(f"{r['precision']:<10}{str(r['checkpointing']):>14}{r['ms_per_step']:>9.1f}"
                         f"{r['activation_mb']:>16.1f}{peak:>9}")
        for precision in dict.fromkeys(r["precision"] for r in rows):
            off, on = [r for r in rows if r["precision"] == precision]
            lines.append(f"{precision}: checkpointing keeps {on['activation_mb'] / off['activation_mb']:.2f}x the "
                         f"activations ({off['activation_mb'] / on['activation_mb']:.1f}x less) for "
                         f"{on['ms_per_step'] / off['ms_per_step']:.2f}x the step time")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--part", default="all", choices=("all", "sampling", "training"))
    ap.add_argument("--samplers", default=DEFAULT_SAMPLERS, help="method:steps,...")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--train-steps", type=int, default=5)
    ap.add_argument("--json", default=None, help=f"default: {RESULTS}/mnist_<device>.json (+ .txt)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    samplers = [(m, int(s)) for m, s in (item.split(":") for item in args.samplers.split(","))]
    result: dict[str, Any] = {"device": device.type, "hardware": hardware_description(), "date": str(date.today()),
                              "git_revision": git_revision()}
    if args.part in ("all", "sampling"):
        result["sampling"] = bench_sampling(device, samplers, args.repeats)
    if args.part in ("all", "training"):
        result["training"] = bench_training(device, args.batch, args.train_steps)
    text = table(result)
    print(text)
    out = Path(args.json) if args.json else RESULTS / f"mnist_{device.type}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    out.with_suffix(".txt").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
