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


def chain_timesteps(s: Schedule, frames) -> np.ndarray:
    """The K evenly spaced timesteps of the chain strip, 0 … T."""
    k = checks.whole_number("The number of chain frames", frames, 2, MAX_FRAMES)
    return np.unique(np.rint(np.linspace(0, s.T, k)).astype(int))


def nearest_frame(ts: np.ndarray, t) -> int | None:
    """The index of the chain frame nearest to timestep t (None when t is None)."""
    return None if t is None else int(np.argmin(np.abs(ts - int(t))))


def chain_strip(x0: torch.Tensor, s: Schedule, seed, frames, t=None) -> Image.Image:
    """K evenly spaced frames x_t, t = 0 … T, all from the same ε; the frame nearest ``t`` is framed.

    Gaps and label bands are transparent, so the strip sits on the page's light or dark background.
    """
    ts = chain_timesteps(s, frames)
    xs = [xt_at(x0, s, seed, int(t_k)) for t_k in ts]
    return render.strip(xs, labels=[f"t = {t_k}" for t_k in ts], min_side=84 if x0.shape[-1] < 84 else 1,
                        highlight=nearest_frame(ts, t), background=render.TRANSPARENT)


@user_errors
def load_upload(file_path):
    """An uploaded file -> the validated, normalised x_0 image (or a readable error)."""
    if file_path is None:
        raise ValueError("No file was uploaded.")
    return image_file(data.load_image(Path(served_image_path(file_path))), "x0")


@user_errors
def upload_note(file_path) -> str:
    """What happened to an upload's size: 'Uploaded 512×384 px; resized to 256×192 px …' (empty if unreadable).

    A path outside the app's folders is refused (ValueError), as by every handler that opens a client's path.
    """
    if file_path is None:
        return ""
    path = Path(served_image_path(file_path))
    try:
        with Image.open(path) as original:
            w, h = original.size
        used = data.load_image(path).size
    except (ValueError, OSError, TypeError):  # load_upload reports what is wrong with the file
        return ""
    if used == (w, h):
        return f"Uploaded {w}×{h} px, used at full size, scaled to [−1, 1]."
    return (f"Uploaded {w}×{h} px; resized to {used[0]}×{used[1]} px (longest side at most {data.MAX_SIDE} px) "
            "before noising, and scaled to [−1, 1].")


@user_errors
def load_sketch(sketch):
    """The sketchpad drawing -> an MNIST-style 28×28 digit."""
    composite = sketch.get("composite") if isinstance(sketch, dict) else sketch
    return image_file(data.sketch_to_image(composite), "x0")
