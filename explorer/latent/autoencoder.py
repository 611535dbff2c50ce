"""The "VAE": a KL-regularised autoencoder 28×28×1 → 4×7×7 (SD's AutoencoderKL in miniature).

Encoder E(x) gives the posterior q(z | x) = N(μ, σ²) per latent element; the diffusion model works on
z · scaling_factor, where scaling_factor = 1 / std(z) over the training digits (SD's 0.18215,
measured here), so the latents it sees have unit variance. Decoder D(z) gives pixel logits;
x̂ = 2 · sigmoid(logits) − 1 ∈ [-1, 1]. Training loss (per image):
    L = BCE(sigmoid(logits), (x + 1) / 2) · 784 + β · KL(q(z | x) ‖ N(0, I))
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

LATENT_SHAPE = (4, 7, 7)
LOGVAR_RANGE = (-30.0, 20.0)  # as diffusers' DiagonalGaussianDistribution


@dataclass(frozen=True)
class AutoencoderConfig:
    latent_channels: int = 4
    channels: tuple[int, ...] = (16, 32, 64)  # width at 28×28, 14×14 and 7×7
    kl_weight: float = 0.01  # β

    @classmethod
    def from_dict(cls, d: dict) -> "AutoencoderConfig":
        return cls(**{**d, "channels": tuple(d["channels"])})


@dataclass
class DiagonalGaussian:
    """q(z | x) = N(mean, exp(logvar)) elementwise, shape (B, 4, 7, 7)."""

    mean: torch.Tensor
    logvar: torch.Tensor

    @property
    def std(self) -> torch.Tensor:
        return torch.exp(0.5 * self.logvar)

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """z = μ + σ · ε."""
        return self.mean + self.std * torch.randn(self.mean.shape, generator=generator)

    def kl(self) -> torch.Tensor:
        """KL(N(μ, σ²) ‖ N(0, 1)) = ½ Σ (μ² + σ² − 1 − log σ²), per image (B,)."""
        return 0.5 * (self.mean**2 + self.logvar.exp() - 1.0 - self.logvar).flatten(1).sum(1)


class Autoencoder(nn.Module):
    def __init__(self, config: AutoencoderConfig = AutoencoderConfig()):
        super().__init__()
        self.config = config
        c0, c1, c2 = config.channels
        zc = config.latent_channels
        self.encoder = nn.Sequential(
            nn.Conv2d(1, c0, 3, padding=1), nn.SiLU(),
            nn.Conv2d(c0, c1, 3, stride=2, padding=1), nn.SiLU(),  # 14×14
            nn.Conv2d(c1, c1, 3, padding=1), nn.SiLU(),
            nn.Conv2d(c1, c2, 3, stride=2, padding=1), nn.SiLU(),  # 7×7
            nn.Conv2d(c2, c2, 3, padding=1), nn.SiLU(),
            nn.Conv2d(c2, 2 * zc, 1),  # mean and log-variance
        )
        self.decoder = nn.Sequential(
            nn.Conv2d(zc, c2, 3, padding=1), nn.SiLU(),
            nn.Conv2d(c2, c2, 3, padding=1), nn.SiLU(),
            nn.Upsample(scale_factor=2, mode="nearest"),  # 14×14
            nn.Conv2d(c2, c1, 3, padding=1), nn.SiLU(),
            nn.Conv2d(c1, c1, 3, padding=1), nn.SiLU(),
            nn.Upsample(scale_factor=2, mode="nearest"),  # 28×28
            nn.Conv2d(c1, c0, 3, padding=1), nn.SiLU(),
            nn.Conv2d(c0, 1, 3, padding=1),  # pixel logits
        )

    def encode(self, x: torch.Tensor) -> DiagonalGaussian:
        """q(z | x) for images x (B, 1, 28, 28) in [-1, 1]."""
        mean, logvar = self.encoder(x).chunk(2, dim=1)  # (B, 4, 7, 7) each
        return DiagonalGaussian(mean, logvar.clamp(*LOGVAR_RANGE))

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)  # (B, 1, 28, 28)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """x̂ = 2 · sigmoid(D(z)) − 1 ∈ [-1, 1], (B, 1, 28, 28), from unscaled latents z (B, 4, 7, 7)."""
        return 2.0 * torch.sigmoid(self.decoder(z)) - 1.0

    def loss(self, x: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict]:
        """BCE reconstruction (summed over pixels) + β · KL, averaged over the batch."""
        q = self.encode(x)
        logits = self.decode_logits(q.sample(generator))
        rec = F.binary_cross_entropy_with_logits(logits, (x + 1) / 2, reduction="none").flatten(1).sum(1)  # (B,)
        kl = q.kl()
        return (rec + self.config.kl_weight * kl).mean(), {"rec": float(rec.mean().detach()), "kl": float(kl.mean().detach())}


def psnr(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """PSNR = 10 log₁₀(1 / MSE) per image, pixels in [0, 1] (x, y in [-1, 1]); (B,) in dB."""
    mse = (((x - y) / 2) ** 2).flatten(1).mean(1)
    return 10 * torch.log10(1.0 / mse.clamp_min(1e-10))
