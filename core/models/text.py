"""A small CLIP (Radford et al. 2021) for captioned digits: a transformer text encoder and a convolutional image
encoder trained with the symmetric contrastive loss, then frozen; its token embeddings are what a text-conditioned
latent diffusion model attends to (Rombach et al. 2022, sec. 3.3).

Text: word ids from core.data.captions.tokenize (0 = padding), with a learned start token prepended to every prompt,
so even the empty prompt (unconditional) has one token to attend to. The encoder gives the token embeddings
(N, 1 + L, width) and, from the start token's output, the prompt's embedding in the shared space.
Image: four convolutions to a vector in the same space. Both embeddings are L2-normalised; the loss is the
cross-entropy of the cosine-similarity matrix scaled by a learned temperature, in both directions:

    L = (CE(s * T I^T, diag) + CE(s * I T^T, diag)) / 2
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F


@dataclass(frozen=True)
class CLIPConfig:
    vocab_size: int = 40  # word ids 0 (padding) .. vocab_size - 1; the start token is vocab_size
    max_len: int = 12  # words per prompt (the start token comes on top)
    width: int = 64
    layers: int = 2
    heads: int = 4
    embed_dim: int = 64  # the shared text-image space
    image_channels: int = 32

    def to_dict(self) -> dict:
        return asdict(self)


class TextEncoder(nn.Module):
    """Token ids (N, L) -> (token embeddings (N, 1 + L, width), their mask (N, 1 + L), prompt embedding (N, width)).
    Pre-norm transformer layers; padding is masked out of every attention."""

    def __init__(self, c: CLIPConfig):
        super().__init__()
        self.start_id = c.vocab_size
        self.tokens = nn.Embedding(c.vocab_size + 1, c.width, padding_idx=0)
        self.position = nn.Parameter(torch.empty(1 + c.max_len, c.width))
        nn.init.normal_(self.position, std=0.02)  # (an init, so building on the meta device skips it)
        layer = nn.TransformerEncoderLayer(c.width, c.heads, 2 * c.width, dropout=0.0, batch_first=True,
                                           norm_first=True, activation="gelu")
        self.layers = nn.TransformerEncoder(layer, c.layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(c.width)

    def forward(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        n, length = ids.shape
        if length + 1 > self.position.shape[0]:
            raise ValueError(f"at most {self.position.shape[0] - 1} tokens per prompt; got {length}")
        ids = torch.cat([torch.full((n, 1), self.start_id, dtype=ids.dtype, device=ids.device), ids], dim=1)
        mask = ids != 0
        h = self.tokens(ids) + self.position[: length + 1]
        h = self.norm(self.layers(h, src_key_padding_mask=~mask))
        return h, mask, h[:, 0]


class ImageEncoder(nn.Module):
    """Images (N, 1, 28, 28) -> (N, out_dim): 28 -> 14 -> 7 -> 4, then global average pooling."""

    def __init__(self, channels: int, out_dim: int):
        super().__init__()
        c = channels
        self.net = nn.Sequential(
            nn.Conv2d(1, c, 3, padding=1), nn.SiLU(),
            nn.Conv2d(c, 2 * c, 3, stride=2, padding=1), nn.GroupNorm(8, 2 * c), nn.SiLU(),
            nn.Conv2d(2 * c, 2 * c, 3, stride=2, padding=1), nn.GroupNorm(8, 2 * c), nn.SiLU(),
            nn.Conv2d(2 * c, 4 * c, 3, stride=2, padding=1), nn.GroupNorm(8, 4 * c), nn.SiLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4 * c, out_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class CLIP(nn.Module):
    """``encode_text(ids)`` and ``encode_image(x)``: unit vectors in one space; ``tokens(ids)`` the text
    encoder's token embeddings and mask, for cross-attention."""

    def __init__(self, config: CLIPConfig = CLIPConfig()):
        super().__init__()
        self.config = c = config
        self.text = TextEncoder(c)
        self.text_projection = nn.Linear(c.width, c.embed_dim, bias=False)
        self.image = ImageEncoder(c.image_channels, c.embed_dim)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))  # CLIP's initial temperature

    @property
    def context_dim(self) -> int:
        return self.config.width

    def tokens(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(token embeddings (N, 1 + L, width), mask (N, 1 + L), True for the start token and the words)."""
        h, mask, _ = self.text(ids)
        return h, mask

    def encode_text(self, ids: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.text_projection(self.text(ids)[2]), dim=-1)

    def encode_image(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.image(x), dim=-1)


def contrastive_loss(text: torch.Tensor, image: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
    """The symmetric InfoNCE loss of CLIP (Radford et al. 2021, fig. 3): pair i of the batch is the positive of
    row and column i of the similarity matrix, every other pair a negative. ``text`` and ``image`` are (N, D)
    unit vectors; the scale exp(logit_scale) is clamped at 100 as in CLIP."""
    logits = logit_scale.exp().clamp(max=100.0) * text @ image.T
    target = torch.arange(len(text), device=text.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


class TextConditioned(nn.Module):
    """An eps model conditioned on a prompt: ``model(x, t, y)`` with ``y`` the prompt's word ids (N, L) from
    core.data.captions.tokenize. The frozen CLIP's token embeddings reach the denoiser (a UNet with
    ``context_dim``) through cross-attention. The null "label" is the padding id 0, so classifier-free guidance's
    unconditional pass (core.guidance, ``full_like(y, null_class)``) is the empty prompt: the start token alone."""

    null_class = 0

    def __init__(self, denoiser: nn.Module, clip: CLIP):
        super().__init__()
        self.denoiser = denoiser
        self.clip = clip.eval().requires_grad_(False)

    @property
    def input_shape(self) -> tuple[int, ...] | None:
        return getattr(self.denoiser, "input_shape", None)

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if y is None:
            y = torch.zeros((x.shape[0], 1), dtype=torch.long, device=x.device)
        with torch.no_grad():
            context, mask = self.clip.tokens(y)
        return self.denoiser(x, t, context=context, context_mask=mask)

    def train(self, mode: bool = True) -> TextConditioned:
        super().train(mode)
        self.clip.eval()  # frozen: never in training mode
        return self
