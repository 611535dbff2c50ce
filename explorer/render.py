"""Tensors and arrays -> PIL images: upscaling, labelled strips, grids of uint8 frames.

Small, generic helpers; images in [-1, 1] are converted with
:func:`explorer.data.tensor_to_uint8` (one source of truth for the pixel mapping).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw

from .data import tensor_to_uint8

DISPLAY_SIDE = 224  # small images are upscaled (nearest neighbour) to at least this longest side
LABEL_HEIGHT = 14
BACKGROUND = 255  # white gaps and label bands
GRID_GAP = 2


def to_pil(x) -> Image.Image:
    """A tensor in [-1, 1] ((1, C, H, W) or (C, H, W)), a uint8 array (H, W[, 3]) or a PIL image -> PIL."""
    if isinstance(x, Image.Image):
        return x
    if isinstance(x, torch.Tensor):
        x = tensor_to_uint8(x)
    arr = np.asarray(x)
    if arr.dtype != np.uint8:
        raise TypeError(f"to_pil expects a tensor in [-1, 1] or a uint8 array, got dtype {arr.dtype}.")
    return Image.fromarray(arr, "L" if arr.ndim == 2 else "RGB")


def upscale_factor(size: tuple[int, int], min_side: int = DISPLAY_SIDE) -> int:
    """The whole-number factor that brings the longest side to at least ``min_side`` (1 if already big)."""
    return max(1, -(-min_side // max(size)))


def upscale(im: Image.Image, min_side: int = DISPLAY_SIDE) -> Image.Image:
    """Enlarge by a whole-number factor with nearest neighbour, so each pixel stays a crisp square."""
    k = upscale_factor(im.size, min_side)
    return im if k == 1 else im.resize((im.width * k, im.height * k), Image.Resampling.NEAREST)


def display(x, min_side: int = DISPLAY_SIDE) -> Image.Image:
    """to_pil + upscale: what the app shows for one image."""
    return upscale(to_pil(x), min_side)


def _common_mode(images: Sequence[Image.Image]) -> str:
    return "RGB" if any(im.mode != "L" for im in images) else "L"


def strip(images: Sequence, labels: Sequence[str] | None = None, gap: int = 2, min_side: int = 64) -> Image.Image:
    """Images side by side (each upscaled to ``min_side``), with an optional text label under each."""
    if not images:
        raise ValueError("strip needs at least one image.")
    if labels is not None and len(labels) != len(images):
        raise ValueError(f"strip got {len(images)} images but {len(labels)} labels.")
    tiles = [upscale(to_pil(x), min_side) for x in images]
    mode = _common_mode(tiles)
    tiles = [im.convert(mode) for im in tiles]
    w = sum(im.width for im in tiles) + gap * (len(tiles) - 1)
    h = max(im.height for im in tiles) + (LABEL_HEIGHT if labels else 0)
    out = Image.new(mode, (w, h), BACKGROUND if mode == "L" else (BACKGROUND,) * 3)
    draw = ImageDraw.Draw(out)
    x = 0
    for i, im in enumerate(tiles):
        out.paste(im, (x, 0))
        if labels:
            draw.text((x + 2, im.height + 1), labels[i], fill=0 if mode == "L" else (0, 0, 0))
        x += im.width + gap
    return out


def stack(images: Sequence[Image.Image], gap: int = 6) -> Image.Image:
    """Images one above the other, left-aligned (e.g. two chain strips to compare)."""
    if not images:
        raise ValueError("stack needs at least one image.")
    mode = _common_mode(images)
    images = [im.convert(mode) for im in images]
    w = max(im.width for im in images)
    h = sum(im.height for im in images) + gap * (len(images) - 1)
    out = Image.new(mode, (w, h), BACKGROUND if mode == "L" else (BACKGROUND,) * 3)
    y = 0
    for im in images:
        out.paste(im, (0, y))
        y += im.height + gap
    return out


def grid_columns(n: int) -> int:
    """Columns of a near-square grid of n images (16 -> 4, 2 -> 2, 5 -> 3)."""
    return max(1, math.ceil(math.sqrt(n)))


def tile(frames: np.ndarray, ncols: int | None = None, gap: int = GRID_GAP, min_side: int = DISPLAY_SIDE) -> np.ndarray:
    """(B, H, W) uint8 -> one (rows·H, cols·W) uint8 grid with white gaps, upscaled (nearest) to >= min_side."""
    b, h, w = frames.shape
    ncols = ncols or grid_columns(b)
    if ncols < 1:
        raise ValueError(f"A grid needs at least one column, got {ncols}.")
    nrows = -(-b // ncols)
    out = np.full((nrows * (h + gap) - gap, ncols * (w + gap) - gap), BACKGROUND, dtype=np.uint8)
    for i in range(b):
        r, c = divmod(i, ncols)
        out[r * (h + gap): r * (h + gap) + h, c * (w + gap): c * (w + gap) + w] = frames[i]
    k = upscale_factor((out.shape[1], out.shape[0]), min_side)
    return out if k == 1 else out.repeat(k, axis=0).repeat(k, axis=1)
