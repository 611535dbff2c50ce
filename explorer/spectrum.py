"""Radially averaged power spectra: why diffusion generates coarse-to-fine.

With the unitary normalisation P(f) = |DFT(x)(f)|² / (H·W), white noise of variance v has the flat
expected spectrum P(f) = v at every frequency, so the noise in x_t = √ᾱ_t x_0 + √(1-ᾱ_t) ε sits on the
flat line 1 - ᾱ_t while the signal's spectrum is ᾱ_t · P_{x_0}(f). Natural images (digits too) have most
power at low frequencies: as ᾱ_t falls, the fine frequencies sink under the noise first and are the last
to be decided when sampling (Dieleman 2024, "Diffusion is spectral autoregression").

Frequencies are counted in cycles per image; the radial bin k holds every f = (f_y, f_x) with
round(|f|) = k, for k = 0 … min(H, W) // 2 (bins beyond the Nyquist radius are left out).
No torch or gradio: numpy on (..., H, W) arrays.
"""

from __future__ import annotations

import numpy as np


def radial_bins(h: int, w: int) -> np.ndarray:
    """(H, W) int: the radial frequency bin round(|f|) of each DFT coefficient, f in cycles per image."""
    fy = np.fft.fftfreq(h) * h  # (H,) cycles per image
    fx = np.fft.fftfreq(w) * w  # (W,)
    return np.rint(np.hypot(fy[:, None], fx[None, :])).astype(int)


def radial_power_spectrum(x: np.ndarray) -> np.ndarray:
    """P(k) = mean over round(|f|) = k of |DFT(x)(f)|² / (H·W), for k = 0 … min(H, W) // 2.

    x: (..., H, W) -> (..., K) float64 with K = min(H, W) // 2 + 1. White noise of variance v gives P(k) ≈ v.
    """
    x = np.asarray(x, dtype=np.float64)
    h, w = x.shape[-2:]
    power = np.abs(np.fft.fft2(x)) ** 2 / (h * w)  # (..., H, W)
    k = min(h, w) // 2 + 1
    bins = radial_bins(h, w).ravel()  # (H·W,)
    inside = bins < k
    averaging = np.zeros((h * w, k))  # (H·W, K): 1 / (count of bin k) where a coefficient falls in bin k
    averaging[np.flatnonzero(inside), bins[inside]] = 1.0
    averaging /= averaging.sum(axis=0)
    return power.reshape(*power.shape[:-2], h * w) @ averaging  # (..., K)


def crossover_frequency(signal_power: np.ndarray, noise_power: float) -> int | None:
    """The first frequency bin k ≥ 1 where the signal's power drops under the noise's flat level; None if never.

    signal_power: (K,) spectrum of the signal part (ᾱ_t · P_{x̂_0} for x_t); noise_power: 1 − ᾱ_t.
    Bin 0 (the image's mean) is left out.
    """
    below = np.nonzero(np.asarray(signal_power)[1:] < noise_power)[0]
    return int(below[0]) + 1 if below.size else None
