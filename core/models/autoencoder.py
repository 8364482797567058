"""The first stage of latent diffusion (Rombach et al. 2022, sec. 3.1 and app. G): a KL-regularised convolutional
autoencoder that compresses a 1 x 28 x 28 digit to a small latent z and decodes it back.

The encoder gives q(z | x) = N(mu(x), diag sigma^2(x)); training minimises the reconstruction error plus a small
weight times KL(q(z | x) || N(0, I)), small enough that reconstructions stay sharp and large enough that the latent
does not drift to arbitrary scales. By default z is spatial, 4 x 7 x 7 (downsampling factor f = 4); with
``latent_dim`` > 0 it is a vector (2 numbers: a latent space one can draw). The diffusion model works on
``scale_factor * z`` (the paper's rescaling by the inverse standard deviation of z over the training set), so
the latents it sees have unit variance; ``encode`` and ``decode`` apply and undo it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F


@dataclass(frozen=True)
class AutoencoderConfig:
    latent_channels: int = 4  # spatial latent: latent_channels x 7 x 7
    latent_dim: int = 0  # > 0: a vector latent of this many numbers instead (the 2-D variant)
    width: int = 32  # channels at 14 x 14; width / 2 at 28 x 28, 2 x width at 7 x 7
    groups: int = 8
    scale_factor: float = 1.0  # 1 / std(z) over the training set, set after training (Rombach et al. 2022, 4.3.2)

    @property
    def latent_shape(self) -> tuple[int, ...]:
        return (self.latent_dim,) if self.latent_dim > 0 else (self.latent_channels, 7, 7)

    def to_dict(self) -> dict:
        return asdict(self)


class ResBlock(nn.Module):
    """GroupNorm, SiLU, 3x3 convolution, twice, plus the input (a 1x1 convolution when the channels change)."""

    def __init__(self, c_in: int, c_out: int, groups: int):
        super().__init__()
        self.body = nn.Sequential(nn.GroupNorm(groups, c_in), nn.SiLU(), nn.Conv2d(c_in, c_out, 3, padding=1),
                                  nn.GroupNorm(groups, c_out), nn.SiLU(), nn.Conv2d(c_out, c_out, 3, padding=1))
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.skip(x) + self.body(x)


class Autoencoder(nn.Module):
    """``encode(x) -> z`` (scaled posterior mean) and ``decode(z) -> x`` for images (N, 1, 28, 28) in [-1, 1];
    ``posterior(x) -> (mu, logvar)`` and ``reconstruct`` for training."""

    def __init__(self, config: AutoencoderConfig = AutoencoderConfig()):
        super().__init__()
        self.config = c = config
        w, g = c.width, c.groups
        z_channels = c.latent_channels
        # Residual blocks at 14 x 14 and 7 x 7 only: at 28 x 28 one convolution each way (most of the cost of a
        # 28 x 28 block, little of the benefit for digits)
        self.encoder = nn.Sequential(
            nn.Conv2d(1, w // 2, 3, padding=1), nn.SiLU(),
            nn.Conv2d(w // 2, w, 3, stride=2, padding=1), ResBlock(w, w, g),  # 14 x 14
            nn.Conv2d(w, 2 * w, 3, stride=2, padding=1), ResBlock(2 * w, 2 * w, g),  # 7 x 7
            nn.GroupNorm(g, 2 * w), nn.SiLU())
        self.decoder = nn.Sequential(
            ResBlock(2 * w, 2 * w, g),
            nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(2 * w, w, 3, padding=1),
            ResBlock(w, w, g),  # 14 x 14
            nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(w, w // 2, 3, padding=1),  # 28 x 28
            nn.GroupNorm(g, w // 2), nn.SiLU(), nn.Conv2d(w // 2, 1, 3, padding=1))
        if c.latent_dim > 0:  # the vector latent: the 7 x 7 features through a linear map, and back
            self.to_moments = nn.Sequential(nn.Flatten(), nn.Linear(2 * w * 49, 256), nn.SiLU(),
                                            nn.Linear(256, 2 * c.latent_dim))
            self.from_latent = nn.Sequential(nn.Linear(c.latent_dim, 256), nn.SiLU(), nn.Linear(256, 2 * w * 49),
                                             nn.Unflatten(1, (2 * w, 7, 7)))
        else:
            self.to_moments = nn.Conv2d(2 * w, 2 * z_channels, 1)
            self.from_latent = nn.Conv2d(z_channels, 2 * w, 3, padding=1)

    @property
    def latent_shape(self) -> tuple[int, ...]:
        return self.config.latent_shape

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mu, logvar) of q(z | x), unscaled; logvar clamped to [-30, 20] as in the paper's code."""
        if x.dim() != 4 or tuple(x.shape[1:]) != (1, 28, 28):
            raise ValueError(f"the autoencoder encodes images of shape (N, 1, 28, 28); got {tuple(x.shape)}")
        mu, logvar = self.to_moments(self.encoder(x)).chunk(2, dim=1)
        return mu, logvar.clamp(-30.0, 20.0)

    def decode_unscaled(self, z: torch.Tensor) -> torch.Tensor:
        """The decoder's output for an unscaled latent (not clamped: the training loss sees it as it is)."""
        return self.decoder(self.from_latent(z))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """z = scale_factor * mu(x): the latent the diffusion model works on, of shape (N, *latent_shape)."""
        return self.config.scale_factor * self.posterior(x)[0]

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Images (N, 1, 28, 28) in [-1, 1] from scaled latents (N, *latent_shape)."""
        if tuple(z.shape[1:]) != self.latent_shape:
            raise ValueError(f"this autoencoder decodes latents of shape (N, {', '.join(map(str, self.latent_shape))})"
                             f"; got {tuple(z.shape)}")
        return self.decode_unscaled(z / self.config.scale_factor).clamp(-1.0, 1.0)


def kl_to_standard_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, diag exp(logvar)) || N(0, I)) per example, summed over the latent's dimensions."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).flatten(1).sum(1)


def autoencoder_loss(model: Autoencoder, x: torch.Tensor, kl_weight: float, generator: torch.Generator
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(loss, reconstruction term, KL term): the per-pixel squared error of the decoder's output at
    z = mu + sigma * eps (the reparameterisation), summed over pixels and averaged over the batch, plus
    ``kl_weight`` times the KL to N(0, I) (the paper's "KL-reg." first stage, with a squared instead of a
    perceptual reconstruction loss)."""
    mu, logvar = model.posterior(x)
    z = mu + (0.5 * logvar).exp() * torch.randn(mu.shape, generator=generator, device=mu.device)
    recon = F.mse_loss(model.decode_unscaled(z), x, reduction="none").flatten(1).sum(1).mean()
    kl = kl_to_standard_normal(mu, logvar).mean()
    return recon + kl_weight * kl, recon, kl
