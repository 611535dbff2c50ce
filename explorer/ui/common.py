"""Shared UI helpers: schedule controls, and turning readable ValueErrors into gr.Error."""

from __future__ import annotations

import functools
import inspect
import math
import os
import tempfile
from pathlib import Path

import gradio as gr
from gradio.processing_utils import encode_pil_to_bytes, hash_bytes
from gradio.utils import get_upload_folder

from .. import render
from ..data import ASSETS_DIR
from ..model import CheckpointError
from ..schedules import DEFAULT_BETAS, DEFAULT_COSINE_S, DEFAULT_T, SCHEDULE_NAMES, Schedule, make_schedule

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


def _number(label: str, v):
    if v is None or isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ValueError(f"{label} must be a number, got {v!r}.")
    return v


def schedule_from_controls(family, steps, beta_start, beta_end, cosine_s, zero_terminal_snr) -> Schedule:
    """make_schedule from the raw control values: T = ``steps``; β for linear-type families, s for cosine."""
    T = steps
    if family not in SCHEDULE_NAMES:
        raise ValueError(f"Unknown schedule {family!r}; choose one of: {', '.join(SCHEDULE_NAMES)}.")
    T = _number("T", T)
    if isinstance(T, float) and not math.isfinite(T):
        raise ValueError(f"T must be a whole number of steps, got {T}.")
    if T > UI_MAX_T:
        raise ValueError(f"T must be at most {UI_MAX_T} steps in the app, got {T:g}.")
    if family == "cosine":
        return make_schedule("cosine", T, s=_number("cosine s", cosine_s), zero_terminal_snr=bool(zero_terminal_snr))
    return make_schedule(family, T, beta_start=_number("β_start", beta_start), beta_end=_number("β_end", beta_end),
                         zero_terminal_snr=bool(zero_terminal_snr))


class ScheduleControls:
    """Family, T, β_start, β_end, cosine s, zero-terminal-SNR: created in the current Blocks context."""

    def __init__(self, family: str = "linear", api_prefix: str = "forward", label: str = "Schedule"):
        beta_start, beta_end = DEFAULT_BETAS.get(family, DEFAULT_BETAS["linear"])
        cosine = family == "cosine"
        with gr.Row():
            self.family = gr.Dropdown(list(SCHEDULE_NAMES), value=family, label=label, scale=2,
                                      elem_id=f"{api_prefix}-family")
            self.T = gr.Number(DEFAULT_T, label="T (steps)", precision=0, minimum=1, maximum=UI_MAX_T, scale=1)
        with gr.Row():
            self.beta_start = gr.Number(beta_start, label="β_start", visible=not cosine, scale=1)
            self.beta_end = gr.Number(beta_end, label="β_end", visible=not cosine, scale=1)
            self.cosine_s = gr.Number(DEFAULT_COSINE_S, label="cosine s", visible=cosine, scale=1)
        # its own line: beside the β fields its label was clipped to "zero termina"
        self.zero_terminal_snr = gr.Checkbox(False, label="zero terminal SNR (Lin et al. 2023: ᾱ_T = 0)")
        self.family.input(self.defaults_for, inputs=self.family, outputs=[self.beta_start, self.beta_end, self.cosine_s],
                          api_name=f"{api_prefix}_schedule_defaults")

    @property
    def inputs(self) -> list:
        return [self.family, self.T, self.beta_start, self.beta_end, self.cosine_s, self.zero_terminal_snr]

    @property
    def changes(self) -> list:
        return [c.change for c in self.inputs]

    @staticmethod
    def defaults_for(family):
        """The family's default β range (shown for linear-type families) or cosine s (shown for cosine)."""
        cosine = family == "cosine"
        beta_start, beta_end = DEFAULT_BETAS.get(family, DEFAULT_BETAS["linear"])
        return (gr.update(value=beta_start, visible=not cosine), gr.update(value=beta_end, visible=not cosine),
                gr.update(value=DEFAULT_COSINE_S, visible=cosine))
