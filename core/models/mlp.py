"""A small time-conditioned MLP denoiser for 2D points, optionally class-conditioned (for guidance).

eps_theta(x, t, y): sinusoidal embeddings of t (and of x, as Fourier features, Tancik et al. 2020),
a stack of residual SiLU blocks each modulated by the time/class embedding.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from core.models.embeddings import sinusoidal_embedding


@dataclass(frozen=True)
class MLPConfig:
    dim: int = 2  # data dimension
    width: int = 128
    depth: int = 3  # residual blocks
    t_embed_dim: int = 32
    x_embed_dim: int = 32  # sinusoidal features per coordinate; 0 feeds raw x only
    num_classes: int = 0  # > 0 adds a label embedding with one extra learned "null" class
    T: int = 1000  # timesteps are rescaled to [0, 1000) so the embedding does not depend on T
    learn_sigma: bool = False  # also output v, the variance interpolation of Nichol & Dhariwal 2021 (eq. 15)

    def to_dict(self) -> dict:
        return asdict(self)


class ResidualBlock(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.fc1 = nn.Linear(width, width)
        self.fc2 = nn.Linear(width, width)
        self.cond = nn.Linear(width, width)

    def forward(self, h: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        z = self.fc1(nn.functional.silu(self.norm(h))) + self.cond(c)
        return h + self.fc2(nn.functional.silu(z))


class MLPDenoiser(nn.Module):
    """Predicts eps for (N, dim) points at (N,) timesteps; ``y`` (N,) labels or None (= null class). With
    ``learn_sigma`` the output is (N, 2 dim): the prediction, then the variance interpolation v."""

    def __init__(self, config: MLPConfig):
        super().__init__()
        self.config = config
        c = config
        in_dim = c.dim * (1 + c.x_embed_dim)
        self.inp = nn.Linear(in_dim, c.width)
        self.t_mlp = nn.Sequential(nn.Linear(c.t_embed_dim, c.width), nn.SiLU(), nn.Linear(c.width, c.width))
        self.label_emb = nn.Embedding(c.num_classes + 1, c.width) if c.num_classes > 0 else None
        self.blocks = nn.ModuleList(ResidualBlock(c.width) for _ in range(c.depth))
        out_dim = c.dim * (2 if c.learn_sigma else 1)
        self.out = nn.Sequential(nn.LayerNorm(c.width), nn.SiLU(), nn.Linear(c.width, out_dim))
        nn.init.zeros_(self.out[-1].weight)
        nn.init.zeros_(self.out[-1].bias)

    @property
    def input_shape(self) -> tuple[int]:
        """The shape of one input point, (dim,)."""
        return (self.config.dim,)

    @property
    def null_class(self) -> int:
        """The label index that means "no label" (classifier-free guidance, Ho & Salimans 2022)."""
        return self.config.num_classes

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        c = self.config
        t = torch.as_tensor(t, device=x.device)
        if t.dim() == 0:
            t = t.expand(x.shape[0])
        feats = [x]
        if c.x_embed_dim:
            # Fourier features of each coordinate; scale 25 lets a small MLP resolve sharp modes
            feats.append(sinusoidal_embedding(25.0 * x.reshape(-1), c.x_embed_dim).reshape(x.shape[0], -1))
        h = self.inp(torch.cat(feats, dim=1))
        cond = self.t_mlp(sinusoidal_embedding(t * (1000.0 / c.T), c.t_embed_dim))
        if self.label_emb is not None:
            if y is None:
                y = torch.full((x.shape[0],), self.null_class, device=x.device, dtype=torch.long)
            cond = cond + self.label_emb(y.long())
        cond = nn.functional.silu(cond)
        for block in self.blocks:
            h = block(h, cond)
        return self.out(h)
