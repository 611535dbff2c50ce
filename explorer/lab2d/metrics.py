"""Distances between two point clouds (sample quality of the 2-D lab)."""

from __future__ import annotations

import torch

MMD_BANDWIDTHS = (0.05, 0.1, 0.2, 0.5, 1.0)  # RBF widths, from the scale of one mode to that of the whole cloud


def _check_pair(a: torch.Tensor, b: torch.Tensor) -> None:
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"Both point clouds must have shape (N, D) with the same D, got {tuple(a.shape)} and {tuple(b.shape)}.")
    if not (torch.isfinite(a).all() and torch.isfinite(b).all()):
        raise ValueError("The point clouds hold NaN or infinite coordinates.")


def sliced_wasserstein(a: torch.Tensor, b: torch.Tensor, projections: int = 256, seed: int = 0) -> float:
    """SW_1(a, b) = E_θ W_1(θᵀa, θᵀb) over random unit directions θ; each 1-D W_1 is the mean gap of sorted values.

    Both clouds must hold the same number of points.
    """
    _check_pair(a, b)
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"Sliced Wasserstein here compares clouds of equal size, got {a.shape[0]} and {b.shape[0]}.")
    g = torch.Generator().manual_seed(seed)
    theta = torch.randn(a.shape[1], projections, generator=g, dtype=torch.float64)
    theta = theta / theta.norm(dim=0, keepdim=True)  # (D, P) unit directions
    pa = (a.double() @ theta).sort(dim=0).values  # (N, P)
    pb = (b.double() @ theta).sort(dim=0).values
    return float((pa - pb).abs().mean())


def mmd(a: torch.Tensor, b: torch.Tensor, bandwidths=MMD_BANDWIDTHS) -> float:
    """√MMD² (biased, V-statistic) with k(x, y) = Σ_h exp(−‖x − y‖² / (2h²)) over the bandwidths h."""
    _check_pair(a, b)
    a, b = a.double(), b.double()

    def k(x, y):
        d2 = torch.cdist(x, y).pow(2)  # (N, M)
        return sum(torch.exp(-d2 / (2 * h * h)) for h in bandwidths)

    mmd2 = k(a, a).mean() + k(b, b).mean() - 2 * k(a, b).mean()
    return float(mmd2.clamp_min(0).sqrt())
