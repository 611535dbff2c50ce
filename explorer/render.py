"""Tensors and arrays -> PIL images: upscaling, labelled strips, grids of uint8 frames.

Small, generic helpers; images in [-1, 1] are converted with
:func:`explorer.data.tensor_to_uint8` (one source of truth for the pixel mapping).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from .data import tensor_to_uint8, to_uint8

DISPLAY_SIDE = 224  # small images are upscaled (nearest neighbour) to at least this longest side
LABEL_HEIGHT = 22  # the smallest label band; bands grow with the tiles so labels stay readable when shrunk to fit
LABEL_SHARE = 1 / 6  # a label band is at least this share of the tile height
BACKGROUND = 255  # white gaps and label bands
GRID_GAP = 2
TRANSPARENT = None  # background=TRANSPARENT: gaps and label bands show the page (light or dark theme) through
LABEL_GRAY = (128, 128, 128, 255)  # label text on a transparent band: readable on white and on a dark page
HIGHLIGHT = (255, 127, 14)  # the frame around the highlighted tile (the plots' marker orange)
FONT_FILE = "DejaVuSans.ttf"  # has x̂, ε̂ and subscripts; Pillow's built-in font (the fallback) draws them as boxes


def label_font(size: int) -> ImageFont.ImageFont:
    """A scalable font of ``size`` px for labels: DejaVu Sans where the system has it, else Pillow's own."""
    try:
        return ImageFont.truetype(FONT_FILE, size)
    except OSError:
        return ImageFont.load_default(size)


def label_band_height(tile_height: int) -> int:
    """The height of the label band under tiles of this height."""
    return max(LABEL_HEIGHT, round(tile_height * LABEL_SHARE))


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
    if any(im.mode == "RGBA" for im in images):
        return "RGBA"
    return "RGB" if any(im.mode != "L" for im in images) else "L"


def _fill(mode: str, value: int | None):
    """A colour of ``mode``: a gray level, or fully transparent for None."""
    if value is None:
        return (0, 0, 0, 0)
    return value if mode == "L" else (value,) * len(mode)


def strip(images: Sequence, labels: Sequence[str] | None = None, gap: int = 2, min_side: int = 64,
          highlight: int | None = None, background: int | None = BACKGROUND) -> Image.Image:
    """Images side by side (each upscaled to ``min_side``), with an optional text label under each.

    ``highlight``: the index of a tile framed in HIGHLIGHT. ``background``: the gray level of gaps and label
    bands, or TRANSPARENT (then the image is RGBA and the labels gray).
    """
    if not images:
        raise ValueError("strip needs at least one image.")
    if labels is not None and len(labels) != len(images):
        raise ValueError(f"strip got {len(images)} images but {len(labels)} labels.")
    tiles = [upscale(to_pil(x), min_side) for x in images]
    mode = "RGBA" if background is None else "RGB" if highlight is not None else _common_mode(tiles)
    tiles = [im.convert(mode) for im in tiles]
    tile_h = max(im.height for im in tiles)
    band = label_band_height(tile_h) if labels else 0
    w = sum(im.width for im in tiles) + gap * (len(tiles) - 1)
    out = Image.new(mode, (w, tile_h + band), _fill(mode, background))
    draw = ImageDraw.Draw(out)
    font = label_font(round(band * 0.7)) if labels else None
    ink = LABEL_GRAY[: len(mode)] if background is None else _fill(mode, 0)
    x = 0
    for i, im in enumerate(tiles):
        out.paste(im, (x, 0))
        if labels:
            draw.text((x + im.width // 2, tile_h + band // 2), labels[i], fill=ink, font=font, anchor="mm")
        if i == highlight:
            width = max(2, tile_h // 40)
            draw.rectangle((x, 0, x + im.width - 1, tile_h - 1), width=width,
                           outline=HIGHLIGHT if mode == "RGB" else (*HIGHLIGHT, 255))
        x += im.width + gap
    return out


def stack(images: Sequence[Image.Image], gap: int = 6) -> Image.Image:
    """Images one above the other, left-aligned (e.g. two chain strips to compare); transparent gaps if any is RGBA."""
    if not images:
        raise ValueError("stack needs at least one image.")
    mode = _common_mode(images)
    images = [im.convert(mode) for im in images]
    w = max(im.width for im in images)
    h = sum(im.height for im in images) + gap * (len(images) - 1)
    out = Image.new(mode, (w, h), _fill(mode, None if mode == "RGBA" else BACKGROUND))
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


def grid_image(x: torch.Tensor, ncols: int | None = None) -> Image.Image:
    """A batch (B, 1, H, W) in [-1, 1] as one PNG-ready grid at native size (rows of ``ncols``, near-square by default)."""
    return to_pil(tile(to_uint8(x)[:, 0], ncols, min_side=1))
