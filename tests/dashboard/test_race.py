"""The race of the baselines page as a job recipe (dashboard.jobs.race), called in-process with a tiny budget and a
fake report / should_stop: what it reports while training, the plain-data result the page rebuilds its models from,
a stop during the GAN that keeps its weights and skips the VAE, and a cancel that returns no weights.
Run: python -m pytest tests/dashboard/test_race.py -q"""

from __future__ import annotations

import json
import pickle
from dataclasses import replace

import numpy as np
import pytest
import torch
from safetensors.torch import load as load_safetensors

from core.checkpoints import build_model
from dashboard.jobs import race as race_job
from dashboard.jobs.recipes import RECIPES


class Recorder:
    """A fake ``report``: every message, checked to be plain data the runner can pickle."""

    def __init__(self):
        self.messages: list[tuple[str, dict]] = []

    def __call__(self, kind: str, payload: dict) -> None:
        pickle.dumps(payload)
        self.messages.append((kind, payload))

    def of(self, kind: str) -> list[dict]:
        return [p for k, p in self.messages if k == kind]


def stop_when(predicate, request: str = "stop"):
    """A fake ``should_stop``: False until predicate() holds, then ``request`` from then on."""
    state = {"stop": False}

    def should_stop():
        if not state["stop"] and predicate():
            state["stop"] = request
        return state["stop"]

    return should_stop


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py: one thread, as in a worker


@pytest.fixture(scope="module")
def full():
    # the first training steps of a process are slow (lazy initialisation): a warm-up, then the race measured
    race_job.race(race_job.race_spec("two_moons", 0.05), lambda kind, payload: None, lambda: False)
    rec = Recorder()
    result = race_job.race(race_job.race_spec("two_moons", 0.5, seed=3), rec, lambda: False)
    return result, rec


def test_the_race_is_registered_and_its_result_is_plain_data(full):
    result, _ = full
    assert RECIPES["race"] is race_job.race
    pickle.loads(pickle.dumps(result))  # no modules inside: safetensors bytes, numbers, lists, numpy arrays
    assert not any(isinstance(v, torch.nn.Module) for r in result["runs"].values() for v in r.values())
    assert (result["toy"], result["budget_s"], result["seed"], result["r1_gamma"]) == ("two_moons", 0.5, 3, 0.0)
    assert list(result["runs"]) == ["ddpm", "gan", "vae"] and not result["stopped"] and not result["stop_reason"]


def test_each_family_trains_within_the_budget_and_its_weights_load(full):
    result, _ = full
    for family, run in result["runs"].items():
        assert run["family"] == family and run["steps"] > 0 and len(run["losses"]) == run["steps"]
        assert run["stop_reason"] in ("time", "steps") and run["seconds"] < 3 and run["message"]
        assert run["steps_planned"] == race_job.race_recipe(family, 0.5, 3)[0].steps
        snaps = run["snapshots"]
        assert len(snaps) >= 3 and snaps[0]["step"] == 1 and snaps[-1]["step"] == run["steps"]
        assert all(s["points"].shape == (race_job.SNAPSHOT_N, 2) and np.isfinite(s["points"]).all() for s in snaps)
        assert all((s["d_map"] is not None) == (family == "gan") for s in snaps)
        config = json.loads(run["config_json"])
        assert config["training"]["time_budget_s"] == 0.5 and config["data"]["name"] == "two_moons"
        model, schedule = build_model(config)
        model.load_state_dict(load_safetensors(run["weights"]))
        assert (schedule is not None) == (family == "ddpm")
    gan = result["runs"]["gan"]
    assert len(gan["players"]["L_D"]) == len(gan["players"]["L_G"]) == gan["steps"]
    assert np.allclose(np.add(gan["players"]["L_D"], gan["players"]["L_G"]), gan["losses"], atol=1e-4)
    assert all(s["d_map"].shape == (race_job.D_MAP_N, race_job.D_MAP_N) for s in gan["snapshots"])
    assert result["runs"]["ddpm"]["players"] == {} and result["runs"]["vae"]["players"] == {}


def test_progress_accumulates_every_loss_once_with_each_familys_offset(full):
    result, rec = full
    progress = rec.of("progress")
    sent = [x for p in progress for x in p["new_losses"]]
    every = [x for r in result["runs"].values() for x in r["losses"]]
    assert sent == every  # the runner's job.losses: family after family, no loss twice
    assert all({"step", "steps", "seconds", "loss", "phase", "family", "runs"} <= set(p) for p in progress)
    assert [p["phase"] for p in progress][0] == "Diffusion (DDPM) (1 of 3)"
    assert {p["phase"] for p in progress} == {"Diffusion (DDPM) (1 of 3)", "GAN (2 of 3)", "VAE (3 of 3)"}
    runs = progress[-1]["runs"]
    offset = 0
    for family, run in result["runs"].items():
        assert runs[family]["offset"] == offset and runs[family]["step"] == run["steps"] and runs[family]["done"]
        offset += run["steps"]
    gan_players = [p["players"] for p in progress if "players" in p]
    assert gan_players and all(len(x["L_D"]) == len(x["L_G"]) for x in gan_players)
    assert gan_players[-1]["L_D"] == result["runs"]["gan"]["players"]["L_D"]
    snaps = rec.of("snapshot")
    assert [(s["family"], s["step"]) for s in snaps] == [(f, s["step"]) for f, r in result["runs"].items()
                                                         for s in r["snapshots"]]


def test_stop_during_the_gan_keeps_its_weights_and_skips_the_vae(monkeypatch):
    # steps, not seconds, end the DDPM here (a 60 s budget no family reaches): on a loaded machine a 0.5 s budget
    # could end the GAN before its 15th step, and the race would go on to the VAE
    recipe = race_job.race_recipe

    def forty_steps(family, budget_s, seed, r1_gamma=0.0):
        cfg, options = recipe(family, budget_s, seed, r1_gamma)
        return replace(cfg, steps=40, time_budget_s=60.0), options

    monkeypatch.setattr(race_job, "race_recipe", forty_steps)
    rec = Recorder()
    calls = {"gan": 0}  # should_stop() is polled once a step: stop at the GAN's 15th step

    def gan_at_15():
        if any(p["family"] == "gan" for p in rec.of("progress")):
            calls["gan"] += 1
        return calls["gan"] >= 15

    result = race_job.race(race_job.race_spec("eight_gaussians", 0.5, seed=1), rec, stop_when(gan_at_15))
    assert result["stopped"] and result["stop_reason"] == "stop" and not result["cancelled"]
    assert list(result["runs"]) == ["ddpm", "gan"] and "not trained: VAE" in result["message"]
    gan = result["runs"]["gan"]
    assert gan["stop_reason"] == "callback" and gan["steps"] == len(gan["losses"]) == 15
    assert rec.of("progress")[-1]["runs"]["gan"] | {"done": True} == rec.of("progress")[-1]["runs"]["gan"]
    assert gan["snapshots"][-1]["step"] == gan["steps"] and gan["weights"]
    model, _ = build_model(json.loads(gan["config_json"]))
    model.load_state_dict(load_safetensors(gan["weights"]))
    x = model.sample(10, generator=torch.Generator().manual_seed(0))
    assert x.shape == (10, 2) and torch.isfinite(x).all()
    assert result["runs"]["ddpm"]["stop_reason"] == "steps" and result["runs"]["ddpm"]["steps"] == 40


def test_cancel_returns_at_once_without_weights():
    rec = Recorder()
    result = race_job.race(race_job.race_spec("two_moons", 5.0, families=("ddpm", "gan")), rec,
                           stop_when(lambda: len(rec.of("progress")) >= 2, "cancel"))
    assert result["cancelled"] and result["stopped"] and list(result["runs"]) == ["ddpm"]
    run = result["runs"]["ddpm"]
    assert run["stop_reason"] == "callback" and "weights" not in run and run["seconds"] < 5


def test_the_recipe_options():
    cfg, options = race_job.race_recipe("gan", 3, 0, 1.0)
    assert json.dumps(options["r1_gamma"]) == "1.0" and cfg.time_budget_s == 3.0
    assert "r1_gamma" not in race_job.race_recipe("gan", 3, 0)[1]
    cfg, mlp = race_job.race_recipe("ddpm", 2, 5)
    assert cfg.seed == 5 and cfg.time_budget_s == 2.0 and mlp["width"] > 0
