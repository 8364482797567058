"""The networks, one family per file: embeddings, the 2D MLP denoiser (mlp), the UNet for digits and latents with
optional cross-attention (unet), the MNIST judge (classifier), the noisy classifiers that guide (noisy_classifier),
the baselines (gan, vae), latent diffusion's first stage (autoencoder), the small CLIP and its text conditioning
(text), and the input-shape check shared by the denoisers (shapes)."""
