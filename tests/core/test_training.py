"""The training loop: determinism, budgets, callbacks, the NaN guard, and that it actually learns."""

import math

import pytest
import torch
from torch import nn

from core.data.toy2d import sample_toy
from core.diffusion import loss_simple
from core.schedules import make_schedule
from core.train_2d import train_ddpm_2d
from core.training import EMA, TrainConfig, train


def _tiny_regression(nan_at: int | None = None):
    model = nn.Linear(2, 1)
    target = torch.tensor([[2.0], [-1.0]])

    def loss_fn(m, batch, g):
        step, x = batch
        loss = (m(x) - x @ target).pow(2).mean()
        return loss * float("nan") if step == nan_at else loss

    def next_batch(step, g):
        return step, torch.randn(64, 2, generator=g)

    return model, loss_fn, next_batch


def test_learns_and_is_deterministic():
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        model, loss_fn, next_batch = _tiny_regression()
        res = train(model, loss_fn, next_batch, TrainConfig(steps=300, batch_size=64, lr=0.05, warmup_steps=10))
        runs.append(res)
    assert runs[0].losses[-1] < 1e-3 * runs[0].losses[0]
    assert runs[0].losses == runs[1].losses
    for a, b in zip(runs[0].ema_model.parameters(), runs[1].ema_model.parameters(), strict=True):
        assert torch.equal(a, b)
    assert runs[0].stop_reason == "steps" and runs[0].steps == 300


def test_nan_guard_keeps_the_last_good_weights():
    torch.manual_seed(0)
    model, loss_fn, next_batch = _tiny_regression(nan_at=5)
    snapshots = []
    res = train(model, loss_fn, next_batch, TrainConfig(steps=50, lr=0.01, warmup_steps=1),
                callback=lambda info: snapshots.append([p.detach().clone() for p in model.parameters()]))
    assert res.stop_reason == "nonfinite" and res.steps == 5
    assert "step 5" in res.message and "non-finite" in res.message
    for p, good in zip(res.model.parameters(), snapshots[-1], strict=True):
        assert torch.equal(p, good) and torch.isfinite(p).all()
    assert all(torch.isfinite(p).all() for p in res.ema_model.parameters())


def test_callback_and_time_budget_stop_training():
    model, loss_fn, next_batch = _tiny_regression()
    res = train(model, loss_fn, next_batch, TrainConfig(steps=1000), callback=lambda info: info["step"] >= 7)
    assert res.stop_reason == "callback" and res.steps == 7
    model, loss_fn, next_batch = _tiny_regression()
    res = train(model, loss_fn, next_batch, TrainConfig(steps=10**7, time_budget_s=0.3))
    assert res.stop_reason == "time" and 0.3 <= res.seconds < 3


def test_ema_averages_with_warmup():
    model = nn.Linear(1, 1, bias=False)
    nn.init.zeros_(model.weight)
    ema = EMA(model, decay=0.9)
    with torch.no_grad():
        model.weight.fill_(1.0)
    ema.update(model)  # warmup decay min(0.9, 2/11)
    assert math.isclose(float(ema.model.weight), 1 - 2 / 11, rel_tol=1e-6)


@pytest.mark.parametrize("kwargs, message", [
    ({"steps": 0}, "steps must be a positive integer"),
    ({"lr": -1.0}, "lr must be a positive number"),
    ({"ema_decay": 1.0}, r"ema_decay must lie in \[0, 1\)"),
    ({"time_budget_s": 0}, "time_budget_s must be positive"),
])
def test_config_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**kwargs)


def test_2d_recipe_reduces_the_loss_on_a_toy_and_on_points():
    s = make_schedule("cosine", T=1000)
    cfg = TrainConfig(steps=300, batch_size=256, lr=3e-3, warmup_steps=10)
    res, config = train_ddpm_2d("two_moons", s, cfg, mlp={"width": 32, "depth": 1})
    torch.manual_seed(cfg.seed)
    untrained, _ = train_ddpm_2d("two_moons", s, TrainConfig(steps=1), mlp={"width": 32, "depth": 1})
    x0 = sample_toy("two_moons", 20_000, torch.Generator().manual_seed(9))

    def held_out(model):  # the same t and noise for both models: a paired comparison
        with torch.no_grad():
            return float(loss_simple(model, s, x0, generator=torch.Generator().manual_seed(1)))

    assert held_out(res.ema_model) < held_out(untrained.model) - 0.03
    assert config["model"]["parameterization"] == "v" and config["schedule"]["name"] == "cosine"
    points = torch.randn(500, 2)
    labels = (points[:, 0] > 0).long()
    res, config = train_ddpm_2d(points, s, TrainConfig(steps=20, batch_size=64), mlp={"width": 32, "depth": 1},
                                labels=labels, conditional=True)
    assert config["model"]["num_classes"] == 2 and res.steps == 20
    out = res.ema_model(torch.zeros(3, 2), torch.full((3,), 10.0), torch.tensor([0, 1, 2]))
    assert out.shape == (3, 2) and torch.isfinite(out).all()
