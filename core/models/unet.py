"""A small class-conditional UNet for 28x28 images (Ho et al. 2020, appendix B, scaled down).

With ``patch_size`` p > 1 the image is first folded into p x p patches (pixel unshuffle: 1x28x28 ->
4x14x14 for p = 2) and unfolded at the end, as the patch embedding of DiT (Peebles & Xie 2023) does; the
default p = 2 makes the network about 3x cheaper, so 100 guided digits sample in seconds on a laptop CPU.
Residual blocks with GroupNorm and a time/class embedding, self-attention at the lowest resolution,
a learned "null" class for classifier-free guidance (Ho & Salimans 2022), and an optional gradient
checkpointing switch that trades compute for activation memory.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.checkpoint import checkpoint

from core.models.embeddings import sinusoidal_embedding
from core.models.shapes import check_input_shape


@dataclass(frozen=True)
class UNetConfig:
    in_channels: int = 1
    image_size: int = 28  # 7 for the 4 x 7 x 7 latents of latent diffusion (core.models.autoencoder)
    patch_size: int = 2  # 28x28 images become (p*p*C) x 14 x 14 before the first convolution
    base_channels: int = 32
    channel_mults: tuple[int, ...] = (1, 2)  # 14 -> 7 (with patch_size 1: use (1, 2, 2), 28 -> 14 -> 7)
    blocks_per_level: int = 1
    attention_heads: int = 4
    num_classes: int = 10  # 0: unconditional; otherwise one extra learned null class
    groups: int = 8
    dropout: float = 0.1
    T: int = 1000
    gradient_checkpointing: bool = False
    learn_sigma: bool = False  # also output v, the variance interpolation of Nichol & Dhariwal 2021 (eq. 15)
    context_dim: int = 0  # > 0: cross-attention over text tokens of this width after every block (Rombach et al.)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["channel_mults"] = list(self.channel_mults)
        return d


class CrossAttention(nn.Module):
    """softmax(Q K^T / sqrt(d)) V with queries from the feature map and keys and values from the text tokens
    (Rombach et al. 2022, sec. 3.3), padding masked; starts as the identity (zero output projection). With
    ``record`` set, the attention weights of the last call are kept in ``weights`` (N, HW, tokens), averaged over
    heads: where each word looks."""

    def __init__(self, channels: int, context_dim: int, heads: int, groups: int):
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels)
        self.attn = nn.MultiheadAttention(channels, heads, kdim=context_dim, vdim=context_dim, batch_first=True)
        nn.init.zeros_(self.attn.out_proj.weight)
        nn.init.zeros_(self.attn.out_proj.bias)
        self.record = False
        self.weights: torch.Tensor | None = None

    def forward(self, x: torch.Tensor, context: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        seq = self.norm(x).flatten(2).transpose(1, 2)  # (N, HW, C)
        out, weights = self.attn(seq, context, context, key_padding_mask=~mask, need_weights=self.record)
        if self.record:
            self.weights = weights.detach()
        return x + out.transpose(1, 2).reshape(n, c, h, w)


class ResBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, emb_dim: int, groups: int, dropout: float, context_dim: int = 0,
                 heads: int = 4):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb_dim, c_out)
        self.norm2 = nn.GroupNorm(groups, c_out)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)  # each block starts as the identity
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()
        self.cross = CrossAttention(c_out, context_dim, heads, groups) if context_dim else None

    def forward(self, x: torch.Tensor, emb: torch.Tensor, context: torch.Tensor | None = None,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.emb(emb)[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        out = self.skip(x) + h
        return out if self.cross is None else self.cross(out, context, mask)


class SelfAttention(nn.Module):
    def __init__(self, channels: int, heads: int, groups: int):
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels)
        self.attn = nn.MultiheadAttention(channels, heads, batch_first=True)

    def forward(self, x: torch.Tensor, emb: torch.Tensor | None = None, context: torch.Tensor | None = None,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        n, c, h, w = x.shape
        seq = self.norm(x).flatten(2).transpose(1, 2)  # (N, HW, C)
        out, _ = self.attn(seq, seq, seq, need_weights=False)
        return x + out.transpose(1, 2).reshape(n, c, h, w)


class Upsample(nn.Module):
    """Nearest-neighbour upsampling to the size of the skip connection it meets (x2 for even sizes; 4 -> 7 for
    a 7 x 7 latent, whose stride-2 convolution gave 4 x 4)."""

    def forward(self, h: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        return F.interpolate(h, size=size, mode="nearest")


class UNet(nn.Module):
    """eps_theta(x, t, y) for (N, C, S, S) inputs (S = image_size: 28 for digits, 7 for latents); ``y`` (N,) labels
    or None (the null class)."""

    def __init__(self, config: UNetConfig):
        super().__init__()
        self.config = c = config
        emb_dim = 4 * c.base_channels
        self.time_mlp = nn.Sequential(nn.Linear(c.base_channels, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.label_emb = nn.Embedding(c.num_classes + 1, emb_dim) if c.num_classes > 0 else None
        # text: the prompt's pooled embedding (its start token) joins the time embedding, and every block attends
        # to the tokens (as Imagen and Stable Diffusion's successors do; Rombach et al. use cross-attention alone)
        self.context_emb = nn.Linear(c.context_dim, emb_dim) if c.context_dim else None
        cross = (c.context_dim, c.attention_heads) if c.context_dim else ()
        folded = c.in_channels * c.patch_size ** 2
        self.inp = nn.Conv2d(folded, c.base_channels, 3, padding=1)
        chans = [c.base_channels * m for m in c.channel_mults]
        self.down, self.up = nn.ModuleList(), nn.ModuleList()
        skips, ch = [c.base_channels], c.base_channels
        for level, c_out in enumerate(chans):
            for _ in range(c.blocks_per_level):
                self.down.append(ResBlock(ch, c_out, emb_dim, c.groups, c.dropout, *cross))
                ch = c_out
                skips.append(ch)
            if level < len(chans) - 1:
                self.down.append(nn.Conv2d(ch, ch, 3, stride=2, padding=1))
                skips.append(ch)
        self.mid = nn.ModuleList([ResBlock(ch, ch, emb_dim, c.groups, c.dropout, *cross),
                                  SelfAttention(ch, c.attention_heads, c.groups),
                                  ResBlock(ch, ch, emb_dim, c.groups, c.dropout, *cross)])
        for level, c_out in reversed(list(enumerate(chans))):
            for _ in range(c.blocks_per_level + 1):
                self.up.append(ResBlock(ch + skips.pop(), c_out, emb_dim, c.groups, c.dropout, *cross))
                ch = c_out
            if level > 0:
                self.up.append(Upsample())
        out_folded = folded * (2 if c.learn_sigma else 1)
        self.out = nn.Sequential(nn.GroupNorm(c.groups, ch), nn.SiLU(), nn.Conv2d(ch, out_folded, 3, padding=1))
        nn.init.zeros_(self.out[-1].weight)
        nn.init.zeros_(self.out[-1].bias)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """The shape of one input, (C, S, S): what x_T must look like (without the batch dimension)."""
        c = self.config
        return c.in_channels, c.image_size, c.image_size

    @property
    def null_class(self) -> int:
        return self.config.num_classes

    @property
    def learn_sigma(self) -> bool:
        return self.config.learn_sigma

    def eps_and_v(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(eps, v): with ``learn_sigma`` the second half of the output channels is the variance interpolation v
        of core.diffusion.learned_variance (None without it)."""
        out = self._forward(x, t, y)
        return out.chunk(2, dim=1) if self.config.learn_sigma else (out, None)  # (text models do not learn Sigma)

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None,
                context: torch.Tensor | None = None, context_mask: torch.Tensor | None = None) -> torch.Tensor:
        """eps_theta(x_t, t, y) for (N, C, S, S) inputs; with ``context_dim``, the text tokens ``context``
        (N, L, context_dim) and their mask (N, L) instead of labels (core.models.text.TextConditioned)."""
        out = self._forward(x, t, y, context, context_mask)
        return out[:, : self.config.in_channels] if self.config.learn_sigma else out

    def _run(self, block: nn.Module, h: torch.Tensor, emb: torch.Tensor, context: torch.Tensor | None,
             mask: torch.Tensor | None) -> torch.Tensor:
        if not isinstance(block, (ResBlock, SelfAttention)):
            return block(h)
        if self.config.gradient_checkpointing and self.training and torch.is_grad_enabled():
            return checkpoint(block, h, emb, context, mask, use_reentrant=False)
        return block(h, emb, context, mask)

    def _forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None,
                 context: torch.Tensor | None = None, mask: torch.Tensor | None = None) -> torch.Tensor:
        c = self.config
        if tuple(x.shape[1:]) != self.input_shape:
            check_input_shape(self.input_shape, tuple(x.shape))
        t = torch.as_tensor(t, device=x.device)
        if t.dim() == 0:
            t = t.expand(x.shape[0])
        emb = self.time_mlp(sinusoidal_embedding(t * (1000.0 / c.T), c.base_channels))
        if self.label_emb is not None:
            if y is None:
                y = torch.full((x.shape[0],), self.null_class, device=x.device, dtype=torch.long)
            emb = emb + self.label_emb(y.long())
        if self.context_emb is not None:
            if context is None or mask is None:
                raise ValueError("a text-conditioned UNet needs context= (N, L, context_dim) tokens and context_mask=")
            emb = emb + self.context_emb(context[:, 0])
        emb = F.silu(emb)
        if c.patch_size > 1:
            x = F.pixel_unshuffle(x, c.patch_size)
        h = self.inp(x)
        hs = [h]
        for block in self.down:
            h = self._run(block, h, emb, context, mask)
            hs.append(h)
        for block in self.mid:
            h = self._run(block, h, emb, context, mask)
        for block in self.up:
            if isinstance(block, ResBlock):
                h = torch.cat([h, hs.pop()], dim=1)
            h = block(h, hs[-1].shape[-2:]) if isinstance(block, Upsample) else self._run(block, h, emb, context, mask)
        out = self.out(h)
        return F.pixel_shuffle(out, c.patch_size) if c.patch_size > 1 else out

