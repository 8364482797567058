"""Judging guided 2D samples against the exact class-conditional p(x | y) of a labelled toy.

fidelity: the share of samples whose class is the requested one. A mixture toy's class of a point is the
component with the largest exact posterior q(y | x_0); any other toy's is the label of the nearest of
``REFERENCE_N`` labelled draws (a 1-nearest-neighbour judge, near Bayes-optimal where classes do not overlap).
distance: sliced Wasserstein to fresh draws of p(x | y) (exact for mixtures, labelled draws of class y
otherwise), beside its floor (two independent draws of p(x | y) at the same n, core.metrics.data_floor).
"""

from __future__ import annotations

from functools import lru_cache

import torch

from core.analytic import toy_mixture
from core.data.toy2d import MIXTURE_TOYS, NUM_CLASSES, sample_toy_with_labels
from core.metrics import data_floor, sliced_wasserstein

REFERENCE_N = 20_000
_REFERENCE_SEED = 123_456


@lru_cache(maxsize=16)
def _reference(toy: str) -> tuple[torch.Tensor, torch.Tensor]:
    return sample_toy_with_labels(toy, REFERENCE_N, torch.Generator().manual_seed(_REFERENCE_SEED))


def _check_class(toy: str, y: int) -> None:
    if toy not in NUM_CLASSES:
        raise ValueError(f"unknown toy {toy!r}; expected one of: {', '.join(NUM_CLASSES)}")
    if not 0 <= int(y) < NUM_CLASSES[toy]:
        raise ValueError(f"{toy} has classes 0..{NUM_CLASSES[toy] - 1}; got {y}")


def label_points(toy: str, x: torch.Tensor) -> torch.Tensor:
    """The class of each point (N, 2) -> (N,) int64 (see the module docstring for the judge)."""
    if toy in MIXTURE_TOYS:
        return toy_mixture(toy).class_log_posterior(x.double()).argmax(1)
    ref_x, ref_y = _reference(toy)
    nearest = torch.cat([torch.cdist(chunk.float(), ref_x).argmin(1) for chunk in x.split(2048)])
    return ref_y[nearest]


def fidelity(toy: str, x: torch.Tensor, y: int) -> float:
    """The share of the points (N, 2) judged to be in class y (non-finite points count as misses)."""
    _check_class(toy, y)
    finite = torch.isfinite(x).all(1)
    if not finite.any():
        return 0.0
    return float((label_points(toy, x[finite]) == int(y)).sum()) / x.shape[0]


def conditional_draws(toy: str, y: int, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """n draws of p(x | y): the exact component of a mixture, else labelled draws of the toy kept if in class y."""
    _check_class(toy, y)
    if toy in MIXTURE_TOYS:
        return toy_mixture(toy).component(int(y)).sample(n, generator)
    kept, have = [], 0
    while have < n:
        x, labels = sample_toy_with_labels(toy, 4 * n, generator)
        kept.append(x[labels == int(y)])
        have += kept[-1].shape[0]
    return torch.cat(kept)[:n]


def conditional_sw(toy: str, x: torch.Tensor, y: int, seed: int = 0) -> float:
    """Sliced Wasserstein between the points and as many fresh draws of p(x | y)."""
    g = torch.Generator().manual_seed(seed)
    return sliced_wasserstein(x, conditional_draws(toy, y, x.shape[0], g), generator=g)


def conditional_floor(toy: str, y: int, n: int, seed: int = 0) -> float:
    """The data-vs-data floor of ``conditional_sw`` at n points (3 pairs of independent draws of p(x | y))."""
    return data_floor(lambda m, g: conditional_draws(toy, y, m, g), n, generator=torch.Generator().manual_seed(seed))
