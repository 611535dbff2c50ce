"""ImageInput: the gr.Image for pictures users give, with the app's readable messages for unreadable files.

In a module of its own because Gradio writes a typing stub (``image_input.pyi``, git-ignored) next to the
module of every Component subclass when it is imported.
"""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from .. import data
from .common import served_image_path


class ImageInput(gr.Image):
    """A gr.Image for pictures users give. A file that Gradio's own preprocessing cannot open (0 bytes, random
    bytes, a decompression bomb), sent straight to the API, gets the app's readable message, the one the Upload
    tab gives, instead of Gradio's bare "Error"."""

    is_template = True  # the browser draws it as a plain gr.Image

    def preprocess(self, payload):
        try:
            return super().preprocess(payload)
        except gr.Error:
            raise
        except Exception:  # noqa: BLE001 — PIL raises many kinds; load_image says which problem it is
            if payload is None or not getattr(payload, "path", None):
                raise gr.Error("No image was given.") from None
            try:
                data.load_image(Path(served_image_path(payload.path)))  # no file outside the app's folders
            except ValueError as e:
                raise gr.Error(str(e)) from None
            raise gr.Error("This file could not be read as an image.") from None
