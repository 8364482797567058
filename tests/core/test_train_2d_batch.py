"""Batched 2D training (core.train_2d_batch): each job of a batch trains as it would alone."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from core.checkpoints import Pretrained
from core.evaluate import evaluate_2d
from core.models.mlp import MLPConfig, MLPDenoiser
from core.models.mlp_batch import MLPBatch
from core.schedules import make_schedule
from core.train_2d import train_ddpm_2d
from core.train_2d_batch import BatchJob, train_ddpm_2d_batch
from core.training import TrainConfig

SCHEDULE = make_schedule("cosine", 1000)
SHORT = TrainConfig(steps=40, batch_size=256, lr=3e-3, warmup_steps=5)


def max_weight_gap(a: torch.nn.Module, b: torch.nn.Module) -> float:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    return max((sa[k] - sb[k]).abs().max().item() for k in sa)


def test_mlp_batch_computes_each_member():
    cfg = MLPConfig(width=32, depth=2, t_embed_dim=16, x_embed_dim=8)
    members = []
    for seed in range(3):
        torch.manual_seed(seed)
        m = MLPDenoiser(cfg)
        torch.nn.init.normal_(m.out[-1].weight)  # the zero-initialised output layer would hide the rest
        members.append(m)
    batch = MLPBatch(members)
    g = torch.Generator().manual_seed(0)
    x, t = torch.randn(3, 50, 2, generator=g), torch.randint(0, 1000, (3, 50), generator=g).float()
    out = batch(x, t)
    for i, m in enumerate(members):
        torch.testing.assert_close(out[i], m(x[i], t[i]), rtol=1e-5, atol=1e-5)
        assert max_weight_gap(batch.member(i), m) == 0.0


def test_mlp_batch_refuses_mixed_or_conditional_members():
    with pytest.raises(ValueError, match="same MLPConfig"):
        MLPBatch([MLPDenoiser(MLPConfig(width=16)), MLPDenoiser(MLPConfig(width=32))])
    for cfg in (MLPConfig(width=16, num_classes=3), MLPConfig(width=16, learn_sigma=True)):
        with pytest.raises(ValueError, match="unconditional"):
            MLPBatch([MLPDenoiser(cfg)])


def test_batched_jobs_match_their_solo_runs():
    points = torch.randn(300, 2, generator=torch.Generator().manual_seed(5))
    jobs = [BatchJob("eight_gaussians", 0), BatchJob("two_moons", 1), BatchJob(points, 2)]
    finished = []
    out = train_ddpm_2d_batch(jobs, SCHEDULE, SHORT, on_finish=lambda j, r, c: finished.append(j))
    assert finished == [0, 1, 2]
    for job, (result, config) in zip(jobs, out, strict=True):
        solo, solo_config = train_ddpm_2d(job.data, SCHEDULE, replace(SHORT, seed=job.seed))
        assert result.steps == SHORT.steps and result.stop_reason == "steps"
        assert max_weight_gap(result.ema_model, solo.ema_model) < 1e-5
        assert max_weight_gap(result.model, solo.model) < 1e-5
        assert result.losses == pytest.approx(solo.losses, rel=1e-4)
        assert config["model"] == solo_config["model"] and config["training"]["seed"] == job.seed


def test_a_stopped_or_diverged_job_leaves_and_the_others_train_on_unchanged():
    broken = torch.full((50, 2), float("nan"))
    jobs = [BatchJob("two_moons", 0), BatchJob("swiss_roll", 1), BatchJob(broken, 2), BatchJob("two_moons", 3)]
    left_at = {}

    def callback(j: int, info: dict) -> bool:
        assert callable(info["ema_model"]) and info["steps"] == SHORT.steps
        return j == 1 and info["step"] == 10

    out = train_ddpm_2d_batch(jobs, SCHEDULE, SHORT, callback=callback,
                              on_finish=lambda j, r, c: left_at.setdefault(j, r.steps))
    assert left_at == {2: 0, 1: 10, 0: 40, 3: 40}
    assert out[1][0].stop_reason == "callback" and out[1][0].steps == 10
    assert out[2][0].stop_reason == "nonfinite" and "non-finite" in out[2][0].message
    assert all(torch.isfinite(p).all() for p in out[2][0].model.parameters())  # the initial weights, kept
    stopped, _ = train_ddpm_2d("swiss_roll", SCHEDULE, replace(SHORT, seed=1), callback=lambda i: i["step"] == 10)
    assert stopped.steps == 10
    assert max_weight_gap(out[1][0].model, stopped.model) < 1e-5
    for j in (0, 3):  # the AdamW moments and EMA of the rows that stayed were kept as they were
        solo, _ = train_ddpm_2d(jobs[j].data, SCHEDULE, replace(SHORT, seed=jobs[j].seed))
        assert max_weight_gap(out[j][0].ema_model, solo.ema_model) < 1e-5


def test_the_time_budget_counts_each_jobs_share():
    cfg = replace(SHORT, steps=100_000, time_budget_s=0.2)
    out = train_ddpm_2d_batch([BatchJob("two_moons", 0), BatchJob("two_moons", 1)], SCHEDULE, cfg)
    for result, _ in out:
        assert result.stop_reason == "time" and 0.2 <= result.seconds < 1.5
        assert "time budget of 0.2 s" in result.message


def test_a_job_trained_in_a_batch_is_as_good_as_alone():
    cfg = TrainConfig(steps=600, batch_size=512, lr=3e-3)
    (batched, config), _ = train_ddpm_2d_batch([BatchJob("eight_gaussians", 0), BatchJob("two_moons", 1)],
                                               SCHEDULE, cfg)
    solo, solo_config = train_ddpm_2d("eight_gaussians", SCHEDULE, cfg)
    data = {"kind": "toy", "name": "eight_gaussians"}
    scores = [evaluate_2d(Pretrained(model=r.ema_model, schedule=SCHEDULE, config={**c, "data": data}), n=2000,
                          repeats=2, kernel_distances=False)
              for r, c in ((batched, config), (solo, solo_config))]
    assert scores[0]["modes_covered"] == scores[1]["modes_covered"] == 8
    assert "mmd_rbf" not in scores[0] and "energy_distance" not in scores[0]  # kernel_distances=False
    assert scores[0]["sw_ratio"] == pytest.approx(scores[1]["sw_ratio"], rel=0.1)
    assert scores[0]["sw_ratio"] < 3.0  # and it did learn the mixture
