"""Shared image pieces of the tabs: the chosen x₀, x_t with its one fixed ε, the forward chain strip,
and turning an upload or a drawing into x₀. No layout here; the tabs wire these into their events.
"""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .. import checks, data, readouts, render
from ..diffusion import q_sample
from ..schedules import Schedule
from .common import image_file, served_image_path, user_errors

DEFAULT_FRAMES = 8  # frames of the forward chain strip
MAX_FRAMES = 32


def load_x0(image_path) -> torch.Tensor:
    """The chosen image as x_0, a (1, C, H, W) tensor in [-1, 1]."""
    return data.image_to_tensor(data.load_image(served_image_path(image_path)))


def xt_at(x0: torch.Tensor, s: Schedule, seed, t) -> torch.Tensor:
    """x_t with the one fixed ε of (seed, shape)."""
    t = readouts.check_timestep(s, t)
    return q_sample(x0, t, data.fixed_noise(seed, tuple(x0.shape)), s)


def float32_b64(x: torch.Tensor) -> str:
    """A (1, C, H, W) float32 tensor as base64 of little-endian float32 in H, W, C order (canvas order), for the
    page's scripts that draw x_t (static/common.js, ddpmQSample)."""
    arr = x[0].permute(1, 2, 0).contiguous().numpy().astype("<f4")
    return base64.b64encode(arr.tobytes()).decode("ascii")


def chain_strip(x0: torch.Tensor, s: Schedule, seed, frames) -> Image.Image:
    """K evenly spaced frames x_t, t = 0 … T, all from the same ε."""
    k = checks.whole_number("The number of chain frames", frames, 2, MAX_FRAMES)
    ts = np.unique(np.rint(np.linspace(0, s.T, k)).astype(int))
    xs = [xt_at(x0, s, seed, int(t)) for t in ts]
    return render.strip(xs, labels=[f"t={t}" for t in ts], min_side=84 if x0.shape[-1] < 84 else 1)


@user_errors
def load_upload(file_path):
    """An uploaded file -> the validated, normalised x_0 image (or a readable error)."""
    if file_path is None:
        raise ValueError("No file was uploaded.")
    return image_file(data.load_image(Path(served_image_path(file_path))), "x0")


@user_errors
def load_sketch(sketch):
    """The sketchpad drawing -> an MNIST-style 28×28 digit."""
    composite = sketch.get("composite") if isinstance(sketch, dict) else sketch
    return image_file(data.sketch_to_image(composite), "x0")
