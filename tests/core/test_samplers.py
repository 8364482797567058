"""Tests for core.samplers against independent references: the papers' equations computed by hand, closed-form
Gaussian oracles, and the data-vs-data sliced-Wasserstein floor.

Run: PYTHONPATH=. python -m pytest tests/core/test_samplers.py -q
"""

from __future__ import annotations

import math
import time

import pytest
import torch

from core.analytic import GaussianMixture, toy_mixture
from core.diffusion import q_sample
from core.metrics import mode_coverage, sliced_wasserstein
from core.samplers import (
    DEFAULT_STEPS,
    METHODS,
    Trajectory,
    ddim_step,
    ddpm_step,
    discrete_timesteps,
    sample,
)
from core.schedules import make_schedule

N_FLOOR = 4000  # points per cloud for the floor tests
CONTINUOUS = ("euler_maruyama", "predictor_corrector", "ode_euler", "ode_heun")


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _sw(a: torch.Tensor, b: torch.Tensor, seed: int = 0) -> float:
    return sliced_wasserstein(a, b, n_projections=256, generator=_gen(seed))


@pytest.fixture(scope="module")
def linear() -> object:
    return make_schedule("linear", T=1000)


@pytest.fixture(scope="module")
def eight() -> GaussianMixture:
    return toy_mixture("eight_gaussians")


@pytest.fixture(scope="module")
def floor(eight: GaussianMixture) -> dict[str, object]:
    """The data floor (mean SW between independent data draws of N_FLOOR points) and two references."""
    pairs = [(eight.sample(N_FLOOR, _gen(100 + k)), eight.sample(N_FLOOR, _gen(200 + k))) for k in range(4)]
    value = sum(_sw(a, b, k) for k, (a, b) in enumerate(pairs)) / len(pairs)
    refs = [eight.sample(N_FLOOR, _gen(300 + k)) for k in range(2)]
    return {"value": value, "refs": refs}


# --- the step functions against the papers' equations, by hand ----------------------------------------


def test_ddpm_step_matches_algorithm_2_by_hand(linear) -> None:
    s, t = linear, 500
    beta, alpha = float(s.betas[t]), 1.0 - float(s.betas[t])
    ab, ab_prev = float(s.alpha_bars[t]), float(s.alpha_bars[t - 1])
    x = torch.tensor([[0.3, -1.2], [2.0, 0.5]], dtype=torch.float64)
    eps = torch.tensor([[0.7, 0.1], [-0.4, 1.5]], dtype=torch.float64)
    z = torch.tensor([[1.0, -2.0], [0.5, 0.25]], dtype=torch.float64)
    mean = (x - beta / math.sqrt(1 - ab) * eps) / math.sqrt(alpha)  # Ho et al. 2020, Algorithm 2, line 4
    beta_tilde = (1 - ab_prev) / (1 - ab) * beta  # eq. (7)
    torch.testing.assert_close(ddpm_step(s, x, eps, t, z, variance="beta"), mean + math.sqrt(beta) * z)
    torch.testing.assert_close(ddpm_step(s, x, eps, t, z, variance="beta_tilde"), mean + math.sqrt(beta_tilde) * z)
    # per-point timesteps give the same numbers
    t_vec = torch.tensor([t, t])
    torch.testing.assert_close(ddpm_step(s, x, eps, t_vec, z), mean + math.sqrt(beta_tilde) * z)
    # paper step 1 (index 0): z = 0 and the result is the x0 prediction
    ab0 = float(s.alpha_bars[0])
    torch.testing.assert_close(ddpm_step(s, x, eps, 0, z), (x - math.sqrt(1 - ab0) * eps) / math.sqrt(ab0))
    with pytest.raises(ValueError, match="unknown variance"):
        ddpm_step(s, x, eps, t, z, variance="fixed")
    with pytest.raises(ValueError, match="needs the model's v"):
        ddpm_step(s, x, eps, t, z, variance="learned")
    ones = torch.ones_like(x)  # Nichol & Dhariwal eq. 15: frac = 1 is beta, frac = 0 is beta_tilde
    torch.testing.assert_close(ddpm_step(s, x, eps, t, z, variance="learned", v=ones), mean + math.sqrt(beta) * z)
    torch.testing.assert_close(ddpm_step(s, x, eps, t, z, variance="learned", v=-ones),
                               mean + math.sqrt(beta_tilde) * z)


def test_ddim_step_matches_eq_12_by_hand(linear) -> None:
    s, t, t_prev, eta = linear, 600, 400, 0.5
    ab, ab_prev = float(s.alpha_bars[t]), float(s.alpha_bars[t_prev])
    x = torch.tensor([[0.3, -1.2], [2.0, 0.5]], dtype=torch.float64)
    eps = torch.tensor([[0.7, 0.1], [-0.4, 1.5]], dtype=torch.float64)
    z = torch.tensor([[1.0, -2.0], [0.5, 0.25]], dtype=torch.float64)
    x0 = (x - math.sqrt(1 - ab) * eps) / math.sqrt(ab)
    sigma = eta * math.sqrt((1 - ab_prev) / (1 - ab)) * math.sqrt(1 - ab / ab_prev)  # eq. (16)
    expected = math.sqrt(ab_prev) * x0 + math.sqrt(1 - ab_prev - sigma**2) * eps + sigma * z  # eq. (12)
    torch.testing.assert_close(ddim_step(s, x, eps, t, t_prev, eta, z), expected)
    expected0 = math.sqrt(ab_prev) * x0 + math.sqrt(1 - ab_prev) * eps
    torch.testing.assert_close(ddim_step(s, x, eps, t, t_prev, 0.0, None), expected0)
    # t_prev = -1 means alpha_bar_prev = 1: the step lands on x0_pred whatever eta
    torch.testing.assert_close(ddim_step(s, x, eps, t, -1, 1.0, z), x0)
    with pytest.raises(ValueError, match="eta"):
        ddim_step(s, x, eps, t, t_prev, 1.5, z)


def test_ddim_eta_one_single_step_is_the_ddpm_step(linear) -> None:
    x = torch.randn(64, 2, generator=_gen(0), dtype=torch.float64)
    eps = torch.randn(64, 2, generator=_gen(1), dtype=torch.float64)
    z = torch.randn(64, 2, generator=_gen(2), dtype=torch.float64)
    for t in (1, 37, 999):
        torch.testing.assert_close(ddim_step(linear, x, eps, t, t - 1, 1.0, z), ddpm_step(linear, x, eps, t, z))
    # respaced: DDIM eta = 1 from t to a coarser t_prev is the respaced DDPM step
    torch.testing.assert_close(ddim_step(linear, x, eps, 900, 700, 1.0, z),
                               ddpm_step(linear, x, eps, 900, z, t_prev=700))


def test_timestep_spacings_follow_lin_et_al_table_2() -> None:
    assert discrete_timesteps(1000, 10, "linspace") == [999, 888, 777, 666, 555, 444, 333, 222, 111, 0]
    assert discrete_timesteps(1000, 10, "leading") == [900, 800, 700, 600, 500, 400, 300, 200, 100, 0]
    assert discrete_timesteps(1000, 10, "trailing") == [999, 899, 799, 699, 599, 499, 399, 299, 199, 99]
    # DDIM's quadratic grid (Song et al. 2021, app. D.2): squares of a uniform grid, kept distinct near 0
    assert discrete_timesteps(1000, 5, "quadratic") == [999, 562, 250, 62, 0]
    for spacing in ("linspace", "leading", "trailing", "quadratic"):
        assert discrete_timesteps(1000, 1000, spacing) == list(range(999, -1, -1))
        for T, steps in ((1000, 37), (1000, 999), (20, 19), (2, 2)):
            ts = discrete_timesteps(T, steps, spacing)
            assert len(set(ts)) == steps and ts == sorted(ts, reverse=True) and 0 <= min(ts) and max(ts) <= T - 1


@pytest.mark.parametrize("method", METHODS)
def test_a_run_from_t_start_visits_only_timesteps_at_or_below_it(linear, method) -> None:
    """sample(..., t_start=k): x_T is x_k, every method's grid starts at (or, "leading", below) k; with the exact
    eps and x_k drawn from q(x_k) the result is the data distribution (here: eight_gaussians' modes)."""
    gm = toy_mixture("eight_gaussians")
    x0 = gm.sample(400, _gen(11))
    x_k = q_sample(linear, x0, torch.full((400,), 300), torch.randn(400, 2, generator=_gen(12)))
    traj = sample(gm.as_eps_model(linear), linear, x_k, method, 20, generator=_gen(13), t_start=300)
    assert float(traj.timesteps.max()) <= 300 and len(traj.timesteps) == 20
    assert mode_coverage(traj.xs[-1], gm.means.float(), gm.std).off_mode_fraction < 0.1
    with pytest.raises(ValueError, match="t_start must be an integer timestep"):
        sample(gm.as_eps_model(linear), linear, x_k, method, 5, t_start=1000)
    with pytest.raises(ValueError, match="steps must be an integer in"):
        sample(gm.as_eps_model(linear), linear, x_k, method, 12, t_start=10)


# --- sample(): contract, errors, callback -----------------------------------------------------------------


def test_sample_rejects_bad_arguments_with_clear_messages(linear) -> None:
    eps_model = lambda x, t, y=None: torch.zeros_like(x)  # noqa: E731
    x = torch.randn(8, 2)
    with pytest.raises(ValueError, match=r"unknown method 'ddimm'.*ddpm, ddim, euler_maruyama"):
        sample(eps_model, linear, x, method="ddimm")
    for steps in (0, 1001, -3, 2.5, True):
        with pytest.raises(ValueError, match=r"steps must be an integer in \[1, T=1000\]"):
            sample(eps_model, linear, x, method="ddim", steps=steps)
    with pytest.raises(ValueError, match="unknown spacing 'middle'"):
        sample(eps_model, linear, x, method="ddim", spacing="middle")
    with pytest.raises(ValueError, match=r"unexpected options for 'ddpm': \['eta'\]"):
        sample(eps_model, linear, x, method="ddpm", eta=0.5)
    with pytest.raises(ValueError, match="unknown sde 'sub-vp'"):
        sample(eps_model, linear, x, method="ode_euler", sde="sub-vp")
    with pytest.raises(ValueError, match="eta must lie in"):
        sample(eps_model, linear, x, method="ddim", eta=-0.1)
    with pytest.raises(ValueError, match="x_T must be"):
        sample(eps_model, linear, torch.zeros(8, dtype=torch.long), method="ddim")
    with pytest.raises(ValueError, match="guidance_scale needs class labels"):
        sample(eps_model, linear, x, method="ddim", guidance_scale=3.0)
    with pytest.raises(ValueError, match="y must be"):
        sample(eps_model, linear, x, method="ddim", y=torch.zeros(3, dtype=torch.long))


@pytest.mark.parametrize("method", METHODS)
def test_every_method_reports_each_step_to_the_callback(linear, method: str) -> None:
    eps_model = lambda x, t, y=None: 0.5 * x  # noqa: E731
    x_T = torch.randn(16, 2, generator=_gen(0))
    seen: list[dict] = []
    traj = sample(eps_model, linear, x_T, method=method, steps=5, generator=_gen(1), callback=seen.append)
    assert isinstance(traj, Trajectory)
    assert [c["i"] for c in seen] == list(range(5))
    assert all({"i", "t", "x", "x0_pred"} <= set(c) for c in seen)
    assert traj.xs.shape == (6, 16, 2) and traj.x0_preds.shape == (5, 16, 2) and traj.timesteps.shape == (5,)
    torch.testing.assert_close(traj.xs[0], x_T)
    assert [c["t"] for c in seen] == traj.timesteps.tolist()
    assert traj.timesteps[0] == 999 or method in ("ddpm", "ddim")  # leading spacing starts below T-1
    # the last step lands on clean data: the final state is the x0 prediction at the last visited timestep
    torch.testing.assert_close(traj.xs[-1], traj.x0_preds[-1])
    torch.testing.assert_close(seen[-1]["x_next"], traj.xs[-1])
    expected_nfe = {"ode_heun": 9, "predictor_corrector": 10}.get(method, 5)
    assert traj.nfe == expected_nfe and seen[-1]["nfe"] == expected_nfe
    light = sample(eps_model, linear, x_T, method=method, steps=5, generator=_gen(1), keep_trajectory=False)
    assert light.xs.shape == (2, 16, 2) and light.x0_preds.shape == (1, 16, 2)
    torch.testing.assert_close(light.xs[-1], traj.xs[-1])


@pytest.mark.parametrize("method", METHODS)
def test_methods_run_on_image_batches(method: str) -> None:
    s = make_schedule("cosine", T=100)
    x_T = torch.randn(3, 1, 4, 4, generator=_gen(0))
    traj = sample(lambda x, t, y=None: 0.1 * x, s, x_T, method=method, steps=4, generator=_gen(1))
    assert traj.xs.shape == (5, 3, 1, 4, 4) and torch.isfinite(traj.xs).all()
    assert DEFAULT_STEPS[method] is None or DEFAULT_STEPS[method] >= 1
    assert sample(lambda x, t, y=None: 0.1 * x, s, x_T, method=method, generator=_gen(1)).nfe >= 1  # default <= T


# --- quality with the exact score --------------------------------------------------------------------------

CASES = [(m, {}) for m in METHODS] + [(m, {"sde": "ve"}) for m in CONTINUOUS]


@pytest.mark.parametrize(("method", "options"), CASES, ids=[f"{m}-{o.get('sde', 'vp')}" for m, o in CASES])
def test_every_method_reaches_the_data_floor_with_the_exact_score(linear, eight, floor, method, options) -> None:
    x_T = torch.randn(N_FLOOR, 2, generator=_gen(1))
    traj = sample(eight.as_eps_model(linear), linear, x_T, method=method, generator=_gen(2),
                  keep_trajectory=False, **options)
    assert torch.isfinite(traj.xs[-1]).all()
    d = sum(_sw(traj.xs[-1], ref, 10 + k) for k, ref in enumerate(floor["refs"])) / len(floor["refs"])
    assert d < 2.0 * floor["value"], f"{method} {options}: SW {d:.4f} vs floor {floor['value']:.4f}"


def test_ddim_eta_zero_is_deterministic(linear, eight) -> None:
    x_T = torch.randn(500, 2, generator=_gen(0))
    oracle = eight.as_eps_model(linear)
    a = sample(oracle, linear, x_T, method="ddim", steps=20, generator=_gen(1))
    b = sample(oracle, linear, x_T, method="ddim", steps=20, generator=_gen(2))
    c = sample(oracle, linear, x_T, method="ddim", steps=20)
    assert torch.equal(a.xs, b.xs) and torch.equal(a.xs, c.xs)
    e = sample(oracle, linear, x_T, method="ddim", steps=20, eta=1.0, generator=_gen(2))
    assert not torch.allclose(e.xs[-1], a.xs[-1])


def test_ddim_eta_one_with_all_steps_matches_ddpm(linear, eight) -> None:
    n = 1000
    oracle = eight.as_eps_model(linear)
    x_T = torch.randn(n, 2, generator=_gen(0), dtype=torch.float64)  # float64: 1000 steps without round-off drift
    ddpm = sample(oracle, linear, x_T, method="ddpm", steps=1000, generator=_gen(1), keep_trajectory=False)
    same = sample(oracle, linear, x_T, method="ddim", steps=1000, eta=1.0, generator=_gen(1), keep_trajectory=False)
    # the same noise gives the same path: eq. (12) with eta = 1 is Algorithm 2 with beta_tilde
    torch.testing.assert_close(same.xs[-1], ddpm.xs[-1])
    # and that distribution is the data's: as close to a fresh data draw as another data draw is
    data_floor = sum(_sw(eight.sample(n, _gen(40 + k)), eight.sample(n, _gen(50 + k)), k) for k in range(4)) / 4
    assert _sw(same.xs[-1], eight.sample(n, _gen(60))) < 2.0 * data_floor


def test_ve_euler_on_ddim_timesteps_is_ddim(linear, eight) -> None:
    """Euler on the VE probability-flow ODE in sigma is DDIM (Song et al. 2021, sec. 4.3; Karras et al. 2022)."""
    oracle = eight.as_eps_model(linear)
    x_T = torch.randn(300, 2, generator=_gen(0), dtype=torch.float64)
    ddim = sample(oracle, linear, x_T, method="ddim", steps=10, spacing="linspace")  # 999, 888, ..., 0
    ve = sample(oracle, linear, x_T, method="ode_euler", steps=10, sde="ve")  # uniform in t: the same grid
    assert ve.timesteps.tolist() == ddim.timesteps.tolist()
    torch.testing.assert_close(ve.xs, ddim.xs)


def _single_gaussian_exact_map(s, std: float) -> tuple[GaussianMixture, float]:
    """For data N(0, std^2 I) the PF-ODE maps x_T to x_t = x_T c_t / c_T, c_t^2 = alpha_bar_t std^2 + 1 - alpha_bar_t;
    the final denoise at t = 0 multiplies by E[x_0 | x]: sqrt(alpha_bar_0) std^2 / c_0^2. Return the total factor."""
    gm = GaussianMixture(torch.zeros(1, 2, dtype=torch.float64), std, torch.ones(1, dtype=torch.float64))
    ab0, abT = float(s.alpha_bars[0]), float(s.alpha_bars[-1])
    c0, cT = math.sqrt(ab0 * std**2 + 1 - ab0), math.sqrt(abT * std**2 + 1 - abT)
    return gm, math.sqrt(ab0) * std**2 / (c0 * cT)


@pytest.mark.parametrize(("method", "options", "order"), [
    ("ode_euler", {}, 1), ("ode_euler", {"sde": "ve"}, 1), ("ddim", {"spacing": "linspace"}, 1),
    ("ode_heun", {}, 2), ("ode_heun", {"sde": "ve"}, 2), ("dpm_solver_2m", {}, 2),
])
def test_ode_solvers_converge_to_the_exact_flow_at_their_order(linear, method, options, order) -> None:
    gm, factor = _single_gaussian_exact_map(linear, 0.1)
    x_T = torch.randn(64, 2, generator=_gen(0), dtype=torch.float64)
    k = {"dpm_solver_2m": 20, "ode_heun": 50}.get(method, 200)

    def err(steps: int) -> float:
        out = sample(gm.as_eps_model(linear), linear, x_T, method=method, steps=steps, keep_trajectory=False,
                     **options).xs[-1]
        return float((out - factor * x_T).norm() / (factor * x_T).norm())

    e1, e2 = err(k), err(2 * k)
    assert e2 < (0.6 if order == 1 else 0.4) * e1, (e1, e2)
    if order == 2:
        assert e1 < 0.08 and e2 < 0.02, (e1, e2)


# --- classifier-free guidance --------------------------------------------------------------------------------


class ConditionalOracle:
    """Exact eps of q(x_t | y) for a mixture: given component y the data is N(mu_y, std^2 I), so
    q(x_t | y) = N(sqrt(ab) mu_y, (ab std^2 + 1 - ab) I) and eps = sqrt(1 - ab) (x - sqrt(ab) mu_y) / var.
    The null label (or y = None) gives the mixture's eps. Records every call's batch size."""

    def __init__(self, gm: GaussianMixture, s, null: bool = True):
        self.gm, self.s, self.calls = gm, s, []
        if null:
            self.null_class = gm.means.shape[0]

    def __call__(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        self.calls.append(x.shape[0])
        uncond = self.gm.eps(x, t, self.s)
        if y is None:
            return uncond
        ab = self.s.alpha_bar_at(t.double()).reshape(-1, 1)
        is_null = y == getattr(self, "null_class", -1)
        mu = self.gm.means[y.clamp(max=self.gm.means.shape[0] - 1)]
        var = ab * self.gm.std**2 + 1 - ab
        cond = ((1 - ab).sqrt() * (x.double() - ab.sqrt() * mu) / var).to(x.dtype)
        return torch.where(is_null.reshape(-1, 1), uncond, cond)


def test_guidance_formula_and_one_batched_call(linear) -> None:
    class Fake:
        null_class = 5

        def __init__(self):
            self.calls = []

        def __call__(self, x, t, y=None):
            self.calls.append(x.shape[0])
            return (y != 5).to(x.dtype).reshape(-1, 1).expand_as(x) if y is not None else torch.zeros_like(x)

    x = torch.randn(10, 2, generator=_gen(0))
    for w in (0.0, 1.0, 2.5):
        fake, seen = Fake(), []
        sample(fake, linear, x, method="ddim", steps=3, y=2, guidance_scale=w, callback=seen.append)
        assert all(torch.allclose(c["eps"], torch.full_like(x, w)) for c in seen)  # eps_u + w (eps_c - eps_u)
        assert fake.calls == ([20] * 3 if w not in (0.0, 1.0) else [10] * 3)
    del Fake.null_class  # no null label: the unconditional pass calls eps_model(x, t) without y
    fake, seen = Fake(), []
    sample(fake, linear, x, method="ddim", steps=3, y=2, guidance_scale=2.5, callback=seen.append)
    assert all(torch.allclose(c["eps"], torch.full_like(x, 2.5)) for c in seen) and fake.calls == [10] * 6


def test_guidance_with_a_class_conditional_oracle(linear, eight) -> None:
    n, k = 2000, 3
    x_T = torch.randn(n, 2, generator=_gen(0))
    mu = eight.means[k].float()
    run = lambda model, w, y=k: sample(model, linear, x_T, method="dpm_solver_2m", y=y, guidance_scale=w,  # noqa: E731
                                       keep_trajectory=False).xs[-1]
    cond = run(ConditionalOracle(eight, linear), 1.0)  # w = 1: plain conditional sampling of component k
    assert (cond.mean(0) - mu).abs().max() < 0.02
    assert abs(float(cond.std(0).mean()) / eight.std - 1) < 0.08
    # w = 0 is the unconditional model: the same samples as y = None
    unconditional = run(ConditionalOracle(eight, linear), 1.0, None)
    torch.testing.assert_close(run(ConditionalOracle(eight, linear), 0.0), unconditional)
    # w > 1 sharpens towards the class; batched (null_class) and two-call paths agree
    batched, two_calls = ConditionalOracle(eight, linear), ConditionalOracle(eight, linear, null=False)
    strong = run(batched, 3.0)
    torch.testing.assert_close(strong, run(two_calls, 3.0), atol=1e-5, rtol=1e-5)
    assert set(batched.calls) == {2 * n} and set(two_calls.calls) == {n}
    # guidance pushes samples away from the other classes: here radially out of the ring, still in mode k
    nearest = ((strong.double()[:, None] - eight.means[None]) ** 2).sum(-1).argmin(1)
    assert (nearest == k).all()
    outward = mu / mu.norm()
    assert float((strong.mean(0) - mu) @ outward) > 0.05 > abs(float((cond.mean(0) - mu) @ outward))


# --- overhead ---------------------------------------------------------------------------------------------


def test_ddim_50_overhead_on_10k_points_is_under_20_percent_of_the_network() -> None:
    """Sampler time minus network time, measured with a free model (returns a cached eps), against 50 calls
    of the MLP denoiser on 10,000 points. Minimum over repeats, so other processes on the CPU do not count."""
    from core.models.mlp import MLPConfig, MLPDenoiser

    s = make_schedule("linear", T=1000)
    n = 10_000
    model = MLPDenoiser(MLPConfig()).eval()
    x = torch.randn(n, 2, generator=_gen(0))
    eps = torch.randn(n, 2, generator=_gen(1))
    free = lambda x, t, y=None: eps  # noqa: E731

    def best(fn, repeats: int) -> float:
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return min(times)

    def ten_network_calls() -> None:
        with torch.no_grad():
            for i in range(10):
                model(x, torch.full((n,), float(99 * i)))

    network_50 = 5 * best(ten_network_calls, 2)
    overhead = best(lambda: sample(free, s, x, method="ddim", steps=50, generator=_gen(2)), 5)
    assert overhead < 0.2 * network_50, f"overhead {overhead:.3f} s vs 50 network calls {network_50:.3f} s"


# --- the public samplers are what sample() runs --------------------------------------------------------


@pytest.mark.parametrize("method, step_name", [("ddim", "ddim_step"), ("ddpm", "ddpm_step")])
def test_sample_runs_the_public_step_function(linear, eight, monkeypatch, method: str, step_name: str) -> None:
    """sample(method=...) goes through SAMPLERS[method], which calls the public step function at every step:
    replacing the step function changes the result (so the code the docs and the Reverse page show is the code
    that runs)."""
    import core.samplers as samplers

    assert samplers.SAMPLERS[method] is getattr(samplers, f"sample_{method}")
    x_T = torch.randn(64, 2, generator=_gen(0))
    model = eight.as_eps_model(linear)
    before = sample(model, linear, x_T, method=method, steps=10, generator=_gen(1)).x0
    calls = []
    real = getattr(samplers, step_name)

    def shifted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs) + 1.0

    monkeypatch.setattr(samplers, step_name, shifted)
    after = sample(model, linear, x_T, method=method, steps=10, generator=_gen(1)).x0
    assert len(calls) == 10
    assert not torch.allclose(after, before)
    monkeypatch.undo()
    again = sample(model, linear, x_T, method=method, steps=10, generator=_gen(1)).x0
    assert torch.equal(again, before)


def test_samplers_registry_has_one_signature() -> None:
    """Every SAMPLERS entry takes (eps_fn, schedule, x, steps, rec, generator) and keyword-only options."""
    import inspect

    from core.samplers import METHODS, SAMPLERS

    assert tuple(SAMPLERS) == METHODS
    for name, fn in SAMPLERS.items():
        params = list(inspect.signature(fn).parameters.values())
        assert [p.name for p in params[:6]] == ["eps_fn", "s", "x", "steps", "rec", "generator"], name
        assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params[6:]), name
