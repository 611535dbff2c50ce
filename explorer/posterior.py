"""The posterior the tutorial stops at, for any pair of timesteps, and the 1-D Gaussians a pixel sees.

Bayes' rule with the forward step and the closed form,

    q(x_{t'} | x_t, x_0) ∝ q(x_t | x_{t'}, x_0) · q(x_{t'} | x_0),   t' < t,
    q(x_t | x_{t'}) = N(√(ᾱ_t/ᾱ_{t'}) x_{t'}, (1 − ᾱ_t/ᾱ_{t'}) I),   q(x_{t'} | x_0) = N(√ᾱ_{t'} x_0, (1 − ᾱ_{t'}) I),

is again Gaussian. For t' = t − 1 it is Ho et al.'s N(μ̃_t, β̃_t I) (:func:`explorer.diffusion.q_posterior`);
for a DDIM jump t → t' it is Song et al.'s q_σ with σ = σ_t(η = 1) (eq. 7 and 16), i.e. the DDIM step with
η = 1 and the true x_0 (:func:`explorer.diffusion.ddim_step`). Every coefficient comes from those functions.
No gradio import.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .diffusion import ddim_sigma, ddim_step, predict_eps, q_posterior
from .schedules import Schedule


def q_posterior_between(x_t: torch.Tensor, x0: torch.Tensor, t: int, t_prev: int,
                        s: Schedule) -> tuple[torch.Tensor, float]:
    """Mean and variance of q(x_{t_prev} | x_t, x_0) for any 0 ≤ t_prev < t.

    t_prev = t − 1: μ̃_t and β̃_t (Ho et al. eq. 6–7). Otherwise Song et al. eq. 7 with σ = σ_t(η = 1):
    mean = √ᾱ_prev x_0 + √(1 − ᾱ_prev − σ²) · (x_t − √ᾱ_t x_0)/√(1 − ᾱ_t),  var = σ².
    """
    t, t_prev = int(t), int(t_prev)
    if t_prev == t - 1:
        mean, var = q_posterior(x_t, x0, t, s)
        return mean, float(s.posterior_variance[t])
    eps = predict_eps(x_t, t, x0, s)  # the noise that explains x_t given x_0
    step = ddim_step(x_t, t, t_prev, eps, s, eta=1.0, noise=torch.zeros_like(x_t), clip_x0=False)
    return step.terms["x0_hat"] + step.terms["eps"], ddim_sigma(t, t_prev, s, 1.0) ** 2


def gaussian_density(x: np.ndarray, mean: float, std: float) -> np.ndarray | None:
    """N(x; mean, std²) = exp(−(x − mean)² / (2 std²)) / (std √(2π)); None for std = 0 (a point mass at mean)."""
    if std <= 0:
        return None
    x = np.asarray(x, dtype=np.float64)
    return np.exp(-0.5 * ((x - mean) / std) ** 2) / (std * math.sqrt(2.0 * math.pi))
