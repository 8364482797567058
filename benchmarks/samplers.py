"""Sample quality against network evaluations (NFE) and wall time, per toy and sampler, learned vs exact score.

    python benchmarks/samplers.py [--toys eight_gaussians,rings] [--methods ddim,dpm_solver_2m] [--nfe 10,20,50]
        [--n 5000] [--seed 0] [--threads 1] [--json out.json] [--grid-toys eight_gaussians] [--quick]

Quality: sliced Wasserstein (SW) to fresh data, relative to the data-vs-data floor at the same n. Each
pretrained DDPM ("learned") and, for the mixture toys, the exact score ("exact", core.analytic) run every
sampler from the same x_T, so exact-score rows show the discretisation error alone. Two summaries follow:
DPM-Solver++(2M) at 10-20 NFE vs DDPM-1000 (target <= 1.5x), and the sampler's overhead over bare network
calls for DDIM-50 on 10,000 points (target <= 1.2x), both measured in this run.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass
from datetime import date
from typing import Any

import torch

from core.analytic import toy_mixture
from core.checkpoints import git_revision, hardware_description, load_pretrained
from core.data.toy2d import MIXTURE_TOYS, TOY_NAMES, sample_toy
from core.metrics import data_floor, sliced_wasserstein
from core.samplers import METHODS, sample, steps_for_nfe

DEFAULT_NFE = (5, 10, 20, 50, 100, 250, 1000)
KINDS = ("learned", "exact")
DPM_NFE = (10, 20)  # the acceptance: DPM-Solver++ at 10-20 NFE within DPM_TARGET x of DDPM-1000
DDPM_STEPS = 1000
DPM_TARGET = 1.5
OVERHEAD_N, OVERHEAD_STEPS, OVERHEAD_REPEATS, OVERHEAD_TARGET = 10_000, 50, 5, 1.2
QUICK = {"toys": "eight_gaussians,two_moons", "nfe": "10,50,250", "n": 2000, "repeats": 2, "xt_seeds": 1}


@dataclass
class Toy:
    """What the benchmark needs per toy: the eps models, the schedule, fixed reference draws, the floor."""

    name: str
    models: dict[str, Any]  # kind -> eps model
    schedule: Any
    refs: list[torch.Tensor]  # `repeats` fresh data draws, shared by every row (common random numbers)
    floor: float


def prepare_toy(name: str, kinds: list[str], n: int, repeats: int, seed: int) -> Toy:
    p = load_pretrained(f"ddpm-{name}")
    models: dict[str, Any] = {}
    if "learned" in kinds:
        models["learned"] = p.model
    if "exact" in kinds and name in MIXTURE_TOYS:
        models["exact"] = toy_mixture(name).as_eps_model(p.schedule)
    g = torch.Generator().manual_seed(10_000 + seed)
    refs = [sample_toy(name, n, g) for _ in range(repeats)]
    floor = data_floor(lambda m, gen: sample_toy(name, m, gen), n, repeats=repeats,
                       generator=torch.Generator().manual_seed(20_000 + seed))
    return Toy(name, models, p.schedule, refs, floor)


def sw_to_data(x: torch.Tensor, toy: Toy) -> float:
    """SW averaged over the toy's reference draws, projection seed r for draw r (the same for every row)."""
    vals = [sliced_wasserstein(x, ref, generator=torch.Generator().manual_seed(r)) for r, ref in enumerate(toy.refs)]
    return sum(vals) / len(vals)


class Runner:
    """Runs (toy, kind, method, steps, x_T seed) once and caches the result, so summaries reuse grid rows."""

    def __init__(self, n: int):
        self.n = n
        self.cache: dict[tuple, dict[str, Any]] = {}

    def run(self, toy: Toy, kind: str, method: str, steps: int, xt_seed: int) -> dict[str, Any]:
        key = (toy.name, kind, method, steps, xt_seed)
        if key not in self.cache:
            g = torch.Generator().manual_seed(xt_seed)
            x_T = torch.randn(self.n, 2, generator=g)  # the same x_T for every method and kind
            t0 = time.perf_counter()
            traj = sample(toy.models[kind], toy.schedule, x_T, method=method, steps=steps, generator=g,
                          keep_trajectory=False)
            seconds = time.perf_counter() - t0
            x0 = traj.x0
            finite = bool(torch.isfinite(x0).all())
            sw = sw_to_data(x0, toy) if finite else float("inf")
            self.cache[key] = {"nfe": traj.nfe, "sw": sw, "seconds": seconds}
        return self.cache[key]


def _fmt(v: float, spec: str = ".4f") -> str:
    return format(v, spec) if v == v and v != float("inf") else str(v)


GRID_HEADER = (f"{'toy':<22} {'model':<7} {'method':<20} {'target':>6} {'steps':>5} {'NFE':>5} "
               f"{'SW':>8} {'floor':>7} {'ratio':>6} {'wall s':>7}")


def grid_line(r: dict[str, Any]) -> str:
    return (f"{r['toy']:<22} {r['model']:<7} {r['method']:<20} {r['nfe_target']:>6} {r['steps']:>5} {r['nfe']:>5} "
            f"{_fmt(r['sw']):>8} {r['floor']:7.4f} {_fmt(r['ratio'], '.2f'):>6} {r['seconds']:7.2f}")


def pivot_table(rows: list[dict[str, Any]], toy: str, kind: str, nfes: list[int]) -> list[str]:
    """SW / floor with methods as rows and target NFE as columns ('-' where the pair is skipped)."""
    cells = {(r["method"], r["nfe_target"]): r for r in rows if r["toy"] == toy and r["model"] == kind}
    if not cells:
        return []
    methods = [m for m in METHODS if any((m, k) in cells for k in nfes)]
    lines = [f"{toy} / {kind}: SW / floor   (NFE target ->)",
             f"  {'method':<20}" + "".join(f"{k:>8}" for k in nfes)]
    for m in methods:
        lines.append(f"  {m:<20}" + "".join(
            f"{_fmt(cells[(m, k)]['ratio'], '.2f') if (m, k) in cells else '-':>8}" for k in nfes))
    return lines


def dpm_vs_ddpm(runner: Runner, toy: Toy, kind: str, seeds: list[int]) -> dict[str, Any]:
    """DPM-Solver++(2M) at DPM_NFE vs DDPM with all T steps, SW averaged over the x_T seeds."""
    def mean_sw(method: str, steps: int) -> float:
        return sum(runner.run(toy, kind, method, steps, s)["sw"] for s in seeds) / len(seeds)

    out: dict[str, Any] = {"toy": toy.name, "model": kind, "xt_seeds": seeds, "floor": toy.floor}
    ddpm = mean_sw("ddpm", DDPM_STEPS)
    out["ddpm_1000_sw"] = ddpm
    for k in DPM_NFE:
        out[f"dpm_{k}_sw"] = mean_sw("dpm_solver_2m", k)
    best = min(out[f"dpm_{k}_sw"] for k in DPM_NFE)
    out["best_dpm_over_ddpm"] = best / ddpm
    out["pass"] = bool(out["best_dpm_over_ddpm"] <= DPM_TARGET)
    return out


DPM_HEADER = (f"{'toy':<22} {'model':<7} {'floor':>7} " + "".join(f"{f'DPM-{k}':>8} " for k in DPM_NFE)
              + f"{'DDPM-1000':>9} " + "".join(f"{f'{k}/DDPM':>8} " for k in DPM_NFE) + f"{'best':>6}  verdict")


def dpm_line(d: dict[str, Any]) -> str:
    verdict = ("PASS" if d["pass"] else "FAIL") if d["model"] == "learned" else "(info)"
    return (f"{d['toy']:<22} {d['model']:<7} {d['floor']:7.4f} " + "".join(f"{d[f'dpm_{k}_sw']:8.4f} " for k in DPM_NFE)
            + f"{d['ddpm_1000_sw']:9.4f} " + "".join(f"{d[f'dpm_{k}_sw'] / d['ddpm_1000_sw']:8.2f} " for k in DPM_NFE)
            + f"{d['best_dpm_over_ddpm']:6.2f}  {verdict}")


def overhead(model: Any, schedule: Any, repeats: int = OVERHEAD_REPEATS, seed: int = 0) -> dict[str, Any]:
    """Best-of-``repeats`` seconds of DDIM-50 through ``sample`` vs the same 50 bare ``model(x, t)`` calls.

    Same x (10,000 points), same thread count, torch.no_grad for the bare calls (``sample`` uses it too);
    the order alternates between repeats so neither side always runs on a warmer cache.
    """
    x = torch.randn(OVERHEAD_N, 2, generator=torch.Generator().manual_seed(seed))
    ts = sample(model, schedule, x[:4], method="ddim", steps=OVERHEAD_STEPS).timesteps  # DDIM's own grid
    t_args = [torch.full((OVERHEAD_N,), float(t)) for t in ts]

    def bare() -> None:
        with torch.no_grad():
            for t in t_args:
                model(x, t)

    def through_sample(keep: bool) -> None:
        sample(model, schedule, x, method="ddim", steps=OVERHEAD_STEPS, keep_trajectory=keep)

    jobs = {"bare": bare, "sample": lambda: through_sample(True), "sample_keep_false": lambda: through_sample(False)}
    for f in jobs.values():  # warm-up
        f()
    best = {k: float("inf") for k in jobs}
    for rep in range(repeats):
        order = list(jobs) if rep % 2 == 0 else list(jobs)[::-1]
        for k in order:
            t0 = time.perf_counter()
            jobs[k]()
            best[k] = min(best[k], time.perf_counter() - t0)
    ratio = best["sample"] / best["bare"]
    return {"n": OVERHEAD_N, "steps": OVERHEAD_STEPS, "repeats": repeats, "bare_seconds": best["bare"],
            "sample_seconds": best["sample"], "sample_keep_false_seconds": best["sample_keep_false"],
            "ratio": ratio, "ratio_keep_false": best["sample_keep_false"] / best["bare"],
            "pass": bool(ratio <= OVERHEAD_TARGET)}


def _json_safe(v: Any) -> Any:
    """inf / nan (a run that diverged) as null, so the file is strict JSON for the dashboard."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json_safe(x) for x in v]
    return v


def _csv(text: str | None, valid: tuple[str, ...], what: str) -> list[str]:
    items = [v.strip() for v in (text or "").split(",") if v.strip()]
    bad = [v for v in items if v not in valid]
    if bad:
        raise SystemExit(f"unknown {what} {bad}; expected some of: {', '.join(valid)}")
    return items


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--toys", default=None, help="comma-separated (default: all 8; --quick: two)")
    parser.add_argument("--grid-toys", default=None,
                        help="toys that run the method x NFE grid (default: all of --toys; 'none': summaries only)")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--kinds", default=",".join(KINDS), help="learned, exact (exact: mixture toys only)")
    parser.add_argument("--nfe", default=None, help=f"target NFEs (default {','.join(map(str, DEFAULT_NFE))})")
    parser.add_argument("--n", type=int, default=None, help="samples per run (default 5000)")
    parser.add_argument("--repeats", type=int, default=None, help="reference draws / projection seeds per SW (3)")
    parser.add_argument("--xt-seeds", type=int, default=None, help="x_T seeds for DPM vs DDPM (3)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--json", default=None, help="also write rows and summaries to this file")
    parser.add_argument("--quick", action="store_true", help=f"reduced grid: {QUICK}")
    args = parser.parse_args(argv)
    q = QUICK if args.quick else {}
    toys = _csv(args.toys or q.get("toys") or ",".join(TOY_NAMES), TOY_NAMES, "toys")
    grid_toys = [] if args.grid_toys == "none" else _csv(args.grid_toys or ",".join(toys), TOY_NAMES, "grid toys")
    methods = _csv(args.methods, METHODS, "methods")
    kinds = _csv(args.kinds, KINDS, "kinds")
    nfes = [int(v) for v in (args.nfe or q.get("nfe") or ",".join(map(str, DEFAULT_NFE))).split(",")]
    n = args.n or q.get("n", 5000)
    repeats = args.repeats or q.get("repeats", 3)
    xt_seeds = list(range(args.seed, args.seed + (args.xt_seeds or q.get("xt_seeds", 3))))
    torch.set_num_threads(args.threads)
    started = time.perf_counter()

    print(f"# samplers benchmark, {date.today()}, git {git_revision()}; {hardware_description()}; "
          f"torch.set_num_threads({args.threads})")
    print(f"# n = {n} samples per run; SW = sliced Wasserstein (256 projections) to fresh data, averaged over "
          f"{repeats} reference draws x projection seeds (the same for every row); floor = data-vs-data SW, same "
          f"n and repeats; ratio = SW / floor")
    print(f"# grid: one x_T seed ({args.seed}), shared by every method and model; DPM vs DDPM: SW also averaged "
          f"over x_T seeds {xt_seeds}; wall s = the sample() call alone")
    print("# NFE: ode_heun K steps = 2K-1, predictor_corrector K (1 + 1 corrector); target = requested budget, "
          "NFE = Trajectory.nfe; skipped: K > T, Heun or PC with K < 2", flush=True)

    runner = Runner(n)
    prepared = {name: prepare_toy(name, kinds, n, repeats, args.seed) for name in toys}
    first = prepared[toys[0]]
    sample(first.models.get("learned", next(iter(first.models.values()))), first.schedule,
           torch.randn(n, 2), method="ddim", steps=10)  # warm-up, so the first row's time is honest

    rows: list[dict[str, Any]] = []
    if grid_toys:
        print("\n## Grid\n" + GRID_HEADER + "\n" + "-" * len(GRID_HEADER), flush=True)
    grid_started = time.perf_counter()
    for name in grid_toys:
        toy = prepared.get(name) or prepare_toy(name, kinds, n, repeats, args.seed)
        prepared[name] = toy
        for kind in toy.models:
            for method in methods:
                for target in nfes:
                    steps = steps_for_nfe(method, target, toy.schedule.T)
                    if steps is None:
                        continue
                    r = runner.run(toy, kind, method, steps, args.seed)
                    row = {"toy": name, "model": kind, "method": method, "nfe_target": target, "steps": steps,
                           "nfe": r["nfe"], "sw": r["sw"], "floor": toy.floor, "ratio": r["sw"] / toy.floor,
                           "seconds": r["seconds"]}
                    rows.append(row)
                    print(grid_line(row), flush=True)
    grid_seconds = time.perf_counter() - grid_started
    if grid_toys:
        print(f"# grid: {len(rows)} runs in {grid_seconds:.0f} s")
        for name in grid_toys:
            for kind in KINDS:
                lines = pivot_table(rows, name, kind, nfes)
                if lines:
                    print("\n" + "\n".join(lines))

    summary_started = time.perf_counter()
    print(f"\n## DPM-Solver++ vs DDPM-1000 (pretrained models; SW averaged over {len(xt_seeds)} x_T seeds x "
          f"{repeats} reference draws; PASS: best of DPM-{'/'.join(map(str, DPM_NFE))} <= {DPM_TARGET} x DDPM-1000)")
    print(DPM_HEADER + "\n" + "-" * len(DPM_HEADER), flush=True)
    dpm_rows = []
    for name in toys:
        toy = prepared[name]
        for kind in toy.models:
            d = dpm_vs_ddpm(runner, toy, kind, xt_seeds)
            dpm_rows.append(d)
            print(dpm_line(d), flush=True)
    learned = [d for d in dpm_rows if d["model"] == "learned"]
    dpm_pass = bool(learned) and all(d["pass"] for d in learned)
    print(f"DPM-Solver++ vs DDPM-1000: {'PASS' if dpm_pass else 'FAIL'} "
          f"({sum(d['pass'] for d in learned)}/{len(learned)} learned toys; exact-score rows are for information)")

    model_name = toys[0]
    oh_model = first.models.get("learned") or load_pretrained(f"ddpm-{model_name}").model
    oh = overhead(oh_model, first.schedule, seed=args.seed)
    print(f"\n## Overhead (ddpm-{model_name}, {oh['n']} points, DDIM-{oh['steps']}, best of {oh['repeats']} each, "
          f"alternating order, {args.threads} threads)")
    print(f"{'50 bare model(x, t) calls':<44} {oh['bare_seconds']:8.4f} s")
    print(f"{'sample(..., method=ddim, steps=50)':<44} {oh['sample_seconds']:8.4f} s   ratio {oh['ratio']:.3f}  "
          f"{'PASS' if oh['pass'] else 'FAIL'} (<= {OVERHEAD_TARGET})")
    print(f"{'  same, keep_trajectory=False':<44} {oh['sample_keep_false_seconds']:8.4f} s   ratio "
          f"{oh['ratio_keep_false']:.3f}")
    summary_seconds = time.perf_counter() - summary_started
    total = time.perf_counter() - started
    print(f"\n# runtime: {total:.0f} s (grid {grid_seconds:.0f} s for {len(grid_toys)} toys, summaries "
          f"{summary_seconds:.0f} s)")

    result = {
        "benchmark": "samplers", "created": str(date.today()), "git_revision": git_revision(),
        "hardware": hardware_description(), "threads": args.threads,
        "settings": {"n": n, "seed": args.seed, "repeats": repeats, "xt_seeds": xt_seeds, "nfe": nfes,
                     "methods": methods, "kinds": kinds, "toys": toys, "grid_toys": grid_toys,
                     "n_projections": 256, "quick": args.quick},
        "floors": {name: prepared[name].floor for name in prepared},
        "rows": rows,
        "dpm_vs_ddpm": {"target": DPM_TARGET, "dpm_nfe": list(DPM_NFE), "ddpm_steps": DDPM_STEPS,
                        "pass": dpm_pass, "rows": dpm_rows},
        "overhead": {"model": f"ddpm-{model_name}", "target": OVERHEAD_TARGET, **oh},
        "seconds": {"total": total, "grid": grid_seconds, "summaries": summary_seconds},
    }
    if args.json:
        with open(args.json, "w") as f:
            json.dump(_json_safe(result), f, indent=1)
            f.write("\n")
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
