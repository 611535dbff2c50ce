"""The trajectory map's runs: x_t paths of several seeds and digits, DDPM against DDIM, in the digits' PCA plane.

Each seed's x_T (that of a one-sample run of the seed) starts the path of every digit under both samplers, so
the paths of one seed part by label alone, and DDPM's fresh noise against DDIM's none is the only other
difference. Both samplers visit the same spaced timesteps, at most MAP_MAX_STEPS (the map's time budget).
Deterministic; fp32. No formula of its own: :func:`explorer.samplers.reverse_loop` and
:func:`explorer.samplers.model_eps_fn`. No gradio import.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from . import checks
from .runs import initial_noise
from .samplers import model_eps_fn, reverse_loop
from .steplab import PRECISION, StepLabSettings

MAP_DIGITS = (0, 1, 7)  # the trajectory map's labels: far apart in the digits' principal components
MAP_SEEDS = 4  # the map's seeds: the run's seed and the next ones
MAP_MAX_STEPS = 20  # both samplers over the same ≤ 20 timesteps: the map in ≈ 2.5 s (fp32, busy 2-core CPU)
MAP_ETAS = {"ddpm": 1.0, "ddim": 0.0}  # η = 1: the posterior's noise, DDPM on the spaced steps (Song et al. §4.1)


@dataclass(frozen=True)
class TrajectoryMap:
    """x_t paths in 2-D, sampler -> (len(seeds) · len(digits), steps + 1, 2): x_T first, the result last.

    Row i is seed ``seeds[i // len(digits)]`` with label ``digits[i % len(digits)]``."""

    seeds: tuple[int, ...]
    digits: tuple[int, ...]
    steps: int
    paths: dict[str, np.ndarray]


def map_seeds(seed: int, count: int = MAP_SEEDS) -> tuple[int, ...]:
    """The map's seeds: ``seed`` and the next ``count − 1`` (wrapping under 2^63)."""
    return tuple((seed + i) % (checks.MAX_SEED + 1) for i in range(count))


def trajectory_map(model, lab: StepLabSettings, project, digits=MAP_DIGITS, seeds: int = MAP_SEEDS) -> TrajectoryMap:
    """The x_t paths of every (seed, digit) under DDPM and DDIM over the same timesteps, mapped to 2-D; fp32.

    Each seed's x_T is that of a one-sample run of the seed and starts every digit's path under both samplers,
    so the paths of a seed part by label alone. DDPM is ancestral sampling with the posterior's noise over the
    run's spaced timesteps (DDIM with η = 1; every step when T ≤ MAP_MAX_STEPS), DDIM is deterministic (η = 0);
    the run's schedule, spacing and w. ``project`` maps (B, H, W) images to (B, 2)
    (:meth:`explorer.pca.PCABasis.project`).
    """
    run = lab.run
    seeds = map_seeds(run.seed, seeds)
    steps = min(run.num_steps(), MAP_MAX_STEPS)
    labels = torch.tensor(digits, dtype=torch.long).repeat(len(seeds))  # (S·D,): every digit for each seed
    x_T = torch.cat([initial_noise(seed, 1)[0] for seed in seeds]).repeat_interleave(len(digits), 0)  # (S·D, 1, H, W)
    eps_fn = model_eps_fn(model, run.schedule, labels, run.guidance, PRECISION)
    paths = {}
    for sampler, eta in MAP_ETAS.items():
        generator = torch.Generator().manual_seed(seeds[0])  # DDPM's fresh noise, the same on every call
        kwargs = run.replace(sampler="ddim", steps=steps, eta=eta).loop_kwargs()
        points = [project(x_T[:, 0].numpy())]
        for step in reverse_loop(eps_fn, run.schedule, x_T, generator, **kwargs):
            points.append(project(step.x_prev[:, 0].numpy()))
        paths[sampler] = np.stack(points, axis=1)  # (S·D, steps + 1, 2)
    return TrajectoryMap(seeds, tuple(digits), steps, paths)
