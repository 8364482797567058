"""Sample-quality evaluation of a 2D model against fresh data, relative to the data-vs-data floor.

The floor is the same metric between two independent data draws of the same size: a perfect model
scores about the floor, so ``ratio = metric(model, data) / floor`` is comparable across toys.
"""

from __future__ import annotations

import time
from typing import Any

import torch

from core.data.toy2d import MIXTURE_TOYS, mixture_spec, sample_toy
from core.metrics import data_floor, energy_distance, mmd_rbf, mode_coverage, sliced_wasserstein
from core.samplers import sample


def sample_2d(p, n: int, seed: int = 0, method: str = "ddim", steps: int | None = 50, **options: Any) -> torch.Tensor:
    """n samples from a 2D checkpoint (diffusion families via ``sample``, others via ``model.sample``)."""
    g = torch.Generator().manual_seed(seed)
    if p.schedule is None:
        return p.model.sample(n, generator=g)
    x_T = torch.randn(n, 2, generator=g)
    return sample(p.model, p.schedule, x_T, method=method, steps=steps, generator=g,
                  keep_trajectory=False, **options).xs[-1]


def evaluate_2d(p, n: int = 5000, seed: int = 0, method: str = "ddim", steps: int = 50,
                repeats: int = 3) -> dict[str, Any]:
    """Sliced Wasserstein (and its floor), MMD, energy distance and mode coverage for a toy model."""
    toy = p.config.get("data", {}).get("name")
    if p.config.get("data", {}).get("kind") != "toy":
        raise ValueError("evaluate_2d needs a model trained on a named toy (data.kind = 'toy')")
    t0 = time.perf_counter()
    x = sample_2d(p, n, seed=seed, method=method, steps=steps)
    sample_seconds = time.perf_counter() - t0
    g = torch.Generator().manual_seed(10_000 + seed)
    sws = [sliced_wasserstein(x, sample_toy(toy, n, g), generator=torch.Generator().manual_seed(i))
           for i in range(repeats)]
    floor = data_floor(lambda m, gen: sample_toy(toy, m, gen), n, repeats=repeats, generator=g)
    ref = sample_toy(toy, n, g)
    out: dict[str, Any] = {
        "n": n, "sampler": f"{method}-{steps}", "seed": seed,
        "sliced_wasserstein": round(sum(sws) / repeats, 5),
        "sliced_wasserstein_floor": round(floor, 5),
        "sw_ratio": round(sum(sws) / repeats / floor, 3),
        "mmd_rbf": round(mmd_rbf(x, ref), 6),
        "energy_distance": round(energy_distance(x[:2000], ref[:2000]), 6),
        "sample_seconds": round(sample_seconds, 3),
    }
    if toy in MIXTURE_TOYS:
        spec = mixture_spec(toy)
        cov = mode_coverage(x, spec.means, spec.std)
        out.update(modes_covered=cov.covered, modes=cov.n_modes, off_mode_fraction=round(cov.off_mode_fraction, 4))
    return out
