"""Gaussian mixtures in 2-D and what the forward process does to them, exactly.

A mixture p(x_0) = Σ_k π_k N(x_0; μ_k, Σ_k) pushed through q(x_t | x_0) = N(√ᾱ_t x_0, (1 − ᾱ_t) I) stays a
mixture (the convolution of two Gaussians is Gaussian):

    q(x_t) = Σ_k π_k N(x_t; √ᾱ_t μ_k, ᾱ_t Σ_k + (1 − ᾱ_t) I)

so its density and its score ∇ log q(x_t) are known in closed form at every t. The 2-D lab draws them beside
the learned ones, and the oracle test runs the samplers on this exact score.

Each component carries a class label, so a labelled mixture also gives the exact class-conditional
q(x_t | y) (the components of class y, their weights renormalised) for classifier-free guidance.
Computations are float64.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..model import NULL_CLASS


@dataclass(frozen=True)
class GaussianMixture:
    """Σ_k π_k N(μ_k, Σ_k) in 2-D; ``labels[k]`` is component k's class (0, 1, ...)."""

    weights: torch.Tensor  # (K,) float64, sums to 1
    means: torch.Tensor  # (K, 2)
    covs: torch.Tensor  # (K, 2, 2), symmetric positive definite
    labels: torch.Tensor  # (K,) int64

    @property
    def num_classes(self) -> int:
        return int(self.labels.max()) + 1

    def sample(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """n points x_0 ~ p(x_0) (float32, (n, 2)) and the class of the component each came from ((n,))."""
        k = torch.multinomial(self.weights, n, replacement=True, generator=generator)  # (n,)
        z = torch.randn(n, 2, generator=generator, dtype=torch.float64)  # (n, 2)
        chol = torch.linalg.cholesky(self.covs)  # (K, 2, 2)
        x = self.means[k] + (chol[k] @ z[:, :, None])[:, :, 0]  # (n, 2)
        return x.float(), self.labels[k]


def gaussian_mixture(weights, means, covs, labels) -> GaussianMixture:
    """A GaussianMixture from nested lists; weights are normalised."""
    w = torch.as_tensor(np.asarray(weights, dtype=np.float64))
    return GaussianMixture(w / w.sum(), torch.as_tensor(np.asarray(means, dtype=np.float64)),
                           torch.as_tensor(np.asarray(covs, dtype=np.float64)),
                           torch.as_tensor(np.asarray(labels, dtype=np.int64)))


def q_marginal(mix: GaussianMixture, alpha_bar: float) -> GaussianMixture:
    """q(x_t) = Σ_k π_k N(√ᾱ_t μ_k, ᾱ_t Σ_k + (1 − ᾱ_t) I): the mixture after the forward process to ᾱ_t."""
    ab = float(alpha_bar)
    eye = torch.eye(2, dtype=torch.float64)
    return GaussianMixture(mix.weights, math.sqrt(ab) * mix.means, ab * mix.covs + (1.0 - ab) * eye, mix.labels)


def _component_log_probs(mix: GaussianMixture, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
    """log π_k + log N(x; μ_k, Σ_k) for every point and component, (B, K); components of other classes get −inf
    where ``labels`` (B,) names a class (``NULL_CLASS`` keeps all: the unconditional mixture)."""
    d = x.to(torch.float64)[:, None, :] - mix.means[None]  # (B, K, 2)
    prec = torch.linalg.inv(mix.covs)  # (K, 2, 2)
    maha = torch.einsum("bki,kij,bkj->bk", d, prec, d)  # (B, K)
    logdet = torch.logdet(mix.covs)  # (K,)
    log_w = torch.log(mix.weights)[None] - 0.5 * (maha + logdet[None]) - math.log(2 * math.pi)  # (B, K)
    if labels is None:
        return log_w
    keep = (mix.labels[None] == labels[:, None]) | (labels[:, None] == NULL_CLASS)  # (B, K)
    # renormalise the kept weights: log p(x | y) = logsumexp over class y of (log π_k − log Σ_{k∈y} π_k + log N_k)
    class_mass = torch.where(keep, mix.weights[None], torch.zeros_like(mix.weights[None])).sum(1, keepdim=True)
    return torch.where(keep, log_w - torch.log(class_mass), torch.full_like(log_w, -math.inf))


def log_density(mix: GaussianMixture, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
    """log p(x) = log Σ_k π_k N(x; μ_k, Σ_k) for x of shape (B, 2); float64 (B,). With ``labels``, log p(x | y)."""
    return torch.logsumexp(_component_log_probs(mix, x, labels), dim=1)


def score(mix: GaussianMixture, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
    """∇_x log p(x) = Σ_k r_k(x) Σ_k⁻¹ (μ_k − x), r_k the posterior responsibility of component k; (B, 2) float64."""
    x = x.to(torch.float64)
    r = torch.softmax(_component_log_probs(mix, x, labels), dim=1)  # (B, K)
    prec = torch.linalg.inv(mix.covs)  # (K, 2, 2)
    pull = torch.einsum("kij,bkj->bki", prec, mix.means[None] - x[:, None, :])  # (B, K, 2)
    return (r[:, :, None] * pull).sum(1)  # (B, 2)
