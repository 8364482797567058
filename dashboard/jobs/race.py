"""The race of the Diffusion vs GAN vs VAE page as a job of the runner (no Streamlit: it runs in a worker process).

The three families train one after another on the same toy, each with its own default recipe, the same seed and
at most the same number of seconds. Snapshots draw each model's samples from the same noise every time (x_T through
DDIM-20 for the diffusion model, z through the GAN's generator or the VAE's decoder), after the first step, at each
k / N_MARKS of the budget (in training time: the snapshots' own time left out) and at the end; the GAN's also hold
its discriminator's D(x) on a grid at that step (core.models.gan.discriminator_map), as GAN Lab draws it. Stop ends
the family in training, keeping its weights, and skips the rest.

    result = race(race_spec("two_moons", budget_s=15, seed=0), report, should_stop)

What the page sees while it runs (``report``):

- "progress": {family, phase ("GAN (2 of 3)"), step, steps, loss, seconds (of this family), budget_s,
  new_losses (the per-step losses since the last message: the runner appends them to ``job.losses``, family after
  family), runs: {family: {offset (where its losses start in job.losses), step, steps, seconds, loss, done,
  stop_reason, and for the GAN L_D, L_G (the last step's)}}, and for the GAN players: {"L_D": [...], "L_G": [...]}
  (per step so far, at most once a second)}.
- "snapshot": {family, step, seconds, points ((n, 2) float32), d_map ((n, n) float32 for the GAN, else None)}.

The result is plain data: toy, budget_s, seed, r1_gamma, families (planned), stopped, cancelled, stop_reason
(False, "stop" or "cancel"), message, runs: {family: {family, weights (safetensors bytes of the EMA model),
config_json (its checkpoint config, core.checkpoints.checkpoint_bytes), losses, players, snapshots (as reported),
steps, steps_planned, seconds, stop_reason, message}}. A family that took no step has no weights.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from core.checkpoints import Pretrained, checkpoint_bytes
from core.evaluate import evaluate_2d
from core.models.gan import discriminator_map
from core.schedules import make_schedule
from core.train_2d import DEFAULT_2D_TRAIN, DEFAULT_MLP, train_ddpm_2d
from core.train_baselines import MODEL_DEFAULTS, TRAIN_DEFAULTS, train_baseline
from core.training import TrainConfig
from dashboard.jobs.snapshot import Report, ShouldStop, snapshot

RACE_FAMILIES: tuple[str, ...] = ("ddpm", "gan", "vae")
RACE_LABELS = {"ddpm": "Diffusion (DDPM)", "gan": "GAN", "vae": "VAE"}
SNAPSHOT_N = 500
METRICS_N = 2000  # samples per raced model for the metrics table (core.evaluate.evaluate_2d)
RACE_LIM = 3.0  # the race's plotted square and the GAN discriminator's map: any toy (pinwheel reaches 2.9)
D_MAP_N = 40  # grid points per side: 1,600 discriminator evaluations, well under a millisecond for the 2D MLP
N_MARKS = 6  # snapshots at 1/6, 2/6, ... of the budget (and one after the first step)
PROGRESS_EVERY_S = 0.25  # progress messages at most this often (the page polls once a second)
PLAYERS_EVERY_S = 1.0  # the GAN's per-step L_D and L_G so far, at most this often (they grow with every step)


def race_spec(toy: str, budget_s: float, seed: int = 0, r1_gamma: float = 0.0,
              families: Sequence[str] = RACE_FAMILIES, snapshot_n: int = SNAPSHOT_N, n_marks: int = N_MARKS,
              map_lim: float = RACE_LIM, map_n: int = D_MAP_N) -> dict[str, Any]:
    """The spec of a race job (plain data). No "steps": the runner then estimates its time from ``expected_s``."""
    return {"toy": toy, "budget_s": float(budget_s), "seed": int(seed), "r1_gamma": float(r1_gamma),
            "families": list(families), "snapshot_n": int(snapshot_n), "n_marks": int(n_marks),
            "map_lim": float(map_lim), "map_n": int(map_n)}


def race_recipe(family: str, budget_s: float, seed: int, r1_gamma: float = 0.0) -> tuple[TrainConfig, dict]:
    """Each family's own default recipe (core.train_2d.DEFAULT_2D_TRAIN, core.train_baselines.TRAIN_DEFAULTS),
    with the race's time budget and seed; model options (the MLP of the DDPM, the GAN's R1 weight)."""
    if family == "ddpm":
        return replace(DEFAULT_2D_TRAIN, time_budget_s=float(budget_s), seed=seed), dict(DEFAULT_MLP)
    cfg = replace(TRAIN_DEFAULTS[family, "2d"], time_budget_s=float(budget_s), seed=seed)
    options = dict(MODEL_DEFAULTS[family, "2d"])
    if family == "gan" and r1_gamma > 0:
        options["r1_gamma"] = float(r1_gamma)
    return cfg, options


class _Progress:
    """What the race has told the page so far: the losses sent, and a summary line per family."""

    def __init__(self, report: Report, spec: dict[str, Any]):
        self.report = report
        self.budget_s = float(spec["budget_s"])
        self.families = list(spec["families"])
        self.sent = 0  # losses sent, all families together (the length of the runner's job.losses)
        self.runs: dict[str, dict[str, Any]] = {}

    def begin(self, family: str, steps: int) -> None:
        self.runs[family] = {"offset": self.sent, "step": 0, "steps": steps, "seconds": 0.0, "loss": None,
                             "done": False, "stop_reason": None}

    def send(self, family: str, losses: list[float], players: dict[str, list[float]] | None = None,
             **summary: Any) -> None:
        """One "progress" message: the family's new losses (and, given, the GAN's players so far)."""
        run = self.runs[family]
        run.update(summary)
        new = losses[self.sent - run["offset"]:]  # a copy: the queue pickles it later, in another thread
        self.sent += len(new)
        payload = {"family": family, "phase": f"{RACE_LABELS.get(family, family)} "
                                              f"({self.families.index(family) + 1} of {len(self.families)})",
                   "step": run["step"], "steps": run["steps"], "seconds": run["seconds"], "budget_s": self.budget_s,
                   "new_losses": new, "runs": {f: dict(r) for f, r in self.runs.items()}}
        if run["loss"] is not None:
            payload["loss"] = run["loss"]
        if players is not None:
            payload["players"] = {k: list(v) for k, v in players.items()}
        self.report("progress", payload)


def train_family(family: str, spec: dict[str, Any], report: Report, should_stop: ShouldStop,
                 progress: _Progress | None = None) -> dict[str, Any]:
    """Train one family of the race (``spec`` as race_spec makes it); its plain-data run (see the module's
    docstring). should_stop() is polled at every step: "stop" ends training here, keeping the weights so far."""
    toy, budget_s, seed = spec["toy"], float(spec["budget_s"]), int(spec["seed"])
    snapshot_n, n_marks = int(spec.get("snapshot_n", SNAPSHOT_N)), int(spec.get("n_marks", N_MARKS))
    map_lim, map_n = float(spec.get("map_lim", RACE_LIM)), int(spec.get("map_n", D_MAP_N))
    progress = progress or _Progress(report, {**spec, "families": [family]})
    g = torch.Generator().manual_seed(seed + 12345)
    noise = torch.randn(snapshot_n, 2, generator=g)  # x_T (DDPM) or z (GAN, VAE)
    decoder_noise = torch.randn(snapshot_n, 2, generator=g)  # the VAE's output noise, fixed too
    schedule = make_schedule("cosine", 1000) if family == "ddpm" else None
    cfg, options = race_recipe(family, budget_s, seed, float(spec.get("r1_gamma", 0.0)))
    marks = [budget_s * k / n_marks for k in range(1, n_marks + 1)]
    losses: list[float] = []
    snaps: list[dict[str, Any]] = []
    players: dict[str, list[float]] = {"L_D": [], "L_G": []} if family == "gan" else {}
    state: dict[str, Any] = {"last": 0.0, "players_at": 0.0, "mark": 0, "snapshot_s": 0.0}
    progress.begin(family, cfg.steps)

    @torch.no_grad()
    def draw(model: torch.nn.Module) -> np.ndarray:
        if family == "ddpm":
            return snapshot(model, schedule, noise)
        x = model.decode(noise)
        if family == "vae":
            x = x + model.log_sigma.exp() * decoder_noise
        return x.numpy()

    @torch.no_grad()
    def d_map(model: torch.nn.Module) -> np.ndarray | None:
        return discriminator_map(model.discriminator, map_lim, map_n) if family == "gan" else None

    def take_snapshot(step: int, seconds: float, ema: torch.nn.Module, raw: torch.nn.Module) -> None:
        start = time.perf_counter()
        snap = {"family": family, "step": step, "seconds": seconds, "points": draw(ema), "d_map": d_map(raw)}
        snaps.append(snap)
        report("snapshot", snap)
        state["snapshot_s"] += time.perf_counter() - start

    def summary(info: dict[str, Any]) -> dict[str, Any]:
        out = {"step": info["step"], "seconds": info["seconds"], "loss": info["loss"]}
        if players:
            out |= {"L_D": players["L_D"][-1], "L_G": players["L_G"][-1]}
        return out

    def callback(info: dict[str, Any]) -> bool:
        losses.append(info["loss"])
        if players:
            loss_d, loss_g = info["model"].last_losses
            players["L_D"].append(loss_d)
            players["L_G"].append(loss_g)
        step, seconds = info["step"], info["seconds"]
        snap = step == 1 or step == info["steps"]
        # the marks count training time: on a busy machine a slow snapshot must not make every step a snapshot
        while state["mark"] < len(marks) and seconds - state["snapshot_s"] >= marks[state["mark"]]:
            state["mark"] += 1
            snap = True
        if snap:
            take_snapshot(step, seconds, info["ema_model"], info["model"])
        now = time.perf_counter()
        if snap or now - state["last"] >= PROGRESS_EVERY_S:
            state["last"] = now
            send_players = bool(players) and (snap or now - state["players_at"] >= PLAYERS_EVERY_S)
            if send_players:
                state["players_at"] = now
            progress.send(family, losses, players if send_players else None, **summary(info))
        return bool(should_stop())  # "stop": keep what was trained; "cancel": nobody waits for it

    if family == "ddpm":
        result, config = train_ddpm_2d(toy, schedule, cfg, mlp=options, callback=callback)
        config["data"] = {"kind": "toy", "name": toy, "source": "core.data.toy2d (generated)"}
    else:
        result, config = train_baseline(family, toy, cfg, model_options=options, callback=callback)
    run: dict[str, Any] = {"family": family, "losses": losses, "players": players, "snapshots": snaps,
                           "steps": result.steps, "steps_planned": cfg.steps, "seconds": result.seconds,
                           "stop_reason": result.stop_reason, "message": result.message}
    if should_stop() == "cancel":  # a closed tab: no final snapshot, no weights
        return run
    if result.steps:
        ema = result.ema_model.eval().requires_grad_(False)
        if not snaps or snaps[-1]["step"] != result.steps:
            take_snapshot(result.steps, result.seconds, ema, result.model)
        run["weights"], run["config_json"] = checkpoint_bytes(ema, config)
        # the page's metrics, here in the worker so the server computes nothing (same call as the page made)
        run["metrics"] = evaluate_2d(Pretrained(model=ema, schedule=schedule, config=config), n=METRICS_N,
                                     seed=seed, repeats=2)
    last = {"step": result.steps, "seconds": result.seconds, "done": True, "stop_reason": result.stop_reason}
    if losses and result.steps:
        last["loss"] = losses[result.steps - 1]
    if players and result.steps:
        last |= {"L_D": players["L_D"][result.steps - 1], "L_G": players["L_G"][result.steps - 1]}
    progress.send(family, losses, players or None, **last)
    return run


def race(spec: dict[str, Any], report: Report, should_stop: ShouldStop) -> dict[str, Any]:
    """The race as a job recipe (dashboard.jobs.recipes.RECIPES["race"]): the families of ``spec`` (race_spec) one
    after another; a stop during one ends it with its weights and skips the rest."""
    families = list(spec.get("families") or RACE_FAMILIES)
    spec = {**spec, "families": families}
    progress = _Progress(report, spec)
    out: dict[str, Any] = {"toy": spec["toy"], "budget_s": float(spec["budget_s"]), "seed": int(spec["seed"]),
                           "r1_gamma": float(spec.get("r1_gamma", 0.0)), "families": families, "runs": {},
                           "stopped": False, "cancelled": False, "stop_reason": False}
    for family in families:
        out["runs"][family] = train_family(family, spec, report, should_stop, progress)
        request = should_stop()
        if request:
            skipped = families[families.index(family) + 1:]
            out |= {"stopped": True, "cancelled": request == "cancel", "stop_reason": request,
                    "message": f"stopped during the {RACE_LABELS.get(family, family)}"
                               + (f"; not trained: {', '.join(RACE_LABELS.get(f, f) for f in skipped)}"
                                  if skipped else "")}
            return out
    out["message"] = f"{len(families)} families trained, at most {out['budget_s']:g} s each"
    return out
