"""The text-to-image recipes, a miniature Stable Diffusion, through the one training loop (core.training.train):

- ``train_clip``: the small CLIP (core.models.text) on (digit, caption) pairs with the symmetric contrastive loss
  (Radford et al. 2021); the captions come from the digits themselves (core.data.captions).
- ``train_ldm_text``: a UNet with cross-attention on the frozen CLIP's token embeddings, trained with L_simple on
  the latents of a frozen autoencoder (core.train_latent), with caption dropout: a share ``p_uncond`` of the
  prompts is the empty one, so one network learns eps(z, t, prompt) and eps(z, t) for classifier-free guidance.

Each training digit gets CAPTIONS_PER_DIGIT random captions, tokenized once; every batch picks one per digit.

    clip_result, clip_config = train_clip(load_mnist("train"))
    result, config = train_ldm_text(load_mnist("train"), autoencoder, "autoencoder-mnist", clip_result.ema_model,
                                    make_schedule("cosine"))
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from core.data.captions import MAX_PROMPT_WORDS, PAD, VOCAB_SIZE, AttributeThresholds, captions_for, tokenize
from core.data.mnist import MNIST
from core.diffusion import loss_simple
from core.models.autoencoder import Autoencoder
from core.models.text import CLIP, CLIPConfig, TextConditioned, contrastive_loss
from core.models.unet import UNet
from core.schedules import Schedule
from core.train_latent import LATENT_UNET, latent_moments
from core.train_mnist import P_UNCOND, training_record
from core.training import TrainConfig, TrainResult, train

DEFAULT_CLIP_TRAIN = TrainConfig(steps=1000, batch_size=128, lr=2e-3, warmup_steps=100, weight_decay=1e-4,
                                 ema_decay=0.99)
DEFAULT_LDM_TEXT_TRAIN = TrainConfig(steps=2200, batch_size=128, lr=2e-3, warmup_steps=100, ema_decay=0.999)
CAPTIONS_PER_DIGIT = 8
TEXT_UNET = dataclasses.replace(LATENT_UNET, num_classes=0, attention_heads=4)


def caption_tokens(data: MNIST, thresholds: AttributeThresholds, per_digit: int = CAPTIONS_PER_DIGIT,
                   seed: int = 0) -> torch.Tensor:
    """(N, per_digit, MAX_PROMPT_WORDS) word ids: ``per_digit`` random captions of each digit, tokenized."""
    g = torch.Generator().manual_seed(seed)
    texts = [captions_for(data.images, data.labels, thresholds, g) for _ in range(per_digit)]
    ids = torch.stack([tokenize(t, MAX_PROMPT_WORDS)[0] for t in texts], dim=1)
    return ids


def _pick_captions(tokens: torch.Tensor, idx: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    choice = torch.randint(0, tokens.shape[1], (len(idx),), generator=g, device=tokens.device)
    return tokens[idx, choice]


def train_clip(data: MNIST, cfg: TrainConfig = DEFAULT_CLIP_TRAIN, config: CLIPConfig | None = None,
               thresholds: AttributeThresholds | None = None,
               callback: Callable[[dict[str, Any]], bool | None] | None = None,
               state_path: str | Path | None = None, save_every: int = 0) -> tuple[TrainResult, dict[str, Any]]:
    """Contrastive training of the small CLIP on ``data`` and its captions; returns the result and the checkpoint
    config (with the attribute thresholds the captions used, so prompts mean the same later)."""
    config = config or CLIPConfig(vocab_size=VOCAB_SIZE, max_len=MAX_PROMPT_WORDS)
    thresholds = thresholds or AttributeThresholds.from_data(data.images, data.labels)
    device = torch.device(cfg.device)
    tokens = caption_tokens(data, thresholds, seed=cfg.seed).to(device)
    images = data.images.to(device)
    torch.manual_seed(cfg.seed)
    model = CLIP(config)

    def next_batch(step: int, g: torch.Generator):
        idx = torch.randint(0, len(images), (cfg.batch_size,), generator=g, device=device)
        return images[idx], _pick_captions(tokens, idx, g)

    def loss_fn(net: nn.Module, batch, g: torch.Generator) -> torch.Tensor:
        x, ids = batch
        return contrastive_loss(net.encode_text(ids), net.encode_image(x), net.logit_scale)

    result = train(model, loss_fn, next_batch, cfg, callback=callback, state_path=state_path, save_every=save_every)
    record = {
        "family": "clip",
        "model": {"type": "clip", **config.to_dict()},
        "schedule": None,
        "objective": "symmetric contrastive loss of CLIP (Radford et al. 2021) on (digit, caption) pairs",
        "captions": {"thresholds": thresholds.to_dict(), "per_digit": CAPTIONS_PER_DIGIT},
        "training": training_record(cfg, result),
        "data": {"kind": "mnist", "source": data.source, "n": len(data)},
    }
    return result, record


@torch.no_grad()
def zero_shot_accuracy(clip: CLIP, images: torch.Tensor, labels: torch.Tensor) -> float:
    """The share of ``images`` whose nearest prompt among "the digit 0" .. "the digit 9" names their label."""
    prompts = tokenize([f"the digit {d}" for d in range(10)], clip.config.max_len)[0]
    text = clip.eval().encode_text(prompts)
    read = torch.cat([(clip.encode_image(images[i:i + 500]) @ text.T).argmax(1) for i in range(0, len(images), 500)])
    return float((read == labels).float().mean())


def train_ldm_text(data: MNIST, autoencoder: Autoencoder, autoencoder_name: str, clip: CLIP, schedule: Schedule,
                   cfg: TrainConfig = DEFAULT_LDM_TEXT_TRAIN, thresholds: AttributeThresholds | None = None,
                   clip_record: dict[str, Any] | None = None, unet: Any = None, p_uncond: float = P_UNCOND,
                   callback: Callable[[dict[str, Any]], bool | None] | None = None,
                   state_path: str | Path | None = None, save_every: int = 0) -> tuple[TrainResult, dict[str, Any]]:
    """L_simple on the scaled latents of ``autoencoder`` with the UNet reading the frozen ``clip``'s tokens
    (Rombach et al. 2022, eq. 3); ``clip_record`` is the CLIP checkpoint's config (its thresholds and name are
    kept in this config). Returns the result and the checkpoint config."""
    device = torch.device(cfg.device)
    autoencoder = autoencoder.to(device).eval().requires_grad_(False)
    thresholds = thresholds or (AttributeThresholds.from_dict(clip_record["captions"]["thresholds"]) if clip_record
                                else AttributeThresholds.from_data(data.images, data.labels))
    tokens = caption_tokens(data, thresholds, seed=cfg.seed + 1).to(device)
    shape = autoencoder.latent_shape
    mu, sigma = latent_moments(autoencoder, data.images.to(device))
    factor = autoencoder.config.scale_factor
    torch.manual_seed(cfg.seed)
    net_cfg = dataclasses.replace(unet or TEXT_UNET, in_channels=shape[0], image_size=shape[1], T=schedule.T,
                                  num_classes=0, context_dim=clip.context_dim)
    model = TextConditioned(UNet(net_cfg), clip)

    def next_batch(step: int, g: torch.Generator):
        n = cfg.batch_size
        idx = torch.randint(0, len(mu), (n,), generator=g, device=device)
        z = factor * (mu[idx] + sigma[idx] * torch.randn((n, *shape), generator=g, device=device))
        ids = _pick_captions(tokens, idx, g)
        drop = torch.rand((n,), generator=g, device=device) < p_uncond
        return z, torch.where(drop[:, None], torch.full_like(ids, PAD), ids)

    def loss_fn(net: nn.Module, batch, g: torch.Generator) -> torch.Tensor:
        z, ids = batch
        return loss_simple(net, schedule, z, y=ids, generator=g)

    result = train(model, loss_fn, next_batch, cfg, callback=callback, state_path=state_path, save_every=save_every)
    config = {
        "family": "ldm-text",
        "model": {"type": "unet", **net_cfg.to_dict(), "gradient_checkpointing": False},
        "text_encoder": clip.config.to_dict(),
        "schedule": schedule.to_config(),
        "objective": ("L_simple on the autoencoder's scaled latents, the UNet attending to the frozen CLIP's tokens "
                      "(Rombach et al. 2022, eq. 3), with caption dropout for CFG"),
        "p_uncond": p_uncond,
        "captions": {"thresholds": thresholds.to_dict(), "per_digit": CAPTIONS_PER_DIGIT,
                     "text_encoder": (clip_record or {}).get("name")},
        "autoencoder": {"name": autoencoder_name, "scale_factor": factor},
        "latent_shape": list(shape),
        "training": training_record(cfg, result),
        "data": {"kind": "mnist", "source": data.source, "n": len(data)},
    }
    return result, config
