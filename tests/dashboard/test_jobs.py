"""The job runner (dashboard/jobs): real worker processes training real (tiny) models. Stop while queued and while
running, a closed tab, a killed worker, a diverging job, a full queue, a budget that counts running time only, and
identical jobs that share one run (a stop hands one of them the weights so far; a closed tab drops only its own)."""

from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest
import torch
from safetensors.torch import load as load_safetensors

from core.checkpoints import build_model
from core.schedules import make_schedule
from dashboard.jobs import recipes
from dashboard.jobs.runner import CANCELLED, DONE, FAILED, QUEUED, RUNNING, JobError, JobRunner, QueueFull

TINY = {"width": 16, "depth": 1, "t_embed_dim": 16, "x_embed_dim": 4}


def spec(steps: int, lr: float = 3e-3, budget: float | None = None, toy: str = "eight_gaussians",
         seed: int = 0) -> dict:
    return {"data": toy, "schedule": make_schedule("cosine", 100).to_config(),
            "train": {"steps": steps, "batch_size": 128, "lr": lr, "warmup_steps": 10, "time_budget_s": budget,
                      "seed": seed},
            "mlp": TINY, "snapshot_every": max(1, steps // 4), "snapshot_n": 100, "seed": seed, "final_n": 500,
            "data_config": {"kind": "toy", "name": toy}, "steps": steps}


def wait_for(predicate, timeout: float = 60.0, every: float = 0.05):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError("timed out waiting")


def finished(runner: JobRunner, job_id: str, timeout: float = 90.0):
    return wait_for(lambda: (v := runner.view(job_id)) is not None and v.status not in (QUEUED, RUNNING) and v,
                    timeout)


GONE: set[str] = set()  # sessions whose tab has closed


@pytest.fixture(scope="module")
def runner():
    r = JobRunner(workers=1, max_queued=2, is_session_alive=lambda s: s not in GONE, session_grace_s=0.3)
    wait_for(r.ready, timeout=120)
    yield r
    r.shutdown()


def test_a_job_trains_and_returns_weights_that_load(runner):
    job = runner.submit("a", "train_2d", spec(200), label="tiny")
    v = finished(runner, job)
    assert v.status == DONE and v.result["steps_done"] == 200 and v.result["stop_reason"] == "steps"
    assert len(v.losses) == 200 and [s["step"] for s in v.snapshots] == [50, 100, 150, 200]
    model, schedule = build_model(v.result["config"])
    model.load_state_dict(load_safetensors(v.result["weights"]))
    assert schedule.T == 100 and v.result["samples"].shape == (500, 2)
    assert torch.isfinite(model(torch.zeros(3, 2), torch.zeros(3))).all()
    assert 0 < v.result["quality"]["sw_ratio"] < 20


def test_stop_while_queued_removes_it_and_stop_while_running_keeps_the_weights(runner):
    long = runner.submit("b", "train_2d", spec(100_000))
    queued = runner.submit("c", "train_2d", spec(100))
    assert runner.view(queued).status == QUEUED and runner.view(queued).position == 1
    wait_for(lambda: runner.view(long).progress.get("step", 0) >= 20)
    runner.stop(queued)
    assert runner.view(queued).status == CANCELLED
    runner.stop(long)
    v = finished(runner, long)
    assert v.status == DONE and v.result["stop_reason"] == "callback"
    assert 20 <= v.result["steps_done"] < 100_000 and len(v.result["weights"]) > 0


def test_one_job_per_session_and_a_full_queue_says_so(runner):
    first = runner.submit("d", "train_2d", spec(100_000))
    with pytest.raises(JobError, match="already has a job"):
        runner.submit("d", "train_2d", spec(10))
    runner.submit("e", "train_2d", spec(10, seed=1))
    runner.submit("f", "train_2d", spec(10, seed=2))
    with pytest.raises(QueueFull, match="queue is full"):
        runner.submit("g", "train_2d", spec(10, seed=3))
    shared = runner.submit("g", "train_2d", spec(10, seed=2))  # the same as f's: it follows f's run, no new place
    assert runner.view(shared).shared_with == 1 and runner.counts()["queued"] == 2
    runner.stop(shared)
    for job in runner.session_jobs("e") + runner.session_jobs("f"):
        runner.stop(job.id)
    runner.stop(first)
    finished(runner, first)


def test_a_closed_tab_cancels_its_job_and_frees_the_worker(runner):
    job = runner.submit("h", "train_2d", spec(100_000))
    wait_for(lambda: runner.view(job).status == RUNNING)
    GONE.add("h")
    v = finished(runner, job, timeout=20)
    assert v.status == CANCELLED and "closed" in v.message
    after = runner.submit("i", "train_2d", spec(20))
    assert finished(runner, after).status == DONE


def test_a_killed_worker_fails_only_its_job_and_is_replaced(runner):
    job = runner.submit("j", "train_2d", spec(100_000))
    wait_for(lambda: runner.view(job).progress.get("step", 0) > 0)
    os.kill(runner.worker_pids()[runner.view(job).worker], signal.SIGKILL)
    v = finished(runner, job, timeout=30)
    assert v.status == FAILED and "stopped unexpectedly" in v.message
    after = runner.submit("k", "train_2d", spec(20))
    assert finished(runner, after, timeout=120).status == DONE


def test_a_diverging_job_reports_it_and_frees_its_worker(runner):
    job = runner.submit("l", "train_2d", spec(300, lr=1e9))
    v = finished(runner, job)
    assert v.status == DONE and v.result["stop_reason"] == "nonfinite" and "non-finite" in v.message
    after = runner.submit("m", "train_2d", spec(20))
    assert finished(runner, after).status == DONE


def test_the_time_budget_counts_running_time_only(runner):
    blocker = runner.submit("n", "train_2d", spec(100_000))
    budgeted = runner.submit("o", "train_2d", spec(100, budget=3.0))
    time.sleep(3.5)  # longer than the budget, spent waiting in the queue
    assert runner.view(budgeted).status == QUEUED
    runner.stop(blocker)
    v = finished(runner, budgeted)
    assert v.status == DONE and v.result["steps_done"] == 100 and v.result["stop_reason"] == "steps"


def test_identical_jobs_share_one_run_and_a_stop_hands_out_the_weights_so_far(runner, one_torch_thread):
    a, b, c = (runner.submit(who, "train_2d", spec(4000)) for who in ("sa", "sb", "sc"))
    assert runner.counts() == {"queued": 0, "running": 1, "workers": 1} and runner.view(b).shared_with == 2
    wait_for(lambda: runner.view(a).progress.get("step", 0) >= 50)
    runner.stop(b)  # others follow the run: b gets the model so far, the run goes on
    vb = finished(runner, b)
    assert vb.status == DONE and vb.result["stop_reason"] == "callback" and 50 <= vb.result["steps_done"] < 4000
    assert len(vb.losses) == vb.result["steps_done"] and vb.message == f"stopped by request after " \
                                                                       f"{vb.result['steps_done']} steps"
    model, _ = build_model(vb.result["config"])
    model.load_state_dict(load_safetensors(vb.result["weights"]))
    assert vb.result["config"]["training"]["steps_done"] == vb.result["steps_done"]
    assert vb.result["samples"].shape == (500, 2) and "quality" in vb.result
    assert runner.view(a).status == RUNNING and runner.view(a).shared_with == 1
    runner.stop(a)  # c still follows: a forks too
    va, vc = finished(runner, a), finished(runner, c)
    assert va.result["steps_done"] < vc.result["steps_done"] == 4000 and vc.result["stop_reason"] == "steps"
    assert vb.result["weights"] != vc.result["weights"]
    alone = recipes.train_2d(spec(4000), lambda kind, payload: None, lambda: False)  # here, one thread as a worker
    assert alone["weights"] == vc.result["weights"]  # what sharing rests on: the same training, the same model


def test_a_shared_run_outlives_one_closed_tab_and_ends_with_the_last(runner):
    p, q = runner.submit("tp", "train_2d", spec(100_000)), runner.submit("tq", "train_2d", spec(100_000))
    wait_for(lambda: runner.view(p).status == RUNNING)
    GONE.add("tp")
    assert finished(runner, p, timeout=20).status == CANCELLED
    time.sleep(1.0)  # a few housekeeping rounds: q's run goes on
    assert runner.view(q).status == RUNNING and runner.view(q).shared_with == 0
    GONE.add("tq")
    assert finished(runner, q, timeout=20).status == CANCELLED
    assert finished(runner, runner.submit("tr", "train_2d", spec(20))).status == DONE  # the worker is free


def test_the_users_own_points_and_different_settings_are_not_shared(runner):
    blocker = runner.submit("u0", "train_2d", spec(100_000, seed=9))
    points = spec(10) | {"data": np.zeros((64, 2), np.float32), "data_config": {"kind": "points"}}
    x, y = runner.submit("u1", "train_2d", points), runner.submit("u2", "train_2d", points)
    assert runner.counts()["queued"] == 2 and runner.view(y).shared_with == 0
    runner.stop(x)
    assert runner.view(x).status == CANCELLED and runner.view(y).status == QUEUED  # a queued stop: its own job
    runner.stop(y)
    runner.stop(blocker)
    finished(runner, blocker)


def test_a_run_nobody_follows_after_a_stop_and_a_closed_tab_frees_its_worker(runner):
    f, g = runner.submit("zf", "train_2d", spec(100_000)), runner.submit("zg", "train_2d", spec(100_000))
    wait_for(lambda: runner.view(f).progress.get("step", 0) >= 20)
    runner.stop(f)  # g still follows: f gets the weights so far
    GONE.add("zg")  # ... and then g's tab closes: nobody waits for the run any more
    assert finished(runner, f).status == DONE and finished(runner, g, timeout=20).status == CANCELLED
    assert finished(runner, runner.submit("zh", "train_2d", spec(20)), timeout=30).status == DONE


def test_a_killed_worker_fails_every_job_of_its_shared_run(runner):
    v, w = runner.submit("kv", "train_2d", spec(100_000)), runner.submit("kw", "train_2d", spec(100_000))
    wait_for(lambda: runner.view(v).progress.get("step", 0) > 0)
    os.kill(runner.worker_pids()[runner.view(v).worker], signal.SIGKILL)
    assert finished(runner, v, timeout=30).status == finished(runner, w, timeout=30).status == FAILED
