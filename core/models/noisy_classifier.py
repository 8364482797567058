"""Noisy classifiers p_phi(y | x_t, t): trained on q_sample(x_0, t) at every t, so their gradient can guide a
sampler (Dhariwal & Nichol 2021, sec. 4.1). ``model(x_t, t) -> logits (N, K)``, t in timesteps (fractional ok).

kind "mlp": 2D points, residual SiLU blocks modulated by the time embedding (as the 2D denoiser).
kind "conv": (N, 1, 28, 28) digits, two conv stages (28 -> 14 -> 7) with the time embedding added per stage,
then global average pooling: a small cousin of the paper's half-UNet classifier.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from core.models.embeddings import sinusoidal_embedding
from core.models.mlp import ResidualBlock

NOISY_CLASSIFIER_KINDS = ("mlp", "conv")


@dataclass(frozen=True)
class NoisyClassifierConfig:
    kind: str = "mlp"  # "mlp" (2D points) or "conv" (MNIST digits)
    num_classes: int = 8
    dim: int = 2  # mlp: the data dimension
    width: int = 128  # mlp: hidden width; conv: channels of the first stage (the second has twice as many)
    depth: int = 3  # mlp: residual blocks; conv: residual blocks per stage
    t_embed_dim: int = 32
    T: int = 1000  # timesteps are rescaled to [0, 1000) as in the denoisers

    def to_dict(self) -> dict:
        return asdict(self)


class ConvBlock(nn.Module):
    """GroupNorm-SiLU-conv twice, the time embedding added between, with a residual connection."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.norm1 = nn.GroupNorm(min(8, c_in), c_in)
        self.emb = nn.Linear(emb_dim, c_out)
        self.norm2 = nn.GroupNorm(8, c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(nn.functional.silu(self.norm1(x))) + self.emb(emb)[:, :, None, None]
        h = self.conv2(nn.functional.silu(self.norm2(h)))
        return self.skip(x) + h


class NoisyClassifier(nn.Module):
    """Logits (N, num_classes) of the class of x_t at timestep t."""

    def __init__(self, config: NoisyClassifierConfig = NoisyClassifierConfig()):
        super().__init__()
        if config.kind not in NOISY_CLASSIFIER_KINDS:
            raise ValueError(f"unknown kind {config.kind!r}; expected one of: {', '.join(NOISY_CLASSIFIER_KINDS)}")
        self.config = c = config
        emb = c.width if c.kind == "mlp" else 4 * c.width
        self.t_mlp = nn.Sequential(nn.Linear(c.t_embed_dim, emb), nn.SiLU(), nn.Linear(emb, emb))
        if c.kind == "mlp":
            self.inp = nn.Linear(c.dim, c.width)
            self.blocks = nn.ModuleList(ResidualBlock(c.width) for _ in range(c.depth))
            self.out = nn.Sequential(nn.LayerNorm(c.width), nn.SiLU(), nn.Linear(c.width, c.num_classes))
        else:
            w = c.width
            self.inp = nn.Conv2d(1, w, 3, padding=1)
            self.blocks = nn.ModuleList(
                [ConvBlock(w, w, emb) for _ in range(c.depth)]
                + [ConvBlock(w if i == 0 else 2 * w, 2 * w, emb) for i in range(c.depth)])
            self.pool = nn.AvgPool2d(2)
            self.out = nn.Sequential(nn.GroupNorm(8, 2 * w), nn.SiLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                     nn.Linear(2 * w, c.num_classes))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        c = self.config
        t = torch.as_tensor(t, device=x.device, dtype=torch.float32)
        if t.dim() == 0:
            t = t.expand(x.shape[0])
        emb = nn.functional.silu(self.t_mlp(sinusoidal_embedding(t * (1000.0 / c.T), c.t_embed_dim)))
        h = self.inp(x)
        if c.kind == "mlp":
            for block in self.blocks:
                h = block(h, emb)
            return self.out(h)
        for i, block in enumerate(self.blocks):
            if i in (0, c.depth):  # 28 -> 14 before the first stage, 14 -> 7 before the second
                h = self.pool(h)
            h = block(h, emb)
        return self.out(h)
