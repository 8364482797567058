"""Tests for core.metrics against independent references (scipy, closed forms, brute-force loops).

Run: PYTHONPATH=. python -m pytest tests/core/test_metrics.py -q
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
import torch

from core.metrics import (
    ModeCoverage,
    data_floor,
    energy_distance,
    mmd_rbf,
    mode_coverage,
    sliced_wasserstein,
)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------- sliced Wasserstein


@pytest.mark.parametrize(("n", "m"), [(200, 200), (137, 311), (6, 10)])
def test_sw_1d_p1_matches_scipy_wasserstein(n: int, m: int) -> None:
    rng = np.random.default_rng(1)
    u, v = rng.normal(size=n), rng.gamma(2.0, size=m)
    expected = scipy.stats.wasserstein_distance(u, v)
    got = sliced_wasserstein(u[:, None], v[:, None], n_projections=4, generator=_gen(), p=1)
    assert got == pytest.approx(expected, rel=1e-6, abs=1e-9)


def test_sw_1d_p2_equal_sizes_is_sorted_matching() -> None:
    rng = np.random.default_rng(2)
    u, v = rng.normal(size=500), rng.uniform(-1, 3, size=500)
    expected = math.sqrt(np.mean((np.sort(u) - np.sort(v)) ** 2))
    got = sliced_wasserstein(torch.from_numpy(u)[:, None], torch.from_numpy(v)[:, None], generator=_gen())
    assert got == pytest.approx(expected, rel=1e-9)


def test_sw_1d_p2_unequal_sizes_matches_replicated_sorted_matching() -> None:
    # Replicating every point of u (n=6) 5 times and of v (m=10) 3 times gives two sets of 30 equal-weight
    # points with the same distributions, where W2 is plain sorted matching.
    rng = np.random.default_rng(3)
    u, v = rng.normal(size=6), rng.normal(1.0, 2.0, size=10)
    expected = math.sqrt(np.mean((np.sort(np.repeat(u, 5)) - np.sort(np.repeat(v, 3))) ** 2))
    got = sliced_wasserstein(u[:, None], v[:, None], generator=_gen(), p=2)
    assert got == pytest.approx(expected, rel=1e-9)


def test_sw_identical_sets_is_zero() -> None:
    x = torch.randn(300, 2, generator=_gen(4))
    assert sliced_wasserstein(x, x.clone(), generator=_gen()) == pytest.approx(0.0, abs=1e-12)


def test_sw_translation_closed_form() -> None:
    # A translation by c moves every projection by theta.c, so SW2^2 = E_theta[(theta.c)^2] = |c|^2 / 2 in 2D.
    x = torch.randn(200, 2, generator=_gen(5))
    c = torch.tensor([3.0, -1.5])
    sw = sliced_wasserstein(x, x + c, n_projections=20_000, generator=_gen(6))
    assert sw**2 == pytest.approx(float(c.square().sum()) / 2, rel=0.03)


def test_sw_symmetric_and_deterministic() -> None:
    x = torch.randn(150, 3, generator=_gen(7))
    y = torch.randn(90, 3, generator=_gen(8)) + 0.5
    ab = sliced_wasserstein(x, y, generator=_gen(9))
    assert sliced_wasserstein(y, x, generator=_gen(9)) == pytest.approx(ab, rel=1e-12)
    assert sliced_wasserstein(x, y, generator=_gen(9)) == ab
    assert sliced_wasserstein(x, y, generator=_gen(10)) != ab


# ---------------------------------------------------------------- MMD


def _mmd2_unbiased_loops(x: np.ndarray, y: np.ndarray, bandwidth: float) -> float:
    def k(p: np.ndarray, q: np.ndarray) -> float:
        return math.exp(-float(np.sum((p - q) ** 2)) / (2 * bandwidth**2))

    n, m = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(n) for j in range(m)) / (n * m)
    return xx + yy - 2 * xy


def test_mmd_matches_brute_force() -> None:
    rng = np.random.default_rng(11)
    x, y = rng.normal(size=(30, 2)), rng.normal(0.7, 1.2, size=(25, 2))
    expected = _mmd2_unbiased_loops(x, y, bandwidth=0.8)
    assert mmd_rbf(x, y, bandwidth=0.8) == pytest.approx(expected, rel=1e-10)


def test_mmd_median_heuristic_matches_brute_force() -> None:
    rng = np.random.default_rng(12)
    x, y = rng.normal(size=(30, 2)), rng.normal(0.5, 1.0, size=(31, 2))
    pooled = np.concatenate([x, y])
    dists = [np.linalg.norm(pooled[i] - pooled[j]) for i in range(61) for j in range(i + 1, 61)]
    median = float(np.sort(dists)[(len(dists) - 1) // 2])  # torch's median is the lower one
    assert mmd_rbf(x, y) == pytest.approx(_mmd2_unbiased_loops(x, y, median), rel=1e-10)


def test_mmd_same_distribution_near_zero_shifted_positive() -> None:
    x = torch.randn(2000, 2, generator=_gen(13))
    y = torch.randn(2000, 2, generator=_gen(14))
    assert abs(mmd_rbf(x, y)) < 1e-3
    assert mmd_rbf(x, y + 1.0) > 0.05


def test_mmd_large_sets_are_subsampled_deterministically() -> None:
    x = torch.randn(3000, 2, generator=_gen(15))
    y = torch.randn(2500, 2, generator=_gen(16))
    first = mmd_rbf(x, y)
    assert mmd_rbf(x, y) == first
    assert abs(first) < 2e-3


# ---------------------------------------------------------------- energy distance


@pytest.mark.parametrize(("n", "m"), [(100, 100), (120, 77), (3000, 2500)])
def test_energy_1d_matches_scipy_squared(n: int, m: int) -> None:
    # scipy returns sqrt(2 E|X-Y| - E|X-X'| - E|Y-Y'|) with V-statistics; (3000, 2500) exercises the chunking.
    rng = np.random.default_rng(17)
    u, v = rng.normal(size=n), rng.laplace(0.3, 1.0, size=m)
    expected = scipy.stats.energy_distance(u, v) ** 2
    assert energy_distance(u[:, None], v[:, None]) == pytest.approx(expected, rel=1e-6)


def test_energy_2d_matches_brute_force() -> None:
    rng = np.random.default_rng(18)
    x, y = rng.normal(size=(40, 2)), rng.normal(1.0, 0.5, size=(35, 2))

    def mean_dist(p: np.ndarray, q: np.ndarray) -> float:
        return float(np.mean(np.linalg.norm(p[:, None, :] - q[None, :, :], axis=-1)))

    expected = 2 * mean_dist(x, y) - mean_dist(x, x) - mean_dist(y, y)
    assert energy_distance(x, y) == pytest.approx(expected, rel=1e-9)


def test_energy_identical_sets_is_zero() -> None:
    x = torch.randn(500, 2, generator=_gen(19))
    assert energy_distance(x, x) == pytest.approx(0.0, abs=1e-12)


# ---------------------------------------------------------------- mode coverage


def _ring_means(k: int = 8) -> torch.Tensor:
    angles = torch.arange(k, dtype=torch.float64) * 2 * math.pi / k
    return 2.0 * torch.stack([angles.cos(), angles.sin()], dim=1)


def _mixture_samples(means: torch.Tensor, modes: list[int], per_mode: int, std: float) -> torch.Tensor:
    g = _gen(20)
    noise = [std * torch.randn(per_mode, 2, generator=g, dtype=torch.float64) for _ in modes]
    return torch.cat([means[k] + eps for k, eps in zip(modes, noise, strict=True)])


def test_mode_coverage_all_modes() -> None:
    means = _ring_means()
    cov = mode_coverage(_mixture_samples(means, list(range(8)), 200, 0.1), means, std=0.1)
    assert isinstance(cov, ModeCoverage)
    assert (cov.n_modes, cov.covered, cov.all_covered) == (8, 8, True)
    assert sum(cov.counts) > 0.98 * 1600
    assert cov.off_mode_fraction < 0.02


def test_mode_coverage_dropped_modes_and_off_mode() -> None:
    means = _ring_means()
    kept = _mixture_samples(means, [0, 1, 2, 4, 6], 200, 0.1)
    far = torch.full((250, 2), 50.0, dtype=torch.float64)
    cov = mode_coverage(torch.cat([kept, far]), means, std=0.1)
    assert (cov.covered, cov.all_covered) == (5, False)
    assert cov.counts[3] == cov.counts[5] == cov.counts[7] == 0
    # beyond 3 std from its own (well separated) mean: exp(-9/2) ~ 1.1% of a 2D Gaussian, plus the far points
    own_means = means[[0, 1, 2, 4, 6]].repeat_interleave(200, dim=0)
    n_tail = int(((kept - own_means).norm(dim=1) > 0.3).sum())
    assert 0 < n_tail < 30
    assert cov.off_mode_fraction == pytest.approx((250 + n_tail) / 1250, rel=1e-12)


def test_mode_coverage_below_fair_share_is_not_covered() -> None:
    # fair share = 1010 / 2 = 505; 10 samples is under 20% of it, 101 is exactly 20%
    means = _ring_means(2)
    x = torch.cat([means[0].expand(1000, 2), means[1].expand(10, 2)])
    assert mode_coverage(x, means, std=0.1).covered == 1
    x = torch.cat([means[0].expand(909, 2), means[1].expand(101, 2)])
    assert mode_coverage(x, means, std=0.1).covered == 2


def test_mode_coverage_nothing_on_mode_covers_nothing() -> None:
    cov = mode_coverage(torch.full((10, 2), 40.0), _ring_means(), std=0.1)
    assert (cov.covered, cov.off_mode_fraction) == (0, 1.0)


# ---------------------------------------------------------------- data floor


def test_data_floor_is_deterministic_and_small() -> None:
    def sample_fn(n: int, generator: torch.Generator | None) -> torch.Tensor:
        return torch.randn(n, 2, generator=generator)

    floor = data_floor(sample_fn, 1000, generator=_gen(21))
    assert data_floor(sample_fn, 1000, generator=_gen(21)) == floor
    assert 0 < floor < 0.15
    assert data_floor(sample_fn, 1000, metric=energy_distance, repeats=2, generator=_gen(21)) < 0.01


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize("metric", [sliced_wasserstein, mmd_rbf, energy_distance])
def test_metrics_reject_bad_input(metric) -> None:
    good = torch.randn(10, 2)
    with pytest.raises(ValueError, match="dimension mismatch"):
        metric(good, torch.randn(10, 3))
    with pytest.raises(ValueError, match="empty"):
        metric(good, torch.empty(0, 2))
    with pytest.raises(ValueError, match="non-finite"):
        metric(good, torch.tensor([[0.0, float("nan")]] * 3))
    with pytest.raises(ValueError, match="shape"):
        metric(good, torch.randn(10))


def test_parameter_validation() -> None:
    x = torch.randn(10, 2)
    with pytest.raises(ValueError, match="n_projections"):
        sliced_wasserstein(x, x, n_projections=0)
    with pytest.raises(ValueError, match="p must"):
        sliced_wasserstein(x, x, p=0)
    with pytest.raises(ValueError, match="bandwidth"):
        mmd_rbf(x, x, bandwidth=-1.0)
    with pytest.raises(ValueError, match="at least 2"):
        mmd_rbf(x, x[:1])
    with pytest.raises(ValueError, match="std"):
        mode_coverage(x, x[:3], std=0.0)
    with pytest.raises(ValueError, match="min_fraction"):
        mode_coverage(x, x[:3], std=1.0, min_fraction=1.5)
    with pytest.raises(ValueError, match="dimension mismatch"):
        mode_coverage(x, torch.randn(3, 3), std=1.0)
    with pytest.raises(ValueError, match="repeats"):
        data_floor(lambda n, g: torch.randn(n, 2, generator=g), 10, repeats=0)
