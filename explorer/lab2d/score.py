"""Score ↔ noise, and the exact mixture as a denoiser with the network's call signature.

Tweedie / denoising score matching: for x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε, the score of the marginal is

    ∇ log q(x_t) = −E[ε | x_t] / √(1 − ᾱ_t)

so an ε-prediction network gives the learned score −ε̂ / √(1 − ᾱ_t), and an exact score s gives the ideal
ε = −√(1 − ᾱ_t) s. :class:`ExactMixtureDenoiser` is called as the network is — ``(x_t, log_snr, labels)`` —
so ``explorer.samplers.model_eps_fn`` (and with it classifier-free guidance, ``model.guided_eps``) drives the
exact mixture and the learned MLP through one and the same code path.
"""

from __future__ import annotations

import math

import torch

from . import mixture
from .mixture import GaussianMixture


def score_from_eps(eps: torch.Tensor, alpha_bar: float) -> torch.Tensor:
    """∇ log q(x_t) ≈ −ε̂ / √(1 − ᾱ_t)  (undefined at ᾱ_t = 1, the clean data)."""
    if not 0.0 <= alpha_bar < 1.0:
        raise ValueError(f"The score needs noise: ᾱ_t must be below 1 (t ≥ 1), got {alpha_bar!r}.")
    return -eps / math.sqrt(1.0 - alpha_bar)


def eps_from_score(score: torch.Tensor, alpha_bar: float) -> torch.Tensor:
    """ε = −√(1 − ᾱ_t) · ∇ log q(x_t): the noise an ideal ε-prediction returns, given the exact score."""
    return -math.sqrt(1.0 - alpha_bar) * score


def alpha_bar_of(log_snr: torch.Tensor) -> torch.Tensor:
    """ᾱ = sigmoid(λ): the inverse of λ = log(ᾱ / (1 − ᾱ)) (λ = −∞ gives ᾱ = 0 exactly)."""
    return torch.sigmoid(log_snr)


def eps_from_v(x_t: torch.Tensor, v: torch.Tensor, alpha_bar: torch.Tensor) -> torch.Tensor:
    """ε = √(1 − ᾱ) x_t + √ᾱ v, with v = √ᾱ ε − √(1 − ᾱ) x_0 (Salimans & Ho 2022).

    An ε-network whose output passes through this is exact at pure noise (ε = x_t at ᾱ = 0) and its x̂_0 stays
    bounded there, where a free ε̂ would be divided by √ᾱ ≈ 0 (a cosine schedule's last steps).
    """
    return (1 - alpha_bar).sqrt() * x_t + alpha_bar.sqrt() * v


class ExactMixtureDenoiser:
    """ε(x_t, λ, y) = −√(1 − ᾱ) ∇ log q(x_t | y) of a Gaussian mixture, with ᾱ = sigmoid(λ): the ideal denoiser.

    ``labels`` holding ``NULL_CLASS`` ask for the unconditional mixture. Returns float32 like the network.
    """

    def __init__(self, mix: GaussianMixture):
        self.mix = mix

    def __call__(self, x: torch.Tensor, log_snr: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        out = torch.empty_like(x, dtype=torch.float32)  # (B, 2)
        for lam in torch.unique(log_snr):  # the samplers send one λ per call (guidance's two passes are two calls)
            rows = log_snr == lam
            ab = float(alpha_bar_of(lam.double()))
            s_t = mixture.score(mixture.q_marginal(self.mix, ab), x[rows], labels[rows])  # (b, 2)
            out[rows] = eps_from_score(s_t, ab).float()
        return out
