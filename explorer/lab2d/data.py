"""Point-cloud data for the 2-D lab: presets, a word rendered with Pillow, and the ink of a drawing.

Every preset lives in roughly [-2, 2]² (x_T ~ N(0, I) fills about [-3, 3]², the view the lab draws) and is
deterministic for a seed. The Gaussian-mixture presets also carry their exact mixture (explorer.lab2d.mixture),
and labels (one class per component group) for classifier-free guidance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from .. import checks
from .mixture import GaussianMixture, gaussian_mixture

PRESETS = ("two_moons", "swiss_roll", "ring8", "blobs3", "checkerboard", "word")
PRESET_LABELS = {
    "two_moons": "Two moons",
    "swiss_roll": "Swiss roll",
    "ring8": "Ring of 8 Gaussians (2 classes)",
    "blobs3": "Three tilted Gaussians (3 classes)",
    "checkerboard": "Checkerboard",
    "word": "The word “DDPM”",
}
DRAWING = "drawing"  # not a preset: the points come from the user's sketch
WORD = "DDPM"
MAX_POINTS = 20_000  # points sent to or asked of the lab; beyond this the page and the API get slow
MIN_INK_PIXELS = 30  # fewer inked pixels than this is a dot, not a shape
MIN_INK_EXTENT = 8  # the ink must span at least this many pixels along its longer side
VIEW = 3.0  # the lab draws [-VIEW, VIEW]²


@dataclass(frozen=True)
class PointCloud:
    """x_0 points (N, 2) float32, their class labels (N,) int64 or None, and the exact mixture if there is one."""

    points: torch.Tensor
    labels: torch.Tensor | None = None
    mixture: GaussianMixture | None = None


def _rotation(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s], [s, c]])


def ring8_mixture() -> GaussianMixture:
    """Eight isotropic Gaussians (σ = 0.12) on a circle of radius 1.6; neighbours alternate between class 0 and 1."""
    angles = 2 * math.pi * np.arange(8) / 8
    means = 1.6 * np.stack([np.cos(angles), np.sin(angles)], 1)
    return gaussian_mixture([1] * 8, means, [np.eye(2) * 0.12**2] * 8, [k % 2 for k in range(8)])


def blobs3_mixture() -> GaussianMixture:
    """Three elongated, tilted Gaussians of unequal weight (full covariances), one class each."""
    means = [(-1.0, -0.7), (1.0, -0.7), (0.0, 1.0)]
    covs = [_rotation(a) @ np.diag([s1**2, s2**2]) @ _rotation(a).T
            for a, s1, s2 in ((0.6, 0.45, 0.12), (-0.6, 0.45, 0.12), (0.0, 0.5, 0.15))]
    return gaussian_mixture([0.3, 0.3, 0.4], means, covs, [0, 1, 2])


MIXTURES = {"ring8": ring8_mixture, "blobs3": blobs3_mixture}


def _two_moons(n: int, rng: np.random.Generator) -> np.ndarray:
    upper = rng.random(n) < 0.5
    a = rng.random(n) * math.pi
    x = np.where(upper, np.cos(a), 1.0 - np.cos(a))
    y = np.where(upper, np.sin(a), 0.5 - np.sin(a))
    pts = np.stack([x - 0.5, y - 0.25], 1) * 1.3 + rng.normal(0, 0.05, (n, 2))
    return pts


def _swiss_roll(n: int, rng: np.random.Generator) -> np.ndarray:
    u = 1.5 * math.pi * (1 + 2 * rng.random(n))  # angle (as sklearn's make_swiss_roll)
    pts = np.stack([u * np.cos(u), u * np.sin(u)], 1) / 7.0
    return pts + rng.normal(0, 0.04, (n, 2))


def _checkerboard(n: int, rng: np.random.Generator) -> np.ndarray:
    """Uniform on the black squares of a 4×4 board over [-2, 2]²."""
    cells = np.array([(i, j) for i in range(4) for j in range(4) if (i + j) % 2 == 0])
    c = cells[rng.integers(len(cells), size=n)]
    return (c + rng.random((n, 2))) - 2.0


@lru_cache(maxsize=4)
def _word_ink(word: str) -> np.ndarray:
    """The (row, col) pixels of ``word`` rendered in Pillow's built-in font, 64 px high (no font file needed)."""
    font = ImageFont.load_default(size=64)
    left, top, right, bottom = font.getbbox(word)
    im = Image.new("L", (right - left + 8, bottom - top + 8), 0)
    ImageDraw.Draw(im).text((4 - left, 4 - top), word, fill=255, font=font)
    return np.argwhere(np.asarray(im) > 127)


def ink_to_points(ink_rc: np.ndarray, n: int, rng: np.random.Generator, half_width: float = 2.0) -> np.ndarray:
    """n points uniform over the inked pixels (each a unit square), centred and scaled so the longer side spans
    2·half_width; image rows grow downwards, y upwards."""
    pick = ink_rc[rng.integers(len(ink_rc), size=n)] + rng.random((n, 2))  # (n, 2) as (row, col)
    xy = np.stack([pick[:, 1], -pick[:, 0]], 1)
    lo, hi = ink_rc.min(0), ink_rc.max(0) + 1
    centre = np.array([(lo[1] + hi[1]) / 2, -(lo[0] + hi[0]) / 2])
    scale = 2 * half_width / max(hi - lo)
    return (xy - centre) * scale


def make_points(preset: str, n: int, seed: int) -> PointCloud:
    """n points of a preset, deterministic for (preset, n, seed); mixtures also return labels and the mixture."""
    preset = checks.one_of("preset", preset, PRESETS)
    n = checks.whole_number("The number of points", n, 1, MAX_POINTS)
    seed = checks.seed(seed)
    if preset in MIXTURES:
        mix = MIXTURES[preset]()
        points, labels = mix.sample(n, torch.Generator().manual_seed(seed))
        return PointCloud(points, labels, mix)
    rng = np.random.default_rng(seed)
    if preset == "two_moons":
        pts = _two_moons(n, rng)
    elif preset == "swiss_roll":
        pts = _swiss_roll(n, rng)
    elif preset == "checkerboard":
        pts = _checkerboard(n, rng)
    else:
        pts = ink_to_points(_word_ink(WORD), n, rng, half_width=2.0)
    return PointCloud(torch.from_numpy(pts).float())


def drawing_ink(composite) -> np.ndarray:
    """The inked (row, col) pixels of a sketchpad drawing (dark strokes on a white or transparent canvas).

    Raises ValueError for an empty canvas or a drawing too small to be a shape (a dot).
    """
    if composite is None:
        raise ValueError("Draw a shape on the sketchpad first.")
    arr = np.asarray(composite)
    if arr.ndim not in (2, 3) or arr.size == 0 or arr.shape[0] > 4096 or arr.shape[1] > 4096:
        raise ValueError("The drawing must be an image of at most 4096×4096 pixels.")
    rgba = np.asarray(Image.fromarray(arr.astype(np.uint8)).convert("RGBA"), dtype=np.float64) / 255.0
    ink = (1.0 - rgba[..., :3] @ [0.299, 0.587, 0.114]) * rgba[..., 3]  # darkness where painted
    rc = np.argwhere(ink > 0.3)
    if len(rc) == 0:
        raise ValueError("The sketchpad is empty: draw a shape first.")
    extent = (rc.max(0) - rc.min(0) + 1).max()
    if len(rc) < MIN_INK_PIXELS or extent < MIN_INK_EXTENT:
        raise ValueError("The drawing is a single dot: draw a shape with some extent (a curve, a letter, a spiral).")
    return rc


def drawing_points(composite, n: int = 2000, seed: int = 0) -> torch.Tensor:
    """A drawing's ink as n points (N, 2) float32, scaled into [-2, 2]² like the presets."""
    n = checks.whole_number("The number of points", n, 1, MAX_POINTS)
    return torch.from_numpy(ink_to_points(drawing_ink(composite), n, np.random.default_rng(checks.seed(seed)))).float()


def check_points(points) -> torch.Tensor:
    """Points sent by a person or the API ([[x, y], ...]) as a float32 (N, 2) tensor, bounded and finite."""
    if isinstance(points, torch.Tensor):
        points = points.tolist()
    if not isinstance(points, (list, tuple)) or len(points) == 0:
        raise ValueError("The points must be a non-empty list of [x, y] pairs.")
    if len(points) > MAX_POINTS:
        raise ValueError(f"At most {MAX_POINTS:,} points are accepted, got {len(points):,}.")
    try:
        arr = np.asarray(points, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError("The points must be a list of [x, y] pairs of numbers.") from None
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError(f"The points must be [x, y] pairs, got an array of shape {arr.shape}.")
    if not np.isfinite(arr).all():
        raise ValueError("The points hold NaN or infinite coordinates.")
    if np.abs(arr).max() > 10 * VIEW:
        raise ValueError(f"The points must lie within ±{10 * VIEW:g} (the lab shows ±{VIEW:g}).")
    return torch.from_numpy(arr).float()
