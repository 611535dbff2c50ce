"""What the 2-D lab's page needs, computed once per setting, and the same values at one t for the API.

The page receives x_0, the one fixed ε and the schedule's √ᾱ_t, √(1 − ᾱ_t) once, and draws
x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε for any t itself (float32, as torch's ``q_sample``); it also receives the
density of q(x_t) (exact mixtures) and the score field on a grid at ``FRAMES`` timesteps, and shows the frame
nearest to t. :func:`points_at` and :func:`field_at` return what the page draws at t (tests compare them).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

import numpy as np
import torch

from .. import readouts
from ..data import fixed_noise
from ..diffusion import q_sample
from ..schedules import Schedule
from . import mixture
from .data import VIEW, PointCloud
from .sampling import Paths, class_labels, eps_fn_for
from .score import score_from_eps

FRAMES = 41  # density and score frames per scene, t evenly spaced over 0..T
DENSITY_GRID = 48  # density cells per side over [-VIEW, VIEW]
ARROW_GRID = 17  # arrows per side


@dataclass(frozen=True)
class Field:
    """The score on the arrow grid at timestep t: learned −ε̂/√(1 − ᾱ_t) and, for mixtures, exact and the error."""

    t: int
    grid: torch.Tensor  # (G², 2) arrow tails
    learned: torch.Tensor | None  # (G², 2) float32
    exact: torch.Tensor | None  # (G², 2) float32
    error: torch.Tensor | None  # learned − exact


def b64_f32(x: torch.Tensor | np.ndarray) -> str:
    """An array as base64 of little-endian float32 (C order): how the page receives arrays."""
    arr = np.ascontiguousarray(np.asarray(x, dtype="<f4"))
    return base64.b64encode(arr.tobytes()).decode("ascii")


def grid_points(n: int) -> torch.Tensor:
    """n×n cell centres over [-VIEW, VIEW]², row by row from the top (y = +VIEW) as a canvas is; (n², 2) float32."""
    c = (torch.arange(n, dtype=torch.float64) + 0.5) / n * 2 * VIEW - VIEW
    ys, xs = torch.meshgrid(c.flip(0), c, indexing="ij")
    return torch.stack([xs.reshape(-1), ys.reshape(-1)], 1).float()


def frame_ts(s: Schedule, lowest: int = 0) -> list[int]:
    """FRAMES timesteps evenly spaced over lowest..T (distinct, increasing)."""
    return sorted({int(v) for v in np.rint(np.linspace(lowest, s.T, FRAMES))})


def nearest_frame(ts: list[int], t: int) -> int:
    """Index of the frame timestep closest to t (the earlier one on a tie), as the page picks it."""
    return int(np.argmin(np.abs(np.asarray(ts) - t)))


def noise_for(cloud: PointCloud, seed: int) -> torch.Tensor:
    """The one fixed ε (N, 2) for this seed and number of points."""
    return fixed_noise(seed, tuple(cloud.points.shape))


def points_at(cloud: PointCloud, s: Schedule, seed: int, t) -> torch.Tensor:
    """x_t (N, 2) float32 of every point, with the fixed ε: what the page draws at t."""
    t = readouts.check_timestep(s, t)
    return q_sample(cloud.points, t, noise_for(cloud, seed), s)


def field_at(cloud: PointCloud, s: Schedule, t: int, denoiser=None) -> Field:
    """The score field on the arrow grid at t ≥ 1 (undefined on the clean data, t = 0)."""
    grid = grid_points(ARROW_GRID)
    ab = float(s.alpha_bars[t])
    learned = exact = error = None
    if denoiser is not None:
        eps = eps_fn_for(denoiser, s, class_labels(len(grid), None))(grid, t)  # (G², 2)
        learned = score_from_eps(eps, ab).float()
    if cloud.mixture is not None:
        exact = mixture.score(mixture.q_marginal(cloud.mixture, ab), grid).float()
        if learned is not None:
            error = learned - exact
    return Field(t, grid, learned, exact, error)


def log_density_frames(mix: mixture.GaussianMixture, s: Schedule, ts: list[int]) -> torch.Tensor:
    """log q(x_t) on the density grid at each frame t, (F, DENSITY_GRID²) float32."""
    grid = grid_points(DENSITY_GRID)
    return torch.stack([mixture.log_density(mixture.q_marginal(mix, s.alpha_bars[t]), grid) for t in ts]).float()


def scene(cloud: PointCloud, s: Schedule, seed: int, denoiser=None) -> dict:
    """Everything the page needs to draw any t of this cloud, seed, schedule and model (JSON-ready)."""
    eps = noise_for(cloud, seed)
    out = {
        "T": s.T, "view": VIEW, "n": len(cloud.points),
        "x0": b64_f32(cloud.points), "eps": b64_f32(eps),
        "labels": None if cloud.labels is None else cloud.labels.tolist(),
        # exact float64 coefficients; the page rounds them to float32 as torch does
        "coef": {"sqrt_alpha_bar": s.sqrt_alpha_bars.tolist(),
                 "sqrt_one_minus_alpha_bar": s.sqrt_one_minus_alpha_bars.tolist()},
        "text": {k: readouts.formatted_numbers(s)[k] for k in ("alpha_bar", "log_snr")},
        "density": None, "arrows": None,
    }
    if cloud.mixture is not None:
        ts = frame_ts(s)
        out["density"] = {"ts": ts, "size": DENSITY_GRID, "frames": b64_f32(log_density_frames(cloud.mixture, s, ts))}
    if denoiser is not None or cloud.mixture is not None:
        ts = frame_ts(s, lowest=1)
        fields = [field_at(cloud, s, t, denoiser) for t in ts]
        stack = lambda key: (None if getattr(fields[0], key) is None
                             else b64_f32(torch.stack([getattr(f, key) for f in fields])))
        out["arrows"] = {"ts": ts, "size": ARROW_GRID, "grid": b64_f32(grid_points(ARROW_GRID)),
                         **{key: stack(key) for key in ("learned", "exact", "error")}}
    return out


def paths_payload(paths: dict[str, Paths], labels: list | None = None) -> dict:
    """Reverse paths of several samplers for the page: timesteps and frames (F, N, 2) as float32 base64."""
    return {"labels": labels, "runs": {name: {"ts": p.ts, "frames": b64_f32(p.frames), "f": p.frames.shape[0],
                                               "n": p.frames.shape[1]} for name, p in paths.items()}}
