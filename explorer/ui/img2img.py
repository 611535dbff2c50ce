"""Reverse tab, img2img round trip: noise an image to t with q_sample, then run the reverse process back from t.

The idea behind Stable Diffusion's img2img *strength*; the run uses the Reverse tab's settings. Each round trip is
kept (:class:`explorer.runs.Img2ImgRun`, in the ``gr.State`` that :func:`build_img2img` returns), so that the Step
microscope can run it again with its true x₀ known.
"""

from __future__ import annotations

from dataclasses import replace

import gradio as gr
import numpy as np
import torch

from .. import checks, data, readouts, render
from ..model import ModelProvider
from ..runs import (DIGIT_LABELS, SAMPLER_LABELS, Img2ImgRun, RunSettings, image_to_digit_tensor, img2img_run,
                    img2img_start)
from ..schedules import DEFAULT_T
from .common import LATEX, UI_MAX_T, image_file, served_image_path
from .controls import DIGIT_CHOICES, RunControls, bind
from .image_input import ImageInput
from .images import load_sketch
from .sampling import GRID_SIDE, IMAGE_CLASS, SAMPLING, digit_image, format_value, recorder, stream_latest

DEFAULT_IMG2IMG_T = 500
DEFAULT_IMG2IMG_DIGIT = "none"  # the input alone drives the result: no class pulls it towards other digits
# the round trip's own class: one class for every copy ("0–9 one of each" made a "7" come back as 0, 1, 2, …)
IMG2IMG_DIGITS = [(label, d) for label, d in DIGIT_CHOICES if d != "mixed"]


def _grid(frames: np.ndarray) -> np.ndarray:
    return render.tile(frames, min_side=GRID_SIDE)  # (B, H, W) uint8 -> enlarged grid


def drivers(run: RunSettings) -> str:
    """What steers the denoised result besides the noised input: the class (and w, if a class is set)."""
    if run.digit == "none":
        return "nothing but the noised input (no class: unconditional)"
    return f"the noised input and the class {DIGIT_LABELS.get(run.digit, run.digit)} with guidance w = {run.guidance:g}"


def img2img_frames(provider: ModelProvider, image_path, t_start, run: RunSettings):
    """Noise an image to t_start with q_sample, denoise from there: yields (input, noised, result, caption, the
    round trip kept as an :class:`~explorer.runs.Img2ImgRun`, with the steps recorded so far)."""
    s = run.schedule
    t_start = readouts.check_timestep(s, t_start)
    if t_start < 1:
        raise ValueError("Noise to at least t = 1 (t = 0 is the clean image itself).")
    x0 = image_to_digit_tensor(data.load_image(served_image_path(image_path)))  # (1, 1, 28, 28)
    kept = Img2ImgRun(run, t_start, x0)
    run = img2img_run(run, t_start)
    generator = torch.Generator().manual_seed(run.seed)
    x_start = img2img_start(x0, t_start, s, run.n, generator)
    shown_in = _grid(data.to_uint8(x0)[:, 0])
    shown_noised = _grid(data.to_uint8(x_start)[:, 0])
    num_steps = run.num_steps(t_start)
    for traj in stream_latest(recorder(provider, run, t_start=t_start, x_start=x_start, generator=generator)):
        k = traj.count - 1
        result = _grid(traj.final() if traj.finished else traj.x0_hat[k])
        what = "x₀" if traj.finished else f"x̂₀ at step {k + 1} of {traj.num_steps}"
        caption = (f"x₀ noised to t = {t_start} of {s.T} (ᾱ_t = {format_value(s.alpha_bars[t_start])}), then "
                   f"{readouts.count(num_steps, SAMPLER_LABELS[run.sampler] + ' step')} back to t = 0 — "
                   f"showing {what}.  \n**What drives the result:** {drivers(run)}; schedule, sampler, seed and "
                   f"samples from the settings above.")
        yield (image_file(shown_in, "x0"), image_file(shown_noised, "x_start"), image_file(result, "result"), caption,
               replace(kept, count=traj.count))


def img2img_range(T):
    """The img2img "noise to t" slider spans 1..T of the chosen schedule (unchanged while T is not a number)."""
    try:
        return gr.update(maximum=checks.whole_number("T", T, 1, UI_MAX_T))
    except ValueError:  # the schedule's own event says what is wrong with T
        return gr.skip()


def build_img2img(provider: ModelProvider, controls: RunControls, forward_image=None) -> dict:
    """The img2img accordion; the run reads ``controls``. ``forward_image`` (the Forward tab's x₀) adds a button.

    Returns {"state": the ``gr.State`` holding the session's last round trip (an Img2ImgRun, or None)}."""
    state = gr.State(None)
    with gr.Accordion("img2img round trip: noise an image to t, denoise it back", open=False):
        gr.Markdown("The idea behind Stable Diffusion's img2img *strength*: $x_t$ = q_sample($x_0$, t, ε), then the "
                    "reverse process from t (DDIM uses the share t/T of its steps). The input is turned into a 28×28 "
                    "digit (the model's format). Schedule, sampler, seed and samples come from the settings above; "
                    "the class is chosen here. The Step microscope tab can inspect the last round trip step by step, "
                    "its true $x_0$ known.", latex_delimiters=LATEX)
        with gr.Row():
            with gr.Column(scale=1):
                image = ImageInput(str(data.ASSETS_DIR / "mnist_7.png"), type="filepath", image_mode=None,
                                   format="png", label="input image", sources=["upload"], height=240,
                                   elem_id="img2img-input", elem_classes=[IMAGE_CLASS, "ddpm-enlarged"])
                gr.Examples([[str(p)] for p in data.EXAMPLES], inputs=[image], label="Bundled examples",
                            examples_per_page=len(data.EXAMPLES))
                if forward_image is not None:
                    use_forward = gr.Button("Use the Forward tab's image", size="sm")
                    use_forward.click(bind(served_image_path, forward_image)[0], inputs=forward_image, outputs=image,
                                      api_name="reverse_use_forward_image", show_progress="hidden")
                with gr.Accordion("Draw a digit", open=False):
                    sketch = gr.Sketchpad(label="Draw a digit", canvas_size=(280, 280), layers=False,
                                          brush=gr.Brush(colors=["#000000"], color_mode="fixed", default_size=18))
                    use_sketch = gr.Button("Use drawing", size="sm")
                    use_sketch.click(load_sketch, inputs=sketch, outputs=image, api_name="reverse_load_sketch")
                t_start = gr.Slider(1, DEFAULT_T, value=DEFAULT_IMG2IMG_T, step=1, label="noise to t (strength)",
                                    elem_id="img2img-t")
                controls.schedule.T.change(img2img_range, inputs=controls.schedule.T, outputs=t_start,
                                           api_name="reverse_img2img_range", show_progress="hidden")
                digit = gr.Dropdown(IMG2IMG_DIGITS, value=DEFAULT_IMG2IMG_DIGIT, label="class for the round trip",
                                    info="'any digit' lets the input alone decide; a class pulls every copy towards it",
                                    elem_id="img2img-digit")
                run_btn = gr.Button("Noise and denoise", variant="primary", elem_id="img2img-run")
            with gr.Column(scale=2):
                caption = gr.Markdown(elem_id="img2img-caption")
                with gr.Row():
                    shown_in = digit_image("input x₀ (28×28, model format)", "img2img-in")
                    noised = digit_image("noised x_t", "img2img-noised")
                    result = digit_image("denoised result", "img2img-out")

    def img2img(image_path, t, run: RunSettings):
        yield from img2img_frames(provider, image_path, t, run)

    def img2img_class(image_path, t, run: RunSettings, digit):
        """img2img with its own class (the page's button): every copy gets ``digit`` ("none": unconditional)."""
        yield from img2img_frames(provider, image_path, t, run.replace(digit=digit))

    outputs = [shown_in, noised, result, caption, state]
    fn, inputs = bind(img2img_class, image, t_start, controls, digit)
    run_btn.click(fn, inputs=inputs, outputs=outputs, api_name="reverse_img2img_class", **SAMPLING)
    # the API as before: the class of the settings above (API only, like reverse_prev)
    api_only = gr.Button(visible=False)
    fn, inputs = bind(img2img, image, t_start, controls)
    api_only.click(fn, inputs=inputs, outputs=outputs, api_name="reverse_img2img", **SAMPLING)
    return {"state": state}
