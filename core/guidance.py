"""Guidance as eps-model wrappers: every sampler takes the result unchanged.

eps_fn = classifier_free_guidance(eps_model, y, scale)   # Ho & Salimans 2022: eps_u + w (eps_c - eps_u)
eps_model = RowwiseGuidance(model, w)                    # the same mix with one scale per row of the batch
eps_fn = classifier_guidance(eps_model, log_p_y, schedule, None, scale)   # Dhariwal & Nichol 2021:
                                                         # eps - scale sqrt(1 - alpha_bar_t) grad log p(y | x_t)
log_p_y = classifier_log_prob(noisy_classifier, y)       # a time-conditioned classifier's log p(y | x_t)

Both kinds shift the score: eps = -sqrt(1 - alpha_bar_t) score, so classifier guidance adds scale * grad log
p(y | x_t) to the score of p(x_t) (Bayes: grad log p(x_t | y) = grad log p(x_t) + grad log p(y | x_t)), and
classifier-free guidance replaces that classifier gradient by the difference of two scores of one network.
At scale 1 both aim at the exact conditional p(x | y); above 1 both sharpen towards p(y | x)^scale p(x).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from core.diffusion import EpsFn, EpsModel
from core.schedules import Schedule

LogProbFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # log_p_y(x_t, t) -> (N,) log p(y | x_t)


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


def classifier_guidance(eps_model: EpsModel, log_p_y: LogProbFn, schedule: Schedule,
                        y: torch.Tensor | int | None = None, scale: float | torch.Tensor = 1.0) -> EpsModel:
    """eps_hat(x, t) = eps(x, t, y) - scale sqrt(1 - alpha_bar_t) grad_x log p(y | x_t) (Dhariwal & Nichol 2021,
    Algorithm 2 and eq. 14; with DDPM's ancestral step it is Algorithm 1 to first order in beta_t).

    ``log_p_y(x, t) -> (N,)`` is the log-probability of the *requested* class at the noised points (a noisy
    classifier through ``classifier_log_prob``, or the exact ``GaussianMixture.log_p_y``); its gradient comes
    from autograd, so samplers may keep running under ``torch.no_grad``. ``y`` are labels for ``eps_model``
    itself: None runs its unconditional pass (the paper's "unconditional model + classifier"); labels guide a
    conditional model further. Works for fractional t (the continuous solvers) through ``alpha_bar_at``.
    ``scale`` is one number or one per row (N,), so a sweep over scales runs as one batch.
    """
    per_row = isinstance(scale, torch.Tensor) and scale.dim() > 0
    if not per_row:
        scale = float(scale)

    def guided(x: torch.Tensor, t: torch.Tensor, y_call: torch.Tensor | None = None) -> torch.Tensor:
        labels = y if y_call is None else y_call
        eps = eps_model(x, t) if labels is None else eps_model(x, t, labels)
        if not per_row and scale == 0.0:
            return eps
        tt = torch.as_tensor(t, device=x.device)
        tt = tt.expand(x.shape[0]) if tt.dim() == 0 else tt
        with torch.enable_grad():
            xg = x.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(log_p_y(xg, tt).sum(), xg)
        sigma = (1.0 - schedule.alpha_bar_at(tt.detach().cpu())).sqrt().to(x.device, x.dtype)
        w = scale.to(x.device, x.dtype).reshape(-1, *([1] * (x.dim() - 1))) if per_row else scale
        return eps - w * sigma.reshape(-1, *([1] * (x.dim() - 1))) * grad

    return guided


def classifier_log_prob(classifier: Callable[..., torch.Tensor], y: torch.Tensor | int) -> LogProbFn:
    """log p(y | x_t) = log_softmax(classifier(x_t, t))[y] of a time-conditioned classifier (their sec. 4.1),
    for the requested labels y (one int or (N,))."""

    def log_p(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        logits = classifier(x, t)
        labels = torch.as_tensor(y, device=x.device).long().reshape(-1).expand(x.shape[0])
        return F.log_softmax(logits.float(), dim=1).gather(1, labels[:, None]).squeeze(1)

    return log_p
