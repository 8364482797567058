"""Diffusion Lab's engine (torch; never imports Streamlit).

schedules -> diffusion (forward process, conversions, losses, the bound) -> samplers (one public
sample_<name> per method in SAMPLERS, behind sample()) with guidance (classifier-free) and langevin;
analytic (exact Gaussian mixtures), likelihood, metrics, evaluate; training (the one loop) and its recipes
train_2d, train_mnist, train_baselines, train_latent (latent diffusion), train_text (CLIP, text to image);
checkpoints (safetensors + JSON, load_pretrained); data/ and models/.
The CLI is ``python -m core``.
"""
