"""What a denoiser's input must look like: one message for an x of the wrong shape, which tells a latent model's
user to sample in the latent (and decode), and a pixel model's user that latents belong elsewhere."""

from __future__ import annotations

IMAGE_SHAPE = (1, 28, 28)


def check_input_shape(expected: tuple[int, ...], got: tuple[int, ...]) -> None:
    """Raise ValueError unless ``got`` is (N, *expected)."""
    if tuple(got[1:]) == tuple(expected) and len(got) == len(expected) + 1:
        return
    hint = ""
    if tuple(expected) != IMAGE_SHAPE and tuple(got[1:]) == IMAGE_SHAPE:
        hint = ("; this is a latent diffusion model: draw x_T in its latent shape (config['latent_shape']) and decode "
                "the result with p.autoencoder.decode")
    elif tuple(expected) == IMAGE_SHAPE:
        hint = "; this model denoises images: a latent belongs to a latent diffusion model (ldm-*)"
    raise ValueError(f"this model denoises inputs of shape (N, {', '.join(map(str, expected))}); got "
                     f"{tuple(got)}{hint}")
