"""Bundled example images, image <-> tensor conversion, and safe decoding of uploads.

Images enter the math layer as float32 tensors in [-1, 1] of shape (1, C, H, W):
C = 1 for grayscale (the MNIST digits), C = 3 for colour photos. Every upload
goes through :func:`load_image`, which refuses what it cannot decode safely with
an :class:`ImageInputError` whose message a user can read (the UI shows it as a
``gr.Error``).
"""

from __future__ import annotations

import io
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from . import checks
from .diffusion import X0_RANGE

ASSETS_DIR = Path(__file__).resolve().parent.parent / "assets"
EXAMPLE_FILES = ("mnist_0.png", "mnist_2.png", "mnist_3.png", "mnist_5.png", "mnist_7.png", "astronaut.png")
EXAMPLES = tuple(ASSETS_DIR / name for name in EXAMPLE_FILES)
DEFAULT_EXAMPLE = EXAMPLES[0]

MAX_SIDE = 256  # larger images are downscaled to this longest side before noising
MAX_UPLOAD_BYTES = 10 * 1024 * 1024  # the app's upload cap (app.py passes it to Gradio)
MAX_PIXELS = 50_000_000  # refuse to decode anything bigger (decompression bombs)

# PIL's own guard raises DecompressionBombError at 2x this; we check sizes first anyway.
Image.MAX_IMAGE_PIXELS = MAX_PIXELS


class ImageInputError(ValueError):
    """An image that cannot be used, with a message meant for the user."""


def _open(source) -> Image.Image:
    """Open ``source`` (path, bytes or PIL image) lazily, turning decoder errors into ImageInputError."""
    if isinstance(source, Image.Image):
        return source
    if isinstance(source, (bytes, bytearray)):
        if len(source) == 0:
            raise ImageInputError("The uploaded file is empty (0 bytes).")
        if len(source) > MAX_UPLOAD_BYTES:
            raise ImageInputError(f"The file is larger than {MAX_UPLOAD_BYTES // (1024 * 1024)} MB.")
        fp = io.BytesIO(source)
    else:
        path = Path(source)
        if not path.is_file():
            raise ImageInputError(f"No such image file: {path.name}.")
        size = path.stat().st_size
        if size == 0:
            raise ImageInputError("The uploaded file is empty (0 bytes).")
        if size > MAX_UPLOAD_BYTES:
            raise ImageInputError(f"The file is larger than {MAX_UPLOAD_BYTES // (1024 * 1024)} MB.")
        fp = path
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return Image.open(fp)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageInputError("The image has too many pixels to decode safely.") from None
    except UnidentifiedImageError:
        raise ImageInputError("This file is not an image that can be read (PNG, JPEG, GIF, WebP, BMP, TIFF).") from None
    except OSError as e:
        raise ImageInputError(f"The image could not be read: {e}.") from None


def _to_8bit(im: Image.Image) -> Image.Image:
    """16-bit / 32-bit integer and float images to 8-bit 'L' (scaled by the type's range, not stretched)."""
    arr = np.asarray(im)
    if im.mode.startswith("I;16") or (im.mode == "I" and arr.max(initial=0) > 255):
        arr = arr.astype(np.float64) / 65535.0 * 255.0
    elif im.mode == "F":
        arr = arr.astype(np.float64)
        arr = np.nan_to_num(arr, nan=0.0, posinf=0.0, neginf=0.0)
        if arr.max(initial=0) <= 1.0:  # float images are usually in [0, 1]
            arr = arr * 255.0
    return Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), "L")


def _flatten_alpha(im: Image.Image) -> Image.Image:
    """Composite a transparent image onto black or white, whichever keeps its content visible.

    Bright content (a white digit, say) goes on black as in MNIST; dark content on white.
    """
    rgba = np.asarray(im.convert("RGBA"), dtype=np.float64) / 255.0
    rgb, alpha = rgba[..., :3], rgba[..., 3:]
    if alpha.sum() > 0:
        luminance = (rgb @ [0.299, 0.587, 0.114])[..., None]
        bright = float((luminance * alpha).sum() / alpha.sum()) > 0.5
    else:
        bright = False
    background = 0.0 if bright else 1.0
    out = rgb * alpha + background * (1.0 - alpha)
    return Image.fromarray(np.clip(np.rint(out * 255.0), 0, 255).astype(np.uint8), "RGB")


def normalize_image(im: Image.Image) -> Image.Image:
    """Any decoded PIL image -> 'L' or 'RGB', first frame only, EXIF-rotated, longest side <= MAX_SIDE."""
    try:
        im.seek(0)  # animated GIF / APNG / multi-page TIFF: the first frame
    except EOFError:
        pass
    w, h = im.size
    if w < 1 or h < 1:
        raise ImageInputError("The image has no pixels.")
    if w * h > MAX_PIXELS:
        raise ImageInputError(f"The image is {w}×{h} pixels; at most {MAX_PIXELS:,} pixels can be decoded safely.")
    if im.format == "JPEG":
        im.draft("RGB", (MAX_SIDE, MAX_SIDE))  # let libjpeg decode at a reduced size
    try:
        im.load()
        im = ImageOps.exif_transpose(im)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageInputError("The image has too many pixels to decode safely.") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise ImageInputError(f"The image file is damaged or truncated and cannot be decoded ({e}).") from None

    if im.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        im = _to_8bit(im)
    elif im.mode == "1":
        im = im.convert("L")
    elif im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (im.mode == "P" and "transparency" in im.info):
        im = _flatten_alpha(im)
    elif im.mode not in ("L", "RGB"):
        im = im.convert("RGB")  # P, CMYK, YCbCr, LAB, HSV, ...
    if im.mode == "RGB":
        arr = np.asarray(im)
        if np.array_equal(arr[..., 0], arr[..., 1]) and np.array_equal(arr[..., 1], arr[..., 2]):
            im = im.convert("L")  # gray stored as RGB: keep one channel
    if max(im.size) > MAX_SIDE:
        im = im.copy()
        im.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
    return im


def load_image(source) -> Image.Image:
    """Decode and validate an image from a path, bytes or PIL image -> 'L' or 'RGB', longest side <= MAX_SIDE."""
    if source is None:
        raise ImageInputError("No image given: pick an example, upload an image or draw one.")
    return normalize_image(_open(source))


def sketch_to_image(composite) -> Image.Image:
    """A sketchpad drawing (RGBA, dark strokes on a transparent or white canvas) -> MNIST-style 28×28 'L'.

    Ink is what differs from the white/transparent background; it becomes white on black, like the
    training digits, cropped to its bounding box and centred with a margin as in MNIST.
    """
    if composite is None:
        raise ImageInputError("Draw something on the sketchpad first.")
    rgba = np.asarray(Image.fromarray(np.asarray(composite)).convert("RGBA"), dtype=np.float64) / 255.0
    darkness = 1.0 - rgba[..., :3] @ [0.299, 0.587, 0.114]
    ink = np.clip(darkness * rgba[..., 3], 0.0, 1.0)
    ys, xs = np.nonzero(ink > 0.05)
    if len(ys) == 0:
        raise ImageInputError("The sketchpad is empty: draw a digit first.")
    ink = ink[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    side = max(ink.shape)
    square = np.zeros((side, side))
    oy, ox = (side - ink.shape[0]) // 2, (side - ink.shape[1]) // 2
    square[oy : oy + ink.shape[0], ox : ox + ink.shape[1]] = ink
    digit = Image.fromarray(np.rint(square * 255).astype(np.uint8), "L").resize((20, 20), Image.Resampling.LANCZOS)
    out = Image.new("L", (28, 28), 0)
    out.paste(digit, (4, 4))  # MNIST: a 20×20 digit in a 28×28 field
    return out


def image_to_tensor(im: Image.Image) -> torch.Tensor:
    """An 'L' or 'RGB' PIL image -> float32 tensor (1, C, H, W) in [-1, 1]: x = u / 127.5 - 1."""
    arr = np.asarray(im, dtype=np.float32)
    if arr.ndim == 2:
        arr = arr[None]  # (1, H, W)
    else:
        arr = arr.transpose(2, 0, 1)  # (C, H, W)
    lo, hi = X0_RANGE
    return torch.from_numpy(arr / 255.0 * (hi - lo) + lo).unsqueeze(0)  # (1, C, H, W)


def to_uint8(x: torch.Tensor, value_range: float = 1.0) -> np.ndarray:
    """Values in [-value_range, value_range] -> uint8 0..255, same shape: clip, scale, round half to even in float32.

    The one pixel mapping of the app (x_t, x̂_0 over [-1, 1]; ε̂ over a wider range). The browser's
    JavaScript repeats exactly these float32 steps, so both give identical pixels.
    """
    x = x.detach().to(torch.float32)
    if value_range != 1.0:
        x = x / value_range
    lo, hi = X0_RANGE
    return ((x.clamp(lo, hi) - lo) * (255.0 / (hi - lo))).round().to(torch.uint8).numpy()


def tensor_to_uint8(x: torch.Tensor) -> np.ndarray:
    """One image, a (1, C, H, W) or (C, H, W) tensor in [-1, 1] -> uint8 array (H, W) or (H, W, 3) (see to_uint8)."""
    arr = to_uint8(x[0] if x.ndim == 4 else x)  # (C, H, W)
    return arr[0] if arr.shape[0] == 1 else arr.transpose(1, 2, 0)


@lru_cache(maxsize=32)
def _noise(seed: int, shape: tuple[int, ...]) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=generator, dtype=torch.float32)


def fixed_noise(seed, shape) -> torch.Tensor:
    """The ONE ε ~ N(0, I) for this (seed, shape): the same tensor every call, so x_t never flickers.

    The cached tensor is shared; treat it as read-only.
    """
    return _noise(checks.seed(seed), tuple(int(n) for n in shape))
