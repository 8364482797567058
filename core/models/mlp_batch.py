"""B independent MLP denoisers evaluated as one module: stacked weights and batched matrix products.

Training a class's models one after another pays the per-operation overhead of a small network B times; stacking
them pays it once (the idea of ``torch.func.stack_module_state`` + ``vmap``, written out for this MLP with
``torch.baddbmm``). Member i computes what ``core.models.mlp.MLPDenoiser`` computes with member i's weights, up to
floating-point rounding. On a 2-core CPU the default 2D MLP is bound by its arithmetic, so the gain is small
(``benchmarks/batched_training.py``); ``core.train_2d_batch`` trains with it.

    batch = MLPBatch([MLPDenoiser(cfg) for _ in range(4)])
    v = batch(x, t)                       # x (4, N, 2), t (4, N) -> (4, N, 2)
    one = batch.member(2)                 # an MLPDenoiser holding member 2's weights
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from core.models.embeddings import sinusoidal_embedding
from core.models.mlp import MLPConfig, MLPDenoiser


class MLPBatch(nn.Module):
    """Stacks the parameters of B ``MLPDenoiser`` of one config (unconditional) along a new leading dimension.

    ``weights[k]`` has shape (B, *shape of the k-th parameter of MLPDenoiser), in ``names`` order, so a member's
    state dict is a slice.
    """

    def __init__(self, members: Sequence[MLPDenoiser]):
        super().__init__()
        if not members:
            raise ValueError("MLPBatch needs at least one member")
        self.config: MLPConfig = members[0].config
        if any(m.config != self.config for m in members):
            raise ValueError("every member of an MLPBatch must have the same MLPConfig")
        if self.config.num_classes or self.config.learn_sigma:
            raise ValueError("MLPBatch stacks unconditional MLPs with fixed variances only (num_classes = 0, "
                             "learn_sigma = False)")
        self.names = [name for name, _ in members[0].named_parameters()]
        states = [dict(m.named_parameters()) for m in members]
        self.weights = nn.ParameterList(
            nn.Parameter(torch.stack([s[name].detach() for s in states]).clone()) for name in self.names)

    def __len__(self) -> int:
        return self.weights[0].shape[0]

    def member_state(self, i: int) -> dict[str, torch.Tensor]:
        """Member i's weights as an ``MLPDenoiser`` state dict (copies)."""
        return {name: w[i].detach().clone() for name, w in zip(self.names, self.weights, strict=True)}

    def member(self, i: int) -> MLPDenoiser:
        """Member i as a standalone ``MLPDenoiser``."""
        model = MLPDenoiser(self.config)
        model.load_state_dict(self.member_state(i))
        return model

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """x (B, N, dim), t (B, N) timesteps -> (B, N, dim), member b applied to row b."""
        c = self.config
        w = dict(zip(self.names, self.weights, strict=True))
        b, n = x.shape[:2]

        def linear(h: torch.Tensor, name: str) -> torch.Tensor:
            return torch.baddbmm(w[name + ".bias"].unsqueeze(1), h, w[name + ".weight"].transpose(1, 2))

        def layer_norm(h: torch.Tensor, name: str) -> torch.Tensor:
            h = F.layer_norm(h, (c.width,))
            return torch.addcmul(w[name + ".bias"].unsqueeze(1), h, w[name + ".weight"].unsqueeze(1))

        feats = [x]
        if c.x_embed_dim:
            feats.append(sinusoidal_embedding(25.0 * x.reshape(-1), c.x_embed_dim).reshape(b, n, -1))
        h = linear(torch.cat(feats, dim=-1), "inp")
        emb = sinusoidal_embedding(t.reshape(-1) * (1000.0 / c.T), c.t_embed_dim).reshape(b, n, -1)
        cond = F.silu(linear(F.silu(linear(emb, "t_mlp.0")), "t_mlp.2"))
        for k in range(c.depth):
            z = linear(F.silu(layer_norm(h, f"blocks.{k}.norm")), f"blocks.{k}.fc1") + linear(cond, f"blocks.{k}.cond")
            h = h + linear(F.silu(z), f"blocks.{k}.fc2")
        return linear(F.silu(layer_norm(h, "out.0")), "out.2")
