"""Awkward image files, written to disk: shared by the data tests and the API/upload tests."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


def _png_bytes(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def bomb_png(width: int = 20000, height: int = 20000) -> bytes:
    """A tiny PNG whose header claims width×height 8-bit gray pixels (a decompression bomb)."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    rows = zlib.compress(b"\x00" * (width + 1) * 16)  # only a few rows of data: small on disk
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")


def write_bad_files(folder: Path) -> dict[str, Path]:
    """Files the app must refuse with a readable message."""
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    files = {
        "empty.png": b"",
        "not_an_image.png": b"this is plain text, not a picture\n" * 10,
        "truncated.png": _png_bytes(noise)[:2000],  # the full file is ~12 kB
        "bomb.png": bomb_png(),
    }
    out = {}
    for name, payload in files.items():
        path = folder / name
        path.write_bytes(payload)
        out[name] = path
    return out


def write_odd_files(folder: Path) -> dict[str, Path]:
    """Valid but unusual images the app must accept: 16-bit, RGBA, palette, CMYK, animated GIF, 1×1, huge side."""
    rng = np.random.default_rng(0)
    out = {}

    def save(name, im, **kw):
        out[name] = folder / name
        im.save(out[name], **kw)

    save("gray16.png", Image.fromarray((np.arange(40 * 30).reshape(30, 40) * 50).astype(np.uint16)))
    rgba = np.zeros((32, 32, 4), np.uint8)
    rgba[8:24, 8:24] = (255, 255, 255, 255)  # a white square on a transparent background
    save("rgba.png", Image.fromarray(rgba, "RGBA"))
    save("palette.png", Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)).convert("P"))
    save("cmyk.jpg", Image.new("CMYK", (30, 20), (0, 255, 255, 0)))
    frames = [Image.new("L", (16, 16), v) for v in (10, 200, 90)]
    save("animated.gif", frames[0], save_all=True, append_images=frames[1:], duration=100, loop=0)
    save("one_pixel.png", Image.new("RGB", (1, 1), (255, 0, 0)))
    save("large.png", Image.new("RGB", (1200, 600), (10, 120, 240)))
    return out


def write_hostile_files(folder: Path) -> dict[str, Path]:
    """More files a stranger might send: random bytes named as images, a truncated JPEG, an SVG, an APNG."""
    rng = np.random.default_rng(1)
    jpeg = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(jpeg, "JPEG", quality=90)
    apng = io.BytesIO()
    frames = [Image.new("RGB", (20, 20), colour) for colour in ((250, 0, 0), (0, 250, 0))]
    frames[0].save(apng, "PNG", save_all=True, append_images=frames[1:], duration=100, loop=0)
    files = {
        "random.png": rng.integers(0, 256, 5000, dtype=np.uint8).tobytes(),
        "random.jpg": b"\xff\xd8\xff\xe0" + rng.integers(0, 256, 5000, dtype=np.uint8).tobytes(),
        "truncated.jpg": jpeg.getvalue()[: len(jpeg.getvalue()) // 2],
        "drawing.svg": b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" '
                       b'height="10"/></svg>',
        "animated.png": apng.getvalue(),  # APNG: red first frame, then green
    }
    out = {}
    for name, payload in files.items():
        out[name] = folder / name
        out[name].write_bytes(payload)
    return out
