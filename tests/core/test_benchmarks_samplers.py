"""benchmarks/samplers.py: the NFE -> steps mapping and its tables (the runs themselves are too slow for tests)."""

import pytest
import torch

from benchmarks.samplers import dpm_line, grid_line, pivot_table
from core.samplers import sample, steps_for_nfe
from core.schedules import make_schedule


@pytest.mark.parametrize("method, nfe, steps", [
    ("ddim", 10, 10), ("ddpm", 1000, 1000), ("ddpm", 2000, None),
    ("ode_heun", 10, 5), ("ode_heun", 5, 3), ("ode_heun", 2, None),
    ("predictor_corrector", 10, 5), ("predictor_corrector", 3, None),
])
def test_steps_for_nfe(method, nfe, steps):
    assert steps_for_nfe(method, nfe, T=1000) == steps


@pytest.mark.parametrize("method, nfe", [("ode_heun", 10), ("predictor_corrector", 10), ("dpm_solver_2m", 5)])
def test_steps_for_nfe_matches_the_sampler_count(method, nfe):
    s = make_schedule("linear", T=50)
    eps_model = lambda x, t, y=None: torch.zeros_like(x)  # noqa: E731
    steps = steps_for_nfe(method, nfe, s.T)
    traj = sample(eps_model, s, torch.randn(4, 2), method=method, steps=steps, keep_trajectory=False)
    assert steps_for_nfe(method, traj.nfe, s.T) == steps and traj.nfe <= nfe


def test_tables_render():
    row = {"toy": "eight_gaussians", "model": "learned", "method": "ode_heun", "nfe_target": 10, "steps": 5,
           "nfe": 9, "sw": float("inf"), "floor": 0.05, "ratio": float("inf"), "seconds": 0.1}
    assert "inf" in grid_line(row)
    lines = pivot_table([row], "eight_gaussians", "learned", [5, 10])
    assert lines[-1].split() == ["ode_heun", "-", "inf"]
    d = {"toy": "rings", "model": "learned", "floor": 0.03, "dpm_10_sw": 0.06, "dpm_20_sw": 0.04,
         "ddpm_1000_sw": 0.035, "best_dpm_over_ddpm": 0.04 / 0.035, "pass": True}
    assert dpm_line(d).endswith("PASS")
