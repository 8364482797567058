"""Guidance as eps-model wrappers: every sampler takes the result unchanged.

eps_fn = classifier_free_guidance(eps_model, y, scale)   # Ho & Salimans 2022: eps_u + w (eps_c - eps_u)
eps_model = RowwiseGuidance(model, w)                    # the same mix with one scale per row of the batch
"""

from __future__ import annotations

import torch

from core.diffusion import EpsFn, EpsModel


def classifier_free_guidance(eps_model: EpsModel, y: torch.Tensor | None, w: float) -> EpsFn:
    """eps(x, t) with classifier-free guidance eps_u + w (eps_c - eps_u) (Ho & Salimans 2022, eq. 6).

    y = None: the unconditional model; w = 1: the plain conditional one; w = 0: the unconditional pass alone.
    With the model's learned ``null_class`` both passes run as one batched call of 2N points; without it the
    unconditional pass calls ``eps_model(x, t)`` without labels.
    """
    if y is None:
        return lambda x, t: eps_model(x, t)
    if w == 1.0:
        return lambda x, t: eps_model(x, t, y)
    null = getattr(eps_model, "null_class", None)
    if w == 0.0:
        if null is None:
            return lambda x, t: eps_model(x, t)
        y_null = torch.full_like(y, int(null))
        return lambda x, t: eps_model(x, t, y_null)
    if null is not None:
        y_both = torch.cat([y, torch.full_like(y, int(null))])

        def eps_fn(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            eps_c, eps_u = eps_model(torch.cat([x, x]), torch.cat([t, t]), y_both).chunk(2)
            return eps_u + w * (eps_c - eps_u)
    else:

        def eps_fn(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            eps_c, eps_u = eps_model(x, t, y), eps_model(x, t)
            return eps_u + w * (eps_c - eps_u)

    return eps_fn


class RowwiseGuidance:
    """eps~ = eps(x, t, null) + w_i (eps(x, t, y_i) - eps(x, t, null)) with a guidance scale w_i per row, so a
    sweep over scales runs as one batch (``sample`` takes one w per call). Rows with w_i = 0 need only the
    unconditional pass and rows with w_i = 1 only the conditional one; the others get both, in the same network
    call. ``model`` must have a learned ``null_class``; pass labels y to ``sample`` with guidance_scale 1."""

    def __init__(self, model: EpsModel, w: torch.Tensor):
        self.model, self.w = model, w
        self.cond, self.uncond = w != 0, w != 1  # rows that need each pass

    def __call__(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        c, u = self.cond, self.uncond
        null = torch.full_like(y[u], self.model.null_class)
        eps = self.model(torch.cat([x[c], x[u]]), torch.cat([t[c], t[u]]), torch.cat([y[c], null]))
        eps_c, eps_u = torch.zeros_like(x), torch.zeros_like(x)
        eps_c[c], eps_u[u] = eps[:int(c.sum())], eps[int(c.sum()):]
        w = self.w.reshape(-1, *([1] * (x.dim() - 1)))
        return eps_u + w * (eps_c - eps_u)  # w = 0: eps_u; w = 1: eps_c
