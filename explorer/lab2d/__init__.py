"""The 2-D lab's math and data (no gradio, no plotly): point-cloud presets, exact Gaussian mixtures under the
forward process, a small noise-level-conditioned MLP denoiser, its training loop and sample-quality metrics.

Every formula of the forward and reverse process comes from explorer.schedules / diffusion / samplers, which
work on points of shape (B, 2) as on images.
"""
