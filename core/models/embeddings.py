"""Sinusoidal embeddings of timesteps and coordinates (Vaswani et al. 2017; Ho et al. 2020, appendix B)."""

from __future__ import annotations

import math

import torch


def sinusoidal_embedding(t: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """Embed (N,) values (fractional timesteps allowed) as (N, dim) [cos(t w_i), sin(t w_i)] features."""
    if dim % 2:
        raise ValueError(f"embedding dim must be even; got {dim}")
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float().reshape(-1, 1) * freqs.reshape(1, -1)
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
