"""Stable Diffusion in miniature: a KL autoencoder (28×28×1 → 4×7×7), a tiny CLIP-like text encoder and a
latent UNet with cross-attention, trained here on MNIST captions made from the pixels (no gradio imports)."""
