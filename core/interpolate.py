"""Interpolation between Gaussian draws: how generative models are compared along a path in their latent
(the DDIM paper's interpolation of x_T, a GAN's z, a VAE's latent)."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def slerp(a: torch.Tensor, b: torch.Tensor, ts: Sequence[float]) -> torch.Tensor:
    """Spherical interpolation (per row) between a and b (..., d): (len(ts), ..., d). It keeps the norm of a
    Gaussian draw typical, as in the DDIM paper's interpolation (Song et al. 2021, section 5.3)."""
    af, bf = a.flatten(1), b.flatten(1)
    cos = (af * bf).sum(1) / (af.norm(dim=1) * bf.norm(dim=1)).clamp_min(1e-12)
    theta = torch.arccos(cos.clamp(-1, 1))[:, None]
    out = []
    for t in ts:
        sin = torch.sin(theta)
        wa = torch.where(sin > 1e-6, torch.sin((1 - t) * theta) / sin, torch.full_like(theta, 1 - t))
        wb = torch.where(sin > 1e-6, torch.sin(t * theta) / sin, torch.full_like(theta, t))
        out.append((wa * af + wb * bf).reshape(a.shape))
    return torch.stack(out)
