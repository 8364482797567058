"""Generative adversarial networks (Goodfellow et al. 2014): an MLP GAN for 2D points and a small DCGAN
(Radford et al. 2016) for 28x28 digits, with the non-saturating loss and an optional R1 gradient penalty
on real data (Mescheder et al. 2018).

Both players are trained by the project's one loop (core.training.train) with a single backward pass:
the discriminator's loss sees G(z) detached, and the generator's loss sees the discriminator through
*detached* parameters (torch.func.functional_call), so each loss moves only its own player. That is
simultaneous gradient descent on the two players' losses (Mescheder et al. 2017 analyse it).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn
from torch.func import functional_call
from torch.nn import functional as F


@dataclass(frozen=True)
class GANConfig:
    kind: str = "mlp"  # "mlp" (2D points) | "dcgan" (1x28x28 images)
    latent_dim: int = 2
    width: int = 128  # mlp: hidden units; dcgan: channels at 7x7
    depth: int = 3  # mlp hidden layers
    data_dim: int = 2  # mlp only
    r1_gamma: float = 0.0  # > 0 adds (gamma / 2) E||grad_x D(x)||^2 on real data

    def __post_init__(self) -> None:
        if self.kind not in ("mlp", "dcgan"):
            raise ValueError(f"GAN kind must be 'mlp' or 'dcgan'; got {self.kind!r}")

    def to_dict(self) -> dict:
        return asdict(self)


def _mlp(d_in: int, width: int, depth: int, d_out: int, act: type[nn.Module]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(depth):
        layers += [nn.Linear(d_in if i == 0 else width, width), act()]
    return nn.Sequential(*layers, nn.Linear(width, d_out))


class _DCGenerator(nn.Module):
    def __init__(self, latent_dim: int, width: int):
        super().__init__()
        self.width = width
        self.fc = nn.Linear(latent_dim, width * 7 * 7)
        self.net = nn.Sequential(
            nn.BatchNorm2d(width), nn.ReLU(),
            nn.ConvTranspose2d(width, width // 2, 4, stride=2, padding=1), nn.BatchNorm2d(width // 2), nn.ReLU(),
            nn.ConvTranspose2d(width // 2, width // 4, 4, stride=2, padding=1), nn.BatchNorm2d(width // 4), nn.ReLU(),
            nn.Conv2d(width // 4, 1, 3, padding=1), nn.Tanh())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(self.fc(z).view(-1, self.width, 7, 7))


class _DCDiscriminator(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, width // 4, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
            nn.Conv2d(width // 4, width // 2, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
            nn.Flatten(), nn.Linear(width // 2 * 7 * 7, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class GAN(nn.Module):
    """Generator G(z), z ~ N(0, I), and discriminator D(x) (a logit: real vs generated).

    ``last_losses`` holds (L_D, L_G) of the latest ``loss`` call, for per-player training curves."""

    def __init__(self, config: GANConfig = GANConfig()):
        super().__init__()
        self.config = c = config
        self.last_losses: tuple[float, float] = (math.nan, math.nan)
        if c.kind == "mlp":
            self.generator = _mlp(c.latent_dim, c.width, c.depth, c.data_dim, nn.ReLU)
            self.discriminator = _mlp(c.data_dim, c.width, c.depth, 1, lambda: nn.LeakyReLU(0.2))
        else:
            self.generator = _DCGenerator(c.latent_dim, c.width)
            self.discriminator = _DCDiscriminator(c.width)

    @property
    def latent_dim(self) -> int:
        return self.config.latent_dim

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """G(z): latent codes (N, latent_dim) to samples."""
        return self.generator(z)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        device = next(self.parameters()).device
        return self.decode(torch.randn(n, self.latent_dim, generator=generator, device=device))

    def loss(self, x_real: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """L_D + L_G with the non-saturating generator loss (Goodfellow et al. 2014, section 3):
        L_D = softplus(-D(x)) + softplus(D(G(z))), L_G = softplus(-D(G(z))), each moving only its player."""
        z = torch.randn(x_real.shape[0], self.latent_dim, generator=generator, device=x_real.device)
        fake = self.generator(z)
        x_real = x_real.requires_grad_(self.config.r1_gamma > 0)
        d_real = self.discriminator(x_real)
        loss_d = F.softplus(-d_real).mean() + F.softplus(self.discriminator(fake.detach())).mean()
        frozen = {k: v.detach() for k, v in self.discriminator.named_parameters()}
        frozen |= dict(self.discriminator.named_buffers())
        loss_g = F.softplus(-functional_call(self.discriminator, frozen, (fake,))).mean()
        if self.config.r1_gamma > 0:
            (grad,) = torch.autograd.grad(d_real.sum(), x_real, create_graph=True)
            loss_d = loss_d + 0.5 * self.config.r1_gamma * grad.pow(2).flatten(1).sum(1).mean()
        self.last_losses = (loss_d.item(), loss_g.item())
        return loss_d + loss_g


@torch.no_grad()
def discriminator_map(discriminator: nn.Module, lim: float, n: int = 40) -> np.ndarray:
    """D(x) = sigmoid(D's logit) on an n x n grid over [-lim, lim]^2 (a 2D GAN): (n, n) float32, z[iy, ix]
    (Plotly's heatmap order), as GAN Lab draws it (Kahng et al. 2018). The weights and their mode are left as
    they are, so this can run inside a training callback."""
    p = next(discriminator.parameters())
    xs = torch.linspace(-lim, lim, n, device=p.device, dtype=p.dtype)
    gy, gx = torch.meshgrid(xs, xs, indexing="ij")
    logits = discriminator(torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1))
    return torch.sigmoid(logits.float()).reshape(n, n).cpu().numpy()
