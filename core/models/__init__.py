"""The networks, one family per file: embeddings, the 2D MLP denoiser (mlp), the MNIST UNet (unet), the MNIST
judge (classifier), and the baselines (gan, vae)."""
