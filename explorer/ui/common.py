"""Shared UI helpers: readable errors as gr.Error, client-sent image paths, output image files."""

from __future__ import annotations

import functools
import inspect
import os
import tempfile
from pathlib import Path

import gradio as gr
from gradio.processing_utils import encode_pil_to_bytes, hash_bytes
from gradio.utils import get_upload_folder

from .. import render
from ..data import ASSETS_DIR
from ..model import CheckpointError

USER_ERRORS = (ValueError, CheckpointError)  # their messages are written for the user
UI_MAX_T = 10_000  # the browser receives every step's numbers; beyond this the page gets slow
LATEX = [{"left": "$$", "right": "$$", "display": True}, {"left": "$", "right": "$", "display": False}]


def user_errors(fn):
    """Run a handler; a readable ValueError (bad image, bad values) or CheckpointError becomes a gr.Error.

    Works for plain and generator (streaming) handlers.
    """
    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def gen_wrapper(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except gr.Error:
                raise
            except USER_ERRORS as e:
                raise gr.Error(str(e)) from None

        return gen_wrapper

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except USER_ERRORS as e:
            raise gr.Error(str(e)) from None

    return wrapper


def served_image_path(path):
    """A client-sent image path, accepted only inside Gradio's upload folder or the bundled assets (else ValueError).

    Gradio checks a file path sent by a client only when the payload carries ``meta: {"_type": "gradio.FileData"}``;
    an untagged ``{"path": "/any/file.png"}`` reaches the handler unchecked, so every handler that opens a
    client-sent path calls this first. None passes through (the handlers say "no image given").
    """
    if path is None:
        return None
    resolved = Path(path).resolve()
    roots = (Path(get_upload_folder()).resolve(), ASSETS_DIR.resolve())
    if not any(resolved.is_relative_to(root) for root in roots):
        raise ValueError("This image is not available: upload it, draw one or pick a bundled example.")
    return str(resolved)


def image_file(image, name: str = "image") -> str:
    """A PIL image, uint8 array or [-1, 1] tensor for a gr.Image output, saved as PNG where Gradio keeps outputs; returns the path.

    Gradio's own saving (``save_pil_to_cache``) names the file after the hash of its bytes and rewrites it in
    place, so identical pictures asked for together (a class on the same example and seed) rewrite a file that
    others are downloading, and some of them got a truncated image (tests/test_concurrency.py). Same name and
    folder here, but the bytes go to a temporary file that then replaces the final one atomically: a reader gets
    the old file or the new one, whole. A path inside Gradio's folder is served as it is, not copied again.
    """
    payload = encode_pil_to_bytes(render.to_pil(image), "png")
    folder = Path(get_upload_folder()) / hash_bytes(payload)
    folder.mkdir(parents=True, exist_ok=True)
    fd, part = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".part")
    with os.fdopen(fd, "wb") as f:
        f.write(payload)
    os.chmod(part, 0o644)  # as Gradio's own files (mkstemp makes them private)
    final = folder / f"{name}.png"
    os.replace(part, final)
    return str(final)
