"""Sample-quality metrics between point clouds: sliced Wasserstein (Bonneel et al. 2015), MMD with an RBF
kernel (Gretton et al. 2012), energy distance (Székely & Rizzo 2013), mode coverage for mixture toys, and
the data-vs-data floor that tells how small a metric can get at a given sample size.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch

PointCloud = torch.Tensor | np.ndarray

MMD_MAX_POINTS = 2000  # per set, for the median heuristic and the kernel matrices
_CHUNK_ELEMENTS = 1 << 22  # pairwise-distance block size (32 MiB of float64): 10k x 10k never materialises


def _as_points(x: PointCloud, name: str) -> torch.Tensor:
    """Validate an (n, d) point cloud and return it as a float64 tensor (on its own device)."""
    t = torch.as_tensor(x)
    if t.ndim != 2:
        raise ValueError(f"'{name}' must have shape (n, d), got shape {tuple(t.shape)}")
    if t.shape[0] == 0 or t.shape[1] == 0:
        raise ValueError(f"'{name}' is empty: shape {tuple(t.shape)}")
    t = t.to(torch.float64)
    if not torch.isfinite(t).all():
        raise ValueError(f"'{name}' contains non-finite values (nan or inf)")
    return t


def _as_pair(a: PointCloud, b: PointCloud) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = _as_points(a, "a"), _as_points(b, "b")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"dimension mismatch: 'a' has d={x.shape[1]}, 'b' has d={y.shape[1]}")
    return x, y.to(x.device)


def _wasserstein_1d_pp(u: torch.Tensor, v: torch.Tensor, p: int) -> torch.Tensor:
    """Exact W_p^p between 1D empirical distributions, row-wise: u (P, n) and v (P, m) sorted along dim 1."""
    n, m = u.shape[1], v.shape[1]
    if n == m:
        return (u - v).abs().pow(p).mean(dim=1)
    # W_p^p = int_0^1 |F_u^{-1}(s) - F_v^{-1}(s)|^p ds. Both quantile functions are step functions that jump
    # at multiples of 1/n and 1/m; on the merged grid (integers in units of 1/(n m), so exact) both are
    # constant on each interval (s_prev, s], where F_u^{-1}(s) = u[ceil(s n) - 1].
    device = u.device
    grid = torch.cat([torch.arange(1, n + 1, device=device) * m, torch.arange(1, m + 1, device=device) * n])
    grid = torch.unique(grid)  # sorted; ends at n m
    widths = torch.diff(grid, prepend=grid.new_zeros(1)).to(torch.float64) / (n * m)
    idx_u = (grid + m - 1) // m - 1
    idx_v = (grid + n - 1) // n - 1
    return ((u[:, idx_u] - v[:, idx_v]).abs().pow(p) * widths).sum(dim=1)


def sliced_wasserstein(
    a: PointCloud,
    b: PointCloud,
    n_projections: int = 256,
    generator: torch.Generator | None = None,
    p: int = 2,
) -> float:
    """Sliced Wasserstein distance SW_p = (E_theta W_p^p(theta.a, theta.b))^(1/p) (Bonneel et al. 2015).

    theta runs over ``n_projections`` random unit directions drawn from ``generator``; each 1D W_p is exact
    (sorted matching for equal sizes, quantile functions otherwise). In 1D every direction is +-1, so the
    result is the exact W_p.
    """
    if n_projections < 1:
        raise ValueError(f"n_projections must be >= 1, got {n_projections}")
    if p < 1:
        raise ValueError(f"p must be >= 1, got {p}")
    x, y = _as_pair(a, b)
    gen_device = generator.device if generator is not None else torch.device("cpu")
    shape = (n_projections, x.shape[1])
    theta = torch.randn(shape, generator=generator, dtype=torch.float64, device=gen_device)
    theta = (theta / theta.norm(dim=1, keepdim=True)).to(x.device)
    u = torch.sort(theta @ x.T, dim=1).values  # (P, n): sorting along the contiguous dimension
    v = torch.sort(theta @ y.T, dim=1).values
    return float(_wasserstein_1d_pp(u, v, p).mean() ** (1.0 / p))


def _subsample(x: torch.Tensor, max_points: int) -> torch.Tensor:
    """At most ``max_points`` rows: a fixed-seed random subset, so the result is deterministic but
    unbiased even when the rows are ordered (e.g. sorted by mode)."""
    if x.shape[0] <= max_points:
        return x
    idx = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(0))[:max_points]
    return x[idx.to(x.device)]


def mmd_rbf(a: PointCloud, b: PointCloud, bandwidth: float | None = None) -> float:
    """Unbiased estimate of MMD^2 with an RBF kernel (Gretton et al. 2012, eq. 3).

    The kernel is k(x, y) = exp(-|x - y|^2 / (2 bandwidth^2)). ``bandwidth=None`` uses the median heuristic:
    the median Euclidean distance between distinct points of the pooled sample (the lower median). Sets
    larger than ``MMD_MAX_POINTS`` are replaced by a deterministic random subset of that size, for both the
    median and the kernel sums. Being unbiased (the i = j terms are dropped), the estimate can be slightly
    negative when the two distributions are equal. Needs at least 2 points per set.
    """
    x, y = _as_pair(a, b)
    if x.shape[0] < 2 or y.shape[0] < 2:
        raise ValueError(f"mmd_rbf needs at least 2 points per set, got {x.shape[0]} and {y.shape[0]}")
    x, y = _subsample(x, MMD_MAX_POINTS), _subsample(y, MMD_MAX_POINTS)
    if bandwidth is None:
        bandwidth = float(torch.pdist(torch.cat([x, y])).median())
        if bandwidth == 0.0:
            raise ValueError("median heuristic gave bandwidth 0 (mostly duplicate points); pass 'bandwidth'")
    elif not (np.isfinite(bandwidth) and bandwidth > 0):
        raise ValueError(f"bandwidth must be a positive finite number, got {bandwidth}")
    gamma = 1.0 / (2.0 * bandwidth**2)
    n, m = x.shape[0], y.shape[0]
    k_xx = torch.exp(-gamma * torch.cdist(x, x).square())
    k_yy = torch.exp(-gamma * torch.cdist(y, y).square())
    k_xy = torch.exp(-gamma * torch.cdist(x, y).square())
    term_xx = (k_xx.sum() - k_xx.diagonal().sum()) / (n * (n - 1))
    term_yy = (k_yy.sum() - k_yy.diagonal().sum()) / (m * (m - 1))
    return float(term_xx + term_yy - 2.0 * k_xy.mean())


def _mean_distance(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean of |x_i - y_j| over all pairs (i = j included), computed in row blocks to bound memory."""
    rows = max(1, _CHUNK_ELEMENTS // y.shape[0])
    total = sum(torch.cdist(x[i : i + rows], y).sum() for i in range(0, x.shape[0], rows))
    return total / (x.shape[0] * y.shape[0])


def energy_distance(a: PointCloud, b: PointCloud) -> float:
    """Energy distance 2 E|X - Y| - E|X - X'| - E|Y - Y'| (Székely & Rizzo 2013), as a V-statistic.

    All pairs are averaged, i = j included, so the value is >= 0 and equals the square of
    ``scipy.stats.energy_distance`` (which returns the square root) in 1D. Memory stays bounded for any n.
    """
    x, y = _as_pair(a, b)
    value = 2.0 * _mean_distance(x, y) - _mean_distance(x, x) - _mean_distance(y, y)
    return max(float(value), 0.0)  # the V-statistic is >= 0; clip rounding below zero


@dataclass(frozen=True)
class ModeCoverage:
    """How many mixture modes a sample reaches. ``counts[k]``: on-mode samples nearest to mode k."""

    n_modes: int
    covered: int
    counts: tuple[int, ...]
    off_mode_fraction: float

    @property
    def all_covered(self) -> bool:
        return self.covered == self.n_modes


def mode_coverage(
    samples: PointCloud,
    means: PointCloud,
    std: float,
    radius_in_std: float = 3.0,
    min_fraction: float = 0.2,
) -> ModeCoverage:
    """Mode coverage of a sample from a mixture with isotropic components of standard deviation ``std``.

    Each sample goes to its nearest mean and is "on mode" when within ``radius_in_std * std`` of it. A mode is
    covered when it holds at least ``min_fraction`` of its fair share of the on-mode samples
    (``min_fraction * n_on_mode / n_modes``), and at least one sample. ``off_mode_fraction`` is the fraction
    of samples farther than the radius from every mean.
    """
    if not (np.isfinite(std) and std > 0):
        raise ValueError(f"std must be a positive finite number, got {std}")
    if not (np.isfinite(radius_in_std) and radius_in_std > 0):
        raise ValueError(f"radius_in_std must be a positive finite number, got {radius_in_std}")
    if not 0.0 <= min_fraction <= 1.0:
        raise ValueError(f"min_fraction must be in [0, 1], got {min_fraction}")
    x = _as_points(samples, "samples")
    mu = _as_points(means, "means").to(x.device)
    if x.shape[1] != mu.shape[1]:
        raise ValueError(f"dimension mismatch: 'samples' has d={x.shape[1]}, 'means' has d={mu.shape[1]}")
    n_modes = mu.shape[0]
    nearest_dist, nearest = torch.cdist(x, mu).min(dim=1)
    on_mode = nearest_dist <= radius_in_std * std
    counts = torch.bincount(nearest[on_mode], minlength=n_modes)
    threshold = min_fraction * int(on_mode.sum()) / n_modes
    covered = int(((counts >= threshold) & (counts > 0)).sum())
    return ModeCoverage(
        n_modes=n_modes,
        covered=covered,
        counts=tuple(int(c) for c in counts),
        off_mode_fraction=1.0 - float(on_mode.double().mean()),
    )


def data_floor(
    sample_fn: Callable[[int, torch.Generator | None], PointCloud],
    n: int,
    metric: Callable[[PointCloud, PointCloud], float] = sliced_wasserstein,
    repeats: int = 3,
    generator: torch.Generator | None = None,
) -> float:
    """The data-vs-data floor: mean ``metric`` between pairs of independent draws ``sample_fn(n, generator)``.

    A model whose metric against the data is near this value is as close as n samples can tell. With the
    default metric the projections also come from ``generator``; bind the generator of any other randomised
    metric yourself (``functools.partial``) to make the floor reproducible.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    if metric is sliced_wasserstein:
        metric = partial(sliced_wasserstein, generator=generator)
    values = [metric(sample_fn(n, generator), sample_fn(n, generator)) for _ in range(repeats)]
    return float(np.mean(values))


# --- classifier-feature metrics (MNIST) ---------------------------------------------------------


def frechet_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (N, D) (Heusel et al. 2017, eq. 6):
    ||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^{1/2}). In the project classifier's features this is
    "FID-MNIST"; like FID it is biased upward at small N, so compare values at the same N only.

    Tr (S_a S_b)^{1/2} is computed as the sum of sqrt(eigenvalues) of the symmetric PSD matrix
    S_a^{1/2} S_b S_a^{1/2} (same eigenvalues), which stays exact when a covariance is singular, as it is
    for ReLU features that are always zero."""
    if a.dim() != 2 or b.dim() != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"feature sets must be (N, D) with the same D; got {tuple(a.shape)} and {tuple(b.shape)}")
    if min(a.shape[0], b.shape[0]) < 2:
        raise ValueError("each feature set needs at least 2 rows")
    a64, b64 = a.double().cpu().numpy(), b.double().cpu().numpy()
    mu_a, mu_b = a64.mean(0), b64.mean(0)
    cov_a, cov_b = np.atleast_2d(np.cov(a64, rowvar=False)), np.atleast_2d(np.cov(b64, rowvar=False))
    w, v = np.linalg.eigh(cov_a)
    sqrt_a = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    tr_covmean = np.sqrt(np.clip(np.linalg.eigvalsh(sqrt_a @ cov_b @ sqrt_a), 0, None)).sum()
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * tr_covmean)


def class_histogram(labels: torch.Tensor, num_classes: int = 10) -> list[int]:
    """Counts of each predicted class (mode coverage for a labelled data set)."""
    return torch.bincount(labels.long().cpu(), minlength=num_classes).tolist()
