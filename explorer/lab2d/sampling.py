"""Reverse sampling of point clouds with the app's samplers, keeping every particle's path.

The loops are explorer.samplers' ``ddpm_loop`` / ``ddim_loop`` (x̂_0 unclipped: points are not confined to the
image range [-1, 1]); the denoiser is ``samplers.model_eps_fn`` around the MLP or around the exact mixture
(:class:`explorer.lab2d.score.ExactMixtureDenoiser`), with classifier-free guidance w.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .. import checks
from ..model import NULL_CLASS
from ..samplers import SAMPLERS, ddim_loop, ddpm_loop, model_eps_fn
from ..schedules import Schedule

MAX_PATH_FRAMES = 101  # frames kept per path (start included): DDPM's T steps are thinned to this many


@dataclass(frozen=True)
class Paths:
    """Particles' positions along a reverse run: frames[i] at timestep ts[i]; ts[0] = start (T), ts[-1] = 0."""

    ts: list[int]
    frames: torch.Tensor  # (F, N, 2) float32

    @property
    def end(self) -> torch.Tensor:
        return self.frames[-1]  # (N, 2)


def eps_fn_for(denoiser, s: Schedule, labels: torch.Tensor, guidance: float = 0.0):
    """ε̂(x_t, t) of the MLP or the exact mixture, guided with scale w (labels may be NULL_CLASS)."""
    return model_eps_fn(denoiser, s, labels, guidance=guidance, precision="fp32")


def class_labels(n: int, label: int | None) -> torch.Tensor:
    """(n,) labels: all ``label``, or the null class (unconditional) for None."""
    return torch.full((n,), NULL_CLASS if label is None else int(label), dtype=torch.int64)


def reverse_paths(denoiser, s: Schedule, n: int, seed: int, sampler: str = "ddim", steps: int = 50,
                  label: int | None = None, guidance: float = 0.0, max_frames: int = MAX_PATH_FRAMES) -> Paths:
    """Run ``sampler`` from x_T ~ N(0, I) (``seed``) for n particles; keep ≤ ``max_frames`` evenly spaced frames."""
    sampler = checks.one_of("sampler", sampler, SAMPLERS)
    generator = torch.Generator().manual_seed(checks.seed(seed))
    x = torch.randn(n, 2, generator=generator)  # (N, 2) x_T
    eps_fn = eps_fn_for(denoiser, s, class_labels(n, label), guidance)
    if sampler == "ddpm":
        loop = ddpm_loop(eps_fn, s, x, generator, clip_x0=False)
    else:
        loop = ddim_loop(eps_fn, s, x, generator, steps=steps, clip_x0=False)
    ts, frames = [s.T], [x]
    for record in loop:
        ts.append(record.t_prev)
        frames.append(record.x_prev)
    keep = np.unique(np.rint(np.linspace(0, len(frames) - 1, min(max_frames, len(frames)))).astype(int))
    return Paths([ts[i] for i in keep], torch.stack([frames[i] for i in keep]))


def sample_points(denoiser, s: Schedule, n: int, seed: int, sampler: str = "ddim", steps: int = 50,
                  label: int | None = None, guidance: float = 0.0) -> torch.Tensor:
    """The end points x_0 (N, 2) of a reverse run."""
    return reverse_paths(denoiser, s, n, seed, sampler, steps, label, guidance, max_frames=2).end
