"""Flow matching (core.flow) against closed forms and an independent integrator.

The exact marginal velocity of a Gaussian mixture is checked against a Monte Carlo estimate of E[x_1 - x_0 | x_t]
and against the exact eps of the VP view at matched times; the fixed-step solvers against scipy's solve_ivp at
their expected orders; and DDIM against Euler on the reparameterised flow.
"""

import math

import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp

from core.analytic import GaussianMixture, toy_mixture
from core.checkpoints import CheckpointError, load_checkpoint, save_checkpoint, validate_config
from core.data.toy2d import sample_toy
from core.flow import (
    FLOW_METHODS,
    alpha_bar_of_flow_time,
    ddim_flow_times,
    diffusion_velocity,
    flow_time,
    loss_flow_matching,
    on_flow_axes,
    path_straightness,
    reflow_pairs,
    sample_flow,
    straightness,
    timestep_of_alpha_bar,
    velocity_from_eps,
    vp_to_flow,
)
from core.metrics import data_floor, sliced_wasserstein
from core.samplers import sample
from core.schedules import make_schedule
from core.train_flow import train_flow_2d, train_reflow_2d
from core.training import TrainConfig


def _mc_velocity(gm: GaussianMixture, x: torch.Tensor, t: float, n: int, g: torch.Generator) -> torch.Tensor:
    """E[x_1 - x_0 | x_t = x] by self-normalised importance sampling: x_1 ~ data, x_0 = (x - t x_1) / (1 - t),
    weighted by the noise density N(x_0; 0, I) (the change of variables has a constant Jacobian)."""
    x1 = gm.sample(n, g).double()
    x0 = (x.double() - t * x1) / (1 - t)
    w = torch.softmax(-0.5 * x0.pow(2).sum(-1), 0).unsqueeze(-1)
    return (w * (x1 - x0)).sum(0)


@pytest.mark.parametrize("t", [0.1, 0.4, 0.7])
def test_exact_velocity_is_the_conditional_expectation(t):
    gm, g = toy_mixture("eight_gaussians"), torch.Generator().manual_seed(0)
    points = torch.tensor([[0.4, -0.3], [1.2, 0.9], [-0.8, 0.1]])
    exact = gm.velocity(points, t).double()
    for x, v in zip(points, exact, strict=True):
        mc = _mc_velocity(gm, x, t, 400_000, g)
        assert torch.allclose(mc, v, atol=0.03), (t, x, mc, v)


def test_exact_velocity_at_the_ends_of_the_path():
    """t = 0: x is the noise, so E[x_1 - x_0] = mean - x; t = 1: x is the data, E[x_0 | x_1] = 0, so v = x."""
    gm = toy_mixture("twenty_five_gaussians")
    x = torch.randn(50, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    mean = (gm.weights.unsqueeze(-1) * gm.means).sum(0)
    assert torch.allclose(gm.velocity(x, 0.0), mean - x, atol=1e-12)
    assert torch.allclose(gm.velocity(x, 1.0), x, atol=1e-12)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        gm.velocity(x, 1.5)


@pytest.mark.parametrize("schedule", ["cosine", "linear"])
def test_velocity_from_the_exact_vp_eps_agrees_at_matched_times(schedule):
    """A VP state at timestep tau is the path's point at t = sqrt(ab) / (sqrt(ab) + sqrt(1 - ab)), and there
    v = (x_t - eps) / t with the exact eps of the same mixture."""
    gm, s = toy_mixture("eight_gaussians"), make_schedule(schedule, 1000)
    g = torch.Generator().manual_seed(2)
    for tau in (50, 300, 600, 950):
        ab = float(s.alpha_bar_at(float(tau)))
        t = float(flow_time(ab))
        x_flow = torch.randn(64, 2, generator=g, dtype=torch.float64) * 2
        x_vp = x_flow * (math.sqrt(ab) + math.sqrt(1 - ab))
        assert torch.allclose(vp_to_flow(x_vp, ab), x_flow)
        v = velocity_from_eps(x_flow, t, gm.eps(x_vp, float(tau), s))
        assert torch.allclose(v, gm.velocity(x_flow, t), atol=1e-9), tau


def test_flow_time_and_timestep_maps_invert():
    s = make_schedule("cosine", 1000)
    taus = torch.tensor([-1.0, 0.0, 10.5, 400.25, 998.0], dtype=torch.float64)
    ab = s.alpha_bar_at(taus)
    assert torch.allclose(alpha_bar_of_flow_time(flow_time(ab)), ab, rtol=1e-9)
    assert torch.allclose(timestep_of_alpha_bar(s, ab), taus, atol=1e-6)


@pytest.mark.parametrize("schedule", ["cosine", "linear"])
def test_ddim_is_euler_on_the_reparameterised_flow(schedule):
    """DDIM keeps its x_0 and eps predictions across a step, which is what an Euler step of the linear path does:
    from the same noise and on the flow times of DDIM's timesteps, the two runs agree to rounding."""
    gm, s = toy_mixture("eight_gaussians"), make_schedule(schedule, 1000)
    x_T = torch.randn(300, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    ddim = sample(gm.as_eps_model(s), s, x_T, method="ddim", steps=20)
    times = ddim_flow_times(s, ddim.timesteps)
    x_0 = vp_to_flow(x_T, float(s.alpha_bar_at(ddim.timesteps[0])))
    euler = sample_flow(diffusion_velocity(gm.as_eps_model(s), s), x_0, times=times, method="euler")
    assert euler.nfe == ddim.nfe == 20
    assert torch.allclose(euler.xs[-1], ddim.xs[-1], atol=1e-9)
    flow_t, states = on_flow_axes(ddim, s)
    assert np.allclose(flow_t, times) and torch.allclose(states, euler.xs, atol=1e-9)


def _smooth_mixture() -> GaussianMixture:
    """A mixture wide enough that its velocity is smooth on all of [0, 1] (for convergence orders)."""
    return GaussianMixture(means=torch.tensor([[-1.5, 0.5], [1.0, -1.0], [0.5, 1.5]], dtype=torch.float64),
                           std=0.6, weights=torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64))


def test_solvers_converge_to_an_independent_integrator_at_their_orders():
    gm = _smooth_mixture()
    x_0 = torch.randn(16, 2, generator=torch.Generator().manual_seed(4), dtype=torch.float64)

    def rhs(t, y):
        return gm.velocity(torch.from_numpy(y.reshape(-1, 2)), t).numpy().reshape(-1)

    ref = solve_ivp(rhs, (0.0, 1.0), x_0.numpy().reshape(-1), method="DOP853", rtol=1e-12, atol=1e-12)
    assert ref.success
    x_1 = torch.from_numpy(ref.y[:, -1].reshape(-1, 2))
    model = gm.as_velocity_model()
    for method, order in (("euler", 1), ("midpoint", 2), ("heun", 2)):
        errors = [float((sample_flow(model, x_0, steps=k, method=method).xs[-1] - x_1).abs().max())
                  for k in (16, 32, 64)]
        observed = [math.log2(a / b) for a, b in zip(errors, errors[1:], strict=False)]
        assert all(abs(o - order) < 0.25 for o in observed), (method, errors, observed)
        assert errors[-1] < (0.05 if order == 1 else 1e-3), (method, errors)


@pytest.mark.parametrize("toy", ["eight_gaussians", "twenty_five_gaussians"])
def test_exact_velocity_euler_100_reaches_the_data(toy):
    """With the exact velocity, Euler-100 lands within 2x the data floor (sliced Wasserstein)."""
    gm, g = toy_mixture(toy), torch.Generator().manual_seed(5)
    x = sample_flow(gm.as_velocity_model(), torch.randn(3000, 2, generator=g), steps=100).xs[-1]
    sw = sliced_wasserstein(x, sample_toy(toy, 3000, g), generator=torch.Generator().manual_seed(0))
    floor = data_floor(lambda m, gen: sample_toy(toy, m, gen), 3000, repeats=2, generator=g)
    assert sw <= 2 * floor, (sw, floor)


def test_the_exact_velocity_minimises_the_flow_matching_loss():
    """Conditional flow matching's minimiser is the marginal velocity: the loss at the exact field is lower than
    at any perturbed field (same draws of t and x_0)."""
    gm = toy_mixture("eight_gaussians")
    x_1 = gm.sample(200_000, torch.Generator().manual_seed(6))
    exact = gm.as_velocity_model()

    def loss(model):
        return float(loss_flow_matching(model, x_1, generator=torch.Generator().manual_seed(7)))

    base = loss(exact)
    for delta in (0.05, -0.05):
        assert loss(lambda x, t, d=delta: exact(x, t) + d) > base
    assert loss(lambda x, t: 1.05 * exact(x, t)) > base


def test_straight_paths_have_zero_straightness_and_one_euler_step_is_exact():
    """A constant velocity has straight paths (S = 0) and one Euler step integrates it exactly."""
    shift = torch.tensor([1.5, -0.5])

    def model(x, t):
        return shift.expand_as(x)

    x_0 = torch.randn(100, 2, generator=torch.Generator().manual_seed(8))
    assert straightness(model, x_0, steps=10) < 1e-10
    assert torch.allclose(sample_flow(model, x_0, steps=1).xs[-1], x_0 + shift)
    assert straightness(toy_mixture("eight_gaussians").as_velocity_model(), x_0, steps=50) > 0.1


def test_sample_flow_records_like_the_samplers_and_refuses_bad_input():
    model = _smooth_mixture().as_velocity_model()
    x_0 = torch.randn(10, 2, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    seen = []
    traj = sample_flow(model, x_0, steps=5, method="heun", callback=seen.append)
    assert traj.xs.shape == (6, 10, 2) and traj.x0_preds.shape == (5, 10, 2) and traj.nfe == 10
    assert [c["i"] for c in seen] == list(range(5)) and seen[-1]["t_next"] == 1.0 and seen[-1]["nfe"] == 10
    assert torch.allclose(traj.timesteps, torch.linspace(0, 0.8, 5, dtype=torch.float64))
    short = sample_flow(model, x_0, steps=5, method="heun", keep_trajectory=False)
    assert torch.equal(short.xs[-1], traj.xs[-1]) and short.xs.shape[0] == 2
    with pytest.raises(ValueError, match="unknown flow solver 'rk4'; expected one of: " + ", ".join(FLOW_METHODS)):
        sample_flow(model, x_0, method="rk4")
    with pytest.raises(ValueError, match="positive integer"):
        sample_flow(model, x_0, steps=0)
    with pytest.raises(ValueError, match="increasing grid"):
        sample_flow(model, x_0, times=[0.0, 0.6, 0.5, 1.0])
    with pytest.raises(ValueError, match="shape"):
        sample_flow(model, torch.zeros(3), steps=2)


def test_training_a_flow_and_one_reflow_round_saves_loads_and_straightens(tmp_path):
    cfg = TrainConfig(steps=300, batch_size=256, lr=3e-3, seed=0)
    result, config = train_flow_2d("eight_gaussians", cfg, mlp={"width": 48})
    assert result.steps == 300 and config["family"] == "flow" and config["schedule"] is None
    assert sum(result.losses[-50:]) / 50 < sum(result.losses[:50]) / 50
    config["data"] = {"kind": "toy", "name": "eight_gaussians", "source": "test"}
    save_checkpoint(tmp_path / "fm", result.ema_model, config)
    p = load_checkpoint(tmp_path / "fm")
    x, t = torch.randn(20, 2), torch.rand(20)
    assert p.schedule is None and torch.allclose(p.model(x, t), result.ema_model(x, t))

    x_0 = torch.randn(2000, 2, generator=torch.Generator().manual_seed(10))
    pairs = reflow_pairs(p.model, x_0, steps=50)
    re, re_config = train_reflow_2d(p.model, p.config, pairs, TrainConfig(steps=300, batch_size=256, lr=1e-3))
    assert re_config["family"] == "reflow" and re_config["data"]["name"] == "eight_gaussians"
    probe = torch.randn(500, 2, generator=torch.Generator().manual_seed(11))
    assert straightness(re.ema_model, probe) < 0.5 * straightness(p.model, probe)


def test_a_flow_config_is_validated():
    config = {"family": "flow", "model": {"type": "mlp", "parameterization": "velocity", "width": 16, "depth": 1},
              "schedule": None}
    validate_config(config)
    with pytest.raises(CheckpointError, match="does not diffuse, yet the config has a schedule"):
        validate_config({**config, "schedule": {"name": "cosine", "T": 1000}})
    with pytest.raises(CheckpointError, match="has no labels"):
        validate_config({**config, "model": {**config["model"], "num_classes": 3}})
    with pytest.raises(CheckpointError, match="expected eps, v or velocity"):
        validate_config({**config, "model": {**config["model"], "parameterization": "flow"}})


def test_path_straightness_on_any_grid():
    """Straight lines are straight on a non-uniform grid too (e.g. DDIM's path on the flow's axes); a bend is not."""
    t = np.array([0.0, 0.05, 0.3, 0.31, 0.8, 1.0])
    x_0, c = torch.randn(40, 2, dtype=torch.float64), torch.randn(40, 2, dtype=torch.float64)
    line = torch.stack([x_0 + float(s) * c for s in t])
    assert path_straightness(t, line) < 1e-20
    bent = line.clone()
    bent[2:5] += 0.5
    assert path_straightness(t, bent) > 0.1
    with pytest.raises(ValueError, match="increasing grid"):
        path_straightness(t[::-1].copy(), line)
