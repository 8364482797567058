"""Variational autoencoders (Kingma & Welling 2014): an MLP VAE for 2D points and a convolutional VAE for
28x28 digits, with the beta weight of beta-VAE (Higgins et al. 2017) on the KL term.

ELBO(x) = E_q(z|x)[log p(x|z)] - KL(q(z|x) || N(0, I)), with q(z|x) = N(mu(x), diag sigma^2(x)) and the
reparameterisation z = mu + sigma * eps. The decoder is Gaussian with one learned variance per data
dimension for 2D points, and Bernoulli on pixel intensities in [0, 1] for digits.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F


@dataclass(frozen=True)
class VAEConfig:
    kind: str = "mlp"  # "mlp" (2D points, Gaussian decoder) | "conv" (1x28x28 images, Bernoulli decoder)
    latent_dim: int = 2
    width: int = 128  # mlp: hidden units; conv: channels after the second downsampling
    depth: int = 3
    data_dim: int = 2  # mlp only
    beta: float = 1.0  # weight of the KL term (1 = the ELBO)

    def __post_init__(self) -> None:
        if self.kind not in ("mlp", "conv"):
            raise ValueError(f"VAE kind must be 'mlp' or 'conv'; got {self.kind!r}")
        if not self.beta > 0:
            raise ValueError(f"beta must be positive; got {self.beta!r}")

    def to_dict(self) -> dict:
        return asdict(self)


def _mlp(d_in: int, width: int, depth: int, d_out: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(depth):
        layers += [nn.Linear(d_in if i == 0 else width, width), nn.SiLU()]
    return nn.Sequential(*layers, nn.Linear(width, d_out))


class VAE(nn.Module):
    """encode(x) -> (mu, logvar); decode(z) -> the decoder's mean; sample(n) draws x ~ p(x|z) p(z)."""

    def __init__(self, config: VAEConfig = VAEConfig()):
        super().__init__()
        self.config = c = config
        if c.kind == "mlp":
            self.encoder = _mlp(c.data_dim, c.width, c.depth, 2 * c.latent_dim)
            self.decoder = _mlp(c.latent_dim, c.width, c.depth, c.data_dim)
            self.log_sigma = nn.Parameter(torch.full((c.data_dim,), math.log(0.5)))  # decoder std, learned
        else:
            w = c.width
            self.encoder = nn.Sequential(
                nn.Conv2d(1, w // 2, 4, stride=2, padding=1), nn.SiLU(),
                nn.Conv2d(w // 2, w, 4, stride=2, padding=1), nn.SiLU(),
                nn.Flatten(), nn.Linear(w * 7 * 7, 256), nn.SiLU(), nn.Linear(256, 2 * c.latent_dim))
            self.decoder = nn.Sequential(
                nn.Linear(c.latent_dim, 256), nn.SiLU(), nn.Linear(256, w * 7 * 7), nn.SiLU(),
                nn.Unflatten(1, (w, 7, 7)),
                nn.ConvTranspose2d(w, w // 2, 4, stride=2, padding=1), nn.SiLU(),
                nn.ConvTranspose2d(w // 2, 1, 4, stride=2, padding=1))  # Bernoulli logits

    @property
    def latent_dim(self) -> int:
        return self.config.latent_dim

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.encoder(x).chunk(2, dim=1)
        return mu, logvar.clamp(-12, 8)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """The decoder's mean in data units: points, or pixel intensities mapped to [-1, 1]."""
        out = self.decoder(z)
        return out if self.config.kind == "mlp" else torch.sigmoid(out) * 2 - 1

    def elbo(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Per-example ELBO (nats) with one reparameterised sample: E_q[log p(x|z)] - KL(q(z|x) || p(z))."""
        return self._terms(x, generator, beta=1.0)

    def _terms(self, x: torch.Tensor, generator: torch.Generator | None, beta: float) -> torch.Tensor:
        mu, logvar = self.encode(x)
        eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        z = mu + (0.5 * logvar).exp() * eps
        out = self.decoder(z)
        if self.config.kind == "mlp":
            var = (2 * self.log_sigma).exp()
            log_px = -0.5 * (((x - out) ** 2) / var + 2 * self.log_sigma + math.log(2 * math.pi)).sum(1)
        else:
            target = (x + 1) / 2  # intensities in [0, 1] as Bernoulli means (the usual MNIST VAE likelihood)
            log_px = -F.binary_cross_entropy_with_logits(out, target, reduction="none").flatten(1).sum(1)
        kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(1)  # closed form for diagonal Gaussians
        return log_px - beta * kl

    def loss(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Negative beta-ELBO per data dimension (the training objective)."""
        return -self._terms(x, generator, beta=self.config.beta).mean() / x[0].numel()

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """z ~ N(0, I), then x ~ p(x|z) for points (mean + decoder noise), or the decoder mean for digits
        (the convention for Bernoulli decoders: the mean image, not binary noise)."""
        device = next(self.parameters()).device
        z = torch.randn(n, self.latent_dim, generator=generator, device=device)
        mean = self.decode(z)
        if self.config.kind == "conv":
            return mean
        return mean + self.log_sigma.exp() * torch.randn(mean.shape, generator=generator, device=device)
